//! Collecting new blobs into packs during a backup, and the uploader thread
//! that stores finished packs.
//!
//! Kept in one file although long: the packer, its spool files and the
//! uploader share one protocol (who locks, writes, ships and removes a spool
//! file), which is easier to check read in one place.
//!
//! Each worker thread fills its own pack, so adding a blob never waits for
//! another thread. A pack is written to a spool file as it fills (memory
//! holds only a write buffer), hashed as it goes, and handed to the uploader
//! when it reaches the target size. Every blob is decompressed and checked
//! against its id before it is written, by the thread that made it.
//!
//! In a repository with frames (format 3, docs/FORMAT.md 14) a data packer
//! takes plain blobs and collects them, per worker, into a frame; a full
//! frame is compressed, checked by decompressing it and comparing, sealed
//! and written as one unit.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use cairn_chunk::compress::decompress;
use cairn_chunk::{Compression, Id};
use crossbeam_channel::{bounded, Receiver, Sender};

use crate::format::config::Config;
use crate::format::crypto::{fill_random, Codec, Domain};
use crate::format::frame::{Closed, FrameBuf};
use crate::format::layout::{self, FileType};
use crate::format::pack::{
    encode_entries, encode_sealed_trailer, encode_trailer, has_frames, BlobEntry, BlobKind,
    FLAG_ZSTD, PACK_SALT_LEN,
};
use crate::format::segment::PackRecord;
use crate::random::{random_bytes, unique_name};
use crate::store::local::{create_dir_durable, create_private};
use crate::{Backend, Error, Result};

/// Buffer between a pack writer and its spool file.
const WRITE_BUFFER: usize = 256 << 10;
/// Blobs in one pack, at most: a pack of tiny blobs ships before it
/// reaches the target size, so that the entries of open packs (and the ids
/// a backup keeps until their segment is written) stay few.
pub const MAX_PACK_ENTRIES: usize = 32 << 10;

/// Counts of what was added to packs.
#[derive(Default, Debug)]
pub struct AddedCounters {
    /// Blobs added.
    pub blobs: AtomicU64,
    /// Their plain bytes.
    pub raw: AtomicU64,
    /// Their stored bytes.
    pub stored: AtomicU64,
}

/// A finished pack waiting in the spool for the uploader.
struct SpooledPack {
    id: Id,
    path: PathBuf,
    entries: Vec<BlobEntry>,
    /// The spool file, open and locked until the pack is stored (see
    /// [`clean_spool`]).
    _locked: File,
}

/// One pack being filled.
struct PackWriter {
    path: PathBuf,
    file: BufWriter<File>,
    hasher: blake3::Hasher,
    entries: Vec<BlobEntry>,
    len: u64,
}

/// Spool failures are storage errors (a full disk, say), never errors of
/// the file being backed up.
fn spool_err(path: &Path, source: std::io::Error) -> Error {
    Error::Spool {
        path: path.to_path_buf(),
        source,
    }
}

/// Where packs are built before they are stored: the backend's staging
/// directory (a local repository's own), else [`temp_spool`].
pub fn spool_dir(backend: &dyn Backend) -> PathBuf {
    backend.staging_dir().unwrap_or_else(temp_spool)
}

/// The spool of this user in the temporary directory (`TMPDIR`, else
/// `/tmp`): one per user, since one shared by all would either refuse
/// every user but its creator (it is private) or let users touch each
/// other's packs. Processes of one user share it: every file has a random
/// name, created exclusively, and is locked while in use.
pub fn temp_spool() -> PathBuf {
    // SAFETY: geteuid cannot fail.
    let uid = unsafe { libc::geteuid() };
    std::env::temp_dir().join(format!("cairn-spool-{uid}"))
}

/// Make the spool directory if it is missing. In the shared temporary
/// directory, also refuse one that is not this user's alone (made by
/// another user, a symlink, open to others): whoever can write there could
/// replace a pack file between its writing and its upload.
fn prepare_spool(spool: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    create_dir_durable(spool).map_err(|e| spool_err(spool, e))?;
    if spool != temp_spool() {
        return Ok(());
    }
    let meta = fs::symlink_metadata(spool).map_err(|e| spool_err(spool, e))?;
    // SAFETY: geteuid cannot fail.
    let uid = unsafe { libc::geteuid() };
    if meta.is_dir() && meta.uid() == uid && meta.mode() & 0o077 == 0 {
        return Ok(());
    }
    Err(Error::SpoolNotPrivate {
        path: spool.to_path_buf(),
        owner: meta.uid(),
        mode: meta.mode() & 0o7777,
    })
}

/// Remove spool files older than `age` that no process is writing (left
/// by crashed backups); returns how many. Only names cairn makes
/// (`pack-...`) are touched.
pub fn clean_spool(backend: &dyn Backend, age: std::time::Duration) -> u64 {
    let Ok(entries) = fs::read_dir(spool_dir(backend)) else {
        return 0;
    };
    let mut removed = 0;
    for e in entries.flatten() {
        if !e.file_name().to_string_lossy().starts_with("pack-") {
            continue;
        }
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|a| a > age);
        if !old {
            continue;
        }
        // Held until the file is removed, so no writer can take it meanwhile.
        let Some(_unlocked) = lock_unless_written(&e.path()) else {
            continue;
        };
        if fs::remove_file(e.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// Try to take the lock every spool file's writer holds while the file is
/// in use (an exclusive `flock`, released by the kernel when the writer
/// exits, however it exits). `Some` (holding the lock) when no process has
/// it; `None` when one does, or the file cannot be opened or locked (a
/// filesystem without `flock` keeps its spool files).
fn lock_unless_written(path: &Path) -> Option<File> {
    let file = File::open(path).ok()?;
    try_lock(&file).then_some(file)
}

/// Take an exclusive `flock` on `file` without waiting; whether it was taken.
fn try_lock(file: &File) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor `file` owns for the whole call.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

impl PackWriter {
    fn create(spool: &Path) -> Result<PackWriter> {
        prepare_spool(spool)?;
        // A random name, created exclusively: a file left by a dead process
        // can never be in the way (a name made of the pid could be).
        let path = spool.join(unique_name("pack-"));
        let file = create_private(&path).map_err(|e| spool_err(&path, e))?;
        // Locked while this process has it (until the pack is stored), so
        // `clean_spool` can tell a leftover from a file being written. A
        // filesystem without `flock` only loses that cleaning.
        try_lock(&file);
        let mut w = PackWriter {
            path,
            file: BufWriter::with_capacity(WRITE_BUFFER, file),
            hasher: blake3::Hasher::new(),
            entries: Vec::new(),
            len: 0,
        };
        // A salt no entry covers: two packs of the same blobs still get
        // different names, so a pack a prune plan dooms is never "written
        // again" by a backup that happens to pack the same data.
        w.write(&random_bytes::<PACK_SALT_LEN>())?;
        Ok(w)
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.file
            .write_all(bytes)
            .map_err(|e| spool_err(&self.path, e))?;
        self.hasher.update(bytes);
        self.len += bytes.len() as u64;
        Ok(())
    }

    fn add(&mut self, mut entry: BlobEntry, stored: &[u8]) -> Result<()> {
        entry.offset = self.len;
        self.write(stored)?;
        self.entries.push(entry);
        Ok(())
    }

    fn full(&self, target: u64) -> bool {
        self.len >= target || self.entries.len() >= MAX_PACK_ENTRIES
    }

    fn finish(mut self, codec: &Codec) -> Result<SpooledPack> {
        let trailer = match codec {
            Codec::Plain => encode_trailer(&self.entries),
            Codec::Sealed(_) => {
                let table = seal(
                    codec,
                    Domain::PackTable,
                    None,
                    encode_entries(&self.entries),
                )?;
                let trailer = encode_sealed_trailer(&table, has_frames(&self.entries));
                // Pad to a multiple of 4 KiB, so a pack of few blobs says
                // little about their lengths (docs/FORMAT.md section 13).
                let total = self.len + trailer.len() as u64;
                let mut pad = vec![0u8; ((PAD_TO - total % PAD_TO) % PAD_TO) as usize];
                fill_random(&mut pad).map_err(random_failed)?;
                self.write(&pad)?;
                trailer
            }
        };
        self.write(&trailer)?;
        let file = self
            .file
            .into_inner()
            .map_err(|e| spool_err(&self.path, e.into_error()))?;
        Ok(SpooledPack {
            id: Id(*self.hasher.finalize().as_bytes()),
            path: self.path,
            entries: self.entries,
            _locked: file,
        })
    }
}

/// Encrypted packs are padded to a multiple of this many bytes.
const PAD_TO: u64 = 4096;

fn random_failed(e: std::io::Error) -> Error {
    Error::io("/dev/urandom", e)
}

fn seal(codec: &Codec, domain: Domain, id: Option<&Id>, plain: Vec<u8>) -> Result<Vec<u8>> {
    codec.seal(domain, id, plain).map_err(random_failed)
}

/// One worker's open pack and, with frames, its open frame.
#[derive(Default)]
struct Slot {
    pack: Option<PackWriter>,
    frame: Option<FrameBuf>,
}

/// Fills packs of one blob kind and hands full ones to the uploader.
pub struct Packer {
    kind: BlobKind,
    codec: Arc<Codec>,
    target: u64,
    /// Frame size and compression, when blobs are framed.
    frames: Option<(u32, Compression)>,
    /// One open pack per rayon worker, plus one for other threads.
    slots: Vec<Mutex<Slot>>,
    /// `None` for a dry run: blobs are verified and counted, not written.
    spool: Option<PathBuf>,
    tx: Sender<SpooledPack>,
    counters: Arc<AddedCounters>,
}

impl Packer {
    /// Frame the data blobs of a repository whose format has frames
    /// (docs/FORMAT.md 14); other packers are returned as they are.
    pub fn framed(mut self, config: &Config) -> Packer {
        if self.kind == BlobKind::Data {
            self.frames = config.frames().map(|size| (size, config.compression));
        }
        self
    }

    /// Whether this packer frames blobs: it then wants them plain.
    pub fn frames(&self) -> bool {
        self.frames.is_some()
    }

    fn slot(&self) -> &Mutex<Slot> {
        let last = self.slots.len() - 1;
        let i = rayon::current_thread_index().map_or(last, |i| i % last);
        &self.slots[i]
    }

    /// Add one blob; ships the pack when it reaches the target size.
    pub fn add(&self, id: Id, stored: &[u8], compressed: bool, raw_len: u32) -> Result<()> {
        self.add_with(id, stored, compressed, raw_len, |_| ())
    }

    /// As [`Packer::add`], handing `written` the bytes as the pack holds
    /// them (sealed, for an encrypted repository): what a local cache of
    /// the blob must keep. A framing packer never calls `written` (only
    /// data blobs are framed, and nothing caches them).
    pub fn add_with(
        &self,
        id: Id,
        stored: &[u8],
        compressed: bool,
        raw_len: u32,
        written: impl FnOnce(&[u8]),
    ) -> Result<()> {
        if let Some((size, compression)) = self.frames {
            return self.add_to_frame(id, stored, compressed, raw_len, size, compression);
        }
        verify(&self.codec, &id, stored, compressed, raw_len)?;
        let sealed;
        let stored = match &*self.codec {
            Codec::Plain => stored,
            Codec::Sealed(keys) => {
                sealed = keys
                    .seal(Domain::Blob(self.kind), Some(&id), stored)
                    .map_err(random_failed)?;
                &sealed[..]
            }
        };
        self.counters.blobs.fetch_add(1, Ordering::Relaxed);
        self.counters
            .raw
            .fetch_add(u64::from(raw_len), Ordering::Relaxed);
        self.counters
            .stored
            .fetch_add(stored.len() as u64, Ordering::Relaxed);
        written(stored);
        let Some(spool) = &self.spool else {
            return Ok(());
        };
        let entry = BlobEntry {
            id,
            kind: self.kind,
            flags: if compressed { FLAG_ZSTD } else { 0 },
            stored_len: stored.len() as u32,
            raw_len,
            offset: 0,
            frame: None,
        };
        let full = {
            let mut slot = self.slot().lock().unwrap_or_else(|p| p.into_inner());
            let slot = &mut slot.pack;
            if slot.is_none() {
                *slot = Some(PackWriter::create(spool)?);
            }
            let w = slot.as_mut().expect("just filled");
            w.add(entry, stored)?;
            if w.full(self.target) {
                slot.take()
            } else {
                None
            }
        };
        match full {
            Some(w) => self.ship(w),
            None => Ok(()),
        }
    }

    /// Add a blob to this worker's frame, closing the frame first when the
    /// blob does not fit beside what is in it.
    fn add_to_frame(
        &self,
        id: Id,
        stored: &[u8],
        compressed: bool,
        raw_len: u32,
        size: u32,
        compression: Compression,
    ) -> Result<()> {
        let plain;
        let raw = if compressed {
            // Blobs copied from packs arrive compressed (prune, copy).
            plain = decompress(stored, raw_len as usize)
                .map_err(|e| Error::corrupt("blob", id, e.to_string()))?;
            &plain[..]
        } else {
            stored
        };
        if raw.len() != raw_len as usize {
            return Err(Error::corrupt(
                "blob",
                id,
                "length differs from what was claimed; nothing was stored",
            ));
        }
        let full = {
            let mut slot = self.slot().lock().unwrap_or_else(|p| p.into_inner());
            let frame = slot
                .frame
                .get_or_insert_with(|| FrameBuf::new(self.kind, size));
            let closed = if !frame.is_empty() && !frame.fits(raw.len()) {
                Some(frame.take(compression).map_err(|e| frame_failed(&id, e))?)
            } else {
                None
            };
            frame.push(id, raw);
            match closed {
                Some(c) => self.write_closed(&mut slot, c)?,
                None => None,
            }
        };
        match full {
            Some(w) => self.ship(w),
            None => Ok(()),
        }
    }

    /// Seal a closed frame (or single blob) and append it to the slot's
    /// pack; returns the pack when it is full.
    fn write_closed(&self, slot: &mut Slot, mut closed: Closed) -> Result<Option<PackWriter>> {
        let plain = std::mem::take(&mut closed.stored);
        let stored = match &*self.codec {
            Codec::Plain => plain,
            Codec::Sealed(_) if closed.is_frame() => {
                seal(&self.codec, Domain::Frame(self.kind), None, plain)?
            }
            Codec::Sealed(_) => seal(
                &self.codec,
                Domain::Blob(self.kind),
                Some(&closed.members[0].0),
                plain,
            )?,
        };
        let raw: u64 = closed.members.iter().map(|m| u64::from(m.1)).sum();
        self.counters
            .blobs
            .fetch_add(closed.members.len() as u64, Ordering::Relaxed);
        self.counters.raw.fetch_add(raw, Ordering::Relaxed);
        self.counters
            .stored
            .fetch_add(stored.len() as u64, Ordering::Relaxed);
        let Some(spool) = &self.spool else {
            return Ok(None);
        };
        if slot.pack.is_none() {
            slot.pack = Some(PackWriter::create(spool)?);
        }
        let w = slot.pack.as_mut().expect("just filled");
        let stored_len = u32::try_from(stored.len())
            .map_err(|_| Error::Internal("a frame larger than 4 GiB"))?;
        let entries = closed.entries(w.len, stored_len);
        w.write(&stored)?;
        w.entries.extend(entries);
        Ok(if w.full(self.target) {
            slot.pack.take()
        } else {
            None
        })
    }

    fn ship(&self, w: PackWriter) -> Result<()> {
        let path = w.path.clone();
        let pack = w.finish(&self.codec).inspect_err(|_| {
            let _ = fs::remove_file(&path);
        })?;
        self.tx.send(pack).map_err(|e| {
            let _ = fs::remove_file(&e.0.path);
            uploader_gone()
        })
    }

    /// Close every open frame and ship every partly filled pack.
    pub fn flush(&self) -> Result<()> {
        for slot in &self.slots {
            let w = {
                let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
                let open = slot.frame.take().filter(|f| !f.is_empty());
                if let (Some(mut frame), Some((_, compression))) = (open, self.frames) {
                    let first = frame.first().unwrap_or_default();
                    let closed = frame
                        .take(compression)
                        .map_err(|e| frame_failed(&first, e))?;
                    if let Some(full) = self.write_closed(&mut slot, closed)? {
                        self.ship(full)?;
                    }
                }
                slot.pack.take()
            };
            if let Some(w) = w {
                self.ship(w)?;
            }
        }
        Ok(())
    }
}

fn frame_failed(id: &Id, why: String) -> Error {
    Error::corrupt("frame", id, format!("{why}; nothing was stored"))
}

impl Drop for Packer {
    /// A backup that failed leaves no spool files behind.
    fn drop(&mut self) {
        for slot in &self.slots {
            if let Some(w) = slot.lock().unwrap_or_else(|p| p.into_inner()).pack.take() {
                let _ = fs::remove_file(&w.path);
            }
        }
    }
}

fn uploader_gone() -> Error {
    Error::Internal("the pack uploader stopped after an earlier error")
}

/// Records of the packs stored so far that no index segment lists yet.
#[derive(Default)]
pub struct Stored {
    records: Mutex<Vec<PackRecord>>,
    /// Blob entries in `records`.
    entries: AtomicU64,
}

impl Stored {
    fn push(&self, record: PackRecord) {
        let mut records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        self.entries
            .fetch_add(record.entries.len() as u64, Ordering::Relaxed);
        records.push(record);
    }

    /// Take the records once they list at least `min_entries` blobs, so
    /// that a long backup can publish them in a segment of their own and
    /// keep neither them nor what they let it forget in memory.
    pub fn take(&self, min_entries: u64) -> Option<Vec<PackRecord>> {
        if self.entries.load(Ordering::Relaxed) < min_entries.max(1) {
            return None;
        }
        let mut records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        self.entries.store(0, Ordering::Relaxed);
        Some(std::mem::take(&mut *records))
    }
}

/// The thread that stores finished packs.
pub struct Uploader {
    codec: Arc<Codec>,
    tx: Option<Sender<SpooledPack>>,
    /// One thread per request the backend can usefully run at once.
    handles: Vec<JoinHandle<Result<()>>>,
    spool: Option<PathBuf>,
    /// What the packers added.
    pub counters: Arc<AddedCounters>,
    /// Packs stored and not yet taken.
    pub stored: Arc<Stored>,
}

impl Uploader {
    /// Start the uploader. With `dry_run` nothing is written anywhere.
    pub fn start(backend: Arc<dyn Backend>, codec: Arc<Codec>, dry_run: bool) -> Uploader {
        let threads = backend.concurrency().clamp(1, 64);
        // Packs wait in the spool, not in memory: a longer queue costs disk.
        let (tx, rx) = bounded::<SpooledPack>(threads + 2);
        let spool = (!dry_run).then(|| spool_dir(&*backend));
        let stored = Arc::new(Stored::default());
        let handles = (0..threads)
            .map(|_| {
                let (backend, rx, stored) = (backend.clone(), rx.clone(), stored.clone());
                std::thread::spawn(move || upload_loop(&*backend, &rx, &stored))
            })
            .collect();
        Uploader {
            codec,
            tx: Some(tx),
            handles,
            spool,
            counters: Arc::default(),
            stored,
        }
    }

    /// A packer for one kind of blob feeding this uploader.
    pub fn packer(&self, kind: BlobKind, target: usize) -> Packer {
        Packer {
            kind,
            codec: self.codec.clone(),
            target: target as u64,
            frames: None,
            slots: (0..=rayon::current_num_threads())
                .map(|_| Mutex::new(Slot::default()))
                .collect(),
            spool: self.spool.clone(),
            tx: self.tx.clone().expect("uploader running"),
            counters: self.counters.clone(),
        }
    }

    /// Wait for every pack to be stored; the records not taken yet go into
    /// an index segment. All packers must have been flushed and dropped first.
    pub fn finish(mut self) -> Result<Vec<PackRecord>> {
        self.tx.take();
        let mut failed = None;
        for h in std::mem::take(&mut self.handles) {
            match h.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    failed.get_or_insert(e);
                }
                Err(_) => {
                    failed.get_or_insert(Error::Internal("a pack uploader panicked"));
                }
            }
        }
        let records = self.stored.take(0).unwrap_or_default();
        failed.map_or(Ok(records), Err)
    }
}

fn upload_loop(backend: &dyn Backend, rx: &Receiver<SpooledPack>, stored: &Stored) -> Result<()> {
    let mut failed = None;
    for pack in rx {
        if failed.is_some() {
            // Keep draining so no packer blocks, and leave no spool files.
            let _ = fs::remove_file(&pack.path);
            continue;
        }
        match backend.put_file(&layout::key(FileType::Pack, &pack.id), &pack.path) {
            Ok(()) => stored.push(PackRecord {
                pack: pack.id,
                entries: pack.entries,
            }),
            Err(e) => failed = Some(e.into()),
        }
    }
    failed.map_or(Ok(()), Err)
}

/// Check a blob against its id before it goes into a pack, so a bug or bad
/// memory cannot store data that does not match its name.
fn verify(codec: &Codec, id: &Id, stored: &[u8], compressed: bool, raw_len: u32) -> Result<()> {
    let ok = if compressed {
        decompress(stored, raw_len as usize).is_ok_and(|raw| codec.blob_id(&raw) == *id)
    } else {
        stored.len() == raw_len as usize && codec.blob_id(stored) == *id
    };
    if ok {
        Ok(())
    } else {
        Err(Error::corrupt(
            "blob",
            id,
            "does not match its id after compression; nothing was stored",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LocalBackend;

    #[test]
    fn clean_spool_removes_only_old_files_no_process_writes() {
        let dir = tempfile::tempdir().unwrap();
        let b = LocalBackend::new(dir.path());
        let spool = spool_dir(&b);
        fs::create_dir_all(&spool).unwrap();
        let old = filetime::FileTime::from_unix_time(1_000_000_000, 0);
        let dead = spool.join(unique_name("pack-"));
        // A leftover of an older cairn, named after its pid (ours, now).
        let legacy = spool.join(format!("pack-{}-0", std::process::id()));
        let written = spool.join(unique_name("pack-"));
        let fresh = spool.join(unique_name("pack-"));
        let foreign = spool.join("notes.txt");
        for p in [&dead, &legacy, &written, &fresh, &foreign] {
            fs::write(p, b"x").unwrap();
        }
        for p in [&dead, &legacy, &written, &foreign] {
            filetime::set_file_mtime(p, old).unwrap();
        }
        let writer = File::open(&written).unwrap();
        assert!(try_lock(&writer));
        assert_eq!(clean_spool(&b, std::time::Duration::from_secs(3600)), 2);
        assert!(!dead.exists() && !legacy.exists());
        assert!(written.exists() && fresh.exists() && foreign.exists());
        drop(writer);
        assert_eq!(clean_spool(&b, std::time::Duration::from_secs(3600)), 1);
        assert!(!written.exists());
    }

    fn entry() -> BlobEntry {
        BlobEntry {
            id: Id::of(b"x"),
            kind: BlobKind::Data,
            flags: 0,
            stored_len: 1,
            raw_len: 1,
            offset: 0,
            frame: None,
        }
    }

    #[test]
    fn stored_records_are_taken_once_they_list_enough_blobs() {
        let stored = Stored::default();
        let record = |n: usize| PackRecord {
            pack: Id::of(&n.to_le_bytes()),
            entries: vec![entry(); n],
        };
        assert!(stored.take(0).is_none(), "nothing stored, nothing taken");
        stored.push(record(3));
        assert!(stored.take(5).is_none());
        stored.push(record(2));
        let taken = stored.take(5).unwrap();
        assert_eq!(taken.len(), 2);
        assert!(stored.take(1).is_none(), "taken records are gone");
        stored.push(record(1));
        assert_eq!(stored.take(0).unwrap().len(), 1);
    }

    #[test]
    fn a_pack_of_tiny_blobs_is_full_at_max_entries() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = PackWriter::create(&dir.path().join(".spool")).unwrap();
        for _ in 0..MAX_PACK_ENTRIES - 1 {
            w.add(entry(), b"x").unwrap();
        }
        assert!(!w.full(16 << 20));
        w.add(entry(), b"x").unwrap();
        assert!(w.full(16 << 20));
    }

    #[test]
    fn a_pack_being_built_or_waiting_for_upload_is_locked() {
        let dir = tempfile::tempdir().unwrap();
        let spool = dir.path().join(".spool");
        let mut w = PackWriter::create(&spool).unwrap();
        w.write(b"blob").unwrap();
        assert!(lock_unless_written(&w.path).is_none());
        let pack = w.finish(&Codec::Plain).unwrap();
        assert!(lock_unless_written(&pack.path).is_none());
        let path = pack.path.clone();
        drop(pack);
        assert!(lock_unless_written(&path).is_some());
    }
}
