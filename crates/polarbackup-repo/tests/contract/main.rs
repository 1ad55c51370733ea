//! The repository contract: what every storage backend under `Repo` must give, checked
//! through the `Operator` alone. Each case is an `async fn(MakeBackend)`; `repo_contract!`
//! runs every case on one backend, in a module named after it (`fs::abort_leaves_nothing`).
//! A new backend is a constructor in `backends.rs` and one `repo_contract!` line below.
//! Every backend also runs encrypted (`repo_contract!(fs_encrypted, encrypted)`): the same
//! cases, but format 1 (which predates encryption), and the cases of `encryption.rs`.

#[path = "../common/mod.rs"]
mod common;

mod backends;
mod encryption;
mod failures;
#[path = "../../src/faults.rs"]
mod faults;
mod lifecycle;
mod roundtrip;
mod support;
mod verify;

/// One `#[tokio::test]` per case, each calling `$module::$case($make)`.
macro_rules! cases {
    ($make:path; $($module:ident::$case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                crate::$module::$case($make).await
            }
        )*
    };
}

/// Every contract case on the backend `backends::$backend`; `encrypted` for a backend with a
/// key.
macro_rules! repo_contract {
    ($backend:ident) => {
        mod $backend {
            cases!(crate::backends::$backend;
                roundtrip::new_backups_use_blake3_and_format_1_backups_still_read,
            );
            every_case!($backend);
        }
    };
    ($backend:ident, encrypted) => {
        mod $backend {
            cases!(crate::backends::$backend;
                encryption::a_wrong_key_is_refused_as_corrupt,
                encryption::a_missing_or_unexpected_key_is_refused_clearly,
                encryption::stored_objects_show_no_plaintext,
                encryption::every_tampered_object_is_corrupt_by_name,
                encryption::objects_moved_to_another_path_are_corrupt,
                encryption::wal_objects_are_sealed_and_bound_to_their_key,
            );
            every_case!($backend);
        }
    };
}

/// The cases every backend runs, plain or encrypted.
macro_rules! every_case {
    ($backend:ident) => {
            cases!(crate::backends::$backend;
                roundtrip::round_trip_is_byte_identical_with_correct_totals,
                roundtrip::an_empty_backup_commits_and_verifies,
                roundtrip::unknown_and_invalid_ids_are_refused,
                roundtrip::begin_refuses_an_id_with_objects,
                roundtrip::writer_misuse_is_an_error,
                roundtrip::concurrent_writers_of_two_ids_stay_apart,
                verify::verify_passes_and_reports_sizes,
                verify::verify_catches_a_flipped_byte,
                verify::verify_catches_short_and_long_objects,
                verify::verify_catches_a_missing_object,
                verify::verify_catches_swapped_chunks,
                verify::verify_catches_tampered_manifest_hashes,
                verify::inconsistent_or_hostile_manifests_do_not_load,
                verify::confirm_names_a_missing_or_short_object,
                lifecycle::abort_leaves_nothing,
                lifecycle::a_crash_before_the_manifest_leaves_an_incomplete_set,
                lifecycle::delete_removes_the_manifest_first_and_is_idempotent,
                lifecycle::listing_finds_every_set_and_nothing_else,
                lifecycle::two_deleters_of_the_same_data_both_succeed,
                failures::a_failing_write_never_yields_a_manifest_of_missing_data,
                failures::a_failing_read_never_passes_verify,
                failures::an_object_corrupted_on_its_way_fails_its_write,
            );
    };
}

repo_contract!(fs);
repo_contract!(memory);
repo_contract!(s3);
repo_contract!(fs_encrypted, encrypted);
repo_contract!(memory_encrypted, encrypted);
repo_contract!(s3_encrypted, encrypted);
