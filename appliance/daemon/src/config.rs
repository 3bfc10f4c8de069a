//! `cofferd`'s configuration: a TOML file (`/etc/coffer/cofferd.toml` by
//! default, `--config FILE` otherwise), every key documented in
//! `docs/cofferd.toml`. Unknown keys are refused, so a typo is an error
//! naming its line, not a setting silently ignored.

use std::path::{Path, PathBuf};

use coffer_types::api::Duration;
use serde::{Deserialize, Serialize};

/// Where the configuration is read from when `--config` is not given.
pub const DEFAULT_PATH: &str = "/etc/coffer/cofferd.toml";

/// A configuration that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the configuration {}: {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The file is not valid TOML, or a key is unknown or has the wrong type.
    /// The message names the line, the column and the key.
    #[error("configuration {}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (line, column, key, what was expected).
        message: String,
    },
    /// The values parse but do not make sense together.
    #[error("configuration {}: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the key.
        message: String,
    },
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The service itself.
    #[serde(default)]
    pub daemon: DaemonConfig,
    /// The store backups go to.
    #[serde(default)]
    pub store: StoreConfig,
    /// The scheduler and the job queue.
    #[serde(default)]
    pub scheduler: SchedulerConfig,
    /// Logins, sessions and lockout.
    #[serde(default)]
    pub auth: AuthConfig,
    /// The system health monitor's thresholds.
    #[serde(default)]
    pub health: HealthConfig,
    /// The front panel.
    #[serde(default)]
    pub panel: PanelConfig,
    /// Offsite replication.
    #[serde(default)]
    pub replication: ReplicationConfig,
    /// The tape library and the nightly media rotation jobs.
    #[serde(default)]
    pub tape: TapeConfig,
    /// Scheduled verification of the store and of tape media sets.
    #[serde(default)]
    pub verify: VerifyConfig,
    /// The Prometheus metrics endpoint.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// Notifications of alerts by email and webhook.
    #[serde(default)]
    pub notify: NotifyConfig,
    /// Where the appliance image keeps its slot layout, version and
    /// trusted update keys (the image's defaults; tests point elsewhere).
    #[serde(default)]
    pub update: coffer_image::system::System,
}

/// `[notify]`: where alerts are sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    /// Only alerts of these kinds (`job-failed`, `rpo`, `drill-failed`,
    /// `health-disk`, `media-request`, …); empty: every alert.
    pub kinds: Vec<String>,
    /// Wait between attempts while a target fails.
    pub retry_every: Duration,
    /// After failing this long, a `notify-failed` alert is raised on the
    /// console (attempts go on).
    pub alert_after: Duration,
    /// Email targets.
    pub email: Vec<EmailTarget>,
    /// Webhook targets.
    pub webhook: Vec<WebhookTarget>,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            kinds: Vec::new(),
            retry_every: Duration(60),
            alert_after: Duration(600),
            email: Vec::new(),
            webhook: Vec::new(),
        }
    }
}

/// `[[notify.email]]`: SMTP, always over TLS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailTarget {
    /// A name for logs, alerts and the delivery state.
    pub name: String,
    /// The mail server, `host:port`.
    pub server: String,
    /// `starttls` (port 587 or 25) or `implicit` (port 465). There is no
    /// plaintext mode.
    #[serde(default = "default_starttls")]
    pub tls: String,
    /// The sender address.
    pub from: String,
    /// The recipients.
    pub to: Vec<String>,
    /// The SMTP user (AUTH PLAIN, inside TLS); absent: no authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// A file holding the password (mode 0600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// The CAs the server's certificate must chain to (PEM).
    #[serde(default = "default_ca_file")]
    pub ca_file: PathBuf,
}

/// `[[notify.webhook]]`: a JSON POST over HTTPS, signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookTarget {
    /// A name for logs, alerts and the delivery state.
    pub name: String,
    /// `https://host[:port]/path`.
    pub url: String,
    /// A file holding the shared secret: each body is signed with
    /// HMAC-SHA256 in `X-Coffer-Signature: sha256=<hex>`.
    pub secret_file: PathBuf,
    /// The CAs the receiver's certificate must chain to (PEM).
    #[serde(default = "default_ca_file")]
    pub ca_file: PathBuf,
}

fn default_starttls() -> String {
    "starttls".into()
}

fn default_ca_file() -> PathBuf {
    PathBuf::from("/etc/ssl/certs/ca-certificates.crt")
}

/// `[metrics]`: the Prometheus text endpoint (`GET /metrics`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// A loopback address and port, e.g. `127.0.0.1:9473`; absent: off.
    /// Requests need an API token holding `status.read`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
}

/// `[verify]`: when the store, the disk pool, the tape copies and the
/// remotes' copies are read back in full.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VerifyConfig {
    /// A calendar for `verify --read-data` of the store (every container
    /// read and authenticated, damage mapped to files); absent: never.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
    /// A calendar for reading back the newest media set of every media
    /// pool through `tape.library`; absent: never.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tape: Option<String>,
    /// A calendar for scrubbing the disk pool the store lives on (every
    /// shard read and checked, damage rewritten from parity); absent:
    /// never.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    /// A calendar for reading back every remote's copy (an appliance's
    /// pulled whole into the state directory, a bucket read in place) and
    /// authenticating it with the store's keys; absent: never.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
}

/// `[tape]`: the library the service writes media rotation jobs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TapeConfig {
    /// The library: `{ backend = "virtual", path = "…" }` (a virtual tape
    /// library directory) or `{ backend = "linux", changer = "/dev/sgN",
    /// drives = ["/dev/sgM"] }`. Absent: no tape jobs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub library: Option<coffer_tape::LibraryConfig>,
    /// The drive jobs write with (the changer's drive order, from 0).
    pub drive: u16,
    /// How long a job waits for its cartridges to be brought into the
    /// library before it fails and escalates.
    pub wait_for_media: Duration,
    /// How often a waiting job looks at the library again.
    pub poll_every: Duration,
    /// The nightly jobs, one per media rotation pool.
    pub jobs: Vec<TapeJob>,
}

impl Default for TapeConfig {
    fn default() -> Self {
        TapeConfig {
            library: None,
            drive: 0,
            wait_for_media: Duration(4 * 3600),
            poll_every: Duration(60),
            jobs: Vec::new(),
        }
    }
}

/// `[[tape.jobs]]`: pool `pool`'s job, every day its rotation plans one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TapeJob {
    /// The media rotation pool (`coffer media pool add`).
    pub pool: String,
    /// The time of day it is queued, HH:MM in `daemon.timezone`.
    pub at: String,
    /// Whose snapshots it copies: the newest of every asset under these
    /// profiles; empty: of every registered asset.
    #[serde(default)]
    pub profiles: Vec<String>,
}

/// `[replication]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReplicationConfig {
    /// The replication endpoint's TCP address (`0.0.0.0:7443`); absent:
    /// this appliance takes no pushes and serves no pulls (it can still
    /// replicate out).
    pub listen: Option<String>,
    /// Where other appliances' stores are kept (ciphertext only), one
    /// directory per store id.
    pub replicas_dir: PathBuf,
    /// Queue a replication to each of a profile's remotes after each good
    /// backup of an asset with that profile.
    pub after_backup: bool,
    /// Bandwidth limit of every replication, MB/s (0: none); a remote's own
    /// limit and a window's apply too, the lowest wins.
    pub bandwidth_mb_s: u32,
    /// Bandwidth limits by time of day (in `daemon.timezone`), e.g. office
    /// hours; evaluated when each replication job starts and every 30
    /// seconds while it runs.
    pub windows: Vec<BandwidthWindow>,
    /// How long connecting and the TLS handshake may take, and the longest
    /// silence on a link before it counts as cut.
    pub timeout: Duration,
}

/// A bandwidth limit for part of each day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BandwidthWindow {
    /// Start, `HH:MM`.
    pub from: String,
    /// End, `HH:MM` (before `from`: the window spans midnight).
    pub to: String,
    /// The limit inside the window, MB/s.
    pub mb_s: u32,
}

impl BandwidthWindow {
    pub(crate) fn minutes(s: &str) -> Option<u32> {
        let (h, m) = s.split_once(':')?;
        let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
        (h < 24 && m < 60 && s.len() == 5).then_some(h * 60 + m)
    }

    /// Whether minute-of-day `m` falls inside the window.
    pub fn contains(&self, m: u32) -> bool {
        match (Self::minutes(&self.from), Self::minutes(&self.to)) {
            (Some(a), Some(b)) if a <= b => (a..b).contains(&m),
            (Some(a), Some(b)) => m >= a || m < b,
            _ => false,
        }
    }
}

impl ReplicationConfig {
    /// The limit in bytes per second (0: none) at minute-of-day `minute`
    /// for a remote limited to `remote_mb_s`: the lowest non-zero of the
    /// global limit, the remote's, and any window's that is open.
    pub fn rate_at(&self, minute: u32, remote_mb_s: u32) -> u64 {
        let windows = self
            .windows
            .iter()
            .filter(|w| w.contains(minute))
            .map(|w| w.mb_s);
        [self.bandwidth_mb_s, remote_mb_s]
            .into_iter()
            .chain(windows)
            .filter(|&v| v > 0)
            .min()
            .map_or(0, |v| u64::from(v) * 1_000_000)
    }
}

impl Default for ReplicationConfig {
    fn default() -> Self {
        ReplicationConfig {
            listen: None,
            replicas_dir: PathBuf::from("/var/lib/coffer/replicas"),
            after_backup: true,
            bandwidth_mb_s: 0,
            windows: Vec::new(),
            timeout: Duration(30),
        }
    }
}

/// `[daemon]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DaemonConfig {
    /// Where the daemon keeps its state (job logs, the audit anchor).
    pub state_dir: PathBuf,
    /// The control socket.
    pub socket: PathBuf,
    /// The group allowed to connect to the socket (mode 0660); without one
    /// the socket is 0600, for root only.
    pub socket_group: Option<String>,
    /// Time zone for calendar expressions without their own (IANA name).
    pub timezone: String,
    /// Development defaults: simulated hardware, state under one directory.
    pub development: bool,
    /// Log level (error, warn, info, debug, trace) or a tracing filter.
    pub log: String,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            state_dir: PathBuf::from("/var/lib/coffer"),
            socket: PathBuf::from("/run/coffer/control.sock"),
            socket_group: None,
            timezone: "UTC".into(),
            development: false,
            log: "info".into(),
        }
    }
}

/// `[store]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// The store directory (it holds the catalog; its objects may be on a
    /// disk pool).
    pub path: PathBuf,
    /// A root-only file holding the store's passphrase, so scheduled backups
    /// run unattended after a reboot. The master key itself stays wrapped on
    /// disk; the passphrase unwraps it into memory only.
    pub passphrase_file: Option<PathBuf>,
    /// Reader and packer threads per backup (0 = one per core, or what
    /// `target_throughput_mb_s` needs).
    pub threads: usize,
    /// The backup throughput to plan for, in MB/s of new data; 0 = off.
    /// When set, the daemon benchmarks the codec pipeline at start (as
    /// `coffer benchmark` does) and picks the highest zstd level, and the
    /// fewest threads, that still reach it.
    pub target_throughput_mb_s: u32,
    /// Start a new data key generation this often (new data under a new
    /// key; `0s` = never). Checked at each monitor pass.
    pub rotate_data_key_every: Duration,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            path: PathBuf::from("/var/lib/coffer/store"),
            passphrase_file: None,
            threads: 0,
            target_throughput_mb_s: 0,
            rotate_data_key_every: Duration(90 * 86_400),
        }
    }
}

/// `[scheduler]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SchedulerConfig {
    /// Whether schedules fire (off: only jobs started by hand run).
    pub enabled: bool,
    /// Jobs running at once against the store.
    pub max_concurrent_jobs: u32,
    /// How often the RPO monitor looks at every asset.
    pub rpo_check_every: Duration,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            enabled: true,
            max_concurrent_jobs: 2,
            rpo_check_every: Duration(60),
        }
    }
}

/// `[auth]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// A session unused this long ends.
    pub session_idle: Duration,
    /// How long a TOTP code counts as fresh MFA for destructive actions.
    pub fresh_mfa: Duration,
    /// Failed logins in a row before the account locks.
    pub lockout_after: u32,
    /// How long a lockout lasts.
    pub lockout_for: Duration,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            session_idle: Duration(900),
            fresh_mfa: Duration(300),
            lockout_after: 5,
            lockout_for: Duration(900),
        }
    }
}

/// `[health]`: when the system health monitor raises an alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    /// How often the monitor reads the system's figures.
    pub check_every: Duration,
    /// A sensor at or above this many °C: DEGRADED.
    pub temperature_warn_c: f32,
    /// A sensor at or above this many °C (or its own critical mark): FAULT.
    pub temperature_crit_c: f32,
    /// A filesystem holding the store or the state this full (percent, as
    /// `df` counts it): DEGRADED.
    pub disk_warn_percent: f64,
    /// … this full: FAULT (backups are about to fail).
    pub disk_crit_percent: f64,
    /// Memory in use at or above this percent: DEGRADED.
    pub memory_warn_percent: f64,
    /// The one-minute load average per core at or above this: DEGRADED.
    pub load_warn_per_core: f64,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            check_every: Duration(30),
            temperature_warn_c: 75.0,
            temperature_crit_c: 90.0,
            disk_warn_percent: 85.0,
            disk_crit_percent: 95.0,
            memory_warn_percent: 90.0,
            load_warn_per_core: 2.0,
        }
    }
}

/// Which front panel the daemon drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PanelBackend {
    /// The simulated panel (`coffer panel show` draws it).
    Simulated,
    /// A real panel: the LCD and the sensor on an I2C bus, LEDs and buttons
    /// on GPIO lines (the Linux character devices). Needs cofferd built
    /// with the `linux-panel` feature.
    Linux,
    /// No panel.
    None,
}

/// `[panel]`: the front panel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PanelConfig {
    /// `simulated`, `linux` or `none`.
    pub backend: PanelBackend,
    /// The I2C bus of the LCD backpack and the temperature sensor.
    pub i2c_bus: PathBuf,
    /// The LCD's PCF8574 backpack address.
    pub lcd_address: u8,
    /// The LM75 sensor's address.
    pub sensor_address: u8,
    /// The GPIO chip of the LEDs and buttons.
    pub gpio_chip: PathBuf,
    /// GPIO lines of the LEDs: power, activity, fault, tape.
    pub led_lines: [u32; 4],
    /// GPIO lines of the buttons: up, down, ok, back.
    pub button_lines: [u32; 4],
    /// LEDs light when their line is low.
    pub leds_active_low: bool,
    /// Buttons pull their line low when pressed (pull-ups).
    pub buttons_active_low: bool,
    /// With no button pressed this long, the panel returns to its first
    /// screen.
    pub idle_return: Duration,
    /// Whether the OK button may acknowledge an alert (a person at the rack
    /// is trusted that far; the acknowledgement is audited as `front-panel`).
    pub ack_alerts: bool,
}

impl Default for PanelConfig {
    fn default() -> Self {
        PanelConfig {
            backend: PanelBackend::Simulated,
            i2c_bus: PathBuf::from("/dev/i2c-1"),
            lcd_address: 0x27,
            sensor_address: 0x48,
            gpio_chip: PathBuf::from("/dev/gpiochip0"),
            led_lines: [17, 27, 22, 23],
            button_lines: [5, 6, 13, 19],
            leds_active_low: false,
            buttons_active_low: true,
            idle_return: Duration(120),
            ack_alerts: true,
        }
    }
}

impl Config {
    /// Reads and checks the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        Config::parse(&text, path)
    }

    /// Parses and checks `text` (read from `path`, named in errors).
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        config.check(path)?;
        Ok(config)
    }

    /// The development defaults: everything under `dir` (state, store,
    /// socket), a passphrase file beside the store, schedules on.
    pub fn development(dir: &Path) -> Config {
        Config {
            daemon: DaemonConfig {
                state_dir: dir.join("state"),
                socket: dir.join("control.sock"),
                socket_group: None,
                timezone: "UTC".into(),
                development: true,
                log: "info".into(),
            },
            store: StoreConfig {
                path: dir.join("store"),
                passphrase_file: Some(dir.join("passphrase")),
                threads: 0,
                target_throughput_mb_s: 0,
                rotate_data_key_every: Duration(90 * 86_400),
            },
            scheduler: SchedulerConfig::default(),
            auth: AuthConfig::default(),
            health: HealthConfig::default(),
            panel: PanelConfig::default(),
            replication: ReplicationConfig {
                replicas_dir: dir.join("replicas"),
                ..ReplicationConfig::default()
            },
            tape: TapeConfig {
                library: Some(coffer_tape::LibraryConfig::Virtual {
                    path: dir.join("vtl"),
                }),
                ..TapeConfig::default()
            },
            verify: VerifyConfig::default(),
            metrics: MetricsConfig::default(),
            notify: NotifyConfig::default(),
            update: coffer_image::system::System::default(),
        }
    }

    fn check(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        if self.scheduler.max_concurrent_jobs == 0 {
            return Err(invalid(
                "scheduler.max_concurrent_jobs must be at least 1".into(),
            ));
        }
        if self.auth.lockout_after == 0 {
            return Err(invalid("auth.lockout_after must be at least 1".into()));
        }
        if self.auth.session_idle.secs() < 60 {
            return Err(invalid("auth.session_idle must be at least 1m".into()));
        }
        let r = &self.replication;
        if !r.replicas_dir.is_absolute() {
            return Err(invalid(format!(
                "replication.replicas_dir must be an absolute path, not {}",
                r.replicas_dir.display()
            )));
        }
        if let Some(l) = &r.listen
            && l.parse::<std::net::SocketAddr>().is_err()
        {
            return Err(invalid(format!(
                "replication.listen must be an address and port such as 0.0.0.0:7443, not '{l}'"
            )));
        }
        if r.timeout.secs() < 1 {
            return Err(invalid("replication.timeout must be at least 1s".into()));
        }
        for (i, w) in r.windows.iter().enumerate() {
            for (key, v) in [("from", &w.from), ("to", &w.to)] {
                if BandwidthWindow::minutes(v).is_none() {
                    return Err(invalid(format!(
                        "replication.windows[{i}].{key} must be a time of day HH:MM, not '{v}'"
                    )));
                }
            }
            if w.mb_s == 0 {
                return Err(invalid(format!(
                    "replication.windows[{i}].mb_s must be at least 1"
                )));
            }
        }
        let h = &self.health;
        if h.check_every.secs() < 1 {
            return Err(invalid("health.check_every must be at least 1s".into()));
        }
        if h.temperature_warn_c.partial_cmp(&h.temperature_crit_c) != Some(std::cmp::Ordering::Less)
        {
            return Err(invalid(format!(
                "health.temperature_warn_c ({}) must be below health.temperature_crit_c ({})",
                h.temperature_warn_c, h.temperature_crit_c
            )));
        }
        for (key, v) in [
            ("health.disk_warn_percent", h.disk_warn_percent),
            ("health.disk_crit_percent", h.disk_crit_percent),
            ("health.memory_warn_percent", h.memory_warn_percent),
        ] {
            if !(v > 0.0 && v <= 100.0) {
                return Err(invalid(format!(
                    "{key} must be a percentage above 0 and at most 100, not {v}"
                )));
            }
        }
        if h.disk_warn_percent >= h.disk_crit_percent {
            return Err(invalid(
                "health.disk_warn_percent must be below health.disk_crit_percent".into(),
            ));
        }
        if h.load_warn_per_core.is_nan() || h.load_warn_per_core <= 0.0 {
            return Err(invalid("health.load_warn_per_core must be above 0".into()));
        }
        if self.panel.backend == PanelBackend::Linux {
            for (key, p) in [
                ("panel.i2c_bus", &self.panel.i2c_bus),
                ("panel.gpio_chip", &self.panel.gpio_chip),
            ] {
                if !p.is_absolute() {
                    return Err(invalid(format!(
                        "{key} must be an absolute path, not '{}'",
                        p.display()
                    )));
                }
            }
        }
        if self.panel.idle_return.secs() < 5 {
            return Err(invalid("panel.idle_return must be at least 5s".into()));
        }
        for (key, v) in [
            ("verify.store", &self.verify.store),
            ("verify.tape", &self.verify.tape),
            ("verify.pool", &self.verify.pool),
            ("verify.remote", &self.verify.remote),
        ] {
            if let Some(expr) = v
                && let Err(e) = crate::calendar::Calendar::parse(expr)
            {
                return Err(invalid(format!("{key}: '{expr}' is not a calendar ({e})")));
            }
        }
        if self.verify.tape.is_some() && self.tape.library.is_none() {
            return Err(invalid(
                "verify.tape needs a library: set tape.library".into(),
            ));
        }
        if let Some(l) = &self.metrics.listen {
            match l.parse::<std::net::SocketAddr>() {
                Ok(a) if a.ip().is_loopback() => {}
                Ok(_) => {
                    return Err(invalid(format!(
                        "metrics.listen must be a loopback address (127.0.0.1 or ::1), not '{l}': the endpoint is not encrypted, so it never leaves the appliance"
                    )));
                }
                Err(_) => {
                    return Err(invalid(format!(
                        "metrics.listen must be an address and port such as 127.0.0.1:9473, not '{l}'"
                    )));
                }
            }
        }
        let n = &self.notify;
        if n.retry_every.secs() < 1 {
            return Err(invalid("notify.retry_every must be at least 1s".into()));
        }
        let mut names: Vec<&str> = Vec::new();
        for (i, e) in n.email.iter().enumerate() {
            if !matches!(e.tls.as_str(), "starttls" | "implicit") {
                return Err(invalid(format!(
                    "notify.email[{i}].tls must be starttls or implicit (mail is never sent in plaintext), not '{}'",
                    e.tls
                )));
            }
            if e.server
                .rsplit_once(':')
                .is_none_or(|(_, p)| p.parse::<u16>().is_err())
            {
                return Err(invalid(format!(
                    "notify.email[{i}].server must be host:port, not '{}'",
                    e.server
                )));
            }
            if e.to.is_empty() {
                return Err(invalid(format!("notify.email[{i}].to names no recipient")));
            }
            if e.username.is_some() != e.password_file.is_some() {
                return Err(invalid(format!(
                    "notify.email[{i}]: username and password_file go together"
                )));
            }
            names.push(&e.name);
        }
        for (i, w) in n.webhook.iter().enumerate() {
            if !w.url.starts_with("https://") {
                return Err(invalid(format!(
                    "notify.webhook[{i}].url must be https:// (webhooks are never sent in plaintext), not '{}'",
                    w.url
                )));
            }
            names.push(&w.name);
        }
        let mut sorted = names.clone();
        sorted.sort_unstable();
        if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
            return Err(invalid(format!(
                "notify: two targets are named '{}'; names must differ",
                w[0]
            )));
        }
        let t = &self.tape;
        if t.poll_every.secs() < 1 {
            return Err(invalid("tape.poll_every must be at least 1s".into()));
        }
        if t.wait_for_media.secs() < 60 {
            return Err(invalid("tape.wait_for_media must be at least 1m".into()));
        }
        if !t.jobs.is_empty() && t.library.is_none() {
            return Err(invalid(
                "tape.jobs need a library: set tape.library (backend = \"virtual\" with a path, or \"linux\")".into(),
            ));
        }
        if let Some(coffer_tape::LibraryConfig::Linux { drives, .. }) = &t.library
            && usize::from(t.drive) >= drives.len()
        {
            return Err(invalid(format!(
                "tape.drive is {} but tape.library lists {} drive(s)",
                t.drive,
                drives.len()
            )));
        }
        for (i, j) in t.jobs.iter().enumerate() {
            if BandwidthWindow::minutes(&j.at).is_none() {
                return Err(invalid(format!(
                    "tape.jobs[{i}].at must be a time of day HH:MM, not '{}'",
                    j.at
                )));
            }
            if j.pool.is_empty() {
                return Err(invalid(format!("tape.jobs[{i}].pool is empty")));
            }
            if t.jobs[..i].iter().any(|o| o.pool == j.pool) {
                return Err(invalid(format!(
                    "tape.jobs[{i}]: pool '{}' has a job already; one job per pool",
                    j.pool
                )));
            }
        }
        if jiff::tz::TimeZone::get(&self.daemon.timezone).is_err() {
            return Err(invalid(format!(
                "daemon.timezone: '{}' is not a known time zone (an IANA name such as Europe/Berlin, or UTC)",
                self.daemon.timezone
            )));
        }
        for (key, p) in [
            ("daemon.state_dir", &self.daemon.state_dir),
            ("daemon.socket", &self.daemon.socket),
            ("store.path", &self.store.path),
        ] {
            if !p.is_absolute() {
                return Err(invalid(format!(
                    "{key} must be an absolute path, not '{}'",
                    p.display()
                )));
            }
        }
        Ok(())
    }

    /// The time zone calendar expressions default to.
    pub fn time_zone(&self) -> jiff::tz::TimeZone {
        jiff::tz::TimeZone::get(&self.daemon.timezone).unwrap_or(jiff::tz::TimeZone::UTC)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(t: &str) -> Result<Config, ConfigError> {
        Config::parse(t, Path::new("/etc/coffer/cofferd.toml"))
    }

    #[test]
    fn the_documented_example_parses_and_defaults_fill_the_rest() {
        let text = include_str!("../../../docs/cofferd.toml");
        let c = parse(text).unwrap();
        assert_eq!(c.scheduler.max_concurrent_jobs, 2);
        assert_eq!(c.auth.lockout_after, 5);
        let empty = parse("").unwrap();
        assert_eq!(empty.daemon, DaemonConfig::default());
        assert_eq!(empty.auth.session_idle, Duration(900));
    }

    #[test]
    fn an_unknown_key_is_named_with_its_line() {
        let e = parse("[daemon]\nsocket = \"/run/c.sock\"\n\n[auth]\nlockout_afterr = 3\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 5"), "{e}");
        assert!(e.contains("lockout_afterr"), "{e}");
    }

    #[test]
    fn a_wrong_type_and_a_bad_duration_are_named() {
        let e = parse("[scheduler]\nmax_concurrent_jobs = \"two\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("line 2") && e.contains("max_concurrent_jobs"),
            "{e}"
        );
        let e = parse("[auth]\nsession_idle = \"15 minutes\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2") && e.contains("duration"), "{e}");
        let e = parse("[daemon\n").unwrap_err().to_string();
        assert!(e.contains("line 1"), "{e}");
    }

    #[test]
    fn tape_jobs_need_a_library_a_time_of_day_and_one_pool_each() {
        let c = parse(
            "[tape]\nlibrary = { backend = \"virtual\", path = \"/var/lib/coffer/vtl\" }\n\
             wait_for_media = \"2h\"\n[[tape.jobs]]\npool = \"gfs\"\nat = \"22:00\"\n\
             profiles = [\"standard\"]\n",
        )
        .unwrap();
        assert_eq!(c.tape.jobs[0].pool, "gfs");
        assert_eq!(c.tape.wait_for_media, Duration(7200));
        assert_eq!(c.tape.poll_every, Duration(60));
        for (text, named) in [
            (
                "[[tape.jobs]]\npool = \"gfs\"\nat = \"22:00\"\n",
                "need a library",
            ),
            (
                "[tape]\nlibrary = { backend = \"virtual\", path = \"/v\" }\n[[tape.jobs]]\npool = \"gfs\"\nat = \"25:00\"\n",
                "tape.jobs[0].at",
            ),
            (
                "[tape]\nlibrary = { backend = \"virtual\", path = \"/v\" }\n[[tape.jobs]]\npool = \"a\"\nat = \"22:00\"\n[[tape.jobs]]\npool = \"a\"\nat = \"23:00\"\n",
                "one job per pool",
            ),
            (
                "[tape]\nlibrary = { backend = \"linux\", changer = \"/dev/sg3\", drives = [\"/dev/sg4\"] }\ndrive = 1\n",
                "tape.drive",
            ),
            ("[tape]\nwait_for_media = \"10s\"\n", "tape.wait_for_media"),
            ("[verify]\nstore = \"sometimes\"\n", "verify.store"),
            ("[verify]\npool = \"now and then\"\n", "verify.pool"),
            ("[verify]\nremote = \"weekly-ish\"\n", "verify.remote"),
            ("[metrics]\nlisten = \"0.0.0.0:9473\"\n", "loopback"),
            (
                "[[notify.webhook]]\nname = \"a\"\nurl = \"http://x/hook\"\nsecret_file = \"/k\"\n",
                "https://",
            ),
            (
                "[[notify.email]]\nname = \"a\"\nserver = \"m:25\"\ntls = \"none\"\nfrom = \"a@b\"\nto = [\"c@d\"]\n",
                "never sent in plaintext",
            ),
            (
                "[[notify.email]]\nname = \"a\"\nserver = \"m\"\nfrom = \"a@b\"\nto = [\"c@d\"]\n",
                "host:port",
            ),
            ("[metrics]\nlisten = \"localhost\"\n", "metrics.listen"),
            (
                "[verify]\ntape = \"Sat 06:00\"\n",
                "verify.tape needs a library",
            ),
            ("[tape]\nlibrary = { backend = \"floppy\" }\n", "floppy"),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(named), "{text}: {e}");
        }
    }

    #[test]
    fn values_that_make_no_sense_are_refused() {
        let e = parse("[scheduler]\nmax_concurrent_jobs = 0\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("max_concurrent_jobs"), "{e}");
        let e = parse("[daemon]\ntimezone = \"Mars/Olympus\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("Mars/Olympus"), "{e}");
        let e = parse("[store]\npath = \"relative/store\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("store.path"), "{e}");
    }

    #[test]
    fn replication_settings_are_checked_and_windows_limit_by_time_of_day() {
        let c = parse(
            "[replication]\nlisten = \"127.0.0.1:7443\"\nbandwidth_mb_s = 50\n\
             windows = [{ from = \"08:00\", to = \"18:00\", mb_s = 10 },\
             { from = \"22:00\", to = \"02:00\", mb_s = 80 }]\n",
        )
        .unwrap();
        let r = &c.replication;
        assert_eq!(r.rate_at(9 * 60, 0), 10_000_000, "office hours");
        assert_eq!(r.rate_at(9 * 60, 5), 5_000_000, "the remote's own is lower");
        assert_eq!(r.rate_at(20 * 60, 0), 50_000_000, "outside every window");
        assert_eq!(
            r.rate_at(23 * 60, 0),
            50_000_000,
            "a window above the global limit"
        );
        assert_eq!(r.rate_at(60, 0), 50_000_000, "across midnight");
        assert_eq!(ReplicationConfig::default().rate_at(600, 0), 0, "no limit");
        for (text, key) in [
            (
                "[replication]\nlisten = \"anywhere\"\n",
                "replication.listen",
            ),
            (
                "[replication]\nreplicas_dir = \"r\"\n",
                "replication.replicas_dir",
            ),
            ("[replication]\ntimeout = \"0s\"\n", "replication.timeout"),
            (
                "[replication]\nwindows = [{ from = \"25:00\", to = \"01:00\", mb_s = 1 }]\n",
                "replication.windows[0].from",
            ),
            (
                "[replication]\nwindows = [{ from = \"01:00\", to = \"02:00\", mb_s = 0 }]\n",
                "replication.windows[0].mb_s",
            ),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(key), "{text}: {e}");
        }
    }

    #[test]
    fn health_thresholds_and_the_panel_are_checked() {
        let c = parse("[health]\ndisk_warn_percent = 70\n[panel]\nbackend = \"none\"\n").unwrap();
        assert_eq!(c.health.disk_warn_percent, 70.0);
        assert_eq!(c.panel.backend, PanelBackend::None);
        for (text, key) in [
            ("[health]\ndisk_warn_percent = 96\n", "disk_warn_percent"),
            (
                "[health]\nmemory_warn_percent = 120\n",
                "memory_warn_percent",
            ),
            ("[health]\ntemperature_warn_c = 95\n", "temperature_warn_c"),
            ("[health]\nload_warn_per_core = 0\n", "load_warn_per_core"),
            ("[health]\ncheck_every = \"0s\"\n", "check_every"),
            ("[panel]\nidle_return = \"1s\"\n", "idle_return"),
            (
                "[panel]\nbackend = \"linux\"\ni2c_bus = \"i2c-1\"\n",
                "panel.i2c_bus",
            ),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(key), "{text}: {e}");
        }
        let e = parse("[panel]\nbackend = \"serial\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2") && e.contains("serial"), "{e}");
    }
}
