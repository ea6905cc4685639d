//! Measuring how trees would deduplicate and compress under several chunker
//! and compression settings, without storing anything (`cairn bench`).
//!
//! Each file is read once per chunk size; within that pass every chunk is
//! hashed, and a chunk not seen before in the pass is compressed once with
//! each compression setting, counting its compressed size (or its raw size
//! when compression does not make it smaller, as a repository stores it).
//! Only chunk ids are kept between files, so memory grows with the number
//! of distinct chunks (about 50 bytes each), not with the data.
//!
//! A *framed* method (as format-3 repositories store data) groups the new
//! chunks of the pass, in walk order, into frames of up to a given number
//! of plain bytes and compresses each frame as one unit.
//!
//! The paths are surveyed in order as separate trees sharing one chunk set,
//! the way successive snapshots share a repository: what the last path adds
//! on top of the ones before it is reported as its incremental cost.

use std::collections::HashSet;
use std::fs::File;
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rayon::prelude::*;

use crate::{Chunker, ChunkerParams, Compression, Id, ParamsError, WalkError, WalkOptions, Walker};

/// Bytes of a pack-file entry per stored blob (docs/FORMAT.md, section 6).
pub const PACK_ENTRY_BYTES: u64 = 52;
/// Bytes of an index-segment entry per stored blob (docs/FORMAT.md, section 8).
pub const INDEX_ENTRY_BYTES: u64 = 52;
/// Bytes of a file's content list per chunk reference in its tree: a 32-byte
/// id and a varint length, about 35 bytes (docs/FORMAT.md, section 7).
pub const CHUNK_REF_BYTES: u64 = 35;

/// What to survey.
#[derive(Clone, Debug)]
pub struct SurveyOptions {
    /// Average chunk sizes; each is run with min = avg/4 and max = avg*4.
    pub chunk_avgs: Vec<u32>,
    /// Compression settings, each applied to every distinct chunk.
    pub compressions: Vec<Compression>,
    /// Framed methods: compression and frame size in plain bytes, each
    /// applied to frames of consecutive distinct chunks.
    pub frames: Vec<(Compression, u32)>,
    /// Excludes and filesystem boundary while walking.
    pub walk: WalkOptions,
}

/// What the last of several paths adds on top of the ones before it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Incremental {
    /// Distinct chunks of the last path that no earlier path has.
    pub chunks: u64,
    /// Their plain bytes.
    pub bytes: u64,
    /// Their bytes as stored with this setting's compression.
    pub stored_bytes: u64,
}

/// The result for one (chunk size, compression) pair.
#[derive(Clone, Debug)]
pub struct Setting {
    /// Chunker sizes used.
    pub params: ChunkerParams,
    /// Compression used.
    pub compression: Compression,
    /// For a framed method: the frame size in plain bytes.
    pub frame_size: Option<u32>,
    /// Bytes of all files of all paths.
    pub logical_bytes: u64,
    /// Plain bytes of the distinct chunks.
    pub unique_bytes: u64,
    /// Bytes the distinct chunks take compressed (raw where that is smaller).
    pub stored_bytes: u64,
    /// Chunk references in all files.
    pub chunk_count: u64,
    /// Distinct chunks.
    pub unique_chunks: u64,
    /// Seconds spent reading, cutting and hashing at this chunk size, plus
    /// compressing with this compression.
    pub seconds: f64,
    /// With two or more paths: what the last one adds.
    pub incremental: Option<Incremental>,
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

impl Setting {
    /// The method as users name it: `zstd:3`, or `zstd:3 in 256K frames`.
    pub fn method(&self) -> String {
        match self.frame_size {
            None => self.compression.to_string(),
            Some(f) => format!("{} in {}K frames", self.compression, f >> 10),
        }
    }

    /// Logical bytes per distinct byte.
    pub fn dedup_ratio(&self) -> f64 {
        ratio(self.logical_bytes, self.unique_bytes)
    }

    /// Distinct bytes per stored byte.
    pub fn compression_ratio(&self) -> f64 {
        ratio(self.unique_bytes, self.stored_bytes)
    }

    /// Logical bytes per stored byte.
    pub fn total_ratio(&self) -> f64 {
        ratio(self.logical_bytes, self.stored_bytes)
    }

    /// Estimated metadata: each distinct chunk has a pack entry and an index
    /// segment entry, and every chunk reference costs its tree about
    /// [`CHUNK_REF_BYTES`]. The local SQLite cache comes on top of this.
    pub fn index_bytes(&self) -> u64 {
        self.unique_chunks * (PACK_ENTRY_BYTES + INDEX_ENTRY_BYTES)
            + self.chunk_count * CHUNK_REF_BYTES
    }

    /// Logical bytes per second of [`Setting::seconds`].
    pub fn throughput(&self) -> f64 {
        if self.seconds > 0.0 {
            self.logical_bytes as f64 / self.seconds
        } else {
            0.0
        }
    }
}

/// One surveyed path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathSummary {
    /// The path as given.
    pub path: PathBuf,
    /// Regular files read.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// Every setting's result, chunk sizes in the order given, compressions
/// within each.
#[derive(Clone, Debug)]
pub struct Survey {
    /// One per (chunk size, compression).
    pub settings: Vec<Setting>,
    /// One per path.
    pub paths: Vec<PathSummary>,
}

/// A survey that cannot run.
#[derive(Debug, thiserror::Error)]
pub enum SurveyError {
    /// A chunk size FastCDC does not accept.
    #[error(transparent)]
    Params(#[from] ParamsError),
    /// A path that cannot be walked, or a bad exclude pattern.
    #[error(transparent)]
    Walk(#[from] WalkError),
    /// Nothing to do.
    #[error("bench: {0}")]
    Empty(&'static str),
}

/// Survey `paths` under every setting of `opts`. Files or directories that
/// cannot be read are skipped and reported through `problem` (once, in the
/// first pass; a file that fails part-way keeps what was read of it); a
/// path that cannot be read at all is an error.
pub fn survey(
    paths: &[PathBuf],
    opts: &SurveyOptions,
    problem: &mut dyn FnMut(String),
) -> Result<Survey, SurveyError> {
    if paths.is_empty() {
        return Err(SurveyError::Empty("no path given"));
    }
    if opts.chunk_avgs.is_empty() || (opts.compressions.is_empty() && opts.frames.is_empty()) {
        return Err(SurveyError::Empty("no chunk size or no compression given"));
    }
    let params: Vec<ChunkerParams> = opts
        .chunk_avgs
        .iter()
        .map(|&avg| ChunkerParams::from_avg(avg))
        .collect::<Result<_, _>>()?;
    let mut settings = Vec::new();
    let mut summaries = Vec::new();
    for (n, p) in params.into_iter().enumerate() {
        let mut pass = Pass::new(p, &opts.compressions, &opts.frames, paths.len());
        let mut report = |msg: String| {
            if n == 0 {
                problem(msg);
            }
        };
        for (i, path) in paths.iter().enumerate() {
            let summary = pass.path(i, path, &opts.walk, &mut report)?;
            if n == 0 {
                summaries.push(summary);
            }
        }
        settings.extend(pass.finish(paths.len()));
    }
    Ok(Survey {
        settings,
        paths: summaries,
    })
}

/// One chunk size over all paths.
struct Pass<'a> {
    chunker: Chunker,
    compressions: &'a [Compression],
    last_path: usize,
    seen: HashSet<Id>,
    logical: u64,
    chunks: u64,
    unique: u64,
    unique_chunks: u64,
    /// Per compression.
    stored: Vec<u64>,
    /// Per compression.
    compress_time: Vec<Duration>,
    /// Reading, cutting and hashing.
    chunk_time: Duration,
    inc: Vec<Incremental>,
    /// Per framed method.
    framed: Vec<Framed>,
}

/// One framed method's open frame and totals.
struct Framed {
    compression: Compression,
    size: usize,
    open: Vec<u8>,
    stored: u64,
    time: Duration,
    inc: Incremental,
}

impl Framed {
    /// Add the fresh chunks of a block, compressing the frames they close
    /// (in parallel); returns the stored bytes of those frames.
    fn add(&mut self, block: &[u8], fresh: &[Range<usize>]) -> u64 {
        let started = Instant::now();
        let mut closed = Vec::new();
        for r in fresh {
            if !self.open.is_empty() && self.open.len() + r.len() > self.size {
                closed.push(std::mem::take(&mut self.open));
            }
            self.open.extend_from_slice(&block[r.clone()]);
        }
        let stored = self.compress(&closed);
        self.time += started.elapsed();
        self.stored += stored;
        stored
    }

    fn compress(&self, frames: &[Vec<u8>]) -> u64 {
        frames
            .par_iter()
            .map(|f| self.compression.compress(f).map_or(f.len(), |z| z.len()) as u64)
            .sum()
    }

    /// Close the open frame; returns its stored bytes.
    fn finish(&mut self) -> u64 {
        let started = Instant::now();
        let last = std::mem::take(&mut self.open);
        let stored = self.compress(&[last]);
        self.stored += stored;
        self.time += started.elapsed();
        stored
    }
}

impl<'a> Pass<'a> {
    fn new(
        params: ChunkerParams,
        compressions: &'a [Compression],
        frames: &[(Compression, u32)],
        paths: usize,
    ) -> Pass<'a> {
        Pass {
            framed: frames
                .iter()
                .map(|&(compression, size)| Framed {
                    compression,
                    size: size as usize,
                    open: Vec::new(),
                    stored: 0,
                    time: Duration::ZERO,
                    inc: Incremental::default(),
                })
                .collect(),
            chunker: Chunker::new(params),
            compressions,
            last_path: paths - 1,
            seen: HashSet::new(),
            logical: 0,
            chunks: 0,
            unique: 0,
            unique_chunks: 0,
            stored: vec![0; compressions.len()],
            compress_time: vec![Duration::ZERO; compressions.len()],
            chunk_time: Duration::ZERO,
            inc: vec![Incremental::default(); compressions.len()],
        }
    }

    fn path(
        &mut self,
        index: usize,
        root: &Path,
        walk: &WalkOptions,
        problem: &mut dyn FnMut(String),
    ) -> Result<PathSummary, SurveyError> {
        let mut summary = PathSummary {
            path: root.to_path_buf(),
            files: 0,
            bytes: 0,
        };
        // Each path is a backup of its own: frames never span two.
        for f in &mut self.framed {
            f.finish();
        }
        for entry in Walker::new(root, walk)? {
            let entry = match entry {
                Ok(e) => e,
                Err(e @ WalkError::Io { depth: 0, .. }) => return Err(e.into()),
                Err(e) => {
                    problem(format!("{e} (skipped)"));
                    continue;
                }
            };
            if !entry.meta.is_file() {
                continue;
            }
            match self.file(index, &entry.path, entry.meta.len()) {
                Ok(n) => {
                    summary.files += 1;
                    summary.bytes += n;
                }
                Err(e) => problem(format!("{}: {e} (skipped)", entry.path.display())),
            }
        }
        Ok(summary)
    }

    /// Chunk one file; returns its length.
    fn file(&mut self, index: usize, path: &Path, size: u64) -> io::Result<u64> {
        let started = Instant::now();
        let compressing_before: Duration = self.compressing();
        let file = File::open(path)?;
        let chunker = self.chunker.clone();
        let n = chunker.split::<_, io::Error, _>(file, size, |block, cuts| {
            self.block(index, block, cuts);
            Ok(())
        })?;
        let compressing: Duration = self.compressing() - compressing_before;
        self.chunk_time += started.elapsed().saturating_sub(compressing);
        Ok(n)
    }

    fn compressing(&self) -> Duration {
        self.compress_time.iter().sum::<Duration>()
            + self.framed.iter().map(|f| f.time).sum::<Duration>()
    }

    fn block(&mut self, index: usize, block: &[u8], cuts: &[Range<usize>]) {
        let ids: Vec<Id> = cuts.par_iter().map(|r| Id::of(&block[r.clone()])).collect();
        let mut fresh: Vec<Range<usize>> = Vec::new();
        for (id, r) in ids.into_iter().zip(cuts) {
            self.chunks += 1;
            self.logical += r.len() as u64;
            if self.seen.insert(id) {
                fresh.push(r.clone());
            }
        }
        let fresh_bytes: u64 = fresh.iter().map(|r| r.len() as u64).sum();
        self.unique_chunks += fresh.len() as u64;
        self.unique += fresh_bytes;
        let incremental = index == self.last_path && index > 0;
        for (c, compression) in self.compressions.iter().enumerate() {
            let started = Instant::now();
            let stored: u64 = fresh
                .par_iter()
                .map(|r| {
                    let raw = &block[r.clone()];
                    compression.compress(raw).map_or(raw.len(), |z| z.len()) as u64
                })
                .sum();
            self.compress_time[c] += started.elapsed();
            self.stored[c] += stored;
            if incremental {
                let inc = &mut self.inc[c];
                inc.chunks += fresh.len() as u64;
                inc.bytes += fresh_bytes;
                inc.stored_bytes += stored;
            }
        }
        for f in &mut self.framed {
            // A frame's bytes count for the path during which it closed.
            let stored = f.add(block, &fresh);
            if incremental {
                f.inc.chunks += fresh.len() as u64;
                f.inc.bytes += fresh_bytes;
                f.inc.stored_bytes += stored;
            }
        }
    }

    fn finish(mut self, paths: usize) -> Vec<Setting> {
        let params = self.chunker.params();
        let framed: Vec<Setting> = self
            .framed
            .iter_mut()
            .map(|f| {
                let last = f.finish();
                if paths >= 2 {
                    f.inc.stored_bytes += last;
                }
                Setting {
                    params,
                    compression: f.compression,
                    frame_size: Some(f.size as u32),
                    logical_bytes: self.logical,
                    unique_bytes: self.unique,
                    stored_bytes: f.stored,
                    chunk_count: self.chunks,
                    unique_chunks: self.unique_chunks,
                    seconds: (self.chunk_time + f.time).as_secs_f64(),
                    incremental: (paths >= 2).then_some(f.inc),
                }
            })
            .collect();
        self.compressions
            .iter()
            .enumerate()
            .map(|(c, &compression)| Setting {
                params,
                compression,
                frame_size: None,
                logical_bytes: self.logical,
                unique_bytes: self.unique,
                stored_bytes: self.stored[c],
                chunk_count: self.chunks,
                unique_chunks: self.unique_chunks,
                seconds: (self.chunk_time + self.compress_time[c]).as_secs_f64(),
                incremental: (paths >= 2).then_some(self.inc[c]),
            })
            .chain(framed)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::noise;
    use std::fs;

    fn opts(avgs: &[u32], compressions: &[Compression]) -> SurveyOptions {
        SurveyOptions {
            chunk_avgs: avgs.to_vec(),
            compressions: compressions.to_vec(),
            frames: Vec::new(),
            walk: WalkOptions::default(),
        }
    }

    fn run(paths: &[PathBuf], o: &SurveyOptions) -> Survey {
        survey(paths, o, &mut |p| panic!("unexpected problem: {p}")).unwrap()
    }

    #[test]
    fn two_identical_files_dedup_two_to_one() {
        let dir = tempfile::tempdir().unwrap();
        let data = noise(1, 300_000);
        fs::write(dir.path().join("a"), &data).unwrap();
        fs::create_dir(dir.path().join("sub")).unwrap();
        fs::write(dir.path().join("sub/b"), &data).unwrap();
        let s = run(
            &[dir.path().to_path_buf()],
            &opts(&[4096, 16384], &[Compression::None, Compression::Zstd(1)]),
        );
        assert_eq!(s.settings.len(), 4);
        assert_eq!(s.paths[0].files, 2);
        assert_eq!(s.paths[0].bytes, 600_000);
        for set in &s.settings {
            assert_eq!(set.logical_bytes, 600_000);
            assert_eq!(set.unique_bytes, 300_000);
            assert_eq!(set.chunk_count, 2 * set.unique_chunks);
            assert!((set.dedup_ratio() - 2.0).abs() < 1e-9);
            // Random bytes do not compress: every chunk counts raw.
            assert_eq!(set.stored_bytes, 300_000);
            assert!(set.incremental.is_none());
            assert_eq!(
                set.index_bytes(),
                set.unique_chunks * 104 + set.chunk_count * 35
            );
        }
        assert_eq!(s.settings[0].params.avg, 4096);
        assert_eq!(s.settings[1].compression, Compression::Zstd(1));
        assert_eq!(
            s.settings[2].params,
            ChunkerParams::from_avg(16384).unwrap()
        );
        assert!(s.settings[0].unique_chunks > s.settings[2].unique_chunks);
    }

    #[test]
    fn text_compresses_and_stored_counts_the_smaller_form() {
        let dir = tempfile::tempdir().unwrap();
        let text = "row 17 value 42\n".repeat(20_000);
        fs::write(dir.path().join("t"), &text).unwrap();
        let s = run(
            &[dir.path().to_path_buf()],
            &opts(&[8192], &[Compression::None, Compression::Zstd(3)]),
        );
        assert_eq!(s.settings[0].stored_bytes, s.settings[0].unique_bytes);
        assert!(s.settings[1].stored_bytes * 10 < s.settings[1].unique_bytes);
        assert!(s.settings[1].compression_ratio() > 10.0);
    }

    #[test]
    fn frames_compress_small_similar_files_better_than_chunks_alone() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..40 {
            let text =
                format!("fn item_{i}() -> u32 {{ {i} }}\n// shared boilerplate line\n").repeat(40);
            fs::write(dir.path().join(format!("f{i}.rs")), text).unwrap();
        }
        let mut o = opts(&[8192], &[Compression::Zstd(3)]);
        o.frames = vec![(Compression::Zstd(3), 256 << 10)];
        let s = run(&[dir.path().to_path_buf()], &o);
        assert_eq!(s.settings.len(), 2);
        let (chunks, frames) = (&s.settings[0], &s.settings[1]);
        assert_eq!(frames.frame_size, Some(256 << 10));
        assert_eq!(frames.method(), "zstd:3 in 256K frames");
        assert_eq!(frames.unique_bytes, chunks.unique_bytes);
        assert!(
            frames.stored_bytes < chunks.stored_bytes,
            "{} vs {}",
            frames.stored_bytes,
            chunks.stored_bytes
        );
    }

    #[test]
    fn a_copy_with_a_small_change_costs_little() {
        let dir = tempfile::tempdir().unwrap();
        let (old, new) = (dir.path().join("old"), dir.path().join("new"));
        let data = noise(7, 1 << 20);
        fs::create_dir_all(&old).unwrap();
        fs::create_dir_all(&new).unwrap();
        fs::write(old.join("db"), &data).unwrap();
        let mut changed = data.clone();
        changed[500_000..500_100].fill(0xAA);
        fs::write(new.join("db"), &changed).unwrap();
        fs::write(new.join("extra"), noise(8, 1000)).unwrap();

        let s = run(&[old, new], &opts(&[8192], &[Compression::Zstd(1)]));
        let set = &s.settings[0];
        let inc = set.incremental.expect("two paths");
        assert_eq!(set.logical_bytes, 2 * (1 << 20) + 1000);
        // The changed chunk and its neighbour at most, plus the new file.
        assert!(inc.chunks <= 3, "{inc:?}");
        assert!(inc.bytes >= 1000 && inc.bytes < 80_000, "{inc:?}");
        assert!(inc.stored_bytes <= inc.bytes, "{inc:?}");
        assert_eq!(set.unique_bytes, (1 << 20) + inc.bytes);
        assert_eq!(s.paths.len(), 2);
        assert_eq!(s.paths[1].files, 2);
    }

    #[test]
    fn a_missing_path_or_bad_size_is_an_error() {
        let o = opts(&[8192], &[Compression::None]);
        let missing = PathBuf::from("/nonexistent/cairn-survey");
        assert!(matches!(
            survey(&[missing], &o, &mut |_| {}),
            Err(SurveyError::Walk(_))
        ));
        let dir = tempfile::tempdir().unwrap();
        let bad = opts(&[100], &[Compression::None]);
        assert!(matches!(
            survey(&[dir.path().to_path_buf()], &bad, &mut |_| {}),
            Err(SurveyError::Params(_))
        ));
    }
}
