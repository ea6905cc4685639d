//! Profiles: a TOML file naming a repository (with how to unlock it) and
//! the volumes to back up into it, each with its excludes, tags, retention
//! policy and hooks. `cairn run` carries them out; `cairn config check`
//! validates a file; `cairn config example` prints a commented one.
//! Unknown keys are errors that name their line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

/// The whole file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Profile {
    /// Any `--repo` form.
    pub repository: String,
    /// Password file of the repository.
    pub password_file: Option<PathBuf>,
    /// Command printing the repository's password.
    pub password_command: Option<String>,
    /// Key file of the repository.
    pub key_file: Option<PathBuf>,
    /// Local cache directory.
    pub cache_dir: Option<PathBuf>,
    /// Requests in flight for an object store.
    pub connections: Option<usize>,
    /// Host name recorded in snapshots (default: this machine's).
    pub host: Option<String>,
    /// Prometheus text file written after every run.
    pub metrics_file: Option<PathBuf>,
    /// How often `run` prunes: `12h`, `1d`, `7d` (default `1d`; `0` never).
    #[serde(default = "default_every")]
    pub prune_every: String,
    /// How often `run` checks the repository (default `1d`; `0` never).
    #[serde(default = "default_every")]
    pub check_every: String,
    /// Share of packs `run` reads and verifies: `2%` (default `0%`: the
    /// structure only).
    #[serde(default = "default_check")]
    pub check_read_data_subset: String,
    /// The volumes, by name.
    #[serde(default)]
    pub volumes: BTreeMap<String, Volume>,
}

/// One volume.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Volume {
    /// A directory to back up.
    pub path: Option<PathBuf>,
    /// Or a Docker named volume.
    pub docker_volume: Option<String>,
    /// With `docker-volume`: stop the running containers that mount it for
    /// an incremental second pass (as `backup --stop`).
    #[serde(default)]
    pub stop: bool,
    /// Tags of its snapshots.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Globs left out.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Do not cross into other filesystems.
    #[serde(default)]
    pub one_file_system: bool,
    /// Retention policy applied after each backup.
    pub keep: Option<Keep>,
    /// Command run (sh -c) before the backup; its failure skips the volume.
    pub pre: Option<String>,
    /// Command run (sh -c) after the backup, whatever happened.
    pub post: Option<String>,
}

/// `keep = { last = 24, daily = 7, weekly = 4 }`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Keep {
    #[serde(default)]
    pub last: u32,
    #[serde(default)]
    pub hourly: u32,
    #[serde(default)]
    pub daily: u32,
    #[serde(default)]
    pub weekly: u32,
    #[serde(default)]
    pub monthly: u32,
    #[serde(default)]
    pub yearly: u32,
    #[serde(default)]
    pub tags: Vec<String>,
}

fn default_every() -> String {
    "1d".into()
}

fn default_check() -> String {
    "0%".into()
}

impl Keep {
    /// As the library's policy.
    pub fn policy(&self) -> cairn_repo::ops::forget::Policy {
        cairn_repo::ops::forget::Policy {
            last: self.last,
            hourly: self.hourly,
            daily: self.daily,
            weekly: self.weekly,
            monthly: self.monthly,
            yearly: self.yearly,
            tags: self.tags.clone(),
        }
    }
}

/// `cairn.toml` in the user's config directory.
pub fn default_path() -> PathBuf {
    crate::location::xdg("XDG_CONFIG_HOME", ".config").join("cairn/cairn.toml")
}

/// Load the profile `--config` names (it must exist) or the default one
/// (if it exists), and fill in what the command line and environment left
/// open: they win over the file.
pub fn apply(cli: &mut crate::args::Cli) -> Result<Option<Profile>> {
    let path = match &cli.config {
        Some(p) => p.clone(),
        None => {
            let p = default_path();
            if !p.exists() {
                return Ok(None);
            }
            p
        }
    };
    let profile = load(&path)?;
    cli.repo.get_or_insert_with(|| profile.repository.clone());
    let secret_given = cli.password_file.is_some()
        || cli.password_command.is_some()
        || cli.key_file.is_some()
        || std::env::var_os("CAIRN_PASSWORD").is_some_and(|p| !p.is_empty());
    if !secret_given {
        cli.password_file.clone_from(&profile.password_file);
        cli.password_command.clone_from(&profile.password_command);
        cli.key_file.clone_from(&profile.key_file);
    }
    if cli.cache_dir.is_none() {
        cli.cache_dir.clone_from(&profile.cache_dir);
    }
    if cli.connections.is_none() {
        cli.connections = profile.connections;
    }
    if cli.metrics_file.is_none() {
        cli.metrics_file.clone_from(&profile.metrics_file);
    }
    Ok(Some(profile))
}

/// Read and check a profile.
pub fn load(path: &Path) -> Result<Profile> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("profile {}", path.display()))?;
    parse(&text).with_context(|| format!("profile {}", path.display()))
}

/// Parse and check a profile's text: TOML errors (unknown keys included)
/// name their line; each volume needs exactly one source.
pub fn parse(text: &str) -> Result<Profile> {
    let profile: Profile =
        toml::from_str(text).map_err(|e| anyhow::anyhow!("{}", one_line_toml(text, &e)))?;
    let secrets = [
        profile.password_file.is_some(),
        profile.password_command.is_some(),
        profile.key_file.is_some(),
    ];
    if secrets.iter().filter(|&&s| s).count() > 1 {
        bail!("give one of `password-file`, `password-command` and `key-file`");
    }
    for (name, v) in &profile.volumes {
        match (&v.path, &v.docker_volume) {
            (Some(_), Some(_)) => {
                bail!("volume {name:?}: give `path` or `docker-volume`, not both")
            }
            (None, None) => bail!("volume {name:?}: give its `path` or `docker-volume`"),
            _ => {}
        }
        cairn_repo::ops::backup::check_label("volume", name, true)?;
        if let Some(keep) = &v.keep {
            if keep.policy().is_empty() {
                bail!("volume {name:?}: `keep` keeps nothing (every count is 0)");
            }
        }
    }
    parse_every(&profile.prune_every)?;
    parse_every(&profile.check_every)?;
    crate::commands::maintain::percent(&profile.check_read_data_subset)?;
    Ok(profile)
}

/// `toml`'s error as one line: the line it is on and what is wrong.
fn one_line_toml(text: &str, e: &toml::de::Error) -> String {
    let msg = e.message();
    match e.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!("line {line}: {msg}")
        }
        None => msg.to_string(),
    }
}

/// `30m`, `12h`, `1d`, `2w` or `0` (never) as a duration.
pub fn parse_every(s: &str) -> Result<Option<std::time::Duration>> {
    let s = s.trim();
    if s == "0" {
        return Ok(None);
    }
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .with_context(|| format!("interval {s:?}: expected e.g. 12h, 1d, 7d or 0"))?;
    let secs = match unit {
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => bail!("interval {s:?}: the unit must be m, h, d or w"),
    };
    Ok(Some(std::time::Duration::from_secs(n * secs)))
}

/// A commented example with every key.
pub const EXAMPLE: &str = r#"# cairn profile: `cairn run` backs up every volume below (or those named),
# applies each one's retention policy, prunes when due and checks.

repository = "s3://backups/db1"          # any --repo form: a path or s3://BUCKET/PREFIX
password-file = "/etc/cairn/password"    # or password-command = "...", or key-file = "..."
# cache-dir = "/var/cache/cairn"
# connections = 16
# host = "db1"                           # default: this machine's name
# metrics-file = "/var/lib/node_exporter/textfile/cairn.prom"
prune-every = "1d"                       # 12h, 1d, 7d ... or 0 for never
check-every = "1d"                       # the same for check
check-read-data-subset = "2%"            # share of packs a check reads and verifies

[volumes.pgdata]
docker-volume = "pgdata"                 # a Docker named volume (its snapshots are named after it) ...
stop = true                              # stop the containers using it for an incremental pass
tags = ["hourly"]
keep = { last = 24, daily = 7, weekly = 4, monthly = 6 }

[volumes.config]
path = "/etc/myapp"                      # ... or a directory
exclude = ["*.tmp", "cache/"]
one-file-system = true
keep = { daily = 14 }
pre = "systemctl kill -s HUP myapp"      # run before the backup (sh -c); failing skips the volume
post = "logger cairn: config backed up"  # run after it, whatever happened
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_parses() {
        let p = parse(EXAMPLE).unwrap();
        assert_eq!(p.volumes.len(), 2);
        assert_eq!(p.volumes["pgdata"].keep.as_ref().unwrap().last, 24);
        assert_eq!(
            p.password_file.as_deref(),
            Some(Path::new("/etc/cairn/password"))
        );
    }

    #[test]
    fn the_minimal_schema_parses() {
        let text = r#"
repository = "/srv/repo"
password-file = "/etc/cairn/password"
[volumes.pgdata]
path = "/var/lib/docker/volumes/pgdata/_data"
tags = ["hourly"]
exclude = ["*.tmp"]
keep = { last = 24, daily = 7, weekly = 4 }
"#;
        let p = parse(text).unwrap();
        assert_eq!(p.volumes["pgdata"].exclude, ["*.tmp"]);
    }

    #[test]
    fn unknown_keys_and_bad_volumes_are_errors() {
        let e = parse("repository = \"/r\"\nbogus = 1\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("bogus"), "{e}");
        let e = parse("repository = \"/r\"\n[volumes.a]\npath = \"/x\"\nkep = { last = 1 }\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("kep"), "{e}");
        assert!(parse("repository = \"/r\"\n[volumes.a]\ntags = []\n").is_err());
        assert!(parse("repository = \"/r\"\n[volumes.a]\npath = \"/x\"\nkeep = {}\n").is_err());
        assert!(parse("repository = \"/r\"\nprune-every = \"3y\"\n").is_err());
    }

    #[test]
    fn intervals() {
        assert_eq!(parse_every("0").unwrap(), None);
        assert_eq!(parse_every("12h").unwrap().unwrap().as_secs(), 43_200);
        assert!(parse_every("h").is_err());
    }
}
