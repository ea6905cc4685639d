//! A chart of lines and bars against one or two value axes.

use std::fmt::Write as _;

use crate::{envelope, escape, reduce};

/// Which value axis a series is drawn against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The left axis.
    Left,
    /// The right axis (the chart needs [`Chart::right`]).
    Right,
}

/// How a series is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// A solid line.
    Line,
    /// A dashed line.
    Dashed,
    /// One vertical bar per point.
    Bars,
}

/// One series of (x, y) points, sorted by x.
#[derive(Clone, Debug)]
pub struct Series {
    /// Its name in the legend.
    pub label: String,
    /// Stroke color.
    pub color: &'static str,
    /// Line or bars.
    pub style: Style,
    /// Which axis its values use.
    pub side: Side,
    /// The points.
    pub points: Vec<(f64, f64)>,
}

/// A value axis: its title and how its tick values read.
#[derive(Clone, Debug)]
pub struct Axis {
    /// Title, written along the axis.
    pub label: String,
    /// Tick label for a value.
    pub format: fn(f64) -> String,
}

/// A chart; fill the fields, then [`Chart::render`].
#[derive(Clone, Debug)]
pub struct Chart {
    /// Width in pixels.
    pub width: f64,
    /// Height in pixels.
    pub height: f64,
    /// Title above the plot.
    pub title: String,
    /// Title under the x axis.
    pub x_label: String,
    /// Labelled x positions; when empty, five evenly spaced ones read by `x_format`.
    pub x_ticks: Vec<(f64, String)>,
    /// Tick label for an x value when `x_ticks` is empty.
    pub x_format: fn(f64) -> String,
    /// The left value axis.
    pub left: Axis,
    /// The right value axis, if any series uses it.
    pub right: Option<Axis>,
    /// What is drawn, in legend order.
    pub series: Vec<Series>,
}

fn plain(v: f64) -> String {
    format!("{v:.0}")
}

/// The plot area inside the margins.
struct Frame {
    left: f64,
    right: f64,
    top: f64,
    bottom: f64,
    x_lo: f64,
    x_hi: f64,
}

impl Frame {
    fn x(&self, v: f64) -> f64 {
        if self.x_hi > self.x_lo {
            self.left + (v - self.x_lo) / (self.x_hi - self.x_lo) * (self.right - self.left)
        } else {
            (self.left + self.right) / 2.0
        }
    }

    fn y(&self, v: f64, max: f64) -> f64 {
        self.bottom - (v / max).clamp(0.0, 1.0) * (self.bottom - self.top)
    }
}

impl Chart {
    /// An empty 760×440 chart with a plain-number left axis.
    pub fn new(title: &str, x_label: &str) -> Chart {
        Chart {
            width: 760.0,
            height: 440.0,
            title: title.to_string(),
            x_label: x_label.to_string(),
            x_ticks: Vec::new(),
            x_format: plain,
            left: Axis {
                label: String::new(),
                format: plain,
            },
            right: None,
            series: Vec::new(),
        }
    }

    /// The SVG document.
    pub fn render(&self) -> String {
        let f = self.frame();
        let max = |side| {
            self.series
                .iter()
                .filter(|s| s.side == side)
                .flat_map(|s| s.points.iter().map(|p| p.1))
                .fold(0.0f64, f64::max)
                .max(1.0)
        };
        let (max_l, max_r) = (max(Side::Left), max(Side::Right));
        let (w, h) = (self.width, self.height);
        let mut svg = String::new();
        let _ = writeln!(
            svg,
            r#"<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12" role="img">"#
        );
        let _ = writeln!(svg, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="24" text-anchor="middle" font-size="15">{}</text>"#,
            w / 2.0,
            escape(&self.title)
        );
        self.axes(&mut svg, &f, max_l, max_r);
        for s in &self.series {
            let m = if s.side == Side::Left { max_l } else { max_r };
            draw_series(&mut svg, &f, s, m);
        }
        self.legend(&mut svg, &f);
        svg.push_str("</svg>\n");
        svg
    }

    fn frame(&self) -> Frame {
        let xs = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.0))
            .chain(self.x_ticks.iter().map(|t| t.0));
        let (x_lo, x_hi) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
            (lo.min(x), hi.max(x))
        });
        let rows = self.series.len().div_ceil(2) as f64;
        // A margin inside the plot, so that bars and end points at the
        // extremes are not drawn over the axes.
        let pad = if x_hi > x_lo {
            (x_hi - x_lo) * 0.03
        } else {
            0.0
        };
        let (x_lo, x_hi) = (x_lo - pad, x_hi + pad);
        Frame {
            left: 90.0,
            right: self.width - if self.right.is_some() { 100.0 } else { 30.0 },
            top: 50.0,
            bottom: self.height - 78.0 - 16.0 * rows,
            x_lo: if x_lo.is_finite() { x_lo } else { 0.0 },
            x_hi: if x_hi.is_finite() { x_hi } else { 0.0 },
        }
    }

    fn axes(&self, svg: &mut String, f: &Frame, max_l: f64, max_r: f64) {
        let (left, right, top, bottom) = (f.left, f.right, f.top, f.bottom);
        let close = if self.right.is_some() {
            format!(" V{top}")
        } else {
            String::new()
        };
        let _ = writeln!(
            svg,
            r##"<path d="M{left} {top} V{bottom} H{right}{close}" fill="none" stroke="#333"/>"##
        );
        for i in 0..=4 {
            let frac = f64::from(i) / 4.0;
            let y = bottom - frac * (bottom - top);
            let _ = writeln!(
                svg,
                r##"<line x1="{left}" y1="{y:.1}" x2="{right}" y2="{y:.1}" stroke="#ddd"/>"##
            );
            let text = escape(&(self.left.format)(frac * max_l));
            let _ = writeln!(
                svg,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{text}</text>"#,
                left - 6.0,
                y + 4.0
            );
            if let Some(r) = &self.right {
                let _ = writeln!(
                    svg,
                    r#"<text x="{:.1}" y="{:.1}" text-anchor="start">{}</text>"#,
                    right + 6.0,
                    y + 4.0,
                    escape(&(r.format)(frac * max_r))
                );
            }
        }
        self.x_axis(svg, f);
        let mid = (top + bottom) / 2.0;
        let _ = writeln!(
            svg,
            r#"<text x="20" y="{mid:.1}" text-anchor="middle" transform="rotate(-90 20 {mid:.1})">{}</text>"#,
            escape(&self.left.label)
        );
        if let Some(r) = &self.right {
            let rx = self.width - 20.0;
            let _ = writeln!(
                svg,
                r#"<text x="{rx}" y="{mid:.1}" text-anchor="middle" transform="rotate(90 {rx} {mid:.1})">{}</text>"#,
                escape(&r.label)
            );
        }
    }

    fn x_axis(&self, svg: &mut String, f: &Frame) {
        let ticks: Vec<(f64, String)> = if self.x_ticks.is_empty() && f.x_hi > f.x_lo {
            (0..5)
                .map(|i| {
                    let v = f.x_lo + (f.x_hi - f.x_lo) * f64::from(i) / 4.0;
                    (v, (self.x_format)(v))
                })
                .collect()
        } else if self.x_ticks.is_empty() {
            vec![(f.x_lo, (self.x_format)(f.x_lo))]
        } else {
            self.x_ticks.clone()
        };
        for (v, label) in ticks {
            let _ = writeln!(
                svg,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                f.x(v),
                f.bottom + 18.0,
                escape(&label)
            );
        }
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            (f.left + f.right) / 2.0,
            f.bottom + 40.0,
            escape(&self.x_label)
        );
    }

    fn legend(&self, svg: &mut String, f: &Frame) {
        for (i, s) in self.series.iter().enumerate() {
            let y = f.bottom + 62.0 + 16.0 * (i / 2) as f64;
            let lx = f.left + 290.0 * (i % 2) as f64;
            let (color, label) = (s.color, escape(&s.label));
            let _ = writeln!(
                svg,
                r#"<line x1="{lx}" y1="{:.1}" x2="{}" y2="{:.1}" stroke="{color}" stroke-width="{}"{}/>"#,
                y - 4.0,
                lx + 24.0,
                y - 4.0,
                if s.style == Style::Bars { 8 } else { 2 },
                dash(s.style)
            );
            let _ = writeln!(svg, r#"<text x="{}" y="{y:.1}">{label}</text>"#, lx + 30.0);
        }
    }
}

fn dash(style: Style) -> &'static str {
    if style == Style::Dashed {
        r#" stroke-dasharray="6 4""#
    } else {
        ""
    }
}

fn draw_series(svg: &mut String, f: &Frame, s: &Series, max: f64) {
    let columns = (f.right - f.left).max(1.0) as usize;
    let color = s.color;
    if s.style == Style::Bars {
        let pts = reduce(&s.points, columns / 2);
        let width = ((f.right - f.left) / pts.len().max(1) as f64 * 0.7).clamp(1.0, 14.0);
        let mut d = String::new();
        for &(x, y) in &pts {
            let _ = write!(d, "M{:.1} {:.1}V{:.1}", f.x(x), f.bottom, f.y(y, max));
        }
        let _ = writeln!(
            svg,
            r#"<path d="{d}" fill="none" stroke="{color}" stroke-width="{width:.1}" stroke-opacity="0.7"/>"#
        );
        return;
    }
    let pts = envelope(&s.points, columns);
    let points: Vec<String> = pts
        .iter()
        .map(|&(x, y)| format!("{:.1},{:.1}", f.x(x), f.y(y, max)))
        .collect();
    let _ = writeln!(
        svg,
        r#"<polyline fill="none" stroke="{color}" stroke-width="2"{} points="{}"/>"#,
        dash(s.style),
        points.join(" ")
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(style: Style, side: Side, n: usize) -> Series {
        Series {
            label: format!("{style:?} <{side:?}>"),
            color: "#123456",
            style,
            side,
            points: (0..n).map(|i| (i as f64, (i % 7) as f64)).collect(),
        }
    }

    #[test]
    fn labels_are_escaped_and_nothing_is_nan() {
        let mut c = Chart::new("a <b>", "x & y");
        c.series.push(series(Style::Line, Side::Left, 1));
        let svg = c.render();
        assert!(svg.contains("a &lt;b&gt;") && svg.contains("x &amp; y"));
        assert!(svg.contains("Line &lt;Left&gt;"));
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
        let empty = Chart::new("nothing", "x").render();
        assert!(!empty.contains("NaN") && !empty.contains("inf"));
    }

    #[test]
    fn long_series_stay_small() {
        let mut c = Chart::new("big", "snapshot");
        c.right = Some(Axis {
            label: "added".into(),
            format: plain,
        });
        c.series.push(series(Style::Line, Side::Left, 10_000));
        c.series.push(series(Style::Bars, Side::Right, 10_000));
        let svg = c.render();
        assert!(svg.len() < 40_000, "{} bytes", svg.len());
        assert_eq!(svg.matches("<polyline").count(), 1);
        assert_eq!(svg.matches("<path").count(), 2, "frame and bars");
    }
}
