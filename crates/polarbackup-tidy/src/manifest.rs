//! Reads what the rules need from a `Cargo.toml` by scanning lines: the package name and every
//! dependency with its kind and line. Covers the forms this workspace writes (`name = ...`,
//! `name.workspace = true`, `[dependencies.name]`, `[target.'cfg(..)'.dependencies]`, renames
//! through `package = "..."`).

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DepKind {
    Normal,
    Dev,
    Build,
}

impl DepKind {
    pub fn section(self) -> &'static str {
        match self {
            Self::Normal => "[dependencies]",
            Self::Dev => "[dev-dependencies]",
            Self::Build => "[build-dependencies]",
        }
    }
}

/// One dependency: the crate's real name (after a rename), its kind, its 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dep {
    pub name: String,
    pub kind: DepKind,
    pub line: usize,
}

/// The section a header opens: a dependency list, one dependency's own table, or anything else.
enum Section {
    Deps(DepKind),
    OneDep,
    Package,
    Other,
}

fn section(header: &str) -> (Section, Option<Dep>) {
    let parts: Vec<&str> = header.split('.').map(str::trim).collect();
    let kind = |p: &str| match p {
        "dependencies" => Some(DepKind::Normal),
        "dev-dependencies" => Some(DepKind::Dev),
        "build-dependencies" => Some(DepKind::Build),
        _ => None,
    };
    if header == "package" {
        return (Section::Package, None);
    }
    if let Some(k) = parts.last().and_then(|p| kind(p)) {
        return (Section::Deps(k), None);
    }
    // `[dependencies.name]` or `[target.'cfg(..)'.dependencies.name]`
    if parts.len() >= 2 {
        if let Some(k) = kind(parts[parts.len() - 2]) {
            let name = unquote(parts[parts.len() - 1]);
            let dep = Dep {
                name,
                kind: k,
                line: 0,
            };
            return (Section::OneDep, Some(dep));
        }
    }
    (Section::Other, None)
}

fn unquote(s: &str) -> String {
    s.trim().trim_matches('"').trim_matches('\'').to_string()
}

/// The text of a line before any `#` comment outside a string.
fn strip_comment(line: &str) -> &str {
    let mut in_str = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => in_str = !in_str,
            '#' if !in_str => return &line[..i],
            _ => {}
        }
    }
    line
}

/// How far a line opens (`[`, `{`) or closes brackets outside strings, for values that span lines.
fn depth_change(line: &str) -> i32 {
    let mut in_str = false;
    let mut d = 0;
    for c in line.chars() {
        match c {
            '"' => in_str = !in_str,
            '[' | '{' if !in_str => d += 1,
            ']' | '}' if !in_str => d -= 1,
            _ => {}
        }
    }
    d
}

/// `package = "real-name"` inside a dependency's inline table.
fn renamed(value: &str) -> Option<String> {
    let at = value.find("package")?;
    let rest = value[at + "package".len()..]
        .trim_start()
        .strip_prefix('=')?;
    let rest = rest.trim_start().strip_prefix('"')?;
    Some(rest[..rest.find('"')?].to_string())
}

/// Every dependency of a manifest, in order.
pub fn dependencies(text: &str) -> Vec<Dep> {
    let mut deps = Vec::new();
    let mut current = Section::Other;
    let mut depth = 0;
    for (n, raw) in text.lines().enumerate() {
        let line = strip_comment(raw).trim();
        let at_top = depth == 0;
        depth += depth_change(line);
        if !at_top || line.is_empty() {
            continue;
        }
        if line.starts_with('[') {
            let header = line.trim_start_matches('[').trim_end_matches(']').trim();
            let (s, dep) = section(header);
            current = s;
            if let Some(dep) = dep {
                deps.push(Dep { line: n + 1, ..dep });
            }
            depth = 0;
            continue;
        }
        match &current {
            Section::Deps(kind) => {
                let Some((key, value)) = line.split_once('=') else {
                    continue;
                };
                let name =
                    renamed(value).unwrap_or_else(|| unquote(key.split('.').next().unwrap_or(key)));
                deps.push(Dep {
                    name,
                    kind: *kind,
                    line: n + 1,
                });
            }
            Section::OneDep => {
                // `package = "..."` inside `[dependencies.alias]` names the real crate.
                if let Some(real) = renamed(line) {
                    if let Some(last) = deps.last_mut() {
                        last.name = real;
                    }
                }
            }
            Section::Package | Section::Other => {}
        }
    }
    deps
}

/// `name` under `[package]`.
pub fn package_name(text: &str) -> Option<String> {
    let mut in_package = false;
    for raw in text.lines() {
        let line = strip_comment(raw).trim();
        if line.starts_with('[') {
            in_package = line == "[package]";
        } else if in_package {
            if let Some((key, value)) = line.split_once('=') {
                if key.trim() == "name" {
                    return Some(unquote(value));
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = r#"[package]
name = "polarbackup-x" # the crate
version.workspace = true

[dependencies]
polarbackup-model.workspace = true
tokio = { workspace = true, features = [
    "rt",
] }
db = { package = "rusqlite", version = "0.32" }

[dev-dependencies]
"tempfile" = "3"

[target.'cfg(unix)'.build-dependencies]
cc = "1"

[dependencies.opendal]
version = "0.59"

[dependencies.axum-alias]
package = "axum"

[lints]
workspace = true
"#;

    #[test]
    fn every_form_of_dependency_is_found_with_its_line() {
        let got: Vec<(String, DepKind, usize)> = dependencies(MANIFEST)
            .into_iter()
            .map(|d| (d.name, d.kind, d.line))
            .collect();
        let want = [
            ("polarbackup-model", DepKind::Normal, 6),
            ("tokio", DepKind::Normal, 7),
            ("rusqlite", DepKind::Normal, 10),
            ("tempfile", DepKind::Dev, 13),
            ("cc", DepKind::Build, 16),
            ("opendal", DepKind::Normal, 18),
            ("axum", DepKind::Normal, 21),
        ];
        let want: Vec<(String, DepKind, usize)> = want
            .iter()
            .map(|(n, k, l)| (n.to_string(), *k, *l))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn the_package_name() {
        assert_eq!(package_name(MANIFEST).as_deref(), Some("polarbackup-x"));
        assert_eq!(package_name("[workspace]\nmembers = []\n"), None);
    }
}
