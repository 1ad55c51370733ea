//! Timeline history files (`0000000N.history`): which timelines came before N and where each
//! ended, read as PostgreSQL reads them (`readTimeLineHistory`).

use crate::pg::Lsn;

/// One line of a history file: timeline `timeline` ended at `switch`, where its successor began.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ended {
    pub timeline: u32,
    pub switch: Lsn,
}

/// The history of a server's current timeline: its ancestors, oldest first, and itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct History {
    pub ancestors: Vec<Ended>,
    pub current: u32,
}

impl History {
    /// Timeline 1, which has no history file.
    pub fn first() -> History {
        History {
            ancestors: Vec::new(),
            current: 1,
        }
    }

    /// Reads the history file of `current`. Blank lines and `#` comments are skipped; every
    /// other line is `<timeline>\t<switch point>\t<reason>`, timelines increasing.
    pub fn parse(current: u32, content: &[u8]) -> Result<History, String> {
        let text = String::from_utf8_lossy(content);
        let mut ancestors: Vec<Ended> = Vec::new();
        for line in text.lines() {
            let line = line.trim_start();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut fields = line.split_whitespace();
            let (Some(tli), Some(switch)) = (fields.next(), fields.next()) else {
                return Err(format!("syntax error in history file: {line:?}"));
            };
            let timeline: u32 = tli
                .parse()
                .map_err(|_| format!("invalid timeline in history file: {line:?}"))?;
            let switch: Lsn = switch
                .parse()
                .map_err(|_| format!("invalid switch point in history file: {line:?}"))?;
            if ancestors.last().is_some_and(|p| p.timeline >= timeline) || timeline >= current {
                return Err(format!(
                    "timelines out of order in the history of timeline {current}: {line:?}"
                ));
            }
            ancestors.push(Ended { timeline, switch });
        }
        Ok(History { ancestors, current })
    }

    /// Where timeline `tl` ends on this history: `Some(None)` for the current timeline (it
    /// goes on), `None` if `tl` is not on it.
    pub fn end_of(&self, tl: u32) -> Option<Option<Lsn>> {
        if tl == self.current {
            return Some(None);
        }
        self.ancestors
            .iter()
            .find(|e| e.timeline == tl)
            .map(|e| Some(e.switch))
    }

    /// The timeline holding `pos` on this history (PostgreSQL's `tliOfPointInHistory`): the
    /// first one that ended after it.
    pub fn timeline_at(&self, pos: Lsn) -> u32 {
        self.ancestors
            .iter()
            .find(|e| pos < e.switch)
            .map_or(self.current, |e| e.timeline)
    }

    /// Where the current timeline began: its parent's switch point (0/0 for timeline 1).
    pub fn begin(&self) -> Lsn {
        self.ancestors.last().map_or(Lsn::INVALID, |e| e.switch)
    }
}

/// PostgreSQL's name for the history file of `timeline`.
pub fn file_name(timeline: u32) -> String {
    format!("{timeline:08X}.history")
}

#[cfg(test)]
mod tests {
    use super::*;

    const THREE: &[u8] = b"1\t0/3000158\tno recovery target specified\n\n\
        # a comment\n2\t0/5000000\tat restore point \"x\"\n";

    #[test]
    fn parses_a_history_file() {
        let h = History::parse(3, THREE).unwrap();
        assert_eq!(
            h.ancestors,
            vec![
                Ended {
                    timeline: 1,
                    switch: Lsn(0x300_0158)
                },
                Ended {
                    timeline: 2,
                    switch: Lsn(0x500_0000)
                }
            ]
        );
        assert_eq!(h.begin(), Lsn(0x500_0000));
        assert_eq!(History::first().begin(), Lsn::INVALID);
        for bad in [
            &b"x\t0/1\n"[..],
            b"1\n",
            b"1\tzz\n",
            b"2\t0/1\n1\t0/2\n",
            b"3\t0/1\n",
        ] {
            assert!(
                History::parse(3, bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn finds_timelines_of_positions() {
        let h = History::parse(3, THREE).unwrap();
        assert_eq!(h.timeline_at(Lsn(0)), 1);
        assert_eq!(h.timeline_at(Lsn(0x300_0157)), 1);
        assert_eq!(h.timeline_at(Lsn(0x300_0158)), 2);
        assert_eq!(h.timeline_at(Lsn(0x500_0000)), 3);
        assert_eq!(h.end_of(1), Some(Some(Lsn(0x300_0158))));
        assert_eq!(h.end_of(3), Some(None));
        assert_eq!(h.end_of(4), None);
        assert_eq!(History::first().timeline_at(Lsn(1 << 40)), 1);
        assert_eq!(file_name(0x1A), "0000001A.history");
    }
}
