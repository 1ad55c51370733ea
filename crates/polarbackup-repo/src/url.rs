//! `RepoUrl`: where a repository lives, as one string (`file://PATH` or
//! `s3://BUCKET[/PREFIX]?endpoint=URL&region=R`), and `S3Credentials`, which never go into it.
//!
//! Errors quote the scheme or a query key, never a value or the whole URL: a URL with a key in
//! it is refused, and the refusal must not put the key into a log.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::RepoError;

/// The region an `s3://` URL gets when it names none (what S3-compatible servers expect).
pub const DEFAULT_REGION: &str = "us-east-1";

/// Where a repository lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepoUrl {
    /// A local directory (`file://PATH`; PATH is taken as written, relative or absolute).
    File(PathBuf),
    /// A bucket on S3 or an S3-compatible server. `prefix` has no leading or trailing `/`
    /// (empty: the bucket's root). `endpoint` is `http(s)://HOST[:PORT]`; without one, AWS
    /// for the region.
    S3 {
        bucket: String,
        prefix: String,
        endpoint: Option<String>,
        region: String,
    },
}

/// The key pair for an `s3://` repository. Never part of the URL, never printed: `Debug`
/// shows the access key id only.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl S3Credentials {
    pub fn new(access_key_id: impl Into<String>, secret_access_key: impl Into<String>) -> Self {
        S3Credentials {
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
        }
    }
}

impl fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

fn invalid(reason: impl fmt::Display) -> RepoError {
    RepoError::InvalidConfig(format!("repository URL: {reason}"))
}

const CREDENTIALS_REFUSED: &str =
    "credentials are refused in the URL (it is logged and shown); pass them separately";

impl FromStr for RepoUrl {
    type Err = RepoError;

    fn from_str(s: &str) -> Result<RepoUrl, RepoError> {
        let Some((scheme, rest)) = s.split_once("://") else {
            return Err(invalid(
                "expected file://PATH or s3://BUCKET[/PREFIX]?endpoint=URL&region=R",
            ));
        };
        match scheme {
            "file" if rest.is_empty() => Err(invalid("file:// needs a path")),
            "file" => Ok(RepoUrl::File(PathBuf::from(rest))),
            "s3" => parse_s3(rest),
            other if other.len() <= 10 && other.bytes().all(|b| b.is_ascii_lowercase()) => Err(
                invalid(format!("unknown scheme {other:?} (expected file or s3)")),
            ),
            _ => Err(invalid("unknown scheme (expected file or s3)")),
        }
    }
}

fn parse_s3(rest: &str) -> Result<RepoUrl, RepoError> {
    if rest.contains('#') {
        return Err(invalid("an s3:// URL has no fragment (#)"));
    }
    let (location, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (bucket, prefix) = location.split_once('/').unwrap_or((location, ""));
    if bucket.contains('@') {
        return Err(invalid(CREDENTIALS_REFUSED));
    }
    check_bucket(bucket)?;
    let prefix = prefix.trim_end_matches('/');
    if !prefix.is_empty() {
        for part in prefix.split('/') {
            check_prefix_part(part)?;
        }
    }
    let (mut endpoint, mut region) = (None, None);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| invalid("each query part must be KEY=VALUE"))?;
        let slot = match key {
            "endpoint" => &mut endpoint,
            "region" => &mut region,
            _ if looks_like_a_secret(key) => return Err(invalid(CREDENTIALS_REFUSED)),
            _ if is_plain_word(key) => {
                return Err(invalid(format!(
                    "unknown query key {key:?} (expected endpoint, region)"
                )))
            }
            _ => return Err(invalid("unknown query key (expected endpoint, region)")),
        };
        if slot.is_some() {
            return Err(invalid(format!("query key {key:?} is given twice")));
        }
        *slot = Some(percent_decode(value).ok_or_else(|| {
            invalid(format!(
                "the value of {key:?} is not valid percent-encoded UTF-8"
            ))
        })?);
    }
    let endpoint = endpoint.map(|e| check_endpoint(&e)).transpose()?;
    let region = region.unwrap_or_else(|| DEFAULT_REGION.to_owned());
    if region.is_empty()
        || region.len() > 32
        || !region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(invalid(
            "region must be 1 to 32 lower-case letters, digits and '-'",
        ));
    }
    Ok(RepoUrl::S3 {
        bucket: bucket.to_owned(),
        prefix: prefix.to_owned(),
        endpoint,
        region,
    })
}

/// A short lower-case word, safe to quote back (an odd key could be a pasted secret).
fn is_plain_word(key: &str) -> bool {
    key.len() <= 20
        && key.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.')
        })
}

fn looks_like_a_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    [
        "key",
        "secret",
        "token",
        "password",
        "credential",
        "signature",
    ]
    .iter()
    .any(|w| key.contains(w))
}

/// S3's bucket naming rules (3 to 63 of `a-z 0-9 . -`, a letter or digit at both ends).
fn check_bucket(bucket: &str) -> Result<(), RepoError> {
    if bucket.is_empty() {
        return Err(invalid("s3:// needs a bucket (s3://BUCKET[/PREFIX])"));
    }
    let ok_chars = bucket
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
    let ok_ends = [bucket.as_bytes()[0], bucket.as_bytes()[bucket.len() - 1]]
        .iter()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if !(3..=63).contains(&bucket.len()) || !ok_chars || !ok_ends || bucket.contains("..") {
        return Err(invalid(format!(
            "bucket {bucket:?} is not a valid name: 3 to 63 lower-case letters, digits, \
             '.' and '-', starting and ending with a letter or digit"
        )));
    }
    Ok(())
}

/// A key prefix is `/`-separated names, each as portable as the repository's own names.
fn check_prefix_part(part: &str) -> Result<(), RepoError> {
    let ok = !part.is_empty()
        && part != "."
        && part != ".."
        && part
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "the prefix must be '/'-separated names of ASCII letters, digits, '.', '_' and '-' \
             (no empty, '.' or '..' parts)",
        ))
    }
}

/// `http(s)://HOST[:PORT]` with nothing else (a trailing `/` is dropped).
fn check_endpoint(endpoint: &str) -> Result<String, RepoError> {
    let endpoint = endpoint.trim_end_matches('/');
    let Some((scheme, host)) = endpoint.split_once("://") else {
        return Err(invalid(
            "endpoint must be http://HOST[:PORT] or https://HOST[:PORT]",
        ));
    };
    if host.contains('@') {
        return Err(invalid(CREDENTIALS_REFUSED));
    }
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
    if !matches!(scheme, "http" | "https") || !host_ok {
        return Err(invalid(
            "endpoint must be http://HOST[:PORT] or https://HOST[:PORT], with no path or query",
        ));
    }
    Ok(endpoint.to_owned())
}

/// `%XX` decoding only (a `+` stays a `+`); `None` for a bad escape or non-UTF-8 bytes.
fn percent_decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hi = (bytes.next()? as char).to_digit(16)?;
            let lo = (bytes.next()? as char).to_digit(16)?;
            out.push((hi * 16 + lo) as u8);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).ok()
}

/// Escapes what would change how a query value parses; the rest stays readable.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_graphic() && !matches!(b, b'%' | b'&' | b'=' | b'#' | b'+' | b'?') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl fmt::Display for RepoUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RepoUrl::File(path) => write!(f, "file://{}", path.display()),
            RepoUrl::S3 {
                bucket,
                prefix,
                endpoint,
                region,
            } => {
                write!(f, "s3://{bucket}")?;
                if !prefix.is_empty() {
                    write!(f, "/{prefix}")?;
                }
                f.write_str("?")?;
                if let Some(endpoint) = endpoint {
                    write!(f, "endpoint={}&", percent_encode(endpoint))?;
                }
                write!(f, "region={}", percent_encode(region))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s3(bucket: &str, prefix: &str, endpoint: Option<&str>, region: &str) -> RepoUrl {
        RepoUrl::S3 {
            bucket: bucket.into(),
            prefix: prefix.into(),
            endpoint: endpoint.map(Into::into),
            region: region.into(),
        }
    }

    fn err(url: &str) -> String {
        match url.parse::<RepoUrl>() {
            Err(RepoError::InvalidConfig(msg)) => msg,
            other => panic!("{url}: expected InvalidConfig, got {other:?}"),
        }
    }

    #[test]
    fn parses_and_prints_both_schemes() {
        for (text, url, canonical) in [
            (
                "file:///var/lib/backups",
                RepoUrl::File("/var/lib/backups".into()),
                "file:///var/lib/backups",
            ),
            (
                "file://relative/dir",
                RepoUrl::File("relative/dir".into()),
                "file://relative/dir",
            ),
            (
                "s3://bucket",
                s3("bucket", "", None, "us-east-1"),
                "s3://bucket?region=us-east-1",
            ),
            (
                "s3://my.bucket-1/a/b_c/?region=eu-west-1",
                s3("my.bucket-1", "a/b_c", None, "eu-west-1"),
                "s3://my.bucket-1/a/b_c?region=eu-west-1",
            ),
            (
                "s3://b12/p?endpoint=http://127.0.0.1:8333/&region=us-east-1",
                s3("b12", "p", Some("http://127.0.0.1:8333"), "us-east-1"),
                "s3://b12/p?endpoint=http://127.0.0.1:8333&region=us-east-1",
            ),
            (
                "s3://b12?region=r1&endpoint=https%3A%2F%2Fs3.example.com",
                s3("b12", "", Some("https://s3.example.com"), "r1"),
                "s3://b12?endpoint=https://s3.example.com&region=r1",
            ),
            (
                "s3://b12?endpoint=http://[::1]:9000",
                s3("b12", "", Some("http://[::1]:9000"), "us-east-1"),
                "s3://b12?endpoint=http://[::1]:9000&region=us-east-1",
            ),
        ] {
            let parsed: RepoUrl = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(parsed, url, "{text}");
            assert_eq!(parsed.to_string(), canonical, "{text}");
            assert_eq!(canonical.parse::<RepoUrl>().unwrap(), url, "{canonical}");
        }
    }

    #[test]
    fn refuses_what_it_cannot_use_with_a_clear_reason() {
        for (text, says) in [
            ("/var/lib/backups", "expected file://PATH or s3://"),
            ("ftp://host/x", "unknown scheme \"ftp\""),
            ("file://", "needs a path"),
            ("s3://", "needs a bucket"),
            ("s3:///prefix", "needs a bucket"),
            ("s3://Upper", "is not a valid name"),
            ("s3://ab", "is not a valid name"),
            ("s3://-ab", "is not a valid name"),
            ("s3://a..b", "is not a valid name"),
            ("s3://host:9000/x", "is not a valid name"),
            ("s3://bucket/a//b", "prefix"),
            ("s3://bucket/../b", "prefix"),
            ("s3://bucket/a b", "prefix"),
            ("s3://bucket?foo=1", "unknown query key \"foo\""),
            ("s3://bucket?region", "KEY=VALUE"),
            ("s3://bucket?region=a&region=b", "given twice"),
            ("s3://bucket?region=EU", "region must be"),
            ("s3://bucket?region=", "region must be"),
            ("s3://bucket?endpoint=ftp://x", "endpoint must be"),
            ("s3://bucket?endpoint=http://", "endpoint must be"),
            ("s3://bucket?endpoint=http://h/path", "endpoint must be"),
            ("s3://bucket?endpoint=http://h?x=1", "endpoint must be"),
            ("s3://bucket?endpoint=%zz", "not valid percent-encoded"),
            ("s3://bucket#frag", "fragment"),
        ] {
            let msg = err(text);
            assert!(msg.contains(says), "{text}: {msg}");
            assert!(msg.starts_with("repository URL: "), "{text}: {msg}");
        }
    }

    #[test]
    fn credentials_in_the_url_are_refused_without_echoing_them() {
        for text in [
            "s3://AKIAEXAMPLE:hunter2secret@bucket/x",
            "s3://bucket?endpoint=http://AKIAEXAMPLE:hunter2secret@127.0.0.1:9000",
            "s3://bucket?secret_access_key=hunter2secret",
            "s3://bucket?access_key_id=AKIAEXAMPLE&region=r",
            "s3://bucket?X-Amz-Signature=hunter2secret",
            "s3://bucket?session_token=hunter2secret",
        ] {
            let msg = err(text);
            assert!(msg.contains("credentials are refused"), "{text}: {msg}");
            assert!(
                !msg.contains("hunter2secret") && !msg.contains("AKIAEXAMPLE"),
                "{msg}"
            );
        }
        // Whatever else is wrong, an error never quotes a value or an odd scheme.
        for text in ["hunter2secret://x", "s3://bucket?x%3Dhunter2secret=1"] {
            assert!(!err(text).contains("hunter2secret"), "{text}");
        }
    }

    #[test]
    fn credentials_debug_hides_the_secret() {
        let c = S3Credentials::new("AKIAEXAMPLE", "hunter2secret");
        let shown = format!("{c:?}");
        assert!(shown.contains("AKIAEXAMPLE"), "{shown}");
        assert!(!shown.contains("hunter2secret"), "{shown}");
    }
}
