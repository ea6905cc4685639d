//! Commands run inside a container before a backup (`--exec`).

use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecResults};
use futures_util::StreamExt;

use crate::engine::{status_of, Engine};
use crate::error::{Error, Result};

/// What a command run in a container printed and how it ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOutput {
    /// Its exit code.
    pub exit_code: i64,
    /// What it wrote to stdout (invalid UTF-8 replaced).
    pub stdout: String,
    /// What it wrote to stderr (invalid UTF-8 replaced).
    pub stderr: String,
}

impl Engine {
    /// Runs `cmd` (no shell: the first word is the program) in running
    /// container `container` and waits for it. A non-zero exit is
    /// [`Error::ExecFailed`] carrying everything it printed, since a failed
    /// quiesce command (say `psql -c CHECKPOINT`) must stop the backup.
    pub fn exec(&self, container: &str, cmd: &[String]) -> Result<ExecOutput> {
        let output = self.exec_unchecked(container, cmd)?;
        if output.exit_code == 0 {
            return Ok(output);
        }
        Err(Error::ExecFailed {
            container: container.into(),
            cmd: cmd.join(" "),
            exit_code: output.exit_code,
            output: output.stdout + &output.stderr,
        })
    }

    /// Runs `cmd` in `container` and returns its output whatever its exit
    /// code.
    pub fn exec_unchecked(&self, container: &str, cmd: &[String]) -> Result<ExecOutput> {
        let action = || format!("running `{}` in container {container}", cmd.join(" "));
        let config = CreateExecOptions {
            cmd: Some(cmd.to_vec()),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            ..Default::default()
        };
        let created = match self.block_on(self.docker.create_exec(container, config)) {
            Ok(created) => created,
            Err(e) => return Err(self.exec_error(container, action(), e)),
        };
        let (stdout, stderr) = self
            .block_on(collect_output(&self.docker, &created.id))
            .map_err(|e| self.api_error(action(), e))?;
        let inspected = self
            .block_on(self.docker.inspect_exec(&created.id))
            .map_err(|e| self.api_error(action(), e))?;
        Ok(ExecOutput {
            // No code means the process never started (e.g. no such program).
            exit_code: inspected.exit_code.unwrap_or(-1),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        })
    }

    fn exec_error(&self, container: &str, action: String, e: bollard::errors::Error) -> Error {
        match status_of(&e) {
            Some(404) => Error::NoSuchContainer {
                name: container.into(),
            },
            Some(409) => Error::ContainerNotRunning {
                name: container.into(),
            },
            _ => self.api_error(action, e),
        }
    }
}

/// Starts the exec attached and reads its multiplexed output to the end.
async fn collect_output(
    docker: &bollard::Docker,
    exec_id: &str,
) -> Result<(Vec<u8>, Vec<u8>), bollard::errors::Error> {
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    if let StartExecResults::Attached { mut output, .. } = docker.start_exec(exec_id, None).await? {
        while let Some(chunk) = output.next().await {
            match chunk? {
                LogOutput::StdErr { message } => stderr.extend_from_slice(&message),
                LogOutput::StdOut { message } | LogOutput::Console { message } => {
                    stdout.extend_from_slice(&message)
                }
                LogOutput::StdIn { .. } => {}
            }
        }
    }
    Ok((stdout, stderr))
}
