//! Progress of the operations that work through a repository (check,
//! prune, copy): the operation reports what it learns and does, the front
//! end decides how (and how often) to show it.

/// Receives the progress of a check, prune or copy. Totals grow as the
/// operation learns how much work there is; every method has a default
/// that does nothing.
pub trait WorkProgress: Sync {
    /// More work became known: `items` (packs, snapshots) and `bytes` to
    /// add to the totals.
    fn expect(&self, _items: u64, _bytes: u64) {}
    /// Work was done: `items` finished and `bytes` read or written.
    fn advance(&self, _items: u64, _bytes: u64) {}
    /// What is being worked on now (a pack or snapshot id).
    fn working_on(&self, _what: &str) {}
    /// Whether the user asked to stop (Ctrl-C, SIGTERM): the operation then
    /// ends at its next safe point with `Error::Interrupted`.
    fn cancelled(&self) -> bool {
        false
    }
}

/// `Error::Interrupted` once the user asked to stop.
pub(crate) fn stop_if_cancelled(progress: &dyn WorkProgress) -> crate::Result<()> {
    if progress.cancelled() {
        return Err(crate::Error::Interrupted);
    }
    Ok(())
}

/// Progress nobody watches.
pub struct NoProgress;

impl WorkProgress for NoProgress {}
