//! Compression and checksums of single objects (CPU-bound; callers run these on the blocking pool).

use sha2::{Digest, Sha256};

use crate::RepoError;

/// One compressed object and the checksums the manifest records for it.
pub(crate) struct Sealed {
    pub stored: Vec<u8>,
    pub raw_size: u64,
    pub raw_sha256: String,
    pub stored_sha256: String,
}

/// What the manifest says about an object, to check a read against.
pub(crate) struct Expected<'a> {
    pub raw_size: u64,
    pub stored_size: u64,
    pub raw_sha256: &'a str,
    pub stored_sha256: &'a str,
}

/// An archive's whole-stream hash: SHA-256 over its chunks' raw SHA-256 digests (hex, one per
/// line), in order. Each chunk's digest is checked against its decompressed bytes, so this
/// covers the whole stream and its order without hashing every byte a second time.
pub(crate) fn chain_hasher() -> Sha256 {
    Sha256::new()
}

pub(crate) fn chain_update(h: &mut Sha256, chunk_raw_sha256: &str) {
    h.update(chunk_raw_sha256.as_bytes());
    h.update(b"\n");
}

pub(crate) fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Compresses `raw` as one independent zstd frame and hashes both sides.
pub(crate) fn seal(raw: &[u8], level: i32) -> Result<Sealed, RepoError> {
    let stored = zstd::bulk::compress(raw, level)
        .map_err(|e| RepoError::Internal(format!("zstd compression failed: {e}")))?;
    Ok(Sealed {
        raw_size: raw.len() as u64,
        raw_sha256: sha256_hex(raw),
        stored_sha256: sha256_hex(&stored),
        stored,
    })
}

/// Checks a stored object against the manifest and returns its raw bytes.
/// The stored hash is checked before decompressing, so garbage never reaches zstd
/// unless the manifest itself was forged; even then the output is capped at `raw_size`.
pub(crate) fn open(object: &str, stored: &[u8], want: &Expected<'_>) -> Result<Vec<u8>, RepoError> {
    if stored.len() as u64 != want.stored_size {
        return Err(RepoError::corrupt(
            object,
            format!(
                "stored size is {} bytes, manifest says {}",
                stored.len(),
                want.stored_size
            ),
        ));
    }
    if sha256_hex(stored) != want.stored_sha256 {
        return Err(RepoError::corrupt(
            object,
            "stored sha256 does not match the manifest",
        ));
    }
    // raw_size is bounded by the validated manifest chunk size, so this allocation is too.
    let raw = zstd::bulk::decompress(stored, want.raw_size as usize)
        .map_err(|e| RepoError::corrupt(object, format!("zstd decompression failed: {e}")))?;
    if raw.len() as u64 != want.raw_size {
        return Err(RepoError::corrupt(
            object,
            format!(
                "raw size is {} bytes, manifest says {}",
                raw.len(),
                want.raw_size
            ),
        ));
    }
    if sha256_hex(&raw) != want.raw_sha256 {
        return Err(RepoError::corrupt(
            object,
            "raw sha256 does not match the manifest",
        ));
    }
    Ok(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expected(s: &Sealed) -> Expected<'_> {
        Expected {
            raw_size: s.raw_size,
            stored_size: s.stored.len() as u64,
            raw_sha256: &s.raw_sha256,
            stored_sha256: &s.stored_sha256,
        }
    }

    #[test]
    fn round_trip_and_empty() {
        for raw in [&b"hello hello hello hello"[..], &b""[..]] {
            let s = seal(raw, 1).unwrap();
            assert_eq!(open("o", &s.stored, &expected(&s)).unwrap(), raw);
        }
    }

    #[test]
    fn garbage_under_a_forged_manifest_is_corrupt_not_a_panic() {
        let s = seal(&[7u8; 1000], 1).unwrap();
        let garbage = vec![0xAB; 40];
        let forged = Expected {
            stored_size: garbage.len() as u64,
            stored_sha256: &sha256_hex(&garbage),
            ..expected(&s)
        };
        let err = open("o", &garbage, &forged).unwrap_err();
        assert!(matches!(err, RepoError::Corrupt { .. }), "{err}");
        // A valid frame that inflates beyond the recorded raw size.
        let small = Expected {
            raw_size: 10,
            ..expected(&s)
        };
        assert!(matches!(
            open("o", &s.stored, &small),
            Err(RepoError::Corrupt { .. })
        ));
    }
}
