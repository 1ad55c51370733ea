//! Where a run of the archiver starts streaming, given what the archive holds, where the slot
//! keeps WAL from, and the server's timeline history; and the gap, if the WAL in between is lost.

use super::history::History;
use crate::pg::Lsn;

/// WAL the archive will never have: everything from `from` (on `timeline`) to `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    pub timeline: u32,
    pub from: Lsn,
    pub to: Lsn,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Start {
    pub timeline: u32,
    /// Where streaming starts: a segment boundary.
    pub from: Lsn,
    /// The archive holds the WAL before this already.
    pub stored: Lsn,
    /// The archive lacks the history file of `timeline`: store it first.
    pub history: bool,
    /// Record this before streaming.
    pub gap: Option<Gap>,
}

/// From where the archive ends (`resume`), or from the slot's `restart` when it is empty. An
/// archive on a timeline the server's history does not hold cannot go on: a gap.
pub fn plan(resume: Option<(u32, Lsn)>, restart: Lsn, history: &History, seg_size: u64) -> Start {
    let Some((tl, end)) = resume else {
        return fresh(None, restart, history, seg_size);
    };
    match history.end_of(tl) {
        // WAL archived past the end of its timeline belongs to a branch the server left;
        // the successor timeline takes over from the switch point.
        Some(ends) => {
            let pos = ends.map_or(end, |switch| end.min(switch));
            Start {
                timeline: tl,
                from: pos.segment_start(seg_size),
                stored: pos,
                history: false,
                gap: None,
            }
        }
        None => {
            let reason = format!(
                "the server's timeline {} does not descend from timeline {tl}, where the archive ends",
                history.current
            );
            after_loss(Some((tl, end)), restart, history, seg_size, reason)
        }
    }
}

/// The server no longer has the WAL after the archive's end: go on from the slot's `restart`,
/// with a gap in between (none if the archive is empty).
pub fn after_loss(
    archived: Option<(u32, Lsn)>,
    restart: Lsn,
    history: &History,
    seg_size: u64,
    reason: String,
) -> Start {
    let mut start = fresh(archived, restart, history, seg_size);
    start.gap = archived.map(|(timeline, from)| Gap {
        timeline,
        from,
        to: start.from,
        reason,
    });
    start
}

fn fresh(archived: Option<(u32, Lsn)>, restart: Lsn, history: &History, seg_size: u64) -> Start {
    let timeline = history.timeline_at(restart);
    let from = restart.segment_start(seg_size);
    Start {
        timeline,
        from,
        stored: from,
        history: timeline > 1 && archived.map(|a| a.0) != Some(timeline),
        gap: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEG: u64 = 16 << 20;

    fn on_three() -> History {
        History::parse(3, b"1\t0/3000158\tx\n2\t0/5000000\ty\n").unwrap()
    }

    #[test]
    fn an_empty_archive_starts_at_the_slot_on_its_timeline() {
        let s = plan(None, Lsn(0x100_0028), &History::first(), SEG);
        assert_eq!(
            s,
            Start {
                timeline: 1,
                from: Lsn(0x100_0000),
                stored: Lsn(0x100_0000),
                history: false,
                gap: None
            }
        );
        // A restart point inside timeline 2's stretch: stream timeline 2, history first.
        let s = plan(None, Lsn(0x400_0000), &on_three(), SEG);
        assert_eq!((s.timeline, s.from, s.history), (2, Lsn(0x400_0000), true));
        let s = plan(None, Lsn(0x600_0010), &on_three(), SEG);
        assert_eq!((s.timeline, s.from, s.history), (3, Lsn(0x600_0000), true));
    }

    #[test]
    fn an_archive_resumes_at_the_start_of_its_last_segment() {
        // The slot is far ahead (invalidated and made anew, or a new server): still from the
        // archive's end; if that WAL is gone the stream says so and `after_loss` takes over.
        let s = plan(
            Some((1, Lsn(0x200_0100))),
            Lsn(0x900_0000),
            &History::first(),
            SEG,
        );
        assert_eq!(
            s,
            Start {
                timeline: 1,
                from: Lsn(0x200_0000),
                stored: Lsn(0x200_0100),
                history: false,
                gap: None
            }
        );
        // On an ancestor timeline: streamed there, the end of stream leads on.
        let s = plan(Some((2, Lsn(0x480_0000))), Lsn(0), &on_three(), SEG);
        assert_eq!(
            (s.timeline, s.from, s.stored),
            (2, Lsn(0x400_0000), Lsn(0x480_0000))
        );
        // Archived past the switch point (the old primary ran ahead of its standby): from the
        // switch point, which is where timeline 3 takes over.
        let s = plan(Some((1, Lsn(0x380_0000))), Lsn(0), &on_three(), SEG);
        assert_eq!(
            (s.timeline, s.from, s.stored),
            (1, Lsn(0x300_0000), Lsn(0x300_0158))
        );
        assert_eq!(s.gap, None);
    }

    #[test]
    fn an_archive_off_the_servers_history_is_a_gap() {
        let s = plan(
            Some((4, Lsn(0x700_0000))),
            Lsn(0x800_0010),
            &on_three(),
            SEG,
        );
        let gap = s.gap.clone().unwrap();
        assert_eq!(
            (gap.timeline, gap.from, gap.to),
            (4, Lsn(0x700_0000), Lsn(0x800_0000))
        );
        assert!(
            gap.reason
                .contains("timeline 3 does not descend from timeline 4"),
            "{}",
            gap.reason
        );
        assert_eq!((s.timeline, s.from, s.history), (3, Lsn(0x800_0000), true));
    }

    #[test]
    fn lost_wal_is_a_gap_up_to_the_restart_point() {
        let s = after_loss(
            Some((1, Lsn(0x200_0100))),
            Lsn(0x900_0028),
            &History::first(),
            SEG,
            "removed".into(),
        );
        assert_eq!(
            s.gap,
            Some(Gap {
                timeline: 1,
                from: Lsn(0x200_0100),
                to: Lsn(0x900_0000),
                reason: "removed".into()
            })
        );
        assert_eq!(
            (s.from, s.stored, s.history),
            (Lsn(0x900_0000), Lsn(0x900_0000), false)
        );
        // Nothing archived yet: nothing to lose.
        let s = after_loss(None, Lsn(0x900_0028), &History::first(), SEG, "x".into());
        assert_eq!(s.gap, None);
    }
}
