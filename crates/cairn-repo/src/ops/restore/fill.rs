//! Writing the content of a batch of files, reading each pack once: files
//! are prepared in parallel (an existing file is compared chunk by chunk and
//! keeps what is already right), the chunks still needed are grouped by
//! pack, and each pack's blobs are read in offset order in few large reads
//! (spread over the readers, each read on its own), verified once, and
//! written wherever they are needed. A file is created
//! when its first chunk arrives and finished (attributes applied, closed)
//! when its last one is written; at most `MAX_OPEN` files are open at once,
//! whatever the batch holds.
//!
//! Just over 500 lines: preparing, reading and writing a batch share its
//! slots and counters, and read best in one place.

use std::collections::HashMap;
use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use cairn_chunk::Id;
use rayon::prelude::*;

use super::dest::{apply_fd, Dest, Found};
use super::plan::LinkGroups;
use super::{Counters, Problems, RestoreProgress};
use crate::format::crypto::Codec;
use crate::format::pack::BlobEntry;
use crate::format::tree::Node;
use crate::store::spans::{plan_spans, Span};
use crate::{Error, Repository};

/// Files kept open between chunks, at most (the rest are reopened).
const MAX_OPEN: usize = 48;

/// One file of a batch.
pub(crate) struct BatchFile {
    pub rel: PathBuf,
    pub node: Node,
}

/// A chunk a file needs: blob id, file offset, length.
pub(crate) type Need = (Id, u64, u32);

/// Where one blob goes: file `file` of the batch at `offset`, `len` bytes.
#[derive(Clone, Copy)]
struct Target {
    file: usize,
    offset: u64,
    len: u32,
}

#[derive(Default)]
struct SlotState {
    /// The file existed and is updated in place.
    reuse: bool,
    /// This restore created it (later opens must not create it again).
    created: bool,
    file: Option<File>,
    /// Chunks still to write.
    remaining: usize,
    /// Finished, or failed and reported.
    done: bool,
    /// A zero chunk of a created file was left as a hole: the file's
    /// length is set when it is finished.
    holes: bool,
}

/// Writes batches of files into the target.
pub(crate) struct Filler<'a> {
    pub repo: &'a Repository,
    pub dest: &'a Dest,
    pub as_root: bool,
    pub progress: &'a dyn RestoreProgress,
    pub counters: &'a Counters,
    pub problems: &'a Problems,
    pub links: &'a LinkGroups,
    /// Threads of their own for reading packs, when the backend wants more
    /// requests in flight than there are cores (an object store far away);
    /// `None`: the reads run on rayon's pool.
    pub readers: Option<usize>,
    /// The target was empty when the restore began: files are created
    /// without looking first (`O_EXCL` refuses whatever appeared since).
    pub fresh: bool,
}

/// Decoded blobs of one pack written out together, in parallel, once
/// they hold this many bytes, at most.
const PUT_BYTES: usize = 4 << 20;
/// Decoded blobs waiting to be written, across every reader: with many
/// readers (an object store), each holds its share, not `PUT_BYTES`
/// (restoring the scale-1 bench tree from S3, 16 readers at 4 MiB each
/// peaked at 135 MiB of RSS, at 1 MiB each at 76 MiB).
const PUT_BUDGET: usize = 16 << 20;
/// Nor fewer than this.
const PUT_BYTES_MIN: usize = 256 << 10;
/// Or this many blobs.
const PUT_BLOBS: usize = 512;

struct Batch<'b> {
    files: &'b [BatchFile],
    slots: Vec<Mutex<SlotState>>,
    open: AtomicUsize,
}

impl Filler<'_> {
    /// Restore the content and attributes of every file in `files`.
    pub fn fill(&self, files: &[BatchFile]) {
        let prepared: Vec<(SlotState, Vec<Need>)> =
            files.par_iter().map(|f| self.prepare(f)).collect();
        let mut wanted: HashMap<Id, Vec<Target>> = HashMap::new();
        let mut slots = Vec::with_capacity(files.len());
        for (i, (slot, needs)) in prepared.into_iter().enumerate() {
            for (id, offset, len) in needs {
                wanted.entry(id).or_default().push(Target {
                    file: i,
                    offset,
                    len,
                });
            }
            slots.push(Mutex::new(slot));
        }
        let batch = Batch {
            files,
            slots,
            open: AtomicUsize::new(0),
        };
        let readers = self.readers.unwrap_or_else(rayon::current_num_threads);
        let spans = plan_spans(self.locate(&batch, &wanted), self.repo.read_plan(), readers);
        let read = |(pack, entries): &Span| self.restore_pack(&batch, pack, entries, &wanted);
        match self.readers {
            Some(n) => on_threads(n, &spans, read),
            None => spans.par_iter().for_each(read),
        }
        for (i, slot) in batch.slots.iter().enumerate() {
            let st = slot.lock().unwrap_or_else(|p| p.into_inner());
            if !st.done {
                // Every chunk was accounted for above; reaching here is a bug,
                // and it must not pass as a restored file.
                drop(st);
                self.failed(&batch, i, "not all chunks were written".into());
            }
        }
    }

    /// Decide what a file needs: for an existing regular file with one link,
    /// the chunks whose bytes differ; else all of them, and whatever is in
    /// the way is removed. Files that need nothing are finished here.
    fn prepare(&self, f: &BatchFile) -> (SlotState, Vec<Need>) {
        let mut slot = SlotState::default();
        match self.prepare_inner(f, &mut slot) {
            Ok(needs) if needs.is_empty() => {
                slot.done = true;
                (slot, needs)
            }
            Ok(needs) => {
                slot.remaining = needs.len();
                (slot, needs)
            }
            Err(why) => {
                self.problems.add(&f.rel, why);
                self.counters.files_failed.fetch_add(1, Ordering::Relaxed);
                slot.done = true;
                (slot, Vec::new())
            }
        }
    }

    fn prepare_inner(&self, f: &BatchFile, slot: &mut SlotState) -> Result<Vec<Need>, String> {
        let io = |e: std::io::Error| e.to_string();
        let all = || {
            compare_chunks(self.repo.codec(), None, &f.node)
                .map(|(need, _)| need)
                .collect()
        };
        if self.fresh {
            return self.prepare_new(f, all());
        }
        match self.dest.found(&f.rel).map_err(io)? {
            Found::File { nlink, size } if self.updatable(f, nlink) => {
                let file = self.dest.open_file(&f.rel, true).map_err(io)?;
                let mut needs = Vec::new();
                for (need, same) in compare_chunks(self.repo.codec(), Some(&file), &f.node) {
                    if same {
                        self.counters.add_unchanged(u64::from(need.2));
                        self.progress.bytes(u64::from(need.2));
                    } else {
                        needs.push(need);
                    }
                }
                file.set_len(f.node.size).map_err(io)?;
                slot.reuse = true;
                if needs.is_empty() {
                    apply_fd(file.as_fd(), &f.node, self.as_root).map_err(io)?;
                    let counter = if size == f.node.size {
                        &self.counters.files_unchanged
                    } else {
                        &self.counters.files_written
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                Ok(needs)
            }
            Found::Nothing => self.prepare_new(f, all()),
            _ => {
                // A directory, a link or a file with other names: replaced,
                // never written through.
                self.dest.remove(&f.rel).map_err(io)?;
                self.prepare_new(f, all())
            }
        }
    }

    /// Whether an existing file may be updated in place: it has no other
    /// name, or its other names are exactly the snapshot's for this inode.
    fn updatable(&self, f: &BatchFile, nlink: u64) -> bool {
        if nlink == 1 {
            return true;
        }
        let Some(names) = self.links.get(&(f.node.dev, f.node.inode)) else {
            return false;
        };
        f.node.nlink > 1
            && names.len() as u64 == nlink
            && names.iter().all(|n| self.dest.same_inode(n, &f.rel))
    }

    fn prepare_new(&self, f: &BatchFile, needs: Vec<Need>) -> Result<Vec<Need>, String> {
        if needs.is_empty() {
            let io = |e: std::io::Error| e.to_string();
            let file = self.dest.create_file(&f.rel).map_err(io)?;
            if f.node.size > 0 {
                file.set_len(f.node.size).map_err(io)?;
            }
            apply_fd(file.as_fd(), &f.node, self.as_root).map_err(io)?;
            self.counters.files_written.fetch_add(1, Ordering::Relaxed);
        }
        Ok(needs)
    }

    /// Group the wanted blobs by pack; blobs the index lacks fail their files.
    fn locate(&self, batch: &Batch, wanted: &HashMap<Id, Vec<Target>>) -> Vec<Span> {
        let ids: Vec<Id> = wanted.keys().copied().collect();
        let mut by_pack: HashMap<Id, Vec<BlobEntry>> = HashMap::new();
        match self.repo.index().lookup_many(&ids) {
            Ok(locs) => {
                for (id, loc) in ids.iter().zip(locs) {
                    match loc {
                        Some(l) => by_pack.entry(l.pack).or_default().push(l.entry),
                        None => self.fail_all(batch, &wanted[id], &Error::MissingBlob(*id)),
                    }
                }
            }
            Err(e) => {
                for targets in wanted.values() {
                    self.fail_all(batch, targets, &e);
                }
            }
        }
        by_pack.into_iter().collect()
    }

    fn fail_all(&self, batch: &Batch, targets: &[Target], e: &dyn std::fmt::Display) {
        for t in targets {
            self.failed(batch, t.file, e.to_string());
        }
    }

    /// Report a file as failed (once) and close it; it keeps its private mode.
    fn failed(&self, batch: &Batch, file: usize, why: String) {
        let mut st = batch.slots[file].lock().unwrap_or_else(|p| p.into_inner());
        if st.done {
            return;
        }
        st.done = true;
        if st.file.take().is_some() {
            batch.open.fetch_sub(1, Ordering::Relaxed);
        }
        drop(st);
        self.problems.add(&batch.files[file].rel, why);
        self.counters.files_failed.fetch_add(1, Ordering::Relaxed);
    }

    /// Read needed blobs of one pack (in offset order, verified once) and
    /// write each wherever it is needed.
    fn restore_pack(
        &self,
        batch: &Batch,
        pack: &Id,
        entries: &[BlobEntry],
        wanted: &HashMap<Id, Vec<Target>>,
    ) {
        if self.progress.cancelled() {
            return; // the restore ends with Error::Interrupted
        }
        // Many small files make creating them the cost, not reading: the
        // blobs read are written out on every core.
        let mut ready: Vec<(Id, Vec<u8>)> = Vec::new();
        let mut bytes = 0;
        let readers = self.readers.unwrap_or_else(rayon::current_num_threads);
        let put_bytes = (PUT_BUDGET / readers.max(1)).clamp(PUT_BYTES_MIN, PUT_BYTES);
        let write_out = |ready: &mut Vec<(Id, Vec<u8>)>| {
            ready.par_iter().for_each(|(id, raw)| {
                let zero = is_zero(raw);
                for t in &wanted[id] {
                    self.put(batch, t, raw, zero);
                }
            });
            ready.clear();
        };
        self.repo.stream_blobs(pack, entries, |e, raw| {
            if self.progress.cancelled() {
                return;
            }
            match raw {
                Ok(raw) => {
                    bytes += raw.len();
                    ready.push((e.id, raw));
                    if bytes >= put_bytes || ready.len() >= PUT_BLOBS {
                        write_out(&mut ready);
                        bytes = 0;
                    }
                }
                Err(err) => self.fail_all(batch, &wanted[&e.id], &err),
            }
        });
        write_out(&mut ready);
    }

    /// Write one chunk into one file; the last chunk finishes the file.
    fn put(&self, batch: &Batch, t: &Target, raw: &[u8], zero: bool) {
        let f = &batch.files[t.file];
        if raw.len() != t.len as usize {
            let why = format!(
                "a chunk is {} bytes, the snapshot says {}",
                raw.len(),
                t.len
            );
            return self.failed(batch, t.file, why);
        }
        let mut st = batch.slots[t.file]
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if st.done {
            return;
        }
        let result = self.write_chunk(batch, &mut st, f, t, raw, zero);
        if let Err(why) = result {
            drop(st);
            return self.failed(batch, t.file, why);
        }
        self.counters.add_written(raw.len() as u64);
        self.progress.bytes(raw.len() as u64);
        st.remaining -= 1;
        if st.remaining == 0 {
            let file = st.file.take().expect("open while writing");
            batch.open.fetch_sub(1, Ordering::Relaxed);
            st.done = true;
            let holes = st.holes;
            drop(st);
            let finished = if holes || content_len(&f.node) != f.node.size {
                file.set_len(f.node.size)
            } else {
                Ok(())
            };
            match finished.and_then(|_| apply_fd(file.as_fd(), &f.node, self.as_root)) {
                Ok(()) => {
                    self.counters.files_written.fetch_add(1, Ordering::Relaxed);
                    self.progress.file_done(&f.rel);
                }
                Err(e) => {
                    self.problems
                        .add(&f.rel, format!("setting attributes: {e}"));
                    self.counters.files_failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        } else if batch.open.load(Ordering::Relaxed) > MAX_OPEN {
            st.file = None;
            batch.open.fetch_sub(1, Ordering::Relaxed);
        }
    }

    fn write_chunk(
        &self,
        batch: &Batch,
        st: &mut SlotState,
        f: &BatchFile,
        t: &Target,
        raw: &[u8],
        zero: bool,
    ) -> Result<(), String> {
        let io = |e: std::io::Error| e.to_string();
        if st.file.is_none() {
            let file = if st.reuse || st.created {
                self.dest.open_file(&f.rel, true).map_err(io)?
            } else {
                // Its length is right once every chunk is written (or set
                // when it is finished, see `holes`).
                let file = self.dest.create_file(&f.rel).map_err(io)?;
                st.created = true;
                file
            };
            st.file = Some(file);
            batch.open.fetch_add(1, Ordering::Relaxed);
        }
        let file = st.file.as_ref().expect("just opened");
        if !zero {
            file.write_all_at(raw, t.offset).map_err(io)?;
        } else if st.reuse {
            // A new file is already a hole there; an old one gets one punched.
            punch_hole(file, t.offset, raw.len() as u64).map_err(io)?;
        } else {
            st.holes = true;
        }
        Ok(())
    }
}

/// Run `read` on every span, on `n` threads of their own taking the next
/// span as they finish one. Not rayon's pool: a reader holds a connection
/// while it writes what it read, and a rayon worker waiting for those
/// writes could pick up another read and wait for a connection that only
/// the readers it interrupted would free.
fn on_threads(n: usize, spans: &[Span], read: impl Fn(&Span) + Sync) {
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..n.min(spans.len()) {
            scope.spawn(|| {
                while let Some(span) = spans.get(next.fetch_add(1, Ordering::Relaxed)) {
                    read(span);
                }
            });
        }
    });
}

/// The length a file's chunks add up to.
fn content_len(node: &Node) -> u64 {
    node.content.iter().map(|c| u64::from(c.len)).sum()
}

/// Each chunk of `node` as (id, offset, length, whether `file` already
/// holds exactly those bytes there). With no file, nothing is held.
pub(crate) fn compare_chunks<'a>(
    codec: &'a Codec,
    file: Option<&'a File>,
    node: &'a Node,
) -> impl Iterator<Item = (Need, bool)> + 'a {
    let mut scratch = Vec::new();
    let mut offset = 0u64;
    node.content.iter().map(move |c| {
        let at = offset;
        offset = offset.saturating_add(u64::from(c.len));
        let same = file.is_some_and(|f| holds(codec, f, at, c.len, &c.id, &mut scratch));
        ((c.id, at, c.len), same)
    })
}

/// Whether `file` holds the blob `id` at `at`. Read in pieces so that a
/// forged chunk length cannot make restore allocate gigabytes.
fn holds(codec: &Codec, file: &File, at: u64, len: u32, id: &Id, scratch: &mut Vec<u8>) -> bool {
    const PIECE: usize = 1 << 20;
    let mut hasher = codec.blob_hasher();
    let mut done = 0u64;
    while done < u64::from(len) {
        let n = (u64::from(len) - done).min(PIECE as u64) as usize;
        scratch.resize(n, 0);
        if file
            .read_exact_at(scratch, at.saturating_add(done))
            .is_err()
        {
            return false;
        }
        hasher.update(scratch);
        done += n as u64;
    }
    Id(*hasher.finalize().as_bytes()) == *id
}

fn is_zero(buf: &[u8]) -> bool {
    // SAFETY: every bit pattern is a valid u128, and align_to only hands out
    // the aligned middle part as u128s.
    let (pre, words, post) = unsafe { buf.align_to::<u128>() };
    pre.iter().all(|&b| b == 0) && words.iter().all(|&w| w == 0) && post.iter().all(|&b| b == 0)
}

fn punch_hole(file: &File, offset: u64, len: u64) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: valid descriptor; fallocate only touches the given range.
    let rc = unsafe {
        libc::fallocate(
            file.as_raw_fd(),
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            offset as libc::off_t,
            len as libc::off_t,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    // Filesystems without hole punching get real zeros.
    file.write_all_at(&vec![0u8; len as usize], offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_detection() {
        assert!(is_zero(&[0u8; 1000]));
        let mut v = vec![0u8; 1000];
        v[999] = 1;
        assert!(!is_zero(&v));
        assert!(is_zero(&[]));
    }
}
