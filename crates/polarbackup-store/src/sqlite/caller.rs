//! What every signed call reads before it is answered, in one read snapshot on a reader
//! connection (never behind a commit's fsync), or from the handle's cache while nothing was
//! written since it was read (`cache`).

use super::{clusters, ram, tenants, SqliteStore};
use crate::records::CallerRecords;
use crate::Result;
use polarbackup_model::{AccessKeyId, DbClusterId};

impl SqliteStore {
    pub(crate) fn read_caller_records(
        &self,
        key: &AccessKeyId,
        cluster: Option<&DbClusterId>,
    ) -> Result<Option<CallerRecords>> {
        let version = self.cache.version(&self.path)?;
        let mark = Some(self.cache.mark(version));
        if let Some(hit) = self.cache.caller(key, cluster) {
            return Ok(Some(CallerRecords { mark, ..hit }));
        }
        let read = self.read_caller_records_now(key, cluster)?;
        let read = read.map(|r| CallerRecords { mark, ..r });
        if let Some(records) = &read {
            self.cache.keep_caller(version, key, cluster, records);
        }
        Ok(read)
    }

    fn read_caller_records_now(
        &self,
        key: &AccessKeyId,
        cluster: Option<&DbClusterId>,
    ) -> Result<Option<CallerRecords>> {
        self.read(|c| {
            let tx = c.unchecked_transaction()?;
            let Some(key) = tenants::get_key(&tx, &self.sealer, key)? else {
                return Ok(None);
            };
            let user = match &key.user {
                Some(id) => ram::user(&tx, id)?,
                None => None,
            };
            let attachments = match &user {
                Some(u) => ram::attachments(&tx, u)?,
                None => Vec::new(),
            };
            let cluster = match cluster {
                Some(id) => clusters::get(&tx, &self.sealer, id)?,
                None => None,
            };
            tx.commit()?;
            Ok(Some(CallerRecords {
                key,
                user,
                attachments: attachments.into(),
                cluster: cluster.map(std::sync::Arc::new),
                mark: None,
            }))
        })
    }
}
