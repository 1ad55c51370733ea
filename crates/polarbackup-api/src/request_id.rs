//! RequestIds: random (version 4) UUIDs in upper case, as the cloud answers them.

/// A fresh RequestId. The bytes come from the thread's CSPRNG (ChaCha, seeded from the OS),
/// not from a `getrandom` system call per request as `Uuid::new_v4` makes.
pub(crate) fn new() -> String {
    let id = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    id.hyphenated().encode_upper(&mut buf).to_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_upper_case_v4_uuids_and_differ() {
        let (a, b) = (super::new(), super::new());
        assert_ne!(a, b);
        let parsed = uuid::Uuid::parse_str(&a).expect("a UUID");
        assert_eq!(parsed.get_version_num(), 4);
        assert_eq!(parsed.get_variant(), uuid::Variant::RFC4122);
        assert_eq!(a, a.to_uppercase());
        assert_eq!(a.len(), 36);
    }
}
