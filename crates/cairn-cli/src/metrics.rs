//! `--metrics-file`: the Prometheus text format, for node_exporter's
//! textfile collector. One file serves every volume backed up into it:
//! a run replaces its volumes' samples and keeps the others', and the file
//! is replaced atomically so the collector never reads half of it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use cairn_repo::format::snapshot::Summary;

/// The metric families, in the order they are written, with their help.
const FAMILIES: &[(&str, &str)] = &[
    (
        "cairn_backup_last_run_timestamp_seconds",
        "When the last backup of the volume ended, successful or not.",
    ),
    (
        "cairn_backup_last_success_timestamp_seconds",
        "When the last successful (or partial) backup of the volume ended.",
    ),
    (
        "cairn_backup_success",
        "1 if the last backup of the volume saved a snapshot, else 0.",
    ),
    (
        "cairn_backup_duration_seconds",
        "Wall time of the last backup of the volume.",
    ),
    (
        "cairn_backup_bytes_read",
        "File bytes the last backup read.",
    ),
    (
        "cairn_backup_bytes_added",
        "Plain bytes of the new data the last backup stored.",
    ),
    (
        "cairn_backup_bytes_added_stored",
        "Bytes the new data takes in the repository (compressed, sealed).",
    ),
    (
        "cairn_backup_files",
        "Files in the last snapshot of the volume.",
    ),
    (
        "cairn_backup_errors",
        "Files the last successful backup could not read consistently.",
    ),
    (
        "cairn_repository_size_bytes",
        "Size of the repository's packs, index and snapshots after the last backup of the volume.",
    ),
];

/// What one backup of a volume came to.
pub struct VolumeMetrics<'a> {
    /// The volume's name.
    pub volume: &'a str,
    /// The summary when a snapshot was saved; `None` when the backup failed.
    pub summary: Option<&'a Summary>,
    /// Wall time, also for a failed backup.
    pub duration_s: f64,
    /// Repository size, when it could be measured.
    pub repository_bytes: Option<u64>,
}

/// Samples per metric per volume.
type Samples = BTreeMap<String, BTreeMap<String, f64>>;

/// Record `runs` in the file at `path`, keeping other volumes' samples and,
/// for a failed backup, the time of the volume's last success.
pub fn record(path: &Path, runs: &[VolumeMetrics]) -> Result<()> {
    let old = match std::fs::read_to_string(path) {
        Ok(text) => parse(&text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Samples::new(),
        Err(e) => return Err(e).with_context(|| format!("metrics file {}", path.display())),
    };
    let mut samples = old;
    let now = now_s();
    for run in runs {
        update(&mut samples, run, now);
    }
    write_atomically(path, &render(&samples))
        .with_context(|| format!("metrics file {}", path.display()))
}

fn update(samples: &mut Samples, run: &VolumeMetrics, now: f64) {
    let mut set = |name: &str, value: f64| {
        samples
            .entry(name.to_string())
            .or_default()
            .insert(run.volume.to_string(), value);
    };
    set("cairn_backup_last_run_timestamp_seconds", now);
    set("cairn_backup_duration_seconds", run.duration_s);
    set(
        "cairn_backup_success",
        f64::from(u8::from(run.summary.is_some())),
    );
    if let Some(bytes) = run.repository_bytes {
        set("cairn_repository_size_bytes", bytes as f64);
    }
    match run.summary {
        Some(s) => {
            set("cairn_backup_last_success_timestamp_seconds", now);
            set("cairn_backup_bytes_read", s.bytes_read as f64);
            set("cairn_backup_bytes_added", s.bytes_added as f64);
            set(
                "cairn_backup_bytes_added_stored",
                s.bytes_added_stored as f64,
            );
            let files = s.files_new + s.files_changed + s.files_unmodified;
            set("cairn_backup_files", files as f64);
            set("cairn_backup_errors", s.errors as f64);
        }
        None => {
            // What the failed run read is unknown; the last success's
            // figures would mislead, so they go and the time stays.
            for name in [
                "cairn_backup_bytes_read",
                "cairn_backup_bytes_added",
                "cairn_backup_bytes_added_stored",
                "cairn_backup_files",
                "cairn_backup_errors",
            ] {
                if let Some(by_volume) = samples.get_mut(name) {
                    by_volume.remove(run.volume);
                }
            }
        }
    }
}

fn now_s() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64().floor())
}

/// The samples of a file this module wrote; lines it does not know are
/// dropped (a metric that is gone from cairn must not linger).
fn parse(text: &str) -> Samples {
    let mut samples = Samples::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((name, rest)) = line.split_once("{volume=\"") else {
            continue;
        };
        if !FAMILIES.iter().any(|(n, _)| *n == name) {
            continue;
        }
        let Some((volume, value)) = split_label(rest) else {
            continue;
        };
        if let Ok(v) = value.trim().parse::<f64>() {
            samples
                .entry(name.to_string())
                .or_default()
                .insert(volume, v);
        }
    }
    samples
}

/// `escaped-volume"} value` as the volume and the value.
fn split_label(rest: &str) -> Option<(String, &str)> {
    let mut volume = String::new();
    let mut chars = rest.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => match chars.next()?.1 {
                'n' => volume.push('\n'),
                other => volume.push(other),
            },
            '"' => return Some((volume, rest[i + 1..].strip_prefix('}')?)),
            c => volume.push(c),
        }
    }
    None
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn render(samples: &Samples) -> String {
    let mut out = String::new();
    for (name, help) in FAMILIES {
        let Some(by_volume) = samples.get(*name).filter(|m| !m.is_empty()) else {
            continue;
        };
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} gauge");
        for (volume, value) in by_volume {
            let _ = writeln!(out, "{name}{{volume=\"{}\"}} {value}", escape(volume));
        }
    }
    out
}

/// Write beside the file, then rename over it: readers see the old file or
/// the new one, never a part.
fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".cairn-metrics-")
        .tempfile_in(dir)?;
    tmp.write_all(text.as_bytes())?;
    // node_exporter runs as its own user: the file must be world-readable.
    std::fs::set_permissions(
        tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary() -> Summary {
        Summary {
            files_new: 2,
            files_changed: 1,
            files_unmodified: 4,
            bytes_read: 300,
            bytes_added: 200,
            bytes_added_stored: 100,
            errors: 1,
            ..Summary::default()
        }
    }

    #[test]
    fn a_run_keeps_other_volumes_and_the_last_success() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cairn.prom");
        let s = summary();
        let ok = |volume| VolumeMetrics {
            volume,
            summary: Some(&s),
            duration_s: 1.5,
            repository_bytes: Some(4096),
        };
        record(&path, &[ok("a"), ok("we\"ird")]).unwrap();
        let first = parse(&std::fs::read_to_string(&path).unwrap());
        let success = first["cairn_backup_last_success_timestamp_seconds"]["a"];
        assert_eq!(first["cairn_backup_files"]["we\"ird"], 7.0);

        let failed = VolumeMetrics {
            volume: "a",
            summary: None,
            duration_s: 0.1,
            repository_bytes: None,
        };
        record(&path, &[failed]).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let second = parse(&text);
        assert_eq!(second["cairn_backup_success"]["a"], 0.0);
        assert_eq!(
            second["cairn_backup_last_success_timestamp_seconds"]["a"],
            success
        );
        assert!(!second["cairn_backup_files"].contains_key("a"));
        assert_eq!(second["cairn_backup_files"]["we\"ird"], 7.0);
        assert_eq!(second["cairn_repository_size_bytes"]["a"], 4096.0);
        assert_eq!(text.matches("# TYPE cairn_backup_success gauge").count(), 1);
    }

    #[test]
    fn labels_round_trip() {
        for v in ["plain", "q\"uote", "back\\slash", "new\nline"] {
            let line = format!("{}\"}} 1", escape(v));
            assert_eq!(split_label(&line), Some((v.to_string(), " 1")));
        }
    }
}
