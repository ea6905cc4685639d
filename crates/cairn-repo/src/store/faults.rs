//! A backend that wraps another and misbehaves on purpose: errors, short
//! and lost writes, corrupted reads, delays, and hooks that run another
//! process's work (a prune, say) at an exact moment of this one. Tests use
//! it to show that every failure is one clear error and leaves the
//! repository consistent.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::store::backend::{Backend, BackendError, BackendResult, LocationState, ObjectInfo};

/// Which operation a rule applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `put` and `put_file`.
    Put,
    /// `get` and `get_range`.
    Get,
    /// `list`.
    List,
    /// `delete`.
    Delete,
}

/// What happens when a rule fires.
#[derive(Clone)]
pub enum Fault {
    /// The operation fails with this error kind; nothing is done.
    Fail(std::io::ErrorKind),
    /// A put stores only the first half of the object, then fails.
    ShortWrite,
    /// A put stores the first half of the object and reports success.
    TornWrite,
    /// A put reports success and stores nothing.
    LostWrite,
    /// A read returns the data with one bit flipped.
    FlipBit,
    /// The operation waits this long, then proceeds.
    Delay(Duration),
    /// Run this first (once per firing), then proceed.
    Hook(Arc<dyn Fn() + Send + Sync>),
}

struct Rule {
    op: Op,
    prefix: String,
    fault: Fault,
    /// Matching operations to let through before firing.
    skip: u64,
    /// Firings left (`u64::MAX`: forever).
    times: u64,
}

/// The wrapping backend.
pub struct FaultBackend {
    inner: Arc<dyn Backend>,
    rules: Mutex<Vec<Rule>>,
}

impl FaultBackend {
    /// Wrap `inner`; no rule yet, so it behaves exactly like `inner`.
    pub fn new(inner: Arc<dyn Backend>) -> FaultBackend {
        FaultBackend {
            inner,
            rules: Mutex::default(),
        }
    }

    /// Fire `fault` on the next `times` operations `op` on keys starting with
    /// `prefix`, after letting `skip` of them through.
    pub fn inject(&self, op: Op, prefix: &str, fault: Fault, skip: u64, times: u64) {
        self.lock().push(Rule {
            op,
            prefix: prefix.to_string(),
            fault,
            skip,
            times,
        });
    }

    /// Remove every rule.
    pub fn heal(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Rule>> {
        self.rules.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The fault to apply to this operation, if a rule fires.
    fn fire(&self, op: Op, key: &str) -> Option<Fault> {
        let mut rules = self.lock();
        let rule = rules
            .iter_mut()
            .find(|r| r.op == op && r.times > 0 && key.starts_with(&r.prefix))?;
        if rule.skip > 0 {
            rule.skip -= 1;
            return None;
        }
        rule.times = rule.times.saturating_sub(1);
        Some(rule.fault.clone())
    }

    /// Apply a fault that needs no knowledge of the operation; returns the
    /// fault back when the operation must handle it itself.
    fn before(&self, op: Op, key: &str) -> BackendResult<Option<Fault>> {
        match self.fire(op, key) {
            None => Ok(None),
            Some(Fault::Fail(kind)) => Err(BackendError::from_io(
                key,
                std::io::Error::new(kind, "injected fault"),
            )),
            Some(Fault::Delay(d)) => {
                std::thread::sleep(d);
                Ok(None)
            }
            Some(Fault::Hook(f)) => {
                f();
                Ok(None)
            }
            Some(other) => Ok(Some(other)),
        }
    }

    fn put_faulty(&self, key: &str, data: &[u8], fault: Option<Fault>) -> BackendResult<()> {
        match fault {
            Some(Fault::LostWrite) => Ok(()),
            Some(Fault::TornWrite) => self.inner.put(key, &data[..data.len() / 2]),
            Some(Fault::ShortWrite) => {
                self.inner.put(key, &data[..data.len() / 2])?;
                Err(BackendError::from_io(
                    key,
                    std::io::Error::new(std::io::ErrorKind::WriteZero, "injected short write"),
                ))
            }
            _ => self.inner.put(key, data),
        }
    }
}

fn flip(mut data: Vec<u8>) -> Vec<u8> {
    let mid = data.len() / 2;
    if let Some(b) = data.get_mut(mid) {
        *b ^= 0x10;
    }
    data
}

impl Backend for FaultBackend {
    fn location(&self) -> String {
        self.inner.location()
    }

    fn probe(&self) -> BackendResult<LocationState> {
        self.inner.probe()
    }

    fn put(&self, key: &str, data: &[u8]) -> BackendResult<()> {
        let fault = self.before(Op::Put, key)?;
        self.put_faulty(key, data, fault)
    }

    fn put_file(&self, key: &str, file: &Path) -> BackendResult<()> {
        let fault = match self.before(Op::Put, key) {
            Ok(f) => f,
            Err(e) => {
                let _ = std::fs::remove_file(file);
                return Err(e);
            }
        };
        if fault.is_none() {
            return self.inner.put_file(key, file);
        }
        let data = std::fs::read(file).map_err(|e| BackendError::from_io(key, e));
        let _ = std::fs::remove_file(file);
        self.put_faulty(key, &data?, fault)
    }

    fn staging_dir(&self) -> Option<PathBuf> {
        self.inner.staging_dir()
    }

    fn get(&self, key: &str) -> BackendResult<Vec<u8>> {
        let fault = self.before(Op::Get, key)?;
        let data = self.inner.get(key)?;
        Ok(match fault {
            Some(Fault::FlipBit) => flip(data),
            _ => data,
        })
    }

    fn get_range(&self, key: &str, offset: u64, len: u64) -> BackendResult<Vec<u8>> {
        let fault = self.before(Op::Get, key)?;
        let data = self.inner.get_range(key, offset, len)?;
        Ok(match fault {
            Some(Fault::FlipBit) => flip(data),
            _ => data,
        })
    }

    fn list(&self, prefix: &str) -> BackendResult<Vec<ObjectInfo>> {
        self.before(Op::List, prefix)?;
        self.inner.list(prefix)
    }

    fn delete(&self, key: &str) -> BackendResult<()> {
        self.before(Op::Delete, key)?;
        self.inner.delete(key)
    }

    fn concurrency(&self) -> usize {
        self.inner.concurrency()
    }

    fn remote(&self) -> bool {
        self.inner.remote()
    }

    fn request_stats(&self) -> Option<crate::RequestStats> {
        self.inner.request_stats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LocalBackend;

    #[test]
    fn rules_fire_after_skips_and_for_their_count() {
        let dir = tempfile::tempdir().unwrap();
        let f = FaultBackend::new(Arc::new(LocalBackend::new(dir.path())));
        f.inject(
            Op::Put,
            "packs/",
            Fault::Fail(std::io::ErrorKind::Other),
            1,
            1,
        );
        f.put("packs/a", b"1").unwrap(); // skipped
        assert!(f.put("packs/b", b"2").is_err()); // fires
        f.put("packs/c", b"3").unwrap(); // spent
        f.put("index/x", b"4").unwrap(); // other prefix
        let keys: Vec<String> = f.list("").unwrap().into_iter().map(|o| o.key).collect();
        assert_eq!(keys, ["index/x", "packs/a", "packs/c"]);
        f.inject(Op::Put, "", Fault::LostWrite, 0, 1);
        f.put("snapshots/s", b"5").unwrap();
        assert!(f.get("snapshots/s").is_err());
        f.inject(Op::Get, "", Fault::FlipBit, 0, 1);
        assert_ne!(f.get("packs/a").unwrap(), b"1");
        assert_eq!(f.get("packs/a").unwrap(), b"1");
    }
}
