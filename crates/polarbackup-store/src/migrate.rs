//! Moving an embedded installation onto PostgreSQL: every table copied value for value (both
//! schemas use the same names and encodings), ids included, in one PostgreSQL transaction,
//! then the id sequences advanced past everything SQLite ever handed out.

use crate::{PgStore, Result, SqliteStore, StoreError};
use postgres::types::{ToSql, Type};
use postgres::Transaction;
use rusqlite::types::Value;

/// In foreign-key order; the nonces follow, from their own file. Archiver leases are not
/// copied: they belong to the old server's streamers, and the new servers take them afresh.
const TABLES: &[&str] = &[
    "accounts",
    "ram_users",
    "access_keys",
    "ram_policies",
    "ram_attachments",
    "clusters",
    "backup_jobs",
    "client_tokens",
    "backup_sets",
    "backup_policies",
    "log_backup_policies",
    "wal_objects",
    "wal_gaps",
];

/// Tables whose ids come from a sequence, which must continue past SQLite's.
const SEQUENCES: &[&str] = &["backup_jobs", "wal_objects", "wal_gaps"];

/// What the target may not hold already.
const MUST_BE_EMPTY: &[&str] = &["accounts", "clusters", "backup_jobs"];

/// How many rows each table received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    pub tables: Vec<(&'static str, u64)>,
}

/// One table read from SQLite.
struct Table {
    name: &'static str,
    columns: Vec<String>,
    rows: Vec<Vec<Value>>,
}

/// Copies every record of `from` into `to`, which must hold no account, cluster or job
/// (`StoreError::NotEmpty`); nothing is written unless all of it is.
pub fn migrate_metadata(from: &SqliteStore, to: &PgStore) -> Result<MigrationReport> {
    // Sealed secrets are copied as they are: they open only with the key that sealed them.
    if let (Some(a), Some(b)) = (from.master_key_id(), to.master_key_id()) {
        if a != b {
            return Err(StoreError::MasterKey(format!(
                "master key does not match: the source store is sealed with key {a}, the \
                 target with key {b}"
            )));
        }
    }
    let (tables, sequences) = read_sqlite(from)?;
    let sealer = to.sealer();
    to.write(move |tx| {
        for table in MUST_BE_EMPTY {
            let any = tx.query_opt(&format!("SELECT 1 FROM {table} LIMIT 1"), &[])?;
            if any.is_some() {
                return Err(StoreError::NotEmpty { what: table });
            }
        }
        tx.batch_execute("SET CONSTRAINTS ALL DEFERRED")?;
        let mut report = Vec::with_capacity(tables.len());
        for table in &tables {
            report.push((table.name, copy(tx, table)?));
        }
        for (table, seq) in &sequences {
            // The next id follows the larger of SQLite's sequence and the copied ids (1 when
            // neither handed any out).
            tx.execute(
                &format!(
                    "WITH top AS (SELECT greatest($1, (SELECT coalesce(max(id), 0) FROM {table})) AS v)
                     SELECT setval(pg_get_serial_sequence('{table}', 'id'), greatest(v, 1), v > 0)
                     FROM top"
                ),
                &[seq],
            )?;
        }
        crate::pg::secrets::seal_copied(&sealer, tx)?;
        Ok(MigrationReport { tables: report })
    })
}

/// Every table's rows, and the highest id each sequence handed out, in one read transaction.
#[allow(clippy::type_complexity)]
fn read_sqlite(from: &SqliteStore) -> Result<(Vec<Table>, Vec<(&'static str, i64)>)> {
    from.with(|c| {
        let tx = c.transaction()?;
        let mut tables = Vec::with_capacity(TABLES.len());
        for &name in TABLES {
            let mut stmt = tx.prepare(&format!("SELECT * FROM {name}"))?;
            let columns: Vec<String> = stmt.column_names().iter().map(|s| s.to_string()).collect();
            let n = columns.len();
            let rows = stmt
                .query_map([], |r| (0..n).map(|i| r.get::<_, Value>(i)).collect())?
                .collect::<rusqlite::Result<Vec<Vec<Value>>>>()?;
            tables.push(Table {
                name,
                columns,
                rows,
            });
        }
        let mut sequences = Vec::with_capacity(SEQUENCES.len());
        for &name in SEQUENCES {
            let seq: i64 = tx.query_row(
                "SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = ?1), 0)",
                [name],
                |r| r.get(0),
            )?;
            sequences.push((name, seq));
        }
        tx.commit()?;
        // Nonces still unused may only be refused again, so a later read of them is as good.
        let (columns, rows) = crate::sqlite::nonce_rows(from)?;
        tables.push(Table {
            name: "nonces",
            columns,
            rows,
        });
        Ok((tables, sequences))
    })
}

/// Inserts a table's rows with their ids; each SQLite value takes the column's type.
fn copy(tx: &mut Transaction<'_>, table: &Table) -> Result<u64> {
    let placeholders: Vec<String> = (1..=table.columns.len()).map(|i| format!("${i}")).collect();
    let stmt = tx.prepare(&format!(
        "INSERT INTO {} ({}) VALUES ({})",
        table.name,
        table.columns.join(", "),
        placeholders.join(", ")
    ))?;
    let types = stmt.params().to_vec();
    for row in &table.rows {
        let values = row
            .iter()
            .zip(&types)
            .map(|(v, ty)| param(table.name, v, ty))
            .collect::<Result<Vec<_>>>()?;
        let refs: Vec<&(dyn ToSql + Sync)> = values.iter().map(|b| &**b as _).collect();
        tx.execute(&stmt, &refs)?;
    }
    Ok(table.rows.len() as u64)
}

/// A SQLite value as a parameter of PostgreSQL type `ty` (BIGINT or TEXT in this schema).
fn param(table: &str, v: &Value, ty: &Type) -> Result<Box<dyn ToSql + Sync>> {
    Ok(match (v, ty) {
        (Value::Integer(i), &Type::INT8) => Box::new(*i),
        (Value::Null, &Type::INT8) => Box::new(None::<i64>),
        (Value::Text(s), &Type::TEXT) => Box::new(s.clone()),
        (Value::Null, &Type::TEXT) => Box::new(None::<String>),
        (other, _) => {
            return Err(StoreError::Corrupt(format!(
                "{table}: a {:?} value where PostgreSQL wants {ty}",
                other.data_type()
            )))
        }
    })
}
