//! The automated-backup policy of a cluster: its data model, the validation of ModifyBackupPolicy
//! parameters, the schedule math and the retention rule. Pure: no IO, no clock reads.
//!
//! * [`BackupPolicy`] is what DescribeBackupPolicy shows; new clusters get [`BackupPolicy::default`].
//! * [`PolicyChange::parse`] turns ModifyBackupPolicy's string parameters into a checked partial update,
//!   or a [`PolicyFieldError`] naming the offending field; [`BackupPolicy::apply`] applies it.
//! * [`slots_between`], [`next_slot_after`] and [`due_slot`] place automated backups in time.
//! * [`expired`] decides which backup sets the retention period removes.

mod backup_policy;
mod retention;
mod schedule;
mod validate;

pub use backup_policy::{
    BackupFrequency, BackupPolicy, BackupWindow, RetentionDays, RetentionOnClusterDeletion,
    WeekdaySet,
};
pub use retention::expired;
pub use schedule::{
    due_slot, format_next_backup_time, is_catch_up, last_slot_at_or_before, next_slot_after,
    preferred_next_backup_time, slots_between, window_end, SLOT_WINDOW,
};
pub use validate::{level2_retention, PolicyChange, PolicyFieldError};
