//! The data directory's layout, and values that settings and admin commands both check.

use anyhow::{bail, Context, Result};
use polarbackup_store::MasterKey;
use std::path::{Path, PathBuf};

/// Region ids: lower-case letters, digits and '-'.
pub fn valid_region(r: &str) -> bool {
    !r.is_empty()
        && r.len() <= 64
        && r.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The key that authenticates RAM diagnostic messages, created on first use (mode 0600).
pub fn diagnostic_key(data_dir: &Path) -> Result<Vec<u8>> {
    key_file(&data_dir.join("diagnostic.key"))
}

/// The secret that signs download links: `file` (the setting), made on first use (mode 0600)
/// when it is a relative path, which names a file in the data directory; an absolute path
/// names a file the operator provides (shared by several servers), which must exist.
pub fn link_secret(data_dir: &Path, file: &Path) -> Result<Vec<u8>> {
    if file.is_relative() {
        return key_file(&data_dir.join(file));
    }
    let key = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    if key.len() < 32 {
        bail!("{} must hold at least 32 bytes", file.display());
    }
    Ok(key)
}

/// The master key that seals the metadata store's secrets: `env` (POLARBACKUP_MASTER_KEY,
/// text) when given, else `file` (the setting). A relative `file` names a file in the data
/// directory, made on first use (32 random bytes, mode 0600), as the diagnostic key is; an
/// absolute one must exist and be private to its owner. Errors never hold key material.
pub fn master_key(data_dir: &Path, file: &Path, env: Option<&str>) -> Result<MasterKey> {
    if let Some(text) = env {
        return MasterKey::from_text(text).context("POLARBACKUP_MASTER_KEY");
    }
    if file.is_relative() {
        return master_key_from(&key_file(&data_dir.join(file))?)
            .with_context(|| format!("master key file {}", data_dir.join(file).display()));
    }
    read_master_key_file(file)
}

/// A master key an operator gives in a file (32 raw bytes, or hex or base64 text), which
/// nobody but its owner may read.
pub fn read_master_key_file(file: &Path) -> Result<MasterKey> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(file).with_context(|| format!("reading {}", file.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        bail!(
            "master key file {} may be read by its group or others (mode {mode:o}): chmod 600 it",
            file.display()
        );
    }
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    master_key_from(&bytes).with_context(|| format!("master key file {}", file.display()))
}

fn master_key_from(bytes: &[u8]) -> Result<MasterKey> {
    if bytes.len() == MasterKey::LEN {
        return Ok(MasterKey::from_bytes(bytes)?);
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|_| anyhow::anyhow!("not 32 raw bytes, nor hex or base64 text"))?;
    Ok(MasterKey::from_text(text)?)
}

/// A random 32-byte key kept in `path`, made on first use (mode 0600).
fn key_file(path: &Path) -> Result<Vec<u8>> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    match std::fs::read(path) {
        Ok(k) if k.len() >= 32 => return Ok(k),
        Ok(_) => bail!(
            "{} is too short; delete it to make a new one",
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    }
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let key: [u8; 32] = rand::random();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(&key)?;
    f.sync_all()?;
    Ok(key.to_vec())
}

/// The key of an encrypted repository, from `path`, which only its owner may read (like any
/// secret file: whoever reads it reads every backup).
pub fn repository_key(path: &Path) -> Result<polarbackup_repo::RepoKey> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .with_context(|| format!("reading the repository key file {}", path.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        bail!(
            "the repository key file {} may be read by its group or others (mode {:o}): make \
             it private with chmod 600",
            path.display(),
            mode & 0o777
        );
    }
    let material = std::fs::read(path)
        .with_context(|| format!("reading the repository key file {}", path.display()))?;
    polarbackup_repo::RepoKey::from_bytes(&material)
        .with_context(|| format!("the repository key file {}", path.display()))
}

/// Private scratch space inside a data directory.
pub fn scratch_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("tmp")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_link_secret_is_made_once_in_the_data_dir_or_read_from_the_named_file() {
        let dir = tempfile::tempdir().expect("tmp");
        let data = dir.path().join("data");
        let first = link_secret(&data, Path::new("keys/link.key")).expect("made");
        assert_eq!(first.len(), 32);
        let path = data.join("keys/link.key");
        let mode = std::fs::metadata(&path).expect("file").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            link_secret(&data, Path::new("keys/link.key")).expect("kept"),
            first
        );

        let named = dir.path().join("shared.key");
        let err = link_secret(&data, &named).expect_err("an absolute file must exist");
        assert!(format!("{err:#}").contains("shared.key"), "{err:#}");
        assert!(!named.exists(), "an operator's file is never made up");
        std::fs::write(&named, [1u8; 31]).expect("write");
        assert!(link_secret(&data, &named).is_err(), "too short");
        std::fs::write(&named, [1u8; 40]).expect("write");
        assert_eq!(link_secret(&data, &named).expect("read"), vec![1u8; 40]);
    }
}
