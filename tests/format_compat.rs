//! Repositories written by earlier cairn versions must keep opening. The
//! fixture under tests/fixtures/repo-v1 was written by cairn 0.1.0 (format
//! version 1) from a three-entry tree; tests/fixtures/repo-v2 is the same
//! tree in an encrypted repository (format 2) written by cairn 0.2, with a
//! key file (tests/fixtures/repo-v2.key) and the password
//! `fixture-password`; tests/fixtures/repo-v3-aes is the same tree in a
//! format-3 repository sealed with AES-256-GCM (docs/FORMAT.md 13), with
//! its key file (repo-v3-aes.key) and the same password. Never regenerate
//! them; add new ones.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use common::Env;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), &dest).unwrap();
        }
    }
}

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The three-entry tree both fixtures hold.
fn assert_fixture_tree(target: &Path) {
    let a = std::fs::read(target.join("a.txt")).unwrap();
    assert_eq!(a, b"hello from format version 1\n");
    let meta = std::fs::metadata(target.join("a.txt")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o640);
    assert_eq!(meta.mtime(), 1706933106);
    assert_eq!(meta.mtime_nsec(), 789_000_000);
    let b = std::fs::read(target.join("dir/b.bin")).unwrap();
    assert_eq!(b.len(), 200_000);
    assert_eq!(
        blake3::hash(&b).to_hex().as_str(),
        "68ef6df801371ee0700ee4b2035d5baa29cf40a4c65e6995d8053be2961f4c5a"
    );
    assert_eq!(
        std::fs::read_link(target.join("link")).unwrap(),
        Path::new("a.txt")
    );
}

#[test]
fn format_version_1_repository_still_restores() {
    let env = Env::new();
    copy_dir(&fixture("repo-v1"), &env.repo);
    let target = env.path("out");
    let out = env.restore("latest", &target, &["--verify"]);
    common::assert_exit(&out, 0, "restore of the v1 fixture");
    assert_fixture_tree(&target);
    let snaps = env.snapshots();
    assert_eq!(snaps.len(), 1);
    assert_eq!(snaps[0]["volume"], "fixture");
    assert_eq!(snaps[0]["tags"][0], "v1");
}

/// A version-1 repository takes new backups as it is (salted packs are
/// readable by format 1), and stays plaintext.
#[test]
fn format_version_1_repository_stays_writable() {
    let env = Env::new();
    copy_dir(&fixture("repo-v1"), &env.repo);
    let src = env.path("src");
    common::write(&src.join("new.txt"), b"written by a newer cairn\n");
    env.backup(&src, &[]);
    assert_eq!(env.json(["cat", "config"])["version"], 1);
    env.ok(["check", "--read-data"]);
    env.restore("latest", &env.path("new"), &["--verify"]);
    assert_eq!(
        std::fs::read(env.path("new/new.txt")).unwrap(),
        b"written by a newer cairn\n"
    );
    let out = env.path("old");
    let first = env.snapshots()[0]["id"].as_str().unwrap().to_string();
    env.restore(&first, &out, &["--verify"]);
    assert_fixture_tree(&out);
}

#[test]
fn format_version_2_repository_restores_with_its_key_file_or_password() {
    let env = Env::new();
    copy_dir(&fixture("repo-v2"), &env.repo);
    let key = fixture("repo-v2.key");
    let target = env.path("out");
    env.restore(
        "latest",
        &target,
        &["--verify", "--key-file", key.to_str().unwrap()],
    );
    assert_fixture_tree(&target);
    env.ok(["--key-file", key.to_str().unwrap(), "check", "--read-data"]);
    let mut c = env.cmd();
    c.env("CAIRN_PASSWORD", "fixture-password")
        .args(["--json", "snapshots"]);
    let out = common::run_cmd(c);
    common::assert_exit(&out, 0, "snapshots with the fixture's password");
    let snaps = common::parse_json(&out);
    assert_eq!(snaps["snapshots"][0]["tags"][0], "v2");
    let mut c = env.cmd();
    c.env("CAIRN_PASSWORD", "not-the-password").arg("snapshots");
    common::assert_exit(&common::run_cmd(c), 12, "a wrong password");
}

#[test]
fn format_3_aes_repository_restores_with_its_key_file_or_password() {
    let env = Env::new();
    copy_dir(&fixture("repo-v3-aes"), &env.repo);
    let config = std::fs::read_to_string(env.repo.join("config")).unwrap();
    assert!(
        config.contains(r#""encryption": "aes-256-gcm""#),
        "{config}"
    );
    let key = fixture("repo-v3-aes.key");
    let key = key.to_str().unwrap();
    let target = env.path("out");
    env.restore("latest", &target, &["--verify", "--key-file", key]);
    assert_fixture_tree(&target);
    env.ok(["--key-file", key, "check", "--read-data"]);
    let mut c = env.cmd();
    c.env("CAIRN_PASSWORD", "fixture-password")
        .args(["--json", "snapshots"]);
    let out = common::run_cmd(c);
    common::assert_exit(&out, 0, "snapshots with the fixture's password");
    assert_eq!(
        common::parse_json(&out)["snapshots"][0]["tags"][0],
        "v3-aes"
    );
    // It stays writable in its own cipher.
    let src = env.path("src");
    common::write(&src.join("new.txt"), b"written later\n");
    env.backup(&src, &["--key-file", key]);
    env.ok(["--key-file", key, "check", "--read-data"]);
    let after = std::fs::read_to_string(env.repo.join("config")).unwrap();
    assert_eq!(after, config);
}

/// A cipher this cairn does not know is refused before any key is tried,
/// with one line that says to upgrade; nothing is restored.
#[test]
fn an_unknown_cipher_is_refused_not_guessed() {
    let env = Env::new();
    copy_dir(&fixture("repo-v3-aes"), &env.repo);
    let config = env.repo.join("config");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("aes-256-gcm", "aes-512-ocb")).unwrap();
    let key = fixture("repo-v3-aes.key");
    let target = env.path("out");
    let out = env.run([
        "--key-file",
        key.to_str().unwrap(),
        "restore",
        "latest",
        "--target",
        target.to_str().unwrap(),
    ]);
    common::assert_exit(&out, 1, "restore with an unknown cipher");
    let line = common::assert_one_line_error(&out, "unknown cipher");
    assert!(
        line.contains(
            r#"repository encryption "aes-512-ocb" is not supported by this cairn; upgrade cairn"#
        ),
        "{line}"
    );
    assert!(!target.exists());
}

/// The clear header names the cipher but is not what authenticates it:
/// an AES repository relabelled as XChaCha20-Poly1305 (and the other way
/// round) fails to open its config; nothing is misread.
#[test]
fn a_relabelled_cipher_is_damage_not_misread() {
    for (fixture_name, key, from, to) in [
        (
            "repo-v3-aes",
            "repo-v3-aes.key",
            "aes-256-gcm",
            "xchacha20-poly1305",
        ),
        (
            "repo-v2",
            "repo-v2.key",
            "xchacha20-poly1305",
            "aes-256-gcm",
        ),
    ] {
        let env = Env::new();
        copy_dir(&fixture(fixture_name), &env.repo);
        let config = env.repo.join("config");
        let text = std::fs::read_to_string(&config).unwrap();
        std::fs::write(&config, text.replace(from, to)).unwrap();
        let key = fixture(key);
        let out = env.run(["--key-file", key.to_str().unwrap(), "snapshots"]);
        common::assert_exit(&out, 1, "a relabelled cipher");
        let line = common::assert_one_line_error(&out, "relabelled cipher");
        assert!(line.contains("config"), "{line}");
    }
}
