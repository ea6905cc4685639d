//! The local index cache: a SQLite database mapping blob ids to their place
//! in a pack. It is rebuilt from the repository's index segments whenever it
//! is missing, stale or damaged; nothing is lost by deleting it.

use std::borrow::Borrow;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use cairn_chunk::Id;
use rusqlite::{params, Connection, OptionalExtension};

use crate::format::pack::{BlobEntry, BlobKind, Frame};
use crate::format::segment::Segment;
use crate::{Error, Result};

/// Bumped when the cache's tables change; an older cache is rebuilt.
const CACHE_SCHEMA: i64 = 3;

/// Where a blob is: its pack and its entry in the pack's table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    /// Pack name.
    pub pack: Id,
    /// Offset, lengths, kind, flags.
    pub entry: BlobEntry,
}

/// A count of blobs and their sizes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct BlobTotals {
    /// Number of blobs.
    pub count: u64,
    /// Plain bytes.
    pub raw: u64,
    /// Bytes in packs.
    pub stored: u64,
}

/// The SQLite index cache.
pub struct Index {
    conn: Mutex<Connection>,
    path: PathBuf,
    /// Whether any pack is doomed; without, dedup uses the plain lookup.
    any_doomed: std::sync::atomic::AtomicBool,
    /// A read transaction is open for lookups (changed only under `conn`).
    reading: std::sync::atomic::AtomicBool,
}

impl Index {
    /// Open (or create) the cache at `path`; `None` keeps it in memory.
    pub fn open(path: Option<&Path>) -> Result<Index> {
        let shown = path.map_or_else(|| PathBuf::from(":memory:"), Path::to_path_buf);
        let err = |e| Error::Cache {
            path: shown.clone(),
            source: e,
        };
        let conn = match path {
            Some(p) => Connection::open(p),
            None => Connection::open_in_memory(),
        }
        .map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(30))
            .map_err(err)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;
             CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v INTEGER NOT NULL);",
        )
        .map_err(err)?;
        let schema: Option<i64> = conn
            .query_row("SELECT v FROM meta WHERE k='schema'", [], |r| r.get(0))
            .optional()
            .map_err(err)?;
        if schema != Some(CACHE_SCHEMA) {
            conn.execute_batch(
                "DROP TABLE IF EXISTS blobs; DROP TABLE IF EXISTS packs;
                 DROP TABLE IF EXISTS segments; DROP TABLE IF EXISTS doomed;
                 DROP TABLE IF EXISTS superseded;",
            )
            .map_err(err)?;
        }
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS segments(id BLOB PRIMARY KEY) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS superseded(id BLOB PRIMARY KEY) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS doomed(pack BLOB PRIMARY KEY) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS packs(n INTEGER PRIMARY KEY, id BLOB NOT NULL UNIQUE);
             CREATE TABLE IF NOT EXISTS blobs(
                 id BLOB PRIMARY KEY, pack INTEGER NOT NULL, kind INTEGER NOT NULL,
                 flags INTEGER NOT NULL, offset INTEGER NOT NULL,
                 stored_len INTEGER NOT NULL, raw_len INTEGER NOT NULL,
                 frame_pos INTEGER NOT NULL DEFAULT 0,
                 frame_len INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;",
        )
        .map_err(err)?;
        conn.execute(
            "INSERT OR REPLACE INTO meta(k, v) VALUES('schema', ?1)",
            [CACHE_SCHEMA],
        )
        .map_err(err)?;
        Ok(Index {
            conn: Mutex::new(conn),
            path: shown,
            any_doomed: std::sync::atomic::AtomicBool::new(true),
            reading: std::sync::atomic::AtomicBool::new(false),
        })
    }

    fn err(&self, e: rusqlite::Error) -> Error {
        Error::Cache {
            path: self.path.clone(),
            source: e,
        }
    }

    /// The connection, with no transaction open.
    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        if self
            .reading
            .swap(false, std::sync::atomic::Ordering::Relaxed)
        {
            // Only reads happened in it: ending it cannot lose anything.
            let _ = conn.execute_batch("COMMIT");
        }
        conn
    }

    /// The connection inside a read transaction that stays open across
    /// [`Index::contains`] calls until something else uses the connection
    /// or [`Index::end_reads`]: a backup asks once per new chunk, and a
    /// transaction each costs file locking syscalls. They see this
    /// process's writes (a write ends the transaction first) and may miss
    /// other processes' rows meanwhile, as if asked a little earlier.
    fn reader(&self) -> std::sync::MutexGuard<'_, Connection> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        if !self.reading.load(std::sync::atomic::Ordering::Relaxed)
            && conn.execute_batch("BEGIN").is_ok()
        {
            self.reading
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        conn
    }

    /// Segments already loaded.
    pub fn segments(&self) -> Result<HashSet<Id>> {
        self.id_set("SELECT id FROM segments")
    }

    /// Segment ids that some segment read into this cache supersedes: such
    /// a segment is never loaded, even when it is still present (a prune
    /// deletes it after publishing its superseder).
    pub fn superseded(&self) -> Result<HashSet<Id>> {
        self.id_set("SELECT id FROM superseded")
    }

    /// The ids a one-column query returns (malformed ones skipped).
    fn id_set(&self, query: &str) -> Result<HashSet<Id>> {
        let conn = self.conn();
        let mut st = conn.prepare_cached(query).map_err(|e| self.err(e))?;
        let rows = st
            .query_map([], |r| r.get::<_, Vec<u8>>(0))
            .map_err(|e| self.err(e))?;
        let mut out = HashSet::new();
        for r in rows {
            if let Some(id) = Id::from_slice(&r.map_err(|e| self.err(e))?) {
                out.insert(id);
            }
        }
        Ok(out)
    }

    /// Remember that these segments are superseded (before the segments
    /// that supersede them are added, so that a process stopped in between
    /// never loads them later).
    pub fn add_superseded<'a>(&self, ids: impl IntoIterator<Item = &'a Id>) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        {
            let mut ins = tx
                .prepare_cached("INSERT OR IGNORE INTO superseded(id) VALUES(?1)")
                .map_err(|e| self.err(e))?;
            for id in ids {
                ins.execute([&id.0[..]]).map_err(|e| self.err(e))?;
            }
        }
        tx.commit().map_err(|e| self.err(e))
    }

    /// Forget everything (before a rebuild).
    pub fn clear(&self) -> Result<()> {
        self.conn()
            .execute_batch(
                "DELETE FROM blobs; DELETE FROM packs; DELETE FROM segments;
                 DELETE FROM superseded;",
            )
            .map_err(|e| self.err(e))
    }

    /// Record a segment's packs and blobs, in one transaction.
    pub fn add_segment(&self, id: &Id, seg: &Segment) -> Result<()> {
        self.add_segments(std::iter::once(Ok((*id, seg))))
    }

    /// Record many segments' packs and blobs in one transaction, taking
    /// each segment from `segs` only when it is its turn (the caller need
    /// not hold them all). Blobs go first to a staging table in arrival
    /// order and reach `blobs` sorted by id in one statement: a B-tree
    /// larger than the page cache is then written leaf after leaf, not one
    /// random leaf per blob. A blob keeps its first location (the one
    /// already cached, else the first of `segs` that lists it). An error
    /// from `segs` leaves the cache as it was.
    pub fn add_segments<S: Borrow<Segment>>(
        &self,
        segs: impl IntoIterator<Item = Result<(Id, S)>>,
    ) -> Result<()> {
        let mut conn = self.conn();
        // The sort spills to temporary files beyond this much memory.
        conn.execute_batch(
            "PRAGMA cache_size=-16384;
             CREATE TEMP TABLE IF NOT EXISTS staging(
                 id BLOB NOT NULL, pack INTEGER NOT NULL, kind INTEGER NOT NULL,
                 flags INTEGER NOT NULL, offset INTEGER NOT NULL,
                 stored_len INTEGER NOT NULL, raw_len INTEGER NOT NULL,
                 frame_pos INTEGER NOT NULL, frame_len INTEGER NOT NULL);
             DELETE FROM temp.staging;",
        )
        .map_err(|e| self.err(e))?;
        let loaded = self.load_staged(&mut conn, segs);
        let _ = conn.execute_batch("DELETE FROM temp.staging; PRAGMA cache_size=-2000;");
        loaded
    }

    fn load_staged<S: Borrow<Segment>>(
        &self,
        conn: &mut Connection,
        segs: impl IntoIterator<Item = Result<(Id, S)>>,
    ) -> Result<()> {
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        {
            let mut ins_pack = tx
                .prepare_cached("INSERT OR IGNORE INTO packs(id) VALUES(?1)")
                .map_err(|e| self.err(e))?;
            let mut get_pack = tx
                .prepare_cached("SELECT n FROM packs WHERE id=?1")
                .map_err(|e| self.err(e))?;
            let mut ins_blob = tx
                .prepare_cached(
                    "INSERT INTO temp.staging(id, pack, kind, flags, offset, stored_len, raw_len,
                                              frame_pos, frame_len)
                     VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )
                .map_err(|e| self.err(e))?;
            let mut ins_seg = tx
                .prepare_cached("INSERT OR IGNORE INTO segments(id) VALUES(?1)")
                .map_err(|e| self.err(e))?;
            for seg in segs {
                let (id, seg) = seg?;
                for p in &seg.borrow().packs {
                    ins_pack.execute([&p.pack.0[..]]).map_err(|e| self.err(e))?;
                    let n: i64 = get_pack
                        .query_row([&p.pack.0[..]], |r| r.get(0))
                        .map_err(|e| self.err(e))?;
                    for e in &p.entries {
                        ins_blob
                            .execute(params![
                                &e.id.0[..],
                                n,
                                e.kind as u8,
                                e.flags,
                                e.offset as i64,
                                e.stored_len,
                                e.raw_len,
                                e.frame.map_or(0, |f| f.pos),
                                e.frame.map_or(0, |f| f.raw_len)
                            ])
                            .map_err(|e| self.err(e))?;
                    }
                }
                ins_seg.execute([&id.0[..]]).map_err(|e| self.err(e))?;
            }
            tx.execute(
                "INSERT OR IGNORE INTO blobs(id, pack, kind, flags, offset, stored_len, raw_len,
                                             frame_pos, frame_len)
                 SELECT id, pack, kind, flags, offset, stored_len, raw_len, frame_pos, frame_len
                 FROM temp.staging ORDER BY id, rowid",
                [],
            )
            .map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))
    }

    /// Where a blob is stored, if anywhere.
    pub fn lookup(&self, id: &Id) -> Result<Option<Location>> {
        let conn = self.conn();
        lookup_with(&conn, id).map_err(|e| self.err(e))
    }

    /// Locations of many blobs under one lock, in one read transaction
    /// (a transaction per lookup costs file locking syscalls each).
    pub fn lookup_many(&self, ids: &[Id]) -> Result<Vec<Option<Location>>> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        let found = ids
            .iter()
            .map(|id| lookup_with(&tx, id).map_err(|e| self.err(e)))
            .collect();
        tx.finish().map_err(|e| self.err(e))?;
        found
    }

    /// End the read transaction [`Index::contains`] keeps open, so that a
    /// long-lived process does not hold back other processes' checkpoints.
    pub fn end_reads(&self) {
        drop(self.conn());
    }

    /// Whether a blob is stored in a pack a backup may reference: a blob
    /// only in a pack that a prune plan dooms does not count (a backup stores
    /// it again rather than depend on it).
    pub fn contains(&self, id: &Id) -> Result<bool> {
        let conn = self.reader();
        let sql = if self.any_doomed.load(std::sync::atomic::Ordering::Relaxed) {
            "SELECT 1 FROM blobs b JOIN packs p ON p.n = b.pack
             WHERE b.id=?1 AND NOT EXISTS (SELECT 1 FROM doomed d WHERE d.pack = p.id)"
        } else {
            "SELECT 1 FROM blobs WHERE id=?1"
        };
        let mut st = conn.prepare_cached(sql).map_err(|e| self.err(e))?;
        st.exists([&id.0[..]]).map_err(|e| self.err(e))
    }

    /// Replace the set of packs that prune plans doom.
    pub fn set_doomed(&self, packs: &HashSet<Id>) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        tx.execute("DELETE FROM doomed", [])
            .map_err(|e| self.err(e))?;
        {
            let mut ins = tx
                .prepare_cached("INSERT OR IGNORE INTO doomed(pack) VALUES(?1)")
                .map_err(|e| self.err(e))?;
            for p in packs {
                ins.execute([&p.0[..]]).map_err(|e| self.err(e))?;
            }
        }
        tx.commit().map_err(|e| self.err(e))?;
        self.any_doomed
            .store(!packs.is_empty(), std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// Counts and sizes per blob kind (a frame member counts for its share
    /// of the frame's stored bytes, [`BlobEntry::stored_share`]).
    pub fn totals(&self, kind: BlobKind) -> Result<BlobTotals> {
        let conn = self.conn();
        conn.query_row(
            "SELECT COUNT(*), COALESCE(SUM(raw_len),0),
                    COALESCE(SUM(CASE WHEN frame_len > 0 THEN stored_len * raw_len / frame_len
                                      ELSE stored_len END),0)
             FROM blobs WHERE kind=?1",
            [kind as u8],
            |r| {
                Ok(BlobTotals {
                    count: r.get::<_, i64>(0)? as u64,
                    raw: r.get::<_, i64>(1)? as u64,
                    stored: r.get::<_, i64>(2)? as u64,
                })
            },
        )
        .map_err(|e| self.err(e))
    }
}

fn lookup_with(conn: &Connection, id: &Id) -> rusqlite::Result<Option<Location>> {
    let mut st = conn.prepare_cached(
        "SELECT p.id, b.kind, b.flags, b.offset, b.stored_len, b.raw_len, b.frame_pos, b.frame_len
         FROM blobs b JOIN packs p ON p.n = b.pack WHERE b.id=?1",
    )?;
    st.query_row([&id.0[..]], |r| {
        let pack: Vec<u8> = r.get(0)?;
        let kind: u8 = r.get(1)?;
        Ok(Location {
            pack: Id::from_slice(&pack).unwrap_or_default(),
            entry: BlobEntry {
                id: *id,
                kind: BlobKind::from_u8(kind).unwrap_or(BlobKind::Data),
                flags: r.get(2)?,
                offset: r.get::<_, i64>(3)? as u64,
                stored_len: r.get(4)?,
                raw_len: r.get(5)?,
                frame: match r.get::<_, u32>(7)? {
                    0 => None,
                    raw_len => Some(Frame {
                        pos: r.get(6)?,
                        raw_len,
                    }),
                },
            },
        })
    })
    .optional()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::segment::PackRecord;

    fn one_blob_segment(blob: Id, pack: &[u8], offset: u64) -> Segment {
        Segment {
            supersedes: vec![],
            packs: vec![PackRecord {
                pack: Id::of(pack),
                entries: vec![BlobEntry {
                    id: blob,
                    kind: BlobKind::Data,
                    flags: 0,
                    stored_len: 10,
                    raw_len: 10,
                    offset,
                    frame: None,
                }],
            }],
        }
    }

    #[test]
    fn a_bulk_load_keeps_each_blobs_first_location() {
        let idx = Index::open(None).unwrap();
        let (a, b) = (Id::of(b"a"), Id::of(b"b"));
        idx.add_segment(&Id::of(b"s0"), &one_blob_segment(a, b"p0", 0))
            .unwrap();
        // Many blobs in arrival order unlike id order, and duplicates.
        let mut many: Vec<Result<(Id, Segment)>> = (0..500u32)
            .map(|i| {
                let blob = Id::of(&i.to_le_bytes());
                Ok((Id::of(&[i as u8, 1]), one_blob_segment(blob, b"p1", 7)))
            })
            .collect();
        many.push(Ok((Id::of(b"s1"), one_blob_segment(a, b"p1", 1))));
        many.push(Ok((Id::of(b"s2"), one_blob_segment(b, b"p2", 2))));
        many.push(Ok((Id::of(b"s3"), one_blob_segment(b, b"p3", 3))));
        idx.add_segments(many).unwrap();
        assert_eq!(idx.lookup(&a).unwrap().unwrap().pack, Id::of(b"p0"));
        assert_eq!(idx.lookup(&b).unwrap().unwrap().pack, Id::of(b"p2"));
        assert_eq!(idx.lookup(&b).unwrap().unwrap().entry.offset, 2);
        for i in 0..500u32 {
            assert!(idx.contains(&Id::of(&i.to_le_bytes())).unwrap());
        }
        assert_eq!(idx.totals(BlobKind::Data).unwrap().count, 502);
    }

    #[test]
    fn a_failed_bulk_load_leaves_the_cache_as_it_was() {
        let idx = Index::open(None).unwrap();
        let (a, b) = (Id::of(b"a"), Id::of(b"b"));
        let segs: Vec<Result<(Id, Segment)>> = vec![
            Ok((Id::of(b"s1"), one_blob_segment(a, b"p1", 0))),
            Err(Error::MissingBlob(b)),
        ];
        assert!(idx.add_segments(segs).is_err());
        assert!(idx.lookup(&a).unwrap().is_none());
        assert!(idx.segments().unwrap().is_empty());
        // The staging table is emptied: the next load sees none of it.
        idx.add_segment(&Id::of(b"s2"), &one_blob_segment(b, b"p2", 0))
            .unwrap();
        assert!(idx.lookup(&a).unwrap().is_none());
        assert!(idx.lookup(&b).unwrap().is_some());
    }

    #[test]
    fn segments_load_and_lookup() {
        let idx = Index::open(None).unwrap();
        let blob = Id::of(b"blob");
        let entry = BlobEntry {
            id: blob,
            kind: BlobKind::Data,
            flags: 1,
            stored_len: 10,
            raw_len: 20,
            offset: 5,
            frame: None,
        };
        let seg = Segment {
            supersedes: vec![],
            packs: vec![PackRecord {
                pack: Id::of(b"pack"),
                entries: vec![entry],
            }],
        };
        idx.add_segment(&Id::of(b"seg"), &seg).unwrap();
        let loc = idx.lookup(&blob).unwrap().unwrap();
        assert_eq!(loc.pack, Id::of(b"pack"));
        assert_eq!(loc.entry, entry);
        assert!(idx.contains(&blob).unwrap());
        assert!(!idx.contains(&Id::of(b"other")).unwrap());
        // contains() keeps a read transaction open; a write ends it and
        // the next contains() sees the new rows.
        let other = BlobEntry {
            id: Id::of(b"other"),
            ..entry
        };
        let seg2 = Segment {
            supersedes: vec![],
            packs: vec![PackRecord {
                pack: Id::of(b"pack2"),
                entries: vec![other],
            }],
        };
        idx.add_segment(&Id::of(b"seg2"), &seg2).unwrap();
        assert!(idx.contains(&other.id).unwrap());
        assert_eq!(idx.lookup_many(&[blob, other.id]).unwrap().len(), 2);
        idx.end_reads();
        assert_eq!(idx.segments().unwrap().len(), 2);
        assert_eq!(idx.totals(BlobKind::Data).unwrap().raw, 40);
        // A doomed pack stays readable but does not count for dedup.
        idx.set_doomed(&[Id::of(b"pack")].into_iter().collect())
            .unwrap();
        assert!(!idx.contains(&blob).unwrap());
        assert!(idx.lookup(&blob).unwrap().is_some());
        idx.set_doomed(&HashSet::new()).unwrap();
        assert!(idx.contains(&blob).unwrap());
        idx.clear().unwrap();
        assert!(idx.lookup(&blob).unwrap().is_none());
    }
}
