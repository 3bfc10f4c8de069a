//! Remote mode, without a daemon: the `coffer` binary's errors and help, and
//! its requests and output against a fake control socket that answers
//! canned lines (the real `cofferd` has its own scenarios).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::thread::JoinHandle;

use serde_json::{Value, json};

use crate::support::coffer_bin;

/// A fake `cofferd`: serves one connection, answering each request with
/// `answer(request)` (the id is filled in), and returns the requests.
fn fake(path: &Path, answer: fn(&Value) -> Value) -> JoinHandle<Vec<Value>> {
    let listener = UnixListener::bind(path).unwrap();
    std::thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut w = s;
        let mut got = Vec::new();
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                return got;
            }
            let req: Value = serde_json::from_str(&line).unwrap();
            let mut resp = answer(&req);
            resp["id"] = req["id"].clone();
            got.push(req);
            if writeln!(w, "{resp}").is_err() {
                return got;
            }
        }
    })
}

fn coffer(socket: &Path, args: &[&str], token: Option<&str>, stdin: &str) -> Output {
    let mut c = Command::new(coffer_bin());
    c.args(args)
        .env("COFFER_SOCKET", socket)
        .env_remove("COFFER_TOKEN")
        .env_remove("COFFER_STORE")
        .env("HOME", socket.parent().unwrap())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(t) = token {
        c.env("COFFER_TOKEN", t);
    }
    let mut child = c.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn job() -> Value {
    json!({
        "id": 7, "kind": "backup", "asset": "web-01", "level": "incremental",
        "scope": {"paths": ["/srv"], "excludes": [], "one_file_system": false},
        "started": "2026-11-26T03:00:00.000Z", "ended": "2026-11-26T03:01:00.000Z",
        "status": "success",
        "stats": {"files_read": 3, "bytes_read": 2048, "files_unchanged": 0, "bytes_unchanged": 0,
                  "entries": 5, "chunks_new": 1, "bytes_new": 2048, "bytes_stored": 1000, "warnings": 0},
        "messages": [], "identity": "scheduler", "host": "coffer1", "snapshot": null,
        "source": "scheduler", "profile": "standard", "attempt": 1, "progress": null
    })
}

fn answer(req: &Value) -> Value {
    let result = match req["op"].as_str().unwrap() {
        "status" => json!({"version": "0.1.0", "api": 1, "host": "coffer1",
            "needs_bootstrap": false, "now": "2026-11-26T03:00:00.000Z",
            "active_jobs": 0, "open_alerts": 0, "development": true}),
        "whoami" => json!({"user": "ops", "roles": ["backup-operator"], "source": "api",
            "token": "ct_a"}),
        "job_list" => json!([job()]),
        "panel_show" => json!({"backend": "simulated",
            "lines": ["COFFER coffer1      ", "IP 192.0.2.2        ",
                      "HEALTH OK           ", "v0.1.0     03:00 UTC"],
            "screen": "identity",
            "leds": {"power": true, "activity": false, "fault": false, "tape": false},
            "backlight": true, "faults": []}),
        "asset_list" => json!([{"name": "legacy", "owner": "ops", "criticality": "low",
            "sources": ["/srv"], "excludes": [], "rpo": "1d", "rto": "4h", "profile": null,
            "unprotected": true, "last_good_backup": null, "rpo_breached": true}]),
        op => {
            return json!({"ok": false, "error": {"code": "forbidden",
                "message": format!("{op} is not allowed")}});
        }
    };
    json!({"ok": true, "result": result})
}

#[test]
fn no_daemon_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("control.sock");
    for args in [&["remote", "status"][..], &["shell"][..]] {
        let out = coffer(&socket, args, Some("ct_a_b"), "");
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = text(&out.stderr);
        assert!(
            err.contains(&format!(
                "cannot connect to cofferd at {}: No such file or directory — is the daemon \
                 running? (or use --store DIR for direct mode)",
                socket.display()
            )),
            "{err}"
        );
    }
}

#[test]
fn usage_errors_and_help_need_no_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("control.sock");
    let out = coffer(&socket, &["remote", "asset", "frob"], None, "");
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("unknown subcommand 'asset frob'"));
    let out = coffer(&socket, &["remote", "job", "show", "x"], None, "");
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("'x' is not a job id"));
    assert!(text(&out.stderr).contains("usage: job show ID"));
    let out = coffer(&socket, &["remote", "help", "asset"], None, "");
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("asset import FILE.csv [--replace]"));
}

#[test]
fn one_shot_sends_the_token_and_prints_json() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("control.sock");
    let h = fake(&socket, answer);
    let out = coffer(
        &socket,
        &["--json", "remote", "job", "list", "--limit", "5"],
        Some("ct_a_b"),
        "",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["id"], 7);
    assert_eq!(v[0]["status"], "success");
    let reqs = h.join().unwrap();
    assert_eq!(reqs.len(), 1);
    assert_eq!(
        reqs[0],
        json!({"id": 1, "auth": {"token": "ct_a_b"}, "op": "job_list", "args": {"limit": 5}})
    );
}

#[test]
fn one_shot_without_a_token_or_terminal_says_how_to_log_in() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("control.sock");
    let h = fake(&socket, answer);
    let out = coffer(&socket, &["remote", "asset", "list"], None, "");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("not logged in: set COFFER_TOKEN"),
        "{}",
        text(&out.stderr)
    );
    assert!(h.join().unwrap().is_empty());
}

#[test]
fn the_shell_reads_commands_from_a_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("control.sock");
    let h = fake(&socket, answer);
    let out = coffer(
        &socket,
        &["shell"],
        Some("ct_a_b"),
        "# a comment\nasset list\nbogus\nreload\nwhoami\n",
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stdout.contains("legacy  ops    low          1d   4h   -        never             UNPROTECTED, RPO BREACHED"),
        "{stdout}"
    );
    assert!(stdout.contains("user:  ops"), "{stdout}");
    assert!(
        stderr.contains("error: unknown command 'bogus'"),
        "{stderr}"
    );
    assert!(
        stderr.contains("error: reload is not allowed\nhint: your roles"),
        "{stderr}"
    );
    let ops: Vec<String> = h
        .join()
        .unwrap()
        .iter()
        .map(|r| r["op"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ops, ["status", "whoami", "asset_list", "reload", "whoami"]);
}

#[test]
fn status_and_panel_are_top_level_commands_and_send_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("control.sock");
    let h = fake(&socket, answer);
    let out = coffer(&socket, &["status"], Some("ct_a_b"), "");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("host:        coffer1"));
    assert_eq!(
        h.join().unwrap(),
        vec![json!({"id": 1, "auth": {"token": "ct_a_b"}, "op": "status"})]
    );
    std::fs::remove_file(&socket).unwrap();
    let h = fake(&socket, answer);
    let out = coffer(&socket, &["panel", "show"], Some("ct_a_b"), "");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("+--------------------+\n|COFFER coffer1      |\n"),
        "{stdout}"
    );
    assert!(stdout.contains("(*) power  ( ) activity"), "{stdout}");
    assert_eq!(h.join().unwrap()[0]["op"], "panel_show");
    let out = coffer(&socket, &["panel", "press", "sideways"], Some("ct_a_b"), "");
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("up, down, ok or back"));
}
