//! Encrypted repositories: where keys come from, what a wrong or missing key
//! does, key slots, and that nothing is readable, confirmable or silently
//! alterable without the key.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;

fn files_below(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn with_password(env: &Env, password: &str, args: &[&str]) -> std::process::Output {
    let mut c = env.cmd();
    c.env("CAIRN_PASSWORD", password).args(args);
    run_cmd(c)
}

/// A line of text that no encrypted object may contain.
const SECRET: &[u8] = b"the launch code is 0000 and nobody may read this line";

fn secret_tree(root: &Path) {
    write(&root.join("notes.txt"), SECRET.repeat(50));
    write(&root.join("named-after-the-secret-file.txt"), b"x");
    write(&root.join("data.bin"), random_bytes(1, 300_000));
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn nothing_in_an_encrypted_repository_is_readable_without_the_key() {
    let env = Env::new();
    let src = env.path("src");
    secret_tree(&src);
    let out = env.run(["backup", src.to_str().unwrap()]);
    assert_exit(&out, 0, "first backup");
    let note = stderr(&out);
    assert!(note.contains("key") && note.contains(".key"), "{note}");
    for f in files_below(&env.repo) {
        let bytes = fs::read(&f).unwrap();
        for needle in [
            &SECRET[..20],
            b"named-after-the-secret",
            b"notes.txt",
            b"\"volume\"",
        ] {
            assert!(
                !contains(&bytes, needle),
                "{} holds {:?}",
                f.display(),
                String::from_utf8_lossy(needle)
            );
        }
    }
    // The key file is private, and the quick start keeps working with it.
    let keys = files_below(&env.path("home/.config/cairn/keys"));
    assert_eq!(keys.len(), 1);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(&keys[0]).unwrap().permissions().mode() & 0o777,
        0o600
    );
    env.restore("latest", &env.path("dst"), &["--verify"]);
    assert_trees_equal(&src, &env.path("dst"));
}

#[test]
fn passwords_from_env_file_and_command_and_a_wrong_one_exits_12() {
    let env = Env::new();
    let out = with_password(&env, "s3cret pass", &["init"]);
    assert_exit(&out, 0, "init with a password");
    let src = env.path("src");
    secret_tree(&src);
    assert_exit(
        &with_password(&env, "s3cret pass", &["backup", src.to_str().unwrap()]),
        0,
        "backup",
    );

    let pwfile = env.path("pw");
    write(&pwfile, b"s3cret pass\n");
    env.ok(["--password-file", pwfile.to_str().unwrap(), "snapshots"]);
    env.ok([
        "--password-command",
        &format!("cat {}", pwfile.display()),
        "snapshots",
    ]);

    for (what, out) in [
        (
            "wrong password",
            with_password(&env, "nope", &["snapshots"]),
        ),
        ("no password", env.run(["snapshots"])),
        (
            "failing command",
            env.run(["--password-command", "false", "snapshots"]),
        ),
    ] {
        assert_exit(&out, 12, what);
        let err = stderr(&out);
        assert_no_panic(&err, what);
        assert_eq!(
            err.lines().filter(|l| !l.trim().is_empty()).count(),
            1,
            "{what}: {err}"
        );
    }
    // A wrong password writes nothing.
    let before = files_below(&env.repo);
    assert_exit(
        &with_password(&env, "nope", &["backup", src.to_str().unwrap()]),
        12,
        "backup, wrong password",
    );
    assert_eq!(files_below(&env.repo), before);
}

#[test]
fn key_slots_can_be_added_listed_replaced_and_removed_but_not_the_last() {
    let env = Env::new();
    assert_exit(&with_password(&env, "first", &["init"]), 0, "init");
    let newpw = env.path("second");
    write(&newpw, b"second\n");
    let out = with_password(
        &env,
        "first",
        &["key", "add", "--new-password-file", newpw.to_str().unwrap()],
    );
    assert_exit(&out, 0, "key add");
    let kf = env.path("machine.key");
    let out = with_password(
        &env,
        "first",
        &["key", "add", "--new-key-file", kf.to_str().unwrap()],
    );
    assert_exit(&out, 0, "key add key-file");
    assert!(kf.exists());
    env.ok(["--key-file", kf.to_str().unwrap(), "snapshots"]);
    let list =
        parse_json(&with_password(&env, "second", &["--json", "key", "list"]))["keys"].clone();
    let slots = list.as_array().unwrap();
    assert_eq!(slots.len(), 3, "{list}");
    assert_eq!(slots.iter().filter(|s| s["current"] == true).count(), 1);

    // passwd replaces the slot that was used.
    let third = env.path("third");
    write(&third, b"third\n");
    let out = with_password(
        &env,
        "first",
        &[
            "key",
            "passwd",
            "--new-password-file",
            third.to_str().unwrap(),
        ],
    );
    assert_exit(&out, 0, "key passwd");
    assert_exit(
        &with_password(&env, "first", &["snapshots"]),
        12,
        "old password after passwd",
    );
    assert_exit(
        &with_password(&env, "third", &["snapshots"]),
        0,
        "new password",
    );

    // Remove until one is left; the last is refused.
    let ids: Vec<String> = parse_json(&with_password(&env, "third", &["--json", "key", "list"]))
        ["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["current"] != true)
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    for id in &ids {
        assert_exit(
            &with_password(&env, "third", &["key", "remove", &id[..8]]),
            0,
            "key remove",
        );
    }
    let current = parse_json(&with_password(&env, "third", &["--json", "key", "list"]))["keys"][0]
        ["id"]
        .as_str()
        .unwrap()
        .to_string();
    let out = with_password(&env, "third", &["key", "remove", &current]);
    let line = assert_one_line_error(&out, "removing the last key");
    assert!(line.contains("last key"), "{line}");
    assert_exit(
        &env.run(["--key-file", kf.to_str().unwrap(), "snapshots"]),
        12,
        "removed key file",
    );
}

#[test]
fn a_truncated_key_file_is_one_clear_error() {
    let env = Env::new();
    let kf = env.path("k");
    let mut c = env.cmd();
    c.args(["init", "--key-file"]).arg(&kf);
    // --key-file at init names an existing key file; make one first.
    write(&kf, b"cairn-key-1:00112233\n");
    let out = run_cmd(c);
    let line = assert_one_line_error(&out, "init with a truncated key file");
    assert!(line.contains("not a cairn key file"), "{line}");
}

/// The ciphers a new repository can have (`init --encryption`).
const CIPHERS: [&str; 2] = ["aes-256-gcm", "xchacha20-poly1305"];

/// Flip one bit in every object of every kind in turn, with each cipher:
/// each is reported as damage naming it, and never decrypted into wrong
/// data.
#[test]
fn a_flipped_bit_anywhere_is_damage_never_wrong_data() {
    for cipher in CIPHERS {
        flipped_bits_are_damage(cipher);
    }
}

fn flipped_bits_are_damage(cipher: &str) {
    let env = Env::new();
    env.ok(["init", "--encryption", cipher]);
    let header: serde_json::Value =
        serde_json::from_slice(&fs::read(env.repo.join("config")).unwrap()).unwrap();
    assert_eq!(header["encryption"], cipher);
    assert_eq!(header["version"], 3);
    let src = env.path("src");
    secret_tree(&src);
    env.backup(&src, &[]);
    let pristine = env.path("pristine");
    copy_dir(&env.repo, &pristine);
    for f in files_below(&pristine) {
        let rel = f.strip_prefix(&pristine).unwrap().to_path_buf();
        if rel.starts_with("keys") || rel == Path::new("config") {
            continue; // covered below: they make every command fail cleanly
        }
        let _ = fs::remove_dir_all(&env.repo);
        copy_dir(&pristine, &env.repo);
        let _ = fs::remove_dir_all(&env.cache);
        let target = env.repo.join(&rel);
        let mut bytes = fs::read(&target).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x04;
        fs::write(&target, bytes).unwrap();
        let dst = env.path("dst");
        let _ = fs::remove_dir_all(&dst);
        let restore = env.run(["restore", "latest", "--target", dst.to_str().unwrap()]);
        assert_no_panic(&stderr(&restore), "restore of a damaged repository");
        if restore.status.success() {
            // Whatever restored must be exactly the original.
            assert_trees_equal(&src, &dst);
        }
        let check = env.run(["check", "--read-data"]);
        assert_ne!(
            check.status.code(),
            Some(0),
            "check passed with {} damaged",
            rel.display()
        );
        assert_no_panic(&stderr(&check), "check");
    }
    for name in ["config", "keys"] {
        let _ = fs::remove_dir_all(&env.repo);
        copy_dir(&pristine, &env.repo);
        let target = if name == "config" {
            env.repo.join("config")
        } else {
            files_below(&env.repo.join("keys"))[0].clone()
        };
        let mut bytes = fs::read(&target).unwrap();
        let at = bytes.len() - 20;
        bytes[at] ^= 0x04;
        fs::write(&target, bytes).unwrap();
        let out = env.run(["snapshots"]);
        assert!(
            matches!(out.status.code(), Some(1) | Some(12)),
            "{name}: {:?}",
            out.status
        );
        assert_no_panic(&stderr(&out), name);
    }
}

/// A valid ciphertext of one object put in another's place is caught: a
/// snapshot swapped for another, with each cipher.
#[test]
fn a_swapped_object_is_caught() {
    for cipher in CIPHERS {
        swapped_snapshot_is_caught(cipher);
    }
}

fn swapped_snapshot_is_caught(cipher: &str) {
    let env = Env::new();
    env.ok(["init", "--encryption", cipher]);
    let src = env.path("src");
    write(&src.join("a"), random_bytes(2, 1000));
    let first = env.backup(&src, &[])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    write(&src.join("a"), random_bytes(3, 1000));
    let second = env.backup(&src, &[])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (p1, p2) = (
        env.repo.join("snapshots").join(&first),
        env.repo.join("snapshots").join(&second),
    );
    let b2 = fs::read(&p2).unwrap();
    fs::write(&p1, &b2).unwrap();
    let out = env.run(["check"]);
    assert_exit(&out, 1, "check with a swapped snapshot");
    assert!(stderr(&out).contains(&first), "{}", stderr(&out));
}

#[test]
fn the_same_file_in_two_repositories_gets_different_ids_and_cut_points() {
    let (a, b) = (Env::new(), Env::new());
    let data = random_bytes(9, 2 << 20);
    for env in [&a, &b] {
        write(&env.path("src/f"), &data);
        env.backup(&env.path("src"), &[]);
    }
    let chunks = |env: &Env| -> Vec<(String, u64)> {
        let tree = env.json(["cat", "snapshot", "latest"])["tree"]
            .as_str()
            .unwrap()
            .to_string();
        let t = env.json(["cat", "tree", &tree]);
        t["nodes"][0]["content"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["id"].as_str().unwrap().to_string(),
                    c["len"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    let (ca, cb) = (chunks(&a), chunks(&b));
    assert!(ca.len() > 10 && cb.len() > 10);
    let ids_a: Vec<_> = ca.iter().map(|c| &c.0).collect();
    assert!(
        cb.iter().all(|c| !ids_a.contains(&&c.0)),
        "a chunk id repeats across keys"
    );
    let lens = |c: &[(String, u64)]| c.iter().map(|x| x.1).collect::<Vec<_>>();
    assert_ne!(lens(&ca), lens(&cb), "cut points do not depend on the key");
}

#[test]
fn plaintext_repositories_stay_available_and_say_so() {
    let env = Env::new();
    let v = env.json(["init", "--insecure-no-encryption"]);
    assert_eq!(v["encrypted"], false);
    // Format 3 (frames) is plaintext or encrypted; only the config's
    // `encryption` field and the key slots tell.
    assert_eq!(env.json(["cat", "config"])["version"], 3);
    let src = env.path("src");
    secret_tree(&src);
    env.backup(&src, &[]);
    let out = env.run(["key", "list"]);
    let line = assert_one_line_error(&out, "key list on a plaintext repository");
    assert!(line.contains("not encrypted"), "{line}");
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap().flatten() {
        let (s, d) = (e.path(), to.join(e.file_name()));
        if s.is_dir() {
            copy_dir(&s, &d);
        } else {
            fs::copy(&s, &d).unwrap();
        }
    }
}
