//! The LSN-based block diff: rewrites a full backup's tar stream, as the server sends it, into
//! one where each main-fork relation file the parent also held becomes `INCREMENTAL.<file>`
//! entries carrying only the blocks that changed since the parent began.
//!
//! A block is kept when its page LSN is at or after the parent's start LSN (every WAL-logged
//! change since then stamps it), when its LSN is zero (a page the server extended but has not
//! logged yet), or when it lies past the parent's copy of the file. Blocks changed only by
//! hint bits keep an older LSN and are skipped: the parent's version is equally valid.
//! Pages changed while this backup runs are rewritten by WAL replay from this backup's start
//! (full-page writes are forced during a backup), so a torn read never survives. Files whose
//! changes PostgreSQL does not stamp with an LSN (free-space and visibility maps), every
//! non-relation file, and files the parent did not hold are sent whole. The caller must only
//! use this on the parent's own timeline and system (see `backup`): LSNs compare only there.
//!
//! Changed blocks are emitted in windows of at most [`WINDOW_BLOCKS`], each its own
//! `INCREMENTAL.<file>` entry with the file's truncation length, so memory stays bounded
//! whatever share of a 1 GiB segment changed; applying the windows in order rebuilds the file.

use super::{incremental_path, Header, BLCKSZ, RELSEG_SIZE};
use crate::pg::Lsn;
use std::collections::HashMap;

/// Changed blocks buffered per emitted entry (8 MiB).
pub(crate) const WINDOW_BLOCKS: usize = 1024;

const TAR_BLOCK: usize = 512;

/// How much the diff saved, for the log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct DiffStats {
    /// Relation files sent as incremental entries.
    pub(crate) files: u64,
    /// Their blocks in all, and those kept because they changed.
    pub(crate) blocks: u64,
    pub(crate) changed: u64,
}

/// A streaming tar-to-tar rewriter for one archive.
pub(crate) struct TarDiff {
    parent_start: u64,
    /// The parent's file sizes, by path inside this archive.
    parent_sizes: HashMap<String, u64>,
    /// Bytes of a header or block not yet complete.
    carry: Vec<u8>,
    state: State,
    /// Set by a pax or GNU extension header: the next entry's name in its own header is not
    /// the whole name, so that entry is passed through untouched.
    extended: bool,
    stats: DiffStats,
    /// The files sent as incremental entries, by path inside this archive.
    diffed: Vec<String>,
}

enum State {
    Header,
    /// Copying an entry's data and padding verbatim.
    Copy(u64),
    Diff(Box<FileDiff>),
    /// After the end-of-archive marker: everything is copied.
    End,
}

struct FileDiff {
    path: String,
    template: tar::Header,
    /// The file's length in blocks now, and in the parent.
    blocks: u32,
    parent_blocks: u64,
    next: u32,
    window: Vec<u32>,
    data: Vec<u8>,
    emitted: bool,
}

impl TarDiff {
    /// `parent_sizes` maps each path of this archive (as its tar entries name them) to the
    /// size the parent's copy had.
    pub(crate) fn new(parent_start: Lsn, parent_sizes: HashMap<String, u64>) -> TarDiff {
        TarDiff {
            parent_start: parent_start.0,
            parent_sizes,
            carry: Vec::with_capacity(BLCKSZ),
            state: State::Header,
            extended: false,
            stats: DiffStats::default(),
            diffed: Vec::new(),
        }
    }

    pub(crate) fn stats(&self) -> DiffStats {
        self.stats
    }

    /// The files sent as incremental entries, by path inside this archive.
    pub(crate) fn diffed(&self) -> &[String] {
        &self.diffed
    }

    /// Consumes the next bytes of the server's stream and appends the rewritten bytes to `out`.
    pub(crate) fn feed(&mut self, mut data: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        while !data.is_empty() {
            match &mut self.state {
                State::End => {
                    out.extend_from_slice(data);
                    return Ok(());
                }
                State::Copy(remaining) => {
                    let n = (*remaining).min(data.len() as u64) as usize;
                    out.extend_from_slice(&data[..n]);
                    *remaining -= n as u64;
                    data = &data[n..];
                    if *remaining == 0 {
                        self.state = State::Header;
                    }
                }
                State::Header => {
                    if !take_unit(&mut self.carry, &mut data, TAR_BLOCK) {
                        continue;
                    }
                    let block = std::mem::take(&mut self.carry);
                    self.on_header(&block, out)?;
                }
                State::Diff(_) => {
                    if !take_unit(&mut self.carry, &mut data, BLCKSZ) {
                        continue;
                    }
                    let block = std::mem::replace(&mut self.carry, Vec::with_capacity(BLCKSZ));
                    self.on_block(&block, out)?;
                }
            }
        }
        Ok(())
    }

    /// Checks the stream ended at an entry boundary.
    pub(crate) fn finish(&self) -> Result<(), String> {
        match (&self.state, self.carry.is_empty()) {
            (State::Header | State::End, true) => Ok(()),
            _ => Err("the archive ended inside an entry".into()),
        }
    }

    fn on_header(&mut self, block: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        if block.iter().all(|b| *b == 0) {
            out.extend_from_slice(block);
            self.state = State::End;
            return Ok(());
        }
        let header = tar::Header::from_byte_slice(block);
        let size = header
            .entry_size()
            .map_err(|e| format!("bad tar header: {e}"))?;
        let kind = header.entry_type();
        let extended = std::mem::replace(
            &mut self.extended,
            kind.is_pax_local_extensions()
                || kind.is_pax_global_extensions()
                || kind.is_gnu_longname()
                || kind.is_gnu_longlink(),
        );
        let path = String::from_utf8_lossy(&header.path_bytes()).into_owned();
        let parent = self.parent_sizes.get(&path).copied();
        let blocks = size / BLCKSZ as u64;
        let eligible = !extended
            && kind.is_file()
            && size > 0
            && size % BLCKSZ as u64 == 0
            && blocks <= u64::from(RELSEG_SIZE)
            && is_main_fork(&path);
        match parent {
            Some(parent_size) if eligible => {
                self.stats.files += 1;
                self.diffed.push(path.clone());
                self.state = State::Diff(Box::new(FileDiff {
                    path,
                    template: header.clone(),
                    blocks: blocks as u32,
                    parent_blocks: parent_size / BLCKSZ as u64,
                    next: 0,
                    window: Vec::new(),
                    data: Vec::new(),
                    emitted: false,
                }));
            }
            _ => {
                out.extend_from_slice(block);
                let padded = size.div_ceil(TAR_BLOCK as u64) * TAR_BLOCK as u64;
                if padded > 0 {
                    self.state = State::Copy(padded);
                }
            }
        }
        Ok(())
    }

    fn on_block(&mut self, block: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        let State::Diff(file) = &mut self.state else {
            return Err("block outside a file".into());
        };
        let n = file.next;
        file.next += 1;
        self.stats.blocks += 1;
        let lsn = page_lsn(block);
        if u64::from(n) >= file.parent_blocks || lsn == 0 || lsn >= self.parent_start {
            self.stats.changed += 1;
            file.window.push(n);
            file.data.extend_from_slice(block);
        }
        let last = file.next == file.blocks;
        if file.window.len() == WINDOW_BLOCKS
            || (last && (!file.window.is_empty() || !file.emitted))
        {
            emit(file, out)?;
        }
        if last {
            self.state = State::Header;
        }
        Ok(())
    }
}

/// Moves bytes from `data` into `carry` until it holds `unit`; true once it does.
fn take_unit(carry: &mut Vec<u8>, data: &mut &[u8], unit: usize) -> bool {
    let n = (unit - carry.len()).min(data.len());
    carry.extend_from_slice(&data[..n]);
    *data = &data[n..];
    carry.len() == unit
}

/// `pd_lsn`, the first 8 bytes of a page: two native-endian (little on every platform we
/// run on) 32-bit halves, high first.
fn page_lsn(page: &[u8]) -> u64 {
    let hi = u32::from_le_bytes([page[0], page[1], page[2], page[3]]);
    let lo = u32::from_le_bytes([page[4], page[5], page[6], page[7]]);
    (u64::from(hi) << 32) | u64::from(lo)
}

/// Writes the window of changed blocks as one `INCREMENTAL.<file>` entry.
fn emit(file: &mut FileDiff, out: &mut Vec<u8>) -> Result<(), String> {
    let header = Header {
        blocks: std::mem::take(&mut file.window),
        truncation_block_length: file.blocks,
    };
    let body = header.encode();
    let size = (body.len() + file.data.len()) as u64;
    let mut tar_header = tar::Header::new_ustar();
    tar_header
        .set_path(incremental_path(&file.path))
        .map_err(|e| format!("naming the incremental entry of {}: {e}", file.path))?;
    tar_header.set_size(size);
    tar_header.set_entry_type(tar::EntryType::Regular);
    tar_header.set_mode(file.template.mode().unwrap_or(0o600));
    tar_header.set_mtime(file.template.mtime().unwrap_or(0));
    tar_header.set_uid(file.template.uid().unwrap_or(0));
    tar_header.set_gid(file.template.gid().unwrap_or(0));
    tar_header.set_cksum();
    out.extend_from_slice(tar_header.as_bytes());
    out.extend_from_slice(&body);
    out.append(&mut file.data);
    let padding = size.next_multiple_of(TAR_BLOCK as u64) - size;
    out.resize(out.len() + padding as usize, 0);
    file.emitted = true;
    Ok(())
}

/// A relation's main fork, whose every WAL-logged change stamps the page LSN:
/// `base/<db>/<relfilenode>[.<segment>]`, `global/<relfilenode>[.<segment>]`, or, inside a
/// tablespace archive, `PG_<version>_<catalog>/<db>/<relfilenode>[.<segment>]`.
pub(crate) fn is_main_fork(path: &str) -> bool {
    let parts: Vec<&str> = path.split('/').collect();
    let file_ok = |f: &str| {
        let (node, segment) = f.split_once('.').unwrap_or((f, "1"));
        is_number(node) && is_number(segment)
    };
    match parts.as_slice() {
        ["global", file] => file_ok(file),
        ["base", db, file] => is_number(db) && file_ok(file),
        [version, db, file] => version.starts_with("PG_") && is_number(db) && file_ok(file),
        _ => false,
    }
}

fn is_number(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// The path in `backup_manifest` of a path inside `archive`: tablespace archives' paths sit
/// under `pg_tblspc/<oid>/`.
pub(crate) fn manifest_path(archive: &str, path: &str) -> String {
    match archive.strip_suffix(".tar").filter(|oid| is_number(oid)) {
        Some(oid) => format!("pg_tblspc/{oid}/{path}"),
        None => path.to_owned(),
    }
}

/// The parent's sizes for one archive, from its `backup_manifest` (paths relative to the data
/// directory): `base.tar` takes the paths outside `pg_tblspc/`, and `<oid>.tar` those under
/// `pg_tblspc/<oid>/`, without that prefix.
pub(crate) fn sizes_for_archive(
    manifest_sizes: &HashMap<String, u64>,
    archive: &str,
) -> HashMap<String, u64> {
    let prefix = manifest_path(archive, "");
    manifest_sizes
        .iter()
        .filter_map(|(path, size)| {
            let inside = path.strip_prefix(prefix.as_str())?;
            (!prefix.is_empty() || !path.starts_with("pg_tblspc/"))
                .then(|| (inside.to_owned(), *size))
        })
        .collect()
}

/// The `Path` → `Size` of every file in a PostgreSQL `backup_manifest`.
pub(crate) fn manifest_sizes(backup_manifest: &[u8]) -> Result<HashMap<String, u64>, String> {
    let value: serde_json::Value = serde_json::from_slice(backup_manifest)
        .map_err(|e| format!("the parent's backup_manifest is not JSON: {e}"))?;
    let files = value
        .get("Files")
        .and_then(serde_json::Value::as_array)
        .ok_or("the parent's backup_manifest has no Files")?;
    Ok(files
        .iter()
        .filter_map(|f| {
            let path = f.get("Path")?.as_str()?;
            let size = f.get("Size")?.as_u64()?;
            Some((path.to_owned(), size))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn page(lsn: u64, fill: u8) -> Vec<u8> {
        let mut p = vec![fill; BLCKSZ];
        p[..4].copy_from_slice(&((lsn >> 32) as u32).to_le_bytes());
        p[4..8].copy_from_slice(&(lsn as u32).to_le_bytes());
        p
    }

    fn tar_of(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in entries {
            let mut h = tar::Header::new_ustar();
            h.set_path(name).unwrap();
            h.set_size(data.len() as u64);
            h.set_mode(0o600);
            h.set_cksum();
            b.append(&h, &data[..]).unwrap();
        }
        b.into_inner().unwrap()
    }

    /// Feeds `input` in awkward pieces, as CopyData messages arrive.
    fn run(diff: &mut TarDiff, input: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for piece in input.chunks(3001) {
            diff.feed(piece, &mut out).unwrap();
        }
        diff.finish().unwrap();
        out
    }

    #[test]
    fn only_changed_new_and_zero_blocks_are_kept() {
        let rel: Vec<u8> = [
            page(0x50, 1),  // before the parent: dropped
            page(0x100, 2), // at the parent's start: kept
            vec![0; BLCKSZ],
            page(0x10, 3), // old, but past the parent's length: kept
        ]
        .concat();
        let input = tar_of(&[
            ("backup_label", b"label".to_vec()),
            ("base/5/16384", rel.clone()),
            ("base/5/16384_vm", page(0x1, 9)),
        ]);
        let sizes = HashMap::from([
            ("base/5/16384".to_owned(), 3 * BLCKSZ as u64),
            ("base/5/16384_vm".to_owned(), BLCKSZ as u64),
        ]);
        let mut diff = TarDiff::new(Lsn(0x100), sizes);
        let out = run(&mut diff, &input);
        assert_eq!(
            diff.stats(),
            DiffStats {
                files: 1,
                blocks: 4,
                changed: 3
            }
        );
        let mut archive = tar::Archive::new(&out[..]);
        let mut seen = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().to_string_lossy().into_owned();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            if path == "base/5/INCREMENTAL.16384" {
                let mut r = &data[..];
                let h = Header::read(&mut r).unwrap();
                assert_eq!(h.blocks, vec![1, 2, 3]);
                assert_eq!(h.truncation_block_length, 4);
                assert_eq!(r, &rel[BLCKSZ..]);
            }
            seen.push(path);
        }
        assert_eq!(
            seen,
            [
                "backup_label",
                "base/5/INCREMENTAL.16384",
                "base/5/16384_vm"
            ]
        );
    }

    #[test]
    fn files_the_parent_lacks_and_other_forks_pass_through_byte_for_byte() {
        let input = tar_of(&[
            ("base/5/16390", page(0x1, 1)),
            ("base/5/16384_fsm", page(0x1, 1)),
            ("pg_xact/0000", page(0x1, 1)),
        ]);
        let sizes = HashMap::from([
            ("base/5/16384_fsm".to_owned(), BLCKSZ as u64),
            ("pg_xact/0000".to_owned(), BLCKSZ as u64),
        ]);
        let mut diff = TarDiff::new(Lsn(0x100), sizes);
        assert_eq!(run(&mut diff, &input), input);
    }

    #[test]
    fn an_unchanged_file_still_gets_an_entry_and_large_changes_come_in_windows() {
        let unchanged: Vec<u8> = (0..3).flat_map(|_| page(0x10, 1)).collect();
        let changed: Vec<u8> = (0..(WINDOW_BLOCKS + 5))
            .flat_map(|_| page(0x200, 2))
            .collect();
        let input = tar_of(&[("global/1262", unchanged), ("base/1/1259.1", changed)]);
        let sizes = HashMap::from([
            ("global/1262".to_owned(), 3 * BLCKSZ as u64),
            (
                "base/1/1259.1".to_owned(),
                (WINDOW_BLOCKS + 5) as u64 * BLCKSZ as u64,
            ),
        ]);
        let mut diff = TarDiff::new(Lsn(0x100), sizes);
        let out = run(&mut diff, &input);
        let mut archive = tar::Archive::new(&out[..]);
        let headers: Vec<(String, Header)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let path = e.path().unwrap().to_string_lossy().into_owned();
                (path, Header::read(&mut e).unwrap())
            })
            .collect();
        assert_eq!(headers.len(), 3);
        assert_eq!(headers[0].0, "global/INCREMENTAL.1262");
        assert!(headers[0].1.blocks.is_empty());
        assert_eq!(headers[0].1.truncation_block_length, 3);
        assert_eq!(headers[1].1.blocks.len(), WINDOW_BLOCKS);
        assert_eq!(
            headers[2].1.blocks,
            (WINDOW_BLOCKS as u32..WINDOW_BLOCKS as u32 + 5).collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_stream_cut_inside_an_entry_is_refused() {
        let input = tar_of(&[("base/5/16384", page(0x200, 1))]);
        let sizes = HashMap::from([("base/5/16384".to_owned(), BLCKSZ as u64)]);
        let mut diff = TarDiff::new(Lsn(0x100), sizes);
        let mut out = Vec::new();
        diff.feed(&input[..700], &mut out).unwrap();
        assert!(diff.finish().is_err());
    }

    #[test]
    fn main_forks_are_recognised() {
        for yes in [
            "base/5/16384",
            "base/5/16384.2",
            "global/1262",
            "PG_15_202209061/5/16390",
        ] {
            assert!(is_main_fork(yes), "{yes}");
        }
        for no in [
            "base/5/16384_vm",
            "base/5/16384_fsm",
            "base/5/16384_init",
            "base/5/pg_filenode.map",
            "pg_xact/0000",
            "global/pg_control",
            "base/5/t3_16384",
            "x/5/16384",
        ] {
            assert!(!is_main_fork(no), "{no}");
        }
    }

    #[test]
    fn manifest_sizes_are_split_by_archive() {
        let manifest = br#"{ "PostgreSQL-Backup-Manifest-Version": 1,
"Files": [
{ "Path": "base/5/16384", "Size": 8192, "Last-Modified": "x" },
{ "Path": "pg_tblspc/16400/PG_15_1/5/16401", "Size": 16384, "Last-Modified": "x" }
] }"#;
        let sizes = manifest_sizes(manifest).unwrap();
        assert_eq!(
            sizes_for_archive(&sizes, "base.tar"),
            HashMap::from([("base/5/16384".to_owned(), 8192)])
        );
        assert_eq!(
            sizes_for_archive(&sizes, "16400.tar"),
            HashMap::from([("PG_15_1/5/16401".to_owned(), 16384)])
        );
    }
}
