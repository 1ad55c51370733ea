//! Signature V1 (RPC, HMAC-SHA1): parameters in the query and/or form body (PROTOCOL.md §2).

use base64::{engine::general_purpose::STANDARD, Engine as _};
use hmac::{Hmac, Mac};
use jiff::Timestamp;
use sha1::Sha1;

use crate::{
    compare, encode, time, AuthError, KeyLookup, KeyMaterial, Request, Scheme, Verified,
    MAX_NONCE_LEN,
};

/// The name of the parameter that carries the signature (excluded from signing).
const SIGNATURE: &str = "Signature";

/// The parameters that say who signed, how and when: each may appear once.
const SIGNING: &[&str] = &[
    "AccessKeyId",
    SIGNATURE,
    "SignatureMethod",
    "SignatureVersion",
    "SignatureNonce",
    "SignatureType",
    "Timestamp",
    "SecurityToken",
];

pub(crate) fn verify(
    req: &Request<'_>,
    now: Timestamp,
    keys: &dyn KeyLookup,
) -> Result<Verified, AuthError> {
    // Old Python puts business params in the body, pop-core puts everything
    // there: the signed set is query ∪ form.
    let params: Vec<(&str, &str)> = req
        .query
        .iter()
        .chain(req.form)
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let first = |name: &str| params.iter().find(|(k, _)| *k == name).map(|&(_, v)| v);
    let required = |name: &'static str| {
        first(name)
            .filter(|v| !v.is_empty())
            .ok_or(AuthError::MissingParameter(name))
    };

    // With a signing parameter given twice, the verifier and whatever reads the request later
    // could each take a different one: refuse rather than pick.
    if let Some(name) = SIGNING
        .iter()
        .find(|&&name| params.iter().filter(|(k, _)| *k == name).count() > 1)
    {
        return Err(AuthError::IncompleteSignature(format!(
            "{name} is given more than once"
        )));
    }
    let access_key_id = required("AccessKeyId")?;
    let signature = required(SIGNATURE)?;
    let timestamp = required("Timestamp")?;
    let nonce = required("SignatureNonce")?;
    let method = required("SignatureMethod")?;
    if method != "HMAC-SHA1" {
        return Err(AuthError::InvalidSignatureMethod);
    }
    if required("SignatureVersion")? != "1.0" {
        return Err(AuthError::InvalidSignatureVersion);
    }
    if nonce.len() > MAX_NONCE_LEN {
        return Err(AuthError::IncompleteSignature(format!(
            "SignatureNonce is longer than {MAX_NONCE_LEN} bytes"
        )));
    }

    let timestamp = time::parse(timestamp)?;
    time::check_skew(timestamp, now)?;

    let record = keys.lookup(access_key_id).ok_or(AuthError::KeyNotFound)?;
    if !record.active {
        return Err(AuthError::KeyInactive);
    }

    let string_to_sign = string_to_sign(req.method, &params);
    let matches = match &record.material {
        KeyMaterial::Secret(secret) => {
            let expected = sign(secret, &string_to_sign);
            // An undecodable signature is simply a wrong one.
            let given = STANDARD.decode(signature).unwrap_or_default();
            compare::equal(&expected, &given)
        }
        // RSA keys exist only for ACS3-RSA-SHA256; they cannot produce V1 signatures.
        KeyMaterial::RsaPublicKeyPem(_) => false,
    };
    if !matches {
        return Err(AuthError::SignatureMismatch { string_to_sign });
    }

    Ok(Verified {
        access_key_id: access_key_id.to_owned(),
        nonce: nonce.to_owned(),
        timestamp,
        security_token: first("SecurityToken")
            .filter(|t| !t.is_empty())
            .map(str::to_owned),
        scheme: Scheme::V1HmacSha1,
    })
}

/// `METHOD&%2F&percentEncode(canonical query)`, the canonical query being every
/// parameter except `Signature`, empty values included.
pub(crate) fn string_to_sign(method: &str, params: &[(&str, &str)]) -> String {
    let canonical =
        encode::canonical_query(params.iter().copied().filter(|(k, _)| *k != SIGNATURE));
    format!(
        "{method}&{}&{}",
        encode::percent_encode("/"),
        encode::percent_encode(&canonical)
    )
}

/// HMAC-SHA1 keyed with `secret + "&"` (the `&` is where a token secret would go).
fn sign(secret: &str, string_to_sign: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha1>::new_from_slice(format!("{secret}&").as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(string_to_sign.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{owned, Keys};

    const EXAMPLE_STS: &str = "GET&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeBackupTasks%26BackupMode%3DManual%26DBClusterId%3Dpc-abc123%26Format%3DJSON%26RegionId%3Dcn-hangzhou%26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3D3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf%26SignatureVersion%3D1.0%26Timestamp%3D2020-08-08T07%253A24%253A01Z%26Version%3D2017-08-01";
    const EXAMPLE_SIG: &str = "jzIOoGhJGhcEnRlMRnbt2Wh9bWI=";

    /// Worked example 1 of PROTOCOL.md, with `Signature` appended.
    fn example_params(signature: &str) -> Vec<(String, String)> {
        owned(&[
            ("Action", "DescribeBackupTasks"),
            ("Version", "2017-08-01"),
            ("Format", "JSON"),
            ("AccessKeyId", "testid"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureVersion", "1.0"),
            ("SignatureNonce", "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf"),
            ("Timestamp", "2020-08-08T07:24:01Z"),
            ("RegionId", "cn-hangzhou"),
            ("DBClusterId", "pc-abc123"),
            ("BackupMode", "Manual"),
            ("Signature", signature),
        ])
    }

    fn now() -> Timestamp {
        "2020-08-08T07:24:01Z".parse().unwrap()
    }

    fn run(
        method: &str,
        query: &[(String, String)],
        form: &[(String, String)],
    ) -> Result<Verified, AuthError> {
        let req = Request {
            method,
            path: "/",
            query,
            form,
            headers: &[],
            body: b"",
        };
        crate::verify(&req, now(), &Keys)
    }

    #[test]
    fn worked_example_1() {
        let params = example_params(EXAMPLE_SIG);
        let pairs: Vec<(&str, &str)> = params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let sts = string_to_sign("GET", &pairs);
        assert_eq!(sts, EXAMPLE_STS);
        assert_eq!(STANDARD.encode(sign("testsecret", &sts)), EXAMPLE_SIG);

        let v = run("GET", &params, &[]).unwrap();
        assert_eq!(v.access_key_id, "testid");
        assert_eq!(v.nonce, "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf");
        assert_eq!(v.timestamp, now());
        assert_eq!(v.security_token, None);
        assert_eq!(v.scheme, Scheme::V1HmacSha1);
    }

    #[test]
    fn a_signing_parameter_given_twice_is_refused() {
        // The correct signature first, a wrong one after, in the query or in the form.
        let mut query = example_params(EXAMPLE_SIG);
        query.push(("Signature".into(), "AAAA".into()));
        assert_eq!(
            run("GET", &query, &[]).unwrap_err(),
            AuthError::IncompleteSignature("Signature is given more than once".into())
        );
        let form = owned(&[("Signature", EXAMPLE_SIG)]);
        assert!(matches!(
            run("GET", &example_params(EXAMPLE_SIG), &form),
            Err(AuthError::IncompleteSignature(m)) if m.contains("Signature")
        ));
        for name in SIGNING {
            let mut params = example_params(EXAMPLE_SIG);
            let value = params
                .iter()
                .find(|(k, _)| k == name)
                .map_or_else(String::new, |(_, v)| v.clone());
            params.push(((*name).into(), value.clone()));
            params.push(((*name).into(), value));
            assert_eq!(
                run("GET", &params, &[]).unwrap_err(),
                AuthError::IncompleteSignature(format!("{name} is given more than once")),
                "{name}"
            );
        }
        // A business parameter may repeat: it is signed, and the first one is used.
        let mut params = example_params(EXAMPLE_SIG);
        params.push(("BackupMode".into(), "Automated".into()));
        assert!(matches!(
            run("GET", &params, &[]),
            Err(AuthError::SignatureMismatch { .. })
        ));
    }

    #[test]
    fn params_may_be_split_between_query_and_form() {
        let params = example_params(EXAMPLE_SIG);
        let (query, form) = params.split_at(5);
        assert!(run("GET", query, form).is_ok());
        assert!(run("GET", &[], &params).is_ok());
    }

    #[test]
    fn method_is_signed() {
        let err = run("POST", &example_params(EXAMPLE_SIG), &[]).unwrap_err();
        assert_eq!(
            err,
            AuthError::SignatureMismatch {
                string_to_sign: EXAMPLE_STS.replacen("GET", "POST", 1)
            }
        );
    }

    #[test]
    fn empty_values_are_signed() {
        let mut params = example_params(EXAMPLE_SIG);
        params.push(("SignatureType".into(), String::new()));
        let err = run("GET", &params, &[]).unwrap_err();
        let AuthError::SignatureMismatch { string_to_sign } = err else {
            panic!("{err:?}")
        };
        assert!(
            string_to_sign.contains("%26SignatureType%3D%26"),
            "{string_to_sign}"
        );
    }

    #[test]
    fn missing_or_empty_parameters() {
        for name in [
            "AccessKeyId",
            "Signature",
            "Timestamp",
            "SignatureNonce",
            "SignatureMethod",
            "SignatureVersion",
        ] {
            let mut params = example_params(EXAMPLE_SIG);
            params.retain(|(k, _)| k != name);
            assert_eq!(
                run("GET", &params, &[]).unwrap_err(),
                AuthError::MissingParameter(name)
            );
            params.push((name.into(), String::new()));
            assert_eq!(
                run("GET", &params, &[]).unwrap_err(),
                AuthError::MissingParameter(name)
            );
        }
    }

    fn with(key: &str, value: &str) -> Vec<(String, String)> {
        let mut params = example_params(EXAMPLE_SIG);
        params.retain(|(k, _)| k != key);
        params.push((key.into(), value.into()));
        params
    }

    #[test]
    fn method_version_format_and_nonce_checks() {
        assert_eq!(
            run("GET", &with("SignatureMethod", "HMAC-SHA256"), &[]).unwrap_err(),
            AuthError::InvalidSignatureMethod
        );
        assert_eq!(
            run("GET", &with("SignatureVersion", "2.0"), &[]).unwrap_err(),
            AuthError::InvalidSignatureVersion
        );
        // SignatureVersion is required like the others (the gateway's MissingSignatureVersion).
        let mut params = example_params(EXAMPLE_SIG);
        params.retain(|(k, _)| k != "SignatureVersion");
        assert_eq!(
            run("GET", &params, &[]).unwrap_err(),
            AuthError::MissingParameter("SignatureVersion")
        );
        assert_eq!(
            run("GET", &with("Timestamp", "2020-08-08 07:24:01"), &[]).unwrap_err(),
            AuthError::TimestampFormat
        );
        assert!(matches!(
            run(
                "GET",
                &with("SignatureNonce", &"n".repeat(MAX_NONCE_LEN + 1)),
                &[]
            ),
            Err(AuthError::IncompleteSignature(_))
        ));
    }

    #[test]
    fn skew_and_keys() {
        assert_eq!(
            run("GET", &with("Timestamp", "2020-08-08T07:39:02Z"), &[]).unwrap_err(),
            AuthError::TimestampExpired
        );
        assert_eq!(
            run("GET", &with("Timestamp", "2020-08-08T07:09:00Z"), &[]).unwrap_err(),
            AuthError::TimestampExpired
        );
        assert_eq!(
            run("GET", &with("AccessKeyId", "nobody"), &[]).unwrap_err(),
            AuthError::KeyNotFound
        );
        assert_eq!(
            run("GET", &with("AccessKeyId", "inactive"), &[]).unwrap_err(),
            AuthError::KeyInactive
        );
        // An RSA key cannot sign V1.
        assert!(matches!(
            run("GET", &with("AccessKeyId", "rsa"), &[]),
            Err(AuthError::SignatureMismatch { .. })
        ));
        // Undecodable base64 is a mismatch, not a panic.
        assert!(matches!(
            run("GET", &with("Signature", "!!!"), &[]),
            Err(AuthError::SignatureMismatch { .. })
        ));
    }

    #[test]
    fn security_token_is_reported() {
        let params = with("SecurityToken", "tok");
        let pairs: Vec<(&str, &str)> = params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let sig = STANDARD.encode(sign("testsecret", &string_to_sign("GET", &pairs)));
        let params: Vec<_> = params
            .into_iter()
            .map(|(k, v)| {
                if k == "Signature" {
                    (k, sig.clone())
                } else {
                    (k, v)
                }
            })
            .collect();
        assert_eq!(
            run("GET", &params, &[]).unwrap().security_token.as_deref(),
            Some("tok")
        );
    }
}
