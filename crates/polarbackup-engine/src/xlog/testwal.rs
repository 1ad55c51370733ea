//! Test-only: writes WAL the way PostgreSQL lays it out (page headers, records continued across
//! pages, alignment, checksums, switch records, overwritten contrecords), for the reader's tests.

use super::crc32c::Crc32c;
use super::page::{
    LONG_HEADER, SHORT_HEADER, XLP_FIRST_IS_CONTRECORD, XLP_FIRST_IS_OVERWRITE_CONTRECORD,
    XLP_LONG_HEADER,
};
use super::record::{CRC_OFFSET, RECORD_HEADER, RM_XLOG_ID, XLOG_SWITCH};
use super::MemoryWal;
use polarbackup_model::Lsn;

pub const MAGIC: u16 = 0xD116;
pub const SYSTEM_ID: u64 = 0x7000_0000_0000_0042;

/// A record as written: where, and its bytes.
#[derive(Debug, Clone)]
pub struct Written {
    pub lsn: u64,
    pub bytes: Vec<u8>,
}

pub struct TestWal {
    pub seg_size: u64,
    pub page_size: u64,
    start: u64,
    /// WAL from `start`; bytes not written yet are zeros.
    pub bytes: Vec<u8>,
    pos: u64,
    prev: u64,
    /// The next page header gets XLP_FIRST_IS_OVERWRITE_CONTRECORD.
    overwrite_next: bool,
    pub records: Vec<Written>,
    /// How often a record header was split by a page boundary, and how many records spanned
    /// more than two pages.
    pub split_headers: usize,
    pub long_records: usize,
}

/// Fragments holding only main data.
pub fn main_data(data: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    if data.len() < 256 {
        f.extend_from_slice(&[255, data.len() as u8]);
    } else {
        f.push(254);
        f.extend_from_slice(&(data.len() as u32).to_le_bytes());
    }
    f.extend_from_slice(data);
    f
}

impl TestWal {
    /// WAL beginning at the start of segment `first_segment`.
    pub fn new(seg_size: u64, page_size: u64, first_segment: u64) -> TestWal {
        let start = first_segment * seg_size;
        TestWal {
            seg_size,
            page_size,
            start,
            bytes: Vec::new(),
            pos: start,
            prev: start.saturating_sub(4096),
            overwrite_next: false,
            records: Vec::new(),
            split_headers: 0,
            long_records: 0,
        }
    }

    fn ensure(&mut self, upto: u64) {
        let len = (upto - self.start) as usize;
        if self.bytes.len() < len {
            self.bytes.resize(len, 0);
        }
    }

    fn put(&mut self, at: u64, data: &[u8]) {
        self.ensure(at + data.len() as u64);
        let off = (at - self.start) as usize;
        self.bytes[off..off + data.len()].copy_from_slice(data);
    }

    fn page_header(&mut self, rem_len: u32) {
        let mut info = 0u16;
        if rem_len > 0 {
            info |= XLP_FIRST_IS_CONTRECORD;
        }
        if std::mem::take(&mut self.overwrite_next) {
            info |= XLP_FIRST_IS_OVERWRITE_CONTRECORD;
        }
        let long = self.pos.is_multiple_of(self.seg_size);
        if long {
            info |= XLP_LONG_HEADER;
        }
        let mut h = vec![0u8; if long { LONG_HEADER } else { SHORT_HEADER }];
        h[0..2].copy_from_slice(&MAGIC.to_le_bytes());
        h[2..4].copy_from_slice(&info.to_le_bytes());
        h[4..8].copy_from_slice(&1u32.to_le_bytes());
        h[8..16].copy_from_slice(&self.pos.to_le_bytes());
        h[16..20].copy_from_slice(&rem_len.to_le_bytes());
        if long {
            h[24..32].copy_from_slice(&SYSTEM_ID.to_le_bytes());
            h[32..36].copy_from_slice(&(self.seg_size as u32).to_le_bytes());
            h[36..40].copy_from_slice(&(self.page_size as u32).to_le_bytes());
        }
        let at = self.pos;
        self.put(at, &h);
        self.pos += h.len() as u64;
    }

    /// A complete record with a correct header and checksum.
    pub fn record_bytes(&self, rmid: u8, info: u8, xid: u32, fragments: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; RECORD_HEADER];
        b.extend_from_slice(fragments);
        let len = b.len() as u32;
        b[0..4].copy_from_slice(&len.to_le_bytes());
        b[4..8].copy_from_slice(&xid.to_le_bytes());
        b[8..16].copy_from_slice(&self.prev.to_le_bytes());
        b[16] = info;
        b[17] = rmid;
        let mut crc = Crc32c::new();
        crc.update(&b[RECORD_HEADER..]);
        crc.update(&b[..CRC_OFFSET]);
        b[CRC_OFFSET..RECORD_HEADER].copy_from_slice(&crc.finish().to_le_bytes());
        b
    }

    /// Writes `bytes` as the record at the current position, but stops after `keep` bytes
    /// (a record torn by a crash). Returns its position.
    fn write(&mut self, bytes: &[u8], keep: usize) -> u64 {
        if self.pos.is_multiple_of(self.page_size) {
            self.page_header(0);
        }
        let lsn = self.pos;
        let first_page = lsn / self.page_size;
        if (lsn % self.page_size) as usize + RECORD_HEADER > self.page_size as usize {
            self.split_headers += 1;
        }
        let mut done = 0;
        while done < keep {
            if self.pos.is_multiple_of(self.page_size) {
                self.page_header((bytes.len() - done) as u32);
            }
            let room = (self.page_size - self.pos % self.page_size) as usize;
            let n = room.min(keep - done);
            let at = self.pos;
            self.put(at, &bytes[done..done + n]);
            self.pos += n as u64;
            done += n;
        }
        if (self.pos - 1) / self.page_size > first_page + 1 {
            self.long_records += 1;
        }
        lsn
    }

    /// Appends a record; returns its position.
    pub fn append(&mut self, rmid: u8, info: u8, xid: u32, fragments: &[u8]) -> u64 {
        let bytes = self.record_bytes(rmid, info, xid, fragments);
        let lsn = self.write(&bytes, bytes.len());
        self.pos = (self.pos + 7) & !7;
        self.prev = lsn;
        self.records.push(Written { lsn, bytes });
        lsn
    }

    /// An XLOG_SWITCH record: the rest of the segment stays zeros.
    pub fn switch(&mut self) -> u64 {
        let lsn = self.append(RM_XLOG_ID, XLOG_SWITCH, 0, &[]);
        self.pos = self.pos.div_ceil(self.seg_size) * self.seg_size;
        lsn
    }

    /// A record whose write stopped at the end of its first page (a crash), which the WAL
    /// after it overwrites, as PostgreSQL does after crash recovery.
    pub fn torn(&mut self, fragments: &[u8]) {
        let bytes = self.record_bytes(10, 0, 0, fragments);
        let room = (self.page_size - self.pos % self.page_size) as usize;
        assert!(bytes.len() > room, "a torn record must reach the next page");
        self.write(&bytes, room);
        self.overwrite_next = true;
    }

    /// Everything written, one piece per segment, up to the last byte written.
    pub fn memory(&self) -> MemoryWal {
        let mut wal = MemoryWal::new();
        for (i, chunk) in self.bytes.chunks(self.seg_size as usize).enumerate() {
            wal.insert(Lsn(self.start + i as u64 * self.seg_size), chunk.to_vec());
        }
        wal
    }

    /// The position after the last byte written.
    pub fn end(&self) -> u64 {
        self.start + self.bytes.len() as u64
    }
}
