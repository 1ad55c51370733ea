//! The store contract: every case runs on every backend, as `<backend>::<case>`. A new backend
//! is a [`common::Backend`] and one `store_contract!` line at the end of this file.

mod common;
mod concurrency;
mod deletion;
mod incremental;
mod leases;
mod lifecycle;
mod policy;
mod ram;
mod records;
mod secrets;
mod verification;
mod wal;

/// `store_contract!(name, backend)`: a module `name` with one `#[test]` per case, each on a
/// fresh database of `backend`.
#[macro_export]
macro_rules! store_contract {
    ($name:ident, $backend:expr) => {
        mod $name {
            $crate::store_contract!(@cases $backend;
                records::keys_round_trip_and_toggle,
                records::job_ids_increase_across_reopen,
                records::listing_filters_orders_and_hides_history,
                records::job_counts_cover_every_cluster_and_status_in_one_read,
                records::updates_never_move_a_job_backwards,
                records::nonces_are_single_use_until_they_expire,
                records::caller_records_show_every_change_at_once,
                records::job_listing_shows_every_change_at_once,
                records::a_listing_read_with_a_mark_shows_what_came_before_it,
                records::concurrent_writers_share_one_database,
                ram::users_keys_policies_and_attachments,
                ram::caller_records_read_key_user_policies_and_cluster_together,
                lifecycle::client_tokens_are_idempotent_and_bound_to_their_parameters,
                lifecycle::at_most_three_manual_backups_exist_at_once,
                lifecycle::one_lease_per_cluster_and_abandoned_jobs_are_found,
                lifecycle::sets_are_listed_filtered_and_paged_newest_first,
                lifecycle::ending_needs_a_terminal_job_and_never_moves_back,
                lifecycle::a_set_keeps_its_place_in_the_wal,
                policy::a_new_cluster_has_the_default_policy_and_a_schedule_from_now,
                policy::a_change_applies_only_the_fields_it_carries,
                policy::a_slot_is_scheduled_once_and_never_an_earlier_one,
                policy::cluster_creation_is_all_or_nothing,
                deletion::a_queued_or_running_job_refuses_the_deletion_and_nothing_changes,
                deletion::once_deleting_no_backup_policy_or_deletion_can_start,
                deletion::none_hides_every_set_for_deletion_and_releases_the_cluster,
                deletion::all_detaches_every_finished_set_and_detached_sets_never_expire,
                deletion::latest_keeps_only_the_final_backup_once_it_finishes,
                deletion::latest_is_aborted_by_a_failed_final_backup_and_deletes_nothing,
                deletion::jobs_racing_a_deletion_never_land_after_it,
                concurrency::job_ids_increase_and_are_never_reused_across_handles,
                concurrency::the_manual_limit_holds_under_concurrent_callers,
                concurrency::a_client_token_creates_one_job_under_concurrent_callers,
                concurrency::two_stores_schedule_each_slot_exactly_once,
                concurrency::a_nonce_is_accepted_once_under_concurrent_callers,
                concurrency::a_nonce_is_accepted_once_by_threads_sharing_a_handle,
                concurrency::a_stale_writer_never_moves_a_job_backwards,
                concurrency::concurrent_policy_changes_lose_no_field,
                leases::only_the_lease_holder_writes_a_job,
                leases::a_stale_worker_writes_nothing_once_recovery_took_its_job,
                leases::a_stale_end_and_concurrent_recoveries_have_one_winner,
                concurrency::a_policy_change_racing_a_deletion_lands_before_it_or_not_at_all,
                wal::a_new_cluster_keeps_seven_days_of_logs_and_a_change_is_kept,
                wal::a_deleted_cluster_refuses_log_policy_changes_and_archivers,
                wal::the_archiver_lease_is_exclusive_until_it_lapses,
                wal::one_archiver_wins_a_concurrent_claim,
                wal::recording_needs_the_archiver_lease,
                wal::a_partial_is_replaced_by_a_longer_one_and_then_by_the_segment,
                wal::log_pages_filter_by_time_and_count_every_match,
                wal::removed_objects_come_back_once,
                wal::wal_ids_increase_and_are_never_reused,
                wal::gaps_round_trip_oldest_first_and_read_with_the_rest_in_one_snapshot,
                wal::wal_and_gap_times_keep_their_microseconds,
                wal::the_cluster_apis_list_a_deleted_cluster_until_its_release_is_done,
                wal::the_recovery_overview_reads_every_running_cluster_with_its_available_sets,
                secrets::stored_secrets_are_sealed_and_read_back_in_clear,
                secrets::a_store_opened_with_another_key_is_refused,
                secrets::plaintext_left_by_an_older_version_is_sealed_at_open,
                secrets::rotation_reseals_every_secret_and_only_the_new_key_opens,
                verification::a_corrupt_set_is_unavailable_with_its_first_reason,
                verification::the_scrub_claims_the_longest_unverified_set_once_until_its_claim_lapses,
                verification::one_scrubber_wins_a_concurrent_claim,
                incremental::kind_and_parent_round_trip,
                incremental::a_manual_job_takes_the_kind_asked_for,
                incremental::the_full_backup_setting_needs_a_running_cluster,
                incremental::a_parent_is_not_deleted_while_a_child_remains,
                incremental::a_released_chain_is_deleted_together_or_tip_first,
                incremental::cluster_deletion_still_removes_every_set,
                incremental::retention_keeps_the_parents_of_a_kept_set,
                incremental::a_broken_chain_keeps_nothing_alive,
            );
        }
    };
    (@cases $backend:expr; $($module:ident :: $case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                let backend = $backend;
                $crate::$module::$case(&backend);
            }
        )*
    };
}

store_contract!(sqlite, crate::common::SqliteBackend::new());
store_contract!(postgres, crate::common::PgBackend::new());
