//! Ctrl-C and SIGTERM during long work: the first asks the operation to
//! stop at its next safe point (it cleans up: no spool file, no lock left,
//! nothing half committed) and the command exits 130; a second one kills
//! the process at once.

use std::sync::atomic::{AtomicBool, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(sig: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
    // SAFETY: signal() is async-signal-safe; the next signal of this kind
    // takes the default action (terminate).
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
    }
}

/// Catch SIGINT, SIGTERM and SIGHUP from now on.
pub fn install() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: the handler only stores to an atomic and resets itself,
        // both async-signal-safe.
        unsafe {
            libc::signal(sig, on_signal as *const () as libc::sighandler_t);
        }
    }
}

/// Whether a stop was asked for.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}
