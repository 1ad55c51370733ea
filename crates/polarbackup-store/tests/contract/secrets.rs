//! Secrets at rest: access-key secrets and database passwords are sealed with the master key
//! in the tables, read back in clear through the store, moved to a new key by a rotation, and
//! a store opened with another key is refused.

use crate::common::{master_key, t, test_key, Backend};
use polarbackup_model::{AccessKey, DbClusterId, NewCluster, TlsMode};
use polarbackup_store::{SealReport, Store, StoreError};

const PASSWORD: &str = "db-pass-Xq7-secret";

/// An account with an HMAC key, a RAM user's key, and a cluster with a password.
fn secrets(store: &dyn Store) -> (Vec<AccessKey>, DbClusterId) {
    let account = store.create_account(None, t(0)).expect("account").id;
    let root = store.create_key(&account, t(1)).expect("key");
    let user = store.create_user(&account, "alice", t(1)).expect("user");
    let user_key = store.create_user_key(&user, t(2)).expect("user key");
    let cluster = store
        .create_cluster(
            &NewCluster {
                account,
                region: "cn-hangzhou".into(),
                engine: "postgresql".into(),
                host: "127.0.0.1".into(),
                port: 5432,
                user: "postgres".into(),
                password: Some(PASSWORD.into()),
                database: None,
                description: None,
                tls_mode: TlsMode::Prefer,
                tls_ca_file: None,
            },
            t(3),
        )
        .expect("cluster");
    assert_eq!(cluster.spec.password.as_deref(), Some(PASSWORD));
    (vec![root, user_key], cluster.id)
}

fn reads_back(store: &dyn Store, keys: &[AccessKey], cluster: &DbClusterId) {
    for key in keys {
        let loaded = store.key(&key.id).expect("key").expect("exists");
        assert_eq!(&loaded, key, "the secret reads back in clear");
    }
    let loaded = store.cluster(cluster).expect("cluster").expect("exists");
    assert_eq!(loaded.spec.password.as_deref(), Some(PASSWORD));
}

/// No stored value holds a plaintext secret, and each is sealed with `key_id`.
fn sealed_with(b: &dyn Backend, keys: &[AccessKey], key_id: &str) {
    let raw = b.raw_secrets();
    assert_eq!(raw.len(), keys.len() + 1, "{raw:?}");
    for value in &raw {
        assert!(
            value.starts_with(&format!("enc:v1:{key_id}:")),
            "not sealed with {key_id}: {value}"
        );
        assert!(!value.contains(PASSWORD), "{value}");
        for key in keys {
            assert!(!value.contains(&key.secret), "{value}");
        }
    }
}

pub fn stored_secrets_are_sealed_and_read_back_in_clear(b: &dyn Backend) {
    let store = b.open();
    let (keys, cluster) = secrets(&*store);
    sealed_with(b, &keys, test_key().id());
    reads_back(&*store, &keys, &cluster);
    // Another handle (another server on the store) with the same key reads them too.
    reads_back(&*b.open(), &keys, &cluster);
}

pub fn a_store_opened_with_another_key_is_refused(b: &dyn Backend) {
    let (keys, cluster) = secrets(&*b.open());
    let err = b.open_with(Some(master_key(8))).err().expect("refused");
    assert!(matches!(err, StoreError::MasterKey(_)), "{err:?}");
    assert!(
        err.to_string()
            .contains("master key does not match the metadata store"),
        "{err}"
    );
    // A handle without any key opens (tools reading jobs), yet never hands out a sealed
    // value as if it were the secret.
    let unkeyed = b.open_with(None).expect("unkeyed");
    assert!(matches!(
        unkeyed.key(&keys[0].id),
        Err(StoreError::MasterKey(_))
    ));
    assert!(matches!(
        unkeyed.cluster(&cluster),
        Err(StoreError::MasterKey(_))
    ));
    reads_back(&*b.open(), &keys, &cluster);
}

pub fn plaintext_left_by_an_older_version_is_sealed_at_open(b: &dyn Backend) {
    // An older version (no key) wrote its secrets in clear.
    let (keys, cluster) = secrets(&*b.open_with(None).expect("unkeyed"));
    assert!(b.raw_secrets().iter().any(|v| v == PASSWORD));
    let store = b.open();
    sealed_with(b, &keys, test_key().id());
    reads_back(&*store, &keys, &cluster);
}

pub fn rotation_reseals_every_secret_and_only_the_new_key_opens(b: &dyn Backend) {
    let (keys, cluster) = secrets(&*b.open());
    let new = master_key(9);
    let report = b.rotate(test_key(), new.clone()).expect("rotate");
    assert_eq!(
        report,
        SealReport {
            access_keys: 2,
            cluster_passwords: 1
        }
    );
    sealed_with(b, &keys, new.id());
    let err = b
        .open_with(Some(test_key()))
        .err()
        .expect("old key refused");
    assert!(
        err.to_string().contains("master key does not match"),
        "{err}"
    );
    reads_back(
        &*b.open_with(Some(new.clone())).expect("new key"),
        &keys,
        &cluster,
    );
    // A rotation must start from the store's own key.
    assert!(b.rotate(master_key(10), master_key(11)).is_err());
    sealed_with(b, &keys, new.id());
}
