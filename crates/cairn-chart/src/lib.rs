//! cairn-chart: small SVG charts drawn as text, with no dependencies.
//!
//! `cairn bench --svg` and the pages of `cairn serve` draw their charts with
//! it: a [`Chart`] of lines and bars against one or two value axes, a
//! [`sparkline`] for a table cell, and [`hbars`] for a few labelled totals.
//! Every text that reaches the SVG goes through [`escape`], so labels may
//! come from user data (volume names, tags). Series longer than the plot is
//! wide are reduced to one value per pixel column (the largest), so a chart
//! of 10,000 snapshots stays a few kilobytes.
//!
//! ```
//! use cairn_chart::{Chart, Series, Side, Style};
//! let mut chart = Chart::new("logical size", "snapshot");
//! chart.series.push(Series {
//!     label: "size".into(),
//!     color: "#1f77b4",
//!     style: Style::Line,
//!     side: Side::Left,
//!     points: vec![(0.0, 10.0), (1.0, 12.0), (2.0, 11.0)],
//! });
//! let svg = chart.render();
//! assert!(svg.starts_with("<svg") && svg.contains("<polyline"));
//! ```
#![deny(missing_docs)]

mod chart;
mod small;

pub use chart::{Axis, Chart, Series, Side, Style};
pub use small::{hbars, sparkline};

/// Colors that stay distinct for the first few series.
pub const COLORS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
];

/// Text safe inside XML (and HTML) elements and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Bytes in binary units as axis labels show them (`1.5 MiB`).
pub fn bytes_label(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Reduce `points` (sorted by x) to at most `columns` points, keeping in
/// each column of the x range the point with the largest y: peaks stay
/// visible however many points there are.
pub(crate) fn reduce(points: &[(f64, f64)], columns: usize) -> Vec<(f64, f64)> {
    if points.len() <= columns || columns == 0 {
        return points.to_vec();
    }
    let (lo, hi) = (points[0].0, points[points.len() - 1].0);
    let span = (hi - lo).max(f64::MIN_POSITIVE);
    let mut out: Vec<(usize, (f64, f64))> = Vec::with_capacity(columns);
    for &p in points {
        let col = (((p.0 - lo) / span) * (columns - 1) as f64).round() as usize;
        match out.last_mut() {
            Some((c, best)) if *c == col => {
                if p.1 > best.1 {
                    *best = p;
                }
            }
            _ => out.push((col, p)),
        }
    }
    out.into_iter().map(|(_, p)| p).collect()
}

/// Reduce `points` (sorted by x) for a line: per column of the x range,
/// its lowest and highest point in x order, so the line keeps the whole
/// band a column covers rather than only its peaks.
pub(crate) fn envelope(points: &[(f64, f64)], columns: usize) -> Vec<(f64, f64)> {
    if points.len() <= 2 * columns || columns == 0 {
        return points.to_vec();
    }
    let (lo, hi) = (points[0].0, points[points.len() - 1].0);
    let span = (hi - lo).max(f64::MIN_POSITIVE);
    let column = |x: f64| (((x - lo) / span) * (columns - 1) as f64).round() as usize;
    let mut out = Vec::with_capacity(2 * columns);
    let mut i = 0;
    while i < points.len() {
        let col = column(points[i].0);
        let (mut min, mut max) = (points[i], points[i]);
        while i < points.len() && column(points[i].0) == col {
            if points[i].1 < min.1 {
                min = points[i];
            }
            if points[i].1 > max.1 {
                max = points[i];
            }
            i += 1;
        }
        if min.0 <= max.0 {
            out.extend([min, max]);
        } else {
            out.extend([max, min]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_covers_markup_and_quotes() {
        assert_eq!(
            escape(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn reduce_keeps_peaks_and_bounds_the_count() {
        let pts: Vec<(f64, f64)> = (0..10_000)
            .map(|i| (f64::from(i), if i == 5000 { 99.0 } else { 1.0 }))
            .collect();
        let r = reduce(&pts, 100);
        assert!(r.len() <= 100);
        assert!(r.iter().any(|p| p.1 == 99.0));
        assert_eq!(reduce(&pts[..3], 100).len(), 3);
    }

    #[test]
    fn envelope_keeps_lows_and_highs() {
        let pts: Vec<(f64, f64)> = (0..10_000)
            .map(|i| (f64::from(i), f64::from(i % 10)))
            .collect();
        let e = envelope(&pts, 100);
        assert!(e.len() <= 200);
        assert!(e.iter().any(|p| p.1 == 0.0) && e.iter().any(|p| p.1 == 9.0));
        assert!(e.windows(2).all(|w| w[0].0 <= w[1].0), "x order kept");
    }

    #[test]
    fn bytes_are_labelled_in_binary_units() {
        assert_eq!(bytes_label(512), "512 B");
        assert_eq!(bytes_label(1536), "1.5 KiB");
        assert_eq!(bytes_label(3 << 30), "3.0 GiB");
    }
}
