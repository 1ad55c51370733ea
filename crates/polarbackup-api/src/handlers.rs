//! Action handlers: validate parameters, check the caller may see the resource, answer.
//!
//! A deleted cluster is answered exactly as an unknown one, except by DescribeDetachedBackups
//! and DeleteBackup while it retains sets (`released`); a cluster being deleted answers reads
//! and refuses changes with `OperationDenied.DBClusterStatus`. The cluster APIs are in
//! `clusters`.

use crate::authn::Caller;
use crate::AppState;
use crate::{clusters, log_backups, released};
use polarbackup_model::{BackupKind, Cluster, ClusterStatus, DbClusterId};
use polarbackup_store::{CreateJobOutcome, DeleteRefusal, JobFilter, ManualJobRequest, SetFilter};
use polarbackup_wire::describe_backup_tasks::{self as dbt, JobSelector};
use polarbackup_wire::describe_backups::{self as dbs, BackupSelector};
use polarbackup_wire::render::Answer;
use polarbackup_wire::{backup_policy, create_backup, delete_backup, Action, ApiError, Params};
use serde_json::{Map, Value};
use tracing::{error, info, warn};

type Body = Result<Map<String, Value>, ApiError>;

/// `host` is the request's `Host` header: download links point back at it.
pub fn dispatch(
    state: &AppState,
    action: Action,
    caller: &Caller,
    params: &Params,
    host: Option<&str>,
) -> Result<Answer, ApiError> {
    let members = match action {
        Action::DescribeBackupTasks => return describe_backup_tasks(state, caller, params),
        Action::CreateBackup => create_backup(state, caller, params),
        Action::DescribeBackups => describe_backups(state, caller, params),
        Action::DeleteBackup => delete_backup(state, caller, params),
        Action::DescribeBackupPolicy => describe_backup_policy(state, caller, params),
        Action::ModifyBackupPolicy => modify_backup_policy(state, caller, params),
        Action::DescribeDetachedBackups => {
            released::describe_detached_backups(state, caller, params)
        }
        Action::DescribeLogBackupPolicy => log_backups::describe_policy(state, caller, params),
        Action::ModifyLogBackupPolicy => log_backups::modify_policy(state, caller, params),
        Action::DescribeBackupLogs => log_backups::describe_logs(state, caller, params, host),
        Action::DescribeBackupLogDownloadLinks => {
            log_backups::download_links(state, caller, params, host)
        }
        Action::DescribeLocalAvailableRecoveryTime => {
            log_backups::recovery_time(state, caller, params)
        }
        Action::DescribeDBClusters => clusters::describe_clusters(state, caller, params),
        Action::DescribeDBClusterAttribute => clusters::describe_attribute(state, caller, params),
        Action::DeleteDBCluster => clusters::delete_cluster(state, caller, params),
    };
    members.map(Answer::Members)
}

pub(crate) fn internal(e: polarbackup_store::StoreError) -> ApiError {
    store_failure(&e, "store failure")
}

/// A store failure as the client sees it: a full disk is the host's temporary condition
/// (503 ServiceUnavailable, which the SDKs may retry), anything else an internal error.
pub(crate) fn store_failure(e: &polarbackup_store::StoreError, what: &str) -> ApiError {
    if e.is_out_of_space() {
        warn!(error = %e, "{what}: out of disk space");
        return ApiError::ServiceUnavailable;
    }
    error!(error = %e, "{what}");
    ApiError::Internal
}

/// The caller's own cluster in any state, or `not_found`: a malformed id, an unknown one and
/// another account's all get the same answer, so nothing leaks about other tenants. The
/// cluster the call names was read with its key; any other is read now.
pub(crate) fn owned_cluster_any_state(
    state: &AppState,
    caller: &Caller,
    id: &str,
    not_found: ApiError,
) -> Result<Cluster, ApiError> {
    let Ok(id) = DbClusterId::parse(id) else {
        return Err(not_found);
    };
    let cluster = match caller.cluster_read_with_key(&id) {
        Some(read) => read.cloned(),
        None => state.store.cluster(&id).map_err(internal)?,
    };
    match cluster {
        Some(c) if c.spec.account == caller.account => Ok(c),
        _ => Err(not_found),
    }
}

/// The caller's live (Running or Deleting) cluster, or `not_found`.
pub(crate) fn owned_cluster(
    state: &AppState,
    caller: &Caller,
    id: &str,
    not_found: ApiError,
) -> Result<Cluster, ApiError> {
    let cluster = owned_cluster_any_state(state, caller, id, not_found.clone())?;
    if cluster.status == ClusterStatus::Deleted {
        return Err(not_found);
    }
    Ok(cluster)
}

/// A change refused for a cluster that is not Running: `Deleting` is a status the caller may
/// see; `Deleted` (reached meanwhile) is answered as an unknown cluster.
pub(crate) fn not_running(status: ClusterStatus, not_found: ApiError) -> ApiError {
    match status {
        ClusterStatus::Deleted => not_found,
        _ => ApiError::ClusterStatus,
    }
}

fn describe_backup_tasks(
    state: &AppState,
    caller: &Caller,
    params: &Params,
) -> Result<Answer, ApiError> {
    let req = dbt::Request::parse(params)?;
    let cluster = owned_cluster(state, caller, &req.cluster_id, dbt::CLUSTER_NOT_FOUND)?;
    let job_id = match req.job {
        JobSelector::Nothing => return Ok(Answer::BackupJobs(Vec::new())),
        JobSelector::All => None,
        JobSelector::One(id) => Some(id),
    };
    let ended_since = state
        .clock
        .now()
        .checked_sub(state.config.job_history)
        .unwrap_or(jiff::Timestamp::MIN);
    let filter = JobFilter {
        job_id,
        mode: req.mode,
        ended_since,
    };
    let jobs = state
        .store
        .list_jobs_read_with(&cluster.id, &filter, caller.mark)
        .map_err(internal)?;
    Ok(Answer::BackupJobs(jobs))
}

fn create_backup(state: &AppState, caller: &Caller, params: &Params) -> Body {
    let req = create_backup::Request::parse(params)?;
    let cluster = owned_cluster(
        state,
        caller,
        &req.cluster_id,
        create_backup::CLUSTER_NOT_FOUND,
    )?;
    let manual = ManualJobRequest {
        cluster: cluster.id.clone(),
        account: caller.account.clone(),
        client_token: req.client_token.clone(),
        fingerprint: req.fingerprint(),
        comment: req.comment.clone(),
        kind: BackupKind::Full,
    };
    let outcome = state
        .store
        .create_manual_job(
            &manual,
            state.clock.now(),
            create_backup::MANUAL_BACKUP_LIMIT,
        )
        .map_err(internal)?;
    match outcome {
        CreateJobOutcome::Created(job) => {
            info!(job = %job.id, cluster = %cluster.id, "backup job queued");
            state.work_available.notify_one();
            Ok(create_backup::response(job.id))
        }
        CreateJobOutcome::Existing(job) => Ok(create_backup::response(job.id)),
        CreateJobOutcome::TokenMismatch => Err(ApiError::IdempotentParameterMismatch),
        CreateJobOutcome::LimitReached => Err(ApiError::BackupTimesExceeded),
        CreateJobOutcome::ClusterNotRunning(status) => {
            Err(not_running(status, create_backup::CLUSTER_NOT_FOUND))
        }
    }
}

/// The store's filter for a DescribeBackups-shaped request; `None` when no set can match.
pub(crate) fn set_filter(req: &dbs::Request) -> Option<SetFilter> {
    let id = match req.backup {
        BackupSelector::Nothing => return None,
        BackupSelector::All => None,
        BackupSelector::One(id) => Some(id),
    };
    Some(SetFilter {
        id,
        status: req.status,
        mode: req.mode,
        start: req.start,
        end: req.end,
        page_size: req.page_size,
        page_number: req.page_number,
    })
}

fn describe_backups(state: &AppState, caller: &Caller, params: &Params) -> Body {
    let req = dbs::Request::parse(params)?;
    let cluster = owned_cluster(state, caller, &req.cluster_id, dbs::CLUSTER_NOT_FOUND)?;
    let Some(filter) = set_filter(&req) else {
        return Ok(dbs::response(&[], 0, req.page_number));
    };
    let page = state
        .store
        .list_backup_sets(&cluster.id, &filter)
        .map_err(internal)?;
    Ok(dbs::response(&page.sets, page.total, req.page_number))
}

/// Hides the sets at once; a worker removes their data and then their rows. A released
/// cluster's retained sets are deleted the same way.
fn delete_backup(state: &AppState, caller: &Caller, params: &Params) -> Body {
    let req = delete_backup::Request::parse(params)?;
    let not_found = delete_backup::CLUSTER_NOT_FOUND;
    let cluster = owned_cluster_any_state(state, caller, &req.cluster_id, not_found.clone())?;
    if cluster.status == ClusterStatus::Deleted {
        released::require_retained_sets(state, &cluster, not_found.clone())?;
    }
    match state
        .store
        .begin_delete_sets(&cluster.id, &req.backup_ids)
        .map_err(internal)?
    {
        Ok(sets) => {
            info!(cluster = %cluster.id, count = sets.len(), "backup sets marked for deletion");
            state.work_available.notify_one();
            Ok(Map::new())
        }
        Err(DeleteRefusal::NotFound(_)) => Err(ApiError::BackupSetNotFound),
        Err(DeleteRefusal::Automated(_)) => Err(ApiError::AutomatedBackupNotDeletable),
        Err(DeleteRefusal::ClusterNotRunning(status)) => Err(not_running(status, not_found)),
        Err(DeleteRefusal::Dependency { id, children }) => Err(ApiError::BackupDependency {
            id: id.0,
            children: children.iter().map(|c| c.0).collect(),
        }),
    }
}

fn describe_backup_policy(state: &AppState, caller: &Caller, params: &Params) -> Body {
    let id = params.required("DBClusterId")?;
    let cluster = owned_cluster(state, caller, id, backup_policy::CLUSTER_NOT_FOUND)?;
    let (policy, _) = state.store.backup_policy(&cluster.id).map_err(internal)?;
    Ok(backup_policy::describe(&policy, state.clock.now()))
}

/// A partial update: only the fields sent change, applied in one store transaction so that
/// concurrent changes of different fields all survive. The scheduler reads the new policy on
/// its next pass.
fn modify_backup_policy(state: &AppState, caller: &Caller, params: &Params) -> Body {
    let (id, change) = backup_policy::parse_change(params)?;
    let cluster = owned_cluster(state, caller, &id, backup_policy::CLUSTER_NOT_FOUND)?;
    state
        .store
        .modify_backup_policy(&cluster.id, &change)
        .map_err(internal)?
        .map_err(|status| not_running(status, backup_policy::CLUSTER_NOT_FOUND))?;
    info!(cluster = %cluster.id, "backup policy changed");
    state.work_available.notify_one();
    Ok(Map::new())
}
