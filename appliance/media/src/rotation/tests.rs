//! Years of rotation, planned and followed day by day, against the
//! invariants media rotation exists for.

use super::*;

fn cart(i: u32, kind: MediaKind) -> Cart {
    let barcode = match kind {
        MediaKind::Worm { .. } => format!("W{i:05}LZ"),
        MediaKind::Cleaning => format!("CLN{i:03}CU"),
        MediaKind::Data { .. } => format!("T{i:05}L9"),
    };
    Cart {
        barcode,
        kind,
        content: if kind == MediaKind::Cleaning {
            Content::Cleaning
        } else {
            Content::Scratch
        },
        place: Place::Library,
        set: None,
    }
}

fn stocked(n: u32) -> Inventory {
    let mut carts: Vec<Cart> = (0..n)
        .map(|i| cart(i, MediaKind::Data { generation: 9 }))
        .collect();
    carts.push(cart(1, MediaKind::Cleaning));
    Inventory {
        carts,
        ..Inventory::default()
    }
}

#[derive(Default, Debug)]
struct Run {
    violations: Vec<String>,
    waits: Vec<Day>,
    offsite_late: Vec<String>,
    chain_broken: Vec<String>,
    sizing_warnings: usize,
    jobs: usize,
    exports: usize,
    recalls: usize,
    expired: usize,
}

/// Follows `pool`'s plan for `days` days from its start; `fills(day)` is
/// how many cartridges that night's job fills before its last one;
/// `lost_recall` names a cartridge the vault never sends back.
fn run(
    pool: &PoolPolicy,
    inv: &mut Inventory,
    days: i32,
    required: u32,
    mut fills: impl FnMut(Day, &Plan) -> u32,
    lost_recall: Option<&str>,
) -> Run {
    let mut r = Run::default();
    // Exported the morning after its night, collected at the next pickup,
    // at the vault after the courier's days, recorded the next morning.
    let bound = 2 + pool.pickup_wait() + pool.courier_days as i32;
    let horizon = plan::recall_horizon(pool);
    for k in 0..days {
        let d = pool.start.plus(k);
        let mut p = plan(d, pool, inv, Some(required));
        if let Some(lost) = lost_recall {
            p.recall.retain(|x| x.barcode != lost);
        }
        r.sizing_warnings += p
            .warnings
            .iter()
            .filter(|w| w.contains("its scheme needs"))
            .count();
        if p.scratch_short > 0 {
            r.waits.push(d);
        }
        r.exports += p.export.len();
        r.recalls += p.recall.len();
        r.expired += p.expire.len();
        // A set expires on or after its own retention, and never while a
        // set that stays builds on it.
        for id in &p.expire {
            let s = inv.set(id).unwrap();
            if s.expires > d {
                r.chain_broken.push(format!(
                    "{d}: {id} expired before its own date {}",
                    s.expires
                ));
            }
            if inv
                .sets
                .iter()
                .any(|o| !o.expired && !p.expire.contains(&o.id) && o.base.as_deref() == Some(id))
            {
                r.chain_broken
                    .push(format!("{d}: {id} expired while a kept set builds on it"));
            }
        }
        let f = fills(d, &p);
        let out = apply(pool, inv, &p, f);
        r.jobs += usize::from(out.set.is_some());
        r.violations.extend(out.violations);
        if out.waited {
            r.waits.push(d);
        }
        // The restore chain: a kept set's base is kept.
        for s in inv.sets.iter().filter(|s| !s.expired) {
            if let Some(b) = &s.base
                && inv.set(b).is_none_or(|b| b.expired)
            {
                r.chain_broken
                    .push(format!("{d}: {} kept but its base {b} expired", s.id));
            }
        }
        // The newest full written long enough ago (or a newer one) is in
        // the vault; a set due back for reuse within a recall's reach (a
        // Tower of Hanoi set whose turn comes soon) stays onsite and does
        // not count.
        let kept = retained_until(inv);
        if pool.vault.is_some()
            && let Some(f) = inv
                .sets
                .iter()
                .filter(|s| {
                    s.level == Level::Full
                        && s.closed
                        && !s.expired
                        && s.last.plus(bound) <= d
                        && kept.get(&s.id).is_some_and(|k| *k > d.plus(horizon))
                })
                .max_by_key(|s| (s.last, s.id.clone()))
            && !inv.sets.iter().any(|s| {
                s.level == Level::Full && !s.expired && s.last >= f.last && inv.in_vault(s)
            })
        {
            let places: Vec<_> = f
                .cartridges
                .iter()
                .map(|b| inv.cart(b).map(|c| c.place))
                .collect();
            r.offsite_late
                .push(format!("{d}: newest full {} is at {places:?}", f.id));
        }
    }
    r
}

fn monday() -> Day {
    Day::ymd(2026, 1, 5)
}

#[test]
fn days_convert_both_ways_and_know_their_weekday() {
    assert_eq!(Day::ymd(1970, 1, 1), Day(0));
    assert_eq!(Day::ymd(2026, 11, 26).to_string(), "2026-11-26");
    assert_eq!(Day::ymd(2026, 11, 26).weekday(), Weekday::Thu);
    assert_eq!(monday().weekday(), Weekday::Mon);
    assert_eq!(Day::parse("2028-02-29"), Some(Day::ymd(2028, 2, 29)));
    assert_eq!(Day::parse("2027-02-29"), None);
    assert_eq!(Day::parse("2027-13-01"), None);
    assert_eq!(Day::ymd(2026, 1, 31).plus_months(1), Day::ymd(2026, 2, 28));
    assert_eq!(Day::ymd(2026, 12, 15).plus_months(1), Day::ymd(2027, 1, 15));
    assert!(Day::ymd(2026, 11, 27).last_of_its_weekday_in_month());
    assert!(!Day::ymd(2026, 11, 20).last_of_its_weekday_in_month());
    for x in -1000..100_000 {
        let (y, m, dd) = Day(x).to_ymd();
        assert_eq!(Day::ymd(y, m, dd), Day(x));
    }
    assert_eq!(Day::from_ms(1_790_000_000_000).to_string(), "2026-09-21");
}

#[test]
fn a_gfs_week_writes_dailies_into_one_set_and_a_full_on_friday() {
    let pool = PoolPolicy::gfs("gfs", monday());
    let mut inv = stocked(30);
    let mut seen = Vec::new();
    for k in 0..5 {
        let d = monday().plus(k);
        let p = plan(d, &pool, &inv, None);
        if let Some(j) = &p.job {
            seen.push((d.weekday(), j.tier, j.level, j.set.clone(), j.close_after));
        }
        apply(&pool, &mut inv, &p, 0);
    }
    let daily = format!("gfs-{}-daily", monday());
    assert_eq!(
        seen,
        vec![
            (
                Weekday::Mon,
                Tier::Daily,
                Level::Incremental,
                SetChoice::New,
                false
            ),
            (
                Weekday::Tue,
                Tier::Daily,
                Level::Incremental,
                SetChoice::Continue { id: daily.clone() },
                false
            ),
            (
                Weekday::Wed,
                Tier::Daily,
                Level::Incremental,
                SetChoice::Continue { id: daily.clone() },
                false
            ),
            (
                Weekday::Thu,
                Tier::Daily,
                Level::Incremental,
                SetChoice::Continue { id: daily.clone() },
                true
            ),
            (
                Weekday::Fri,
                Tier::Weekly,
                Level::Full,
                SetChoice::New,
                true
            ),
        ]
    );
    // One cartridge each; the full goes to the export slots on Saturday
    // and to the vault with Monday's pickup.
    assert_eq!(inv.set(&daily).unwrap().cartridges.len(), 1);
    let sat = plan(monday().plus(5), &pool, &inv, None);
    assert_eq!(sat.export.len(), 1);
    assert_eq!(
        sat.export[0].set,
        format!("gfs-{}-weekly", monday().plus(4))
    );
    assert!(sat.send.is_empty(), "no pickup on Saturday");
    apply(&pool, &mut inv, &sat, 0);
    let sun = plan(monday().plus(6), &pool, &inv, None);
    apply(&pool, &mut inv, &sun, 0);
    let mon = plan(monday().plus(7), &pool, &inv, None);
    assert!(mon.export.is_empty());
    assert_eq!(mon.send, vec![sat.export[0].barcode.clone()]);
}

/// The Tower of Hanoi arithmetic (backup days counted in O(1), each set's
/// next turn) agrees with counting day by day.
#[test]
fn hanoi_turns_match_counting_day_by_day() {
    for days in [
        Weekday::WORKING.to_vec(),
        vec![Weekday::Mon, Weekday::Thu, Weekday::Sat],
    ] {
        for sets in 2..=8u8 {
            let mut pool = PoolPolicy::gfs("h", monday().plus(2));
            pool.scheme = Scheme::Hanoi(Hanoi {
                sets,
                backup_days: days.clone(),
            });
            let backup = |d: Day| days.contains(&d.weekday());
            let set_of = |d: Day| {
                let n = (pool.start.0..=d.0)
                    .filter(|x| backup(Day(*x)))
                    .count()
                    .max(1) as u32;
                (n.trailing_zeros() as u8).min(sets - 1)
            };
            for k in 0..300 {
                let d = pool.start.plus(k);
                let Some(j) = plan(d, &pool, &Inventory::default(), None).job else {
                    assert!(!backup(d));
                    continue;
                };
                let s = set_of(d);
                assert_eq!(j.tier, Tier::Hanoi(s), "{d}");
                let mut e = d.plus(1);
                while !(backup(e) && set_of(e) == s) {
                    e = e.plus(1);
                }
                assert_eq!(j.expires, e, "{d}: set {s}'s next turn");
            }
        }
    }
}

#[test]
fn the_last_friday_is_monthly_and_in_the_yearly_month_yearly() {
    let mut pool = PoolPolicy::gfs("gfs", monday());
    if let Scheme::Gfs(g) = &mut pool.scheme {
        g.keep_yearly_years = 7;
    }
    let tier = |d: Day| {
        plan(d, &pool, &Inventory::default(), None)
            .job
            .map(|j| j.tier)
    };
    assert_eq!(tier(Day::ymd(2026, 11, 20)), Some(Tier::Weekly));
    assert_eq!(tier(Day::ymd(2026, 11, 27)), Some(Tier::Monthly));
    assert_eq!(tier(Day::ymd(2026, 12, 25)), Some(Tier::Yearly));
    assert_eq!(tier(Day::ymd(2026, 11, 28)), None, "Saturday");
}

/// Three years of GFS with a yearly tier, the courier calling twice a
/// week: every invariant holds with the cartridges the scheme needs, and
/// the pool warns when it has fewer.
#[test]
fn three_years_of_gfs_never_overwrite_a_kept_set_and_keep_the_newest_full_offsite() {
    let mut pool = PoolPolicy::gfs("gfs", monday());
    pool.pickup_days = vec![Weekday::Tue, Weekday::Thu];
    pool.courier_days = 2;
    if let Scheme::Gfs(g) = &mut pool.scheme {
        g.keep_yearly_years = 2;
    }
    let required = required_cartridges(&pool, sizing_days(&pool));
    assert!((20..80).contains(&required), "{required}");
    let mut inv = stocked(required);
    let r = run(&pool, &mut inv, 3 * 365, required, |_, _| 0, None);
    assert!(r.violations.is_empty(), "{:?}", r.violations);
    assert!(r.waits.is_empty(), "{:?}", r.waits);
    assert!(
        r.offsite_late.is_empty(),
        "{:?}",
        &r.offsite_late[..r.offsite_late.len().min(5)]
    );
    assert!(r.chain_broken.is_empty(), "{:?}", r.chain_broken);
    assert_eq!(r.sizing_warnings, 0);
    assert!(
        r.jobs > 700 && r.exports > 100 && r.recalls > 50 && r.expired > 100,
        "{r:?}"
    );
    // Yearly fulls are still kept after two years; weeklies are not.
    let kept: Vec<&MediaSet> = inv.sets.iter().filter(|s| !s.expired).collect();
    assert!(kept.iter().any(|s| s.tier == Tier::Yearly));
    assert!(kept.iter().filter(|s| s.tier == Tier::Weekly).count() <= 5);

    // One cartridge fewer: the planner says so from the first day.
    let p = plan(monday(), &pool, &stocked(required - 1), Some(required));
    assert!(
        p.warnings.iter().any(|w| w.contains("its scheme needs")),
        "{:?}",
        p.warnings
    );
}

/// A pool much too small never overwrites a kept set: its jobs wait.
#[test]
fn a_pool_too_small_waits_instead_of_overwriting() {
    let pool = PoolPolicy::gfs("gfs", monday());
    let required = required_cartridges(&pool, sizing_days(&pool));
    let mut inv = stocked(required / 2);
    let r = run(&pool, &mut inv, 400, required, |_, _| 0, None);
    assert!(r.violations.is_empty(), "{:?}", r.violations);
    assert!(!r.waits.is_empty());
    assert!(r.sizing_warnings > 300);
}

/// Tower of Hanoi with five sets over three years: each set is kept until
/// its next turn, recalled in time for it, and the newest is offsite.
#[test]
fn three_years_of_hanoi_recall_each_set_before_its_turn() {
    let mut pool = PoolPolicy::gfs("hanoi", monday());
    pool.scheme = Scheme::Hanoi(Hanoi {
        sets: 5,
        backup_days: Weekday::WORKING.to_vec(),
    });
    let required = required_cartridges(&pool, sizing_days(&pool));
    assert!((5..=12).contains(&required), "{required}");
    let mut inv = stocked(required);
    let r = run(&pool, &mut inv, 3 * 365, required, |_, _| 0, None);
    assert!(r.violations.is_empty(), "{:?}", r.violations);
    assert!(r.waits.is_empty(), "{:?}", r.waits);
    assert!(
        r.offsite_late.is_empty(),
        "{:?}",
        &r.offsite_late[..r.offsite_late.len().min(5)]
    );
    assert!(r.recalls > 150 && r.exports > 150, "{r:?}");
    // Set E (the last) is used every 16th backup day.
    let e: Vec<Day> = inv
        .sets
        .iter()
        .filter(|s| s.tier == Tier::Hanoi(4))
        .map(|s| s.first)
        .collect();
    assert!(e.len() > 40, "{}", e.len());
}

/// Continuous sets appended until their cartridge is full (every few
/// nights, at random), each kept for 30 days after its last write.
#[test]
fn a_continuous_pool_appends_until_full_and_keeps_each_set_its_time() {
    let mut pool = PoolPolicy::gfs("cont", monday());
    pool.scheme = Scheme::Continuous(Continuous {
        backup_days: Weekday::WORKING.to_vec(),
        keep_days: 30,
    });
    pool.vault = None;
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut inv = stocked(40);
    let r = run(
        &pool,
        &mut inv,
        2 * 365,
        0,
        |_, p| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            // About one cartridge filled a week.
            u32::from(p.job.is_some() && rng.is_multiple_of(5))
        },
        None,
    );
    assert!(r.violations.is_empty(), "{:?}", r.violations);
    assert!(r.waits.is_empty(), "{:?}", r.waits);
    // Sets span cartridges (run() checked that none expired early).
    assert!(r.chain_broken.is_empty(), "{:?}", r.chain_broken);
    let multi = inv.sets.iter().filter(|s| s.cartridges.len() > 1).count();
    assert!(multi > 0, "no set filled a cartridge");
    assert!(r.expired > 10, "{r:?}");
}

/// A recall that never arrives is escalated in the plan's warnings, and
/// nothing kept is overwritten meanwhile.
#[test]
fn a_recall_that_never_arrives_is_escalated_and_nothing_is_overwritten() {
    let pool = PoolPolicy::gfs("gfs", monday());
    let required = required_cartridges(&pool, sizing_days(&pool));
    let mut inv = stocked(required);
    // Run until a first recall is asked; then the vault loses it.
    let mut lost = None;
    for k in 0..120 {
        let d = monday().plus(k);
        let p = plan(d, &pool, &inv, Some(required));
        if let Some(r) = p.recall.first() {
            lost = Some(r.barcode.clone());
        }
        apply(&pool, &mut inv, &p, 0);
        if lost.is_some() {
            break;
        }
    }
    let lost = lost.unwrap();
    // The vault never ships it.
    let mut escalated = false;
    for k in 0..40 {
        let d = monday().plus(120 + k);
        let mut p = plan(d, &pool, &inv, Some(required));
        escalated |= p
            .warnings
            .iter()
            .any(|w| w.contains(&lost) && w.contains("escalate"));
        // The vault keeps it: whatever apply ships, it stays requested.
        p.recall.retain(|r| r.barcode != lost);
        let before = inv.cart(&lost).unwrap().place;
        let out = apply(&pool, &mut inv, &p, 0);
        if matches!(before, Place::RecallRequested { .. }) {
            inv.carts
                .iter_mut()
                .find(|c| c.barcode == lost)
                .unwrap()
                .place = before;
        }
        assert!(out.violations.is_empty(), "{:?}", out.violations);
    }
    assert!(escalated, "the lost recall was never escalated");
}

#[test]
fn worm_cleaning_and_foreign_cartridges_are_refused_and_reported() {
    let mut pool = PoolPolicy::gfs("gfs", monday());
    pool.barcode_rule = "T?????L9".into();
    let mut inv = stocked(3);
    inv.carts.push(cart(7, MediaKind::Worm { generation: 9 }));
    inv.carts.push(Cart {
        barcode: "X00001L9".into(),
        ..cart(0, MediaKind::Data { generation: 9 })
    });
    let p = plan(monday(), &pool, &inv, None);
    let all = p.warnings.join("\n");
    assert!(
        all.contains("W00007LZ is a WORM cartridge in pool gfs"),
        "{all}"
    );
    assert!(
        all.contains("X00001L9 does not follow pool gfs's barcode rule"),
        "{all}"
    );
    let job = p.job.unwrap();
    assert!(job.cartridges.iter().all(|b| b.starts_with('T')), "{job:?}");
    // A WORM pool writes only WORM cartridges.
    pool.worm = true;
    pool.barcode_rule.clear();
    let p = plan(monday(), &pool, &inv, None);
    assert_eq!(p.job.unwrap().cartridges, vec!["W00007LZ".to_string()]);
}

#[test]
fn a_scheme_that_cannot_work_is_refused_with_its_reason() {
    let mut pool = PoolPolicy::gfs("gfs", monday());
    if let Scheme::Gfs(g) = &mut pool.scheme {
        g.full_day = Weekday::Sun;
    }
    let p = plan(monday(), &pool, &Inventory::default(), None);
    assert!(p.job.is_none());
    assert!(p.warnings[0].contains("full day"), "{:?}", p.warnings);
    let mut pool = PoolPolicy::gfs("h", monday());
    pool.scheme = Scheme::Hanoi(Hanoi {
        sets: 9,
        backup_days: Weekday::WORKING.to_vec(),
    });
    assert!(pool.validate().unwrap_err().contains("2 to 8 sets"));
    let mut pool = PoolPolicy::gfs("v", monday());
    pool.pickup_days.clear();
    assert!(pool.validate().unwrap_err().contains("courier never calls"));
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
        /// Random GFS retentions, couriers and levels over two years.
        #[test]
        fn gfs_rotation_keeps_its_promises(
            daily in 1u32..4,
            weekly in 1u32..8,
            monthly in 1u32..14,
            courier in 0u32..4,
            pickups in proptest::sample::subsequence(Weekday::WORKING.to_vec(), 1..=5),
            differential in any::<bool>(),
            per_set in 1u32..3,
        ) {
            let mut pool = PoolPolicy::gfs("p", monday());
            pool.courier_days = courier;
            pool.pickup_days = pickups;
            pool.cartridges_per_set = per_set;
            if let Scheme::Gfs(g) = &mut pool.scheme {
                g.keep_daily_weeks = daily;
                g.keep_weekly_weeks = weekly;
                g.keep_monthly_months = monthly;
                g.daily_level = if differential { Level::Differential } else { Level::Incremental };
            }
            let required = required_cartridges(&pool, sizing_days(&pool));
            let mut inv = stocked(required);
            let r = run(&pool, &mut inv, 2 * 365, required, |_, p| {
                p.job.as_ref().map_or(0, |j| match j.set {
                    SetChoice::New => per_set - 1,
                    SetChoice::Continue { .. } => 0,
                })
            }, None);
            prop_assert!(r.violations.is_empty(), "{:?}", r.violations);
            prop_assert!(r.waits.is_empty(), "{:?}", r.waits);
            prop_assert!(r.offsite_late.is_empty(), "{:?}", &r.offsite_late[..r.offsite_late.len().min(3)]);
            prop_assert!(r.chain_broken.is_empty(), "{:?}", r.chain_broken);
        }

        /// Random Tower of Hanoi and continuous pools over two years.
        #[test]
        fn hanoi_and_continuous_rotation_keep_their_promises(
            hanoi in any::<bool>(),
            sets in 2u8..7,
            keep in 5u32..60,
            every in proptest::option::of(3u32..15),
            courier in 0u32..3,
            pickups in proptest::sample::subsequence(Weekday::WORKING.to_vec(), 1..=5),
            seed in any::<u64>(),
        ) {
            let mut pool = PoolPolicy::gfs("p", monday());
            pool.courier_days = courier;
            pool.pickup_days = pickups;
            pool.scheme = if hanoi {
                Scheme::Hanoi(Hanoi { sets, backup_days: Weekday::WORKING.to_vec() })
            } else {
                pool.allocation = every.map_or(Allocation::Continue, |days| Allocation::Every { days });
                Scheme::Continuous(Continuous { backup_days: Weekday::WORKING.to_vec(), keep_days: keep })
            };
            let required = required_cartridges(&pool, sizing_days(&pool));
            let mut inv = stocked(if hanoi { required } else { required + 2 });
            let mut rng = seed | 1;
            let r = run(&pool, &mut inv, 2 * 365, required, |_, p| {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                u32::from(!hanoi && p.job.is_some() && rng.is_multiple_of(7))
            }, None);
            prop_assert!(r.violations.is_empty(), "{:?}", r.violations);
            prop_assert!(r.offsite_late.is_empty(), "{:?}", &r.offsite_late[..r.offsite_late.len().min(3)]);
            prop_assert!(r.chain_broken.is_empty(), "{:?}", r.chain_broken);
            if hanoi {
                prop_assert!(r.waits.is_empty(), "{:?}", r.waits);
            }
        }
    }
}
