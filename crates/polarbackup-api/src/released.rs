//! Released (deleted) clusters: DescribeDetachedBackups, and the rule that such a cluster
//! exists for the API only while it retains backup sets (API.md §3.10, §7 points 22–23).

use crate::authn::Caller;
use crate::handlers::{internal, owned_cluster_any_state, set_filter};
use crate::AppState;
use polarbackup_model::{Cluster, ClusterStatus};
use polarbackup_wire::describe_detached_backups as ddb;
use polarbackup_wire::{ApiError, Params};
use serde_json::{Map, Value};

/// `not_found` unless `cluster` still retains a set: one released with `NONE`, or whose
/// retained sets were all deleted, is gone for good.
pub fn require_retained_sets(
    state: &AppState,
    cluster: &Cluster,
    not_found: ApiError,
) -> Result<(), ApiError> {
    match state
        .store
        .detached_set_count(&cluster.id)
        .map_err(internal)?
    {
        0 => Err(not_found),
        _ => Ok(()),
    }
}

/// Only a released cluster of the caller's that retains sets is found; a live one (Running or
/// Deleting) is not.
pub fn describe_detached_backups(
    state: &AppState,
    caller: &Caller,
    params: &Params,
) -> Result<Map<String, Value>, ApiError> {
    let req = ddb::Request::parse(params)?;
    let not_found = ddb::CLUSTER_NOT_FOUND;
    let cluster = owned_cluster_any_state(state, caller, &req.cluster_id, not_found.clone())?;
    if cluster.status != ClusterStatus::Deleted {
        return Err(not_found);
    }
    require_retained_sets(state, &cluster, not_found)?;
    let Some(filter) = set_filter(&req) else {
        return Ok(ddb::response(&[], 0, req.page_number));
    };
    let page = state
        .store
        .list_detached_sets(&cluster.id, &filter)
        .map_err(internal)?;
    Ok(ddb::response(&page.sets, page.total, req.page_number))
}
