//! `cairn mount`: a read-only FUSE view. Needs /dev/fuse, fusermount3 and
//! root (CI runs as root and installs fuse3); elsewhere the test says why it
//! is skipped.

mod common;

use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::forge;
use common::*;

/// Unmounts and kills the mount process however the test ends.
struct Mounted {
    child: Child,
    mountpoint: PathBuf,
}

impl Mounted {
    fn start(env: &Env, mountpoint: &Path) -> Mounted {
        fs::create_dir_all(mountpoint).unwrap();
        let mut c = env.cmd();
        c.arg("mount")
            .arg(mountpoint)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let child = c.spawn().expect("start cairn mount");
        let m = Mounted {
            child,
            mountpoint: mountpoint.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !mountpoint.join("snapshots").exists() {
            assert!(
                Instant::now() < deadline,
                "mount did not appear within 20 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        m
    }

    /// Wait for the mount process to exit; its status.
    fn wait(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(Instant::now() < deadline, "cairn mount did not exit");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("fusermount3")
            .arg("-u")
            .arg(&self.mountpoint)
            .output();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn only_entry(dir: &Path) -> PathBuf {
    let entries: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    entries[0].clone()
}

#[test]
fn mount_shows_every_snapshot_file_and_reads_ranges() {
    if let Err(why) = fuse_usable() {
        eprintln!("skipping the FUSE test: {why}");
        return;
    }
    let env = Env::new();
    let src = env.path("pgdata");
    let big = random_bytes(9, 3 << 20);
    write(&src.join("base/big.bin"), &big);
    write(&src.join("base/small.txt"), "small");
    write(&src.join("empty"), "");
    fs::create_dir_all(src.join("emptydir")).unwrap();
    chmod(&src.join("base/small.txt"), 0o640);
    std::os::unix::fs::symlink("base/small.txt", src.join("link")).unwrap();
    let _ = xattr::set(src.join("base/small.txt"), "user.cairn", b"yes");
    stamp_mtimes(&src, 1_600_000_000);
    let id = env.backup(&src, &[])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();

    let mp = env.path("mnt");
    let mut m = Mounted::start(&env, &mp);
    let snap_dir = only_entry(&mp.join("snapshots"));
    assert!(snap_dir
        .file_name()
        .unwrap()
        .to_string_lossy()
        .ends_with(&id[..8]));
    assert_trees_equal(&src, &snap_dir);

    // A range in the middle of the large file.
    let mut f = fs::File::open(snap_dir.join("base/big.bin")).unwrap();
    f.seek(SeekFrom::Start(1_234_567)).unwrap();
    let mut buf = vec![0u8; 70_000];
    f.read_exact(&mut buf).unwrap();
    assert_eq!(buf, big[1_234_567..1_234_567 + 70_000]);

    // volumes/<name>/latest and ids/<short>.
    let latest = fs::read_link(mp.join("volumes/pgdata/latest")).unwrap();
    assert!(mp
        .join("volumes/pgdata")
        .join(&latest)
        .join("base/small.txt")
        .exists());
    assert_eq!(
        fs::read_to_string(mp.join("volumes/pgdata/latest/base/small.txt")).unwrap(),
        "small"
    );
    assert_eq!(
        fs::read_to_string(mp.join("ids").join(&id[..8]).join("empty")).unwrap(),
        ""
    );

    drop(f); // an open file keeps the mount busy

    // Read-only.
    assert!(fs::write(snap_dir.join("new"), "x").is_err());

    // fusermount3 -u ends the process cleanly.
    let un = Command::new("fusermount3")
        .arg("-u")
        .arg(&mp)
        .output()
        .unwrap();
    assert!(
        un.status.success(),
        "{}",
        String::from_utf8_lossy(&un.stderr)
    );
    assert!(m.wait().success());
}

#[test]
fn mount_stops_cleanly_on_ctrl_c() {
    if let Err(why) = fuse_usable() {
        eprintln!("skipping the FUSE test: {why}");
        return;
    }
    let env = Env::new();
    let src = env.path("vol");
    write(&src.join("a"), "a");
    env.backup(&src, &[]);
    let mp = env.path("mnt");
    let mut m = Mounted::start(&env, &mp);
    // SAFETY: sending a signal to our own child.
    unsafe { libc::kill(m.child.id() as i32, libc::SIGINT) };
    assert!(m.wait().success());
    assert!(!mp.join("snapshots").exists(), "still mounted after Ctrl-C");
}

#[test]
fn mount_on_a_missing_directory_is_one_clear_error() {
    let env = Env::new();
    let src = env.path("vol");
    write(&src.join("a"), "a");
    env.backup(&src, &[]);
    let out = env.run(["mount", env.path("nope").to_str().unwrap()]);
    let line = assert_one_line_error(&out, "mount on a missing directory");
    assert!(line.contains("nope"), "{line}");
}

/// A forged file whose chunk lengths lie reads as an I/O error; the mount
/// stays up and serves the rest (it used to panic and leave "Transport
/// endpoint is not connected"). Volume names that are not safe directory
/// names are shown escaped.
#[test]
fn forged_lengths_and_names_do_not_bring_the_mount_down() {
    if let Err(why) = fuse_usable() {
        eprintln!("skipped: {why}");
        return;
    }
    let env = Env::new();
    env.ok(["init"]);
    let mut f = forge::Forge::new(&env);
    let real = f.blob(&random_bytes(1, 100));
    let short = cairn_repo::format::tree::ChunkRef { len: 50, ..real };
    let long = cairn_repo::format::tree::ChunkRef { len: 150, ..real };
    let root = f.tree(vec![
        forge::file(b"liar", vec![short, long]),
        forge::file(b"honest", vec![real]),
    ]);
    f.snapshot(root);
    let mp = env.path("mnt");
    let _m = Mounted::start(&env, &mp);
    let snap_dir = fs::read_dir(mp.join("snapshots"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let err = fs::read(snap_dir.join("liar")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    assert_eq!(
        fs::read(snap_dir.join("honest")).unwrap(),
        random_bytes(1, 100)
    );
    assert_eq!(
        fs::read_dir(mp.join("volumes")).unwrap().count(),
        1,
        "the mount still answers"
    );
}
