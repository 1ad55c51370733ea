//! Download-link signatures: HMAC-SHA256 of the link's string to sign under the server's link
//! secret, as lower-case hex, checked in constant time.

use crate::compare;
use hmac::{Hmac, Mac};
use sha2::Sha256;

fn mac(secret: &[u8], string_to_sign: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(string_to_sign.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// The signature a link carries.
pub fn sign_link(secret: &[u8], string_to_sign: &str) -> String {
    hex::encode(mac(secret, string_to_sign))
}

/// Whether `signature` (hex, as the link carried it) is ours for `string_to_sign`. Anything
/// that is not hex of the right length is simply not ours.
pub fn verify_link(secret: &[u8], string_to_sign: &str, signature: &str) -> bool {
    let Ok(given) = hex::decode(signature) else {
        return false;
    };
    compare::equal(&mac(secret, string_to_sign), &given)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_and_verifies() {
        let secret = [7u8; 32];
        let sig = sign_link(&secret, "a\n1\n2");
        assert_eq!(sig.len(), 64);
        assert!(sig
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert!(verify_link(&secret, "a\n1\n2", &sig));
        assert!(!verify_link(&secret, "a\n1\n3", &sig), "another expiry");
        assert!(!verify_link(&[8u8; 32], "a\n1\n2", &sig), "another secret");
        let mut flipped = sig.clone().into_bytes();
        flipped[10] = if flipped[10] == b'0' { b'1' } else { b'0' };
        let flipped = String::from_utf8(flipped).expect("ascii");
        assert!(!verify_link(&secret, "a\n1\n2", &flipped));
        for bad in ["", "zz", &sig[..62], &format!("{sig}00")] {
            assert!(!verify_link(&secret, "a\n1\n2", bad), "{bad:?}");
        }
    }

    /// RFC 4231 test case 2: the MAC is plain HMAC-SHA256.
    #[test]
    fn is_hmac_sha256() {
        assert_eq!(
            sign_link(b"Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn compares_through_the_constant_time_helper() {
        assert!(include_str!("link.rs").contains("compare::equal("));
    }
}
