//! Why a policy document was refused at creation time, one variant per rule.
//!
//! `element` fields are paths such as `Statement[1].Condition.IpAddress`, so
//! the author can find the offending spot without a line number.

/// A policy document that RAM would refuse. Messages quote the offending
/// text from the document, never anything else.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("The policy document is {size} bytes; the limit is {limit} bytes.")]
    TooLarge { size: usize, limit: usize },
    #[error("The policy document is not valid JSON: {0}.")]
    InvalidJson(String),
    #[error("{element} must be {expected}, found {found}.")]
    WrongType {
        element: String,
        expected: &'static str,
        found: &'static str,
    },
    #[error("{element} contains the member \"{key}\" more than once.")]
    DuplicateKey { element: String, key: String },
    #[error("{element} is not a RAM policy element (element names are case-sensitive).")]
    UnknownElement { element: String },
    #[error("{element} is required.")]
    MissingElement { element: String },
    #[error("Version must be \"1\", found {found}.")]
    InvalidVersion { found: String },
    #[error("The policy has {count} statements; the limit is {limit}.")]
    TooManyStatements { count: usize, limit: usize },
    #[error(
        "{element}: Effect must be \"Allow\" or \"Deny\" (case-sensitive), found \"{found}\"."
    )]
    UnknownEffect { element: String, found: String },
    #[error("Statement[{statement}] needs an Action or a NotAction.")]
    MissingAction { statement: usize },
    #[error(
        "Statement[{statement}] has both Action and NotAction; a statement takes exactly one."
    )]
    ActionAndNotAction { statement: usize },
    #[error("Statement[{statement}] needs a Resource (or NotResource).")]
    MissingResource { statement: usize },
    #[error(
        "Statement[{statement}] has both Resource and NotResource; a statement takes exactly one."
    )]
    ResourceAndNotResource { statement: usize },
    #[error("Statement[{statement}] uses NotResource, which this server is configured to refuse.")]
    NotResourceRefused { statement: usize },
    #[error("Statement[{statement}] has a Principal; identity-based policies must not name one.")]
    PrincipalNotAllowed { statement: usize },
    #[error("{element} contains an empty string.")]
    EmptyString { element: String },
    #[error("{element} is empty; give at least one value.")]
    EmptyList { element: String },
    #[error("{element}: \"{value}\" is not an action; write \"*\" or <ram-code>:<action-name>, e.g. polardb:DescribeBackups.")]
    InvalidAction { element: String, value: String },
    #[error("{element}: \"{value}\" is not a resource; write \"*\" or an ARN acs:<service>:<region>:<account-id>:<relative-id>.")]
    InvalidResource { element: String, value: String },
    #[error("{element}: the condition operator '{operator}' is not supported.")]
    UnsupportedOperator { element: String, operator: String },
    #[error(
        "{element}: \"{key}\" is not a condition key; write <prefix>:<name>, e.g. acs:SourceIp."
    )]
    InvalidConditionKey { element: String, key: String },
    #[error("{element}: the condition key \"{key}\" is not supported; the supported keys are {supported}.")]
    UnsupportedConditionKey {
        element: String,
        key: String,
        supported: String,
    },
    #[error("{element}: condition values are written as JSON strings, found {found}.")]
    ConditionValueNotString {
        element: String,
        found: &'static str,
    },
    #[error("{element}: \"{value}\" is not a valid value for {operator}; expected {expected}.")]
    InvalidConditionValue {
        element: String,
        operator: &'static str,
        value: String,
        expected: &'static str,
    },
}
