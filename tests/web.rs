//! `cairn serve` over HTTP: every route, the token and the session cookie,
//! CSRF, traversal attempts and restores from a form (downloads and the
//! limit on heavy requests: web_downloads.rs).

mod common;

use std::fs;
use std::time::{Duration, Instant};

use common::web::{bearer, form, request, Served, TOKEN};
use common::*;

/// A repository with two snapshots of volume `pgdata` (the second changes,
/// adds and removes files) and one of volume `logs`.
fn two_snapshots(env: &Env) -> (String, String) {
    let src = env.path("pgdata");
    small_tree(&src);
    write(&src.join("notes/\u{e9}t\u{e9}.txt"), b"summer\n");
    write(
        &src.join(std::ffi::OsStr::new("odd")).join(bad_name()),
        b"not utf-8\n",
    );
    write(&src.join("data/<b>&.txt"), b"markup in a name\n");
    let a = env.backup(&src, &["--volume", "pgdata", "--tag", "nightly"]);
    write(&src.join("data/one.bin"), random_bytes(11, 25_000));
    write(&src.join("added.txt"), b"new\n");
    fs::remove_file(src.join("empty-file")).unwrap();
    let b = env.backup(&src, &["--volume", "pgdata"]);
    let logs = env.path("logs");
    write(&logs.join("app.log"), b"line\n");
    env.backup(&logs, &["--volume", "logs"]);
    let id = |v: &serde_json::Value| v["snapshot_id"].as_str().unwrap().to_string();
    (id(&a), id(&b))
}

fn bad_name() -> &'static std::ffi::OsStr {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::OsStr::from_bytes(b"caf\xe9.bin")
}

#[test]
fn serve_requires_the_token_as_bearer_or_query_then_cookie() {
    let env = Env::new();
    two_snapshots(&env);
    let s = Served::start(&env, &[]);
    assert!(s.url.ends_with(&format!("/?token={TOKEN}")), "{}", s.url);
    for path in ["/", "/repository", "/volumes/pgdata", "/diff?a=x&b=y"] {
        let r = request(&s.addr, "GET", path, &[], b"");
        assert_eq!(r.status, 401, "{path} without a token");
        assert!(!r.text().contains("pgdata/"), "nothing leaks");
        let wrong = request(
            &s.addr,
            "GET",
            path,
            &[("Authorization", "Bearer nope")],
            b"",
        );
        assert_eq!(wrong.status, 401, "{path} with a wrong bearer");
    }
    assert_eq!(s.get("/").status, 200, "right bearer");
    let bad = request(&s.addr, "GET", "/?token=nope", &[], b"");
    assert_eq!(bad.status, 401);
    assert!(bad.header("set-cookie").is_none());
    let r = request(
        &s.addr,
        "GET",
        &format!("/volumes/pgdata?token={TOKEN}&from=0"),
        &[],
        b"",
    );
    assert_eq!(r.status, 303, "the token leaves the address bar");
    assert_eq!(r.header("location"), Some("/volumes/pgdata?from=0"));
    let cookie = r.header("set-cookie").unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let cookie = cookie.split(';').next().unwrap();
    let ok = request(
        &s.addr,
        "GET",
        "/volumes/pgdata",
        &[("Cookie", cookie)],
        b"",
    );
    assert_eq!(ok.status, 200);
    let forged = request(
        &s.addr,
        "GET",
        "/",
        &[("Cookie", "cairn_session=00.00")],
        b"",
    );
    assert_eq!(forged.status, 401, "a cookie this server did not make");
    // `//host` in the path must not turn the redirect into another site.
    let r = request(
        &s.addr,
        "GET",
        &format!("//evil.example/?token={TOKEN}"),
        &[],
        b"",
    );
    assert!(!r.header("location").unwrap_or("/").starts_with("//"));
}

#[test]
fn every_page_renders_with_escaped_names_and_safe_headers() {
    let env = Env::new();
    let (a, b) = two_snapshots(&env);
    let s = Served::start(&env, &[]);
    let home = s.page("/");
    assert!(home.contains(r#"href="/volumes/pgdata""#) && home.contains("logs"));
    assert!(
        home.contains("<svg") && home.contains(r#"class="fresh""#),
        "sparkline, age"
    );
    let history = s.page("/volumes/pgdata");
    assert!(history.contains(&a[..8]) && history.contains(&b[..8]));
    assert!(history.contains("nightly") && history.contains("<polyline"));
    let root = s.page(&format!("/snapshots/{b}"));
    assert!(root.contains("added.txt") && root.contains("Download as tar"));
    let odd = s.page(&format!("/snapshots/{}?path=odd", &b[..10]));
    assert!(
        odd.contains(r#"caf<span class="raw">\xe9</span>.bin"#),
        "non-UTF-8 shown safely"
    );
    assert!(
        odd.contains("path=odd/caf%E9.bin"),
        "and linked by its bytes"
    );
    let attrs = s.page(&format!("/snapshots/{b}?path=odd/caf%E9.bin"));
    assert!(attrs.contains("10 bytes") && attrs.contains("Download"));
    let data = s.page(&format!("/snapshots/{b}?path=data"));
    assert!(
        data.contains("&lt;b&gt;&amp;.txt") && !data.contains("<b>&"),
        "names escaped"
    );
    let diff = s.page(&format!("/diff?a={a}&b={b}"));
    assert!(diff.contains("added.txt") && diff.contains("empty-file"));
    assert!(diff.contains("data/one.bin") && diff.contains("1 added"));
    let repo = s.page("/repository");
    assert!(repo.contains("dedup ratio") && repo.contains("Run check"));
    assert!(s.page("/assets/style.css").contains("body"));
    assert!(s.page("/assets/job.js").contains("fetch"));
    for (path, status) in [
        ("/nope", 404),
        ("/volumes/none", 404),
        ("/snapshots/ffffffff", 404),
        (&format!("/snapshots/{b}?path=missing")[..], 404),
        ("/snapshots/zz", 400),
        ("/jobs/123", 404),
        ("/jobs/123/status", 404),
        ("/restore?snapshot=latest", 403),
    ] {
        assert_eq!(s.get(path).status, status, "{path}");
    }
    let r = s.get("/");
    let csp = r.header("content-security-policy").unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"));
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
}

/// Wait for a job to finish; its page.
fn finished_job(s: &Served, job_path: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let st = s.page(&format!("{job_path}/status"));
        if !st.contains(r#""state":"running""#) {
            return s.page(job_path);
        }
        assert!(Instant::now() < deadline, "job {job_path} still running");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn posts_need_the_sessions_csrf_token() {
    let env = Env::new();
    two_snapshots(&env);
    let s = Served::start(&env, &[]);
    let session = s.session();
    let post = |headers: &[(&str, &str)], body: &[u8]| {
        let mut h = vec![("Content-Type", "application/x-www-form-urlencoded")];
        h.extend_from_slice(headers);
        request(&s.addr, "POST", "/repository/check", &h, body)
    };
    let cookie = ("Cookie", session.cookie.as_str());
    assert_eq!(
        post(&[cookie], &form(&[("percent", "100")])).status,
        403,
        "no token"
    );
    let wrong = form(&[("percent", "100"), ("csrf", "0000")]);
    assert_eq!(post(&[cookie], &wrong).status, 403, "wrong token");
    let right = form(&[("percent", "100"), ("csrf", &session.csrf)]);
    assert_eq!(
        post(&[], &right).status,
        401,
        "a CSRF token alone is no login"
    );
    let cross = post(&[cookie, ("Sec-Fetch-Site", "cross-site")], &right);
    assert_eq!(cross.status, 403, "cross-site");
    let ok = post(&[cookie], &right);
    assert_eq!(ok.status, 303, "{}", ok.text());
    let job = ok.header("location").unwrap().to_string();
    assert!(job.starts_with("/jobs/"));
    let done = finished_job(&s, &job);
    assert!(
        done.contains("no errors") && done.contains(" read, "),
        "{done}"
    );
    assert!(
        s.page("/repository").contains("no errors"),
        "last check shown"
    );
    // A bearer request carries no ambient credential: no CSRF token needed.
    let by_bearer = post(&[("Authorization", &bearer())], &form(&[("percent", "0")]));
    assert_eq!(by_bearer.status, 303);
    assert_eq!(
        post(
            &[cookie],
            &form(&[("percent", "500"), ("csrf", &session.csrf)])
        )
        .status,
        400
    );
}

#[test]
fn traversal_attempts_in_paths_and_targets_are_refused() {
    let env = Env::new();
    let (_, b) = two_snapshots(&env);
    let root = env.path("restores");
    fs::create_dir_all(&root).unwrap();
    std::os::unix::fs::symlink("/", root.join("escape")).unwrap();
    let s = Served::start(
        &env,
        &["--allow-restore", "--restore-root", root.to_str().unwrap()],
    );
    for bad in [
        "..",
        "../..",
        "data/../..",
        "%2e%2e",
        "%2e%2e%2fetc",
        "/etc/passwd",
        "%2fetc",
        "data%00x",
        "data//one.bin",
        "data/",
        "./data",
    ] {
        for route in ["", "/file", "/tar"] {
            let r = s.get(&format!("/snapshots/{b}{route}?path={bad}"));
            assert_eq!(r.status, 400, "{route} path={bad}: {}", r.text());
        }
        let r = s.get(&format!("/restore?snapshot={b}&path={bad}"));
        assert_eq!(r.status, 400, "restore form path={bad}");
    }
    let session = s.session();
    let cookie = ("Cookie", session.cookie.as_str());
    for target in [
        "../out",
        "/tmp/out",
        "a/../../out",
        "a\0b",
        "",
        "escape",
        "escape/etc",
    ] {
        let body = form(&[
            ("csrf", &session.csrf),
            ("snapshot", &b),
            ("dest", "dir"),
            ("target", target),
            ("step", "run"),
        ]);
        let r = request(&s.addr, "POST", "/restore", &[cookie], &body);
        assert_eq!(r.status, 400, "target {target:?}: {}", r.text());
    }
    let body = form(&[
        ("csrf", &session.csrf),
        ("snapshot", &b),
        ("path", "%2e%2e"),
        ("target", "x"),
        ("step", "run"),
    ]);
    assert_eq!(
        request(&s.addr, "POST", "/restore", &[cookie], &body).status,
        400,
        "encoded subpath"
    );
    let body = form(&[
        ("csrf", &session.csrf),
        ("snapshot", &b),
        ("dest", "volume"),
        ("volume", "v1"),
        ("step", "run"),
    ]);
    assert_eq!(
        request(&s.addr, "POST", "/restore", &[cookie], &body).status,
        400,
        "no volume hook"
    );
    assert_eq!(list_tree(&root), vec!["escape"], "nothing was written");
}

#[test]
fn restore_from_a_form_after_a_dry_run() {
    let env = Env::new();
    let src = env.path("vol");
    small_tree(&src);
    stamp_mtimes(&src, 1_700_000_000);
    let id = env.backup(&src, &["--volume", "vol"])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    let root = env.path("restores");
    fs::create_dir_all(&root).unwrap();
    let s = Served::start(
        &env,
        &["--allow-restore", "--restore-root", root.to_str().unwrap()],
    );
    let session = s.session();
    let cookie = ("Cookie", session.cookie.as_str());
    let page = request(
        &s.addr,
        "GET",
        &format!("/restore?snapshot={id}"),
        &[cookie],
        b"",
    );
    assert_eq!(page.status, 200);
    assert!(page.text().contains("Preview (dry run)"));
    let fields = |step: &str| {
        form(&[
            ("csrf", &session.csrf),
            ("snapshot", &id),
            ("path", ""),
            ("dest", "dir"),
            ("target", "here/vol"),
            ("step", step),
        ])
    };
    let preview = request(&s.addr, "POST", "/restore", &[cookie], &fields("preview"));
    assert_eq!(preview.status, 200, "{}", preview.text());
    let text = preview.text();
    assert!(
        text.contains("would write 6 files") && text.contains("Restore now"),
        "{text}"
    );
    assert!(!root.join("here").exists(), "a dry run writes nothing");
    let run = request(&s.addr, "POST", "/restore", &[cookie], &fields("run"));
    assert_eq!(run.status, 303, "{}", run.text());
    let done = finished_job(&s, run.header("location").unwrap());
    assert!(done.contains("wrote 6 files"), "{done}");
    assert_trees_equal(&src, &root.join("here/vol"));
    // A file subpath goes to TARGET/<name>, as `cairn restore ID:PATH` does.
    let body = form(&[
        ("csrf", &session.csrf),
        ("snapshot", &id),
        ("path", "data%2Ftwo.bin"),
        ("target", "one"),
        ("step", "run"),
    ]);
    let run = request(&s.addr, "POST", "/restore", &[cookie], &body);
    finished_job(&s, run.header("location").unwrap());
    assert_eq!(
        fs::read(root.join("one/two.bin")).unwrap(),
        fs::read(src.join("data/two.bin")).unwrap()
    );
}
