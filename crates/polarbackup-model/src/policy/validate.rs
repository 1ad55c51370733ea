//! ModifyBackupPolicy parameters: strict parsing into a checked partial update, alias handling,
//! and a clear refusal for the level-2, cross-region and advanced features this service lacks.

use super::backup_policy::{
    BackupFrequency, BackupWindow, RetentionDays, RetentionOnClusterDeletion, WeekdaySet,
};
use thiserror::Error;

/// Why a ModifyBackupPolicy parameter was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum PolicyFieldError {
    /// The value is outside the field's documented domain. The API answers 400
    /// `Invalid<field>.Malformed` (see [`PolicyFieldError::code`]). `field` is the name the error
    /// code uses, which is the parameter name except for
    /// `DataLevel2BackupAnotherRegionRetentionPeriod`, whose documented code is
    /// `InvalidDataLevel2AnotherRegionBackupRetentionPeriod.Malformed`.
    #[error("the specified {field} is not valid")]
    Malformed { field: &'static str },
    /// A well-formed value asking for a feature this service does not build (level-2 backup,
    /// cross-region copies, advanced policies). `field` is the parameter name. Suggested answer:
    /// 403 `IncorrectBackupPolicy` ("this policy change is not supported") naming the field.
    #[error("{field} is not supported by this service")]
    Unsupported { field: &'static str },
}

impl PolicyFieldError {
    pub fn field(&self) -> &'static str {
        match self {
            Self::Malformed { field } | Self::Unsupported { field } => field,
        }
    }

    /// The API error code: `Invalid<field>.Malformed`, or `IncorrectBackupPolicy` for an
    /// unsupported feature.
    pub fn code(&self) -> String {
        match self {
            Self::Malformed { field } => format!("Invalid{field}.Malformed"),
            Self::Unsupported { .. } => "IncorrectBackupPolicy".to_owned(),
        }
    }
}

/// A checked partial update of a [`super::BackupPolicy`]: `None` leaves the field as it is.
/// Build it with [`PolicyChange::parse`]; apply it with [`super::BackupPolicy::apply`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PolicyChange {
    /// From `PreferredBackupPeriod` or its alias `DataLevel1BackupPeriod`.
    pub period: Option<WeekdaySet>,
    /// From `PreferredBackupTime` or its alias `DataLevel1BackupTime`.
    pub window: Option<BackupWindow>,
    /// From `BackupFrequency` or its alias `DataLevel1BackupFrequency`.
    pub frequency: Option<BackupFrequency>,
    /// From `DataLevel1BackupRetentionPeriod`.
    pub retention_days: Option<RetentionDays>,
    /// From `BackupRetentionPolicyOnClusterDeletion`.
    pub on_cluster_deletion: Option<RetentionOnClusterDeletion>,
}

impl PolicyChange {
    /// Reads ModifyBackupPolicy's parameters through `get` (parameter name → raw string value,
    /// `None` when absent). Other parameters (`DBClusterId`, common ones) are not looked at.
    ///
    /// * Each legacy field and its `DataLevel1*` alias set the same value. Both present with
    ///   different values (compared after parsing, so day order does not matter) → `Malformed`
    ///   on the `DataLevel1*` one.
    /// * An empty string for a supported field is malformed.
    /// * Fields checked in this order; the first failure is returned: period, time, frequency,
    ///   retention, deletion policy, then the unsupported features.
    /// * Unsupported features: values meaning "off" are accepted as no-ops
    ///   (`DataLevel2BackupRetentionPeriod` and `DataLevel2BackupAnotherRegionRetentionPeriod`
    ///   `"0"`, `BackupPolicyLevel` `Normal`, `DataLevel2BackupPeriod` and
    ///   `DataLevel2BackupAnotherRegionRegion` `""`, `AdvancedDataPolicies` `""` or `[]`, which
    ///   is what DescribeBackupPolicy reports, so a Describe→Modify round trip passes). A value
    ///   inside the documented domain that would turn a feature on → `Unsupported`; a value
    ///   outside it → `Malformed` with the field's documented code.
    pub fn parse<'a>(
        get: impl Fn(&str) -> Option<&'a str>,
    ) -> Result<PolicyChange, PolicyFieldError> {
        let period = aliased(
            &get,
            "PreferredBackupPeriod",
            "DataLevel1BackupPeriod",
            WeekdaySet::parse,
        )?;
        let window = aliased(
            &get,
            "PreferredBackupTime",
            "DataLevel1BackupTime",
            BackupWindow::parse,
        )?;
        let frequency = aliased(
            &get,
            "BackupFrequency",
            "DataLevel1BackupFrequency",
            BackupFrequency::parse,
        )?;
        let retention_days = one(
            &get,
            "DataLevel1BackupRetentionPeriod",
            RetentionDays::parse,
        )?;
        let on_cluster_deletion = one(
            &get,
            "BackupRetentionPolicyOnClusterDeletion",
            RetentionOnClusterDeletion::parse,
        )?;
        check_unsupported(&get)?;
        Ok(PolicyChange {
            period,
            window,
            frequency,
            retention_days,
            on_cluster_deletion,
        })
    }

    /// True when the request changes nothing.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

fn one<'a, T>(
    get: &impl Fn(&str) -> Option<&'a str>,
    field: &'static str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<Option<T>, PolicyFieldError> {
    get(field)
        .map(|v| parse(v).ok_or(PolicyFieldError::Malformed { field }))
        .transpose()
}

fn aliased<'a, T: PartialEq>(
    get: &impl Fn(&str) -> Option<&'a str>,
    legacy: &'static str,
    level1: &'static str,
    parse: impl Fn(&str) -> Option<T> + Copy,
) -> Result<Option<T>, PolicyFieldError> {
    let a = one(get, legacy, parse)?;
    let b = one(get, level1, parse)?;
    match (a, b) {
        (Some(a), Some(b)) if a != b => Err(PolicyFieldError::Malformed { field: level1 }),
        (a, b) => Ok(a.or(b)),
    }
}

/// Level-2 and cross-region retention (backups and logs alike): `0` off, `30..=7300` days,
/// `-1` long-term.
pub fn level2_retention(s: &str) -> Option<i32> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    if digits.is_empty() || digits.len() > 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let v: i32 = s.parse().ok()?;
    (v == 0 || v == -1 || (30..=7300).contains(&v)).then_some(v)
}

fn check_unsupported<'a>(get: &impl Fn(&str) -> Option<&'a str>) -> Result<(), PolicyFieldError> {
    use PolicyFieldError::{Malformed, Unsupported};

    if let Some(v) = get("DataLevel2BackupPeriod") {
        let field = "DataLevel2BackupPeriod";
        if !v.is_empty() {
            return Err(match WeekdaySet::parse(v) {
                Some(_) => Unsupported { field },
                None => Malformed { field },
            });
        }
    }
    if let Some(v) = get("DataLevel2BackupRetentionPeriod") {
        let field = "DataLevel2BackupRetentionPeriod";
        match level2_retention(v) {
            Some(0) => {}
            Some(_) => return Err(Unsupported { field }),
            None => return Err(Malformed { field }),
        }
    }
    if let Some(v) = get("DataLevel2BackupAnotherRegionRegion") {
        if !v.is_empty() {
            return Err(Unsupported {
                field: "DataLevel2BackupAnotherRegionRegion",
            });
        }
    }
    if let Some(v) = get("DataLevel2BackupAnotherRegionRetentionPeriod") {
        match level2_retention(v) {
            Some(0) => {}
            Some(_) => {
                return Err(Unsupported {
                    field: "DataLevel2BackupAnotherRegionRetentionPeriod",
                })
            }
            None => {
                return Err(Malformed {
                    field: "DataLevel2AnotherRegionBackupRetentionPeriod",
                })
            }
        }
    }
    if let Some(v) = get("BackupPolicyLevel") {
        let field = "BackupPolicyLevel";
        match v {
            "Normal" => {}
            "Advanced" => return Err(Unsupported { field }),
            _ => return Err(Malformed { field }),
        }
    }
    if let Some(v) = get("AdvancedDataPolicies") {
        let t = v.trim();
        let empty_list = t
            .strip_prefix('[')
            .and_then(|r| r.strip_suffix(']'))
            .is_some_and(|inner| inner.trim().is_empty());
        if !(t.is_empty() || empty_list) {
            return Err(Unsupported {
                field: "AdvancedDataPolicies",
            });
        }
    }
    Ok(())
}
