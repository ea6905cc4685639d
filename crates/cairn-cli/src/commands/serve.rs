//! `cairn serve`: parse the options, open the repository, start cairn-web.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use cairn_docker::Engine;
use cairn_web::{ServeOptions, Server, VolumeProvisioner};

use crate::args::{Cli, ServeArgs};
use crate::location;
use crate::output::Out;

pub fn serve(cli: &Cli, out: &Out, args: &ServeArgs) -> Result<u8> {
    let repo = location::open(cli)?;
    let opts = ServeOptions {
        listen: args.listen.clone(),
        // From the environment only: an argument would show in `ps`.
        token: std::env::var("CAIRN_SERVE_TOKEN")
            .ok()
            .filter(|t| !t.is_empty()),
        allow_restore: args.allow_restore,
        restore_root: args.restore_root.clone(),
        stale_after: Duration::from_secs(args.stale_after.saturating_mul(3600)),
        heavy_slots: args.heavy,
        volumes: docker_volumes(args.allow_restore),
    };
    let server = Server::bind(repo, opts)?;
    let addr = server.local_addr()?;
    // The URL goes to stdout (scripts read it), the rest to stderr. With
    // --json it is a summary line printed at start: the server then runs
    // until stopped.
    if out.json {
        out.json(&serde_json::json!({ "url": server.url(), "address": addr.to_string() }))?;
    } else {
        println!("{}", server.url());
    }
    std::io::stdout().flush()?;
    if !addr.ip().is_loopback() {
        eprintln!(
            "warning: listening on {addr}: traffic is plain HTTP; put a TLS proxy in front or keep it on a trusted network"
        );
    }
    out.info(&format!(
        "serving {} on http://{addr}/ ({}); Ctrl-C stops",
        location::location(cli),
        if args.allow_restore {
            "restores allowed"
        } else {
            "read-only"
        }
    ));
    server.run()?;
    Ok(0)
}

/// New Docker volumes as restore targets, when restores are allowed and an
/// engine answers; otherwise the form offers directories only.
fn docker_volumes(allow_restore: bool) -> Option<Arc<dyn VolumeProvisioner>> {
    if !allow_restore {
        return None;
    }
    Engine::connect()
        .ok()
        .map(|engine| Arc::new(DockerVolumes(Arc::new(engine))) as Arc<dyn VolumeProvisioner>)
}

/// Volumes through the engine. The engine client runs its own runtime,
/// which cannot be entered from the server's async handlers, so each call
/// runs on a thread of its own.
struct DockerVolumes(Arc<Engine>);

impl DockerVolumes {
    fn off_runtime<T: Send>(&self, f: impl FnOnce(&Engine) -> T + Send) -> T {
        let engine = &*self.0;
        std::thread::scope(|s| s.spawn(|| f(engine)).join())
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }
}

impl VolumeProvisioner for DockerVolumes {
    fn existing(&self, name: &str) -> std::result::Result<Option<PathBuf>, String> {
        self.off_runtime(|engine| match engine.volume(name) {
            Ok(v) => engine.data_dir(&v).map(Some).map_err(|e| e.to_string()),
            Err(cairn_docker::Error::NoSuchVolume { .. }) => Ok(None),
            Err(e) => Err(e.to_string()),
        })
    }

    /// Only a new volume: the form says so, and an existing one may be in
    /// use by a container the browser user cannot see.
    fn create(&self, name: &str) -> std::result::Result<PathBuf, String> {
        self.off_runtime(|engine| {
            let none = BTreeMap::new();
            let v = engine
                .create_volume(name, "local", &none, &none)
                .map_err(|e| e.to_string())?;
            engine.data_dir(&v).map_err(|e| e.to_string())
        })
    }
}
