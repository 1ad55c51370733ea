//! The `polarbackup` binary: `serve` runs the service, `admin` manages tenants and clusters.

mod admin;
mod admin_backup;
mod admin_delete;
mod admin_migrate;
mod admin_ram;
mod archiver;
mod backends;
mod cli;
mod config;
mod executor;
mod job_watch;
mod locations;
mod log_reader;
mod log_sink;
mod log_time;
mod metrics;
mod private;
mod restore;
mod scrub;
mod serve;
mod settings;
mod test_controls;
mod verify;

use clap::Parser;
use std::process::ExitCode;

/// mimalloc rather than glibc's allocator: an API call allocates and frees a few hundred small
/// buffers, and glibc's malloc, free and realloc are ~15 % of its CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // Before any thread or file: everything this process creates is its owner's only.
    private::restrict_umask();
    let cli = cli::Cli::parse();
    let result = match cli.command {
        cli::Command::Serve(args) => serve::run(args),
        cli::Command::Admin(cmd) => admin::run(cmd),
        cli::Command::Restore(args) => restore::run(args),
        cli::Command::Verify(args) => verify::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("polarbackup: {e:#}");
            ExitCode::FAILURE
        }
    }
}
