//! `cairn bench`: how given trees would deduplicate and compress under
//! several chunker settings, measured by cairn-chunk's survey without any
//! repository; shown as a table, JSON, or an SVG chart.

use std::fmt::Write as _;

use anyhow::{Context, Result};
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
    let compressions: Vec<Compression> = if args.compression.is_empty() {
        vec![Compression::default()]
    } else {
        args.compression
            .iter()
            .map(|s| s.parse())
            .collect::<Result<_, _>>()?
    };
    let opts = SurveyOptions {
        chunk_avgs,
        compressions,
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
                s.compression.to_string(),
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

/// Text safe inside SVG elements and attribute values.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const COLORS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
];

/// A line chart: stored bytes (left axis, one line per compression) and
/// estimated index bytes (right axis, dashed; it does not depend on the
/// compression) against the average chunk size on a log scale.
fn chart(settings: &[Setting]) -> String {
    const W: f64 = 760.0;
    const H: f64 = 440.0;
    let (left, right, top, bottom) = (90.0, W - 100.0, 50.0, H - 110.0);

    let mut avgs: Vec<u32> = settings.iter().map(|s| s.params.avg).collect();
    avgs.sort_unstable();
    avgs.dedup();
    let mut compressions: Vec<Compression> = Vec::new();
    for s in settings {
        if !compressions.contains(&s.compression) {
            compressions.push(s.compression);
        }
    }
    let (lo, hi) = (
        f64::from(avgs[0]).log2(),
        f64::from(*avgs.last().unwrap_or(&avgs[0])).log2(),
    );
    let x = |avg: u32| -> f64 {
        if hi > lo {
            left + (f64::from(avg).log2() - lo) / (hi - lo) * (right - left)
        } else {
            (left + right) / 2.0
        }
    };
    let max_stored = settings
        .iter()
        .map(|s| s.stored_bytes)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let max_index = settings
        .iter()
        .map(|s| s.index_bytes())
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let y_stored = |v: u64| bottom - v as f64 / max_stored * (bottom - top);
    let y_index = |v: u64| bottom - v as f64 / max_index * (bottom - top);

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="24" text-anchor="middle" font-size="15">cairn bench: stored and index bytes by chunk size</text>"#,
        W / 2.0
    );
    // Axes.
    let _ = writeln!(
        svg,
        r##"<path d="M{left} {top} V{bottom} H{right} V{top}" fill="none" stroke="#333"/>"##
    );
    for i in 0..=4 {
        let f = f64::from(i) / 4.0;
        let y = bottom - f * (bottom - top);
        let _ = writeln!(
            svg,
            r##"<line x1="{left}" y1="{y:.1}" x2="{right}" y2="{y:.1}" stroke="#ddd"/>"##
        );
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            left - 6.0,
            y + 4.0,
            escape(&human_bytes((f * max_stored) as u64))
        );
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="start">{}</text>"#,
            right + 6.0,
            y + 4.0,
            escape(&human_bytes((f * max_index) as u64))
        );
    }
    for &avg in &avgs {
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            x(avg),
            bottom + 18.0,
            size_label(avg)
        );
    }
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">average chunk size (log scale)</text>"#,
        (left + right) / 2.0,
        bottom + 40.0
    );
    let mid = (top + bottom) / 2.0;
    let _ = writeln!(
        svg,
        r#"<text x="20" y="{mid:.1}" text-anchor="middle" transform="rotate(-90 20 {mid:.1})">stored bytes</text>"#
    );
    let rx = W - 20.0;
    let _ = writeln!(
        svg,
        r#"<text x="{rx}" y="{mid:.1}" text-anchor="middle" transform="rotate(90 {rx} {mid:.1})">estimated index bytes</text>"#
    );

    // Series and legend.
    let mut legend: Vec<(String, &str, bool)> = Vec::new();
    for (i, c) in compressions.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let mut pts: Vec<&Setting> = settings.iter().filter(|s| s.compression == *c).collect();
        pts.sort_by_key(|s| s.params.avg);
        let points: Vec<String> = pts
            .iter()
            .map(|s| format!("{:.1},{:.1}", x(s.params.avg), y_stored(s.stored_bytes)))
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
            points.join(" ")
        );
        legend.push((format!("stored, {c}"), color, false));
    }
    let mut index_points: Vec<(u32, u64)> = settings
        .iter()
        .map(|s| (s.params.avg, s.index_bytes()))
        .collect();
    index_points.sort_unstable();
    index_points.dedup_by_key(|p| p.0);
    let points: Vec<String> = index_points
        .iter()
        .map(|&(avg, b)| format!("{:.1},{:.1}", x(avg), y_index(b)))
        .collect();
    let _ = writeln!(
        svg,
        r##"<polyline fill="none" stroke="#555" stroke-width="2" stroke-dasharray="6 4" points="{}"/>"##,
        points.join(" ")
    );
    legend.push(("estimated index (right axis)".to_string(), "#555", true));
    for (i, (label, color, dashed)) in legend.iter().enumerate() {
        let y = bottom + 62.0 + 16.0 * (i / 2) as f64;
        let lx = left + 290.0 * (i % 2) as f64;
        let dash = if *dashed {
            r#" stroke-dasharray="6 4""#
        } else {
            ""
        };
        let _ = writeln!(
            svg,
            r#"<line x1="{lx}" y1="{:.1}" x2="{}" y2="{:.1}" stroke="{color}" stroke-width="2"{dash}/>"#,
            y - 4.0,
            lx + 24.0,
            y - 4.0
        );
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{y:.1}">{}</text>"#,
            lx + 30.0,
            escape(label)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setting(avg: u32, compression: Compression, stored: u64) -> Setting {
        Setting {
            params: ChunkerParams::from_avg(avg).unwrap(),
            compression,
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
