//! Authentication: the pure verifier from `polarbackup-auth`, fed by the store, plus the
//! stateful checks it cannot do (nonce replay, STS tokens).

use crate::handlers::store_failure;
use crate::AppState;
use polarbackup_auth::{AuthError, KeyLookup, KeyMaterial, KeyRecord};
use polarbackup_model::{AccessKey, AccessKeyId, AccountId, KeyKind, RamUser};
use polarbackup_store::StoreError;
use polarbackup_wire::{ApiError, Params};
use std::cell::RefCell;

/// Who is calling, once the signature checks out.
#[derive(Debug, Clone)]
pub struct Caller {
    pub account: AccountId,
    pub access_key_id: AccessKeyId,
    /// The RAM user behind the key; `None` for the account's own keys.
    pub user: Option<RamUser>,
    pub source_ip: Option<std::net::IpAddr>,
    pub user_agent: Option<String>,
}

/// Adapts the store to the verifier's lookup, remembering a store failure so that it becomes
/// an InternalError rather than a misleading "key not found".
struct StoreKeys<'a> {
    state: &'a AppState,
    failure: RefCell<Option<StoreError>>,
    found: RefCell<Option<AccessKey>>,
}

impl KeyLookup for StoreKeys<'_> {
    fn lookup(&self, access_key_id: &str) -> Option<KeyRecord> {
        // An id no key could have is as unknown as one that is not stored.
        let id = AccessKeyId::parse(access_key_id).ok()?;
        match self.state.store.key(&id) {
            Ok(Some(key)) => {
                let material = match key.kind {
                    KeyKind::Hmac => KeyMaterial::Secret(key.secret.clone()),
                    KeyKind::Rsa => KeyMaterial::RsaPublicKeyPem(key.secret.clone()),
                };
                let record = KeyRecord {
                    material,
                    active: key.active,
                };
                *self.found.borrow_mut() = Some(key);
                Some(record)
            }
            Ok(None) => None,
            Err(e) => {
                *self.failure.borrow_mut() = Some(e);
                None
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
pub fn authenticate(
    state: &AppState,
    source_ip: Option<std::net::IpAddr>,
    method: &str,
    path: &str,
    params: &Params,
    headers: &[(String, String)],
    body: &[u8],
) -> Result<Caller, ApiError> {
    let req = polarbackup_auth::Request {
        method,
        path,
        query: &params.query,
        form: &params.form,
        headers,
        body,
    };
    let keys = StoreKeys {
        state,
        failure: RefCell::new(None),
        found: RefCell::new(None),
    };
    let now = state.clock.now();
    let verified = polarbackup_auth::verify(&req, now, &keys);
    if let Some(e) = keys.failure.take() {
        return Err(store_failure(&e, "key lookup failed"));
    }
    let verified = verified.map_err(auth_error)?;
    if verified.security_token.is_some() {
        // No STS tokens are issued yet, so any token is one we cannot have made.
        return Err(ApiError::SecurityTokenMalformed);
    }
    // A nonce must stay remembered for as long as its timestamp would still be accepted.
    let expires_at = verified
        .timestamp
        .checked_add(polarbackup_auth::MAX_CLOCK_SKEW)
        .unwrap_or(verified.timestamp);
    let key = keys.found.take().ok_or(ApiError::Internal)?;
    let fresh = state
        .store
        .use_nonce(&key.id, &verified.nonce, expires_at, now)
        .map_err(|e| store_failure(&e, "nonce store failed"))?;
    if !fresh {
        return Err(ApiError::SignatureNonceUsed);
    }
    let user = match &key.user {
        None => None,
        Some(id) => Some(
            state
                .store
                .user(id)
                .map_err(|e| store_failure(&e, "loading the key's user failed"))?
                // A key whose user is gone must not act as the account.
                .ok_or(ApiError::AccessKeyNotFound)?,
        ),
    };
    let user_agent = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("user-agent"))
        .map(|(_, v)| v.clone());
    Ok(Caller {
        account: key.account,
        access_key_id: key.id,
        user,
        source_ip,
        user_agent,
    })
}

fn auth_error(e: AuthError) -> ApiError {
    match e {
        AuthError::MissingParameter(name) => ApiError::MissingParameter(name),
        AuthError::IncompleteSignature(detail) => ApiError::IncompleteSignature(detail),
        AuthError::InvalidSignatureMethod => ApiError::InvalidSignatureMethod,
        AuthError::InvalidSignatureVersion => ApiError::InvalidSignatureVersion,
        AuthError::TimestampFormat => ApiError::TimestampFormat,
        AuthError::TimestampExpired => ApiError::TimestampExpired,
        AuthError::KeyNotFound => ApiError::AccessKeyNotFound,
        AuthError::KeyInactive => ApiError::AccessKeyInactive,
        AuthError::SignatureMismatch { string_to_sign } => {
            ApiError::SignatureDoesNotMatch { string_to_sign }
        }
        AuthError::ContentHashMismatch => ApiError::ContentHashMismatch,
    }
}
