//! Rules over single files: `wall-clock` (time comes from the model's `Clock`), `module-doc`
//! (every .rs file opens with `//!`), `unfinished` (no placeholder macros or ignored tests) and
//! `outside-repo` (no path leads out of the repository).

use crate::lex::lex;
use crate::Violation;

/// The one file that reads the wall clock: the model's `SystemClock`.
pub const CLOCK_FILE: &str = "crates/polarbackup-model/src/clock.rs";

/// Calls that read the wall clock. `Instant::now` is monotonic and allowed.
pub const WALL_CLOCK: &[&str] = &["Timestamp::now", "SystemTime::now", "Zoned::now"];

/// The needles are assembled at run time so that this file does not contain them.
fn unfinished_needles() -> [String; 3] {
    [
        ["todo", "!("].concat(),
        ["unimplemented", "!("].concat(),
        ["#[", "ignore"].concat(),
    ]
}

fn outside_needles() -> [String; 6] {
    [
        // The folder beside the repository that tests used to read.
        ["..", "/shared"].concat(),
        // Three levels up from a crate's directory (where tests run) is outside the root.
        ["../", "../", ".."].concat(),
        // One machine's absolute paths.
        ["/wo", "rk/"].concat(),
        ["/ho", "me/"].concat(),
        ["/ro", "ot/"].concat(),
        ["/Us", "ers/"].concat(),
    ]
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Code (not comments or strings) outside the model's clock that reads the wall clock, by any
/// path (`jiff::Timestamp::now`, `std::time::SystemTime::now`).
pub fn wall_clock(path: &str, text: &str) -> Vec<Violation> {
    if path == CLOCK_FILE {
        return Vec::new();
    }
    let code = lex(text).code;
    let mut out = Vec::new();
    for (n, line) in code.lines().enumerate() {
        for needle in WALL_CLOCK {
            let hit = line.match_indices(needle).any(|(at, _)| {
                let before = line[..at].chars().last();
                let after = line[at + needle.len()..].chars().next();
                !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
            });
            if hit {
                out.push(Violation::new(
                    "wall-clock",
                    path,
                    text,
                    n + 1,
                    format!(
                        "{needle} reads the wall clock: take a polarbackup_model::Clock \
                         (SystemClock, or ManualClock in tests) instead"
                    ),
                ));
            }
        }
    }
    out
}

/// A .rs file opens with a `//!` line saying what it is.
pub fn module_doc(path: &str, text: &str) -> Vec<Violation> {
    if text.lines().next().is_some_and(|l| l.starts_with("//!")) {
        return Vec::new();
    }
    vec![Violation::new(
        "module-doc",
        path,
        text,
        1,
        "the first line must be a `//!` comment saying what the file is",
    )]
}

/// Placeholder macros and ignored tests, anywhere in a .rs file.
pub fn unfinished(path: &str, text: &str) -> Vec<Violation> {
    let needles = unfinished_needles();
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        for needle in &needles {
            if line.contains(needle.as_str()) {
                out.push(Violation::new(
                    "unfinished",
                    path,
                    text,
                    n + 1,
                    format!("{needle} is unfinished work: finish it, or delete it"),
                ));
            }
        }
    }
    out
}

/// A path in code, a script or a document that leaves the repository: everything the project
/// needs is inside it.
pub fn outside_repo(path: &str, text: &str) -> Vec<Violation> {
    let needles = outside_needles();
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if let Some(needle) = needles.iter().find(|nd| line.contains(nd.as_str())) {
            out.push(Violation::new(
                "outside-repo",
                path,
                text,
                n + 1,
                format!(
                    "{needle} leads outside the repository: commit what is needed \
                     (e.g. under tests/fixtures/) and use a path inside it"
                ),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wall_clock_by_any_path_fires_outside_the_clock() {
        let src = "//! x\nlet a = jiff::Timestamp::now();\nlet b = std::time::SystemTime::now()\n    .elapsed();\nlet c = Instant::now();\nlet d = clock.now();\n// Timestamp::now() in a comment\nlet e = \"Timestamp::now\";\nlet f = MyTimestamp::now();\n";
        let v = wall_clock("crates/polarbackup-engine/src/x.rs", src);
        let lines: Vec<usize> = v.iter().map(|v| v.line).collect();
        assert_eq!(lines, vec![2, 3], "{v:?}");
        assert_eq!(v[0].line_text, "let a = jiff::Timestamp::now();");
        assert!(wall_clock(CLOCK_FILE, src).is_empty());
    }

    #[test]
    fn a_file_without_its_module_doc_fires() {
        assert!(module_doc("a.rs", "//! What this is.\nfn f() {}\n").is_empty());
        assert_eq!(module_doc("a.rs", "/// an item doc\nfn f() {}\n").len(), 1);
        assert_eq!(module_doc("a.rs", "").len(), 1);
        assert_eq!(module_doc("a.rs", "\n//! late\n").len(), 1);
    }

    #[test]
    fn placeholders_and_ignored_tests_fire_anywhere() {
        let [todo, unimpl, ignore] = unfinished_needles();
        let src = format!(
            "//! x\nfn a() {{ {todo}) }}\n// {unimpl}\"later\")\n{ignore} = \"slow\"]\nfn ok() {{}}\n"
        );
        let lines: Vec<usize> = unfinished("a.rs", &src).iter().map(|v| v.line).collect();
        assert_eq!(lines, vec![2, 3, 4]);
        assert!(unfinished("a.rs", "//! x\nlet todo = 1; // ignored\n").is_empty());
    }

    #[test]
    fn paths_out_of_the_repository_fire() {
        let needles = outside_needles();
        for needle in &needles {
            let src = format!("//! x\nconst P: &str = \"{needle}vectors\";\n");
            let v = outside_repo("a.rs", &src);
            assert_eq!(v.len(), 1, "{needle}");
            assert_eq!(v[0].line, 2);
        }
        let inside = "cd \"$(dirname \"$0\")/..\"\nls ../../etc/x /tmp/y /var/cache\n";
        assert!(outside_repo("scripts/x.sh", inside).is_empty());
    }
}
