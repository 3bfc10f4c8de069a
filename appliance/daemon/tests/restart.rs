//! The real `cofferd` binary killed with SIGKILL in the middle of a backup,
//! then started again: the job is marked interrupted, queued again once,
//! and succeeds; nothing in the store or the catalog is lost. Also: SIGHUP
//! reloads the configuration, and a malformed one is refused at start with
//! its line and key named.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Client;
use serde_json::json;

fn spawn(dir: &Path) -> Child {
    let child = Command::new(env!("CARGO_BIN_EXE_cofferd"))
        .arg("--dev")
        .arg(dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let sock = dir.join("control.sock");
    let start = Instant::now();
    while std::os::unix::net::UnixStream::connect(&sock).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "cofferd did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn job_status(dir: &Path, id: i64) -> String {
    let cat = coffer_catalog::Catalog::open(&dir.join("store/catalog.db")).unwrap();
    cat.job_view(id).unwrap().record.status.as_str().to_string()
}

/// Incompressible data, quickly.
fn big_file(path: &Path, mib: usize) {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut buf = vec![0u8; mib << 20];
    for c in buf.chunks_exact_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        c.copy_from_slice(&x.to_le_bytes());
    }
    std::fs::write(path, buf).unwrap();
}

#[test]
fn a_daemon_killed_mid_backup_retries_the_job_once_at_its_next_start() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("appliance");
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..4 {
        big_file(&src.join(format!("part{i}.bin")), 96);
    }
    let mut child = spawn(&dir);
    let mut c = Client::connect(&dir.join("control.sock"));
    let e = c.ok(
        "bootstrap",
        json!({"user": "admin", "password": "correct horse battery"}),
    );
    let secret = coffer_auth::totp::base32_decode(e["secret_base32"].as_str().unwrap()).unwrap();
    c.login(
        "admin",
        "correct horse battery",
        &coffer_auth::totp::code_at(&secret, now_secs()),
    );
    let mut a = common::asset("big", &src, None);
    a["rpo"] = json!("1d");
    c.ok("asset_add", json!({ "asset": a }));
    let id = c.ok("job_run", json!({"asset": "big", "level": "full"}))["job"]
        .as_i64()
        .unwrap();
    let start = Instant::now();
    while job_status(&dir, id) != "running" {
        assert!(start.elapsed() < Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        job_status(&dir, id),
        "running",
        "killed: nobody recorded an end"
    );

    let mut child = spawn(&dir);
    assert_eq!(job_status(&dir, id), "interrupted");
    let cat = coffer_catalog::Catalog::open(&dir.join("store/catalog.db")).unwrap();
    let start = Instant::now();
    let retry = loop {
        let jobs = cat.job_views(&Default::default()).unwrap();
        if let Some(r) = jobs
            .iter()
            .find(|j| j.record.id != id && j.record.asset.as_deref() == Some("big"))
            && r.record.status.as_str() == "success"
        {
            break r.clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no successful retry: {jobs:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(retry.attempt, 2);
    assert_eq!(retry.record.identity, "admin", "the retry keeps who asked");
    let interrupted = cat.job_view(id).unwrap();
    assert!(
        interrupted
            .record
            .messages
            .iter()
            .any(|m| m.contains("interrupted") || m.contains("ended")),
        "{:?}",
        interrupted.record.messages
    );

    // SIGHUP: a changed configuration is applied without a restart.
    let toml_path = dir.join("cofferd.toml");
    let text = std::fs::read_to_string(&toml_path).unwrap();
    let lockout = text
        .lines()
        .find(|l| l.starts_with("lockout_after"))
        .unwrap()
        .to_string();
    std::fs::write(&toml_path, text.replace(&lockout, "lockout_after = 2")).unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let mut bad = Client::connect(&dir.join("control.sock"));
    let attempt = |bad: &mut Client| {
        bad.call(
            "login",
            json!({"user": "admin", "password": "wrong wrong wrong", "code": "000000"}),
        )["error"]["code"]
            .clone()
    };
    assert_eq!(attempt(&mut bad), json!("login_failed"));
    assert_eq!(attempt(&mut bad), json!("login_failed"));
    assert_eq!(
        attempt(&mut bad),
        json!("locked_out"),
        "2 failures now lock"
    );

    // SIGTERM: a clean stop.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(!dir.join("control.sock").exists());

    // A malformed configuration is refused at start, naming line and key.
    std::fs::write(
        &toml_path,
        "[daemon]\nsocket = \"/tmp/x.sock\"\nsokcet_group = 1\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_cofferd"))
        .arg("--dev")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("line 3") && err.contains("sokcet_group"),
        "{err}"
    );
}
