//! Collecting new blobs into packs during a backup, and the uploader thread
//! that verifies each finished pack and stores it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use cairn_chunk::compress::decompress;
use cairn_chunk::Id;
use crossbeam_channel::{bounded, Receiver, Sender};

use crate::pack::{BlobKind, FinishedPack, PackBuilder};
use crate::repository::pack_key;
use crate::segment::PackRecord;
use crate::{Backend, Error, Result};

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

/// Fills packs of one blob kind and hands full ones to the uploader.
pub struct Packer {
    kind: BlobKind,
    target: usize,
    current: Mutex<PackBuilder>,
    tx: Sender<FinishedPack>,
    counters: Arc<AddedCounters>,
}

impl Packer {
    /// Add one blob; ships the pack when it reaches the target size.
    pub fn add(&self, id: Id, stored: &[u8], compressed: bool, raw_len: u32) -> Result<()> {
        self.counters.blobs.fetch_add(1, Ordering::Relaxed);
        self.counters
            .raw
            .fetch_add(u64::from(raw_len), Ordering::Relaxed);
        self.counters
            .stored
            .fetch_add(stored.len() as u64, Ordering::Relaxed);
        let full = {
            let mut cur = self.current.lock().unwrap_or_else(|p| p.into_inner());
            cur.add(id, self.kind, stored, compressed, raw_len);
            (cur.len() >= self.target).then(|| std::mem::take(&mut *cur))
        };
        match full {
            Some(b) => self.ship(b),
            None => Ok(()),
        }
    }

    fn ship(&self, builder: PackBuilder) -> Result<()> {
        self.tx.send(builder.finish()).map_err(|_| uploader_gone())
    }

    /// Ship the partly filled pack, if any.
    pub fn flush(&self) -> Result<()> {
        let b = std::mem::take(&mut *self.current.lock().unwrap_or_else(|p| p.into_inner()));
        if b.is_empty() {
            Ok(())
        } else {
            self.ship(b)
        }
    }
}

fn uploader_gone() -> Error {
    Error::Invalid("pack uploader stopped after an earlier error".into())
}

/// The thread that verifies and stores finished packs.
pub struct Uploader {
    tx: Option<Sender<FinishedPack>>,
    handle: JoinHandle<Result<Vec<PackRecord>>>,
    /// What the packers added.
    pub counters: Arc<AddedCounters>,
}

impl Uploader {
    /// Start the uploader. With `dry_run` packs are verified and counted but
    /// not stored.
    pub fn start(backend: Arc<dyn Backend>, dry_run: bool) -> Uploader {
        let (tx, rx) = bounded::<FinishedPack>(2);
        let handle = std::thread::spawn(move || upload_loop(&*backend, &rx, dry_run));
        Uploader {
            tx: Some(tx),
            handle,
            counters: Arc::default(),
        }
    }

    /// A packer for one kind of blob feeding this uploader.
    pub fn packer(&self, kind: BlobKind, target: usize) -> Packer {
        Packer {
            kind,
            target,
            current: Mutex::new(PackBuilder::default()),
            tx: self.tx.clone().expect("uploader running"),
            counters: self.counters.clone(),
        }
    }

    /// Wait for every pack to be stored; the records go into an index segment.
    /// All packers must have been flushed and dropped first.
    pub fn finish(mut self) -> Result<Vec<PackRecord>> {
        self.tx.take();
        self.handle
            .join()
            .unwrap_or_else(|_| Err(Error::Invalid("pack uploader panicked".into())))
    }
}

fn upload_loop(
    backend: &dyn Backend,
    rx: &Receiver<FinishedPack>,
    dry_run: bool,
) -> Result<Vec<PackRecord>> {
    let mut records = Vec::new();
    for pack in rx {
        verify(&pack)?;
        if !dry_run {
            backend.put(&pack_key(&pack.id), &pack.bytes)?;
        }
        records.push(PackRecord {
            pack: pack.id,
            entries: pack.entries,
        });
    }
    Ok(records)
}

/// Check every blob of a pack against its id before the pack is committed,
/// so a bug or bad memory cannot store data that does not match its name.
fn verify(pack: &FinishedPack) -> Result<()> {
    for e in &pack.entries {
        let stored = &pack.bytes[e.offset as usize..][..e.stored_len as usize];
        let ok = if e.compressed() {
            decompress(stored, e.raw_len as usize).is_ok_and(|raw| Id::of(&raw) == e.id)
        } else {
            Id::of(stored) == e.id
        };
        if !ok {
            return Err(Error::corrupt(
                "blob",
                e.id,
                "does not match its id after compression; nothing was stored",
            ));
        }
    }
    Ok(())
}
