//! The built-in, immutable PolarDB system policies, with the contents `RAM.md` A.6 records.
//!
//! The names really are spelled `AliyunPolardb...` (lower-case "db"). Users
//! attach these by name, so the names and statements must not drift.

use std::sync::{Arc, OnceLock};

use super::eval::{AttachedPolicy, PolicyType};
use super::policy::{Limits, Policy};

pub const FULL_ACCESS: &str = "AliyunPolardbFullAccess";
pub const READ_ONLY_ACCESS: &str = "AliyunPolardbReadOnlyAccess";

const FULL_ACCESS_DOCUMENT: &str = r#"{
  "Version": "1",
  "Statement": [
    {
      "Action": "polardb:*",
      "Resource": "*",
      "Effect": "Allow"
    },
    {
      "Action": ["hdm:*", "dbs:*"],
      "Resource": "acs:polardb:*:*:*",
      "Effect": "Allow"
    },
    {
      "Action": ["vpc:DescribeVpcs", "vpc:DescribeVSwitches"],
      "Resource": "*",
      "Effect": "Allow"
    },
    {
      "Action": "dms:LoginDatabase",
      "Resource": "acs:polardb:*:*:*",
      "Effect": "Allow"
    },
    {
      "Action": "bss:ModifyAgreementRecord",
      "Resource": "*",
      "Effect": "Allow"
    },
    {
      "Action": "ram:CreateServiceLinkedRole",
      "Resource": "*",
      "Effect": "Allow",
      "Condition": {
        "StringEquals": {
          "ram:ServiceName": "polardb.aliyuncs.com"
        }
      }
    }
  ]
}
"#;

const READ_ONLY_ACCESS_DOCUMENT: &str = r#"{
  "Version": "1",
  "Statement": [
    {
      "Action": "polardb:Describe*",
      "Resource": "*",
      "Effect": "Allow"
    },
    {
      "Action": [
        "dbs:Get*",
        "dbs:Describe*",
        "dbs:Query*",
        "dbs:Support*",
        "hdm:Get*",
        "hdm:Describe*",
        "hdm:Query*",
        "hdm:Support*"
      ],
      "Resource": "acs:polardb:*:*:*",
      "Effect": "Allow"
    }
  ]
}
"#;

const DOCUMENTS: [(&str, &str); 2] = [
    (FULL_ACCESS, FULL_ACCESS_DOCUMENT),
    (READ_ONLY_ACCESS, READ_ONLY_ACCESS_DOCUMENT),
];

/// The document text of a system policy, for display (`admin policy list`).
pub fn system_policy_document(name: &str) -> Option<&'static str> {
    DOCUMENTS.iter().find(|(n, _)| *n == name).map(|(_, d)| *d)
}

/// Every system policy, compiled once and shared.
pub fn system_policies() -> Vec<AttachedPolicy> {
    static COMPILED: OnceLock<Vec<AttachedPolicy>> = OnceLock::new();
    COMPILED
        .get_or_init(|| {
            DOCUMENTS
                .iter()
                .map(|(name, doc)| AttachedPolicy {
                    name: (*name).to_owned(),
                    policy_type: PolicyType::System,
                    // The documents are constants checked by the tests below.
                    policy: Arc::new(
                        Policy::parse_with(doc, &Limits::SYSTEM_POLICY)
                            .expect("system policy is valid"),
                    ),
                })
                .collect()
        })
        .clone()
}

/// The system policy called exactly `name` (names are case-sensitive).
pub fn system_policy(name: &str) -> Option<AttachedPolicy> {
    system_policies().into_iter().find(|p| p.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_documents_parse_with_the_expected_statement_counts() {
        let counts: Vec<_> = system_policies()
            .iter()
            .map(|p| (p.name.clone(), p.policy.statements().len()))
            .collect();
        assert_eq!(
            counts,
            [
                (FULL_ACCESS.to_owned(), 6),
                (READ_ONLY_ACCESS.to_owned(), 2)
            ]
        );
        assert!(system_policy("AliyunPolarDBFullAccess").is_none());
        assert!(system_policy_document(READ_ONLY_ACCESS).is_some());
    }
}
