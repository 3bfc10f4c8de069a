//! The shell's one command table: every command the interactive shell and
//! `coffer remote …` accept, with its arguments, flags and help, and how a
//! parsed line becomes an [`Action`] (most often one API [`Call`]).
//!
//! The table drives parsing, `help`, and completion alike, so a command
//! added here is parsed, documented and completed at once.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use coffer_types::api::{
    Asset, AuditFilter, Call, Criticality, DrillPolicy, DrillSource, Duration, MediaStep,
    ObjectLockMode, Profile, RemoteKind, RemoteSpec, Retention, Role, S3Remote, Schedules,
    VerifyWhat,
};
use coffer_types::{JobKind, JobStatus, Level};

use super::words;

/// What a word stands for: how it is completed and checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgKind {
    /// Anything.
    Free,
    /// An asset's name.
    Asset,
    /// A profile's name.
    Profile,
    /// A user's name.
    User,
    /// A job id.
    Job,
    /// An API token id.
    Token,
    /// An alert id.
    Alert,
    /// Roles, comma-separated.
    Roles,
    /// A backup level.
    Level,
    /// A criticality.
    Criticality,
    /// A job status.
    JobStatus,
    /// A job kind.
    JobKind,
    /// A command word (for `help`).
    Command,
    /// A front panel button.
    Button,
    /// A file on this machine.
    File,
}

/// A positional argument.
#[derive(Debug, Clone, Copy)]
pub struct Pos {
    /// The placeholder shown in usage, e.g. `NAME`.
    pub name: &'static str,
    /// What it is.
    pub kind: ArgKind,
    /// Whether it must be given.
    pub required: bool,
    /// Whether it takes the rest of the words (joined by spaces).
    pub rest: bool,
}

const fn arg(name: &'static str, kind: ArgKind) -> Pos {
    Pos {
        name,
        kind,
        required: true,
        rest: false,
    }
}

const fn opt_arg(name: &'static str, kind: ArgKind) -> Pos {
    Pos {
        name,
        kind,
        required: false,
        rest: false,
    }
}

const fn rest_arg(name: &'static str, kind: ArgKind) -> Pos {
    Pos {
        name,
        kind,
        required: true,
        rest: true,
    }
}

/// A `--flag`, with or without a value.
#[derive(Debug, Clone, Copy)]
pub struct Flag {
    /// The name without the dashes.
    pub name: &'static str,
    /// The value's placeholder and kind; `None` for a switch.
    pub value: Option<(&'static str, ArgKind)>,
    /// Whether it must be given.
    pub required: bool,
    /// Whether it may be given more than once.
    pub repeat: bool,
    /// One line of help.
    pub help: &'static str,
}

impl Flag {
    const fn req(mut self) -> Flag {
        self.required = true;
        self
    }
    const fn rep(mut self) -> Flag {
        self.repeat = true;
        self
    }
}

const fn flag(name: &'static str, meta: &'static str, kind: ArgKind, help: &'static str) -> Flag {
    Flag {
        name,
        value: Some((meta, kind)),
        required: false,
        repeat: false,
        help,
    }
}

const fn switch(name: &'static str, help: &'static str) -> Flag {
    Flag {
        name,
        value: None,
        required: false,
        repeat: false,
        help,
    }
}

/// One command of the table: its words (`["asset", "add"]`), arguments,
/// flags, help, and how it becomes an action.
pub struct Entry {
    /// The command's words.
    pub words: &'static [&'static str],
    /// Positional arguments, in order.
    pub args: &'static [Pos],
    /// Flags.
    pub flags: &'static [Flag],
    /// What it does.
    pub help: &'static str,
    build: fn(&Parsed, &Ctx) -> Result<Action, String>,
}

impl Entry {
    /// `asset add NAME --owner OWNER … [--profile PROFILE]`.
    pub fn usage(&self) -> String {
        let mut s = self.words.join(" ");
        for a in self.args {
            let mut name = a.name.to_string();
            if a.rest {
                name.push_str("...");
            }
            if a.required {
                s.push_str(&format!(" {name}"));
            } else {
                s.push_str(&format!(" [{name}]"));
            }
        }
        for f in self.flags {
            let mut one = format!("--{}", f.name);
            if let Some((meta, _)) = f.value {
                one.push(' ');
                one.push_str(meta);
            }
            let one = if f.required { one } else { format!("[{one}]") };
            s.push(' ');
            s.push_str(&one);
            if f.repeat {
                s.push_str("...");
            }
        }
        s
    }

    /// The flag called `name`.
    pub fn flag(&self, name: &str) -> Option<&'static Flag> {
        self.flags.iter().find(|f| f.name == name)
    }
}

/// A command group as `help` lists it.
pub struct Group {
    /// The first word.
    pub name: &'static str,
    /// One line.
    pub summary: &'static str,
}

/// What the shell is asked to do.
#[derive(Debug, Clone)]
pub enum Action {
    /// Send this call and show its result.
    Call(Call),
    /// Log in (prompts for what is missing; passwords are never on the line).
    Login {
        /// The user, when given.
        user: Option<String>,
    },
    /// End the session.
    Logout,
    /// Change the password (prompts).
    Passwd,
    /// Prove fresh MFA (prompts for a code).
    MfaVerify,
    /// Add a user (prompts for the initial password twice).
    UserAdd {
        /// Login name.
        name: String,
        /// Roles.
        roles: Vec<Role>,
    },
    /// Fetch an asset, change what was given, send it back.
    AssetEdit {
        /// The asset.
        name: String,
        /// The changes.
        edit: AssetEdit,
    },
    /// Fetch a profile, change what was given, send it back.
    ProfileEdit {
        /// The profile.
        name: String,
        /// The changes.
        edit: ProfileEdit,
    },
    /// Read a CSV file here and import it.
    AssetImport {
        /// The file.
        file: PathBuf,
        /// Replace existing assets.
        replace: bool,
    },
    /// Queue a backup, and maybe watch it.
    JobRun {
        /// The asset.
        asset: String,
        /// The level.
        level: Level,
        /// Watch it until it ends.
        watch: bool,
    },
    /// Watch a job's progress until it ends.
    JobWatch {
        /// The job.
        id: i64,
    },
    /// Press a button of the simulated front panel, then show the panel.
    PanelPress {
        /// `up`, `down`, `ok` or `back`.
        button: String,
    },
    /// Redraw the front panel until Ctrl-C.
    PanelWatch,
    /// Add a remote; an S3 secret is read here (from a file or a prompt),
    /// never from the command line.
    RemoteAdd {
        /// The remote.
        spec: RemoteSpec,
        /// A file holding the S3 secret access key.
        secret_file: Option<PathBuf>,
    },
    /// Pair with an appliance remote: without a fingerprint, show both and
    /// ask the operator to confirm the remote's.
    RemotePair {
        /// The remote.
        name: String,
        /// The fingerprint confirmed beforehand.
        fingerprint: Option<String>,
    },
    /// Queue a replication, and maybe watch it.
    ReplicateRun {
        /// The remote.
        remote: String,
        /// Watch it until it ends.
        watch: bool,
    },
    /// Restore from a remote's copy; the copy's passphrase is read here.
    RemoteRestore {
        /// The remote.
        remote: String,
        /// Which store's copy (hex id).
        store: Option<String>,
        /// Snapshot id, prefix or `latest`.
        snapshot: String,
        /// Where to restore.
        target: String,
        /// A file holding the copy's passphrase (else a prompt).
        passphrase_file: Option<PathBuf>,
        /// Watch it until it ends.
        watch: bool,
    },
    /// Show help (on a command, when given).
    Help(Vec<String>),
    /// Leave the shell.
    Exit,
}

impl Action {
    /// The call this action sends as is, when there is one.
    #[cfg(test)]
    pub fn call(&self) -> Option<Call> {
        match self {
            Action::Call(c) => Some(c.clone()),
            Action::JobRun { asset, level, .. } => Some(Call::JobRun {
                asset: asset.clone(),
                level: *level,
            }),
            Action::Logout => Some(Call::Logout),
            _ => None,
        }
    }
}

/// The commands whose lines are never written to the history file. (No
/// secret is ever on a line, but nothing is gained by keeping these.)
pub const PRIVATE_COMMANDS: &[&str] = &["login", "passwd", "mfa"];

/// Changes to an asset; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AssetEdit {
    /// New owner.
    pub owner: Option<String>,
    /// New criticality.
    pub criticality: Option<Criticality>,
    /// New sources (replacing all).
    pub sources: Option<Vec<String>>,
    /// New excludes (replacing all; an empty list clears them).
    pub excludes: Option<Vec<String>>,
    /// New RPO.
    pub rpo: Option<Duration>,
    /// New RTO.
    pub rto: Option<Duration>,
    /// New profile; `Some(None)` removes it.
    pub profile: Option<Option<String>>,
}

impl AssetEdit {
    fn from_parsed(p: &Parsed) -> Result<AssetEdit, String> {
        let sources: Vec<String> = p.all("source").iter().map(|s| s.to_string()).collect();
        let excludes: Vec<String> = p
            .all("exclude")
            .iter()
            .filter(|s| !s.is_empty())
            .map(|s| s.to_string())
            .collect();
        Ok(AssetEdit {
            owner: p.one("owner").map(str::to_string),
            criticality: p.parse_one::<Criticality>("criticality")?,
            sources: (!sources.is_empty()).then_some(sources),
            excludes: p.has("exclude").then_some(excludes),
            rpo: p.parse_one::<Duration>("rpo")?,
            rto: p.parse_one::<Duration>("rto")?,
            profile: p.one("profile").map(none_if_empty),
        })
    }

    /// Applies the changes.
    pub fn apply(&self, a: &mut Asset) {
        if let Some(v) = &self.owner {
            a.owner = v.clone();
        }
        if let Some(v) = self.criticality {
            a.criticality = v;
        }
        if let Some(v) = &self.sources {
            a.sources = v.clone();
        }
        if let Some(v) = &self.excludes {
            a.excludes = v.clone();
        }
        if let Some(v) = self.rpo {
            a.rpo = v;
        }
        if let Some(v) = self.rto {
            a.rto = v;
        }
        if let Some(v) = &self.profile {
            a.profile = v.clone();
        }
    }

    /// Whether nothing would change.
    pub fn is_empty(&self) -> bool {
        *self == AssetEdit::default()
    }
}

/// Changes to a profile; `None` leaves a field as it is, `Some(None)`
/// removes an optional one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfileEdit {
    /// Full schedule.
    pub full: Option<Option<String>>,
    /// Differential schedule.
    pub differential: Option<Option<String>>,
    /// Incremental schedule.
    pub incremental: Option<Option<String>>,
    /// keep-last.
    pub keep_last: Option<Option<u32>>,
    /// keep-hourly.
    pub keep_hourly: Option<Option<u32>>,
    /// keep-daily.
    pub keep_daily: Option<Option<u32>>,
    /// keep-weekly.
    pub keep_weekly: Option<Option<u32>>,
    /// keep-monthly.
    pub keep_monthly: Option<Option<u32>>,
    /// keep-yearly.
    pub keep_yearly: Option<Option<u32>>,
    /// keep-within.
    pub keep_within: Option<Option<Duration>>,
    /// lock-for: each new snapshot's retention lock.
    pub lock_for: Option<Option<Duration>>,
    /// Target store.
    pub target: Option<String>,
    /// Tape pool.
    pub tape_pool: Option<Option<String>>,
    /// Remotes replications go to (empty: none).
    pub replicate_to: Option<Vec<String>>,
    /// The replications' own calendar (`None`: after each backup).
    pub replicate_schedule: Option<Option<String>>,
    /// Retries.
    pub retries: Option<u32>,
    /// Retry backoff.
    pub retry_backoff: Option<Duration>,
    /// Restore drills (`Some(None)`: none).
    pub drill: Option<Option<DrillPolicy>>,
}

impl ProfileEdit {
    fn from_parsed(p: &Parsed) -> Result<ProfileEdit, String> {
        let keep = |name: &str| -> Result<Option<Option<u32>>, String> {
            p.one(name)
                .map(|v| {
                    if is_none_word(v) {
                        Ok(None)
                    } else {
                        number::<u32>(name, v).map(Some)
                    }
                })
                .transpose()
        };
        let duration = |name: &str| -> Result<Option<Option<Duration>>, String> {
            p.one(name)
                .map(|v| {
                    if is_none_word(v) {
                        Ok(None)
                    } else {
                        Duration::from_str(v)
                            .map(Some)
                            .map_err(|e| format!("--{name}: {e}"))
                    }
                })
                .transpose()
        };
        let keep_within = duration("keep-within")?;
        let lock_for = duration("lock-for")?;
        Ok(ProfileEdit {
            full: p.one("full").map(none_if_empty),
            differential: p.one("differential").map(none_if_empty),
            incremental: p.one("incremental").map(none_if_empty),
            keep_last: keep("keep-last")?,
            keep_hourly: keep("keep-hourly")?,
            keep_daily: keep("keep-daily")?,
            keep_weekly: keep("keep-weekly")?,
            keep_monthly: keep("keep-monthly")?,
            keep_yearly: keep("keep-yearly")?,
            keep_within,
            lock_for,
            target: p.one("target").map(str::to_string),
            tape_pool: p.one("tape-pool").map(none_if_empty),
            replicate_to: p.one("replicate-to").map(|v| {
                if is_none_word(v) {
                    Vec::new()
                } else {
                    v.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect()
                }
            }),
            replicate_schedule: p.one("replicate-schedule").map(|v| {
                if is_none_word(v) || v == "after-backup" {
                    None
                } else {
                    Some(v.to_string())
                }
            }),
            retries: p
                .one("retries")
                .map(|v| number::<u32>("retries", v))
                .transpose()?,
            retry_backoff: p.parse_one::<Duration>("retry-backoff")?,
            drill: match p.one("drill") {
                None if p.has("drill-from") || p.has("drill-random") || p.has("drill-remote") => {
                    return Err(
                        "--drill-from, --drill-remote and --drill-random go with --drill CALENDAR"
                            .into(),
                    );
                }
                None => None,
                Some(v) if is_none_word(v) => Some(None),
                Some(v) => Some(Some(DrillPolicy {
                    schedule: v.to_string(),
                    from: p
                        .parse_one::<DrillSource>("drill-from")?
                        .unwrap_or_default(),
                    random: p.has("drill-random"),
                    remote: p.one("drill-remote").map(str::to_string),
                })),
            },
        })
    }

    /// Applies the changes.
    pub fn apply(&self, p: &mut Profile) {
        fn set<T: Clone>(field: &mut T, v: &Option<T>) {
            if let Some(v) = v {
                *field = v.clone();
            }
        }
        set(&mut p.schedules.full, &self.full);
        set(&mut p.schedules.differential, &self.differential);
        set(&mut p.schedules.incremental, &self.incremental);
        set(&mut p.retention.keep_last, &self.keep_last);
        set(&mut p.retention.keep_daily, &self.keep_daily);
        set(&mut p.retention.keep_weekly, &self.keep_weekly);
        set(&mut p.retention.keep_monthly, &self.keep_monthly);
        set(&mut p.retention.keep_yearly, &self.keep_yearly);
        set(&mut p.retention.keep_within, &self.keep_within);
        set(&mut p.retention.keep_hourly, &self.keep_hourly);
        set(&mut p.retention.lock_for, &self.lock_for);
        set(&mut p.target, &self.target);
        set(&mut p.tape_pool, &self.tape_pool);
        set(&mut p.replicate_to, &self.replicate_to);
        set(&mut p.replicate_schedule, &self.replicate_schedule);
        set(&mut p.drill, &self.drill);
        set(&mut p.retries, &self.retries);
        set(&mut p.retry_backoff, &self.retry_backoff);
    }

    /// Whether nothing would change.
    pub fn is_empty(&self) -> bool {
        *self == ProfileEdit::default()
    }
}

/// A new profile named `name` with the API's defaults (target `default`,
/// two retries five minutes apart) and no schedules.
pub fn new_profile(name: &str) -> Profile {
    Profile {
        name: name.to_string(),
        schedules: Schedules::default(),
        retention: Retention::default(),
        target: "default".into(),
        tape_pool: None,
        replicate_to: Vec::new(),
        replicate_schedule: None,
        retries: 2,
        retry_backoff: Duration(300),
        drill: None,
    }
}

/// `''` and `none` clear an optional setting.
fn is_none_word(v: &str) -> bool {
    v.is_empty() || v == "none"
}

fn none_if_empty(v: &str) -> Option<String> {
    (!is_none_word(v)).then(|| v.to_string())
}

/// What parsing needs from outside: the time (for `--since 24h`).
#[derive(Debug, Clone, Copy)]
pub struct Ctx {
    /// Now, in milliseconds since the Unix epoch.
    pub now_ms: i64,
}

impl Ctx {
    /// The context of this moment.
    pub fn now() -> Ctx {
        Ctx {
            now_ms: jiff::Timestamp::now().as_millisecond(),
        }
    }
}

/// A line that does not make a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError {
    /// What is wrong.
    pub message: String,
    /// The command's usage, when the command was recognised.
    pub usage: Option<String>,
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(u) = &self.usage {
            write!(f, "\nusage: {u}")?;
        }
        Ok(())
    }
}

impl std::error::Error for UsageError {}

fn usage_err(message: impl Into<String>, usage: Option<String>) -> UsageError {
    UsageError {
        message: message.into(),
        usage,
    }
}

/// A line matched to its entry: positionals and flag values.
pub struct Parsed {
    /// Positional arguments (a `rest` argument joined by spaces).
    pub pos: Vec<String>,
    /// Flags with values, in the order given.
    pub flags: Vec<(&'static str, String)>,
    /// Switches given.
    pub switches: Vec<&'static str>,
}

impl Parsed {
    fn pos(&self, i: usize) -> Option<&str> {
        self.pos.get(i).map(String::as_str)
    }
    /// The required positional `i` (checked by the parser).
    fn req(&self, i: usize) -> &str {
        self.pos(i).unwrap_or_default()
    }
    fn one(&self, name: &str) -> Option<&str> {
        self.flags
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
    fn all(&self, name: &str) -> Vec<&str> {
        self.flags
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
    fn has(&self, name: &str) -> bool {
        self.switches.contains(&name) || self.flags.iter().any(|(n, _)| *n == name)
    }
    fn parse_one<T: FromStr>(&self, name: &str) -> Result<Option<T>, String>
    where
        T::Err: fmt::Display,
    {
        self.one(name)
            .map(|v| T::from_str(v).map_err(|e| format!("--{name}: {e}")))
            .transpose()
    }
    fn number_flag<T: FromStr>(&self, name: &str) -> Result<Option<T>, String> {
        self.one(name).map(|v| number::<T>(name, v)).transpose()
    }
    fn roles(&self, name: &str) -> Result<Vec<Role>, String> {
        let mut out = Vec::new();
        for v in self.all(name) {
            for r in roles(v)? {
                if !out.contains(&r) {
                    out.push(r);
                }
            }
        }
        Ok(out)
    }
}

fn remote_add(p: &Parsed) -> Result<Action, String> {
    let name = p.req(0).to_string();
    let bandwidth_mb_s = p.number_flag::<u32>("bandwidth")?.unwrap_or(0);
    let appliance = p.one("appliance").map(str::to_string);
    let fingerprint = p.one("fingerprint").map(str::to_string);
    match (p.one("s3-bucket"), appliance.is_some() || p.has("inbound")) {
        (Some(_), true) => Err("give --appliance (or --inbound) or --s3-bucket, not both".into()),
        (None, false) => Err(
            "give --appliance HOST:PORT, --inbound --fingerprint FP, or --s3-bucket BUCKET".into(),
        ),
        (None, true) => {
            if p.has("inbound") && fingerprint.is_none() {
                return Err(
                    "--inbound needs --fingerprint (the remote's, from its console)".into(),
                );
            }
            Ok(Action::RemoteAdd {
                spec: RemoteSpec {
                    name,
                    kind: RemoteKind::Appliance,
                    address: appliance,
                    fingerprint,
                    s3: None,
                    bandwidth_mb_s,
                },
                secret_file: None,
            })
        }
        (Some(bucket), false) => {
            let lock = match p.one("lock").unwrap_or("compliance") {
                "compliance" => ObjectLockMode::Compliance,
                "governance" => ObjectLockMode::Governance,
                "none" => ObjectLockMode::None,
                other => {
                    return Err(format!(
                        "--lock: '{other}' is not compliance, governance or none"
                    ));
                }
            };
            Ok(Action::RemoteAdd {
                spec: RemoteSpec {
                    name,
                    kind: RemoteKind::S3,
                    address: None,
                    fingerprint: None,
                    s3: Some(S3Remote {
                        endpoint: p.one("endpoint").map(str::to_string),
                        region: p.one("region").unwrap_or("us-east-1").to_string(),
                        bucket: bucket.to_string(),
                        prefix: p.one("prefix").unwrap_or_default().to_string(),
                        path_style: !p.has("virtual-host"),
                        lock,
                        lock_days: p.number_flag::<u32>("lock-days")?.unwrap_or(0),
                        access_key_id: p.one("access-key-id").map(str::to_string),
                        secret_access_key: None,
                    }),
                    bandwidth_mb_s,
                },
                secret_file: p.one("secret-file").map(PathBuf::from),
            })
        }
    }
}

fn number<T: FromStr>(what: &str, v: &str) -> Result<T, String> {
    v.parse::<T>()
        .map_err(|_| format!("--{what}: '{v}' is not a number"))
}

fn job_id(v: &str) -> Result<i64, String> {
    v.strip_prefix('#')
        .unwrap_or(v)
        .parse::<i64>()
        .map_err(|_| format!("'{v}' is not a job id (a number, e.g. 42)"))
}

fn alert_id(v: &str) -> Result<i64, String> {
    v.parse::<i64>()
        .map_err(|_| format!("'{v}' is not an alert id (a number)"))
}

/// `administrator,auditor` to roles, in order, without repeats.
pub fn roles(v: &str) -> Result<Vec<Role>, String> {
    let mut out: Vec<Role> = Vec::new();
    for part in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let r = Role::from_str(part).map_err(|e| e.to_string())?;
        if !out.contains(&r) {
            out.push(r);
        }
    }
    if out.is_empty() {
        return Err("no role given".into());
    }
    Ok(out)
}

/// A lock's end: RFC 3339, a date (midnight UTC), or a duration from now.
pub fn until_time(v: &str, now_ms: i64) -> Result<i64, String> {
    if let Ok(d) = Duration::from_str(v.trim()) {
        return Ok(now_ms.saturating_add(d.ms()));
    }
    parse_time(v, now_ms).map_err(|_| {
        format!(
            "'{v}' is neither a time (RFC 3339 such as 2027-01-31T08:00:00Z, or a date 2027-01-31) \
             nor a duration from now (such as 90d)"
        )
    })
}

/// A point in time for the audit filter: RFC 3339 (`2026-01-31T08:00:00Z`),
/// a date (`2026-01-31`, midnight UTC), or a duration ago (`24h`, `7d`,
/// `24h-ago`).
pub fn parse_time(v: &str, now_ms: i64) -> Result<i64, String> {
    let t = v.trim();
    let d = t
        .strip_suffix("-ago")
        .or_else(|| t.strip_suffix(" ago"))
        .or_else(|| t.strip_suffix("ago"))
        .unwrap_or(t);
    if let Ok(d) = Duration::from_str(d) {
        return Ok(now_ms.saturating_sub(d.ms()));
    }
    if let Ok(ts) = t.parse::<jiff::Timestamp>() {
        return Ok(ts.as_millisecond());
    }
    if let Ok(date) = t.parse::<jiff::civil::Date>()
        && let Ok(z) = date.to_zoned(jiff::tz::TimeZone::UTC)
    {
        return Ok(z.timestamp().as_millisecond());
    }
    Err(format!(
        "'{v}' is neither a time (RFC 3339 such as 2026-01-31T08:00:00Z, or a date 2026-01-31) \
         nor a duration ago (such as 24h or 7d)"
    ))
}

const ASSET_FLAGS: &[Flag] = &[
    flag("owner", "OWNER", ArgKind::Free, "who is accountable for it"),
    flag(
        "criticality",
        "C",
        ArgKind::Criticality,
        "low, medium, high or critical",
    ),
    flag("source", "PATH", ArgKind::Free, "a path to back up").rep(),
    flag(
        "exclude",
        "GLOB",
        ArgKind::Free,
        "leave out paths matching this glob ('' clears)",
    )
    .rep(),
    flag(
        "rpo",
        "DURATION",
        ArgKind::Free,
        "recovery point objective, e.g. 1d",
    ),
    flag(
        "rto",
        "DURATION",
        ArgKind::Free,
        "recovery time objective, e.g. 4h",
    ),
    flag(
        "profile",
        "PROFILE",
        ArgKind::Profile,
        "the profile that backs it up ('none' removes it)",
    ),
];

const ASSET_ADD_FLAGS: &[Flag] = &[
    ASSET_FLAGS[0].req(),
    ASSET_FLAGS[1].req(),
    ASSET_FLAGS[2].req(),
    ASSET_FLAGS[3],
    ASSET_FLAGS[4].req(),
    ASSET_FLAGS[5].req(),
    ASSET_FLAGS[6],
];

/// The retention flags (`retention set`; `profile add|edit` take them too).
const RETENTION_FLAGS: [Flag; 8] = [
    flag(
        "keep-last",
        "N",
        ArgKind::Free,
        "keep the newest N snapshots ('none' removes)",
    ),
    flag(
        "keep-hourly",
        "N",
        ArgKind::Free,
        "keep one an hour for N hours",
    ),
    flag(
        "keep-daily",
        "N",
        ArgKind::Free,
        "keep one a day for N days",
    ),
    flag(
        "keep-weekly",
        "N",
        ArgKind::Free,
        "keep one a week for N weeks",
    ),
    flag(
        "keep-monthly",
        "N",
        ArgKind::Free,
        "keep one a month for N months",
    ),
    flag(
        "keep-yearly",
        "N",
        ArgKind::Free,
        "keep one a year for N years",
    ),
    flag(
        "keep-within",
        "DURATION",
        ArgKind::Free,
        "keep everything younger than this",
    ),
    flag(
        "lock-for",
        "DURATION",
        ArgKind::Free,
        "lock each new snapshot this long (a retention lock nobody can lift)",
    ),
];

/// The profile's other flags (schedules, target, replication, retries).
const PROFILE_OWN_FLAGS: [Flag; 13] = [
    flag(
        "full",
        "EXPR",
        ArgKind::Free,
        "calendar expression for full backups, e.g. 'Sun 01:00' ('none' removes)",
    ),
    flag(
        "differential",
        "EXPR",
        ArgKind::Free,
        "calendar expression for differential backups",
    ),
    flag(
        "incremental",
        "EXPR",
        ArgKind::Free,
        "calendar expression for incremental backups",
    ),
    flag(
        "target",
        "STORE",
        ArgKind::Free,
        "the store backups go to (default: default)",
    ),
    flag(
        "tape-pool",
        "POOL",
        ArgKind::Free,
        "the tape media pool copies go to",
    ),
    flag(
        "replicate-to",
        "REMOTE,…",
        ArgKind::Free,
        "the remotes replications go to ('none': no replication)",
    ),
    flag(
        "replicate-schedule",
        "CALENDAR",
        ArgKind::Free,
        "when replications run, e.g. '*-*-* 02:00' (default 'after-backup': after each good backup)",
    ),
    flag(
        "retries",
        "N",
        ArgKind::Free,
        "retries of a failed scheduled job (default 2)",
    ),
    flag(
        "retry-backoff",
        "DURATION",
        ArgKind::Free,
        "wait before the first retry, doubled for each further one (default 5m)",
    ),
    flag(
        "drill",
        "CALENDAR",
        ArgKind::Free,
        "restore drills of the profile's assets, e.g. '*-01,04,07,10-01 03:00' ('none': no drills)",
    ),
    flag(
        "drill-from",
        "disk|tape|remote",
        ArgKind::Free,
        "the copy drills restore (default disk)",
    ),
    flag(
        "drill-remote",
        "REMOTE",
        ArgKind::Free,
        "with --drill-from remote: the remote whose copy drills restore",
    ),
    switch(
        "drill-random",
        "drill a snapshot picked at random, not the newest",
    ),
];

/// Every flag of `profile add|edit`: its own and the retention flags.
const PROFILE_FLAGS: &[Flag] = &join::<13, 8, 21>(PROFILE_OWN_FLAGS, RETENTION_FLAGS);

/// Two flag lists as one, at compile time.
const fn join<const A: usize, const B: usize, const N: usize>(
    a: [Flag; A],
    b: [Flag; B],
) -> [Flag; N] {
    assert!(A > 0 && A + B == N);
    let mut out = [a[0]; N];
    let mut i = 0;
    while i < N {
        out[i] = if i < A { a[i] } else { b[i - A] };
        i += 1;
    }
    out
}

/// The command groups, in the order `help` lists them.
pub static GROUPS: &[Group] = &[
    Group {
        name: "status",
        summary: "the daemon's state (no login needed)",
    },
    Group {
        name: "login",
        summary: "log in with password and TOTP code",
    },
    Group {
        name: "logout",
        summary: "end the session",
    },
    Group {
        name: "whoami",
        summary: "who you are logged in as, with which roles",
    },
    Group {
        name: "passwd",
        summary: "change your password",
    },
    Group {
        name: "mfa",
        summary: "confirm fresh MFA with a TOTP code",
    },
    Group {
        name: "user",
        summary: "users and their roles",
    },
    Group {
        name: "token",
        summary: "API tokens for scripts",
    },
    Group {
        name: "asset",
        summary: "the asset register",
    },
    Group {
        name: "profile",
        summary: "backup profiles: schedules, retention, retries",
    },
    Group {
        name: "schedule",
        summary: "upcoming runs; check calendar expressions",
    },
    Group {
        name: "job",
        summary: "run, list, watch and cancel jobs",
    },
    Group {
        name: "snapshot",
        summary: "restore points",
    },
    Group {
        name: "alert",
        summary: "alerts raised by the monitors",
    },
    Group {
        name: "retention",
        summary: "retention policies: the plan (what expires next, and why) and setting them",
    },
    Group {
        name: "prune",
        summary: "remove the snapshots retention no longer keeps",
    },
    Group {
        name: "gc",
        summary: "free what no snapshot references",
    },
    Group {
        name: "lock",
        summary: "retention locks: snapshots nobody can delete before a date",
    },
    Group {
        name: "hold",
        summary: "legal holds (security officer, fresh MFA)",
    },
    Group {
        name: "clock",
        summary: "the trusted clock retention locks expire by",
    },
    Group {
        name: "key",
        summary: "the store's keys: algorithm, ids, history",
    },
    Group {
        name: "disposal",
        summary: "disposal certificates for the auditor",
    },
    Group {
        name: "report",
        summary: "the ISO 27001 evidence report",
    },
    Group {
        name: "compliance",
        summary: "each asset against 3-2-1-1-0",
    },
    Group {
        name: "verify",
        summary: "read the store or the tape copies back in full (jobs)",
    },
    Group {
        name: "drill",
        summary: "restore drills: timed, verified restores as evidence",
    },
    Group {
        name: "media",
        summary: "tape media rotation: the day's procedure, vault transfers, custody",
    },
    Group {
        name: "audit",
        summary: "the audit log",
    },
    Group {
        name: "panel",
        summary: "the front panel: show it, press its buttons",
    },
    Group {
        name: "update",
        summary: "the appliance's A/B slots: install a signed update, see what boots",
    },
    Group {
        name: "system",
        summary: "the appliance's machine: restart it",
    },
    Group {
        name: "remote",
        summary: "offsite remotes: other appliances, S3 buckets",
    },
    Group {
        name: "replicate",
        summary: "offsite replication: run it, see how far each copy reaches",
    },
    Group {
        name: "reload",
        summary: "make the daemon re-read its configuration",
    },
    Group {
        name: "help",
        summary: "help on every command",
    },
    Group {
        name: "exit",
        summary: "leave the shell (also: quit)",
    },
];

macro_rules! entry {
    ($words:expr, $args:expr, $flags:expr, $help:expr, $build:expr) => {
        Entry {
            words: $words,
            args: $args,
            flags: $flags,
            help: $help,
            build: $build,
        }
    };
}

fn call(c: Call) -> Result<Action, String> {
    Ok(Action::Call(c))
}

/// A media rotation step, on the day `--date` names (default today).
fn media_step(p: &Parsed, step: MediaStep) -> Result<Action, String> {
    call(Call::MediaStep {
        step,
        date: p.one("date").map(str::to_string),
    })
}

fn manifest_id(v: &str) -> Result<i64, String> {
    v.parse()
        .map_err(|_| format!("'{v}' is not a transfer manifest number"))
}

/// The barcodes a `BARCODE…` argument lists.
fn barcodes(p: &Parsed) -> Vec<String> {
    p.req(0).split_whitespace().map(str::to_string).collect()
}

/// Every command.
pub static ENTRIES: &[Entry] = &[
    entry!(
        &["status"],
        &[],
        &[],
        "Show the daemon's state: version, host, clock, active jobs, open alerts, and the system's health (CPU, memory, load, temperatures, disk). Needs no login.",
        |_, _| call(Call::Status)
    ),
    entry!(
        &["login"],
        &[opt_arg("USER", ArgKind::User)],
        &[],
        "Log in: asks for the user (unless given), the password and a TOTP code (or a recovery code).",
        |p, _| Ok(Action::Login {
            user: p.pos(0).map(str::to_string)
        })
    ),
    entry!(&["logout"], &[], &[], "End the session.", |_, _| Ok(
        Action::Logout
    )),
    entry!(
        &["whoami"],
        &[],
        &[],
        "Show who you are, your effective roles, and whether you use a session or a token.",
        |_, _| call(Call::Whoami)
    ),
    entry!(
        &["passwd"],
        &[],
        &[],
        "Change your password: asks for the current one and the new one twice.",
        |_, _| Ok(Action::Passwd)
    ),
    entry!(
        &["mfa"],
        &[],
        &[],
        "Confirm fresh MFA for this session with a current TOTP code. Destructive actions ask for one \
         when needed, so this is only for doing it ahead.",
        |_, _| Ok(Action::MfaVerify)
    ),
    entry!(
        &["user", "list"],
        &[],
        &[],
        "List users with their roles, MFA enrollment and lockouts.",
        |_, _| call(Call::UserList)
    ),
    entry!(
        &["user", "add"],
        &[arg("NAME", ArgKind::Free)],
        &[flag(
            "role",
            "ROLE[,ROLE]",
            ArgKind::Roles,
            "administrator, backup-operator, restore-operator, auditor, security-officer",
        )
        .req()
        .rep()],
        "Add a user: asks for the initial password twice, then shows the TOTP enrollment (QR code, \
         secret, recovery codes) to hand to them.",
        |p, _| Ok(Action::UserAdd {
            name: p.req(0).to_string(),
            roles: p.roles("role")?,
        })
    ),
    entry!(
        &["user", "roles"],
        &[
            arg("NAME", ArgKind::User),
            rest_arg("ROLE[,ROLE]", ArgKind::Roles)
        ],
        &[],
        "Replace a user's roles (comma- or space-separated).",
        |p, _| call(Call::UserRoles {
            name: p.req(0).to_string(),
            roles: roles(&p.req(1).replace(' ', ","))?,
        })
    ),
    entry!(
        &["user", "remove"],
        &[arg("NAME", ArgKind::User)],
        &[],
        "Remove a user with their tokens and sessions.",
        |p, _| call(Call::UserRemove {
            name: p.req(0).to_string()
        })
    ),
    entry!(
        &["user", "unlock"],
        &[arg("NAME", ArgKind::User)],
        &[],
        "Lift a lockout after repeated failed logins.",
        |p, _| call(Call::UserUnlock {
            name: p.req(0).to_string()
        })
    ),
    entry!(
        &["user", "reset-mfa"],
        &[arg("NAME", ArgKind::User)],
        &[],
        "Replace a user's TOTP secret and recovery codes, and show the new enrollment.",
        |p, _| call(Call::UserResetMfa {
            name: p.req(0).to_string()
        })
    ),
    entry!(
        &["token", "create"],
        &[arg("NAME", ArgKind::Free)],
        &[
            flag(
                "role",
                "ROLE[,ROLE]",
                ArgKind::Roles,
                "roles it may use (a subset of yours)"
            )
            .req()
            .rep(),
            flag(
                "expires",
                "DURATION",
                ArgKind::Free,
                "lifetime, e.g. 90d (the default)"
            ),
        ],
        "Create an API token for scripts. Its secret is shown once.",
        |p, _| call(Call::TokenCreate {
            name: p.req(0).to_string(),
            roles: p.roles("role")?,
            expires_in: p.parse_one::<Duration>("expires")?,
        })
    ),
    entry!(
        &["token", "list"],
        &[],
        &[],
        "List API tokens (your own; all of them for administrators and security officers).",
        |_, _| call(Call::TokenList)
    ),
    entry!(
        &["token", "revoke"],
        &[arg("ID", ArgKind::Token)],
        &[],
        "Revoke an API token.",
        |p, _| call(Call::TokenRevoke {
            id: p.req(0).to_string()
        })
    ),
    entry!(
        &["asset", "list"],
        &[],
        &[],
        "List the asset register with each asset's protection: UNPROTECTED (no profile) and \
         RPO BREACHED (the last good backup is older than the RPO).",
        |_, _| call(Call::AssetList)
    ),
    entry!(
        &["asset", "show"],
        &[arg("NAME", ArgKind::Asset)],
        &[],
        "Show one asset.",
        |p, _| call(Call::AssetGet {
            name: p.req(0).to_string()
        })
    ),
    entry!(
        &["asset", "add"],
        &[arg("NAME", ArgKind::Free)],
        ASSET_ADD_FLAGS,
        "Add an asset to the register. Without --profile it is flagged as unprotected.",
        |p, _| {
            let e = AssetEdit::from_parsed(p)?;
            Ok(Action::Call(Call::AssetAdd {
                asset: Asset {
                    name: p.req(0).to_string(),
                    owner: e.owner.unwrap_or_default(),
                    criticality: e.criticality.unwrap_or(Criticality::Medium),
                    sources: e.sources.unwrap_or_default(),
                    excludes: e.excludes.unwrap_or_default(),
                    rpo: e.rpo.unwrap_or_default(),
                    rto: e.rto.unwrap_or_default(),
                    profile: e.profile.flatten(),
                },
            }))
        }
    ),
    entry!(
        &["asset", "edit"],
        &[arg("NAME", ArgKind::Asset)],
        ASSET_FLAGS,
        "Change an asset: only what is given changes. --source and --exclude replace the whole list.",
        |p, _| {
            let edit = AssetEdit::from_parsed(p)?;
            if edit.is_empty() {
                return Err("nothing to change: give at least one flag".into());
            }
            Ok(Action::AssetEdit {
                name: p.req(0).to_string(),
                edit,
            })
        }
    ),
    entry!(
        &["asset", "remove"],
        &[arg("NAME", ArgKind::Asset)],
        &[],
        "Remove an asset from the register (its snapshots stay).",
        |p, _| call(Call::AssetRemove {
            name: p.req(0).to_string()
        })
    ),
    entry!(
        &["asset", "import"],
        &[arg("FILE.csv", ArgKind::File)],
        &[switch("replace", "replace assets that exist already")],
        "Import an asset register from a CSV file on this machine (its columns are in \
         docs/formats/api.md).",
        |p, _| Ok(Action::AssetImport {
            file: PathBuf::from(p.req(0)),
            replace: p.has("replace"),
        })
    ),
    entry!(
        &["profile", "list"],
        &[],
        &[],
        "List backup profiles.",
        |_, _| call(Call::ProfileList)
    ),
    entry!(
        &["profile", "show"],
        &[arg("NAME", ArgKind::Profile)],
        &[],
        "Show one profile.",
        |p, _| call(Call::ProfileGet {
            name: p.req(0).to_string()
        })
    ),
    entry!(
        &["profile", "add"],
        &[arg("NAME", ArgKind::Free)],
        PROFILE_FLAGS,
        "Add a profile. Quote calendar expressions: --full 'Sun 01:00'.",
        |p, _| {
            let edit = ProfileEdit::from_parsed(p)?;
            let mut profile = new_profile(p.req(0));
            edit.apply(&mut profile);
            call(Call::ProfileAdd { profile })
        }
    ),
    entry!(
        &["profile", "edit"],
        &[arg("NAME", ArgKind::Profile)],
        PROFILE_FLAGS,
        "Change a profile: only what is given changes; 'none' removes a schedule or a keep rule. \
         Schedule and retention changes need fresh MFA.",
        |p, _| {
            let edit = ProfileEdit::from_parsed(p)?;
            if edit.is_empty() {
                return Err("nothing to change: give at least one flag".into());
            }
            Ok(Action::ProfileEdit {
                name: p.req(0).to_string(),
                edit,
            })
        }
    ),
    entry!(
        &["profile", "remove"],
        &[arg("NAME", ArgKind::Profile)],
        &[],
        "Remove a profile that no asset uses.",
        |p, _| call(Call::ProfileRemove {
            name: p.req(0).to_string()
        })
    ),
    entry!(
        &["schedule", "next"],
        &[opt_arg("N", ArgKind::Free)],
        &[],
        "Show the next N scheduled runs (default 10).",
        |p, _| call(Call::ScheduleNext {
            count: p.pos(0).map(|v| number::<u32>("N", v)).transpose()?,
        })
    ),
    entry!(
        &["schedule", "check"],
        &[rest_arg("EXPR", ArgKind::Free)],
        &[flag(
            "count",
            "N",
            ArgKind::Free,
            "how many runs to show (default 5)"
        )],
        "Check a calendar expression and show its next runs, e.g. schedule check 'Mon..Fri 01:00'.",
        |p, _| call(Call::ScheduleCheck {
            expr: p.req(0).to_string(),
            count: p.number_flag::<u32>("count")?,
        })
    ),
    entry!(
        &["job", "list"],
        &[],
        &[
            flag("asset", "ASSET", ArgKind::Asset, "only this asset"),
            flag(
                "status",
                "STATUS",
                ArgKind::JobStatus,
                "only this status (queued, running, success, warning, failed, interrupted, cancelled)"
            ),
            flag(
                "kind",
                "KIND",
                ArgKind::JobKind,
                "only this kind (backup, restore, verify, …)"
            ),
            flag("limit", "N", ArgKind::Free, "at most N jobs (default 50)"),
        ],
        "List jobs, newest first.",
        |p, _| call(Call::JobList {
            asset: p.one("asset").map(str::to_string),
            status: p.parse_one::<JobStatus>("status")?,
            kind: p.parse_one::<JobKind>("kind")?,
            limit: p.number_flag::<u32>("limit")?,
        })
    ),
    entry!(
        &["job", "show"],
        &[arg("ID", ArgKind::Job)],
        &[],
        "Show one job, with live progress while it runs.",
        |p, _| call(Call::JobGet {
            id: job_id(p.req(0))?
        })
    ),
    entry!(
        &["job", "log"],
        &[arg("ID", ArgKind::Job)],
        &[],
        "Show a job's own log lines.",
        |p, _| call(Call::JobLog {
            id: job_id(p.req(0))?
        })
    ),
    entry!(
        &["job", "run"],
        &[arg("ASSET", ArgKind::Asset)],
        &[
            flag(
                "level",
                "LEVEL",
                ArgKind::Level,
                "full (default), incremental or differential"
            ),
            switch("watch", "watch its progress until it ends"),
        ],
        "Queue a backup of an asset now.",
        |p, _| Ok(Action::JobRun {
            asset: p.req(0).to_string(),
            level: p.parse_one::<Level>("level")?.unwrap_or(Level::Full),
            watch: p.has("watch"),
        })
    ),
    entry!(
        &["drill", "run"],
        &[arg("ASSET", ArgKind::Asset)],
        &[
            flag(
                "from",
                "disk|tape|remote",
                ArgKind::Free,
                "the copy to restore (default disk)"
            ),
            flag(
                "remote",
                "REMOTE",
                ArgKind::Free,
                "with --from remote: the remote (an appliance or a bucket)"
            ),
            flag(
                "snapshot",
                "SNAPSHOT",
                ArgKind::Free,
                "this snapshot (default the newest)"
            ),
            switch("random", "a snapshot picked at random"),
        ],
        "Run a restore drill now: restore into a sandbox, verify every file, time it against the RTO.",
        |p, _| call(Call::DrillRun {
            asset: p.req(0).to_string(),
            from: p.parse_one::<DrillSource>("from")?.unwrap_or_default(),
            snapshot: p.one("snapshot").map(str::to_string),
            random: p.has("random"),
            remote: p.one("remote").map(str::to_string),
        })
    ),
    entry!(
        &["verify", "store"],
        &[],
        &[],
        "Read the whole store back now: every container authenticated, damage mapped to files (a job).",
        |_, _| call(Call::VerifyRun {
            what: VerifyWhat::Store,
            name: None,
        })
    ),
    entry!(
        &["verify", "pool"],
        &[],
        &[],
        "Scrub the disk pool the store lives on now: every shard read and checked, damage rewritten from parity (a job).",
        |_, _| call(Call::VerifyRun {
            what: VerifyWhat::Pool,
            name: None,
        })
    ),
    entry!(
        &["verify", "remote"],
        &[],
        &[flag("remote", "REMOTE", ArgKind::Free, "only this remote")],
        "Read each remote's copy back now (an appliance's pulled whole, a bucket in place) and authenticate every container with the store's keys (jobs).",
        |p, _| call(Call::VerifyRun {
            what: VerifyWhat::Remote,
            name: p.one("remote").map(str::to_string),
        })
    ),
    entry!(
        &["verify", "tape"],
        &[],
        &[flag(
            "pool",
            "POOL",
            ArgKind::Free,
            "only this pool's newest set"
        )],
        "Read the newest media set of each pool back from its cartridges and compare it with the store (jobs).",
        |p, _| call(Call::VerifyRun {
            what: VerifyWhat::Tape,
            name: p.one("pool").map(str::to_string),
        })
    ),
    entry!(
        &["report", "iso27001"],
        &[],
        &[
            flag("from", "YYYY-MM-DD", ArgKind::Free, "the first day (UTC)").req(),
            flag(
                "to",
                "YYYY-MM-DD",
                ArgKind::Free,
                "the last day (UTC), included"
            )
            .req(),
            flag(
                "out",
                "DIR",
                ArgKind::Free,
                "write iso27001-FROM-TO.html and .json here (default: the current directory)"
            ),
        ],
        "The ISO 27001 A.8.13 evidence report of a period, as printable HTML and JSON.",
        |p, _| call(Call::ReportIso27001 {
            from: p.one("from").unwrap_or_default().to_string(),
            to: p.one("to").unwrap_or_default().to_string(),
            out: Some(p.one("out").unwrap_or(".").to_string()),
        })
    ),
    entry!(
        &["compliance"],
        &[],
        &[],
        "Each asset against 3-2-1-1-0: its copies, and what it misses.",
        |_, _| call(Call::Compliance)
    ),
    entry!(
        &["drill", "list"],
        &[],
        &[flag("asset", "ASSET", ArgKind::Asset, "only this asset")],
        "Restore drills: what was restored, from which copy, by whom, how long against the RTO, pass or fail.",
        |p, _| call(Call::DrillList {
            asset: p.one("asset").map(str::to_string),
        })
    ),
    entry!(
        &["job", "cancel"],
        &[arg("ID", ArgKind::Job)],
        &[],
        "Cancel a queued or running job.",
        |p, _| call(Call::JobCancel {
            id: job_id(p.req(0))?
        })
    ),
    entry!(
        &["job", "watch"],
        &[arg("ID", ArgKind::Job)],
        &[],
        "Watch a job's progress until it ends (Ctrl-C stops watching; the job goes on).",
        |p, _| Ok(Action::JobWatch {
            id: job_id(p.req(0))?
        })
    ),
    entry!(
        &["snapshot", "list"],
        &[],
        &[flag("asset", "ASSET", ArgKind::Asset, "only this asset")],
        "List snapshots (restore points).",
        |p, _| call(Call::SnapshotList {
            asset: p.one("asset").map(str::to_string),
        })
    ),
    entry!(
        &["retention", "show"],
        &[],
        &[flag("asset", "ASSET", ArgKind::Asset, "only this asset")],
        "The retention plan: per snapshot, kept or removed by the next prune, why, and until when.",
        |p, _| call(Call::RetentionShow {
            asset: p.one("asset").map(str::to_string),
        })
    ),
    entry!(
        &["retention", "set"],
        &[arg("PROFILE", ArgKind::Profile)],
        &RETENTION_FLAGS,
        "Set a profile's retention (shortening it needs retention.shorten and fresh MFA).",
        |p, _| {
            let edit = ProfileEdit::from_parsed(p)?;
            if edit.is_empty() {
                return Err("nothing to change: give at least one --keep-* or --lock-for".into());
            }
            Ok(Action::ProfileEdit {
                name: p.req(0).to_string(),
                edit,
            })
        }
    ),
    entry!(
        &["prune"],
        &[],
        &[
            flag("asset", "ASSET", ArgKind::Asset, "only this asset"),
            switch("dry-run", "only show the plan (as `retention show`)")
        ],
        "Queue a prune by each asset's retention; locked and held snapshots always stay.",
        |p, _| if p.has("dry-run") {
            call(Call::RetentionShow {
                asset: p.one("asset").map(str::to_string),
            })
        } else {
            call(Call::Prune {
                asset: p.one("asset").map(str::to_string),
            })
        }
    ),
    entry!(
        &["gc"],
        &[],
        &[
            flag(
                "compact-below",
                "PERCENT",
                ArgKind::Free,
                "compact containers less live than this (default 50)"
            ),
            switch(
                "retire-old-keys",
                "re-encrypt data under older key generations, then destroy their keys"
            )
        ],
        "Queue a garbage collection: deletes what no snapshot references, compacts mostly dead containers.",
        |p, _| call(Call::Gc {
            compact_below_pct: p.parse_one::<u8>("compact-below")?,
            retire_old_keys: p.has("retire-old-keys"),
        })
    ),
    entry!(
        &["snapshot", "delete"],
        &[arg("SNAPSHOT", ArgKind::Free)],
        &[],
        "Delete one snapshot now (snapshot.delete, fresh MFA); refused while a lock or hold protects it.",
        |p, _| call(Call::SnapshotDelete {
            snapshot: p.req(0).to_string(),
        })
    ),
    entry!(
        &["lock", "set"],
        &[arg("SNAPSHOT", ArgKind::Free)],
        &[
            flag(
                "until",
                "TIME",
                ArgKind::Free,
                "RFC 3339, a date, or a duration from now such as 90d"
            )
            .req(),
            flag("reason", "TEXT", ArgKind::Free, "why (for the auditor)")
        ],
        "Lock a snapshot until a time: nobody can delete it, prune it or shorten the lock before then.",
        |p, ctx| call(Call::LockSet {
            snapshot: p.req(0).to_string(),
            until_ms: until_time(p.one("until").unwrap_or_default(), ctx.now_ms)?,
            reason: p.one("reason").unwrap_or_default().to_string(),
        })
    ),
    entry!(
        &["lock", "list"],
        &[],
        &[flag("asset", "ASSET", ArgKind::Asset, "only this asset")],
        "Retention locks, running and ended.",
        |p, _| call(Call::LockList {
            asset: p.one("asset").map(str::to_string),
        })
    ),
    entry!(
        &["hold", "set"],
        &[],
        &[
            flag("snapshot", "SNAPSHOT", ArgKind::Free, "hold this snapshot"),
            flag(
                "asset",
                "ASSET",
                ArgKind::Asset,
                "hold every snapshot of this asset"
            ),
            flag("reason", "TEXT", ArgKind::Free, "the matter (required)").req()
        ],
        "Place a legal hold: no end date; only a security officer releases it.",
        |p, _| call(Call::HoldSet {
            snapshot: p.one("snapshot").map(str::to_string),
            asset: p.one("asset").map(str::to_string),
            reason: p.one("reason").unwrap_or_default().to_string(),
        })
    ),
    entry!(
        &["hold", "release"],
        &[arg("ID", ArgKind::Free)],
        &[],
        "Release a legal hold (security officer, fresh MFA).",
        |p, _| call(Call::HoldRelease {
            id: p
                .req(0)
                .parse()
                .map_err(|_| format!("'{}' is not a hold number", p.req(0)))?,
        })
    ),
    entry!(
        &["hold", "list"],
        &[],
        &[switch("all", "released holds too")],
        "Legal holds.",
        |p, _| call(Call::HoldList { all: p.has("all") })
    ),
    entry!(
        &["clock", "show"],
        &[],
        &[],
        "The wall clock against the trusted clock retention locks expire by.",
        |_, _| call(Call::ClockShow)
    ),
    entry!(
        &["clock", "accept"],
        &[],
        &[],
        "Accept the wall clock after it jumped forward (security officer, fresh MFA).",
        |_, _| call(Call::ClockAccept)
    ),
    entry!(
        &["key", "status"],
        &[],
        &[],
        "The store's keys: algorithm, ids, generations, rotation history.",
        |_, _| call(Call::KeyStatus)
    ),
    entry!(
        &["key", "rotate"],
        &[],
        &[],
        "Start a new data key generation: new data is sealed under it from now on.",
        |_, _| call(Call::KeyRotate)
    ),
    entry!(
        &["media", "today"],
        &[],
        &[
            flag("pool", "POOL", ArgKind::Free, "only this pool"),
            flag("date", "YYYY-MM-DD", ArgKind::Free, "another day")
        ],
        "The day's media rotation procedure: what goes to the vault, what comes back, tonight's cartridges.",
        |p, _| call(Call::MediaToday {
            pool: p.one("pool").map(str::to_string),
            date: p.one("date").map(str::to_string),
        })
    ),
    entry!(
        &["media", "pools"],
        &[],
        &[],
        "Media rotation pools, their cartridges and sets.",
        |_, _| call(Call::MediaPools)
    ),
    entry!(
        &["media", "settle"],
        &[],
        &[
            flag("pool", "POOL", ArgKind::Free, "only this pool"),
            flag(
                "date",
                "YYYY-MM-DD",
                ArgKind::Free,
                "the day it happened (default today)"
            )
        ],
        "Record the day's expiries and closed sets (expired sets of shredding pools are crypto-shredded).",
        |p, _| media_step(
            p,
            MediaStep::Settle {
                pool: p.one("pool").map(str::to_string),
            }
        )
    ),
    entry!(
        &["media", "export"],
        &[rest_arg("BARCODE…", ArgKind::Free)],
        &[flag(
            "date",
            "YYYY-MM-DD",
            ArgKind::Free,
            "the day it happened (default today)"
        )],
        "Move cartridges to the export slots for the vault and file the transfer manifest.",
        |p, _| media_step(
            p,
            MediaStep::Export {
                barcodes: barcodes(p),
            }
        )
    ),
    entry!(
        &["media", "received"],
        &[rest_arg("BARCODE…", ArgKind::Free)],
        &[flag(
            "date",
            "YYYY-MM-DD",
            ArgKind::Free,
            "the day it happened (default today)"
        )],
        "Cartridges arrived at the vault, or back onsite.",
        |p, _| media_step(
            p,
            MediaStep::Received {
                barcodes: barcodes(p),
            }
        )
    ),
    entry!(
        &["media", "import"],
        &[rest_arg("BARCODE…", ArgKind::Free)],
        &[flag(
            "date",
            "YYYY-MM-DD",
            ArgKind::Free,
            "the day it happened (default today)"
        )],
        "Put cartridges into the library through its mail slots.",
        |p, _| media_step(
            p,
            MediaStep::Import {
                barcodes: barcodes(p),
            }
        )
    ),
    entry!(
        &["media", "sent"],
        &[arg("MANIFEST", ArgKind::Free)],
        &[flag(
            "date",
            "YYYY-MM-DD",
            ArgKind::Free,
            "the day it happened (default today)"
        )],
        "A transfer manifest's cartridges were handed to the courier.",
        |p, _| media_step(
            p,
            MediaStep::Sent {
                manifest: manifest_id(p.req(0))?,
            }
        )
    ),
    entry!(
        &["media", "recall"],
        &[rest_arg("BARCODE…", ArgKind::Free)],
        &[
            flag(
                "needed-by",
                "YYYY-MM-DD",
                ArgKind::Free,
                "when they are needed onsite"
            ),
            flag(
                "date",
                "YYYY-MM-DD",
                ArgKind::Free,
                "the day it happened (default today)"
            )
        ],
        "Ask cartridges back from the vault.",
        |p, _| media_step(
            p,
            MediaStep::Recall {
                barcodes: barcodes(p),
                needed_by: p.one("needed-by").map(str::to_string),
            }
        )
    ),
    entry!(
        &["media", "cleaned"],
        &[arg("POOL", ArgKind::Free)],
        &[flag(
            "date",
            "YYYY-MM-DD",
            ArgKind::Free,
            "the day it happened (default today)"
        )],
        "A drive cleaning was done.",
        |p, _| media_step(
            p,
            MediaStep::Cleaned {
                pool: p.req(0).to_string(),
            }
        )
    ),
    entry!(
        &["media", "damaged"],
        &[arg("BARCODE", ArgKind::Free)],
        &[flag(
            "date",
            "YYYY-MM-DD",
            ArgKind::Free,
            "the day it happened (default today)"
        )],
        "A cartridge was found damaged: never written again; its open set is closed.",
        |p, _| media_step(
            p,
            MediaStep::Damaged {
                barcode: p.req(0).to_string(),
            }
        )
    ),
    entry!(
        &["media", "dispose"],
        &[rest_arg("BARCODE…", ArgKind::Free)],
        &[
            flag(
                "method",
                "TEXT",
                ArgKind::Free,
                "how and by whom (for the certificate)"
            )
            .req(),
            flag(
                "date",
                "YYYY-MM-DD",
                ArgKind::Free,
                "the day it happened (default today)"
            )
        ],
        "Cartridges were destroyed: expired ones, or damaged ones no kept set needs (fresh MFA).",
        |p, _| media_step(
            p,
            MediaStep::Dispose {
                barcodes: barcodes(p),
                method: p.one("method").unwrap_or_default().to_string(),
            }
        )
    ),
    entry!(
        &["media", "manifest"],
        &[opt_arg("ID", ArgKind::Free)],
        &[],
        "Transfer manifests; with a number, the printable manifest.",
        |p, _| call(Call::MediaManifest {
            id: p.pos(0).map(manifest_id).transpose()?,
        })
    ),
    entry!(
        &["media", "custody"],
        &[opt_arg("BARCODE", ArgKind::Free)],
        &[],
        "The chain of custody: every cartridge's, or one's.",
        |p, _| call(Call::MediaCustody {
            barcode: p.pos(0).map(str::to_string),
        })
    ),
    entry!(
        &["disposal", "list"],
        &[],
        &[],
        "Disposal certificates: what was destroyed, which keys, when, by whom or which policy.",
        |_, _| call(Call::DisposalList)
    ),
    entry!(
        &["alert", "list"],
        &[],
        &[switch("all", "include cleared alerts")],
        "List open alerts.",
        |p, _| call(Call::AlertList { all: p.has("all") })
    ),
    entry!(
        &["alert", "ack"],
        &[arg("ID", ArgKind::Alert)],
        &[],
        "Acknowledge an alert.",
        |p, _| call(Call::AlertAck {
            id: alert_id(p.req(0))?
        })
    ),
    entry!(
        &["audit", "list"],
        &[],
        &[
            flag(
                "since",
                "TIME",
                ArgKind::Free,
                "not before: RFC 3339, a date, or a duration ago such as 24h"
            ),
            flag(
                "until",
                "TIME",
                ArgKind::Free,
                "before (same forms as --since)"
            ),
            flag("user", "USER", ArgKind::User, "only this identity"),
            flag(
                "action",
                "ACTION",
                ArgKind::Free,
                "only this action, or a prefix ending in '.', e.g. asset."
            ),
            flag(
                "limit",
                "N",
                ArgKind::Free,
                "at most N entries (default 100)"
            ),
        ],
        "List audit log entries, newest first.",
        |p, ctx| {
            let time = |name: &str| {
                p.one(name)
                    .map(|v| parse_time(v, ctx.now_ms).map_err(|e| format!("--{name}: {e}")))
                    .transpose()
            };
            call(Call::AuditList {
                filter: AuditFilter {
                    since_ms: time("since")?,
                    until_ms: time("until")?,
                    user: p.one("user").map(str::to_string),
                    action: p.one("action").map(str::to_string),
                    limit: p.number_flag::<u32>("limit")?,
                },
            })
        }
    ),
    entry!(
        &["audit", "verify"],
        &[],
        &[],
        "Check the audit log's hash chain from the first entry to the newest.",
        |_, _| call(Call::AuditVerify)
    ),
    entry!(
        &["panel", "show"],
        &[],
        &[switch("watch", "redraw it every half second until Ctrl-C")],
        "Draw the front panel as the person at the rack sees it: the LCD's four lines, the LEDs, the panel's temperature and faults.",
        |p, _| Ok(if p.has("watch") {
            Action::PanelWatch
        } else {
            Action::Call(Call::PanelShow)
        })
    ),
    entry!(
        &["panel", "press"],
        &[arg("BUTTON", ArgKind::Button)],
        &[],
        "Press a button of the simulated front panel (up, down, ok, back): up and down move between pages; ok twice on an alert page acknowledges it.",
        |p, _| {
            let b = p.req(0).to_ascii_lowercase();
            if !["up", "down", "ok", "back"].contains(&b.as_str()) {
                return Err(format!("unknown button '{b}': up, down, ok or back"));
            }
            Ok(Action::PanelPress { button: b })
        }
    ),
    entry!(
        &["remote", "list"],
        &[],
        &[],
        "List the offsite remotes, whether each is paired, how far its copy reaches, and this appliance's own replication fingerprint.",
        |_, _| call(Call::RemoteList)
    ),
    entry!(
        &["remote", "add"],
        &[arg("NAME", ArgKind::Free)],
        &[
            flag(
                "appliance",
                "HOST:PORT",
                ArgKind::Free,
                "another Coffer appliance's replication endpoint"
            ),
            flag(
                "fingerprint",
                "SHA256",
                ArgKind::Free,
                "the appliance's certificate fingerprint, pinned at once (as its 'remote list' shows)"
            ),
            switch(
                "inbound",
                "an appliance that only replicates here (give --fingerprint)"
            ),
            flag(
                "s3-bucket",
                "BUCKET",
                ArgKind::Free,
                "an S3 bucket (created with Object Lock)"
            ),
            flag(
                "endpoint",
                "URL",
                ArgKind::Free,
                "the S3 endpoint (default: AWS)"
            ),
            flag(
                "region",
                "REGION",
                ArgKind::Free,
                "the S3 region (default us-east-1)"
            ),
            flag(
                "prefix",
                "PREFIX",
                ArgKind::Free,
                "a key prefix inside the bucket"
            ),
            flag(
                "lock",
                "MODE",
                ArgKind::Free,
                "Object Lock: compliance (default), governance or none"
            ),
            flag(
                "lock-days",
                "DAYS",
                ArgKind::Free,
                "lock objects this long (default: the longest retention of the profiles replicating there)"
            ),
            flag(
                "access-key-id",
                "ID",
                ArgKind::Free,
                "the S3 access key id (default: the daemon's AWS_* environment)"
            ),
            flag(
                "secret-file",
                "FILE",
                ArgKind::File,
                "a file holding the secret access key (else it is asked for)"
            ),
            switch(
                "virtual-host",
                "virtual-host-style S3 addressing (default: path style)"
            ),
            flag(
                "bandwidth",
                "MB/S",
                ArgKind::Free,
                "limit replication to it (default: none)"
            ),
        ],
        "Add an offsite remote: another appliance (probed for the fingerprint it presents, to confirm with 'remote pair') or an S3 bucket with Object Lock.",
        |p, _| remote_add(p)
    ),
    entry!(
        &["remote", "pair"],
        &[arg("NAME", ArgKind::Free)],
        &[flag(
            "fingerprint",
            "SHA256",
            ArgKind::Free,
            "the fingerprint its console shows (else you are asked to compare)"
        )],
        "Pair with an appliance remote: show both fingerprints, pin the remote's once confirmed.",
        |p, _| Ok(Action::RemotePair {
            name: p.req(0).to_string(),
            fingerprint: p.one("fingerprint").map(str::to_string),
        })
    ),
    entry!(
        &["remote", "remove"],
        &[arg("NAME", ArgKind::Free)],
        &[],
        "Remove a remote (its copies stay where they are).",
        |p, _| call(Call::RemoteRemove {
            name: p.req(0).to_string()
        })
    ),
    entry!(
        &["remote", "restore"],
        &[arg("REMOTE", ArgKind::Free), arg("SNAPSHOT", ArgKind::Free)],
        &[
            flag(
                "target",
                "DIR",
                ArgKind::Free,
                "an empty directory on the appliance to restore into"
            )
            .req(),
            flag(
                "store",
                "ID",
                ArgKind::Free,
                "whose copy (hex store id; default this appliance's)"
            ),
            flag(
                "passphrase-file",
                "FILE",
                ArgKind::File,
                "a file holding the copy's passphrase (else it is asked for)"
            ),
            switch("watch", "watch its progress until it ends"),
        ],
        "Restore a snapshot (id, prefix or 'latest') from a remote's copy: an appliance's copy is pulled here first, a bucket is read in place. Needs only the copy's passphrase.",
        |p, _| Ok(Action::RemoteRestore {
            remote: p.req(0).to_string(),
            snapshot: p.req(1).to_string(),
            target: p.one("target").unwrap_or_default().to_string(),
            store: p.one("store").map(str::to_string),
            passphrase_file: p.one("passphrase-file").map(PathBuf::from),
            watch: p.has("watch"),
        })
    ),
    entry!(
        &["replicate", "run"],
        &[arg("REMOTE", ArgKind::Free)],
        &[switch("watch", "watch its progress until it ends")],
        "Replicate the store to a remote now: only what it lacks, resumed where a cut link stopped, verified.",
        |p, _| Ok(Action::ReplicateRun {
            remote: p.req(0).to_string(),
            watch: p.has("watch"),
        })
    ),
    entry!(
        &["replicate", "status"],
        &[],
        &[],
        "Each remote's last replication, and each replicated asset's newest offsite copy against its RPO.",
        |_, _| call(Call::ReplicateStatus)
    ),
    entry!(
        &["update", "status"],
        &[],
        &[],
        "The root slots: which one runs, every slot's version and boot state (being tried, good, failed and rolled back).",
        |_, _| call(Call::UpdateStatus)
    ),
    entry!(
        &["update", "install"],
        &[opt_arg("BUNDLE", ArgKind::Free)],
        &[flag(
            "tries",
            "N",
            ArgKind::Free,
            "boots the new slot gets to reach a healthy cofferd (default 3)"
        )],
        "Install a signed update bundle (a path on the appliance; none: the bundle on the attached COFFER-UPDATE medium) into the slot that is not running; it boots at the next restart and rolls back by itself if it never gets healthy.",
        |p, _| call(Call::UpdateInstall {
            path: p.pos(0).map(str::to_string),
            tries: p.number_flag::<u32>("tries")?,
        })
    ),
    entry!(
        &["system", "reboot"],
        &[],
        &[],
        "Restart the appliance (running jobs are checkpointed and run again), e.g. to boot an installed update.",
        |_, _| call(Call::SystemReboot)
    ),
    entry!(
        &["reload"],
        &[],
        &[],
        "Make the daemon re-read its configuration file (as SIGHUP does).",
        |_, _| call(Call::Reload)
    ),
    entry!(
        &["help"],
        &[
            opt_arg("COMMAND", ArgKind::Command),
            opt_arg("SUBCOMMAND", ArgKind::Command)
        ],
        &[],
        "Show the commands, or help on one.",
        |p, _| Ok(Action::Help(p.pos.clone()))
    ),
    entry!(&["exit"], &[], &[], "Leave the shell.", |_, _| Ok(
        Action::Exit
    )),
    entry!(&["quit"], &[], &[], "Leave the shell.", |_, _| Ok(
        Action::Exit
    )),
];

/// The entries of a command group (`asset` → `asset list`, `asset show`, …).
pub fn group(name: &str) -> impl Iterator<Item = &'static Entry> + '_ {
    ENTRIES.iter().filter(move |e| e.words[0] == name)
}

/// Whether `name` is a group with subcommands.
pub fn has_subcommands(name: &str) -> bool {
    group(name).any(|e| e.words.len() > 1)
}

/// Finds the entry for the words of a line: the entry and how many words
/// named it.
pub fn find(words: &[String]) -> Result<&'static Entry, UsageError> {
    let Some(first) = words.first() else {
        return Err(usage_err("no command given", None));
    };
    let first = first.as_str();
    if group(first).next().is_none() {
        return Err(usage_err(
            format!("unknown command '{first}' (type 'help' for the list)"),
            None,
        ));
    }
    if !has_subcommands(first) {
        return group(first)
            .next()
            .ok_or_else(|| usage_err("no command given", None));
    }
    let subs: Vec<&str> = group(first).map(|e| e.words[1]).collect();
    let Some(second) = words.get(1) else {
        return Err(usage_err(
            format!("'{first}' needs a subcommand: {}", subs.join(", ")),
            None,
        ));
    };
    group(first)
        .find(|e| e.words[1] == second.as_str())
        .ok_or_else(|| {
            usage_err(
                format!(
                    "unknown subcommand '{first} {second}' (one of: {})",
                    subs.join(", ")
                ),
                None,
            )
        })
}

/// Parses a line's words. A `--json` anywhere is taken out and reported.
pub fn parse_words(words: &[String], ctx: &Ctx) -> Result<(Action, bool), UsageError> {
    let json = words.iter().any(|w| w == "--json");
    let words: Vec<String> = words.iter().filter(|w| *w != "--json").cloned().collect();
    let entry = find(&words)?;
    let rest = &words[entry.words.len()..];
    if rest.iter().any(|w| w == "--help" || w == "-h") {
        return Ok((
            Action::Help(entry.words.iter().map(|w| w.to_string()).collect()),
            json,
        ));
    }
    let usage = || Some(entry.usage());
    let parsed = parse_args(entry, rest).map_err(|m| usage_err(m, usage()))?;
    let action = (entry.build)(&parsed, ctx).map_err(|m| usage_err(m, usage()))?;
    Ok((action, json))
}

/// Parses a line: splits it, then [`parse_words`].
pub fn parse_line(line: &str, ctx: &Ctx) -> Result<(Action, bool), UsageError> {
    let words = words::split(line).map_err(|e| usage_err(e.to_string(), None))?;
    parse_words(&words, ctx)
}

/// Sorts a command's words into positionals and flags, checking them
/// against the entry.
fn parse_args(entry: &'static Entry, rest: &[String]) -> Result<Parsed, String> {
    let mut pos: Vec<String> = Vec::new();
    let mut flags: Vec<(&'static str, String)> = Vec::new();
    let mut switches: Vec<&'static str> = Vec::new();
    let mut it = rest.iter();
    let mut only_positional = false;
    while let Some(w) = it.next() {
        if !only_positional && w == "--" {
            only_positional = true;
            continue;
        }
        let is_flag = !only_positional && w.starts_with("--") && w.len() > 2;
        if !is_flag {
            pos.push(w.clone());
            continue;
        }
        let body = &w[2..];
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        let Some(f) = entry.flag(name) else {
            let known: Vec<String> = entry
                .flags
                .iter()
                .map(|f| format!("--{}", f.name))
                .collect();
            return Err(if known.is_empty() {
                format!("'{}' takes no flags (got --{name})", entry.words.join(" "))
            } else {
                format!(
                    "unknown flag --{name} for '{}' (flags: {})",
                    entry.words.join(" "),
                    known.join(", ")
                )
            });
        };
        let seen = flags.iter().any(|(n, _)| *n == f.name) || switches.contains(&f.name);
        if seen && !f.repeat {
            return Err(format!("--{} given twice", f.name));
        }
        match f.value {
            None => {
                if inline.is_some() {
                    return Err(format!("--{} takes no value", f.name));
                }
                switches.push(f.name);
            }
            Some((meta, _)) => {
                let v = match inline {
                    Some(v) => v,
                    None => it
                        .next()
                        .cloned()
                        .ok_or_else(|| format!("--{} needs a value ({meta})", f.name))?,
                };
                flags.push((f.name, v));
            }
        }
    }
    // Positionals: a `rest` one takes what is left, joined.
    let mut out = Vec::new();
    let mut words = pos.into_iter();
    for a in entry.args {
        if a.rest {
            let left: Vec<String> = words.by_ref().collect();
            if left.is_empty() {
                if a.required {
                    return Err(format!("missing {}", a.name));
                }
            } else {
                out.push(left.join(" "));
            }
            continue;
        }
        match words.next() {
            Some(w) => out.push(w),
            None if a.required => return Err(format!("missing {}", a.name)),
            None => break,
        }
    }
    let extra: Vec<String> = words.collect();
    if !extra.is_empty() {
        return Err(format!(
            "unexpected argument{} {}",
            if extra.len() > 1 { "s" } else { "" },
            extra
                .iter()
                .map(|w| format!("'{w}'"))
                .collect::<Vec<_>>()
                .join(" ")
        ));
    }
    for f in entry.flags.iter().filter(|f| f.required) {
        if !flags.iter().any(|(n, _)| *n == f.name) {
            return Err(format!("--{} is required", f.name));
        }
    }
    Ok(Parsed {
        pos: out,
        flags,
        switches,
    })
}

/// Help: the command list, a group's commands, or one command in full.
pub fn help(topic: &[String]) -> Result<String, UsageError> {
    if topic.is_empty() {
        let mut s = String::from("Commands (type 'help COMMAND' for more):\n");
        let width = GROUPS.iter().map(|g| g.name.len()).max().unwrap_or(0);
        for g in GROUPS {
            s.push_str(&format!("  {:<width$}  {}\n", g.name, g.summary));
        }
        s.push_str(
            "\nAdd --json to any command for its raw result as JSON. Passwords are always asked \
             for, never typed on the command line.\n",
        );
        return Ok(s);
    }
    let name = topic[0].as_str();
    if group(name).next().is_none() {
        return Err(usage_err(
            format!("no help on '{name}': no such command (type 'help' for the list)"),
            None,
        ));
    }
    let entries: Vec<&Entry> = match topic.get(1) {
        Some(sub) => {
            let e = group(name)
                .find(|e| e.words.get(1).is_some_and(|w| w == sub))
                .ok_or_else(|| {
                    usage_err(
                        format!("no help on '{name} {sub}': no such subcommand"),
                        None,
                    )
                })?;
            vec![e]
        }
        None => group(name).collect(),
    };
    let mut s = String::new();
    if entries.len() > 1
        && let Some(g) = GROUPS.iter().find(|g| g.name == name)
    {
        s.push_str(&format!("{name}: {}\n\n", g.summary));
    }
    for (i, e) in entries.iter().enumerate() {
        if i > 0 {
            s.push('\n');
        }
        s.push_str(&format!("  {}\n", e.usage()));
        s.push_str(&format!("      {}\n", e.help));
        let width = e
            .flags
            .iter()
            .map(|f| flag_label(f).len())
            .max()
            .unwrap_or(0);
        for f in e.flags {
            s.push_str(&format!(
                "      {:<width$}  {}{}\n",
                flag_label(f),
                f.help,
                if f.repeat { " (repeatable)" } else { "" }
            ));
        }
    }
    Ok(s)
}

fn flag_label(f: &Flag) -> String {
    match f.value {
        Some((meta, _)) => format!("--{} {meta}", f.name),
        None => format!("--{}", f.name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    const NOW: i64 = 1_800_000_000_000;

    fn ctx() -> Ctx {
        Ctx { now_ms: NOW }
    }

    fn action(line: &str) -> Action {
        match parse_line(line, &ctx()) {
            Ok((a, _)) => a,
            Err(e) => panic!("{line}: {e}"),
        }
    }

    /// The request JSON (without id/auth) a line makes.
    fn wire(line: &str) -> Value {
        let c = action(line)
            .call()
            .unwrap_or_else(|| panic!("{line}: no call"));
        serde_json::to_value(&c).unwrap()
    }

    /// Asserts that `line` makes the call `expected`.
    fn same(line: &str, expected: Call) {
        assert_eq!(
            wire(line),
            serde_json::to_value(&expected).unwrap(),
            "{line}"
        );
    }

    fn err(line: &str) -> String {
        match parse_line(line, &ctx()) {
            Ok((a, _)) => panic!("{line}: parsed as {a:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn media_rotation_steps_map_to_their_calls() {
        same(
            "media export AP0001L9 AP0002L9 --date 2026-11-27",
            Call::MediaStep {
                step: MediaStep::Export {
                    barcodes: vec!["AP0001L9".into(), "AP0002L9".into()],
                },
                date: Some("2026-11-27".into()),
            },
        );
        same(
            "media recall AP0003L9 --needed-by 2026-12-01",
            Call::MediaStep {
                step: MediaStep::Recall {
                    barcodes: vec!["AP0003L9".into()],
                    needed_by: Some("2026-12-01".into()),
                },
                date: None,
            },
        );
        same(
            "media sent 4",
            Call::MediaStep {
                step: MediaStep::Sent { manifest: 4 },
                date: None,
            },
        );
        same(
            "media today --pool gfs",
            Call::MediaToday {
                pool: Some("gfs".into()),
                date: None,
            },
        );
        same("media manifest 3", Call::MediaManifest { id: Some(3) });
        assert!(err("media sent four").contains("not a transfer manifest number"));
        assert!(err("media dispose AP0001L9").contains("--method is required"));
        assert!(err("media export").contains("missing BARCODE"));
    }

    #[test]
    fn drill_commands_and_the_profile_drill_flags() {
        same(
            "drill run db --from tape --random",
            Call::DrillRun {
                asset: "db".into(),
                from: DrillSource::Tape,
                snapshot: None,
                random: true,
                remote: None,
            },
        );
        same(
            "drill run db --from remote --remote offsite",
            Call::DrillRun {
                asset: "db".into(),
                from: DrillSource::Remote,
                snapshot: None,
                random: false,
                remote: Some("offsite".into()),
            },
        );
        same(
            "drill list --asset db",
            Call::DrillList {
                asset: Some("db".into()),
            },
        );
        assert!(err("drill run db --from cloud").contains("disk, tape or remote"));
        same(
            "verify tape --pool gfs",
            Call::VerifyRun {
                what: VerifyWhat::Tape,
                name: Some("gfs".into()),
            },
        );
        same(
            "verify store",
            Call::VerifyRun {
                what: VerifyWhat::Store,
                name: None,
            },
        );
        same(
            "verify pool",
            Call::VerifyRun {
                what: VerifyWhat::Pool,
                name: None,
            },
        );
        same(
            "verify remote --remote offsite",
            Call::VerifyRun {
                what: VerifyWhat::Remote,
                name: Some("offsite".into()),
            },
        );
        let e = ProfileEdit::from_parsed(
            &parse_args(
                find(&["profile".into(), "edit".into()]).unwrap(),
                &[
                    "standard".into(),
                    "--drill".into(),
                    "*-01,04,07,10-01 03:00".into(),
                    "--drill-from".into(),
                    "tape".into(),
                ],
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(
            e.drill,
            Some(Some(DrillPolicy {
                schedule: "*-01,04,07,10-01 03:00".into(),
                from: DrillSource::Tape,
                random: false,
                remote: None,
            }))
        );
        assert!(err("profile edit standard --drill-from tape").contains("--drill CALENDAR"));
    }

    #[test]
    fn simple_commands_map_to_their_calls() {
        for (line, op) in [
            ("status", "status"),
            ("whoami", "whoami"),
            ("logout", "logout"),
            ("user list", "user_list"),
            ("token list", "token_list"),
            ("asset list", "asset_list"),
            ("profile list", "profile_list"),
            ("audit verify", "audit_verify"),
            ("reload", "reload"),
            ("panel show", "panel_show"),
        ] {
            let v = wire(line);
            assert_eq!(v["op"], op, "{line}");
            assert!(v.get("args").is_none(), "{line}: {v}");
        }
    }

    #[test]
    fn panel_commands() {
        assert!(matches!(
            action("panel press OK"),
            Action::PanelPress { button } if button == "ok"
        ));
        assert!(matches!(action("panel show --watch"), Action::PanelWatch));
        assert!(err("panel press left").contains("up, down, ok or back"));
        assert!(
            err("panel press").contains("BUTTON"),
            "{}",
            err("panel press")
        );
    }

    #[test]
    fn remote_and_replicate_commands() {
        match action("remote add offsite --appliance b.example:7443 --bandwidth 20") {
            Action::RemoteAdd { spec, secret_file } => {
                assert_eq!(spec.kind, RemoteKind::Appliance);
                assert_eq!(spec.address.as_deref(), Some("b.example:7443"));
                assert_eq!(spec.bandwidth_mb_s, 20);
                assert_eq!(secret_file, None);
            }
            a => panic!("{a:?}"),
        }
        match action(
            "remote add vault --s3-bucket backups --endpoint http://10.0.0.5:9000 --lock governance --lock-days 90 --access-key-id AK --secret-file /root/s3.key",
        ) {
            Action::RemoteAdd { spec, secret_file } => {
                let s3 = spec.s3.unwrap();
                assert_eq!(s3.bucket, "backups");
                assert_eq!(s3.lock, ObjectLockMode::Governance);
                assert_eq!(s3.lock_days, 90);
                assert!(s3.path_style);
                assert_eq!(s3.secret_access_key, None, "never from the command line");
                assert_eq!(secret_file, Some(PathBuf::from("/root/s3.key")));
            }
            a => panic!("{a:?}"),
        }
        assert!(err("remote add x").contains("--appliance"));
        assert!(err("remote add x --inbound").contains("--fingerprint"));
        assert!(err("remote add x --s3-bucket b --appliance h:1").contains("not both"));
        assert!(err("remote add x --s3-bucket b --lock forever").contains("--lock"));
        assert!(matches!(
            action("remote pair offsite"),
            Action::RemotePair { name, fingerprint: None } if name == "offsite"
        ));
        assert!(matches!(
            action("replicate run offsite --watch"),
            Action::ReplicateRun { remote, watch: true } if remote == "offsite"
        ));
        assert!(matches!(
            action("remote restore offsite latest --target /srv/r"),
            Action::RemoteRestore { remote, snapshot, target, .. }
                if remote == "offsite" && snapshot == "latest" && target == "/srv/r"
        ));
        assert!(err("remote restore offsite latest").contains("--target"));
    }

    #[test]
    fn user_commands() {
        assert_eq!(
            wire("user roles bob auditor,backup-operator"),
            json!({"op": "user_roles", "args": {"name": "bob", "roles": ["auditor", "backup-operator"]}})
        );
        assert_eq!(
            wire("user roles bob auditor security-officer"),
            json!({"op": "user_roles", "args": {"name": "bob", "roles": ["auditor", "security-officer"]}})
        );
        assert_eq!(
            wire("user remove bob"),
            json!({"op": "user_remove", "args": {"name": "bob"}})
        );
        assert_eq!(
            wire("user unlock bob"),
            json!({"op": "user_unlock", "args": {"name": "bob"}})
        );
        assert_eq!(
            wire("user reset-mfa bob"),
            json!({"op": "user_reset_mfa", "args": {"name": "bob"}})
        );
        match action("user add bob --role admin,auditor --role auditor") {
            Action::UserAdd { name, roles } => {
                assert_eq!(name, "bob");
                assert_eq!(roles, [Role::Administrator, Role::Auditor]);
            }
            a => panic!("{a:?}"),
        }
        assert!(err("user add bob").contains("--role is required"));
        assert!(err("user add bob --role wizard").contains("'wizard' is not a valid role"));
        assert!(err("user roles bob").contains("missing ROLE[,ROLE]"));
        assert!(
            err("user add bob --role auditor --password x").contains("unknown flag --password")
        );
    }

    #[test]
    fn session_commands_are_actions() {
        assert!(matches!(action("login"), Action::Login { user: None }));
        assert!(matches!(action("login alice"), Action::Login { user: Some(u) } if u == "alice"));
        assert!(matches!(action("passwd"), Action::Passwd));
        assert!(matches!(action("mfa"), Action::MfaVerify));
        assert!(matches!(action("exit"), Action::Exit));
        assert!(matches!(action("quit"), Action::Exit));
        assert!(err("login alice secret").contains("unexpected argument 'secret'"));
    }

    #[test]
    fn token_commands() {
        assert_eq!(
            wire("token create backup-script --role backup-operator --expires 30d"),
            json!({"op": "token_create", "args": {"name": "backup-script", "roles": ["backup-operator"], "expires_in": "4w2d"}})
        );
        assert_eq!(
            wire("token create x --role auditor"),
            json!({"op": "token_create", "args": {"name": "x", "roles": ["auditor"]}})
        );
        assert_eq!(
            wire("token revoke ct_abc"),
            json!({"op": "token_revoke", "args": {"id": "ct_abc"}})
        );
        assert!(err("token create x --role auditor --expires soon").contains("--expires:"));
    }

    #[test]
    fn asset_commands() {
        assert_eq!(
            wire("asset show web-01"),
            json!({"op": "asset_get", "args": {"name": "web-01"}})
        );
        assert_eq!(
            wire("asset remove web-01"),
            json!({"op": "asset_remove", "args": {"name": "web-01"}})
        );
        assert_eq!(
            wire(
                "asset add web-01 --owner 'Web team' --criticality high --source /srv/www \
                 --source=/etc/nginx --exclude '*.log' --rpo 1d --rto 4h --profile standard"
            ),
            json!({"op": "asset_add", "args": {"asset": {
                "name": "web-01", "owner": "Web team", "criticality": "high",
                "sources": ["/srv/www", "/etc/nginx"], "excludes": ["*.log"],
                "rpo": "1d", "rto": "4h", "profile": "standard"
            }}})
        );
        let v = wire(
            "asset add db --owner dba --criticality critical --source /var/lib/pg --rpo 1h --rto 2h",
        );
        assert_eq!(v["args"]["asset"]["profile"], Value::Null);
        assert_eq!(v["args"]["asset"]["excludes"], json!([]));
        let e = err("asset add db --owner dba --source /x --rpo 1h --rto 2h");
        assert!(e.contains("--criticality is required"), "{e}");
        assert!(e.contains("usage: asset add NAME --owner OWNER"), "{e}");
        assert!(
            err("asset add db --owner dba --criticality vital --source /x --rpo 1h --rto 2h")
                .contains("'vital' is not a valid criticality")
        );
        assert!(
            err("asset add db --owner dba --criticality low --source /x --rpo soon --rto 2h")
                .contains("--rpo: 'soon' is not a valid duration")
        );
        assert!(err("asset show").contains("missing NAME"));
        assert!(err("asset show a b").contains("unexpected argument 'b'"));
        assert!(err("asset frobnicate").contains("unknown subcommand 'asset frobnicate'"));
        assert!(err("asset").contains("'asset' needs a subcommand: list, show"));
        match action("asset import /tmp/register.csv --replace") {
            Action::AssetImport { file, replace } => {
                assert_eq!(file, PathBuf::from("/tmp/register.csv"));
                assert!(replace);
            }
            a => panic!("{a:?}"),
        }
        assert!(err("asset import a.csv --replace=yes").contains("--replace takes no value"));
    }

    #[test]
    fn asset_edit_changes_only_what_is_given() {
        let Action::AssetEdit { name, edit } =
            action("asset edit web-01 --rpo 12h --exclude '' --profile none")
        else {
            panic!()
        };
        assert_eq!(name, "web-01");
        let mut a = Asset {
            name: "web-01".into(),
            owner: "web".into(),
            criticality: Criticality::High,
            sources: vec!["/srv".into()],
            excludes: vec!["*.tmp".into()],
            rpo: Duration(86_400),
            rto: Duration(3600),
            profile: Some("standard".into()),
        };
        let before = a.clone();
        edit.apply(&mut a);
        assert_eq!(a.rpo, Duration(12 * 3600));
        assert!(a.excludes.is_empty());
        assert_eq!(a.profile, None);
        assert_eq!(
            (&a.owner, a.criticality, &a.sources, a.rto),
            (
                &before.owner,
                before.criticality,
                &before.sources,
                before.rto
            )
        );
        let Action::AssetEdit { edit, .. } =
            action("asset edit web-01 --source /a --source /b --owner ops")
        else {
            panic!()
        };
        edit.apply(&mut a);
        assert_eq!(a.sources, ["/a", "/b"]);
        assert_eq!(a.owner, "ops");
        assert!(err("asset edit web-01").contains("nothing to change"));
        assert!(err("asset edit web-01 --owner a --owner b").contains("--owner given twice"));
        assert!(err("asset edit web-01 --owner").contains("--owner needs a value (OWNER)"));
    }

    #[test]
    fn profile_commands() {
        assert_eq!(
            wire("profile show standard"),
            json!({"op": "profile_get", "args": {"name": "standard"}})
        );
        assert_eq!(
            wire("profile remove standard"),
            json!({"op": "profile_remove", "args": {"name": "standard"}})
        );
        assert_eq!(
            wire(
                "profile add standard --full 'Sun 01:00' --incremental 'Mon..Sat 01:00' \
                 --keep-daily 7 --keep-weekly 4 --keep-within 2d --retries 3 --retry-backoff 10m"
            ),
            json!({"op": "profile_add", "args": {"profile": {
                "name": "standard",
                "schedules": {"full": "Sun 01:00", "incremental": "Mon..Sat 01:00"},
                "retention": {"keep_daily": 7, "keep_weekly": 4, "keep_within": "2d"},
                "target": "default", "retries": 3, "retry_backoff": "10m"
            }}})
        );
        assert_eq!(
            wire("profile add bare"),
            json!({"op": "profile_add", "args": {"profile": {
                "name": "bare", "schedules": {}, "retention": {},
                "target": "default", "retries": 2, "retry_backoff": "5m"
            }}})
        );
        let Action::ProfileEdit { name, edit } =
            action("profile edit standard --full none --keep-daily 14 --keep-weekly none")
        else {
            panic!()
        };
        assert_eq!(name, "standard");
        let mut p = new_profile("standard");
        p.schedules.full = Some("Sun 01:00".into());
        p.schedules.incremental = Some("daily".into());
        p.retention.keep_weekly = Some(4);
        edit.apply(&mut p);
        assert_eq!(p.schedules.full, None);
        assert_eq!(p.schedules.incremental.as_deref(), Some("daily"));
        assert_eq!(p.retention.keep_daily, Some(14));
        assert_eq!(p.retention.keep_weekly, None);
        assert_eq!(p.retries, 2);
        assert!(
            err("profile add x --keep-daily lots").contains("--keep-daily: 'lots' is not a number")
        );
        assert!(err("profile edit x").contains("nothing to change"));
        let Action::ProfileEdit { edit, .. } = action(
            "profile edit standard --replicate-to offsite,vault --replicate-schedule '*-*-* 02:00'",
        ) else {
            panic!()
        };
        edit.apply(&mut p);
        assert_eq!(p.replicate_to, ["offsite", "vault"]);
        assert_eq!(p.replicate_schedule.as_deref(), Some("*-*-* 02:00"));
        let Action::ProfileEdit { edit, .. } =
            action("profile edit standard --replicate-schedule after-backup")
        else {
            panic!()
        };
        edit.apply(&mut p);
        assert_eq!(p.replicate_schedule, None);
        assert_eq!(p.replicate_to, ["offsite", "vault"]);
        let Action::ProfileEdit { edit, .. } = action("profile edit standard --replicate-to none")
        else {
            panic!()
        };
        edit.apply(&mut p);
        assert!(p.replicate_to.is_empty());
    }

    #[test]
    fn schedule_commands() {
        assert_eq!(
            wire("schedule next"),
            json!({"op": "schedule_next", "args": {}})
        );
        assert_eq!(
            wire("schedule next 3"),
            json!({"op": "schedule_next", "args": {"count": 3}})
        );
        assert_eq!(
            wire("schedule check 'Mon..Fri 01:00'"),
            json!({"op": "schedule_check", "args": {"expr": "Mon..Fri 01:00"}})
        );
        // unquoted, the rest of the line is the expression
        assert_eq!(
            wire("schedule check Mon..Fri 01:00 --count 3"),
            json!({"op": "schedule_check", "args": {"expr": "Mon..Fri 01:00", "count": 3}})
        );
        assert!(err("schedule check").contains("missing EXPR"));
        assert!(err("schedule next many").contains("'many' is not a number"));
    }

    #[test]
    fn job_commands() {
        assert_eq!(wire("job list"), json!({"op": "job_list", "args": {}}));
        assert_eq!(
            wire("job list --asset web-01 --status failed --limit 5"),
            json!({"op": "job_list", "args": {"asset": "web-01", "status": "failed", "limit": 5}})
        );
        assert_eq!(
            wire("job show 42"),
            json!({"op": "job_get", "args": {"id": 42}})
        );
        assert_eq!(
            wire("job show '#42'"),
            json!({"op": "job_get", "args": {"id": 42}})
        );
        assert_eq!(
            wire("job log 7"),
            json!({"op": "job_log", "args": {"id": 7}})
        );
        assert_eq!(
            wire("job cancel 7"),
            json!({"op": "job_cancel", "args": {"id": 7}})
        );
        assert_eq!(
            wire("job run web-01"),
            json!({"op": "job_run", "args": {"asset": "web-01", "level": "full"}})
        );
        assert_eq!(
            wire("job run web-01 --level incr"),
            json!({"op": "job_run", "args": {"asset": "web-01", "level": "incremental"}})
        );
        assert!(matches!(
            action("job run web-01 --level differential --watch"),
            Action::JobRun {
                level: Level::Differential,
                watch: true,
                ..
            }
        ));
        assert!(matches!(action("job watch 9"), Action::JobWatch { id: 9 }));
        assert!(err("job show x").contains("'x' is not a job id"));
        assert!(
            err("job list --status lost").contains("--status: 'lost' is not a valid job status")
        );
        assert!(err("job run web-01 --level huge").contains("not a valid backup level"));
        assert!(err("job list --limit").contains("--limit needs a value"));
    }

    #[test]
    fn snapshot_alert_audit_commands() {
        assert_eq!(
            wire("snapshot list"),
            json!({"op": "snapshot_list", "args": {}})
        );
        assert_eq!(
            wire("snapshot list --asset db"),
            json!({"op": "snapshot_list", "args": {"asset": "db"}})
        );
        assert_eq!(
            wire("alert list"),
            json!({"op": "alert_list", "args": {"all": false}})
        );
        assert_eq!(
            wire("alert list --all"),
            json!({"op": "alert_list", "args": {"all": true}})
        );
        assert_eq!(
            wire("alert ack 3"),
            json!({"op": "alert_ack", "args": {"id": 3}})
        );
        assert_eq!(
            wire("audit list"),
            json!({"op": "audit_list", "args": {"filter": {}}})
        );
        assert_eq!(
            wire(
                "audit list --since 24h --until 2027-01-15T08:00:00Z --user alice --action asset. --limit 20"
            ),
            json!({"op": "audit_list", "args": {"filter": {
                "since_ms": NOW - 86_400_000, "until_ms": NOW,
                "user": "alice", "action": "asset.", "limit": 20
            }}})
        );
        assert_eq!(
            wire("audit list --since 7d-ago")["args"]["filter"]["since_ms"],
            json!(NOW - 7 * 86_400_000)
        );
        assert_eq!(
            wire("audit list --since 2027-01-15")["args"]["filter"]["since_ms"],
            json!(1_799_971_200_000i64)
        );
        assert!(err("audit list --since yesterday").contains("--since: 'yesterday' is neither"));
        assert!(err("alert ack x").contains("not an alert id"));
    }

    #[test]
    fn json_flag_anywhere_and_help_flags() {
        let (a, json) = parse_line("job list --json --limit 2", &ctx()).unwrap();
        assert!(json);
        assert!(matches!(
            a,
            Action::Call(Call::JobList { limit: Some(2), .. })
        ));
        let (a, json) = parse_line("job list", &ctx()).unwrap();
        assert!(!json);
        assert!(matches!(a, Action::Call(_)));
        assert!(matches!(action("asset add --help"), Action::Help(t) if t == ["asset", "add"]));
        assert!(matches!(action("help asset"), Action::Help(t) if t == ["asset"]));
    }

    #[test]
    fn bad_lines_are_usage_errors() {
        assert!(err("frobnicate").contains("unknown command 'frobnicate'"));
        assert!(err("status --verbose").contains("'status' takes no flags"));
        assert!(err("asset show 'web").contains("unterminated single quote"));
        assert!(err("").contains("no command given"));
        // flags after `--` are positionals
        assert_eq!(
            wire("asset show -- --odd-name"),
            json!({"op": "asset_get", "args": {"name": "--odd-name"}})
        );
    }

    #[test]
    fn every_entry_has_help_and_a_group() {
        for e in ENTRIES {
            assert!(!e.help.is_empty());
            let g = if e.words[0] == "quit" {
                "exit"
            } else {
                e.words[0]
            };
            assert!(GROUPS.iter().any(|x| x.name == g), "{:?}", e.words);
            let h = help(&e.words.iter().map(|w| w.to_string()).collect::<Vec<_>>()).unwrap();
            assert!(h.contains(&e.usage()), "{h}");
        }
        for g in GROUPS {
            assert!(help(&[g.name.to_string()]).is_ok(), "{}", g.name);
        }
        let top = help(&[]).unwrap();
        assert!(top.contains("asset") && top.contains("audit"));
        let a = help(&["asset".into()]).unwrap();
        assert!(a.contains("asset import FILE.csv [--replace]"), "{a}");
        assert!(a.contains("--exclude GLOB"), "{a}");
        assert!(help(&["nope".into()]).is_err());
        assert!(help(&["asset".into(), "nope".into()]).is_err());
    }

    #[test]
    fn usage_lines() {
        let e = find(&["asset".into(), "add".into()]).unwrap();
        assert_eq!(
            e.usage(),
            "asset add NAME --owner OWNER --criticality C --source PATH... [--exclude GLOB]... \
             --rpo DURATION --rto DURATION [--profile PROFILE]"
        );
        let e = find(&["schedule".into(), "check".into()]).unwrap();
        assert_eq!(e.usage(), "schedule check EXPR... [--count N]");
    }
}
