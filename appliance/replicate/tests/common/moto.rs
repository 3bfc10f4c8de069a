//! A real S3 server for tests: moto's `moto_server`, one process per test,
//! on a free loopback port, stopped on drop.
//!
//! moto is found at `$COFFER_MOTO_SERVER`, else in
//! `<workspace>/target/moto-venv`, which is created on first use (python3
//! venv + pip, under a file lock so parallel test binaries install once).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use coffer_replicate::s3::{S3Config, S3Credentials};

/// The moto version the tests are written against.
const MOTO: &str = "moto[s3]==5.2.5";

pub struct Moto {
    child: Child,
    pub port: u16,
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .unwrap()
        .to_path_buf()
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e} (the S3 tests need python3 with venv and pip to install moto, or COFFER_MOTO_SERVER set to a moto_server)"));
    assert!(
        out.status.success(),
        "{what} failed ({}): {cmd:?}\n{}\n{}\n(the S3 tests need python3 with venv and pip and access to PyPI to install moto, or COFFER_MOTO_SERVER set to a moto_server)",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The `moto_server` to run, installing it if needed.
fn moto_server() -> PathBuf {
    if let Some(p) = std::env::var_os("COFFER_MOTO_SERVER") {
        return PathBuf::from(p);
    }
    let target = workspace_root().join("target");
    let venv = target.join("moto-venv");
    let bin = venv.join("bin/moto_server");
    let ready = venv.join(".coffer-ready");
    if ready.exists() && bin.exists() {
        return bin;
    }
    std::fs::create_dir_all(&target).unwrap();
    let lock = std::fs::File::create(target.join("moto-venv.lock")).unwrap();
    let _held = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .unwrap();
    if ready.exists() && bin.exists() {
        return bin;
    }
    eprintln!("installing {MOTO} into {} (once)", venv.display());
    let _ = std::fs::remove_dir_all(&venv);
    run(
        Command::new("python3").arg("-m").arg("venv").arg(&venv),
        "creating the moto venv",
    );
    run(
        Command::new(venv.join("bin/pip")).args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            MOTO,
            "flask",
            "flask-cors",
        ]),
        "installing moto",
    );
    assert!(
        bin.exists(),
        "pip installed moto but {} is missing",
        bin.display()
    );
    std::fs::write(&ready, MOTO).unwrap();
    bin
}

impl Moto {
    /// A moto server that accepts any credentials.
    pub fn start() -> Moto {
        Moto::start_with(&[])
    }

    /// A moto server that checks access keys (and knows none).
    pub fn start_checking_keys() -> Moto {
        Moto::start_with(&[("INITIAL_NO_AUTH_ACTION_COUNT", "0")])
    }

    fn start_with(env: &[(&str, &str)]) -> Moto {
        let bin = moto_server();
        let mut child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", "0"])
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        // werkzeug says where it listens on stderr, then logs every
        // request there: keep reading, or the pipe fills and moto stops.
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            let mut seen = Vec::new();
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(tx) = &tx {
                    seen.push(line.clone());
                    if let Some(rest) = line.split("Running on http://127.0.0.1:").nth(1) {
                        let port: u16 = rest.trim().trim_end_matches('/').parse().unwrap();
                        let _ = tx.send(Ok(port));
                    }
                }
                if line.contains("Running on http://127.0.0.1:") {
                    tx = None;
                }
            }
            if let Some(tx) = tx {
                let _ = tx.send(Err(seen.join("\n")));
            }
        });
        let port = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Ok(port)) => port,
            Ok(Err(out)) => {
                let _ = child.kill();
                panic!("moto_server exited before listening:\n{out}");
            }
            Err(_) => {
                let _ = child.kill();
                panic!("moto_server did not say where it listens within 30 s");
            }
        };
        let m = Moto { child, port };
        let t0 = Instant::now();
        while !m.answers() {
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "moto_server on port {port} does not answer"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        m
    }

    /// Whether `GET /` gets any HTTP answer.
    fn answers(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        if s.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .is_err()
        {
            return false;
        }
        let mut head = [0u8; 12];
        s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.")
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A config for `bucket` on this server (test credentials, quick
    /// timeouts).
    pub fn config(&self, bucket: &str) -> S3Config {
        let mut c = S3Config::new(bucket, test_credentials());
        c.endpoint = Some(self.endpoint());
        c.path_style = true;
        c.max_attempts = 2;
        c.timeout_s = 30;
        c
    }

    /// An SDK client for setting up buckets behind the store's back.
    pub fn client(&self) -> aws_sdk_s3::Client {
        let conf = aws_sdk_s3::config::Builder::new()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(self.endpoint())
            .force_path_style(true)
            .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
            .http_client(
                aws_smithy_http_client::Builder::new()
                    .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                        aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
                    ))
                    .build_https(),
            )
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }

    /// Creates a bucket, with Object Lock (and so versioning) or without.
    pub fn bucket(&self, name: &str, object_lock: bool) {
        let client = self.client();
        block_on(async {
            client
                .create_bucket()
                .bucket(name)
                .object_lock_enabled_for_bucket(object_lock)
                .send()
                .await
                .unwrap();
        });
    }

    /// Every key in a bucket.
    pub fn keys(&self, bucket: &str) -> Vec<String> {
        let client = self.client();
        block_on(async {
            let out = client
                .list_objects_v2()
                .bucket(bucket)
                .send()
                .await
                .unwrap();
            out.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_string))
                .collect()
        })
    }

    /// Writes an object straight into the bucket (no metadata, no lock).
    pub fn put_raw(&self, bucket: &str, key: &str, data: &[u8]) {
        let client = self.client();
        block_on(async {
            client
                .put_object()
                .bucket(bucket)
                .key(key)
                .body(data.to_vec().into())
                .send()
                .await
                .unwrap();
        });
    }

    /// Reads one version of an object.
    pub fn get_version(&self, bucket: &str, key: &str, version: &str) -> Vec<u8> {
        let client = self.client();
        block_on(async {
            let out = client
                .get_object()
                .bucket(bucket)
                .key(key)
                .version_id(version)
                .send()
                .await
                .unwrap();
            out.body.collect().await.unwrap().into_bytes().to_vec()
        })
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn test_credentials() -> S3Credentials {
    S3Credentials {
        access_key_id: "testing".into(),
        secret_access_key: zeroize::Zeroizing::new("testing".into()),
        session_token: None,
    }
}

pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}
