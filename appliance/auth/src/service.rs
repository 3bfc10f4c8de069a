//! The stateful part: logins, sessions, API tokens, authorization and user
//! management, over the catalog's rows and an in-memory session table.
//!
//! Time is always the caller's `now_ms` (milliseconds since the Unix epoch),
//! so tests run hours of sessions and lockouts in microseconds.
//!
//! Methods that take the acting [`Principal`] authorize themselves
//! (permission, fresh MFA, and the rules on who may act on whom); call
//! [`Auth::authorize`] for everything else. A TOTP code sent with a request
//! (`mfa`) is consumed by the one check that uses it: pass it to exactly one
//! call.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use coffer_catalog::{ApiTokenRow, Catalog, NewUser, UserRow};
use coffer_types::api::{
    Credential, Duration, Enrollment, LoginResult, NewToken, Role, Source, TokenInfo, UserInfo,
    Whoami,
};
use coffer_types::rfc3339_ms;
use zeroize::Zeroizing;

use crate::error::{Error, LoginFailure, Result, random};
use crate::password::{self, PasswordParams};
use crate::recovery;
use crate::roles::{Permission, any_allows};
use crate::totp::{self, TotpSecret};

/// The prefix of every API token.
pub const TOKEN_PREFIX: &str = "ct_";

/// Bytes of a token id (shown as hex).
const TOKEN_ID_BYTES: usize = 8;

/// Bytes of a token secret and of a session token (shown as hex).
const SECRET_BYTES: usize = 32;

/// Domain of the blake3 hash stored for an API token's secret.
const TOKEN_HASH_DOMAIN: &str = "coffer api token v1";

/// A token's last use is written at most this often (each write is a
/// synchronous catalog commit).
const TOKEN_TOUCH_MS: i64 = 60_000;

/// Ended or long-idle sessions are forgotten this long after they ended (so
/// that until then a client is told its session expired, not that it is
/// unknown).
const SESSION_TOMBSTONE_MS: i64 = 86_400_000;

/// How many unknown user names the phantom lockout remembers.
const MAX_PHANTOMS: usize = 10_000;

/// The longest user name.
pub const MAX_USER_NAME: usize = 64;

/// Names that the audit log uses for non-users.
const RESERVED_NAMES: [&str; 2] = ["scheduler", "system"];

/// What the authentication service enforces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthPolicy {
    /// A session unused this long ends.
    pub session_idle: Duration,
    /// How long a TOTP code proves fresh MFA.
    pub fresh_mfa: Duration,
    /// Failed logins before a lockout.
    pub lockout_after: u32,
    /// How long a lockout lasts.
    pub lockout_for: Duration,
    /// An API token's lifetime when none is asked for.
    pub token_default_lifetime: Duration,
    /// The longest lifetime a token may be given.
    pub token_max_lifetime: Duration,
    /// Argon2id parameters for new password hashes.
    pub password: PasswordParams,
}

impl Default for AuthPolicy {
    fn default() -> Self {
        AuthPolicy {
            session_idle: Duration(900),
            fresh_mfa: Duration(300),
            lockout_after: 5,
            lockout_for: Duration(900),
            token_default_lifetime: Duration(90 * 86_400),
            token_max_lifetime: Duration(366 * 86_400),
            password: PasswordParams::default(),
        }
    }
}

/// Who a request comes from, as [`Auth::authenticate`] found.
///
/// Only this crate makes one, so holding a `Principal` means the credential
/// was checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user.
    pub user: String,
    /// Effective roles: the user's current roles, and for a token only those
    /// the token was given as well.
    pub roles: Vec<Role>,
    /// [`Source::Console`] for a session, [`Source::Api`] for a token.
    pub source: Source,
    /// The token's id, when authenticated by a token.
    pub token_id: Option<String>,
    /// Until when the session's last TOTP code proves fresh MFA (sessions
    /// only; tokens prove it per request with a code).
    pub mfa_fresh_until_ms: Option<i64>,
    session: Option<[u8; 32]>,
}

impl Principal {
    /// The identity the audit log records: the user, or
    /// `token:<id> (<user>)`.
    pub fn identity(&self) -> String {
        match &self.token_id {
            Some(id) => format!("token:{id} ({})", self.user),
            None => self.user.clone(),
        }
    }

    /// Whether the principal's roles hold `p` (fresh MFA aside).
    pub fn holds(&self, p: Permission) -> bool {
        any_allows(&self.roles, p)
    }

    /// The `whoami` answer.
    pub fn whoami(&self) -> Whoami {
        Whoami {
            user: self.user.clone(),
            roles: self.roles.clone(),
            source: self.source,
            token: self.token_id.clone(),
        }
    }
}

#[derive(Debug)]
struct Session {
    user: String,
    last_seen_ms: i64,
    mfa_fresh_until_ms: i64,
    /// Why and when it ended (kept a while as a tombstone).
    ended: Option<(&'static str, i64)>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Phantom {
    failed: u32,
    locked_until_ms: Option<i64>,
}

/// How a login's second factor was proved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SecondFactor {
    Totp,
    Recovery,
}

/// The authentication and authorization service. Shared by all requests
/// (`Sync`); the catalog is passed to each call.
#[derive(Debug)]
pub struct Auth {
    policy: std::sync::RwLock<AuthPolicy>,
    sessions: Mutex<HashMap<[u8; 32], Session>>,
    phantoms: Mutex<HashMap<[u8; 32], Phantom>>,
    dummy_phc: String,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn unix_secs(now_ms: i64) -> i64 {
    now_ms.div_euclid(1000)
}

/// The roles in [`Role::ALL`] order, without duplicates.
fn normalize_roles(roles: &[Role]) -> Vec<Role> {
    Role::ALL
        .into_iter()
        .filter(|r| roles.contains(r))
        .collect()
}

fn roles_text(roles: &[Role]) -> String {
    if roles.is_empty() {
        return "no role".into();
    }
    roles
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Checks a new user name: 1 to 64 characters, a lower-case letter first,
/// then lower-case letters, digits, `.`, `_` or `-`; not `scheduler` or
/// `system`.
pub fn validate_user_name(name: &str) -> Result<()> {
    let invalid = |why: &str| Error::Invalid(format!("'{name}' cannot be a user name: {why}"));
    if name.is_empty() || name.len() > MAX_USER_NAME {
        return Err(invalid("it must have 1 to 64 characters"));
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(invalid("it must start with a lower-case letter"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(invalid(
            "it may hold only lower-case letters, digits, '.', '_' and '-'",
        ));
    }
    if RESERVED_NAMES.contains(&name) {
        return Err(invalid("the audit log uses it for the daemon"));
    }
    Ok(())
}

fn session_key(raw: &[u8]) -> [u8; 32] {
    *blake3::hash(raw).as_bytes()
}

fn token_secret_hash(secret: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key(TOKEN_HASH_DOMAIN);
    h.update(secret);
    *h.finalize().as_bytes()
}

/// Splits `ct_<id>_<secret>` into the id and the secret's bytes.
fn parse_token(token: &str) -> Option<(String, Zeroizing<Vec<u8>>)> {
    let rest = token.strip_prefix(TOKEN_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    if id.len() != TOKEN_ID_BYTES * 2 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut bytes = Zeroizing::new(vec![0u8; SECRET_BYTES]);
    hex::decode_to_slice(secret, bytes.as_mut_slice()).ok()?;
    Some((id.to_ascii_lowercase(), bytes))
}

fn token_info(t: &ApiTokenRow) -> TokenInfo {
    TokenInfo {
        id: t.id.clone(),
        name: t.name.clone(),
        user: t.user.clone(),
        roles: t.roles.clone(),
        created: rfc3339_ms(t.created_ms),
        expires: t.expires_ms.map(rfc3339_ms),
        last_used: t.last_used_ms.map(rfc3339_ms),
    }
}

/// A new user's rows, checked and hashed, and the enrollment to show.
struct PreparedUser {
    phc: String,
    secret: TotpSecret,
    hashes: Vec<[u8; 32]>,
    enrollment: Enrollment,
    roles: Vec<Role>,
}

impl PreparedUser {
    fn row<'a>(&'a self, name: &'a str, now_ms: i64) -> NewUser<'a> {
        NewUser {
            name,
            password_phc: &self.phc,
            roles: &self.roles,
            totp_secret: self.secret.as_bytes(),
            recovery_hashes: &self.hashes,
            created_ms: now_ms,
        }
    }
}

/// What [`Auth::check_totp`] found.
enum TotpCheck {
    Accepted,
    Rejected(LoginFailure),
}

impl Auth {
    /// A service enforcing `policy`, with no sessions.
    pub fn new(policy: AuthPolicy) -> Result<Auth> {
        // Verified against for unknown users, so that a login for a name
        // that does not exist costs the same Argon2 work as a wrong password.
        let dummy_phc =
            password::hash_password("coffer: no such user, no such password", policy.password)?;
        Ok(Auth {
            policy: std::sync::RwLock::new(policy),
            sessions: Mutex::new(HashMap::new()),
            phantoms: Mutex::new(HashMap::new()),
            dummy_phc,
        })
    }

    /// The policy in force (a copy: a reload may replace it).
    pub fn policy(&self) -> AuthPolicy {
        match self.policy.read() {
            Ok(p) => p.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Replaces the policy (a configuration reload). Sessions and lockouts
    /// in progress are kept and measured against the new values.
    pub fn set_policy(&self, policy: AuthPolicy) {
        match self.policy.write() {
            Ok(mut p) => *p = policy,
            Err(p) => *p.into_inner() = policy,
        }
    }

    /// True until the first user exists.
    pub fn needs_bootstrap(&self, cat: &Catalog) -> Result<bool> {
        Ok(cat.count_users()? == 0)
    }

    /// A new TOTP secret and recovery codes for `user`: the rows to store and
    /// the enrollment to show once.
    fn new_enrollment(user: &str) -> Result<(TotpSecret, Vec<[u8; 32]>, Enrollment)> {
        let secret = TotpSecret::generate()?;
        let codes = recovery::generate()?;
        let hashes = codes
            .iter()
            .filter_map(|c| recovery::hash_code(user, c))
            .collect();
        let enrollment = Enrollment {
            user: user.to_string(),
            secret_base32: secret.to_base32().to_string(),
            otpauth_uri: secret.otpauth_uri(user).to_string(),
            recovery_codes: codes,
        };
        Ok((secret, hashes, enrollment))
    }

    /// Checks a new user's name, roles and password and makes their rows.
    fn prepare_user(&self, name: &str, password: &str, roles: &[Role]) -> Result<PreparedUser> {
        validate_user_name(name)?;
        let roles = normalize_roles(roles);
        if roles.is_empty() {
            return Err(Error::Invalid(format!(
                "give user '{name}' at least one role"
            )));
        }
        password::check_policy(name, password)?;
        let phc = password::hash_password(password, self.policy().password)?;
        let (secret, hashes, enrollment) = Self::new_enrollment(name)?;
        Ok(PreparedUser {
            phc,
            secret,
            hashes,
            enrollment,
            roles,
        })
    }

    /// Creates the first administrator, with an unconfirmed TOTP enrollment
    /// (their first login with a TOTP code confirms it). Fails with
    /// [`Error::State`] once any user exists.
    pub fn bootstrap(
        &self,
        cat: &Catalog,
        user: &str,
        password: &str,
        now_ms: i64,
    ) -> Result<Enrollment> {
        let u = self.prepare_user(user, password, &[Role::Administrator])?;
        let created = cat.insert_first_user(&u.row(user, now_ms))?;
        if !created {
            return Err(Error::State(
                "the appliance has users already; bootstrap creates only the first administrator"
                    .into(),
            ));
        }
        tracing::info!(user, "bootstrap: created the first administrator");
        Ok(u.enrollment)
    }

    /// Creates a user with `roles` and an unconfirmed TOTP enrollment.
    /// Needs [`Permission::UserManage`] (with fresh MFA); only an
    /// administrator may create an administrator.
    #[allow(clippy::too_many_arguments)]
    pub fn add_user(
        &self,
        cat: &Catalog,
        actor: &Principal,
        mfa: Option<&str>,
        name: &str,
        password: &str,
        roles: &[Role],
        now_ms: i64,
    ) -> Result<Enrollment> {
        self.authorize(cat, actor, Permission::UserManage, mfa, now_ms)?;
        if roles.contains(&Role::Administrator) {
            require_admin(actor, "grant the administrator role")?;
        }
        let u = self.prepare_user(name, password, roles)?;
        cat.insert_user(&u.row(name, now_ms)).map_err(|e| match e {
            coffer_catalog::Error::UserExists(n) => Error::UserExists(n),
            e => Error::Catalog(e),
        })?;
        tracing::info!(user = name, by = %actor.identity(), roles = %roles_text(&u.roles), "user added");
        Ok(u.enrollment)
    }

    fn user_row(&self, cat: &Catalog, name: &str) -> Result<UserRow> {
        cat.user(name)?
            .ok_or_else(|| Error::UserNotFound(name.to_string()))
    }

    /// Counts a failure toward `user`'s lockout and logs it.
    fn fail(&self, cat: &Catalog, user: &str, reason: LoginFailure, now_ms: i64) -> Result<()> {
        let f = cat.record_failed_login(
            user,
            now_ms,
            self.policy().lockout_after,
            now_ms.saturating_add(self.policy().lockout_for.ms()),
        )?;
        tracing::info!(
            user,
            reason = reason.as_str(),
            failed = f.failed_logins,
            locked = f.locked_until_ms.is_some(),
            "authentication failed"
        );
        Ok(())
    }

    /// Checks a TOTP code of `user` and, if it is good, records its step
    /// (atomically: a code is never accepted twice) and confirms the
    /// enrollment. The caller counts a rejection toward the lockout.
    fn check_totp(
        &self,
        cat: &Catalog,
        user: &UserRow,
        code: &str,
        now_ms: i64,
    ) -> Result<TotpCheck> {
        let secs = unix_secs(now_ms);
        let fresh = totp::verify(&user.totp_secret, code, secs, user.last_totp_step);
        let accepted = match fresh {
            Some(step) => cat.advance_totp_step(&user.name, step)?,
            None => false,
        };
        if accepted {
            if !user.totp_confirmed {
                cat.confirm_user_totp(&user.name)?;
                tracing::info!(user = %user.name, "TOTP enrollment confirmed");
            }
            return Ok(TotpCheck::Accepted);
        }
        let reason = if totp::verify(&user.totp_secret, code, secs, i64::MIN).is_some() {
            LoginFailure::ReplayedCode
        } else {
            LoginFailure::WrongCode
        };
        Ok(TotpCheck::Rejected(reason))
    }

    /// The second factor of a login: a TOTP code, or failing that a recovery
    /// code (consumed).
    fn check_second_factor(
        &self,
        cat: &Catalog,
        user: &UserRow,
        code: &str,
        now_ms: i64,
    ) -> Result<std::result::Result<SecondFactor, LoginFailure>> {
        let digits: Zeroizing<String> =
            Zeroizing::new(code.chars().filter(|c| *c != ' ').collect());
        if digits.len() == totp::DIGITS as usize && digits.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(match self.check_totp(cat, user, code, now_ms)? {
                TotpCheck::Accepted => Ok(SecondFactor::Totp),
                TotpCheck::Rejected(reason) => Err(reason),
            });
        }
        match recovery::hash_code(&user.name, code) {
            Some(hash) if cat.consume_recovery_code(&user.name, &hash, now_ms)? => {
                tracing::warn!(user = %user.name, "login with a recovery code");
                Ok(Ok(SecondFactor::Recovery))
            }
            _ => Ok(Err(LoginFailure::WrongCode)),
        }
    }

    fn phantom_key(user: &str) -> [u8; 32] {
        let mut h = blake3::Hasher::new_derive_key("coffer unknown login name v1");
        h.update(user.as_bytes());
        *h.finalize().as_bytes()
    }

    /// Opens a session for `user` proved by `password` and `code` (a TOTP
    /// code, or a recovery code). The first login with a TOTP code confirms
    /// the enrollment; the login itself proves fresh MFA.
    ///
    /// Wrong user, password or code all fail alike with
    /// [`Error::LoginFailed`] (an unknown user costs the same Argon2 work),
    /// and count toward a lockout: after
    /// [`AuthPolicy::lockout_after`] failures the user gets
    /// [`Error::LockedOut`], even with the right credentials, for
    /// [`AuthPolicy::lockout_for`]. Unknown names are locked out alike, so
    /// the answers do not tell which names exist.
    pub fn login(
        &self,
        cat: &Catalog,
        user: &str,
        password: &str,
        code: &str,
        now_ms: i64,
    ) -> Result<LoginResult> {
        let Some(row) = cat.user(user)? else {
            return Err(self.unknown_user_login(user, password, now_ms));
        };
        if let Some(until_ms) = row.locked_until_ms.filter(|&u| u > now_ms) {
            tracing::info!(user, "login refused: locked out");
            return Err(Error::LockedOut { until_ms });
        }
        let outcome = if password::verify_password(password, &row.password_phc)? {
            self.check_second_factor(cat, &row, code, now_ms)?
        } else {
            Err(LoginFailure::WrongPassword)
        };
        let factor = match outcome {
            Ok(f) => f,
            Err(reason) => {
                self.fail(cat, user, reason, now_ms)?;
                return Err(Error::LoginFailed { reason });
            }
        };
        cat.record_login(user, now_ms)?;
        let recovery_codes_left = match factor {
            SecondFactor::Recovery => Some(cat.unused_recovery_codes(user)?),
            SecondFactor::Totp => None,
        };
        let session = self.open_session(user, now_ms)?;
        tracing::info!(user, "login");
        Ok(LoginResult {
            session: session.to_string(),
            user: user.to_string(),
            roles: row.roles,
            idle_timeout_secs: self.policy().session_idle.secs(),
            recovery_codes_left,
        })
    }

    /// A login for a name with no user: the same Argon2 work, and a lockout
    /// kept in memory, so that the answer is the same as for a real user.
    fn unknown_user_login(&self, user: &str, password: &str, now_ms: i64) -> Error {
        let key = Self::phantom_key(user);
        if let Some(until_ms) = lock(&self.phantoms)
            .get(&key)
            .and_then(|p| p.locked_until_ms)
            .filter(|&u| u > now_ms)
        {
            return Error::LockedOut { until_ms };
        }
        // The result is meaningless; the work is the point.
        let _ = password::verify_password(password, &self.dummy_phc);
        let mut phantoms = lock(&self.phantoms);
        if phantoms.len() >= MAX_PHANTOMS && !phantoms.contains_key(&key) {
            phantoms.clear();
        }
        let p = phantoms.entry(key).or_default();
        if p.locked_until_ms.is_some_and(|u| u <= now_ms) {
            *p = Phantom::default();
        }
        p.failed = p.failed.saturating_add(1);
        if p.failed >= self.policy().lockout_after {
            p.locked_until_ms = Some(now_ms.saturating_add(self.policy().lockout_for.ms()));
        }
        tracing::info!(
            reason = LoginFailure::UnknownUser.as_str(),
            "authentication failed"
        );
        Error::LoginFailed {
            reason: LoginFailure::UnknownUser,
        }
    }

    /// A new session for `user`; returns the credential (hex), of which only
    /// the hash is kept.
    fn open_session(&self, user: &str, now_ms: i64) -> Result<Zeroizing<String>> {
        let mut raw = Zeroizing::new([0u8; SECRET_BYTES]);
        random(raw.as_mut_slice(), "a session token")?;
        let key = session_key(raw.as_slice());
        let idle = self.policy().session_idle.ms();
        let mut sessions = lock(&self.sessions);
        sessions.retain(|_, s| match s.ended {
            Some((_, at)) => now_ms - at < SESSION_TOMBSTONE_MS,
            None => now_ms - s.last_seen_ms < idle.saturating_add(SESSION_TOMBSTONE_MS),
        });
        sessions.insert(
            key,
            Session {
                user: user.to_string(),
                last_seen_ms: now_ms,
                mfa_fresh_until_ms: now_ms.saturating_add(self.policy().fresh_mfa.ms()),
                ended: None,
            },
        );
        Ok(Zeroizing::new(hex::encode(raw.as_slice())))
    }

    /// Checks a credential and says who it belongs to.
    ///
    /// A session unused for [`AuthPolicy::session_idle`] ends
    /// ([`Error::SessionExpired`]); each use restarts the idle clock. A token
    /// (`ct_<id>_<secret>`) is checked by its hash in constant time; an
    /// unknown, expired or revoked token is [`Error::Unauthenticated`]. The
    /// roles are the user's current roles (for a token, only those it was
    /// also given).
    pub fn authenticate(
        &self,
        cat: &Catalog,
        credential: &Credential,
        now_ms: i64,
    ) -> Result<Principal> {
        match credential {
            Credential::Session(s) => self.authenticate_session(cat, s, now_ms),
            Credential::Token(t) => self.authenticate_token(cat, t, now_ms),
        }
    }

    fn authenticate_session(&self, cat: &Catalog, session: &str, now_ms: i64) -> Result<Principal> {
        let mut raw = Zeroizing::new([0u8; SECRET_BYTES]);
        hex::decode_to_slice(session, raw.as_mut_slice())
            .map_err(|_| Error::Unauthenticated("the session credential is malformed"))?;
        let key = session_key(raw.as_slice());
        let (user, fresh_until) = {
            let mut sessions = lock(&self.sessions);
            let s = sessions
                .get_mut(&key)
                .ok_or(Error::Unauthenticated("no such session"))?;
            if let Some((why, _)) = s.ended {
                return Err(Error::SessionExpired(why));
            }
            if now_ms - s.last_seen_ms > self.policy().session_idle.ms() {
                s.ended = Some(("idle timeout", now_ms));
                tracing::info!(user = %s.user, "session ended: idle timeout");
                return Err(Error::SessionExpired("idle timeout"));
            }
            s.last_seen_ms = s.last_seen_ms.max(now_ms);
            (s.user.clone(), s.mfa_fresh_until_ms)
        };
        let Some(row) = cat.user(&user)? else {
            self.end_sessions(&user, None, "user removed", now_ms);
            return Err(Error::SessionExpired("user removed"));
        };
        Ok(Principal {
            user,
            roles: normalize_roles(&row.roles),
            source: Source::Console,
            token_id: None,
            mfa_fresh_until_ms: Some(fresh_until),
            session: Some(key),
        })
    }

    fn authenticate_token(&self, cat: &Catalog, token: &str, now_ms: i64) -> Result<Principal> {
        let (id, secret) =
            parse_token(token).ok_or(Error::Unauthenticated("the API token is malformed"))?;
        let presented = blake3::Hash::from(token_secret_hash(&secret));
        let Some(row) = cat.api_token(&id)? else {
            return Err(Error::Unauthenticated("no such API token"));
        };
        // blake3::Hash equality is constant-time.
        if presented != blake3::Hash::from(row.secret_hash) {
            tracing::info!(token = %id, "API token with a wrong secret");
            return Err(Error::Unauthenticated("no such API token"));
        }
        if row.revoked_ms.is_some() {
            return Err(Error::Unauthenticated("the API token was revoked"));
        }
        if row.expires_ms.is_some_and(|e| e <= now_ms) {
            return Err(Error::Unauthenticated("the API token has expired"));
        }
        let Some(owner) = cat.user(&row.user)? else {
            return Err(Error::Unauthenticated(
                "the API token's user no longer exists",
            ));
        };
        if row
            .last_used_ms
            .is_none_or(|t| now_ms - t >= TOKEN_TOUCH_MS)
        {
            cat.touch_api_token(&id, now_ms)?;
        }
        let roles = normalize_roles(
            &row.roles
                .iter()
                .copied()
                .filter(|r| owner.roles.contains(r))
                .collect::<Vec<_>>(),
        );
        Ok(Principal {
            user: row.user,
            roles,
            source: Source::Api,
            token_id: Some(id),
            mfa_fresh_until_ms: None,
            session: None,
        })
    }

    /// Proves fresh MFA for the principal's session with a TOTP code: for
    /// [`AuthPolicy::fresh_mfa`] from now, actions that need it are allowed
    /// without another code. Returns until when. A wrong or reused code
    /// counts toward the lockout. Tokens have no session to keep this in:
    /// they send a code with each request instead.
    pub fn mfa_verify(
        &self,
        cat: &Catalog,
        principal: &Principal,
        code: &str,
        now_ms: i64,
    ) -> Result<i64> {
        let Some(key) = principal.session else {
            return Err(Error::Invalid(
                "fresh MFA is kept by console sessions; with an API token, send a TOTP code \
                 with each request that needs it"
                    .into(),
            ));
        };
        let row = self.user_row(cat, &principal.user)?;
        if let Some(until_ms) = row.locked_until_ms.filter(|&u| u > now_ms) {
            return Err(Error::LockedOut { until_ms });
        }
        match self.check_totp(cat, &row, code, now_ms)? {
            TotpCheck::Accepted => Ok(self.refresh_mfa(&key, now_ms)),
            TotpCheck::Rejected(reason) => {
                self.fail(cat, &principal.user, reason, now_ms)?;
                Err(Error::CodeRejected { reason })
            }
        }
    }

    fn refresh_mfa(&self, key: &[u8; 32], now_ms: i64) -> i64 {
        let until = now_ms.saturating_add(self.policy().fresh_mfa.ms());
        if let Some(s) = lock(&self.sessions).get_mut(key) {
            s.mfa_fresh_until_ms = s.mfa_fresh_until_ms.max(until);
        }
        until
    }

    /// Whether `principal` may do what `p` allows now.
    ///
    /// [`Error::Forbidden`] if none of its roles holds `p`. If `p` needs
    /// fresh MFA, the session's last TOTP code must be recent, or `inline_mfa`
    /// must be a valid TOTP code of the user (consumed; for a session it also
    /// refreshes the window); otherwise [`Error::FreshMfaRequired`]. A token
    /// can prove fresh MFA only with an inline code of its owner.
    pub fn authorize(
        &self,
        cat: &Catalog,
        principal: &Principal,
        p: Permission,
        inline_mfa: Option<&str>,
        now_ms: i64,
    ) -> Result<()> {
        if !principal.holds(p) {
            return Err(Error::Forbidden(format!(
                "{} ({}) may not {}",
                principal.identity(),
                roles_text(&principal.roles),
                p.as_str()
            )));
        }
        if !p.needs_fresh_mfa() {
            return Ok(());
        }
        if let Some(key) = &principal.session {
            let live = lock(&self.sessions)
                .get(key)
                .filter(|s| s.ended.is_none())
                .map(|s| s.mfa_fresh_until_ms);
            if live.is_some_and(|until| now_ms < until) {
                return Ok(());
            }
        }
        let Some(code) = inline_mfa else {
            return Err(Error::FreshMfaRequired {
                permission: p,
                reason: "",
            });
        };
        let row = self.user_row(cat, &principal.user)?;
        if let Some(until_ms) = row.locked_until_ms.filter(|&u| u > now_ms) {
            return Err(Error::LockedOut { until_ms });
        }
        match self.check_totp(cat, &row, code, now_ms)? {
            TotpCheck::Accepted => {
                if let Some(key) = &principal.session {
                    self.refresh_mfa(key, now_ms);
                }
                Ok(())
            }
            TotpCheck::Rejected(reason) => {
                self.fail(cat, &principal.user, reason, now_ms)?;
                Err(Error::FreshMfaRequired {
                    permission: p,
                    reason: "the code given is wrong or was used already",
                })
            }
        }
    }

    /// Ends the principal's session.
    pub fn logout(&self, principal: &Principal, now_ms: i64) -> Result<()> {
        let Some(key) = principal.session else {
            return Err(Error::Invalid(
                "an API token has no session to end; revoke it instead".into(),
            ));
        };
        if let Some(s) = lock(&self.sessions).get_mut(&key) {
            s.ended.get_or_insert(("logged out", now_ms));
        }
        tracing::info!(user = %principal.user, "logout");
        Ok(())
    }

    /// Ends every session of `user` except `keep`.
    fn end_sessions(&self, user: &str, keep: Option<&[u8; 32]>, why: &'static str, now_ms: i64) {
        let mut n = 0;
        for (k, s) in lock(&self.sessions).iter_mut() {
            if s.user == user && s.ended.is_none() && Some(k) != keep {
                s.ended = Some((why, now_ms));
                n += 1;
            }
        }
        if n > 0 {
            tracing::info!(user, sessions = n, reason = why, "sessions ended");
        }
    }

    /// How many sessions are open (not ended, not idle past the timeout).
    pub fn open_sessions(&self, now_ms: i64) -> usize {
        let idle = self.policy().session_idle.ms();
        lock(&self.sessions)
            .values()
            .filter(|s| s.ended.is_none() && now_ms - s.last_seen_ms <= idle)
            .count()
    }

    /// Changes the principal's own password, given the current one. Only
    /// from a console session (a stolen token must not take over the
    /// account). Ends the user's other sessions.
    pub fn change_password(
        &self,
        cat: &Catalog,
        principal: &Principal,
        old: &str,
        new: &str,
        now_ms: i64,
    ) -> Result<()> {
        self.authorize(cat, principal, Permission::PasswordChangeOwn, None, now_ms)?;
        let Some(key) = principal.session else {
            return Err(Error::Forbidden(
                "a password is changed from a console session, not with an API token".into(),
            ));
        };
        let row = self.user_row(cat, &principal.user)?;
        if let Some(until_ms) = row.locked_until_ms.filter(|&u| u > now_ms) {
            return Err(Error::LockedOut { until_ms });
        }
        if !password::verify_password(old, &row.password_phc)? {
            self.fail(cat, &row.name, LoginFailure::WrongPassword, now_ms)?;
            return Err(Error::LoginFailed {
                reason: LoginFailure::WrongPassword,
            });
        }
        password::check_policy(&row.name, new)?;
        let phc = password::hash_password(new, self.policy().password)?;
        cat.set_user_password(&row.name, &phc)?;
        self.end_sessions(&row.name, Some(&key), "password changed", now_ms);
        tracing::info!(user = %row.name, "password changed");
        Ok(())
    }

    /// Checks that `actor` may manage user `target` (fresh MFA included):
    /// an administrator account only by an administrator.
    fn authorize_user_manage(
        &self,
        cat: &Catalog,
        actor: &Principal,
        mfa: Option<&str>,
        target: &UserRow,
        what: &str,
        now_ms: i64,
    ) -> Result<()> {
        self.authorize(cat, actor, Permission::UserManage, mfa, now_ms)?;
        if target.roles.contains(&Role::Administrator) {
            require_admin(actor, what)?;
        }
        Ok(())
    }

    /// Replaces a user's roles. Needs [`Permission::UserManage`] (fresh
    /// MFA); nobody changes their own roles; only an administrator grants or
    /// takes away the administrator role. Tokens of the user lose the roles
    /// the user lost at once (effective roles are an intersection).
    pub fn set_roles(
        &self,
        cat: &Catalog,
        actor: &Principal,
        mfa: Option<&str>,
        name: &str,
        roles: &[Role],
        now_ms: i64,
    ) -> Result<()> {
        let roles = normalize_roles(roles);
        if roles.is_empty() {
            return Err(Error::Invalid(format!(
                "give user '{name}' at least one role"
            )));
        }
        if actor.user == name {
            return Err(Error::Forbidden("nobody may change their own roles".into()));
        }
        let target = self.user_row(cat, name)?;
        self.authorize_user_manage(
            cat,
            actor,
            mfa,
            &target,
            "change an administrator's roles",
            now_ms,
        )?;
        if roles.contains(&Role::Administrator) {
            require_admin(actor, "grant the administrator role")?;
        }
        cat.set_user_roles(name, &roles)?;
        tracing::info!(user = name, by = %actor.identity(), roles = %roles_text(&roles), "roles changed");
        Ok(())
    }

    /// Removes a user, their tokens and recovery codes, and ends their
    /// sessions. Needs [`Permission::UserManage`] (fresh MFA); nobody
    /// removes themselves; only an administrator removes an administrator.
    pub fn remove_user(
        &self,
        cat: &Catalog,
        actor: &Principal,
        mfa: Option<&str>,
        name: &str,
        now_ms: i64,
    ) -> Result<()> {
        if actor.user == name {
            return Err(Error::Forbidden(
                "nobody may remove their own account".into(),
            ));
        }
        let target = self.user_row(cat, name)?;
        self.authorize_user_manage(cat, actor, mfa, &target, "remove an administrator", now_ms)?;
        if !cat.delete_user(name)? {
            return Err(Error::UserNotFound(name.to_string()));
        }
        self.end_sessions(name, None, "user removed", now_ms);
        tracing::info!(user = name, by = %actor.identity(), "user removed");
        Ok(())
    }

    /// Lifts a lockout. Needs [`Permission::UserManage`] (fresh MFA).
    pub fn unlock_user(
        &self,
        cat: &Catalog,
        actor: &Principal,
        mfa: Option<&str>,
        name: &str,
        now_ms: i64,
    ) -> Result<()> {
        self.authorize(cat, actor, Permission::UserManage, mfa, now_ms)?;
        cat.unlock_user(name).map_err(|e| match e {
            coffer_catalog::Error::UserNotFound(n) => Error::UserNotFound(n),
            e => Error::Catalog(e),
        })?;
        tracing::info!(user = name, by = %actor.identity(), "user unlocked");
        Ok(())
    }

    /// Replaces a user's TOTP secret and recovery codes (a lost phone) and
    /// ends their other sessions; returns the new enrollment, shown once.
    /// Needs [`Permission::UserManage`] (fresh MFA); only an administrator
    /// resets an administrator's.
    pub fn reset_mfa(
        &self,
        cat: &Catalog,
        actor: &Principal,
        mfa: Option<&str>,
        name: &str,
        now_ms: i64,
    ) -> Result<Enrollment> {
        let target = self.user_row(cat, name)?;
        self.authorize_user_manage(
            cat,
            actor,
            mfa,
            &target,
            "reset an administrator's MFA",
            now_ms,
        )?;
        let (secret, hashes, enrollment) = Self::new_enrollment(name)?;
        cat.reset_user_mfa(name, secret.as_bytes(), &hashes)?;
        self.end_sessions(name, actor.session.as_ref(), "MFA reset", now_ms);
        tracing::info!(user = name, by = %actor.identity(), "MFA reset");
        Ok(enrollment)
    }

    /// Every user, without secrets. Needs [`Permission::UserRead`].
    pub fn list_users(
        &self,
        cat: &Catalog,
        actor: &Principal,
        now_ms: i64,
    ) -> Result<Vec<UserInfo>> {
        self.authorize(cat, actor, Permission::UserRead, None, now_ms)?;
        cat.users()?
            .into_iter()
            .map(|u| {
                Ok(UserInfo {
                    recovery_codes_left: cat.unused_recovery_codes(&u.name)?,
                    roles: normalize_roles(&u.roles),
                    mfa_enrolled: u.totp_confirmed,
                    locked_until: u.locked_until_ms.filter(|&t| t > now_ms).map(rfc3339_ms),
                    failed_logins: u.failed_logins,
                    created: rfc3339_ms(u.created_ms),
                    last_login: u.last_login_ms.map(rfc3339_ms),
                    name: u.name,
                })
            })
            .collect()
    }

    /// Creates an API token for the principal with `roles` (each one the
    /// principal holds), valid for `expires_in` (default
    /// [`AuthPolicy::token_default_lifetime`], at most
    /// [`AuthPolicy::token_max_lifetime`]). Only from a console session: a
    /// token cannot mint tokens. The secret is in the result only.
    pub fn create_token(
        &self,
        cat: &Catalog,
        actor: &Principal,
        name: &str,
        roles: &[Role],
        expires_in: Option<Duration>,
        now_ms: i64,
    ) -> Result<NewToken> {
        self.authorize(cat, actor, Permission::TokenManageOwn, None, now_ms)?;
        if actor.session.is_none() {
            return Err(Error::Forbidden(
                "API tokens are created from a console session, not with another token".into(),
            ));
        }
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(Error::Invalid(
                "a token needs a name (what it is for) of at most 100 characters".into(),
            ));
        }
        let roles = normalize_roles(roles);
        if roles.is_empty() {
            return Err(Error::Invalid("give the token at least one role".into()));
        }
        if let Some(r) = roles.iter().find(|r| !actor.roles.contains(r)) {
            return Err(Error::Forbidden(format!(
                "a token cannot have the role {r}, which {} does not hold",
                actor.user
            )));
        }
        let lifetime = expires_in.unwrap_or(self.policy().token_default_lifetime);
        if lifetime.secs() == 0 || lifetime > self.policy().token_max_lifetime {
            return Err(Error::Invalid(format!(
                "a token's lifetime must be between 1s and {}",
                self.policy().token_max_lifetime
            )));
        }
        let mut id = [0u8; TOKEN_ID_BYTES];
        random(&mut id, "an API token id")?;
        let mut secret = Zeroizing::new([0u8; SECRET_BYTES]);
        random(secret.as_mut_slice(), "an API token secret")?;
        let row = ApiTokenRow {
            id: hex::encode(id),
            user: actor.user.clone(),
            name: name.to_string(),
            secret_hash: token_secret_hash(secret.as_slice()),
            roles,
            created_ms: now_ms,
            expires_ms: Some(now_ms.saturating_add(lifetime.ms())),
            last_used_ms: None,
            revoked_ms: None,
        };
        cat.insert_api_token(&row)?;
        tracing::info!(token = %row.id, user = %row.user, roles = %roles_text(&row.roles), "API token created");
        let token = format!(
            "{TOKEN_PREFIX}{}_{}",
            row.id,
            hex::encode(secret.as_slice())
        );
        Ok(NewToken {
            info: token_info(&row),
            token,
        })
    }

    /// Tokens not revoked: the principal's own, or every user's with
    /// [`Permission::TokenManageAll`].
    pub fn list_tokens(
        &self,
        cat: &Catalog,
        actor: &Principal,
        now_ms: i64,
    ) -> Result<Vec<TokenInfo>> {
        self.authorize(cat, actor, Permission::TokenManageOwn, None, now_ms)?;
        let user = (!actor.holds(Permission::TokenManageAll)).then_some(actor.user.as_str());
        Ok(cat
            .api_tokens(user)?
            .iter()
            .filter(|t| t.revoked_ms.is_none())
            .map(token_info)
            .collect())
    }

    /// Revokes a token (`<id>` or `ct_<id>`): one's own, or anyone's with
    /// [`Permission::TokenManageAll`]. Revoking a revoked token is a no-op.
    pub fn revoke_token(
        &self,
        cat: &Catalog,
        actor: &Principal,
        id: &str,
        now_ms: i64,
    ) -> Result<()> {
        let id = id
            .strip_prefix(TOKEN_PREFIX)
            .unwrap_or(id)
            .to_ascii_lowercase();
        let row = cat.api_token(&id)?;
        let visible = row
            .as_ref()
            .filter(|t| t.user == actor.user || actor.holds(Permission::TokenManageAll));
        let Some(row) = visible else {
            // Not saying whether someone else's token exists.
            self.authorize(cat, actor, Permission::TokenManageOwn, None, now_ms)?;
            return Err(Error::TokenNotFound(id));
        };
        let p = if row.user == actor.user {
            Permission::TokenManageOwn
        } else {
            Permission::TokenManageAll
        };
        self.authorize(cat, actor, p, None, now_ms)?;
        if cat.revoke_api_token(&id, now_ms)? {
            tracing::info!(token = %id, user = %row.user, by = %actor.identity(), "API token revoked");
        }
        Ok(())
    }
}

fn require_admin(actor: &Principal, what: &str) -> Result<()> {
    if actor.roles.contains(&Role::Administrator) {
        Ok(())
    } else {
        Err(Error::Forbidden(format!(
            "only an administrator may {what}"
        )))
    }
}
