//! Commands around a backup: on the host (`--pre`, `--post`), inside a
//! container through the engine (`--exec`), and a command whose output is
//! stored as a file (`--stdin-from-command`).

use std::fs::File;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

use cairn_docker::{Engine, ExecOutput};

use crate::error::{Error, Result};

/// Runs `cmd` with `sh -c`, its stdout and stderr going to our stderr (so
/// that stdout stays the summary, and a failing command's output is shown
/// where the error is). `which` names it in the error: `pre` or `post`.
pub fn run_host_command(which: &'static str, cmd: &str) -> Result<()> {
    let failed = |status: String| Error::CommandFailed {
        which,
        cmd: cmd.to_string(),
        status,
    };
    let stderr = std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| failed(format!("could not start: {e}")))?;
    let status = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::null())
        .stdout(stderr)
        .status()
        .map_err(|e| failed(format!("could not start: {e}")))?;
    check_status(status).map_err(failed)
}

fn check_status(status: ExitStatus) -> std::result::Result<(), String> {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(0), _) => Ok(()),
        (Some(code), _) => Err(format!("exited with code {code}")),
        (None, Some(sig)) => Err(format!("was killed by signal {sig}")),
        (None, None) => Err(format!("failed ({status})")),
    }
}

/// A command's output spooled into a file of a private directory, removed
/// when this is dropped.
#[derive(Debug)]
pub struct Spooled {
    _dir: tempfile::TempDir,
    /// The file, named as the snapshot will name it.
    pub path: PathBuf,
}

/// Runs `cmd` with `sh -c` and writes its stdout to a file `name` in a new
/// directory below `spool_dir` (the system's temporary directory if
/// `None`); its stderr goes to ours. A command that exits non-zero is an
/// error, so no snapshot is made of a half-written dump.
pub fn spool_command(cmd: &str, name: &str, spool_dir: Option<&Path>) -> Result<Spooled> {
    check_file_name(name)?;
    let io = |what: String| move |source| Error::Io { what, source };
    let dir = match spool_dir {
        Some(d) => tempfile::Builder::new()
            .prefix("cairn-stdin-")
            .tempdir_in(d),
        None => tempfile::Builder::new().prefix("cairn-stdin-").tempdir(),
    }
    .map_err(io(
        "creating a spool directory for --stdin-from-command".into()
    ))?;
    let path = dir.path().join(name);
    let file = File::create(&path).map_err(io(format!("{}", path.display())))?;
    let failed = |status: String| Error::CommandFailed {
        which: "stdin",
        cmd: cmd.to_string(),
        status: format!("{status}; no snapshot was saved"),
    };
    let status = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::null())
        .stdout(file)
        .status()
        .map_err(|e| failed(format!("could not start: {e}")))?;
    check_status(status).map_err(failed)?;
    Ok(Spooled { _dir: dir, path })
}

/// A file name for `--stdin-name`: one path component.
fn check_file_name(name: &str) -> Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(Error::BadArgument(format!(
            "--stdin-name {name:?}: give a file name (no `/`, not `.` or `..`)"
        )));
    }
    Ok(())
}

/// `--exec CONTAINER:CMD`: a container and a command's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecSpec {
    /// The container's name or id.
    pub container: String,
    /// The program and its arguments (no shell).
    pub cmd: Vec<String>,
}

impl std::str::FromStr for ExecSpec {
    type Err = Error;

    fn from_str(arg: &str) -> Result<ExecSpec> {
        let bad = || {
            Error::BadArgument(format!(
                "--exec {arg:?}: expected CONTAINER:COMMAND, e.g. 'db:psql -U postgres -c CHECKPOINT'"
            ))
        };
        let (container, cmd) = arg.split_once(':').ok_or_else(bad)?;
        let cmd = split_words(cmd).ok_or_else(bad)?;
        if container.trim().is_empty() || cmd.is_empty() {
            return Err(bad());
        }
        Ok(ExecSpec {
            container: container.trim().to_string(),
            cmd,
        })
    }
}

/// Runs an `--exec` command in its container; a non-zero exit is an error
/// carrying its output.
pub fn run_exec(engine: &Engine, spec: &ExecSpec) -> Result<ExecOutput> {
    Ok(engine.exec(&spec.container, &spec.cmd)?)
}

/// Splits a command line into words as a shell would for simple cases:
/// blanks separate words, single quotes keep everything, double quotes
/// keep blanks, a backslash escapes the next character. `None` for an
/// unterminated quote.
pub fn split_words(line: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '\'' => break,
                        c => word.push(c),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '"' => break,
                        '\\' => word.push(chars.next()?),
                        c => word.push(c),
                    }
                }
            }
            '\\' => {
                in_word = true;
                word.push(chars.next()?);
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Some(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_like_a_shell() {
        assert_eq!(
            split_words(r#"psql -U postgres -c "SELECT 1" 'a b' c\ d"#).unwrap(),
            ["psql", "-U", "postgres", "-c", "SELECT 1", "a b", "c d"]
        );
        assert_eq!(split_words("  ").unwrap(), Vec::<String>::new());
        assert_eq!(split_words("''").unwrap(), [""]);
        assert!(split_words("'open").is_none());
    }

    #[test]
    fn exec_specs_need_a_container_and_a_command() {
        let spec: ExecSpec = "db:psql -c CHECKPOINT".parse().unwrap();
        assert_eq!(spec.container, "db");
        assert_eq!(spec.cmd, ["psql", "-c", "CHECKPOINT"]);
        for bad in ["db", ":ls", "db:", "db:'x"] {
            assert!(bad.parse::<ExecSpec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_spooled_command_output_is_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let s = spool_command("printf 'hi\\n'", "out.txt", Some(dir.path())).unwrap();
        assert_eq!(std::fs::read(&s.path).unwrap(), b"hi\n");
        assert_eq!(s.path.file_name().unwrap(), "out.txt");
    }

    #[test]
    fn a_failing_command_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let err = spool_command("echo partial; exit 3", "x", Some(dir.path())).unwrap_err();
        assert_eq!(
            err.to_string(),
            "stdin command `echo partial; exit 3` exited with code 3; no snapshot was saved"
        );
        assert!(spool_command("true", "a/b", None).is_err());
        let err = run_host_command("pre", "exit 4").unwrap_err();
        assert_eq!(err.to_string(), "pre command `exit 4` exited with code 4");
    }
}
