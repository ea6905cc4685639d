//! Locks: how a prune learns which backups might still reference data it
//! wants to delete, without ever making a backup wait, and how two prunes
//! keep out of each other's way.
//!
//! A backup writes `locks/<run>-<seq>` before it reads the index and
//! rewrites it (next `seq`, then deletes the old one) every few minutes while
//! it runs; it deletes it when done. Objects are never modified, so a
//! refresh is a new object. A lock whose time is older than `STALE_AFTER` is
//! ignored: a crashed process cannot block anything for longer than that.
//! A lock that cannot be read counts as alive: only "not found" means
//! released.
//!
//! A prune's lock is the same object with a run starting `prune-`; a prune
//! that finds another live prune lock after writing its own gives up
//! ([`PruneLock::acquire`]).

use std::collections::HashSet;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::format::crypto::{Codec, Domain};
use crate::format::layout;
pub use crate::format::plan::LockInfo;
use crate::random::random_id;
use crate::store::backend::BackendError;
use crate::{Backend, Error, Result};

/// A lock not refreshed for this long belongs to a dead process.
pub const STALE_AFTER: Duration = Duration::from_secs(30 * 60);
/// How often a running backup refreshes its lock.
const REFRESH_EVERY: Duration = Duration::from_secs(5 * 60);
/// A lock dated further ahead than this was written by a clock cairn does
/// not promise to work with (docs/FORMAT.md section 11), or forged. It
/// still counts as live (so a prune plan waits for it, and nothing is
/// deleted because of it), but `check` reports it.
pub const FUTURE_TOLERANCE: Duration = Duration::from_secs(20 * 60);

/// A held backup lock; released (deleted) on drop.
pub struct BackupLock {
    backend: Arc<dyn Backend>,
    run: String,
    /// Dropping it wakes and ends the refresher at once.
    stop: Option<crossbeam_channel::Sender<()>>,
    refresher: Option<JoinHandle<()>>,
    current: Arc<std::sync::Mutex<String>>,
}

fn write_lock(
    backend: &dyn Backend,
    codec: &Codec,
    run: &str,
    host: &str,
    seq: u64,
) -> Result<String> {
    let info = LockInfo {
        run: run.to_string(),
        host: host.to_string(),
        pid: std::process::id(),
        time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    };
    let key = layout::lock(run, seq);
    let plain = serde_json::to_vec(&info).expect("lock serializes");
    let bytes = codec
        .seal(Domain::Lock, None, plain)
        .map_err(|e| Error::io("/dev/urandom", e))?;
    put_or_clean_up(backend, &key, &bytes)?;
    Ok(key)
}

/// Put a small object of the prune protocol; if the put fails, delete
/// whatever part of it may have been stored (best effort): a damaged lock
/// counts as alive, and a damaged plan stops backups, until removed.
pub(crate) fn put_or_clean_up(backend: &dyn Backend, key: &str, bytes: &[u8]) -> Result<()> {
    match backend.put(key, bytes) {
        Err(e @ BackendError::AlreadyExists { .. }) => Err(e.into()),
        Err(e) => {
            let _ = backend.delete(key);
            Err(e.into())
        }
        Ok(()) => Ok(()),
    }
}

impl BackupLock {
    /// Write the lock and start refreshing it.
    pub fn acquire(backend: Arc<dyn Backend>, codec: Arc<Codec>, host: &str) -> Result<BackupLock> {
        let run = random_id().to_hex()[..16].to_string();
        BackupLock::acquire_run(backend, codec, host, run)
    }

    fn acquire_run(
        backend: Arc<dyn Backend>,
        codec: Arc<Codec>,
        host: &str,
        run: String,
    ) -> Result<BackupLock> {
        let key = write_lock(&*backend, &codec, &run, host, 0)?;
        let current = Arc::new(std::sync::Mutex::new(key));
        let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
        let refresher = {
            let (backend, codec, run, host) = (
                backend.clone(),
                codec.clone(),
                run.clone(),
                host.to_string(),
            );
            let current = current.clone();
            std::thread::spawn(move || {
                refresh_loop(&*backend, &codec, &run, &host, &stopped, &current)
            })
        };
        Ok(BackupLock {
            backend,
            run,
            stop: Some(stop),
            refresher: Some(refresher),
            current,
        })
    }

    /// The run id recorded in prune plans.
    pub fn run(&self) -> &str {
        &self.run
    }
}

fn refresh_loop(
    backend: &dyn Backend,
    codec: &Codec,
    run: &str,
    host: &str,
    stopped: &crossbeam_channel::Receiver<()>,
    current: &std::sync::Mutex<String>,
) {
    let mut seq = 0;
    // Times out every REFRESH_EVERY; returns at once when the lock is dropped.
    while let Err(crossbeam_channel::RecvTimeoutError::Timeout) =
        stopped.recv_timeout(REFRESH_EVERY)
    {
        seq += 1;
        if let Ok(key) = write_lock(backend, codec, run, host, seq) {
            let mut cur = current.lock().unwrap_or_else(|p| p.into_inner());
            let _ = backend.delete(&cur);
            *cur = key;
        }
    }
}

impl Drop for BackupLock {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(h) = self.refresher.take() {
            let _ = h.join();
        }
        let key = self
            .current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        // A lock left behind delays plans (and blocks prunes, for a prune's
        // lock) until it is stale: try more than once.
        for _ in 0..3 {
            if self.backend.delete(&key).is_ok() {
                break;
            }
        }
    }
}

/// The runs of prune locks start with this.
const PRUNE_RUN: &str = "prune-";

/// A held prune lock; released (deleted) on drop.
pub struct PruneLock {
    _held: BackupLock,
}

impl PruneLock {
    /// Write a prune lock, then refuse ([`Error::PruneLocked`], releasing
    /// ours) if another prune's lock is alive. Two prunes starting at once
    /// may both refuse; never both go on: each lists after writing its own,
    /// so the later lister sees the other.
    pub fn acquire(backend: Arc<dyn Backend>, codec: Arc<Codec>, host: &str) -> Result<PruneLock> {
        let run = format!("{PRUNE_RUN}{}", &random_id().to_hex()[..16]);
        let lock = BackupLock::acquire_run(backend.clone(), codec.clone(), host, run)?;
        let other = live_locks(&*backend, &codec)?
            .into_iter()
            .find(|l| l.run.starts_with(PRUNE_RUN) && l.run != lock.run);
        match other {
            Some(l) => Err(Error::PruneLocked {
                key: l.key,
                holder: l.holder,
            }),
            None => Ok(PruneLock { _held: lock }),
        }
    }
}

/// A lock that is present and not stale (or cannot be read).
struct LiveLock {
    key: String,
    run: String,
    holder: String,
}

/// Every lock present and not stale. A lock that cannot be read or
/// decoded counts as alive (its run is in its name): a prune then waits,
/// or refuses, rather than guess. Only "not found" means released.
fn live_locks(backend: &dyn Backend, codec: &Codec) -> Result<Vec<LiveLock>> {
    let now = chrono::Utc::now();
    let mut out = Vec::new();
    for obj in backend.list(layout::LOCKS)? {
        let Some(run) = layout::lock_run(&obj.key) else {
            continue; // a temporary file of a put in progress
        };
        let unreadable = |why: String| LiveLock {
            key: obj.key.clone(),
            run: run.to_string(),
            holder: format!("lock unreadable: {why}"),
        };
        let bytes = match backend.get(&obj.key) {
            Ok(b) => b,
            Err(BackendError::NotFound { .. }) => continue, // released while we listed
            Err(e) => {
                out.push(unreadable(e.to_string()));
                continue;
            }
        };
        let info = codec
            .open(Domain::Lock, None, bytes)
            .ok()
            .and_then(|plain| serde_json::from_slice::<LockInfo>(&plain).ok());
        let Some(info) = info else {
            out.push(unreadable("damaged".into()));
            continue;
        };
        let fresh = chrono::DateTime::parse_from_rfc3339(&info.time).is_ok_and(|t| {
            (now - t.with_timezone(&chrono::Utc))
                .to_std()
                .map_or(true, |age| age < STALE_AFTER)
        });
        if fresh {
            out.push(LiveLock {
                key: obj.key.clone(),
                holder: format!("host {}, pid {}, at {}", info.host, info.pid, info.time),
                run: info.run,
            });
        }
    }
    Ok(out)
}

/// Runs of the backups whose locks are present and not stale (prune locks
/// aside). A lock that cannot be read counts as alive: a prune plan then
/// waits rather than guess.
pub fn live_runs(backend: &dyn Backend, codec: &Codec) -> Result<HashSet<String>> {
    Ok(live_locks(backend, codec)?
        .into_iter()
        .map(|l| l.run)
        .filter(|run| !run.starts_with(PRUNE_RUN))
        .collect())
}

/// A lock dated more than [`FUTURE_TOLERANCE`] ahead of this host's clock.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct FutureLock {
    /// Its key (`locks/<run>-<seq>`).
    pub key: String,
    /// The host it names.
    pub host: String,
    /// Its time, as written.
    pub time: String,
    /// How far ahead of this host's clock, in whole minutes.
    pub minutes_ahead: i64,
}

/// Locks dated more than [`FUTURE_TOLERANCE`] in the future. Such a lock
/// holds back every prune plan until its date is half an hour past, since
/// [`live_runs`] counts it as live; only a user can tell a skewed clock
/// from a forgery. Locks that cannot be read, or that are released while
/// this lists them, are not reported here.
pub fn future_locks(backend: &dyn Backend, codec: &Codec) -> Result<Vec<FutureLock>> {
    let now = chrono::Utc::now();
    let mut out = Vec::new();
    for obj in backend.list(layout::LOCKS)? {
        let Ok(bytes) = backend.get(&obj.key) else {
            continue;
        };
        let Some(info) = codec
            .open(Domain::Lock, None, bytes)
            .ok()
            .and_then(|plain| serde_json::from_slice::<LockInfo>(&plain).ok())
        else {
            continue;
        };
        let Ok(time) = chrono::DateTime::parse_from_rfc3339(&info.time) else {
            continue;
        };
        let ahead = time.with_timezone(&chrono::Utc) - now;
        if ahead.to_std().is_ok_and(|a| a > FUTURE_TOLERANCE) {
            out.push(FutureLock {
                key: obj.key,
                host: info.host,
                time: info.time,
                minutes_ahead: ahead.num_minutes(),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LocalBackend;

    #[test]
    fn lock_is_visible_while_held_and_gone_after() {
        let dir = tempfile::tempdir().unwrap();
        let backend: Arc<dyn Backend> = Arc::new(LocalBackend::new(dir.path()));
        let codec = Arc::new(Codec::Plain);
        let lock = BackupLock::acquire(backend.clone(), codec.clone(), "h").unwrap();
        assert!(live_runs(&*backend, &codec).unwrap().contains(lock.run()));
        drop(lock);
        assert!(live_runs(&*backend, &codec).unwrap().is_empty());
    }

    #[test]
    fn a_second_prune_is_refused_and_backups_never_wait_for_prunes() {
        let dir = tempfile::tempdir().unwrap();
        let backend: Arc<dyn Backend> = Arc::new(LocalBackend::new(dir.path()));
        let codec = Arc::new(Codec::Plain);
        let first = PruneLock::acquire(backend.clone(), codec.clone(), "h").unwrap();
        let second = PruneLock::acquire(backend.clone(), codec.clone(), "h");
        assert!(matches!(second, Err(Error::PruneLocked { .. })));
        assert!(live_runs(&*backend, &codec).unwrap().is_empty());
        drop(first);
        assert!(backend.list(layout::LOCKS).unwrap().is_empty(), "released");
        PruneLock::acquire(backend.clone(), codec, "h").unwrap();
    }

    #[test]
    fn a_lock_that_cannot_be_decoded_counts_as_alive() {
        let dir = tempfile::tempdir().unwrap();
        let backend = LocalBackend::new(dir.path());
        backend
            .put("locks/0123456789abcdef-00000000", b"{torn")
            .unwrap();
        let live = live_runs(&backend, &Codec::Plain).unwrap();
        assert!(live.contains("0123456789abcdef"), "{live:?}");
    }

    #[test]
    fn stale_locks_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let backend = LocalBackend::new(dir.path());
        let old = LockInfo {
            run: "dead".into(),
            host: "h".into(),
            pid: 1,
            time: "2020-01-01T00:00:00Z".into(),
        };
        backend
            .put("locks/dead-00000000", &serde_json::to_vec(&old).unwrap())
            .unwrap();
        assert!(live_runs(&backend, &Codec::Plain).unwrap().is_empty());
    }

    #[test]
    fn a_lock_dated_in_the_future_is_live_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let backend = LocalBackend::new(dir.path());
        let at = |minutes: i64| {
            (chrono::Utc::now() + chrono::Duration::minutes(minutes))
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        };
        for (run, time) in [
            ("skewed", at(10)),
            ("ahead", at(90)),
            ("forged", "9999-01-01T00:00:00Z".into()),
        ] {
            let info = LockInfo {
                run: run.into(),
                host: "h".into(),
                pid: 1,
                time,
            };
            backend
                .put(
                    &format!("locks/{run}-00000000"),
                    &serde_json::to_vec(&info).unwrap(),
                )
                .unwrap();
        }
        let live = live_runs(&backend, &Codec::Plain).unwrap();
        assert!(
            ["skewed", "ahead", "forged"]
                .iter()
                .all(|r| live.contains(*r)),
            "{live:?}"
        );
        let future: Vec<String> = future_locks(&backend, &Codec::Plain)
            .unwrap()
            .into_iter()
            .map(|l| l.key)
            .collect();
        assert_eq!(future, ["locks/ahead-00000000", "locks/forged-00000000"]);
    }
}
