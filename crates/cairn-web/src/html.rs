//! HTML as strings: the escaping helper every interpolated value goes
//! through, the page frame, and how names, sizes, times and modes read.

use std::fmt::Write as _;

use cairn_repo::format::tree::Timestamp;
use cairn_repo::{Node, NodeKind};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

pub use cairn_chart::bytes_label as human_bytes;
pub use cairn_chart::escape as esc;

/// Bytes kept as they are in a URL query value; everything else is
/// percent-encoded (raw name bytes included, so non-UTF-8 names survive).
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// Raw bytes as a query value.
pub fn url_bytes(b: &[u8]) -> String {
    percent_encoding::percent_encode(b, QUERY_VALUE).to_string()
}

/// Text as one URL path segment.
pub fn url_segment(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

/// A name as HTML: valid UTF-8 escaped, control characters and bytes that
/// are not UTF-8 shown as `\xNN` in a marked span, so a name can neither
/// inject markup nor pass for another name.
pub fn name_html(name: &[u8]) -> String {
    let mut out = String::new();
    for chunk in name.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control() {
                let _ = write!(out, r#"<span class="raw">\u{{{:x}}}</span>"#, c as u32);
            } else {
                out.push_str(&esc(c.encode_utf8(&mut [0; 4])));
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, r#"<span class="raw">\x{b:02x}</span>"#);
        }
    }
    out
}

/// A page: title, navigation, body. Styles and scripts come from `/assets`
/// so that the Content-Security-Policy can forbid everything inline.
pub fn page(title: &str, body: &str) -> String {
    format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{t} · cairn</title>
<link rel="stylesheet" href="/assets/style.css">
</head><body>
<header><a class="brand" href="/">cairn</a>
<nav><a href="/">Volumes</a> <a href="/repository">Repository</a></nav></header>
<main>
{body}
</main></body></html>
"#,
        t = esc(title)
    )
}

/// A hidden form field.
pub fn hidden(name: &str, value: &str) -> String {
    format!(
        r#"<input type="hidden" name="{}" value="{}">"#,
        esc(name),
        esc(value)
    )
}

/// A UTC time as `2026-05-01 12:00:00`.
pub fn time(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// A node time with nanoseconds.
pub fn node_time(t: &Timestamp) -> String {
    chrono::DateTime::from_timestamp(t.sec, t.nsec).map_or_else(
        || format!("{}.{:09}", t.sec, t.nsec),
        |d| d.format("%Y-%m-%d %H:%M:%S%.9f").to_string(),
    )
}

/// Tick labels for a time axis (x in Unix seconds) spanning `span` seconds:
/// dates for long spans, times of day for short ones.
pub fn time_ticks(span: f64) -> fn(f64) -> String {
    fn fmt(secs: f64, f: &str) -> String {
        chrono::DateTime::from_timestamp(secs.floor() as i64, 0)
            .map_or_else(String::new, |t| t.format(f).to_string())
    }
    if span > 4.0 * 86_400.0 {
        |x| fmt(x, "%Y-%m-%d")
    } else if span > 600.0 {
        |x| fmt(x, "%m-%d %H:%M")
    } else if span > 10.0 {
        |x| fmt(x, "%H:%M:%S")
    } else {
        |x| {
            format!(
                "{}.{}",
                fmt(x, "%H:%M:%S"),
                ((x.fract() * 10.0) as u32).min(9)
            )
        }
    }
}

/// A snapshot's time as an x value (Unix seconds, fractional).
pub fn x_time(s: &cairn_repo::Snapshot) -> f64 {
    s.timestamp().timestamp_micros() as f64 / 1e6
}

/// An age as people say it: `40 s`, `3 min`, `5 h`, `12 d`.
pub fn age(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..172_800 => format!("{} h", s / 3600),
        _ => format!("{} d", s / 86_400),
    }
}

/// `ls -l` style type and permission bits.
pub fn mode_string(n: &Node) -> String {
    let mut s = String::with_capacity(10);
    s.push(match n.kind {
        NodeKind::File => '-',
        NodeKind::Dir => 'd',
        NodeKind::Symlink => 'l',
        NodeKind::Fifo => 'p',
        NodeKind::CharDev => 'c',
        NodeKind::BlockDev => 'b',
        NodeKind::Socket => 's',
    });
    for shift in [6, 3, 0] {
        let bits = (n.mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    s
}

/// Links to the previous and next page of a list of `total` items shown
/// `per` at a time from `from`; `link(from)` makes each URL.
pub fn pager(total: usize, from: usize, per: usize, link: &dyn Fn(usize) -> String) -> String {
    if total <= per {
        return String::new();
    }
    let mut out = String::from(r#"<p class="pager">"#);
    if from > 0 {
        let _ = write!(
            out,
            r#"<a href="{}">← previous</a> "#,
            esc(&link(from.saturating_sub(per)))
        );
    }
    let _ = write!(out, "{}–{} of {total}", from + 1, (from + per).min(total));
    if from + per < total {
        let _ = write!(out, r#" <a href="{}">next →</a>"#, esc(&link(from + per)));
    }
    out.push_str("</p>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cannot_inject_markup() {
        assert_eq!(name_html(b"<b>&"), "&lt;b&gt;&amp;");
        assert_eq!(name_html(b"a\xffb"), r#"a<span class="raw">\xff</span>b"#);
        assert_eq!(name_html(b"\n"), r#"<span class="raw">\u{a}</span>"#);
    }

    #[test]
    fn urls_keep_raw_bytes() {
        assert_eq!(url_bytes(b"a b/\xff&"), "a%20b/%FF%26");
        assert_eq!(url_segment("a/b c"), "a%2Fb%20c");
    }

    #[test]
    fn time_ticks_fit_the_span() {
        let t = 1_700_000_000.25;
        assert_eq!(time_ticks(1.0)(t), "22:13:20.2");
        assert_eq!(time_ticks(60.0)(t), "22:13:20");
        assert_eq!(time_ticks(86_400.0)(t), "11-14 22:13");
        assert_eq!(time_ticks(1e7)(t), "2023-11-14");
    }

    #[test]
    fn pager_links_both_ways() {
        let p = pager(2500, 1000, 1000, &|f| format!("?from={f}"));
        assert!(p.contains("?from=0") && p.contains("?from=2000"));
        assert!(pager(10, 0, 1000, &|_| String::new()).is_empty());
    }
}
