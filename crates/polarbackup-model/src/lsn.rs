//! `Lsn`: a WAL position, with PostgreSQL's `X/Y` text form and segment-file naming.

use std::fmt;
use std::str::FromStr;

/// A write-ahead-log position (PostgreSQL's `XLogRecPtr`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lsn(pub u64);

/// The error for a string that is not `X/Y` hex.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid LSN {0:?}: expected two hex numbers as X/Y")]
pub struct ParseLsnError(pub String);

impl Lsn {
    /// `InvalidXLogRecPtr`: what the server reads as "unknown".
    pub const INVALID: Lsn = Lsn(0);

    /// The number of the segment holding this position (`XLByteToSeg`).
    pub fn segment_number(self, seg_size: u64) -> u64 {
        self.0 / seg_size
    }

    /// The offset of this position inside its segment.
    pub fn segment_offset(self, seg_size: u64) -> u64 {
        self.0 % seg_size
    }

    /// The first position of the segment holding this one.
    pub fn segment_start(self, seg_size: u64) -> Lsn {
        Lsn(self.0 - self.segment_offset(seg_size))
    }

    /// The name of the WAL file holding this position on `timeline`, e.g. `000000010000000000000003`.
    pub fn wal_file_name(self, timeline: u32, seg_size: u64) -> String {
        wal_file_name(timeline, self.segment_number(seg_size), seg_size)
    }
}

/// `lsn + bytes`, saturating: positions near `u64::MAX` never occur in practice.
impl std::ops::Add<u64> for Lsn {
    type Output = Lsn;

    fn add(self, n: u64) -> Lsn {
        Lsn(self.0.saturating_add(n))
    }
}

/// `a - b`: the bytes of WAL from `b` to `a`, 0 when `b` is later.
impl std::ops::Sub for Lsn {
    type Output = u64;

    fn sub(self, other: Lsn) -> u64 {
        self.0.saturating_sub(other.0)
    }
}

/// PostgreSQL's `XLogFileName`: timeline, then the segment number split into "log id" and "segment in log".
pub fn wal_file_name(timeline: u32, segno: u64, seg_size: u64) -> String {
    let per_id = 0x1_0000_0000u64 / seg_size;
    format!("{timeline:08X}{:08X}{:08X}", segno / per_id, segno % per_id)
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

impl FromStr for Lsn {
    type Err = ParseLsnError;

    fn from_str(s: &str) -> Result<Lsn, ParseLsnError> {
        let err = || ParseLsnError(s.to_string());
        let (hi, lo) = s.split_once('/').ok_or_else(err)?;
        // from_str_radix accepts a leading '+', which PostgreSQL's pg_lsn does not.
        let hex = |p: &str| {
            if p.is_empty() || p.len() > 8 || !p.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(err());
            }
            u32::from_str_radix(p, 16).map_err(|_| err())
        };
        Ok(Lsn((u64::from(hex(hi)?) << 32) | u64::from(hex(lo)?)))
    }
}

impl From<u64> for Lsn {
    fn from(v: u64) -> Lsn {
        Lsn(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEG: u64 = 16 * 1024 * 1024;

    #[test]
    fn parses_and_formats() {
        let l: Lsn = "1/AB000028".parse().unwrap();
        assert_eq!(l, Lsn(0x1_AB00_0028));
        assert_eq!(l.to_string(), "1/AB000028");
        assert_eq!(Lsn(0).to_string(), "0/0");
        assert_eq!("0/3000060".parse::<Lsn>().unwrap(), Lsn(0x300_0060));
        assert_eq!("ffffffff/ffffffff".parse::<Lsn>().unwrap(), Lsn(u64::MAX));
        for bad in [
            "",
            "1",
            "1/",
            "/1",
            "g/1",
            "+1/1",
            "1/2/3",
            "123456789/0",
            " 1/1",
        ] {
            assert!(bad.parse::<Lsn>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn orders_and_measures() {
        let a: Lsn = "0/FFFFFFFF".parse().unwrap();
        let b: Lsn = "1/0".parse().unwrap();
        assert!(a < b);
        assert_eq!(a + 1, b);
        assert_eq!(b - a, 1);
        assert_eq!(a - b, 0);
    }

    #[test]
    fn segment_helpers_match_postgres_names() {
        let l: Lsn = "0/3000060".parse().unwrap();
        assert_eq!(l.segment_number(SEG), 3);
        assert_eq!(l.segment_start(SEG), Lsn(0x300_0000));
        assert_eq!(l.segment_offset(SEG), 0x60);
        assert_eq!(l.wal_file_name(1, SEG), "000000010000000000000003");
        let hi: Lsn = "1/AB000028".parse().unwrap();
        assert_eq!(hi.wal_file_name(1, SEG), "0000000100000001000000AB");
        // 1 GiB segments: 4 per "log id".
        assert_eq!(hi.wal_file_name(2, 1 << 30), "000000020000000100000002");
    }
}
