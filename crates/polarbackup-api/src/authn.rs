//! Authentication: the pure verifier from `polarbackup-auth`, fed by the store, plus the
//! stateful checks it cannot do (nonce replay, STS tokens).

use crate::handlers::store_failure;
use crate::AppState;
use polarbackup_auth::{AuthError, KeyLookup, KeyMaterial, KeyRecord};
use polarbackup_model::{AccessKeyId, AccountId, Cluster, DbClusterId, KeyKind, RamUser};
use polarbackup_store::{Attachment, CallerRecords, ReadMark, StoreError};
use polarbackup_wire::{ApiError, Params};
use std::cell::RefCell;
use std::sync::Arc;

/// Who is calling, once the signature checks out.
#[derive(Debug, Clone)]
pub struct Caller {
    pub account: AccountId,
    pub access_key_id: AccessKeyId,
    /// The RAM user behind the key; `None` for the account's own keys.
    pub user: Option<RamUser>,
    /// The policies attached to `user`, read with the key.
    pub attachments: Arc<[Attachment]>,
    /// The cluster the call names (its `DBClusterId`, when well-formed) as read with the key:
    /// `None` inside when it is not stored. Authorization and the handler's ownership check
    /// use it instead of reading it again.
    pub named_cluster: Option<(DbClusterId, Option<Arc<Cluster>>)>,
    /// Where the store stood when the records were read, for the call's later reads.
    pub mark: Option<ReadMark>,
    pub source_ip: Option<std::net::IpAddr>,
    pub user_agent: Option<String>,
}

impl Caller {
    /// The cluster `id` as read with the key, if the call named that one.
    pub fn cluster_read_with_key(&self, id: &DbClusterId) -> Option<Option<&Cluster>> {
        match &self.named_cluster {
            Some((named, cluster)) if named == id => Some(cluster.as_deref()),
            _ => None,
        }
    }
}

/// Adapts the store to the verifier's lookup, remembering a store failure so that it becomes
/// an InternalError rather than a misleading "key not found". The key, its user, their
/// policies and the named cluster are read in one snapshot.
struct StoreKeys<'a> {
    state: &'a AppState,
    cluster: Option<&'a DbClusterId>,
    failure: RefCell<Option<StoreError>>,
    found: RefCell<Option<CallerRecords>>,
}

impl KeyLookup for StoreKeys<'_> {
    fn lookup(&self, access_key_id: &str) -> Option<KeyRecord> {
        // An id no key could have is as unknown as one that is not stored.
        let id = AccessKeyId::parse(access_key_id).ok()?;
        match self.state.store.caller_records(&id, self.cluster) {
            Ok(Some(records)) => {
                let key = &records.key;
                let material = match key.kind {
                    KeyKind::Hmac => KeyMaterial::Secret(key.secret.clone()),
                    KeyKind::Rsa => KeyMaterial::RsaPublicKeyPem(key.secret.clone()),
                };
                let record = KeyRecord {
                    material,
                    active: key.active,
                };
                *self.found.borrow_mut() = Some(records);
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

/// A request whose signature checks out, before its nonce is used.
pub struct Signed {
    records: CallerRecords,
    cluster: Option<DbClusterId>,
    nonce: String,
    /// Until when the nonce must stay remembered.
    nonce_expires_at: jiff::Timestamp,
    now: jiff::Timestamp,
    source_ip: Option<std::net::IpAddr>,
    user_agent: Option<String>,
}

impl Signed {
    /// The nonce's write: key, nonce, until when it is kept, and the time of the call.
    pub fn nonce(&self) -> (&AccessKeyId, &str, jiff::Timestamp, jiff::Timestamp) {
        (
            &self.records.key.id,
            &self.nonce,
            self.nonce_expires_at,
            self.now,
        )
    }
}

/// A request as authentication reads it.
pub struct Incoming<'a> {
    pub source_ip: Option<std::net::IpAddr>,
    pub method: &'a str,
    pub path: &'a str,
    pub params: &'a Params,
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
}

/// The signature, checked against the key read (in one snapshot) with its user, their
/// policies and the cluster the call names.
pub fn check_signature(
    state: &AppState,
    incoming: &Incoming<'_>,
    cluster: Option<DbClusterId>,
) -> Result<Signed, ApiError> {
    let Incoming {
        source_ip,
        method,
        path,
        params,
        headers,
        body,
    } = *incoming;
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
        cluster: cluster.as_ref(),
        failure: RefCell::new(None),
        found: RefCell::new(None),
    };
    let now = state.request_clock.now();
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
    let nonce_expires_at = verified
        .timestamp
        .checked_add(polarbackup_auth::MAX_CLOCK_SKEW)
        .unwrap_or(verified.timestamp);
    let records = keys.found.take().ok_or(ApiError::Internal)?;
    let user_agent = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("user-agent"))
        .map(|(_, v)| (*v).to_owned());
    Ok(Signed {
        records,
        cluster,
        nonce: verified.nonce,
        nonce_expires_at,
        now,
        source_ip,
        user_agent,
    })
}

/// The caller of a signed request, given the answer of its nonce's write: refused when the
/// nonce was used before, or the key's user is gone.
pub fn caller(signed: Signed, fresh: Result<bool, StoreError>) -> Result<Caller, ApiError> {
    let fresh = fresh.map_err(|e| store_failure(&e, "nonce store failed"))?;
    if !fresh {
        return Err(ApiError::SignatureNonceUsed);
    }
    let records = signed.records;
    let key = records.key;
    // A key whose user is gone must not act as the account.
    if key.user.is_some() && records.user.is_none() {
        return Err(ApiError::AccessKeyNotFound);
    }
    Ok(Caller {
        account: key.account,
        access_key_id: key.id,
        user: records.user,
        attachments: records.attachments,
        named_cluster: signed.cluster.map(|id| (id, records.cluster)),
        mark: records.mark,
        source_ip: signed.source_ip,
        user_agent: signed.user_agent,
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
