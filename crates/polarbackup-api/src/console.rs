//! The web console (`/console`): static assets compiled into the binary. The console is a pure
//! client of the public API: the browser signs its own V3 calls to `/` with a key the user
//! types, so it adds no way in; this module only hands out files, under a strict
//! Content-Security-Policy.

use crate::AppState;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

/// Everything the console's pages may load comes from this origin: no inline script or style,
/// no framing, no plug-ins; calls go to the same origin only.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// An [`Asset`] of `console/<name>`, served as `content_type`.
macro_rules! asset {
    ($name:literal, $content_type:expr) => {
        Asset {
            name: $name,
            content_type: $content_type,
            body: include_bytes!(concat!("../console/", $name)),
        }
    };
}

/// The console's files, as served under `/console/<name>` (`index.html` also at `/console`).
const ASSETS: &[Asset] = &[
    asset!("index.html", HTML),
    asset!("console.css", CSS),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("sign.js", JS),
    asset!("chart.js", JS),
    asset!("favicon.svg", "image/svg+xml"),
];

/// The routes: `/console`, `/console/` and `/console/<asset>`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/console", get(index))
        .route(
            "/console/",
            get(|| async { Redirect::permanent("/console") }),
        )
        .route("/console/settings.json", get(settings))
        .route("/console/{name}", get(asset))
}

async fn index(headers: HeaderMap) -> Response {
    serve(&ASSETS[0], &headers)
}

async fn asset(Path(name): Path<String>, headers: HeaderMap) -> Response {
    match ASSETS.iter().find(|a| a.name == name) {
        Some(a) => serve(a, &headers),
        None => with_headers(
            (StatusCode::NOT_FOUND, "no such console file\n").into_response(),
            "text/plain; charset=utf-8",
        ),
    }
}

/// What the login form fills in by default: the region this server names its clusters' RAM
/// resources in (no secret, nothing about any account).
async fn settings(State(state): State<AppState>) -> Response {
    let body = serde_json::json!({ "region": state.config.region }).to_string();
    let mut res = with_headers(body.into_response(), "application/json");
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// The asset, or 304 when the browser's copy (by ETag) is this binary's.
fn serve(a: &Asset, headers: &HeaderMap) -> Response {
    let etag = etag(a.body);
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut res = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        a.body.into_response()
    };
    res = with_headers(res, a.content_type);
    if let Ok(v) = HeaderValue::from_str(&etag) {
        res.headers_mut().insert(header::ETAG, v);
    }
    res
}

/// Content-Type and the security headers every console answer carries. `no-cache`: the
/// browser may keep a copy but asks (by ETag) each time, so an upgraded server is seen at once.
fn with_headers(mut res: Response, content_type: &'static str) -> Response {
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    res
}

/// A strong validator from the bytes (64-bit FNV-1a): it changes whenever a file does.
fn etag(body: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in body {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("\"{h:016x}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_is_named_once_and_has_a_type() {
        for (i, a) in ASSETS.iter().enumerate() {
            assert!(!a.body.is_empty(), "{}", a.name);
            assert!(
                ASSETS[i + 1..].iter().all(|b| b.name != a.name),
                "{} twice",
                a.name
            );
        }
        assert_eq!(ASSETS[0].name, "index.html");
    }

    #[test]
    fn the_page_loads_only_its_own_files() {
        let html = std::str::from_utf8(ASSETS[0].body).expect("UTF-8");
        // No inline script or style (the CSP would block them) and nothing from elsewhere.
        assert!(!html.contains("<style"), "inline style");
        assert!(!html.contains("style=\""), "inline style attribute");
        assert!(!html.contains("http://") && !html.contains("https://"));
        for a in ASSETS {
            let text = String::from_utf8_lossy(a.body);
            assert!(!text.contains("//cdn"), "{} names a CDN", a.name);
        }
        for tag in html.match_indices("<script") {
            let rest = &html[tag.0..];
            let end = rest.find('>').expect("tag end");
            assert!(rest[..end].contains("src=\"/console/"), "{}", &rest[..end]);
        }
    }

    #[test]
    fn etags_differ_with_content() {
        assert_ne!(etag(b"a"), etag(b"b"));
        assert_eq!(etag(b"a"), etag(b"a"));
    }
}
