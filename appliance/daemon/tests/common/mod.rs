//! A daemon in-process on a temporary directory and socket, with a manual
//! clock, and a raw JSON-lines client.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cofferd::{Clock, Config, ManualClock, Options, Running};
use serde_json::{Value, json};

/// 2026-11-23 (a Monday) 00:00:00 UTC, where the tests' clocks start.
pub const MONDAY: i64 = 1_795_392_000_000;
pub const MINUTE: i64 = 60_000;
pub const HOUR: i64 = 60 * MINUTE;
pub const DAY: i64 = 24 * HOUR;

pub struct TestDaemon {
    pub dir: tempfile::TempDir,
    pub clock: Arc<ManualClock>,
    pub running: Option<Running>,
    pub rt: tokio::runtime::Runtime,
    /// `dir` is a tmpfs mount point, unmounted on drop.
    pub tmpfs: bool,
}

pub fn config(dir: &Path) -> Config {
    let mut c = Config::development(dir);
    c.store.threads = 2;
    c
}

impl TestDaemon {
    /// A daemon whose sessions last a week (tests move the clock by hours).
    pub fn start() -> TestDaemon {
        TestDaemon::start_with(|c| c.auth.session_idle = coffer_types::api::Duration(7 * 86_400))
    }

    /// A daemon with the development configuration changed by `f`.
    pub fn start_with(f: impl FnOnce(&mut Config)) -> TestDaemon {
        TestDaemon::start_in(tempfile::tempdir().unwrap(), false, f)
    }

    /// A daemon whose store and state live on a tmpfs of `size` of their
    /// own, so that what the health checks measure does not depend on how
    /// full the machine's disk is. `None` where this machine may not mount
    /// (not root, no tmpfs).
    pub fn start_on_tmpfs_with(size: &str, f: impl FnOnce(&mut Config)) -> Option<TestDaemon> {
        let dir = tempfile::tempdir().unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        mounted.then(|| TestDaemon::start_in(dir, true, f))
    }

    pub fn start_in(
        dir: tempfile::TempDir,
        tmpfs: bool,
        f: impl FnOnce(&mut Config),
    ) -> TestDaemon {
        let mut c = config(dir.path());
        f(&mut c);
        let path = dir.path().join("cofferd.toml");
        std::fs::write(&path, toml::to_string(&c).unwrap()).unwrap();
        let clock = Arc::new(ManualClock::new(MONDAY));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let mut d = TestDaemon {
            dir,
            clock,
            running: None,
            rt,
            tmpfs,
        };
        d.boot(Some(path));
        d
    }

    /// Starts (again) on the same directory, optionally with a config file.
    pub fn boot(&mut self, config_path: Option<PathBuf>) {
        let config_path = config_path.or_else(|| {
            let p = self.dir.path().join("cofferd.toml");
            p.exists().then_some(p)
        });
        let config = match &config_path {
            Some(p) => Config::load(p).unwrap(),
            None => config(self.dir.path()),
        };
        let running = self
            .rt
            .block_on(cofferd::start(Options {
                config,
                config_path,
                clock: self.clock.clone(),
                password_cost: Some(coffer_auth::PasswordParams::insecure_for_tests()),
            }))
            .unwrap();
        self.running = Some(running);
    }

    pub fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            self.rt.block_on(r.shutdown()).unwrap();
        }
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("control.sock")
    }

    pub fn client(&self) -> Client {
        Client::connect(&self.socket())
    }

    /// Bootstraps `admin` and logs in; returns the client and the TOTP secret.
    pub fn admin(&self) -> (Client, Vec<u8>) {
        let mut c = self.client();
        let e = c.ok(
            "bootstrap",
            json!({"user": "admin", "password": "correct horse battery"}),
        );
        let secret =
            coffer_auth::totp::base32_decode(e["secret_base32"].as_str().unwrap()).unwrap();
        let code = self.code(&secret);
        c.login("admin", "correct horse battery", &code);
        (c, secret)
    }

    /// The TOTP code at the daemon's clock.
    pub fn code(&self, secret: &[u8]) -> String {
        coffer_auth::totp::code_at(secret, self.clock.now_ms() / 1000)
    }

    /// Moves the clock to the next TOTP step (a code is accepted only once).
    pub fn next_step(&self) {
        self.clock.advance(30_000);
    }

    /// Waits (real time) until `f` holds, up to 60 s.
    pub fn wait_for(&self, what: &str, mut f: impl FnMut() -> bool) {
        let start = std::time::Instant::now();
        while !f() {
            assert!(
                start.elapsed() < std::time::Duration::from_secs(60),
                "timed out waiting for {what}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        self.stop();
        if self.tmpfs {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(self.dir.path())
                .status();
        }
    }
}

pub struct Client {
    stream: BufReader<UnixStream>,
    next: u64,
    pub auth: Option<Value>,
    pub mfa: Option<String>,
}

impl Client {
    pub fn connect(path: &Path) -> Client {
        Client {
            stream: BufReader::new(UnixStream::connect(path).unwrap()),
            next: 1,
            auth: None,
            mfa: None,
        }
    }

    /// Sends one raw line, returns the response line parsed.
    pub fn raw(&mut self, line: &[u8]) -> Value {
        // The daemon may answer and close before reading all of an
        // oversized line: the write then fails, the answer is still there.
        let s = self.stream.get_mut();
        let _ = s.write_all(line).and_then(|()| s.write_all(b"\n"));
        let mut resp = String::new();
        self.stream.read_line(&mut resp).unwrap();
        serde_json::from_str(&resp).unwrap_or(Value::Null)
    }

    pub fn call(&mut self, op: &str, args: Value) -> Value {
        let id = self.next;
        self.next += 1;
        let mut req = json!({"id": id, "op": op});
        if !args.is_null() {
            req["args"] = args;
        }
        if let Some(a) = &self.auth {
            req["auth"] = a.clone();
        }
        if let Some(m) = self.mfa.take() {
            req["mfa"] = json!(m);
        }
        let resp = self.raw(serde_json::to_string(&req).unwrap().as_bytes());
        assert_eq!(resp["id"], json!(id), "{resp}");
        resp
    }

    /// A call that must succeed; returns its result.
    pub fn ok(&mut self, op: &str, args: Value) -> Value {
        let r = self.call(op, args);
        assert_eq!(r["ok"], json!(true), "{op} failed: {r}");
        r.get("result").cloned().unwrap_or(Value::Null)
    }

    /// A call that must fail with `code`; returns the message.
    pub fn fails(&mut self, op: &str, args: Value, code: &str) -> String {
        let r = self.call(op, args);
        assert_eq!(r["ok"], json!(false), "{op} should fail with {code}: {r}");
        assert_eq!(r["error"]["code"], json!(code), "{op}: {r}");
        r["error"]["message"].as_str().unwrap().to_string()
    }

    pub fn login(&mut self, user: &str, password: &str, code: &str) -> Value {
        let r = self.ok(
            "login",
            json!({"user": user, "password": password, "code": code}),
        );
        self.auth = Some(json!({"session": r["session"]}));
        r
    }
}

/// A small tree to back up.
pub fn sample_tree(root: &Path) -> PathBuf {
    let src = root.join("src");
    std::fs::create_dir_all(src.join("etc")).unwrap();
    std::fs::write(src.join("etc/hosts"), "127.0.0.1 localhost\n").unwrap();
    std::fs::write(src.join("data.bin"), vec![7u8; 300_000]).unwrap();
    src
}

pub fn asset(name: &str, source: &Path, profile: Option<&str>) -> Value {
    json!({
        "name": name,
        "owner": "ops team",
        "criticality": "high",
        "sources": [source.display().to_string()],
        "rpo": "1d",
        "rto": "4h",
        "profile": profile,
    })
}

pub fn profile(name: &str, incremental: &str) -> Value {
    json!({
        "name": name,
        "schedules": {"full": "Sun 01:00", "incremental": incremental},
        "retention": {"keep_daily": 7},
        "retries": 1,
        "retry_backoff": "10m",
    })
}

/// Adds profile `p` replicating to `remote` after each backup, and asset
/// `web-01` (a [`sample_tree`] under `root`) in it; returns the tree and
/// the profile as added.
pub fn add_replicated_asset(c: &mut Client, root: &Path, remote: &str) -> (PathBuf, Value) {
    let src = sample_tree(root);
    let mut prof = profile("p", "Sun 02:00");
    prof["replicate_to"] = json!([remote]);
    c.ok("profile_add", json!({ "profile": prof }));
    c.ok(
        "asset_add",
        json!({"asset": asset("web-01", &src, Some("p"))}),
    );
    (src, prof)
}

/// Jobs from `job_list`, oldest first.
pub fn jobs(c: &mut Client) -> Vec<Value> {
    let mut v = c
        .ok("job_list", json!({"limit": 1000}))
        .as_array()
        .unwrap()
        .clone();
    v.reverse();
    v
}

/// Waits until job `id` has ended (up to 2 minutes); returns it.
pub fn wait_job(c: &mut Client, id: &Value) -> Value {
    let start = std::time::Instant::now();
    loop {
        let j = c.ok("job_get", json!({ "id": id }));
        if !matches!(j["status"].as_str(), Some("queued" | "running")) {
            return j;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(120),
            "job {id}: {j}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Gives the client's next call a fresh TOTP code (the clock moves a step).
pub fn fresh(d: &TestDaemon, c: &mut Client, secret: &[u8]) {
    d.next_step();
    c.mfa = Some(d.code(secret));
}

/// Adds the user `name` holding `role` (through `admin`, with a fresh
/// code) and logs it in; returns its client and TOTP secret.
pub fn user_with_role(
    d: &TestDaemon,
    admin: &mut Client,
    admin_secret: &[u8],
    name: &str,
    role: coffer_types::api::Role,
) -> (Client, Vec<u8>) {
    fresh(d, admin, admin_secret);
    let e = admin.ok(
        "user_add",
        json!({"name": name, "password": "a long enough password", "roles": [role]}),
    );
    let s = coffer_auth::totp::base32_decode(e["secret_base32"].as_str().unwrap()).unwrap();
    let mut u = d.client();
    u.login(name, "a long enough password", &d.code(&s));
    (u, s)
}

/// The daemon's store id, hex.
pub fn store_id(d: &TestDaemon) -> String {
    let blobs = coffer_store::DirStore::new(d.dir.path().join("store"));
    hex::encode(coffer_store::StoreConfig::read(&blobs).unwrap().store_id.0)
}

/// Asserts that `restored` holds `sample_tree`'s files, byte for byte.
pub fn assert_sample_restored(restored: &Path, src: &Path) {
    for f in ["data.bin", "etc/hosts"] {
        assert_eq!(
            std::fs::read(restored.join(f)).unwrap(),
            std::fs::read(src.join(f)).unwrap(),
            "{f}"
        );
    }
    // And every other file the source holds (files added after
    // `sample_tree`), byte for byte.
    let mut stack = vec![src.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(src).unwrap();
                assert_eq!(
                    std::fs::read(restored.join(rel)).ok(),
                    Some(std::fs::read(&p).unwrap()),
                    "{}",
                    rel.display()
                );
            }
        }
    }
}

/// Queues a restore of `store`'s latest snapshot from `remote` into
/// `target` with `passphrase`; returns the job id.
pub fn remote_restore(
    c: &mut Client,
    remote: &str,
    store: &str,
    target: &Path,
    passphrase: &str,
) -> Value {
    c.ok(
        "remote_restore",
        json!({"remote": remote, "store": store, "snapshot": "latest",
               "target": target.display().to_string(), "passphrase": passphrase}),
    )["job"]
        .clone()
}

/// Waits until the audit log records that job `id` finished (written after
/// everything the job does on success, such as queueing a replication).
pub fn wait_job_audited(c: &mut Client, id: &Value) {
    let needle = format!("job {id} ");
    let start = std::time::Instant::now();
    while !c
        .ok("audit_list", json!({"filter": {"action": "job.finish"}}))
        .to_string()
        .contains(&needle)
    {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "job {id} was never audited as finished"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
