//! `cairn serve` downloads: a tar stream unpacked with the `tar` crate and
//! a file, each compared with a CLI restore of the same snapshot; and the
//! limit on heavy requests, freed when a client goes away.

mod common;

use std::fs;
use std::io::Write;
use std::net::TcpStream;
use std::path::{Component, Path};
use std::time::{Duration, Instant};

use common::web::{bearer, pct, raw_request, Served};
use common::*;

fn bad_name() -> &'static std::ffi::OsStr {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::OsStr::from_bytes(b"caf\xe9.bin")
}

/// Unpack a tar as `cairn serve` writes it with the `tar` crate, then apply
/// what that crate leaves out: nanosecond times from the PAX records and
/// the attributes of `./`.
fn unpack(data: &[u8], dest: &Path) {
    use std::os::unix::fs::PermissionsExt;
    fs::create_dir_all(dest).unwrap();
    let mut ar = tar::Archive::new(data);
    ar.set_preserve_permissions(true);
    ar.set_preserve_ownerships(is_root());
    ar.set_unpack_xattrs(true);
    let mut times = Vec::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().into_owned();
        let (sec, mut nsec) = (e.header().mtime().unwrap() as i64, 0);
        if let Some(exts) = e.pax_extensions().unwrap() {
            for x in exts.flatten() {
                if x.key() == Ok("mtime") {
                    let v = x.value().unwrap();
                    nsec = v.split_once('.').map_or(0, |(_, n)| n.parse().unwrap());
                }
            }
        }
        if path.components().all(|c| c == Component::CurDir) {
            fs::set_permissions(dest, fs::Permissions::from_mode(e.header().mode().unwrap()))
                .unwrap();
            continue;
        }
        assert!(
            e.unpack_in(dest).unwrap(),
            "{} stays inside",
            path.display()
        );
        times.push((dest.join(&path), sec, nsec));
    }
    for (p, sec, nsec) in times {
        set_mtime(&p, sec, nsec);
    }
}

#[test]
fn tar_and_file_downloads_match_a_cli_restore() {
    let env = Env::new();
    let src = env.path("vol");
    small_tree(&src);
    write(&src.join(bad_name()), b"latin-1 name\n");
    write(
        &src.join("a/long/")
            .join("n".repeat(120))
            .join("x".repeat(150)),
        b"long path\n",
    );
    std::os::unix::fs::symlink("data/two.bin", src.join("link")).unwrap();
    fs::hard_link(src.join("readme.txt"), src.join("hard")).unwrap();
    chmod(&src.join("etc/app.conf"), 0o640);
    if xattr::set(src.join("data/one.bin"), "user.cairn", b"v\x00\xff").is_err() {
        eprintln!("note: user xattrs unsupported here; the xattr is not checked");
    }
    stamp_mtimes(&src, 1_700_000_000);
    let id = env.backup(&src, &["--volume", "vol"])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    // Enough slots that a download's slot, freed just after its last byte
    // is sent, is never still taken by the next request.
    let s = Served::start(&env, &["--heavy", "8"]);

    let restored = env.path("restored");
    env.restore(&id, &restored, &[]);
    let r = s.get(&format!("/snapshots/{id}/tar"));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/x-tar"));
    let unpacked = env.path("unpacked");
    unpack(&r.body, &unpacked);
    assert_trees_equal(&restored, &unpacked);

    let sub_restored = env.path("sub-restored");
    env.restore(&format!("{id}:data"), &sub_restored, &[]);
    let sub = env.path("sub-unpacked");
    unpack(&s.get(&format!("/snapshots/{id}/tar?path=data")).body, &sub);
    assert_trees_equal(&sub_restored, &sub);

    let f = s.get(&format!("/snapshots/{id}/file?path=data/one.bin"));
    assert_eq!(f.body, fs::read(src.join("data/one.bin")).unwrap());
    assert_eq!(f.header("content-length"), Some("20000"));
    let odd = s.get(&format!(
        "/snapshots/{id}/file?path={}",
        pct(b"caf\xe9.bin")
    ));
    assert_eq!(odd.body, b"latin-1 name\n");
    let cd = odd.header("content-disposition").unwrap();
    assert!(
        cd.contains("filename*=UTF-8''caf%E9%2Ebin") || cd.contains("caf%E9"),
        "{cd}"
    );
    assert_eq!(
        s.get(&format!("/snapshots/{id}/file?path=data")).status,
        400,
        "a directory"
    );
    assert_eq!(
        s.get(&format!("/snapshots/{id}/tar?path=readme.txt"))
            .status,
        400,
        "a file"
    );
}

#[test]
fn heavy_requests_beyond_the_limit_get_503_until_a_slot_frees() {
    let env = Env::new();
    let src = env.path("vol");
    write(&src.join("big.bin"), random_bytes(5, 48 << 20));
    let id = env.backup(&src, &["--volume", "vol"])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    let s = Served::start(&env, &["--heavy", "1"]);
    // A download whose client reads nothing holds the only slot.
    let mut stuck = TcpStream::connect(&s.addr).unwrap();
    let auth = bearer();
    stuck
        .write_all(&raw_request(
            &s.addr,
            "GET",
            &format!("/snapshots/{id}/tar"),
            &[("Authorization", &auth)],
            b"",
        ))
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let busy = s.get(&format!("/diff?a={id}&b={id}"));
    assert_eq!(busy.status, 503);
    assert_eq!(busy.header("retry-after"), Some("5"));
    assert_eq!(s.get("/").status, 200, "light pages are not limited");
    drop(stuck);
    let deadline = Instant::now() + Duration::from_secs(30);
    while s.get(&format!("/diff?a={id}&b={id}")).status != 200 {
        assert!(
            Instant::now() < deadline,
            "the slot of a client that left is never freed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
