//! Just enough AWS Signature Version 4 for the testkit's bucket requests: header signing of a
//! request with an empty body and no query string.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// SHA-256 of the empty body.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

pub struct Request<'a> {
    pub method: &'a str,
    /// The absolute path, already URI-encoded (bucket names need no encoding).
    pub path: &'a str,
    pub host: &'a str,
    /// `YYYYMMDDTHHMMSSZ`
    pub amz_date: &'a str,
    pub region: &'a str,
    pub access_key: &'a str,
    pub secret_key: &'a str,
}

/// The `Authorization` header value for `req`, signing host, x-amz-content-sha256 and
/// x-amz-date.
pub fn authorization(req: &Request) -> String {
    let day = &req.amz_date[..8];
    let signed_headers = "host;x-amz-content-sha256;x-amz-date";
    let canonical = format!(
        "{}\n{}\n\nhost:{}\nx-amz-content-sha256:{EMPTY_SHA256}\nx-amz-date:{}\n\n{signed_headers}\n{EMPTY_SHA256}",
        req.method, req.path, req.host, req.amz_date
    );
    let scope = format!("{day}/{}/s3/aws4_request", req.region);
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{}\n{scope}\n{}",
        req.amz_date,
        hex(&Sha256::digest(canonical.as_bytes()))
    );
    let mut key = hmac(format!("AWS4{}", req.secret_key).as_bytes(), day.as_bytes());
    for part in [req.region, "s3", "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={}",
        req.access_key,
        hex(&hmac(&key, to_sign.as_bytes()))
    )
}

/// An HTTP date (`Tue, 02 Dec 2025 02:35:39 GMT`) as `20251202T023539Z`.
pub fn amz_date(http_date: &str) -> Option<String> {
    let mut parts = http_date.split_whitespace().skip(1);
    let (day, month, year, time) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| *m == month)? + 1;
    let time: String = time.chars().filter(|c| *c != ':').collect();
    (day.len() == 2 && year.len() == 4 && time.len() == 6)
        .then(|| format!("{year}{month:02}{day}T{time}Z"))
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(
            amz_date("Tue, 02 Dec 2025 02:35:39 GMT").as_deref(),
            Some("20251202T023539Z")
        );
        assert_eq!(amz_date("yesterday"), None);
    }

    /// A vector computed with Python's hmac/hashlib; the live check is SeaweedFS accepting
    /// the signature (`s3::tests`).
    #[test]
    fn signs_like_the_reference() {
        let auth = authorization(&Request {
            method: "PUT",
            path: "/bucket-0",
            host: "127.0.0.1:8333",
            amz_date: "20251202T023539Z",
            region: "us-east-1",
            access_key: "AKIDEXAMPLE",
            secret_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        });
        assert_eq!(auth, REFERENCE);
    }

    const REFERENCE: &str = "AWS4-HMAC-SHA256 \
        Credential=AKIDEXAMPLE/20251202/us-east-1/s3/aws4_request, \
        SignedHeaders=host;x-amz-content-sha256;x-amz-date, \
        Signature=12f34c20090853ac3e45592147126e226097130b0a8cd5bb6943e6067e123a87";
}
