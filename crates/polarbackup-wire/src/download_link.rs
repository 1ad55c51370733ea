//! Download links of archived WAL (`DownloadLink` in DescribeBackupLogs and
//! DescribeBackupLogDownloadLinks): `http://<host>/backup-logs/<BackupLogId>?Expires=<unix
//! seconds>&Signature=<hex>`, served by polarbackup itself. The signature (HMAC-SHA256 under
//! the server's link secret, computed by `auth`) covers the id and the expiry, not the host,
//! so a link works under any name the server answers to.

use crate::{format_time, ApiError, Params};
use jiff::Timestamp;
use polarbackup_model::BackupLogId;
use std::fmt;

/// Where the links point, under the host the client called.
pub const PATH_PREFIX: &str = "/backup-logs/";

/// What the link secret signs: a purpose tag (so the secret signs nothing else that could be
/// confused with a link), the id and the expiry.
pub fn string_to_sign(id: BackupLogId, expires: i64) -> String {
    format!("polarbackup-backup-log-link-v1\n{id}\n{expires}")
}

/// The authority of a link: the `Host` header of the call that asked for it, checked to be a
/// DNS name, an IPv4 address or a bracketed IPv6 address, with an optional port. Nothing else
/// (no user info, path, query or spaces) can reach the URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host(String);

impl Host {
    pub fn parse(header: &str) -> Option<Host> {
        let (name, port) = if let Some(rest) = header.strip_prefix('[') {
            let (addr, after) = rest.split_once(']')?;
            addr.parse::<std::net::Ipv6Addr>().ok()?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':')?),
            };
            (None, port)
        } else {
            match header.rsplit_once(':') {
                Some((name, port)) => (Some(name), Some(port)),
                None => (Some(header), None),
            }
        };
        if let Some(name) = name {
            let labels_ok = name.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
            if name.is_empty() || name.len() > 253 || !labels_ok {
                return None;
            }
        }
        if let Some(port) = port {
            let digits =
                !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit());
            if !digits || port.parse::<u16>().is_err() {
                return None;
            }
        }
        Some(Host(header.to_owned()))
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A signed link and when it stops working.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub url: String,
    pub expires: Timestamp,
}

impl Link {
    /// `signature` is the hex HMAC of [`string_to_sign`]`(id, expires)`.
    pub fn new(host: &Host, id: BackupLogId, expires: Timestamp, signature: &str) -> Link {
        Link {
            url: format!(
                "http://{host}{PATH_PREFIX}{id}?Expires={}&Signature={signature}",
                expires.as_second()
            ),
            expires,
        }
    }

    /// `LinkExpiredTime`.
    pub fn expired_time(&self) -> String {
        format_time(self.expires)
    }
}

/// A download as the link carries it, before its signature is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadRequest {
    pub id: BackupLogId,
    /// Unix seconds.
    pub expires: i64,
    /// Lower-case hex, 64 digits.
    pub signature: String,
}

impl DownloadRequest {
    /// `id` is the path segment after [`PATH_PREFIX`]. Anything that is not a link's shape
    /// is refused as a bad signature, like a link that is not ours.
    pub fn parse(id: &str, query: &str) -> Result<Self, ApiError> {
        let bad = ApiError::LinkSignatureMismatch;
        let id = BackupLogId::parse(id).ok_or(bad.clone())?;
        let p = Params::decode(query, None);
        let expires = p
            .get("Expires")
            .filter(|s| !s.is_empty() && s.len() <= 18 && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse::<i64>().ok())
            .ok_or(bad.clone())?;
        let signature = p
            .get("Signature")
            .filter(|s| {
                s.len() == 64
                    && s.bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            })
            .ok_or(bad)?
            .to_owned();
        Ok(Self {
            id,
            expires,
            signature,
        })
    }

    /// Whether the link has run out at `now` (it works up to and including its second).
    pub fn expired(&self, now: Timestamp) -> bool {
        now.as_second() > self.expires
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        for ok in [
            "127.0.0.1:8080",
            "localhost",
            "backup.example.com:443",
            "[::1]:9000",
            "[::1]",
            "polardb.aliyuncs.com",
        ] {
            assert_eq!(Host::parse(ok).map(|h| h.to_string()), Some(ok.to_owned()));
        }
        for bad in [
            "",
            ":80",
            "a:",
            "a:99999",
            "a:+80",
            "user@host",
            "host/path",
            "host?x",
            "ho st",
            "a..b",
            "[::1",
            "[nope]:1",
            "[::1]x",
            "host:80:80",
            "évil.com",
            "a\r\nb",
        ] {
            assert_eq!(Host::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn links_round_trip_through_the_download_request() {
        let host = Host::parse("127.0.0.1:8080").expect("host");
        let expires = Timestamp::from_second(1_800_000_000).expect("t");
        let sig = "ab".repeat(32);
        let link = Link::new(&host, BackupLogId(42), expires, &sig);
        assert_eq!(
            link.url,
            format!("http://127.0.0.1:8080/backup-logs/42?Expires=1800000000&Signature={sig}")
        );
        assert_eq!(link.expired_time(), "2027-01-15T08:00:00Z");
        let (path, query) = link.url["http://127.0.0.1:8080".len()..]
            .split_once('?')
            .expect("query");
        let id = path.strip_prefix(PATH_PREFIX).expect("prefix");
        let req = DownloadRequest::parse(id, query).expect("parse");
        assert_eq!(
            req,
            DownloadRequest {
                id: BackupLogId(42),
                expires: 1_800_000_000,
                signature: sig.clone()
            }
        );
        assert!(!req.expired(expires));
        assert!(req.expired(Timestamp::from_second(1_800_000_001).expect("t")));
        assert_eq!(
            string_to_sign(req.id, req.expires),
            "polarbackup-backup-log-link-v1\n42\n1800000000"
        );
    }

    #[test]
    fn malformed_downloads_are_refused_like_bad_signatures() {
        let sig = "0".repeat(64);
        for (id, query) in [
            ("x", format!("Expires=1&Signature={sig}")),
            ("0", format!("Expires=1&Signature={sig}")),
            ("1", format!("Signature={sig}")),
            ("1", format!("Expires=-1&Signature={sig}")),
            ("1", format!("Expires=9999999999999999999&Signature={sig}")),
            ("1", "Expires=1".to_owned()),
            ("1", format!("Expires=1&Signature={}", "A".repeat(64))),
            ("1", format!("Expires=1&Signature={}", "0".repeat(63))),
        ] {
            assert_eq!(
                DownloadRequest::parse(id, &query),
                Err(ApiError::LinkSignatureMismatch),
                "{id} {query}"
            );
        }
    }
}
