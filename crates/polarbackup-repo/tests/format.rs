//! Manifest formats: a committed format-1 sample keeps loading; unknown versions are refused.

use polarbackup_repo::{Manifest, RepoError, ENCRYPTED_FORMAT_VERSION};

#[test]
fn committed_sample_manifest_keeps_loading() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/samples/manifest-v1.json"
    );
    let data = std::fs::read(path).unwrap();
    let m = Manifest::from_json(&data, path).unwrap();
    assert_eq!(m.format_version, 1);
    assert_eq!(m.backup_id, "sample-1");
    assert_eq!(m.archives.len(), 2);
    assert_eq!(m.files[0].name, "backup_manifest");
    assert_eq!(m.meta["pg_version"], 150018);
}

#[test]
fn newer_or_missing_format_versions_are_refused() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/samples/manifest-v1.json"
    );
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let newer = ENCRYPTED_FORMAT_VERSION + 1;
    v["format_version"] = newer.into();
    let err = Manifest::from_json(v.to_string().as_bytes(), "m").unwrap_err();
    assert!(
        matches!(err, RepoError::UnsupportedFormat(n) if n == newer),
        "{err}"
    );
    // Format 1 knew only SHA-256.
    v["format_version"] = 1.into();
    v["checksum"] = "blake3".into();
    let err = Manifest::from_json(v.to_string().as_bytes(), "m").unwrap_err();
    assert!(matches!(err, RepoError::Corrupt { .. }), "{err}");
    v.as_object_mut().unwrap().remove("format_version");
    let err = Manifest::from_json(v.to_string().as_bytes(), "m").unwrap_err();
    assert!(matches!(err, RepoError::Corrupt { .. }), "{err}");
}
