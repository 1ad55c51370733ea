//! Repository encryption: `RepoKey` (from a key file) seals every stored object with
//! AES-256-GCM before it leaves the machine.
//!
//! Subkeys come from the key file through HKDF-SHA256: one encrypts objects, another is the
//! key check a manifest records (so a wrong key is told apart from a tampered object). Each
//! object gets a fresh random 96-bit nonce, and its path in the repository is associated
//! data, so an object moved or copied to another path no longer opens. Objects are sealed
//! after compression (ciphertext does not compress) and whole: the repository holds every
//! object in memory already (a chunk, a side file, one WAL segment).
//!
//! A sealed object is `MAGIC | nonce | ciphertext | tag`.

use std::sync::Arc;

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::hkdf::{KeyType, Salt, HKDF_SHA256};
use ring::rand::{SecureRandom, SystemRandom};

use crate::RepoError;

/// The cipher a manifest names.
pub(crate) const CIPHER: &str = "aes-256-gcm";
/// Marks a sealed object (and is part of its associated data, so the version is bound too).
const MAGIC: &[u8; 8] = b"PBREPOE1";
const TAG_LEN: usize = 16;
/// Bytes a sealed object has beyond its plaintext.
pub(crate) const OVERHEAD: usize = MAGIC.len() + NONCE_LEN + TAG_LEN;
/// The shortest key file content accepted (after surrounding whitespace is trimmed).
pub const MIN_KEY_LEN: usize = 32;
const HKDF_SALT: &[u8] = b"polarbackup repository encryption v1";
const INFO_OBJECTS: &[u8] = b"object key: aes-256-gcm";
const INFO_CHECK: &[u8] = b"key check";

/// The key of an encrypted repository. Cheap to clone; `Debug` never shows key material.
#[derive(Clone)]
pub struct RepoKey {
    inner: Arc<Keys>,
}

struct Keys {
    objects: LessSafeKey,
    /// Hex; recorded in every manifest. An HKDF output of its own, so it tells nothing of
    /// the object key.
    check: String,
}

impl std::fmt::Debug for RepoKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RepoKey")
            .field("cipher", &CIPHER)
            .finish_non_exhaustive()
    }
}

/// An HKDF output length.
struct Len(usize);

impl KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

impl RepoKey {
    /// The key from a key file's content: at least 32 bytes (say `openssl rand -base64 48`)
    /// once surrounding ASCII whitespace is trimmed, so a trailing newline changes nothing.
    pub fn from_bytes(material: &[u8]) -> Result<RepoKey, RepoError> {
        let material = material.trim_ascii();
        if material.len() < MIN_KEY_LEN {
            return Err(RepoError::InvalidConfig(format!(
                "a repository key needs at least {MIN_KEY_LEN} bytes, this one has {}",
                material.len()
            )));
        }
        let prk = Salt::new(HKDF_SHA256, HKDF_SALT).extract(material);
        let expand = |info: &[u8]| -> Result<[u8; 32], RepoError> {
            let mut out = [0u8; 32];
            prk.expand(&[info], Len(out.len()))
                .and_then(|okm| okm.fill(&mut out))
                .map_err(|_| RepoError::Internal("HKDF expansion failed".into()))?;
            Ok(out)
        };
        let object_key = expand(INFO_OBJECTS)?;
        let unbound = UnboundKey::new(&AES_256_GCM, &object_key)
            .map_err(|_| RepoError::Internal("AES-256-GCM refused a 32-byte key".into()))?;
        Ok(RepoKey {
            inner: Arc::new(Keys {
                objects: LessSafeKey::new(unbound),
                check: hex::encode(expand(INFO_CHECK)?),
            }),
        })
    }

    /// The key check manifests record (lower-case hex).
    pub fn check(&self) -> &str {
        &self.inner.check
    }

    /// Seals `plain` as the object at `object` (its path from the repository root).
    pub fn seal(&self, object: &str, plain: &[u8]) -> Result<Vec<u8>, RepoError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| RepoError::Internal("the system random source failed".into()))?;
        let mut out = Vec::with_capacity(plain.len() + OVERHEAD);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plain);
        let tag = self
            .inner
            .objects
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(object)),
                &mut out[MAGIC.len() + NONCE_LEN..],
            )
            .map_err(|_| RepoError::Internal(format!("could not encrypt {object}")))?;
        out.extend_from_slice(tag.as_ref());
        Ok(out)
    }

    /// Opens an object sealed for `object`; anything else (another key, another path, a
    /// changed byte) is `Corrupt`, naming the object.
    pub fn open(&self, object: &str, sealed: &[u8]) -> Result<Vec<u8>, RepoError> {
        if !is_sealed(sealed) {
            return Err(RepoError::corrupt(object, "object is not encrypted"));
        }
        if sealed.len() < OVERHEAD {
            return Err(RepoError::corrupt(object, "encrypted object is truncated"));
        }
        let (header, body) = sealed.split_at(MAGIC.len() + NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = header[MAGIC.len()..]
            .try_into()
            .map_err(|_| RepoError::Internal("nonce length".into()))?;
        let mut buf = body.to_vec();
        let plain_len = self
            .inner
            .objects
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(object)),
                &mut buf,
            )
            .map_err(|_| {
                RepoError::corrupt(
                    object,
                    "decryption failed: the object was changed, moved from another path, or \
                     encrypted with another repository key",
                )
            })?
            .len();
        buf.truncate(plain_len);
        Ok(buf)
    }
}

/// Whether `stored` starts like a sealed object (so an unkeyed reader can say it needs a key).
pub(crate) fn is_sealed(stored: &[u8]) -> bool {
    stored.starts_with(MAGIC)
}

fn aad(object: &str) -> Vec<u8> {
    [&MAGIC[..], object.as_bytes()].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> RepoKey {
        RepoKey::from_bytes(&[byte; 32]).unwrap()
    }

    #[test]
    fn seals_and_opens_bound_to_key_and_path() {
        let k = key(1);
        let sealed = k.seal("backups/b1/x", b"secret marker").unwrap();
        assert_eq!(sealed.len(), 13 + OVERHEAD);
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        assert_eq!(k.open("backups/b1/x", &sealed).unwrap(), b"secret marker");
        // Fresh nonce each time.
        assert_ne!(sealed, k.seal("backups/b1/x", b"secret marker").unwrap());
        for (who, path, data) in [
            (key(2), "backups/b1/x", sealed.clone()),
            (k.clone(), "backups/b1/y", sealed.clone()),
            (
                k.clone(),
                "backups/b1/x",
                sealed[..sealed.len() - 1].to_vec(),
            ),
            (k.clone(), "backups/b1/x", sealed[..10].to_vec()),
            (k.clone(), "backups/b1/x", b"plain".to_vec()),
        ] {
            match who.open(path, &data) {
                Err(RepoError::Corrupt { object, .. }) => assert_eq!(object, path),
                other => panic!("expected Corrupt, got {other:?}"),
            }
        }
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x80;
            assert!(k.open("backups/b1/x", &bad).is_err(), "byte {i}");
        }
        assert!(k.open("o", &k.seal("o", b"").unwrap()).unwrap().is_empty());
    }

    #[test]
    fn key_material_rules_and_key_check() {
        assert!(matches!(
            RepoKey::from_bytes(&[7; 31]),
            Err(RepoError::InvalidConfig(_))
        ));
        let spaced = [&b"  "[..], &[7u8; 32], b"\n"].concat();
        assert_eq!(
            RepoKey::from_bytes(&spaced).unwrap().check(),
            key(7).check()
        );
        assert_ne!(key(7).check(), key(8).check());
        assert_eq!(key(7).check().len(), 64);
        assert!(!format!("{:?}", key(7)).contains(key(7).check()));
    }
}
