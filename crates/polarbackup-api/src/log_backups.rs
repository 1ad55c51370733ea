//! The log-backup actions: the log-backup policy, the archived WAL and its download links,
//! and the recovery window. Ownership is checked like every other action's: an unknown,
//! malformed, another account's or deleted cluster is `InvalidDBClusterId.NotFound`.

use crate::authn::Caller;
use crate::handlers::{internal, not_running, owned_cluster};
use crate::AppState;
use jiff::{SignedDuration, Timestamp};
use polarbackup_model::log_backup::recovery_window;
use polarbackup_model::{BackupLogId, ClusterStatus};
use polarbackup_store::WalFilter;
use polarbackup_wire::backup_log_download_links as links;
use polarbackup_wire::describe_backup_logs as dbl;
use polarbackup_wire::download_link::{string_to_sign, Host, Link};
use polarbackup_wire::{log_backup_policy, recovery_time, ApiError, Params};
use serde_json::{Map, Value};
use tracing::info;

type Body = Result<Map<String, Value>, ApiError>;

pub fn describe_policy(state: &AppState, caller: &Caller, params: &Params) -> Body {
    let id = params.required("DBClusterId")?;
    let cluster = owned_cluster(state, caller, id, log_backup_policy::CLUSTER_NOT_FOUND)?;
    let policy = state
        .store
        .log_backup_policy(&cluster.id)
        .map_err(internal)?;
    Ok(log_backup_policy::describe(&policy))
}

/// The status is checked in the store's write; a call that changes nothing (only "off"
/// cross-region values) still reports a cluster being deleted, as a change would.
pub fn modify_policy(state: &AppState, caller: &Caller, params: &Params) -> Body {
    let req = log_backup_policy::ModifyRequest::parse(params)?;
    let not_found = log_backup_policy::CLUSTER_NOT_FOUND;
    let cluster = owned_cluster(state, caller, &req.cluster_id, not_found.clone())?;
    let Some(retention) = req.retention else {
        return match cluster.status {
            ClusterStatus::Running => Ok(Map::new()),
            status => Err(not_running(status, not_found)),
        };
    };
    state
        .store
        .modify_log_backup_policy(&cluster.id, retention)
        .map_err(internal)?
        .map_err(|status| not_running(status, not_found))?;
    info!(cluster = %cluster.id, retention_days = retention.as_days(), "log backup policy changed");
    Ok(Map::new())
}

/// Links name the host the client called; one it cannot have called is refused rather than
/// put into a URL.
fn link_host(host: Option<&str>) -> Result<Host, ApiError> {
    host.and_then(Host::parse).ok_or(ApiError::HostUnusable)
}

/// When links made now for `lifetime` stop working, to the second.
fn expiry(state: &AppState, lifetime: SignedDuration) -> Result<Timestamp, ApiError> {
    Timestamp::from_second(state.clock.now().as_second() + lifetime.as_secs())
        .map_err(|_| ApiError::Internal)
}

fn sign(state: &AppState, host: &Host, id: BackupLogId, expires: Timestamp) -> Link {
    let signature = polarbackup_auth::sign_link(
        state.config.links.secret.as_bytes(),
        &string_to_sign(id, expires.as_second()),
    );
    Link::new(host, id, expires, &signature)
}

pub fn describe_logs(
    state: &AppState,
    caller: &Caller,
    params: &Params,
    host: Option<&str>,
) -> Body {
    let req = dbl::Request::parse(params)?;
    let cluster = owned_cluster(state, caller, &req.cluster_id, dbl::CLUSTER_NOT_FOUND)?;
    let host = link_host(host)?;
    let filter = WalFilter {
        from: req.start,
        to: req.end,
        page_size: req.page_size,
        page_number: req.page_number,
    };
    let page = state
        .store
        .wal_page(&cluster.id, &filter)
        .map_err(internal)?;
    let expires = expiry(state, state.config.links.lifetime)?;
    let items: Vec<_> = page
        .objects
        .into_iter()
        .map(|o| {
            let link = sign(state, &host, o.id, expires);
            (o, link)
        })
        .collect();
    Ok(dbl::response(&items, page.total, req.page_number))
}

/// An id the cluster does not have (another cluster's included) gets its item's error, the
/// same whether or not it exists elsewhere.
pub fn download_links(
    state: &AppState,
    caller: &Caller,
    params: &Params,
    host: Option<&str>,
) -> Body {
    let req = links::Request::parse(params)?;
    let cluster = owned_cluster(state, caller, &req.cluster_id, links::CLUSTER_NOT_FOUND)?;
    let host = link_host(host)?;
    let lifetime = req.expire_hours.map_or(state.config.links.lifetime, |h| {
        SignedDuration::from_hours(i64::from(h))
    });
    let expires = expiry(state, lifetime)?;
    let mut items = Vec::with_capacity(req.ids.len());
    for (raw, id) in req.ids {
        let link = match id {
            Some(id) => state
                .store
                .wal_object(id)
                .map_err(internal)?
                .filter(|o| o.object.cluster_id == cluster.id)
                .map(|o| sign(state, &host, o.id, expires)),
            None => None,
        };
        items.push((raw, link));
    }
    Ok(links::response(&items))
}

/// The window from one snapshot of the store, the same inputs a restore plans from.
pub fn recovery_time(state: &AppState, caller: &Caller, params: &Params) -> Body {
    let id = params.required("DBClusterId")?;
    let cluster = owned_cluster(state, caller, id, recovery_time::CLUSTER_NOT_FOUND)?;
    let i = state.store.recovery_inputs(&cluster.id).map_err(internal)?;
    Ok(recovery_time::response(
        &cluster.id,
        recovery_window(&i.sets, &i.wal, &i.gaps),
    ))
}
