//! The register, profiles, schedule state, alerts and last good backups,
//! against real SQLite files in temporary directories.

use coffer_types::api::{Asset, Criticality, Duration, Profile, Retention, Schedules};
use coffer_types::{BackupStats, Level, Scope, SnapshotId, SnapshotInfo, rfc3339_ms};
use tempfile::TempDir;

use crate::{Catalog, Error, RaisedAlert, ScheduleMark};

fn fresh() -> (TempDir, Catalog) {
    let dir = tempfile::tempdir().unwrap();
    let cat = Catalog::open(&dir.path().join("catalog.db")).unwrap();
    (dir, cat)
}

fn asset(name: &str, profile: Option<&str>) -> Asset {
    Asset {
        name: name.to_string(),
        owner: "ops team".to_string(),
        criticality: Criticality::High,
        sources: vec![format!("/srv/{name}"), "/etc".to_string()],
        excludes: vec!["*.tmp".to_string()],
        rpo: Duration(86_400),
        rto: Duration(4 * 3600),
        profile: profile.map(str::to_string),
    }
}

fn profile(name: &str) -> Profile {
    Profile {
        name: name.to_string(),
        schedules: Schedules {
            full: Some("Sun 01:00".to_string()),
            differential: Some("Mon..Sat 01:00".to_string()),
            incremental: None,
        },
        retention: Retention {
            keep_daily: Some(14),
            ..Retention::default()
        },
        target: "default".to_string(),
        tape_pool: Some("weekly".to_string()),
        replicate_to: vec!["offsite-1".to_string()],
        replicate_schedule: Some("*-*-* 02:00".to_string()),
        retries: 3,
        retry_backoff: Duration(600),
        drill: None,
    }
}

fn snap(seed: u8, asset: &str, started_ms: i64, finished_ms: i64) -> SnapshotInfo {
    SnapshotInfo {
        id: SnapshotId([seed; 16]),
        asset: asset.to_string(),
        level: Level::Full,
        time: rfc3339_ms(started_ms),
        started_ms,
        finished_ms,
        reference: None,
        host: "anchor-1".to_string(),
        identity: "scheduler".to_string(),
        scope: Scope {
            paths: vec![format!("/srv/{asset}")],
            excludes: Vec::new(),
            one_file_system: true,
        },
        stats: BackupStats::default(),
    }
}

#[test]
fn assets_add_get_list_update_remove() {
    let (_d, cat) = fresh();
    let web = asset("web-01", Some("standard"));
    cat.add_asset(&web, 1_000).unwrap();
    cat.add_asset(&asset("db-01", None), 2_000).unwrap();

    let got = cat.asset("web-01").unwrap();
    assert_eq!(got.asset, web);
    assert_eq!((got.registered_ms, got.updated_ms), (1_000, 1_000));

    let names: Vec<String> = cat
        .register()
        .unwrap()
        .into_iter()
        .map(|r| r.asset.name)
        .collect();
    assert_eq!(names, ["db-01", "web-01"]);

    let mut changed = web.clone();
    changed.owner = "web team".to_string();
    changed.criticality = Criticality::Critical;
    changed.sources = vec!["/srv/www".to_string()];
    changed.excludes.clear();
    changed.rpo = Duration(3600);
    changed.profile = None;
    cat.update_asset(&changed, 5_000).unwrap();
    let got = cat.asset("web-01").unwrap();
    assert_eq!(got.asset, changed);
    assert_eq!(
        (got.registered_ms, got.updated_ms),
        (1_000, 5_000),
        "registration time stays"
    );

    cat.remove_asset("web-01").unwrap();
    assert!(matches!(
        cat.asset("web-01"),
        Err(Error::NotFound { what: "asset", ref name }) if name == "web-01"
    ));
    assert_eq!(cat.register().unwrap().len(), 1);
}

#[test]
fn asset_errors_name_what_and_which() {
    let (_d, cat) = fresh();
    cat.add_asset(&asset("web-01", None), 1).unwrap();
    let e = cat.add_asset(&asset("web-01", None), 2).unwrap_err();
    assert!(matches!(e, Error::Exists { what: "asset", .. }));
    assert_eq!(e.to_string(), "asset 'web-01' already exists");
    assert_eq!(cat.asset("web-01").unwrap().registered_ms, 1);

    let e = cat.update_asset(&asset("nope", None), 3).unwrap_err();
    assert_eq!(e.to_string(), "no asset 'nope' in the catalog");
    let e = cat.remove_asset("nope").unwrap_err();
    assert!(matches!(e, Error::NotFound { what: "asset", .. }));
    let e = cat.asset("nope").unwrap_err();
    assert!(matches!(e, Error::NotFound { what: "asset", .. }));
}

#[test]
fn a_bad_register_row_is_reported_as_corrupt() {
    let (dir, cat) = fresh();
    cat.add_asset(&asset("web-01", None), 1).unwrap();
    let raw = rusqlite::Connection::open(dir.path().join("catalog.db")).unwrap();
    raw.execute("UPDATE asset_register SET sources_json = 'not json'", [])
        .unwrap();
    let e = cat.asset("web-01").unwrap_err();
    assert!(matches!(e, Error::Corrupt { .. }), "{e}");
    assert!(e.to_string().contains("asset web-01: bad sources"), "{e}");
    assert!(cat.register().is_err());
}

#[test]
fn import_adds_replaces_or_skips_in_one_transaction() {
    let (_d, cat) = fresh();
    cat.add_profile(&profile("standard"), 1).unwrap();
    cat.add_asset(&asset("web-01", Some("standard")), 1)
        .unwrap();

    let mut web = asset("web-01", Some("standard"));
    web.owner = "changed".to_string();
    let batch = [
        web.clone(),
        asset("db-01", Some("standard")),
        asset("files-01", None),
        asset("mail-01", Some("missing-profile")),
    ];
    let report = cat.import_assets(&batch, false, 10).unwrap();
    assert_eq!(report.added, ["db-01", "files-01", "mail-01"]);
    assert!(report.replaced.is_empty());
    assert_eq!(report.skipped, ["web-01"]);
    assert_eq!(report.unprotected, ["files-01", "mail-01"]);
    assert_eq!(cat.asset("web-01").unwrap().asset.owner, "ops team");
    assert_eq!(cat.asset("db-01").unwrap().registered_ms, 10);

    let report = cat.import_assets(&batch, true, 20).unwrap();
    assert!(report.added.is_empty());
    assert_eq!(report.replaced, ["web-01", "db-01", "files-01", "mail-01"]);
    assert_eq!(report.unprotected, ["files-01", "mail-01"]);
    let got = cat.asset("web-01").unwrap();
    assert_eq!(got.asset.owner, "changed");
    assert_eq!((got.registered_ms, got.updated_ms), (1, 20));
}

#[test]
fn profiles_add_get_list_update_remove() {
    let (_d, cat) = fresh();
    let std = profile("standard");
    cat.add_profile(&std, 1).unwrap();
    cat.add_profile(&profile("archive"), 2).unwrap();
    assert_eq!(cat.profile("standard").unwrap(), std);
    let names: Vec<String> = cat
        .profiles()
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, ["archive", "standard"]);

    let mut changed = std.clone();
    changed.schedules.incremental = Some("*-*-* 00/4:00".to_string());
    changed.retries = 0;
    cat.update_profile(&changed, 3).unwrap();
    assert_eq!(cat.profile("standard").unwrap(), changed);

    let e = cat.add_profile(&std, 4).unwrap_err();
    assert_eq!(e.to_string(), "profile 'standard' already exists");
    let e = cat.update_profile(&profile("nope"), 4).unwrap_err();
    assert!(matches!(
        e,
        Error::NotFound {
            what: "profile",
            ..
        }
    ));
    let e = cat.profile("nope").unwrap_err();
    assert_eq!(e.to_string(), "no profile 'nope' in the catalog");

    cat.remove_profile("archive").unwrap();
    let e = cat.remove_profile("archive").unwrap_err();
    assert!(matches!(
        e,
        Error::NotFound {
            what: "profile",
            ..
        }
    ));
}

#[test]
fn a_profile_in_use_is_not_removed() {
    let (_d, cat) = fresh();
    cat.add_profile(&profile("standard"), 1).unwrap();
    cat.add_asset(&asset("web-01", Some("standard")), 1)
        .unwrap();
    cat.add_asset(&asset("db-01", Some("standard")), 1).unwrap();
    cat.add_asset(&asset("files-01", None), 1).unwrap();
    let e = cat.remove_profile("standard").unwrap_err();
    match &e {
        Error::InUse { what, name, by, .. } => {
            assert_eq!((*what, name.as_str()), ("profile", "standard"));
            assert_eq!(by, &["db-01", "web-01"]);
        }
        other => panic!("{other}"),
    }
    assert_eq!(
        e.to_string(),
        "profile 'standard' is still used by assets db-01, web-01"
    );
    assert!(cat.profile("standard").is_ok());
    cat.update_asset(&asset("web-01", None), 2).unwrap();
    cat.remove_asset("db-01").unwrap();
    cat.remove_profile("standard").unwrap();
}

#[test]
fn schedule_state_set_forget_and_delete() {
    let (_d, cat) = fresh();
    assert!(cat.schedule_state().unwrap().is_empty());
    let mark = |expr: &str, ms| ScheduleMark {
        expr: expr.to_string(),
        last_due_ms: ms,
    };
    let web_full = ("web-01".to_string(), Level::Full);
    let web_incr = ("web-01".to_string(), Level::Incremental);
    let db_diff = ("db-01".to_string(), Level::Differential);
    cat.set_schedule_state(
        &[
            (web_full.clone(), mark("Sun *-*-* 01:00:00", 100)),
            (web_incr.clone(), mark("*-*-* 00/4:00:00", 200)),
            (db_diff.clone(), mark("Mon..Sat *-*-* 01:00:00", 300)),
        ],
        &[],
    )
    .unwrap();
    let state = cat.schedule_state().unwrap();
    assert_eq!(state.len(), 3);
    assert_eq!(state[&web_incr], mark("*-*-* 00/4:00:00", 200));

    // Overwrite one, forget another, in one call.
    cat.set_schedule_state(
        &[(web_full.clone(), mark("daily", 400))],
        std::slice::from_ref(&web_incr),
    )
    .unwrap();
    let state = cat.schedule_state().unwrap();
    assert_eq!(state.len(), 2);
    assert_eq!(state[&web_full], mark("daily", 400));
    assert!(!state.contains_key(&web_incr));

    assert_eq!(cat.delete_schedule_state("web-01").unwrap(), 1);
    assert_eq!(cat.delete_schedule_state("web-01").unwrap(), 0);
    assert_eq!(cat.schedule_state().unwrap().len(), 1);

    // Removing an asset removes its schedule state too.
    cat.add_asset(&asset("db-01", None), 1).unwrap();
    cat.remove_asset("db-01").unwrap();
    assert!(cat.schedule_state().unwrap().is_empty());
}

#[test]
fn replication_schedule_state_set_overwrite_and_forget() {
    let (_d, cat) = fresh();
    assert!(cat.replication_schedule_state().unwrap().is_empty());
    let mark = |expr: &str, ms| ScheduleMark {
        expr: expr.to_string(),
        last_due_ms: ms,
    };
    cat.set_replication_schedule_state(
        &[
            ("standard".into(), mark("*-*-* 02:00:00", 100)),
            ("critical".into(), mark("hourly", 200)),
        ],
        &[],
    )
    .unwrap();
    cat.set_replication_schedule_state(
        &[("standard".into(), mark("*-*-* 03:00:00", 300))],
        &["critical".into()],
    )
    .unwrap();
    let state = cat.replication_schedule_state().unwrap();
    assert_eq!(state.len(), 1);
    assert_eq!(state["standard"], mark("*-*-* 03:00:00", 300));
    // The backup schedules' state is another table.
    assert!(cat.schedule_state().unwrap().is_empty());
}

#[test]
fn alerts_raise_is_idempotent_while_open() {
    let (_d, cat) = fresh();
    let first = cat
        .raise_alert("rpo", "web-01", "web-01: last good backup 26h ago", 1_000)
        .unwrap();
    assert!(first.new);
    let again = cat
        .raise_alert("rpo", "web-01", "web-01: last good backup 27h ago", 2_000)
        .unwrap();
    assert_eq!(
        again,
        RaisedAlert {
            id: first.id,
            new: false
        }
    );
    let other = cat.raise_alert("rpo", "db-01", "db-01: …", 3_000).unwrap();
    assert!(other.new && other.id != first.id);
    let kind = cat
        .raise_alert("job-failed", "web-01", "job 7 failed", 3_500)
        .unwrap();
    assert!(kind.new);
    assert_eq!(cat.open_alert_count().unwrap(), 3);

    let open = cat.alerts(false).unwrap();
    assert_eq!(open.len(), 3);
    let web = open.iter().find(|a| a.id == first.id).unwrap();
    assert_eq!(
        web.message, "web-01: last good backup 27h ago",
        "message refreshed"
    );
    assert_eq!(web.raised, rfc3339_ms(1_000), "raise time kept");
    assert_eq!(web.cleared, None);
    // Newest first.
    assert_eq!(open[0].id, kind.id);

    assert!(cat.clear_alert("rpo", "web-01", 4_000).unwrap());
    assert!(!cat.clear_alert("rpo", "web-01", 4_500).unwrap());
    assert_eq!(cat.open_alert_count().unwrap(), 2);
    assert_eq!(cat.alerts(false).unwrap().len(), 2);
    let all = cat.alerts(true).unwrap();
    assert_eq!(all.len(), 3);
    let cleared = all.iter().find(|a| a.id == first.id).unwrap();
    assert_eq!(cleared.cleared.as_deref(), Some(rfc3339_ms(4_000).as_str()));

    // The condition returns: a new alert.
    let back = cat.raise_alert("rpo", "web-01", "again", 5_000).unwrap();
    assert!(back.new && back.id != first.id);
    assert_eq!(cat.alerts(true).unwrap().len(), 4);
}

#[test]
fn alerts_ack_keeps_the_first_and_refuses_unknown_ids() {
    let (_d, cat) = fresh();
    let a = cat
        .raise_alert("unprotected", "files-01", "no profile", 1)
        .unwrap();
    cat.ack_alert(a.id, "alice", 2).unwrap();
    cat.ack_alert(a.id, "bob", 3).unwrap();
    let listed = cat.alerts(false).unwrap();
    assert_eq!(listed[0].acked_by.as_deref(), Some("alice"));
    // Acknowledged is not cleared: it stays open.
    assert_eq!(cat.open_alert_count().unwrap(), 1);
    let e = cat.ack_alert(999, "alice", 4).unwrap_err();
    assert!(matches!(e, Error::NotFound { what: "alert", .. }));
    assert_eq!(e.to_string(), "no alert '999' in the catalog");
}

#[test]
fn last_good_backup_per_asset_is_the_newest_finish() {
    let (_d, cat) = fresh();
    assert!(cat.last_good_backups().unwrap().is_empty());
    cat.insert_snapshot(&snap(1, "web-01", 1_000, 1_500))
        .unwrap();
    cat.insert_snapshot(&snap(2, "web-01", 5_000, 9_000))
        .unwrap();
    cat.insert_snapshot(&snap(3, "web-01", 6_000, 7_000))
        .unwrap();
    cat.insert_snapshot(&snap(4, "db-01", 2_000, 2_100))
        .unwrap();
    let last = cat.last_good_backups().unwrap();
    assert_eq!(last.len(), 2);
    assert_eq!(last["web-01"], 9_000);
    assert_eq!(last["db-01"], 2_100);
}
