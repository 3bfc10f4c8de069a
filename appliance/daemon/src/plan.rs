//! Schedule planning: which backups are due, when the next ones are, when
//! to retry, which assets breach their RPO. Pure functions of
//! `(now, register, state)`, no clock and no I/O, so that weeks of
//! simulated minutes run in a test; the daemon reads the catalog, calls
//! these, and carries out (and persists) what they return.
//!
//! Rules:
//! - **A new schedule never fires retroactively.** A schedule without
//!   state, or whose expression changed since its state was written, starts
//!   from `now`: its first run is its next occurrence.
//! - **Catch-up fires once.** If occurrences passed while the appliance was
//!   off, the schedule fires once, for the latest missed occurrence, never
//!   once per occurrence; its state becomes that occurrence.
//! - **One run per asset and pass.** When several levels of an asset fall
//!   due in the same pass, only the strongest runs (full > differential >
//!   incremental) and the state of all of them advances.

use std::collections::{HashMap, HashSet};

use coffer_catalog::{RegisteredAsset, ScheduleKey, ScheduleMark};
use coffer_types::api::{Asset, Duration, NextRun, Profile};
use coffer_types::{Level, rfc3339_ms};
use jiff::tz::TimeZone;

use crate::calendar::Calendar;

/// The longest wait before a retry.
pub const MAX_RETRY_DELAY_MS: i64 = 24 * 3600 * 1000;

/// Levels from the strongest down: the order in which a pass picks one.
pub const LEVELS_BY_STRENGTH: [Level; 3] = [Level::Full, Level::Differential, Level::Incremental];

/// How strong a level is: full 3, differential 2, incremental 1.
pub fn strength(level: Level) -> u8 {
    match level {
        Level::Full => 3,
        Level::Differential => 2,
        Level::Incremental => 1,
    }
}

/// One level's schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LevelSchedule {
    /// The level it runs.
    pub level: Level,
    /// When.
    pub calendar: Calendar,
}

/// An asset's schedules, as its profile states them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetSchedule {
    /// The asset.
    pub asset: String,
    /// Its profile.
    pub profile: String,
    /// One per scheduled level.
    pub levels: Vec<LevelSchedule>,
}

/// Something in the register that keeps an asset (or some of its levels)
/// from being scheduled; raised by the daemon as an alert of `kind` about
/// `asset`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterProblem {
    /// The alert kind: `unprotected` (no profile, or none that exists) or
    /// `config` (a profile's schedule does not parse, or it has none).
    pub kind: &'static str,
    /// The asset.
    pub asset: String,
    /// A sentence for the operator.
    pub message: String,
}

/// Maps each asset of the register to its profile's parsed schedules.
/// Assets that cannot be scheduled (or only in part) are reported, not
/// dropped silently.
pub fn schedules(
    assets: &[Asset],
    profiles: &[Profile],
) -> (Vec<AssetSchedule>, Vec<RegisterProblem>) {
    let by_name: HashMap<&str, &Profile> = profiles.iter().map(|p| (p.name.as_str(), p)).collect();
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for asset in assets {
        let problem = |kind, message| RegisterProblem {
            kind,
            asset: asset.name.clone(),
            message,
        };
        let Some(pname) = &asset.profile else {
            problems.push(problem(
                "unprotected",
                format!("{}: no profile, so it is never backed up", asset.name),
            ));
            continue;
        };
        let Some(profile) = by_name.get(pname.as_str()) else {
            problems.push(problem(
                "unprotected",
                format!(
                    "{}: profile '{pname}' does not exist, so it is never backed up",
                    asset.name
                ),
            ));
            continue;
        };
        let mut levels = Vec::new();
        for level in LEVELS_BY_STRENGTH {
            let Some(expr) = profile.schedules.get(level) else {
                continue;
            };
            match Calendar::parse(expr) {
                Ok(calendar) => levels.push(LevelSchedule { level, calendar }),
                Err(e) => problems.push(problem(
                    "config",
                    format!(
                        "{}: profile '{pname}': the {level} schedule '{expr}' is not valid \
                         ({e}); {level} backups do not run",
                        asset.name
                    ),
                )),
            }
        }
        if levels.is_empty() {
            problems.push(problem(
                "config",
                format!(
                    "{}: profile '{pname}' has no usable schedule, so it is never backed up",
                    asset.name
                ),
            ));
            continue;
        }
        out.push(AssetSchedule {
            asset: asset.name.clone(),
            profile: pname.clone(),
            levels,
        });
    }
    (out, problems)
}

/// A run due now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// The asset.
    pub asset: String,
    /// The profile whose schedule it is.
    pub profile: String,
    /// The level to run.
    pub level: Level,
    /// The occurrence it runs for, ms since the epoch (≤ now; earlier than
    /// now when it is a catch-up).
    pub due_ms: i64,
}

/// What one planning pass decided.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pass {
    /// The runs to queue, at most one per asset, in register order.
    pub due: Vec<Due>,
    /// Schedule state to write.
    pub set: Vec<(ScheduleKey, ScheduleMark)>,
    /// Schedule state to delete: schedules no longer in the register.
    pub forget: Vec<ScheduleKey>,
}

impl Pass {
    /// Applies `set` and `forget` to an in-memory state, as the catalog's
    /// `set_schedule_state` does to the stored one.
    pub fn apply(&self, state: &mut HashMap<ScheduleKey, ScheduleMark>) {
        for (key, mark) in &self.set {
            state.insert(key.clone(), mark.clone());
        }
        for key in &self.forget {
            state.remove(key);
        }
    }
}

/// The live state of one schedule: its mark if it is still valid for this
/// expression.
fn mark_for<'s>(
    state: &'s HashMap<ScheduleKey, ScheduleMark>,
    asset: &str,
    level: Level,
    expr: &str,
) -> Option<&'s ScheduleMark> {
    state
        .get(&(asset.to_string(), level))
        .filter(|m| m.expr == expr)
}

/// What one schedule does in a pass.
#[derive(Debug)]
enum Step {
    /// New, or its expression changed: its state starts at now (never
    /// retroactively).
    Start(ScheduleMark),
    /// An occurrence passed since its state (the latest, if several did):
    /// it runs once, and this is its new state.
    Due(ScheduleMark),
    /// Nothing to do.
    Idle,
}

fn step(calendar: &Calendar, mark: Option<&ScheduleMark>, now_ms: i64, tz: &TimeZone) -> Step {
    let expr = calendar.to_string();
    let Some(mark) = mark.filter(|m| m.expr == expr) else {
        return Step::Start(ScheduleMark {
            expr,
            last_due_ms: now_ms,
        });
    };
    match calendar.last_at_or_before(now_ms, tz) {
        Some(latest) if latest > mark.last_due_ms => Step::Due(ScheduleMark {
            expr,
            last_due_ms: latest,
        }),
        _ => Step::Idle,
    }
}

/// A profile whose replications run on a calendar of their own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicationSchedule {
    /// The profile.
    pub profile: String,
    /// Its remotes.
    pub remotes: Vec<String>,
    /// When.
    pub calendar: Calendar,
}

/// The profiles with a replication calendar, parsed; a profile whose
/// calendar does not parse, or that has one but no remote, is reported as
/// `(profile, sentence)`.
pub fn replication_schedules(
    profiles: &[Profile],
) -> (Vec<ReplicationSchedule>, Vec<(String, String)>) {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for p in profiles {
        let Some(expr) = &p.replicate_schedule else {
            continue;
        };
        if p.replicate_to.is_empty() {
            problems.push((
                p.name.clone(),
                format!(
                    "profile '{}': a replication schedule but no remote to replicate to",
                    p.name
                ),
            ));
            continue;
        }
        match Calendar::parse(expr) {
            Ok(calendar) => out.push(ReplicationSchedule {
                profile: p.name.clone(),
                remotes: p.replicate_to.clone(),
                calendar,
            }),
            Err(e) => problems.push((
                p.name.clone(),
                format!(
                    "profile '{}': the replication schedule '{expr}' is not valid ({e}); \
                     its replications do not run",
                    p.name
                ),
            )),
        }
    }
    (out, problems)
}

/// A replication run due now: every remote of `profile`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicationDue {
    /// The profile.
    pub profile: String,
    /// Its remotes.
    pub remotes: Vec<String>,
    /// The occurrence it runs for (earlier than now: a catch-up).
    pub due_ms: i64,
}

/// One replication planning pass.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplicationPass {
    /// The runs to queue.
    pub due: Vec<ReplicationDue>,
    /// State to write, by profile.
    pub set: Vec<(String, ScheduleMark)>,
    /// State to delete: profiles no longer replicating on a calendar.
    pub forget: Vec<String>,
}

/// A pass over per-profile calendars (`(profile, calendar)`): the
/// profiles due with their occurrence, the state to write and the state
/// to forget, by the backup schedules' rules: never retroactive, a missed
/// occurrence catches up once.
#[allow(clippy::type_complexity)]
pub(crate) fn plan_calendars<'a>(
    now_ms: i64,
    calendars: impl Iterator<Item = (&'a str, &'a Calendar)>,
    state: &HashMap<String, ScheduleMark>,
    default_tz: &TimeZone,
) -> (Vec<(String, i64)>, Vec<(String, ScheduleMark)>, Vec<String>) {
    let (mut due, mut set) = (Vec::new(), Vec::new());
    let mut live: HashSet<&str> = HashSet::new();
    for (profile, calendar) in calendars {
        live.insert(profile);
        match step(calendar, state.get(profile), now_ms, default_tz) {
            Step::Start(mark) => set.push((profile.to_string(), mark)),
            Step::Due(mark) => {
                due.push((profile.to_string(), mark.last_due_ms));
                set.push((profile.to_string(), mark));
            }
            Step::Idle => {}
        }
    }
    let mut forget: Vec<String> = state
        .keys()
        .filter(|p| !live.contains(p.as_str()))
        .cloned()
        .collect();
    forget.sort();
    (due, set, forget)
}

/// The replication calendars' pass at `now_ms`.
pub fn plan_replication(
    now_ms: i64,
    schedules: &[ReplicationSchedule],
    state: &HashMap<String, ScheduleMark>,
    default_tz: &TimeZone,
) -> ReplicationPass {
    let (due, set, forget) = plan_calendars(
        now_ms,
        schedules.iter().map(|s| (s.profile.as_str(), &s.calendar)),
        state,
        default_tz,
    );
    ReplicationPass {
        due: due
            .into_iter()
            .filter_map(|(profile, due_ms)| {
                let s = schedules.iter().find(|s| s.profile == profile)?;
                Some(ReplicationDue {
                    remotes: s.remotes.clone(),
                    profile,
                    due_ms,
                })
            })
            .collect(),
        set,
        forget,
    }
}

/// The next replication run of each profile with a calendar after
/// `now_ms`: `(profile, at_ms)`, soonest first.
pub fn next_replications(
    now_ms: i64,
    schedules: &[ReplicationSchedule],
    default_tz: &TimeZone,
) -> Vec<(String, i64)> {
    let mut out: Vec<(String, i64)> = schedules
        .iter()
        .filter_map(|s| {
            s.calendar
                .next_after(now_ms, default_tz)
                .map(|t| (s.profile.clone(), t))
        })
        .collect();
    out.sort_by_key(|(p, t)| (*t, p.clone()));
    out
}

/// A profile's restore drill calendar.
#[derive(Debug, Clone)]
pub struct DrillSchedule {
    /// The profile.
    pub profile: String,
    /// How its drills run.
    pub policy: coffer_types::api::DrillPolicy,
    /// When.
    pub calendar: Calendar,
}

/// The profiles with a drill calendar, parsed; one whose calendar does not
/// parse is reported as `(profile, sentence)`.
pub fn drill_schedules(profiles: &[Profile]) -> (Vec<DrillSchedule>, Vec<(String, String)>) {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for p in profiles {
        let Some(d) = &p.drill else { continue };
        match Calendar::parse(&d.schedule) {
            Ok(calendar) => out.push(DrillSchedule {
                profile: p.name.clone(),
                policy: d.clone(),
                calendar,
            }),
            Err(e) => problems.push((
                p.name.clone(),
                format!(
                    "profile '{}': the drill schedule '{}' is not valid ({e}); its drills do not run",
                    p.name, d.schedule
                ),
            )),
        }
    }
    (out, problems)
}

/// One drill planning pass: the profiles whose drills are due (with the
/// occurrence), and the state to persist, by the backup schedules' rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DrillPass {
    /// (profile, occurrence) to drill now.
    pub due: Vec<(String, i64)>,
    /// State to write, by profile.
    pub set: Vec<(String, ScheduleMark)>,
    /// State to delete: profiles no longer drilling on a calendar.
    pub forget: Vec<String>,
}

/// The drill calendars' pass at `now_ms`.
pub fn plan_drills(
    now_ms: i64,
    schedules: &[DrillSchedule],
    state: &HashMap<String, ScheduleMark>,
    default_tz: &TimeZone,
) -> DrillPass {
    let (due, set, forget) = plan_calendars(
        now_ms,
        schedules.iter().map(|s| (s.profile.as_str(), &s.calendar)),
        state,
        default_tz,
    );
    DrillPass { due, set, forget }
}

/// One planning pass at `now_ms`: the runs due (see the module's rules)
/// and the state to persist. Calendars without a zone of their own are
/// evaluated in `default_tz`.
pub fn plan(
    now_ms: i64,
    register: &[AssetSchedule],
    state: &HashMap<ScheduleKey, ScheduleMark>,
    default_tz: &TimeZone,
) -> Pass {
    let mut pass = Pass::default();
    let mut live: HashSet<ScheduleKey> = HashSet::new();
    for a in register {
        let mut due: Vec<(Level, i64)> = Vec::new();
        for ls in &a.levels {
            let key = (a.asset.clone(), ls.level);
            live.insert(key.clone());
            let expr = ls.calendar.to_string();
            let mark = mark_for(state, &a.asset, ls.level, &expr);
            match step(&ls.calendar, mark, now_ms, default_tz) {
                Step::Start(mark) => pass.set.push((key, mark)),
                Step::Due(mark) => {
                    due.push((ls.level, mark.last_due_ms));
                    pass.set.push((key, mark));
                }
                Step::Idle => {}
            }
        }
        if let Some(&(level, due_ms)) = due.iter().max_by_key(|(l, _)| strength(*l)) {
            pass.due.push(Due {
                asset: a.asset.clone(),
                profile: a.profile.clone(),
                level,
                due_ms,
            });
        }
    }
    let mut forget: Vec<ScheduleKey> = state
        .keys()
        .filter(|k| !live.contains(*k))
        .cloned()
        .collect();
    forget.sort_by_key(|(asset, level)| (asset.clone(), std::cmp::Reverse(strength(*level))));
    pass.forget = forget;
    pass
}

/// The next `count` scheduled runs after `now_ms`, soonest first, for
/// `schedule next`. A run that a pass would queue now (a missed occurrence
/// not yet handled) is listed at `now_ms`. As in [`plan`], one run per asset
/// and instant: the strongest level.
pub fn next_runs(
    now_ms: i64,
    register: &[AssetSchedule],
    state: &HashMap<ScheduleKey, ScheduleMark>,
    count: usize,
    default_tz: &TimeZone,
) -> Vec<NextRun> {
    // (at, asset, strength) → run; the first `count` occurrences of each
    // schedule are enough, whatever the merge drops.
    let mut runs: Vec<(i64, &str, &str, Level)> = Vec::new();
    for a in register {
        for ls in &a.levels {
            let expr = ls.calendar.to_string();
            if let Some(mark) = mark_for(state, &a.asset, ls.level, &expr)
                && ls
                    .calendar
                    .last_at_or_before(now_ms, default_tz)
                    .is_some_and(|latest| latest > mark.last_due_ms)
            {
                runs.push((now_ms, &a.asset, &a.profile, ls.level));
            }
            let mut t = now_ms;
            for _ in 0..count {
                let Some(next) = ls.calendar.next_after(t, default_tz) else {
                    break;
                };
                runs.push((next, &a.asset, &a.profile, ls.level));
                t = next;
            }
        }
    }
    runs.sort_by(|x, y| {
        (x.0, x.1, std::cmp::Reverse(strength(x.3))).cmp(&(
            y.0,
            y.1,
            std::cmp::Reverse(strength(y.3)),
        ))
    });
    runs.dedup_by(|later, kept| later.0 == kept.0 && later.1 == kept.1);
    runs.into_iter()
        .take(count)
        .map(|(at_ms, asset, profile, level)| NextRun {
            asset: asset.to_string(),
            profile: profile.to_string(),
            level,
            at: rfc3339_ms(at_ms),
            at_ms,
        })
        .collect()
}

/// When to retry a job that failed at `failed_at_ms`: `backoff` ×
/// 2^(attempt−1), at most [`MAX_RETRY_DELAY_MS`]. `attempt` counts retries
/// from 1 (0 is read as 1).
pub fn retry_at(failed_at_ms: i64, attempt: u32, backoff: Duration) -> i64 {
    let doublings = attempt.saturating_sub(1).min(62);
    let delay = backoff
        .ms()
        .saturating_mul(1i64 << doublings)
        .min(MAX_RETRY_DELAY_MS);
    failed_at_ms.saturating_add(delay)
}

/// An asset whose newest good backup is older than its RPO allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpoBreach {
    /// The asset.
    pub asset: String,
    /// A sentence for the operator, e.g. `web-01: last good backup 26h ago,
    /// RPO is 24h`.
    pub message: String,
}

/// A span for operators: `45s`, `15m`, `26h`, `26h30m`, `3d`, `4d6h`.
/// Hours up to three days, because RPOs are stated in hours.
pub fn human_span(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    let (d, h, m) = (s / 86_400, s / 3600, s / 60);
    if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{m}m")
    } else if s < 3 * 86_400 {
        match m % 60 {
            0 => format!("{h}h"),
            mm => format!("{h}h{mm}m"),
        }
    } else {
        match h % 24 {
            0 => format!("{d}d"),
            hh => format!("{d}d{hh}h"),
        }
    }
}

/// The assets breaching their RPO at `now_ms`: the newest good backup (from
/// `last_good_by_asset`, ms since the epoch) is older than the RPO, or there
/// is none and the asset was registered longer ago than the RPO. An RPO of
/// zero means none is set.
pub fn rpo_breaches(
    now_ms: i64,
    assets: &[RegisteredAsset],
    last_good_by_asset: &HashMap<String, i64>,
) -> Vec<RpoBreach> {
    let mut out = Vec::new();
    for r in assets {
        let a = &r.asset;
        let rpo_ms = a.rpo.ms();
        if rpo_ms == 0 {
            continue;
        }
        let rpo = human_span(rpo_ms);
        let message = match last_good_by_asset.get(&a.name) {
            Some(&last) if now_ms.saturating_sub(last) > rpo_ms => format!(
                "{}: last good backup {} ago, RPO is {rpo}",
                a.name,
                human_span(now_ms.saturating_sub(last))
            ),
            None if now_ms.saturating_sub(r.registered_ms) > rpo_ms => {
                format!("{}: no good backup yet, RPO is {rpo}", a.name)
            }
            _ => continue,
        };
        out.push(RpoBreach {
            asset: a.name.clone(),
            message,
        });
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
