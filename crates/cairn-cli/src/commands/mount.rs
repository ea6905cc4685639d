//! `cairn mount`: a read-only FUSE view of the repository.

use anyhow::{bail, Result};

use crate::args::{Cli, MountArgs};
use crate::location;
use crate::output::Out;

pub fn mount(cli: &Cli, out: &Out, args: &MountArgs) -> Result<u8> {
    let mp = &args.mountpoint;
    if !mp.is_dir() {
        bail!("{}: mount point is not an existing directory", mp.display());
    }
    let repo = location::open(cli)?;
    let fs = cairn_mount::prepare(repo)?;
    out.info(&format!(
        "serving {} at {} (read-only); Ctrl-C or `fusermount3 -u {}` to unmount",
        location::location(cli),
        mp.display(),
        mp.display()
    ));
    cairn_mount::serve(fs, mp)?;
    out.info("unmounted");
    if out.json {
        out.json(&serde_json::json!({ "mountpoint": mp, "unmounted": true }))?;
    }
    Ok(0)
}
