//! What every signed call reads before it is answered, in one read-only snapshot and one trip
//! to the pool.

use super::{all, opt, ram, tenants, PgStore};
use crate::records::CallerRecords;
use crate::rows::{cluster_from, user_from};
use crate::sealing::password_place;
use crate::Result;
use polarbackup_model::{AccessKeyId, DbClusterId};

impl PgStore {
    pub(crate) fn snapshot_caller_records(
        &self,
        key: &AccessKeyId,
        cluster: Option<&DbClusterId>,
    ) -> Result<Option<CallerRecords>> {
        let (key, cluster, sealer) = (key.clone(), cluster.cloned(), self.sealer.clone());
        self.snapshot(move |tx| {
            let Some(key) = tenants::get_key(tx, &sealer, key.as_str())? else {
                return Ok(None);
            };
            let user = match &key.user {
                Some(id) => opt(
                    tx,
                    "SELECT * FROM ram_users WHERE id = $1",
                    &[&id.as_str()],
                    user_from,
                )?,
                None => None,
            };
            let attachments = match &user {
                Some(u) => all(
                    tx,
                    ram::ATTACHMENTS,
                    &[&u.id.as_str(), &u.account.as_str()],
                    ram::attachment_from,
                )?,
                None => Vec::new(),
            };
            let cluster = match &cluster {
                Some(id) => opt(
                    tx,
                    "SELECT * FROM clusters WHERE id = $1",
                    &[&id.as_str()],
                    cluster_from,
                )?
                .map(|mut c| {
                    let place = password_place(c.id.as_str());
                    c.spec.password = sealer.open_opt(&place, c.spec.password.take())?;
                    Ok::<_, crate::StoreError>(c)
                })
                .transpose()?,
                None => None,
            };
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
