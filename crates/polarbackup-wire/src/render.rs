//! Rendering a response body as JSON or as PolarDB's XML.

use crate::ApiError;
use polarbackup_model::BackupJob;
use quick_xml::escape::escape;
use serde_json::{Map, Value};

/// The body format a client asked for with `Format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Json,
    Xml,
}

impl Format {
    /// `Format` is case-insensitive; absent means JSON (what every SDK expects).
    pub fn parse(value: Option<&str>) -> Result<Self, ApiError> {
        match value {
            None => Ok(Self::Json),
            Some(v) if v.eq_ignore_ascii_case("json") => Ok(Self::Json),
            Some(v) if v.eq_ignore_ascii_case("xml") => Ok(Self::Xml),
            Some(_) => Err(ApiError::InvalidFormat),
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            // The Tea SDKs parse XML errors only under exactly this content type.
            Self::Json => "application/json;charset=utf-8",
            Self::Xml => "text/xml;charset=utf-8",
        }
    }
}

/// A finished body: status, content type and bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

/// What a handler answers: the members of its success body, or, for DescribeBackupTasks, the
/// jobs, which are rendered straight to bytes ([`crate::describe_backup_tasks::render`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Members(Map<String, Value>),
    BackupJobs(Vec<BackupJob>),
}

impl From<Map<String, Value>> for Answer {
    fn from(members: Map<String, Value>) -> Self {
        Self::Members(members)
    }
}

/// A handler's answer as the success body of `action`.
pub fn answer(action: &str, request_id: &str, answer: Answer, format: Format) -> Rendered {
    match answer {
        Answer::Members(body) => success(action, request_id, body, format),
        Answer::BackupJobs(jobs) => Rendered {
            status: 200,
            content_type: format.content_type(),
            body: crate::describe_backup_tasks::render(request_id, &jobs, format),
        },
    }
}

/// A success body for `action`: `body` must be an object; RequestId goes first.
pub fn success(
    action: &str,
    request_id: &str,
    body: Map<String, Value>,
    format: Format,
) -> Rendered {
    let mut full = Map::new();
    full.insert("RequestId".into(), Value::String(request_id.into()));
    full.extend(body);
    let root = format!("{action}Response");
    Rendered {
        status: 200,
        content_type: format.content_type(),
        body: render(&root, &full, format),
    }
}

/// An error body with the gateway's five string fields.
pub fn error(err: &ApiError, request_id: &str, host_id: &str, format: Format) -> Rendered {
    let (status, code, message) = err.describe();
    let recommend = format!(
        "https://api.aliyun.com/troubleshoot?q={code}&product=polardb&requestId={request_id}"
    );
    let mut map = Map::new();
    for (k, v) in [
        ("RequestId", request_id.to_owned()),
        ("HostId", host_id.to_owned()),
        ("Code", code),
        ("Message", message),
        ("Recommend", recommend),
    ] {
        map.insert(k.into(), Value::String(v));
    }
    if let ApiError::ForbiddenRam(detail) = err {
        map.insert("AccessDeniedDetail".into(), detail.to_json());
    }
    Rendered {
        status,
        content_type: format.content_type(),
        body: render("Error", &map, format),
    }
}

fn render(root: &str, body: &Map<String, Value>, format: Format) -> String {
    match format {
        Format::Json => Value::Object(body.clone()).to_string(),
        Format::Xml => {
            let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
            xml_element(&mut out, root, &Value::Object(body.clone()));
            out
        }
    }
}

/// JSON → XML the way the POP gateway does it: an object's members become child elements and
/// an array repeats its parent's element name once per item.
fn xml_element(out: &mut String, name: &str, value: &Value) {
    match value {
        Value::Array(items) => {
            for item in items {
                xml_element(out, name, item);
            }
        }
        Value::Object(members) => {
            out.push_str(&format!("<{name}>"));
            for (k, v) in members {
                xml_element(out, k, v);
            }
            out.push_str(&format!("</{name}>"));
        }
        Value::Null => out.push_str(&format!("<{name}></{name}>")),
        Value::String(s) => out.push_str(&format!("<{name}>{}</{name}>", escape(s.as_str()))),
        other => out.push_str(&format!("<{name}>{other}</{name}>")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn format_is_case_insensitive() {
        assert_eq!(Format::parse(Some("xMl")), Ok(Format::Xml));
        assert_eq!(Format::parse(Some("json")), Ok(Format::Json));
        assert_eq!(Format::parse(None), Ok(Format::Json));
        assert_eq!(Format::parse(Some("yaml")), Err(ApiError::InvalidFormat));
    }

    #[test]
    fn xml_shape_repeats_array_elements() {
        let body = json!({"Items": {"BackupJob": [{"Process": "0"}, {"Process": "5<"}]}});
        let r = success(
            "DescribeBackupTasks",
            "RID",
            body.as_object().cloned().unwrap_or_default(),
            Format::Xml,
        );
        assert_eq!(r.content_type, "text/xml;charset=utf-8");
        assert_eq!(
            r.body,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><DescribeBackupTasksResponse><RequestId>RID</RequestId><Items><BackupJob><Process>0</Process></BackupJob><BackupJob><Process>5&lt;</Process></BackupJob></Items></DescribeBackupTasksResponse>"
        );
    }

    #[test]
    fn json_error_has_five_string_fields() {
        let r = error(
            &ApiError::BackupModeMalformed,
            "RID",
            "polardb.aliyuncs.com",
            Format::Json,
        );
        let v: Value = serde_json::from_str(&r.body).expect("json");
        let o = v.as_object().expect("object");
        assert_eq!(o.len(), 5);
        assert!(o.values().all(Value::is_string));
        assert_eq!(o["Code"], "InvalidBackupMode.Malformed");
        assert_eq!(r.status, 400);
    }

    #[test]
    fn ram_denials_carry_access_denied_detail() {
        let err = ApiError::ForbiddenRam(Box::new(crate::error::AccessDenied {
            auth_action: "polardb:CreateBackup".into(),
            principal_owner_id: "1234567890123456".into(),
            principal_display_name: "2234567890123456".into(),
            no_permission_type: "ImplicitDeny".into(),
            encoded_diagnostic_message: "PBD1.x.y".into(),
        }));
        let r = error(&err, "RID", "h", Format::Json);
        assert_eq!(r.status, 403);
        let v: Value = serde_json::from_str(&r.body).expect("json");
        assert_eq!(v["Code"], "Forbidden.RAM");
        assert_eq!(v["AccessDeniedDetail"]["AuthPrincipalType"], "SubUser");
        assert_eq!(
            v["AccessDeniedDetail"]["PolicyType"],
            "AccountLevelIdentityBasedPolicy"
        );
        assert_eq!(v["AccessDeniedDetail"]["NoPermissionType"], "ImplicitDeny");
    }

    #[test]
    fn xml_error_root() {
        let r = error(&ApiError::InvalidAction, "RID", "h", Format::Xml);
        assert!(r.body.contains("<Error><RequestId>RID</RequestId><HostId>h</HostId><Code>InvalidAction.NotFound</Code>"));
        assert_eq!(r.status, 404);
    }
}
