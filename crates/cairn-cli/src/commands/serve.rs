//! `cairn serve`: parse the options, open the repository, start cairn-web.

use std::io::Write;
use std::time::Duration;

use anyhow::Result;
use cairn_web::{ServeOptions, Server};

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
        // `restore --to-docker-volume` will plug its volume maker in here.
        volumes: None,
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
