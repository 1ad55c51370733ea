//! A request's headers as text, copied once into one buffer: what authentication and routing read.

use axum::http::HeaderMap;
use std::ops::Range;

/// Every header name and value, in the order the map yields them, values not in UTF-8 read
/// lossily. One buffer and one index instead of two strings per header: a signed call reads
/// a dozen headers and allocated for each.
#[derive(Debug, Default)]
pub(crate) struct Headers {
    text: String,
    spans: Vec<(Range<usize>, Range<usize>)>,
}

impl Headers {
    pub(crate) fn from_map(map: &HeaderMap) -> Self {
        let size = map.iter().map(|(k, v)| k.as_str().len() + v.len()).sum();
        let mut text = String::with_capacity(size);
        let mut spans = Vec::with_capacity(map.len());
        for (name, value) in map {
            let n = push(&mut text, name.as_str());
            let v = push(&mut text, &String::from_utf8_lossy(value.as_bytes()));
            spans.push((n, v));
        }
        Self { text, spans }
    }

    /// The first value of header `name` (ASCII case-insensitive).
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// Every (name, value), names repeated as received.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.spans
            .iter()
            .map(|(n, v)| (&self.text[n.clone()], &self.text[v.clone()]))
    }

    /// [`Self::iter`] collected, as the verifier takes them.
    pub(crate) fn pairs(&self) -> Vec<(&str, &str)> {
        self.iter().collect()
    }
}

fn push(text: &mut String, s: &str) -> Range<usize> {
    let start = text.len();
    text.push_str(s);
    start..text.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn names_and_values_read_back_in_order_with_repeats_and_lossy_bytes() {
        let mut map = HeaderMap::new();
        map.append(
            "x-acs-action",
            HeaderValue::from_static("DescribeBackupTasks"),
        );
        map.append("x-b", HeaderValue::from_static("1"));
        map.append("x-b", HeaderValue::from_static(""));
        map.append("user-agent", HeaderValue::from_bytes(b"a\xffb").unwrap());
        let h = Headers::from_map(&map);
        assert_eq!(
            h.pairs(),
            [
                ("x-acs-action", "DescribeBackupTasks"),
                ("x-b", "1"),
                ("x-b", ""),
                ("user-agent", "a\u{fffd}b"),
            ]
        );
        assert_eq!(h.get("X-ACS-Action"), Some("DescribeBackupTasks"));
        assert_eq!(h.get("x-b"), Some("1"));
        assert_eq!(h.get("host"), None);
        assert!(Headers::default().pairs().is_empty());
    }
}
