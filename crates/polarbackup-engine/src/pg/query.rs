//! `ResultSet`: the text-format rows that replication commands answer with.

use fallible_iterator::FallibleIterator;
use postgres_protocol::message::backend::{DataRowBody, RowDescriptionBody};

use super::error::PgError;

/// One result set of a simple query: column names, rows of text values (NULL as `None`), and the command tag.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResultSet {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
    pub tag: String,
}

impl ResultSet {
    /// The value of column `name` in row `row`; `None` for NULL, a missing row or a missing column.
    pub fn get(&self, row: usize, name: &str) -> Option<&str> {
        let col = self.columns.iter().position(|c| c == name)?;
        self.rows.get(row)?.get(col)?.as_deref()
    }

    /// Like `get`, but a missing value is a protocol error naming what the command lacked.
    pub(crate) fn require(&self, row: usize, name: &str, what: &str) -> Result<&str, PgError> {
        self.get(row, name).ok_or_else(|| {
            PgError::protocol(format!("{what}: no value for column {name:?} in row {row}"))
        })
    }
}

/// Accumulates RowDescription and DataRows until CommandComplete. Values stay raw bytes until
/// `finish`, so a command whose answer is a file (TIMELINE_HISTORY) can have it byte for byte.
pub(crate) struct ResultSetBuilder {
    columns: Vec<String>,
    rows: Vec<Vec<Option<Vec<u8>>>>,
}

impl ResultSetBuilder {
    pub fn new(desc: &RowDescriptionBody) -> Result<ResultSetBuilder, PgError> {
        let columns = desc
            .fields()
            .map(|f| Ok(f.name().to_string()))
            .collect::<Vec<_>>()?;
        Ok(ResultSetBuilder {
            columns,
            rows: Vec::new(),
        })
    }

    pub fn push(&mut self, row: &DataRowBody) -> Result<(), PgError> {
        let buf = row.buffer();
        let values = row
            .ranges()
            .map(|r| Ok(r.map(|r| buf[r].to_vec())))
            .collect::<Vec<_>>()?;
        if values.len() != self.columns.len() {
            return Err(PgError::protocol(format!(
                "DataRow has {} values for {} columns",
                values.len(),
                self.columns.len()
            )));
        }
        self.rows.push(values);
        Ok(())
    }

    pub fn finish(self, tag: String) -> ResultSet {
        let rows = self
            .rows
            .into_iter()
            .map(|row| {
                row.into_iter()
                    .map(|v| v.map(|v| String::from_utf8_lossy(&v).into_owned()))
                    .collect()
            })
            .collect();
        ResultSet {
            columns: self.columns,
            rows,
            tag,
        }
    }

    /// The column names and the rows with their values as sent.
    pub fn finish_raw(self) -> RawResultSet {
        RawResultSet {
            columns: self.columns,
            rows: self.rows,
        }
    }
}

/// A result set with its values as the server sent them.
pub(crate) struct RawResultSet {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Option<Vec<u8>>>>,
}

impl RawResultSet {
    /// The value of column `name` in row `row`; `None` for NULL or a missing row or column.
    pub fn get(&self, row: usize, name: &str) -> Option<&[u8]> {
        let col = self.columns.iter().position(|c| c == name)?;
        self.rows.get(row)?.get(col)?.as_deref()
    }
}

/// Parses a numeric column, naming the command in the error.
pub(crate) fn parse_num<T: std::str::FromStr>(s: &str, what: &str) -> Result<T, PgError> {
    s.parse()
        .map_err(|_| PgError::protocol(format!("{what}: {s:?} is not a number")))
}
