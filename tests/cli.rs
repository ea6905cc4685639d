//! The command-line contract: snapshot selection, exclude globs and the
//! `--json` documents of every command.

mod common;

use std::fs;

use common::*;
use serde_json::Value;

/// The shortest prefix (at least 4 digits) of `id` that no id in `others` shares.
fn unique_prefix<'a>(id: &'a str, others: &[&str]) -> &'a str {
    (4..=id.len())
        .map(|n| &id[..n])
        .find(|p| others.iter().all(|o| !o.starts_with(p)))
        .expect("ids differ")
}

fn snapshot_id_of(env: &Env, spec: &str, extra: &[&str]) -> Result<String, String> {
    // `ls` takes the filter flags; its JSON does not carry the id, so use
    // `restore --dry-run --json`, which does.
    let mut args = vec![
        "--json",
        "restore",
        spec,
        "--target",
        "/nonexistent/dry-run-target",
        "--dry-run",
    ];
    args.extend_from_slice(extra);
    let out = env.run(&args);
    if out.status.code() == Some(0) {
        let v = parse_json(&out);
        Ok(v["snapshot_id"].as_str().expect("snapshot_id").to_string())
    } else {
        Err(assert_one_line_error(&out, &format!("{args:?}")))
    }
}

#[test]
fn snapshot_selection() {
    let env = Env::new();
    let a = env.path("va");
    let b = env.path("vb");
    write(&a.join("a.txt"), b"volume a\n");
    write(&b.join("b.txt"), b"volume b\n");
    let ida = env.backup(&a, &["--volume", "alpha"])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    let idb = env.backup(&b, &[])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(ida.len(), 64);
    assert!(ida.bytes().all(|c| c.is_ascii_hexdigit()));

    let snaps = env.snapshots();
    assert_eq!(snaps.len(), 2);
    let vols: Vec<&str> = snaps
        .iter()
        .map(|s| s["volume"].as_str().unwrap())
        .collect();
    assert!(vols.contains(&"alpha") && vols.contains(&"vb"), "{vols:?}");

    // latest, and latest narrowed by volume.
    assert_eq!(snapshot_id_of(&env, "latest", &[]).unwrap(), idb);
    assert_eq!(
        snapshot_id_of(&env, "latest", &["--volume", "alpha"]).unwrap(),
        ida
    );
    assert_eq!(
        snapshot_id_of(&env, "latest", &["--volume", "vb"]).unwrap(),
        idb
    );
    assert_eq!(env.ls_paths("latest"), ["b.txt"]);
    assert_eq!(
        sorted_paths(&env.json(["ls", "latest", "--volume", "alpha"])["entries"]),
        ["a.txt"]
    );
    let line = snapshot_id_of(&env, "latest", &["--volume", "nope"]).unwrap_err();
    assert!(line.contains("latest"), "{line}");

    // Full id and unique prefixes, in any case.
    assert_eq!(snapshot_id_of(&env, &ida, &[]).unwrap(), ida);
    let pa = unique_prefix(&ida, &[&idb]);
    let pb = unique_prefix(&idb, &[&ida]);
    assert_eq!(snapshot_id_of(&env, pa, &[]).unwrap(), ida);
    assert_eq!(snapshot_id_of(&env, pb, &[]).unwrap(), idb);
    assert_eq!(
        snapshot_id_of(&env, &pa.to_ascii_uppercase(), &[]).unwrap(),
        ida
    );
    let cat = env.json(["cat", "snapshot", pa]);
    assert_eq!(cat["id"], ida.as_str());
    assert_eq!(env.ls_paths(&idb[..12]), ["b.txt"]);

    // An id that matches nothing: exit 1, one line naming it.
    let unknown = ["deadbeef", "01234567", "fedcba98"]
        .into_iter()
        .find(|u| !ida.starts_with(u) && !idb.starts_with(u))
        .unwrap();
    for cmd in [
        vec!["restore", unknown, "--target", "/nonexistent/t"],
        vec!["ls", unknown],
        vec!["cat", "snapshot", unknown],
    ] {
        let out = env.run(&cmd);
        let line = assert_one_line_error(&out, &format!("{cmd:?}"));
        assert!(line.contains(unknown), "{cmd:?}: {line}");
    }
    // Too short, not hex, too long.
    for bad in [&ida[..3], "zzzz", "latest-ish"] {
        let out = env.run(["ls", bad]);
        let line = assert_one_line_error(&out, &format!("ls {bad}"));
        assert!(line.contains(bad), "{line}");
    }
    let too_long = format!("{ida}0");
    let out = env.run(["ls", &too_long]);
    assert_one_line_error(&out, "ls with a 65-digit id");
}

fn sorted_paths(v: &Value) -> Vec<String> {
    let mut p: Vec<String> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap().to_string())
        .collect();
    p.sort();
    p
}

/// Two snapshots whose ids share a 4-digit prefix: written directly as
/// snapshot documents (the id is the BLAKE3 hash of the stored bytes), since
/// finding such a pair by backing up would take hundreds of backups. A
/// plaintext repository, so the documents can be written by hand.
#[test]
fn ambiguous_snapshot_prefix_is_an_error() {
    let env = Env::new();
    env.ok(["init", "--insecure-no-encryption"]);
    let src = env.path("src");
    write(&src.join("f.txt"), b"f\n");
    let id = env.backup(&src, &[])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    let stored = fs::read(env.repo.join("snapshots").join(&id)).unwrap();
    assert_eq!(
        blake3::hash(&stored).to_hex().as_str(),
        id,
        "snapshot files are named by the hash of their bytes"
    );
    let doc: Value = serde_json::from_slice(&stored).unwrap();

    let mut seen: std::collections::HashMap<String, (String, Vec<u8>)> = Default::default();
    let mut pair = None;
    for n in 0..100_000u32 {
        let mut d = doc.clone();
        d["host"] = format!("forged-host-{n}").into();
        let bytes = serde_json::to_vec(&d).unwrap();
        let h = blake3::hash(&bytes).to_hex().to_string();
        let key = h[..4].to_string();
        if let Some(prev) = seen.get(&key) {
            pair = Some((prev.clone(), (h, bytes)));
            break;
        }
        seen.insert(key, (h, bytes));
    }
    let ((h1, b1), (h2, b2)) = pair.expect("a 4-digit collision within 100000 tries");
    fs::write(env.repo.join("snapshots").join(&h1), b1).unwrap();
    fs::write(env.repo.join("snapshots").join(&h2), b2).unwrap();
    assert_eq!(env.snapshots().len(), 3, "forged snapshots are not listed");

    let prefix = &h1[..4];
    let out = env.run(["ls", prefix]);
    let line = assert_one_line_error(&out, "ls with an ambiguous prefix");
    assert!(line.contains("ambiguous"), "{line}");
    assert!(line.contains(prefix), "{line}");
    // A longer prefix that tells them apart works.
    let p1 = unique_prefix(&h1, &[&h2, &id]);
    assert_eq!(env.ls_paths(p1), ["f.txt"]);
}

#[test]
fn exclude_globs_skip_paths() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("app.log"), b"log\n");
    write(&src.join("keep.txt"), b"keep\n");
    write(&src.join("sub/b.log"), b"log\n");
    write(&src.join("sub/keep.txt"), b"keep\n");
    write(&src.join("sub/cache/blob"), b"cached\n");
    write(&src.join("cache/big"), b"cached\n");
    write(&src.join("tmp/scratch"), b"scratch\n");
    write(&src.join("sub/tmp/kept"), b"not the top-level tmp\n");
    write(&src.join("log.d/x"), b"a dir whose name is not *.log\n");

    let id = env.backup(&src, &["--exclude", "*.log"])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        env.ls_paths(&id),
        [
            "cache",
            "cache/big",
            "keep.txt",
            "log.d",
            "log.d/x",
            "sub",
            "sub/cache",
            "sub/cache/blob",
            "sub/keep.txt",
            "sub/tmp",
            "sub/tmp/kept",
            "tmp",
            "tmp/scratch"
        ]
    );

    let ex = env.path("excludes");
    fs::write(
        &ex,
        "# comment line\n\n*.log\ncache\n  /tmp  \n# sub/keep.txt is kept\n",
    )
    .unwrap();
    let id = env.backup(&src, &["--exclude-file", ex.to_str().unwrap()])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        env.ls_paths(&id),
        [
            "keep.txt",
            "log.d",
            "log.d/x",
            "sub",
            "sub/keep.txt",
            "sub/tmp",
            "sub/tmp/kept"
        ]
    );

    // Both together, and a pattern with a slash relative to the root.
    let id = env.backup(
        &src,
        &[
            "--exclude-file",
            ex.to_str().unwrap(),
            "--exclude",
            "sub/tmp",
        ],
    )["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        env.ls_paths(&id),
        ["keep.txt", "log.d", "log.d/x", "sub", "sub/keep.txt"]
    );
    let dst = env.path("dst");
    env.restore(&id, &dst, &[]);
    assert_eq!(
        list_tree(&dst),
        ["keep.txt", "log.d", "log.d/x", "sub", "sub/keep.txt"]
    );

    // A missing exclude file is an error naming it.
    let missing = env.path("no-such-excludes");
    let out = env.run([
        "backup",
        src.to_str().unwrap(),
        "--exclude-file",
        missing.to_str().unwrap(),
    ]);
    let line = assert_one_line_error(&out, "backup with a missing exclude file");
    assert!(line.contains(missing.to_str().unwrap()), "{line}");
}

fn has_keys(v: &Value, keys: &[&str], what: &str) {
    let obj = v
        .as_object()
        .unwrap_or_else(|| panic!("{what} is not an object: {v}"));
    for k in keys {
        assert!(obj.contains_key(*k), "{what} lacks {k:?}: {v}");
    }
}

#[test]
fn json_outputs_parse() {
    let env = Env::new();
    let src = env.path("src");
    small_tree(&src);
    std::os::unix::fs::symlink("readme.txt", src.join("link")).unwrap();

    let init = env.json(["init"]);
    has_keys(&init, &["repository", "config"], "init --json");

    let b = env.json([
        "backup",
        src.to_str().unwrap(),
        "--tag",
        "nightly",
        "--tag",
        "db",
        "--host",
        "test-host",
    ]);
    has_keys(
        &b,
        &[
            "snapshot_id",
            "files_new",
            "files_changed",
            "files_unmodified",
            "dirs",
            "bytes_read",
            "bytes_added_stored",
            "duration_s",
        ],
        "backup --json",
    );
    let id = b["snapshot_id"].as_str().unwrap().to_string();
    assert_eq!(b["files_new"], 6, "{b}");
    assert_eq!(b["files_changed"], 0, "{b}");
    assert_eq!(b["files_unmodified"], 0, "{b}");
    // The root, etc, data, data/nested, data/nested/deep, empty-dir.
    assert_eq!(b["dirs"], 6, "{b}");
    assert!(b["duration_s"].is_f64() || b["duration_s"].is_u64(), "{b}");
    let total: u64 = ["readme.txt", "etc/app.conf", "data/one.bin", "data/two.bin"]
        .iter()
        .chain(&["data/nested/deep/three.txt", "empty-file"])
        .map(|p| fs::metadata(src.join(p)).unwrap().len())
        .sum();
    assert_eq!(b["bytes_read"], total, "{b}");
    assert!(b["bytes_added_stored"].as_u64().unwrap() > 0, "{b}");

    let snaps = env.json(["snapshots"])["snapshots"].clone();
    let arr = snaps.as_array().expect("snapshots --json is an array");
    assert_eq!(arr.len(), 1);
    let s = &arr[0];
    has_keys(
        s,
        &["id", "time", "host", "volume", "tags", "paths", "size"],
        "snapshots --json entry",
    );
    assert_eq!(s["id"], id.as_str());
    assert_eq!(s["host"], "test-host");
    assert_eq!(s["volume"], "src");
    let mut tags: Vec<&str> = s["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    tags.sort();
    assert_eq!(tags, ["db", "nightly"]);
    assert_eq!(s["paths"], serde_json::json!([src.to_str().unwrap()]));
    assert_eq!(s["size"], total);
    assert!(s["time"].as_str().unwrap().len() >= 20, "{s}");
    assert_eq!(
        env.json(["snapshots", "--tag", "db"])["snapshots"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        env.json(["snapshots", "--tag", "x"])["snapshots"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        env.json(["snapshots", "--host", "test-host"])["snapshots"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let ls = env.json(["ls", "latest"])["entries"].clone();
    let entries = ls.as_array().expect("ls --json is an array");
    assert_eq!(entries.len(), 12, "{ls}");
    for e in entries {
        has_keys(
            e,
            &["path", "type", "mode", "size", "mtime"],
            "ls --json entry",
        );
    }
    let by_path = |p: &str| entries.iter().find(|e| e["path"] == p).cloned();
    let conf = by_path("etc/app.conf").expect("ls lists etc/app.conf");
    assert_eq!(conf["type"], "file");
    assert_eq!(conf["size"], 12);
    assert_eq!(by_path("etc").unwrap()["type"], "dir");
    assert_eq!(by_path("link").unwrap()["type"], "symlink");
    assert_eq!(by_path("link").unwrap()["target"], "readme.txt");
    let sub = env.json(["ls", "latest", "data/nested"])["entries"].clone();
    assert_eq!(
        sorted_paths(&sub),
        ["data/nested/deep", "data/nested/deep/three.txt"]
    );

    let cfg = env.json(["cat", "config"]);
    has_keys(&cfg, &["version", "chunker", "compression"], "cat config");
    assert_eq!(
        cfg["version"], 3,
        "new repositories are encrypted, with frames (format 3)"
    );
    has_keys(
        &cfg["chunker"],
        &["min", "avg", "max"],
        "cat config chunker",
    );
    assert_eq!(cfg["compression"], "zstd:3");
    assert_eq!(cfg["frame_size"], 262144);
    // `cat` prints JSON with or without --json.
    let plain = env.ok(["cat", "config"]);
    let again: Value = serde_json::from_slice(&plain.stdout).unwrap();
    assert_eq!(again, cfg);

    let snap = env.json(["cat", "snapshot", "latest"]);
    has_keys(
        &snap,
        &["id", "time", "tree", "paths", "host"],
        "cat snapshot",
    );
    assert_eq!(snap["id"], id.as_str());
    let tree = env.json(["cat", "tree", snap["tree"].as_str().unwrap()]);
    let names: Vec<&str> = tree["nodes"]
        .as_array()
        .expect("cat tree has nodes")
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "data",
            "empty-dir",
            "empty-file",
            "etc",
            "link",
            "readme.txt"
        ]
    );

    let stats = env.json(["stats"]);
    has_keys(
        &stats,
        &[
            "snapshots",
            "logical_bytes",
            "stored_bytes",
            "dedup_ratio",
            "compression_ratio",
            "chunk_count",
        ],
        "stats --json",
    );
    assert_eq!(stats["snapshots"], 1);
    assert_eq!(stats["logical_bytes"], total);
    assert!(stats["chunk_count"].as_u64().unwrap() >= 4, "{stats}");
    let stats_one = env.json(["stats", &id[..8]]);
    assert_eq!(stats_one["snapshots"], 1);

    let dst = env.path("dst");
    let r = env.json(["restore", "latest", "--target", dst.to_str().unwrap()]);
    has_keys(
        &r,
        &[
            "snapshot_id",
            "files_written",
            "files_unchanged",
            "bytes_written",
            "dirs",
            "errors",
        ],
        "restore --json",
    );
    assert_eq!(r["snapshot_id"], id.as_str());
    assert_eq!(r["files_written"], 6, "{r}");
    assert_eq!(r["bytes_written"], total, "{r}");
    assert_eq!(r["errors"], serde_json::json!([]));
    assert_trees_equal(&src, &dst);

    // --dry-run restore writes nothing.
    let dry = env.path("dry");
    let r = env.json([
        "restore",
        "latest",
        "--target",
        dry.to_str().unwrap(),
        "--dry-run",
    ]);
    assert_eq!(r["files_written"], 6, "{r}");
    assert!(!dry.exists(), "restore --dry-run created the target");
}

/// The snapshot cache file (`snapshots.cache` in the cache directory).
fn snapshot_cache_file(env: &Env) -> std::path::PathBuf {
    let dirs: Vec<_> = fs::read_dir(env.cache.join("cairn"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs[0].join("snapshots.cache")
}

/// Listings come from the local snapshot cache once read, and follow the
/// repository: a forgotten snapshot leaves them (even if an older cache
/// file still holds it), a new one appears, and a damaged cache file costs
/// a re-read, never a wrong list.
#[test]
fn the_snapshot_cache_follows_the_repository() {
    let env = Env::new();
    let src = env.path("src");
    let id = |v: Value| v["snapshot_id"].as_str().unwrap().to_string();
    let ids = || -> Vec<String> {
        let list = env.snapshots();
        list.iter()
            .map(|s| s["id"].as_str().unwrap().to_string())
            .collect()
    };
    let latest_content = || {
        let dst = env.path("dst");
        let _ = fs::remove_dir_all(&dst);
        env.restore("latest:f.txt", &dst, &[]);
        fs::read(dst.join("f.txt")).unwrap()
    };
    write(&src.join("f.txt"), b"one\n");
    let first = id(env.backup(&src, &[]));
    write(&src.join("f.txt"), b"two\n");
    let second = id(env.backup(&src, &[]));
    assert_eq!(ids(), [first.clone(), second.clone()]);
    let file = snapshot_cache_file(&env);
    let before_forget = fs::read(&file).unwrap();

    env.ok(["forget", &first]);
    assert_eq!(ids(), std::slice::from_ref(&second));
    fs::write(&file, &before_forget).unwrap();
    assert_eq!(
        ids(),
        std::slice::from_ref(&second),
        "a stale cache brought it back"
    );
    assert_eq!(latest_content(), b"two\n");

    write(&src.join("f.txt"), b"three\n");
    let third = id(env.backup(&src, &[]));
    assert_eq!(ids(), [second.clone(), third.clone()]);
    let good = fs::read(&file).unwrap();
    let mut flipped = good.clone();
    flipped[good.len() / 2] ^= 0x10;
    for bad in [
        &good[..good.len() / 2],
        &flipped[..],
        &b""[..],
        &b"not a cache"[..],
    ] {
        fs::write(&file, bad).unwrap();
        assert_eq!(latest_content(), b"three\n");
        assert_eq!(ids(), [second.clone(), third.clone()]);
    }
    assert_eq!(fs::read(&file).unwrap(), good, "written again whole");
}
