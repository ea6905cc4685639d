//! cairn-mount: a read-only FUSE filesystem over a cairn repository.
//!
//! ```text
//! /snapshots/<time>_<shortid>/...   every snapshot's tree
//! /volumes/<volume>/<time>/...      the same, grouped by volume
//! /volumes/<volume>/latest          symlink to the newest <time>
//! /ids/<shortid>                    symlink to ../snapshots/<time>_<shortid>
//! ```
//!
//! Inodes are handed out as directories are listed; a directory's tree is
//! loaded on first use. Reads go through each file's chunk list (the chunk
//! lengths are stored in the tree, so a read at any offset loads only the
//! chunks it touches) and a bounded cache of decompressed chunks. Over a
//! remote repository the first listing of a snapshot fetches all its trees
//! in the background, a level at a time.
#![deny(missing_docs)]

mod cache;
mod fs;
mod prefetch;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use cairn_repo::Repository;

pub use fs::CairnFs;

/// Why mounting failed.
#[derive(Debug)]
pub enum MountError {
    /// FUSE is missing on this machine.
    Unavailable(String),
    /// The mount itself failed.
    Io(std::io::Error),
    /// Reading the repository failed.
    Repo(cairn_repo::Error),
}

impl std::fmt::Display for MountError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MountError::Unavailable(why) => write!(f, "FUSE is not available: {why}"),
            MountError::Io(e) => write!(f, "mount failed: {e}"),
            MountError::Repo(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for MountError {}

/// Check that the kernel device and the mount helper exist.
pub fn check_fuse() -> Result<(), MountError> {
    if !Path::new("/dev/fuse").exists() {
        return Err(MountError::Unavailable(
            "/dev/fuse does not exist (load the fuse module, or pass --device /dev/fuse to the container)".into(),
        ));
    }
    let helper = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .any(|d| d.join("fusermount3").exists() || d.join("fusermount").exists())
        })
        .unwrap_or(false);
    if !helper {
        return Err(MountError::Unavailable(
            "fusermount3 not found; install the fuse3 package".into(),
        ));
    }
    Ok(())
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Read the snapshot list and build the top of the filesystem; fails
/// before anything is mounted if the repository cannot be read.
pub fn prepare(repo: Repository) -> Result<CairnFs, MountError> {
    check_fuse()?;
    CairnFs::new(repo).map_err(MountError::Repo)
}

/// Mount `fs` at `mountpoint` and serve until Ctrl-C, SIGTERM or an
/// external `fusermount3 -u`; then unmount cleanly.
pub fn serve(fs: CairnFs, mountpoint: &Path) -> Result<(), MountError> {
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        fuser::MountOption::RO,
        fuser::MountOption::FSName("cairn".into()),
        fuser::MountOption::Subtype("cairn".into()),
        fuser::MountOption::DefaultPermissions,
    ];
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
    let session = fuser::spawn_mount(fs, mountpoint, &config).map_err(MountError::Io)?;
    while !STOP.load(Ordering::SeqCst) && !session.guard.is_finished() {
        std::thread::sleep(Duration::from_millis(100));
    }
    if session.guard.is_finished() {
        // Unmounted from outside (fusermount3 -u): the session ended by itself.
        return session.join().map_err(MountError::Io);
    }
    session.umount_and_join().map_err(MountError::Io)
}
