//! Where a [`WalReader`](super::WalReader) gets its bytes: any store of WAL addressed by LSN.

use polarbackup_model::Lsn;
use std::collections::BTreeMap;

/// WAL addressed by position.
pub trait WalSource {
    /// Copies the WAL stored at `lsn` into `buf`: as many bytes as are there, up to
    /// `buf.len()`; 0 when nothing is stored at `lsn`.
    fn read_at(&mut self, lsn: Lsn, buf: &mut [u8]) -> std::io::Result<usize>;
}

/// WAL held in memory as pieces (whole or partial segments), each from its start position.
/// Where pieces overlap, the one starting last is read.
#[derive(Debug, Default, Clone)]
pub struct MemoryWal {
    pieces: BTreeMap<u64, Vec<u8>>,
}

impl MemoryWal {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `bytes` of WAL from `start` (replacing a piece with the same start).
    pub fn insert(&mut self, start: Lsn, bytes: Vec<u8>) {
        self.pieces.insert(start.0, bytes);
    }
}

impl WalSource for MemoryWal {
    fn read_at(&mut self, lsn: Lsn, buf: &mut [u8]) -> std::io::Result<usize> {
        let Some((start, bytes)) = self.pieces.range(..=lsn.0).next_back() else {
            return Ok(0);
        };
        let from = usize::try_from(lsn.0 - start).unwrap_or(usize::MAX);
        let Some(available) = bytes.get(from..) else {
            return Ok(0);
        };
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_from_the_piece_holding_the_position() {
        let mut wal = MemoryWal::new();
        wal.insert(Lsn(100), vec![1, 2, 3, 4]);
        wal.insert(Lsn(200), vec![5, 6]);
        let mut buf = [0u8; 3];
        assert_eq!(wal.read_at(Lsn(101), &mut buf).unwrap(), 3);
        assert_eq!(buf, [2, 3, 4]);
        assert_eq!(
            wal.read_at(Lsn(103), &mut buf).unwrap(),
            1,
            "up to the piece's end"
        );
        assert_eq!(
            wal.read_at(Lsn(104), &mut buf).unwrap(),
            0,
            "between pieces"
        );
        assert_eq!(
            wal.read_at(Lsn(99), &mut buf).unwrap(),
            0,
            "before the first"
        );
        assert_eq!(wal.read_at(Lsn(201), &mut buf).unwrap(), 1);
        assert_eq!(buf[0], 6);
    }
}
