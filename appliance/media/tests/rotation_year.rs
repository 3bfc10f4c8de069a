//! A year of media rotation against the virtual tape library, recorded in a
//! real catalog: every day the operator follows `coffer media rotation
//! today` (receipts, imports, exports to the mail slots, courier pickups,
//! recalls, cleaning) and the night's tape job is recorded on the
//! cartridges the plan chose. The cartridges really move: out of the
//! library through its mail slots to the outside shelf (courier and
//! vault), and back in. Every day checks that no cartridge holding a kept
//! set was written, that no job waited, that the newest full reached the
//! vault once the courier could have taken it, and that the library and
//! the records agree on where every cartridge is.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::HashSet;

use coffer_catalog::Catalog;
use coffer_media::rotation::{
    Book, Content, Day, Hanoi, Level, Place, PoolPolicy, Scheme, SetChoice, Weekday, retained_until,
};
use coffer_tape::{MediaChanger, VirtualLibrary, VtlOptions};

struct World {
    _dir: tempfile::TempDir,
    cat: Catalog,
    lib: VirtualLibrary,
}

fn world(cartridges: u16) -> World {
    let dir = tempfile::tempdir().unwrap();
    let lib = VirtualLibrary::create(
        &dir.path().join("vtl"),
        &VtlOptions {
            drives: 1,
            slots: cartridges + 4,
            ie_slots: 12,
            capacity: 64 << 20,
            early_warning: 4 << 20,
            cartridges,
            worm: 0,
            cleaning: 1,
            prefix: "RT".into(),
        },
    )
    .unwrap();
    let cat = Catalog::open(&dir.path().join("catalog.db")).unwrap();
    World {
        _dir: dir,
        cat,
        lib,
    }
}

#[derive(Default, Debug)]
struct Tally {
    jobs: usize,
    exports: usize,
    pickups: usize,
    vault_receipts: usize,
    recalls: usize,
    returns: usize,
    expired: usize,
    cleanings: usize,
}

/// Runs `days` days of `pool`'s procedure from its start.
fn year(w: &World, pool: &PoolPolicy, days: i32) -> Tally {
    let book = Book::new(&w.cat, "operator", 1_790_000_000_000);
    book.put_pool(pool).unwrap();
    let inv = w.lib.changer_handle().inventory().unwrap();
    let barcodes: Vec<String> = inv.slots.iter().filter_map(|e| e.barcode.clone()).collect();
    book.add_cartridges(&pool.name, &barcodes, true, pool.start)
        .unwrap();
    let required = book.required(&pool.name).unwrap();
    let data = barcodes.iter().filter(|b| !b.starts_with("CLN")).count();
    assert!(
        data as u32 >= required,
        "the test's library has {data} cartridges; the scheme needs {required}"
    );
    let mut t = Tally::default();
    let bound = 2 + pool.pickup_wait() + pool.courier_days as i32;
    let horizon = 1 + pool.courier_days as i32 + pool.pickup_wait() + 2;
    for k in 0..days {
        let d = pool.start.plus(k);
        let plan = book.today_sized(&pool.name, d, required).unwrap();
        assert_eq!(plan.scratch_short, 0, "{d}: {:?}", plan.warnings);
        assert!(
            !plan.warnings.iter().any(|w| w.contains("needs")),
            "{d}: {:?}",
            plan.warnings
        );
        book.settle(&pool.name, &plan).unwrap();
        t.expired += plan.expire.len();

        // What the courier brought: the vault confirms its receipts; the
        // site receives its recalls (they are on the site's shelf).
        if !plan.due_at_vault.is_empty() {
            book.received(&pool.name, &plan.due_at_vault, d).unwrap();
            t.vault_receipts += plan.due_at_vault.len();
        }
        if !plan.due_onsite.is_empty() {
            book.received(&pool.name, &plan.due_onsite, d).unwrap();
            t.returns += plan.due_onsite.len();
        }
        // The vault ships what was recalled yesterday.
        for m in w.cat.transfer_manifests().unwrap() {
            if m.pool == pool.name && m.direction == "to-site" && m.sent_ms.is_none() {
                book.sent(m.id, d).unwrap();
            }
        }
        // Cartridges to load: into a mail slot (from the shelf) and in.
        if !plan.load.is_empty() {
            for b in &plan.load {
                let in_lib = w
                    .lib
                    .changer_handle()
                    .inventory()
                    .unwrap()
                    .all()
                    .any(|e| e.barcode.as_deref() == Some(b.as_str()));
                if !in_lib {
                    w.lib.insert(b, None).unwrap();
                }
            }
            let mut ch = w.lib.changer_handle();
            book.import(
                &pool.name,
                &plan.load,
                d,
                Some(&mut ch as &mut dyn MediaChanger),
            )
            .unwrap();
        }
        // Tonight's job, on the first cartridge the plan chose.
        if let Some(job) = &plan.job {
            let id = match &job.set {
                SetChoice::Continue { id } => id.clone(),
                SetChoice::New => format!("{}-{d}", pool.name),
            };
            book.written(&pool.name, &plan, &id, &job.cartridges[..1])
                .unwrap();
            t.jobs += 1;
        }
        // To the export slots, and to the courier on pickup days.
        if !plan.export.is_empty() {
            let b: Vec<String> = plan.export.iter().map(|e| e.barcode.clone()).collect();
            let mut ch = w.lib.changer_handle();
            book.export(&pool.name, &b, d, Some(&mut ch as &mut dyn MediaChanger))
                .unwrap();
            t.exports += b.len();
        }
        if !plan.send.is_empty() {
            let send: HashSet<&String> = plan.send.iter().collect();
            for m in w.cat.transfer_manifests().unwrap() {
                if m.pool == pool.name
                    && m.direction == "to-vault"
                    && m.sent_ms.is_none()
                    && m.barcodes.iter().any(|b| send.contains(b))
                {
                    // The operator takes them out of the mail slots.
                    let inv = w.lib.changer_handle().inventory().unwrap();
                    for b in &m.barcodes {
                        if let Some(e) = inv
                            .ie_slots
                            .iter()
                            .find(|e| e.barcode.as_deref() == Some(b.as_str()))
                        {
                            w.lib.take(e.index).unwrap();
                        }
                    }
                    book.sent(m.id, d).unwrap();
                    t.pickups += 1;
                }
            }
        }
        if !plan.recall.is_empty() {
            let wanted: Vec<(String, Day)> = plan
                .recall
                .iter()
                .map(|r| (r.barcode.clone(), r.needed_by))
                .collect();
            book.recall(&pool.name, &wanted, d).unwrap();
            t.recalls += wanted.len();
        }
        if plan.cleaning_due {
            book.cleaned(&pool.name, d).unwrap();
            t.cleanings += 1;
        }

        // The records and the library agree.
        let inv = book.inventory(&pool.name).unwrap();
        let lib = w.lib.changer_handle().inventory().unwrap();
        let outside: HashSet<String> = w.lib.outside().unwrap().into_iter().collect();
        for c in &inv.carts {
            let in_slots = lib
                .slots
                .iter()
                .chain(&lib.drives)
                .any(|e| e.barcode.as_deref() == Some(c.barcode.as_str()));
            let in_mail = lib
                .ie_slots
                .iter()
                .any(|e| e.barcode.as_deref() == Some(c.barcode.as_str()));
            let ok = match c.place {
                Place::Library => in_slots,
                Place::ExportSlot => in_mail,
                _ => outside.contains(&c.barcode),
            };
            assert!(ok, "{d}: {} is {:?} in the records", c.barcode, c.place);
        }
        // A kept set's restore chain is kept.
        for s in inv.sets.iter().filter(|s| !s.expired) {
            if let Some(b) = &s.base {
                assert!(
                    inv.set(b).is_some_and(|b| !b.expired),
                    "{d}: {} kept without its base {b}",
                    s.id
                );
            }
        }
        // The newest full (or a newer one) is in the vault once it could be.
        let kept = retained_until(&inv);
        if let Some(f) = inv
            .sets
            .iter()
            .filter(|s| {
                s.level == Level::Full
                    && s.closed
                    && !s.expired
                    && s.last.plus(bound) <= d
                    && kept.get(&s.id).is_some_and(|k| *k > d.plus(horizon))
            })
            .max_by_key(|s| s.last)
        {
            assert!(
                inv.sets
                    .iter()
                    .any(|s| s.level == Level::Full && s.last >= f.last && inv.in_vault(s)),
                "{d}: the newest full {} is not in the vault",
                f.id
            );
        }
    }
    t
}

fn monday() -> Day {
    Day::ymd(2027, 1, 4)
}

#[test]
fn a_year_of_gfs_rotation_on_the_virtual_library() {
    let mut pool = PoolPolicy::gfs("gfs", monday());
    pool.pickup_days = vec![Weekday::Tue, Weekday::Fri];
    pool.courier_days = 1;
    let w = world(34);
    let t = year(&w, &pool, 365);
    assert!(t.jobs >= 255, "{t:?}");
    assert!(
        t.exports >= 50 && t.pickups >= 50 && t.vault_receipts >= 50,
        "{t:?}"
    );
    assert!(
        t.recalls >= 15 && t.returns >= 15 && t.expired >= 60,
        "{t:?}"
    );
    assert!(t.cleanings >= 12, "{t:?}");

    // The chain of custody of a cartridge that went round: written,
    // exported, sent, received at the vault, recalled, shipped back,
    // received onsite, imported, written again.
    let chain = w.cat.custody(None).unwrap();
    // Each courier hand-over names its manifest.
    let sent: Vec<_> = chain.iter().filter(|e| e.event == "sent").collect();
    assert!(!sent.is_empty() && sent.iter().all(|e| e.manifest.is_some()));
    let went_round = chain
        .iter()
        .find(|e| e.event == "imported")
        .map(|e| e.barcode.clone())
        .unwrap();
    let events: Vec<String> = w
        .cat
        .custody(Some(&went_round))
        .unwrap()
        .into_iter()
        .map(|e| e.event)
        .collect();
    for step in [
        "registered",
        "written",
        "exported",
        "sent",
        "received-at-vault",
        "recall-requested",
        "shipped-back",
        "received-onsite",
        "imported",
    ] {
        assert!(events.iter().any(|e| e == step), "{went_round}: {events:?}");
    }
    // Every manifest the courier took arrived, except what is on the road
    // at the year's end.
    let inv = Book::new(&w.cat, "operator", 0).inventory("gfs").unwrap();
    let on_the_road = |b: &String| {
        inv.cart(b)
            .is_some_and(|c| matches!(c.place, Place::ToVault { .. } | Place::ToSite { .. }))
    };
    for m in w.cat.transfer_manifests().unwrap() {
        if m.sent_ms.is_some() && !m.barcodes.iter().any(on_the_road) {
            assert!(m.received_ms.is_some(), "{m:?}");
        }
    }
    let received = w
        .cat
        .transfer_manifests()
        .unwrap()
        .iter()
        .filter(|m| m.received_ms.is_some())
        .count();
    assert!(received >= 60, "{received}");
}

#[test]
fn a_year_of_tower_of_hanoi_rotation_on_the_virtual_library() {
    let mut pool = PoolPolicy::gfs("hanoi", monday());
    pool.scheme = Scheme::Hanoi(Hanoi {
        sets: 5,
        backup_days: Weekday::WORKING.to_vec(),
    });
    let w = world(14);
    let t = year(&w, &pool, 365);
    assert!(t.jobs >= 255, "{t:?}");
    assert!(
        t.exports >= 40 && t.recalls >= 40 && t.returns >= 40,
        "{t:?}"
    );
    let inv = Book::new(&w.cat, "operator", 0).inventory("hanoi").unwrap();
    assert!(
        inv.carts
            .iter()
            .all(|c| c.content != Content::Writing || c.place == Place::Library)
    );
}

/// A cartridge that belongs to another pool, a duplicate barcode, a WORM
/// cartridge in a recycling pool, a bad label: refused, nothing recorded.
#[test]
fn foreign_duplicate_worm_and_bad_cartridges_are_refused() {
    let w = world(4);
    let book = Book::new(&w.cat, "operator", 1);
    let a = PoolPolicy::gfs("a", monday());
    let mut b = PoolPolicy::gfs("b", monday());
    b.barcode_rule = "B?????L9".into();
    book.put_pool(&a).unwrap();
    book.put_pool(&b).unwrap();
    book.add_cartridges("a", &["RT0000L9".into()], true, monday())
        .unwrap();
    let err =
        |r: coffer_media::Result<coffer_media::rotation::Recorded>| r.unwrap_err().to_string();
    assert!(
        err(book.add_cartridges("b", &["RT0000L9".into()], true, monday()))
            .contains("already in pool a")
    );
    assert!(err(book.add_cartridges("a", &["WRM001LZ".into()], true, monday())).contains("WORM"));
    assert!(
        err(book.add_cartridges("b", &["RT0001L9".into()], true, monday()))
            .contains("barcode rule")
    );
    assert!(
        err(book.add_cartridges("a", &["RT01L9".into()], true, monday())).contains("LTO label")
    );
    assert!(
        err(book.add_cartridges("a", &["RT0002L9".into(), "RT0002L9".into()], true, monday()))
            .contains("twice")
    );
    // Steps that do not apply to a cartridge's state.
    assert!(
        err(book.export("a", &["RT0000L9".into()], monday(), None))
            .contains("closed set under retention")
    );
    assert!(err(book.received("a", &["RT0000L9".into()], monday())).contains("not in transit"));
    assert!(
        err(book.recall("a", &[("RT0000L9".into(), monday())], monday()))
            .contains("not in the vault")
    );
    assert!(err(book.export("b", &["RT0000L9".into()], monday(), None)).contains("in pool a"));
    // Nothing of that was recorded.
    assert_eq!(w.cat.custody(None).unwrap().len(), 1);
    // A scheme that cannot work is not recorded either.
    let mut bad = PoolPolicy::gfs("c", monday());
    bad.pickup_days.clear();
    assert!(
        book.put_pool(&bad)
            .unwrap_err()
            .to_string()
            .contains("courier never calls")
    );
    assert!(book.pool("c").is_err());
}

/// A continued set whose current cartridge filled at the end of the last
/// job goes on, the next night, on a cartridge the plan did not name first:
/// the filled one is recorded full, and the new one joins the set (it is
/// never left as scratch holding kept data).
#[test]
fn a_continued_set_that_moved_to_a_new_cartridge_records_it() {
    let w = world(8);
    let mut pool = PoolPolicy::gfs("gfs", monday());
    pool.vault = None;
    let book = Book::new(&w.cat, "operator", 1_790_000_000_000);
    book.put_pool(&pool).unwrap();
    let inv = w.lib.changer_handle().inventory().unwrap();
    let barcodes: Vec<String> = inv
        .slots
        .iter()
        .filter_map(|e| e.barcode.clone())
        .filter(|b| !b.starts_with("CLN"))
        .collect();
    book.add_cartridges("gfs", &barcodes, true, monday())
        .unwrap();
    // Monday writes the first cartridge of a new set.
    let p1 = book.today("gfs", monday()).unwrap();
    book.settle("gfs", &p1).unwrap();
    let a = p1.job.as_ref().unwrap().cartridges[0].clone();
    book.written("gfs", &p1, "S1", std::slice::from_ref(&a))
        .unwrap();
    // Tuesday continues it; the writer found A full and wrote on Y.
    let tue = monday().plus(1);
    let p2 = book.today("gfs", tue).unwrap();
    book.settle("gfs", &p2).unwrap();
    let job = p2.job.as_ref().unwrap();
    assert_eq!(job.set, SetChoice::Continue { id: "S1".into() });
    let inv = book.inventory("gfs").unwrap();
    let y = barcodes
        .iter()
        .find(|b| **b != a && inv.cart(b).unwrap().content == Content::Scratch)
        .unwrap()
        .clone();
    book.written("gfs", &p2, "S1", std::slice::from_ref(&y))
        .unwrap();
    let inv = book.inventory("gfs").unwrap();
    assert_eq!(inv.cart(&a).unwrap().content, Content::Full);
    let yc = inv.cart(&y).unwrap();
    assert_eq!(yc.set.as_deref(), Some("S1"), "{yc:?}");
    assert_eq!(yc.content, Content::Writing);
    assert_eq!(inv.set("S1").unwrap().cartridges, vec![a, y]);
}
