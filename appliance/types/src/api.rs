//! The control API between `cofferd` and its clients (the `coffer` shell,
//! scripts): request and response types, and the asset register's and
//! profiles' shapes. The wire format (newline-delimited JSON on a Unix
//! socket) is specified in `docs/formats/api.md`; this module is its
//! single source of truth in code.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{JobKind, JobRecord, JobStatus, Level, ParseError, SnapshotInfo};

/// The API version this code speaks; a daemon refuses requests naming another.
pub const API_VERSION: u32 = 1;

/// The largest request line the daemon reads, in bytes (including the
/// newline). A longer line is refused with [`ErrorCode::TooLarge`] and the
/// connection closed.
pub const MAX_REQUEST_BYTES: usize = 1 << 20;

/// Where a request or an action came from, as the audit log records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The management shell (on the console or over SSH into the shell).
    Console,
    /// A script or an integration, authenticated by an API token.
    Api,
    /// The daemon's scheduler, on its own.
    Scheduler,
    /// The daemon itself (start, stop, reload, monitors).
    System,
    /// The command line in direct mode (no daemon).
    Direct,
    /// A button on the appliance's front panel (a person at the rack).
    Panel,
}

impl Source {
    /// The lowercase name used in the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Console => "console",
            Source::Api => "api",
            Source::Scheduler => "scheduler",
            Source::System => "system",
            Source::Direct => "direct",
            Source::Panel => "panel",
        }
    }
}

impl FromStr for Source {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        match s {
            "console" => Ok(Source::Console),
            "api" => Ok(Source::Api),
            "scheduler" => Ok(Source::Scheduler),
            "system" => Ok(Source::System),
            "direct" => Ok(Source::Direct),
            "panel" => Ok(Source::Panel),
            _ => Err(ParseError {
                what: "source (console, api, scheduler, system, direct, panel)",
                input: s.to_string(),
            }),
        }
    }
}

/// The dedicated roles of backup administration (ISO 27001 A.8.13, A.5.15).
/// What each may do is the permission matrix in `coffer-auth` and
/// `docs/roles.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Runs the appliance: everything, with fresh MFA for destructive actions.
    Administrator,
    /// Manages assets, profiles and schedules; runs and cancels backups.
    BackupOperator,
    /// Restores snapshots; reads the register and the job log.
    RestoreOperator,
    /// Reads everything, including the audit log; changes nothing.
    Auditor,
    /// Users, roles, tokens, keys and retention locks; reads the audit log.
    SecurityOfficer,
}

impl Role {
    /// Every role, in the order the matrix lists them.
    pub const ALL: [Role; 5] = [
        Role::Administrator,
        Role::BackupOperator,
        Role::RestoreOperator,
        Role::Auditor,
        Role::SecurityOfficer,
    ];

    /// The kebab-case name used in the API, the catalog and the shell.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Administrator => "administrator",
            Role::BackupOperator => "backup-operator",
            Role::RestoreOperator => "restore-operator",
            Role::Auditor => "auditor",
            Role::SecurityOfficer => "security-officer",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        match s {
            "administrator" | "admin" => Ok(Role::Administrator),
            "backup-operator" => Ok(Role::BackupOperator),
            "restore-operator" => Ok(Role::RestoreOperator),
            "auditor" => Ok(Role::Auditor),
            "security-officer" => Ok(Role::SecurityOfficer),
            _ => Err(ParseError {
                what: "role (administrator, backup-operator, restore-operator, auditor, security-officer)",
                input: s.to_string(),
            }),
        }
    }
}

/// How much the organisation depends on an asset (the asset register's
/// classification).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Criticality {
    /// Can be rebuilt; loss is an inconvenience.
    Low,
    /// Needed for normal work.
    Medium,
    /// Its loss stops part of the business.
    High,
    /// Its loss stops the business.
    Critical,
}

impl Criticality {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Criticality::Low => "low",
            Criticality::Medium => "medium",
            Criticality::High => "high",
            Criticality::Critical => "critical",
        }
    }
}

impl FromStr for Criticality {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        match s.to_ascii_lowercase().as_str() {
            "low" => Ok(Criticality::Low),
            "medium" => Ok(Criticality::Medium),
            "high" => Ok(Criticality::High),
            "critical" => Ok(Criticality::Critical),
            _ => Err(ParseError {
                what: "criticality (low, medium, high, critical)",
                input: s.to_string(),
            }),
        }
    }
}

/// A length of time given by an operator: `90s`, `15m`, `4h`, `1d`, `2w`, or
/// combinations such as `1h30m`. Stored as whole seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(pub u64);

impl Duration {
    /// Whole seconds.
    pub fn secs(self) -> u64 {
        self.0
    }
    /// Milliseconds, as the catalog and the clock count.
    pub fn ms(self) -> i64 {
        i64::try_from(self.0.saturating_mul(1000)).unwrap_or(i64::MAX)
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = self.0;
        if s == 0 {
            return f.write_str("0s");
        }
        for (unit, n) in [
            ("w", 604_800),
            ("d", 86_400),
            ("h", 3600),
            ("m", 60),
            ("s", 1),
        ] {
            if s >= n {
                write!(f, "{}{unit}", s / n)?;
                s %= n;
            }
        }
        Ok(())
    }
}

impl FromStr for Duration {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        let err = || ParseError {
            what: "duration (e.g. 90s, 15m, 4h, 1d, 2w, 1h30m)",
            input: s.to_string(),
        };
        let t = s.trim();
        if t.is_empty() {
            return Err(err());
        }
        let mut total: u64 = 0;
        let mut num: Option<u64> = None;
        for c in t.chars() {
            if let Some(d) = c.to_digit(10) {
                num = Some(
                    num.unwrap_or(0)
                        .checked_mul(10)
                        .and_then(|n| n.checked_add(u64::from(d)))
                        .ok_or_else(err)?,
                );
                continue;
            }
            let unit = match c {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                'd' => 86_400,
                'w' => 604_800,
                _ => return Err(err()),
            };
            let n = num.take().ok_or_else(err)?;
            total = n
                .checked_mul(unit)
                .and_then(|v| total.checked_add(v))
                .ok_or_else(err)?;
        }
        if num.is_some() {
            return Err(err());
        }
        Ok(Duration(total))
    }
}

impl Serialize for Duration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One system in the asset register (ISO 27001 A.5.9), mapped to the
/// profile that backs it up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Asset {
    /// Unique name, e.g. `web-01`.
    pub name: String,
    /// Who is accountable for it (a person or team).
    pub owner: String,
    /// How much the business depends on it.
    pub criticality: Criticality,
    /// What to back up: absolute paths on the appliance (mounted sources).
    pub sources: Vec<String>,
    /// Exclude globs.
    #[serde(default)]
    pub excludes: Vec<String>,
    /// Recovery point objective: the most data, in time, it may lose.
    pub rpo: Duration,
    /// Recovery time objective: how long a restore may take.
    pub rto: Duration,
    /// The profile that backs it up; `None` is flagged as unprotected.
    pub profile: Option<String>,
}

/// The schedules of a profile, one calendar expression per level (see
/// `docs/calendar.md`); a level without one is not scheduled.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedules {
    /// When to take full backups, e.g. `Sun 01:00`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full: Option<String>,
    /// When to take differential backups, e.g. `Mon..Sat 01:00`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub differential: Option<String>,
    /// When to take incremental backups, e.g. `*-*-* 00/4:30`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incremental: Option<String>,
}

impl Schedules {
    /// The expression for `level`.
    pub fn get(&self, level: Level) -> Option<&str> {
        match level {
            Level::Full => self.full.as_deref(),
            Level::Differential => self.differential.as_deref(),
            Level::Incremental => self.incremental.as_deref(),
        }
    }
}

/// Retention, as the profile states it: which snapshots of each asset
/// prune keeps (`coffer_engine::retention` plans it). A profile with no rule
/// at all keeps everything. Buckets are UTC hours, days, ISO weeks (Monday
/// to Sunday), months and years; each rule keeps the newest snapshot of
/// each of its N newest buckets that hold one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retention {
    /// Keep the newest N snapshots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_last: Option<u32>,
    /// Keep one per hour for N hours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_hourly: Option<u32>,
    /// Keep one per day for N days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_daily: Option<u32>,
    /// Keep one per week for N weeks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_weekly: Option<u32>,
    /// Keep one per month for N months.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_monthly: Option<u32>,
    /// Keep one per year for N years.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_yearly: Option<u32>,
    /// Keep everything younger than this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_within: Option<Duration>,
    /// Lock every new snapshot for this long (a retention lock: until it
    /// ends nobody can delete, prune or unlock the snapshot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_for: Option<Duration>,
}

/// How assets are backed up: when, where to, how long kept, how retried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    /// Unique name, e.g. `standard`.
    pub name: String,
    /// Calendar expressions per level.
    pub schedules: Schedules,
    /// How long snapshots are kept.
    #[serde(default)]
    pub retention: Retention,
    /// The store (or pool-backed store) backups go to; `default` is the
    /// daemon's configured store.
    #[serde(default = "default_target")]
    pub target: String,
    /// The tape media pool copies go to (media rotation issue).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tape_pool: Option<String>,
    /// Offsite replication targets: remotes a replication goes to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replicate_to: Vec<String>,
    /// When replications to `replicate_to` run: a calendar expression of
    /// their own (e.g. `*-*-* 02:00`); absent, after each good backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicate_schedule: Option<String>,
    /// How many times a failed scheduled job is retried.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Wait before the first retry; doubled for each further retry.
    #[serde(default = "default_backoff")]
    pub retry_backoff: Duration,
    /// Restore drills of the profile's assets, on a calendar of their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drill: Option<DrillPolicy>,
}

/// When and how a profile's assets are restore-drilled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrillPolicy {
    /// A calendar expression, e.g. `*-01,04,07,10-01 03:00` (quarterly).
    pub schedule: String,
    /// Which copy is restored.
    #[serde(default)]
    pub from: DrillSource,
    /// Which snapshot: the newest, or one picked at random.
    #[serde(default)]
    pub random: bool,
    /// With `from = remote`: the remote (an appliance peer or a bucket).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
}

/// What a verification job verifies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VerifyWhat {
    /// The store: every container read and authenticated
    /// (`verify --read-data`), damage mapped to files.
    #[default]
    Store,
    /// The disk pool the store lives on: every shard read and checked,
    /// damage healed from parity (scrub).
    Pool,
    /// A media set read back from its cartridges and compared with the
    /// store.
    Tape,
    /// A remote's copy read back and authenticated with the store's keys.
    Remote,
}

impl VerifyWhat {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            VerifyWhat::Store => "store",
            VerifyWhat::Pool => "pool",
            VerifyWhat::Tape => "tape",
            VerifyWhat::Remote => "remote",
        }
    }
}

impl FromStr for VerifyWhat {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        match s {
            "store" => Ok(VerifyWhat::Store),
            "pool" => Ok(VerifyWhat::Pool),
            "tape" => Ok(VerifyWhat::Tape),
            "remote" => Ok(VerifyWhat::Remote),
            _ => Err(ParseError {
                what: "verification (store, pool, tape or remote)",
                input: s.to_string(),
            }),
        }
    }
}

/// The copy a restore drill restores from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DrillSource {
    /// The appliance's own store.
    #[default]
    Disk,
    /// A tape media set holding the snapshot (through the library).
    Tape,
    /// An offsite copy: a paired appliance (pulled into the sandbox) or an
    /// S3 bucket (read in place).
    Remote,
}

impl DrillSource {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            DrillSource::Disk => "disk",
            DrillSource::Tape => "tape",
            DrillSource::Remote => "remote",
        }
    }
}

impl FromStr for DrillSource {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        match s {
            "disk" => Ok(DrillSource::Disk),
            "tape" => Ok(DrillSource::Tape),
            "remote" => Ok(DrillSource::Remote),
            _ => Err(ParseError {
                what: "drill source (disk, tape or remote)",
                input: s.to_string(),
            }),
        }
    }
}

/// One copy of an asset's newest good snapshot, as the 3-2-1-1-0 rule
/// counts it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyView {
    /// `store`, `tape` or `remote`.
    pub kind: String,
    /// Which: the store id, the media set and its cartridges, the remote.
    pub name: String,
    /// Its medium: `disk`, `tape` or `object` (S3).
    pub medium: String,
    /// Away from the appliance's site (a vaulted tape set, a remote).
    pub offsite: bool,
    /// Cannot be changed or deleted (a retention lock, WORM, S3 Object
    /// Lock) or is offline (cartridges out of the library).
    pub immutable_or_offline: bool,
    /// Since when it holds the snapshot (or newer), RFC 3339 UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
}

/// One asset against the 3-2-1-1-0 rule: 3 copies, on 2 media, 1 offsite,
/// 1 immutable or offline, 0 errors after verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetCompliance {
    /// The asset.
    pub asset: String,
    /// Its newest good snapshot (none: never backed up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    /// The copies of that snapshot.
    pub copies: Vec<CopyView>,
    /// How old the newest offsite copy is, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offsite_age_s: Option<i64>,
    /// Every part of the rule is met.
    pub met: bool,
    /// What is missing, one sentence per part of the rule.
    pub missing: Vec<String>,
}

/// A restore drill as recorded: the evidence that a copy restores, how
/// long it took against the asset's RTO, and what was checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrillRecord {
    /// Its number.
    pub id: i64,
    /// The job log row that ran it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<i64>,
    /// The asset.
    pub asset: String,
    /// The snapshot restored.
    pub snapshot: String,
    /// Which copy: `disk`, `tape` or `remote`.
    pub source: String,
    /// The copy in words (the store, or the media set and cartridges).
    pub copy: String,
    /// Who ran it (a user, or `scheduler`).
    pub identity: String,
    /// Started, RFC 3339 UTC.
    pub started: String,
    /// Ended, RFC 3339 UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended: Option<String>,
    /// From the start to every file verified, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<i64>,
    /// The asset's RTO at the time, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rto_ms: Option<i64>,
    /// Files verified against the manifest's content hashes.
    pub files: u64,
    /// Bytes verified.
    pub bytes: u64,
    /// `running`, `pass` or `fail`.
    pub result: String,
    /// Why it failed (or what was noted when it passed).
    pub reason: String,
    /// How the sandbox was confined: a private mount namespace (the store
    /// read-only, the sandbox nosuid, nodev, noexec), or a private
    /// directory and why no namespace could be had.
    #[serde(default)]
    pub isolation: String,
}

fn default_target() -> String {
    "default".into()
}
fn default_retries() -> u32 {
    2
}
fn default_backoff() -> Duration {
    Duration(300)
}

/// A user as listed (no secrets).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    /// Login name.
    pub name: String,
    /// Roles held.
    pub roles: Vec<Role>,
    /// Whether TOTP enrollment was confirmed by a first login.
    pub mfa_enrolled: bool,
    /// Locked out until this time (RFC 3339), after repeated failures.
    pub locked_until: Option<String>,
    /// Failed logins since the last success.
    pub failed_logins: u32,
    /// Created, RFC 3339 UTC.
    pub created: String,
    /// Last successful login, RFC 3339 UTC.
    pub last_login: Option<String>,
    /// Unused recovery codes left.
    pub recovery_codes_left: u32,
}

/// What a new user (or the bootstrap administrator) needs to enroll TOTP.
/// Shown once; the secret is never shown again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enrollment {
    /// The user.
    pub user: String,
    /// The TOTP secret, base32 (for typing into an authenticator).
    pub secret_base32: String,
    /// `otpauth://totp/...` URI (what the QR code encodes).
    pub otpauth_uri: String,
    /// Single-use recovery codes.
    pub recovery_codes: Vec<String>,
}

/// An API token as listed (the secret is shown only on creation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
    /// Token id (the public half, `ct_<id>`).
    pub id: String,
    /// What it is for.
    pub name: String,
    /// Owning user.
    pub user: String,
    /// Roles it may use (never more than its owner holds).
    pub roles: Vec<Role>,
    /// Created, RFC 3339 UTC.
    pub created: String,
    /// Expires, RFC 3339 UTC.
    pub expires: Option<String>,
    /// Last used, RFC 3339 UTC.
    pub last_used: Option<String>,
}

/// One audit log entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Position in the chain, from 1.
    pub seq: i64,
    /// When, RFC 3339 UTC.
    pub time: String,
    /// When, milliseconds since the Unix epoch.
    pub time_ms: i64,
    /// Who: a user, `token:<id>` (with its user), `scheduler`, `system`.
    pub identity: String,
    /// Where from.
    pub source: Source,
    /// What, e.g. `login`, `asset.add`, `job.run`.
    pub action: String,
    /// On what, e.g. the asset's name; empty when none.
    pub target: String,
    /// `ok`, `denied`, `failed` (with detail).
    pub result: String,
    /// Free text: the reason for a refusal, a summary of a change.
    pub detail: String,
    /// This entry's chain hash (hex).
    pub hash: String,
}

/// Which audit entries to list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditFilter {
    /// Not before (milliseconds since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_ms: Option<i64>,
    /// Before (milliseconds since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_ms: Option<i64>,
    /// Only this identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Only this action (exact, or a prefix ending in `.`, e.g. `asset.`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// At most this many, newest first (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// The result of checking the audit chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditVerify {
    /// Entries checked.
    pub entries: u64,
    /// True when every hash, link and the anchor agree.
    pub ok: bool,
    /// The first entry that fails, with the reason.
    pub problems: Vec<String>,
    /// Hash of the newest entry (hex).
    pub head: Option<String>,
}

/// An alert raised by a monitor (RPO, job failures, later health).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// Alert id.
    pub id: i64,
    /// What raised it: `rpo`, `job-failed`, `unprotected`, `config`, …
    pub kind: String,
    /// What it is about (an asset's name, a job id).
    pub subject: String,
    /// A sentence for the operator.
    pub message: String,
    /// Raised, RFC 3339 UTC.
    pub raised: String,
    /// Cleared (the condition ended), RFC 3339 UTC.
    pub cleared: Option<String>,
    /// Acknowledged by.
    pub acked_by: Option<String>,
}

/// A job as the daemon reports it: the job log row plus live state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobView {
    /// The job log row.
    #[serde(flatten)]
    pub record: JobRecord,
    /// Where it came from (console, api, scheduler).
    pub source: Option<Source>,
    /// The profile whose schedule started it.
    pub profile: Option<String>,
    /// Attempt number, from 1; retries count up.
    pub attempt: u32,
    /// Live progress of a running job.
    pub progress: Option<JobProgress>,
    /// The remote, for replication and remote restore jobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
    /// What a replication job did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication: Option<ReplicationStats>,
}

/// Live counters of a running job.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobProgress {
    /// Entries processed.
    pub entries: u64,
    /// Files processed.
    pub files: u64,
    /// Bytes processed.
    pub bytes: u64,
}

/// One upcoming scheduled run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NextRun {
    /// The asset.
    pub asset: String,
    /// Its profile.
    pub profile: String,
    /// The level that will run.
    pub level: Level,
    /// When, RFC 3339 UTC.
    pub at: String,
    /// When, milliseconds since the Unix epoch.
    pub at_ms: i64,
}

/// The daemon's state, readable without logging in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DaemonStatus {
    /// `cofferd` version.
    pub version: String,
    /// The API version.
    pub api: u32,
    /// Host name.
    pub host: String,
    /// True until the first administrator exists.
    pub needs_bootstrap: bool,
    /// The daemon's clock, RFC 3339 UTC.
    pub now: String,
    /// Jobs queued or running.
    pub active_jobs: u32,
    /// Alerts not cleared.
    pub open_alerts: u32,
    /// Development defaults (simulated hardware) in use.
    pub development: bool,
    /// The system health monitor's last reading (absent until the first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthReport>,
    /// How backups compress and how many threads they use, and why.
    #[serde(default)]
    pub codec: String,
    /// Each asset against 3-2-1-1-0 (to a logged-in caller who may read
    /// the status): the ones that meet it, and what the others miss.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compliance: Option<Vec<AssetCompliance>>,
    /// On an installed appliance: the image's version and the root slot
    /// it runs from (`1.2.0, slot b`); absent elsewhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

/// How healthy the appliance is, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthState {
    /// Nothing wrong.
    Ok,
    /// Working, but something needs attention (a warning threshold, a
    /// missed RPO, a failed job, a panel fault).
    Degraded,
    /// Something is failing or about to (a critical threshold).
    Fault,
}

impl HealthState {
    /// The upper-case word the panel and the shell show.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthState::Ok => "OK",
            HealthState::Degraded => "DEGRADED",
            HealthState::Fault => "FAULT",
        }
    }
}

/// One thing the health monitor found wrong.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthFinding {
    /// The alert kind it raises: `health-temperature`, `health-disk`,
    /// `health-memory`, `health-load`.
    pub kind: String,
    /// What it is about (a sensor, a filesystem, a panel component).
    pub subject: String,
    /// How bad.
    pub severity: HealthState,
    /// A sentence for the operator.
    pub message: String,
}

/// A temperature sensor's reading.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemperatureReading {
    /// The kernel's (or the panel's) name for it.
    pub label: String,
    /// Degrees Celsius.
    pub celsius: f32,
    /// The sensor's own critical temperature, where it reports one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub critical: Option<f32>,
    /// A simulated sensor (the simulated panel's): shown, never judged.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub simulated: bool,
}

/// How full a filesystem Coffer keeps something on is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilesystemUsage {
    /// What Coffer keeps there: `store`, `state`.
    pub role: String,
    /// The directory.
    pub path: String,
    /// Bytes used (including the root reserve).
    pub used: u64,
    /// Bytes in all.
    pub total: u64,
}

impl FilesystemUsage {
    /// Used, in percent of the total.
    pub fn percent(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.used as f64 * 100.0 / self.total as f64
        }
    }
}

/// The system health monitor's reading.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthReport {
    /// The appliance's state: the worst of the findings and the open alerts.
    pub state: HealthState,
    /// Why it is not OK, worst first (empty when OK).
    pub reasons: Vec<String>,
    /// What the thresholds found (each also an alert).
    pub findings: Vec<HealthFinding>,
    /// When it was read, RFC 3339 UTC.
    pub sampled: String,
    /// The figures read.
    #[serde(flatten)]
    pub figures: SystemFigures,
}

/// What the health monitor reads from the system.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SystemFigures {
    /// CPU busy, percent over all cores since the previous reading.
    pub cpu_percent: f32,
    /// Logical cores.
    pub cores: u32,
    /// Load average over 1, 5 and 15 minutes.
    pub load: [f64; 3],
    /// Memory in use, bytes.
    pub memory_used: u64,
    /// Memory in all, bytes.
    pub memory_total: u64,
    /// Seconds since the system booted.
    pub uptime_secs: u64,
    /// Temperature sensors (the kernel's and the panel's).
    pub temperatures: Vec<TemperatureReading>,
    /// The filesystems holding the store and the state directory.
    pub filesystems: Vec<FilesystemUsage>,
    /// The appliance's IP addresses (not loopback), IPv4 first.
    pub addresses: Vec<String>,
}

/// What the front panel shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PanelView {
    /// `simulated`, `linux` or `none`.
    pub backend: String,
    /// The four lines of twenty characters. For the simulated panel these
    /// are decoded from the bytes the LCD driver sent over its (simulated)
    /// I2C bus; for real hardware, the lines last drawn (while the LCD is
    /// faulted: what it would show).
    pub lines: Vec<String>,
    /// The screen shown (`identity`, `health`, `jobs`, `system`, `alert`).
    pub screen: String,
    /// The status LEDs.
    pub leds: PanelLeds,
    /// The LCD's backlight.
    pub backlight: bool,
    /// The panel's own temperature sensor, °C.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Panel components not working (`lcd: …`, `sensor: …`, `button-ok: stuck`).
    pub faults: Vec<String>,
}

/// The front panel's status LEDs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PanelLeds {
    /// Power (on while the service runs).
    pub power: bool,
    /// Activity (blinks while a job runs).
    pub activity: bool,
    /// Fault (on for FAULT, blinking for DEGRADED).
    pub fault: bool,
    /// Tape (on while a media job runs).
    pub tape: bool,
}

/// How a request proves who sent it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Credential {
    /// A session from `login`.
    Session(String),
    /// An API token (`ct_<id>_<secret>`).
    Token(String),
}

/// One request line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Request {
    /// Echoed in the response.
    pub id: u64,
    /// Absent for `status`, `bootstrap` and `login`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<Credential>,
    /// A current TOTP code of the authenticated user, proving fresh MFA for
    /// this request (the only way a token can do a destructive action).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mfa: Option<String>,
    /// What to do.
    #[serde(flatten)]
    pub call: Call,
}

/// What a request asks for. On the wire: `"op": "<name>"` and `"args": {…}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", content = "args", rename_all = "snake_case")]
pub enum Call {
    /// The daemon's state (no login needed).
    Status,
    /// Creates the first administrator; only while no user exists, only
    /// from the console.
    Bootstrap {
        /// Login name.
        user: String,
        /// Password.
        password: String,
    },
    /// Opens a session: password and a TOTP (or recovery) code.
    Login {
        /// Login name.
        user: String,
        /// Password.
        password: String,
        /// TOTP code, or a recovery code.
        code: String,
    },
    /// Ends the session.
    Logout,
    /// Proves fresh MFA for the session (before a destructive action).
    MfaVerify {
        /// TOTP code.
        code: String,
    },
    /// Who the caller is.
    Whoami,
    /// Changes the caller's password.
    Passwd {
        /// Current password.
        old: String,
        /// New password.
        new: String,
    },
    /// Lists users.
    UserList,
    /// Creates a user; returns the enrollment to hand to them.
    UserAdd {
        /// Login name.
        name: String,
        /// Initial password.
        password: String,
        /// Roles.
        roles: Vec<Role>,
    },
    /// Replaces a user's roles.
    UserRoles {
        /// Login name.
        name: String,
        /// New roles.
        roles: Vec<Role>,
    },
    /// Removes a user (and their tokens and sessions).
    UserRemove {
        /// Login name.
        name: String,
    },
    /// Lifts a lockout.
    UserUnlock {
        /// Login name.
        name: String,
    },
    /// Replaces a user's TOTP secret and recovery codes.
    UserResetMfa {
        /// Login name.
        name: String,
    },
    /// Creates an API token for the caller.
    TokenCreate {
        /// What it is for.
        name: String,
        /// Roles it may use (a subset of the caller's).
        roles: Vec<Role>,
        /// Lifetime (default 90 days).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expires_in: Option<Duration>,
    },
    /// Lists tokens (own; all for administrators and security officers).
    TokenList,
    /// Revokes a token.
    TokenRevoke {
        /// Token id.
        id: String,
    },
    /// Lists assets.
    AssetList,
    /// One asset.
    AssetGet {
        /// Name.
        name: String,
    },
    /// Adds an asset.
    AssetAdd {
        /// The asset.
        asset: Asset,
    },
    /// Replaces an asset.
    AssetUpdate {
        /// The asset (matched by name).
        asset: Asset,
    },
    /// Removes an asset from the register (its snapshots stay).
    AssetRemove {
        /// Name.
        name: String,
    },
    /// Imports an asset register from CSV (see `docs/formats/api.md`).
    AssetImport {
        /// The CSV text.
        csv: String,
        /// Replace assets that already exist.
        #[serde(default)]
        replace: bool,
    },
    /// Lists profiles.
    ProfileList,
    /// One profile.
    ProfileGet {
        /// Name.
        name: String,
    },
    /// Adds a profile.
    ProfileAdd {
        /// The profile.
        profile: Profile,
    },
    /// Replaces a profile (a schedule or retention change needs fresh MFA).
    ProfileUpdate {
        /// The profile (matched by name).
        profile: Profile,
    },
    /// Removes a profile no asset uses.
    ProfileRemove {
        /// Name.
        name: String,
    },
    /// Upcoming scheduled runs.
    ScheduleNext {
        /// How many (default 10).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        count: Option<u32>,
    },
    /// Checks a calendar expression and shows its next runs.
    ScheduleCheck {
        /// The expression.
        expr: String,
        /// How many (default 5).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        count: Option<u32>,
    },
    /// Queues a backup of an asset now.
    JobRun {
        /// Asset name.
        asset: String,
        /// Level.
        level: Level,
    },
    /// Lists jobs, newest first.
    JobList {
        /// Only this asset.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        asset: Option<String>,
        /// Only this status.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<JobStatus>,
        /// Only this kind.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        kind: Option<JobKind>,
        /// At most this many (default 50).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
    },
    /// One job, with live progress when running.
    JobGet {
        /// Job id.
        id: i64,
    },
    /// The job's own log lines.
    JobLog {
        /// Job id.
        id: i64,
    },
    /// Cancels a queued or running job.
    JobCancel {
        /// Job id.
        id: i64,
    },
    /// Lists snapshots.
    SnapshotList {
        /// Only this asset.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        asset: Option<String>,
    },
    /// Lists alerts (open ones unless `all`).
    AlertList {
        /// Include cleared alerts.
        #[serde(default)]
        all: bool,
    },
    /// Acknowledges an alert.
    AlertAck {
        /// Alert id.
        id: i64,
    },
    /// Lists audit entries, newest first.
    AuditList {
        /// Filter.
        #[serde(default)]
        filter: AuditFilter,
    },
    /// Checks the audit chain.
    AuditVerify,
    /// Re-reads the configuration file (as SIGHUP does).
    Reload,
    /// The root slots: which one runs, every slot's version and boot
    /// state (`coffer_image::slots::Status`).
    UpdateStatus,
    /// Installs a signed update bundle into the slot that is not running;
    /// it boots next, with `tries` boots to reach a healthy cofferd before
    /// the appliance rolls back (`docs/formats/update.md`).
    UpdateInstall {
        /// The bundle's path on the appliance; absent: the one bundle
        /// (`*.cub`) on an attached medium labelled `COFFER-UPDATE`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path: Option<String>,
        /// Boots the new slot gets (1 to 9; default 3).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tries: Option<u32>,
    },
    /// Restarts the appliance (jobs are checkpointed first, as at every
    /// stop), e.g. to boot an installed update.
    SystemReboot,
    /// What the front panel shows now.
    PanelShow,
    /// Presses a button of the simulated front panel (as a person at the
    /// rack would; an `ok` on an alert page acknowledges it).
    PanelPress {
        /// `up`, `down`, `ok` or `back`.
        button: String,
    },
    /// Lists the offsite remotes and this appliance's replication identity.
    RemoteList,
    /// Adds an offsite remote. An appliance remote with an address is
    /// probed: the answer carries the fingerprint it presents, to confirm
    /// with `remote_pair`.
    RemoteAdd {
        /// The remote.
        remote: RemoteSpec,
    },
    /// Pairs with an appliance remote: probes it again and pins its
    /// certificate if it presents `fingerprint`. Without `fingerprint`,
    /// only reports both fingerprints (nothing is pinned).
    RemotePair {
        /// The remote's name.
        name: String,
        /// The fingerprint the operator confirmed (from the remote's own
        /// console).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fingerprint: Option<String>,
    },
    /// Removes a remote (its copies stay where they are).
    RemoteRemove {
        /// The remote's name.
        name: String,
    },
    /// Queues a replication of the store to a remote now.
    ReplicateRun {
        /// The remote's name.
        remote: String,
    },
    /// Each remote's replication state: last run, lag per asset.
    ReplicateStatus,
    /// Restores a snapshot from a remote's copy of a store, on this
    /// appliance, as a job: an appliance remote's copy is pulled here first
    /// (resumably), a bucket is read in place.
    RemoteRestore {
        /// The remote's name.
        remote: String,
        /// Which store's copy (hex id); default: the only one the remote
        /// holds for this appliance, else this appliance's own store.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        store: Option<String>,
        /// Snapshot id, unique prefix or `latest`.
        snapshot: String,
        /// An absolute directory to restore into (created if missing; must
        /// be empty).
        target: String,
        /// The copy's passphrase (never logged, never audited).
        passphrase: Secret,
    },
    /// The retention plan (a dry run of prune): per asset, each snapshot
    /// kept or not, why, and until when.
    RetentionShow {
        /// Only this asset.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        asset: Option<String>,
    },
    /// Queues a prune by each asset's retention (or only `asset`'s).
    Prune {
        /// Only this asset.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        asset: Option<String>,
    },
    /// Queues a garbage collection.
    Gc {
        /// Compact containers whose live share is below this many percent
        /// (default 50).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        compact_below_pct: Option<u8>,
        /// Re-encrypt what older key generations seal under the current
        /// one, then destroy their keys.
        #[serde(default)]
        retire_old_keys: bool,
    },
    /// Deletes one snapshot by hand (a prune job), unless a retention lock
    /// or legal hold protects it.
    SnapshotDelete {
        /// Snapshot id or unique prefix.
        snapshot: String,
    },
    /// Sets or extends a snapshot's retention lock.
    LockSet {
        /// Snapshot id or unique prefix.
        snapshot: String,
        /// The lock's end, ms since the epoch.
        until_ms: i64,
        /// Why.
        #[serde(default)]
        reason: String,
    },
    /// Lists retention locks.
    LockList {
        /// Only this asset's.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        asset: Option<String>,
    },
    /// Places a legal hold on a snapshot or an asset (security officer,
    /// fresh MFA).
    HoldSet {
        /// The snapshot (id or prefix), or
        #[serde(default, skip_serializing_if = "Option::is_none")]
        snapshot: Option<String>,
        /// the asset.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        asset: Option<String>,
        /// The matter it preserves evidence for.
        reason: String,
    },
    /// Releases a legal hold (security officer, fresh MFA).
    HoldRelease {
        /// Its number.
        id: i64,
    },
    /// Lists legal holds.
    HoldList {
        /// Released ones too.
        #[serde(default)]
        all: bool,
    },
    /// The trusted clock against the wall clock.
    ClockShow,
    /// Accepts the wall clock as trusted after a forward jump (security
    /// officer, fresh MFA).
    ClockAccept,
    /// Disposal certificates.
    DisposalList,
    /// The store's keys: algorithm, ids, generations, history.
    KeyStatus,
    /// Starts a new data key generation now: new data is sealed under it.
    KeyRotate,
    /// The day's media rotation procedure of every pool (or one): each
    /// pool's plan and its checklist text.
    MediaToday {
        /// Only this pool.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pool: Option<String>,
        /// Another day (YYYY-MM-DD); default today in the daemon's time zone.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        date: Option<String>,
    },
    /// Media rotation pools with their cartridges and sets.
    MediaPools,
    /// Runs a restore drill of an asset now (a job).
    DrillRun {
        /// The asset.
        asset: String,
        /// Which copy.
        #[serde(default)]
        from: DrillSource,
        /// This snapshot (id or prefix); default the newest.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        snapshot: Option<String>,
        /// A snapshot picked at random instead of the newest.
        #[serde(default)]
        random: bool,
        /// With `from = remote`: which remote.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        remote: Option<String>,
    },
    /// Verifies now (jobs): the store read back in full; the disk pool
    /// scrubbed; the newest media set of a media pool (of every pool with
    /// a set) read back from its cartridges; or a remote's copy read back
    /// (of every remote).
    VerifyRun {
        /// What is verified.
        #[serde(default)]
        what: VerifyWhat,
        /// With `tape`: only this media pool's newest set; with `remote`:
        /// only this remote.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    /// Each asset against the 3-2-1-1-0 rule.
    Compliance,
    /// The ISO/IEC 27001 A.8.13 evidence report of a period: `{"report":
    /// …, "html": …}`.
    ReportIso27001 {
        /// The first day, `YYYY-MM-DD` (UTC).
        from: String,
        /// The last day, `YYYY-MM-DD` (UTC), included.
        to: String,
        /// Where the console writes the report (never sent).
        #[serde(skip)]
        out: Option<String>,
    },
    /// Restore drills, newest first.
    DrillList {
        /// Only this asset's.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        asset: Option<String>,
    },
    /// Records one step of the media rotation procedure.
    MediaStep {
        /// The step.
        step: MediaStep,
        /// The day it happened (YYYY-MM-DD, today or earlier); default today.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        date: Option<String>,
    },
    /// Transfer manifests: every one, or one (printable).
    MediaManifest {
        /// Its number.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<i64>,
    },
    /// The chain of custody: every cartridge's, or one's.
    MediaCustody {
        /// The cartridge.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        barcode: Option<String>,
    },
}

/// A step of the media rotation procedure (`media_step`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "action")]
pub enum MediaStep {
    /// Records the day's expiries and closed sets (and crypto-shreds the
    /// expired sets of pools that shred).
    Settle {
        /// Only this pool.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pool: Option<String>,
    },
    /// Cartridges moved to the export (mail) slots for the vault; files the
    /// transfer manifest.
    Export {
        /// The cartridges.
        barcodes: Vec<String>,
    },
    /// A transfer manifest's cartridges were handed to the courier.
    Sent {
        /// The manifest.
        manifest: i64,
    },
    /// Cartridges arrived (at the vault, or back onsite).
    Received {
        /// The cartridges.
        barcodes: Vec<String>,
    },
    /// Cartridges asked back from the vault.
    Recall {
        /// The cartridges.
        barcodes: Vec<String>,
        /// The day they are needed (default: after the courier's delay).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        needed_by: Option<String>,
    },
    /// Cartridges put into the library (through its mail slots).
    Import {
        /// The cartridges.
        barcodes: Vec<String>,
    },
    /// A drive cleaning was done.
    Cleaned {
        /// The pool.
        pool: String,
    },
    /// A cartridge was found damaged.
    Damaged {
        /// The cartridge.
        barcode: String,
    },
    /// Cartridges were destroyed (a disposal certificate each).
    Dispose {
        /// The cartridges.
        barcodes: Vec<String>,
        /// How and by whom.
        method: String,
    },
}

/// A secret in a request (a passphrase, a secret access key): serialised
/// as a plain string, never shown by `Debug`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// What kind of offsite remote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RemoteKind {
    /// Another Coffer appliance, over TLS with pinned certificates.
    Appliance,
    /// An S3-compatible bucket, with Object Lock.
    S3,
}

impl RemoteKind {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            RemoteKind::Appliance => "appliance",
            RemoteKind::S3 => "s3",
        }
    }
}

impl FromStr for RemoteKind {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        match s {
            "appliance" => Ok(RemoteKind::Appliance),
            "s3" => Ok(RemoteKind::S3),
            _ => Err(ParseError {
                what: "remote kind",
                input: s.to_string(),
            }),
        }
    }
}

/// How an S3 remote's objects are locked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectLockMode {
    /// Nobody can delete or shorten the lock, not even the account's root.
    #[default]
    Compliance,
    /// Users with a special permission can bypass the lock.
    Governance,
    /// No lock (refused unless asked for explicitly).
    None,
}

impl ObjectLockMode {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectLockMode::Compliance => "compliance",
            ObjectLockMode::Governance => "governance",
            ObjectLockMode::None => "none",
        }
    }
}

/// An S3 remote's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct S3Remote {
    /// The endpoint URL (`https://s3.example.net:9000`); absent for AWS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The region (`us-east-1` for most S3-compatible servers).
    #[serde(default = "default_region")]
    pub region: String,
    /// The bucket (created by its owner with Object Lock enabled).
    pub bucket: String,
    /// A key prefix inside the bucket (each store goes under
    /// `<prefix><store id hex>/`).
    #[serde(default)]
    pub prefix: String,
    /// Path-style addressing (most self-hosted servers want it).
    #[serde(default = "yes")]
    pub path_style: bool,
    /// The Object Lock mode of every object written.
    #[serde(default)]
    pub lock: ObjectLockMode,
    /// Days each object stays locked at least; 0 derives it from the
    /// longest retention of the profiles that replicate here.
    #[serde(default)]
    pub lock_days: u32,
    /// The access key id; absent: the daemon's environment
    /// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    /// The secret access key (only in `remote_add`; stored sealed under a
    /// key derived from the store's master key; never shown again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_access_key: Option<Secret>,
}

fn default_region() -> String {
    "us-east-1".into()
}

fn yes() -> bool {
    true
}

/// A remote as `remote_add` takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteSpec {
    /// Unique name, e.g. `offsite-1`.
    pub name: String,
    /// Appliance or S3.
    pub kind: RemoteKind,
    /// An appliance remote's replication endpoint, `host:port`; absent for
    /// a peer that only pushes here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// An appliance remote's certificate fingerprint (SHA-256, as
    /// `coffer remote list` on it shows), pinned at once when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// An S3 remote's settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Remote>,
    /// Bandwidth limit of replication to it, in MB/s (0: none).
    #[serde(default)]
    pub bandwidth_mb_s: u32,
}

/// A remote as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteView {
    /// The remote as added (an S3 secret never appears).
    #[serde(flatten)]
    pub spec: RemoteSpec,
    /// Whether its certificate is pinned (appliances) or it is usable (S3).
    pub paired: bool,
    /// The fingerprint it presented when last probed (appliances).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seen_fingerprint: Option<String>,
    /// Where an S3 remote's credentials come from: `stored` or
    /// `environment`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<String>,
    /// The last replication job to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_job: Option<i64>,
    /// When its copy was last complete and verified, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success: Option<String>,
    /// The newest backup that copy holds was taken before this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub covers_until: Option<String>,
    /// Why the last replication failed, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// This appliance's replication endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicationIdentity {
    /// Its certificate's SHA-256 fingerprint (the same as
    /// `openssl x509 -noout -fingerprint -sha256`).
    pub fingerprint: String,
    /// The address it listens on, if it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
}

/// `remote_list`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteListing {
    /// This appliance.
    pub identity: ReplicationIdentity,
    /// The remotes.
    pub remotes: Vec<RemoteView>,
    /// Other appliances' stores this one keeps a copy of.
    #[serde(default)]
    pub replicas: Vec<ReplicaHeld>,
}

/// A copy of another appliance's store kept here (ciphertext only), bound
/// to the remote that first pushed it: no other remote may write to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaHeld {
    /// The store's id (hex).
    pub store: String,
    /// The remote it belongs to.
    pub owner: String,
    /// The certificate fingerprint that remote first pushed with.
    pub fingerprint: String,
    /// The first push, RFC 3339 UTC.
    pub first_received: String,
    /// The latest push.
    pub last_received: String,
    /// Objects stored by pushes so far (all sessions).
    pub objects: u64,
    /// Bytes stored by pushes so far.
    pub bytes: u64,
}

/// `remote_add` and `remote_pair`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pairing {
    /// The remote.
    pub remote: String,
    /// This appliance's fingerprint (to confirm on the remote's console).
    pub ours: String,
    /// The fingerprint the remote presents now (absent when it could not
    /// be reached or is not an appliance).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub theirs: Option<String>,
    /// Whether its certificate is now pinned.
    pub paired: bool,
    /// What to do next, in words.
    pub message: String,
}

/// What one prune or garbage collection did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaintenanceStats {
    /// Snapshots removed (prune).
    pub snapshots_removed: u64,
    /// Snapshots kept (prune) or still referencing data (gc).
    pub snapshots_kept: u64,
    /// Containers deleted: nothing referenced them, or their live chunks
    /// were copied out.
    pub containers_deleted: u64,
    /// Partly dead containers whose live chunks were copied into new ones.
    pub containers_compacted: u64,
    /// Live chunks copied by the compaction.
    pub chunks_copied: u64,
    /// Bytes those copies took in new containers.
    pub bytes_copied: u64,
    /// Container bytes deleted.
    pub bytes_freed: u64,
    /// How long it ran, milliseconds.
    pub duration_ms: u64,
}

/// A retention lock: until `until`, nobody can delete the snapshot, shorten
/// the lock or prune it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotLock {
    /// The snapshot (32 hex digits).
    pub snapshot: String,
    /// Its asset.
    pub asset: String,
    /// The lock's end, RFC 3339 UTC.
    pub until: String,
    /// The same, milliseconds since the Unix epoch.
    pub until_ms: i64,
    /// Who set (or last extended) it: a user, or `policy:PROFILE`.
    pub set_by: String,
    /// When, RFC 3339 UTC.
    pub set_at: String,
    /// Why.
    pub reason: String,
    /// Whether it still holds, by the trusted clock.
    pub active: bool,
}

/// A legal hold on one snapshot or on every snapshot of an asset: no end
/// date; set and released only by a security officer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegalHold {
    /// Its number.
    pub id: i64,
    /// The snapshot it holds, or
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    /// the asset whose snapshots it holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asset: Option<String>,
    /// Why (the matter, the case number).
    pub reason: String,
    /// Who set it.
    pub set_by: String,
    /// When, RFC 3339 UTC.
    pub set_at: String,
    /// Who released it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub released_by: Option<String>,
    /// When, RFC 3339 UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub released_at: Option<String>,
}

impl LegalHold {
    /// Whether it still holds.
    pub fn active(&self) -> bool {
        self.released_by.is_none()
    }
}

/// The appliance's trusted clock against the wall clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockStatus {
    /// The wall clock, RFC 3339 UTC.
    pub wall: String,
    /// The trusted clock (what retention locks expire by), RFC 3339 UTC.
    pub trusted: String,
    /// Wall minus trusted, milliseconds: above a few minutes, the wall
    /// clock jumped forward (or the appliance was off) and a security
    /// officer has not accepted it.
    pub ahead_ms: i64,
    /// What the last observation found, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jump: Option<String>,
}

/// A disposal certificate: what was destroyed, which keys, when, by whom
/// or by which policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disposal {
    /// Its number.
    pub id: i64,
    /// When, RFC 3339 UTC.
    pub at: String,
    /// What was disposed of, in words (`data key generation 2 of store …`).
    pub what: String,
    /// The keys destroyed (ids and fingerprints, never key material).
    pub keys: Vec<String>,
    /// Objects deleted.
    pub objects: u64,
    /// Bytes deleted.
    pub bytes: u64,
    /// The policy that expired it, if no person did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// Who (or `system`).
    pub identity: String,
    /// How, in words.
    pub detail: String,
    /// BLAKE3 of the certificate's fields, for the auditor's copy.
    pub digest: String,
}

/// One event in a key's life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyEvent {
    /// When, RFC 3339 UTC.
    pub at: String,
    /// `created`, `rotated`, `rewrapped`, `exported`, `imported`, `destroyed`.
    pub event: String,
    /// The key generation it concerns.
    pub generation: u32,
    /// Who (or `system`).
    pub identity: String,
    /// Details in words.
    pub detail: String,
}

/// One data key generation of a store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataKeyView {
    /// Its generation (1: derived from the master key).
    pub generation: u32,
    /// Its id: a fingerprint that names it without revealing it.
    pub key_id: String,
    /// `current` (new data), `active` (older data still uses it) or
    /// `destroyed`.
    pub state: String,
    /// Containers sealed under it.
    pub containers: u64,
    /// When it was created, RFC 3339 UTC (when known).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
}

/// `key status`: the store's keys, never their material.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyStatus {
    /// The cipher and key derivation in use.
    pub algorithm: String,
    /// The store.
    pub store: String,
    /// The master key's id.
    pub master_key_id: String,
    /// How many passphrase-sealed copies of the master key the store holds.
    pub key_files: u64,
    /// The data key generations.
    pub data_keys: Vec<DataKeyView>,
    /// When the last data key rotation happened, RFC 3339 UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotated: Option<String>,
    /// The key history (newest first).
    pub events: Vec<KeyEvent>,
}

/// What one replication job did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicationStats {
    /// The remote.
    pub remote: String,
    /// Objects the store had.
    pub objects: u64,
    /// Objects the remote already held.
    pub skipped: u64,
    /// Objects sent.
    pub sent: u64,
    /// Object bytes sent.
    pub bytes_sent: u64,
    /// Bytes not sent again because an interrupted object resumed.
    pub bytes_resumed: u64,
    /// Objects the remote's hash (or stored checksum) confirmed.
    pub verified: u64,
    /// Objects that did not match (the job fails).
    pub mismatched: u64,
    /// Objects whose Object Lock was set or extended (S3).
    pub locked: u64,
    /// How long it ran, milliseconds.
    pub duration_ms: u64,
}

impl ReplicationStats {
    /// Bytes sent per second of the job's duration.
    pub fn throughput(&self) -> f64 {
        if self.duration_ms == 0 {
            0.0
        } else {
            self.bytes_sent as f64 * 1000.0 / self.duration_ms as f64
        }
    }
}

/// One asset's replica lag at one remote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaLag {
    /// The asset.
    pub asset: String,
    /// The remote.
    pub remote: String,
    /// The asset's RPO.
    pub rpo: Duration,
    /// The newest backup of it the remote holds, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newest_copy: Option<String>,
    /// Whether the copy is older than the RPO.
    pub breached: bool,
}

/// `replicate_status`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicationStatus {
    /// Every remote.
    pub remotes: Vec<RemoteView>,
    /// Every asset whose profile replicates, per remote.
    pub lag: Vec<ReplicaLag>,
    /// The next run of each profile replicating on its own calendar,
    /// soonest first.
    #[serde(default)]
    pub next: Vec<ReplicationNext>,
}

/// A profile's next scheduled replication.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicationNext {
    /// The profile.
    pub profile: String,
    /// Its remotes.
    pub remotes: Vec<String>,
    /// Its calendar expression.
    pub schedule: String,
    /// When, RFC 3339 UTC.
    pub at: String,
}

/// Why a request failed; clients act on the code, show the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The line is not a request (bad JSON, unknown op, missing field).
    BadRequest,
    /// The line exceeds [`MAX_REQUEST_BYTES`].
    TooLarge,
    /// No or unknown credential.
    Unauthenticated,
    /// The session ended (idle timeout, logout).
    SessionExpired,
    /// Wrong user, password or code (deliberately not saying which).
    LoginFailed,
    /// Too many failed logins; try again later.
    LockedOut,
    /// The caller's roles do not allow this.
    Forbidden,
    /// This action needs a TOTP code entered within the last minutes.
    FreshMfaRequired,
    /// No such object.
    NotFound,
    /// It exists already.
    Conflict,
    /// The arguments are wrong (a bad calendar expression, a weak password).
    Invalid,
    /// The daemon is not in a state to do it (bootstrap needed or done).
    State,
    /// Something failed inside the daemon; the message says what.
    Internal,
}

/// The error half of a response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// What kind of failure.
    pub code: ErrorCode,
    /// A sentence for the operator.
    pub message: String,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ApiError {}

impl ApiError {
    /// An error with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
        }
    }
}

/// One response line: `{"id":…,"ok":true,"result":…}` or
/// `{"id":…,"ok":false,"error":{"code":…,"message":…}}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Response {
    /// The request's id (0 when the request could not be read).
    pub id: u64,
    /// Whether it succeeded.
    pub ok: bool,
    /// The result (shape per op; see `docs/formats/api.md`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    /// The error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ApiError>,
}

/// The result of `login`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginResult {
    /// The session credential for later requests.
    pub session: String,
    /// The user.
    pub user: String,
    /// Their roles.
    pub roles: Vec<Role>,
    /// Idle timeout, in seconds.
    pub idle_timeout_secs: u64,
    /// Set when this login used a recovery code: how many are left.
    pub recovery_codes_left: Option<u32>,
}

/// The result of `whoami`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Whoami {
    /// The user.
    pub user: String,
    /// Effective roles.
    pub roles: Vec<Role>,
    /// `console` (session) or `api` (token).
    pub source: Source,
    /// The token id, when authenticated by a token.
    pub token: Option<String>,
}

/// The result of `token_create`: the secret, shown once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewToken {
    /// The token as listed.
    pub info: TokenInfo,
    /// The full credential, `ct_<id>_<secret>`.
    pub token: String,
}

/// The result of `asset_import`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportReport {
    /// Assets added.
    pub added: Vec<String>,
    /// Assets replaced.
    pub replaced: Vec<String>,
    /// Assets that exist and were left alone.
    pub skipped: Vec<String>,
    /// Assets with no profile (flagged as unprotected).
    pub unprotected: Vec<String>,
}

/// An asset as listed: the register row plus its protection state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetView {
    /// The register row.
    #[serde(flatten)]
    pub asset: Asset,
    /// No profile, or a profile that does not exist.
    pub unprotected: bool,
    /// The newest good (success or warning) backup, RFC 3339 UTC.
    pub last_good_backup: Option<String>,
    /// Whether the last good backup is older than the RPO.
    pub rpo_breached: bool,
}

/// Used by the shell to list snapshots through the daemon.
pub type SnapshotList = Vec<SnapshotInfo>;
