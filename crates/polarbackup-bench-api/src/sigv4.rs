//! AWS Signature Version 4 for query-API calls (RDS's `Action=…` form POSTs), so the load
//! generator spends the same signing work on an AWS emulator as on polarbackup. The emulators
//! we measure against (moto) do not check it; the signature is still real.

use crate::sign::Credentials;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
pub const CONTENT_TYPE: &str = "application/x-www-form-urlencoded; charset=utf-8";

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// What scopes a signature: the service's signing name and region.
pub struct Scope<'a> {
    pub region: &'a str,
    pub service: &'a str,
}

/// The headers of one signed form POST to `/` (`amz_date` is `YYYYMMDDTHHMMSSZ`),
/// `Authorization` last.
pub fn signed_headers(
    creds: &Credentials,
    scope: &Scope<'_>,
    host: &str,
    body: &str,
    amz_date: &str,
) -> Vec<(&'static str, String)> {
    let day = &amz_date[..8];
    let headers: Vec<(&'static str, String)> = vec![
        ("content-type", CONTENT_TYPE.to_string()),
        ("host", host.to_string()),
        ("x-amz-date", amz_date.to_string()),
    ];
    let signed = "content-type;host;x-amz-date";
    let canonical_headers: String = headers
        .iter()
        .map(|(n, v)| format!("{n}:{}\n", v.trim()))
        .collect();
    let payload = hex::encode(Sha256::digest(body.as_bytes()));
    let canonical = format!("POST\n/\n\n{canonical_headers}\n{signed}\n{payload}");
    let credential_scope = format!("{day}/{}/{}/aws4_request", scope.region, scope.service);
    let to_sign = format!(
        "{ALGORITHM}\n{amz_date}\n{credential_scope}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let key = hmac(format!("AWS4{}", creds.secret).as_bytes(), day);
    let key = hmac(&key, scope.region);
    let key = hmac(&key, scope.service);
    let key = hmac(&key, "aws4_request");
    let signature = hex::encode(hmac(&key, &to_sign));
    let mut out = headers;
    out.push((
        "authorization",
        format!(
            "{ALGORITHM} Credential={}/{credential_scope}, SignedHeaders={signed}, Signature={signature}",
            creds.id
        ),
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AWS's published example (IAM ListUsers, GET) adapted: the derived signing key and the
    /// signature over a known string are what the SigV4 documentation gives.
    #[test]
    fn the_signing_key_derivation_matches_aws_documentation() {
        let secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
        let key = hmac(format!("AWS4{secret}").as_bytes(), "20150830");
        let key = hmac(&key, "us-east-1");
        let key = hmac(&key, "iam");
        let key = hmac(&key, "aws4_request");
        assert_eq!(
            hex::encode(&key),
            "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
        );
        let to_sign = "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/iam/aws4_request\n\
                       f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59";
        assert_eq!(
            hex::encode(hmac(&key, to_sign)),
            "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
        );
    }

    #[test]
    fn the_authorization_scopes_the_service_and_hides_the_secret() {
        let creds = Credentials {
            id: "AKIDEXAMPLE".into(),
            secret: "s3cret".into(),
        };
        let scope = Scope {
            region: "us-east-1",
            service: "rds",
        };
        let h = signed_headers(
            &creds,
            &scope,
            "127.0.0.1:1",
            "Action=DescribeDBSnapshots&Version=2014-10-31",
            "20261202T000000Z",
        );
        let auth = &h.last().unwrap().1;
        assert!(auth.starts_with(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261202/us-east-1/rds/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date, Signature="
        ));
        assert!(!auth.contains("s3cret"));
    }
}
