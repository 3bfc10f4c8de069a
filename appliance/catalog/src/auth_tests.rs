//! Unit tests of the users, recovery codes, API tokens and audit log tables.

use coffer_types::api::{AuditFilter, Role, Source};
use rusqlite::Connection;
use tempfile::TempDir;

use crate::{ApiTokenRow, AuditRow, Catalog, Error, FailedLogin, NewAuditRecord, NewUser};

fn fresh() -> (TempDir, Catalog) {
    let dir = tempfile::tempdir().unwrap();
    let cat = Catalog::open(&dir.path().join("catalog.db")).unwrap();
    (dir, cat)
}

fn hash(n: u8) -> [u8; 32] {
    [n; 32]
}

fn add_user(cat: &Catalog, name: &str, roles: &[Role]) {
    cat.insert_user(&NewUser {
        name,
        password_phc: "$argon2id$fake",
        roles,
        totp_secret: &[7; 20],
        recovery_hashes: &[hash(1), hash(2), hash(3)],
        created_ms: 1_000,
    })
    .unwrap();
}

fn token(id: &str, user: &str, created_ms: i64) -> ApiTokenRow {
    ApiTokenRow {
        id: id.to_string(),
        user: user.to_string(),
        name: format!("{id} for {user}"),
        secret_hash: hash(9),
        roles: vec![Role::Auditor],
        created_ms,
        expires_ms: Some(created_ms + 86_400_000),
        last_used_ms: None,
        revoked_ms: None,
    }
}

/// A stand-in for coffer-auth's chain hash: depends on every input.
fn toy_chain(prev: &[u8; 32], rec: &NewAuditRecord, seq: i64) -> [u8; 32] {
    let mut out = *prev;
    let text = format!(
        "{seq}|{}|{}|{}|{}|{}|{}|{}",
        rec.time_ms,
        rec.identity,
        rec.source.as_str(),
        rec.action,
        rec.target,
        rec.result,
        rec.detail
    );
    for (i, b) in text.bytes().enumerate() {
        let slot = &mut out[i % 32];
        *slot = slot.rotate_left(3) ^ b;
    }
    out
}

fn record(time_ms: i64, identity: &str, action: &str) -> NewAuditRecord {
    NewAuditRecord {
        time_ms,
        identity: identity.to_string(),
        source: Source::Console,
        action: action.to_string(),
        target: "web-01".to_string(),
        result: "ok".to_string(),
        detail: String::new(),
    }
}

#[test]
fn users_are_created_read_listed_and_counted() {
    let (_dir, cat) = fresh();
    assert_eq!(cat.count_users().unwrap(), 0);
    assert!(cat.user("alice").unwrap().is_none());
    add_user(&cat, "bob", &[Role::BackupOperator]);
    add_user(&cat, "alice", &[Role::Administrator, Role::Auditor]);
    assert_eq!(cat.count_users().unwrap(), 2);

    let alice = cat.user("alice").unwrap().unwrap();
    assert_eq!(alice.roles, vec![Role::Administrator, Role::Auditor]);
    assert_eq!(alice.password_phc, "$argon2id$fake");
    assert_eq!(alice.totp_secret.as_slice(), &[7; 20]);
    assert!(!alice.totp_confirmed);
    assert_eq!(alice.last_totp_step, 0);
    assert_eq!(alice.failed_logins, 0);
    assert_eq!(alice.locked_until_ms, None);
    assert_eq!(alice.created_ms, 1_000);
    assert_eq!(alice.last_login_ms, None);
    // Debug never shows the secrets.
    let dbg = format!("{alice:?}");
    assert!(dbg.contains("<redacted>") && !dbg.contains("argon2id"));

    let names: Vec<_> = cat.users().unwrap().into_iter().map(|u| u.name).collect();
    assert_eq!(names, ["alice", "bob"]);
    assert_eq!(cat.unused_recovery_codes("alice").unwrap(), 3);
}

#[test]
fn a_taken_name_is_refused_and_the_first_user_is_created_once() {
    let (_dir, cat) = fresh();
    let first = NewUser {
        name: "root",
        password_phc: "x",
        roles: &[Role::Administrator],
        totp_secret: &[1; 20],
        recovery_hashes: &[],
        created_ms: 5,
    };
    assert!(cat.insert_first_user(&first).unwrap());
    let second = NewUser {
        name: "other",
        ..first.clone()
    };
    assert!(!cat.insert_first_user(&second).unwrap());
    assert!(cat.user("other").unwrap().is_none());
    match cat.insert_user(&first) {
        Err(Error::UserExists(n)) => assert_eq!(n, "root"),
        other => panic!("expected UserExists, got {other:?}"),
    }
}

#[test]
fn user_updates_change_one_thing_and_name_a_missing_user() {
    let (_dir, cat) = fresh();
    add_user(&cat, "alice", &[Role::Auditor]);
    cat.set_user_password("alice", "new-phc").unwrap();
    cat.set_user_roles("alice", &[Role::RestoreOperator, Role::Auditor])
        .unwrap();
    cat.confirm_user_totp("alice").unwrap();
    cat.record_login("alice", 9_000).unwrap();
    let u = cat.user("alice").unwrap().unwrap();
    assert_eq!(u.password_phc, "new-phc");
    assert_eq!(u.roles, vec![Role::RestoreOperator, Role::Auditor]);
    assert!(u.totp_confirmed);
    assert_eq!(u.last_login_ms, Some(9_000));

    for result in [
        cat.set_user_password("nobody", "x"),
        cat.set_user_roles("nobody", &[]),
        cat.confirm_user_totp("nobody"),
        cat.record_login("nobody", 1),
        cat.unlock_user("nobody"),
        cat.replace_recovery_codes("nobody", &[]),
        cat.reset_user_mfa("nobody", &[1], &[]),
    ] {
        match result {
            Err(Error::UserNotFound(n)) => assert_eq!(n, "nobody"),
            other => panic!("expected UserNotFound, got {other:?}"),
        }
    }
    assert!(matches!(
        cat.record_failed_login("nobody", 1, 5, 2),
        Err(Error::UserNotFound(_))
    ));
}

#[test]
fn totp_steps_only_move_forward() {
    let (_dir, cat) = fresh();
    add_user(&cat, "alice", &[Role::Auditor]);
    assert!(cat.advance_totp_step("alice", 100).unwrap());
    assert!(
        !cat.advance_totp_step("alice", 100).unwrap(),
        "same step twice"
    );
    assert!(!cat.advance_totp_step("alice", 99).unwrap(), "older step");
    assert!(cat.advance_totp_step("alice", 101).unwrap());
    assert_eq!(cat.user("alice").unwrap().unwrap().last_totp_step, 101);
    assert!(!cat.advance_totp_step("nobody", 5).unwrap());
}

#[test]
fn failed_logins_lock_at_the_threshold_and_count_again_after_the_lock_ends() {
    let (_dir, cat) = fresh();
    add_user(&cat, "alice", &[Role::Auditor]);
    for i in 1..=4u32 {
        let f = cat.record_failed_login("alice", 10, 5, 910).unwrap();
        assert_eq!(
            f,
            FailedLogin {
                failed_logins: i,
                locked_until_ms: None
            }
        );
    }
    let f = cat.record_failed_login("alice", 10, 5, 910).unwrap();
    assert_eq!(f.failed_logins, 5);
    assert_eq!(f.locked_until_ms, Some(910));
    // While locked, the lock's end does not move.
    let f = cat.record_failed_login("alice", 20, 5, 5_000).unwrap();
    assert_eq!(f.locked_until_ms, Some(910));
    // After it ends, counting starts over.
    let f = cat.record_failed_login("alice", 910, 5, 9_999).unwrap();
    assert_eq!(
        f,
        FailedLogin {
            failed_logins: 1,
            locked_until_ms: None
        }
    );
    cat.record_failed_login("alice", 911, 5, 9_999).unwrap();
    cat.record_login("alice", 912).unwrap();
    let u = cat.user("alice").unwrap().unwrap();
    assert_eq!((u.failed_logins, u.locked_until_ms), (0, None));

    for _ in 0..5 {
        cat.record_failed_login("alice", 1_000, 5, 2_000).unwrap();
    }
    assert_eq!(
        cat.user("alice").unwrap().unwrap().locked_until_ms,
        Some(2_000)
    );
    cat.unlock_user("alice").unwrap();
    let u = cat.user("alice").unwrap().unwrap();
    assert_eq!((u.failed_logins, u.locked_until_ms), (0, None));
}

#[test]
fn recovery_codes_are_single_use_and_replaced_as_a_set() {
    let (_dir, cat) = fresh();
    add_user(&cat, "alice", &[Role::Auditor]);
    add_user(&cat, "bob", &[Role::Auditor]);
    assert!(cat.consume_recovery_code("alice", &hash(2), 50).unwrap());
    assert!(!cat.consume_recovery_code("alice", &hash(2), 51).unwrap());
    assert!(!cat.consume_recovery_code("alice", &hash(8), 51).unwrap());
    assert_eq!(cat.unused_recovery_codes("alice").unwrap(), 2);
    // Bob's copy of the same hash is his own.
    assert_eq!(cat.unused_recovery_codes("bob").unwrap(), 3);

    cat.replace_recovery_codes("alice", &[hash(20), hash(21)])
        .unwrap();
    assert_eq!(cat.unused_recovery_codes("alice").unwrap(), 2);
    assert!(!cat.consume_recovery_code("alice", &hash(1), 60).unwrap());
    assert!(cat.consume_recovery_code("alice", &hash(21), 60).unwrap());

    cat.advance_totp_step("alice", 77).unwrap();
    cat.confirm_user_totp("alice").unwrap();
    cat.reset_user_mfa("alice", &[3; 20], &[hash(30)]).unwrap();
    let u = cat.user("alice").unwrap().unwrap();
    assert_eq!(u.totp_secret.as_slice(), &[3; 20]);
    assert!(!u.totp_confirmed);
    assert_eq!(u.last_totp_step, 0);
    assert_eq!(cat.unused_recovery_codes("alice").unwrap(), 1);
}

#[test]
fn api_tokens_are_stored_listed_touched_and_revoked() {
    let (_dir, cat) = fresh();
    add_user(&cat, "alice", &[Role::Auditor]);
    add_user(&cat, "bob", &[Role::Auditor]);
    cat.insert_api_token(&token("t1", "alice", 100)).unwrap();
    cat.insert_api_token(&token("t2", "bob", 200)).unwrap();
    cat.insert_api_token(&token("t3", "alice", 300)).unwrap();
    assert!(matches!(
        cat.insert_api_token(&token("t1", "bob", 400)),
        Err(Error::TokenExists(id)) if id == "t1"
    ));
    assert!(matches!(
        cat.insert_api_token(&token("t9", "nobody", 400)),
        Err(Error::UserNotFound(n)) if n == "nobody"
    ));

    assert_eq!(
        cat.api_token("t1").unwrap().unwrap(),
        token("t1", "alice", 100)
    );
    assert!(cat.api_token("t9").unwrap().is_none());
    let ids = |user| -> Vec<String> {
        cat.api_tokens(user)
            .unwrap()
            .into_iter()
            .map(|t| t.id)
            .collect()
    };
    assert_eq!(ids(None), ["t1", "t2", "t3"]);
    assert_eq!(ids(Some("alice")), ["t1", "t3"]);

    cat.touch_api_token("t1", 555).unwrap();
    assert_eq!(
        cat.api_token("t1").unwrap().unwrap().last_used_ms,
        Some(555)
    );
    assert!(cat.revoke_api_token("t1", 600).unwrap());
    assert!(!cat.revoke_api_token("t1", 700).unwrap(), "revoked already");
    assert!(!cat.revoke_api_token("t9", 700).unwrap(), "no such token");
    assert_eq!(cat.api_token("t1").unwrap().unwrap().revoked_ms, Some(600));
}

#[test]
fn deleting_a_user_deletes_their_tokens_and_recovery_codes() {
    let (_dir, cat) = fresh();
    add_user(&cat, "alice", &[Role::Auditor]);
    add_user(&cat, "bob", &[Role::Auditor]);
    cat.insert_api_token(&token("t1", "alice", 100)).unwrap();
    cat.insert_api_token(&token("t2", "bob", 100)).unwrap();
    assert!(cat.delete_user("alice").unwrap());
    assert!(!cat.delete_user("alice").unwrap());
    assert!(cat.api_token("t1").unwrap().is_none());
    assert!(cat.api_token("t2").unwrap().is_some());
    assert_eq!(cat.unused_recovery_codes("alice").unwrap(), 0);
    assert_eq!(cat.count_users().unwrap(), 1);
}

#[test]
fn audit_entries_chain_from_the_genesis_link() {
    let (_dir, cat) = fresh();
    assert_eq!(cat.audit_head().unwrap(), None);
    let a = cat
        .append_audit(&record(10, "alice", "login"), &toy_chain)
        .unwrap();
    assert_eq!(a.seq, 1);
    assert_eq!(a.prev_hash, [0; 32]);
    assert_eq!(
        a.hash,
        toy_chain(&[0; 32], &record(10, "alice", "login"), 1)
    );
    let b = cat
        .append_audit(&record(20, "alice", "asset.add"), &toy_chain)
        .unwrap();
    assert_eq!((b.seq, b.prev_hash), (2, a.hash));
    assert_eq!(cat.audit_head().unwrap(), Some((2, b.hash)));

    let mut seen = Vec::new();
    let n = cat
        .audit_all_ascending(&mut |seq, row| seen.push((seq, row.unwrap())))
        .unwrap();
    assert_eq!(n, 2);
    assert_eq!(seen, vec![(1, a), (2, b)]);
}

#[test]
fn audit_rows_filter_by_time_identity_and_action_newest_first() {
    let (_dir, cat) = fresh();
    let entries = [
        record(100, "alice", "login"),
        record(200, "bob", "asset.add"),
        record(300, "alice", "asset.remove"),
        record(400, "token:ab12 (alice)", "job.run"),
        record(500, "token:cd34 (malice)", "job.run"),
        record(600, "alice", "assets"),
    ];
    for e in &entries {
        cat.append_audit(e, &toy_chain).unwrap();
    }
    let seqs = |f: AuditFilter| -> Vec<i64> {
        cat.audit_rows(&f)
            .unwrap()
            .into_iter()
            .map(|r: AuditRow| r.seq)
            .collect()
    };
    assert_eq!(seqs(AuditFilter::default()), [6, 5, 4, 3, 2, 1]);
    assert_eq!(
        seqs(AuditFilter {
            since_ms: Some(200),
            until_ms: Some(400),
            ..Default::default()
        }),
        [3, 2],
        "since inclusive, until exclusive"
    );
    assert_eq!(
        seqs(AuditFilter {
            user: Some("alice".into()),
            ..Default::default()
        }),
        [6, 4, 3, 1],
        "alice and alice's tokens, not malice's"
    );
    assert_eq!(
        seqs(AuditFilter {
            user: Some("token:ab12 (alice)".into()),
            ..Default::default()
        }),
        [4]
    );
    assert_eq!(
        seqs(AuditFilter {
            action: Some("asset.".into()),
            ..Default::default()
        }),
        [3, 2],
        "a prefix ending in '.' does not match 'assets'"
    );
    assert_eq!(
        seqs(AuditFilter {
            action: Some("asset".into()),
            ..Default::default()
        }),
        Vec::<i64>::new(),
        "without the dot, the action matches exactly"
    );
    assert_eq!(
        seqs(AuditFilter {
            action: Some("job.run".into()),
            limit: Some(1),
            ..Default::default()
        }),
        [5]
    );
}

#[test]
fn the_audit_log_refuses_updates_and_deletes() {
    let (dir, cat) = fresh();
    cat.append_audit(&record(1, "alice", "login"), &toy_chain)
        .unwrap();
    let raw = Connection::open(dir.path().join("catalog.db")).unwrap();
    let upd = raw.execute("UPDATE audit_log SET detail = 'x' WHERE seq = 1", []);
    assert!(upd.unwrap_err().to_string().contains("append-only"));
    let del = raw.execute("DELETE FROM audit_log", []);
    assert!(del.unwrap_err().to_string().contains("append-only"));
}

#[test]
fn concurrent_appenders_on_several_connections_never_fork_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.db");
    drop(Catalog::open(&path).unwrap());
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let path = path.clone();
            std::thread::spawn(move || {
                let cat = Catalog::open(&path).unwrap();
                for i in 0..25 {
                    cat.append_audit(&record(i, &format!("writer-{t}"), "job.run"), &toy_chain)
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let cat = Catalog::open(&path).unwrap();
    let mut expected_seq = 1;
    let mut prev = [0u8; 32];
    let n = cat
        .audit_all_ascending(&mut |seq, row| {
            let row = row.unwrap();
            assert_eq!(seq, expected_seq);
            assert_eq!(row.prev_hash, prev, "entry {seq} links to its predecessor");
            assert_eq!(row.hash, toy_chain(&prev, &row.record, seq));
            prev = row.hash;
            expected_seq += 1;
        })
        .unwrap();
    assert_eq!(n, 100);
}

#[test]
fn an_unreadable_audit_row_is_reported_and_streaming_goes_on() {
    let (dir, cat) = fresh();
    for i in 0..3 {
        cat.append_audit(&record(i, "alice", "login"), &toy_chain)
            .unwrap();
    }
    let raw = Connection::open(dir.path().join("catalog.db")).unwrap();
    raw.execute_batch(
        "DROP TRIGGER audit_log_no_update; \
         UPDATE audit_log SET source = 'nowhere' WHERE seq = 2;",
    )
    .unwrap();
    let mut got = Vec::new();
    cat.audit_all_ascending(&mut |seq, row| got.push((seq, row.is_ok())))
        .unwrap();
    assert_eq!(got, [(1, true), (2, false), (3, true)]);
}
