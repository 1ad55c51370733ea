//! One WAL record: its fixed header (`XLogRecord`), the fragment headers that follow it (block
//! references, origin, top-level xid, main data; PostgreSQL's `DecodeXLogRecord`), and what a
//! transaction's commit or abort record says about its time.

use polarbackup_model::Lsn;
use std::ops::Range;

/// `SizeOfXLogRecord`.
pub const RECORD_HEADER: usize = 24;
/// Offset of `xl_crc` in the header: the checksum covers the header up to here.
pub(crate) const CRC_OFFSET: usize = 20;

/// `RM_XLOG_ID` and `RM_XACT_ID`.
pub const RM_XLOG_ID: u8 = 0;
pub const RM_XACT_ID: u8 = 1;
/// `XLOG_SWITCH`: the rest of the segment is unused.
pub const XLOG_SWITCH: u8 = 0x40;
/// The low bits of `xl_info` belong to the WAL machinery, the high ones to the rmgr.
const XLR_INFO_MASK: u8 = 0x0F;

const XLR_MAX_BLOCK_ID: u8 = 32;
const XLR_BLOCK_ID_DATA_SHORT: u8 = 255;
const XLR_BLOCK_ID_DATA_LONG: u8 = 254;
const XLR_BLOCK_ID_ORIGIN: u8 = 253;
const XLR_BLOCK_ID_TOPLEVEL_XID: u8 = 252;

const BKPBLOCK_FORK_MASK: u8 = 0x0F;
const BKPBLOCK_HAS_IMAGE: u8 = 0x10;
const BKPBLOCK_HAS_DATA: u8 = 0x20;
const BKPBLOCK_SAME_REL: u8 = 0x80;
const BKPIMAGE_HAS_HOLE: u8 = 0x01;
/// Before PostgreSQL 15 one bit said "compressed"; from 15 one bit per method.
const BKPIMAGE_IS_COMPRESSED_OLD: u8 = 0x02;
const BKPIMAGE_COMPRESSED_NEW: u8 = 0x04 | 0x08 | 0x10;
/// `XLOG_PAGE_MAGIC` of PostgreSQL 15, the first with the per-method compression bits.
const MAGIC_PG15: u16 = 0xD110;
/// `RelFileNode` / `RelFileLocator`: three OIDs.
const REL_FILE_LOCATOR: usize = 12;

/// PostgreSQL's epoch (2000-01-01) in Unix microseconds.
const PG_EPOCH_UNIX_MICROS: i64 = 946_684_800_000_000;

/// A block reference of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockRef {
    pub id: u8,
    pub fork: u8,
    /// `(tablespace, database, relation)`.
    pub rel: (u32, u32, u32),
    pub block: u32,
    /// Bytes of rmgr data for the block.
    pub data_len: u16,
    /// Bytes of the full-page image stored (after hole removal and compression), if any.
    pub image_len: Option<u16>,
}

/// A record read from the WAL, checksum verified and decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub lsn: Lsn,
    /// Where PostgreSQL looks for the record after this one (`NextRecPtr`).
    pub next: Lsn,
    pub prev: Lsn,
    pub xid: u32,
    pub rmid: u8,
    /// `xl_info`; the high four bits are the rmgr's.
    pub info: u8,
    pub blocks: Vec<BlockRef>,
    pub origin: Option<u16>,
    pub toplevel_xid: Option<u32>,
    /// The whole record as stored, header included.
    pub bytes: Vec<u8>,
    main_data: Range<usize>,
}

/// How a transaction ended, by the record that ends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XactEndKind {
    Commit,
    CommitPrepared,
    Abort,
    AbortPrepared,
}

/// A commit or abort record: where PostgreSQL checks `recovery_target_time`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XactEnd {
    pub kind: XactEndKind,
    /// `xact_time`: microseconds since 2000-01-01 UTC (`TimestampTz`).
    pub pg_time: i64,
}

impl XactEnd {
    /// `xact_time` as an instant; `None` only for a value no clock produces.
    pub fn time(&self) -> Option<jiff::Timestamp> {
        let unix = self.pg_time.checked_add(PG_EPOCH_UNIX_MICROS)?;
        jiff::Timestamp::from_microsecond(unix).ok()
    }
}

/// An instant as a `TimestampTz`, rounded down to the microsecond (PostgreSQL's resolution);
/// `None` outside the range both can hold.
pub fn pg_timestamp(t: jiff::Timestamp) -> Option<i64> {
    let micros = t.as_microsecond();
    // as_microsecond truncates toward zero; round down so that "after t" keeps its meaning.
    let floored = if t.as_nanosecond() < i128::from(micros) * 1000 {
        micros - 1
    } else {
        micros
    };
    floored.checked_sub(PG_EPOCH_UNIX_MICROS)
}

/// The fixed header of a record.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Header {
    pub tot_len: u32,
    pub xid: u32,
    pub prev: u64,
    pub info: u8,
    pub rmid: u8,
    pub crc: u32,
}

impl Header {
    /// Parses the first `RECORD_HEADER` bytes of `b`.
    pub fn parse(b: &[u8]) -> Header {
        let u32_at = |at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        Header {
            tot_len: u32_at(0),
            xid: u32_at(4),
            prev: u64::from(u32_at(8)) | (u64::from(u32_at(12)) << 32),
            info: b[16],
            rmid: b[17],
            crc: u32_at(CRC_OFFSET),
        }
    }

    pub fn is_switch(&self) -> bool {
        self.rmid == RM_XLOG_ID && self.info & !XLR_INFO_MASK == XLOG_SWITCH
    }
}

/// Reads the fragment headers that follow a record's fixed header.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let end = self.at + N;
        let slice = self
            .bytes
            .get(self.at..end)
            .ok_or_else(|| "record with invalid length".to_owned())?;
        self.at = end;
        let mut out = [0u8; N];
        out.copy_from_slice(slice);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_le_bytes(self.take()?))
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take()?))
    }
}

/// What `DecodeXLogRecord` finds in the fragment headers.
struct Fragments {
    blocks: Vec<BlockRef>,
    origin: Option<u16>,
    toplevel_xid: Option<u32>,
    main_data_len: usize,
}

/// Walks the fragment headers of a checksum-verified record. `magic` (the page's WAL format)
/// says how a full-page image's flags read.
fn fragments(bytes: &[u8], magic: u16) -> Result<Fragments, String> {
    let compressed_bits = if magic >= MAGIC_PG15 {
        BKPIMAGE_COMPRESSED_NEW
    } else {
        BKPIMAGE_IS_COMPRESSED_OLD
    };
    let mut c = Cursor {
        bytes,
        at: RECORD_HEADER,
    };
    let remaining = |c: &Cursor<'_>| bytes.len() - c.at;
    let mut out = Fragments {
        blocks: Vec::new(),
        origin: None,
        toplevel_xid: None,
        main_data_len: 0,
    };
    let mut datatotal = 0usize;
    let mut have_rel = false;
    let mut rel = (0, 0, 0);
    while remaining(&c) > datatotal {
        let id = c.u8()?;
        match id {
            XLR_BLOCK_ID_DATA_SHORT => {
                out.main_data_len = usize::from(c.u8()?);
                datatotal += out.main_data_len;
                break;
            }
            XLR_BLOCK_ID_DATA_LONG => {
                out.main_data_len = c.u32()? as usize;
                datatotal += out.main_data_len;
                break;
            }
            XLR_BLOCK_ID_ORIGIN => out.origin = Some(c.u16()?),
            XLR_BLOCK_ID_TOPLEVEL_XID => out.toplevel_xid = Some(c.u32()?),
            id if id <= XLR_MAX_BLOCK_ID => {
                if out.blocks.last().is_some_and(|b| b.id >= id) {
                    return Err(format!("out-of-order block_id {id}"));
                }
                let fork_flags = c.u8()?;
                let data_len = c.u16()?;
                let has_data = fork_flags & BKPBLOCK_HAS_DATA != 0;
                if has_data != (data_len > 0) {
                    return Err(format!(
                        "BKPBLOCK_HAS_DATA is {has_data} with data length {data_len}"
                    ));
                }
                datatotal += usize::from(data_len);
                let mut image_len = None;
                if fork_flags & BKPBLOCK_HAS_IMAGE != 0 {
                    let len = c.u16()?;
                    let _hole_offset = c.u16()?;
                    let bimg_info = c.u8()?;
                    if bimg_info & compressed_bits != 0 && bimg_info & BKPIMAGE_HAS_HOLE != 0 {
                        let _hole_length = c.u16()?;
                    }
                    datatotal += usize::from(len);
                    image_len = Some(len);
                }
                if fork_flags & BKPBLOCK_SAME_REL == 0 {
                    let r = c.take::<REL_FILE_LOCATOR>()?;
                    let oid = |i: usize| u32::from_le_bytes([r[i], r[i + 1], r[i + 2], r[i + 3]]);
                    rel = (oid(0), oid(4), oid(8));
                    have_rel = true;
                } else if !have_rel {
                    return Err("BKPBLOCK_SAME_REL set but no previous rel".to_owned());
                }
                let block = c.u32()?;
                out.blocks.push(BlockRef {
                    id,
                    fork: fork_flags & BKPBLOCK_FORK_MASK,
                    rel,
                    block,
                    data_len,
                    image_len,
                });
            }
            other => return Err(format!("invalid block_id {other}")),
        }
    }
    if remaining(&c) != datatotal {
        return Err("record with invalid length".to_owned());
    }
    Ok(out)
}

impl Record {
    /// Decodes an assembled, checksum-verified record found at `lsn`.
    pub(crate) fn decode(
        lsn: u64,
        next: u64,
        bytes: Vec<u8>,
        magic: u16,
    ) -> Result<Record, String> {
        let h = Header::parse(&bytes);
        let f = fragments(&bytes, magic)?;
        let main_data = bytes.len() - f.main_data_len..bytes.len();
        Ok(Record {
            lsn: Lsn(lsn),
            next: Lsn(next),
            prev: Lsn(h.prev),
            xid: h.xid,
            rmid: h.rmid,
            info: h.info,
            blocks: f.blocks,
            origin: f.origin,
            toplevel_xid: f.toplevel_xid,
            bytes,
            main_data,
        })
    }

    /// The rmgr's own data, after every block's data.
    pub fn main_data(&self) -> &[u8] {
        &self.bytes[self.main_data.clone()]
    }

    /// The position just after the record's last byte.
    pub fn total_len(&self) -> u32 {
        self.bytes.len() as u32
    }

    /// For a commit or abort (prepared or not): how and when, from `xact_time`, the first
    /// field of `xl_xact_commit` and `xl_xact_abort`.
    pub fn xact_end(&self) -> Option<XactEnd> {
        const XLOG_XACT_OPMASK: u8 = 0x70;
        if self.rmid != RM_XACT_ID {
            return None;
        }
        let kind = match self.info & XLOG_XACT_OPMASK {
            0x00 => XactEndKind::Commit,
            0x20 => XactEndKind::Abort,
            0x30 => XactEndKind::CommitPrepared,
            0x40 => XactEndKind::AbortPrepared,
            _ => return None,
        };
        let time: [u8; 8] = self.main_data().get(..8)?.try_into().ok()?;
        Some(XactEnd {
            kind,
            pg_time: i64::from_le_bytes(time),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record with `fragments` after the header, whatever its checksum.
    fn record(rmid: u8, info: u8, fragments: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; RECORD_HEADER];
        b.extend_from_slice(fragments);
        let len = b.len() as u32;
        b[0..4].copy_from_slice(&len.to_le_bytes());
        b[16] = info;
        b[17] = rmid;
        b
    }

    fn commit_time_bytes(pg_time: i64) -> Vec<u8> {
        let mut main = pg_time.to_le_bytes().to_vec();
        main.extend_from_slice(&[9, 9, 9, 9]);
        main
    }

    #[test]
    fn finds_the_main_data_after_every_kind_of_fragment() {
        let main = commit_time_bytes(774_000_000_123_456);
        let mut frags = vec![XLR_BLOCK_ID_ORIGIN, 7, 0, XLR_BLOCK_ID_TOPLEVEL_XID];
        frags.extend_from_slice(&4242u32.to_le_bytes());
        // Block 0: data and an uncompressed image with a hole, its own relation.
        frags.extend_from_slice(&[0, BKPBLOCK_HAS_DATA | BKPBLOCK_HAS_IMAGE | 1]);
        frags.extend_from_slice(&3u16.to_le_bytes());
        frags.extend_from_slice(&5u16.to_le_bytes()); // image length
        frags.extend_from_slice(&100u16.to_le_bytes()); // hole offset
        frags.push(BKPIMAGE_HAS_HOLE);
        for oid in [1663u32, 5, 16384] {
            frags.extend_from_slice(&oid.to_le_bytes());
        }
        frags.extend_from_slice(&17u32.to_le_bytes());
        // Block 2: the same relation, data only.
        frags.extend_from_slice(&[2, BKPBLOCK_HAS_DATA | BKPBLOCK_SAME_REL]);
        frags.extend_from_slice(&2u16.to_le_bytes());
        frags.extend_from_slice(&18u32.to_le_bytes());
        frags.extend_from_slice(&[XLR_BLOCK_ID_DATA_SHORT, main.len() as u8]);
        frags.extend_from_slice(b"abc"); // block 0 data
        frags.extend_from_slice(b"IMAGE"); // block 0 image
        frags.extend_from_slice(b"de"); // block 2 data
        frags.extend_from_slice(&main);
        let bytes = record(RM_XACT_ID, 0x00, &frags);
        let r = Record::decode(0x100, 0x200, bytes, 0xD106).unwrap();
        assert_eq!(r.main_data(), &main[..]);
        assert_eq!((r.origin, r.toplevel_xid), (Some(7), Some(4242)));
        assert_eq!(r.blocks.len(), 2);
        assert_eq!(r.blocks[0].rel, (1663, 5, 16384));
        assert_eq!((r.blocks[0].fork, r.blocks[0].block), (1, 17));
        assert_eq!(r.blocks[0].image_len, Some(5));
        assert_eq!((r.blocks[1].rel, r.blocks[1].block), ((1663, 5, 16384), 18));
        let end = r.xact_end().unwrap();
        assert_eq!(end.kind, XactEndKind::Commit);
        assert_eq!(end.pg_time, 774_000_000_123_456);
        assert_eq!(
            end.time().unwrap(),
            "2024-07-11T08:00:00.123456Z"
                .parse::<jiff::Timestamp>()
                .unwrap()
        );
    }

    /// A compressed image with a hole carries the hole's length; which bit says
    /// "compressed" changed in PostgreSQL 15.
    fn image_record(bimg_info: u8, with_hole_length: bool) -> Vec<u8> {
        let mut frags = vec![0, BKPBLOCK_HAS_IMAGE];
        frags.extend_from_slice(&0u16.to_le_bytes());
        frags.extend_from_slice(&4u16.to_le_bytes());
        frags.extend_from_slice(&64u16.to_le_bytes());
        frags.push(bimg_info);
        if with_hole_length {
            frags.extend_from_slice(&1000u16.to_le_bytes());
        }
        frags.extend_from_slice(&[0; 12]);
        frags.extend_from_slice(&1u32.to_le_bytes());
        frags.extend_from_slice(&[XLR_BLOCK_ID_DATA_LONG]);
        frags.extend_from_slice(&2u32.to_le_bytes());
        frags.extend_from_slice(b"IMGExy");
        record(10, 0, &frags)
    }

    #[test]
    fn reads_image_flags_by_the_wal_format() {
        let pg14 = 0xD10D;
        let pg15 = 0xD110;
        // PostgreSQL 14: 0x02 is "compressed".
        let r = Record::decode(0, 0, image_record(0x01 | 0x02, true), pg14).unwrap();
        assert_eq!(r.main_data(), b"xy");
        // PostgreSQL 15: 0x02 is "apply", not compression, so no hole length follows.
        let r = Record::decode(0, 0, image_record(0x01 | 0x02, false), pg15).unwrap();
        assert_eq!(r.main_data(), b"xy");
        for method in [0x04, 0x08, 0x10] {
            let r = Record::decode(0, 0, image_record(0x01 | method, true), pg15).unwrap();
            assert_eq!(r.main_data(), b"xy");
        }
        // Read with the wrong version's rules, the lengths no longer add up.
        assert!(Record::decode(0, 0, image_record(0x01 | 0x02, true), pg15).is_err());
    }

    #[test]
    fn refuses_fragments_that_do_not_add_up() {
        // Main data claims more than there is.
        let bad = record(RM_XACT_ID, 0, &[XLR_BLOCK_ID_DATA_SHORT, 10, 1, 2]);
        assert!(Record::decode(0, 0, bad, 0xD106).is_err());
        // Block ids must increase.
        let mut frags = Vec::new();
        for id in [1u8, 1] {
            frags.extend_from_slice(&[id, 0, 0, 0]);
            frags.extend_from_slice(&[0; 12]);
            frags.extend_from_slice(&0u32.to_le_bytes());
        }
        let err = Record::decode(0, 0, record(10, 0, &frags), 0xD106).unwrap_err();
        assert!(err.contains("out-of-order"), "{err}");
        // Data length without the flag.
        let err = Record::decode(0, 0, record(10, 0, &[0, 0, 1, 0]), 0xD106).unwrap_err();
        assert!(err.contains("BKPBLOCK_HAS_DATA"), "{err}");
        let err = Record::decode(0, 0, record(10, 0, &[40, 0]), 0xD106).unwrap_err();
        assert!(err.contains("invalid block_id 40"), "{err}");
    }

    #[test]
    fn only_transaction_ends_have_an_end_time() {
        let main = commit_time_bytes(1);
        let mut frags = vec![XLR_BLOCK_ID_DATA_SHORT, main.len() as u8];
        frags.extend_from_slice(&main);
        let kinds = [
            (0x00, Some(XactEndKind::Commit)),
            (0x80, Some(XactEndKind::Commit)), // XLOG_XACT_HAS_INFO
            (0x10, None),                      // PREPARE
            (0x20, Some(XactEndKind::Abort)),
            (0x30, Some(XactEndKind::CommitPrepared)),
            (0x40 | 0x80, Some(XactEndKind::AbortPrepared)),
            (0x50, None), // ASSIGNMENT
            (0x60, None), // INVALIDATIONS
        ];
        for (info, kind) in kinds {
            let r = Record::decode(0, 0, record(RM_XACT_ID, info, &frags), 0xD116).unwrap();
            assert_eq!(r.xact_end().map(|e| e.kind), kind, "info {info:#x}");
        }
        let heap = Record::decode(0, 0, record(10, 0, &frags), 0xD116).unwrap();
        assert_eq!(heap.xact_end(), None);
        let short = record(RM_XACT_ID, 0, &[XLR_BLOCK_ID_DATA_SHORT, 4, 1, 2, 3, 4]);
        let r = Record::decode(0, 0, short, 0xD116).unwrap();
        assert_eq!(r.xact_end(), None, "too short to hold a time");
    }

    #[test]
    fn timestamps_round_down_to_microseconds() {
        let t: jiff::Timestamp = "2000-01-01T00:00:01.000002999Z".parse().unwrap();
        assert_eq!(pg_timestamp(t), Some(1_000_002));
        let before: jiff::Timestamp = "1999-12-31T23:59:59.9999995Z".parse().unwrap();
        assert_eq!(pg_timestamp(before), Some(-1));
        let e = XactEnd {
            kind: XactEndKind::Abort,
            pg_time: -1,
        };
        assert_eq!(
            e.time().unwrap(),
            "1999-12-31T23:59:59.999999Z"
                .parse::<jiff::Timestamp>()
                .unwrap()
        );
    }
}
