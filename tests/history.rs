//! Managing history: `forget` (by id and by policy), `stats` per snapshot,
//! and `bench` without a repository. The hourly/daily/... rules are covered
//! by the hand-worked table in cairn-repo's `forget` module: backups made by
//! a test all fall within the same second, so here only ids and
//! `--keep-last` are exercised.

mod common;

use std::fs;

use common::*;
use serde_json::Value;

fn id_of(backup: &Value) -> String {
    backup["snapshot_id"]
        .as_str()
        .expect("snapshot_id")
        .to_string()
}

fn listed_ids(env: &Env) -> Vec<String> {
    env.snapshots()
        .iter()
        .map(|s| s["id"].as_str().expect("id").to_string())
        .collect()
}

/// Three backups of `src`, changing a file before each; ids oldest first.
fn three_backups(env: &Env, src: &std::path::Path, volume: &str) -> Vec<String> {
    (0..3)
        .map(|n| {
            write(&src.join("counter.txt"), format!("{volume} {n}\n"));
            id_of(&env.backup(src, &["--volume", volume]))
        })
        .collect()
}

#[test]
fn forget_by_id_removes_exactly_that_snapshot() {
    let env = Env::new();
    let src = env.path("src");
    small_tree(&src);
    let ids = three_backups(&env, &src, "app");

    let doc = env.json(["forget", &ids[1][..10]]);
    assert_eq!(doc["removed"], 1, "{doc}");
    assert_eq!(doc["dry_run"], false, "{doc}");
    assert_eq!(
        doc["groups"][0]["remove"][0]["id"],
        ids[1].as_str(),
        "{doc}"
    );

    let left = listed_ids(&env);
    assert_eq!(left, [ids[0].clone(), ids[2].clone()]);
    // The others still restore: forget removed no data.
    let target = env.path("restored");
    env.restore(&ids[0], &target, &[]);
    assert_eq!(
        fs::read_to_string(target.join("counter.txt")).unwrap(),
        "app 0\n"
    );
}

#[test]
fn forget_keep_last_dry_run_then_for_real_keeps_the_newest_per_group() {
    let env = Env::new();
    let (a, b) = (env.path("vol-a"), env.path("vol-b"));
    small_tree(&a);
    write(&b.join("only-b.txt"), b"b\n");
    let ids_a = three_backups(&env, &a, "a");
    let ids_b = three_backups(&env, &b, "b");

    let dry = env.json(["forget", "--keep-last", "2", "--dry-run"]);
    assert_eq!(dry["dry_run"], true, "{dry}");
    assert_eq!(dry["removed"], 2, "would remove one per group: {dry}");
    let groups = dry["groups"].as_array().expect("groups");
    assert_eq!(groups.len(), 2, "{dry}");
    for (g, ids) in groups.iter().zip([&ids_a, &ids_b]) {
        let keep: Vec<(&str, &Value)> = g["keep"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| (k["id"].as_str().unwrap(), &k["reasons"]))
            .collect();
        assert_eq!(keep.len(), 2, "{g}");
        assert_eq!(keep[0].0, ids[2]);
        assert_eq!(keep[0].1, &serde_json::json!(["last 1"]));
        assert_eq!(keep[1].0, ids[1]);
        assert_eq!(keep[1].1, &serde_json::json!(["last 2"]));
        assert_eq!(g["remove"][0]["id"], ids[0].as_str(), "{g}");
        assert!(g["remove"][0]["time"].is_string(), "{g}");
    }
    assert_eq!(listed_ids(&env).len(), 6, "dry run removes nothing");

    let text = stdout(&env.ok(["forget", "--keep-last", "2", "--dry-run"]));
    assert!(text.contains("last 1") && text.contains("remove"), "{text}");
    assert_eq!(listed_ids(&env).len(), 6);

    env.ok(["forget", "--keep-last", "2"]);
    let mut left = listed_ids(&env);
    left.sort();
    let mut expected = vec![
        ids_a[1].clone(),
        ids_a[2].clone(),
        ids_b[1].clone(),
        ids_b[2].clone(),
    ];
    expected.sort();
    assert_eq!(left, expected);

    let target = env.path("restored-a");
    env.restore(&ids_a[2], &target, &["--verify"]);
    assert_trees_equal(&a, &target);
}

#[test]
fn forget_narrowed_to_one_volume_leaves_the_others() {
    let env = Env::new();
    let (a, b) = (env.path("vol-a"), env.path("vol-b"));
    write(&a.join("a.txt"), b"a\n");
    write(&b.join("b.txt"), b"b\n");
    let ids_a = three_backups(&env, &a, "a");
    let ids_b = three_backups(&env, &b, "b");
    let doc = env.json(["forget", "--keep-last", "1", "--volume", "b"]);
    assert_eq!(doc["removed"], 2, "{doc}");
    let left = listed_ids(&env);
    assert_eq!(left.len(), 4);
    assert!(ids_a.iter().all(|id| left.contains(id)));
    assert!(left.contains(&ids_b[2]));
}

#[test]
fn forget_without_a_policy_or_ids_is_refused() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("f"), b"f\n");
    env.backup(&src, &[]);

    let line = assert_one_line_error(&env.run(["forget"]), "forget with no arguments");
    assert!(line.contains("--keep-last"), "{line}");
    let line = assert_one_line_error(
        &env.run(["forget", "--keep-last", "0", "--keep-daily", "0"]),
        "forget with an all-zero policy",
    );
    assert!(line.contains("0"), "{line}");
    let line = assert_one_line_error(
        &env.run(["forget", "--keep-tag", "no-such-tag"]),
        "forget with a policy that keeps nothing",
    );
    assert!(line.contains("refusing"), "{line}");
    assert_eq!(listed_ids(&env).len(), 1, "nothing was removed");
}

#[test]
fn forget_of_an_unknown_id_is_one_line() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("f"), b"f\n");
    let id = id_of(&env.backup(&src, &[]));
    let unknown = if id.starts_with("ffff") {
        "0000000"
    } else {
        "fffffff"
    };
    let line = assert_one_line_error(&env.run(["forget", unknown]), "forget of an unknown id");
    assert!(line.contains(unknown), "{line}");
    assert_eq!(listed_ids(&env), [id]);
}

#[test]
fn stats_reports_what_each_snapshot_alone_references() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("common.bin"), random_bytes(10, 30_000));
    let first = id_of(&env.backup(&src, &[]));
    write(&src.join("only-second.bin"), random_bytes(11, 40_000));
    let second = id_of(&env.backup(&src, &[]));
    fs::remove_file(src.join("only-second.bin")).unwrap();
    let third = id_of(&env.backup(&src, &[]));

    let doc = env.json(["stats"]);
    for key in [
        "logical_bytes",
        "stored_bytes",
        "dedup_ratio",
        "compression_ratio",
        "chunk_count",
        "average_chunk_bytes",
        "unique_bytes",
        "tree_bytes",
        "total_ratio",
        "snapshots",
    ] {
        assert!(!doc[key].is_null(), "stats --json lacks {key}: {doc}");
    }
    let per: Vec<&Value> = doc["per_snapshot"]
        .as_array()
        .expect("per_snapshot")
        .iter()
        .collect();
    assert_eq!(per.len(), 3, "{doc}");
    let unique = |id: &str| -> (u64, u64) {
        let row = per
            .iter()
            .find(|r| r["id"] == id)
            .unwrap_or_else(|| panic!("{id} not in {doc}"));
        assert!(
            row["time"].is_string() && row["volume"].is_string(),
            "{row}"
        );
        assert!(row["logical_bytes"].as_u64().is_some(), "{row}");
        (
            row["unique_raw_bytes"].as_u64().unwrap(),
            row["unique_stored_bytes"].as_u64().unwrap(),
        )
    };
    let (raw, stored) = unique(&second);
    assert_eq!(raw, 40_000, "random bytes: one file, stored raw");
    // Stored raw, plus 40 bytes of nonce and tag per encrypted chunk.
    assert!(stored > 0 && stored <= raw + 256, "{stored}");
    assert_eq!(unique(&first), (0, 0), "the third has the same data");
    assert_eq!(unique(&third), (0, 0), "the first has the same data");

    // Narrowed to one snapshot: the totals are those of its data.
    let one = env.json(["stats", &second[..8]]);
    assert_eq!(one["snapshots"], 1);
    assert_eq!(one["unique_bytes"], 70_000, "{one}");
    assert_eq!(one["per_snapshot"][0]["unique_raw_bytes"], 40_000, "{one}");
}

#[test]
fn bench_measures_two_paths_without_a_repository() {
    let env = Env::new();
    let (old, new) = (env.path("old"), env.path("new"));
    let data = random_bytes(5, 400_000);
    write(&old.join("db/table"), &data);
    write(&old.join("notes.txt"), "note\n".repeat(5000));
    let mut changed = data.clone();
    changed[200_000..200_010].copy_from_slice(b"0123456789");
    write(&new.join("db/table"), &changed);
    write(&new.join("notes.txt"), "note\n".repeat(5000));
    let svg = env.path("chart.svg");

    let mut args: Vec<std::ffi::OsString> = vec![
        "--json".into(),
        "bench".into(),
        old.clone().into(),
        new.clone().into(),
        "--chunk-avg".into(),
        "16K,64K".into(),
        "--compression".into(),
        "none,zstd:1".into(),
        "--svg".into(),
    ];
    args.push(svg.clone().into());
    let out = env.run(&args);
    assert_exit(&out, 0, "bench --json");
    let doc = parse_json(&out);
    let settings = doc["settings"].as_array().expect("settings");
    // none and zstd:1 chunk by chunk, zstd:1 in frames; two chunk sizes.
    assert_eq!(settings.len(), 6, "{doc}");
    assert_eq!(
        settings
            .iter()
            .filter(|s| s["method"] == "zstd:1 in 256K frames")
            .count(),
        2,
        "{doc}"
    );
    assert_eq!(doc["paths"].as_array().unwrap().len(), 2, "{doc}");
    for s in settings {
        let logical = s["logical_bytes"].as_u64().unwrap();
        assert_eq!(logical, 2 * (400_000 + 25_000), "{s}");
        let inc = s["incremental_bytes"].as_u64().expect("incremental_bytes");
        assert!(
            inc > 0 && inc < logical / 4,
            "a 10-byte change costs a chunk or two: {s}"
        );
        assert!(
            s["incremental_stored_bytes"].as_u64().unwrap() <= inc,
            "{s}"
        );
        assert!(s["dedup_ratio"].as_f64().unwrap() > 1.5, "{s}");
        for key in [
            "unique_bytes",
            "stored_bytes",
            "compression_ratio",
            "total_ratio",
            "chunk_count",
            "unique_chunk_count",
            "estimated_index_bytes",
            "throughput_bytes_per_sec",
        ] {
            assert!(!s[key].is_null(), "{key} missing: {s}");
        }
    }
    let chart = fs::read_to_string(&svg).expect("--svg wrote the chart");
    assert!(chart.starts_with("<svg") && chart.trim_end().ends_with("</svg>"));
    assert_eq!(
        chart.matches("<polyline").count(),
        4,
        "none, zstd:1, zstd:1 in frames, index"
    );

    assert!(!env.repo.exists(), "bench must not create a repository");
    assert!(!env.cache.exists(), "bench must not create a cache");

    // A single path: the table, and no incremental figures.
    let text = stdout(&env.ok([std::ffi::OsStr::new("bench"), old.as_os_str()]));
    assert!(
        text.contains("dedup") && text.contains("16K") && text.contains("1M"),
        "{text}"
    );
    let one = env.json([std::ffi::OsStr::new("bench"), old.as_os_str()]);
    assert!(one["settings"][0]["incremental_bytes"].is_null(), "{one}");
    assert_eq!(one["settings"][0]["compression"], "zstd:1", "{one}");
    assert!(!env.repo.exists());
}

#[test]
fn bench_of_a_missing_path_is_one_line() {
    let env = Env::new();
    let missing = env.path("no-such-dir");
    let out = env.run([std::ffi::OsStr::new("bench"), missing.as_os_str()]);
    let line = assert_one_line_error(&out, "bench of a missing path");
    assert!(line.contains("no-such-dir"), "{line}");
}
