use coffer_types::SnapshotId;

use super::*;
use crate::gc::tests::{World, actor, run_gc, write_files};
use crate::gc::{GcOptions, gc};
use crate::prune::{PruneOrder, plan_order, prune};

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;
const T0: i64 = 1_795_000_000_000;

fn boot(id: &str, mono_ms: i64) -> Boot {
    Boot {
        id: id.into(),
        mono_ms,
    }
}

#[test]
fn the_trusted_clock_follows_the_wall_clock_while_both_agree() {
    let (r, j) = observe(None, T0, &boot("a", 1000));
    assert_eq!((r.trusted_ms, j), (T0, None));
    // An hour later on both clocks, the wall a second ahead (NTP): the
    // trusted clock runs by the boot-time clock alone.
    let (r2, j) = observe(Some(&r), T0 + HOUR + 1000, &boot("a", 1000 + HOUR));
    assert_eq!((r2.trusted_ms, j), (T0 + HOUR, None));
    // A small step back is absorbed: the trusted clock never goes back.
    let (r3, j) = observe(Some(&r2), T0 + HOUR - 5000, &boot("a", 1000 + HOUR + 10));
    assert_eq!((r3.trusted_ms, j), (T0 + HOUR + 10, None));
}

#[test]
fn a_wall_clock_kept_just_inside_the_tolerance_gains_nothing() {
    // Someone sets the wall clock 119 s ahead before every observation.
    let (mut r, _) = observe(None, T0, &boot("a", 0));
    let mut mono = 0;
    for _ in 0..1000 {
        mono += 1000;
        let wall = r.trusted_ms + 1000 + CLOCK_TOLERANCE_MS - 1000;
        let (next, j) = observe(Some(&r), wall, &boot("a", mono));
        assert_eq!(j, None);
        r = next;
    }
    assert_eq!(r.trusted_ms, T0 + 1000 * 1000, "only real time passed");
}

#[test]
fn a_wall_clock_set_forward_does_not_move_the_trusted_clock_until_accepted() {
    let (r, _) = observe(None, T0, &boot("a", 0));
    // Ten minutes pass; the wall clock says 400 days.
    let (r, j) = observe(Some(&r), T0 + 400 * DAY, &boot("a", 10 * 60_000));
    assert_eq!(r.trusted_ms, T0 + 10 * 60_000);
    assert!(matches!(j, Some(ClockJump::Forward { by_ms }) if by_ms > 399 * DAY));
    assert!(j.unwrap().to_string().contains("399 days ahead"));
    // It stays a jump at every later observation: the trusted clock runs on
    // by the boot-time clock only.
    let (r, j) = observe(
        Some(&r),
        T0 + 400 * DAY + HOUR,
        &boot("a", 10 * 60_000 + HOUR),
    );
    assert_eq!(r.trusted_ms, T0 + 10 * 60_000 + HOUR);
    assert!(matches!(j, Some(ClockJump::Forward { .. })));
}

#[test]
fn a_wall_clock_set_back_is_reported_and_the_trusted_clock_runs_on() {
    let (r, _) = observe(None, T0, &boot("a", 0));
    let (r, j) = observe(Some(&r), T0 - 3 * DAY, &boot("a", HOUR));
    assert_eq!(r.trusted_ms, T0 + HOUR);
    assert!(matches!(j, Some(ClockJump::Back { by_ms }) if by_ms == 3 * DAY + HOUR));
}

#[test]
fn a_reboot_may_move_the_wall_clock_by_the_grace_and_no_more() {
    let (r, _) = observe(None, T0, &boot("a", 5 * DAY));
    // Rebooted: boot-time restarts near zero; 10 minutes passed.
    let (r2, j) = observe(Some(&r), T0 + 10 * 60_000, &boot("b", 30_000));
    assert_eq!((r2.trusted_ms, j), (T0 + 10 * 60_000, None));
    // Off for a week: a jump, and the trusted clock stays where it was.
    let (r3, j) = observe(Some(&r2), T0 + 7 * DAY, &boot("c", 30_000));
    assert_eq!(r3.trusted_ms, r2.trusted_ms);
    assert!(matches!(j, Some(ClockJump::Forward { .. })));
}

proptest::proptest! {
    /// Whatever the wall clock does, the trusted clock never goes back and
    /// never runs faster than the boot-time clock (plus the tolerance, and
    /// the grace across a reboot).
    #[test]
    fn the_trusted_clock_is_monotonic_and_bounded_by_elapsed_time(
        steps in proptest::collection::vec((0i64..3 * HOUR, -400 * DAY..400 * DAY, 0u8..10), 1..60)
    ) {
        let mut mono = 0i64;
        let mut boot_no = 0u32;
        let mut wall = T0;
        let mut rec: Option<ClockRecord> = None;
        for (dt, dwall, reboot) in steps {
            let rebooted = reboot == 0;
            if rebooted {
                boot_no += 1;
                mono = dt;
            } else {
                mono += dt;
            }
            wall = (wall + dt + if reboot < 3 { dwall } else { 0 }).max(0);
            let (r, _) = observe(rec.as_ref(), wall, &boot(&boot_no.to_string(), mono));
            if let Some(p) = &rec {
                proptest::prop_assert!(r.trusted_ms >= p.trusted_ms);
                let allowed = if rebooted { REBOOT_GRACE_MS } else { mono - p.mono_ms };
                proptest::prop_assert!(
                    r.trusted_ms <= p.trusted_ms + allowed + CLOCK_TOLERANCE_MS,
                    "{} -> {} with {allowed} ms allowed", p.trusted_ms, r.trusted_ms
                );
            }
            rec = Some(r);
        }
    }
}

#[test]
fn the_clock_record_persists_and_accepting_moves_it_forward_only() {
    let w = World::new();
    let cat = w.catalog();
    let o = trusted_now(&cat, T0, &boot("a", 0)).unwrap();
    assert_eq!(o.trusted_ms, T0);
    let o = trusted_now(&cat, T0 + 30 * DAY, &boot("a", HOUR)).unwrap();
    assert_eq!(o.trusted_ms, T0 + HOUR);
    assert!(o.status().jump.unwrap().contains("clock accept"));
    // Reopened: the record is the catalog's.
    let cat = w.catalog();
    let o = trusted_now(&cat, T0 + 30 * DAY, &boot("a", 2 * HOUR)).unwrap();
    assert_eq!(o.trusted_ms, T0 + 2 * HOUR);
    let e = accept_wall_clock(&cat, T0, &boot("a", 2 * HOUR)).unwrap_err();
    assert!(e.to_string().contains("never goes back"), "{e}");
    let o = accept_wall_clock(&cat, T0 + 30 * DAY, &boot("a", 2 * HOUR)).unwrap();
    assert_eq!(o.trusted_ms, T0 + 30 * DAY);
    let o = trusted_now(&cat, T0 + 30 * DAY + HOUR, &boot("a", 3 * HOUR)).unwrap();
    assert_eq!((o.trusted_ms, o.jump), (T0 + 30 * DAY + HOUR, None));
}

/// Whether this process may set the immutable attribute on files under
/// `dir` (root, and a filesystem that has it).
fn chattr_works(dir: &std::path::Path) -> bool {
    let p = dir.join("probe");
    std::fs::write(&p, b"x").unwrap();
    let ok = coffer_block::set_immutable(&p, true).is_ok();
    if ok {
        coffer_block::set_immutable(&p, false).unwrap();
    }
    std::fs::remove_file(&p).unwrap();
    ok
}

fn prune_by_hand(
    w: &World,
    repo: &Repo,
    ids: &[SnapshotId],
    trusted: i64,
) -> crate::prune::PruneReport {
    let cat = w.catalog();
    let plans = plan_order(
        &cat,
        &PruneOrder {
            snapshots: ids.to_vec(),
            ..Default::default()
        },
        trusted,
        true,
    )
    .unwrap();
    prune(
        repo,
        &cat,
        &plans,
        trusted,
        &actor(),
        &Progress::default(),
        None,
    )
    .unwrap()
}

#[test]
fn a_locked_snapshot_cannot_be_deleted_by_anyone_until_its_lock_ends() {
    let w = World::new();
    let repo = w.repo();
    write_files(&w.src(), 0, 6);
    let old = w.backup(&repo);
    write_files(&w.src(), 100, 6);
    let locked = w.backup(&repo);
    let cat = w.catalog();
    let now = crate::now_ms();
    cat.set_lock(&locked, now + 30 * DAY, "officer", now, "audit 2026")
        .unwrap();
    // Shortening is refused, by the code and by the schema.
    let e = cat
        .set_lock(&locked, now + DAY, "admin", now, "oops")
        .unwrap_err();
    assert!(e.to_string().contains("never shortened"), "{e}");
    // Extending is allowed.
    cat.set_lock(&locked, now + 40 * DAY, "officer", now, "extended")
        .unwrap();

    let imm = {
        let _l = crate::lock::StoreLock::shared(&cat).unwrap();
        apply_immutability(&repo, &cat, now, &Progress::default()).unwrap()
    };
    assert_eq!(imm.snapshots, 1);
    let real_fs = chattr_works(w.dir.path());
    if real_fs {
        assert!(imm.warnings.is_empty(), "{:?}", imm.warnings);
        assert!(imm.locked >= 3, "{imm:?}");
        let rec = w.store().join(record_key(&locked));
        assert!(coffer_block::is_immutable(&rec).unwrap());
        // Not even root deletes it: the filesystem refuses.
        assert!(matches!(
            repo.delete_snapshot(&locked),
            Err(coffer_store::Error::Locked { .. })
        ));
    } else {
        eprintln!("SKIPPED (immutable attribute): this filesystem or user cannot chattr +i");
        assert_eq!(imm.warnings.len(), 1, "{:?}", imm.warnings);
    }

    // Deleting it by hand is refused; the other goes.
    let r = prune_by_hand(&w, &repo, &[old, locked], now);
    assert_eq!(r.removed, vec![old]);
    assert_eq!(r.refused.len(), 1);
    assert!(
        r.refused[0].contains("retention-locked until"),
        "{:?}",
        r.refused
    );
    assert!(cat.resolve_snapshot(&locked.to_hex()).is_ok());
    assert!(
        w.catalog()
            .delete_unprotected_snapshot(&locked, now)
            .is_err()
    );

    // A collection leaves everything the locked snapshot needs in place,
    // and compacts none of its containers.
    let g = gc(
        &repo,
        &cat,
        &GcOptions {
            compact_below: 1.0,
            dry_run: false,
            retire_before: 0,
            full: false,
        },
        now,
        &actor(),
        &Progress::default(),
        None,
    )
    .unwrap();
    if real_fs {
        assert!(g.warnings.is_empty(), "{:?}", g.warnings);
    }
    crate::gc::tests::assert_restores(&w, &w.repo(), &locked, &w.src());

    // Forty-one days later by the trusted clock the lock has ended: the
    // attribute comes off and the snapshot can go.
    let later = now + 41 * DAY;
    let r = prune_by_hand(&w, &repo, &[locked], later);
    assert_eq!(r.removed, vec![locked], "{:?}", r.refused);
    assert_eq!(r.immutability.objects, 0, "{:?}", r.immutability);
    let g = run_gc(&w, &repo, GcOptions::default()).unwrap();
    assert!(g.stats.containers_deleted > 0);
    assert!(w.catalog().immutable_objects().unwrap().is_empty());
}

#[test]
fn a_legal_hold_protects_every_snapshot_of_its_asset_until_released() {
    let w = World::new();
    let repo = w.repo();
    write_files(&w.src(), 0, 3);
    let a = w.backup(&repo);
    let b = w.backup(&repo);
    let cat = w.catalog();
    let now = crate::now_ms();
    let e = cat
        .set_hold(None, Some("files"), " ", "officer", now)
        .unwrap_err();
    assert!(e.to_string().contains("needs a reason"), "{e}");
    let id = cat
        .set_hold(None, Some("files"), "case 42", "officer", now)
        .unwrap();
    let r = prune_by_hand(&w, &repo, &[a, b], now);
    assert!(r.removed.is_empty());
    assert_eq!(r.refused.len(), 2);
    assert!(r.refused[0].contains("legal hold"), "{:?}", r.refused);
    let h = cat.release_hold(id, "officer", now + 1).unwrap();
    assert!(!h.active());
    let e = cat.release_hold(id, "officer", now + 2).unwrap_err();
    assert!(e.to_string().contains("already released"), "{e}");
    assert!(cat.holds(false).unwrap().is_empty());
    assert_eq!(cat.holds(true).unwrap().len(), 1);
    let r = prune_by_hand(&w, &repo, &[a, b], now);
    assert_eq!(r.removed.len(), 2);
}

#[test]
fn a_policy_lock_protects_new_snapshots_from_their_first_prune() {
    let w = World::new();
    let repo = w.repo();
    write_files(&w.src(), 0, 2);
    let a = w.backup(&repo);
    let cat = w.catalog();
    let now = crate::now_ms();
    let policies = std::collections::HashMap::from([(
        "files".to_string(),
        Retention {
            keep_last: Some(1),
            lock_for: Some(coffer_types::api::Duration(7 * 86_400)),
            ..Default::default()
        },
    )]);
    let dry = locks_by_policy(&cat, &policies, now, false).unwrap();
    assert_eq!(dry.len(), 1);
    assert!(
        cat.lock_of(&a).unwrap().is_none(),
        "a dry run writes nothing"
    );
    let set = locks_by_policy(&cat, &policies, now, true).unwrap();
    assert_eq!(set, dry);
    let l = cat.lock_of(&a).unwrap().unwrap();
    assert_eq!(l.set_by, "policy");
    assert!(l.until_ms > now + 6 * DAY);
    // Idempotent.
    assert!(
        locks_by_policy(&cat, &policies, now, true)
            .unwrap()
            .is_empty()
    );
    // Once it ended, nothing is locked again.
    assert!(
        locks_by_policy(&cat, &policies, now + 8 * DAY, true)
            .unwrap()
            .is_empty()
    );
}
