//! The API's error shape for requests hyper refuses before any handler runs.
//!
//! hyper answers a request it cannot parse (a bad `Content-Length`, bytes no URI or header may
//! hold, more than 100 headers, an over-long URI or head) with a bare 400, 414 or 431: no body,
//! no RequestId. It offers no hook for that answer, so [`ShapedErrors`] wraps the connection and
//! replaces that one write with the same status in the API's JSON error shape. hyper closes
//! the connection after it, so the replacement says `connection: close`.

use polarbackup_wire::{render, ApiError, Format};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tracing::info;

/// A connection whose automatic parse-error responses are rewritten; everything else passes.
pub(crate) struct ShapedErrors<T> {
    inner: T,
    host_id: Arc<str>,
    pending: Option<Replacement>,
}

/// A rewritten response still being written, and how many of hyper's bytes it stands for.
struct Replacement {
    bytes: Vec<u8>,
    written: usize,
    owed: usize,
}

impl<T> ShapedErrors<T> {
    pub(crate) fn new(inner: T, host_id: Arc<str>) -> Self {
        ShapedErrors {
            inner,
            host_id,
            pending: None,
        }
    }
}

/// The API error for a status hyper sends on its own.
fn error_for(status: &[u8]) -> Option<ApiError> {
    match status {
        b"400" => Some(ApiError::MalformedRequest),
        b"414" => Some(ApiError::UriTooLong),
        b"431" => Some(ApiError::HeadersTooLarge),
        _ => None,
    }
}

/// If `buf` is exactly one of hyper's automatic error responses (a bodiless head with one of
/// its statuses and none of our RequestId headers, which every API response carries), the
/// response to send instead.
fn replacement(buf: &[u8], host_id: &str) -> Option<Vec<u8>> {
    let rest = buf
        .strip_prefix(b"HTTP/1.1 ")
        .or_else(|| buf.strip_prefix(b"HTTP/1.0 "))?;
    let err = error_for(rest.get(..3)?)?;
    let head = std::str::from_utf8(buf).ok()?.strip_suffix("\r\n\r\n")?;
    if head.contains("\r\n\r\n") || head.to_ascii_lowercase().contains("x-acs-request-id") {
        return None;
    }
    let request_id = crate::request_id::new();
    let rendered = render::error(&err, &request_id, host_id, Format::Json);
    let (_, code, _) = err.describe();
    info!(request_id = %request_id, status = rendered.status, code = %code, "request refused by the HTTP parser");
    let mut lines = head.split("\r\n");
    let mut out = lines.next()?.to_owned();
    out.push_str("\r\n");
    // Keep hyper's other headers (its date), not its length or connection handling.
    for line in lines {
        let name = line.split(':').next().unwrap_or("").to_ascii_lowercase();
        if name != "content-length" && name != "connection" {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str(&format!(
        "content-type: {}\r\nx-acs-request-id: {request_id}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{}",
        rendered.content_type,
        rendered.body.len(),
        rendered.body
    ));
    Some(out.into_bytes())
}

impl<T: AsyncWrite + Unpin> ShapedErrors<T> {
    /// Writes what is left of the replacement; then reports hyper's bytes as written.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let Some(r) = self.pending.as_mut() else {
            return Poll::Ready(Ok(0));
        };
        while r.written < r.bytes.len() {
            match ready!(Pin::new(&mut self.inner).poll_write(cx, &r.bytes[r.written..])) {
                Ok(0) => {
                    self.pending = None;
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                Ok(n) => r.written += n,
                Err(e) => {
                    self.pending = None;
                    return Poll::Ready(Err(e));
                }
            }
        }
        let owed = r.owed;
        self.pending = None;
        Poll::Ready(Ok(owed))
    }

    /// Starts a replacement for `buf` if it is one of hyper's automatic error responses.
    fn intercept(&mut self, buf: &[u8]) -> bool {
        if self.pending.is_some() {
            return true;
        }
        match replacement(buf, &self.host_id) {
            Some(bytes) => {
                self.pending = Some(Replacement {
                    bytes,
                    written: 0,
                    owed: buf.len(),
                });
                true
            }
            None => false,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for ShapedErrors<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ShapedErrors<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.intercept(buf) {
            return this.poll_drain(cx);
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // hyper's automatic response is a head alone, so it is the only non-empty slice.
        let mut non_empty = bufs.iter().filter(|b| !b.is_empty());
        if let (Some(only), None) = (non_empty.next(), non_empty.next()) {
            if this.intercept(only) {
                return this.poll_drain(cx);
            }
        }
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_bare_automatic_error_head_is_replaced() {
        let hyper_431 = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: Wed, 02 Dec 2026 06:00:00 GMT\r\n\r\n";
        let out = String::from_utf8(replacement(hyper_431, "h").expect("replaced")).unwrap();
        let (head, body) = out.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 431 "), "{head}");
        assert!(head.contains("\r\ndate: Wed, 02 Dec 2026"), "{head}");
        assert!(head.contains("\r\nconnection: close"), "{head}");
        assert!(!head.contains("content-length: 0"), "{head}");
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["Code"], "InvalidParameter.TooLarge");
        let rid = body["RequestId"].as_str().unwrap();
        assert!(head.contains(&format!("x-acs-request-id: {rid}")), "{head}");

        for kept in [
            // Ours: they carry a RequestId.
            &b"HTTP/1.1 400 Bad Request\r\nx-acs-request-id: X\r\ncontent-length: 0\r\n\r\n"[..],
            // Other statuses, a body after the head, a part of a response.
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 2\r\n\r\n{}",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n",
            b"{\"HTTP/1.1 400\"}",
        ] {
            assert!(
                replacement(kept, "h").is_none(),
                "{}",
                String::from_utf8_lossy(kept)
            );
        }
    }
}
