//! Retention: which backup sets of one cluster the level-1 retention period expires, and which
//! of those are spared because a kept incremental set is built on them.

use super::backup_policy::BackupPolicy;
use crate::backup_set::{chain_available, BackupSet};
use crate::ids::BackupJobId;
use jiff::{SignedDuration, Timestamp};
use std::collections::BTreeMap;

const DAY: i64 = 86_400;

/// The ids of the sets that have expired at `now`, in input order.
///
/// `sets` are all backup sets of **one** cluster as `(id, finished_at, automated, success)`.
/// Rules (age = `now - finished_at`, "older than" is strict):
///
/// * Manual sets never expire (they are kept until deleted; API.md §8 leaves this open, this is
///   the rule chosen).
/// * The newest successful automated set never expires (ties: the first in input order). Since
///   manual sets never expire either, the newest successful set of the cluster always survives,
///   and the automated chain keeps one restorable set even if the user deletes the manual ones.
/// * Automated sets, successful or failed, older than the retention period expire.
/// * With a high frequency (`2/24H`…`4/24H`), automated successful sets older than 24 h are
///   thinned to one per UTC day: only the first one completed after 00:00 of its day is kept
///   (API.md §3.6/§7 item 17); the others expire.
/// * Sets finished in the future (clock skew) are young: kept.
pub fn expired<Id: Clone>(
    policy: &BackupPolicy,
    sets: &[(Id, Timestamp, bool, bool)],
    now: Timestamp,
) -> Vec<Id> {
    let retention = policy.retention_days.duration();
    let one_day = SignedDuration::from_hours(24);

    let mut newest: Option<usize> = None;
    let mut first_of_day: BTreeMap<i64, usize> = BTreeMap::new();
    for (i, (_, finished, automated, success)) in sets.iter().enumerate() {
        if !(*automated && *success) {
            continue;
        }
        if newest.is_none_or(|n| *finished > sets[n].1) {
            newest = Some(i);
        }
        let day = finished.as_second().div_euclid(DAY);
        let e = first_of_day.entry(day).or_insert(i);
        if *finished < sets[*e].1 {
            *e = i;
        }
    }

    sets.iter()
        .enumerate()
        .filter(|(i, (_, finished, automated, success))| {
            if !*automated || Some(*i) == newest {
                return false;
            }
            let age = now.duration_since(*finished);
            if age > retention {
                return true;
            }
            *success
                && policy.frequency.is_high()
                && age > one_day
                && first_of_day.get(&finished.as_second().div_euclid(DAY)) != Some(i)
        })
        .map(|(_, (id, ..))| id.clone())
        .collect()
}

/// Of the `expired` sets of one cluster (`sets` are all its listed sets), the ones that may
/// really go: a set is spared while a kept set (not expired, or spared itself) is built on it,
/// directly or through other sets (`parent`). Only a kept set whose whole chain is available
/// ([`chain_available`]) spares its ancestors: one that cannot be restored anyway (a corrupt,
/// failed or missing set below it) keeps nothing alive. So an expired child and its expired
/// parent go in the same pass, and a parent spared by a child goes once that child expires.
/// In input order.
pub fn spare_parents(sets: &[BackupSet], expired: &[BackupJobId]) -> Vec<BackupJobId> {
    let mut spared: Vec<BackupJobId> = Vec::new();
    for kept in sets.iter().filter(|s| !expired.contains(&s.id)) {
        if !chain_available(kept, sets) {
            continue;
        }
        let mut parent = kept.parent;
        while let Some(p) = parent {
            if spared.contains(&p) {
                break;
            }
            spared.push(p);
            parent = sets.iter().find(|s| s.id == p).and_then(|s| s.parent);
        }
    }
    expired
        .iter()
        .filter(|id| !spared.contains(id))
        .copied()
        .collect()
}
