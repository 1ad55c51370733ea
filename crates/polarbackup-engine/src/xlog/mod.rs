//! A reader of PostgreSQL's write-ahead log (13 and later): page headers, records assembled
//! across pages and checked like PostgreSQL checks them, and the fragments of each record. The
//! point-in-time restore uses it to find the commit and abort times replay will meet.

mod crc32c;
mod page;
mod reader;
#[cfg(test)]
mod reader_tests;
mod record;
mod source;
#[cfg(test)]
mod testwal;

pub use reader::{segment_geometry, Geometry, Step, WalEnd, WalReader};
pub use record::{pg_timestamp, BlockRef, Record, XactEnd, XactEndKind, RM_XACT_ID, RM_XLOG_ID};
pub use source::{MemoryWal, WalSource};
