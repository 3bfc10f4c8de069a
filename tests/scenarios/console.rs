//! The console, end to end: `cofferd` in-process with a manual clock on a
//! temporary socket, and the real `coffer` shell driven through a
//! pseudo-terminal as an operator types: bootstrap the administrator, log in
//! with a TOTP code the test computes, create a profile and an asset, let
//! the scheduler fire, and see the job succeed in the job log and in the
//! audit log.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A child on a pseudo-terminal, and everything it printed.
struct Pty {
    master: std::fs::File,
    child: Child,
    seen: String,
    from: usize,
}

impl Pty {
    #[allow(unsafe_code)]
    fn spawn(cmd: &mut Command) -> Pty {
        let p = nix::pty::openpty(None, None).unwrap();
        let slave: OwnedFd = p.slave;
        let io = |fd: &OwnedFd| Stdio::from(fd.try_clone().unwrap());
        cmd.stdin(io(&slave)).stdout(io(&slave)).stderr(io(&slave));
        let slave_fd = slave.as_raw_fd();
        // SAFETY: between fork and exec only async-signal-safe calls: a new
        // session, and the pty as its controlling terminal.
        unsafe {
            cmd.pre_exec(move || {
                nix::unistd::setsid().map_err(std::io::Error::from)?;
                if libc::ioctl(slave_fd, libc::TIOCSCTTY, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap();
        drop(slave);
        let master = std::fs::File::from(p.master);
        nix::fcntl::fcntl(
            &master,
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        )
        .unwrap();
        Pty {
            master,
            child,
            seen: String::new(),
            from: 0,
        }
    }

    /// Waits until `text` appears after what was already matched.
    fn expect(&mut self, text: &str) -> String {
        let start = Instant::now();
        loop {
            if let Some(i) = self.seen[self.from..].find(text) {
                let out = self.seen[self.from..self.from + i + text.len()].to_string();
                self.from += i + text.len();
                return out;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "timed out waiting for {text:?}; the terminal shows:\n{}",
                &self.seen[self.from..]
            );
            let mut buf = [0u8; 4096];
            match self.master.read(&mut buf) {
                Ok(0) => std::thread::sleep(Duration::from_millis(20)),
                Ok(n) => self.seen.push_str(&String::from_utf8_lossy(&buf[..n])),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Err(e) => panic!("reading the terminal: {e}; it showed:\n{}", self.seen),
            }
        }
    }

    fn send(&mut self, line: &str) {
        self.master.write_all(line.as_bytes()).unwrap();
        self.master.write_all(b"\r").unwrap();
    }
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn job_statuses(catalog: &Path) -> Vec<(String, String, String)> {
    let cat = coffer_catalog::Catalog::open(catalog).unwrap();
    cat.job_views(&Default::default())
        .unwrap()
        .into_iter()
        .map(|j| {
            (
                j.record.asset.unwrap_or_default(),
                j.record.identity,
                j.record.status.as_str().to_string(),
            )
        })
        .collect()
}

#[test]
fn an_operator_sets_up_the_appliance_from_the_console_and_the_scheduler_backs_up() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("appliance");
    let src = tmp.path().join("www");
    std::fs::create_dir_all(src.join("html")).unwrap();
    std::fs::write(src.join("html/index.html"), "<h1>hello</h1>\n").unwrap();
    std::fs::write(src.join("data.bin"), vec![3u8; 200_000]).unwrap();

    // The daemon, in-process, on a clock the test moves: now, rounded down
    // to the minute.
    let real_now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let clock = Arc::new(cofferd::ManualClock::new(real_now / 60_000 * 60_000));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (mut config, path) = cofferd::development_config(&dir).unwrap();
    // The clock jumps up to an hour to the next :15; the session must
    // outlive that (expiry has its own test in the daemon's suite).
    config.auth.session_idle = coffer_types::api::Duration(86_400);
    let socket = config.daemon.socket.clone();
    let running = rt
        .block_on(cofferd::start(cofferd::Options {
            config,
            config_path: Some(path),
            clock: clock.clone(),
            password_cost: Some(coffer_auth::PasswordParams::insecure_for_tests()),
        }))
        .unwrap();
    let catalog = dir.join("store/catalog.db");
    let code = |clock: &cofferd::ManualClock| {
        use cofferd::Clock;
        let cat = coffer_catalog::Catalog::open(&catalog).unwrap();
        let secret = cat.user("admin").unwrap().unwrap().totp_secret.clone();
        coffer_auth::totp::code_at(&secret, clock.now_ms() / 1000)
    };

    let mut sh = Pty::spawn(
        Command::new(env!("CARGO_BIN_EXE_coffer"))
            .arg("--socket")
            .arg(&socket)
            .arg("shell")
            .env("HOME", tmp.path())
            .env("TERM", "dumb")
            .env_remove("COFFER_TOKEN")
            .env_remove("COFFER_STORE"),
    );
    // First run: the administrator with MFA enrollment.
    sh.expect("user name [admin]:");
    sh.send("admin");
    sh.expect("password:");
    sh.send("correct horse battery staple");
    sh.expect("repeat password:");
    sh.send("correct horse battery staple");
    let shown = sh.expect("TOTP code:");
    assert!(
        shown.contains("otpauth://totp/"),
        "the enrollment shows the URI:\n{shown}"
    );
    assert!(
        shown.contains('▀') || shown.contains('▄'),
        "and a QR code:\n{shown}"
    );
    sh.send(&code(&clock));
    sh.expect("logged in as admin");
    sh.expect("coffer(admin@");

    // A profile and an asset, as typed.
    sh.send("profile add hourly --full 'Sun 01:00' --incremental '*-*-* *:15'");
    sh.expect("coffer(admin@");
    sh.send(&format!(
        "asset add web-01 --owner 'web team' --criticality high --source {} --rpo 1d --rto 4h --profile hourly",
        src.display()
    ));
    sh.expect("coffer(admin@");
    sh.send("asset list");
    let out = sh.expect("coffer(admin@");
    assert!(out.contains("web-01") && out.contains("web team"), "{out}");

    // The scheduler fires at the next :15 by the daemon's clock.
    use cofferd::Clock;
    let now = clock.now_ms();
    let hour = 3_600_000;
    let mut next = now / hour * hour + 15 * 60_000;
    // At least half an hour on, so the jump is always long.
    while next - now < 30 * 60_000 {
        next += hour;
    }
    clock.set(next);
    wait_for("the scheduled backup to succeed", || {
        job_statuses(&catalog)
            .iter()
            .any(|(a, who, s)| a == "web-01" && who == "scheduler" && s == "success")
    });
    sh.send("job list");
    let out = sh.expect("coffer(admin@");
    assert!(
        out.contains("web-01") && out.contains("success") && out.contains("scheduler"),
        "{out}"
    );
    sh.send("audit list --limit 100");
    let out = sh.expect("coffer(admin@");
    for needle in [
        "bootstrap",
        "login",
        "asset.add",
        "profile.add",
        "job.queue",
        "job.finish",
    ] {
        assert!(out.contains(needle), "the audit log shows {needle}:\n{out}");
    }
    sh.send("audit verify");
    let out = sh.expect("coffer(admin@");
    assert!(!out.to_lowercase().contains("damaged"), "{out}");
    sh.send("exit");
    let start = Instant::now();
    loop {
        if let Some(st) = sh.child.try_wait().unwrap() {
            assert!(st.success(), "{st:?}\n{}", sh.seen);
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the shell did not exit"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    rt.block_on(running.shutdown()).unwrap();
}
