//! Validation of policy documents against the RAM grammar (A.1) and operator list (A.5).
//!
//! The validator fails closed: any element it does not know is refused at
//! creation time rather than ignored, since an ignored element could only
//! ever make a policy grant more than its author meant.

use super::condition::{expected, Condition};
use super::context::{is_supported_key, SUPPORTED_KEYS};
use super::error::PolicyError;
use super::json::{self, Json};
use super::matcher::{ActionPattern, ResourcePattern};
use super::operator::Operator;
use super::policy::{Effect, Limits, Policy, Scope, Statement};

const TOP_LEVEL: &[&str] = &["Version", "Statement"];
/// `Sid` is accepted and ignored (KMS-style, A.1); `Principal` is recognised
/// only to be refused with its own error.
const STATEMENT: &[&str] = &[
    "Effect",
    "Action",
    "NotAction",
    "Resource",
    "NotResource",
    "Condition",
    "Sid",
    "Principal",
];

pub(crate) fn policy(text: &str, limits: &Limits) -> Result<Policy, PolicyError> {
    if text.len() > limits.max_document_bytes {
        return Err(PolicyError::TooLarge {
            size: text.len(),
            limit: limits.max_document_bytes,
        });
    }
    let tree = json::parse(text).map_err(|e| PolicyError::InvalidJson(e.to_string()))?;
    let top = object(&tree, "The policy document")?;
    check_members(top, "", TOP_LEVEL)?;
    match get(top, "Version") {
        None => return Err(missing("Version")),
        Some(Json::String(v)) if v == "1" => {}
        Some(Json::String(v)) => {
            return Err(PolicyError::InvalidVersion {
                found: format!("\"{v}\""),
            })
        }
        Some(other) => {
            return Err(PolicyError::InvalidVersion {
                found: other.kind().to_owned(),
            })
        }
    }
    let items = match get(top, "Statement") {
        None => return Err(missing("Statement")),
        Some(Json::Array(items)) => items,
        Some(other) => return Err(wrong_type("Statement", "an array of statements", other)),
    };
    if items.is_empty() {
        return Err(PolicyError::EmptyList {
            element: "Statement".into(),
        });
    }
    if items.len() > limits.max_statements {
        return Err(PolicyError::TooManyStatements {
            count: items.len(),
            limit: limits.max_statements,
        });
    }
    let statements = items
        .iter()
        .enumerate()
        .map(|(i, s)| statement(i, s, limits))
        .collect::<Result<_, _>>()?;
    Ok(Policy { statements })
}

fn statement(index: usize, j: &Json, limits: &Limits) -> Result<Statement, PolicyError> {
    let path = format!("Statement[{index}]");
    let m = object(j, &path)?;
    check_members(m, &format!("{path}."), STATEMENT)?;
    if get(m, "Principal").is_some() {
        return Err(PolicyError::PrincipalNotAllowed { statement: index });
    }
    if let Some(sid) = get(m, "Sid") {
        if !matches!(sid, Json::String(_)) {
            return Err(wrong_type(&format!("{path}.Sid"), "a string", sid));
        }
    }
    let effect = match get(m, "Effect") {
        None => return Err(missing(&format!("{path}.Effect"))),
        Some(Json::String(e)) if e == "Allow" => Effect::Allow,
        Some(Json::String(e)) if e == "Deny" => Effect::Deny,
        Some(Json::String(e)) => {
            return Err(PolicyError::UnknownEffect {
                element: path,
                found: e.clone(),
            })
        }
        Some(other) => return Err(wrong_type(&format!("{path}.Effect"), "a string", other)),
    };
    let action = match (get(m, "Action"), get(m, "NotAction")) {
        (Some(_), Some(_)) => return Err(PolicyError::ActionAndNotAction { statement: index }),
        (None, None) => return Err(PolicyError::MissingAction { statement: index }),
        (Some(a), None) => Scope::Listed(actions(a, &format!("{path}.Action"))?),
        (None, Some(a)) => Scope::AllExcept(actions(a, &format!("{path}.NotAction"))?),
    };
    let resource = match (get(m, "Resource"), get(m, "NotResource")) {
        (Some(_), Some(_)) => return Err(PolicyError::ResourceAndNotResource { statement: index }),
        (None, None) => return Err(PolicyError::MissingResource { statement: index }),
        (Some(r), None) => Scope::Listed(resources(r, &format!("{path}.Resource"))?),
        (None, Some(_)) if !limits.allow_not_resource => {
            return Err(PolicyError::NotResourceRefused { statement: index })
        }
        (None, Some(r)) => Scope::AllExcept(resources(r, &format!("{path}.NotResource"))?),
    };
    let conditions = match get(m, "Condition") {
        None => Vec::new(),
        Some(c) => conditions(c, &format!("{path}.Condition"), limits)?,
    };
    Ok(Statement {
        effect,
        action,
        resource,
        conditions,
    })
}

fn actions(j: &Json, element: &str) -> Result<Vec<ActionPattern>, PolicyError> {
    let list = string_list(j, element, |found| {
        wrong_type_kind(element, "a string or an array of strings", found)
    })?;
    list.into_iter()
        .map(|a| {
            ActionPattern::new(&a).ok_or_else(|| PolicyError::InvalidAction {
                element: element.to_owned(),
                value: a,
            })
        })
        .collect()
}

fn resources(j: &Json, element: &str) -> Result<Vec<ResourcePattern>, PolicyError> {
    let list = string_list(j, element, |found| {
        wrong_type_kind(element, "a string or an array of strings", found)
    })?;
    list.into_iter()
        .map(|r| {
            ResourcePattern::new(&r).ok_or_else(|| PolicyError::InvalidResource {
                element: element.to_owned(),
                value: r,
            })
        })
        .collect()
}

/// `Condition`: operator → { key → value | [values] }.
fn conditions(j: &Json, path: &str, limits: &Limits) -> Result<Vec<Condition>, PolicyError> {
    let ops = object(j, path)?;
    check_members(ops, &format!("{path}."), &[])?;
    let mut out = Vec::new();
    for (name, block) in ops {
        let op = Operator::from_name(name).ok_or_else(|| PolicyError::UnsupportedOperator {
            element: path.to_owned(),
            operator: name.clone(),
        })?;
        let op_path = format!("{path}.{name}");
        let keys = object(block, &op_path)?;
        if keys.is_empty() {
            return Err(PolicyError::EmptyList { element: op_path });
        }
        check_members(keys, &format!("{op_path}."), &[])?;
        for (key, values) in keys {
            if key.is_empty() {
                return Err(PolicyError::EmptyString {
                    element: format!("{op_path} (a condition key)"),
                });
            }
            let key_ok = !key.chars().any(|c| c.is_whitespace() || c.is_control())
                && key
                    .split_once(':')
                    .is_some_and(|(prefix, name)| !prefix.is_empty() && !name.is_empty());
            if !key_ok {
                return Err(PolicyError::InvalidConditionKey {
                    element: op_path,
                    key: key.clone(),
                });
            }
            if limits.supported_keys_only && !is_supported_key(key) {
                return Err(PolicyError::UnsupportedConditionKey {
                    element: op_path,
                    key: key.clone(),
                    supported: SUPPORTED_KEYS.join(", "),
                });
            }
            let element = format!("{op_path}.{key}");
            let values = string_list(values, &element, |found| {
                PolicyError::ConditionValueNotString {
                    element: element.clone(),
                    found,
                }
            })?;
            let condition = Condition::new(op, key.clone(), values).map_err(|value| {
                PolicyError::InvalidConditionValue {
                    element: element.clone(),
                    operator: op.name(),
                    value,
                    expected: expected(op.family()),
                }
            })?;
            out.push(condition);
        }
    }
    Ok(out)
}

/// A string or a non-empty array of strings (A.1: both forms mean the
/// same); empty strings are refused. `not_string` builds the error for any
/// other JSON type, given its kind.
fn string_list(
    j: &Json,
    element: &str,
    not_string: impl Fn(&'static str) -> PolicyError,
) -> Result<Vec<String>, PolicyError> {
    let items: Vec<&Json> = match j {
        Json::Array(items) if items.is_empty() => {
            return Err(PolicyError::EmptyList {
                element: element.to_owned(),
            })
        }
        Json::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    items
        .into_iter()
        .map(|item| match item {
            Json::String(s) if s.is_empty() => Err(PolicyError::EmptyString {
                element: element.to_owned(),
            }),
            Json::String(s) => Ok(s.clone()),
            other => Err(not_string(other.kind())),
        })
        .collect()
}

fn object<'a>(j: &'a Json, element: &str) -> Result<&'a [(String, Json)], PolicyError> {
    match j {
        Json::Object(m) => Ok(m),
        other => Err(wrong_type(element, "an object", other)),
    }
}

/// Refuses the first duplicate member, then the first member not in
/// `allowed` (an empty `allowed` admits any name).
fn check_members(m: &[(String, Json)], prefix: &str, allowed: &[&str]) -> Result<(), PolicyError> {
    let container = match prefix.strip_suffix('.') {
        Some(p) => p.to_owned(),
        None if prefix.is_empty() => "The policy document".to_owned(),
        None => prefix.to_owned(),
    };
    for (i, (k, _)) in m.iter().enumerate() {
        if m[..i].iter().any(|(earlier, _)| earlier == k) {
            return Err(PolicyError::DuplicateKey {
                element: container,
                key: k.clone(),
            });
        }
    }
    if let Some((k, _)) = m
        .iter()
        .find(|(k, _)| !allowed.is_empty() && !allowed.contains(&k.as_str()))
    {
        return Err(PolicyError::UnknownElement {
            element: format!("{prefix}{k}"),
        });
    }
    Ok(())
}

fn get<'a>(m: &'a [(String, Json)], name: &str) -> Option<&'a Json> {
    m.iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

fn missing(element: &str) -> PolicyError {
    PolicyError::MissingElement {
        element: element.to_owned(),
    }
}

fn wrong_type(element: &str, expected: &'static str, found: &Json) -> PolicyError {
    wrong_type_kind(element, expected, found.kind())
}

fn wrong_type_kind(element: &str, expected: &'static str, found: &'static str) -> PolicyError {
    PolicyError::WrongType {
        element: element.to_owned(),
        expected,
        found,
    }
}
