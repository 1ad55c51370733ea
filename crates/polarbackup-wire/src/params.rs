//! Request parameters: the query string plus an `x-www-form-urlencoded` body, decoded.

use polarbackup_model::BackupJobId;

/// What an id filter asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdSelector {
    All,
    One(BackupJobId),
    Nothing,
}

/// All decoded `(name, value)` pairs of one request, query first, then body. Lookups take the
/// first occurrence, so a body cannot override a signed query parameter's meaning.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    pub query: Vec<(String, String)>,
    pub form: Vec<(String, String)>,
}

impl Params {
    /// Decodes a raw query string and (optionally) a form body. `+` is a space, `%XX` a byte;
    /// bytes that are not UTF-8 become U+FFFD (and then fail any signature over them).
    pub fn decode(query: &str, form_body: Option<&[u8]>) -> Self {
        let pairs = |bytes: &[u8]| -> Vec<(String, String)> {
            form_urlencoded::parse(bytes)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        };
        Self {
            query: pairs(query.as_bytes()),
            form: form_body.map(pairs).unwrap_or_default(),
        }
    }

    /// The first value of `name`, exactly as sent (possibly empty).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .chain(&self.form)
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// An optional id filter (`BackupJobId`, `BackupId`): an id that cannot exist matches
    /// nothing, which is an empty list rather than an error.
    pub fn id_filter(&self, name: &str) -> IdSelector {
        match self.get(name) {
            None | Some("") => IdSelector::All,
            Some(id) => BackupJobId::parse(id).map_or(IdSelector::Nothing, IdSelector::One),
        }
    }

    /// A required parameter: absent or empty is `Missing<name>`.
    pub fn required(&self, name: &'static str) -> Result<&str, crate::ApiError> {
        match self.get(name) {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(crate::ApiError::MissingParameter(name)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_plus_percent_and_merges_body() {
        let p = Params::decode(
            "A=1&B=a+b%20c&E=&U=%C3%BC&S=%2B",
            Some(b"A=2&F=x%26y&G=pc-a%20b*c~d%2Fe%2Bf%3Dg%26h!%27()"),
        );
        assert_eq!(p.get("A"), Some("1"), "query wins over body");
        assert_eq!(p.get("B"), Some("a b c"));
        assert_eq!(p.get("E"), Some(""));
        assert_eq!(p.get("U"), Some("ü"));
        assert_eq!(p.get("S"), Some("+"));
        assert_eq!(p.get("F"), Some("x&y"));
        assert_eq!(p.get("G"), Some("pc-a b*c~d/e+f=g&h!'()"));
        assert_eq!(p.get("missing"), None);
        assert_eq!(p.form.len(), 3);
    }

    #[test]
    fn required_treats_empty_as_missing() {
        let p = Params::decode("DBClusterId=&X=1", None);
        assert_eq!(
            p.required("DBClusterId"),
            Err(crate::ApiError::MissingParameter("DBClusterId"))
        );
        assert_eq!(p.required("X"), Ok("1"));
    }

    #[test]
    fn hostile_bytes_do_not_panic() {
        let p = Params::decode(
            "%FF%FE=%C3&&=&%%%=%zz&a=b=c",
            Some(&[0xff, b'=', 0x00, b'&']),
        );
        assert_eq!(p.get("a"), Some("b=c"));
        assert!(p.get("\u{fffd}\u{fffd}").is_some());
    }
}
