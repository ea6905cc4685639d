//! Throughput of the backup pipeline's stages, each next to a raw reference
//! measured in the same run (memcpy, single-threaded BLAKE3), so the report
//! reads as a ratio to the limit. Run: `cargo bench --bench pipeline`.

use std::hint::black_box;

use cairn_chunk::{Chunker, ChunkerParams, Compression, FileChunker, Id};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const LEN: usize = 64 << 20;

/// Half compressible text-like bytes, half random: like a volume.
fn sample() -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut out = Vec::with_capacity(LEN);
    while out.len() < LEN {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if (out.len() / (1 << 20)) % 2 == 0 {
            out.extend_from_slice(format!("row {} value {}\n", x % 1000, x % 97).as_bytes());
        } else {
            out.extend_from_slice(&x.to_le_bytes());
        }
    }
    out.truncate(LEN);
    out
}

fn stages(c: &mut Criterion) {
    let data = sample();
    let params = ChunkerParams::default();
    let mut g = c.benchmark_group("stages");
    g.throughput(Throughput::Bytes(LEN as u64));
    g.sample_size(10);
    g.bench_function("reference_memcpy", |b| {
        let mut dst = vec![0u8; LEN];
        b.iter(|| dst.copy_from_slice(black_box(&data)))
    });
    g.bench_function("reference_blake3_1thread", |b| {
        b.iter(|| blake3::hash(black_box(&data)))
    });
    g.bench_function("fastcdc_cut", |b| {
        let chunker = Chunker::new(params);
        b.iter(|| chunker.cut_all(black_box(&data)).len())
    });
    g.bench_function("blake3_per_chunk", |b| {
        let cuts = Chunker::new(params).cut_all(&data);
        b.iter(|| {
            for r in &cuts {
                black_box(Id::of(&data[r.clone()]));
            }
        })
    });
    for level in [1, 3] {
        g.bench_function(format!("zstd{level}_per_chunk_1thread"), |b| {
            let cuts = Chunker::new(params).cut_all(&data);
            let comp = Compression::Zstd(level);
            b.iter(|| {
                cuts.iter()
                    .filter_map(|r| comp.compress(&data[r.clone()]))
                    .count()
            })
        });
    }
    g.bench_function("pipeline_all_new_zstd3", |b| {
        let fc = FileChunker::new(Chunker::new(params), Compression::Zstd(3));
        b.iter(|| {
            let mut n = 0u64;
            fc.chunk::<_, std::io::Error, _>(&data[..], LEN as u64, &|_| true, |c| {
                n += u64::from(c.len);
                Ok(())
            })
            .unwrap();
            n
        })
    });
    g.bench_function("pipeline_all_known", |b| {
        let fc = FileChunker::new(Chunker::new(params), Compression::Zstd(3));
        b.iter(|| {
            fc.chunk::<_, std::io::Error, _>(&data[..], LEN as u64, &|_| false, |_| Ok(()))
                .unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, stages);
criterion_main!(benches);
