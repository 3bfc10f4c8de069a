use std::collections::{BTreeMap, BTreeSet};

use coffer_types::api::Duration;
use proptest::prelude::*;

use super::*;

/// 2026-11-23 (a Monday) 00:00 UTC.
const MONDAY: i64 = 1_795_392_000_000;

fn sid(n: u64) -> SnapshotId {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&n.to_be_bytes());
    SnapshotId(b)
}

fn cand(n: u64, time_ms: i64) -> Candidate {
    Candidate {
        id: sid(n),
        time_ms,
        locked_until_ms: None,
        hold: false,
    }
}

fn kept(v: &[Verdict]) -> BTreeSet<SnapshotId> {
    v.iter().filter(|v| v.keep()).map(|v| v.id).collect()
}

#[test]
fn periods_are_utc_hours_days_iso_weeks_months_and_years() {
    assert_eq!(Period::Daily.label(MONDAY + 5 * HOUR_MS), "2026-11-23");
    assert_eq!(
        Period::Hourly.label(MONDAY + 5 * HOUR_MS + 59),
        "2026-11-23 05h"
    );
    assert_eq!(Period::Weekly.label(MONDAY), "2026-W48");
    // Sunday belongs to the week that began on Monday.
    assert_eq!(
        Period::Weekly.bucket(MONDAY + 6 * DAY_MS + 23 * HOUR_MS),
        Period::Weekly.bucket(MONDAY)
    );
    assert_eq!(
        Period::Weekly.bucket(MONDAY + 7 * DAY_MS),
        Period::Weekly.bucket(MONDAY) + 1
    );
    assert_eq!(
        Period::Weekly.bucket(MONDAY - 1),
        Period::Weekly.bucket(MONDAY) - 1
    );
    // ISO years: 2021-01-03 (a Sunday) is in 2020-W53; 2024-12-30 (a
    // Monday) in 2025-W01.
    let jan3_2021 = days_from_civil(2021, 1, 3) * DAY_MS;
    assert_eq!(Period::Weekly.label(jan3_2021), "2020-W53");
    assert_eq!(
        Period::Weekly.label(days_from_civil(2024, 12, 30) * DAY_MS),
        "2025-W01"
    );
    assert_eq!(Period::Monthly.label(MONDAY), "2026-11");
    assert_eq!(
        Period::Monthly.bucket(days_from_civil(2027, 1, 1) * DAY_MS),
        Period::Monthly.bucket(MONDAY) + 2
    );
    assert_eq!(Period::Yearly.label(MONDAY), "2026");
    // Before the epoch too.
    assert_eq!(Period::Daily.label(-1), "1969-12-31");
    for d in [-800_000, -1, 0, 59, 365, 20_000, 2_000_000] {
        assert_eq!(
            days_from_civil(
                civil_from_days(d).0,
                civil_from_days(d).1,
                civil_from_days(d).2
            ),
            d
        );
    }
}

#[test]
fn a_policy_without_rules_keeps_everything() {
    let snaps: Vec<_> = (0..5)
        .map(|i| cand(i, MONDAY - i as i64 * DAY_MS))
        .collect();
    let v = plan(MONDAY, &Retention::default(), &snaps);
    assert!(v.iter().all(|v| v.reasons == vec![Reason::NoPolicy]));
    assert!(v.iter().all(|v| v.expiry.as_ref().unwrap().never));
}

#[test]
fn gfs_keeps_the_newest_of_each_period_and_says_why() {
    // Two backups a day (01:00 and 13:00) for 60 days before the Monday.
    let mut snaps = Vec::new();
    for d in 0..60i64 {
        for (k, h) in [1i64, 13].iter().enumerate() {
            snaps.push(cand(
                (d * 2 + k as i64) as u64,
                MONDAY - d * DAY_MS - DAY_MS + h * HOUR_MS,
            ));
        }
    }
    let policy = Retention {
        keep_last: Some(3),
        keep_daily: Some(7),
        keep_weekly: Some(4),
        keep_monthly: Some(3),
        ..Retention::default()
    };
    let v = plan(MONDAY, &policy, &snaps);
    assert_eq!(v.len(), 120);
    // Newest first.
    assert!(v.windows(2).all(|w| w[0].time_ms >= w[1].time_ms));
    // The newest: last 1 of 3, daily 2026-11-22 (1 of 7), weekly (1 of 4),
    // monthly (1 of 3).
    assert_eq!(
        v[0].reasons,
        vec![
            Reason::Last { rank: 1, of: 3 },
            Reason::Period {
                period: Period::Daily,
                label: "2026-11-22".into(),
                rank: 1,
                of: 7
            },
            Reason::Period {
                period: Period::Weekly,
                label: "2026-W47".into(),
                rank: 1,
                of: 4
            },
            Reason::Period {
                period: Period::Monthly,
                label: "2026-11".into(),
                rank: 1,
                of: 3
            },
        ]
    );
    assert_eq!(
        v[0].reasons[1].to_string(),
        "daily 2026-11-22 (1 of 7)",
        "as the dry run prints it"
    );
    // The 01:00 backups of the last 7 days go (the 13:00 one is the day's
    // newest), except the two kept by keep_last.
    let k = kept(&v);
    // 3 last + 7 daily (2 overlapping) + weekly + monthly.
    let daily: Vec<_> = v
        .iter()
        .filter(|v| {
            v.reasons.iter().any(|r| {
                matches!(
                    r,
                    Reason::Period {
                        period: Period::Daily,
                        ..
                    }
                )
            })
        })
        .collect();
    assert_eq!(daily.len(), 7);
    assert!(
        daily
            .iter()
            .all(|d| d.time_ms.rem_euclid(DAY_MS) == 13 * HOUR_MS)
    );
    let monthly: Vec<_> = v
        .iter()
        .filter(|v| {
            v.reasons.iter().any(|r| {
                matches!(
                    r,
                    Reason::Period {
                        period: Period::Monthly,
                        ..
                    }
                )
            })
        })
        .map(|v| Period::Daily.label(v.time_ms))
        .collect();
    // November's newest, then the last days of October and September.
    assert_eq!(monthly, ["2026-11-22", "2026-10-31", "2026-09-30"]);
    // The oldest snapshot (2026-09-24) is in no kept period.
    assert!(!k.contains(&v[119].id));
    assert!(v[119].expiry.is_none());
    // Expiry of the newest: three newer snapshots, or a newer month.
    let e = v[0].expiry.as_ref().unwrap();
    assert!(!e.never);
    assert!(e.after_newer.contains(&("last", 3)));
    assert!(e.after_newer.contains(&("monthly", 3)));
}

#[test]
fn keep_within_keeps_everything_younger_and_says_until_when() {
    let snaps: Vec<_> = (0..10)
        .map(|i| cand(i, MONDAY - i as i64 * DAY_MS))
        .collect();
    let policy = Retention {
        keep_within: Some(Duration(3 * 86_400)),
        ..Retention::default()
    };
    let v = plan(MONDAY + HOUR_MS, &policy, &snaps);
    let k = kept(&v);
    // 0, 1, 2 and 3 days old at Monday 00:00; at 01:00 the 3-day-old one has
    // left the window.
    assert_eq!(k, (0..3).map(sid).collect());
    assert_eq!(
        v[2].reasons,
        vec![Reason::Within {
            until_ms: MONDAY + DAY_MS
        }]
    );
    assert_eq!(
        v[2].expiry.as_ref().unwrap().to_string(),
        "after 2026-11-24T00:00:00.000Z"
    );
}

#[test]
fn locks_holds_and_backups_from_the_future_are_never_removed() {
    let mut snaps: Vec<_> = (0..6)
        .map(|i| cand(i, MONDAY - i as i64 * DAY_MS))
        .collect();
    snaps[3].locked_until_ms = Some(MONDAY + DAY_MS);
    snaps[4].hold = true;
    // Locked until a time already past: no protection.
    snaps[5].locked_until_ms = Some(MONDAY - 1);
    snaps.push(cand(9, MONDAY + 7 * DAY_MS));
    let policy = Retention {
        keep_last: Some(1),
        ..Retention::default()
    };
    let v = plan(MONDAY, &policy, &snaps);
    let k = kept(&v);
    assert_eq!(k, [9, 3, 4].into_iter().map(sid).collect());
    let future = v.iter().find(|v| v.id == sid(9)).unwrap();
    assert!(future.protected());
    assert!(future.reasons.contains(&Reason::Future));
    let locked = v.iter().find(|v| v.id == sid(3)).unwrap();
    assert_eq!(
        locked.reasons,
        vec![Reason::Locked {
            until_ms: MONDAY + DAY_MS
        }]
    );
    assert_eq!(
        locked.reasons[0].to_string(),
        "locked until 2026-11-24T00:00:00.000Z"
    );
    // keep_last counts the newest snapshot, from the future or not.
    assert_eq!(future.reasons[1], Reason::Last { rank: 1, of: 1 });
    let held = v.iter().find(|v| v.id == sid(4)).unwrap();
    assert_eq!(held.reasons, vec![Reason::Hold]);
    assert!(held.expiry.as_ref().unwrap().never);
}

/// What each rule promises, computed the obvious way: the newest snapshot of
/// each of the `n` newest periods.
fn promised(period: Period, n: u32, snaps: &[Candidate]) -> BTreeSet<SnapshotId> {
    let mut newest: BTreeMap<i64, (i64, [u8; 16])> = BTreeMap::new();
    for c in snaps {
        let e = newest
            .entry(period.bucket(c.time_ms))
            .or_insert((c.time_ms, c.id.0));
        if (c.time_ms, c.id.0) > *e {
            *e = (c.time_ms, c.id.0);
        }
    }
    newest
        .values()
        .rev()
        .take(n as usize)
        .map(|(_, id)| SnapshotId(*id))
        .collect()
}

fn policy_strategy() -> impl Strategy<Value = Retention> {
    (
        proptest::option::of(0u32..6),
        proptest::option::of(0u32..30),
        proptest::option::of(0u32..15),
        proptest::option::of(0u32..10),
        proptest::option::of(0u32..15),
        proptest::option::of(0u32..4),
        proptest::option::of(0u64..40 * 86_400),
    )
        .prop_map(|(l, h, d, w, m, y, within)| Retention {
            keep_last: l,
            keep_hourly: h,
            keep_daily: d,
            keep_weekly: w,
            keep_monthly: m,
            keep_yearly: y,
            keep_within: within.map(Duration),
            lock_for: None,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Every rule keeps exactly what it promises, protection always wins,
    /// and planning again over what was kept removes nothing more.
    #[test]
    fn the_plan_keeps_what_every_rule_promises(
        policy in policy_strategy(),
        offsets in proptest::collection::vec((0i64..3 * 365 * 24, 0i64..3_600_000), 0..80),
        protect in proptest::collection::vec(0u8..10, 80),
    ) {
        let now = MONDAY;
        let snaps: Vec<Candidate> = offsets
            .iter()
            .enumerate()
            .map(|(i, (h, ms))| {
                let mut c = cand(i as u64, now - h * HOUR_MS - ms);
                match protect[i] {
                    0 => c.hold = true,
                    1 => c.locked_until_ms = Some(now + DAY_MS),
                    2 => c.locked_until_ms = Some(now - DAY_MS),
                    _ => {}
                }
                c
            })
            .collect();
        let v = plan(now, &policy, &snaps);
        prop_assert_eq!(v.len(), snaps.len());
        let k = kept(&v);
        if !has_rules(&policy) {
            prop_assert_eq!(k.len(), snaps.len());
        }
        for period in Period::ALL {
            if let Some(n) = period.count(&policy) {
                let p = promised(period, n, &snaps);
                prop_assert!(p.is_subset(&k), "{} lost one of {:?}", period.name(), p);
                let by_rule: BTreeSet<_> = v
                    .iter()
                    .filter(|v| v.reasons.iter().any(|r| matches!(r, Reason::Period { period: q, .. } if *q == period)))
                    .map(|v| v.id)
                    .collect();
                prop_assert_eq!(&by_rule, &p);
            }
        }
        if let Some(n) = policy.keep_last {
            prop_assert!(v.iter().take(n as usize).all(Verdict::keep));
        }
        if let Some(d) = policy.keep_within {
            for c in &snaps {
                if c.time_ms + d.0 as i64 * 1000 > now {
                    prop_assert!(k.contains(&c.id));
                }
            }
        }
        for c in &snaps {
            if c.hold || c.locked_until_ms.is_some_and(|u| u > now) {
                prop_assert!(k.contains(&c.id));
            }
        }
        // Kept verdicts carry an expiry, removed ones none.
        prop_assert!(v.iter().all(|v| v.keep() == v.expiry.is_some()));
        let rest: Vec<Candidate> = snaps.iter().filter(|c| k.contains(&c.id)).cloned().collect();
        let again = plan(now, &policy, &rest);
        prop_assert!(again.iter().all(Verdict::keep), "planning again removed more");
    }

    /// Years of daily backups (some days missed, some with a second run),
    /// pruned after each: every rule always holds as many periods as it
    /// promises, counting every period that ever had a backup.
    #[test]
    fn years_of_daily_backups_pruned_daily_never_hold_fewer_than_promised(
        policy in policy_strategy(),
        days in 200usize..1200,
        seed in any::<u64>(),
    ) {
        let mut rng = seed;
        let mut next = || {
            rng = rng.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (rng >> 33) as u32
        };
        let start = MONDAY - 4 * 365 * DAY_MS;
        let mut held: Vec<Candidate> = Vec::new();
        let mut history: BTreeMap<Period, BTreeSet<i64>> = BTreeMap::new();
        let mut n = 0u64;
        for day in 0..days as i64 {
            let runs = match next() % 10 { 0 => 0, 1 => 2, _ => 1 };
            for r in 0..runs {
                let t = start + day * DAY_MS + HOUR_MS + i64::from(r) * 11 * HOUR_MS;
                n += 1;
                held.push(cand(n, t));
                for p in Period::ALL {
                    history.entry(p).or_default().insert(p.bucket(t));
                }
            }
            let now = start + day * DAY_MS + 23 * HOUR_MS;
            let v = plan(now, &policy, &held);
            let k = kept(&v);
            held.retain(|c| k.contains(&c.id));
            for period in Period::ALL {
                if let Some(want) = period.count(&policy) {
                    let have: BTreeSet<i64> = held.iter().map(|c| period.bucket(c.time_ms)).collect();
                    let ever = history.get(&period).map_or(0, BTreeSet::len);
                    prop_assert!(
                        have.len() >= ever.min(want as usize),
                        "day {}: {} holds {} periods, promised {}", day, period.name(), have.len(), ever.min(want as usize)
                    );
                }
            }
            if let Some(l) = policy.keep_last {
                prop_assert!(held.len() >= (n as usize).min(l as usize));
            }
        }
    }
}
