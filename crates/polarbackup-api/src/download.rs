//! `GET /backup-logs/<BackupLogId>?Expires=…&Signature=…`: the raw bytes of one archived WAL
//! object, for whoever holds a link the API signed. The signature is checked first, so a
//! link that is not ours learns nothing about which ids exist; then the expiry; only then
//! the store.

use crate::front_door::respond;
use crate::handlers::internal;
use crate::AppState;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use polarbackup_wire::describe_backup_logs::backup_log_name;
use polarbackup_wire::download_link::{string_to_sign, DownloadRequest, PATH_PREFIX};
use polarbackup_wire::{render, ApiError, Format};
use tracing::{error, info};

pub async fn backup_log(State(state): State<AppState>, req: Request) -> Response {
    let request_id = crate::request_id::new();
    let id = req.uri().path().strip_prefix(PATH_PREFIX).unwrap_or("");
    let query = req.uri().query().unwrap_or("");
    match serve(&state, id, query, &request_id).await {
        Ok((name, bytes)) => {
            info!(request_id = %request_id, backup_log = id, bytes = bytes.len(), "backup log downloaded");
            let mut resp = Response::new(Body::from(bytes));
            *resp.status_mut() = StatusCode::OK;
            let headers = resp.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            // The name is PostgreSQL's (hex digits, `.partial`, `.history`): safe unquoted.
            if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
                headers.insert(header::CONTENT_DISPOSITION, v);
            }
            if let Ok(v) = HeaderValue::from_str(&request_id) {
                headers.insert("x-acs-request-id", v);
            }
            resp
        }
        Err(e) => {
            let rendered = render::error(&e, &request_id, &state.config.host_id, Format::Json);
            info!(request_id = %request_id, status = rendered.status, code = %e.describe().1, "backup log download refused");
            respond(rendered, &request_id)
        }
    }
}

/// The object's `BackupLogName` and bytes.
async fn serve(
    state: &AppState,
    id: &str,
    query: &str,
    request_id: &str,
) -> Result<(String, Vec<u8>), ApiError> {
    let link = DownloadRequest::parse(id, query)?;
    let signed = string_to_sign(link.id, link.expires);
    if !polarbackup_auth::verify_link(
        state.config.links.secret.as_bytes(),
        &signed,
        &link.signature,
    ) {
        return Err(ApiError::LinkSignatureMismatch);
    }
    if link.expired(state.clock.now()) {
        return Err(ApiError::LinkExpired);
    }
    let store = state.store.clone();
    let object = tokio::task::spawn_blocking(move || store.wal_object(link.id))
        .await
        .map_err(|_| ApiError::Internal)?
        .map_err(internal)?
        // Removed since the link was made (retention, a released cluster).
        .ok_or(ApiError::BackupLogNotFound)?;
    let bytes = state.logs.read(&object).await.map_err(|e| {
        error!(request_id, backup_log = %object.id, error = %e, "reading a backup log failed");
        ApiError::Internal
    })?;
    Ok((backup_log_name(&object), bytes))
}
