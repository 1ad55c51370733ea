//! The ways a request can fail authentication.

/// Why a request was refused. Messages never contain a secret.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    /// A V1 signature parameter is absent or empty; the payload is its name.
    #[error("{0} is mandatory for this action.")]
    MissingParameter(&'static str),
    /// The V3 signature parts are malformed or incomplete; the payload says what.
    #[error("The request signature does not conform to Aliyun standards: {0}")]
    IncompleteSignature(String),
    #[error("Specified signature method is not valid.")]
    InvalidSignatureMethod,
    #[error("Specified signature version is not valid.")]
    InvalidSignatureVersion,
    #[error("Specified time stamp or date value is not well formatted.")]
    TimestampFormat,
    #[error("Specified time stamp or date value is expired.")]
    TimestampExpired,
    #[error("Specified access key is not found.")]
    KeyNotFound,
    #[error("Specified access key is disabled.")]
    KeyInactive,
    /// The signature does not match; `string_to_sign` is the server's own, for
    /// the client to compare against (old SDKs do exactly that).
    #[error("Specified signature is not matched with our calculation.")]
    SignatureMismatch { string_to_sign: String },
    /// V3: `x-acs-content-sha256` is not the hash of the received body.
    #[error("The x-acs-content-sha256 header does not match the request body.")]
    ContentHashMismatch,
}
