//! The binary answers for every command of the spec. (Having an integration
//! test here also makes `cargo test --workspace` build `target/*/cairn`
//! before the end-to-end tests in the root package run it.)

use std::process::Command;

#[test]
fn help_lists_the_commands() {
    let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .arg("--help")
        .output()
        .expect("run cairn");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for cmd in [
        "init",
        "backup",
        "snapshots",
        "ls",
        "restore",
        "cat",
        "stats",
        "forget",
        "bench",
    ] {
        assert!(text.contains(cmd), "--help does not mention {cmd}:\n{text}");
    }
}

#[test]
fn version_is_printed() {
    let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .arg("--version")
        .output()
        .expect("run cairn");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("cairn "));
}
