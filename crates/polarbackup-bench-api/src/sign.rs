//! ACS3-HMAC-SHA256 request signing, written from the protocol description rather than shared
//! with the server's verifier, so the benchmark also cross-checks it.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

pub const ALGORITHM: &str = "ACS3-HMAC-SHA256";
pub const API_VERSION: &str = "2017-08-01";

/// An AccessKey pair; the secret never leaves this process.
pub struct Credentials {
    pub id: String,
    pub secret: String,
}

/// RFC 3986 percent-encoding as the SDKs apply it: unreserved characters stay literal.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The query string, sorted by key and encoded: both what is sent and what is signed.
pub fn canonical_query(params: &[(&str, &str)]) -> String {
    let mut sorted: Vec<_> = params.to_vec();
    sorted.sort();
    sorted
        .iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The headers of one signed POST with an empty body, `Authorization` last.
pub fn signed_headers(
    creds: &Credentials,
    host: &str,
    action: &str,
    query: &str,
    date: &str,
    nonce: &str,
) -> Vec<(&'static str, String)> {
    let payload = hex::encode(Sha256::digest(b""));
    // Sorted by name, as the canonical form needs.
    let headers: Vec<(&'static str, String)> = vec![
        ("host", host.to_string()),
        ("x-acs-action", action.to_string()),
        ("x-acs-content-sha256", payload.clone()),
        ("x-acs-date", date.to_string()),
        ("x-acs-signature-nonce", nonce.to_string()),
        ("x-acs-version", API_VERSION.to_string()),
    ];
    let names: Vec<&str> = headers.iter().map(|(n, _)| *n).collect();
    let signed = names.join(";");
    let canonical_headers: String = headers
        .iter()
        .map(|(n, v)| format!("{n}:{}\n", v.trim()))
        .collect();
    let canonical = format!("POST\n/\n{query}\n{canonical_headers}\n{signed}\n{payload}");
    let to_sign = format!("{ALGORITHM}\n{}", hex::encode(Sha256::digest(canonical)));
    let mut mac =
        Hmac::<Sha256>::new_from_slice(creds.secret.as_bytes()).expect("HMAC takes any key");
    mac.update(to_sign.as_bytes());
    let signature = hex::encode(mac.finalize().into_bytes());
    let mut out = headers;
    out.push(("accept", "application/json".to_string()));
    out.push((
        "authorization",
        format!(
            "{ALGORITHM} Credential={},SignedHeaders={signed},Signature={signature}",
            creds.id
        ),
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_keeps_unreserved_and_escapes_the_rest() {
        assert_eq!(percent_encode("pc-a b*c~d/e+f"), "pc-a%20b%2Ac~d%2Fe%2Bf");
        assert_eq!(
            canonical_query(&[("b", "2"), ("A", "x y"), ("a", "1")]),
            "A=x%20y&a=1&b=2"
        );
    }

    #[test]
    fn the_authorization_names_every_signed_header_and_changes_with_the_nonce() {
        let creds = Credentials {
            id: "LTAIkey".into(),
            secret: "s3cret".into(),
        };
        let sign = |nonce| {
            signed_headers(
                &creds,
                "127.0.0.1:1",
                "DescribeBackupTasks",
                "",
                "2026-12-02T00:00:00Z",
                nonce,
            )
        };
        let a = sign("n1");
        let auth = &a.last().unwrap().1;
        assert!(auth.starts_with(
            "ACS3-HMAC-SHA256 Credential=LTAIkey,SignedHeaders=host;x-acs-action;\
             x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version,Signature="
        ));
        assert!(!auth.contains("s3cret"));
        assert_ne!(auth, &sign("n2").last().unwrap().1);
    }
}
