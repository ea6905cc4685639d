//! Charts without axes: a sparkline for a table cell and labelled bars.

use std::fmt::Write as _;

use crate::{escape, reduce};

/// A bar sparkline of `values` (oldest first), `width`×`height` pixels;
/// more values than half the width are reduced to the largest per column.
pub fn sparkline(values: &[u64], width: u32, height: u32, color: &str) -> String {
    let (w, h) = (f64::from(width), f64::from(height));
    let points: Vec<(f64, f64)> = values
        .iter()
        .enumerate()
        .map(|(i, &v)| (i as f64, v as f64))
        .collect();
    let pts = reduce(&points, (width / 2).max(1) as usize);
    let max = pts.iter().map(|p| p.1).fold(0.0f64, f64::max).max(1.0);
    let step = w / pts.len().max(1) as f64;
    let mut d = String::new();
    for (i, &(_, v)) in pts.iter().enumerate() {
        let x = step * (i as f64 + 0.5);
        // Every snapshot shows at least a one-pixel tick.
        let y = h - (v / max * (h - 1.0)).max(1.0);
        let _ = write!(d, "M{x:.1} {h}V{y:.1}");
    }
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img"><path d="{d}" stroke="{}" stroke-width="{:.1}"/></svg>"#,
        escape(color),
        (step * 0.8).clamp(1.0, 6.0)
    )
}

/// Horizontal bars, one per (label, value, color), with the value written
/// by `format` after each bar: for a few totals (logical, unique, stored).
pub fn hbars(title: &str, rows: &[(&str, u64, &str)], format: fn(u64) -> String) -> String {
    let (w, label_w, bar_h) = (760.0, 170.0, 26.0);
    let h = 44.0 + bar_h * 1.4 * rows.len() as f64;
    let max = rows.iter().map(|r| r.1).max().unwrap_or(0).max(1) as f64;
    let room = w - label_w - 130.0;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{w}" height="{h:.0}" viewBox="0 0 {w} {h:.0}" font-family="sans-serif" font-size="13" role="img">"#
    );
    let _ = writeln!(svg, r#"<rect width="{w}" height="{h:.0}" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="15">{}</text>"#,
        w / 2.0,
        escape(title)
    );
    for (i, (label, value, color)) in rows.iter().enumerate() {
        let y = 36.0 + bar_h * 1.4 * i as f64;
        let len = (*value as f64 / max * room).max(1.0);
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            label_w - 8.0,
            y + bar_h * 0.65,
            escape(label)
        );
        let _ = writeln!(
            svg,
            r#"<rect x="{label_w}" y="{y:.1}" width="{len:.1}" height="{bar_h}" fill="{}"/>"#,
            escape(color)
        );
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}">{}</text>"#,
            label_w + len + 6.0,
            y + bar_h * 0.65,
            escape(&format(*value))
        );
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparkline_of_many_values_is_bounded() {
        let values: Vec<u64> = (0..10_000).collect();
        let s = sparkline(&values, 120, 24, "#1f77b4");
        assert!(s.len() < 2_000, "{} bytes", s.len());
        assert!(sparkline(&[], 120, 24, "#000").contains("<path"));
    }

    #[test]
    fn hbars_scale_to_the_largest() {
        let s = hbars(
            "totals",
            &[("logical", 100, "#111"), ("stored", 25, "#222")],
            |v| v.to_string(),
        );
        assert!(s.contains(">logical<") && s.contains(">25<"));
        assert_eq!(s.matches("<rect").count(), 3);
    }
}
