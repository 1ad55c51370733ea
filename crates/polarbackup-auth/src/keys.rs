//! Access keys as the verifier sees them, and the lookup the caller provides.

use std::fmt;

/// What verifies a signature for one AccessKeyId.
#[derive(Clone)]
pub enum KeyMaterial {
    /// The AccessKeySecret shared with the client (HMAC schemes).
    Secret(String),
    /// A PEM public key (`PUBLIC KEY` or `RSA PUBLIC KEY`) for ACS3-RSA-SHA256.
    RsaPublicKeyPem(String),
}

// By hand, so a secret can never reach a log through `{:?}`.
impl fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyMaterial::Secret(_) => f.write_str("Secret(<redacted>)"),
            KeyMaterial::RsaPublicKeyPem(_) => f.write_str("RsaPublicKeyPem(<redacted>)"),
        }
    }
}

/// One stored key: its material and whether it may be used.
#[derive(Clone)]
pub struct KeyRecord {
    pub material: KeyMaterial,
    pub active: bool,
}

impl fmt::Debug for KeyRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRecord")
            .field("material", &self.material)
            .field("active", &self.active)
            .finish()
    }
}

/// Finds the key for an AccessKeyId; `None` means no such key.
pub trait KeyLookup {
    fn lookup(&self, access_key_id: &str) -> Option<KeyRecord>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_key_material() {
        let rec = KeyRecord {
            material: KeyMaterial::Secret("hunter2-secret".into()),
            active: true,
        };
        let shown = format!("{rec:?} {:?}", rec.material);
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("active: true"), "{shown}");
        let pem = KeyMaterial::RsaPublicKeyPem("-----BEGIN PUBLIC KEY-----".into());
        assert!(!format!("{pem:?}").contains("BEGIN"));
    }
}
