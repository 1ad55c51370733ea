//! DescribeBackupTasks: request validation and the response shape (API.md §3.1).

use crate::{format_time, ApiError, Format, Params};
use polarbackup_model::{BackupJob, JobMode};
use quick_xml::escape::escape;
use serde_json::{json, Map, Value};
use std::fmt::Write as _;

/// A validated request. The cluster id is kept as sent: an id of the wrong shape is simply a
/// cluster that does not exist, and must be reported exactly like one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub cluster_id: String,
    pub job: JobSelector,
    pub mode: Option<JobMode>,
}

pub use crate::params::IdSelector as JobSelector;

impl Request {
    pub fn parse(p: &Params) -> Result<Self, ApiError> {
        let cluster_id = p.required("DBClusterId")?.to_owned();
        let mode = p
            .get("BackupMode")
            .map(|m| {
                m.parse::<JobMode>()
                    .map_err(|()| ApiError::BackupModeMalformed)
            })
            .transpose()?;
        let job = p.id_filter("BackupJobId");
        Ok(Self {
            cluster_id,
            job,
            mode,
        })
    }
}

/// The status InvalidDBClusterId.NotFound has for this action (400, unlike most others).
pub const CLUSTER_NOT_FOUND: ApiError = ApiError::DbClusterNotFound { status: 400 };

/// `{"Items":{"BackupJob":[...]}}`, every field a string.
pub fn response(jobs: &[BackupJob]) -> Map<String, Value> {
    let items: Vec<Value> = jobs
        .iter()
        .map(|j| {
            json!({
                "StartTime": format_time(j.start_time),
                "Process": j.process.to_string(),
                "BackupJobId": j.id.to_string(),
                "JobMode": j.mode.as_str(),
                "BackupProgressStatus": j.status.as_str(),
                "TaskAction": j.action.as_str(),
            })
        })
        .collect();
    let mut body = Map::new();
    body.insert("Items".into(), json!({ "BackupJob": items }));
    body
}

/// The success body straight to bytes: byte for byte what [`crate::render::success`] makes of
/// [`response`]'s members (the test below holds them together), without building the
/// `serde_json::Value` tree. DescribeBackupTasks is the call the API answers most; the tree
/// and its rendering were about a seventh of its CPU.
pub fn render(request_id: &str, jobs: &[BackupJob], format: Format) -> String {
    let mut out = Vec::with_capacity(128 + 224 * jobs.len());
    let mut scratch = String::with_capacity(24);
    match format {
        Format::Json => {
            out.extend_from_slice(b"{\"RequestId\":");
            json_str(&mut out, request_id);
            out.extend_from_slice(b",\"Items\":{\"BackupJob\":[");
            for (i, job) in jobs.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                let mut open = b'{';
                each_field(job, &mut scratch, |name, value| {
                    // Member names are this file's constants, none with a byte to escape.
                    out.push(open);
                    open = b',';
                    out.push(b'"');
                    out.extend_from_slice(name.as_bytes());
                    out.extend_from_slice(b"\":");
                    json_str(&mut out, value);
                });
                out.push(b'}');
            }
            out.extend_from_slice(b"]}}");
        }
        Format::Xml => {
            out.extend_from_slice(
                b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><DescribeBackupTasksResponse>",
            );
            xml_field(&mut out, "RequestId", request_id);
            out.extend_from_slice(b"<Items>");
            for job in jobs {
                out.extend_from_slice(b"<BackupJob>");
                each_field(job, &mut scratch, |name, value| {
                    xml_field(&mut out, name, value)
                });
                out.extend_from_slice(b"</BackupJob>");
            }
            out.extend_from_slice(b"</Items></DescribeBackupTasksResponse>");
        }
    }
    // Only whole `str`s were written, so this never takes the lossy path.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// A job's members in [`response`]'s order, each value as the string it renders as.
fn each_field(job: &BackupJob, scratch: &mut String, mut f: impl FnMut(&str, &str)) {
    scratch.clear();
    push_time(scratch, job.start_time);
    f("StartTime", scratch);
    scratch.clear();
    let _ = write!(scratch, "{}", job.process);
    f("Process", scratch);
    scratch.clear();
    let _ = write!(scratch, "{}", job.id);
    f("BackupJobId", scratch);
    f("JobMode", job.mode.as_str());
    f("BackupProgressStatus", job.status.as_str());
    f("TaskAction", job.action.as_str());
}

/// [`format_time`] without parsing its format on every call (years 0 to 9999; any other
/// goes through it).
fn push_time(out: &mut String, t: jiff::Timestamp) {
    let dt = jiff::tz::Offset::UTC.to_datetime(t);
    let year = dt.year();
    if !(0..=9999).contains(&year) {
        out.push_str(&format_time(t));
        return;
    }
    let digits = |out: &mut String, n: i16, width: u32| {
        for p in (0..width).rev() {
            out.push(char::from(b'0' + (n / 10i16.pow(p) % 10) as u8));
        }
    };
    digits(out, year, 4);
    out.push('-');
    digits(out, dt.month().into(), 2);
    out.push('-');
    digits(out, dt.day().into(), 2);
    out.push('T');
    digits(out, dt.hour().into(), 2);
    out.push(':');
    digits(out, dt.minute().into(), 2);
    out.push(':');
    digits(out, dt.second().into(), 2);
    out.push('Z');
}

/// A JSON string literal exactly as `serde_json` writes a `Value::String`.
fn json_str(out: &mut Vec<u8>, s: &str) {
    // serde_json escapes only these, which no value here (times, numbers, ids, names) has.
    // Tested a chunk at a time without an early exit, so the test is vectorized.
    let escaped = |c: &[u8]| {
        c.iter().fold(false, |any, &b| {
            any | (b < 0x20) | (b == b'"') | (b == b'\\')
        })
    };
    if !s.as_bytes().chunks(32).any(escaped) {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
        return;
    }
    // Writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// `<name>value</name>`, the value escaped as [`crate::render`] escapes strings.
fn xml_field(out: &mut Vec<u8>, name: &str, value: &str) {
    out.push(b'<');
    out.extend_from_slice(name.as_bytes());
    out.push(b'>');
    out.extend_from_slice(escape(value).as_bytes());
    out.extend_from_slice(b"</");
    out.extend_from_slice(name.as_bytes());
    out.push(b'>');
}

#[cfg(test)]
mod tests {
    use super::*;
    use polarbackup_model::{BackupJobId, DbClusterId, TaskAction};

    fn parse(q: &str) -> Result<Request, ApiError> {
        Request::parse(&Params::decode(q, None))
    }

    #[test]
    fn validation() {
        assert_eq!(parse(""), Err(ApiError::MissingParameter("DBClusterId")));
        assert_eq!(
            parse("DBClusterId="),
            Err(ApiError::MissingParameter("DBClusterId"))
        );
        assert_eq!(
            parse("DBClusterId=pc-x&BackupMode=manual"),
            Err(ApiError::BackupModeMalformed)
        );
        assert_eq!(
            parse("DBClusterId=pc-x&BackupMode="),
            Err(ApiError::BackupModeMalformed)
        );
        let r = parse("DBClusterId=pc-x&BackupMode=Manual&BackupJobId=42&OwnerId=1&RegionId=cn")
            .expect("ok");
        assert_eq!(r.mode, Some(JobMode::Manual));
        assert_eq!(r.job, JobSelector::One(BackupJobId(42)));
        assert_eq!(
            parse("DBClusterId=pc-x&BackupJobId=abc").expect("ok").job,
            JobSelector::Nothing
        );
        assert_eq!(parse("DBClusterId=pc-x").expect("ok").job, JobSelector::All);
    }

    #[test]
    fn response_fields_are_strings() {
        let job = BackupJob::new(
            BackupJobId(11111111),
            DbClusterId::parse("pc-abcdefghij12345").expect("id"),
            JobMode::Automated,
            TaskAction::NormalBackupTask,
            jiff::Timestamp::from_second(1_596_871_441).expect("t"),
        );
        let body = Value::Object(response(&[job]));
        assert_eq!(
            body,
            json!({"Items":{"BackupJob":[{"StartTime":"2020-08-08T07:24:01Z","Process":"0","BackupJobId":"11111111","JobMode":"Automated","BackupProgressStatus":"NoStart","TaskAction":"NormalBackupTask"}]}})
        );
        assert_eq!(
            Value::Object(response(&[])),
            json!({"Items":{"BackupJob":[]}})
        );
    }

    /// The direct rendering is the generic one's bytes, in both formats, escaping included.
    #[test]
    fn rendering_straight_to_bytes_matches_the_generic_rendering() {
        let cluster = DbClusterId::parse("pc-abcdefghij12345").expect("id");
        let at = |s| jiff::Timestamp::from_second(s).expect("t");
        let mut jobs = [
            BackupJob::new(
                BackupJobId(11111111),
                cluster.clone(),
                JobMode::Automated,
                TaskAction::NormalBackupTask,
                at(1_596_871_441),
            ),
            BackupJob::new(
                BackupJobId(u64::MAX),
                cluster.clone(),
                JobMode::Manual,
                TaskAction::TempBackupTask,
                // Year 5 and the last second of a day: padding.
                "0005-03-01T23:59:59.999Z".parse().expect("t"),
            ),
            BackupJob::new(
                BackupJobId(7),
                cluster,
                JobMode::Manual,
                TaskAction::NormalBackupTask,
                "9999-12-30T21:59:59Z".parse().expect("t"),
            ),
        ];
        jobs[0].process = 100;
        jobs[2].process = 9;
        let ids = [
            "0F5A92D0-1C2B-4A3E-9F00-ABCDEF012345",
            "quote\" back\\ <tag> & 'apos' \u{1} \n\t é ✓",
            // Escapes only past the first 32 bytes, which are tested together.
            "0F5A92D0-1C2B-4A3E-9F00-ABCDEF012345 \"late\" \u{1f}",
            "",
        ];
        for format in [Format::Json, Format::Xml] {
            for rid in ids {
                for n in 0..=jobs.len() {
                    let generic = crate::render::success(
                        "DescribeBackupTasks",
                        rid,
                        response(&jobs[..n]),
                        format,
                    );
                    assert_eq!(
                        render(rid, &jobs[..n], format),
                        generic.body,
                        "{format:?}, {n} jobs"
                    );
                }
            }
        }
    }
}
