//! One module per group of commands; each returns the process exit code.

mod backup;
mod bench;
mod copy;
mod diff;
mod docker;
mod docs;
mod forget;
mod init;
mod inspect;
mod key;
pub(crate) mod maintain;
mod mount;
mod restore;
mod run;
mod serve;
mod stats;

use anyhow::Result;

use crate::args::{Cli, Command, FilterArgs};
use crate::output::Out;

/// Run the parsed command line.
pub fn run(mut cli: Cli) -> Result<u8> {
    let profile = match &cli.command {
        // These never touch a repository; `config check` reads its own file.
        Command::Completions { .. }
        | Command::Man { .. }
        | Command::Config { .. }
        | Command::Bench(_) => None,
        _ => crate::profile::apply(&mut cli)?,
    };
    let out = Out {
        json: cli.json,
        quiet: cli.quiet,
        verbose: cli.verbose,
    };
    match &cli.command {
        Command::Init(a) => init::init(&cli, &out, a),
        Command::Backup(a) => backup::backup(&cli, &out, a),
        Command::Snapshots(a) => inspect::snapshots(&cli, &out, a),
        Command::Ls(a) => inspect::ls(&cli, &out, a),
        Command::Cat(a) => inspect::cat(&cli, &out, a),
        Command::Restore(a) => restore::restore(&cli, &out, a),
        Command::Volumes => docker::volumes(&cli, &out),
        Command::Forget(a) => forget::forget(&cli, &out, a),
        Command::Stats(a) => stats::stats(&cli, &out, a),
        Command::Bench(a) => bench::bench(&out, a),
        Command::Diff(a) => diff::diff(&cli, &out, a),
        Command::Mount(a) => mount::mount(&cli, &out, a),
        Command::Prune(a) => maintain::prune(&cli, &out, a),
        Command::Check(a) => maintain::check(&cli, &out, a),
        Command::Repair(a) => maintain::repair(&cli, &out, a),
        Command::Key(a) => key::key(&cli, &out, a),
        Command::Copy(a) => copy::copy(&cli, &out, a),
        Command::Run(a) => run::run(&cli, &out, a, profile.as_ref()),
        Command::Config { what } => run::config(&cli, &out, what),
        Command::Serve(a) => serve::serve(&cli, &out, a),
        Command::Completions { shell } => docs::completions(&out, *shell),
        Command::Man { dir } => docs::man(&out, dir.as_deref()),
    }
}

impl FilterArgs {
    /// As the repository's filter type.
    pub fn filter(&self) -> cairn_repo::Filter {
        cairn_repo::Filter {
            volume: self.volume.clone(),
            host: self.host.clone(),
            tags: self.tags.clone(),
        }
    }
}
