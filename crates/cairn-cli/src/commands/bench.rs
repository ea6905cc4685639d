//! `cairn bench`: how given trees would deduplicate and compress under
//! several chunker settings, measured by cairn-chunk's survey without any
//! repository; shown as a table, JSON, or an SVG chart.

use anyhow::{Context, Result};
use cairn_chart::{Axis, Chart, Series, Side, Style, COLORS};
use cairn_chunk::survey::{self, Setting, Survey, SurveyOptions};
use cairn_chunk::{parse_size, ChunkerParams, Compression, WalkOptions};
use serde_json::{json, Value};

use crate::args::BenchArgs;
use crate::output::{human_bytes, Out};

pub fn bench(out: &Out, args: &BenchArgs) -> Result<u8> {
    let mut chunk_avgs = Vec::new();
    for s in &args.chunk_avg {
        let n = parse_size(s)?;
        let avg = u32::try_from(n).with_context(|| format!("--chunk-avg {s} is too large"))?;
        ChunkerParams::from_avg(avg).with_context(|| format!("--chunk-avg {s}"))?;
        chunk_avgs.push(avg);
    }
    // By default: chunk by chunk at zstd:1 and zstd:3, and frames at
    // zstd:3, the method new repositories use (docs/FORMAT.md 14).
    let compressions: Vec<Compression> = if args.compression.is_empty() {
        vec![Compression::Zstd(1), Compression::Zstd(3)]
    } else {
        args.compression
            .iter()
            .map(|s| s.parse())
            .collect::<Result<_, _>>()?
    };
    let frame_size = parse_size(&args.frame_size)?;
    let frame_size = u32::try_from(frame_size)
        .ok()
        .filter(|&n| n <= 64 << 20)
        .with_context(|| format!("--frame-size {}: at most 64M", args.frame_size))?;
    let frames = match frame_size {
        0 => Vec::new(),
        n if args.compression.is_empty() => vec![(Compression::Zstd(3), n)],
        n => compressions
            .iter()
            .filter(|c| **c != Compression::None)
            .map(|&c| (c, n))
            .collect(),
    };
    let opts = SurveyOptions {
        chunk_avgs,
        compressions,
        frames,
        walk: WalkOptions::default(),
    };
    let result = survey::survey(&args.paths, &opts, &mut |p| eprintln!("warning: {p}"))?;

    if let Some(path) = &args.svg {
        std::fs::write(path, chart(&result.settings))
            .with_context(|| format!("{}: cannot write the SVG chart", path.display()))?;
        out.info(&format!("chart written to {}", path.display()));
    }
    if out.json {
        out.json(&json!({
            "settings": result.settings.iter().map(setting_json).collect::<Vec<_>>(),
            "paths": result.paths.iter().map(|p| json!({
                "path": p.path,
                "files": p.files,
                "logical_bytes": p.bytes,
            })).collect::<Vec<_>>(),
        }))?;
    } else {
        print_table(&result);
    }
    Ok(0)
}

/// `16K`, `1M`: chunk sizes as users type them.
fn size_label(n: u32) -> String {
    if n >= 1 << 20 && n.trailing_zeros() >= 20 {
        format!("{}M", n >> 20)
    } else if n >= 1 << 10 && n.trailing_zeros() >= 10 {
        format!("{}K", n >> 10)
    } else {
        n.to_string()
    }
}

fn setting_json(s: &Setting) -> Value {
    let mut v = json!({
        "chunk_avg": s.params.avg,
        "chunk_min": s.params.min,
        "chunk_max": s.params.max,
        "compression": s.compression,
        "frame_size": s.frame_size,
        "method": s.method(),
        "logical_bytes": s.logical_bytes,
        "unique_bytes": s.unique_bytes,
        "stored_bytes": s.stored_bytes,
        "dedup_ratio": s.dedup_ratio(),
        "compression_ratio": s.compression_ratio(),
        "total_ratio": s.total_ratio(),
        "chunk_count": s.chunk_count,
        "unique_chunk_count": s.unique_chunks,
        "estimated_index_bytes": s.index_bytes(),
        "seconds": s.seconds,
        "throughput_bytes_per_sec": s.throughput(),
    });
    if let Some(inc) = &s.incremental {
        v["incremental_chunks"] = json!(inc.chunks);
        v["incremental_bytes"] = json!(inc.bytes);
        v["incremental_stored_bytes"] = json!(inc.stored_bytes);
    }
    v
}

fn print_table(result: &Survey) {
    let incremental = result.settings.iter().any(|s| s.incremental.is_some());
    let mut header = vec![
        "chunk avg",
        "compression",
        "logical",
        "unique",
        "stored",
        "dedup",
        "compr",
        "total",
        "chunks",
        "unique chunks",
        "index (est)",
        "MiB/s",
    ];
    if incremental {
        header.extend(["last adds", "last adds stored"]);
    }
    let rows: Vec<Vec<String>> = result
        .settings
        .iter()
        .map(|s| {
            let mut row = vec![
                size_label(s.params.avg),
                s.method(),
                human_bytes(s.logical_bytes),
                human_bytes(s.unique_bytes),
                human_bytes(s.stored_bytes),
                format!("{:.2}", s.dedup_ratio()),
                format!("{:.2}", s.compression_ratio()),
                format!("{:.2}", s.total_ratio()),
                s.chunk_count.to_string(),
                s.unique_chunks.to_string(),
                human_bytes(s.index_bytes()),
                format!("{:.1}", s.throughput() / f64::from(1 << 20)),
            ];
            if let Some(inc) = &s.incremental {
                row.extend([human_bytes(inc.bytes), human_bytes(inc.stored_bytes)]);
            }
            row
        })
        .collect();
    let widths: Vec<usize> = header
        .iter()
        .enumerate()
        .map(|(c, h)| {
            rows.iter()
                .map(|r| r[c].len())
                .chain([h.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    // The first two columns are names (left-aligned), the rest numbers.
    let line = |cells: Vec<&str>| -> String {
        cells
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(c, (cell, &w))| {
                if c < 2 {
                    format!("{cell:<w$}")
                } else {
                    format!("{cell:>w$}")
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    outln!("{}", line(header.clone()));
    for r in &rows {
        outln!("{}", line(r.iter().map(String::as_str).collect()));
    }
    for p in &result.paths {
        outln!(
            "{}: {} file(s), {}",
            p.path.display(),
            p.files,
            human_bytes(p.bytes)
        );
    }
    outln!(
        "index (est) = unique chunks x (52 B pack entry + 52 B index entry) + chunks x 35 B tree reference"
    );
}

/// A line chart: stored bytes (left axis, one line per compression) and
/// estimated index bytes (right axis, dashed; it does not depend on the
/// compression) against the average chunk size on a log scale.
fn chart(settings: &[Setting]) -> String {
    let mut avgs: Vec<u32> = settings.iter().map(|s| s.params.avg).collect();
    avgs.sort_unstable();
    avgs.dedup();
    let mut methods: Vec<String> = Vec::new();
    for s in settings {
        if !methods.contains(&s.method()) {
            methods.push(s.method());
        }
    }
    let x = |avg: u32| f64::from(avg).log2();
    let bytes = |v: f64| human_bytes(v as u64);
    let mut c = Chart::new(
        "cairn bench: stored and index bytes by chunk size",
        "average chunk size (log scale)",
    );
    c.x_ticks = avgs.iter().map(|&a| (x(a), size_label(a))).collect();
    c.left = Axis {
        label: "stored bytes".into(),
        format: bytes,
    };
    c.right = Some(Axis {
        label: "estimated index bytes".into(),
        format: bytes,
    });
    for (i, comp) in methods.iter().enumerate() {
        let mut pts: Vec<&Setting> = settings.iter().filter(|s| s.method() == *comp).collect();
        pts.sort_by_key(|s| s.params.avg);
        c.series.push(Series {
            label: format!("stored, {comp}"),
            color: COLORS[i % COLORS.len()],
            style: Style::Line,
            side: Side::Left,
            points: pts
                .iter()
                .map(|s| (x(s.params.avg), s.stored_bytes as f64))
                .collect(),
        });
    }
    let mut index_points: Vec<(u32, u64)> = settings
        .iter()
        .map(|s| (s.params.avg, s.index_bytes()))
        .collect();
    index_points.sort_unstable();
    index_points.dedup_by_key(|p| p.0);
    c.series.push(Series {
        label: "estimated index (right axis)".into(),
        color: "#555",
        style: Style::Dashed,
        side: Side::Right,
        points: index_points
            .iter()
            .map(|&(a, b)| (x(a), b as f64))
            .collect(),
    });
    c.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setting(avg: u32, compression: Compression, stored: u64) -> Setting {
        Setting {
            params: ChunkerParams::from_avg(avg).unwrap(),
            compression,
            frame_size: None,
            logical_bytes: 10 << 20,
            unique_bytes: 8 << 20,
            stored_bytes: stored,
            chunk_count: (10 << 20) / u64::from(avg),
            unique_chunks: (8 << 20) / u64::from(avg),
            seconds: 0.5,
            incremental: None,
        }
    }

    /// The names of the elements opened, in document order, if every tag is
    /// closed in the right order (self-closing tags count as closed); `None`
    /// if the text is not well-formed in that simple sense.
    fn balanced(svg: &str) -> Option<Vec<String>> {
        let mut stack: Vec<String> = Vec::new();
        let mut opened = Vec::new();
        let mut rest = svg;
        while let Some(start) = rest.find('<') {
            let end = start + rest[start..].find('>')?;
            let tag = &rest[start + 1..end];
            if tag.contains('<') {
                return None;
            }
            if let Some(name) = tag.strip_prefix('/') {
                if stack.pop()? != name.trim() {
                    return None;
                }
            } else {
                let name: String = tag
                    .chars()
                    .take_while(|c| !c.is_whitespace() && *c != '/')
                    .collect();
                opened.push(name.clone());
                if !tag.ends_with('/') {
                    stack.push(name);
                }
            }
            rest = &rest[end + 1..];
        }
        stack.is_empty().then_some(opened)
    }

    #[test]
    fn chart_is_well_formed_with_one_polyline_per_series() {
        let settings: Vec<Setting> = [16 << 10, 64 << 10, 1 << 20]
            .iter()
            .flat_map(|&avg| {
                [
                    setting(avg, Compression::None, 8 << 20),
                    setting(avg, Compression::Zstd(3), 3 << 20),
                ]
            })
            .collect();
        let svg = chart(&settings);
        assert!(svg.starts_with("<svg"));
        let tags = balanced(&svg).expect("tags balance");
        assert_eq!(tags[0], "svg");
        // Two compressions plus the index line.
        assert_eq!(tags.iter().filter(|t| *t == "polyline").count(), 3);
        for label in ["16K", "64K", "1M", "stored, none", "stored, zstd:3"] {
            assert!(svg.contains(label), "{label} missing");
        }
        assert!(balanced("<svg><g></svg></g>").is_none());
        assert!(balanced("<svg><g>").is_none());
    }

    #[test]
    fn one_chunk_size_still_charts() {
        let svg = chart(&[setting(32 << 10, Compression::Zstd(1), 1000)]);
        assert!(balanced(&svg).is_some());
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(!svg.contains("NaN"));
    }

    #[test]
    fn sizes_are_labelled_as_typed() {
        assert_eq!(size_label(16 << 10), "16K");
        assert_eq!(size_label(1 << 20), "1M");
        assert_eq!(size_label(1536 << 10), "1536K");
        assert_eq!(size_label(1000), "1000");
    }
}
