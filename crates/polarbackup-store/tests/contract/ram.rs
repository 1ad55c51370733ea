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
