//! Re-verification of stored sets: a set found corrupt becomes unavailable with its reason,
//! and the scrub's claim hands each due set to one server at a time.

use crate::common::{automated, fail, finish, page, setup, t, Backend};
use crate::concurrency::{race, THREADS};
use polarbackup_model::BackupJobId;

pub fn a_corrupt_set_is_unavailable_with_its_first_reason(b: &dyn Backend) {
    let (store, _account, cluster) = setup(b);
    let good = finish(&*store, automated(&*store, &cluster, 1), 10);
    let bad = finish(&*store, automated(&*store, &cluster, 11), 20);
    let failed = fail(&*store, automated(&*store, &cluster, 21), 30);
    let reason = "backups/x/objects/c1: BLAKE3 mismatch";
    assert!(store.mark_set_corrupt(bad.id, reason, t(40)).expect("mark"));
    assert!(
        store
            .mark_set_corrupt(bad.id, "later", t(50))
            .expect("mark"),
        "marked again"
    );
    assert!(
        !store
            .mark_set_corrupt(failed.id, reason, t(40))
            .expect("mark"),
        "a failed set is not available anyway"
    );
    assert!(!store
        .mark_set_corrupt(BackupJobId(99_999_999), reason, t(40))
        .expect("mark"));

    // Another handle (another server) sees it, everywhere sets are read.
    let other = b.open();
    let stored = other.backup_set(bad.id).expect("get").expect("listed");
    assert_eq!(
        stored.corrupt.as_deref(),
        Some(reason),
        "the first reason is kept"
    );
    assert!(!stored.is_available());
    let good_now = other.backup_set(good.id).expect("get").expect("listed");
    assert_eq!(good_now, good);
    assert!(good_now.is_available());
    let listed = other
        .list_backup_sets(&cluster, &page(0, 1000, 30, 1))
        .expect("list");
    let shown = listed.sets.iter().find(|s| s.id == bad.id).expect("listed");
    assert!(!shown.is_available());
    let inputs = other.recovery_inputs(&cluster).expect("inputs");
    let planned = inputs.sets.iter().find(|s| s.id == bad.id).expect("input");
    assert_eq!(planned.corrupt.as_deref(), Some(reason));
    let verifiable: Vec<_> = other
        .verifiable_sets()
        .expect("verifiable")
        .into_iter()
        .map(|s| (s.id, s.corrupt.is_some()))
        .collect();
    assert_eq!(
        verifiable,
        vec![(good.id, false), (bad.id, true)],
        "successful sets, corrupt ones included"
    );
    assert!(other
        .cluster_sets(&cluster)
        .expect("sets")
        .iter()
        .any(|s| s.id == bad.id && s.corrupt.is_some()));
}

pub fn the_scrub_claims_the_longest_unverified_set_once_until_its_claim_lapses(b: &dyn Backend) {
    let (store, _account, cluster) = setup(b);
    let a = finish(&*store, automated(&*store, &cluster, 1), 10);
    let c = finish(&*store, automated(&*store, &cluster, 11), 20);
    let claim = |w: &str, before: i64, until: i64, now: i64| {
        store
            .claim_scrub(w, t(before), t(until), t(now))
            .expect("claim")
            .map(|s| s.id)
    };
    assert_eq!(claim("w1", 5, 200, 100), None, "nothing is due yet");
    assert_eq!(claim("w1", 100, 200, 100), Some(a.id), "the oldest first");
    assert_eq!(claim("w2", 100, 200, 100), Some(c.id), "a is claimed");
    assert_eq!(claim("w3", 100, 200, 100), None, "both are claimed");
    assert!(
        !store.end_scrub(a.id, "w2", t(150)).expect("end"),
        "not w2's"
    );
    assert!(store.end_scrub(a.id, "w1", t(150)).expect("end"));
    assert!(!store.end_scrub(a.id, "w1", t(151)).expect("end"), "ended");
    // a was verified at 150: not due before then, and c is still claimed until 200.
    assert_eq!(claim("w3", 120, 300, 150), None);
    assert_eq!(
        claim("w3", 120, 300, 200),
        None,
        "held until its last second"
    );
    assert_eq!(claim("w3", 120, 300, 201), Some(c.id), "w2's claim lapsed");
    assert!(
        !store.end_scrub(c.id, "w2", t(250)).expect("end"),
        "taken over"
    );
    assert!(store.end_scrub(c.id, "w3", t(250)).expect("end"));
    assert_eq!(
        claim("w1", 200, 400, 260),
        Some(a.id),
        "verified at 150 ≤ 200"
    );
    assert!(store.end_scrub(a.id, "w1", t(270)).expect("end"));
    // A corrupt set is not scrubbed again; a deleted one is not scrubbed at all.
    assert!(store.mark_set_corrupt(a.id, "bad", t(280)).expect("mark"));
    let deleted = finish(&*store, automated(&*store, &cluster, 21), 30);
    store.expire_sets(&[deleted.id]).expect("expire");
    assert_eq!(claim("w1", 1000, 2000, 1000), Some(c.id));
    assert_eq!(claim("w2", 1000, 2000, 1000), None);
}

pub fn one_scrubber_wins_a_concurrent_claim(b: &dyn Backend) {
    let (store, _account, cluster) = setup(b);
    for round in 0..3 {
        let set = finish(
            &*store,
            automated(&*store, &cluster, round * 10 + 1),
            round * 10 + 5,
        );
        let won = race(b, |i, s| {
            s.claim_scrub(&format!("w{i}"), t(1000), t(2000), t(1000))
                .expect("claim")
                .map(|s| s.id)
        });
        let winners: Vec<_> = won.iter().flatten().collect();
        assert_eq!(
            winners,
            vec![&set.id],
            "round {round} of {THREADS}: {won:?}"
        );
    }
}
