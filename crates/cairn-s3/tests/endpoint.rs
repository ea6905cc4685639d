//! The conformance suite against any S3 endpoint named by the environment,
//! for stores the CI does not run (s3s-fs, MinIO, a real bucket):
//!
//! ```sh
//! CAIRN_S3_TEST_ENDPOINT=http://127.0.0.1:8014 CAIRN_S3_TEST_BUCKET=test \
//! CAIRN_S3_TEST_ACCESS_KEY=cairn CAIRN_S3_TEST_SECRET_KEY=cairn-secret \
//!     cargo test -p cairn-s3 --test endpoint
//! ```
//!
//! The bucket must exist; the test works under a new prefix and deletes
//! what it wrote.

mod common;

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use cairn_repo::Backend;
use cairn_s3::{AwsEnv, S3Backend};
use common::{conformance, quick_options};

#[test]
fn the_endpoint_passes_the_conformance_suite() {
    let var = |name: &str| std::env::var(format!("CAIRN_S3_TEST_{name}")).ok();
    let (Some(endpoint), Some(bucket)) = (var("ENDPOINT"), var("BUCKET")) else {
        // Straight to stderr: libtest hides what passing tests print.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: set CAIRN_S3_TEST_ENDPOINT and CAIRN_S3_TEST_BUCKET to test an S3 endpoint"
        );
        return;
    };
    let env = AwsEnv::from_vars([
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_ACCESS_KEY_ID", var("ACCESS_KEY").unwrap_or_default()),
        (
            "AWS_SECRET_ACCESS_KEY",
            var("SECRET_KEY").unwrap_or_default(),
        ),
        (
            "AWS_REGION",
            var("REGION").unwrap_or_else(|| "us-east-1".into()),
        ),
        ("HOME", "/nonexistent".into()),
    ]);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let url = format!("s3://{bucket}/cairn-test-{}-{nanos}", std::process::id());
    let b = S3Backend::with_env(&url, &quick_options(), &env).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    conformance::run_all(&b, scratch.path());
    conformance::listing_spans_pages(&b, 1100);
    for o in b.list("").unwrap() {
        b.delete(&o.key).unwrap();
    }
    assert!(b.list("").unwrap().is_empty());
    eprintln!("{url}: {:?}", b.stats());
}
