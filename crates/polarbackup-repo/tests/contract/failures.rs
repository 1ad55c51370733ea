//! A failing backend: whichever storage call fails, no manifest ever points at a missing or
//! short object, and no failed read lets `verify` pass.

use opendal::Operator;
use polarbackup_repo::{Manifest, Repo, RepoError};

use crate::common::*;
use crate::faults::{Call, Faults};
use crate::support::*;

/// Two multi-chunk archives (the last chunk of the first one partial) and a side file.
struct Workload {
    base: Vec<u8>,
    tablespace: Vec<u8>,
    side: Vec<u8>,
}

impl Workload {
    fn new() -> Self {
        Workload {
            base: random(5 * 1024 + 100, 1),
            tablespace: random(3 * 1024, 2),
            side: b"{\"Files\": []}".to_vec(),
        }
    }

    /// A backup as the engine writes one: abort on any error before the commit, whose own
    /// failure cleans up by itself.
    async fn run(&self, repo: &Repo) -> Result<Manifest, RepoError> {
        let mut w = repo.begin(ID, CREATED_AT).await?;
        let stored = async {
            for (name, data) in [("base.tar", &self.base), ("16384.tar", &self.tablespace)] {
                w.start_archive(name, None).await?;
                for piece in data.chunks(700) {
                    w.write(piece).await?;
                }
                w.finish_archive().await?;
            }
            w.put_file("backup_manifest", &self.side).await
        }
        .await;
        match stored {
            Ok(()) => w.commit(serde_json::json!({"n": 1})).await,
            Err(e) => {
                // Best effort, as in the engine; `Repo::delete` below finishes the job.
                let _ = w.abort().await;
                Err(e)
            }
        }
    }

    /// The committed backup is whole: every object it names exists with its recorded size,
    /// verify passes and the archives read back byte for byte.
    async fn check_committed(&self, op: &Operator, repo: &Repo, m: &Manifest) {
        assert_eq!(repo.manifest(ID).await.unwrap().as_ref(), Some(m));
        let sizes = m
            .archives
            .iter()
            .flat_map(|a| &a.chunks)
            .map(|c| (&c.object, c.stored_size));
        let sizes = sizes.chain(m.files.iter().map(|f| (&f.object, f.stored_size)));
        for (object, size) in sizes {
            let meta = op.stat(&path(ID, object)).await.unwrap();
            assert_eq!(meta.content_length(), size, "{object}");
        }
        verify(repo, ID).await.unwrap();
        assert_eq!(read_stream(repo, ID, "base.tar").await.unwrap(), self.base);
        assert_eq!(
            read_stream(repo, ID, "16384.tar").await.unwrap(),
            self.tablespace
        );
        assert_eq!(
            repo.read_file(ID, "backup_manifest").await.unwrap(),
            self.side
        );
    }
}

/// Fails the Nth object write (half of it is stored), close or rename, for every N a clean
/// run makes. Each time the backup fails, leaves no manifest, and deleting it leaves nothing.
pub async fn a_failing_write_never_yields_a_manifest_of_missing_data(make: MakeBackend) {
    let work = Workload::new();
    let clean = Faults::default();
    let (_backend, op, repo) = faulty(make, &clean, 3);
    let m = work.run(&repo).await.unwrap();
    work.check_committed(&op, &repo, &m).await;
    // 6 + 3 chunks, the side file and the manifest.
    assert_eq!(clean.count(Call::Write), 11);

    for call in [Call::Write, Call::Close, Call::Rename] {
        for n in 1..=clean.count(call) {
            let faults = Faults::default();
            faults.fail_nth(call, n);
            let (_backend, op, repo) = faulty(make, &faults, 3);
            match work.run(&repo).await {
                Ok(m) => {
                    assert_eq!(
                        faults.injected(),
                        0,
                        "{call:?} {n}: a failure was swallowed"
                    );
                    work.check_committed(&op, &repo, &m).await;
                }
                Err(e) => {
                    assert_eq!(faults.injected(), 1, "{call:?} {n}: {e}");
                    assert!(matches!(e, RepoError::Storage { .. }), "{call:?} {n}: {e}");
                    assert_eq!(repo.manifest(ID).await.unwrap(), None, "{call:?} {n}");
                    repo.delete(ID).await.unwrap();
                    assert!(objects(&op, ID).await.is_empty(), "{call:?} {n}");
                    assert!(repo.list_backup_ids().await.unwrap().is_empty());
                }
            }
        }
    }
}

/// Fails the Nth read or stat of a verify, for every N a clean verify makes: each time
/// verify and reading fail with a storage error, and a healed backend verifies again.
pub async fn a_failing_read_never_passes_verify(make: MakeBackend) {
    let faults = Faults::default();
    let (_backend, _op, repo) = faulty(make, &faults, 2);
    three_chunk_backup(&repo, ID).await;
    let (reads, stats) = (faults.count(Call::Read), faults.count(Call::Stat));
    verify(&repo, ID).await.unwrap();
    let per_verify = [
        (Call::Read, faults.count(Call::Read) - reads),
        (Call::Stat, faults.count(Call::Stat) - stats),
    ];
    // The manifest, three chunks and the file are each stat'ed (objects) and read.
    assert_eq!(per_verify, [(Call::Read, 5), (Call::Stat, 4)]);

    for (call, calls) in per_verify {
        for n in 1..=calls {
            faults.heal();
            faults.fail_nth(call, faults.count(call) + n);
            let err = verify(&repo, ID).await.unwrap_err();
            assert!(
                matches!(err, RepoError::Storage { .. }),
                "{call:?} {n}: {err}"
            );
        }
    }
    faults.heal();
    faults.fail_nth(Call::Read, faults.count(Call::Read) + 3);
    assert!(read_stream(&repo, ID, "base.tar").await.is_err());
    faults.heal();
    verify(&repo, ID).await.unwrap();
    assert_eq!(faults.injected(), 10);
}

/// A bit flipped on its way into storage, or on the writer's read-back, fails the write that
/// stored it (each object is read back and checked as it is stored), naming the object; no
/// manifest is written.
pub async fn an_object_corrupted_on_its_way_fails_its_write(make: MakeBackend) {
    for call in [Call::Write, Call::Read] {
        let faults = Faults::default();
        let (_backend, op, repo) = faulty(make, &faults, 2);
        faults.corrupt_nth(call, 2);
        let err = Workload::new().run(&repo).await.unwrap_err();
        match &err {
            RepoError::Corrupt { object, .. } => {
                assert!(
                    object.starts_with(&format!("backups/{ID}/")),
                    "{call:?}: {err}"
                )
            }
            other => panic!("{call:?}: expected Corrupt, got {other:?}"),
        }
        assert_eq!(repo.manifest(ID).await.unwrap(), None, "{call:?}");
        repo.delete(ID).await.unwrap();
        assert!(objects(&op, ID).await.is_empty(), "{call:?}");
    }
}
