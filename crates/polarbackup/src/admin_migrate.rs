//! `polarbackup admin migrate-metadata`: copies an embedded installation's SQLite metadata
//! into an empty PostgreSQL store (`polarbackup_store::migrate_metadata`), ids preserved.

use crate::backends::{self, Locations};
use crate::cli::MigrateArgs;
use crate::locations::{Metadata, ARGV_PASSWORD};
use crate::settings::{ServeArgs, Settings};
use anyhow::{anyhow, bail, Result};
use serde_json::{json, Map, Value};

pub fn run(args: MigrateArgs) -> Result<Value> {
    if let Some(to) = args.to.as_ref().filter(|to| to.has_password()) {
        bail!("--to {}: {ARGV_PASSWORD}", to.redacted());
    }
    // The target is the metadata_url setting, with --to as its flag, so its password follows
    // the same rules as any metadata store's.
    let settings = Settings::load(&ServeArgs {
        config: args.config.clone(),
        data_dir: args.data_dir.clone(),
        metadata_url: args.to.clone(),
        ..ServeArgs::default()
    })?;
    let target = Locations::from_settings(&settings)?;
    let Metadata::Postgres(pg) = &target.metadata else {
        bail!(
            "the target must be a postgres:// store (--to, POLARBACKUP_METADATA_URL or \
             metadata_url in the config file), not {}",
            target.metadata_shown()
        );
    };
    let from = match &args.from {
        None => settings.data_dir.join("metadata.sqlite"),
        Some(url) => match url.parse().map_err(|e| anyhow!("--from {url:?}: {e}"))? {
            Metadata::Sqlite(path) => settings.data_dir.join(path),
            Metadata::Postgres(_) => bail!("--from takes the sqlite:// store to copy"),
        },
    };
    // Opening would make an empty store: a mistyped path must not migrate nothing.
    if !from.is_file() {
        bail!("--from: there is no SQLite store at {}", from.display());
    }
    let key = target.master_key()?;
    let source = backends::open_sqlite(&from, key.clone())?;
    let report = backends::migrate_to_postgres(&source, pg, target.pool_size, key)?;
    let tables: Map<String, Value> = report
        .tables
        .iter()
        .map(|(name, rows)| ((*name).to_owned(), json!(rows)))
        .collect();
    eprintln!(
        "copied {} rows from {} into {}",
        report.tables.iter().map(|(_, n)| n).sum::<u64>(),
        from.display(),
        target.metadata_shown()
    );
    Ok(json!({
        "From": format!("sqlite://{}", from.display()),
        "To": target.metadata_shown(),
        "Tables": tables,
    }))
}
