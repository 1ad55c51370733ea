//! Test-only kit for black-box tests of the `polarbackup` binary: start it, administer it, call it through the official SDKs.
//!
//! * [`Server`] spawns `polarbackup serve --listen 127.0.0.1:0`, waits for its
//!   `{"Listening":"127.0.0.1:PORT"}` line and stops it with SIGTERM (or kills it on drop).
//!   [`Server::builder`] adds arguments and environment (metadata and repository URLs,
//!   secrets), which the admin and restore commands it runs get too.
//! * [`admin`] and [`Tenant`] run `polarbackup admin …` against a data directory, and
//!   [`AdminTarget`] against any installation.
//! * [`sdk`] and [`sdk_batch`] run `tests/sdk/driver.py`, which calls the server with the
//!   official Alibaba Cloud Python SDKs or with its own raw signer, and return its JSON result.
//! * [`checks`] holds small format predicates shared by the tests.
//! * [`pg`] makes throwaway PostgreSQL servers (initdb on a free port) and checks restores;
//!   [`ThrottledProxy`] slows a connection to one down, so a backup lasts long enough to watch.
//! * [`s3`] runs throwaway SeaweedFS servers ([`s3::SeaweedFs`], `weed mini`) for S3
//!   repositories.
//! * [`ram`] makes RAM users ([`RamUser`]) and custom policies, and runs `admin ram …`.
//!
//! This crate depends on no server crate: everything goes through the process boundary.

pub mod certs;
pub mod checks;
mod driver;
pub mod http;
pub mod pg;
mod ports;
mod proxy;
pub mod ram;
pub mod s3;
mod server;
mod tmpfs;

pub use driver::{driver_path, promtool, python, request, sdk, sdk_batch, workspace_root};
pub use proxy::ThrottledProxy;
pub use ram::RamUser;
/// The master key given to every server (and restore) on one shared test store, as operators
/// must give them all the same key (`POLARBACKUP_MASTER_KEY`: 32 bytes in hex; a test value).
pub const SHARED_MASTER_KEY: &str =
    "6d61737465722d6b65792d666f722d7368617265642d746573742d73746f7265";

pub use ports::free_port;
pub use server::{admin, admin_output, AdminTarget, Server, ServerBuilder, Tenant};
pub use tmpfs::Tmpfs;
