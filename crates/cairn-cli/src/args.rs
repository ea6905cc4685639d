//! Command-line arguments: every command and flag the README documents.
//!
//! One long file of declarations on purpose: the whole command line can be
//! read (and checked against the README) in one place.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// cairn: deduplicating snapshots of container volumes.
#[derive(Parser, Debug, Clone)]
#[command(name = "cairn", version, propagate_version = true)]
pub struct Cli {
    /// Repository location (a local path). Default: $XDG_DATA_HOME/cairn/repo.
    #[arg(long, global = true, env = "CAIRN_REPO", value_name = "LOCATION")]
    pub repo: Option<String>,
    /// Machine-readable output on stdout (one JSON document).
    #[arg(long, global = true)]
    pub json: bool,
    /// Print only errors.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// More detail on stderr.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Directory for the local index cache. Default: $XDG_CACHE_HOME.
    #[arg(long, global = true, env = "CAIRN_CACHE_DIR", value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Read the repository password from this file (the first line). The
    /// password can also come from CAIRN_PASSWORD.
    #[arg(long, global = true, env = "CAIRN_PASSWORD_FILE", value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Run this command (with sh -c) and use its output as the password.
    #[arg(
        long,
        global = true,
        env = "CAIRN_PASSWORD_COMMAND",
        value_name = "CMD"
    )]
    pub password_command: Option<String>,
    /// Unlock the repository with this key file instead of a password.
    #[arg(long, global = true, env = "CAIRN_KEY_FILE", value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// Requests to an object store kept in flight at once (uploads, range
    /// reads). Default: 16.
    #[arg(long, global = true, env = "CAIRN_CONNECTIONS", value_name = "N")]
    pub connections: Option<usize>,
    /// Profile to read (repository, credentials, volumes). Default:
    /// $XDG_CONFIG_HOME/cairn/cairn.toml when it exists. Flags and
    /// environment variables win over the profile.
    #[arg(long, global = true, env = "CAIRN_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// After a backup, record per-volume metrics in this file in the
    /// Prometheus text format (for node_exporter's textfile collector).
    #[arg(long, global = true, env = "CAIRN_METRICS_FILE", value_name = "PATH")]
    pub metrics_file: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug, Clone)]
pub enum Command {
    /// Create a repository.
    Init(InitArgs),
    /// Snapshot one or more directory trees.
    Backup(Box<BackupArgs>),
    /// List snapshots.
    Snapshots(FilterArgs),
    /// List the tree of a snapshot.
    Ls(LsArgs),
    /// Restore a snapshot (or part of one) into a directory.
    Restore(RestoreArgs),
    /// Print a repository object as JSON.
    Cat(CatArgs),
    /// List the Docker engine's volumes with their latest snapshot, its age and size.
    Volumes,
    /// Show what changed between two snapshots.
    Diff(DiffArgs),
    /// Mount the repository read-only (FUSE) until Ctrl-C or `fusermount3 -u`.
    Mount(MountArgs),
    /// Free the space of data no snapshot references.
    Prune(PruneArgs),
    /// Verify the repository's structure, and with --read-data every byte.
    Check(CheckArgs),
    /// Rebuild derived data from the repository.
    Repair(RepairArgs),
    /// Remove snapshots by id or by a retention policy (the data stays until a prune).
    Forget(ForgetArgs),
    /// Sizes, dedup and compression ratios, and what each snapshot alone holds.
    Stats(StatsArgs),
    /// Dedup, compression, index size and speed of trees under several
    /// chunker settings, without a repository.
    Bench(BenchArgs),
    /// Manage the passwords and key files that unlock an encrypted repository.
    Key(KeyArgs),
    /// Copy snapshots to another repository, sending only what it lacks.
    Copy(CopyArgs),
    /// Back up the profile's volumes (all, or those named), apply each one's
    /// retention policy, then prune and check when due.
    Run(RunArgs),
    /// Validate a profile, or print a commented example.
    Config {
        #[command(subcommand)]
        what: ConfigCommand,
    },
    /// Serve a web interface: volumes, history, browse, diff, download,
    /// checks and (with --allow-restore) restores. The access token comes
    /// from CAIRN_SERVE_TOKEN, or is generated; the URL printed at start
    /// carries it.
    Serve(ServeArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page, or write one per command into a directory.
    Man {
        /// Write cairn.1 and cairn-COMMAND.1 here instead of printing cairn.1.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8490", value_name = "ADDR")]
    pub listen: String,
    /// Offer restores from the browser, into directories below --restore-root.
    #[arg(long, requires = "restore_root")]
    pub allow_restore: bool,
    /// The directory browser restores go below.
    #[arg(long, value_name = "DIR")]
    pub restore_root: Option<PathBuf>,
    /// Show a volume as stale when its latest snapshot is older than this many hours.
    #[arg(long, default_value_t = 26, value_name = "HOURS")]
    pub stale_after: u64,
    /// Downloads, diffs, checks and restores running at once; more are refused (503).
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub heavy: usize,
}

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Volumes of the profile to back up (default: all).
    #[arg(value_name = "VOLUME")]
    pub volumes: Vec<String>,
    /// Read everything and show what the policies would remove; write,
    /// remove, prune and check nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Subcommand, Debug, Clone)]
pub enum ConfigCommand {
    /// Check a profile (default: the one --config names, or the default
    /// path): its keys, volumes, policies and intervals.
    Check {
        /// The profile file.
        file: Option<PathBuf>,
    },
    /// Print a commented example profile with every key.
    Example,
}

#[derive(Args, Debug, Clone)]
pub struct KeyArgs {
    #[command(subcommand)]
    pub what: KeyCommand,
}

/// Where a new password or key comes from (`key add`, `key passwd`).
#[derive(Args, Debug, Clone)]
pub struct NewSecretArgs {
    /// Read the new password from this file. The new password can also come
    /// from CAIRN_NEW_PASSWORD.
    #[arg(long, value_name = "FILE")]
    pub new_password_file: Option<PathBuf>,
    /// Use this key file (created, 0600, with a random key if it does not exist).
    #[arg(long, value_name = "FILE", conflicts_with = "new_password_file")]
    pub new_key_file: Option<PathBuf>,
}

#[derive(Subcommand, Debug, Clone)]
pub enum KeyCommand {
    /// List the key slots: id, kind, when and where each was added.
    List,
    /// Add a password or key file that unlocks the repository.
    Add(NewSecretArgs),
    /// Remove a key slot (never the last one).
    Remove {
        /// Key id (or a unique prefix of at least 4 hex digits).
        id: String,
    },
    /// Replace the password or key file you unlocked with by a new one.
    Passwd(NewSecretArgs),
}

#[derive(Args, Debug, Clone, Default)]
pub struct ChunkArgs {
    /// Minimum chunk size (K/M suffixes).
    #[arg(long, value_name = "SIZE")]
    pub chunk_min: Option<String>,
    /// Average chunk size (K/M suffixes).
    #[arg(long, value_name = "SIZE")]
    pub chunk_avg: Option<String>,
    /// Maximum chunk size (K/M suffixes).
    #[arg(long, value_name = "SIZE")]
    pub chunk_max: Option<String>,
    /// Compression: zstd:N or none (default zstd:3 per 256 KiB frame of
    /// new data; with `--format 2`, zstd:1 per chunk).
    #[arg(long, value_name = "zstd:N|none")]
    pub compression: Option<String>,
    /// Target pack size (K/M suffixes; 16K to 1G, default 16M). Object
    /// stores favour larger packs: fewer requests per GiB.
    #[arg(long, value_name = "SIZE")]
    pub pack_size: Option<String>,
    /// Repository format: 3 (default: frames, smaller repositories) or 2
    /// (chunk by chunk, readable by cairn versions before frames; stored
    /// as format 1 with --insecure-no-encryption).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(2..=3))]
    pub format: Option<u32>,
}

#[derive(Args, Debug, Clone)]
pub struct InitArgs {
    #[command(flatten)]
    pub chunk: ChunkArgs,
    /// Make a plaintext repository: anyone who can read it reads your data.
    #[arg(long)]
    pub insecure_no_encryption: bool,
    /// Cut and name chunks as this repository does (its chunk sizes, and
    /// for two encrypted repositories its chunking keys), so the two
    /// deduplicate against each other and `copy` sends only what is missing.
    #[arg(long, value_name = "LOCATION")]
    pub copy_chunker_params: Option<String>,
    /// Cipher of an encrypted repository: aes-256-gcm (format 3; the
    /// default where the CPU has AES instructions, about ten times cheaper
    /// there) or xchacha20-poly1305 (the default elsewhere, and for
    /// --format 2).
    #[arg(long, value_name = "NAME", value_parser = ["aes-256-gcm", "xchacha20-poly1305"])]
    pub encryption: Option<String>,
    #[command(flatten)]
    pub from: FromKeyArgs,
}

/// How to unlock the repository `init --copy-chunker-params` reads.
#[derive(Args, Debug, Clone, Default)]
pub struct FromKeyArgs {
    /// Its password file (or CAIRN_FROM_PASSWORD).
    #[arg(long, value_name = "FILE")]
    pub from_password_file: Option<PathBuf>,
    /// A command printing its password.
    #[arg(long, value_name = "CMD")]
    pub from_password_command: Option<String>,
    /// Its key file.
    #[arg(long, value_name = "FILE")]
    pub from_key_file: Option<PathBuf>,
}

/// How to unlock the destination of `copy`.
#[derive(Args, Debug, Clone, Default)]
pub struct ToKeyArgs {
    /// Its password file (or CAIRN_TO_PASSWORD).
    #[arg(long, value_name = "FILE")]
    pub to_password_file: Option<PathBuf>,
    /// A command printing its password.
    #[arg(long, value_name = "CMD")]
    pub to_password_command: Option<String>,
    /// Its key file.
    #[arg(long, value_name = "FILE")]
    pub to_key_file: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub struct CopyArgs {
    /// Snapshots to copy (ids, prefixes, `latest`); default: all that the
    /// filters pass.
    #[arg(value_name = "SNAP")]
    pub snapshots: Vec<String>,
    /// The destination repository (a path or s3://BUCKET/PREFIX). It must
    /// exist; snapshots it already has are skipped.
    #[arg(long, value_name = "LOCATION")]
    pub to: String,
    #[command(flatten)]
    pub keys: ToKeyArgs,
    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(Args, Debug, Default, Clone)]
pub struct FilterArgs {
    /// Only this volume.
    #[arg(long)]
    pub volume: Option<String>,
    /// Only snapshots with this tag (repeatable: all must match).
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// Only this host.
    #[arg(long)]
    pub host: Option<String>,
}

#[derive(Args, Debug, Clone)]
pub struct BackupArgs {
    /// Directories (or files) to back up.
    #[arg(
        value_name = "PATH",
        required_unless_present_any = ["docker_volume", "docker_container", "docker_all", "stdin_from_command"],
        conflicts_with_all = ["docker_volume", "docker_container", "docker_all", "stdin_from_command"]
    )]
    pub paths: Vec<PathBuf>,
    /// Volume name. Default: the last component of the single PATH.
    #[arg(long)]
    pub volume: Option<String>,
    /// Tag the snapshot (repeatable).
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// Host name to record. Default: this machine's.
    #[arg(long)]
    pub host: Option<String>,
    /// Snapshot whose unchanged files are not read again. Default: the latest
    /// of the same volume, host and paths.
    #[arg(long, value_name = "SNAP")]
    pub parent: Option<String>,
    /// Skip paths matching this glob (repeatable).
    #[arg(long = "exclude", value_name = "GLOB")]
    pub excludes: Vec<String>,
    /// Read exclude globs from a file, one per line (# comments).
    #[arg(long, value_name = "FILE")]
    pub exclude_file: Vec<PathBuf>,
    /// Do not cross into other filesystems.
    #[arg(long)]
    pub one_file_system: bool,
    /// Read and chunk everything, write nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub docker: DockerBackupArgs,
    #[command(flatten)]
    pub chunk: ChunkArgs,
}

/// Docker volumes, consistency hooks and command output (`backup`).
#[derive(Args, Debug, Clone, Default)]
pub struct DockerBackupArgs {
    /// Back up this Docker named volume, found through the engine
    /// (DOCKER_HOST or /var/run/docker.sock); repeatable, one snapshot each,
    /// the volume's name as the snapshot's volume.
    #[arg(long, value_name = "NAME", conflicts_with = "volume")]
    pub docker_volume: Vec<String>,
    /// Back up every volume this container mounts, one snapshot each (repeatable).
    #[arg(long, value_name = "NAME", conflicts_with = "volume")]
    pub docker_container: Vec<String>,
    /// Back up every volume of the engine (narrowed by --label).
    #[arg(long, conflicts_with = "volume")]
    pub docker_all: bool,
    /// With --docker-all: only volumes with this label (KEY or KEY=VALUE; repeatable, all must match).
    #[arg(long, value_name = "KEY[=VALUE]", requires = "docker_all")]
    pub label: Vec<String>,
    /// Stop the running containers that mount a volume for its backup: a
    /// first pass runs while they run, then they are stopped for an
    /// incremental pass and started again however it ends.
    #[arg(long)]
    pub stop: bool,
    /// Run this command (sh -c) on the host before the backup; if it fails,
    /// nothing is backed up.
    #[arg(long, value_name = "CMD")]
    pub pre: Option<String>,
    /// Run this command (sh -c) on the host after the backup, whatever happened.
    #[arg(long, value_name = "CMD")]
    pub post: Option<String>,
    /// Run CMD (no shell) in a running container before the backup, e.g.
    /// 'db:psql -U postgres -c CHECKPOINT'; if it fails, nothing is backed
    /// up (repeatable, run in order).
    #[arg(long, value_name = "CONTAINER:CMD")]
    pub exec: Vec<String>,
    /// Store the output of this command (sh -c) as a file of the snapshot
    /// (pg_dump, mysqldump); if it fails, no snapshot is saved.
    #[arg(long, value_name = "CMD")]
    pub stdin_from_command: Option<String>,
    /// The file name --stdin-from-command's output gets in the snapshot (default: stdin).
    #[arg(long, value_name = "NAME", requires = "stdin_from_command")]
    pub stdin_name: Option<String>,
}

impl DockerBackupArgs {
    /// The volumes asked for by name, container or label.
    pub fn selection(&self) -> cairn_containers::Selection {
        cairn_containers::Selection {
            volumes: self.docker_volume.clone(),
            containers: self.docker_container.clone(),
            all: self.docker_all,
            labels: self.label.clone(),
        }
    }
}

#[derive(Args, Debug, Clone)]
pub struct LsArgs {
    /// Snapshot: id, prefix or `latest`.
    pub snapshot: String,
    /// Path inside the snapshot (default: the root).
    pub path: Option<String>,
    /// Show type, mode, size and mtime.
    #[arg(long, short)]
    pub long: bool,
    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(Args, Debug, Clone)]
pub struct RestoreArgs {
    /// SNAP or SNAP:SUBPATH.
    #[arg(value_name = "SNAP[:SUBPATH]")]
    pub snapshot: String,
    /// Directory to restore into.
    #[arg(long, value_name = "DIR", required_unless_present = "to_docker_volume")]
    pub target: Option<PathBuf>,
    /// Restore into this Docker named volume: created with the driver,
    /// labels and options recorded at backup if it does not exist; an
    /// existing one must not be in use (unless --stop) and must be empty
    /// (unless --delete).
    #[arg(long, value_name = "NAME", conflicts_with = "target")]
    pub to_docker_volume: Option<String>,
    /// With --to-docker-volume: stop the running containers that use the
    /// volume for the restore, and start them again afterwards.
    #[arg(long, requires = "to_docker_volume")]
    pub stop: bool,
    /// Only restore paths matching this glob (repeatable).
    #[arg(long = "include", value_name = "GLOB")]
    pub includes: Vec<String>,
    /// Do not restore paths matching this glob (repeatable).
    #[arg(long = "exclude", value_name = "GLOB")]
    pub excludes: Vec<String>,
    /// Remove files in the target that the snapshot does not have.
    #[arg(long)]
    pub delete: bool,
    /// Re-read restored files and check them against the snapshot.
    #[arg(long)]
    pub verify: bool,
    /// Show what would be restored, write nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(Args, Debug, Clone)]
pub struct CatArgs {
    /// config, snapshot or tree.
    #[arg(value_parser = ["config", "snapshot", "tree"])]
    pub kind: String,
    /// Object id (snapshot: id, prefix or `latest`).
    pub id: Option<String>,
}

#[derive(Args, Debug, Clone)]
pub struct ForgetArgs {
    /// Snapshots to remove: ids, prefixes or `latest` (instead of a policy).
    #[arg(value_name = "SNAP")]
    pub snapshots: Vec<String>,
    /// Keep the N newest snapshots of each group.
    #[arg(long, value_name = "N")]
    pub keep_last: Option<u32>,
    /// Keep the newest snapshot of each of the N most recent hours (UTC).
    #[arg(long, value_name = "N")]
    pub keep_hourly: Option<u32>,
    /// Keep the newest snapshot of each of the N most recent days (UTC).
    #[arg(long, value_name = "N")]
    pub keep_daily: Option<u32>,
    /// Keep the newest snapshot of each of the N most recent ISO weeks (UTC).
    #[arg(long, value_name = "N")]
    pub keep_weekly: Option<u32>,
    /// Keep the newest snapshot of each of the N most recent months (UTC).
    #[arg(long, value_name = "N")]
    pub keep_monthly: Option<u32>,
    /// Keep the newest snapshot of each of the N most recent years (UTC).
    #[arg(long, value_name = "N")]
    pub keep_yearly: Option<u32>,
    /// Keep every snapshot with this tag (repeatable).
    #[arg(long = "keep-tag", value_name = "TAG")]
    pub keep_tags: Vec<String>,
    /// also run prune afterwards
    #[arg(long)]
    pub prune: bool,
    /// Show what would be kept and removed, and why; remove nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(Args, Debug, Clone)]
pub struct StatsArgs {
    /// Snapshots to count (default: all).
    pub snapshots: Vec<String>,
    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(Args, Debug, Clone)]
pub struct DiffArgs {
    /// The older snapshot.
    pub first: String,
    /// The newer snapshot.
    pub second: String,
    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(Args, Debug, Clone)]
pub struct MountArgs {
    /// An existing empty directory.
    pub mountpoint: PathBuf,
}

#[derive(Args, Debug, Clone)]
pub struct PruneArgs {
    /// Repack packs with more than this share unused (percent, e.g. 5 or 5%).
    #[arg(long, default_value = "5", value_name = "PERCENT")]
    pub max_unused: String,
    /// Show what would be freed, change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Args, Debug, Clone)]
pub struct CheckArgs {
    /// Read and verify every blob.
    #[arg(long)]
    pub read_data: bool,
    /// Read and verify this share of the packs (percent, e.g. 10 or 10%).
    #[arg(long, value_name = "PERCENT", conflicts_with = "read_data")]
    pub read_data_subset: Option<String>,
}

#[derive(Args, Debug, Clone)]
pub struct RepairArgs {
    #[command(subcommand)]
    pub what: RepairWhat,
}

#[derive(Subcommand, Debug, Clone)]
pub enum RepairWhat {
    /// Rebuild the index (repository segments and local cache) from the packs.
    Index,
    /// Remove unreadable snapshots, and replace each snapshot that needs
    /// missing or damaged data by one without the files it lost.
    Snapshots {
        /// Show what would be removed and replaced, change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// Trees to measure. With several (say yesterday's and today's copy of a
    /// volume), what the last adds on top of the others is reported too.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Average chunk sizes to try, comma-separated (min = avg/4, max = avg*4).
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        default_value = "16K,32K,64K,256K,1M"
    )]
    pub chunk_avg: Vec<String>,
    /// Compressions to try chunk by chunk, comma-separated (zstd:N or
    /// none). Default: zstd:1,zstd:3, plus zstd:3 in frames.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub compression: Vec<String>,
    /// Also measure each compression on frames of this many plain bytes of
    /// consecutive new chunks, as format-3 repositories store data (0:
    /// chunk by chunk only).
    #[arg(long, value_name = "SIZE", default_value = "256K")]
    pub frame_size: String,
    /// Also write an SVG chart of stored and index bytes against chunk size.
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
}
