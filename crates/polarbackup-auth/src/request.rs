//! The already-parsed view of an HTTP request that verification needs.

/// What the HTTP layer hands over. Everything is borrowed; nothing is re-parsed here.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// `GET` / `POST` as received (V1 signs it verbatim).
    pub method: &'a str,
    /// The request path, normally `/` (V3 CanonicalURI).
    pub path: &'a str,
    /// Query parameters, percent-decoded (`+` as space), in received order.
    pub query: &'a [(String, String)],
    /// Parameters of an `application/x-www-form-urlencoded` body, decoded; empty if none.
    pub form: &'a [(String, String)],
    /// Headers with names in any case and values as received; names may repeat.
    pub headers: &'a [(&'a str, &'a str)],
    /// The raw (de-chunked) body.
    pub body: &'a [u8],
}

/// Owned (name, value) headers as [`Request::headers`] borrows them, for callers that keep
/// headers as `String`s (captured requests, the fuzz harness, tests).
pub fn borrow_headers(owned: &[(String, String)]) -> Vec<(&str, &str)> {
    owned
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

impl<'a> Request<'a> {
    /// All values of header `name` (ASCII case-insensitive), in received order.
    pub(crate) fn header_values(&self, name: &str) -> Vec<&'a str> {
        self.header_iter(name).collect()
    }

    /// [`Self::header_values`] without collecting them.
    pub(crate) fn header_iter<'n>(&self, name: &'n str) -> impl Iterator<Item = &'a str> + 'n
    where
        'a: 'n,
    {
        self.headers
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }
}
