//! What the server holds: the open repository, the snapshot list kept
//! current, a few decoded trees, the slots for heavy work, and the jobs.

use std::collections::HashSet;
use std::ops::Deref;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use cairn_repo::{Id, Repository, Snapshot, Tree};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::auth::Auth;
use crate::error::HttpError;
use crate::jobs::Jobs;
use crate::ServeOptions;

/// How long a snapshot list is trusted before the repository is listed again.
const SNAPSHOT_TTL: Duration = Duration::from_secs(2);
/// Decoded trees kept, counted in entries: going back and forth between
/// ordinary directories decodes each once, while one of 100,000 entries
/// (about 30 MiB decoded) is decoded again per page (0.1 s) rather than
/// kept, so the server's memory at rest stays small.
const TREE_CACHE_NODES: usize = 64_000;

/// A tree with more entries than this is big enough that its memory,
/// once freed, is handed back to the OS (see [`release_memory`]).
const BIG_TREE: usize = 10_000;

thread_local! {
    /// This blocking-pool thread decoded a big tree in the current request.
    static DECODED_BIG: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Make glibc give large freed memory back: by default it raises its trim
/// and mmap thresholds as big buffers come and go, and never trims the top
/// of a thread's arena in `malloc_trim`, so after one page of a directory
/// of 100,000 entries (about 30 MiB decoded on a blocking-pool thread) the
/// server would stay that much larger for good. Fixed thresholds turn that
/// off: buffers over 1 MiB are mapped and unmapped on their own, and an
/// arena whose free top exceeds 4 MiB is trimmed as it is freed.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before the
    // server's threads start.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 4 << 20);
    }
}

/// Return freed heap to the OS after a big tree (see [`tune_allocator`]).
fn release_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks and trims the allocator's own heaps.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The shared state (cheap to clone).
#[derive(Clone)]
pub struct App(Arc<Inner>);

/// See [`App`].
pub struct Inner {
    /// The repository, open for the server's lifetime.
    pub repo: Arc<Repository>,
    /// How the server was started.
    pub opts: ServeOptions,
    /// Token and session keys.
    pub auth: Auth,
    /// Restores and checks running or done.
    pub jobs: Jobs,
    snaps: Mutex<SnapCache>,
    trees: Mutex<Vec<(Id, Arc<Tree>)>>,
    heavy: Arc<Semaphore>,
}

impl Deref for App {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// The snapshot list, read incrementally: each refresh lists the snapshot
/// objects and reads only those it has not seen.
#[derive(Default)]
struct SnapCache {
    at: Option<Instant>,
    known: HashSet<Id>,
    sorted: Arc<Vec<(Id, Snapshot)>>,
    damaged: Arc<Vec<cairn_repo::Damaged>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl App {
    /// State over an open repository.
    pub fn new(repo: Repository, opts: ServeOptions, auth: Auth) -> App {
        let slots = opts.heavy_slots.max(1);
        App(Arc::new(Inner {
            repo: Arc::new(repo),
            opts,
            auth,
            jobs: Jobs::default(),
            snaps: Mutex::default(),
            trees: Mutex::default(),
            heavy: Arc::new(Semaphore::new(slots)),
        }))
    }

    /// Run repository work on the blocking pool: every handler reads files
    /// or SQLite, and none may stall the threads that serve connections.
    pub async fn blocking<T, F>(&self, f: F) -> Result<T, HttpError>
    where
        T: Send + 'static,
        F: FnOnce(&App) -> Result<T, HttpError> + Send + 'static,
    {
        let app = self.clone();
        tokio::task::spawn_blocking(move || {
            let out = f(&app);
            if DECODED_BIG.with(|b| b.replace(false)) {
                release_memory();
            }
            out
        })
        .await
        .map_err(|e| HttpError {
            status: axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            message: format!("request failed: {e}"),
        })?
    }

    /// A slot for heavy work (downloads, diffs, checks, restores), or 503
    /// at once when all are taken: a queue would only hide the overload.
    pub fn heavy_slot(&self) -> Result<OwnedSemaphorePermit, HttpError> {
        self.heavy
            .clone()
            .try_acquire_owned()
            .map_err(|_| HttpError::busy())
    }

    /// All readable snapshots, oldest first (blocking).
    pub fn snapshots(&self) -> Result<Arc<Vec<(Id, Snapshot)>>, HttpError> {
        Ok(self.refresh()?.0)
    }

    /// Snapshot objects that cannot be read (blocking).
    pub fn damaged(&self) -> Result<Arc<Vec<cairn_repo::Damaged>>, HttpError> {
        Ok(self.refresh()?.1)
    }

    #[allow(clippy::type_complexity)]
    fn refresh(
        &self,
    ) -> Result<(Arc<Vec<(Id, Snapshot)>>, Arc<Vec<cairn_repo::Damaged>>), HttpError> {
        let mut c = lock(&self.snaps);
        if c.at.is_some_and(|t| t.elapsed() < SNAPSHOT_TTL) {
            return Ok((c.sorted.clone(), c.damaged.clone()));
        }
        if c.at.is_none() {
            self.load_all(&mut c)?;
        } else {
            let present: HashSet<Id> = self.repo.snapshot_ids()?.into_iter().collect();
            if present != c.known {
                self.reload(&mut c, &present)?;
            }
        }
        c.at = Some(Instant::now());
        Ok((c.sorted.clone(), c.damaged.clone()))
    }

    /// The first list: through the repository's snapshot cache, which
    /// holds the snapshots read by earlier commands.
    fn load_all(&self, c: &mut SnapCache) -> Result<(), HttpError> {
        let list = self.repo.snapshot_list()?;
        c.known = list.snapshots.iter().map(|(id, _)| *id).collect();
        c.known.extend(list.damaged.iter().map(|d| d.id));
        c.sorted = Arc::new(list.snapshots);
        c.damaged = Arc::new(list.damaged);
        Ok(())
    }

    fn reload(&self, c: &mut SnapCache, present: &HashSet<Id>) -> Result<(), HttpError> {
        let mut list: Vec<(Id, Snapshot)> = c
            .sorted
            .iter()
            .filter(|(id, _)| present.contains(id))
            .cloned()
            .collect();
        let mut damaged: Vec<cairn_repo::Damaged> = c
            .damaged
            .iter()
            .filter(|d| present.contains(&d.id))
            .cloned()
            .collect();
        let mut added = false;
        for id in present.difference(&c.known) {
            match self.repo.read_snapshot(id) {
                Ok(s) => list.push((*id, s)),
                Err(cairn_repo::Error::Corrupt { reason, .. }) => {
                    damaged.push(cairn_repo::Damaged { id: *id, reason })
                }
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e.into()),
            }
            added = true;
        }
        if added {
            // New snapshots bring new trees: learn their packs.
            self.repo.refresh_index()?;
        }
        list.sort_by_cached_key(|(id, s)| (s.timestamp(), *id));
        c.known = present.clone();
        c.sorted = Arc::new(list);
        c.damaged = Arc::new(damaged);
        Ok(())
    }

    /// The snapshot a link or form names: a full id or a unique prefix.
    pub fn find(&self, spec: &str) -> Result<(Id, Snapshot), HttpError> {
        let all = self.snapshots()?;
        let found = cairn_repo::format::snapshot::select(&all, spec, &Default::default())?;
        Ok(found.clone())
    }

    /// A decoded tree, from the cache when it is there.
    pub fn tree(&self, id: &Id) -> Result<Arc<Tree>, HttpError> {
        {
            let mut cache = lock(&self.trees);
            if let Some(i) = cache.iter().position(|(t, _)| t == id) {
                let hit = cache.remove(i);
                let tree = hit.1.clone();
                cache.insert(0, hit);
                return Ok(tree);
            }
        }
        let tree = Arc::new(self.repo.load_tree(id)?);
        if tree.nodes.len() > BIG_TREE {
            DECODED_BIG.with(|b| b.set(true));
        }
        let mut cache = lock(&self.trees);
        cache.insert(0, (*id, tree.clone()));
        let mut nodes = 0;
        cache.retain(|(_, t)| {
            nodes += t.nodes.len();
            nodes <= TREE_CACHE_NODES
        });
        Ok(tree)
    }
}
