//! Reads WAL records in order, the way PostgreSQL's `xlogreader.c` does: page headers checked
//! (magic, flags, page address, the segment's long header), records assembled across pages,
//! their header (length, previous-record link) and CRC verified. Where PostgreSQL's replay would
//! find the end of the WAL, so does this reader.

use super::crc32c::Crc32c;
use super::page::{PageHeader, LONG_HEADER, XLP_ALL_FLAGS, XLP_LONG_HEADER};
use super::record::{Header, Record, CRC_OFFSET, RECORD_HEADER};
use super::source::WalSource;
use crate::EngineError;
use polarbackup_model::Lsn;

/// The shape of a cluster's WAL, from the first segment's long page header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub seg_size: u64,
    pub page_size: u64,
    /// `XLOG_PAGE_MAGIC`: the WAL format (one per PostgreSQL major version).
    pub magic: u16,
    pub system_id: u64,
}

/// Where the WAL ends for the reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WalEnd {
    /// No more WAL is stored from `at` (possibly in the middle of a record).
    Missing { at: Lsn },
    /// What is stored at `at` is no valid continuation: zeros, a recycled page, a torn or
    /// foreign record. PostgreSQL's replay ends there too.
    Invalid { at: Lsn, reason: String },
}

/// One step of the reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Record(Record),
    End(WalEnd),
}

/// Why reading stopped: the end of the WAL, or the source failed.
enum Stop {
    End(WalEnd),
    Io(std::io::Error),
}

impl From<std::io::Error> for Stop {
    fn from(e: std::io::Error) -> Self {
        Stop::Io(e)
    }
}

fn invalid(at: u64, reason: String) -> Stop {
    Stop::End(WalEnd::Invalid {
        at: Lsn(at),
        reason,
    })
}

fn missing(at: u64) -> Stop {
    Stop::End(WalEnd::Missing { at: Lsn(at) })
}

fn maxalign(n: u64) -> u64 {
    (n + 7) & !7
}

/// Reads records from the start of one segment onwards.
pub struct WalReader<S> {
    src: S,
    geometry: Geometry,
    /// The page in `page` (its first `page_len` bytes are stored WAL), with its header.
    page: Vec<u8>,
    page_len: usize,
    cached: Option<(u64, PageHeader)>,
    /// The segment whose first page was last checked.
    checked_segment: Option<u64>,
    /// Where the next record is looked for; `None` until the first is found.
    next: Option<u64>,
    start: u64,
    /// The last record read, which the next one must link back to.
    prev: Option<u64>,
    end: Option<WalEnd>,
}

impl<S: WalSource> WalReader<S> {
    /// A reader of the WAL from `segment_start`, which must hold the start of a segment (with
    /// its long page header, which gives the WAL's geometry).
    pub fn open(mut src: S, segment_start: Lsn) -> Result<Self, EngineError> {
        let mut head = [0u8; LONG_HEADER];
        let mut got = 0;
        while got < LONG_HEADER {
            let n = src.read_at(segment_start + got as u64, &mut head[got..])?;
            if n == 0 {
                break;
            }
            got += n;
        }
        let not_wal = |why: &str| {
            EngineError::Wal(format!("no WAL segment starts at {segment_start}: {why}"))
        };
        let h = PageHeader::parse(&head[..got])
            .filter(|h| h.info & XLP_LONG_HEADER != 0)
            .ok_or_else(|| not_wal("no long page header"))?;
        let long = h.long.ok_or_else(|| not_wal("no long page header"))?;
        let (seg_size, page_size) = (u64::from(long.seg_size), u64::from(long.page_size));
        let sane = page_size.is_power_of_two()
            && page_size >= 512
            && seg_size.is_power_of_two()
            && seg_size >= page_size
            && segment_start.0.is_multiple_of(seg_size);
        if !sane || h.page_addr != segment_start.0 {
            return Err(not_wal(&format!(
                "implausible header (segment size {seg_size}, page size {page_size}, page \
                 address {})",
                Lsn(h.page_addr)
            )));
        }
        Ok(WalReader {
            src,
            geometry: Geometry {
                seg_size,
                page_size,
                magic: h.magic,
                system_id: long.system_id,
            },
            page: vec![0; page_size as usize],
            page_len: 0,
            cached: None,
            checked_segment: None,
            next: None,
            start: segment_start.0,
            prev: None,
            end: None,
        })
    }

    pub fn geometry(&self) -> Geometry {
        self.geometry
    }

    /// The next record, or where the WAL ends (again on every later call).
    pub fn next_record(&mut self) -> Result<Step, EngineError> {
        if let Some(end) = &self.end {
            return Ok(Step::End(end.clone()));
        }
        let result = match self.next {
            Some(at) => self.read_record(at),
            None => self.first_record().and_then(|at| self.read_record(at)),
        };
        match result {
            Ok(r) => Ok(Step::Record(r)),
            Err(Stop::End(end)) => {
                self.end = Some(end.clone());
                Ok(Step::End(end))
            }
            Err(Stop::Io(e)) => Err(EngineError::Io(e)),
        }
    }

    /// Skips what continues a record begun before the segment (`XLogFindNextRecord`).
    fn first_record(&mut self) -> Result<u64, Stop> {
        let ps = self.geometry.page_size;
        let mut page_lsn = self.start;
        loop {
            let h = self.load_page(page_lsn)?;
            let hs = h.size() as u64;
            if !h.is_contrecord() {
                return Ok(page_lsn + hs);
            }
            let rest = maxalign(u64::from(h.rem_len));
            if rest < ps - hs {
                return Ok(page_lsn + hs + rest);
            }
            page_lsn += ps;
        }
    }

    fn read_record(&mut self, at: u64) -> Result<Record, Stop> {
        let ps = self.geometry.page_size;
        let mut rec = at;
        'restart: loop {
            let page_lsn = rec - rec % ps;
            let mut off = (rec % ps) as usize;
            let h = self.load_page(page_lsn)?;
            let hs = h.size();
            if off == 0 {
                rec += hs as u64;
                off = hs;
            } else if off < hs {
                return Err(invalid(
                    rec,
                    format!("record offset {off} is inside the page header"),
                ));
            }
            if h.is_contrecord() && off == hs {
                return Err(invalid(rec, "contrecord is requested".to_owned()));
            }
            let avail = self.page_len.saturating_sub(off);
            if avail < 4 {
                return Err(missing(rec));
            }
            let tot_len = u32::from_le_bytes(self.page[off..off + 4].try_into().unwrap_or([0; 4]));
            let mut got_header = false;
            if off <= ps as usize - RECORD_HEADER {
                if avail < RECORD_HEADER {
                    return Err(missing(rec));
                }
                let header = Header::parse(&self.page[off..off + RECORD_HEADER]);
                self.check_header(&header, rec)?;
                got_header = true;
            } else if (tot_len as usize) < RECORD_HEADER {
                return Err(short_record(rec, tot_len));
            }
            let tot = tot_len as usize;
            let first = tot.min(ps as usize - off);
            if avail < first {
                return Err(missing(page_lsn + self.page_len as u64));
            }
            let mut buf = Vec::with_capacity(tot.min(1 << 16));
            buf.extend_from_slice(&self.page[off..off + first]);
            let mut next = rec + maxalign(u64::from(tot_len));
            let mut target = page_lsn;
            while buf.len() < tot {
                target += ps;
                let h = self.load_page(target)?;
                if h.is_overwrite_contrecord() {
                    // The record was abandoned by a crash; what follows replaced it.
                    rec = target;
                    continue 'restart;
                }
                if !h.is_contrecord() {
                    return Err(invalid(target, "there is no contrecord flag".to_owned()));
                }
                let rem = h.rem_len as usize;
                if rem == 0 || tot != rem + buf.len() {
                    return Err(invalid(
                        target,
                        format!(
                            "invalid contrecord length {rem} (expected {})",
                            tot - buf.len()
                        ),
                    ));
                }
                let hs = h.size();
                let len = rem.min(ps as usize - hs);
                if self.page_len < hs + len {
                    return Err(missing(target + self.page_len as u64));
                }
                buf.extend_from_slice(&self.page[hs..hs + len]);
                if !got_header && buf.len() >= RECORD_HEADER {
                    self.check_header(&Header::parse(&buf), rec)?;
                    got_header = true;
                }
                next = target + hs as u64 + maxalign(rem as u64);
            }
            let header = Header::parse(&buf);
            let mut crc = Crc32c::new();
            crc.update(&buf[RECORD_HEADER..]);
            crc.update(&buf[..CRC_OFFSET]);
            if crc.finish() != header.crc {
                return Err(invalid(
                    rec,
                    "incorrect resource manager data checksum".to_owned(),
                ));
            }
            if header.is_switch() {
                // The rest of the segment is unused.
                let seg = self.geometry.seg_size;
                next = next.div_ceil(seg) * seg;
            }
            let record = Record::decode(rec, next, buf, self.geometry.magic)
                .map_err(|reason| invalid(rec, reason))?;
            self.prev = Some(rec);
            self.next = Some(next);
            return Ok(record);
        }
    }

    /// `ValidXLogRecordHeader`: a plausible length and the link to the previous record.
    fn check_header(&self, h: &Header, rec: u64) -> Result<(), Stop> {
        if (h.tot_len as usize) < RECORD_HEADER {
            return Err(short_record(rec, h.tot_len));
        }
        let linked = match self.prev {
            Some(prev) => h.prev == prev,
            // The first record read: its predecessor is somewhere before it.
            None => h.prev < rec,
        };
        if !linked {
            return Err(invalid(
                rec,
                format!("record with incorrect prev-link {}", Lsn(h.prev)),
            ));
        }
        Ok(())
    }

    /// Loads the page at `page_lsn` (and checks its header) unless it is loaded already.
    fn load_page(&mut self, page_lsn: u64) -> Result<PageHeader, Stop> {
        if let Some((lsn, h)) = self.cached {
            if lsn == page_lsn {
                return Ok(h);
            }
        }
        let seg = self.geometry.seg_size;
        let segment = page_lsn / seg;
        if !page_lsn.is_multiple_of(seg) && self.checked_segment != Some(segment) {
            // Like PostgreSQL, check a segment's long header before reading inside it.
            self.fill(segment * seg)?;
            self.checked_segment = Some(segment);
        }
        let h = self.fill(page_lsn)?;
        if page_lsn.is_multiple_of(seg) {
            self.checked_segment = Some(segment);
        }
        self.cached = Some((page_lsn, h));
        Ok(h)
    }

    /// Reads the page at `page_lsn` into the buffer and validates its header.
    fn fill(&mut self, page_lsn: u64) -> Result<PageHeader, Stop> {
        self.cached = None;
        let mut got = 0;
        while got < self.page.len() {
            let n = self
                .src
                .read_at(Lsn(page_lsn + got as u64), &mut self.page[got..])?;
            if n == 0 {
                break;
            }
            got += n;
        }
        self.page_len = got;
        let h = PageHeader::parse(&self.page[..got]).ok_or_else(|| missing(page_lsn))?;
        self.check_page(&h, page_lsn)?;
        Ok(h)
    }

    /// `XLogReaderValidatePageHeader`.
    fn check_page(&self, h: &PageHeader, page_lsn: u64) -> Result<(), Stop> {
        let g = &self.geometry;
        if h.magic != g.magic {
            return Err(invalid(
                page_lsn,
                format!("invalid magic number {:04X}", h.magic),
            ));
        }
        if h.info & !XLP_ALL_FLAGS != 0 {
            return Err(invalid(
                page_lsn,
                format!("invalid info bits {:04X}", h.info),
            ));
        }
        match h.long {
            Some(long) => {
                let same = u64::from(long.seg_size) == g.seg_size
                    && u64::from(long.page_size) == g.page_size
                    && long.system_id == g.system_id;
                if !same {
                    return Err(invalid(
                        page_lsn,
                        "WAL file is from a different database system".to_owned(),
                    ));
                }
            }
            None if page_lsn.is_multiple_of(g.seg_size) => {
                return Err(invalid(
                    page_lsn,
                    "the first page of a segment has no long header".to_owned(),
                ));
            }
            None => {}
        }
        if h.page_addr != page_lsn {
            return Err(invalid(
                page_lsn,
                format!("unexpected pageaddr {}", Lsn(h.page_addr)),
            ));
        }
        Ok(())
    }
}

/// The geometry the long page header of a segment states; `raw` holds the segment's bytes
/// from `segment_start` on (a prefix is enough).
pub fn segment_geometry(segment_start: Lsn, raw: &[u8]) -> Result<Geometry, EngineError> {
    let mut head = super::MemoryWal::new();
    head.insert(segment_start, raw[..raw.len().min(LONG_HEADER)].to_vec());
    Ok(WalReader::open(head, segment_start)?.geometry())
}

fn short_record(rec: u64, tot_len: u32) -> Stop {
    invalid(
        rec,
        format!("invalid record length: expected at least {RECORD_HEADER}, got {tot_len}"),
    )
}
