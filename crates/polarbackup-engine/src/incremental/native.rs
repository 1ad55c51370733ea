//! PostgreSQL's `backup_label` and `backup_manifest` for rebuilt chains. A chain of native
//! incremental backups needs a label without the `INCREMENTAL FROM` lines (the server refuses
//! to start on an incremental backup) and a manifest describing the rebuilt files, not the
//! `INCREMENTAL.` entries. An LSN-diff set's manifest keeps its paths and sizes but drops the
//! checksums of the files it diffed: the rebuilt file may differ from the server's copy in
//! hint bits, which change pages without a new LSN. Either way the manifest's own checksum is
//! recomputed, so `pg_verifybackup` still checks every file's size and every other checksum.

use super::rebuilt_path;
use sha2::{Digest, Sha256};
use std::path::Path;

const LABEL_INCREMENTAL_LINES: [&str; 2] = ["INCREMENTAL FROM LSN:", "INCREMENTAL FROM TLI:"];

/// Whether a `backup_label` is that of an incremental backup.
pub(crate) fn label_is_incremental(label: &str) -> bool {
    label
        .lines()
        .any(|l| LABEL_INCREMENTAL_LINES.iter().any(|p| l.starts_with(p)))
}

/// The label of the rebuilt backup: the newest one without its `INCREMENTAL FROM` lines.
pub(crate) fn full_label(label: &str) -> String {
    label
        .split_inclusive('\n')
        .filter(|l| !LABEL_INCREMENTAL_LINES.iter().any(|p| l.starts_with(p)))
        .collect()
}

/// Rewrites the newest set's `backup_manifest` for the rebuilt directory `data_dir`: each
/// `INCREMENTAL.<file>` entry becomes `<file>` with the rebuilt size and no checksum (the
/// rebuilt bytes were never summed by the server), and `backup_label` gets its new size.
pub(crate) fn full_manifest(manifest: &str, data_dir: &Path) -> Result<String, String> {
    rewrite_manifest(manifest, |path, _| {
        let rebuilt = match rebuilt_path(path) {
            Some(p) => p,
            None if path == "backup_label" => path.to_owned(),
            None => return Ok(None),
        };
        let size = std::fs::metadata(data_dir.join(&rebuilt))
            .map_err(|e| format!("{rebuilt}: {e}"))?
            .len();
        Ok(Some((rebuilt, size)))
    })
}

/// Rewrites the file lines of a PostgreSQL `backup_manifest` for which `change(path, size)`
/// returns a new path and size: those lose their checksum. The manifest checksum (SHA-256
/// over everything before its line) is recomputed.
pub(crate) fn rewrite_manifest(
    manifest: &str,
    mut change: impl FnMut(&str, u64) -> Result<Option<(String, u64)>, String>,
) -> Result<String, String> {
    let mut lines: Vec<String> = manifest.split_inclusive('\n').map(str::to_owned).collect();
    let checksum_line = lines
        .iter()
        .rposition(|l| l.starts_with("\"Manifest-Checksum\""))
        .ok_or("the backup_manifest has no Manifest-Checksum line")?;
    for line in &mut lines[..checksum_line] {
        let trimmed = line.trim_end();
        let (body, comma) = match trimmed.strip_suffix(',') {
            Some(b) => (b, ","),
            None => (trimmed, ""),
        };
        if !body.starts_with("{ \"Path\":") {
            continue;
        }
        let entry: serde_json::Value = serde_json::from_str(body)
            .map_err(|e| format!("a backup_manifest file line does not parse: {e}"))?;
        let path = entry
            .get("Path")
            .and_then(serde_json::Value::as_str)
            .ok_or("a backup_manifest file line has no Path")?;
        let size = entry
            .get("Size")
            .and_then(serde_json::Value::as_u64)
            .ok_or("a backup_manifest file line has no Size")?;
        let Some((new_path, new_size)) = change(path, size)? else {
            continue;
        };
        let modified = entry
            .get("Last-Modified")
            .and_then(serde_json::Value::as_str)
            .ok_or("a backup_manifest file line has no Last-Modified")?;
        *line = format!(
            "{{ \"Path\": {}, \"Size\": {new_size}, \"Last-Modified\": {} }}{comma}\n",
            serde_json::Value::from(new_path),
            serde_json::Value::from(modified),
        );
    }
    let body: String = lines[..checksum_line].concat();
    let digest = hex::encode(Sha256::digest(body.as_bytes()));
    Ok(format!("{body}\"Manifest-Checksum\": \"{digest}\"}}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_label_loses_only_its_incremental_lines() {
        let label = "START WAL LOCATION: 0/4000028 (file 000000010000000000000004)\n\
                     CHECKPOINT LOCATION: 0/4000080\n\
                     INCREMENTAL FROM LSN: 0/2000028\n\
                     INCREMENTAL FROM TLI: 1\n\
                     START TIMELINE: 1\n";
        assert!(label_is_incremental(label));
        let full = full_label(label);
        assert!(!label_is_incremental(&full));
        assert_eq!(
            full,
            "START WAL LOCATION: 0/4000028 (file 000000010000000000000004)\n\
             CHECKPOINT LOCATION: 0/4000080\nSTART TIMELINE: 1\n"
        );
    }

    #[test]
    fn the_manifest_names_rebuilt_files_and_its_checksum_verifies() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("base/5")).unwrap();
        std::fs::write(dir.path().join("base/5/16384"), vec![0u8; 16384]).unwrap();
        std::fs::write(dir.path().join("backup_label"), b"START\n").unwrap();
        let manifest = "{ \"PostgreSQL-Backup-Manifest-Version\": 2,\n\
\"System-Identifier\": 7,\n\
\"Files\": [\n\
{ \"Path\": \"backup_label\", \"Size\": 60, \"Last-Modified\": \"2026-12-02 13:00:00 GMT\", \"Checksum-Algorithm\": \"CRC32C\", \"Checksum\": \"00000000\" },\n\
{ \"Path\": \"base/5/INCREMENTAL.16384\", \"Size\": 8204, \"Last-Modified\": \"2026-12-02 13:00:00 GMT\", \"Checksum-Algorithm\": \"CRC32C\", \"Checksum\": \"11111111\" },\n\
{ \"Path\": \"PG_VERSION\", \"Size\": 3, \"Last-Modified\": \"2026-12-02 13:00:00 GMT\", \"Checksum-Algorithm\": \"CRC32C\", \"Checksum\": \"22222222\" }\n\
],\n\
\"WAL-Ranges\": [\n\
{ \"Timeline\": 1, \"Start-LSN\": \"0/4000028\", \"End-LSN\": \"0/4000100\" }\n\
],\n\
\"Manifest-Checksum\": \"0\"}\n";
        let out = full_manifest(manifest, dir.path()).unwrap();
        let parsed: serde_json::Value = serde_json::from_str(&out).unwrap();
        let files = parsed["Files"].as_array().unwrap();
        assert_eq!(files[0]["Size"], 6);
        assert_eq!(files[1]["Path"], "base/5/16384");
        assert_eq!(files[1]["Size"], 16384);
        assert!(files[1].get("Checksum").is_none());
        assert_eq!(files[2]["Checksum"], "22222222");
        let cut = out.rfind("\"Manifest-Checksum\"").unwrap();
        let digest = hex::encode(Sha256::digest(&out.as_bytes()[..cut]));
        assert_eq!(parsed["Manifest-Checksum"], digest);
    }
}
