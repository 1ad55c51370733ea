//! One (operator, key, values) triple of a `Condition` block, compiled at parse time and tested against a [`Context`].
//!
//! Semantics (A.5): the values under one key are OR'ed; a negated operator is
//! the negation of its positive form over all values (AWS's reading, so
//! `StringNotEquals k [a, b]` means "k is neither a nor b"). A missing key
//! therefore makes positive operators false and negated ones true. A context
//! value that cannot be read as the operator's type (say `acs:SourceIp` =
//! `unknown`) satisfies no positive comparison.

use std::cmp::Ordering;

use jiff::Timestamp;

use super::context::Context;
use super::ip::{parse_ip, Cidr};
use super::matcher::{chars, glob};
use super::operator::{Family, Operator};
use super::value::{parse_bool, parse_date, parse_number};

#[derive(Debug, Clone, PartialEq)]
enum Compiled {
    Strings,
    Numbers(Vec<f64>),
    Dates(Vec<Timestamp>),
    Bools(Vec<bool>),
    Nets(Vec<Cidr>),
}

/// A validated condition. Equality compares operator, key and value text.
#[derive(Debug, Clone)]
pub struct Condition {
    operator: Operator,
    key: String,
    values: Vec<String>,
    compiled: Compiled,
}

impl PartialEq for Condition {
    fn eq(&self, other: &Self) -> bool {
        self.operator == other.operator && self.key == other.key && self.values == other.values
    }
}

impl Eq for Condition {}

/// What a value of each family must look like, for error messages.
pub(crate) fn expected(family: Family) -> &'static str {
    match family {
        Family::String => "a string",
        Family::Numeric => "a decimal number such as \"10\" or \"-2.5\"",
        Family::Date => "an ISO 8601 time with a zone, e.g. \"2012-11-11T23:59:59Z\"",
        Family::Bool => "\"true\" or \"false\"",
        Family::Ip => "an IPv4/IPv6 address or CIDR block, e.g. \"192.168.0.0/16\"",
    }
}

/// Reads every value with `f`; on failure returns the first unreadable one.
fn all<T>(values: &[String], f: impl Fn(&str) -> Option<T>) -> Result<Vec<T>, String> {
    values
        .iter()
        .map(|v| f(v).ok_or_else(|| v.clone()))
        .collect()
}

impl Condition {
    /// Compiles `values` for `operator`; `Err` carries the first value that
    /// is not of the operator's type.
    pub(crate) fn new(
        operator: Operator,
        key: String,
        values: Vec<String>,
    ) -> Result<Self, String> {
        let compiled = match operator.family() {
            Family::String => Compiled::Strings,
            Family::Numeric => Compiled::Numbers(all(&values, parse_number)?),
            Family::Date => Compiled::Dates(all(&values, parse_date)?),
            Family::Bool => Compiled::Bools(all(&values, parse_bool)?),
            Family::Ip => Compiled::Nets(all(&values, Cidr::parse)?),
        };
        Ok(Condition {
            operator,
            key,
            values,
            compiled,
        })
    }

    pub fn operator(&self) -> Operator {
        self.operator
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    /// The policy's values, as written.
    pub fn values(&self) -> &[String] {
        &self.values
    }

    /// Whether this condition holds for `ctx`.
    pub fn holds(&self, ctx: &Context) -> bool {
        let actual = ctx.values(&self.key);
        let positive = actual.iter().any(|a| self.positive_match(a));
        positive != self.operator.is_negated()
    }

    /// The positive form of the operator for one context value against any policy value.
    fn positive_match(&self, actual: &str) -> bool {
        use Operator::*;
        match (&self.compiled, self.operator) {
            (Compiled::Strings, StringEquals | StringNotEquals) => {
                self.values.iter().any(|v| v == actual)
            }
            (Compiled::Strings, StringEqualsIgnoreCase | StringNotEqualsIgnoreCase) => {
                let actual = actual.to_lowercase();
                self.values.iter().any(|v| v.to_lowercase() == actual)
            }
            (Compiled::Strings, _) => {
                let actual = chars(actual);
                self.values
                    .iter()
                    .any(|v| glob(&chars(v), &actual, |p, s, _| p == s))
            }
            (Compiled::Numbers(ns), op) => parse_number(actual)
                .is_some_and(|a| ns.iter().any(|n| compare(op, a.partial_cmp(n)))),
            (Compiled::Dates(ds), op) => {
                parse_date(actual).is_some_and(|a| ds.iter().any(|d| compare(op, Some(a.cmp(d)))))
            }
            (Compiled::Bools(bs), _) => parse_bool(actual).is_some_and(|a| bs.contains(&a)),
            (Compiled::Nets(nets), _) => {
                parse_ip(actual).is_some_and(|ip| nets.iter().any(|n| n.contains(ip)))
            }
        }
    }
}

/// `actual <op> policy` for the ordered families, given `actual.cmp(policy)`.
fn compare(op: Operator, ord: Option<Ordering>) -> bool {
    use Operator::*;
    let Some(ord) = ord else { return false };
    match op {
        NumericEquals | NumericNotEquals | DateEquals | DateNotEquals => ord.is_eq(),
        NumericLessThan | DateLessThan => ord.is_lt(),
        NumericLessThanEquals | DateLessThanEquals => ord.is_le(),
        NumericGreaterThan | DateGreaterThan => ord.is_gt(),
        NumericGreaterThanEquals | DateGreaterThanEquals => ord.is_ge(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond(op: Operator, values: &[&str]) -> Condition {
        let values = values.iter().map(|s| s.to_string()).collect();
        Condition::new(op, "k:x".into(), values).unwrap()
    }

    fn ctx(values: &[&str]) -> Context {
        values.iter().map(|v| ("k:x", *v)).collect()
    }

    #[test]
    fn missing_key_is_false_for_positive_and_true_for_negated() {
        for op in Operator::ALL {
            let v = match op.family() {
                Family::String => "a",
                Family::Numeric => "1",
                Family::Date => "2020-01-01T00:00:00Z",
                Family::Bool => "true",
                Family::Ip => "10.0.0.0/8",
            };
            assert_eq!(
                cond(op, &[v]).holds(&Context::new()),
                op.is_negated(),
                "{op}"
            );
        }
    }

    #[test]
    fn values_are_ored_and_negation_is_nor() {
        assert!(cond(Operator::StringEquals, &["a", "b"]).holds(&ctx(&["b"])));
        assert!(!cond(Operator::StringNotEquals, &["a", "b"]).holds(&ctx(&["b"])));
        assert!(cond(Operator::StringNotEquals, &["a", "b"]).holds(&ctx(&["c"])));
    }

    #[test]
    fn typed_comparisons() {
        assert!(cond(Operator::NumericLessThan, &["10"]).holds(&ctx(&["9.5"])));
        assert!(!cond(Operator::NumericLessThan, &["10"]).holds(&ctx(&["10"])));
        assert!(cond(Operator::NumericLessThanEquals, &["10"]).holds(&ctx(&["10.0"])));
        assert!(!cond(Operator::NumericEquals, &["10"]).holds(&ctx(&["ten"])));
        assert!(cond(Operator::DateGreaterThan, &["2020-01-01T00:00:00Z"])
            .holds(&ctx(&["2020-01-01T08:00:01+08:00"])));
        assert!(cond(Operator::Bool, &["true"]).holds(&ctx(&["TRUE"])));
        assert!(!cond(Operator::Bool, &["true"]).holds(&ctx(&["1"])));
        assert!(cond(Operator::NotIpAddress, &["10.0.0.0/8"]).holds(&ctx(&["127.0.0.1"])));
    }

    #[test]
    fn refuses_mistyped_policy_values() {
        let v = |s: &str| vec![s.to_string()];
        assert_eq!(
            Condition::new(Operator::NumericEquals, "k:x".into(), v("x")).unwrap_err(),
            "x"
        );
        assert!(Condition::new(Operator::IpAddress, "k:x".into(), v("1.2.3.4/40")).is_err());
        assert!(Condition::new(Operator::StringLike, "k:x".into(), v("1.2.3.4/40")).is_ok());
    }
}
