//! Users, recovery codes, API tokens and the hash-chained audit log: the
//! rows `coffer-auth` keeps, and the only SQL that touches their tables.
//!
//! Policy (password hashing, TOTP, lockout thresholds, what a chain hash is)
//! lives in `coffer-auth`; this module stores what it is given. Where a
//! read-modify-write would race between connections (a failed-login counter,
//! a TOTP step, a recovery code, the audit chain's head) the change is one
//! statement or one `BEGIN IMMEDIATE` transaction.

use std::fmt;

use coffer_types::api::{AuditFilter, Role, Source};
use rusqlite::{OptionalExtension, Row, params};
use zeroize::Zeroizing;

use crate::{Catalog, Error, Result};

/// A user as stored. The password hash and the TOTP secret are secrets:
/// `Debug` leaves them out and the secret is zeroized on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct UserRow {
    /// Login name.
    pub name: String,
    /// Argon2id PHC string.
    pub password_phc: String,
    /// Roles held.
    pub roles: Vec<Role>,
    /// The TOTP secret (raw bytes).
    pub totp_secret: Zeroizing<Vec<u8>>,
    /// Whether a first TOTP login confirmed the enrollment.
    pub totp_confirmed: bool,
    /// The newest TOTP time step accepted (0: none yet); a code of this step
    /// or an older one is never accepted again.
    pub last_totp_step: i64,
    /// Failed logins since the last success (or the last lockout's end).
    pub failed_logins: u32,
    /// Locked out until then, milliseconds since the Unix epoch.
    pub locked_until_ms: Option<i64>,
    /// Created, milliseconds since the Unix epoch.
    pub created_ms: i64,
    /// Last successful login, milliseconds since the Unix epoch.
    pub last_login_ms: Option<i64>,
}

impl fmt::Debug for UserRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserRow")
            .field("name", &self.name)
            .field("password_phc", &"<redacted>")
            .field("roles", &self.roles)
            .field("totp_secret", &"<redacted>")
            .field("totp_confirmed", &self.totp_confirmed)
            .field("last_totp_step", &self.last_totp_step)
            .field("failed_logins", &self.failed_logins)
            .field("locked_until_ms", &self.locked_until_ms)
            .field("created_ms", &self.created_ms)
            .field("last_login_ms", &self.last_login_ms)
            .finish()
    }
}

/// A user to create, for [`Catalog::insert_user`].
#[derive(Clone, PartialEq, Eq)]
pub struct NewUser<'a> {
    /// Login name.
    pub name: &'a str,
    /// Argon2id PHC string.
    pub password_phc: &'a str,
    /// Roles.
    pub roles: &'a [Role],
    /// The TOTP secret (raw bytes); enrollment starts unconfirmed.
    pub totp_secret: &'a [u8],
    /// Blake3 hashes of the recovery codes.
    pub recovery_hashes: &'a [[u8; 32]],
    /// Now, milliseconds since the Unix epoch.
    pub created_ms: i64,
}

impl fmt::Debug for NewUser<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewUser")
            .field("name", &self.name)
            .field("roles", &self.roles)
            .field("created_ms", &self.created_ms)
            .finish_non_exhaustive()
    }
}

/// The counter after [`Catalog::record_failed_login`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailedLogin {
    /// Failed logins counted now.
    pub failed_logins: u32,
    /// Locked out until then (set when the counter reached the threshold).
    pub locked_until_ms: Option<i64>,
}

/// An API token as stored (its secret only as a hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiTokenRow {
    /// The public id (`ct_<id>_…`).
    pub id: String,
    /// Owning user.
    pub user: String,
    /// What it is for.
    pub name: String,
    /// Blake3 hash of the secret half.
    pub secret_hash: [u8; 32],
    /// Roles it may use.
    pub roles: Vec<Role>,
    /// Created, milliseconds since the Unix epoch.
    pub created_ms: i64,
    /// Expires then.
    pub expires_ms: Option<i64>,
    /// Last used then.
    pub last_used_ms: Option<i64>,
    /// Revoked then.
    pub revoked_ms: Option<i64>,
}

/// An audit record before it is chained, for [`Catalog::append_audit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAuditRecord {
    /// When, milliseconds since the Unix epoch.
    pub time_ms: i64,
    /// Who: a user, `token:<id> (<user>)`, `scheduler`, `system`.
    pub identity: String,
    /// Where from.
    pub source: Source,
    /// What, e.g. `login`, `asset.add`.
    pub action: String,
    /// On what; empty when none.
    pub target: String,
    /// `ok`, `denied`, `failed`.
    pub result: String,
    /// The reason for a refusal, a summary of a change.
    pub detail: String,
}

/// One stored audit entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    /// Position in the chain, from 1.
    pub seq: i64,
    /// The record.
    pub record: NewAuditRecord,
    /// The previous entry's hash (32 zero bytes before the first).
    pub prev_hash: [u8; 32],
    /// This entry's hash.
    pub hash: [u8; 32],
}

/// How [`Catalog::append_audit`] computes an entry's hash: from the
/// previous entry's hash, the record and its sequence number.
pub type AuditChainFn = dyn Fn(&[u8; 32], &NewAuditRecord, i64) -> [u8; 32];

/// The chain's genesis link: what the first entry's `prev_hash` is.
pub const AUDIT_GENESIS: [u8; 32] = [0; 32];

/// How many audit entries [`Catalog::audit_rows`] returns when the filter
/// sets no limit.
pub const AUDIT_DEFAULT_LIMIT: u32 = 100;

const USER_COLUMNS: &str = "name, password_phc, roles_json, totp_secret, totp_confirmed, \
     last_totp_step, failed_logins, locked_until_ms, created_ms, last_login_ms";

const TOKEN_COLUMNS: &str = "id, user, name, secret_hash, roles_json, created_ms, expires_ms, \
     last_used_ms, revoked_ms";

const AUDIT_COLUMNS: &str =
    "seq, time_ms, identity, source, action, target, result, detail, prev_hash, hash";

type RawUser = (
    String,
    String,
    String,
    Zeroizing<Vec<u8>>,
    bool,
    i64,
    i64,
    Option<i64>,
    i64,
    Option<i64>,
);

fn raw_user(r: &Row<'_>) -> rusqlite::Result<RawUser> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        Zeroizing::new(r.get(3)?),
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
    ))
}

type RawToken = (
    String,
    String,
    String,
    Vec<u8>,
    String,
    i64,
    Option<i64>,
    Option<i64>,
    Option<i64>,
);

type RawAudit = (
    i64,
    i64,
    String,
    String,
    String,
    String,
    String,
    String,
    Vec<u8>,
    Vec<u8>,
);

fn roles_to_json(roles: &[Role]) -> Result<String> {
    serde_json::to_string(roles).map_err(|error| Error::Encode {
        what: "roles",
        error,
    })
}

impl Catalog {
    fn roles_from_json(&self, json: &str, row: &str) -> Result<Vec<Role>> {
        serde_json::from_str(json)
            .map_err(|e| Error::corrupt(self.path(), format!("{row}: roles_json: {e}")))
    }

    fn user_from(&self, raw: RawUser) -> Result<UserRow> {
        let (
            name,
            password_phc,
            roles_json,
            totp_secret,
            totp_confirmed,
            last_totp_step,
            failed_logins,
            locked_until_ms,
            created_ms,
            last_login_ms,
        ) = raw;
        let roles = self.roles_from_json(&roles_json, &format!("user {name}"))?;
        let failed_logins = u32::try_from(failed_logins).map_err(|_| {
            Error::corrupt(
                self.path(),
                format!("user {name}: failed_logins is {failed_logins}"),
            )
        })?;
        Ok(UserRow {
            name,
            password_phc,
            roles,
            totp_secret,
            totp_confirmed,
            last_totp_step,
            failed_logins,
            locked_until_ms,
            created_ms,
            last_login_ms,
        })
    }

    fn token_from(&self, raw: RawToken) -> Result<ApiTokenRow> {
        let (
            id,
            user,
            name,
            secret_hash,
            roles_json,
            created_ms,
            expires_ms,
            last_used_ms,
            revoked_ms,
        ) = raw;
        let roles = self.roles_from_json(&roles_json, &format!("API token {id}"))?;
        let secret_hash = <[u8; 32]>::try_from(secret_hash.as_slice()).map_err(|_| {
            Error::corrupt(
                self.path(),
                format!("API token {id}: secret_hash is not 32 bytes"),
            )
        })?;
        Ok(ApiTokenRow {
            id,
            user,
            name,
            secret_hash,
            roles,
            created_ms,
            expires_ms,
            last_used_ms,
            revoked_ms,
        })
    }

    fn audit_from(&self, raw: RawAudit) -> Result<AuditRow> {
        let (seq, time_ms, identity, source, action, target, result, detail, prev, hash) = raw;
        let bad = |what: &str| Error::corrupt(self.path(), format!("audit entry {seq}: {what}"));
        let source = source
            .parse::<Source>()
            .map_err(|_| bad(&format!("unknown source '{source}'")))?;
        let prev_hash =
            <[u8; 32]>::try_from(prev.as_slice()).map_err(|_| bad("prev_hash is not 32 bytes"))?;
        let hash =
            <[u8; 32]>::try_from(hash.as_slice()).map_err(|_| bad("hash is not 32 bytes"))?;
        Ok(AuditRow {
            seq,
            record: NewAuditRecord {
                time_ms,
                identity,
                source,
                action,
                target,
                result,
                detail,
            },
            prev_hash,
            hash,
        })
    }

    // ----- users -----

    /// Creates a user with an unconfirmed TOTP enrollment and their recovery
    /// codes, in one transaction. Fails with [`Error::UserExists`] if the
    /// name is taken.
    pub fn insert_user(&self, u: &NewUser<'_>) -> Result<()> {
        let what = "creating a user";
        let tx = self.write_tx(what)?;
        insert_user_in(&tx, u, self)?;
        tx.commit().map_err(self.sql(what))
    }

    /// Creates the first user: like [`Catalog::insert_user`], but only while
    /// no user exists (checked in the same transaction, so two concurrent
    /// bootstraps cannot both succeed). Returns whether it was created.
    pub fn insert_first_user(&self, u: &NewUser<'_>) -> Result<bool> {
        let what = "creating the first user";
        let tx = self.write_tx(what)?;
        let count: i64 = tx
            .query_row("SELECT count(*) FROM users", [], |r| r.get(0))
            .map_err(self.sql(what))?;
        if count > 0 {
            return Ok(false);
        }
        insert_user_in(&tx, u, self)?;
        tx.commit().map_err(self.sql(what))?;
        Ok(true)
    }

    /// One user by name.
    pub fn user(&self, name: &str) -> Result<Option<UserRow>> {
        let raw = self
            .conn
            .query_row(
                &format!("SELECT {USER_COLUMNS} FROM users WHERE name = ?1"),
                [name],
                raw_user,
            )
            .optional()
            .map_err(self.sql("reading a user"))?;
        raw.map(|r| self.user_from(r)).transpose()
    }

    /// Every user, by name.
    pub fn users(&self) -> Result<Vec<UserRow>> {
        self.rows(
            &format!("SELECT {USER_COLUMNS} FROM users ORDER BY name"),
            "listing users",
            raw_user,
        )?
        .into_iter()
        .map(|r| self.user_from(r))
        .collect()
    }

    /// How many users exist.
    pub fn count_users(&self) -> Result<u64> {
        let n: i64 = self
            .conn
            .query_row("SELECT count(*) FROM users", [], |r| r.get(0))
            .map_err(self.sql("counting users"))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Runs an `UPDATE users … WHERE name = ?1` and fails with
    /// [`Error::UserNotFound`] when no row changed.
    fn update_user(
        &self,
        name: &str,
        sql: &str,
        params: &[&dyn rusqlite::ToSql],
        what: &'static str,
    ) -> Result<()> {
        let mut all: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(params.len() + 1);
        all.push(&name);
        all.extend_from_slice(params);
        let changed = self
            .conn
            .execute(sql, all.as_slice())
            .map_err(self.sql(what))?;
        if changed == 0 {
            return Err(Error::UserNotFound(name.to_string()));
        }
        Ok(())
    }

    /// Replaces a user's password hash.
    pub fn set_user_password(&self, name: &str, password_phc: &str) -> Result<()> {
        self.update_user(
            name,
            "UPDATE users SET password_phc = ?2 WHERE name = ?1",
            &[&password_phc],
            "changing a user's password",
        )
    }

    /// Replaces a user's roles.
    pub fn set_user_roles(&self, name: &str, roles: &[Role]) -> Result<()> {
        let json = roles_to_json(roles)?;
        self.update_user(
            name,
            "UPDATE users SET roles_json = ?2 WHERE name = ?1",
            &[&json],
            "changing a user's roles",
        )
    }

    /// Replaces a user's TOTP secret and recovery codes, in one transaction:
    /// the enrollment becomes unconfirmed and the TOTP step starts over.
    pub fn reset_user_mfa(
        &self,
        name: &str,
        totp_secret: &[u8],
        recovery_hashes: &[[u8; 32]],
    ) -> Result<()> {
        let what = "resetting a user's MFA";
        let tx = self.write_tx(what)?;
        let changed = tx
            .execute(
                "UPDATE users SET totp_secret = ?2, totp_confirmed = 0, last_totp_step = 0 \
                 WHERE name = ?1",
                params![name, totp_secret],
            )
            .map_err(self.sql(what))?;
        if changed == 0 {
            return Err(Error::UserNotFound(name.to_string()));
        }
        replace_recovery_in(&tx, name, recovery_hashes).map_err(self.sql(what))?;
        tx.commit().map_err(self.sql(what))
    }

    /// Marks a user's TOTP enrollment confirmed.
    pub fn confirm_user_totp(&self, name: &str) -> Result<()> {
        self.update_user(
            name,
            "UPDATE users SET totp_confirmed = 1 WHERE name = ?1",
            &[],
            "confirming a user's TOTP enrollment",
        )
    }

    /// Records that the TOTP code of time step `step` was used, if `step` is
    /// newer than the last one used: one statement, so of two concurrent uses
    /// of a code only one succeeds. Returns whether the step was newer.
    pub fn advance_totp_step(&self, name: &str, step: i64) -> Result<bool> {
        let changed = self
            .conn
            .execute(
                "UPDATE users SET last_totp_step = ?2 WHERE name = ?1 AND last_totp_step < ?2",
                params![name, step],
            )
            .map_err(self.sql("recording a used TOTP step"))?;
        Ok(changed > 0)
    }

    /// Counts a failed login of `name` at `now_ms`, atomically. A lockout
    /// that has ended starts the count over; when the count reaches
    /// `lock_after`, the user is locked until `lock_until_ms`. Fails with
    /// [`Error::UserNotFound`] if there is no such user.
    pub fn record_failed_login(
        &self,
        name: &str,
        now_ms: i64,
        lock_after: u32,
        lock_until_ms: i64,
    ) -> Result<FailedLogin> {
        // In SET, every right-hand side sees the row as it was.
        let row: Option<(i64, Option<i64>)> = self
            .conn
            .query_row(
                "UPDATE users SET \
                   failed_logins = CASE WHEN locked_until_ms IS NOT NULL AND locked_until_ms <= ?2 \
                                   THEN 1 ELSE failed_logins + 1 END, \
                   locked_until_ms = CASE \
                     WHEN locked_until_ms IS NOT NULL AND locked_until_ms > ?2 THEN locked_until_ms \
                     WHEN (CASE WHEN locked_until_ms IS NOT NULL AND locked_until_ms <= ?2 \
                           THEN 1 ELSE failed_logins + 1 END) >= ?3 THEN ?4 \
                     ELSE NULL END \
                 WHERE name = ?1 RETURNING failed_logins, locked_until_ms",
                params![name, now_ms, i64::from(lock_after), lock_until_ms],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(self.sql("counting a failed login"))?;
        let (failed, locked_until_ms) = row.ok_or_else(|| Error::UserNotFound(name.to_string()))?;
        Ok(FailedLogin {
            failed_logins: u32::try_from(failed).unwrap_or(u32::MAX),
            locked_until_ms,
        })
    }

    /// Records a successful login: clears the failure count and any lockout,
    /// sets the last login time.
    pub fn record_login(&self, name: &str, now_ms: i64) -> Result<()> {
        self.update_user(
            name,
            "UPDATE users SET failed_logins = 0, locked_until_ms = NULL, last_login_ms = ?2 \
             WHERE name = ?1",
            &[&now_ms],
            "recording a login",
        )
    }

    /// Lifts a lockout and clears the failure count.
    pub fn unlock_user(&self, name: &str) -> Result<()> {
        self.update_user(
            name,
            "UPDATE users SET failed_logins = 0, locked_until_ms = NULL WHERE name = ?1",
            &[],
            "unlocking a user",
        )
    }

    /// Deletes a user; their recovery codes and API tokens go with them
    /// (foreign keys cascade). Returns whether the user existed.
    pub fn delete_user(&self, name: &str) -> Result<bool> {
        let changed = self
            .conn
            .execute("DELETE FROM users WHERE name = ?1", [name])
            .map_err(self.sql("deleting a user"))?;
        Ok(changed > 0)
    }

    // ----- recovery codes -----

    /// Replaces a user's recovery codes with `hashes`, in one transaction.
    pub fn replace_recovery_codes(&self, name: &str, hashes: &[[u8; 32]]) -> Result<()> {
        let what = "replacing recovery codes";
        let tx = self.write_tx(what)?;
        let exists = tx
            .query_row("SELECT 1 FROM users WHERE name = ?1", [name], |_| Ok(()))
            .optional()
            .map_err(self.sql(what))?;
        if exists.is_none() {
            return Err(Error::UserNotFound(name.to_string()));
        }
        replace_recovery_in(&tx, name, hashes).map_err(self.sql(what))?;
        tx.commit().map_err(self.sql(what))
    }

    /// Marks the unused recovery code with this hash used, in one statement:
    /// returns false if the user has no such unused code (so a code is
    /// accepted once, even by concurrent logins).
    pub fn consume_recovery_code(&self, name: &str, hash: &[u8; 32], now_ms: i64) -> Result<bool> {
        let changed = self
            .conn
            .execute(
                "UPDATE recovery_codes SET used_ms = ?3 \
                 WHERE user = ?1 AND code_hash = ?2 AND used_ms IS NULL",
                params![name, hash.as_slice(), now_ms],
            )
            .map_err(self.sql("using a recovery code"))?;
        Ok(changed > 0)
    }

    /// How many unused recovery codes a user has.
    pub fn unused_recovery_codes(&self, name: &str) -> Result<u32> {
        let n: i64 = self
            .conn
            .query_row(
                "SELECT count(*) FROM recovery_codes WHERE user = ?1 AND used_ms IS NULL",
                [name],
                |r| r.get(0),
            )
            .map_err(self.sql("counting recovery codes"))?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    // ----- API tokens -----

    /// Records a new API token. Fails with [`Error::TokenExists`] if the id
    /// is taken and [`Error::UserNotFound`] if the owner does not exist.
    pub fn insert_api_token(&self, t: &ApiTokenRow) -> Result<()> {
        let what = "creating an API token";
        let json = roles_to_json(&t.roles)?;
        let tx = self.write_tx(what)?;
        let exists = tx
            .query_row("SELECT 1 FROM users WHERE name = ?1", [&t.user], |_| Ok(()))
            .optional()
            .map_err(self.sql(what))?;
        if exists.is_none() {
            return Err(Error::UserNotFound(t.user.clone()));
        }
        let inserted = tx
            .execute(
                &format!(
                    "INSERT INTO api_tokens ({TOKEN_COLUMNS}) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT (id) DO NOTHING"
                ),
                params![
                    t.id,
                    t.user,
                    t.name,
                    t.secret_hash.as_slice(),
                    json,
                    t.created_ms,
                    t.expires_ms,
                    t.last_used_ms,
                    t.revoked_ms,
                ],
            )
            .map_err(self.sql(what))?;
        if inserted == 0 {
            return Err(Error::TokenExists(t.id.clone()));
        }
        tx.commit().map_err(self.sql(what))
    }

    /// One API token by id.
    pub fn api_token(&self, id: &str) -> Result<Option<ApiTokenRow>> {
        let raw = self
            .conn
            .query_row(
                &format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE id = ?1"),
                [id],
                crate::tuple::<RawToken>,
            )
            .optional()
            .map_err(self.sql("reading an API token"))?;
        raw.map(|r| self.token_from(r)).transpose()
    }

    /// API tokens of one user, or of all, oldest first (revoked ones too).
    pub fn api_tokens(&self, user: Option<&str>) -> Result<Vec<ApiTokenRow>> {
        let what = "listing API tokens";
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE (?1 IS NULL OR user = ?1) \
                 ORDER BY created_ms, id"
            ))
            .map_err(self.sql(what))?;
        let raws = stmt
            .query_map([user], crate::tuple::<RawToken>)
            .map_err(self.sql(what))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(self.sql(what))?;
        raws.into_iter().map(|r| self.token_from(r)).collect()
    }

    /// Records that a token was used at `now_ms`.
    pub fn touch_api_token(&self, id: &str, now_ms: i64) -> Result<()> {
        self.conn
            .execute(
                "UPDATE api_tokens SET last_used_ms = ?2 WHERE id = ?1",
                params![id, now_ms],
            )
            .map_err(self.sql("recording an API token's use"))?;
        Ok(())
    }

    /// Revokes a token at `now_ms`; returns false if there is no such token
    /// or it was revoked already.
    pub fn revoke_api_token(&self, id: &str, now_ms: i64) -> Result<bool> {
        let changed = self
            .conn
            .execute(
                "UPDATE api_tokens SET revoked_ms = ?2 WHERE id = ?1 AND revoked_ms IS NULL",
                params![id, now_ms],
            )
            .map_err(self.sql("revoking an API token"))?;
        Ok(changed > 0)
    }

    // ----- audit log -----

    /// Appends `rec` to the audit chain. Inside one `BEGIN IMMEDIATE`
    /// transaction it reads the newest entry's sequence number and hash
    /// ([`AUDIT_GENESIS`] before the first), computes this entry's hash with
    /// `chain(prev_hash, rec, seq)` and inserts it — so appenders on several
    /// connections (or processes) never fork the chain.
    pub fn append_audit(&self, rec: &NewAuditRecord, chain: &AuditChainFn) -> Result<AuditRow> {
        let what = "appending to the audit log";
        let tx = self.write_tx(what)?;
        let head: Option<(i64, Vec<u8>)> = tx
            .query_row(
                "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(self.sql(what))?;
        let (seq, prev_hash) = match head {
            None => (1, AUDIT_GENESIS),
            Some((last, hash)) => {
                let prev = <[u8; 32]>::try_from(hash.as_slice()).map_err(|_| {
                    Error::corrupt(
                        self.path(),
                        format!("audit entry {last}: hash is not 32 bytes"),
                    )
                })?;
                (last + 1, prev)
            }
        };
        let hash = chain(&prev_hash, rec, seq);
        tx.execute(
            &format!(
                "INSERT INTO audit_log ({AUDIT_COLUMNS}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
            ),
            params![
                seq,
                rec.time_ms,
                rec.identity,
                rec.source.as_str(),
                rec.action,
                rec.target,
                rec.result,
                rec.detail,
                prev_hash.as_slice(),
                hash.as_slice(),
            ],
        )
        .map_err(self.sql(what))?;
        tx.commit().map_err(self.sql(what))?;
        Ok(AuditRow {
            seq,
            record: rec.clone(),
            prev_hash,
            hash,
        })
    }

    /// The newest audit entry's sequence number and hash.
    pub fn audit_head(&self) -> Result<Option<(i64, [u8; 32])>> {
        let what = "reading the audit log's head";
        let head: Option<(i64, Vec<u8>)> = self
            .conn
            .query_row(
                "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(self.sql(what))?;
        head.map(|(seq, hash)| {
            let hash = <[u8; 32]>::try_from(hash.as_slice()).map_err(|_| {
                Error::corrupt(
                    self.path(),
                    format!("audit entry {seq}: hash is not 32 bytes"),
                )
            })?;
            Ok((seq, hash))
        })
        .transpose()
    }

    /// Audit entries matching `filter`, newest (highest sequence number)
    /// first. `since_ms` is inclusive, `until_ms` exclusive; `user` matches
    /// the identity exactly, and also entries made with that user's API
    /// tokens (identity `token:<id> (<user>)`); `action` matches exactly, or
    /// as a prefix when it ends in `.`; at most `limit` entries
    /// ([`AUDIT_DEFAULT_LIMIT`] when unset).
    pub fn audit_rows(&self, filter: &AuditFilter) -> Result<Vec<AuditRow>> {
        let what = "listing audit entries";
        let prefix = filter.action.as_deref().filter(|a| a.ends_with('.'));
        let exact = filter.action.as_deref().filter(|a| !a.ends_with('.'));
        let limit = i64::from(filter.limit.unwrap_or(AUDIT_DEFAULT_LIMIT));
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {AUDIT_COLUMNS} FROM audit_log \
                 WHERE (?1 IS NULL OR time_ms >= ?1) AND (?2 IS NULL OR time_ms < ?2) \
                 AND (?3 IS NULL OR identity = ?3 OR (substr(identity, 1, 6) = 'token:' \
                      AND substr(identity, -(length(?3) + 3)) = ' (' || ?3 || ')')) \
                 AND (?4 IS NULL OR action = ?4) \
                 AND (?5 IS NULL OR substr(action, 1, length(?5)) = ?5) \
                 ORDER BY seq DESC LIMIT ?6"
            ))
            .map_err(self.sql(what))?;
        let raws = stmt
            .query_map(
                params![
                    filter.since_ms,
                    filter.until_ms,
                    filter.user,
                    exact,
                    prefix,
                    limit
                ],
                crate::tuple::<RawAudit>,
            )
            .map_err(self.sql(what))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(self.sql(what))?;
        raws.into_iter().map(|r| self.audit_from(r)).collect()
    }

    /// Streams every audit entry in sequence order to `each`, for
    /// verification, without holding the log in memory. `each` gets the
    /// stored sequence number and the row, or the reason the row cannot be
    /// read ([`Error::Corrupt`]) so a verifier can report it and go on.
    /// Returns how many rows were read.
    pub fn audit_all_ascending(&self, each: &mut dyn FnMut(i64, Result<AuditRow>)) -> Result<u64> {
        let what = "reading the audit log";
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {AUDIT_COLUMNS} FROM audit_log ORDER BY seq"
            ))
            .map_err(self.sql(what))?;
        let mut rows = stmt.query([]).map_err(self.sql(what))?;
        let mut n = 0u64;
        while let Some(row) = rows.next().map_err(self.sql(what))? {
            let raw = crate::tuple::<RawAudit>(row).map_err(self.sql(what))?;
            let seq = raw.0;
            each(seq, self.audit_from(raw));
            n += 1;
        }
        Ok(n)
    }
}

fn insert_user_in(conn: &rusqlite::Connection, u: &NewUser<'_>, cat: &Catalog) -> Result<()> {
    let what = "creating a user";
    let json = roles_to_json(u.roles)?;
    let inserted = conn
        .execute(
            "INSERT INTO users (name, password_phc, roles_json, totp_secret, created_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (name) DO NOTHING",
            params![u.name, u.password_phc, json, u.totp_secret, u.created_ms],
        )
        .map_err(cat.sql(what))?;
    if inserted == 0 {
        return Err(Error::UserExists(u.name.to_string()));
    }
    replace_recovery_in(conn, u.name, u.recovery_hashes).map_err(cat.sql(what))
}

fn replace_recovery_in(
    conn: &rusqlite::Connection,
    name: &str,
    hashes: &[[u8; 32]],
) -> rusqlite::Result<()> {
    conn.execute("DELETE FROM recovery_codes WHERE user = ?1", [name])?;
    let mut stmt = conn.prepare(
        "INSERT INTO recovery_codes (user, code_hash) VALUES (?1, ?2) \
         ON CONFLICT (user, code_hash) DO NOTHING",
    )?;
    for h in hashes {
        stmt.execute(params![name, h.as_slice()])?;
    }
    Ok(())
}
