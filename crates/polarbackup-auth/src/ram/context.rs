//! The request context: condition key → values, filled in by the caller (this crate reads no clock or socket).
//!
//! Keys are looked up ignoring ASCII case, as AWS does for condition keys; a
//! policy that writes `acs:sourceip` should not silently never match.
//! Whatever goes in here may be echoed in an `EncodedDiagnosticMessage`, so
//! never put a secret in a context.

use std::collections::BTreeMap;
use std::net::IpAddr;

/// The client's IP address (after any trusted proxy), e.g. `203.0.113.7`.
pub const KEY_SOURCE_IP: &str = "acs:SourceIp";
/// When the request was received, ISO 8601 UTC.
pub const KEY_CURRENT_TIME: &str = "acs:CurrentTime";
/// `true` when the request came over HTTPS.
pub const KEY_SECURE_TRANSPORT: &str = "acs:SecureTransport";
/// The AccessKey ID that signed the request.
pub const KEY_ACCESS_ID: &str = "acs:AccessId";
/// The HTTP `User-Agent`.
pub const KEY_USER_AGENT: &str = "acs:UserAgent";

/// The keys the server fills for every request (`acs:SourceIp` and `acs:UserAgent` when the
/// request has them). A condition on any other key could never be true, so a Deny on it would
/// never fire: policy validation refuses them.
pub const SUPPORTED_KEYS: &[&str] = &[
    KEY_ACCESS_ID,
    KEY_CURRENT_TIME,
    KEY_SECURE_TRANSPORT,
    KEY_SOURCE_IP,
    KEY_USER_AGENT,
];

/// Whether `key` is one of [`SUPPORTED_KEYS`] (ignoring ASCII case, as lookups do).
pub fn is_supported_key(key: &str) -> bool {
    SUPPORTED_KEYS.iter().any(|k| k.eq_ignore_ascii_case(key))
}

/// Condition key → values. A key with no values counts as missing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    /// Lower-cased key → (key as first given, values).
    entries: BTreeMap<String, (String, Vec<String>)>,
}

impl Context {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one value under `key` (keeping earlier ones).
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) -> &mut Self {
        let key = key.into();
        self.entries
            .entry(key.to_ascii_lowercase())
            .or_insert_with(|| (key, Vec::new()))
            .1
            .push(value.into());
        self
    }

    /// Builder form of [`Context::insert`].
    pub fn with(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.insert(key, value);
        self
    }

    pub fn with_source_ip(self, ip: IpAddr) -> Self {
        self.with(KEY_SOURCE_IP, ip.to_string())
    }

    pub fn with_current_time(self, now: jiff::Timestamp) -> Self {
        self.with(KEY_CURRENT_TIME, now.to_string())
    }

    pub fn with_secure_transport(self, https: bool) -> Self {
        self.with(KEY_SECURE_TRANSPORT, https.to_string())
    }

    pub fn with_access_id(self, access_key_id: &str) -> Self {
        self.with(KEY_ACCESS_ID, access_key_id)
    }

    pub fn with_user_agent(self, user_agent: &str) -> Self {
        self.with(KEY_USER_AGENT, user_agent)
    }

    /// Adds the keys every request carries whoever sends it (the time it arrived and whether it
    /// came over HTTPS), each only when `self` has no value for it, so that a simulation
    /// without an explicit context sees what the server would.
    pub fn with_request_defaults(mut self, now: jiff::Timestamp, https: bool) -> Self {
        if self.values(KEY_CURRENT_TIME).is_empty() {
            self = self.with_current_time(now);
        }
        if self.values(KEY_SECURE_TRANSPORT).is_empty() {
            self = self.with_secure_transport(https);
        }
        self
    }

    /// The values under `key` (any ASCII case); empty when missing.
    pub fn values(&self, key: &str) -> &[String] {
        self.entries
            .get(&key.to_ascii_lowercase())
            .map_or(&[], |(_, v)| v.as_slice())
    }

    /// Every key (as first given) with its values, in lower-cased key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[String])> {
        self.entries
            .values()
            .map(|(k, v)| (k.as_str(), v.as_slice()))
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Context {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut ctx = Context::new();
        for (k, v) in iter {
            ctx.insert(k, v);
        }
        ctx
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_ignore_case_and_values_accumulate() {
        let ctx: Context = [("acs:SourceIp", "1.2.3.4"), ("ACS:SOURCEIP", "5.6.7.8")]
            .into_iter()
            .collect();
        assert_eq!(ctx.values("acs:sourceip"), ["1.2.3.4", "5.6.7.8"]);
        assert_eq!(ctx.iter().next().unwrap().0, "acs:SourceIp");
        assert!(ctx.values("acs:UserAgent").is_empty());
    }

    #[test]
    fn request_defaults_fill_only_what_is_missing() {
        let t: jiff::Timestamp = "2024-05-01T10:00:00Z".parse().unwrap();
        let ctx = Context::new().with_request_defaults(t, false);
        assert_eq!(ctx.values(KEY_CURRENT_TIME), ["2024-05-01T10:00:00Z"]);
        assert_eq!(ctx.values(KEY_SECURE_TRANSPORT), ["false"]);
        assert!(ctx.values(KEY_SOURCE_IP).is_empty());
        let given = Context::new()
            .with("ACS:CURRENTTIME", "2000-01-01T00:00:00Z")
            .with(KEY_SECURE_TRANSPORT, "true")
            .with_request_defaults(t, false);
        assert_eq!(given.values(KEY_CURRENT_TIME), ["2000-01-01T00:00:00Z"]);
        assert_eq!(given.values(KEY_SECURE_TRANSPORT), ["true"]);
    }

    #[test]
    fn supported_keys_are_the_ones_the_server_fills_in_any_case() {
        for key in SUPPORTED_KEYS {
            assert!(is_supported_key(key));
            assert!(is_supported_key(&key.to_ascii_uppercase()));
        }
        assert!(!is_supported_key("acs:SourceAddress"));
        assert!(!is_supported_key("acs:MFAPresent"));
        assert!(!is_supported_key("ram:ServiceName"));
    }

    #[test]
    fn typed_helpers_write_parseable_values() {
        let t: jiff::Timestamp = "2024-05-01T10:00:00Z".parse().unwrap();
        let ctx = Context::new()
            .with_current_time(t)
            .with_secure_transport(true)
            .with_source_ip("::1".parse().unwrap());
        assert_eq!(ctx.values(KEY_CURRENT_TIME), ["2024-05-01T10:00:00Z"]);
        assert_eq!(ctx.values(KEY_SECURE_TRANSPORT), ["true"]);
        assert_eq!(ctx.values(KEY_SOURCE_IP), ["::1"]);
    }
}
