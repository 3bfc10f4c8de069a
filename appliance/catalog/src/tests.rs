//! Unit tests against real SQLite files in temporary directories.

use std::collections::HashSet;

use coffer_types::{
    BackupStats, JobKind, JobStatus, Level, Scope, SnapshotId, SnapshotInfo, rfc3339_ms,
};
use rusqlite::Connection;
use tempfile::TempDir;

use crate::{
    AssetRow, Catalog, Error, INTERRUPTED_MESSAGE, JobEnd, JobFilter, NewJob,
    RECONSTRUCTED_MESSAGE, schema,
};

fn fresh() -> (TempDir, Catalog) {
    let dir = tempfile::tempdir().unwrap();
    let cat = Catalog::open(&dir.path().join("catalog.db")).unwrap();
    (dir, cat)
}

fn id(bytes: &[u8]) -> SnapshotId {
    let mut out = [0u8; 16];
    out[..bytes.len()].copy_from_slice(bytes);
    SnapshotId(out)
}

fn stats(seed: u64) -> BackupStats {
    BackupStats {
        files_read: seed + 1,
        bytes_read: seed + 2,
        files_unchanged: seed + 3,
        bytes_unchanged: seed + 4,
        entries: seed + 5,
        chunks_new: seed + 6,
        bytes_new: seed + 7,
        bytes_stored: seed + 8,
        warnings: 0,
    }
}

fn snap(sid: SnapshotId, asset: &str, level: Level, started_ms: i64) -> SnapshotInfo {
    SnapshotInfo {
        id: sid,
        asset: asset.to_string(),
        level,
        time: rfc3339_ms(started_ms),
        started_ms,
        finished_ms: started_ms + 500,
        reference: None,
        host: "anchor-1".to_string(),
        identity: "root".to_string(),
        scope: Scope {
            paths: vec![format!("/srv/{asset}")],
            excludes: vec!["*.tmp".to_string()],
            one_file_system: true,
        },
        stats: stats(u64::try_from(started_ms).unwrap()),
    }
}

fn new_job(host: &str, pid: u32, started_ms: i64) -> NewJob {
    NewJob {
        kind: JobKind::Backup,
        asset: Some("mail".to_string()),
        level: Some(Level::Incremental),
        scope: Scope {
            paths: vec!["/var/mail".to_string()],
            excludes: vec![],
            one_file_system: false,
        },
        started_ms,
        identity: "operator".to_string(),
        host: host.to_string(),
        pid,
    }
}

fn pragma_i64(path: &std::path::Path, name: &str) -> i64 {
    let conn = Connection::open(path).unwrap();
    conn.pragma_query_value(None, name, |r| r.get(0)).unwrap()
}

#[test]
fn migrations_are_consecutive_and_end_at_schema_version() {
    let versions: Vec<i64> = schema::MIGRATIONS.iter().map(|(v, _)| *v).collect();
    let expected: Vec<i64> = (1..=schema::SCHEMA_VERSION).collect();
    assert_eq!(versions, expected);
}

#[test]
fn fresh_db_is_migrated_and_reopening_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.db");
    assert!(!path.exists());
    let cat = Catalog::open(&path).unwrap();
    assert_eq!(cat.path(), path.as_path());
    cat.insert_snapshot(&snap(id(&[1]), "mail", Level::Full, 1000))
        .unwrap();
    drop(cat);

    assert!(path.exists());
    assert_eq!(pragma_i64(&path, "user_version"), schema::SCHEMA_VERSION);
    let conn = Connection::open(&path).unwrap();
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let mut tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    tables.sort();
    assert_eq!(
        tables,
        [
            "alerts",
            "api_tokens",
            "asset_register",
            "assets",
            "audit_log",
            "cartridges",
            "custody",
            "damaged_containers",
            "disposals",
            "drill_schedule",
            "drills",
            "gc_containers",
            "gc_marks",
            "gc_state",
            "immutable_objects",
            "jobs",
            "key_events",
            "legal_holds",
            "maintenance",
            "media_pools",
            "media_sets",
            "notify_state",
            "profiles",
            "recovery_codes",
            "remotes",
            "replicas",
            "replication_schedule",
            "replications",
            "rotation_carts",
            "rotation_sets",
            "rotation_state",
            "schedule_state",
            "snapshot_locks",
            "snapshots",
            "tape_objects",
            "tape_schedule",
            "transfer_manifests",
            "trusted_clock",
            "users",
            "verify_schedule"
        ]
    );
    drop(conn);

    // Reopening keeps the data and the version; migrations do not rerun
    // (they would fail with "table already exists").
    let cat = Catalog::open(&path).unwrap();
    assert_eq!(cat.snapshot_ids().unwrap(), HashSet::from([id(&[1])]));
    drop(cat);
    let cat = Catalog::open(&path).unwrap();
    assert_eq!(cat.snapshots(None).unwrap().len(), 1);
    assert_eq!(pragma_i64(&path, "user_version"), schema::SCHEMA_VERSION);
}

#[test]
fn foreign_keys_are_enforced() {
    let (_dir, cat) = fresh();
    let fk: i64 = cat
        .conn
        .pragma_query_value(None, "foreign_keys", |r| r.get(0))
        .unwrap();
    assert_eq!(fk, 1);
    let err = cat
        .conn
        .execute(
            "INSERT INTO snapshots (id, asset_id, level, started_ms, finished_ms, host, \
             identity, scope_json, files_read, bytes_read, files_unchanged, bytes_unchanged, \
             entries, chunks_new, bytes_new, bytes_stored, warnings) VALUES \
             ('00000000000000000000000000000001', 42, 'full', 0, 0, 'h', 'i', '{}', \
             0, 0, 0, 0, 0, 0, 0, 0, 0)",
            [],
        )
        .unwrap_err();
    assert!(err.to_string().contains("FOREIGN KEY"), "{err}");
}

#[test]
fn newer_schema_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.db");
    {
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
    }
    let err = Catalog::open(&path).unwrap_err();
    match &err {
        Error::NewerSchema {
            path: p,
            found,
            supported,
        } => {
            assert_eq!(p, &path);
            assert_eq!(*found, 99);
            assert_eq!(*supported, schema::SCHEMA_VERSION);
        }
        other => panic!("expected NewerSchema, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains("99"), "{msg}");
    assert!(msg.contains("upgrade Coffer"), "{msg}");
    // Nothing was created or changed.
    assert_eq!(pragma_i64(&path, "user_version"), 99);
    let conn = Connection::open(&path).unwrap();
    let tables: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
        .unwrap();
    assert_eq!(tables, 0);
}

#[test]
fn garbage_file_is_not_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.db");
    std::fs::write(&path, "this is not a database\n".repeat(300)).unwrap();
    let err = Catalog::open(&path).unwrap_err();
    assert!(
        matches!(&err, Error::NotADatabase { path: p } if p == &path),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains("not a SQLite database"), "{msg}");
    // The file is untouched.
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "this is not a database\n".repeat(300)
    );
}

#[test]
fn missing_directory_is_an_open_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-such-dir").join("catalog.db");
    let err = Catalog::open(&path).unwrap_err();
    assert!(
        matches!(&err, Error::Open { path: p, .. } if p == &path),
        "{err:?}"
    );
    assert!(err.to_string().contains(&path.display().to_string()));
}

#[test]
fn begin_and_finish_job_round_trip() {
    let (_dir, cat) = fresh();
    let job = new_job("anchor-1", 4242, 1_795_661_188_123);
    let jid = cat.begin_job(&job).unwrap();

    let running = cat.jobs(&JobFilter::default()).unwrap();
    assert_eq!(running.len(), 1);
    let r = &running[0];
    assert_eq!(r.id, jid);
    assert_eq!(r.kind, JobKind::Backup);
    assert_eq!(r.asset.as_deref(), Some("mail"));
    assert_eq!(r.level, Some(Level::Incremental));
    assert_eq!(r.scope, job.scope);
    assert_eq!(r.started, "2026-11-26T02:46:28.123Z");
    assert_eq!(r.ended, None);
    assert_eq!(r.status, JobStatus::Running);
    assert_eq!(r.stats, BackupStats::default());
    assert!(r.messages.is_empty());
    assert_eq!(r.identity, "operator");
    assert_eq!(r.host, "anchor-1");
    assert_eq!(r.snapshot, None);

    let messages = vec![
        "/var/mail/ü/ß.mbox: permission denied".to_string(),
        "line one\nline two\ttabbed \"quoted\" 日本語 ✓".to_string(),
        String::new(),
    ];
    let st = BackupStats {
        files_read: 10,
        bytes_read: 20,
        files_unchanged: 30,
        bytes_unchanged: 40,
        entries: 50,
        chunks_new: 60,
        bytes_new: 70,
        bytes_stored: 80,
        warnings: 2,
    };
    let sid = id(&[0xde, 0xad, 0xbe, 0xef]);
    cat.finish_job(
        jid,
        &JobEnd {
            status: JobStatus::Warning,
            stats: st,
            messages: &messages,
            snapshot: Some(sid),
            ended_ms: 1_795_661_190_000,
        },
    )
    .unwrap();

    let done = cat.jobs(&JobFilter::default()).unwrap();
    assert_eq!(done.len(), 1);
    let d = &done[0];
    assert_eq!(d.id, jid);
    assert_eq!(d.status, JobStatus::Warning);
    assert_eq!(d.stats, st);
    assert_eq!(d.messages, messages);
    assert_eq!(d.snapshot, Some(sid));
    assert_eq!(d.started, "2026-11-26T02:46:28.123Z");
    assert_eq!(d.ended.as_deref(), Some("2026-11-26T02:46:30.000Z"));
    assert_eq!(d.scope, job.scope);
    assert_eq!(d.identity, "operator");
}

#[test]
fn finish_unknown_job_is_job_not_found() {
    let (_dir, cat) = fresh();
    let err = cat
        .finish_job(
            77,
            &JobEnd {
                status: JobStatus::Success,
                stats: BackupStats::default(),
                messages: &[],
                snapshot: None,
                ended_ms: 0,
            },
        )
        .unwrap_err();
    assert!(matches!(err, Error::JobNotFound(77)), "{err:?}");
    assert_eq!(err.to_string(), "no job with id 77 in the catalog");
}

#[test]
fn stats_too_large_for_sqlite_are_refused() {
    let (_dir, cat) = fresh();
    let jid = cat.begin_job(&new_job("h", 1, 0)).unwrap();
    let err = cat
        .finish_job(
            jid,
            &JobEnd {
                status: JobStatus::Success,
                stats: BackupStats {
                    bytes_new: u64::MAX,
                    ..BackupStats::default()
                },
                messages: &[],
                snapshot: None,
                ended_ms: 1,
            },
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::TooLarge {
                field: "bytes_new",
                value: u64::MAX
            }
        ),
        "{err:?}"
    );
    // The job was not changed.
    assert_eq!(
        cat.jobs(&JobFilter::default()).unwrap()[0].status,
        JobStatus::Running
    );
}

#[test]
fn jobs_filter_and_order() {
    let (_dir, cat) = fresh();
    let a = cat.begin_job(&new_job("h", 1, 1000)).unwrap();
    let b = cat
        .begin_job(&NewJob {
            kind: JobKind::Restore,
            asset: Some("web".to_string()),
            level: None,
            ..new_job("h", 2, 3000)
        })
        .unwrap();
    let c = cat
        .begin_job(&NewJob {
            kind: JobKind::Verify,
            asset: None,
            level: None,
            ..new_job("h", 3, 2000)
        })
        .unwrap();
    let d = cat.begin_job(&new_job("h", 4, 3000)).unwrap();
    let ids = |f: &JobFilter| -> Vec<i64> { cat.jobs(f).unwrap().iter().map(|j| j.id).collect() };

    assert_eq!(ids(&JobFilter::default()), [d, b, c, a]);
    assert_eq!(
        ids(&JobFilter {
            limit: Some(2),
            ..JobFilter::default()
        }),
        [d, b]
    );
    assert_eq!(
        ids(&JobFilter {
            limit: Some(0),
            ..JobFilter::default()
        }),
        Vec::<i64>::new()
    );
    assert_eq!(
        ids(&JobFilter {
            asset: Some("mail".to_string()),
            ..JobFilter::default()
        }),
        [d, a]
    );
    assert_eq!(
        ids(&JobFilter {
            kind: Some(JobKind::Verify),
            ..JobFilter::default()
        }),
        [c]
    );
    assert_eq!(
        ids(&JobFilter {
            asset: Some("web".to_string()),
            kind: Some(JobKind::Backup),
            limit: None,
        }),
        Vec::<i64>::new()
    );
    let verify = &cat
        .jobs(&JobFilter {
            kind: Some(JobKind::Verify),
            ..JobFilter::default()
        })
        .unwrap()[0];
    assert_eq!(verify.asset, None);
    assert_eq!(verify.level, None);
}

#[test]
fn mark_interrupted_only_touches_dead_running_jobs_on_this_host() {
    let (_dir, cat) = fresh();
    let dead_here = cat.begin_job(&new_job("here", 100, 1000)).unwrap();
    let alive_here = cat.begin_job(&new_job("here", 200, 1001)).unwrap();
    let dead_elsewhere = cat.begin_job(&new_job("there", 100, 1002)).unwrap();
    let finished_dead = cat.begin_job(&new_job("here", 300, 1003)).unwrap();
    let finished_messages = vec!["done".to_string()];
    cat.finish_job(
        finished_dead,
        &JobEnd {
            status: JobStatus::Success,
            stats: stats(0),
            messages: &finished_messages,
            snapshot: None,
            ended_ms: 1500,
        },
    )
    .unwrap();

    let n = cat
        .mark_interrupted(|pid| pid == 200, "here", 1_795_661_188_123)
        .unwrap();
    assert_eq!(n, 1);

    let all = cat.jobs(&JobFilter::default()).unwrap();
    let get = |id: i64| all.iter().find(|j| j.id == id).unwrap().clone();
    let j = get(dead_here);
    assert_eq!(j.status, JobStatus::Interrupted);
    assert_eq!(j.ended.as_deref(), Some("2026-11-26T02:46:28.123Z"));
    assert_eq!(j.messages, [INTERRUPTED_MESSAGE]);
    assert_eq!(
        INTERRUPTED_MESSAGE,
        "interrupted: the process ended before the job finished"
    );

    let j = get(alive_here);
    assert_eq!(j.status, JobStatus::Running);
    assert_eq!(j.ended, None);
    let j = get(dead_elsewhere);
    assert_eq!(j.status, JobStatus::Running);
    assert_eq!(j.ended, None);
    let j = get(finished_dead);
    assert_eq!(j.status, JobStatus::Success);
    assert_eq!(j.messages, finished_messages);
    assert_eq!(j.ended.as_deref(), Some(rfc3339_ms(1500).as_str()));

    // Running it again with the same processes finds nothing more to do.
    assert_eq!(
        cat.mark_interrupted(|pid| pid == 200, "here", 2000)
            .unwrap(),
        0
    );
    // Once pid 200 is gone too, its job is marked, and only that one.
    assert_eq!(cat.mark_interrupted(|_| false, "here", 2500).unwrap(), 1);
    let all = cat.jobs(&JobFilter::default()).unwrap();
    let get = |id: i64| all.iter().find(|j| j.id == id).unwrap().clone();
    assert_eq!(get(alive_here).status, JobStatus::Interrupted);
    assert_eq!(
        get(alive_here).ended.as_deref(),
        Some(rfc3339_ms(2500).as_str())
    );
    assert_eq!(
        get(dead_here).ended.as_deref(),
        Some("2026-11-26T02:46:28.123Z")
    );
    assert_eq!(get(dead_elsewhere).status, JobStatus::Running);
    assert_eq!(cat.mark_interrupted(|_| false, "here", 3000).unwrap(), 0);
}

#[test]
fn snapshots_insert_is_idempotent_ordered_and_filtered() {
    let (_dir, cat) = fresh();
    let mut s1 = snap(id(&[3]), "mail", Level::Full, 1000);
    s1.reference = None;
    let mut s2 = snap(id(&[2]), "mail", Level::Incremental, 2000);
    s2.reference = Some(s1.id);
    s2.stats.warnings = 3;
    let s3 = snap(id(&[1]), "web", Level::Full, 1500);
    // Same start as s2: ordered by id, so s4 (id 0x00..) comes first.
    let s4 = snap(id(&[0]), "web", Level::Differential, 2000);

    for s in [&s2, &s1, &s4, &s3] {
        cat.insert_snapshot(s).unwrap();
    }
    // Re-inserting, even with changed contents, is a no-op.
    let mut changed = s1.clone();
    changed.host = "other".to_string();
    cat.insert_snapshot(&changed).unwrap();
    cat.insert_snapshot(&s1).unwrap();

    let all = cat.snapshots(None).unwrap();
    assert_eq!(all, vec![s1.clone(), s3.clone(), s4.clone(), s2.clone()]);
    assert_eq!(all[0].time, rfc3339_ms(1000));
    assert_eq!(all[3].reference, Some(s1.id));
    assert_eq!(all[3].stats.warnings, 3);

    assert_eq!(cat.snapshots(Some("mail")).unwrap(), vec![s1.clone(), s2]);
    assert_eq!(cat.snapshots(Some("web")).unwrap(), vec![s3, s4]);
    assert_eq!(cat.snapshots(Some("nope")).unwrap(), vec![]);
    assert_eq!(
        cat.snapshot_ids().unwrap(),
        HashSet::from([id(&[0]), id(&[1]), id(&[2]), id(&[3])])
    );
}

#[test]
fn latest_snapshot_respects_levels() {
    let (_dir, cat) = fresh();
    let full1 = snap(id(&[1]), "mail", Level::Full, 1000);
    let incr = snap(id(&[2]), "mail", Level::Incremental, 2000);
    let full2 = snap(id(&[3]), "mail", Level::Full, 3000);
    let diff = snap(id(&[4]), "mail", Level::Differential, 4000);
    let incr2 = snap(id(&[5]), "mail", Level::Incremental, 5000);
    let other = snap(id(&[6]), "web", Level::Full, 9000);
    for s in [&full1, &incr, &full2, &diff, &incr2, &other] {
        cat.insert_snapshot(s).unwrap();
    }
    let all = [Level::Full, Level::Incremental, Level::Differential];
    assert_eq!(cat.latest_snapshot("mail", &all).unwrap(), Some(incr2));
    assert_eq!(
        cat.latest_snapshot("mail", &[Level::Full]).unwrap(),
        Some(full2.clone())
    );
    assert_eq!(
        cat.latest_snapshot("mail", &[Level::Full, Level::Differential])
            .unwrap(),
        Some(diff)
    );
    assert_eq!(
        cat.latest_snapshot("web", &[Level::Incremental]).unwrap(),
        None
    );
    assert_eq!(cat.latest_snapshot("web", &all).unwrap(), Some(other));
    assert_eq!(cat.latest_snapshot("nope", &all).unwrap(), None);
    assert_eq!(cat.latest_snapshot("mail", &[]).unwrap(), None);
}

#[test]
fn resolve_snapshot_by_id_prefix_and_latest() {
    let (_dir, cat) = fresh();
    assert!(matches!(
        cat.resolve_snapshot("latest").unwrap_err(),
        Error::SnapshotNotFound(s) if s == "latest"
    ));

    let a = snap(id(&[0xab, 0xcd, 0x01]), "mail", Level::Full, 1000);
    let b = snap(id(&[0xab, 0xcd, 0x02]), "mail", Level::Incremental, 3000);
    let c = snap(id(&[0x12, 0x34]), "web", Level::Full, 2000);
    for s in [&a, &b, &c] {
        cat.insert_snapshot(s).unwrap();
    }

    // Full id.
    assert_eq!(cat.resolve_snapshot(&a.id.to_hex()).unwrap(), a);
    assert_eq!(
        cat.resolve_snapshot(&b.id.to_hex().to_uppercase()).unwrap(),
        b
    );
    // Unique prefixes.
    assert_eq!(cat.resolve_snapshot("abcd01").unwrap(), a);
    assert_eq!(cat.resolve_snapshot("1234").unwrap(), c);
    assert_eq!(cat.resolve_snapshot(&c.id.short()).unwrap(), c);
    // Ambiguous.
    let err = cat.resolve_snapshot("abcd").unwrap_err();
    match &err {
        Error::AmbiguousSnapshot { prefix, count } => {
            assert_eq!(prefix, "abcd");
            assert_eq!(*count, 2);
        }
        other => panic!("expected AmbiguousSnapshot, got {other:?}"),
    }
    assert!(err.to_string().contains("matches 2 snapshots"));
    // Unknown.
    assert!(matches!(
        cat.resolve_snapshot("ffff").unwrap_err(),
        Error::SnapshotNotFound(s) if s == "ffff"
    ));
    assert!(matches!(
        cat.resolve_snapshot(&"f".repeat(32)).unwrap_err(),
        Error::SnapshotNotFound(_)
    ));
    // Latest of all assets.
    assert_eq!(cat.resolve_snapshot("latest").unwrap(), b);
    // Too short, not hex, too long.
    for (input, reason) in [
        ("abc", "at least 4"),
        ("", "hex digits"),
        ("abcz", "hex digits"),
        ("ab*d", "hex digits"),
        ("Latest", "hex digits"),
    ] {
        match cat.resolve_snapshot(input).unwrap_err() {
            Error::InvalidSnapshotRef {
                input: i,
                reason: r,
            } => {
                assert_eq!(i, input);
                assert!(r.contains(reason), "{input}: {r}");
            }
            other => panic!("{input}: expected InvalidSnapshotRef, got {other:?}"),
        }
    }
    let long = format!("{}0", a.id.to_hex());
    assert!(matches!(
        cat.resolve_snapshot(&long).unwrap_err(),
        Error::InvalidSnapshotRef { reason, .. } if reason.contains("32")
    ));
}

#[test]
fn assets_count_snapshots() {
    let (_dir, cat) = fresh();
    assert_eq!(cat.assets().unwrap(), vec![]);
    cat.insert_snapshot(&snap(id(&[1]), "web", Level::Full, 1000))
        .unwrap();
    cat.insert_snapshot(&snap(id(&[2]), "mail", Level::Full, 2000))
        .unwrap();
    cat.insert_snapshot(&snap(id(&[3]), "mail", Level::Incremental, 4000))
        .unwrap();
    cat.insert_snapshot(&snap(id(&[4]), "mail", Level::Incremental, 3000))
        .unwrap();
    cat.insert_snapshot(&snap(id(&[4]), "mail", Level::Incremental, 3000))
        .unwrap();
    assert_eq!(
        cat.assets().unwrap(),
        vec![
            AssetRow {
                name: "mail".to_string(),
                snapshots: 3,
                last_backup_ms: Some(4000),
            },
            AssetRow {
                name: "web".to_string(),
                snapshots: 1,
                last_backup_ms: Some(1000),
            },
        ]
    );
}

#[test]
fn replace_snapshots_rebuilds_and_reconstructs_jobs_once() {
    let (_dir, mut cat) = fresh();
    let old = snap(id(&[9]), "gone", Level::Full, 500);
    let kept = snap(id(&[1]), "mail", Level::Full, 1000);
    cat.insert_snapshot(&old).unwrap();
    cat.insert_snapshot(&kept).unwrap();

    // A real backup job already points at `kept`.
    let jid = cat.begin_job(&new_job("anchor-1", 7, 1000)).unwrap();
    cat.finish_job(
        jid,
        &JobEnd {
            status: JobStatus::Success,
            stats: kept.stats,
            messages: &[],
            snapshot: Some(kept.id),
            ended_ms: 1500,
        },
    )
    .unwrap();
    // A restore job reading `fresh1` does not count as its backup job.
    let rid = cat
        .begin_job(&NewJob {
            kind: JobKind::Restore,
            level: None,
            ..new_job("anchor-1", 8, 6000)
        })
        .unwrap();

    let fresh1 = snap(id(&[2]), "mail", Level::Incremental, 2000);
    cat.finish_job(
        rid,
        &JobEnd {
            status: JobStatus::Success,
            stats: BackupStats::default(),
            messages: &[],
            snapshot: Some(fresh1.id),
            ended_ms: 6100,
        },
    )
    .unwrap();
    let mut fresh2 = snap(id(&[3]), "files", Level::Full, 3000);
    fresh2.stats.warnings = 4;
    fresh2.reference = Some(kept.id);

    let input = vec![kept.clone(), fresh1.clone(), fresh2.clone(), fresh1.clone()];
    cat.replace_snapshots(&input, true).unwrap();

    assert_eq!(
        cat.snapshots(None).unwrap(),
        vec![kept.clone(), fresh1.clone(), fresh2.clone()]
    );
    assert_eq!(
        cat.assets()
            .unwrap()
            .iter()
            .map(|a| (a.name.as_str(), a.snapshots))
            .collect::<Vec<_>>(),
        [("files", 1), ("mail", 2)]
    );

    let backups = cat
        .jobs(&JobFilter {
            kind: Some(JobKind::Backup),
            ..JobFilter::default()
        })
        .unwrap();
    assert_eq!(backups.len(), 3, "{backups:#?}");
    // Newest first: fresh2 (3000), fresh1 (2000), the real job (1000).
    let j2 = &backups[0];
    assert_eq!(j2.snapshot, Some(fresh2.id));
    assert_eq!(j2.status, JobStatus::Warning);
    assert_eq!(j2.asset.as_deref(), Some("files"));
    assert_eq!(j2.level, Some(Level::Full));
    assert_eq!(j2.scope, fresh2.scope);
    assert_eq!(j2.stats, fresh2.stats);
    assert_eq!(j2.started, rfc3339_ms(3000));
    assert_eq!(j2.ended.as_deref(), Some(rfc3339_ms(3500).as_str()));
    assert_eq!(j2.identity, "root");
    assert_eq!(j2.host, "anchor-1");
    assert_eq!(j2.messages, [RECONSTRUCTED_MESSAGE]);
    assert_eq!(
        RECONSTRUCTED_MESSAGE,
        "reconstructed from the store by catalog rebuild"
    );
    let j1 = &backups[1];
    assert_eq!(j1.snapshot, Some(fresh1.id));
    assert_eq!(j1.status, JobStatus::Success);
    assert_eq!(j1.level, Some(Level::Incremental));
    assert_eq!(j1.messages, [RECONSTRUCTED_MESSAGE]);
    let real = &backups[2];
    assert_eq!(real.id, jid);
    assert_eq!(real.snapshot, Some(kept.id));
    assert!(real.messages.is_empty());
    // The restore job is still there.
    assert_eq!(cat.jobs(&JobFilter::default()).unwrap().len(), 4);

    // Rebuilding again adds no job rows; without backup_jobs none either.
    cat.replace_snapshots(&input, true).unwrap();
    cat.replace_snapshots(&[fresh2.clone()], false).unwrap();
    assert_eq!(cat.jobs(&JobFilter::default()).unwrap().len(), 4);
    assert_eq!(cat.snapshots(None).unwrap(), vec![fresh2.clone()]);
    assert_eq!(
        cat.assets().unwrap(),
        vec![AssetRow {
            name: "files".to_string(),
            snapshots: 1,
            last_backup_ms: Some(3000),
        }]
    );

    // An empty rebuild leaves no snapshots and no assets, but keeps the log.
    cat.replace_snapshots(&[], true).unwrap();
    assert_eq!(cat.snapshots(None).unwrap(), vec![]);
    assert_eq!(cat.assets().unwrap(), vec![]);
    assert_eq!(cat.jobs(&JobFilter::default()).unwrap().len(), 4);
}

#[test]
fn replace_snapshots_rolls_back_on_failure() {
    let (_dir, mut cat) = fresh();
    let kept = snap(id(&[1]), "mail", Level::Full, 1000);
    cat.insert_snapshot(&kept).unwrap();
    let mut bad = snap(id(&[2]), "mail", Level::Full, 2000);
    bad.stats.bytes_read = u64::MAX;
    let err = cat
        .replace_snapshots(&[snap(id(&[3]), "web", Level::Full, 1500), bad], true)
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::TooLarge {
                field: "bytes_read",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(cat.snapshots(None).unwrap(), vec![kept]);
    assert_eq!(cat.jobs(&JobFilter::default()).unwrap(), vec![]);
}

#[test]
fn corrupt_rows_are_reported_with_the_path() {
    let (dir, cat) = fresh();
    cat.insert_snapshot(&snap(id(&[1]), "mail", Level::Full, 1000))
        .unwrap();
    cat.conn
        .execute("UPDATE snapshots SET scope_json = 'nope'", [])
        .unwrap();
    let err = cat.snapshots(None).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&dir.path().display().to_string()), "{msg}");
    assert!(msg.contains(&id(&[1]).to_hex()), "{msg}");
    assert!(msg.contains("scope_json"), "{msg}");
}

#[test]
fn damaged_containers_are_replaced_as_a_set() {
    use coffer_types::ContainerId;
    let dir = tempfile::tempdir().unwrap();
    let cat = Catalog::open(&dir.path().join("c.db")).unwrap();
    assert!(cat.damaged_containers().unwrap().is_empty());
    let a = (ContainerId([1; 16]), "hash mismatch".to_string());
    let b = (ContainerId([2; 16]), "missing".to_string());
    cat.replace_damaged_containers(&[a.clone(), b.clone()], 10)
        .unwrap();
    assert_eq!(cat.damaged_containers().unwrap(), vec![a.clone(), b]);
    cat.replace_damaged_containers(std::slice::from_ref(&a), 20)
        .unwrap();
    assert_eq!(cat.damaged_containers().unwrap(), vec![a]);
    cat.replace_damaged_containers(&[], 30).unwrap();
    assert!(cat.damaged_containers().unwrap().is_empty());
}

#[test]
fn a_version_2_catalog_keeps_its_job_log_and_learns_tape_job_kinds() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.db");
    {
        // Build a version-2 catalog by hand, with a job row in it.
        let mut conn = Connection::open(&path).unwrap();
        let tx = conn.transaction().unwrap();
        for (_, sql) in &schema::MIGRATIONS[..2] {
            tx.execute_batch(sql).unwrap();
        }
        tx.pragma_update(None, "user_version", 2).unwrap();
        tx.commit().unwrap();
        conn.execute(
            "INSERT INTO jobs (kind, scope_json, started_ms, status, identity, host, pid) \
             VALUES ('backup', '{\"paths\":[\"/\"],\"excludes\":[],\"one_file_system\":false}', 5, 'success', 'ops', 'h', 1)",
            [],
        )
        .unwrap();
        assert!(
            conn.execute(
                "INSERT INTO jobs (kind, scope_json, started_ms, status, identity, host, pid) \
                 VALUES ('media-write', '{}', 6, 'success', 'ops', 'h', 1)",
                [],
            )
            .is_err(),
            "version 2 does not know tape jobs"
        );
    }
    let cat = Catalog::open(&path).unwrap();
    let jobs = cat.jobs(&JobFilter::default()).unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].kind, JobKind::Backup);
    let mut j = new_job("h", 1, 7);
    j.kind = JobKind::MediaWrite;
    let id = cat.begin_job(&j).unwrap();
    assert_eq!(
        cat.jobs(&JobFilter::default())
            .unwrap()
            .iter()
            .filter(|r| r.id == id)
            .count(),
        1
    );
}

#[test]
fn cartridges_sets_and_tape_objects_round_trip() {
    use coffer_types::{
        Cartridge, CartridgeStatus, MediaId, MediaSetId, MediaSetInfo, StoreId, TapeObject,
    };
    let (_dir, cat) = fresh();
    let set = MediaSetInfo {
        id: MediaSetId([0xab; 16]),
        pool: "default".into(),
        created_ms: 10,
        store: StoreId([1; 16]),
        key_fingerprint: Some("00ff".into()),
        wrapped_key: Some(vec![9; 60]),
        escrowed: false,
        shredded_ms: None,
    };
    cat.insert_media_set(&set).unwrap();
    assert!(cat.insert_media_set(&set).is_err(), "a set id is unique");
    assert_eq!(cat.media_set("abab").unwrap(), set);
    // Only an escrowed key is shredded, once.
    let cert = crate::NewDisposal {
        at_ms: 20,
        what: "media set cd".into(),
        keys: vec!["media set cd key 00ff".into()],
        objects: 0,
        bytes: 0,
        policy: None,
        identity: "test".into(),
        detail: "crypto-shredding".into(),
    };
    assert_eq!(cat.shred_media_set(&set.id, 20, &cert).unwrap(), None);
    assert!(
        cat.disposals().unwrap().is_empty(),
        "no certificate without a shredding"
    );
    let escrowed = MediaSetInfo {
        id: MediaSetId([0x5e; 16]),
        escrowed: true,
        ..set.clone()
    };
    cat.insert_media_set(&escrowed).unwrap();
    let n = cat
        .shred_media_set(&escrowed.id, 20, &cert)
        .unwrap()
        .unwrap();
    assert_eq!(cat.shred_media_set(&escrowed.id, 30, &cert).unwrap(), None);
    let filed = cat.disposals().unwrap();
    assert_eq!(filed.len(), 1, "one certificate, filed with the shredding");
    assert_eq!(filed[0].id, n);
    let shredded = cat.media_set("5e5e").unwrap();
    assert_eq!(shredded.wrapped_key, None);
    assert_eq!(shredded.shredded_ms, Some(20));
    assert_eq!(shredded.key_fingerprint, set.key_fingerprint);
    assert!(matches!(
        cat.media_set("cd"),
        Err(Error::MediaSetNotFound(_))
    ));
    let mut c = Cartridge {
        barcode: "CF0001L9".into(),
        media: MediaId([2; 16]),
        pool: "default".into(),
        labelled_ms: 11,
        worm: false,
        set: None,
        status: CartridgeStatus::Labelled,
        files: 1,
        end_of_data: 2,
        bytes: 0,
        written_ms: None,
    };
    cat.put_cartridge(&c).unwrap();
    assert_eq!(cat.cartridge("CF0001L9").unwrap(), Some(c.clone()));
    assert_eq!(cat.cartridge("NOPE").unwrap(), None);
    c.set = Some((set.id, 1));
    c.status = CartridgeStatus::Full;
    let objs = vec![TapeObject {
        key: "data/ab/abab".into(),
        len: 100,
        barcode: c.barcode.clone(),
        seq: 1,
        file: 2,
        file_start: 4,
        block: 9,
        offset: 77,
    }];
    cat.record_tape_write(&c, &objs).unwrap();
    assert_eq!(cat.set_cartridges(&set.id).unwrap(), vec![c.clone()]);
    assert_eq!(cat.tape_objects(&set.id).unwrap(), objs);
    assert_eq!(cat.cartridges().unwrap().len(), 1);
    // Two cartridges cannot claim one sequence number of a set.
    let mut other = c.clone();
    other.barcode = "CF0002L9".into();
    other.media = MediaId([3; 16]);
    assert!(cat.record_tape_write(&other, &[]).is_err());
}

#[test]
fn locks_holds_and_certificates_are_guarded_by_the_schema() {
    let dir = tempfile::tempdir().unwrap();
    let cat = Catalog::open(&dir.path().join("catalog.db")).unwrap();
    let s = snap(id(&[7]), "web", Level::Full, 1_000);
    cat.insert_snapshot(&s).unwrap();
    cat.set_lock(&s.id, 50_000, "officer", 2_000, "audit")
        .unwrap();
    let e = cat.set_lock(&s.id, 40_000, "admin", 3_000, "").unwrap_err();
    assert!(matches!(e, Error::Refused(_)), "{e}");
    // Even past the code, the schema refuses.
    let e = cat
        .conn
        .execute("UPDATE snapshot_locks SET until_ms = 1", [])
        .unwrap_err();
    assert!(e.to_string().contains("never shortened"), "{e}");
    let e = cat
        .conn
        .execute("DELETE FROM snapshot_locks", [])
        .unwrap_err();
    assert!(e.to_string().contains("cannot be removed"), "{e}");
    assert!(cat.locks(None, 49_999).unwrap()[0].active);
    assert!(!cat.locks(None, 50_000).unwrap()[0].active);
    let e = cat.delete_unprotected_snapshot(&s.id, 10_000).unwrap_err();
    assert!(e.to_string().contains("retention-locked until"), "{e}");

    let h = cat
        .set_hold(Some(&s.id), None, "case 7", "officer", 2_000)
        .unwrap();
    let e = cat.conn.execute("DELETE FROM legal_holds", []).unwrap_err();
    assert!(e.to_string().contains("never removed"), "{e}");
    let e = cat.delete_unprotected_snapshot(&s.id, 60_000).unwrap_err();
    assert!(e.to_string().contains("legal hold"), "{e}");
    cat.release_hold(h, "officer", 3_000).unwrap();
    assert!(cat.delete_unprotected_snapshot(&s.id, 60_000).unwrap());

    let d = crate::NewDisposal {
        at_ms: 5_000,
        what: "data key generation 2".into(),
        keys: vec!["gen 2 ab12".into()],
        objects: 3,
        bytes: 300,
        policy: Some("retention".into()),
        identity: "system".into(),
        detail: "key destroyed, containers deleted".into(),
    };
    cat.record_disposal(&d).unwrap();
    let got = cat.disposals().unwrap();
    assert_eq!(got[0].digest, crate::disposal_digest(&d));
    assert_eq!(got[0].keys, d.keys);
    for sql in ["UPDATE disposals SET what = 'x'", "DELETE FROM disposals"] {
        let e = cat.conn.execute(sql, []).unwrap_err();
        assert!(e.to_string().contains("append-only"), "{e}");
    }
}

#[test]
fn a_drill_row_is_evidence_the_database_itself_protects() {
    let (_dir, cat) = fresh();
    let d = crate::NewDrill {
        job: None,
        asset: "web".into(),
        snapshot: "ab".repeat(16),
        source: "disk".into(),
        copy: String::new(),
        identity: "admin".into(),
        started_ms: 5,
        rto_ms: Some(60_000),
    };
    let id = cat.begin_drill(&d).unwrap();
    let sql = |q: &str| cat.conn.execute(q, []);
    // While it runs: what, by whom, when and against which RTO are fixed.
    for q in [
        "UPDATE drills SET asset = 'other'",
        "UPDATE drills SET identity = 'mallory'",
        "UPDATE drills SET started_ms = 1",
        "UPDATE drills SET rto_ms = 999999999",
    ] {
        let e = sql(q).unwrap_err().to_string();
        assert!(e.contains("never changed"), "{q}: {e}");
    }
    // A row cannot be born finished.
    let e = sql(
        "INSERT INTO drills (asset, snapshot, source, copy, identity, started_ms, result) \
         VALUES ('web', 'x', 'disk', '', 'admin', 1, 'pass')",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("recorded running"), "{e}");
    cat.finish_drill(
        id,
        &crate::DrillEnd {
            ended_ms: 9,
            duration_ms: 4,
            copy: "store x".into(),
            files: 2,
            bytes: 20,
            pass: false,
            reason: "took too long".into(),
            isolation: "private mount namespace".into(),
        },
    )
    .unwrap();
    // Finished: nothing changes, nothing goes.
    for q in [
        "UPDATE drills SET result = 'pass'",
        "UPDATE drills SET reason = ''",
        "DELETE FROM drills",
    ] {
        let e = sql(q).unwrap_err().to_string();
        assert!(e.contains("evidence"), "{q}: {e}");
    }
    let row = cat.drill(id).unwrap().unwrap();
    assert_eq!(row.result, "fail");
    assert_eq!(row.reason, "took too long");
    assert_eq!(row.isolation, "private mount namespace");
}

#[test]
fn a_version_15_catalog_keeps_its_drills_and_their_guards_and_learns_remote_drills() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.db");
    {
        let mut conn = Connection::open(&path).unwrap();
        let tx = conn.transaction().unwrap();
        for (_, sql) in &schema::MIGRATIONS[..15] {
            tx.execute_batch(sql).unwrap();
        }
        tx.pragma_update(None, "user_version", 15).unwrap();
        tx.commit().unwrap();
        conn.execute(
            "INSERT INTO drills (asset, snapshot, source, copy, identity, started_ms, result) \
             VALUES ('web', 'ab', 'tape', '', 'admin', 1, 'running')",
            [],
        )
        .unwrap();
        conn.execute(
            "UPDATE drills SET result = 'pass', reason = 'fine', ended_ms = 5",
            [],
        )
        .unwrap();
        assert!(
            conn.execute(
                "INSERT INTO drills (asset, snapshot, source, copy, identity, started_ms, result) \
                 VALUES ('web', 'ab', 'remote', '', 'admin', 1, 'running')",
                [],
            )
            .is_err(),
            "version 15 knows no remote drills"
        );
    }
    let cat = Catalog::open(&path).unwrap();
    let old = cat.drills(None).unwrap();
    assert_eq!(old.len(), 1);
    assert_eq!(
        (old[0].source.as_str(), old[0].result.as_str()),
        ("tape", "pass")
    );
    assert_eq!(old[0].isolation, "");
    // The guards came through the rebuild.
    let sql = |q: &str| cat.conn.execute(q, []);
    assert!(
        sql("UPDATE drills SET result = 'fail'")
            .unwrap_err()
            .to_string()
            .contains("evidence")
    );
    assert!(
        sql("DELETE FROM drills")
            .unwrap_err()
            .to_string()
            .contains("evidence")
    );
    let id = cat
        .begin_drill(&crate::NewDrill {
            job: None,
            asset: "web".into(),
            snapshot: "cd".into(),
            source: "remote".into(),
            copy: String::new(),
            identity: "admin".into(),
            started_ms: 10,
            rto_ms: None,
        })
        .unwrap();
    assert!(id > old[0].id);
    assert!(
        sql("UPDATE drills SET identity = 'x' WHERE source = 'remote'")
            .unwrap_err()
            .to_string()
            .contains("never changed")
    );
}
