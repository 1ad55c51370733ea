//! Choosing how an incremental backup is taken on its parent, or that it cannot be: the
//! server's native incremental backup when it summarizes WAL from the parent's start on, else
//! the LSN block diff when the parent is on this system's current timeline; otherwise (another
//! system or major version, a timeline switch since, an unreadable parent) a full backup.

use super::diff::manifest_sizes;
use crate::pg::{Lsn, SystemInfo};
use crate::prereq::ServerFacts;
use polarbackup_repo::Repo;
use std::collections::HashMap;
use tracing::{info, warn};

/// How the set records its method in the manifest's `meta.incremental`.
pub(crate) const NATIVE: &str = "native";
pub(crate) const LSN_DIFF: &str = "lsn";

/// The parent an incremental backup is taken on, and how.
pub(crate) struct Base {
    pub(crate) parent: String,
    pub(crate) method: Method,
}

pub(crate) enum Method {
    /// `UPLOAD_MANIFEST` with the parent's `backup_manifest`, then `BASE_BACKUP (INCREMENTAL)`.
    Native { manifest: Vec<u8> },
    /// The full stream, rewritten by [`super::diff::TarDiff`].
    Lsn {
        parent_start: Lsn,
        sizes: HashMap<String, u64>,
    },
}

impl Base {
    pub(crate) fn method_name(&self) -> &'static str {
        match self.method {
            Method::Native { .. } => NATIVE,
            Method::Lsn { .. } => LSN_DIFF,
        }
    }
}

/// The parent's facts as its manifest records them.
struct ParentFacts {
    system_id: String,
    timeline: u32,
    start_lsn: Lsn,
    major: i64,
}

fn parent_facts(meta: &serde_json::Value) -> Option<ParentFacts> {
    Some(ParentFacts {
        system_id: meta.get("system_identifier")?.as_str()?.to_owned(),
        timeline: u32::try_from(meta.get("timeline")?.as_u64()?).ok()?,
        start_lsn: meta.get("start_lsn")?.as_str()?.parse().ok()?,
        major: meta.get("server_version_num")?.as_i64()? / 10_000,
    })
}

/// How to take this backup on `parent`, or `None` (logged) for a full backup.
pub(crate) async fn choose(
    repo: &Repo,
    backup_id: &str,
    parent: &str,
    facts: &ServerFacts,
    system: &SystemInfo,
) -> Option<Base> {
    let full = |why: String| {
        warn!(
            backup = backup_id,
            parent, "taking a full backup instead of an incremental one: {why}"
        );
        None
    };
    let manifest = match repo.manifest(parent).await {
        Ok(Some(m)) => m,
        Ok(None) => return full("the parent is not in the repository".into()),
        Err(e) => return full(format!("the parent's manifest cannot be read: {e}")),
    };
    let Some(p) = parent_facts(&manifest.meta) else {
        return full("the parent's manifest lacks its WAL position or system".into());
    };
    if p.system_id != system.system_id {
        return full(format!(
            "the parent is of database system {}, the server is {}",
            p.system_id, system.system_id
        ));
    }
    if p.major != i64::from(facts.version_num / 10_000) {
        return full(format!(
            "the parent is of PostgreSQL {}, the server runs {}",
            p.major, facts.version
        ));
    }
    if p.start_lsn > system.xlog_pos {
        return full("the parent starts after the server's current WAL position".into());
    }
    let backup_manifest = match repo.read_file(parent, "backup_manifest").await {
        Ok(m) => m,
        Err(e) => return full(format!("the parent's backup_manifest cannot be read: {e}")),
    };
    let summarized = facts.summaries_cover(p.timeline, p.start_lsn);
    let method = if facts.summarize_wal && summarized {
        Method::Native {
            manifest: backup_manifest,
        }
    } else if p.timeline == system.timeline {
        match manifest_sizes(&backup_manifest) {
            Ok(sizes) => Method::Lsn {
                parent_start: p.start_lsn,
                sizes,
            },
            Err(e) => return full(e),
        }
    } else {
        return full(format!(
            "the server moved from timeline {} to {} since the parent, and does not summarize WAL",
            p.timeline, system.timeline
        ));
    };
    let base = Base {
        parent: parent.to_owned(),
        method,
    };
    info!(
        backup = backup_id,
        parent,
        method = base.method_name(),
        "taking an incremental backup"
    );
    Some(base)
}
