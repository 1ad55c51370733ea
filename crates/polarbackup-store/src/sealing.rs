//! Secrets at rest: access-key secrets and database passwords are sealed with a master key
//! that lives outside the store (a key file or the environment), so a dump of the store, or
//! a database administrator of a shared PostgreSQL, reads no secret.
//!
//! A sealed value is `enc:v1:<key id>:<base64 of nonce ‖ ciphertext ‖ tag>`: ChaCha20-Poly1305
//! with a random 96-bit nonce per value, and the value's place (table, column, row id) as
//! associated data, so a sealed secret copied onto another row does not open. The key id (a
//! hash of the key) names the key that sealed a value, so a wrong key is told apart from a
//! tampered value, and a rotation can tell which rows it already moved. A value without the
//! `enc:` prefix is plaintext from an older version; the next open with a key seals it.

use crate::{Result, StoreError};
use base64::Engine as _;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use std::sync::Arc;

const PREFIX: &str = "enc:v1:";
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The plaintext of the key check value: kept sealed in the store, so a server started with
/// another key is refused at open instead of failing on the first signed request.
const CHECK_PLAINTEXT: &str = "polarbackup master key check";
/// Where the check value lives, as its associated data.
pub(crate) const CHECK_PLACE: &str = "master_key_check.check_value";

/// The 32-byte key that seals the store's secrets. `Debug` shows only its id.
pub struct MasterKey {
    id: String,
    key: LessSafeKey,
}

impl MasterKey {
    pub const LEN: usize = 32;

    /// A key from exactly [`MasterKey::LEN`] bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        if bytes.len() != Self::LEN {
            return Err(StoreError::MasterKey(format!(
                "a master key is {} bytes, not {}",
                Self::LEN,
                bytes.len()
            )));
        }
        let unbound = UnboundKey::new(&CHACHA20_POLY1305, bytes)
            .map_err(|_| StoreError::MasterKey("unusable master key".into()))?;
        let mut tagged = b"polarbackup master key id\0".to_vec();
        tagged.extend_from_slice(bytes);
        let digest = ring::digest::digest(&ring::digest::SHA256, &tagged);
        let id = digest.as_ref()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(Self {
            id,
            key: LessSafeKey::new(unbound),
        })
    }

    /// A key written as text: 64 hex digits, or the base64 of 32 bytes (surrounding
    /// whitespace ignored). The error never repeats the text.
    pub fn from_text(text: &str) -> Result<Self> {
        let text = text.trim();
        let bytes = if text.len() == 2 * Self::LEN && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            (0..Self::LEN)
                .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16))
                .collect::<std::result::Result<Vec<u8>, _>>()
                .ok()
        } else {
            B64.decode(text).ok()
        };
        match bytes {
            Some(b) if b.len() == Self::LEN => Self::from_bytes(&b),
            _ => Err(StoreError::MasterKey(format!(
                "a master key is {} bytes written as 64 hex digits or in base64",
                Self::LEN
            ))),
        }
    }

    /// A fresh random key's bytes.
    pub fn generate() -> Result<[u8; 32]> {
        let mut bytes = [0u8; Self::LEN];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| StoreError::MasterKey("no randomness for a new master key".into()))?;
        Ok(bytes)
    }

    /// The key's id (16 hex digits of a hash of it): safe to show and to store.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn seal(&self, place: &str, plain: &str) -> Result<String> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| StoreError::MasterKey("no randomness for a nonce".into()))?;
        let mut sealed = plain.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(place.as_bytes()),
                &mut sealed,
            )
            .map_err(|_| StoreError::MasterKey("sealing failed".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(format!("{PREFIX}{}:{}", self.id, B64.encode(out)))
    }

    fn open(&self, place: &str, stored: &str) -> Result<String> {
        let Some(rest) = stored.strip_prefix(PREFIX) else {
            return Ok(stored.to_owned());
        };
        let (id, body) = rest
            .split_once(':')
            .ok_or_else(|| StoreError::Corrupt(format!("malformed sealed value in {place}")))?;
        if id != self.id {
            return Err(mismatch(id, &self.id));
        }
        let bytes = B64
            .decode(body)
            .ok()
            .filter(|b| b.len() >= NONCE_LEN)
            .ok_or_else(|| StoreError::Corrupt(format!("malformed sealed value in {place}")))?;
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce)
            .map_err(|_| StoreError::Corrupt(format!("malformed sealed value in {place}")))?;
        let mut sealed = sealed.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(place.as_bytes()), &mut sealed)
            .map_err(|_| {
                StoreError::Corrupt(format!("a sealed value in {place} does not authenticate"))
            })?;
        String::from_utf8(plain.to_vec())
            .map_err(|_| StoreError::Corrupt(format!("a sealed value in {place} is not text")))
    }
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKey").field("id", &self.id).finish()
    }
}

/// The loud refusal of a key that did not seal the store.
fn mismatch(stored: &str, given: &str) -> StoreError {
    StoreError::MasterKey(format!(
        "master key does not match the metadata store: its secrets are sealed with key \
         {stored}, this process has key {given}"
    ))
}

/// The associated data of an access key's secret: its table, column and row.
pub(crate) fn key_place(key_id: &str) -> String {
    format!("access_keys.secret:{key_id}")
}

/// The associated data of a cluster's database password.
pub(crate) fn password_place(cluster_id: &str) -> String {
    format!("clusters.password:{cluster_id}")
}

/// What a store handle seals its secrets with. A handle opened without a key (tests, tools
/// that read jobs) writes secrets as given and refuses to open a sealed one; the binary always
/// opens with a key, and that open seals whatever plaintext such a handle left.
#[derive(Clone, Default)]
pub(crate) struct Sealer(Option<Arc<MasterKey>>);

impl Sealer {
    pub fn new(key: Arc<MasterKey>) -> Self {
        Self(Some(key))
    }

    pub fn key(&self) -> Option<&MasterKey> {
        self.0.as_deref()
    }

    pub fn seal(&self, place: &str, plain: &str) -> Result<String> {
        match &self.0 {
            Some(k) => k.seal(place, plain),
            None => Ok(plain.to_owned()),
        }
    }

    pub fn seal_opt(&self, place: &str, plain: Option<&str>) -> Result<Option<String>> {
        plain.map(|p| self.seal(place, p)).transpose()
    }

    pub fn open(&self, place: &str, stored: &str) -> Result<String> {
        match &self.0 {
            Some(k) => k.open(place, stored),
            None if stored.starts_with(PREFIX) => Err(StoreError::MasterKey(format!(
                "{place} is sealed: open the metadata store with its master key"
            ))),
            None => Ok(stored.to_owned()),
        }
    }

    pub fn open_opt(&self, place: &str, stored: Option<String>) -> Result<Option<String>> {
        stored.map(|s| self.open(place, &s)).transpose()
    }
}

/// A fresh check value for `key`.
pub(crate) fn check_value(key: &MasterKey) -> Result<String> {
    key.seal(CHECK_PLACE, CHECK_PLAINTEXT)
}

/// Refuses `key` unless it opens the store's check value (recorded by key `stored_id`).
pub(crate) fn verify_check(key: &MasterKey, stored_id: &str, check: &str) -> Result<()> {
    match key.open(CHECK_PLACE, check) {
        Ok(p) if p == CHECK_PLAINTEXT => Ok(()),
        Ok(_) | Err(_) => Err(mismatch(stored_id, key.id())),
    }
}

/// Whether a stored value is sealed (by any key).
pub(crate) fn is_sealed(stored: &str) -> bool {
    stored.starts_with(PREFIX)
}

/// A secret re-sealed from `old` (or plaintext) to `new`, for a rotation.
pub(crate) fn reseal(
    old: &MasterKey,
    new: &MasterKey,
    place: &str,
    stored: &str,
) -> Result<String> {
    new.seal(place, &old.open(place, stored)?)
}

/// Seals `stored` unless it already is (a plaintext row from an older version).
pub(crate) fn seal_if_plain(key: &MasterKey, place: &str, stored: &str) -> Result<Option<String>> {
    if is_sealed(stored) {
        Ok(None)
    } else {
        key.seal(place, stored).map(Some)
    }
}

/// How many secrets a rotation or a first sealing touched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SealReport {
    pub access_keys: u64,
    pub cluster_passwords: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> MasterKey {
        MasterKey::from_bytes(&[b; 32]).expect("key")
    }

    #[test]
    fn a_sealed_value_opens_only_in_its_place_with_its_key() {
        let k = key(1);
        let sealed = k.seal("access_keys.secret:A", "hunter2").expect("seal");
        assert!(
            sealed.starts_with(&format!("enc:v1:{}:", k.id())),
            "{sealed}"
        );
        assert!(!sealed.contains("hunter2"));
        assert_ne!(
            sealed,
            k.seal("access_keys.secret:A", "hunter2").expect("seal")
        );
        assert_eq!(
            k.open("access_keys.secret:A", &sealed).expect("open"),
            "hunter2"
        );
        assert!(matches!(
            k.open("access_keys.secret:B", &sealed),
            Err(StoreError::Corrupt(_))
        ));
        let err = key(2)
            .open("access_keys.secret:A", &sealed)
            .expect_err("other key");
        assert!(
            err.to_string().contains("master key does not match"),
            "{err}"
        );
        assert_eq!(k.open("x", "plain").expect("legacy"), "plain");
    }

    #[test]
    fn keys_parse_from_hex_or_base64_and_errors_never_echo_them() {
        let hex = "ab".repeat(32);
        let b64 = B64.encode([0xab; 32]);
        assert_eq!(
            MasterKey::from_text(&hex).expect("hex").id(),
            MasterKey::from_text(&format!("{b64}\n")).expect("b64").id()
        );
        let err = MasterKey::from_text("not-a-key-at-all").expect_err("bad");
        assert!(!err.to_string().contains("not-a-key"), "{err}");
        assert!(MasterKey::from_bytes(&[1; 31]).is_err());
        assert!(!format!("{:?}", key(3)).contains("key:"));
    }
}
