//! Signature V3 (`ACS3-HMAC-SHA256`, `ACS3-HMAC-SM3`, `ACS3-RSA-SHA256`) from the Authorization header (PROTOCOL.md §3).

use hmac::{digest::Digest, Hmac, Mac};
use jiff::Timestamp;
use rsa::{pkcs1::DecodeRsaPublicKey, pkcs8::DecodePublicKey, Pkcs1v15Sign, RsaPublicKey};
use sha2::Sha256;
use sm3::Sm3;

use crate::{
    compare, encode, time, AuthError, KeyLookup, KeyMaterial, Request, Scheme, Verified,
    MAX_NONCE_LEN,
};

/// Headers every V3 request must sign, so that none of them can be swapped
/// without breaking the signature.
const REQUIRED_SIGNED: [&str; 6] = [
    "host",
    "x-acs-action",
    "x-acs-version",
    "x-acs-date",
    "x-acs-signature-nonce",
    "x-acs-content-sha256",
];
const SECURITY_TOKEN: &str = "x-acs-security-token";
/// The SHA-256 of no bytes: the payload hash of every request without a body.
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Algorithm {
    HmacSha256,
    HmacSm3,
    RsaSha256,
}

impl Algorithm {
    fn parse(name: &str) -> Option<Self> {
        match name {
            "ACS3-HMAC-SHA256" => Some(Self::HmacSha256),
            "ACS3-HMAC-SM3" => Some(Self::HmacSm3),
            "ACS3-RSA-SHA256" => Some(Self::RsaSha256),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::HmacSha256 => "ACS3-HMAC-SHA256",
            Self::HmacSm3 => "ACS3-HMAC-SM3",
            Self::RsaSha256 => "ACS3-RSA-SHA256",
        }
    }

    fn scheme(self) -> Scheme {
        match self {
            Self::HmacSha256 => Scheme::V3HmacSha256,
            Self::HmacSm3 => Scheme::V3HmacSm3,
            Self::RsaSha256 => Scheme::V3RsaSha256,
        }
    }

    /// Lower-hex digest; SM3 replaces SHA-256 everywhere for ACS3-HMAC-SM3,
    /// even though the header is still called `x-acs-content-sha256`.
    fn hex_hash(self, data: &[u8]) -> String {
        match self {
            Self::HmacSha256 | Self::RsaSha256 if data.is_empty() => EMPTY_SHA256.to_owned(),
            Self::HmacSha256 | Self::RsaSha256 => hex_lower(&Sha256::digest(data)),
            Self::HmacSm3 => hex_lower(&Sm3::digest(data)),
        }
    }
}

/// Lower-case hex of a 32-byte digest (`hex::encode` goes a char at a time).
fn hex_lower(digest: &[u8]) -> String {
    let mut out = [0u8; 64];
    match hex::encode_to_slice(digest, &mut out) {
        Ok(()) => String::from_utf8_lossy(&out).into_owned(),
        Err(_) => hex::encode(digest),
    }
}

/// The parsed `Authorization: <ALG> Credential=..,SignedHeaders=..,Signature=..`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Authorization<'a> {
    pub algorithm: Algorithm,
    pub access_key_id: &'a str,
    /// As sent: lower-case names, sorted, `;`-separated (signed verbatim).
    pub signed_headers: &'a str,
    pub signature: Vec<u8>,
}

fn incomplete(detail: impl Into<String>) -> AuthError {
    AuthError::IncompleteSignature(detail.into())
}

/// Strict parse: exactly one space after the algorithm, the three parts in
/// SDK order with no spaces, header names lower-case, sorted and unique.
pub(crate) fn parse_authorization(value: &str) -> Result<Authorization<'_>, AuthError> {
    let value = value.trim();
    let (alg, rest) = value.split_once(' ').unwrap_or((value, ""));
    let algorithm = Algorithm::parse(alg).ok_or(AuthError::InvalidSignatureMethod)?;
    let mut parts = rest.split(',');
    let mut part = |prefix: &str| {
        parts
            .next()
            .and_then(|p| p.strip_prefix(prefix))
            .filter(|v| !v.is_empty())
            .ok_or_else(|| incomplete(format!("Authorization lacks {prefix}")))
    };
    let access_key_id = part("Credential=")?;
    let signed_headers = part("SignedHeaders=")?;
    let signature_hex = part("Signature=")?;
    if parts.next().is_some() {
        return Err(incomplete("Authorization has extra parts"));
    }
    if access_key_id.contains(char::is_whitespace) {
        return Err(incomplete("Credential contains whitespace"));
    }
    let names: Vec<&str> = signed_headers.split(';').collect();
    let well_formed = names.iter().all(|n| {
        !n.is_empty()
            && n.bytes()
                .all(|b| b.is_ascii_graphic() && !b.is_ascii_uppercase())
    });
    if !well_formed || !names.windows(2).all(|w| w[0] < w[1]) {
        return Err(incomplete(
            "SignedHeaders must be lower-case header names, sorted and unique",
        ));
    }
    let mut signature = vec![0; signature_hex.len() / 2];
    hex::decode_to_slice(signature_hex, &mut signature)
        .map_err(|_| incomplete("Signature is not hex"))?;
    Ok(Authorization {
        algorithm,
        access_key_id,
        signed_headers,
        signature,
    })
}

/// The only value of header `name`; absent or repeated is malformed.
fn single_header<'a>(req: &Request<'a>, name: &str) -> Result<&'a str, AuthError> {
    let mut values = req.header_iter(name);
    match (values.next(), values.next()) {
        (Some(v), None) => Ok(v.trim()),
        (None, _) => Err(incomplete(format!("header {name} is absent"))),
        (Some(_), Some(_)) => Err(incomplete(format!("header {name} is repeated"))),
    }
}

/// `name:value\n` per signed header; repeated headers have their trimmed
/// values sorted and joined with `,`.
pub(crate) fn canonical_headers(
    req: &Request<'_>,
    signed_headers: &str,
) -> Result<String, AuthError> {
    let mut out = String::with_capacity(512);
    for name in signed_headers.split(';') {
        let mut values = req.header_iter(name).map(str::trim);
        out.push_str(name);
        out.push(':');
        match (values.next(), values.next()) {
            (None, _) => return Err(incomplete(format!("signed header {name} is absent"))),
            (Some(only), None) => out.push_str(only),
            (Some(first), Some(second)) => {
                let mut all = vec![first, second];
                all.extend(values);
                all.sort_unstable();
                out.push_str(&all.join(","));
            }
        }
        out.push('\n');
    }
    Ok(out)
}

/// The CanonicalRequest; the form body is not part of it (the payload hash covers it).
pub(crate) fn canonical_request(
    req: &Request<'_>,
    canonical_headers: &str,
    signed_headers: &str,
    hashed_payload: &str,
) -> String {
    let query = encode::canonical_query(req.query.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    format!(
        "{}\n{}\n{query}\n{canonical_headers}\n{signed_headers}\n{hashed_payload}",
        req.method, req.path
    )
}

pub(crate) fn verify(
    req: &Request<'_>,
    authorization: &str,
    now: Timestamp,
    keys: &dyn KeyLookup,
) -> Result<Verified, AuthError> {
    let auth = parse_authorization(authorization)?;
    let is_signed = |name: &str| auth.signed_headers.split(';').any(|n| n == name);
    for required in REQUIRED_SIGNED {
        if !is_signed(required) {
            return Err(incomplete(format!("header {required} is not signed")));
        }
    }
    let security_token = match req.header_iter(SECURITY_TOKEN).next().is_none() {
        true => None,
        false if is_signed(SECURITY_TOKEN) => Some(single_header(req, SECURITY_TOKEN)?),
        false => return Err(incomplete(format!("header {SECURITY_TOKEN} is not signed"))),
    };
    let canonical_headers = canonical_headers(req, auth.signed_headers)?;
    let date = single_header(req, "x-acs-date")?;
    let nonce = single_header(req, "x-acs-signature-nonce")?;
    let content_hash = single_header(req, "x-acs-content-sha256")?;
    if nonce.is_empty() {
        return Err(incomplete("x-acs-signature-nonce is empty"));
    }
    if nonce.len() > MAX_NONCE_LEN {
        return Err(incomplete(format!(
            "x-acs-signature-nonce is longer than {MAX_NONCE_LEN} bytes"
        )));
    }

    let timestamp = time::parse(date)?;
    time::check_skew(timestamp, now)?;

    let record = keys
        .lookup(auth.access_key_id)
        .ok_or(AuthError::KeyNotFound)?;
    if !record.active {
        return Err(AuthError::KeyInactive);
    }

    let payload_hash = auth.algorithm.hex_hash(req.body);
    if content_hash != payload_hash {
        return Err(AuthError::ContentHashMismatch);
    }

    let canonical = canonical_request(req, &canonical_headers, auth.signed_headers, &payload_hash);
    let string_to_sign = format!(
        "{}\n{}",
        auth.algorithm.name(),
        auth.algorithm.hex_hash(canonical.as_bytes())
    );
    if !signature_matches(
        auth.algorithm,
        &record.material,
        &string_to_sign,
        &auth.signature,
    ) {
        return Err(AuthError::SignatureMismatch { string_to_sign });
    }

    Ok(Verified {
        access_key_id: auth.access_key_id.to_owned(),
        nonce: nonce.to_owned(),
        timestamp,
        security_token: security_token.filter(|t| !t.is_empty()).map(str::to_owned),
        scheme: auth.algorithm.scheme(),
    })
}

/// A key of the wrong kind for the algorithm (secret with RSA, PEM with HMAC)
/// cannot match.
fn signature_matches(
    alg: Algorithm,
    material: &KeyMaterial,
    string_to_sign: &str,
    given: &[u8],
) -> bool {
    match (alg, material) {
        (Algorithm::HmacSha256, KeyMaterial::Secret(secret)) => {
            let expected = hmac_sign::<Hmac<Sha256>>(secret, string_to_sign);
            compare::equal(&expected, given)
        }
        (Algorithm::HmacSm3, KeyMaterial::Secret(secret)) => {
            let expected = hmac_sign::<Hmac<Sm3>>(secret, string_to_sign);
            compare::equal(&expected, given)
        }
        (Algorithm::RsaSha256, KeyMaterial::RsaPublicKeyPem(pem)) => {
            let Some(key) = parse_public_key(pem) else {
                return false;
            };
            let digest = Sha256::digest(string_to_sign.as_bytes());
            key.verify(Pkcs1v15Sign::new::<Sha256>(), &digest, given)
                .is_ok()
        }
        _ => false,
    }
}

/// V3 keys HMAC with the raw secret (no `&` suffix, unlike V1).
fn hmac_sign<M: Mac + hmac::digest::KeyInit>(secret: &str, string_to_sign: &str) -> Vec<u8> {
    let mut mac = <M as hmac::digest::KeyInit>::new_from_slice(secret.as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(string_to_sign.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// Accepts SubjectPublicKeyInfo (`PUBLIC KEY`) and PKCS#1 (`RSA PUBLIC KEY`) PEM.
pub(crate) fn parse_public_key(pem: &str) -> Option<RsaPublicKey> {
    let pem = pem.trim();
    RsaPublicKey::from_public_key_pem(pem)
        .or_else(|_| RsaPublicKey::from_pkcs1_pem(pem))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::borrow_headers;
    use crate::testutil::{owned, Keys};

    const EMPTY_SM3: &str = "1ab21d8355cfa17f8e61194831e81a8f22bec8c728fefb747ed035eb5082aa2b";
    const SIGNED: &str =
        "host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version";
    const EXAMPLE_SIG: &str = "7c7f07a238c931ca22f03f3be918119d331fbc24f49afa297bdec413d2700065";

    fn example_headers(authorization: &str) -> Vec<(String, String)> {
        owned(&[
            ("Host", "polardb.aliyuncs.com"),
            ("x-acs-action", "DescribeBackupTasks"),
            ("x-acs-version", "2017-08-01"),
            ("x-acs-date", "2020-08-08T07:24:01Z"),
            (
                "x-acs-signature-nonce",
                "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf",
            ),
            ("x-acs-content-sha256", EMPTY_SHA256),
            ("Authorization", authorization),
        ])
    }

    fn auth(alg: &str, signed: &str, sig: &str) -> String {
        format!("{alg} Credential=testid,SignedHeaders={signed},Signature={sig}")
    }

    fn example_query() -> Vec<(String, String)> {
        owned(&[("DBClusterId", "pc-abc123"), ("BackupMode", "Manual")])
    }

    fn now() -> Timestamp {
        "2020-08-08T07:24:01Z".parse().unwrap()
    }

    fn run(headers: &[(String, String)], body: &[u8]) -> Result<Verified, AuthError> {
        let query = example_query();
        let req = Request {
            method: "POST",
            path: "/",
            query: &query,
            form: &[],
            headers: &borrow_headers(headers),
            body,
        };
        crate::verify(&req, now(), &Keys)
    }

    /// Replaces (or with `None` removes) header `name` in `headers`.
    fn set(
        mut headers: Vec<(String, String)>,
        name: &str,
        value: Option<&str>,
    ) -> Vec<(String, String)> {
        headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        if let Some(v) = value {
            headers.push((name.into(), v.into()));
        }
        headers
    }

    #[test]
    fn worked_example_2() {
        let headers = example_headers(&auth("ACS3-HMAC-SHA256", SIGNED, EXAMPLE_SIG));
        let query = example_query();
        let req = Request {
            method: "POST",
            path: "/",
            query: &query,
            form: &[],
            headers: &borrow_headers(&headers),
            body: b"",
        };
        let ch = canonical_headers(&req, SIGNED).unwrap();
        let cr = canonical_request(&req, &ch, SIGNED, EMPTY_SHA256);
        assert_eq!(
            cr,
            "POST\n/\nBackupMode=Manual&DBClusterId=pc-abc123\n\
             host:polardb.aliyuncs.com\nx-acs-action:DescribeBackupTasks\n\
             x-acs-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n\
             x-acs-date:2020-08-08T07:24:01Z\nx-acs-signature-nonce:3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf\n\
             x-acs-version:2017-08-01\n\n\
             host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version\n\
             e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            Algorithm::HmacSha256.hex_hash(cr.as_bytes()),
            "8180c23190a6838b1e65eb3a9c09a01d00a4680d1b3f13e2abac1d8233b7d08e"
        );
        let v = run(&headers, b"").unwrap();
        assert_eq!(v.scheme, Scheme::V3HmacSha256);
        assert_eq!(v.access_key_id, "testid");
        assert_eq!(v.nonce, "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf");
        assert_eq!(v.timestamp, now());
        assert_eq!(v.security_token, None);

        // Tampering anything signed is a mismatch carrying the server's StringToSign.
        let tampered = set(headers, "x-acs-action", Some("DeleteDBCluster"));
        let Err(AuthError::SignatureMismatch { string_to_sign }) = run(&tampered, b"") else {
            panic!()
        };
        assert!(string_to_sign.starts_with("ACS3-HMAC-SHA256\n"));
        assert_eq!(string_to_sign.len(), "ACS3-HMAC-SHA256\n".len() + 64);
    }

    #[test]
    fn empty_hashes() {
        assert_eq!(hex_lower(&Sha256::digest(b"")), EMPTY_SHA256);
        assert_eq!(Algorithm::HmacSha256.hex_hash(b""), EMPTY_SHA256);
        assert_eq!(Algorithm::RsaSha256.hex_hash(b""), EMPTY_SHA256);
        assert_eq!(Algorithm::HmacSm3.hex_hash(b""), EMPTY_SM3);
    }

    #[test]
    fn canonical_query_encodes_and_excludes_form() {
        let query = owned(&[("b", "x y*~/"), ("a", "")]);
        let form = owned(&[("c", "3")]);
        let req = Request {
            method: "POST",
            path: "/",
            query: &query,
            form: &form,
            headers: &[],
            body: b"c=3",
        };
        let cr = canonical_request(&req, "", "", "h");
        assert_eq!(cr, "POST\n/\na=&b=x%20y%2A~%2F\n\n\nh");
    }

    #[test]
    fn repeated_headers_are_sorted_and_joined() {
        let headers = owned(&[("X-B", " 2 "), ("x-a", "1"), ("x-b", "1"), ("x-c", "a\tb")]);
        let req = Request {
            method: "POST",
            path: "/",
            query: &[],
            form: &[],
            headers: &borrow_headers(&headers),
            body: b"",
        };
        assert_eq!(
            canonical_headers(&req, "x-a;x-b;x-c").unwrap(),
            "x-a:1\nx-b:1,2\nx-c:a\tb\n"
        );
        assert!(matches!(
            canonical_headers(&req, "x-a;x-d"),
            Err(AuthError::IncompleteSignature(_))
        ));
    }

    #[test]
    fn authorization_parsing_is_strict() {
        let value = auth("ACS3-HMAC-SM3", "host;x-a", "00ff");
        let ok = parse_authorization(&value).unwrap();
        assert_eq!(ok.algorithm, Algorithm::HmacSm3);
        assert_eq!(ok.access_key_id, "testid");
        assert_eq!(ok.signed_headers, "host;x-a");
        assert_eq!(ok.signature, vec![0, 255]);

        assert_eq!(
            parse_authorization("ACS3-HMAC-MD5 Credential=a,SignedHeaders=h,Signature=00"),
            Err(AuthError::InvalidSignatureMethod)
        );
        for bad in [
            "ACS3-HMAC-SHA256",
            "ACS3-HMAC-SHA256 ",
            "ACS3-HMAC-SHA256 Credential=testid",
            "ACS3-HMAC-SHA256 Credential=,SignedHeaders=host,Signature=00",
            "ACS3-HMAC-SHA256 Credential=a,SignedHeaders=,Signature=00",
            "ACS3-HMAC-SHA256 Credential=a,SignedHeaders=host,Signature=",
            "ACS3-HMAC-SHA256 Credential=a,SignedHeaders=host,Signature=zz",
            "ACS3-HMAC-SHA256 Credential=a,SignedHeaders=host,Signature=0",
            "ACS3-HMAC-SHA256 Credential=a, SignedHeaders=host,Signature=00",
            "ACS3-HMAC-SHA256 Credential=a,Signature=00,SignedHeaders=host",
            "ACS3-HMAC-SHA256 Credential=a,SignedHeaders=host,Signature=00,Extra=1",
            "ACS3-HMAC-SHA256 Credential=a,SignedHeaders=Host,Signature=00",
            "ACS3-HMAC-SHA256 Credential=a,SignedHeaders=x;host,Signature=00",
            "ACS3-HMAC-SHA256 Credential=a,SignedHeaders=host;host,Signature=00",
            "ACS3-HMAC-SHA256 Credential=a,SignedHeaders=host;;x,Signature=00",
            "ACS3-HMAC-SHA256  Credential=a,SignedHeaders=host,Signature=00",
        ] {
            assert!(
                matches!(
                    parse_authorization(bad),
                    Err(AuthError::IncompleteSignature(_))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn required_headers_must_be_signed_and_present() {
        let unsigned = SIGNED.replace("host;", "");
        let err = run(
            &example_headers(&auth("ACS3-HMAC-SHA256", &unsigned, EXAMPLE_SIG)),
            b"",
        )
        .unwrap_err();
        assert!(
            matches!(err, AuthError::IncompleteSignature(ref d) if d.contains("host")),
            "{err:?}"
        );

        let headers = set(
            example_headers(&auth("ACS3-HMAC-SHA256", SIGNED, EXAMPLE_SIG)),
            "host",
            None,
        );
        assert!(matches!(
            run(&headers, b""),
            Err(AuthError::IncompleteSignature(_))
        ));

        // A security token that is present must be signed.
        let headers = set(
            example_headers(&auth("ACS3-HMAC-SHA256", SIGNED, EXAMPLE_SIG)),
            SECURITY_TOKEN,
            Some("tok"),
        );
        assert!(matches!(
            run(&headers, b""),
            Err(AuthError::IncompleteSignature(_))
        ));

        let headers = set(
            example_headers(&auth("ACS3-HMAC-SHA256", SIGNED, EXAMPLE_SIG)),
            "x-acs-signature-nonce",
            Some(&"n".repeat(MAX_NONCE_LEN + 1)),
        );
        assert!(matches!(
            run(&headers, b""),
            Err(AuthError::IncompleteSignature(_))
        ));
        let mut headers = example_headers(&auth("ACS3-HMAC-SHA256", SIGNED, EXAMPLE_SIG));
        headers.push(("X-Acs-Date".into(), "2020-08-08T07:24:01Z".into()));
        assert!(matches!(
            run(&headers, b""),
            Err(AuthError::IncompleteSignature(_))
        ));
    }

    #[test]
    fn every_later_check_in_order() {
        let base = || example_headers(&auth("ACS3-HMAC-SHA256", SIGNED, EXAMPLE_SIG));
        assert_eq!(
            run(&set(base(), "x-acs-date", Some("2020-08-08T07:24:01")), b"").unwrap_err(),
            AuthError::TimestampFormat
        );
        assert_eq!(
            run(
                &set(base(), "x-acs-date", Some("2020-08-08T07:39:02Z")),
                b""
            )
            .unwrap_err(),
            AuthError::TimestampExpired
        );
        assert_eq!(
            run(
                &set(base(), "x-acs-date", Some("2020-08-08T07:09:00Z")),
                b""
            )
            .unwrap_err(),
            AuthError::TimestampExpired
        );
        let as_key = |ak: &str| {
            example_headers(&format!(
                "ACS3-HMAC-SHA256 Credential={ak},SignedHeaders={SIGNED},Signature={EXAMPLE_SIG}"
            ))
        };
        assert_eq!(
            run(&as_key("nobody"), b"").unwrap_err(),
            AuthError::KeyNotFound
        );
        let md5 = example_headers(&auth("ACS3-HMAC-MD5", SIGNED, EXAMPLE_SIG));
        assert_eq!(
            run(&md5, b"").unwrap_err(),
            AuthError::InvalidSignatureMethod
        );
        assert_eq!(
            run(&as_key("inactive"), b"").unwrap_err(),
            AuthError::KeyInactive
        );
        assert_eq!(
            run(&base(), b"x").unwrap_err(),
            AuthError::ContentHashMismatch
        );
        // Upper-case hex is not the lower-hex the SDKs send.
        assert_eq!(
            run(
                &set(
                    base(),
                    "x-acs-content-sha256",
                    Some(&EMPTY_SHA256.to_uppercase())
                ),
                b""
            )
            .unwrap_err(),
            AuthError::ContentHashMismatch
        );
        // SM3 requests must carry the SM3 hash under the same header name.
        let sm3 = example_headers(&auth("ACS3-HMAC-SM3", SIGNED, EXAMPLE_SIG));
        assert_eq!(run(&sm3, b"").unwrap_err(), AuthError::ContentHashMismatch);
        let sm3 = set(sm3, "x-acs-content-sha256", Some(EMPTY_SM3));
        assert!(
            matches!(run(&sm3, b""), Err(AuthError::SignatureMismatch { ref string_to_sign }) if string_to_sign.starts_with("ACS3-HMAC-SM3\n"))
        );
    }

    #[test]
    fn key_kind_must_fit_the_algorithm() {
        // A secret key used with ACS3-RSA-SHA256.
        let headers = example_headers(&auth("ACS3-RSA-SHA256", SIGNED, EXAMPLE_SIG));
        assert!(matches!(
            run(&headers, b""),
            Err(AuthError::SignatureMismatch { .. })
        ));
        // An RSA key used with HMAC.
        let headers = example_headers(&format!(
            "ACS3-HMAC-SHA256 Credential=rsa,SignedHeaders={SIGNED},Signature={EXAMPLE_SIG}"
        ));
        assert!(matches!(
            run(&headers, b""),
            Err(AuthError::SignatureMismatch { .. })
        ));
    }

    #[test]
    fn security_token_is_reported() {
        let signed = format!("{SIGNED};{SECURITY_TOKEN}").replace(
            "x-acs-date;x-acs-signature-nonce;x-acs-version;x-acs-security-token",
            "x-acs-date;x-acs-security-token;x-acs-signature-nonce;x-acs-version",
        );
        let headers = set(example_headers(""), SECURITY_TOKEN, Some("tok"));
        let query = example_query();
        let req = Request {
            method: "POST",
            path: "/",
            query: &query,
            form: &[],
            headers: &borrow_headers(&headers),
            body: b"",
        };
        let cr = canonical_request(
            &req,
            &canonical_headers(&req, &signed).unwrap(),
            &signed,
            EMPTY_SHA256,
        );
        let sts = format!(
            "ACS3-HMAC-SHA256\n{}",
            Algorithm::HmacSha256.hex_hash(cr.as_bytes())
        );
        let sig = hex::encode(hmac_sign::<Hmac<Sha256>>("testsecret", &sts));
        let headers = set(
            headers,
            "Authorization",
            Some(&auth("ACS3-HMAC-SHA256", &signed, &sig)),
        );
        let v = run(&headers, b"").unwrap();
        assert_eq!(v.security_token.as_deref(), Some("tok"));
    }
}
