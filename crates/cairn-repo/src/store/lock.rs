//! Backup locks: how a prune learns which backups might still reference
//! data it wants to delete, without ever making a backup wait.
//!
//! A backup writes `locks/<run>-<seq>` before it reads the index and
//! rewrites it (next `seq`, then deletes the old one) every few minutes while
//! it runs; it deletes it when done. Objects are never modified, so a
//! refresh is a new object. A lock whose time is older than `STALE_AFTER` is
//! ignored: a crashed process cannot block anything for longer than that.

use std::collections::HashSet;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::format::crypto::{Codec, Domain};
use crate::format::layout;
pub use crate::format::plan::LockInfo;
use crate::random::random_id;
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
    backend.put(&key, &bytes)?;
    Ok(key)
}

impl BackupLock {
    /// Write the lock and start refreshing it.
    pub fn acquire(backend: Arc<dyn Backend>, codec: Arc<Codec>, host: &str) -> Result<BackupLock> {
        let run = random_id().to_hex()[..16].to_string();
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
        let _ = self.backend.delete(&key);
    }
}

/// Runs of the backups whose locks are present and not stale. A lock that
/// cannot be read counts as alive (its run is in its name): a prune plan
/// then waits rather than guess.
pub fn live_runs(backend: &dyn Backend, codec: &Codec) -> Result<HashSet<String>> {
    let now = chrono::Utc::now();
    let mut out = HashSet::new();
    for obj in backend.list(layout::LOCKS)? {
        let Ok(bytes) = backend.get(&obj.key) else {
            continue; // released while we listed
        };
        let info = codec
            .open(Domain::Lock, None, bytes)
            .ok()
            .and_then(|plain| serde_json::from_slice::<LockInfo>(&plain).ok());
        let Some(info) = info else {
            if let Some(run) = layout::lock_run(&obj.key) {
                out.insert(run.to_string());
            }
            continue;
        };
        let fresh = chrono::DateTime::parse_from_rfc3339(&info.time).is_ok_and(|t| {
            (now - t.with_timezone(&chrono::Utc))
                .to_std()
                .map_or(true, |age| age < STALE_AFTER)
        });
        if fresh {
            out.insert(info.run);
        }
    }
    Ok(out)
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
