//! Format predicates the tests assert with: RequestId, timestamps, numeric strings.

/// An upper-case UUID such as `FA8C1EF1-E3D4-44D7-B809-823187A1B2C3`.
pub fn is_request_id(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups.iter().map(|g| g.len()).eq([8usize, 4, 4, 4, 12])
        && groups.iter().all(|g| {
            g.chars()
                .all(|c| c.is_ascii_digit() || ('A'..='F').contains(&c))
        })
}

/// UTC to the second: `YYYY-MM-DDThh:mm:ssZ`.
pub fn is_utc_seconds(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 20
        && b.iter().enumerate().all(|(i, &c)| match i {
            4 | 7 => c == b'-',
            10 => c == b'T',
            13 | 16 => c == b':',
            19 => c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

/// A non-empty string of ASCII digits.
pub fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids() {
        assert!(is_request_id("FA8C1EF1-E3D4-44D7-B809-823187A1B2C3"));
        assert!(!is_request_id("fa8c1ef1-e3d4-44d7-b809-823187a1b2c3"));
        assert!(!is_request_id("FA8C1EF1E3D444D7B809823187A1B2C3"));
        assert!(!is_request_id("FA8C1EF1-E3D4-44D7-B809-823187A1B2C"));
    }

    #[test]
    fn timestamps() {
        assert!(is_utc_seconds("2020-08-08T07:24:01Z"));
        assert!(!is_utc_seconds("2020-08-08T07:24Z"));
        assert!(!is_utc_seconds("2020-08-08T07:24:01.000Z"));
        assert!(!is_utc_seconds("2020-08-08 07:24:01Z"));
    }

    #[test]
    fn digits() {
        assert!(is_digits("11111111"));
        assert!(!is_digits(""));
        assert!(!is_digits("12a"));
    }
}
