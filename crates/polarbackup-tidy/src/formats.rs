//! Rules `format-owner` and `metadata-sql`: each external format is known to one crate. SQLite
//! and the PostgreSQL client of the metadata store (and SQL on the metadata store) to the
//! store, HTTP to the api, object storage to the repo, database protocols to the engine. A crate
//! outside the owner may neither depend on the format's crates (in any dependency section: a
//! test that opens the SQLite file itself pins the schema just as code would) nor name them in
//! code.

use crate::lex::{lex, Literal};
use crate::manifest;
use crate::{crate_of, Violation};

/// Each external crate and the crates that may use it.
pub const OWNERS: &[(&str, &[&str])] = &[
    ("rusqlite", &["polarbackup-store"]),
    ("postgres", &["polarbackup-store"]),
    ("axum", &["polarbackup-api"]),
    ("hyper", &["polarbackup-api", BENCH_API]),
    ("hyper-util", &["polarbackup-api", BENCH_API]),
    ("tower", &["polarbackup-api"]),
    ("http-body-util", &["polarbackup-api", BENCH_API]),
    ("opendal", &["polarbackup-repo"]),
    ("tokio-postgres", &["polarbackup-engine"]),
    ("postgres-protocol", &["polarbackup-engine"]),
    ("postgres-types", &["polarbackup-engine"]),
    ("prometheus-client", &["polarbackup-metrics"]),
];

pub const STORE: &str = "polarbackup-store";
/// The benchmark load generator speaks HTTP as a client, to measure the api from outside.
pub const BENCH_API: &str = "polarbackup-bench-api";

fn owners(krate: &str) -> Option<&'static [&'static str]> {
    OWNERS.iter().find(|(k, _)| *k == krate).map(|(_, o)| *o)
}

/// A crate's manifest may not name a format crate it does not own.
pub fn dependencies(path: &str, text: &str) -> Vec<Violation> {
    let Some(me) = manifest::package_name(text) else {
        return Vec::new();
    };
    manifest::dependencies(text)
        .into_iter()
        .filter_map(|dep| {
            let owners = owners(&dep.name)?;
            (!owners.contains(&me.as_str())).then(|| {
                Violation::new(
                    "format-owner",
                    path,
                    text,
                    dep.line,
                    format!(
                        "{} belongs to {} only ({me} has it in {})",
                        dep.name,
                        owners.join(", "),
                        dep.kind.section()
                    ),
                )
            })
        })
        .collect()
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Where `word` starts a path in a line of code (`rusqlite::`, `use rusqlite`, `::rusqlite::`),
/// not as part of a longer name or a re-export's path (`polarbackup_x::rusqlite::`).
fn names_crate(code_line: &str, word: &str) -> bool {
    if !code_line.contains(word) {
        return false;
    }
    let chars: Vec<char> = code_line.chars().collect();
    let w: Vec<char> = word.chars().collect();
    (0..chars.len()).any(|i| {
        if !chars[i..].starts_with(&w) {
            return false;
        }
        let after = &chars[i + w.len()..];
        if after.first().is_some_and(|&c| is_ident(c)) {
            return false;
        }
        let before = &chars[..i];
        let starts_path = if before.ends_with(&[':', ':']) {
            // `::rusqlite::` is a path from the crate root; `x::rusqlite::` a re-export's.
            !before[..before.len() - 2]
                .last()
                .is_some_and(|&c| is_ident(c) || c == '>')
        } else {
            !before.last().is_some_and(|&c| is_ident(c))
        };
        let used = after.starts_with(&[':', ':']) || {
            let prefix: String = before.iter().collect();
            let prefix = prefix.trim_end();
            prefix.ends_with("use") || prefix.ends_with("extern crate")
        };
        starts_path && used
    })
}

/// Code outside a format's owner may not name the format's crates.
pub fn code(path: &str, text: &str) -> Vec<Violation> {
    let Some(me) = crate_of(path) else {
        return Vec::new();
    };
    let code = lex(text).code;
    let mut out = Vec::new();
    for (n, line) in code.lines().enumerate() {
        for (krate, owners) in OWNERS {
            let word = krate.replace('-', "_");
            if !owners.contains(&me) && names_crate(line, &word) {
                out.push(Violation::new(
                    "format-owner",
                    path,
                    text,
                    n + 1,
                    format!("{word} belongs to {} only", owners.join(", ")),
                ));
            }
        }
    }
    out
}

/// The metadata store's tables: every `CREATE TABLE <name>` in the store's migrations.
pub fn metadata_tables(migrations: &str) -> Vec<String> {
    let mut tables = Vec::new();
    for lit in lex(migrations).literals {
        let words = words(&lit);
        for i in 1..words.len() {
            if !(is(&words[i - 1], "CREATE") && is(&words[i], "TABLE")) {
                continue;
            }
            if let Some((name, _)) = table_after(&words, i) {
                let t = name.text.to_ascii_lowercase();
                if !tables.contains(&t) {
                    tables.push(t);
                }
            }
        }
    }
    tables
}

fn is(w: &Word, keyword: &str) -> bool {
    w.text.eq_ignore_ascii_case(keyword)
}

/// The word naming a table after the keyword `words[k]` (past `IF [NOT] EXISTS` after TABLE),
/// with the end of the word before it.
fn table_after(words: &[Word], k: usize) -> Option<(&Word, usize)> {
    let mut j = k;
    if is(&words[k], "TABLE") && words.get(k + 1).is_some_and(|w| is(w, "IF")) {
        j += 1;
        if words.get(j + 1).is_some_and(|w| is(w, "NOT")) {
            j += 1;
        }
        if words.get(j + 1).is_some_and(|w| is(w, "EXISTS")) {
            j += 1;
        }
    }
    let prev = &words[j];
    Some((words.get(j + 1)?, prev.at + prev.text.chars().count()))
}

/// A word of a literal and where it starts.
struct Word {
    text: String,
    at: usize,
}

fn words(lit: &Literal) -> Vec<Word> {
    let mut out = Vec::new();
    let mut i = 0;
    let v = &lit.value;
    while i < v.len() {
        if is_ident(v[i]) {
            let start = i;
            while i < v.len() && is_ident(v[i]) {
                i += 1;
            }
            out.push(Word {
                text: v[start..i].iter().collect(),
                at: start,
            });
        } else {
            i += 1;
        }
    }
    out
}

const SQL_KEYWORDS: &[&str] = &["FROM", "INTO", "UPDATE", "JOIN", "TABLE"];

/// SQL on the metadata store (a string literal with `FROM|INTO|UPDATE|JOIN|TABLE <table>` for
/// one of `tables`) outside the store. SQL to other databases (the engine's, the tests'
/// PostgreSQL) names other tables and passes.
pub fn metadata_sql(path: &str, text: &str, tables: &[String]) -> Vec<Violation> {
    if crate_of(path) == Some(STORE) {
        return Vec::new();
    }
    let mut out = Vec::new();
    for lit in lex(text).literals {
        let words = words(&lit);
        for (i, w) in words.iter().enumerate() {
            if !SQL_KEYWORDS.iter().any(|k| w.text.eq_ignore_ascii_case(k)) {
                continue;
            }
            let Some((table, prev_end)) = table_after(&words, i) else {
                continue;
            };
            // Only whitespace or a quote may stand between the keyword and the table.
            let gap = &lit.value[prev_end..table.at];
            let adjacent =
                !gap.is_empty() && gap.iter().all(|c| c.is_whitespace() || "\"`[".contains(*c));
            let t = table.text.to_ascii_lowercase();
            if adjacent && tables.contains(&t) {
                out.push(Violation::new(
                    "metadata-sql",
                    path,
                    text,
                    lit.lines[w.at],
                    format!(
                        "SQL on the metadata store's table {t} belongs to {STORE} only: \
                         go through its Store trait"
                    ),
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIGRATIONS: &str = r#"//! migrations
const M: &[&str] = &[
    "CREATE TABLE widgets (id TEXT);
     create table IF NOT EXISTS gadgets (n TEXT);",
    "ALTER TABLE widgets ADD COLUMN x",
];
"#;

    fn tables() -> Vec<String> {
        metadata_tables(MIGRATIONS)
    }

    #[test]
    fn tables_come_from_create_table() {
        assert_eq!(tables(), vec!["widgets", "gadgets"]);
    }

    #[test]
    fn sql_on_a_metadata_table_outside_the_store_fires() {
        let src = "//! x\nfn f() {\n    q(\"SELECT id\n       FROM widgets WHERE 1\");\n    q(\"INSERT INTO \\\"gadgets\\\" VALUES (1)\");\n}\n";
        let v = metadata_sql("crates/polarbackup-api/src/x.rs", src, &tables());
        let lines: Vec<usize> = v.iter().map(|v| v.line).collect();
        assert_eq!(lines, vec![4, 5], "{v:?}");
        assert!(v[0].message.contains("widgets"));
        assert!(metadata_sql("crates/polarbackup-store/src/x.rs", src, &tables()).is_empty());
    }

    #[test]
    fn other_sql_prose_and_comments_pass() {
        let src = "//! x\n// SELECT * FROM widgets\nfn f() {\n    q(\"SELECT 1 FROM pg_database\");\n    e(\"no key found for the widgets\");\n    e(\"removed from the widgets list\");\n}\n";
        assert!(metadata_sql("crates/polarbackup-engine/src/x.rs", src, &tables()).is_empty());
    }

    fn manifest(name: &str, deps: &str) -> String {
        format!("[package]\nname = \"{name}\"\n\n{deps}")
    }

    #[test]
    fn a_format_crate_in_another_crates_manifest_fires() {
        let text = manifest(
            "polarbackup-api",
            "[dependencies]\naxum.workspace = true\n\n[dev-dependencies]\nrusqlite.workspace = true\n",
        );
        let v = dependencies("crates/polarbackup-api/Cargo.toml", &text);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!((v[0].rule, v[0].line), ("format-owner", 8));
        assert!(v[0]
            .message
            .contains("rusqlite belongs to polarbackup-store"));
        let own = manifest(
            "polarbackup-store",
            "[dependencies]\nrusqlite.workspace = true\n",
        );
        assert!(dependencies("crates/polarbackup-store/Cargo.toml", &own).is_empty());
    }

    #[test]
    fn naming_a_format_crate_in_code_fires() {
        let src = "//! x\nuse rusqlite::Connection;\nfn f(o: opendal::Operator) {}\nuse tokio_postgres;\n";
        let v = code("crates/polarbackup-jobs/src/x.rs", src);
        let got: Vec<(usize, &str)> = v.iter().map(|v| (v.line, v.line_text.as_str())).collect();
        assert_eq!(
            got,
            vec![
                (2, "use rusqlite::Connection;"),
                (3, "fn f(o: opendal::Operator) {}"),
                (4, "use tokio_postgres;"),
            ]
        );
        assert!(code(
            "crates/polarbackup-repo/src/x.rs",
            "//! x\nuse opendal::Operator;\n"
        )
        .is_empty());
    }

    #[test]
    fn longer_names_comments_and_strings_pass() {
        let src = "//! x\n// rusqlite::Connection\nlet s = \"opendal::Operator\";\nmy_axum::f();\nlet hyper = 1;\n";
        assert!(code("crates/polarbackup-jobs/src/x.rs", src).is_empty());
    }
}
