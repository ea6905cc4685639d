//! The small JSON objects prune reads: plans (`plans/<id>`), their wait
//! lists (`plans/<id>.wait`) and backup locks (`locks/<run>-<seq>`). Each
//! is decoded directly and, stored in a local repository, through the
//! readers prune uses (`doomed_packs`, `live_runs`): they must never panic,
//! must report exactly the packs of an intact plan, and only the run of a
//! lock that decodes.
#![no_main]

use cairn_repo::format::crypto::Codec;
use cairn_repo::format::plan::{Plan, Wait};
use cairn_repo::store::lock::{live_runs, LockInfo};
use cairn_repo::store::plans::doomed_packs;
use cairn_repo::{Backend, Id, LocalBackend};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let plan = serde_json::from_slice::<Plan>(data).ok();
    let _ = serde_json::from_slice::<Wait>(data);
    let lock = serde_json::from_slice::<LockInfo>(data).ok();

    let dir = cairn_fuzz::work_dir().join("repo");
    let backend = LocalBackend::new(&dir);
    let plan_key = format!("plans/{}", Id::of(data));
    let lock_key = "locks/fuzz-00000000";
    backend.put(&plan_key, data).unwrap();
    backend.put(lock_key, data).unwrap();

    let doomed = doomed_packs(&backend, &Codec::Plain).unwrap();
    let expected: std::collections::HashSet<Id> = plan
        .map(|p| p.packs.into_iter().collect())
        .unwrap_or_default();
    assert_eq!(doomed, expected);

    let live = live_runs(&backend, &Codec::Plain).unwrap();
    for run in &live {
        assert_eq!(Some(run), lock.as_ref().map(|l| &l.run));
    }

    backend.delete(&plan_key).unwrap();
    backend.delete(lock_key).unwrap();
});
