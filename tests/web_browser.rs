//! `cairn serve` in a real headless browser (Debian's chromium and
//! chromedriver, driven over WebDriver): the volumes page, a volume's
//! history, a diff, browsing to a file and downloading it, a restore from
//! its dry run to its summary, and a check. Each page is saved as a PNG in
//! `target/web-screenshots/`. Skips, saying why, without the browser.

mod common;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use common::web::Served;
use common::webdriver::{self, Browser};
use common::*;

/// Volume `pgdata` backed up five times as it grows and changes, and a
/// small volume `logs`.
fn history(env: &Env) -> std::path::PathBuf {
    let src = env.path("pgdata");
    small_tree(&src);
    for round in 0..5u64 {
        write(
            &src.join(format!("base/16384/{}", 2600 + round)),
            random_bytes(round, 200_000 + 150_000 * round as usize),
        );
        write(
            &src.join("pg_wal/current"),
            random_bytes(100 + round, 64_000),
        );
        write(
            &src.join("postgresql.conf"),
            format!("shared_buffers = {}MB\n", 128 * (round + 1)),
        );
        let tag = if round % 2 == 0 { "nightly" } else { "hourly" };
        env.backup(&src, &["--volume", "pgdata", "--tag", tag]);
    }
    let logs = env.path("logs");
    write(&logs.join("app.log"), random_bytes(7, 30_000));
    env.backup(&logs, &["--volume", "logs"]);
    src
}

fn shot(b: &Browser, name: &str) {
    let path = webdriver::screenshot_dir().join(name);
    b.screenshot(&path);
    eprintln!("screenshot: {}", path.display());
}

fn wait_for_file(path: &Path) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(data) = fs::read(path) {
            return data;
        }
        assert!(
            Instant::now() < deadline,
            "{} was never downloaded",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn browser_follows_volumes_history_diff_browse_download_restore_and_check() {
    if let Some(why) = webdriver::missing() {
        eprintln!("SKIPPED: browser test: {why}");
        return;
    }
    let env = Env::new();
    let src = history(&env);
    let root = env.path("restores");
    let downloads = env.path("downloads");
    fs::create_dir_all(&root).unwrap();
    fs::create_dir_all(&downloads).unwrap();
    let s = Served::start(
        &env,
        &["--allow-restore", "--restore-root", root.to_str().unwrap()],
    );
    let b = Browser::start(&downloads);

    b.goto(&s.url);
    b.wait_for_text("added per snapshot", Duration::from_secs(10));
    assert!(
        !b.url().contains("token="),
        "the token left the address bar"
    );
    shot(&b, "01-volumes.png");

    b.find(r#"a[href="/volumes/pgdata"]"#).click();
    b.wait_for_text("Volume pgdata", Duration::from_secs(10));
    shot(&b, "02-history.png");

    b.find(r#"form[action="/diff"] button"#).click();
    let diff = b.wait_for_text("modified", Duration::from_secs(20));
    assert!(diff.contains("base/16384/2604"), "{diff}");
    shot(&b, "03-diff.png");

    b.find(r#"main p a[href^="/snapshots/"]:nth-of-type(2)"#)
        .click();
    b.wait_for_text("Download as tar", Duration::from_secs(10));
    shot(&b, "04-browse.png");
    b.find(r#"td.name a[href$="path=data"]"#).click();
    b.wait_for_text("one.bin", Duration::from_secs(10));
    shot(&b, "05-directory.png");
    b.find(r#"td.name a[href$="path=data/one.bin"]"#).click();
    b.wait_for_text("chunks", Duration::from_secs(10));
    shot(&b, "06-file.png");
    b.find(r#"a.button[href*="/file?"]"#).click();
    let got = wait_for_file(&downloads.join("one.bin"));
    assert_eq!(got, fs::read(src.join("data/one.bin")).unwrap());

    b.find(r#".crumbs a"#).click();
    b.find(r#"a.button[href^="/restore?"]"#).click();
    b.find(r#"input[name="target"]"#).send_keys("from-browser");
    b.find(r#"button[value="preview"]"#).click();
    b.wait_for_text("Restore: dry run", Duration::from_secs(20));
    shot(&b, "07-restore-dry-run.png");
    b.find("button.danger").click();
    let done = b.wait_for_text("done", Duration::from_secs(60));
    assert!(done.contains("wrote"), "{done}");
    shot(&b, "08-restore-done.png");
    assert_trees_equal(&src, &root.join("from-browser"));

    b.find(r#"nav a[href="/repository"]"#).click();
    b.wait_for_text("dedup ratio", Duration::from_secs(10));
    b.resize(1280, 1700);
    shot(&b, "09-repository.png");
    b.find(r#"form[action="/repository/check"] button"#).click();
    b.wait_for_text("no errors", Duration::from_secs(60));
    b.resize(1280, 1000);
    shot(&b, "10-check.png");
}
