//! The backend conformance suite against a local directory, so that both
//! backends are held to the same behaviour.

mod common;

use cairn_repo::LocalBackend;
use common::conformance;

#[test]
fn local_backend_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let b = LocalBackend::new(dir.path().join("repo"));
    conformance::run_all(&b, dir.path());
    conformance::listing_spans_pages(&b, 1100);
}
