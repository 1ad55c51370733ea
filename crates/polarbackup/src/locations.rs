//! Where the metadata and the backups live: the `metadata_url` and `repository_url` settings'
//! grammar (`sqlite://PATH` or `postgres://USER@HOST:PORT/DB?sslmode=…`; `file://PATH` or
//! `s3://BUCKET/PREFIX?…`), and a redaction that keeps passwords out of every message.

use polarbackup_model::TlsMode;
use polarbackup_repo::RepoUrl;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Why a flag may not hold a password, and where it goes instead.
pub const ARGV_PASSWORD: &str = "a password on the command line is visible to every user of \
    the machine (ps, /proc): give it in PGPASSWORD, in POLARBACKUP_METADATA_URL or in the \
    config file (mode 0600) instead";

/// libpq's default port.
const PG_PORT: u16 = 5432;
/// How long connecting to the metadata store may take (libpq's `connect_timeout`) by default.
const PG_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The `metadata_url` setting as given. It may hold a password (from the environment or the
/// config file), so it is kept as text whose `Debug` hides it, and is parsed only by
/// [`MetadataUrl::parse`], whose errors never quote the text.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct MetadataUrl(String);

/// The `repository_url` setting as given (parsed by [`RepositoryUrl::parse`] into the
/// repository crate's [`RepoUrl`]).
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct RepositoryUrl(String);

/// Where the metadata store is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Metadata {
    /// The database file; a relative path is in the data directory.
    Sqlite(PathBuf),
    Postgres(PgLocation),
}

/// A PostgreSQL metadata store, as its URL names it.
#[derive(Clone, PartialEq, Eq)]
pub struct PgLocation {
    pub host: String,
    pub port: u16,
    pub user: String,
    /// From the URL itself (never a flag's); `PGPASSWORD` or the config file otherwise.
    pub password: Option<String>,
    pub dbname: String,
    /// `sslmode`, libpq's names and meanings, as for clusters.
    pub tls_mode: TlsMode,
    /// `sslrootcert`, with `sslmode=verify-full`.
    pub tls_ca_file: Option<PathBuf>,
    /// `connect_timeout` in seconds.
    pub connect_timeout: Duration,
}

impl fmt::Debug for PgLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgLocation")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("dbname", &self.dbname)
            .field("tls_mode", &self.tls_mode)
            .field("tls_ca_file", &self.tls_ca_file)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

impl MetadataUrl {
    pub fn new(text: &str) -> Self {
        Self(text.to_owned())
    }

    /// The URL with any password replaced by `***`, for messages and logs.
    pub fn redacted(&self) -> String {
        redact(&self.0)
    }

    /// Whether the text carries a password (a flag may not; a config file that does must be
    /// private).
    pub fn has_password(&self) -> bool {
        redact(&self.0) != self.0
    }

    pub fn parse(&self) -> Result<Metadata, String> {
        let text = self.0.as_str();
        if let Some(path) = text.strip_prefix("sqlite://") {
            if path.is_empty() || path.contains(['?', '#']) {
                return Err(
                    "takes sqlite://PATH (a relative PATH is in the data directory)".into(),
                );
            }
            return Ok(Metadata::Sqlite(PathBuf::from(path)));
        }
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            return parse_postgres(text).map(Metadata::Postgres);
        }
        Err("must start with sqlite:// or postgres://".into())
    }
}

impl fmt::Debug for MetadataUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.redacted(), f)
    }
}

impl std::str::FromStr for MetadataUrl {
    type Err = std::convert::Infallible;

    /// Never fails: a parse error would quote the text (and so a password) in clap's message;
    /// the setting's check parses it instead.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self::new(s))
    }
}

impl RepositoryUrl {
    pub fn new(text: &str) -> Self {
        Self(text.to_owned())
    }

    pub fn redacted(&self) -> String {
        redact(&self.0)
    }

    /// The repository's URL, parsed by the repository crate (which refuses credentials in
    /// it too); errors never quote the text.
    pub fn parse(&self) -> Result<RepoUrl, String> {
        let text = self.0.as_str();
        if redact(text) != text {
            return Err(
                "must not hold credentials: they come from AWS_ACCESS_KEY_ID and \
                        AWS_SECRET_ACCESS_KEY or the config file"
                    .into(),
            );
        }
        if let Some(path) = text.strip_prefix("file://") {
            if path.is_empty() || path.contains(['?', '#']) {
                return Err("takes file://PATH (a relative PATH is in the data directory)".into());
            }
        }
        text.parse::<RepoUrl>().map_err(|e| match e {
            polarbackup_repo::RepoError::InvalidConfig(why) => why,
            other => other.to_string(),
        })
    }
}

impl fmt::Debug for RepositoryUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.redacted(), f)
    }
}

impl std::str::FromStr for RepositoryUrl {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self::new(s))
    }
}

/// `text` with the password of its user info (everything between the user's `:` and the last
/// `@` of the authority part, whatever it holds) and any `password=` parameter replaced by
/// `***`. Works on text that does not parse too, and errs towards hiding more.
pub fn redact(text: &str) -> String {
    let Some(start) = text.find("://").map(|i| i + 3) else {
        return redact_query(text);
    };
    let (head, rest) = text.split_at(start);
    let out = match rest.rfind('@') {
        Some(at) => match rest[..at].find(':') {
            Some(colon) => format!("{head}{}:***{}", &rest[..colon], &rest[at..]),
            None => text.to_owned(),
        },
        None => text.to_owned(),
    };
    redact_query(&out)
}

/// Replaces the value of every `password=` query parameter.
fn redact_query(text: &str) -> String {
    let Some(q) = text.find('?') else {
        return text.to_owned();
    };
    let params: Vec<String> = text[q + 1..]
        .split('&')
        .map(|p| match p.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
            _ => p.to_owned(),
        })
        .collect();
    format!("{}?{}", &text[..q], params.join("&"))
}

/// libpq's URI form: `postgres[ql]://USER[:PASSWORD]@HOST[:PORT]/DB[?sslmode=…&sslrootcert=…&
/// connect_timeout=…]`. Errors name the part that is wrong, never its value.
fn parse_postgres(text: &str) -> Result<PgLocation, String> {
    let url = url::Url::parse(text).map_err(|e| format!("is not a valid URL: {e}"))?;
    let decode = |part: &str, what: &str| {
        percent_decode(part).ok_or_else(|| format!("the {what} is not UTF-8 once decoded"))
    };
    let user = decode(url.username(), "user")?;
    if user.is_empty() {
        return Err("names no user: postgres://USER@HOST:PORT/DB".into());
    }
    let password = url.password().map(|p| decode(p, "password")).transpose()?;
    let host = match url.host() {
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        Some(host) => host.to_string(),
        None => return Err("names no host: postgres://USER@HOST:PORT/DB".into()),
    };
    let port = url.port().unwrap_or(PG_PORT);
    if port == 0 {
        return Err("port 0 is not a port".into());
    }
    let dbname = decode(url.path().trim_start_matches('/'), "database name")?;
    if dbname.is_empty() || dbname.contains('/') {
        return Err("must name one database: postgres://USER@HOST:PORT/DB".into());
    }
    if url.fragment().is_some() {
        return Err("must not have a #fragment".into());
    }
    let mut loc = PgLocation {
        host,
        port,
        user,
        password,
        dbname,
        tls_mode: TlsMode::Prefer,
        tls_ca_file: None,
        connect_timeout: PG_CONNECT_TIMEOUT,
    };
    let mut seen = Vec::new();
    for (key, value) in url.query_pairs() {
        if seen.contains(&key) {
            return Err(format!("gives {key} twice"));
        }
        match key.as_ref() {
            "sslmode" => loc.tls_mode = ssl_mode(&value)?,
            "sslrootcert" if !value.is_empty() => {
                loc.tls_ca_file = Some(PathBuf::from(value.as_ref()));
            }
            "connect_timeout" => {
                let secs: u64 = value
                    .parse()
                    .ok()
                    .filter(|s| (1..=300).contains(s))
                    .ok_or("connect_timeout must be whole seconds between 1 and 300")?;
                loc.connect_timeout = Duration::from_secs(secs);
            }
            "password" => {
                return Err(
                    "must hold the password as postgres://USER:PASSWORD@…, or leave it \
                            to PGPASSWORD or the config file"
                        .into(),
                );
            }
            other => {
                return Err(format!(
                    "has the parameter {other:?}; known: sslmode, sslrootcert, connect_timeout"
                ));
            }
        }
        seen.push(key);
    }
    if loc.tls_ca_file.is_some() && loc.tls_mode != TlsMode::VerifyFull {
        return Err("sslrootcert goes with sslmode=verify-full".into());
    }
    Ok(loc)
}

/// libpq's `sslmode` values that the store's client implements (as for clusters).
fn ssl_mode(value: &str) -> Result<TlsMode, String> {
    Ok(match value {
        "disable" => TlsMode::Disable,
        "prefer" => TlsMode::Prefer,
        "require" => TlsMode::Require,
        "verify-full" => TlsMode::VerifyFull,
        "allow" | "verify-ca" => {
            return Err(format!(
                "sslmode={value} is not supported; use disable, prefer, require or verify-full"
            ))
        }
        other => {
            return Err(format!(
                "sslmode={other:?} is not one of disable, prefer, require, verify-full"
            ))
        }
    })
}

fn percent_decode(part: &str) -> Option<String> {
    percent_encoding::percent_decode_str(part)
        .decode_utf8()
        .ok()
        .map(|s| s.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pg(text: &str) -> PgLocation {
        match MetadataUrl::new(text).parse() {
            Ok(Metadata::Postgres(p)) => p,
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn postgres_urls_parse_like_libpq_ones() {
        let p = pg("postgres://pb@db.example.com:6432/meta?sslmode=verify-full&sslrootcert=/etc/ca.pem&connect_timeout=3");
        assert_eq!(
            (p.host.as_str(), p.port, p.user.as_str(), p.dbname.as_str()),
            ("db.example.com", 6432, "pb", "meta")
        );
        assert_eq!(p.password, None);
        assert_eq!(p.tls_mode, TlsMode::VerifyFull);
        assert_eq!(p.tls_ca_file, Some(PathBuf::from("/etc/ca.pem")));
        assert_eq!(p.connect_timeout, Duration::from_secs(3));

        let p = pg("postgresql://app%40corp:s%3Acr%2Fet@[::1]/pb%20meta");
        assert_eq!(p.user, "app@corp");
        assert_eq!(p.password.as_deref(), Some("s:cr/et"));
        assert_eq!(p.host, "::1");
        assert_eq!(p.port, 5432);
        assert_eq!(p.dbname, "pb meta");
        assert_eq!(p.tls_mode, TlsMode::Prefer);
        assert!(!format!("{p:?}").contains("s:cr/et"), "{p:?}");
    }

    #[test]
    fn sqlite_and_file_urls_take_a_path() {
        assert_eq!(
            MetadataUrl::new("sqlite:///var/lib/pb/metadata.sqlite").parse(),
            Ok(Metadata::Sqlite(PathBuf::from(
                "/var/lib/pb/metadata.sqlite"
            )))
        );
        assert_eq!(
            MetadataUrl::new("sqlite://metadata.sqlite").parse(),
            Ok(Metadata::Sqlite(PathBuf::from("metadata.sqlite")))
        );
        assert_eq!(
            RepositoryUrl::new("file:///srv/backups").parse(),
            Ok(RepoUrl::File(PathBuf::from("/srv/backups")))
        );
    }

    #[test]
    fn s3_urls_parse_through_the_repository_crate() {
        assert_eq!(
            RepositoryUrl::new(
                "s3://pb-backups/site-a/prod?endpoint=https://s3.example.com&region=eu-1"
            )
            .parse(),
            Ok(RepoUrl::S3 {
                bucket: "pb-backups".into(),
                prefix: "site-a/prod".into(),
                endpoint: Some("https://s3.example.com".into()),
                region: "eu-1".into(),
            })
        );
        for text in [
            "s3://AKIA:hunter2@bucket/x",
            "s3://bucket/x?endpoint=http://AKIA:hunter2@s3.example.com",
            "s3://bucket/x?secret_access_key=hunter2",
            "s3://Bad_Bucket/x",
        ] {
            let url = RepositoryUrl::new(text);
            let err = url.parse().expect_err(text);
            assert!(!err.contains("hunter2"), "{text}: {err}");
        }
    }

    #[test]
    fn bad_urls_are_refused_without_quoting_a_password() {
        for text in [
            "postgres://pb:hunter2@db/meta?sslmode=verify-ca",
            "postgres://pb:hunter2@db:99999/meta",
            "postgres://pb:hunter2@db/",
            "postgres://:hunter2@db/meta",
            "postgres://pb:hunter2@db/meta?sslrootcert=/ca.pem",
            "postgres://pb:hunter2@db/meta?sslmode=require&sslmode=disable",
            "postgres://pb:hunter2@db/meta?application_name=x",
            "postgres://pb:hunter2@db/meta?connect_timeout=0",
            "postgres://pb:hun/ter#2@db/meta",
            "postgres://pb@db/meta?password=hunter2",
            "mysql://pb:hunter2@db/meta",
            "sqlite://",
        ] {
            let url = MetadataUrl::new(text);
            let err = url.parse().expect_err(text);
            for shown in [err.clone(), format!("{url:?}"), url.redacted()] {
                assert!(!shown.contains("hunter2"), "{text}: {shown}");
                assert!(!shown.contains("hun/ter"), "{text}: {shown}");
            }
        }
        for text in ["s3://AKIA:hunter2@bucket/x", "ftp://host/x", "file://"] {
            let url = RepositoryUrl::new(text);
            let err = url.parse().expect_err(text);
            assert!(!err.contains("hunter2") && !format!("{url:?}").contains("hunter2"));
        }
    }

    #[test]
    fn redaction_hides_the_password_and_keeps_the_rest() {
        assert_eq!(
            redact("postgres://pb:p@ss:w@rd@db:5432/meta?sslmode=require"),
            "postgres://pb:***@db:5432/meta?sslmode=require"
        );
        assert_eq!(redact("postgres://pb@db/meta"), "postgres://pb@db/meta");
        assert_eq!(
            redact("postgres://db/meta?password=x&sslmode=disable"),
            "postgres://db/meta?password=***&sslmode=disable"
        );
        assert!(MetadataUrl::new("postgres://pb:x@db/m").has_password());
        assert!(!MetadataUrl::new("postgres://pb@db/m").has_password());
    }
}
