//! The HTTP/1.1 listener loop: hyper with a header-read deadline (axum's own `serve` sets
//! none, so a client trickling header bytes held a connection forever), the peer address for
//! RAM's `acs:SourceIp`, and a graceful shutdown that lets in-flight requests finish.

use crate::parse_errors::ShapedErrors;
use crate::{front_door, router, AppState};
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tower::ServiceExt;
use tracing::{debug, warn};

/// How long in-flight requests get to finish once shutdown begins, unless told otherwise.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Connection-level limits of the listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpSettings {
    /// The whole request head must arrive within this (the SDKs send it in one write). hyper
    /// starts the clock whenever it waits for a head, so it also bounds how long an idle
    /// keep-alive connection stays open.
    pub header_read_timeout: Duration,
    /// How long in-flight requests get to finish once shutdown begins.
    pub drain_timeout: Duration,
}

/// Serves the API on `listener` until `shutdown` completes, then drains open connections.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    settings: HttpSettings,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let host_id: Arc<str> = state.config.host_id.as_str().into();
    let app = router(state.clone());
    serve_router(
        listener,
        app,
        Some(Arc::new(state)),
        settings,
        host_id,
        shutdown,
    )
    .await
}

/// Serves `GET /metrics` (`--metrics-listen`) on `listener` until `shutdown`: the Prometheus
/// exposition, rendered on a blocking thread because a scrape reads the store. Nothing else
/// is served there, and it answers no API call.
pub async fn serve_metrics(
    listener: TcpListener,
    metrics: Arc<polarbackup_metrics::Metrics>,
    settings: HttpSettings,
    host_id: Arc<str>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", axum::routing::get(crate::metrics::scrape))
        .with_state(metrics);
    serve_router(listener, app, None, settings, host_id, shutdown).await
}

/// `rpc`: the API's state, when `/` is its RPC endpoint. Calls there are answered without
/// the router, which would only find no route for them and call its fallback, the same
/// [`front_door::answer`] (routing, the peer's extension and the boxed body were a few %
/// of DescribeBackupTasks' CPU).
async fn serve_router(
    listener: TcpListener,
    app: Router,
    rpc: Option<Arc<AppState>>,
    settings: HttpSettings,
    host_id: Arc<str>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout)
        .keep_alive(true);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                // Out of descriptors and the like: pause instead of spinning.
                Err(e) => {
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let (app, rpc) = (app.clone(), rpc.clone());
        let svc = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            // Only what the request goes to is cloned: the state's one count, or the router.
            let to = match &rpc {
                Some(state) if req.uri().path() == "/" => Ok(state.clone()),
                _ => Err(app.clone()),
            };
            async move {
                match to {
                    Ok(state) => Ok(front_door::answer(&state, Some(peer.ip()), req).await),
                    Err(app) => {
                        req.extensions_mut().insert(ConnectInfo(peer));
                        app.oneshot(req).await
                    }
                }
            }
        });
        let io = TokioIo::new(ShapedErrors::new(stream, host_id.clone()));
        let conn = http.serve_connection(io, svc);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(settings.drain_timeout) => {
            warn!(
                "connections still open after {:?}; closing them",
                settings.drain_timeout
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use std::net::SocketAddr;
    use std::time::Instant;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio::sync::oneshot;

    const GENEROUS: Duration = Duration::from_secs(20);

    /// A listener serving a test router; returns its address, the shutdown trigger and the
    /// serve task.
    async fn start(
        settings: HttpSettings,
    ) -> (
        SocketAddr,
        oneshot::Sender<()>,
        tokio::task::JoinHandle<std::io::Result<()>>,
    ) {
        let app = Router::new()
            .route(
                "/peer",
                get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.to_string() }),
            )
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    "slow"
                }),
            )
            .route(
                "/forever",
                get(|| async {
                    std::future::pending::<()>().await;
                    "never"
                }),
            );
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve_router(
            listener,
            app,
            None,
            settings,
            "test-host".into(),
            async {
                let _ = stopped.await;
            },
        ));
        (addr, stop, task)
    }

    fn settings(header_read_timeout: Duration, drain_timeout: Duration) -> HttpSettings {
        HttpSettings {
            header_read_timeout,
            drain_timeout,
        }
    }

    async fn get_once(conn: &mut TcpStream, path: &str) -> String {
        conn.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .expect("write");
        let mut out = String::new();
        tokio::time::timeout(GENEROUS, conn.read_to_string(&mut out))
            .await
            .expect("an answer in time")
            .expect("read");
        out
    }

    #[tokio::test]
    async fn handlers_see_the_peer_address() {
        let (addr, _stop, _task) = start(settings(GENEROUS, GENEROUS)).await;
        let mut conn = TcpStream::connect(addr).await.expect("connect");
        let me = conn.local_addr().expect("local addr");
        let answer = get_once(&mut conn, "/peer").await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with(&me.to_string()), "{answer} (we are {me})");
    }

    /// Sends `raw` and reads the answer up to the close: (status, head, body).
    async fn exchange(addr: SocketAddr, raw: &[u8]) -> (u16, String, String) {
        let mut conn = TcpStream::connect(addr).await.expect("connect");
        // The server may answer and close before reading everything.
        let _ = conn.write_all(raw).await;
        let mut out = Vec::new();
        let _ = tokio::time::timeout(GENEROUS, conn.read_to_end(&mut out))
            .await
            .expect("an answer in time");
        polarbackup_testkit::http::split_response(&out)
    }

    #[tokio::test]
    async fn requests_the_parser_refuses_get_the_api_error_shape() {
        let (addr, _stop, _task) = start(settings(GENEROUS, GENEROUS)).await;
        let many_headers: String = (0..101).map(|i| format!("X-H{i}: v\r\n")).collect();
        let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
            (
                "101 headers",
                format!("GET /peer HTTP/1.1\r\nHost: x\r\n{many_headers}\r\n").into_bytes(),
                431,
                "InvalidParameter.TooLarge",
            ),
            (
                "bad Content-Length",
                b"POST /peer HTTP/1.1\r\nHost: x\r\nContent-Length: ten\r\n\r\n".to_vec(),
                400,
                "InvalidParameter",
            ),
            (
                "two Content-Lengths",
                b"POST /peer HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab".to_vec(),
                400,
                "InvalidParameter",
            ),
            (
                "control byte in the URI",
                b"GET /pe\x01er HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
                400,
                "InvalidParameter",
            ),
            (
                "non-ASCII in the URI",
                b"GET /?a=\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
                400,
                "InvalidParameter",
            ),
            (
                "a header without a colon",
                b"GET /peer HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n".to_vec(),
                400,
                "InvalidParameter",
            ),
            (
                "an over-long URI",
                format!("GET /?a={} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(70_000)).into_bytes(),
                414,
                "InvalidParameter.TooLarge",
            ),
        ];
        for (what, raw, status, code) in cases {
            let (got, head, body) = exchange(addr, &raw).await;
            assert_eq!(got, status, "{what}: {head}\n{body}");
            let json: serde_json::Value = serde_json::from_str(&body)
                .unwrap_or_else(|e| panic!("{what}: body is not JSON ({e}): {head}\n{body:?}"));
            assert_eq!(json["Code"], code, "{what}: {body}");
            assert!(
                json["Message"].as_str().is_some_and(|m| !m.is_empty()),
                "{what}: {body}"
            );
            assert_eq!(json["HostId"], "test-host", "{what}: {body}");
            let rid = json["RequestId"].as_str().unwrap_or_default();
            assert_eq!(rid.len(), 36, "{what}: {body}");
            assert!(
                head.to_ascii_lowercase()
                    .contains(&format!("x-acs-request-id: {}", rid.to_ascii_lowercase())),
                "{what}: {head}"
            );
        }
        // The listener is unharmed, and a good request is answered as before.
        let mut conn = TcpStream::connect(addr).await.expect("connect");
        assert!(get_once(&mut conn, "/peer")
            .await
            .starts_with("HTTP/1.1 200"));
    }

    #[tokio::test]
    async fn an_unfinished_head_is_cut_off_at_the_deadline() {
        let deadline = Duration::from_millis(400);
        let (addr, _stop, _task) = start(settings(deadline, GENEROUS)).await;
        // Before connecting: hyper's clock starts once it reads from the new connection.
        let started = Instant::now();
        let mut slow = TcpStream::connect(addr).await.expect("connect");
        slow.write_all(b"GET /peer HTTP/1.1\r\nHost: x\r\n")
            .await
            .expect("write");
        // The server gives up on the head: EOF or a reset, and no response.
        let mut out = Vec::new();
        let _ = tokio::time::timeout(GENEROUS, slow.read_to_end(&mut out))
            .await
            .expect("the connection is closed in time");
        let waited = started.elapsed();
        assert!(
            waited >= deadline && waited < deadline * 10,
            "closed after {waited:?}"
        );
        assert!(!String::from_utf8_lossy(&out).contains("200 OK"), "{out:?}");
        // A client that sends its head in time is served.
        let mut fast = TcpStream::connect(addr).await.expect("connect");
        assert!(get_once(&mut fast, "/peer")
            .await
            .starts_with("HTTP/1.1 200"));
    }

    #[tokio::test]
    async fn shutdown_lets_an_in_flight_request_finish_and_refuses_new_connections() {
        let (addr, stop, task) = start(settings(GENEROUS, GENEROUS)).await;
        let mut conn = TcpStream::connect(addr).await.expect("connect");
        conn.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .expect("write");
        tokio::time::sleep(Duration::from_millis(100)).await;
        stop.send(()).expect("the server is running");
        let mut out = String::new();
        conn.read_to_string(&mut out).await.expect("read");
        assert!(
            out.starts_with("HTTP/1.1 200") && out.ends_with("slow"),
            "{out}"
        );
        tokio::time::timeout(GENEROUS, task)
            .await
            .expect("serve returns once drained")
            .expect("join")
            .expect("serve");
        assert!(TcpStream::connect(addr).await.is_err(), "still accepting");
    }

    #[tokio::test]
    async fn the_drain_gives_up_after_its_timeout() {
        let drain = Duration::from_millis(300);
        let (addr, stop, task) = start(settings(GENEROUS, drain)).await;
        let mut conn = TcpStream::connect(addr).await.expect("connect");
        conn.write_all(b"GET /forever HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("write");
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = Instant::now();
        stop.send(()).expect("the server is running");
        tokio::time::timeout(GENEROUS, task)
            .await
            .expect("serve returns despite the stuck request")
            .expect("join")
            .expect("serve");
        let waited = started.elapsed();
        assert!(
            waited >= drain && waited < drain * 10,
            "returned after {waited:?}"
        );
    }
}
