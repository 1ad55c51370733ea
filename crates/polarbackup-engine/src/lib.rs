//! polarbackup's backup engine. `pg` is the PostgreSQL replication-protocol client it builds on.

pub mod pg;
