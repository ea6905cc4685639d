//! Fetching a snapshot's trees ahead of the listings that need them, for a
//! repository far away. Listing a tree on demand costs a round trip per
//! directory (`ls -R`, `find`); the first listing of a snapshot starts a
//! background fetch of all its trees a level at a time, in a few requests
//! per level, as restore does. A listing whose tree is in the level being
//! fetched waits for it rather than fetching it a second time; any other
//! reads the tree itself, so a listing never waits longer than the levels
//! above its directory.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use cairn_repo::{Id, Repository};

/// Background tree fetches, one per snapshot, sharing one pool of threads.
pub(crate) struct Prefetcher {
    repo: Arc<Repository>,
    pool: Arc<rayon::ThreadPool>,
    state: Mutex<State>,
    /// Signalled whenever a level of any snapshot is done.
    level_done: Condvar,
}

#[derive(Default)]
struct State {
    /// Snapshot root trees whose fetch has been started.
    started: HashSet<Id>,
    /// For each fetch still running, how many levels it has started and
    /// the trees of the current one.
    fetching: HashMap<Id, (u64, HashSet<Id>)>,
}

impl Prefetcher {
    /// A prefetcher with as many threads as the backend wants requests in
    /// flight; `None` for a repository that keeps no local copy of its
    /// trees (a local one: nothing to gain).
    pub(crate) fn new(repo: Arc<Repository>) -> Option<Arc<Prefetcher>> {
        if !repo.caches_trees() {
            return None;
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(repo.backend().concurrency().max(1))
            .thread_name(|i| format!("cairn-prefetch-{i}"))
            .build()
            .ok()?;
        Some(Arc::new(Prefetcher {
            repo,
            pool: Arc::new(pool),
            state: Mutex::default(),
            level_done: Condvar::new(),
        }))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Start fetching the trees below the snapshot root `root`, once per
    /// mount; returns at once.
    pub(crate) fn start(self: &Arc<Self>, root: Id) {
        {
            let mut st = self.lock();
            if !st.started.insert(root) {
                return;
            }
            st.fetching.insert(root, (0, HashSet::from([root])));
        }
        let me = self.clone();
        let spawned = std::thread::Builder::new()
            .name("cairn-prefetch".into())
            .spawn(move || me.run(root));
        if spawned.is_err() {
            // Without the thread the listings read their trees themselves.
            self.finished(root);
        }
    }

    fn run(&self, root: Id) {
        let level = |ids: &[Id]| {
            let mut st = self.lock();
            let started = st.fetching.get(&root).map_or(0, |(n, _)| n + 1);
            st.fetching
                .insert(root, (started, ids.iter().copied().collect()));
            self.level_done.notify_all();
        };
        self.pool
            .install(|| self.repo.prefetch_trees_with(root, &level));
        self.finished(root);
    }

    fn finished(&self, root: Id) {
        self.lock().fetching.remove(&root);
        self.level_done.notify_all();
    }

    /// Wait while `tree`, below the snapshot root `root`, is being fetched
    /// and not yet in the cache. A tree not in the level being fetched may
    /// be in the next (its parent came from the cache before the level
    /// ended): it waits for one level more before the caller reads it.
    pub(crate) fn wait_for(&self, root: &Id, tree: &Id) {
        let mut st = self.lock();
        let mut waited_from: Option<u64> = None;
        while let Some((started, level)) = st.fetching.get(root) {
            if self.repo.has_cached_tree(tree) {
                return;
            }
            let first = *waited_from.get_or_insert(*started);
            if !level.contains(tree) && *started > first {
                return;
            }
            st = self.level_done.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    }
}
