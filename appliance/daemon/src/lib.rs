//! `cofferd`: the appliance service. One tokio process that owns the store,
//! the catalog and the device backends, and offers the control API on a
//! Unix socket (`docs/formats/api.md`) to the `coffer` shell and scripts.
//!
//! Inside: the API server ([`server`]) authenticates every request with
//! `coffer-auth`, checks the caller's role and fresh MFA, and writes every
//! state change and every login to the hash-chained audit log; the
//! scheduler ([`scheduler`]) turns the asset register's profiles into queued
//! jobs at their calendar times, catching up once after downtime, and
//! watches every asset's RPO; the job queue ([`jobs`]) runs backups on
//! blocking threads within the configured limits, retries failures with
//! backoff, cancels on request and checkpoints on shutdown.
//!
//! Like mini-redis, the service takes its configuration, its clock and its
//! shutdown signal as arguments ([`start`]), so tests run it in-process on a
//! temporary socket with a manual clock.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod calendar;
pub mod clock;
pub mod config;
pub mod health;
pub mod joblog;
pub mod plan;
pub mod register;
pub mod screens;
pub mod tuning;

mod api;
mod compliance;
mod drill;
mod jobs;
mod maintenance;
mod media_api;
mod metrics;
mod notify;
mod offsite;
mod panel;
mod replication;
mod report;
mod s3;
mod scheduler;
mod server;
mod tape;
mod update;
mod verify;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use anyhow::{Context, Result, anyhow, bail};
use coffer_auth::{Auth, AuthPolicy};
use coffer_catalog::Catalog;
use coffer_keys::Passphrase;
use coffer_store::{BlobStore, DirStore, InitOptions, Repo};
use coffer_types::api::Source;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

pub use clock::{Clock, ManualClock, SystemClock};

/// The alert a wall clock that disagrees with the trusted clock raises.
pub(crate) const CLOCK_ALERT: &str = "clock";
pub use config::Config;

/// What [`start`] needs.
pub struct Options {
    /// The configuration.
    pub config: Config,
    /// Where it was read from (re-read on reload); `None` for a built-in one.
    pub config_path: Option<PathBuf>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// Argon2 cost for new password hashes; `None` for the production
    /// default. Tests lower it.
    pub password_cost: Option<coffer_auth::PasswordParams>,
}

/// The shared state of a running daemon.
pub(crate) struct Inner {
    pub(crate) config: RwLock<Config>,
    pub(crate) config_path: Option<PathBuf>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) catalog: Mutex<Catalog>,
    pub(crate) catalog_path: PathBuf,
    pub(crate) repo: Arc<Repo>,
    /// The disk pool the store's objects live on, when they do.
    pub(crate) pool: Option<Arc<coffer_pool::Pool>>,
    pub(crate) auth: Auth,
    pub(crate) auditor: coffer_auth::audit::Auditor,
    pub(crate) jobs: jobs::Jobs,
    pub(crate) host: String,
    /// The image's version and running slot (`1.2.0, slot b`) on an
    /// installed appliance: read once, since only a reboot changes them.
    pub(crate) image: Option<String>,
    pub(crate) stopping: AtomicBool,
    /// Wakes the scheduler (register or profile changed, clock jumped).
    pub(crate) reschedule: Notify,
    /// The health monitor's last report.
    pub(crate) health: RwLock<Option<coffer_types::api::HealthReport>>,
    /// The front panel as the API sees it.
    pub(crate) panel: Arc<panel::PanelShared>,
    /// The codec tuning for the throughput target, once measured.
    pub(crate) tuning: RwLock<Option<coffer_accel::Tuning>>,
    /// This appliance's replication identity and endpoint.
    pub(crate) replication: replication::Replication,
    /// Queued remote restores' passphrases, by job id (memory only).
    pub(crate) restore_orders: Mutex<std::collections::HashMap<i64, replication::RestoreOrder>>,
    /// The metrics endpoint's address, once it listens.
    pub(crate) metrics_addr: std::sync::OnceLock<std::net::SocketAddr>,
}

impl Inner {
    pub(crate) fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Marks queued job `r` running, on a catalog connection of its own
    /// (long work must not hold the API's), which it returns.
    pub(crate) fn start_job(&self, r: &coffer_types::JobRecord) -> Result<Catalog> {
        let cat = Catalog::open(&self.catalog_path)?;
        cat.start_queued_job(
            r.id,
            &coffer_catalog::NewJob {
                kind: r.kind,
                asset: r.asset.clone(),
                level: None,
                scope: r.scope.clone(),
                started_ms: self.now_ms(),
                identity: r.identity.clone(),
                host: self.host.clone(),
                pid: std::process::id(),
            },
        )?;
        Ok(cat)
    }

    /// A job of `kind` asked for by `identity` from `source`, queued now by
    /// this daemon: first attempt, no asset, scope, profile or remote (the
    /// caller sets what its kind needs).
    pub(crate) fn job(
        &self,
        kind: coffer_types::JobKind,
        identity: &str,
        source: coffer_types::api::Source,
    ) -> coffer_catalog::QueuedJob {
        coffer_catalog::QueuedJob {
            kind,
            asset: None,
            level: None,
            scope: coffer_types::Scope::default(),
            identity: identity.to_string(),
            host: self.host.clone(),
            pid: std::process::id(),
            source,
            profile: None,
            attempt: 1,
            retry_of: None,
            queued_ms: self.now_ms(),
            not_before_ms: None,
            remote: None,
        }
    }

    /// Observes the clocks (persisting the trusted clock's record) and
    /// raises or clears the `clock` alert.
    pub(crate) fn observe_clock(
        &self,
        cat: &Catalog,
    ) -> Result<coffer_engine::protect::Observation> {
        let now = self.now_ms();
        let o = coffer_engine::protect::trusted_now(cat, now, &self.clock.boot())?;
        match o.jump {
            Some(j) => self.system_alert(cat, CLOCK_ALERT, "clock", &j.to_string(), now)?,
            None => {
                if cat.clear_alert(CLOCK_ALERT, "clock", now)? {
                    self.audit(
                        cat,
                        "system",
                        Source::System,
                        "alert.clear",
                        "clock",
                        CLOCK_ALERT,
                        "the wall clock agrees with the trusted clock again",
                    );
                }
            }
        }
        Ok(o)
    }

    /// The catalog connection for quick reads and writes. Long work (a
    /// backup) opens its own connection.
    pub(crate) fn catalog(&self) -> Result<MutexGuard<'_, Catalog>> {
        self.catalog
            .lock()
            .map_err(|_| anyhow!("internal error: the catalog lock was poisoned"))
    }

    /// The codec tuning, if a target is set and it has been measured.
    pub(crate) fn tuning(&self) -> Option<coffer_accel::Tuning> {
        match self.tuning.read() {
            Ok(t) => t.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// The front panel sensor's last reading, and whether the panel is
    /// the simulated one.
    pub(crate) fn panel_temperature(&self) -> Option<(f32, bool)> {
        self.panel.temperature()
    }

    pub(crate) fn config(&self) -> Config {
        match self.config.read() {
            Ok(c) => c.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    pub(crate) fn job_log_dir(&self) -> PathBuf {
        self.config().daemon.state_dir.join("jobs")
    }

    /// Appends to the audit log. A failure to audit is logged loudly; the
    /// action it records has already happened or been refused.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn audit(
        &self,
        cat: &Catalog,
        identity: &str,
        source: Source,
        action: &str,
        target: &str,
        result: &str,
        detail: &str,
    ) {
        let rec = coffer_catalog::NewAuditRecord {
            time_ms: self.now_ms(),
            identity: identity.to_string(),
            source,
            action: action.to_string(),
            target: target.to_string(),
            result: result.to_string(),
            detail: detail.to_string(),
        };
        if let Err(e) = self.auditor.append(cat, rec) {
            tracing::error!(error = %e, action, target, "could not write the audit log");
        }
    }

    /// Raises an alert of `kind` about `subject` raised by the system; the
    /// first time (not while it stays open) it is logged and audited.
    pub(crate) fn system_alert(
        &self,
        cat: &Catalog,
        kind: &str,
        subject: &str,
        message: &str,
        now: i64,
    ) -> Result<()> {
        if cat.raise_alert(kind, subject, message, now)?.new {
            tracing::warn!(kind, subject, "{message}");
            self.audit(
                cat,
                "system",
                Source::System,
                "alert.raise",
                subject,
                kind,
                message,
            );
        }
        Ok(())
    }

    /// Re-reads the configuration file; the running one stays if it fails.
    pub(crate) fn reload(&self) -> Result<()> {
        let Some(path) = &self.config_path else {
            bail!("this daemon runs on built-in defaults; there is no file to reload");
        };
        let new = Config::load(path)?;
        let old = self.config();
        if new.store != old.store || new.daemon.socket != old.daemon.socket {
            tracing::warn!(
                "store and socket changes take effect at the next start; the rest is applied now"
            );
        }
        self.auth.set_policy(auth_policy(&new, None));
        match self.config.write() {
            Ok(mut c) => *c = new,
            Err(p) => *p.into_inner() = new,
        }
        self.reschedule.notify_one();
        self.jobs.wake.notify_one();
        tracing::info!(config = %path.display(), "configuration reloaded");
        Ok(())
    }
}

fn auth_policy(c: &Config, cost: Option<coffer_auth::PasswordParams>) -> AuthPolicy {
    let mut p = AuthPolicy {
        session_idle: c.auth.session_idle,
        fresh_mfa: c.auth.fresh_mfa,
        lockout_after: c.auth.lockout_after,
        lockout_for: c.auth.lockout_for,
        ..AuthPolicy::default()
    };
    if let Some(cost) = cost {
        p.password = cost;
    }
    p
}

/// A running daemon.
pub struct Running {
    inner: Arc<Inner>,
    socket: PathBuf,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    panel: Option<panel::PanelThread>,
    endpoint: Option<std::thread::JoinHandle<()>>,
    endpoint_stop: Arc<AtomicBool>,
}

impl Running {
    /// The control socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The simulated front panel's hardware, when that is the panel in use
    /// (the development shell and tests press its buttons and take its
    /// devices away).
    pub fn simulated_panel(&self) -> Option<coffer_panel::SimPanel> {
        self.inner.panel.simulated()
    }

    /// The metrics endpoint's address, when it listens.
    pub fn metrics_address(&self) -> Option<std::net::SocketAddr> {
        self.inner.metrics_addr.get().copied()
    }

    /// The replication endpoint's address, when it listens.
    pub fn replication_address(&self) -> Option<std::net::SocketAddr> {
        self.inner.replication.listening.get().copied()
    }

    /// This appliance's replication certificate fingerprint.
    pub fn replication_fingerprint(&self) -> String {
        self.inner.replication.identity.fingerprint().to_string()
    }

    /// Re-reads the configuration file (what SIGHUP does).
    pub fn reload(&self) -> Result<()> {
        self.inner.reload()
    }

    /// Stops: no new connections or jobs; running jobs are asked to stop,
    /// checkpoint what they stored and end `interrupted` (retried at the
    /// next start); queued jobs stay queued. Waits for them.
    pub async fn shutdown(mut self) -> Result<()> {
        self.inner.stopping.store(true, Ordering::SeqCst);
        let _ = self.stop.send(true);
        self.inner.jobs.stop_all();
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
        self.inner.jobs.wait_idle().await;
        self.endpoint_stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.endpoint.take() {
            let _ = tokio::task::spawn_blocking(move || h.join()).await;
        }
        if let Some(p) = self.panel.take() {
            let _ = tokio::task::spawn_blocking(move || p.stop()).await;
        }
        let cat = self.inner.catalog()?;
        self.inner
            .audit(&cat, "system", Source::System, "daemon.stop", "", "ok", "");
        drop(cat);
        let _ = std::fs::remove_file(&self.socket);
        tracing::info!("cofferd stopped");
        Ok(())
    }
}

/// Starts the daemon: opens (in development, creates) the store, reconciles
/// the job log after a crash, re-queues interrupted jobs, binds the socket
/// and starts the server, the scheduler and the job runner.
pub async fn start(opts: Options) -> Result<Running> {
    let config = opts.config;
    let state = &config.daemon.state_dir;
    create_private_dir(state)?;
    let repo = tokio::task::spawn_blocking({
        let config = config.clone();
        move || open_store(&config)
    })
    .await
    .context("opening the store")??;
    let (repo, pool) = repo;
    let repo = Arc::new(repo);
    let catalog_path = config.store.path.join("catalog.db");
    let catalog = Catalog::open(&catalog_path)?;
    let image = config.update.layout().ok().and_then(|_| {
        let v = config.update.version().ok()?;
        let slot = config.update.running().ok()?;
        Some(format!("{v}, slot {}", slot.name()))
    });
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "unknown".into());
    let anchor = state.join("audit.anchor");
    if !config.daemon.development {
        protect_anchor(&anchor);
    }
    // A panel that cannot be opened must not stop backups: the service runs
    // without it, and says so in the log and as an alert.
    let (panel_shared, panel_device, panel_error) = match panel::open(&config.panel) {
        Ok((shared, device)) => (shared, device, None),
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "the front panel cannot be opened; running without it");
            let shared = panel::without_device(config.panel.backend);
            (shared, None, Some(format!("{e:#}")))
        }
    };
    let identity = tokio::task::spawn_blocking({
        let (state, repo, host) = (state.clone(), repo.clone(), host.clone());
        move || replication::load_identity(&state, repo.master(), &host)
    })
    .await
    .context("loading the replication identity")??;
    let inner = Arc::new(Inner {
        replication: replication::Replication {
            identity,
            listening: std::sync::OnceLock::new(),
        },
        restore_orders: Mutex::new(std::collections::HashMap::new()),
        metrics_addr: std::sync::OnceLock::new(),
        auth: Auth::new(auth_policy(&config, opts.password_cost))?,
        auditor: coffer_auth::audit::Auditor::new(Some(anchor)),
        config: RwLock::new(config.clone()),
        config_path: opts.config_path,
        clock: opts.clock,
        catalog: Mutex::new(catalog),
        catalog_path,
        repo,
        pool,
        jobs: jobs::Jobs::default(),
        host,
        image,
        stopping: AtomicBool::new(false),
        reschedule: Notify::new(),
        health: RwLock::new(None),
        panel: panel_shared,
        tuning: RwLock::new(None),
    });
    {
        let cat = inner.catalog()?;
        let marked = cat.mark_interrupted(coffer_engine::pid_alive, &inner.host, inner.now_ms())?;
        inner.audit(
            &cat,
            "system",
            Source::System,
            "daemon.start",
            "",
            "ok",
            &format!(
                "cofferd {} on {}; {marked} job(s) found interrupted",
                env!("CARGO_PKG_VERSION"),
                inner.host
            ),
        );
        if config.daemon.development {
            seed_development(&inner, &cat)?;
        }
        let now = inner.now_ms();
        match &panel_error {
            Some(e) => {
                cat.raise_alert(panel::ALERT_KIND, "open", e, now)?;
            }
            None => {
                cat.clear_alert(panel::ALERT_KIND, "open", now)?;
            }
        }
        // Without a panel thread nobody would clear the component faults an
        // earlier run left open (the thread clears them at its first tick).
        if panel_device.is_none() {
            for a in cat.alerts(false)? {
                if a.kind == panel::ALERT_KIND && a.subject != "open" {
                    cat.clear_alert(&a.kind, &a.subject, now)?;
                }
            }
        }
        drop(cat);
        jobs::requeue_interrupted(&inner)?;
        drill::reap(&inner)?;
    }
    let listener = server::bind(&config)?;
    let (stop, stop_rx) = watch::channel(false);
    // With a throughput target the codec is tuned before the first job
    // starts: measured on an idle machine (once; then cached), and no job
    // runs at a level the tuning would not have chosen.
    let queue = {
        let (inner, stop_rx) = (inner.clone(), stop_rx.clone());
        async move {
            if inner.config().store.target_throughput_mb_s > 0 {
                tune(inner.clone()).await;
            }
            jobs::run_queue(inner, stop_rx).await;
        }
    };
    let metrics_listener = metrics::bind(&inner).await?;
    let mut tasks = vec![
        tokio::spawn(server::serve(listener, inner.clone(), stop_rx.clone())),
        tokio::spawn(queue),
        tokio::spawn(scheduler::run(inner.clone(), stop_rx.clone())),
        tokio::spawn(health::run(inner.clone(), stop_rx.clone())),
        tokio::spawn(notify::run(inner.clone(), stop_rx.clone())),
    ];
    if let Some(l) = metrics_listener {
        tasks.push(tokio::spawn(metrics::serve_on(l, inner.clone(), stop_rx)));
    }
    let panel = match panel_device {
        Some(d) => Some(panel::spawn(inner.clone(), d)?),
        None => None,
    };
    let endpoint_stop = Arc::new(AtomicBool::new(false));
    let endpoint = replication::start_endpoint(inner.clone(), endpoint_stop.clone())?;
    tracing::info!(socket = %config.daemon.socket.display(), store = %config.store.path.display(), "cofferd started");
    Ok(Running {
        inner,
        socket: config.daemon.socket.clone(),
        stop,
        tasks,
        panel,
        endpoint,
        endpoint_stop,
    })
}

/// Measures (or reads the cached measurement of) the codec pipeline and
/// sets the tuning for the configured throughput target.
async fn tune(inner: Arc<Inner>) {
    let config = inner.config();
    let target = f64::from(config.store.target_throughput_mb_s);
    let state = config.daemon.state_dir.clone();
    let threads = config.store.threads;
    match tokio::task::spawn_blocking(move || {
        tuning::load_or_measure(&state, target, threads, tuning::SECONDS_PER_TEST)
    })
    .await
    {
        Ok(Ok((_, t, fresh))) => {
            tracing::info!(
                zstd_level = t.zstd_level,
                threads = t.threads,
                expected_mb_s = t.expected_mb_s,
                target_mb_s = target,
                measured = fresh,
                "codec tuned: {}",
                t.reason
            );
            if !t.meets_target {
                tracing::warn!("{}", t.reason);
            }
            match inner.tuning.write() {
                Ok(mut g) => *g = Some(t),
                Err(p) => *p.into_inner() = Some(t),
            }
        }
        Ok(Err(e)) => {
            tracing::error!(error = %format!("{e:#}"), "codec tuning failed; backups use the store's level")
        }
        Err(e) => {
            tracing::error!(error = %e, "codec tuning panicked; backups use the store's level")
        }
    }
}

/// Runs until `shutdown` completes, reloading on SIGHUP (the binary's loop).
pub async fn run_until(
    opts: Options,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<()> {
    let running = start(opts).await?;
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("installing the SIGHUP handler")?;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            _ = hup.recv() => {
                if let Err(e) = running.reload() {
                    tracing::error!(error = %format!("{e:#}"), "reload failed; the running configuration stays");
                }
            }
        }
    }
    tracing::info!("shutting down: checkpointing running jobs");
    running.shutdown().await
}

/// On a development appliance's first start: a sample profile and an asset
/// using it, so the scheduler has something to do. Backs up
/// `/usr/share/doc` where it exists, else a small sample tree under the
/// state directory.
fn seed_development(inner: &Inner, cat: &Catalog) -> Result<()> {
    use coffer_types::api::{Asset, Criticality, Duration, Profile, Retention, Schedules};
    if !cat.profiles()?.is_empty() || !cat.register()?.is_empty() {
        return Ok(());
    }
    let now = inner.now_ms();
    let profile = Profile {
        name: "standard".into(),
        schedules: Schedules {
            full: Some("Sun 01:00".into()),
            differential: Some("Mon..Sat 01:00".into()),
            incremental: Some("*-*-* 00/4:30".into()),
        },
        retention: Retention {
            keep_daily: Some(14),
            keep_weekly: Some(8),
            keep_monthly: Some(12),
            ..Retention::default()
        },
        target: "default".into(),
        tape_pool: None,
        replicate_to: Vec::new(),
        replicate_schedule: None,
        retries: 2,
        retry_backoff: Duration(300),
        drill: None,
    };
    let docs = Path::new("/usr/share/doc");
    let source = if docs.is_dir() {
        docs.to_path_buf()
    } else {
        let dir = inner.config().daemon.state_dir.join("sample-data");
        std::fs::create_dir_all(dir.join("etc"))?;
        std::fs::write(
            dir.join("etc/motd"),
            "Welcome to the Coffer development appliance.\n",
        )?;
        std::fs::write(
            dir.join("README"),
            "Sample data backed up by the development profile.\n",
        )?;
        dir
    };
    let asset = Asset {
        name: "sample-docs".into(),
        owner: "IT operations".into(),
        criticality: Criticality::Medium,
        sources: vec![source.display().to_string()],
        excludes: Vec::new(),
        rpo: Duration(86_400),
        rto: Duration(4 * 3600),
        profile: Some("standard".into()),
    };
    cat.add_profile(&profile, now)?;
    cat.add_asset(&asset, now)?;
    inner.audit(
        cat,
        "system",
        Source::System,
        "dev.seed",
        "sample-docs",
        "ok",
        "development defaults: profile 'standard' and asset 'sample-docs'",
    );
    Ok(())
}

/// The development configuration under `dir`: read from `dir/cofferd.toml`
/// when it exists (so it can be edited and reloaded), else the built-in
/// development defaults, written there (with a simulated tape library in
/// `dir/vtl`, which the defaults name). Returns it with its file.
pub fn development_config(dir: &Path) -> Result<(Config, PathBuf)> {
    create_private_dir(dir)?;
    let dir = std::fs::canonicalize(dir).with_context(|| format!("resolve '{}'", dir.display()))?;
    let path = dir.join("cofferd.toml");
    if path.exists() {
        return Ok((Config::load(&path)?, path));
    }
    let config = Config::development(&dir);
    // The simulated tape library the development defaults name.
    let vtl = dir.join("vtl");
    if !vtl.exists()
        && let Err(e) =
            coffer_tape::VirtualLibrary::create(&vtl, &coffer_tape::VtlOptions::default())
    {
        tracing::warn!(path = %vtl.display(), error = %e, "cannot create the virtual tape library");
    }
    let text = format!(
        "# cofferd development configuration (every key: docs/cofferd.toml).\n\
         # Edit and send SIGHUP (or `reload` in the shell) to apply.\n\n{}",
        toml::to_string_pretty(&config).context("render the development configuration")?
    );
    std::fs::write(&path, text).with_context(|| format!("write '{}'", path.display()))?;
    Ok((config, path))
}

/// Makes the audit anchor append-only (`chattr +a`) where the filesystem
/// allows: then not even root can rewrite it without first removing the
/// attribute, which is itself a visible act. Not done in development, where
/// state lives in directories tests and operators delete.
fn protect_anchor(anchor: &Path) {
    use std::os::unix::fs::OpenOptionsExt;
    if let Err(e) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(anchor)
    {
        tracing::warn!(path = %anchor.display(), error = %e, "cannot create the audit anchor");
        return;
    }
    match std::process::Command::new("chattr")
        .arg("+a")
        .arg(anchor)
        .output()
    {
        Ok(o) if o.status.success() => {}
        Ok(o) => tracing::warn!(
            path = %anchor.display(),
            error = %String::from_utf8_lossy(&o.stderr).trim(),
            "the audit anchor could not be made append-only; it is protected by its mode only"
        ),
        Err(e) => tracing::warn!(
            path = %anchor.display(),
            error = %e,
            "chattr is not available; the audit anchor is protected by its mode only"
        ),
    }
}

fn create_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("create '{}'", dir.display()))
}

/// Opens the configured store with its passphrase file; in development, a
/// missing store is created with a fresh random passphrase. A store whose
/// directory links to a disk pool (`pool.json`) is opened on the pool: its
/// objects are erasure coded across the members, and the directory keeps
/// the catalog.
fn open_store(config: &Config) -> Result<(Repo, Option<Arc<coffer_pool::Pool>>)> {
    let dir = &config.store.path;
    let Some(pf) = &config.store.passphrase_file else {
        bail!(
            "store.passphrase_file is not set: the daemon needs the store's passphrase to run scheduled backups unattended"
        );
    };
    if let Some(link) = coffer_pool::PoolLink::read(dir)? {
        // SMART is asked at open, so a failing disk gets no new data; the
        // health monitor asks again on its own schedule.
        let pool = Arc::new(
            link.open(&coffer_pool::OpenOptions::with_smart())
                .with_context(|| {
                    format!("opening the disk pool of the store '{}'", dir.display())
                })?,
        );
        if coffer_store::StoreConfig::read(pool.as_ref() as &dyn BlobStore).is_err() {
            bail!(
                "the pool '{}' linked from '{}' holds no coffer store",
                link.name,
                dir.display()
            );
        }
        let pass = read_passphrase(pf, config.daemon.development)?;
        pool.clean_tmp(coffer_engine::pid_alive);
        let repo = Repo::open(pool.clone(), &pass)?;
        return Ok((repo, Some(pool)));
    }
    let blobs: Arc<DirStore> = Arc::new(DirStore::new(dir));
    let exists = coffer_store::StoreConfig::read(blobs.as_ref() as &dyn BlobStore).is_ok();
    if !exists {
        if !config.daemon.development {
            bail!(
                "no store at '{}': create one with `coffer --store {} init` first",
                dir.display(),
                dir.display()
            );
        }
        create_private_dir(dir)?;
        if !pf.exists() {
            let mut secret = zeroize::Zeroizing::new([0u8; 24]);
            coffer_keys::random_bytes(secret.as_mut())?;
            let text = zeroize::Zeroizing::new(hex::encode(secret.as_ref()));
            write_private(pf, text.as_bytes())?;
        }
        let pass = read_passphrase(pf, true)?;
        Repo::init(blobs.clone(), &pass, InitOptions::default())?;
        Catalog::open(&dir.join("catalog.db"))?;
        tracing::info!(store = %dir.display(), "created the development store");
    }
    let pass = read_passphrase(pf, config.daemon.development)?;
    blobs.clean_tmp(coffer_engine::pid_alive)?;
    Ok((Repo::open(blobs, &pass)?, None))
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("create '{}'", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

/// Reads a passphrase file, refusing one that others may read.
pub(crate) fn read_passphrase(path: &Path, development: bool) -> Result<Passphrase> {
    use std::os::unix::fs::PermissionsExt;
    let md = std::fs::metadata(path)
        .with_context(|| format!("read the passphrase file '{}'", path.display()))?;
    if md.permissions().mode() & 0o077 != 0 && !development {
        bail!(
            "the passphrase file '{}' may be read by others (mode {:o}); chmod 600 it",
            path.display(),
            md.permissions().mode() & 0o777
        );
    }
    let bytes = std::fs::read(path)
        .with_context(|| format!("read the passphrase file '{}'", path.display()))?;
    let first = bytes
        .split(|b| *b == b'\n')
        .next()
        .unwrap_or_default()
        .to_vec();
    let mut bytes = bytes;
    zeroize::Zeroize::zeroize(&mut bytes);
    Ok(Passphrase::new(first)?)
}
