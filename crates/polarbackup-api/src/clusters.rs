//! The cluster APIs: DescribeDBClusters, DescribeDBClusterAttribute and DeleteDBCluster.
//!
//! DeleteDBCluster only records the deletion (the store's `begin_cluster_deletion`, the same
//! transaction `admin cluster delete` runs) and wakes the workers, which carry it out: a
//! `LATEST` deletion's final backup, the removal of deleted sets' data, and (the archivers)
//! the cluster's WAL and replication slot. Until that is done the cluster is shown as
//! `Deleting`; then it is gone, answered like an unknown cluster.

use crate::authn::Caller;
use crate::handlers::{internal, owned_cluster_any_state};
use crate::AppState;
use polarbackup_model::{BackupSetStatus, Cluster, ClusterStatus};
use polarbackup_store::{ClusterDeletion, DeletionRefusal, StoreError};
use polarbackup_wire::describe_db_clusters::{self as ddc, shown_status};
use polarbackup_wire::{delete_db_cluster as del, describe_db_cluster_attribute as attr};
use polarbackup_wire::{ApiError, Params};
use serde_json::{Map, Value};
use tracing::info;

type Body = Result<Map<String, Value>, ApiError>;

/// The caller's cluster with the status the cluster APIs show, or `not_found`: a `Deleted`
/// one is found only while its release is unfinished (then `Deleting`).
fn shown_cluster(
    state: &AppState,
    caller: &Caller,
    id: &str,
    not_found: ApiError,
) -> Result<(Cluster, ClusterStatus), ApiError> {
    let cluster = owned_cluster_any_state(state, caller, id, not_found.clone())?;
    if cluster.status != ClusterStatus::Deleted {
        let status = cluster.status;
        return Ok((cluster, status));
    }
    let releasing = state
        .store
        .account_clusters(&caller.account)
        .map_err(internal)?
        .into_iter()
        .any(|l| l.releasing && l.cluster.id == cluster.id);
    match releasing {
        true => Ok((cluster, ClusterStatus::Deleting)),
        false => Err(not_found),
    }
}

/// Only the caller's account's clusters, in the request's region; a released cluster is
/// listed (as `Deleting`) until the workers have finished releasing it.
pub fn describe_clusters(state: &AppState, caller: &Caller, params: &Params) -> Body {
    let req = ddc::Request::parse(params)?;
    let listed = state
        .store
        .account_clusters(&caller.account)
        .map_err(internal)?;
    let matching: Vec<(&Cluster, ClusterStatus)> = listed
        .iter()
        .map(|l| (&l.cluster, shown_status(&l.cluster, l.releasing)))
        .filter(|(c, shown)| req.matches(c, *shown))
        .collect();
    let total = matching.len();
    let page = req.page(matching);
    Ok(ddc::response(&page, total, req.page_number))
}

pub fn describe_attribute(state: &AppState, caller: &Caller, params: &Params) -> Body {
    let id = attr::parse(params)?;
    let (cluster, shown) = shown_cluster(state, caller, &id, attr::CLUSTER_NOT_FOUND)?;
    let chain_size = state
        .store
        .cluster_sets(&cluster.id)
        .map_err(internal)?
        .iter()
        .filter(|s| s.status == BackupSetStatus::Success && s.corrupt.is_none())
        .map(|s| s.stored_size)
        .sum();
    Ok(attr::response(&cluster, shown, chain_size))
}

/// Records the deletion in one store transaction and returns at once.
pub fn delete_cluster(state: &AppState, caller: &Caller, params: &Params) -> Body {
    let req = del::Request::parse(params)?;
    let not_found = del::CLUSTER_NOT_FOUND;
    let (cluster, shown) = shown_cluster(state, caller, &req.cluster_id, not_found.clone())?;
    if shown != ClusterStatus::Running {
        return Err(ApiError::ClusterNotRunning);
    }
    let outcome =
        match state
            .store
            .begin_cluster_deletion(&cluster.id, req.retention, state.clock.now())
        {
            Err(StoreError::NotFound { .. }) => return Err(not_found),
            other => other.map_err(internal)?,
        };
    match outcome {
        Ok(ClusterDeletion::Deleted {
            retention,
            kept,
            deleted,
        }) => info!(
            cluster = %cluster.id,
            retention = retention.as_str(),
            kept = kept.len(),
            deleted = deleted.len(),
            "cluster deleted; its deleted sets' data and WAL are removed by the workers"
        ),
        Ok(ClusterDeletion::Pending { job, doomed }) => info!(
            cluster = %cluster.id,
            job = %job.id,
            doomed = doomed.len(),
            "cluster deletion (LATEST) recorded; the final backup is queued"
        ),
        Err(DeletionRefusal::NotRunning(ClusterStatus::Deleted)) => return Err(not_found),
        Err(DeletionRefusal::NotRunning(_)) => return Err(ApiError::ClusterNotRunning),
        Err(DeletionRefusal::ActiveJob(_)) => return Err(ApiError::OperateStatus),
    }
    state.work_available.notify_one();
    Ok(Map::new())
}
