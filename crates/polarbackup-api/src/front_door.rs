//! One RPC call from bytes to response: read, authenticate, dispatch, render.

use crate::headers::Headers;
use crate::{authn, authz, handlers, AppState};
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, Limited};
use polarbackup_model::DbClusterId;
use polarbackup_store::{NonceDone, StoreError};
use polarbackup_wire::render::Answer;
use polarbackup_wire::{render, Action, ApiError, Format, Params, API_VERSION};
use std::time::Instant;
use tracing::{debug, error, info, warn};

/// A request as the synchronous part of the pipeline sees it.
struct Call {
    peer: Option<std::net::IpAddr>,
    method: String,
    path: String,
    params: Params,
    headers: Headers,
    body: Bytes,
}

impl Call {
    /// The call as authentication reads it, its headers as [`Headers::pairs`].
    fn incoming<'a>(&'a self, headers: &'a [(&'a str, &'a str)]) -> authn::Incoming<'a> {
        authn::Incoming {
            source_ip: self.peer,
            method: self.method.as_str(),
            path: &self.path,
            params: &self.params,
            headers,
            body: &self.body,
        }
    }
}

/// The target of the access line each request logs (at INFO): this module's path, as any
/// event here would have, named so the server's log writer can batch those lines.
pub const ACCESS_LOG_TARGET: &str = module_path!();

pub async fn healthz(State(state): State<AppState>) -> Response {
    let store = state.store.clone();
    match tokio::task::spawn_blocking(move || store.ping()).await {
        Ok(Ok(())) => (StatusCode::OK, "ok\n").into_response(),
        Ok(Err(e)) => {
            warn!(error = %e, "health check: store unreachable");
            (StatusCode::SERVICE_UNAVAILABLE, "store unreachable\n").into_response()
        }
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "store unreachable\n").into_response(),
    }
}

/// The RPC endpoint as the router's fallback (every path but `/`, which
/// [`crate::http::serve`] hands to [`answer`] without routing).
pub async fn rpc(State(state): State<AppState>, req: Request) -> Response {
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    answer(&state, peer, req).await
}

/// One RPC call, from `peer`, answered.
pub(crate) async fn answer<B>(
    state: &AppState,
    peer: Option<std::net::IpAddr>,
    req: axum::http::Request<B>,
) -> Response
where
    B: axum::body::HttpBody<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let started = Instant::now();
    let request_id = crate::request_id::new();
    // Until Format is known, errors are JSON, which every SDK parses.
    let mut format = Format::Json;
    // For the metrics: the action named, if the API knows it, whatever the outcome.
    let mut named = None;
    let outcome = match read(state, peer, req).await {
        Ok(call) => {
            format = Format::parse(call.params.get("Format")).unwrap_or_default();
            if state.metrics.is_some() {
                named = action_named(&call).and_then(|a| Action::parse(a).ok());
            }
            if state.store.local_reads() {
                answer_on_this_thread(state, call, &request_id).await
            } else {
                let st = state.clone();
                let rid = request_id.clone();
                tokio::task::spawn_blocking(move || process(&st, &call, &rid))
                    .await
                    .unwrap_or_else(|e| panicked(&request_id, &e))
            }
        }
        Err(e) => Err(e),
    };
    // The body moves into the rendering: only what the log line needs is kept.
    let (rendered, action, code) = match outcome {
        Ok((action, body)) => (
            render::answer(action.name(), &request_id, body, format),
            Some(action),
            None,
        ),
        Err(e) => (
            render::error(&e, &request_id, &state.config.host_id, format),
            None,
            Some(e.describe().1),
        ),
    };
    let elapsed = started.elapsed();
    info!(
        target: ACCESS_LOG_TARGET,
        request_id = %request_id,
        action = action.map(|a| a.name()),
        status = rendered.status,
        code = code.as_deref(),
        elapsed_ms = elapsed.as_millis() as u64,
        "request"
    );
    if let Some(metrics) = &state.metrics {
        let code = code.map_or(polarbackup_metrics::SUCCESS.into(), Into::into);
        metrics.observe_request(named.map(Action::name), code, elapsed);
    }
    respond(rendered, &request_id)
}

/// A rendered body as an HTTP response, with the RequestId header.
pub(crate) fn respond(rendered: render::Rendered, request_id: &str) -> Response {
    let mut resp = Response::new(Body::from(rendered.body));
    *resp.status_mut() =
        StatusCode::from_u16(rendered.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(rendered.content_type),
    );
    if let Ok(v) = HeaderValue::from_str(request_id) {
        headers.insert("x-acs-request-id", v);
    }
    resp
}

/// Reads method, path, headers and a bounded body; decodes query and form parameters.
async fn read<B>(
    state: &AppState,
    peer: Option<std::net::IpAddr>,
    req: axum::http::Request<B>,
) -> Result<Call, ApiError>
where
    B: axum::body::HttpBody<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let (parts, body) = req.into_parts();
    if parts.method != Method::GET && parts.method != Method::POST {
        return Err(ApiError::UnsupportedHttpMethod);
    }
    let limit = state.config.body_limit;
    let too_large = ApiError::BodyTooLarge { limit };
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large);
    }
    // A client that stops sending mid-body must not hold a worker forever.
    let collected = tokio::time::timeout(
        state.config.body_timeout,
        Limited::new(body, limit).collect(),
    )
    .await
    .map_err(|_| ApiError::RequestTimeout)?;
    let body = match collected {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => return Err(too_large),
        Err(_) => return Err(ApiError::MalformedBody("the body could not be read")),
    };
    let is_form = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    let params = Params::decode(
        parts.uri.query().unwrap_or(""),
        is_form.then_some(&body[..]),
    );
    let headers = Headers::from_map(&parts.headers);
    Ok(Call {
        peer,
        method: parts.method.as_str().to_owned(),
        path: parts.uri.path().to_owned(),
        params,
        headers,
        body,
    })
}

type Outcome = Result<(Action, Answer), ApiError>;

fn panicked(request_id: &str, e: &dyn std::fmt::Display) -> Outcome {
    error!(request_id = %request_id, error = %e, "request handler panicked");
    Err(ApiError::Internal)
}

/// A sync step run on the async thread, a panic in it answered as `process`'s are.
fn guarded<T>(request_id: &str, f: impl FnOnce() -> Result<T, ApiError>) -> Result<T, ApiError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|_| {
        error!(request_id = %request_id, "request handler panicked");
        Err(ApiError::Internal)
    })
}

/// `process` for a store whose request reads are local ([`polarbackup_store::Store::local_reads`]):
/// the same steps in the same order, on this async thread, with no hand-off to a blocking
/// thread. The nonce's durable write is queued to the store's committer and awaited; the
/// handler runs here only for DescribeBackupTasks (whose reads are all local), on a blocking
/// thread for every other action.
async fn answer_on_this_thread(state: &AppState, call: Call, request_id: &str) -> Outcome {
    let (action, signed) = guarded(request_id, || {
        let action = route(&call)?;
        Ok((action, signed(state, &call, action, request_id)?))
    })?;
    // DescribeBackupTasks changes nothing: its nonce need not be durable before it is
    // answered, only recorded (`NonceStore::use_nonce_unsynced`).
    let unsynced = (action == Action::DescribeBackupTasks)
        .then(|| {
            let (key, nonce, expires_at, now) = signed.nonce();
            state.store.use_nonce_unsynced(key, nonce, expires_at, now)
        })
        .flatten();
    let fresh = match unsynced {
        Some(fresh) => fresh,
        None => use_nonce(state, &signed).await,
    };
    let caller = guarded(request_id, || {
        authorized(state, signed, fresh, action, &call, request_id)
    })?;
    if action == Action::DescribeBackupTasks {
        let body = guarded(request_id, || {
            dispatch(state, action, &caller, &call, request_id)
        })?;
        return Ok((action, body));
    }
    let st = state.clone();
    let rid = request_id.to_owned();
    tokio::task::spawn_blocking(move || {
        dispatch(&st, action, &caller, &call, &rid).map(|body| (action, body))
    })
    .await
    .unwrap_or_else(|e| panicked(request_id, &e))
}

/// The nonce's durable write, awaited without holding a thread where the store can.
async fn use_nonce(state: &AppState, signed: &authn::Signed) -> Result<bool, StoreError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let done: NonceDone = Box::new(move |answer| {
        let _ = tx.send(answer);
    });
    let (key, nonce, expires_at, now) = signed.nonce();
    if let Err(done) = state.store.queue_nonce(key, nonce, expires_at, now, done) {
        let store = state.store.clone();
        let (key, nonce) = (key.clone(), nonce.to_owned());
        tokio::task::spawn_blocking(move || {
            done(store.use_nonce(&key, &nonce, expires_at, now));
        });
    }
    rx.await.unwrap_or_else(|_| {
        Err(StoreError::Io(std::io::Error::other(
            "the nonce write ended without an answer",
        )))
    })
}

/// The cluster a call names, read with its key.
fn named_cluster(call: &Call, action: Action) -> Option<DbClusterId> {
    action
        .resource_param()
        .and_then(|name| call.params.get(name))
        .and_then(|id| DbClusterId::parse(id).ok())
}

/// Which action, checked before anything else: the format, the action and the version.
fn route(call: &Call) -> Result<Action, ApiError> {
    Format::parse(call.params.get("Format"))?;
    let action = action_named(call).ok_or(ApiError::MissingParameter("Action"))?;
    if call.path != "/" {
        return Err(ApiError::InvalidAction);
    }
    let action = Action::parse(action)?;
    let version = call
        .params
        .get("Version")
        .or_else(|| call.headers.get("x-acs-version"))
        .filter(|v| !v.is_empty())
        .ok_or(ApiError::MissingParameter("Version"))?;
    if version != API_VERSION {
        return Err(ApiError::InvalidVersion);
    }
    Ok(action)
}

/// The action a call names: V1 carries Action/Version as parameters, V3 only in headers.
fn action_named(call: &Call) -> Option<&str> {
    call.params
        .get("Action")
        .or_else(|| call.headers.get("x-acs-action"))
        .filter(|a| !a.is_empty())
}

/// The handler, its internal errors logged.
fn dispatch(
    state: &AppState,
    action: Action,
    caller: &authn::Caller,
    call: &Call,
    request_id: &str,
) -> Result<Answer, ApiError> {
    handlers::dispatch(
        state,
        action,
        caller,
        &call.params,
        call.headers.get("host"),
    )
    .inspect_err(|e| {
        if *e == ApiError::Internal {
            error!(
                request_id,
                "internal error while handling {}",
                action.name()
            );
        }
    })
}

/// Everything after the bytes are in: which action, who is calling, and the answer.
fn process(state: &AppState, call: &Call, request_id: &str) -> Outcome {
    let action = route(call)?;
    let signed = signed(state, call, action, request_id)?;
    let (key, nonce, expires_at, now) = signed.nonce();
    let fresh = state.store.use_nonce(key, nonce, expires_at, now);
    let caller = authorized(state, signed, fresh, action, call, request_id)?;
    let body = dispatch(state, action, &caller, call, request_id)?;
    Ok((action, body))
}

/// The signature checked against the key read with its records; a refusal is logged.
fn signed(
    state: &AppState,
    call: &Call,
    action: Action,
    request_id: &str,
) -> Result<authn::Signed, ApiError> {
    let headers = call.headers.pairs();
    authn::check_signature(state, &call.incoming(&headers), named_cluster(call, action))
        .inspect_err(|e| log_refusal(request_id, e))
}

/// The caller, once its nonce's durable write answered `fresh`, authorized for `action`.
fn authorized(
    state: &AppState,
    signed: authn::Signed,
    fresh: Result<bool, StoreError>,
    action: Action,
    call: &Call,
    request_id: &str,
) -> Result<authn::Caller, ApiError> {
    let caller = authn::caller(signed, fresh).inspect_err(|e| log_refusal(request_id, e))?;
    debug!(request_id, key = %caller.access_key_id, account = %caller.account, "authenticated");
    authz::authorize(state, &caller, action, &call.params, request_id)?;
    Ok(caller)
}

fn log_refusal(request_id: &str, e: &ApiError) {
    // The reason, never the material: no secrets, no signatures.
    warn!(request_id, reason = %e, "authentication refused");
}
