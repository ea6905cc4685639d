//! Reading the repository `config`: `Repository::open` on a local
//! repository whose `config` file holds the input. It must never panic; a
//! config whose version is above the supported one must be refused as a
//! newer format (docs/FORMAT.md 12); and a config that is accepted must be
//! one cairn can work with, since `backup` trusts it without checking again.
#![no_main]

use std::sync::Arc;

use cairn_chunk::Chunker;
use cairn_repo::format::config::FORMAT_VERSION;
use cairn_repo::{Error, LocalBackend, Repository};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = cairn_fuzz::work_dir().join("repo");
    std::fs::create_dir_all(&dir).unwrap();
    // Written directly: the backend never replaces an object.
    std::fs::write(dir.join("config"), data).unwrap();
    let opened = Repository::open(Arc::new(LocalBackend::new(&dir)), None);

    let version = serde_json::from_slice::<serde_json::Value>(data)
        .ok()
        .and_then(|v| v.get("version").cloned());
    if let Some(v) = version.as_ref().and_then(|v| v.as_u64()) {
        if v > u64::from(FORMAT_VERSION) {
            assert!(
                matches!(opened, Err(Error::NewerFormat { .. })),
                "version {v} not refused as newer: {:?}",
                opened.as_ref().map(|r| r.config())
            );
        }
    }
    let Ok(repo) = opened else {
        return;
    };
    let cfg = repo.config();
    assert!(cfg.version <= FORMAT_VERSION);
    assert!(
        cfg.chunker.validate().is_ok(),
        "accepted chunker sizes FastCDC refuses: {:?}",
        cfg.chunker
    );
    // What a backup does first with the config.
    let cuts = Chunker::new(cfg.chunker).cut_all(data);
    assert_eq!(cuts.last().map_or(0, |c| c.end), data.len());
    let _ = cfg.compression.compress(data);
});
