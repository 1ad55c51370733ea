//! `Tmpfs`: a small RAM file system mounted for one test, to fill a disk for real (or a ramfs,
//! which refuses `O_DIRECT`); unmounted on Drop.

use std::path::Path;
use std::process::Command;
use tempfile::TempDir;

/// A tmpfs of a given size on a fresh temporary directory (root only).
pub struct Tmpfs {
    dir: TempDir,
}

impl Tmpfs {
    /// Mounts `size_mib` MiB. Panics with the reason if it cannot: a full-disk test that
    /// cannot fill a disk must fail, not pass.
    pub fn mount(size_mib: u32) -> Tmpfs {
        mount_fs("tmpfs", &format!("size={size_mib}m,mode=0700"))
    }

    /// A ramfs instead: no size limit, and no `O_DIRECT` (opening a file with it answers
    /// `EINVAL`), for the tests of what falls back to buffered I/O. Panics if it cannot mount.
    pub fn ramfs() -> Tmpfs {
        mount_fs("ramfs", "mode=0700")
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Changes the size in place, keeping the files: growing it ends a full disk.
    pub fn resize(&self, size_mib: u32) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,size={size_mib}m")])
            .arg(self.dir.path())
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "cannot resize the tmpfs: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Bytes in use, as df shows them.
    pub fn used_bytes(&self) -> u64 {
        let out = Command::new("df")
            .args(["--output=used", "-B1"])
            .arg(self.dir.path())
            .output()
            .expect("run df");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse().ok())
            .expect("df prints the bytes used")
    }
}

fn mount_fs(fstype: &str, options: &str) -> Tmpfs {
    let dir = tempfile::Builder::new()
        .prefix("pbtmpfs")
        .tempdir()
        .expect("create a mount point");
    let out = Command::new("mount")
        .args(["-t", fstype, "-o", options, fstype])
        .arg(dir.path())
        .output()
        .expect("run mount");
    assert!(
        out.status.success(),
        "cannot mount a {fstype} on {} (the test needs root and CAP_SYS_ADMIN): {}",
        dir.path().display(),
        String::from_utf8_lossy(&out.stderr)
    );
    Tmpfs { dir }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazily: a file still open elsewhere must not leave the mount behind.
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}
