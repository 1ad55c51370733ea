//! Rule `layering`: a crate depends only on the polarbackup crates that ARCHITECTURE.md's crate
//! table allows it ("may depend on"), and the testkit is only ever a dev-dependency. The table is
//! parsed, so the document stays the one source of truth.

use crate::manifest::{self, DepKind};
use crate::Violation;
use std::collections::{BTreeMap, BTreeSet};

/// The short names the table uses for polarbackup crates (`model` = `polarbackup-model`).
pub const SHORT_NAMES: &[&str] = &[
    "model", "wire", "auth", "store", "repo", "engine", "jobs", "api", "tls", "metrics",
];

pub const TESTKIT: &str = "polarbackup-testkit";

/// The polarbackup crates a crate may depend on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allowed {
    /// "everything"
    All,
    Only(BTreeSet<String>),
}

impl Allowed {
    fn permits(&self, dep: &str) -> bool {
        match self {
            Self::All => true,
            Self::Only(set) => set.contains(dep),
        }
    }

    fn describe(&self) -> String {
        match self {
            Self::All => "everything".into(),
            Self::Only(set) if set.is_empty() => "no polarbackup crate".into(),
            Self::Only(set) => set.iter().cloned().collect::<Vec<_>>().join(", "),
        }
    }
}

/// One row of the crate table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub allowed: Allowed,
    /// 1-based line in ARCHITECTURE.md.
    pub line: usize,
}

pub type CrateTable = BTreeMap<String, Row>;

fn cells(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
    inner
        .split('|')
        .map(|c| c.trim().trim_matches('`').trim().to_string())
        .collect()
}

/// The polarbackup crates one "may depend on" cell names: short names, full names, or
/// "everything"; other words (std, jiff, "crypto crates") are not polarbackup crates.
pub fn allowed(cell: &str) -> Allowed {
    let mut set = BTreeSet::new();
    for word in cell.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')) {
        let word = word.to_ascii_lowercase();
        if word == "everything" {
            return Allowed::All;
        }
        if SHORT_NAMES.contains(&word.as_str()) {
            set.insert(format!("polarbackup-{word}"));
        } else if word.starts_with("polarbackup-") {
            set.insert(word);
        }
    }
    Allowed::Only(set)
}

/// The crate table of ARCHITECTURE.md: the first table whose header has the columns `crate`
/// and `may depend on`.
pub fn crate_table(architecture: &str) -> Result<CrateTable, String> {
    let lines: Vec<&str> = architecture.lines().collect();
    let (start, column) = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.trim_start().starts_with('|'))
        .find_map(|(i, l)| {
            let header = cells(l);
            let is_crate = header.first().is_some_and(|c| c == "crate");
            let col = header.iter().position(|c| c == "may depend on")?;
            is_crate.then_some((i, col))
        })
        .ok_or("ARCHITECTURE.md has no table with the columns `crate` and `may depend on`")?;
    let mut table = CrateTable::new();
    for (i, line) in lines.iter().enumerate().skip(start + 1) {
        if !line.trim_start().starts_with('|') {
            break;
        }
        let row = cells(line);
        let name = row[0].clone();
        if name.chars().all(|c| c == '-' || c == ':') {
            continue;
        }
        let cell = row
            .get(column)
            .ok_or_else(|| format!("ARCHITECTURE.md:{}: the row has no `may depend on`", i + 1))?;
        table.insert(
            name,
            Row {
                allowed: allowed(cell),
                line: i + 1,
            },
        );
    }
    Ok(table)
}

/// Checks one crate's `Cargo.toml` (`path` like `crates/<name>/Cargo.toml`) against the table.
/// Dev-dependencies are held to the table too: a test belongs to its crate's layer.
pub fn check(path: &str, text: &str, table: &CrateTable) -> Vec<Violation> {
    let mut out = Vec::new();
    let Some(name) = manifest::package_name(text) else {
        out.push(Violation::new(
            "layering",
            path,
            text,
            1,
            "no [package] name",
        ));
        return out;
    };
    let Some(row) = table.get(&name) else {
        out.push(Violation::new(
            "layering",
            path,
            text,
            1,
            format!("{name} has no row in ARCHITECTURE.md's crate table"),
        ));
        return out;
    };
    for dep in manifest::dependencies(text) {
        let dep_name = dep.name.as_str();
        if !(dep_name == "polarbackup" || dep_name.starts_with("polarbackup-")) {
            continue;
        }
        let message = if dep_name == TESTKIT {
            (dep.kind != DepKind::Dev).then(|| {
                format!(
                    "{TESTKIT} is test-only: a dev-dependency, never in {}",
                    dep.kind.section()
                )
            })
        } else {
            (!row.allowed.permits(dep_name)).then(|| {
                format!(
                    "{name} may not depend on {dep_name} ({}); ARCHITECTURE.md allows: {}",
                    dep.kind.section(),
                    row.allowed.describe()
                )
            })
        };
        if let Some(m) = message {
            out.push(Violation::new("layering", path, text, dep.line, m));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "# Architecture

| crate | holds | may depend on | invariants |
|---|---|---|---|
| `polarbackup-model` | ids | std, jiff, thiserror | no IO |
| `polarbackup-auth` | signatures | model (and crypto crates) | pure |
| `polarbackup-repo` | objects | opendal, zstd (no polarbackup crate) | |
| `polarbackup-engine` | backups | model, repo | |
| `polarbackup-api` | HTTP | model, wire, auth, store | |
| `polarbackup` | the binary | everything | |

Text after the table.
";

    fn only(names: &[&str]) -> Allowed {
        Allowed::Only(names.iter().map(|n| n.to_string()).collect())
    }

    #[test]
    fn the_table_is_parsed_from_the_document() {
        let t = crate_table(DOC).unwrap();
        assert_eq!(t.len(), 6);
        assert_eq!(t["polarbackup-model"].allowed, only(&[]));
        assert_eq!(t["polarbackup-auth"].allowed, only(&["polarbackup-model"]));
        assert_eq!(t["polarbackup-repo"].allowed, only(&[]));
        assert_eq!(
            t["polarbackup-engine"].allowed,
            only(&["polarbackup-model", "polarbackup-repo"])
        );
        assert_eq!(t["polarbackup"].allowed, Allowed::All);
        assert_eq!(t["polarbackup-engine"].line, 8);
        assert!(crate_table("# no table\n").is_err());
    }

    fn manifest(name: &str, deps: &str) -> String {
        format!("[package]\nname = \"{name}\"\n\n{deps}")
    }

    #[test]
    fn a_dependency_the_table_does_not_allow_fires() {
        let t = crate_table(DOC).unwrap();
        let text = manifest(
            "polarbackup-api",
            "[dependencies]\npolarbackup-store.workspace = true\npolarbackup-jobs.workspace = true\n",
        );
        let v = check("crates/polarbackup-api/Cargo.toml", &text, &t);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].line, 6);
        assert!(v[0].message.contains("may not depend on polarbackup-jobs"));
        assert_eq!(v[0].line_text, "polarbackup-jobs.workspace = true");
    }

    #[test]
    fn dev_dependencies_are_held_to_the_table_too() {
        let t = crate_table(DOC).unwrap();
        let text = manifest(
            "polarbackup-repo",
            "[dev-dependencies]\npolarbackup-model.workspace = true\n",
        );
        assert_eq!(
            check("crates/polarbackup-repo/Cargo.toml", &text, &t).len(),
            1
        );
    }

    #[test]
    fn the_testkit_is_only_a_dev_dependency() {
        let t = crate_table(DOC).unwrap();
        let dev = manifest(
            "polarbackup-engine",
            "[dev-dependencies]\npolarbackup-testkit = { path = \"../polarbackup-testkit\" }\n",
        );
        assert!(check("crates/polarbackup-engine/Cargo.toml", &dev, &t).is_empty());
        let normal = manifest(
            "polarbackup",
            "[dependencies]\npolarbackup-testkit = { path = \"../polarbackup-testkit\" }\n",
        );
        let v = check("crates/polarbackup/Cargo.toml", &normal, &t);
        assert_eq!(v.len(), 1);
        assert!(v[0].message.contains("test-only"));
    }

    #[test]
    fn a_crate_without_a_row_fires() {
        let t = crate_table(DOC).unwrap();
        let text = manifest("polarbackup-new", "");
        let v = check("crates/polarbackup-new/Cargo.toml", &text, &t);
        assert!(v[0].message.contains("no row"));
    }
}
