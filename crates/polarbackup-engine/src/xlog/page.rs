//! WAL page headers (`XLogPageHeaderData`, `XLogLongPageHeaderData`): every WAL page opens with
//! one, the first page of each segment with the long form.

/// `SizeOfXLogShortPHD`: MAXALIGN of the 20-byte short header.
pub const SHORT_HEADER: usize = 24;
/// `SizeOfXLogLongPHD`: MAXALIGN of the 36-byte long header.
pub const LONG_HEADER: usize = 40;

/// The page starts with the rest of a record begun on an earlier page.
pub const XLP_FIRST_IS_CONTRECORD: u16 = 0x0001;
/// The long header: the first page of a segment.
pub const XLP_LONG_HEADER: u16 = 0x0002;
/// The record that should continue here was abandoned (a crash mid-record) and overwritten.
pub const XLP_FIRST_IS_OVERWRITE_CONTRECORD: u16 = 0x0008;
/// Every flag PostgreSQL defines (`XLP_ALL_FLAGS`); any other bit makes the page invalid.
pub const XLP_ALL_FLAGS: u16 = 0x000F;

/// The fields of a long header that identify the cluster and the WAL geometry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LongFields {
    pub system_id: u64,
    pub seg_size: u32,
    pub page_size: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageHeader {
    /// `XLOG_PAGE_MAGIC`: the WAL format version (0xD106 for PostgreSQL 13, 0xD110 for 15, …).
    pub magic: u16,
    pub info: u16,
    pub timeline: u32,
    /// The page's own position; anything else is a recycled or foreign page.
    pub page_addr: u64,
    /// With `XLP_FIRST_IS_CONTRECORD`: bytes of the continued record still to come, counting
    /// from this page on.
    pub rem_len: u32,
    pub long: Option<LongFields>,
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from(u32_at(b, at)) | (u64::from(u32_at(b, at + 4)) << 32)
}

impl PageHeader {
    /// Parses the header at the start of `page`; `None` when `page` is too short to hold it.
    pub fn parse(page: &[u8]) -> Option<PageHeader> {
        if page.len() < SHORT_HEADER {
            return None;
        }
        let info = u16_at(page, 2);
        let long = if info & XLP_LONG_HEADER != 0 {
            if page.len() < LONG_HEADER {
                return None;
            }
            Some(LongFields {
                system_id: u64_at(page, 24),
                seg_size: u32_at(page, 32),
                page_size: u32_at(page, 36),
            })
        } else {
            None
        };
        Some(PageHeader {
            magic: u16_at(page, 0),
            info,
            timeline: u32_at(page, 4),
            page_addr: u64_at(page, 8),
            rem_len: u32_at(page, 16),
            long,
        })
    }

    /// Bytes the header takes on its page (`XLogPageHeaderSize`).
    pub fn size(&self) -> usize {
        if self.info & XLP_LONG_HEADER != 0 {
            LONG_HEADER
        } else {
            SHORT_HEADER
        }
    }

    pub fn is_contrecord(&self) -> bool {
        self.info & XLP_FIRST_IS_CONTRECORD != 0
    }

    pub fn is_overwrite_contrecord(&self) -> bool {
        self.info & XLP_FIRST_IS_OVERWRITE_CONTRECORD != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_short_and_long_headers() {
        let mut page = vec![0u8; 64];
        page[0..2].copy_from_slice(&0xD110u16.to_le_bytes());
        page[2..4].copy_from_slice(&(XLP_LONG_HEADER | XLP_FIRST_IS_CONTRECORD).to_le_bytes());
        page[4..8].copy_from_slice(&3u32.to_le_bytes());
        page[8..16].copy_from_slice(&0x1_0200_0000u64.to_le_bytes());
        page[16..20].copy_from_slice(&77u32.to_le_bytes());
        page[24..32].copy_from_slice(&0x1234_5678_9ABC_DEF0u64.to_le_bytes());
        page[32..36].copy_from_slice(&(16u32 << 20).to_le_bytes());
        page[36..40].copy_from_slice(&8192u32.to_le_bytes());
        let h = PageHeader::parse(&page).unwrap();
        assert_eq!(
            h,
            PageHeader {
                magic: 0xD110,
                info: XLP_LONG_HEADER | XLP_FIRST_IS_CONTRECORD,
                timeline: 3,
                page_addr: 0x1_0200_0000,
                rem_len: 77,
                long: Some(LongFields {
                    system_id: 0x1234_5678_9ABC_DEF0,
                    seg_size: 16 << 20,
                    page_size: 8192
                }),
            }
        );
        assert_eq!(h.size(), LONG_HEADER);
        assert!(h.is_contrecord() && !h.is_overwrite_contrecord());
        assert_eq!(
            PageHeader::parse(&page[..39]),
            None,
            "a long header needs 40 bytes"
        );

        page[2..4].copy_from_slice(&XLP_FIRST_IS_OVERWRITE_CONTRECORD.to_le_bytes());
        let h = PageHeader::parse(&page[..24]).unwrap();
        assert_eq!((h.size(), h.long), (SHORT_HEADER, None));
        assert!(h.is_overwrite_contrecord() && !h.is_contrecord());
        assert_eq!(PageHeader::parse(&page[..23]), None);
    }
}
