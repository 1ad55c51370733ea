//! Block-level incremental backups: PostgreSQL's `INCREMENTAL.<file>` format, the LSN-based
//! block diff that produces it on servers without native incremental backup (`diff`), the
//! in-place rebuild of a chain at restore (`apply`), and the fix-ups a rebuilt native backup
//! needs (`native`).
//!
//! One format serves both kinds of incremental set. PostgreSQL 17+ sends `INCREMENTAL.<file>`
//! entries itself (`BASE_BACKUP (INCREMENTAL)` after `UPLOAD_MANIFEST`); on older servers, or
//! without `summarize_wal`, the engine rewrites the full stream it receives into the same
//! entries, keeping only the blocks whose page LSN shows a change since the parent started.
//! A restore unpacks the full set and then applies each incremental set in order, so
//! `pg_combinebackup` is never needed on the restore host.

pub(crate) mod apply;
pub(crate) mod base;
pub(crate) mod diff;
pub(crate) mod native;

use std::io::Read;

/// PostgreSQL's page size (`BLCKSZ`); servers built with another one are not supported.
pub(crate) const BLCKSZ: usize = 8192;
/// Blocks per relation segment file (`RELSEG_SIZE`, 1 GiB of 8 KiB blocks).
pub(crate) const RELSEG_SIZE: u32 = 131_072;
/// `INCREMENTAL_MAGIC` of PostgreSQL's incremental files.
pub(crate) const MAGIC: u32 = 0xd3ae_1f0d;
/// The name prefix of an incremental file inside a backup.
pub(crate) const PREFIX: &str = "INCREMENTAL.";

/// The header of an `INCREMENTAL.<file>`: which blocks follow, and the length (in blocks)
/// the rebuilt file is cut to before they are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) blocks: Vec<u32>,
    pub(crate) truncation_block_length: u32,
}

impl Header {
    /// Bytes before the first block: magic, count, truncation length and block numbers,
    /// rounded up to a whole block when blocks follow (so they are aligned, as PostgreSQL 17.1+
    /// writes and reads them).
    pub(crate) fn len(&self) -> usize {
        let raw = 12 + 4 * self.blocks.len();
        if self.blocks.is_empty() {
            raw
        } else {
            raw.div_ceil(BLCKSZ) * BLCKSZ
        }
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len());
        out.extend_from_slice(&MAGIC.to_le_bytes());
        out.extend_from_slice(&(self.blocks.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.truncation_block_length.to_le_bytes());
        for b in &self.blocks {
            out.extend_from_slice(&b.to_le_bytes());
        }
        out.resize(self.len(), 0);
        out
    }

    /// The length, in blocks, of the file this header rebuilds.
    pub(crate) fn rebuilt_blocks(&self) -> u32 {
        self.blocks
            .iter()
            .map(|b| b + 1)
            .max()
            .unwrap_or(0)
            .max(self.truncation_block_length)
    }

    /// Reads a header (with its padding) from the start of an incremental file's contents.
    pub(crate) fn read(r: &mut impl Read) -> Result<Header, String> {
        let mut word = [0u8; 4];
        let mut next = |r: &mut dyn Read| -> Result<u32, String> {
            r.read_exact(&mut word)
                .map_err(|e| format!("short incremental header: {e}"))?;
            Ok(u32::from_le_bytes(word))
        };
        let magic = next(r)?;
        if magic != MAGIC {
            return Err(format!("bad incremental magic number 0x{magic:x}"));
        }
        let count = next(r)?;
        if count > RELSEG_SIZE {
            return Err(format!("block count {count} exceeds a segment"));
        }
        let truncation_block_length = next(r)?;
        if truncation_block_length > RELSEG_SIZE {
            return Err(format!(
                "truncation length {truncation_block_length} exceeds a segment"
            ));
        }
        let mut blocks = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let b = next(r)?;
            if b >= RELSEG_SIZE {
                return Err(format!("block number {b} exceeds a segment"));
            }
            blocks.push(b);
        }
        let header = Header {
            blocks,
            truncation_block_length,
        };
        let padding = header.len() - (12 + 4 * header.blocks.len());
        std::io::copy(&mut r.take(padding as u64), &mut std::io::sink())
            .map_err(|e| format!("short incremental header: {e}"))?;
        Ok(header)
    }
}

/// The file an `INCREMENTAL.` entry rebuilds (`base/5/INCREMENTAL.16384` → `base/5/16384`),
/// or `None` for any other path.
pub(crate) fn rebuilt_path(path: &str) -> Option<String> {
    let (dir, name) = match path.rsplit_once('/') {
        Some((dir, name)) => (Some(dir), name),
        None => (None, path),
    };
    let bare = name.strip_prefix(PREFIX)?;
    if bare.is_empty() {
        return None;
    }
    Some(match dir {
        Some(dir) => format!("{dir}/{bare}"),
        None => bare.to_owned(),
    })
}

/// The `INCREMENTAL.` name of `path`.
pub(crate) fn incremental_path(path: &str) -> String {
    match path.rsplit_once('/') {
        Some((dir, name)) => format!("{dir}/{PREFIX}{name}"),
        None => format!("{PREFIX}{path}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_with_block_alignment() {
        for blocks in [vec![], vec![3], (0..3000).collect::<Vec<u32>>()] {
            let h = Header {
                blocks: blocks.clone(),
                truncation_block_length: 7,
            };
            let bytes = h.encode();
            assert_eq!(bytes.len(), h.len());
            if !blocks.is_empty() {
                assert_eq!(bytes.len() % BLCKSZ, 0);
            }
            let mut r = &bytes[..];
            assert_eq!(Header::read(&mut r).unwrap(), h);
            assert!(r.is_empty(), "padding left unread");
        }
    }

    #[test]
    fn bad_headers_are_refused() {
        let mut bytes = Header {
            blocks: vec![1],
            truncation_block_length: 2,
        }
        .encode();
        bytes[0] ^= 1;
        assert!(Header::read(&mut &bytes[..]).unwrap_err().contains("magic"));
        let mut big = MAGIC.to_le_bytes().to_vec();
        big.extend_from_slice(&(RELSEG_SIZE + 1).to_le_bytes());
        big.extend_from_slice(&0u32.to_le_bytes());
        assert!(Header::read(&mut &big[..]).unwrap_err().contains("count"));
        assert!(Header::read(&mut &bytes[..6]).is_err());
    }

    #[test]
    fn rebuilt_length_covers_blocks_past_the_truncation() {
        let h = Header {
            blocks: vec![2, 9],
            truncation_block_length: 4,
        };
        assert_eq!(h.rebuilt_blocks(), 10);
    }

    #[test]
    fn incremental_names_map_both_ways() {
        assert_eq!(
            rebuilt_path("base/5/INCREMENTAL.16384").as_deref(),
            Some("base/5/16384")
        );
        assert_eq!(rebuilt_path("base/5/16384"), None);
        assert_eq!(rebuilt_path("INCREMENTAL."), None);
        assert_eq!(
            incremental_path("base/5/16384.1"),
            "base/5/INCREMENTAL.16384.1"
        );
    }
}
