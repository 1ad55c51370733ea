//! What the archive makes restorable: the chain of WAL from a full backup onward, the recovery
//! window (`DescribeLocalAvailableRecoveryTime`) and the plan of a point-in-time restore. Pure,
//! so the API's window and the restore's choice can never disagree.

use super::{BackupLogId, LogRetention, WalGap, WalObject, WalObjectKind};
use crate::backup_set::{chain_available, BackupSet};
use crate::lsn::Lsn;
use jiff::Timestamp;
use std::collections::BTreeMap;
use thiserror::Error;

/// Where a restore should stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecoveryTarget {
    /// Replay everything archived.
    Latest,
    /// Stop at this instant (the database's clock).
    Time(Timestamp),
}

/// The span of instants a restore can reach, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecoveryWindow {
    pub begin: Timestamp,
    pub end: Timestamp,
}

/// A restore: a full backup, the WAL objects to replay after it, oldest first (history files
/// included), and where to stop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestorePlan {
    pub base: BackupSet,
    pub wal: Vec<WalObject>,
    /// The timeline recovery follows to the target.
    pub timeline: u32,
    /// `None`: replay everything in `wal`.
    pub target_time: Option<Timestamp>,
    /// The newest instant the chosen WAL reaches.
    pub reaches: Timestamp,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum PlanError {
    #[error("the cluster has no usable full backup to restore from")]
    NoBackup,
    #[error("{target} is outside the recovery window {}", describe(.window))]
    OutsideWindow {
        target: Timestamp,
        window: Option<RecoveryWindow>,
    },
}

fn describe(window: &Option<RecoveryWindow>) -> String {
    match window {
        Some(w) => format!("{} to {}", w.begin, w.end),
        None => "(empty: no usable full backup)".to_owned(),
    }
}

/// The contiguous WAL after one full backup.
struct Chain<'a> {
    base: &'a BackupSet,
    begin: Timestamp,
    /// Objects replayed after the base, oldest first (no history files).
    objects: Vec<&'a WalObject>,
    end: Timestamp,
}

/// The archive, indexed: objects per timeline by start, the start of each timeline, gaps.
struct Archive<'a> {
    by_timeline: BTreeMap<u32, BTreeMap<Lsn, &'a WalObject>>,
    /// Timeline → where it began (from its history file).
    begins: BTreeMap<u32, Lsn>,
    histories: Vec<&'a WalObject>,
    gaps: &'a [WalGap],
}

impl<'a> Archive<'a> {
    fn new(wal: &'a [WalObject], gaps: &'a [WalGap]) -> Self {
        let mut by_timeline: BTreeMap<u32, BTreeMap<Lsn, &WalObject>> = BTreeMap::new();
        let mut begins = BTreeMap::new();
        let mut histories = Vec::new();
        for w in wal {
            let o = &w.object;
            match o.kind {
                WalObjectKind::History => {
                    begins.insert(o.timeline, o.start);
                    histories.push(w);
                }
                WalObjectKind::Segment | WalObjectKind::Partial => {
                    let slot = by_timeline.entry(o.timeline).or_default();
                    // Two objects at one start (a partial next to its whole segment while the
                    // archiver replaces it): the longer one.
                    match slot.get(&o.start) {
                        Some(prev) if prev.object.end >= o.end => {}
                        _ => {
                            slot.insert(o.start, w);
                        }
                    }
                }
            }
        }
        Self {
            by_timeline,
            begins,
            histories,
            gaps,
        }
    }

    /// The timeline that follows `tl` and where it began.
    fn successor(&self, tl: u32) -> Option<(u32, Lsn)> {
        self.begins.range(tl + 1..).next().map(|(&t, &l)| (t, l))
    }

    /// The object on `tl` holding the WAL at `pos`.
    fn covering(&self, tl: u32, pos: Lsn) -> Option<&'a WalObject> {
        let objects = self.by_timeline.get(&tl)?;
        let (_, w) = objects.range(..=pos).next_back()?;
        (w.object.end > pos).then_some(*w)
    }

    /// Where a gap cuts the WAL after `pos` on timeline `tl` or a later one.
    fn first_gap_after(&self, tl: u32, pos: Lsn) -> Option<Lsn> {
        self.gaps
            .iter()
            .filter(|g| g.timeline >= tl && g.to > pos)
            .map(|g| g.from.max(pos))
            .min()
    }

    /// Follows the WAL from the end of `base` for as long as it is contiguous. `base` is
    /// usable only when it and every set it is incremental on is available (`sets`).
    fn chain(&self, base: &'a BackupSet, sets: &[BackupSet]) -> Option<Chain<'a>> {
        let (Some(range), Some(consistent)) = (base.wal, base.consistent_time) else {
            return None;
        };
        let begin = first_instant_after(consistent);
        if !chain_available(base, sets) {
            return None;
        }
        let stop = self.first_gap_after(range.timeline, range.end);
        let mut tl = range.timeline;
        let mut pos = range.end;
        let mut objects = Vec::new();
        let mut end = begin;
        loop {
            if stop.is_some_and(|s| pos >= s) {
                break;
            }
            let next = self.successor(tl);
            if let Some((next_tl, switch)) = next {
                if pos >= switch {
                    // Replay goes on along the next timeline from its switch point.
                    tl = next_tl;
                    pos = switch;
                    continue;
                }
            }
            let Some(w) = self.covering(tl, pos) else {
                break;
            };
            objects.push(w);
            end = end.max(w.object.end_time);
            pos = match next {
                Some((_, switch)) => w.object.end.min(switch),
                None => w.object.end,
            };
            if let Some(s) = stop {
                pos = pos.min(s);
            }
        }
        Some(Chain {
            base,
            begin,
            objects,
            end,
        })
    }
}

/// The first whole second surely at or after a backup's consistency: consistent times are
/// kept to the second, cut off, so the real one may lie up to a second later, and a target
/// before it would make PostgreSQL stop short of a consistent state.
fn first_instant_after(consistent: Timestamp) -> Timestamp {
    Timestamp::from_second(consistent.as_second().saturating_add(1)).unwrap_or(consistent)
}

fn chains<'a>(archive: &Archive<'a>, sets: &'a [BackupSet]) -> Vec<Chain<'a>> {
    sets.iter().filter_map(|s| archive.chain(s, sets)).collect()
}

/// The window of the chains that reach the newest instant: it grows backwards through every
/// chain that overlaps it, so each instant inside is reachable.
fn window_of(chains: &[Chain<'_>]) -> Option<RecoveryWindow> {
    let end = chains.iter().map(|c| c.end).max()?;
    let mut begin = chains
        .iter()
        .filter(|c| c.end == end)
        .map(|c| c.begin)
        .min()?;
    loop {
        let earlier = chains
            .iter()
            .filter(|c| c.end >= begin && c.begin < begin)
            .map(|c| c.begin)
            .min();
        match earlier {
            Some(b) => begin = b,
            None => return Some(RecoveryWindow { begin, end }),
        }
    }
}

/// `DescribeLocalAvailableRecoveryTime`: from the consistent time of the oldest usable full
/// backup whose WAL still joins up with the newest, to the newest archived WAL. `None` when
/// nothing is restorable.
pub fn recovery_window(
    sets: &[BackupSet],
    wal: &[WalObject],
    gaps: &[WalGap],
) -> Option<RecoveryWindow> {
    let archive = Archive::new(wal, gaps);
    window_of(&chains(&archive, sets))
}

/// Picks the newest usable full backup at or before the target whose WAL reaches it, and the
/// WAL to replay; a target outside the window (even one an older, cut-off chain could reach)
/// is refused with the window.
pub fn plan_restore(
    sets: &[BackupSet],
    wal: &[WalObject],
    gaps: &[WalGap],
    target: RecoveryTarget,
) -> Result<RestorePlan, PlanError> {
    let archive = Archive::new(wal, gaps);
    let chains = chains(&archive, sets);
    if chains.is_empty() {
        return Err(PlanError::NoBackup);
    }
    let window = window_of(&chains);
    let best = match target {
        RecoveryTarget::Latest => {
            let end = window.map(|w| w.end);
            chains
                .iter()
                .filter(|c| Some(c.end) == end)
                .max_by_key(|c| c.begin)
        }
        // Only inside the window, even where an older chain could reach: what the API shows
        // is exactly what a restore accepts.
        RecoveryTarget::Time(t) if window.is_some_and(|w| w.begin <= t && t <= w.end) => chains
            .iter()
            .filter(|c| c.begin <= t && t <= c.end)
            .max_by_key(|c| c.begin),
        RecoveryTarget::Time(_) => None,
    };
    let Some(chain) = best else {
        let target = match target {
            RecoveryTarget::Time(t) => t,
            RecoveryTarget::Latest => Timestamp::UNIX_EPOCH,
        };
        return Err(PlanError::OutsideWindow { target, window });
    };
    // Replay up to the first object that starts after the target: it holds the first commit
    // past it, where recovery stops.
    let mut objects: Vec<&WalObject> = Vec::new();
    for w in &chain.objects {
        objects.push(w);
        if let RecoveryTarget::Time(t) = target {
            if w.object.start_time > t {
                break;
            }
        }
    }
    let timeline = objects
        .last()
        .map_or(chain.base.wal.map_or(1, |r| r.timeline), |w| {
            w.object.timeline
        });
    let reaches = objects
        .last()
        .map_or(chain.begin, |w| w.object.end_time.max(chain.begin));
    let mut wal: Vec<WalObject> = archive
        .histories
        .iter()
        .filter(|h| h.object.timeline <= timeline)
        .map(|h| (*h).clone())
        .collect();
    wal.extend(objects.into_iter().cloned());
    Ok(RestorePlan {
        base: chain.base.clone(),
        wal,
        timeline,
        target_time: match target {
            RecoveryTarget::Time(t) => Some(t),
            RecoveryTarget::Latest => None,
        },
        reaches,
    })
}

/// The WAL objects retention removes: written before the log retention period began
/// (`end_time` older than its cutoff) and not needed to reach any instant inside it, i.e.
/// entirely before the start of the full backup a restore to the cutoff would use. History
/// files stay (they are tiny and every later timeline needs them); `Forever` removes nothing.
pub fn expired_wal(
    sets: &[BackupSet],
    wal: &[WalObject],
    gaps: &[WalGap],
    retention: LogRetention,
    now: Timestamp,
) -> Vec<BackupLogId> {
    let Some(cutoff) = retention.cutoff(now) else {
        return Vec::new();
    };
    let archive = Archive::new(wal, gaps);
    let chains = chains(&archive, sets);
    let base = chains
        .iter()
        .filter(|c| c.begin <= cutoff)
        .max_by_key(|c| c.begin)
        .or_else(|| chains.iter().min_by_key(|c| c.begin));
    let keep_from = base.and_then(|c| c.base.wal).map(|r| r.start);
    wal.iter()
        .filter(|w| {
            let o = &w.object;
            o.kind != WalObjectKind::History
                && o.end_time < cutoff
                && keep_from.is_none_or(|from| o.end <= from)
        })
        .map(|w| w.id)
        .collect()
}
