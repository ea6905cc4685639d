//! Writing the content of a batch of files, reading each pack once: files
//! are prepared in parallel (an existing file is compared chunk by chunk and
//! keeps what is already right), the chunks still needed are grouped by
//! pack, and each pack's blobs are read in offset order in few large reads,
//! verified once, and written wherever they are needed. A file is created
//! when its first chunk arrives and finished (attributes applied, closed)
//! when its last one is written; at most `MAX_OPEN` files are open at once,
//! whatever the batch holds.

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
use crate::index::Location;
use crate::repository::{decode_blob, pack_key};
use crate::tree::Node;
use crate::{Error, Repository};

/// Files kept open between chunks, at most (the rest are reopened).
const MAX_OPEN: usize = 48;

/// One file of a batch.
pub(crate) struct BatchFile {
    pub rel: PathBuf,
    pub node: Node,
}

/// A chunk a file needs: blob id, file offset, length.
type Need = (Id, u64, u32);

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
}

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
        let by_pack = self.locate(&batch, &wanted);
        by_pack
            .par_iter()
            .for_each(|(pack, locs)| self.restore_pack(&batch, pack, locs, &wanted));
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
        let chunks = || {
            let mut offset = 0;
            f.node.content.iter().map(move |c| {
                let at = offset;
                offset += u64::from(c.len);
                (c.id, at, c.len)
            })
        };
        match self.dest.found(&f.rel).map_err(io)? {
            Found::File { nlink, size } if self.updatable(f, nlink) => {
                let file = self.dest.open_file(&f.rel, true).map_err(io)?;
                let mut scratch = Vec::new();
                let mut needs = Vec::new();
                for (id, offset, len) in chunks() {
                    if same_chunk(&file, offset, len, &id, &mut scratch) {
                        self.counters.add_unchanged(u64::from(len));
                        self.progress.bytes(u64::from(len));
                    } else {
                        needs.push((id, offset, len));
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
            Found::Nothing => self.prepare_new(f, chunks().collect()),
            _ => {
                // A directory, a link or a file with other names: replaced,
                // never written through.
                self.dest.remove(&f.rel).map_err(io)?;
                self.prepare_new(f, chunks().collect())
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
            file.set_len(f.node.size).map_err(io)?;
            apply_fd(file.as_fd(), &f.node, self.as_root).map_err(io)?;
            self.counters.files_written.fetch_add(1, Ordering::Relaxed);
        }
        Ok(needs)
    }

    /// Group the wanted blobs by pack; blobs the index lacks fail their files.
    fn locate(&self, batch: &Batch, wanted: &HashMap<Id, Vec<Target>>) -> Vec<(Id, Vec<Location>)> {
        let ids: Vec<Id> = wanted.keys().copied().collect();
        let mut by_pack: HashMap<Id, Vec<Location>> = HashMap::new();
        match self.repo.index().lookup_many(&ids) {
            Ok(locs) => {
                for (id, loc) in ids.iter().zip(locs) {
                    match loc {
                        Some(l) => by_pack.entry(l.pack).or_default().push(l),
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

    /// Read the needed blobs of one pack in offset order, in few large
    /// reads, verify each once and write it wherever it is needed.
    fn restore_pack(
        &self,
        batch: &Batch,
        pack: &Id,
        locs: &[Location],
        wanted: &HashMap<Id, Vec<Target>>,
    ) {
        let mut locs = locs.to_vec();
        locs.sort_by_key(|l| l.entry.offset);
        let key = pack_key(pack);
        for run in read_runs(&locs) {
            let start = run[0].entry.offset;
            // Not the last blob's end: a blob that starts earlier can end
            // later (an empty blob shares its offset with the next one, and
            // a forged index can make blobs overlap).
            let end = run
                .iter()
                .map(|l| l.entry.offset + u64::from(l.entry.stored_len))
                .max()
                .unwrap_or(start);
            let bytes = match self.repo.backend().get_range(&key, start, end - start) {
                Ok(b) => b,
                Err(e) => {
                    for l in run {
                        self.fail_all(batch, &wanted[&l.entry.id], &e);
                    }
                    continue;
                }
            };
            for l in run {
                let from = (l.entry.offset - start) as usize;
                let stored = bytes[from..from + l.entry.stored_len as usize].to_vec();
                let targets = &wanted[&l.entry.id];
                match decode_blob(l, stored) {
                    Ok(raw) => {
                        let zero = is_zero(&raw);
                        for t in targets {
                            self.put(batch, t, &raw, zero);
                        }
                    }
                    Err(e) => self.fail_all(batch, targets, &e),
                }
            }
        }
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
            drop(st);
            match apply_fd(file.as_fd(), &f.node, self.as_root) {
                Ok(()) => {
                    self.counters.files_written.fetch_add(1, Ordering::Relaxed);
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
                let file = self.dest.create_file(&f.rel).map_err(io)?;
                st.created = true;
                file.set_len(f.node.size).map_err(io)?;
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
        }
        Ok(())
    }
}

/// Blobs of a pack in offset order, grouped into ranges read at once:
/// a gap of more than 64 KiB, or a range past 2 MiB, starts a new one.
pub(crate) fn read_runs(locs: &[Location]) -> Vec<&[Location]> {
    const GAP: u64 = 64 << 10;
    const MAX: u64 = 2 << 20;
    let mut runs = Vec::new();
    let mut start = 0;
    for i in 1..=locs.len() {
        let split = i == locs.len() || {
            let prev = &locs[i - 1].entry;
            let next = &locs[i].entry;
            let prev_end = prev.offset + u64::from(prev.stored_len);
            next.offset > prev_end + GAP
                || next.offset + u64::from(next.stored_len) - locs[start].entry.offset > MAX
        };
        if split {
            runs.push(&locs[start..i]);
            start = i;
        }
    }
    runs
}

/// Whether `len` bytes at `offset` of `file` hash to `id`.
pub(crate) fn same_chunk(
    file: &File,
    offset: u64,
    len: u32,
    id: &Id,
    scratch: &mut Vec<u8>,
) -> bool {
    // Read and hashed a piece at a time: `len` comes from the tree, and a
    // forged one must not become an allocation of up to 4 GiB per thread.
    const PIECE: u64 = 1 << 20;
    let mut hasher = blake3::Hasher::new();
    let mut done = 0;
    while done < u64::from(len) {
        scratch.resize((u64::from(len) - done).min(PIECE) as usize, 0);
        if file.read_exact_at(scratch, offset + done).is_err() {
            return false;
        }
        hasher.update(scratch);
        done += scratch.len() as u64;
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

    #[test]
    fn reads_group_nearby_blobs_and_split_at_gaps_and_size() {
        use crate::pack::{BlobEntry, BlobKind};
        let loc = |offset: u64, len: u32| Location {
            pack: Id::default(),
            entry: BlobEntry {
                id: Id::of(&offset.to_le_bytes()),
                kind: BlobKind::Data,
                flags: 0,
                stored_len: len,
                raw_len: len,
                offset,
            },
        };
        let k = 1u64 << 10;
        let locs = vec![
            loc(0, 1024),
            loc(2 * k, 1024),          // small gap: same read
            loc(1024 * k, 1024),       // 1 MiB gap: new read
            loc(1026 * k, 2040 << 10), // same read, but ...
            loc(3070 * k, 8 << 10),    // ... this would pass 2 MiB in one read
        ];
        let sizes: Vec<usize> = read_runs(&locs).iter().map(|r| r.len()).collect();
        assert_eq!(sizes, vec![2, 2, 1]);
        assert!(read_runs(&[]).is_empty());
    }
}
