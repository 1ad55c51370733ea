//! Action handlers: validate parameters, check the caller may see the resource, answer.

use crate::authn::Caller;
use crate::AppState;
use polarbackup_model::DbClusterId;
use polarbackup_store::{Cluster, JobFilter};
use polarbackup_wire::describe_backup_tasks::{self as dbt, JobSelector};
use polarbackup_wire::{Action, ApiError, Params};
use serde_json::{Map, Value};
use tracing::error;

pub fn dispatch(
    state: &AppState,
    action: Action,
    caller: &Caller,
    params: &Params,
) -> Result<Map<String, Value>, ApiError> {
    match action {
        Action::DescribeBackupTasks => describe_backup_tasks(state, caller, params),
    }
}

fn internal(e: polarbackup_store::StoreError) -> ApiError {
    error!(error = %e, "store failure");
    ApiError::Internal
}

/// The caller's own cluster, or `not_found`: a malformed id, an unknown one and another
/// account's all get the same answer, so nothing leaks about other tenants.
fn owned_cluster(
    state: &AppState,
    caller: &Caller,
    id: &str,
    not_found: ApiError,
) -> Result<Cluster, ApiError> {
    let Ok(id) = DbClusterId::parse(id) else {
        return Err(not_found);
    };
    match state.store.cluster(&id).map_err(internal)? {
        Some(c) if c.spec.account == caller.account => Ok(c),
        _ => Err(not_found),
    }
}

fn describe_backup_tasks(
    state: &AppState,
    caller: &Caller,
    params: &Params,
) -> Result<Map<String, Value>, ApiError> {
    let req = dbt::Request::parse(params)?;
    let cluster = owned_cluster(state, caller, &req.cluster_id, dbt::CLUSTER_NOT_FOUND)?;
    let job_id = match req.job {
        JobSelector::Nothing => return Ok(dbt::response(&[])),
        JobSelector::All => None,
        JobSelector::One(id) => Some(id),
    };
    let ended_since = state
        .clock
        .now()
        .checked_sub(state.config.job_history)
        .unwrap_or(jiff::Timestamp::MIN);
    let jobs = state
        .store
        .list_jobs(
            &cluster.id,
            &JobFilter {
                job_id,
                mode: req.mode,
                ended_since,
            },
        )
        .map_err(internal)?;
    Ok(dbt::response(&jobs))
}
