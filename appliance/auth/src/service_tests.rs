//! Tests of the service with an injected clock and cheap Argon2.

use coffer_catalog::Catalog;
use coffer_types::api::{Credential, Duration, Enrollment, ErrorCode, Role, Source};
use tempfile::TempDir;

use crate::error::{Error, LoginFailure};
use crate::password::PasswordParams;
use crate::roles::{MATRIX, Permission};
use crate::service::{Auth, AuthPolicy, Principal};
use crate::totp;

/// 2023-11-14T22:13:30Z, at the start of a TOTP step.
const T0: i64 = 1_700_000_010_000;
const STEP_MS: i64 = 30_000;
const PW: &str = "correct horse battery";

struct World {
    _dir: TempDir,
    cat: Catalog,
    auth: Auth,
    admin: Enrollment,
}

fn policy() -> AuthPolicy {
    AuthPolicy {
        password: PasswordParams::insecure_for_tests(),
        ..AuthPolicy::default()
    }
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let cat = Catalog::open(&dir.path().join("catalog.db")).unwrap();
    let auth = Auth::new(policy()).unwrap();
    assert!(auth.needs_bootstrap(&cat).unwrap());
    let admin = auth.bootstrap(&cat, "root", PW, T0).unwrap();
    World {
        _dir: dir,
        cat,
        auth,
        admin,
    }
}

fn secret(e: &Enrollment) -> Vec<u8> {
    totp::base32_decode(&e.secret_base32).unwrap()
}

fn code(e: &Enrollment, now_ms: i64) -> String {
    totp::code_at(&secret(e), now_ms / 1000)
}

fn session(s: &str) -> Credential {
    Credential::Session(s.to_string())
}

impl World {
    /// Logs `e.user` in with a TOTP code at `now`; returns the principal.
    fn login(&self, e: &Enrollment, now: i64) -> Principal {
        let r = self
            .auth
            .login(&self.cat, &e.user, PW, &code(e, now), now)
            .unwrap();
        self.auth
            .authenticate(&self.cat, &session(&r.session), now)
            .unwrap()
    }

    /// An administrator session (fresh MFA) at `now`.
    fn root(&self, now: i64) -> Principal {
        self.login(&self.admin, now)
    }

    /// Adds a user with `roles`, done by root at `now` (root logs in at
    /// `now`, so the next free TOTP step for root is after `now`).
    fn add(&self, name: &str, roles: &[Role], now: i64) -> Enrollment {
        let root = self.root(now);
        self.auth
            .add_user(&self.cat, &root, None, name, PW, roles, now)
            .unwrap()
    }
}

fn code_of(r: Result<impl std::fmt::Debug, Error>) -> ErrorCode {
    r.unwrap_err().code()
}

#[test]
fn bootstrap_creates_one_administrator_with_an_unconfirmed_enrollment() {
    let w = world();
    assert!(!w.auth.needs_bootstrap(&w.cat).unwrap());
    assert_eq!(w.admin.user, "root");
    assert_eq!(w.admin.recovery_codes.len(), 10);
    assert_eq!(secret(&w.admin).len(), 20);
    assert!(
        w.admin
            .otpauth_uri
            .starts_with("otpauth://totp/Coffer:root?secret=")
    );
    let row = w.cat.user("root").unwrap().unwrap();
    assert_eq!(row.roles, [Role::Administrator]);
    assert!(!row.totp_confirmed);
    assert!(row.password_phc.starts_with("$argon2id$"));

    let again = w.auth.bootstrap(&w.cat, "other", PW, T0);
    assert_eq!(code_of(again), ErrorCode::State);

    // The first TOTP login confirms the enrollment.
    w.root(T0);
    assert!(w.cat.user("root").unwrap().unwrap().totp_confirmed);
}

#[test]
fn bootstrap_checks_the_name_and_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let cat = Catalog::open(&dir.path().join("catalog.db")).unwrap();
    let auth = Auth::new(policy()).unwrap();
    let weak = auth.bootstrap(&cat, "root", "short", T0);
    let msg = weak.as_ref().unwrap_err().to_string();
    assert_eq!(code_of(weak), ErrorCode::Invalid);
    assert!(msg.contains("at least 12"), "{msg}");
    for bad in [
        "",
        "Root",
        "1root",
        "ro ot",
        "system",
        "scheduler",
        &"a".repeat(65),
    ] {
        assert_eq!(
            code_of(auth.bootstrap(&cat, bad, PW, T0)),
            ErrorCode::Invalid,
            "{bad:?}"
        );
    }
    assert_eq!(
        code_of(auth.bootstrap(&cat, "administrator", "Administrator", T0)),
        ErrorCode::Invalid
    );
    assert!(auth.needs_bootstrap(&cat).unwrap());
}

#[test]
fn wrong_user_password_or_code_fail_alike() {
    let w = world();
    let good = code(&w.admin, T0);
    let attempts = [
        ("nobody", PW, good.clone(), LoginFailure::UnknownUser),
        (
            "root",
            "wrong password!!",
            good.clone(),
            LoginFailure::WrongPassword,
        ),
        ("root", PW, "000000".to_string(), LoginFailure::WrongCode),
        (
            "root",
            PW,
            "AAAA-BBBB-CCCC".to_string(),
            LoginFailure::WrongCode,
        ),
    ];
    let mut messages = Vec::new();
    for (user, pw, c, why) in attempts {
        let err = w.auth.login(&w.cat, user, pw, &c, T0).unwrap_err();
        assert_eq!(err.code(), ErrorCode::LoginFailed);
        assert!(matches!(err, Error::LoginFailed { reason } if reason == why));
        messages.push(err.to_string());
    }
    messages.dedup();
    assert_eq!(
        messages,
        ["login failed: wrong user name, password or code"]
    );
    // The failures with a right code consumed nothing: it still works.
    let r = w.auth.login(&w.cat, "root", PW, &good, T0).unwrap();
    assert_eq!(r.roles, [Role::Administrator]);
    assert_eq!(r.idle_timeout_secs, 900);
    assert_eq!(r.recovery_codes_left, None);
    assert_eq!(r.session.len(), 64);
}

#[test]
fn a_totp_code_is_accepted_once_and_the_window_is_one_step() {
    let w = world();
    let c = code(&w.admin, T0);
    w.auth.login(&w.cat, "root", PW, &c, T0).unwrap();
    let replay = w.auth.login(&w.cat, "root", PW, &c, T0 + 1000).unwrap_err();
    assert!(matches!(
        replay,
        Error::LoginFailed {
            reason: LoginFailure::ReplayedCode
        }
    ));
    // The next step's code is accepted now (clock drift), then not again.
    let next = code(&w.admin, T0 + STEP_MS);
    w.auth.login(&w.cat, "root", PW, &next, T0).unwrap();
    assert!(
        w.auth
            .login(&w.cat, "root", PW, &next, T0 + STEP_MS)
            .is_err()
    );
    // Two steps ahead is outside the window.
    let far = code(&w.admin, T0 + 3 * STEP_MS);
    assert!(
        w.auth
            .login(&w.cat, "root", PW, &far, T0 + STEP_MS)
            .is_err()
    );
    // The previous step's code, late by one step, is fine if unused.
    let late = code(&w.admin, T0 + 2 * STEP_MS);
    w.auth
        .login(&w.cat, "root", PW, &late, T0 + 3 * STEP_MS)
        .unwrap();
    assert_eq!(
        w.cat.user("root").unwrap().unwrap().last_totp_step,
        (T0 + 2 * STEP_MS) / STEP_MS
    );
}

#[test]
fn five_failures_lock_out_even_the_right_credentials_until_the_lock_ends() {
    let w = world();
    for i in 0..5 {
        let e = w
            .auth
            .login(&w.cat, "root", "wrong password!!", "123456", T0 + i)
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::LoginFailed, "attempt {i}");
    }
    let now = T0 + 10_000;
    let locked = w.auth.login(&w.cat, "root", PW, &code(&w.admin, now), now);
    let until = T0 + 4 + 900_000;
    assert!(matches!(locked, Err(Error::LockedOut { until_ms }) if until_ms == until));
    assert!(
        locked
            .unwrap_err()
            .to_string()
            .contains("locked until 2023-11-14T22:28:30.004Z")
    );
    // Still locked a moment before the end; released at the end.
    let before = until - 1;
    assert_eq!(
        code_of(
            w.auth
                .login(&w.cat, "root", PW, &code(&w.admin, before), before)
        ),
        ErrorCode::LockedOut
    );
    w.auth
        .login(&w.cat, "root", PW, &code(&w.admin, until), until)
        .unwrap();
    let row = w.cat.user("root").unwrap().unwrap();
    assert_eq!((row.failed_logins, row.locked_until_ms), (0, None));
}

#[test]
fn unknown_names_are_locked_out_like_real_ones() {
    let w = world();
    for i in 0..5 {
        assert_eq!(
            code_of(w.auth.login(&w.cat, "ghost", PW, "123456", T0 + i)),
            ErrorCode::LoginFailed
        );
    }
    assert_eq!(
        code_of(w.auth.login(&w.cat, "ghost", PW, "123456", T0 + 10)),
        ErrorCode::LockedOut
    );
    assert_eq!(
        code_of(
            w.auth
                .login(&w.cat, "ghost", PW, "123456", T0 + 4 + 900_000)
        ),
        ErrorCode::LoginFailed
    );
}

#[test]
fn an_administrator_lifts_a_lockout() {
    let w = world();
    let alice = w.add("alice", &[Role::Auditor], T0);
    for _ in 0..5 {
        let _ = w
            .auth
            .login(&w.cat, "alice", "nope nope nope", "123456", T0);
    }
    let now = T0 + STEP_MS;
    assert_eq!(
        code_of(w.auth.login(&w.cat, "alice", PW, &code(&alice, now), now)),
        ErrorCode::LockedOut
    );
    let root = w.root(now);
    w.auth
        .unlock_user(&w.cat, &root, None, "alice", now)
        .unwrap();
    w.auth
        .login(&w.cat, "alice", PW, &code(&alice, now), now)
        .unwrap();
}

#[test]
fn sessions_expire_when_idle_and_each_use_slides_the_window() {
    let w = world();
    let r = w
        .auth
        .login(&w.cat, "root", PW, &code(&w.admin, T0), T0)
        .unwrap();
    let cred = session(&r.session);
    let idle = 900_000;
    // Used just before the timeout, three times: each use restarts it.
    let mut t = T0;
    for _ in 0..3 {
        t += idle - 1;
        w.auth.authenticate(&w.cat, &cred, t).unwrap();
    }
    assert_eq!(w.auth.open_sessions(t), 1);
    t += idle + 1;
    let e = w.auth.authenticate(&w.cat, &cred, t).unwrap_err();
    assert_eq!(e.code(), ErrorCode::SessionExpired);
    assert!(e.to_string().contains("idle timeout"));
    // It stays ended.
    assert_eq!(
        code_of(w.auth.authenticate(&w.cat, &cred, t + 1)),
        ErrorCode::SessionExpired
    );
    assert_eq!(w.auth.open_sessions(t), 0);
}

#[test]
fn bad_session_credentials_are_unauthenticated_and_logout_ends_a_session() {
    let w = world();
    for bad in ["", "zz", &"0".repeat(64), &"ab".repeat(33)] {
        assert_eq!(
            code_of(w.auth.authenticate(&w.cat, &session(bad), T0)),
            ErrorCode::Unauthenticated,
            "{bad:?}"
        );
    }
    let r = w
        .auth
        .login(&w.cat, "root", PW, &code(&w.admin, T0), T0)
        .unwrap();
    let p = w
        .auth
        .authenticate(&w.cat, &session(&r.session), T0)
        .unwrap();
    assert_eq!(p.source, Source::Console);
    assert_eq!(p.identity(), "root");
    assert_eq!(p.whoami().token, None);
    w.auth.logout(&p, T0 + 1).unwrap();
    let e = w
        .auth
        .authenticate(&w.cat, &session(&r.session), T0 + 2)
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::SessionExpired);
    assert!(e.to_string().contains("logged out"));
}

#[test]
fn fresh_mfa_lasts_five_minutes_and_a_code_renews_it() {
    let w = world();
    let r = w
        .auth
        .login(&w.cat, "root", PW, &code(&w.admin, T0), T0)
        .unwrap();
    let cred = session(&r.session);
    let at = |t| w.auth.authenticate(&w.cat, &cred, t).unwrap();
    let p = Permission::SnapshotDelete;
    // The login proved MFA.
    w.auth.authorize(&w.cat, &at(T0), p, None, T0).unwrap();
    let t = T0 + 300_000 - 1;
    w.auth.authorize(&w.cat, &at(t), p, None, t).unwrap();
    let t = T0 + 300_000;
    let e = w.auth.authorize(&w.cat, &at(t), p, None, t).unwrap_err();
    assert_eq!(e.code(), ErrorCode::FreshMfaRequired);
    // Permissions that do not need it are unaffected.
    w.auth
        .authorize(&w.cat, &at(t), Permission::JobRun, None, t)
        .unwrap();

    // mfa_verify renews it…
    let until = w
        .auth
        .mfa_verify(&w.cat, &at(t), &code(&w.admin, t), t)
        .unwrap();
    assert_eq!(until, t + 300_000);
    w.auth.authorize(&w.cat, &at(t), p, None, t).unwrap();
    // …a used code is refused…
    let e = w
        .auth
        .mfa_verify(&w.cat, &at(t), &code(&w.admin, t), t)
        .unwrap_err();
    assert!(matches!(
        e,
        Error::CodeRejected {
            reason: LoginFailure::ReplayedCode
        }
    ));
    // …and once it lapses, an inline code works for the request.
    let t2 = t + 400_000;
    let e = w
        .auth
        .authorize(&w.cat, &at(t2), p, Some("000000"), t2)
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::FreshMfaRequired);
    assert!(e.to_string().contains("wrong or was used already"), "{e}");
    w.auth
        .authorize(&w.cat, &at(t2), p, Some(&code(&w.admin, t2)), t2)
        .unwrap();
    // A good inline code also renews the session's window.
    let t3 = t2 + 299_000;
    w.auth.authorize(&w.cat, &at(t3), p, None, t3).unwrap();
}

#[test]
fn every_role_and_permission_follows_the_matrix() {
    let w = world();
    let mut t = T0;
    let mut enrollments = Vec::new();
    for (i, role) in Role::ALL.into_iter().enumerate() {
        t += STEP_MS;
        enrollments.push((role, w.add(&format!("user{i}"), &[role], t)));
    }
    t += STEP_MS;
    for (role, e) in &enrollments {
        let p = w.login(e, t);
        assert_eq!(p.roles, [*role]);
        for (perm, row) in MATRIX {
            let col = Role::ALL.iter().position(|r| r == role).unwrap();
            let result = w.auth.authorize(&w.cat, &p, perm, None, t);
            if row[col] {
                result.unwrap_or_else(|e| panic!("{role} / {perm}: {e}"));
            } else {
                let e = result.unwrap_err();
                assert_eq!(e.code(), ErrorCode::Forbidden, "{role} / {perm}");
                assert!(e.to_string().contains(perm.as_str()));
            }
        }
    }
    // Same users, sessions whose fresh MFA has lapsed: exactly the flagged
    // permissions now need a code.
    let t2 = t + STEP_MS;
    for (role, e) in &enrollments {
        let r = w.auth.login(&w.cat, &e.user, PW, &code(e, t2), t2).unwrap();
        let later = t2 + 600_000;
        let p = w
            .auth
            .authenticate(&w.cat, &session(&r.session), later)
            .unwrap();
        let col = Role::ALL.iter().position(|r| r == role).unwrap();
        for (perm, row) in MATRIX {
            let result = w.auth.authorize(&w.cat, &p, perm, None, later);
            match (row[col], perm.needs_fresh_mfa()) {
                (false, _) => assert_eq!(code_of(result), ErrorCode::Forbidden),
                (true, true) => assert_eq!(
                    code_of(result),
                    ErrorCode::FreshMfaRequired,
                    "{role} / {perm}"
                ),
                (true, false) => result.unwrap(),
            }
        }
    }
}

#[test]
fn tokens_are_scoped_to_a_subset_of_their_owners_current_roles() {
    let w = world();
    let bob = w.add("bob", &[Role::BackupOperator, Role::Auditor], T0);
    let t = T0 + STEP_MS;
    let p = w.login(&bob, t);
    // Not more than bob holds.
    let e = w
        .auth
        .create_token(&w.cat, &p, "ci", &[Role::Administrator], None, t)
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::Forbidden);
    assert!(e.to_string().contains("administrator"), "{e}");
    assert_eq!(
        code_of(w.auth.create_token(&w.cat, &p, "ci", &[], None, t)),
        ErrorCode::Invalid
    );
    assert_eq!(
        code_of(
            w.auth
                .create_token(&w.cat, &p, " ", &[Role::Auditor], None, t)
        ),
        ErrorCode::Invalid
    );
    assert_eq!(
        code_of(w.auth.create_token(
            &w.cat,
            &p,
            "ci",
            &[Role::Auditor],
            Some(Duration(400 * 86_400)),
            t
        )),
        ErrorCode::Invalid
    );

    let nt = w
        .auth
        .create_token(
            &w.cat,
            &p,
            "ci",
            &[Role::BackupOperator, Role::Auditor],
            None,
            t,
        )
        .unwrap();
    assert!(nt.token.starts_with(&format!("ct_{}_", nt.info.id)));
    assert_eq!(nt.info.user, "bob");
    assert_eq!(
        nt.info.expires.as_deref(),
        Some(coffer_types::rfc3339_ms(t + 90 * 86_400_000).as_str())
    );
    let cred = Credential::Token(nt.token.clone());
    let tp = w.auth.authenticate(&w.cat, &cred, t).unwrap();
    assert_eq!(tp.source, Source::Api);
    assert_eq!(tp.roles, [Role::BackupOperator, Role::Auditor]);
    assert_eq!(tp.identity(), format!("token:{} (bob)", nt.info.id));
    assert_eq!(tp.mfa_fresh_until_ms, None);
    w.auth
        .authorize(&w.cat, &tp, Permission::JobRun, None, t)
        .unwrap();

    // A token cannot mint tokens, change the password or hold a session.
    assert_eq!(
        code_of(
            w.auth
                .create_token(&w.cat, &tp, "x", &[Role::Auditor], None, t)
        ),
        ErrorCode::Forbidden
    );
    assert_eq!(
        code_of(
            w.auth
                .change_password(&w.cat, &tp, PW, "another good password", t)
        ),
        ErrorCode::Forbidden
    );
    assert_eq!(code_of(w.auth.logout(&tp, t)), ErrorCode::Invalid);
    assert_eq!(
        code_of(w.auth.mfa_verify(&w.cat, &tp, "123456", t)),
        ErrorCode::Invalid
    );

    // Demote bob: the token loses the role at once.
    let t2 = t + STEP_MS;
    let root = w.root(t2);
    w.auth
        .set_roles(&w.cat, &root, None, "bob", &[Role::Auditor], t2)
        .unwrap();
    let tp = w.auth.authenticate(&w.cat, &cred, t2).unwrap();
    assert_eq!(tp.roles, [Role::Auditor]);
    assert_eq!(
        code_of(w.auth.authorize(&w.cat, &tp, Permission::JobRun, None, t2)),
        ErrorCode::Forbidden
    );
}

#[test]
fn a_token_proves_fresh_mfa_only_with_an_inline_code_of_its_owner() {
    let w = world();
    let t = T0;
    let root = w.root(t);
    let nt = w
        .auth
        .create_token(&w.cat, &root, "automation", &[Role::Administrator], None, t)
        .unwrap();
    let tp = w
        .auth
        .authenticate(&w.cat, &Credential::Token(nt.token), t)
        .unwrap();
    // Even right after its owner logged in.
    let e = w
        .auth
        .authorize(&w.cat, &tp, Permission::SnapshotDelete, None, t)
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::FreshMfaRequired);
    let t2 = t + STEP_MS;
    w.auth
        .authorize(
            &w.cat,
            &tp,
            Permission::SnapshotDelete,
            Some(&code(&w.admin, t2)),
            t2,
        )
        .unwrap();
    // Not twice, and not for the next request without a code.
    assert_eq!(
        code_of(w.auth.authorize(
            &w.cat,
            &tp,
            Permission::SnapshotDelete,
            Some(&code(&w.admin, t2)),
            t2
        )),
        ErrorCode::FreshMfaRequired
    );
    assert_eq!(
        code_of(
            w.auth
                .authorize(&w.cat, &tp, Permission::SnapshotDelete, None, t2)
        ),
        ErrorCode::FreshMfaRequired
    );
    // Another user's code proves nothing for root's token.
    let eve = w.add("eve", &[Role::Auditor], t2 + STEP_MS);
    let t3 = t2 + 2 * STEP_MS;
    assert_eq!(
        code_of(w.auth.authorize(
            &w.cat,
            &tp,
            Permission::SnapshotDelete,
            Some(&code(&eve, t3)),
            t3
        )),
        ErrorCode::FreshMfaRequired
    );
}

#[test]
fn expired_revoked_and_forged_tokens_are_refused() {
    let w = world();
    let root = w.root(T0);
    let nt = w
        .auth
        .create_token(
            &w.cat,
            &root,
            "short",
            &[Role::Administrator],
            Some(Duration(60)),
            T0,
        )
        .unwrap();
    let cred = Credential::Token(nt.token.clone());
    w.auth.authenticate(&w.cat, &cred, T0 + 59_999).unwrap();
    let e = w.auth.authenticate(&w.cat, &cred, T0 + 60_000).unwrap_err();
    assert_eq!(e.code(), ErrorCode::Unauthenticated);
    assert!(e.to_string().contains("expired"));

    // Forged: right id, wrong secret; malformed shapes.
    let forged = format!("ct_{}_{}", nt.info.id, "00".repeat(32));
    for bad in [
        forged.as_str(),
        "ct_",
        "ct_abc_def",
        "token",
        &nt.token[..nt.token.len() - 2],
    ] {
        assert_eq!(
            code_of(
                w.auth
                    .authenticate(&w.cat, &Credential::Token(bad.into()), T0)
            ),
            ErrorCode::Unauthenticated,
            "{bad}"
        );
    }

    let nt = w
        .auth
        .create_token(&w.cat, &root, "long", &[Role::Administrator], None, T0)
        .unwrap();
    let cred = Credential::Token(nt.token.clone());
    w.auth.authenticate(&w.cat, &cred, T0).unwrap();
    assert_eq!(
        w.cat.api_token(&nt.info.id).unwrap().unwrap().last_used_ms,
        Some(T0)
    );
    w.auth
        .revoke_token(&w.cat, &root, &format!("ct_{}", nt.info.id), T0)
        .unwrap();
    w.auth.revoke_token(&w.cat, &root, &nt.info.id, T0).unwrap();
    let e = w.auth.authenticate(&w.cat, &cred, T0).unwrap_err();
    assert!(e.to_string().contains("revoked"));
    assert_eq!(
        code_of(w.auth.revoke_token(&w.cat, &root, "0123456789abcdef", T0)),
        ErrorCode::NotFound
    );
}

#[test]
fn tokens_are_listed_and_revoked_by_their_owner_or_a_token_manager() {
    let w = world();
    let alice = w.add("alice", &[Role::BackupOperator], T0);
    let carol = w.add("carol", &[Role::SecurityOfficer], T0 + STEP_MS);
    let t = T0 + 2 * STEP_MS;
    let pa = w.login(&alice, t);
    let pc = w.login(&carol, t);
    let ta = w
        .auth
        .create_token(&w.cat, &pa, "a", &[Role::BackupOperator], None, t)
        .unwrap();
    let tc = w
        .auth
        .create_token(&w.cat, &pc, "c", &[Role::SecurityOfficer], None, t)
        .unwrap();
    let ids = |p: &Principal| -> Vec<String> {
        w.auth
            .list_tokens(&w.cat, p, t)
            .unwrap()
            .into_iter()
            .map(|i| i.id)
            .collect()
    };
    assert_eq!(ids(&pa), std::slice::from_ref(&ta.info.id));
    assert_eq!(ids(&pc).len(), 2, "the security officer sees all");
    // alice cannot revoke carol's (and is not told it exists).
    assert_eq!(
        code_of(w.auth.revoke_token(&w.cat, &pa, &tc.info.id, t)),
        ErrorCode::NotFound
    );
    // carol can revoke alice's.
    w.auth.revoke_token(&w.cat, &pc, &ta.info.id, t).unwrap();
    assert!(ids(&pa).is_empty());
}

#[test]
fn recovery_codes_log_in_once_each() {
    let w = world();
    let rc = &w.admin.recovery_codes;
    let r = w
        .auth
        .login(&w.cat, "root", PW, &rc[0].to_lowercase(), T0)
        .unwrap();
    assert_eq!(r.recovery_codes_left, Some(9));
    assert!(
        !w.cat.user("root").unwrap().unwrap().totp_confirmed,
        "a recovery code does not confirm TOTP"
    );
    let again = w.auth.login(&w.cat, "root", PW, &rc[0], T0).unwrap_err();
    assert!(matches!(
        again,
        Error::LoginFailed {
            reason: LoginFailure::WrongCode
        }
    ));
    // A wrong password consumes nothing.
    assert!(
        w.auth
            .login(&w.cat, "root", "wrong password!!", &rc[1], T0)
            .is_err()
    );
    let r = w.auth.login(&w.cat, "root", PW, &rc[1], T0).unwrap();
    assert_eq!(r.recovery_codes_left, Some(8));
    // Recovery codes do not prove fresh MFA later (only TOTP does).
    let p = w
        .auth
        .authenticate(&w.cat, &session(&r.session), T0 + 400_000)
        .unwrap();
    assert_eq!(
        code_of(w.auth.authorize(
            &w.cat,
            &p,
            Permission::UserManage,
            Some(&rc[2]),
            T0 + 400_000
        )),
        ErrorCode::FreshMfaRequired
    );
}

#[test]
fn reset_mfa_replaces_secret_and_recovery_codes() {
    let w = world();
    let old = w.add("alice", &[Role::Auditor], T0);
    let t = T0 + STEP_MS;
    let r = w
        .auth
        .login(&w.cat, "alice", PW, &code(&old, t), t)
        .unwrap();
    let root = w.root(t);
    let new = w.auth.reset_mfa(&w.cat, &root, None, "alice", t).unwrap();
    assert_ne!(new.secret_base32, old.secret_base32);
    assert_eq!(new.recovery_codes.len(), 10);
    assert!(!w.cat.user("alice").unwrap().unwrap().totp_confirmed);
    // Her sessions ended.
    let t2 = t + STEP_MS;
    assert_eq!(
        code_of(w.auth.authenticate(&w.cat, &session(&r.session), t2)),
        ErrorCode::SessionExpired
    );
    // Old code and old recovery codes no longer work; new ones do.
    assert!(
        w.auth
            .login(&w.cat, "alice", PW, &code(&old, t2), t2)
            .is_err()
    );
    assert!(
        w.auth
            .login(&w.cat, "alice", PW, &old.recovery_codes[0], t2)
            .is_err()
    );
    w.auth
        .login(&w.cat, "alice", PW, &new.recovery_codes[0], t2)
        .unwrap();
    w.auth
        .login(&w.cat, "alice", PW, &code(&new, t2), t2)
        .unwrap();
    assert!(w.cat.user("alice").unwrap().unwrap().totp_confirmed);
}

#[test]
fn user_management_keeps_separation_of_duties() {
    let w = world();
    let sec = w.add("sec", &[Role::SecurityOfficer], T0);
    let t = T0 + STEP_MS;
    let ps = w.login(&sec, t);
    // A security officer manages non-administrators (with fresh MFA)…
    let e = w
        .auth
        .add_user(&w.cat, &ps, None, "op", PW, &[Role::BackupOperator], t)
        .unwrap();
    assert_eq!(e.user, "op");
    w.auth
        .set_roles(
            &w.cat,
            &ps,
            None,
            "op",
            &[Role::RestoreOperator, Role::RestoreOperator],
            t,
        )
        .unwrap();
    assert_eq!(
        w.cat.user("op").unwrap().unwrap().roles,
        [Role::RestoreOperator]
    );
    // …but cannot make or touch administrators, or change their own roles.
    for r in [
        w.auth
            .add_user(&w.cat, &ps, None, "boss", PW, &[Role::Administrator], t)
            .map(|_| ()),
        w.auth
            .set_roles(&w.cat, &ps, None, "op", &[Role::Administrator], t),
        w.auth.remove_user(&w.cat, &ps, None, "root", t),
        w.auth.reset_mfa(&w.cat, &ps, None, "root", t).map(|_| ()),
        w.auth
            .set_roles(&w.cat, &ps, None, "sec", &[Role::Auditor], t),
        w.auth.remove_user(&w.cat, &ps, None, "sec", t),
    ] {
        assert_eq!(code_of(r), ErrorCode::Forbidden);
    }
    // Duplicates, unknown users, no roles.
    assert_eq!(
        code_of(
            w.auth
                .add_user(&w.cat, &ps, None, "op", PW, &[Role::Auditor], t)
        ),
        ErrorCode::Conflict
    );
    assert_eq!(
        code_of(
            w.auth
                .set_roles(&w.cat, &ps, None, "ghost", &[Role::Auditor], t)
        ),
        ErrorCode::NotFound
    );
    assert_eq!(
        code_of(w.auth.set_roles(&w.cat, &ps, None, "op", &[], t)),
        ErrorCode::Invalid
    );
    // An auditor manages nobody.
    let aud = w.add("aud", &[Role::Auditor], t + STEP_MS);
    let t2 = t + 2 * STEP_MS;
    let pa = w.login(&aud, t2);
    assert_eq!(
        code_of(w.auth.remove_user(&w.cat, &pa, None, "op", t2)),
        ErrorCode::Forbidden
    );
    // After the MFA window, a code is needed.
    let late = t2 + 600_000;
    let ps = w.login(&sec, late - 590_000);
    assert_eq!(
        code_of(w.auth.remove_user(&w.cat, &ps, None, "op", late)),
        ErrorCode::FreshMfaRequired
    );
}

#[test]
fn removing_a_user_ends_their_sessions_and_deletes_their_tokens() {
    let w = world();
    let alice = w.add("alice", &[Role::Auditor], T0);
    let t = T0 + STEP_MS;
    let r = w
        .auth
        .login(&w.cat, "alice", PW, &code(&alice, t), t)
        .unwrap();
    let pa = w
        .auth
        .authenticate(&w.cat, &session(&r.session), t)
        .unwrap();
    let nt = w
        .auth
        .create_token(&w.cat, &pa, "x", &[Role::Auditor], None, t)
        .unwrap();
    let root = w.root(t);
    w.auth.remove_user(&w.cat, &root, None, "alice", t).unwrap();
    assert_eq!(
        code_of(w.auth.authenticate(&w.cat, &session(&r.session), t)),
        ErrorCode::SessionExpired
    );
    assert_eq!(
        code_of(w.auth.authenticate(&w.cat, &Credential::Token(nt.token), t)),
        ErrorCode::Unauthenticated
    );
    assert!(w.cat.api_token(&nt.info.id).unwrap().is_none());
    assert_eq!(
        code_of(w.auth.remove_user(&w.cat, &root, None, "alice", t)),
        ErrorCode::NotFound
    );
}

#[test]
fn changing_the_password_needs_the_old_one_and_ends_other_sessions() {
    let w = world();
    let r1 = w
        .auth
        .login(&w.cat, "root", PW, &code(&w.admin, T0), T0)
        .unwrap();
    let t = T0 + STEP_MS;
    let r2 = w
        .auth
        .login(&w.cat, "root", PW, &code(&w.admin, t), t)
        .unwrap();
    let p2 = w
        .auth
        .authenticate(&w.cat, &session(&r2.session), t)
        .unwrap();
    let wrong = w
        .auth
        .change_password(&w.cat, &p2, "not my password", "a brand new password", t);
    assert_eq!(code_of(wrong), ErrorCode::LoginFailed);
    assert_eq!(w.cat.user("root").unwrap().unwrap().failed_logins, 1);
    assert_eq!(
        code_of(w.auth.change_password(&w.cat, &p2, PW, "short", t)),
        ErrorCode::Invalid
    );
    w.auth
        .change_password(&w.cat, &p2, PW, "a brand new password", t)
        .unwrap();
    assert_eq!(
        code_of(w.auth.authenticate(&w.cat, &session(&r1.session), t)),
        ErrorCode::SessionExpired
    );
    w.auth
        .authenticate(&w.cat, &session(&r2.session), t)
        .unwrap();
    let t2 = t + STEP_MS;
    assert!(
        w.auth
            .login(&w.cat, "root", PW, &code(&w.admin, t2), t2)
            .is_err()
    );
    w.auth
        .login(
            &w.cat,
            "root",
            "a brand new password",
            &code(&w.admin, t2),
            t2,
        )
        .unwrap();
}

#[test]
fn users_are_listed_without_secrets() {
    let w = world();
    w.add("alice", &[Role::Auditor, Role::BackupOperator], T0);
    for _ in 0..2 {
        let _ = w
            .auth
            .login(&w.cat, "alice", "nope nope nope", "123456", T0);
    }
    let t = T0 + STEP_MS;
    let root = w.root(t);
    let users = w.auth.list_users(&w.cat, &root, t).unwrap();
    assert_eq!(users.len(), 2);
    let alice = &users[0];
    assert_eq!(alice.name, "alice");
    assert_eq!(alice.roles, [Role::BackupOperator, Role::Auditor]);
    assert!(!alice.mfa_enrolled);
    assert_eq!(alice.failed_logins, 2);
    assert_eq!(alice.locked_until, None);
    assert_eq!(alice.recovery_codes_left, 10);
    assert_eq!(alice.created, "2023-11-14T22:13:30.000Z");
    let root_info = &users[1];
    assert!(root_info.mfa_enrolled);
    assert_eq!(
        root_info.last_login.as_deref(),
        Some("2023-11-14T22:14:00.000Z")
    );
}

#[test]
fn error_codes_map_as_the_api_documents() {
    use coffer_catalog::Error as C;
    let cases = [
        (Error::Unauthenticated("x"), ErrorCode::Unauthenticated),
        (Error::SessionExpired("x"), ErrorCode::SessionExpired),
        (
            Error::LoginFailed {
                reason: LoginFailure::UnknownUser,
            },
            ErrorCode::LoginFailed,
        ),
        (Error::LockedOut { until_ms: 0 }, ErrorCode::LockedOut),
        (Error::Forbidden("x".into()), ErrorCode::Forbidden),
        (
            Error::FreshMfaRequired {
                permission: Permission::KeyDestroy,
                reason: "",
            },
            ErrorCode::FreshMfaRequired,
        ),
        (Error::UserNotFound("x".into()), ErrorCode::NotFound),
        (Error::TokenNotFound("x".into()), ErrorCode::NotFound),
        (Error::UserExists("x".into()), ErrorCode::Conflict),
        (Error::WeakPassword("x".into()), ErrorCode::Invalid),
        (Error::Invalid("x".into()), ErrorCode::Invalid),
        (Error::State("x".into()), ErrorCode::State),
        (Error::PasswordHash("x".into()), ErrorCode::Internal),
        (
            Error::Catalog(C::UserExists("x".into())),
            ErrorCode::Conflict,
        ),
        (
            Error::Catalog(C::UserNotFound("x".into())),
            ErrorCode::NotFound,
        ),
        (Error::Catalog(C::JobNotFound(1)), ErrorCode::Internal),
    ];
    for (e, c) in cases {
        assert_eq!(e.code(), c, "{e}");
    }
    let msg = Error::FreshMfaRequired {
        permission: Permission::KeyDestroy,
        reason: "",
    }
    .to_string();
    assert_eq!(
        msg,
        "'key.destroy' needs fresh MFA: verify a TOTP code first (or send one with the request)"
    );
}

#[test]
fn the_service_is_shared_between_threads() {
    fn is_sync<T: Send + Sync>() {}
    is_sync::<Auth>();
}

#[test]
fn of_two_concurrent_logins_with_one_code_only_one_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.db");
    let auth = Auth::new(policy()).unwrap();
    let admin = {
        let cat = Catalog::open(&path).unwrap();
        auth.bootstrap(&cat, "root", PW, T0).unwrap()
    };
    for round in 0..5 {
        let now = T0 + round * STEP_MS;
        let c = code(&admin, now);
        let results: Vec<bool> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..2)
                .map(|_| {
                    let (auth, path, c) = (&auth, &path, &c);
                    s.spawn(move || {
                        let cat = Catalog::open(path).unwrap();
                        auth.login(&cat, "root", PW, c, now).is_ok()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(
            results.iter().filter(|ok| **ok).count(),
            1,
            "round {round}: {results:?}"
        );
    }
}
