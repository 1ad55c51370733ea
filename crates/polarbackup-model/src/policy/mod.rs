//! The automated-backup policy of a cluster: its data model, the validation of ModifyBackupPolicy
//! parameters, the schedule math and the retention rule. Pure: no IO, no clock reads.
//!
//! * [`BackupPolicy`] is what DescribeBackupPolicy shows; new clusters get [`BackupPolicy::default`].
//! * [`PolicyChange::parse`] turns ModifyBackupPolicy's string parameters into a checked partial update,
//!   or a [`PolicyFieldError`] naming the offending field; [`BackupPolicy::apply`] applies it.
//! * [`slots_between`], [`next_slot_after`] and [`due_slot`] place automated backups in time.
//! * [`kind_for_slot`] decides whether an automated backup is full or incremental
//!   ([`FullBackupEvery`]).
//! * [`expired`] decides which backup sets the retention period removes, and [`spare_parents`]
//!   keeps those that a kept incremental set still needs.

mod backup_policy;
mod retention;
mod schedule;
mod validate;

pub use backup_policy::{
    BackupFrequency, BackupPolicy, BackupWindow, RetentionDays, RetentionOnClusterDeletion,
    WeekdaySet,
};
pub use retention::{expired, spare_parents};
pub use schedule::{
    due_slot, format_next_backup_time, is_catch_up, kind_for_slot, last_slot_at_or_before,
    next_slot_after, preferred_next_backup_time, slots_between, window_end, FullBackupEvery,
    SLOT_WINDOW,
};
pub use validate::{level2_retention, PolicyChange, PolicyFieldError};
