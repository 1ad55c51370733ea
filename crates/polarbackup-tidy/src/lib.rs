//! polarbackup's house rules as a test, in the spirit of rust-analyzer's `tidy`: `tests/tidy.rs`
//! reads the source tree and fails, listing every violation with its rule, file:line and line,
//! when a crate depends on a polarbackup crate that ARCHITECTURE.md's crate table does not allow
//! (`layering`), an external format (SQLite and the metadata store's SQL, HTTP, object storage,
//! database protocols) appears outside the crate that owns it (`format-owner`, `metadata-sql`),
//! code reads the wall clock outside the model's clock (`wall-clock`), a .rs file does not open
//! with `//!` (`module-doc`), placeholder macros or ignored tests are left in (`unfinished`), or
//! a path leads out of the repository (`outside-repo`).
//!
//! Each rule is a function over one file's path (relative to the workspace root, with `/`) and
//! text, so its unit tests feed it synthetic files; `tree` applies them all to the workspace.
//! No dependencies: manifests, the markdown table and Rust are read by simple scanning.

pub mod formats;
pub mod hygiene;
pub mod layering;
pub mod lex;
pub mod manifest;
pub mod tree;

use std::fmt;

/// One broken rule at one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub rule: &'static str,
    /// Relative to the workspace root, with `/`.
    pub path: String,
    /// 1-based.
    pub line: usize,
    /// What is wrong and what to do instead.
    pub message: String,
    /// The offending line, trimmed.
    pub line_text: String,
}

impl Violation {
    /// A violation at `line` of `text` (the file's whole text, for quoting the line).
    pub fn new(
        rule: &'static str,
        path: &str,
        text: &str,
        line: usize,
        message: impl Into<String>,
    ) -> Self {
        let line_text = text
            .lines()
            .nth(line.saturating_sub(1))
            .unwrap_or("")
            .trim()
            .to_string();
        Self {
            rule,
            path: path.to_string(),
            line,
            message: message.into(),
            line_text,
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{}] {}:{}: {}\n    {}",
            self.rule, self.path, self.line, self.message, self.line_text
        )
    }
}

/// The crate a workspace path belongs to: `crates/<name>/...` → `<name>` (each crate's
/// directory is named like its package; `tree` checks that).
pub fn crate_of(path: &str) -> Option<&str> {
    let mut parts = path.split('/');
    (parts.next()? == "crates").then(|| parts.next()).flatten()
}
