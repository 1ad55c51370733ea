//! Wildcard matching of actions and resource ARNs (`RAM.md` A.2), without regular expressions.
//!
//! `*` matches any run of characters (including none) and `?` exactly one
//! character; every other character, `.`, `+`, `(`, `[` and `\` included,
//! stands for itself. A hand-written matcher rules out the classic bug of
//! building a regex from user text without escaping it.

/// Glob match of `subject` against `pattern`. `eq(p, s, i)` compares a
/// literal pattern char `p` with subject char `s` at subject index `i`, which
/// lets callers make only part of the subject case-insensitive.
///
/// Greedy with backtracking to the last `*`: O(len(pattern) × len(subject))
/// in the worst case, no recursion, so hostile patterns cannot blow the stack.
pub(crate) fn glob(
    pattern: &[char],
    subject: &[char],
    eq: impl Fn(char, char, usize) -> bool,
) -> bool {
    let (mut p, mut s) = (0, 0);
    // Where to resume after the most recent `*`: (pattern index after it, subject index it has eaten up to).
    let mut resume: Option<(usize, usize)> = None;
    while s < subject.len() {
        match pattern.get(p) {
            Some('*') => {
                resume = Some((p + 1, s));
                p += 1;
            }
            Some(&c) if c == '?' || eq(c, subject[s], s) => {
                p += 1;
                s += 1;
            }
            _ => match resume {
                Some((after_star, eaten)) => {
                    p = after_star;
                    s = eaten + 1;
                    resume = Some((after_star, eaten + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

/// Case-insensitive char comparison (Unicode lower-casing, not only ASCII).
pub(crate) fn eq_ignore_case(a: char, b: char) -> bool {
    if a.is_ascii() && b.is_ascii() {
        return a.eq_ignore_ascii_case(&b);
    }
    a == b || a.to_lowercase().eq(b.to_lowercase())
}

pub(crate) fn chars(s: &str) -> Vec<char> {
    s.chars().collect()
}

/// Whether `text` names one action, `<ram-code>:<action-name>` (e.g. `polardb:DescribeBackups`):
/// what a request is evaluated as, so no wildcard, whitespace or control character.
pub fn is_action_name(text: &str) -> bool {
    !text
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '*' || c == '?')
        && text
            .split_once(':')
            .is_some_and(|(svc, name)| !svc.is_empty() && !name.is_empty() && !name.contains(':'))
}

/// One entry of `Action`/`NotAction`: `*` or `<ram-code>:<action-name>`,
/// compared case-insensitively as a whole (A.2: prefix and name alike).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionPattern {
    text: String,
    chars: Vec<char>,
}

impl ActionPattern {
    /// `None` unless `text` is `*` or `service:name` with both parts
    /// non-empty and no whitespace.
    pub(crate) fn new(text: &str) -> Option<Self> {
        let ok = text == "*"
            || (!text.chars().any(|c| c.is_whitespace() || c.is_control())
                && text
                    .split_once(':')
                    .is_some_and(|(svc, name)| !svc.is_empty() && !name.is_empty()));
        ok.then(|| ActionPattern {
            text: text.to_owned(),
            chars: chars(text),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn matches(&self, action: &str) -> bool {
        glob(&self.chars, &chars(action), |p, s, _| eq_ignore_case(p, s))
    }
}

/// One entry of `Resource`/`NotResource`: `*` or a five-segment ARN pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourcePattern {
    text: String,
    /// `None` for the bare `*`; otherwise the five ARN segments.
    segments: Option<[Vec<char>; 5]>,
}

/// Splits an ARN into `acs`, service, region, account and relative id. The
/// relative id keeps any further colons (OSS object names may contain them).
fn arn_segments(s: &str) -> Option<[&str; 5]> {
    let mut it = s.splitn(5, ':');
    Some([it.next()?, it.next()?, it.next()?, it.next()?, it.next()?])
}

impl ResourcePattern {
    /// `None` unless `text` is `*` or `acs:<service>:<region>:<account>:<relative-id>`
    /// with a non-empty service and relative id (region and account may be
    /// empty, as in `acs:ram::123:role/x`).
    pub(crate) fn new(text: &str) -> Option<Self> {
        if text == "*" {
            return Some(ResourcePattern {
                text: text.to_owned(),
                segments: None,
            });
        }
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return None;
        }
        let [acs, service, region, account, relative] = arn_segments(text)?;
        if !acs.eq_ignore_ascii_case("acs") || service.is_empty() || relative.is_empty() {
            return None;
        }
        Some(ResourcePattern {
            text: text.to_owned(),
            segments: Some([acs, service, region, account, relative].map(chars)),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Segment-by-segment match (A.2): `acs` and the service are
    /// case-insensitive, region and account case-sensitive; in the relative
    /// id the resource-type token before the first `/` is case-insensitive
    /// (`dbcluster` = `DBCluster`) and the id after it case-sensitive. A `*`
    /// never spans a `:` between segments. A request resource that is not an
    /// ARN (e.g. `*` for APIs without resource-level authorization) is
    /// matched only by the bare `*` pattern.
    pub fn matches(&self, resource: &str) -> bool {
        let Some(pattern) = &self.segments else {
            return true;
        };
        // The subject's characters on the stack when they fit (an ARN does), so a call
        // evaluated against a policy allocates nothing here.
        let mut stack = ['\0'; 192];
        let mut heap = Vec::new();
        let n = resource.chars().count();
        let all: &mut [char] = if n <= stack.len() {
            &mut stack[..n]
        } else {
            heap.resize(n, '\0');
            &mut heap
        };
        for (slot, c) in all.iter_mut().zip(resource.chars()) {
            *slot = c;
        }
        let Some(subject) = char_segments(all) else {
            return false;
        };
        let ci = |p: char, s: char, _: usize| eq_ignore_case(p, s);
        let cs = |p: char, s: char, _: usize| p == s;
        let relative = subject[4];
        // Without a `/` there is no type token, so the whole id is case-sensitive.
        let type_end = relative.iter().position(|&c| c == '/').unwrap_or(0);
        glob(&pattern[0], subject[0], ci)
            && glob(&pattern[1], subject[1], ci)
            && glob(&pattern[2], subject[2], cs)
            && glob(&pattern[3], subject[3], cs)
            && glob(&pattern[4], relative, |p, s, i| {
                if i < type_end {
                    eq_ignore_case(p, s)
                } else {
                    p == s
                }
            })
    }
}

/// [`arn_segments`] over characters: split at the first four `:`.
fn char_segments(all: &[char]) -> Option<[&[char]; 5]> {
    let mut it = all.splitn(5, |&c| c == ':');
    Some([it.next()?, it.next()?, it.next()?, it.next()?, it.next()?])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(p: &str, s: &str) -> bool {
        glob(&chars(p), &chars(s), |a, b, _| a == b)
    }

    #[test]
    fn action_names_need_a_service_prefix_and_no_wildcard() {
        for ok in [
            "polardb:DescribeBackups",
            "polardb:describebackups",
            "ecs:RunInstances",
        ] {
            assert!(is_action_name(ok), "{ok}");
        }
        for bad in [
            "DescribeBackups",
            ":DescribeBackups",
            "polardb:",
            "polardb:*",
            "polardb:Describe?",
            "*",
            "polardb: DescribeBackups",
            "polardb:a:b",
            "",
        ] {
            assert!(!is_action_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn glob_basics() {
        assert!(g("", ""));
        assert!(!g("", "a"));
        assert!(g("*", ""));
        assert!(g("*", "abc"));
        assert!(g("a*c", "abbbc"));
        assert!(g("a*c", "ac"));
        assert!(!g("a*c", "ab"));
        assert!(g("a?c", "abc"));
        assert!(!g("a?c", "ac"));
        assert!(g("*b*b*", "abxbx"));
        assert!(!g("*b*b*", "abx"));
        assert!(g("??", "éü"));
    }

    #[test]
    fn metacharacters_are_literal() {
        assert!(g("a.c", "a.c"));
        assert!(!g("a.c", "abc"));
        assert!(!g("a+", "aa"));
        assert!(!g("[ab]", "a"));
        assert!(g("[ab]", "[ab]"));
        assert!(!g("(a|b)", "a"));
        assert!(!g("^a$", "a"));
        assert!(g(r"a\d", r"a\d"));
    }

    #[test]
    fn action_validation() {
        assert!(ActionPattern::new("*").is_some());
        assert!(ActionPattern::new("polardb:*").is_some());
        assert!(ActionPattern::new("polardb").is_none());
        assert!(ActionPattern::new("polardb:").is_none());
        assert!(ActionPattern::new(":X").is_none());
        assert!(ActionPattern::new("polardb: X").is_none());
    }

    #[test]
    fn resource_validation() {
        assert!(ResourcePattern::new("*").is_some());
        assert!(ResourcePattern::new("acs:polardb:*:*:*").is_some());
        assert!(ResourcePattern::new("acs:ram::123:role/x").is_some());
        assert!(ResourcePattern::new("acs:polardb:*:*").is_none());
        assert!(ResourcePattern::new("arn:polardb:*:*:*").is_none());
        assert!(ResourcePattern::new("acs::*:*:x").is_none());
        assert!(ResourcePattern::new("acs:polardb:*:*:").is_none());
    }

    #[test]
    fn resource_case_rules() {
        let p = ResourcePattern::new("acs:POLARDB:cn-hangzhou:123:DBCluster/pc-Ab").unwrap();
        assert!(p.matches("acs:polardb:cn-hangzhou:123:dbcluster/pc-Ab"));
        assert!(!p.matches("acs:polardb:cn-hangzhou:123:dbcluster/pc-ab"));
        assert!(!p.matches("acs:polardb:CN-HANGZHOU:123:dbcluster/pc-Ab"));
        let star = ResourcePattern::new("acs:polardb:*:*:*").unwrap();
        assert!(star.matches("acs:polardb:r:1:dbcluster/x:y"));
        assert!(!star.matches("*"));
        assert!(ResourcePattern::new("*").unwrap().matches("*"));
    }

    #[test]
    fn star_does_not_cross_segments() {
        let p = ResourcePattern::new("acs:polardb:cn-*:123:dbcluster/*").unwrap();
        assert!(!p.matches("acs:polardb:cn-x:999:123:dbcluster/a"));
        assert!(p.matches("acs:polardb:cn-x:123:dbcluster/a"));
    }

    #[test]
    fn resources_longer_than_the_stack_buffer_match_alike() {
        let p = ResourcePattern::new("acs:polardb:*:123:dbcluster/pc-*é").unwrap();
        for len in [150, 191, 192, 193, 400] {
            let head = "acs:polardb:r:123:DBCluster/pc-";
            let id = "x".repeat(len - head.chars().count() - 1);
            let resource = format!("{head}{id}é");
            assert_eq!(resource.chars().count(), len);
            assert!(p.matches(&resource), "{len}");
            assert!(!p.matches(&resource.replace(":123:", ":124:")), "{len}");
            assert!(!p.matches(&format!("{resource}x")), "{len}");
        }
    }
}
