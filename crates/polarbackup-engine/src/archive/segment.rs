//! The segment being assembled in memory from streamed WAL, and the pieces of it to store:
//! each segment once complete, its head (a partial) while it grows.

use crate::pg::Lsn;
use jiff::Timestamp;
use polarbackup_model::log_backup::WalObjectKind;

/// WAL to store as one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    pub timeline: u32,
    pub kind: WalObjectKind,
    pub start: Lsn,
    pub end: Lsn,
    pub bytes: Vec<u8>,
    /// The server's clock when it sent the first and the last WAL of the piece, if it said.
    pub first_time: Option<Timestamp>,
    pub last_time: Option<Timestamp>,
}

/// Collects contiguous WAL of one timeline, a segment at a time.
pub struct Assembler {
    timeline: u32,
    seg_size: u64,
    /// Where the segment in `data` starts.
    start: Lsn,
    data: Vec<u8>,
    first_time: Option<Timestamp>,
    last_time: Option<Timestamp>,
    /// Everything before this is in the archive already.
    stored: Lsn,
}

impl Assembler {
    /// Starts at `from`, a segment boundary; WAL before `stored` is archived already and is
    /// not handed out again.
    pub fn new(timeline: u32, seg_size: u64, from: Lsn, stored: Lsn) -> Assembler {
        debug_assert_eq!(from.segment_offset(seg_size), 0);
        Assembler {
            timeline,
            seg_size,
            start: from,
            data: Vec::new(),
            first_time: None,
            last_time: None,
            stored: stored.max(from),
        }
    }

    pub fn timeline(&self) -> u32 {
        self.timeline
    }

    /// The end of the WAL received.
    pub fn received(&self) -> Lsn {
        self.start + self.data.len() as u64
    }

    /// True when WAL has arrived that is not archived yet.
    pub fn has_unstored(&self) -> bool {
        self.received() > self.stored
    }

    /// Appends WAL starting at `start`, sent at `time` by the server's clock. Returns the
    /// segments it completed that hold WAL not archived yet, oldest first.
    pub fn push(
        &mut self,
        start: Lsn,
        mut data: &[u8],
        time: Option<Timestamp>,
    ) -> Result<Vec<Piece>, String> {
        if start != self.received() {
            return Err(format!(
                "WAL at {start} does not continue {}",
                self.received()
            ));
        }
        let mut done = Vec::new();
        while !data.is_empty() {
            let room = (self.seg_size - self.data.len() as u64) as usize;
            let n = room.min(data.len());
            self.data.extend_from_slice(&data[..n]);
            data = &data[n..];
            self.first_time = self.first_time.or(time);
            self.last_time = time.or(self.last_time);
            if self.data.len() as u64 == self.seg_size {
                let bytes = std::mem::take(&mut self.data);
                let piece = Piece {
                    timeline: self.timeline,
                    kind: WalObjectKind::Segment,
                    start: self.start,
                    end: self.start + self.seg_size,
                    bytes,
                    first_time: self.first_time.take(),
                    last_time: self.last_time.take(),
                };
                self.start = piece.end;
                if piece.end > self.stored {
                    done.push(piece);
                }
            }
        }
        Ok(done)
    }

    /// The head of the segment in progress, if it holds WAL not archived yet.
    pub fn partial(&self) -> Option<Piece> {
        (self.has_unstored() && !self.data.is_empty()).then(|| Piece {
            timeline: self.timeline,
            kind: WalObjectKind::Partial,
            start: self.start,
            end: self.received(),
            bytes: self.data.clone(),
            first_time: self.first_time,
            last_time: self.last_time,
        })
    }

    /// Notes that the WAL before `end` is archived.
    pub fn mark_stored(&mut self, end: Lsn) {
        self.stored = self.stored.max(end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEG: u64 = 1 << 20;

    fn t(s: u64) -> Option<Timestamp> {
        Some(Timestamp::from_second(1_700_000_000 + s as i64).unwrap())
    }

    #[test]
    fn completes_segments_and_offers_the_head_as_a_partial() {
        let mut a = Assembler::new(2, SEG, Lsn(3 * SEG), Lsn(3 * SEG));
        assert!(a.partial().is_none());
        let chunk = vec![5u8; 300 << 10];
        let mut pos = Lsn(3 * SEG);
        let mut done = Vec::new();
        for i in 0..4 {
            done.extend(a.push(pos, &chunk, t(i)).unwrap());
            pos = pos + chunk.len() as u64;
        }
        // 4 × 300 KiB: one whole segment (3), and 176 KiB of the next.
        assert_eq!(done.len(), 1);
        let seg = &done[0];
        assert_eq!(
            (seg.kind, seg.timeline, seg.start, seg.end),
            (WalObjectKind::Segment, 2, Lsn(3 * SEG), Lsn(4 * SEG))
        );
        assert_eq!(seg.bytes.len() as u64, SEG);
        assert_eq!((seg.first_time, seg.last_time), (t(0), t(3)));
        a.mark_stored(seg.end);
        let p = a.partial().unwrap();
        assert_eq!(
            (p.kind, p.start, p.end),
            (WalObjectKind::Partial, Lsn(4 * SEG), pos)
        );
        assert_eq!(p.bytes.len() as u64, pos - Lsn(4 * SEG));
        // The chunk that crossed the boundary starts the next segment's clock.
        assert_eq!((p.first_time, p.last_time), (t(3), t(3)));
        a.mark_stored(p.end);
        assert!(!a.has_unstored() && a.partial().is_none());
        assert!(a.push(pos + 1, b"x", None).is_err(), "not contiguous");
    }

    #[test]
    fn wal_archived_before_is_not_handed_out_again() {
        // Resumed inside segment 1, whose head up to SEG + 100 is archived.
        let mut a = Assembler::new(1, SEG, Lsn(SEG), Lsn(SEG + 100));
        a.push(Lsn(SEG), &[1u8; 100], None).unwrap();
        assert!(a.partial().is_none(), "nothing new yet");
        a.push(Lsn(SEG + 100), &[2u8; 10], None).unwrap();
        let p = a.partial().unwrap();
        assert_eq!(
            (p.start, p.end, p.bytes.len()),
            (Lsn(SEG), Lsn(SEG + 110), 110)
        );
        assert_eq!((p.first_time, p.last_time), (None, None));
        // Archived beyond a whole segment: that segment is not stored again.
        let mut b = Assembler::new(1, SEG, Lsn(0), Lsn(2 * SEG));
        assert!(b
            .push(Lsn(0), &vec![0u8; SEG as usize], None)
            .unwrap()
            .is_empty());
    }
}
