//! Our per-backup manifest (`manifest.json`): what was stored, with checksums, and its loading rules.

use serde::{Deserialize, Serialize};

use crate::codec::{Checksum, Expected};
use crate::config::MAX_CHUNK_SIZE;
use crate::crypt::{CIPHER, OVERHEAD};
use crate::layout;
use crate::{RepoError, RepoKey};

/// The manifest format this crate writes; older ones keep loading, newer ones are refused.
/// 1: SHA-256 digests in `raw_sha256`/`stored_sha256`. 2: the hash named by `checksum`
/// (BLAKE3 when written), in `raw_hash`/`stored_hash`; format 1's names still read.
pub const FORMAT_VERSION: u32 = 2;
/// Format 2 in an encrypted repository: `encryption` is set, every stored size and hash is
/// of the sealed object, and the manifest itself is stored sealed inside an envelope that
/// shows only the format, backup id and `encryption` (so a reader can say what key it needs).
pub const ENCRYPTED_FORMAT_VERSION: u32 = 3;

/// The `Corrupt` reason of a manifest sealed under another key. Readers refuse it as corrupt,
/// but a re-verification must not mark the set unavailable for it: the likelier cause is a
/// server started with the wrong key file, not damaged data.
pub const WRONG_KEY: &str =
    "the repository key is not the one this backup was encrypted with (key check failed)";

/// The committed description of one backup. Everything in it is checked on load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    pub backup_id: String,
    pub created_at: jiff::Timestamp,
    /// Raw bytes per chunk when written; every chunk holds at most this many.
    pub chunk_size: u64,
    pub compression: Compression,
    /// "sha256" (format 1 or 2) or "blake3" (format 2): the hash of every digest below.
    pub checksum: String,
    pub archives: Vec<ArchiveEntry>,
    pub files: Vec<FileEntry>,
    pub totals: Totals,
    /// The engine's metadata (LSNs, timeline, system id, PostgreSQL version, times), opaque here.
    pub meta: serde_json::Value,
    /// Set exactly in format 3: how the backup's objects are encrypted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<Encryption>,
}

/// How an encrypted backup's objects are sealed, and which key can open them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Encryption {
    /// Always "aes-256-gcm".
    pub cipher: String,
    /// `RepoKey::check` of the key the backup was written with.
    pub key_check: String,
}

impl Encryption {
    pub(crate) fn of(key: &RepoKey) -> Encryption {
        Encryption {
            cipher: CIPHER.into(),
            key_check: key.check().to_owned(),
        }
    }
}

/// What an encrypted repository stores as `manifest.json`: the sealed manifest (zstd, then
/// AES-256-GCM bound to the manifest's path), hex-encoded, with what a reader needs to know
/// before opening it.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    format_version: u32,
    backup_id: String,
    encryption: Encryption,
    sealed: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compression {
    /// Always "zstd" in format 1.
    pub algorithm: String,
    pub level: i32,
}

/// One tar stream (`base.tar`, `<oid>.tar`, `pg_wal.tar`) split into chunks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveEntry {
    pub name: String,
    pub tablespace_location: Option<String>,
    pub raw_size: u64,
    /// The hash over the chunks' `raw_hash` hex digests, one per line, in order: with each
    /// chunk checked against its own digest, this pins the whole stream and its order.
    #[serde(alias = "raw_sha256")]
    pub raw_hash: String,
    pub chunks: Vec<ChunkEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkEntry {
    /// Path relative to the backup directory, `<archive>/<seq:08>.zst`.
    pub object: String,
    pub raw_size: u64,
    pub stored_size: u64,
    #[serde(alias = "raw_sha256")]
    pub raw_hash: String,
    #[serde(alias = "stored_sha256")]
    pub stored_hash: String,
}

/// A small side file such as PostgreSQL's `backup_manifest`, stored as one zstd object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub name: String,
    /// Path relative to the backup directory, `files/<name>`.
    pub object: String,
    pub raw_size: u64,
    pub stored_size: u64,
    #[serde(alias = "raw_sha256")]
    pub raw_hash: String,
    #[serde(alias = "stored_sha256")]
    pub stored_hash: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub raw_bytes: u64,
    pub stored_bytes: u64,
}

impl ChunkEntry {
    pub(crate) fn expected(&self, checksum: Checksum) -> Expected<'_> {
        Expected {
            checksum,
            raw_size: self.raw_size,
            stored_size: self.stored_size,
            raw_hash: &self.raw_hash,
            stored_hash: &self.stored_hash,
        }
    }
}

impl FileEntry {
    /// The object part of the entry, to read it like a chunk.
    pub(crate) fn as_chunk(&self) -> ChunkEntry {
        ChunkEntry {
            object: self.object.clone(),
            raw_size: self.raw_size,
            stored_size: self.stored_size,
            raw_hash: self.raw_hash.clone(),
            stored_hash: self.stored_hash.clone(),
        }
    }
}

impl Manifest {
    /// Parses and validates a manifest read from `object` (a path used in errors).
    /// The version is read first so a newer format is reported as such, not as garbage.
    pub fn from_json(data: &[u8], object: &str) -> Result<Manifest, RepoError> {
        let value: serde_json::Value = serde_json::from_slice(data)
            .map_err(|e| RepoError::corrupt(object, format!("manifest is not JSON: {e}")))?;
        let version = value
            .get("format_version")
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| RepoError::corrupt(object, "manifest has no numeric format_version"))?;
        if version == 0 || version > u64::from(ENCRYPTED_FORMAT_VERSION) {
            return Err(RepoError::UnsupportedFormat(
                u32::try_from(version).unwrap_or(u32::MAX),
            ));
        }
        let manifest: Manifest = serde_json::from_value(value)
            .map_err(|e| RepoError::corrupt(object, format!("manifest does not parse: {e}")))?;
        manifest
            .check()
            .map_err(|reason| RepoError::corrupt(object, reason))?;
        Ok(manifest)
    }

    /// Reads the stored `manifest.json` at `object` in a repository with `key` (or none): an
    /// encrypted manifest needs the key it was written with (a wrong key, or a changed or
    /// moved manifest, is `Corrupt`), and a keyed repository refuses a plaintext one.
    pub fn load(data: &[u8], object: &str, key: Option<&RepoKey>) -> Result<Manifest, RepoError> {
        let value: serde_json::Value = serde_json::from_slice(data)
            .map_err(|e| RepoError::corrupt(object, format!("manifest is not JSON: {e}")))?;
        if value.get("sealed").is_none() {
            let manifest = Manifest::from_json(data, object)?;
            if manifest.encryption.is_some() {
                return Err(RepoError::corrupt(
                    object,
                    "an encrypted manifest stored without its envelope",
                ));
            }
            if key.is_some() {
                return Err(RepoError::InvalidConfig(format!(
                    "{object} is not encrypted, but a repository key is set: an encrypted \
                     repository reads only backups written with its key"
                )));
            }
            return Ok(manifest);
        }
        let version = value
            .get("format_version")
            .and_then(serde_json::Value::as_u64);
        if version.is_some_and(|v| v > u64::from(ENCRYPTED_FORMAT_VERSION)) {
            return Err(RepoError::UnsupportedFormat(
                version
                    .and_then(|v| u32::try_from(v).ok())
                    .unwrap_or(u32::MAX),
            ));
        }
        let envelope: Envelope = serde_json::from_value(value).map_err(|e| {
            RepoError::corrupt(object, format!("manifest envelope does not parse: {e}"))
        })?;
        let Some(key) = key else {
            return Err(RepoError::InvalidConfig(format!(
                "{object} is encrypted ({}): reading it needs the repository key \
                 (--repository-key-file)",
                envelope.encryption.cipher
            )));
        };
        if envelope.encryption.key_check != key.check() {
            return Err(RepoError::corrupt(object, WRONG_KEY));
        }
        let sealed = hex::decode(&envelope.sealed)
            .map_err(|_| RepoError::corrupt(object, "sealed manifest is not hex"))?;
        let compressed = key.open(object, &sealed)?;
        let json = zstd::stream::decode_all(&compressed[..])
            .map_err(|e| crate::codec::zstd_failed(object, e))?;
        let manifest = Manifest::from_json(&json, object)?;
        if manifest.backup_id != envelope.backup_id
            || manifest.encryption.as_ref() != Some(&envelope.encryption)
        {
            return Err(RepoError::corrupt(
                object,
                "the envelope does not match the sealed manifest",
            ));
        }
        Ok(manifest)
    }

    /// The bytes to store as `manifest.json` at `object`: the JSON, or its envelope when the
    /// repository has a key.
    pub fn to_stored(&self, object: &str, key: Option<&RepoKey>) -> Result<Vec<u8>, RepoError> {
        let (Some(key), Some(encryption)) = (key, &self.encryption) else {
            return Ok(self.to_json());
        };
        let compressed = zstd::bulk::compress(&self.to_json(), 3)
            .map_err(|e| RepoError::Internal(format!("zstd compression failed: {e}")))?;
        let envelope = Envelope {
            format_version: self.format_version,
            backup_id: self.backup_id.clone(),
            encryption: encryption.clone(),
            sealed: hex::encode(key.seal(object, &compressed)?),
        };
        let mut out = serde_json::to_vec_pretty(&envelope)
            .map_err(|e| RepoError::Internal(format!("manifest envelope: {e}")))?;
        out.push(b'\n');
        Ok(out)
    }

    pub fn to_json(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).expect("a manifest always serializes");
        out.push(b'\n');
        out
    }

    pub fn archive(&self, name: &str) -> Option<&ArchiveEntry> {
        self.archives.iter().find(|a| a.name == name)
    }

    pub fn file(&self, name: &str) -> Option<&FileEntry> {
        self.files.iter().find(|f| f.name == name)
    }

    /// The hash of every digest in this manifest (checked on load).
    pub fn checksum(&self) -> Checksum {
        Checksum::parse(&self.checksum).unwrap_or(Checksum::Sha256)
    }

    /// Internal consistency: names, layout, sizes, sums. Object contents are `verify`'s job.
    /// Object paths are recomputed rather than trusted, so a manifest cannot point outside
    /// its backup directory.
    fn check(&self) -> Result<(), String> {
        let err = |e: RepoError| e.to_string();
        layout::check_name("backup id", &self.backup_id).map_err(err)?;
        let checksum_known = match Checksum::parse(&self.checksum) {
            Some(Checksum::Sha256) => true,
            Some(Checksum::Blake3) => self.format_version >= 2,
            None => false,
        };
        if self.compression.algorithm != "zstd" || !checksum_known {
            return Err(format!(
                "unknown compression {:?} or checksum {:?} in format {}",
                self.compression.algorithm, self.checksum, self.format_version
            ));
        }
        if self.chunk_size == 0 || self.chunk_size > MAX_CHUNK_SIZE as u64 {
            return Err(format!("chunk_size {} is out of range", self.chunk_size));
        }
        let encrypted = self.format_version == ENCRYPTED_FORMAT_VERSION;
        match &self.encryption {
            Some(e) if encrypted => {
                if e.cipher != CIPHER {
                    return Err(format!("unknown cipher {:?}", e.cipher));
                }
                check_hash(&e.key_check)?;
            }
            None if !encrypted => {}
            _ => {
                return Err(format!(
                    "format {} and encryption {:?} do not go together",
                    self.format_version, self.encryption
                ))
            }
        }
        // Sealing adds a fixed number of bytes to each object.
        let overhead = if encrypted { OVERHEAD as u64 } else { 0 };
        let max_stored =
            zstd::zstd_safe::compress_bound(self.chunk_size as usize) as u64 + overhead;
        let (mut raw_total, mut stored_total) = (0u64, 0u64);
        let mut names = std::collections::HashSet::new();
        for a in &self.archives {
            layout::check_name("archive", &a.name).map_err(err)?;
            if !names.insert(a.name.as_str()) {
                return Err(format!("archive {} is listed twice", a.name));
            }
            check_hash(&a.raw_hash)?;
            let mut sum = 0u64;
            for (seq, c) in a.chunks.iter().enumerate() {
                if c.object != layout::chunk_object(&a.name, seq) {
                    return Err(format!(
                        "chunk {seq} of {} has object {:?}",
                        a.name, c.object
                    ));
                }
                if c.raw_size == 0
                    || c.raw_size > self.chunk_size
                    || c.stored_size == 0
                    || c.stored_size > max_stored
                {
                    return Err(format!("chunk {} has impossible sizes", c.object));
                }
                check_hash(&c.raw_hash)?;
                check_hash(&c.stored_hash)?;
                sum = sum.saturating_add(c.raw_size);
                stored_total = stored_total.saturating_add(c.stored_size);
            }
            if sum != a.raw_size {
                return Err(format!(
                    "archive {} chunks add up to {sum}, not {}",
                    a.name, a.raw_size
                ));
            }
            raw_total = raw_total.saturating_add(sum);
        }
        let mut names = std::collections::HashSet::new();
        for f in &self.files {
            layout::check_name("file", &f.name).map_err(err)?;
            if !names.insert(f.name.as_str()) {
                return Err(format!("file {} is listed twice", f.name));
            }
            if f.object != layout::file_object(&f.name) {
                return Err(format!("file {} has object {:?}", f.name, f.object));
            }
            // Side files are small; cap them like chunks so reading one stays bounded.
            if f.raw_size > MAX_CHUNK_SIZE as u64
                || f.stored_size == 0
                || f.stored_size > zstd::zstd_safe::compress_bound(MAX_CHUNK_SIZE) as u64 + overhead
            {
                return Err(format!("file {} has impossible sizes", f.name));
            }
            check_hash(&f.raw_hash)?;
            check_hash(&f.stored_hash)?;
            raw_total = raw_total.saturating_add(f.raw_size);
            stored_total = stored_total.saturating_add(f.stored_size);
        }
        let sums = Totals {
            raw_bytes: raw_total,
            stored_bytes: stored_total,
        };
        if sums != self.totals {
            return Err(format!(
                "totals {:?} do not match the entries {sums:?}",
                self.totals
            ));
        }
        Ok(())
    }
}

fn check_hash(h: &str) -> Result<(), String> {
    if h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        Ok(())
    } else {
        Err(format!("{h:?} is not a lowercase hex 256-bit digest"))
    }
}
