//! Tenants: accounts, their access keys and RAM users. Secrets are redacted from Debug output.

use crate::ids::{AccessKeyId, AccountId, RamUserId};
use jiff::Timestamp;
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: AccountId,
    pub name: Option<String>,
    pub created_at: Timestamp,
}

#[derive(Clone, PartialEq, Eq)]
pub struct AccessKey {
    pub id: AccessKeyId,
    pub account: AccountId,
    /// The RAM user the key belongs to; `None` for the account's own key.
    pub user: Option<RamUserId>,
    pub kind: KeyKind,
    /// The HMAC secret; for an RSA key, the public key (PEM).
    pub secret: String,
    pub active: bool,
    pub created_at: Timestamp,
}

impl fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessKey")
            .field("id", &self.id)
            .field("account", &self.account)
            .field("user", &self.user)
            .field("kind", &self.kind)
            .field("secret", &"<redacted>")
            .field("active", &self.active)
            .finish()
    }
}

/// How requests signed with a key are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// V1 and the V3 HMAC algorithms, with a shared secret.
    Hmac,
    /// ACS3-RSA-SHA256 only: the caller signs with its private key, the server keeps the public one.
    Rsa,
}

impl KeyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Hmac => "hmac",
            KeyKind::Rsa => "rsa",
        }
    }
}

impl FromStr for KeyKind {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        [Self::Hmac, Self::Rsa]
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or(())
    }
}

/// A RAM user: an identity inside an account whose calls policies govern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RamUser {
    pub id: RamUserId,
    pub account: AccountId,
    pub name: String,
    pub created_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_debug_never_shows_the_secret() {
        let key = AccessKey {
            id: AccessKeyId::parse("LTAIabc").expect("id"),
            account: AccountId::parse("1234567890123456").expect("account"),
            user: None,
            kind: KeyKind::Hmac,
            secret: "very-secret-value".into(),
            active: true,
            created_at: Timestamp::UNIX_EPOCH,
        };
        assert!(!format!("{key:?}").contains("very-secret-value"));
    }

    #[test]
    fn key_kinds_round_trip() {
        for k in [KeyKind::Hmac, KeyKind::Rsa] {
            assert_eq!(k.as_str().parse::<KeyKind>(), Ok(k));
        }
        assert!("HMAC".parse::<KeyKind>().is_err());
    }
}
