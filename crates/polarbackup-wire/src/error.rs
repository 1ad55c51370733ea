//! Every error a client can see, and the one table mapping each to (HTTP status, Code, Message).

use thiserror::Error;

/// Errors as PolarDB reports them. The HTTP layer adds RequestId, HostId and Recommend.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum ApiError {
    // Gateway: request shape.
    #[error("missing parameter {0}")]
    MissingParameter(&'static str),
    #[error("unknown action")]
    InvalidAction,
    #[error("unsupported version")]
    InvalidVersion,
    #[error("unsupported Format")]
    InvalidFormat,
    #[error("unsupported HTTP method")]
    UnsupportedHttpMethod,
    #[error("request body too large")]
    BodyTooLarge { limit: usize },
    #[error("request body not received in time")]
    RequestTimeout,
    #[error("malformed request body: {0}")]
    MalformedBody(&'static str),
    /// The HTTP parser refused the request line or a header (a bad `Content-Length`, bytes
    /// no URI or header may hold).
    #[error("malformed HTTP request")]
    MalformedRequest,
    #[error("request URI too long")]
    UriTooLong,
    /// More headers than the parser takes, or a head larger than its buffer.
    #[error("request headers too large")]
    HeadersTooLarge,

    // Gateway: authentication.
    #[error("unknown access key")]
    AccessKeyNotFound,
    #[error("disabled access key")]
    AccessKeyInactive,
    #[error("signature mismatch")]
    SignatureDoesNotMatch { string_to_sign: String },
    #[error("content hash mismatch")]
    ContentHashMismatch,
    #[error("incomplete signature: {0}")]
    IncompleteSignature(String),
    #[error("bad signature method")]
    InvalidSignatureMethod,
    #[error("bad signature version")]
    InvalidSignatureVersion,
    #[error("nonce reused")]
    SignatureNonceUsed,
    #[error("timestamp expired")]
    TimestampExpired,
    #[error("timestamp malformed")]
    TimestampFormat,
    #[error("security token malformed")]
    SecurityTokenMalformed,

    // PolarDB.
    /// The cluster is unknown or not the caller's; the two are indistinguishable on purpose.
    #[error("cluster not found")]
    DbClusterNotFound { status: u16 },
    #[error("bad BackupMode")]
    BackupModeMalformed,
    /// `Invalid<Param>.Malformed`: a parameter outside its documented domain.
    #[error("bad {0}")]
    Malformed(&'static str),
    #[error("manual backup limit reached")]
    BackupTimesExceeded,
    #[error("ClientToken reused with other parameters")]
    IdempotentParameterMismatch,
    #[error("unknown backup set")]
    BackupSetNotFound,
    #[error("automated backup sets cannot be deleted")]
    AutomatedBackupNotDeletable,
    /// DeleteBackup of set `id`, the base of incremental sets `children` that would stay.
    #[error("backup set {id} is the base of incremental backup sets")]
    BackupDependency { id: u64, children: Vec<u64> },
    /// The cluster is being deleted: only reads are answered.
    #[error("the cluster is being deleted")]
    ClusterStatus,
    /// DeleteDBCluster of a cluster that is not Running (being deleted already).
    #[error("the cluster is not Running")]
    ClusterNotRunning,
    /// DeleteDBCluster while a backup job of the cluster is queued or running.
    #[error("a backup job of the cluster is queued or running")]
    OperateStatus,
    /// A policy field for a feature this service does not have (level-2, cross-region, ...).
    #[error("unsupported backup policy field {0}")]
    IncorrectBackupPolicy(&'static str),
    /// A `BackupLogId` the cluster does not have (DescribeBackupLogDownloadLinks' per-item
    /// error), or the object behind a genuine download link is gone.
    #[error("unknown backup log")]
    BackupLogNotFound,
    /// The `Host` a download link would name is not `host` or `host:port`.
    #[error("unusable Host header")]
    HostUnusable,

    // Download links (served outside the RPC endpoint). A link that is not ours and one of
    // ours for an object that never existed are refused alike, so nothing leaks.
    #[error("download link signature mismatch")]
    LinkSignatureMismatch,
    #[error("download link expired")]
    LinkExpired,

    // Authorization.
    #[error("denied by RAM")]
    ForbiddenRam(Box<AccessDenied>),

    // Server side.
    #[error("internal error")]
    Internal,
    #[error("service unavailable")]
    ServiceUnavailable,
}

/// `AccessDeniedDetail` of a RAM denial (RAM.md A.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessDenied {
    pub auth_action: String,
    pub principal_owner_id: String,
    pub principal_display_name: String,
    /// `ImplicitDeny` or `ExplicitDeny`.
    pub no_permission_type: String,
    pub encoded_diagnostic_message: String,
}

impl AccessDenied {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "AuthAction": self.auth_action,
            "AuthPrincipalType": "SubUser",
            "AuthPrincipalOwnerId": self.principal_owner_id,
            "AuthPrincipalDisplayName": self.principal_display_name,
            "PolicyType": "AccountLevelIdentityBasedPolicy",
            "NoPermissionType": self.no_permission_type,
            "EncodedDiagnosticMessage": self.encoded_diagnostic_message,
        })
    }
}

impl ApiError {
    /// HTTP status, error Code and Message, exactly as PolarDB and its gateway send them.
    pub fn describe(&self) -> (u16, String, String) {
        use ApiError::*;
        let (status, code, message): (u16, &str, String) = match self {
            MissingParameter(name) => {
                return (
                    400,
                    format!("Missing{name}"),
                    format!("{name} is mandatory for this action."),
                )
            }
            InvalidAction => (
                404,
                "InvalidAction.NotFound",
                "Specified api is not found, please check your url and method.".into(),
            ),
            InvalidVersion => (
                400,
                "InvalidVersion",
                "Specified parameter Version is not valid.".into(),
            ),
            InvalidFormat => (
                400,
                "InvalidParameter.Format",
                "Specified parameter format is not valid.".into(),
            ),
            UnsupportedHttpMethod => (
                400,
                "UnsupportedHTTPMethod",
                "This http method not supported.".into(),
            ),
            BodyTooLarge { limit } => (
                413,
                "InvalidParameter.TooLarge",
                format!("The request body exceeds the limit of {limit} bytes."),
            ),
            RequestTimeout => (
                408,
                "RequestTimeout",
                "The request body was not received in time.".into(),
            ),
            MalformedBody(why) => (
                400,
                "InvalidParameter",
                format!("The request body is not valid: {why}."),
            ),
            MalformedRequest => (
                400,
                "InvalidParameter",
                "The HTTP request is malformed: its request line, a header or its Content-Length could not be read.".into(),
            ),
            UriTooLong => (
                414,
                "InvalidParameter.TooLarge",
                "The request URI is too long; send long parameters in a form body.".into(),
            ),
            HeadersTooLarge => (
                431,
                "InvalidParameter.TooLarge",
                "The request has too many headers (at most 100) or they are too large.".into(),
            ),
            AccessKeyNotFound => (
                404,
                "InvalidAccessKeyId.NotFound",
                "Specified access key is not found.".into(),
            ),
            AccessKeyInactive => (
                400,
                "InvalidAccessKeyId.Inactive",
                "Specified access key is disabled.".into(),
            ),
            SignatureDoesNotMatch { string_to_sign } => (
                400,
                "SignatureDoesNotMatch",
                format!(
                    "Specified signature is not matched with our calculation. server string to sign is:{string_to_sign}"
                ),
            ),
            ContentHashMismatch => (
                400,
                "SignatureDoesNotMatch",
                "Specified signature is not matched with our calculation: x-acs-content-sha256 does not match the request body.".into(),
            ),
            IncompleteSignature(detail) => (
                400,
                "IncompleteSignature",
                format!("The request signature does not conform to Aliyun standards. {detail}"),
            ),
            InvalidSignatureMethod => (
                400,
                "InvalidSignatureMethod",
                "Specified signature method is not valid.".into(),
            ),
            InvalidSignatureVersion => (
                400,
                "InvalidSignatureVersion",
                "Specified signature version is not valid.".into(),
            ),
            SignatureNonceUsed => (
                400,
                "SignatureNonceUsed",
                "Specified signature nonce was used already.".into(),
            ),
            TimestampExpired => (
                400,
                "InvalidTimeStamp.Expired",
                "Specified time stamp or date value is expired.".into(),
            ),
            TimestampFormat => (
                400,
                "InvalidTimeStamp.Format",
                "Specified time stamp or date value is not well formatted.".into(),
            ),
            SecurityTokenMalformed => (
                400,
                "InvalidSecurityToken.Malformed",
                "Specified SecurityToken is malformed.".into(),
            ),
            DbClusterNotFound { status } => (
                *status,
                "InvalidDBClusterId.NotFound",
                "The DBClusterId provided does not exist in our records.".into(),
            ),
            Malformed(name) => {
                return (
                    400,
                    format!("Invalid{name}.Malformed"),
                    format!("The specified parameter {name} is not valid."),
                )
            }
            BackupTimesExceeded => (
                403,
                "BackupTimesExceeded",
                "Exceeding the daily backup times of this DB cluster.".into(),
            ),
            IdempotentParameterMismatch => (
                400,
                "IdempotentParameterMismatch",
                "The request uses the same client token as a previous, but non-identical request.".into(),
            ),
            BackupSetNotFound => (
                400,
                "InvalidBackupSetID.NotFound",
                "The specified backup set does not exist.".into(),
            ),
            AutomatedBackupNotDeletable => (
                403,
                "OperationDenied.AutomatedBackup",
                "Automated backups are removed by the backup retention policy and cannot be deleted manually.".into(),
            ),
            BackupDependency { id, children } => (
                403,
                "OperationDenied.BackupDependency",
                format!(
                    "Backup set {id} is the base of incremental backup sets {}; delete them first, or let the retention policy remove them together.",
                    children
                        .iter()
                        .map(u64::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
            ClusterStatus => (
                403,
                "OperationDenied.DBClusterStatus",
                "The operation is not permitted due to status of cluster.".into(),
            ),
            ClusterNotRunning => (
                403,
                "OperationDenied.ClusterStatus",
                "The operation is not permitted due to status of cluster: it is not Running.".into(),
            ),
            OperateStatus => (
                403,
                "OperationDenied.OperateStatus",
                "The operation is not permitted while a backup job of the cluster is queued or running; wait until it ends (DescribeBackupTasks) and try again.".into(),
            ),
            IncorrectBackupPolicy(field) => {
                return (
                    403,
                    "IncorrectBackupPolicy".into(),
                    format!("{field} configures a feature polarbackup does not provide (level-2, cross-region or advanced backups); only its off value is accepted."),
                )
            }
            BackupLogNotFound => (
                404,
                "InvalidBackupLogId.NotFound",
                "The specified backup log does not exist.".into(),
            ),
            HostUnusable => (
                400,
                "InvalidParameter",
                "The Host header must be host or host:port (the address this service is called at) to build download links.".into(),
            ),
            LinkSignatureMismatch => (
                403,
                "SignatureDoesNotMatch",
                "The signature of the download link is not valid.".into(),
            ),
            LinkExpired => (
                403,
                "AccessDenied",
                "The download link has expired.".into(),
            ),
            BackupModeMalformed => (
                400,
                "InvalidBackupMode.Malformed",
                "The specified parameter BackupMode is not valid.".into(),
            ),
            ForbiddenRam(_) => (
                403,
                "Forbidden.RAM",
                "User not authorized to operate on the specified resource, or this API doesn't support RAM.".into(),
            ),
            Internal => (
                500,
                "InternalError",
                "The request processing has failed due to some unknown error, exception or failure.".into(),
            ),
            ServiceUnavailable => (
                503,
                "ServiceUnavailable",
                "The request has failed due to a temporary failure of the server.".into(),
            ),
        };
        (status, code.to_owned(), message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_codes() {
        assert_eq!(
            ApiError::MissingParameter("DBClusterId").describe(),
            (
                400,
                "MissingDBClusterId".into(),
                "DBClusterId is mandatory for this action.".into()
            )
        );
        assert_eq!(
            ApiError::DbClusterNotFound { status: 400 }.describe(),
            (
                400,
                "InvalidDBClusterId.NotFound".into(),
                "The DBClusterId provided does not exist in our records.".into()
            )
        );
        assert_eq!(ApiError::AccessKeyNotFound.describe().0, 404);
        let (status, code, _) = ApiError::ClusterStatus.describe();
        assert_eq!(
            (status, code.as_str()),
            (403, "OperationDenied.DBClusterStatus")
        );
        assert_eq!(ApiError::InvalidAction.describe().0, 404);
        assert_eq!(
            ApiError::BackupDependency {
                id: 12,
                children: vec![13, 14],
            }
            .describe(),
            (
                403,
                "OperationDenied.BackupDependency".into(),
                "Backup set 12 is the base of incremental backup sets 13, 14; delete them first, \
                 or let the retention policy remove them together."
                    .into()
            )
        );
        let (_, code, msg) = ApiError::SignatureDoesNotMatch {
            string_to_sign: "GET&%2F&A%3D1".into(),
        }
        .describe();
        assert_eq!(code, "SignatureDoesNotMatch");
        assert!(msg.ends_with("server string to sign is:GET&%2F&A%3D1"));
    }

    #[test]
    fn cluster_api_codes() {
        let code = |e: ApiError| {
            let (status, code, _) = e.describe();
            (status, code)
        };
        assert_eq!(
            code(ApiError::ClusterNotRunning),
            (403, "OperationDenied.ClusterStatus".into())
        );
        assert_eq!(
            code(ApiError::OperateStatus),
            (403, "OperationDenied.OperateStatus".into())
        );
        assert_eq!(
            code(ApiError::Malformed(
                "BackupRetentionPolicyOnClusterDeletion"
            )),
            (
                400,
                "InvalidBackupRetentionPolicyOnClusterDeletion.Malformed".into()
            )
        );
        assert_eq!(
            code(ApiError::MissingParameter("RegionId")),
            (400, "MissingRegionId".into())
        );
    }

    #[test]
    fn log_backup_codes() {
        let code = |e: ApiError| {
            let (status, code, _) = e.describe();
            (status, code)
        };
        assert_eq!(
            code(ApiError::Malformed("LogBackupRetentionPeriod")),
            (400, "InvalidLogBackupRetentionPeriod.Malformed".into())
        );
        assert_eq!(
            code(ApiError::Malformed("LogBackupAnotherRegionRetentionPeriod")),
            (
                400,
                "InvalidLogBackupAnotherRegionRetentionPeriod.Malformed".into()
            )
        );
        assert_eq!(
            code(ApiError::BackupLogNotFound),
            (404, "InvalidBackupLogId.NotFound".into())
        );
        assert_eq!(
            code(ApiError::LinkSignatureMismatch),
            (403, "SignatureDoesNotMatch".into())
        );
        assert_eq!(code(ApiError::LinkExpired), (403, "AccessDenied".into()));
        assert_eq!(
            code(ApiError::HostUnusable),
            (400, "InvalidParameter".into())
        );
    }
}
