//! Raw HTTP/1.1 for tests of what a client sends byte for byte: one exchange, one response split.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// A response's status (0 when there is no status line), head and body.
pub fn split_response(raw: &[u8]) -> (u16, String, String) {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head.to_owned(), body.to_owned())
}

/// Sends `request` as it is and reads the response up to the close: status, head and body.
pub fn exchange(
    addr: impl ToSocketAddrs,
    request: &[u8],
    timeout: Duration,
) -> std::io::Result<(u16, String, String)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    s.write_all(request)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    Ok(split_response(&raw))
}

/// A raw HTTP/1.1 request (as in `tests/fixtures/vectors/requests/*.raw`) in owned pieces;
/// the query is still encoded, the body de-chunked.
#[derive(Debug, Clone, Default)]
pub struct RawRequest {
    pub method: String,
    pub path: String,
    pub raw_query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawRequest {
    /// Reads any bytes; what is not well-formed HTTP/1.1 is read as far as it goes and named in
    /// the second value (empty for a well-formed request), so a strict caller asserts it empty
    /// and a fuzz replay ignores it.
    pub fn parse(data: &[u8]) -> (RawRequest, Vec<String>) {
        let mut problems = Vec::new();
        let (head, rest) = match find(data, b"\r\n\r\n") {
            Some(at) => (&data[..at], &data[at + 4..]),
            None => {
                problems.push("no end of the head".to_owned());
                (data, &[][..])
            }
        };
        let head = String::from_utf8_lossy(head);
        let mut lines = head.split("\r\n");
        let mut request_line = lines.next().unwrap_or("").split(' ');
        let method = request_line.next().unwrap_or("").to_owned();
        let target = request_line.next().unwrap_or("");
        if request_line.next() != Some("HTTP/1.1") {
            problems.push("not an HTTP/1.1 request line".to_owned());
        }
        let (path, raw_query) = target.split_once('?').unwrap_or((target, ""));
        let mut headers = Vec::new();
        for line in lines {
            match line.split_once(':') {
                Some((k, v)) => headers.push((k.to_owned(), v.trim().to_owned())),
                None => problems.push(format!("a header line without a colon: {line:?}")),
            }
        }
        let mut request = RawRequest {
            method,
            path: path.to_owned(),
            raw_query: raw_query.to_owned(),
            headers,
            body: Vec::new(),
        };
        let chunked = request
            .header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
        request.body = if chunked {
            dechunk(rest).unwrap_or_else(|e| {
                problems.push(e);
                rest.to_vec()
            })
        } else {
            let fits = match request.header("content-length") {
                None => rest.is_empty(),
                Some(v) => v.parse::<usize>().ok() == Some(rest.len()),
            };
            if !fits {
                problems.push(format!(
                    "a body of {} bytes against its Content-Length",
                    rest.len()
                ));
            }
            rest.to_vec()
        };
        (request, problems)
    }

    /// A header's value, the name in any case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether the body is `application/x-www-form-urlencoded`.
    pub fn is_form(&self) -> bool {
        self.header("content-type").is_some_and(|v| {
            v.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        })
    }
}

/// Where `needle` first stands in `haystack`.
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A chunked body without trailers.
fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>, String> {
    let bad = |what: &str| format!("bad chunked body: {what}");
    let mut body = Vec::new();
    loop {
        let eol = find(rest, b"\r\n").ok_or_else(|| bad("no size line"))?;
        let line = std::str::from_utf8(&rest[..eol]).map_err(|_| bad("size line"))?;
        let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| bad("size"))?;
        rest = &rest[eol + 2..];
        if size == 0 {
            return if rest == b"\r\n" {
                Ok(body)
            } else {
                Err(bad("trailers or bytes after the last chunk"))
            };
        }
        body.extend_from_slice(rest.get(..size).ok_or_else(|| bad("short chunk"))?);
        if rest.get(size..size + 2) != Some(b"\r\n") {
            return Err(bad("no line end after a chunk"));
        }
        rest = &rest[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_splits_into_status_head_and_body() {
        let (status, head, body) =
            split_response(b"HTTP/1.1 404 Not Found\r\nx-a: 1\r\n\r\n{\"Code\":\"x\"}");
        assert_eq!(status, 404);
        assert_eq!(head, "HTTP/1.1 404 Not Found\r\nx-a: 1");
        assert_eq!(body, "{\"Code\":\"x\"}");
        assert_eq!(
            split_response(b"garbage"),
            (0, "garbage".into(), String::new())
        );
    }

    #[test]
    fn a_well_formed_request_parses_without_problems() {
        let raw = b"POST /?a=1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
        let (r, problems) = RawRequest::parse(raw);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            (r.method.as_str(), r.path.as_str(), r.raw_query.as_str()),
            ("POST", "/", "a=1")
        );
        assert_eq!(r.header("host"), Some("x"));
        assert_eq!(r.body, b"abc");
    }

    #[test]
    fn anything_else_parses_as_far_as_it_goes_and_names_the_problems() {
        let (r, problems) = RawRequest::parse(b"GET /x\r\nno colon\r\nContent-Length: 9\r\n\r\nab");
        assert_eq!(r.path, "/x");
        assert_eq!(r.body, b"ab");
        assert_eq!(problems.len(), 3, "{problems:?}");
        let (_, problems) = RawRequest::parse(b"\xff\x00");
        assert!(!problems.is_empty());
    }
}
