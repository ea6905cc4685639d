//! Containers stopped for the length of a backup, started again however it
//! ends.

use std::time::{Duration, Instant};

use crate::container::ContainerInfo;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::locate::own_container_id;

/// A set of containers stopped for a backup. They are started again, in the
/// reverse order of stopping, by [`StoppedContainers::restart`] or, if that
/// was never called, when the guard is dropped, so an error or a panic
/// (unwinding) in between still brings them back.
///
/// # Signals
///
/// Ctrl-C and SIGTERM kill a process without running destructors, so a CLI
/// that holds this guard must install handlers for SIGINT, SIGTERM and
/// SIGHUP before stopping anything. The handler only sets a flag (an
/// `AtomicBool`: nothing else is async-signal-safe). Then either the backup
/// notices the flag and returns an error, and the guard restarts the
/// containers as it goes out of scope; or, since a backup engine without
/// cancellation points cannot notice, a watcher thread sharing the guard as
/// `Arc<Mutex<StoppedContainers>>` sees the flag, calls
/// [`restart`](StoppedContainers::restart) and exits with status 130.
/// `restart` is idempotent, so the normal path calling it again is harmless.
/// Only SIGKILL (or a power cut) leaves the containers stopped.
#[derive(Debug)]
pub struct StoppedContainers {
    engine: Engine,
    stopped: Vec<ContainerInfo>,
    stopped_at: Instant,
    downtime: Option<Duration>,
}

impl StoppedContainers {
    /// Stops each running container of `containers`, in order; those not
    /// running are skipped and will not be started. So is the container this
    /// process runs in, if listed (cairn's own container mounts the volume it
    /// backs up): stopping it would end the backup with nobody to restart
    /// anything. If one fails to stop, those already stopped are started
    /// again and the error is returned.
    pub fn stop(engine: &Engine, containers: &[ContainerInfo]) -> Result<StoppedContainers> {
        let mut guard = StoppedContainers {
            engine: engine.clone(),
            stopped: Vec::new(),
            stopped_at: Instant::now(),
            downtime: None,
        };
        let me = own_container_id();
        let others = containers.iter().filter(|c| Some(&c.id) != me.as_ref());
        for c in others.filter(|c| c.running) {
            if guard.engine.stop(&c.id)? {
                guard.stopped.push(c.clone());
            }
        }
        Ok(guard)
    }

    /// The containers this guard stopped, in the order they were stopped.
    pub fn containers(&self) -> &[ContainerInfo] {
        &self.stopped
    }

    /// How long the containers have been (or were) down: from the first
    /// stop request to the last start.
    pub fn downtime(&self) -> Duration {
        self.downtime.unwrap_or_else(|| self.stopped_at.elapsed())
    }

    /// Starts the containers again, last stopped first, and returns the
    /// downtime. All are tried even if one fails; [`Error::RestartFailed`]
    /// names those still stopped. Calling it again does nothing more.
    pub fn restart(&mut self) -> Result<Duration> {
        if let Some(downtime) = self.downtime {
            return Ok(downtime);
        }
        let mut failed = Vec::new();
        let mut reason = None;
        for c in self.stopped.iter().rev() {
            if let Err(e) = self.engine.start(&c.id) {
                failed.push(c.name.clone());
                reason.get_or_insert_with(|| e.to_string());
            }
        }
        let downtime = self.stopped_at.elapsed();
        self.downtime = Some(downtime);
        match reason {
            None => Ok(downtime),
            Some(reason) => Err(Error::RestartFailed {
                containers: failed,
                reason,
            }),
        }
    }
}

impl Drop for StoppedContainers {
    fn drop(&mut self) {
        // Drop cannot return the error, and a database left stopped
        // unnoticed is worse than a line on stderr.
        if let Err(e) = self.restart() {
            eprintln!("cairn: {e}");
        }
    }
}
