//! RAM records: users, their keys, custom policies and attachments.

use crate::common::Backend;
use jiff::Timestamp;
use polarbackup_store::{PolicyKind, StoreError, StoredPolicy};

fn t() -> Timestamp {
    Timestamp::from_second(1_800_000_000).expect("time")
}

pub fn users_keys_policies_and_attachments(b: &dyn Backend) {
    let store = b.open();
    let account = store.create_account(None, t()).expect("account").id;
    let other = store.create_account(None, t()).expect("account").id;
    let alice = store.create_user(&account, "alice", t()).expect("user");
    assert_eq!(alice.id.as_str().len(), 16);
    assert!(matches!(
        store.create_user(&account, "alice", t()),
        Err(StoreError::Conflict(_))
    ));
    store
        .create_user(&other, "alice", t())
        .expect("names are per account");
    assert_eq!(store.user(&alice.id).expect("load"), Some(alice.clone()));

    let key = store.create_user_key(&alice, t()).expect("key");
    assert_eq!(key.user.as_ref(), Some(&alice.id));
    assert_eq!(key.account, account);
    assert_eq!(
        store.key(&key.id).expect("load").expect("exists").user,
        key.user
    );
    let root = store.create_key(&account, t()).expect("root key");
    assert_eq!(root.user, None);

    let doc = r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
    let policy = StoredPolicy {
        account: account.clone(),
        name: "all".into(),
        document: doc.into(),
        created_at: t(),
    };
    store.create_policy(&policy).expect("policy");
    assert!(matches!(
        store.create_policy(&policy),
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.list_policies(&account).expect("list"), vec![policy]);
    assert!(store.list_policies(&other).expect("list").is_empty());

    assert!(store
        .attach_policy(&alice, PolicyKind::Custom, "all")
        .expect("attach"));
    assert!(!store
        .attach_policy(&alice, PolicyKind::Custom, "all")
        .expect("again"));
    assert!(store
        .attach_policy(&alice, PolicyKind::System, "AliyunPolardbReadOnlyAccess")
        .expect("system"));
    assert!(matches!(
        store.attach_policy(&alice, PolicyKind::Custom, "missing"),
        Err(StoreError::NotFound { .. })
    ));
    let att = store.attachments(&alice).expect("attachments");
    assert_eq!(att.len(), 2);
    assert_eq!(
        att.iter()
            .find(|a| a.kind == PolicyKind::Custom)
            .and_then(|a| a.document.as_deref()),
        Some(doc)
    );
    assert!(store
        .detach_policy(&alice, PolicyKind::Custom, "all")
        .expect("detach"));
    assert!(!store
        .detach_policy(&alice, PolicyKind::Custom, "all")
        .expect("not attached"));
    assert_eq!(store.attachments(&alice).expect("attachments").len(), 1);
}

/// What a signed call reads, in one call: the key (secret opened), its user, the user's
/// policies with their documents and the named cluster; each change is seen by the next read.
pub fn caller_records_read_key_user_policies_and_cluster_together(b: &dyn Backend) {
    let store = b.open();
    let account = store.create_account(None, t()).expect("account").id;
    let cluster = crate::common::new_cluster(store.as_ref(), &account);
    let root = store.create_key(&account, t()).expect("root key");
    let records = store
        .caller_records(&root.id, Some(&cluster))
        .expect("read")
        .expect("stored");
    assert_eq!(records.key, root);
    assert_eq!(records.user, None);
    assert!(records.attachments.is_empty());
    assert_eq!(
        records.cluster.as_deref(),
        store.cluster(&cluster).expect("cluster").as_ref()
    );
    assert!(records.cluster.is_some());
    let none = store
        .caller_records(&root.id, None)
        .expect("read")
        .expect("stored");
    assert_eq!(none.cluster, None);

    let bob = store.create_user(&account, "bob", t()).expect("user");
    let key = store.create_user_key(&bob, t()).expect("key");
    let records = store
        .caller_records(&key.id, None)
        .expect("read")
        .expect("stored");
    assert_eq!(records.user.as_ref(), Some(&bob));
    assert!(records.attachments.is_empty());
    let doc = r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
    store
        .create_policy(&StoredPolicy {
            account: account.clone(),
            name: "all".into(),
            document: doc.into(),
            created_at: t(),
        })
        .expect("policy");
    store
        .attach_policy(&bob, PolicyKind::Custom, "all")
        .expect("attach");
    let records = store
        .caller_records(&key.id, None)
        .expect("read")
        .expect("stored");
    assert_eq!(
        records.attachments[..],
        store.attachments(&bob).expect("attachments")[..]
    );
    assert_eq!(records.attachments.len(), 1);
    assert_eq!(records.attachments[0].document.as_deref(), Some(doc));
    store
        .detach_policy(&bob, PolicyKind::Custom, "all")
        .expect("detach");
    store.set_key_active(&key.id, false).expect("deactivate");
    let records = store
        .caller_records(&key.id, None)
        .expect("read")
        .expect("stored");
    assert!(records.attachments.is_empty());
    assert!(!records.key.active);

    let unknown = polarbackup_model::AccessKeyId::parse("LTAInope").expect("id");
    assert_eq!(
        store
            .caller_records(&unknown, Some(&cluster))
            .expect("read"),
        None
    );
}
