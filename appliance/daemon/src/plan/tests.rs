//! The planner over simulated weeks: a clock stepped minute by minute,
//! appliances switched off and on, schedules added and changed, DST.

use std::collections::HashMap;

use coffer_catalog::{RegisteredAsset, ScheduleKey, ScheduleMark};
use coffer_types::Level;
use coffer_types::api::{Asset, Criticality, Duration, Profile, Schedules};
use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::*;

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;

fn ms(rfc3339: &str) -> i64 {
    rfc3339.parse::<Timestamp>().unwrap().as_millisecond()
}

fn utc(ms: i64) -> String {
    Timestamp::from_millisecond(ms).unwrap().to_string()
}

fn asset(name: &str, profile: Option<&str>) -> Asset {
    Asset {
        name: name.to_string(),
        owner: "ops".to_string(),
        criticality: Criticality::Medium,
        sources: vec![format!("/srv/{name}")],
        excludes: Vec::new(),
        rpo: Duration(86_400),
        rto: Duration(3600),
        profile: profile.map(str::to_string),
    }
}

fn profile(name: &str, full: Option<&str>, diff: Option<&str>, incr: Option<&str>) -> Profile {
    Profile {
        name: name.to_string(),
        schedules: Schedules {
            full: full.map(str::to_string),
            differential: diff.map(str::to_string),
            incremental: incr.map(str::to_string),
        },
        retention: Default::default(),
        target: "default".to_string(),
        tape_pool: None,
        replicate_to: Vec::new(),
        replicate_schedule: None,
        retries: 2,
        retry_backoff: Duration(300),
        drill: None,
    }
}

/// The brief's weekly rotation: full on Sunday, differential the other
/// days, incremental every four hours.
fn standard() -> Profile {
    profile(
        "standard",
        Some("Sun 01:00"),
        Some("Mon..Sat 01:00"),
        Some("*-*-* 00/4:00"),
    )
}

fn register(assets: &[Asset], profiles: &[Profile]) -> Vec<AssetSchedule> {
    let (reg, problems) = schedules(assets, profiles);
    assert!(problems.is_empty(), "{problems:?}");
    reg
}

type State = HashMap<ScheduleKey, ScheduleMark>;

/// Runs a pass every `step` from `from` to `to` (both included), applying
/// each pass's state; returns every run queued.
fn simulate(
    reg: &[AssetSchedule],
    state: &mut State,
    from: i64,
    to: i64,
    step: i64,
    tz: &TimeZone,
) -> Vec<(i64, Due)> {
    let mut runs = Vec::new();
    let mut now = from;
    while now <= to {
        let pass = plan(now, reg, state, tz);
        pass.apply(state);
        let mut per_asset = HashMap::new();
        for d in pass.due {
            assert!(d.due_ms <= now, "{} due in the future", utc(d.due_ms));
            *per_asset.entry(d.asset.clone()).or_insert(0) += 1;
            runs.push((now, d));
        }
        assert!(per_asset.values().all(|&n| n == 1), "two runs of one asset");
        now += step;
    }
    runs
}

fn count(runs: &[(i64, Due)], level: Level) -> usize {
    runs.iter().filter(|(_, d)| d.level == level).count()
}

#[test]
fn three_weeks_minute_by_minute_in_utc() {
    let reg = register(&[asset("web-01", Some("standard"))], &[standard()]);
    let mut state = State::new();
    let start = ms("2024-01-01T00:00:30Z"); // a Monday
    let end = start + 21 * DAY;
    let runs = simulate(&reg, &mut state, start, end, MIN, &TimeZone::UTC);
    assert_eq!(count(&runs, Level::Full), 3, "Sundays 7, 14, 21");
    assert_eq!(count(&runs, Level::Differential), 18, "Mon..Sat × 3 weeks");
    // 04..20 on the 1st (the 00:00 was before the schedule existed), six a
    // day from the 2nd to the 21st, and 00:00 on the 22nd.
    assert_eq!(count(&runs, Level::Incremental), 5 + 20 * 6 + 1);
    for (now, d) in &runs {
        assert!(
            now - d.due_ms < MIN,
            "fired late: {} at {}",
            utc(d.due_ms),
            utc(*now)
        );
        assert_eq!(d.profile, "standard");
    }
    let fulls: Vec<String> = runs
        .iter()
        .filter(|(_, d)| d.level == Level::Full)
        .map(|(_, d)| utc(d.due_ms))
        .collect();
    assert_eq!(
        fulls,
        [
            "2024-01-07T01:00:00Z",
            "2024-01-14T01:00:00Z",
            "2024-01-21T01:00:00Z"
        ]
    );
    // The state is the last occurrence of each level.
    let key = |l| ("web-01".to_string(), l);
    assert_eq!(
        state[&key(Level::Full)].last_due_ms,
        ms("2024-01-21T01:00:00Z")
    );
    assert_eq!(
        state[&key(Level::Differential)].last_due_ms,
        ms("2024-01-20T01:00:00Z")
    );
    assert_eq!(
        state[&key(Level::Incremental)].last_due_ms,
        ms("2024-01-22T00:00:00Z")
    );
    assert_eq!(state[&key(Level::Full)].expr, "Sun *-*-* 01:00:00");
}

#[test]
fn coinciding_levels_run_the_strongest_only() {
    let p = profile("p", Some("Sun 00:00"), None, Some("*-*-* 00:00"));
    let reg = register(&[asset("web-01", Some("p"))], &[p]);
    let mut state = State::new();
    let start = ms("2024-01-01T00:00:30Z");
    let runs = simulate(
        &reg,
        &mut state,
        start,
        start + 14 * DAY,
        MIN,
        &TimeZone::UTC,
    );
    assert_eq!(runs.len(), 14, "one run a day");
    assert_eq!(count(&runs, Level::Full), 2);
    assert_eq!(count(&runs, Level::Incremental), 12);
    // Both states advanced on the Sunday: no incremental is owed after it.
    let key = |l| ("web-01".to_string(), l);
    assert_eq!(
        state[&key(Level::Incremental)].last_due_ms,
        ms("2024-01-15T00:00:00Z")
    );
    assert_eq!(
        state[&key(Level::Full)].last_due_ms,
        ms("2024-01-14T00:00:00Z")
    );
}

#[test]
fn a_new_schedule_never_fires_retroactively() {
    let reg = register(&[asset("web-01", Some("standard"))], &[standard()]);
    let now = ms("2024-01-03T12:00:30Z");
    let pass = plan(now, &reg, &State::new(), &TimeZone::UTC);
    assert!(pass.due.is_empty());
    assert_eq!(pass.set.len(), 3);
    assert!(pass.set.iter().all(|(_, m)| m.last_due_ms == now));
    assert!(pass.forget.is_empty());

    // A changed expression starts afresh too: last Sunday's full is not owed
    // to a schedule that now says Wednesday.
    let mut state = State::new();
    pass.apply(&mut state);
    let later = ms("2024-01-10T12:00:30Z");
    let moved = profile("standard", Some("Wed 01:00"), None, None);
    let reg2 = register(&[asset("web-01", Some("standard"))], &[moved]);
    let pass = plan(later, &reg2, &state, &TimeZone::UTC);
    assert!(pass.due.is_empty(), "{:?}", pass.due);
    let full = pass
        .set
        .iter()
        .find(|(k, _)| k.1 == Level::Full)
        .map(|(_, m)| m.clone())
        .unwrap();
    assert_eq!(full.expr, "Wed *-*-* 01:00:00");
    assert_eq!(full.last_due_ms, later);
    // The levels the profile dropped are forgotten.
    assert_eq!(
        pass.forget,
        [
            ("web-01".to_string(), Level::Differential),
            ("web-01".to_string(), Level::Incremental)
        ]
    );
    // A cosmetic change (same normalized form) keeps the state.
    let same = profile("standard", Some("wed 1:00:00"), None, None);
    let reg3 = register(&[asset("web-01", Some("standard"))], &[same]);
    pass.apply(&mut state);
    let pass = plan(later + MIN, &reg3, &state, &TimeZone::UTC);
    assert_eq!(pass, Pass::default());
}

#[test]
fn catch_up_after_being_off_fires_once_with_the_strongest_missed_level() {
    let reg = register(
        &[
            asset("web-01", Some("standard")),
            asset("db-01", Some("standard")),
        ],
        &[standard()],
    );
    let tz = TimeZone::UTC;
    let mut state = State::new();
    let start = ms("2024-01-01T00:00:30Z");
    let off = ms("2024-01-05T12:00:30Z"); // Friday
    simulate(&reg, &mut state, start, off, MIN, &tz);

    // Off over the weekend: Saturday's differential, Sunday's full and
    // eighteen incrementals are missed. Back on Monday at noon.
    let back = ms("2024-01-08T12:00:30Z");
    let pass = plan(back, &reg, &state, &tz);
    let summary: Vec<(String, Level, String)> = pass
        .due
        .iter()
        .map(|d| (d.asset.clone(), d.level, utc(d.due_ms)))
        .collect();
    assert_eq!(
        summary,
        [
            (
                "web-01".to_string(),
                Level::Full,
                "2024-01-07T01:00:00Z".to_string()
            ),
            (
                "db-01".to_string(),
                Level::Full,
                "2024-01-07T01:00:00Z".to_string()
            ),
        ]
    );
    pass.apply(&mut state);
    let key = |l| ("web-01".to_string(), l);
    assert_eq!(
        state[&key(Level::Full)].last_due_ms,
        ms("2024-01-07T01:00:00Z")
    );
    assert_eq!(
        state[&key(Level::Differential)].last_due_ms,
        ms("2024-01-08T01:00:00Z")
    );
    assert_eq!(
        state[&key(Level::Incremental)].last_due_ms,
        ms("2024-01-08T12:00:00Z")
    );
    // Then the normal schedule resumes: nothing more until 16:00.
    let runs = simulate(
        &reg,
        &mut state,
        back + MIN,
        ms("2024-01-08T16:05:00Z"),
        MIN,
        &tz,
    );
    let times: Vec<String> = runs.iter().map(|(_, d)| utc(d.due_ms)).collect();
    assert_eq!(times, ["2024-01-08T16:00:00Z", "2024-01-08T16:00:00Z"]);

    // Off from Monday evening to Wednesday noon: no Sunday missed, so the
    // catch-up is Wednesday's differential.
    let off = ms("2024-01-08T18:00:30Z");
    simulate(&reg, &mut state, ms("2024-01-08T16:06:00Z"), off, MIN, &tz);
    let pass = plan(ms("2024-01-10T12:00:30Z"), &reg, &state, &tz);
    assert_eq!(pass.due.len(), 2);
    assert!(
        pass.due
            .iter()
            .all(|d| d.level == Level::Differential && d.due_ms == ms("2024-01-10T01:00:00Z"))
    );

    // Off for a few hours: one incremental, for the latest missed one.
    pass.apply(&mut state);
    let pass = plan(ms("2024-01-10T21:00:30Z"), &reg, &state, &tz);
    assert_eq!(pass.due.len(), 2);
    assert!(
        pass.due
            .iter()
            .all(|d| d.level == Level::Incremental && d.due_ms == ms("2024-01-10T20:00:00Z"))
    );
}

#[test]
fn off_for_a_long_time_still_fires_once() {
    let reg = register(
        &[asset("web-01", Some("p"))],
        &[profile("p", None, None, Some("*:*:*"))],
    );
    let tz = TimeZone::UTC;
    let mut state = State::new();
    plan(ms("2024-01-01T00:00:00Z"), &reg, &state, &tz).apply(&mut state);
    let back = ms("2025-01-01T00:00:00.500Z");
    let started = std::time::Instant::now();
    let pass = plan(back, &reg, &state, &tz);
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    assert_eq!(pass.due.len(), 1);
    assert_eq!(pass.due[0].due_ms, ms("2025-01-01T00:00:00Z"));
}

#[test]
fn removed_assets_and_levels_are_forgotten() {
    let reg = register(
        &[asset("web-01", Some("p"))],
        &[profile("p", Some("Sun 01:00"), None, None)],
    );
    let mut state = State::new();
    for (asset, level) in [
        ("web-01", Level::Full),
        ("web-01", Level::Incremental),
        ("gone", Level::Full),
    ] {
        state.insert(
            (asset.to_string(), level),
            ScheduleMark {
                expr: "Sun *-*-* 01:00:00".to_string(),
                last_due_ms: ms("2024-01-07T01:00:00Z"),
            },
        );
    }
    let pass = plan(ms("2024-01-08T00:00:00Z"), &reg, &state, &TimeZone::UTC);
    assert!(pass.due.is_empty());
    assert!(pass.set.is_empty());
    assert_eq!(
        pass.forget,
        [
            ("gone".to_string(), Level::Full),
            ("web-01".to_string(), Level::Incremental)
        ]
    );
}

#[test]
fn berlin_dst_changes_fire_exactly_once_a_day() {
    let Ok(tz) = TimeZone::get("Europe/Berlin") else {
        eprintln!("skipping: Europe/Berlin does not load here");
        return;
    };
    let reg = register(
        &[asset("web-01", Some("p"))],
        &[profile("p", None, None, Some("*-*-* 02:30"))],
    );
    for (from, to, change_day, fired) in [
        // Spring forward: 02:30 does not exist on the 31st; it runs at 03:00.
        (
            "2024-03-25T00:00:00Z",
            "2024-04-02T00:00:00Z",
            "2024-03-31",
            "2024-03-31T01:00:00Z",
        ),
        // Fall back: 02:30 happens twice on the 27th; it runs at the first.
        (
            "2024-10-21T00:00:00Z",
            "2024-10-29T00:00:00Z",
            "2024-10-27",
            "2024-10-27T00:30:00Z",
        ),
    ] {
        let mut state = State::new();
        let runs = simulate(&reg, &mut state, ms(from), ms(to), MIN, &tz);
        assert_eq!(runs.len(), 8, "{from}: {runs:?}");
        let on_change: Vec<String> = runs
            .iter()
            .map(|(_, d)| utc(d.due_ms))
            .filter(|t| t.starts_with(change_day))
            .collect();
        assert_eq!(on_change, [fired]);
    }
}

#[test]
fn next_runs_lists_the_soonest_first() {
    let reg = register(
        &[
            asset("web-01", Some("standard")),
            asset("db-01", Some("nightly")),
        ],
        &[
            standard(),
            profile("nightly", Some("*-*-* 03:00"), None, None),
        ],
    );
    let tz = TimeZone::UTC;
    let now = ms("2024-01-01T00:00:30Z");
    let mut state = State::new();
    plan(now, &reg, &state, &tz).apply(&mut state);
    let runs = next_runs(now, &reg, &state, 5, &tz);
    let got: Vec<(&str, Level, &str)> = runs
        .iter()
        .map(|r| (r.asset.as_str(), r.level, r.at.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("web-01", Level::Differential, "2024-01-01T01:00:00.000Z"),
            ("db-01", Level::Full, "2024-01-01T03:00:00.000Z"),
            ("web-01", Level::Incremental, "2024-01-01T04:00:00.000Z"),
            ("web-01", Level::Incremental, "2024-01-01T08:00:00.000Z"),
            ("web-01", Level::Incremental, "2024-01-01T12:00:00.000Z"),
        ]
    );
    assert_eq!(runs[0].profile, "standard");
    assert_eq!(runs[0].at_ms, ms("2024-01-01T01:00:00Z"));
    assert!(next_runs(now, &reg, &state, 0, &tz).is_empty());
}

#[test]
fn next_runs_merges_coinciding_levels_and_shows_owed_runs_now() {
    let p = profile("p", Some("Sun 00:00"), None, Some("*-*-* 00:00"));
    let reg = register(&[asset("web-01", Some("p"))], &[p]);
    let tz = TimeZone::UTC;
    let sat = ms("2024-01-06T12:00:00Z");
    let mut state = State::new();
    plan(sat, &reg, &state, &tz).apply(&mut state);
    let runs = next_runs(sat, &reg, &state, 3, &tz);
    let got: Vec<(Level, &str)> = runs.iter().map(|r| (r.level, r.at.as_str())).collect();
    assert_eq!(
        got,
        [
            (Level::Full, "2024-01-07T00:00:00.000Z"),
            (Level::Incremental, "2024-01-08T00:00:00.000Z"),
            (Level::Incremental, "2024-01-09T00:00:00.000Z"),
        ]
    );
    // Two days later with no pass in between: the owed full is listed now.
    let mon = ms("2024-01-08T12:00:00Z");
    let runs = next_runs(mon, &reg, &state, 2, &tz);
    let got: Vec<(Level, i64)> = runs.iter().map(|r| (r.level, r.at_ms)).collect();
    assert_eq!(
        got,
        [
            (Level::Full, mon),
            (Level::Incremental, ms("2024-01-09T00:00:00Z"))
        ]
    );
}

#[test]
fn schedules_report_what_cannot_be_scheduled() {
    let assets = [
        asset("web-01", Some("standard")),
        asset("files-01", None),
        asset("mail-01", Some("missing")),
        asset("db-01", Some("half-broken")),
        asset("ftp-01", Some("empty")),
    ];
    let profiles = [
        standard(),
        profile("half-broken", Some("Sun 25:00"), None, Some("hourly")),
        profile("empty", None, None, None),
    ];
    let (reg, problems) = schedules(&assets, &profiles);
    let names: Vec<(&str, usize)> = reg
        .iter()
        .map(|a| (a.asset.as_str(), a.levels.len()))
        .collect();
    assert_eq!(names, [("web-01", 3), ("db-01", 1)]);
    assert_eq!(reg[0].levels[0].level, Level::Full, "strongest first");
    let got: Vec<(&str, &str, &str)> = problems
        .iter()
        .map(|p| (p.kind, p.asset.as_str(), p.message.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (
                "unprotected",
                "files-01",
                "files-01: no profile, so it is never backed up"
            ),
            (
                "unprotected",
                "mail-01",
                "mail-01: profile 'missing' does not exist, so it is never backed up"
            ),
            (
                "config",
                "db-01",
                "db-01: profile 'half-broken': the full schedule 'Sun 25:00' is not valid \
                 (hour 25 out of range 0..23 at column 5); full backups do not run"
            ),
            (
                "config",
                "ftp-01",
                "ftp-01: profile 'empty' has no usable schedule, so it is never backed up"
            ),
        ]
    );
}

#[test]
fn retry_backoff_doubles_up_to_a_day() {
    let b = Duration(300);
    let t = 1_000_000;
    assert_eq!(retry_at(t, 1, b), t + 300_000);
    assert_eq!(retry_at(t, 2, b), t + 600_000);
    assert_eq!(retry_at(t, 3, b), t + 1_200_000);
    assert_eq!(retry_at(t, 0, b), t + 300_000, "0 reads as the first retry");
    assert_eq!(retry_at(t, 9, b), t + 76_800_000);
    assert_eq!(retry_at(t, 10, b), t + MAX_RETRY_DELAY_MS, "capped");
    assert_eq!(retry_at(t, u32::MAX, b), t + MAX_RETRY_DELAY_MS);
    assert_eq!(retry_at(t, 1, Duration(u64::MAX)), t + MAX_RETRY_DELAY_MS);
    assert_eq!(retry_at(t, 1, Duration(0)), t);
    assert_eq!(retry_at(i64::MAX - 5, 3, b), i64::MAX);
}

fn registered(name: &str, rpo_s: u64, registered_ms: i64) -> RegisteredAsset {
    let mut a = asset(name, Some("standard"));
    a.rpo = Duration(rpo_s);
    RegisteredAsset {
        asset: a,
        registered_ms,
        updated_ms: registered_ms,
    }
}

#[test]
fn rpo_breaches_measure_from_the_last_good_backup_or_registration() {
    let now = ms("2024-03-10T12:00:00Z");
    let assets = [
        registered("web-01", 86_400, now - 30 * DAY),
        registered("db-01", 86_400, now - 30 * DAY),
        registered("new-01", 86_400, now - HOUR),
        registered("old-01", 86_400, now - 2 * DAY),
        registered("edge-01", 86_400, now - 30 * DAY),
        registered("norpo-01", 0, now - 30 * DAY),
        registered("weekly-01", 7 * 86_400, now - 30 * DAY),
    ];
    let last: HashMap<String, i64> = [
        ("web-01", now - 26 * HOUR),
        ("db-01", now - 2 * HOUR),
        ("edge-01", now - DAY),
        ("weekly-01", now - 8 * DAY - 6 * HOUR - 30 * MIN),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let got = rpo_breaches(now, &assets, &last);
    let messages: Vec<&str> = got.iter().map(|b| b.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "web-01: last good backup 26h ago, RPO is 24h",
            "old-01: no good backup yet, RPO is 24h",
            "weekly-01: last good backup 8d6h ago, RPO is 7d",
        ]
    );
    assert_eq!(got[0].asset, "web-01");
    // A just-registered asset breaches once its RPO has passed.
    let later = rpo_breaches(now + DAY, &assets[2..3], &last);
    assert_eq!(later[0].message, "new-01: no good backup yet, RPO is 24h");
}

#[test]
fn human_spans() {
    for (ms, text) in [
        (0, "0s"),
        (-5, "0s"),
        (45_000, "45s"),
        (15 * MIN, "15m"),
        (HOUR, "1h"),
        (26 * HOUR + 30 * MIN, "26h30m"),
        (71 * HOUR, "71h"),
        (3 * DAY, "3d"),
        (4 * DAY + 6 * HOUR + 59 * MIN, "4d6h"),
    ] {
        assert_eq!(human_span(ms), text, "{ms}");
    }
}

fn replicating(name: &str, expr: Option<&str>, remotes: &[&str]) -> Profile {
    let mut p = standard();
    p.name = name.to_string();
    p.replicate_to = remotes.iter().map(|r| r.to_string()).collect();
    p.replicate_schedule = expr.map(str::to_string);
    p
}

#[test]
fn replication_calendars_run_daily_catch_up_once_and_are_forgotten() {
    let profiles = [
        replicating("nightly", Some("*-*-* 02:00"), &["offsite", "vault"]),
        replicating("after-backup", None, &["offsite"]),
        replicating("typo", Some("*-*-* 25:00"), &["offsite"]),
        replicating("nowhere", Some("daily"), &[]),
    ];
    let (scheds, problems) = replication_schedules(&profiles);
    assert_eq!(scheds.len(), 1, "{scheds:?}");
    assert_eq!(scheds[0].remotes, ["offsite", "vault"]);
    let names: Vec<&str> = problems.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(names, ["typo", "nowhere"], "{problems:?}");
    assert!(problems[0].1.contains("not valid"), "{problems:?}");
    assert!(problems[1].1.contains("no remote"), "{problems:?}");

    // A week minute by minute: seven runs, each at 02:00, none at the start
    // (the 02:00 before the schedule existed does not fire).
    let mut state: HashMap<String, ScheduleMark> = HashMap::new();
    let start = ms("2024-01-01T03:00:00Z");
    let mut runs = Vec::new();
    let mut now = start;
    while now <= start + 7 * DAY {
        let pass = plan_replication(now, &scheds, &state, &TimeZone::UTC);
        for (p, m) in &pass.set {
            state.insert(p.clone(), m.clone());
        }
        runs.extend(pass.due.into_iter().map(|d| (now, d)));
        now += MIN;
    }
    assert_eq!(runs.len(), 7);
    for (now, d) in &runs {
        assert_eq!(d.due_ms, *now, "on time");
        assert!(utc(d.due_ms).ends_with("T02:00:00Z"), "{}", utc(d.due_ms));
        assert_eq!(d.profile, "nightly");
    }

    // Off for three days: one catch-up, for the latest missed 02:00.
    let back = start + 10 * DAY + 5 * HOUR;
    let pass = plan_replication(back, &scheds, &state, &TimeZone::UTC);
    assert_eq!(pass.due.len(), 1);
    assert_eq!(utc(pass.due[0].due_ms), "2024-01-11T02:00:00Z");
    for (p, m) in &pass.set {
        state.insert(p.clone(), m.clone());
    }
    assert!(
        plan_replication(back + MIN, &scheds, &state, &TimeZone::UTC)
            .due
            .is_empty()
    );
    assert_eq!(
        next_replications(back, &scheds, &TimeZone::UTC),
        [("nightly".to_string(), ms("2024-01-12T02:00:00Z"))]
    );

    // The profile goes back to after-backup: its state is forgotten.
    let pass = plan_replication(back, &[], &state, &TimeZone::UTC);
    assert_eq!(pass.forget, ["nightly"]);
    // A changed calendar starts afresh, never retroactively.
    let (changed, _) =
        replication_schedules(&[replicating("nightly", Some("*-*-* 04:00"), &["offsite"])]);
    let pass = plan_replication(back, &changed, &state, &TimeZone::UTC);
    assert!(pass.due.is_empty());
    assert_eq!(pass.set[0].1.last_due_ms, back);
}
