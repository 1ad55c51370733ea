//! What each stage a backup chunk goes through costs in CPU, per GB of raw data, on one core.
//!
//! ```sh
//! cargo run --release -p polarbackup-repo --example stage_costs -- <directory> [MiB]
//! ```
//!
//! The directory's regular files (a PostgreSQL data directory's `base`, say) are read in path
//! order, up to `MiB` (default 1700), and cut into the repository's 8 MiB chunks. Each stage runs
//! twice over all of them and the faster pass counts: the copy into a chunk buffer (in the
//! 32 KiB pieces BASE_BACKUP sends), zstd compression at level 1 (also with the frame's own
//! content checksum, and with a few parameters moved off level 1's), BLAKE3 of the raw and of the
//! compressed bytes, and the writer's read-back check (decompression in 256 KiB pieces, compared
//! with the raw bytes).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;
use zstd::zstd_safe::CParameter;

type Error = Box<dyn std::error::Error>;

const CHUNK: usize = 8 << 20;
const PIECE: usize = 32 << 10;
const CHECK_PIECE: usize = 256 << 10;

fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().ok_or("usage: stage_costs <directory> [MiB]")?;
    let limit = args.next().map_or(Ok(1700), |m| m.parse::<usize>())? << 20;
    let data = read_files(Path::new(&dir), limit)?;
    let chunks: Vec<&[u8]> = data.chunks(CHUNK).collect();
    let gb = data.len() as f64 / 1e9;
    println!("{:.3} GB in {} chunks", gb, chunks.len());
    let report = |stage: &str, secs: f64, stored: Option<usize>| match stored {
        Some(s) => println!("{stage:32} {:.3} s/GB  stored {s}", secs / gb),
        None => println!("{stage:32} {:.3} s/GB", secs / gb),
    };

    let mut buf = Vec::with_capacity(CHUNK);
    let secs = best(|| {
        for c in &chunks {
            buf.clear();
            for piece in c.chunks(PIECE) {
                buf.extend_from_slice(piece);
            }
            std::hint::black_box(&buf);
        }
        Ok(())
    })?;
    report("copy into the chunk", secs, None);

    let plain = compress_all(&chunks, &[], false)?;
    report(
        "zstd level 1",
        plain.0,
        Some(plain.1.iter().map(Vec::len).sum()),
    );
    let summed = compress_all(&chunks, &[], true)?;
    report("zstd level 1, frame checksum", summed.0, None);
    let sweep: [(&str, &[CParameter]); 6] = [
        ("  hashLog 12", &[CParameter::HashLog(12)]),
        ("  hashLog 16", &[CParameter::HashLog(16)]),
        ("  windowLog 17", &[CParameter::WindowLog(17)]),
        ("  windowLog 21", &[CParameter::WindowLog(21)]),
        ("  minMatch 5", &[CParameter::MinMatch(5)]),
        ("  targetLength 1", &[CParameter::TargetLength(1)]),
    ];
    for (name, params) in sweep {
        let (secs, out) = compress_all(&chunks, params, false)?;
        report(name, secs, Some(out.iter().map(Vec::len).sum()));
    }

    let secs = best(|| {
        for c in &chunks {
            std::hint::black_box(blake3::hash(c));
        }
        Ok(())
    })?;
    report("BLAKE3 of the raw bytes", secs, None);
    let secs = best(|| {
        for c in &plain.1 {
            std::hint::black_box(blake3::hash(c));
        }
        Ok(())
    })?;
    report("BLAKE3 of the stored bytes", secs, None);

    let mut piece = vec![0u8; CHECK_PIECE];
    for (name, stored) in [
        ("check: decompress and compare", &plain.1),
        ("  the same, frame checksum", &summed.1),
    ] {
        let secs = best(|| {
            for (frame, raw) in stored.iter().zip(&chunks) {
                let mut decoder = zstd::stream::read::Decoder::with_buffer(&frame[..])?;
                let mut at = 0;
                loop {
                    let n = decoder.read(&mut piece)?;
                    if n == 0 {
                        break;
                    }
                    if raw.get(at..at + n) != Some(&piece[..n]) {
                        return Err("decompressed to other bytes".into());
                    }
                    at += n;
                }
                if at != raw.len() {
                    return Err("decompressed to fewer bytes".into());
                }
            }
            Ok(())
        })?;
        report(name, secs, None);
    }
    Ok(())
}

/// The faster of two timed runs of `f`, in seconds.
fn best(mut f: impl FnMut() -> Result<(), Error>) -> Result<f64, Error> {
    let mut fastest = f64::MAX;
    for _ in 0..2 {
        let t = Instant::now();
        f()?;
        fastest = fastest.min(t.elapsed().as_secs_f64());
    }
    Ok(fastest)
}

/// Every chunk compressed at level 1 with `params` on one reused context: the time of the
/// faster pass, and the frames.
fn compress_all(
    chunks: &[&[u8]],
    params: &[CParameter],
    checksum: bool,
) -> Result<(f64, Vec<Vec<u8>>), Error> {
    let mut context = zstd::bulk::Compressor::new(1)?;
    context.include_checksum(checksum)?;
    for p in params {
        context.set_parameter(*p)?;
    }
    let mut frames = Vec::new();
    let secs = best(|| {
        frames = chunks
            .iter()
            .map(|c| context.compress(c))
            .collect::<Result<_, _>>()?;
        Ok(())
    })?;
    Ok((secs, frames))
}

/// The regular files under `dir`, in path order, concatenated up to `limit` bytes.
fn read_files(dir: &Path, limit: usize) -> Result<Vec<u8>, Error> {
    let mut files = Vec::new();
    walk(dir, &mut files)?;
    files.sort();
    let mut data = Vec::new();
    for f in files {
        if data.len() >= limit {
            break;
        }
        let mut bytes = std::fs::read(&f)?;
        bytes.truncate(limit - data.len());
        data.extend_from_slice(&bytes);
    }
    Ok(data)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), Error> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            walk(&entry.path(), out)?;
        } else if kind.is_file() {
            out.push(entry.path());
        }
    }
    Ok(())
}
