//! What download links serve: archived WAL read back from the repository, checked against the
//! size and digest the store recorded for it.

use polarbackup_api::{BoxFuture, LogReader};
use polarbackup_model::WalObject;
use polarbackup_repo::Repo;

pub struct RepoLogReader {
    pub repo: Repo,
}

impl LogReader for RepoLogReader {
    fn read<'a>(&'a self, object: &'a WalObject) -> BoxFuture<'a, Result<Vec<u8>, String>> {
        Box::pin(async move {
            let o = &object.object;
            self.repo
                .read_wal(&o.key, o.size, &o.digest)
                .await
                .map_err(|e| e.to_string())
        })
    }
}
