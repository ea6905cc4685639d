//! Helpers shared by the fuzz targets in `fuzz_targets/`.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// A private directory for this fuzzing process, on tmpfs when there is one:
/// targets that go through the filesystem run thousands of times a second,
/// and a disk would make them slow and wear it.
///
/// libFuzzer leaves through `exit`, so the directory is removed by an
/// `atexit` handler; a process that crashed leaves its directory behind, and
/// the next process removes those of processes that are gone.
pub fn work_dir() -> &'static Path {
    WORK_DIR.get_or_init(|| {
        let base = [Path::new("/dev/shm"), &std::env::temp_dir()]
            .into_iter()
            .find(|p| p.is_dir())
            .map(Path::to_path_buf)
            .expect("a temporary directory");
        remove_leftovers(&base);
        let dir = base.join(format!("cairn-fuzz-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("creating the work directory");
        // SAFETY: registering a plain extern "C" function with no preconditions.
        unsafe { libc::atexit(remove_work_dir) };
        dir
    })
}

static WORK_DIR: OnceLock<PathBuf> = OnceLock::new();

extern "C" fn remove_work_dir() {
    if let Some(dir) = WORK_DIR.get() {
        remove_all(dir);
    }
}

/// Work directories of fuzzing processes that no longer run.
fn remove_leftovers(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("cairn-fuzz-"))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            remove_all(&e.path());
        }
    }
}

/// Remove a directory tree even where a restore left directories without
/// write or search permission (which stops a non-root user).
pub fn remove_all(dir: &Path) {
    if std::fs::remove_dir_all(dir).is_ok() || !dir.exists() {
        return;
    }
    open_up(dir);
    let _ = std::fs::remove_dir_all(dir);
}

fn open_up(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                open_up(&e.path());
            }
        }
    }
}
