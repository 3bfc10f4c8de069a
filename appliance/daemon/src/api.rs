//! One request, start to end: authenticate, authorize (role and fresh MFA),
//! do it, audit it. Runs on a blocking thread (password hashing and SQLite
//! are synchronous).
//!
//! What is audited: every login and logout, success or failure; every call
//! that changes state, whether it succeeded, failed or was refused; reading
//! the audit log itself. Plain reads of the register and the job log are not.

use coffer_auth::{Permission, Principal};
use coffer_catalog::{Catalog, JobViewFilter};
use coffer_types::api::{
    API_VERSION, ApiError, AssetView, Call, Credential, DaemonStatus, ErrorCode, ImportReport,
    Request, Response, Source, Whoami,
};
use serde_json::{Value, json};

use crate::{Inner, jobs, plan, register};

type ApiResult<T> = Result<T, ApiError>;

fn err(code: ErrorCode, message: impl Into<String>) -> ApiError {
    ApiError::new(code, message)
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    err(ErrorCode::Internal, e.to_string())
}

fn from_catalog(e: coffer_catalog::Error) -> ApiError {
    use coffer_catalog::Error as E;
    match &e {
        E::NotFound { .. } | E::JobNotFound(_) => err(ErrorCode::NotFound, e.to_string()),
        E::Exists { .. } => err(ErrorCode::Conflict, e.to_string()),
        E::InUse { .. } | E::JobNotQueued(_) => err(ErrorCode::State, e.to_string()),
        E::Refused(_) => err(ErrorCode::Forbidden, e.to_string()),
        E::SnapshotNotFound(_) | E::AmbiguousSnapshot { .. } => {
            err(ErrorCode::NotFound, e.to_string())
        }
        _ => internal(e),
    }
}

fn from_auth(e: coffer_auth::Error) -> ApiError {
    err(e.code(), e.to_string())
}

/// Brings the immutable attribute in line after a lock or hold changed,
/// under the shared store lock. While a collection holds the store, it is
/// left to the next prune or gc (which apply it first); the lock or hold
/// itself already holds (catalog, plan, prune).
fn apply_immutability(
    inner: &crate::Inner,
    cat: &Catalog,
    trusted: i64,
) -> ApiResult<coffer_engine::protect::ImmutabilityReport> {
    let Some(_l) =
        coffer_engine::lock::StoreLock::try_shared(cat).map_err(|e| internal(e.to_string()))?
    else {
        return Ok(coffer_engine::protect::ImmutabilityReport {
            warnings: vec![
                "a garbage collection is running: the immutable attribute is applied by the next prune or gc".into(),
            ],
            ..Default::default()
        });
    };
    coffer_engine::protect::apply_immutability(
        &inner.repo,
        cat,
        trusted,
        &coffer_engine::Progress::default(),
    )
    .map_err(|e| internal(e.to_string()))
}

fn to_value<T: serde::Serialize>(v: &T) -> ApiResult<Value> {
    serde_json::to_value(v).map_err(internal)
}

/// Handles one request.
pub(crate) fn handle(inner: &Inner, req: Request, peer_uid: Option<u32>) -> Response {
    let id = req.id;
    match dispatch(inner, req, peer_uid) {
        Ok(v) => Response {
            id,
            ok: true,
            result: Some(v),
            error: None,
        },
        Err(e) => Response {
            id,
            ok: false,
            result: None,
            error: Some(e),
        },
    }
}

/// The permission a call needs, and whether it changes state (is audited).
fn permission(call: &Call) -> Option<(Permission, bool)> {
    use Permission as P;
    Some(match call {
        Call::Status | Call::Bootstrap { .. } | Call::Login { .. } => return None,
        Call::Logout | Call::MfaVerify { .. } | Call::Whoami | Call::Passwd { .. } => {
            (P::StatusRead, false)
        }
        Call::UserList => (P::UserRead, false),
        Call::UserAdd { .. }
        | Call::UserRoles { .. }
        | Call::UserRemove { .. }
        | Call::UserUnlock { .. }
        | Call::UserResetMfa { .. } => (P::UserManage, true),
        Call::TokenCreate { .. } | Call::TokenList | Call::TokenRevoke { .. } => (
            P::TokenManageOwn,
            matches!(call, Call::TokenCreate { .. } | Call::TokenRevoke { .. }),
        ),
        Call::AssetList | Call::AssetGet { .. } => (P::AssetRead, false),
        Call::AssetAdd { .. } | Call::AssetUpdate { .. } | Call::AssetImport { .. } => {
            (P::AssetWrite, true)
        }
        Call::AssetRemove { .. } => (P::AssetRemove, true),
        Call::ProfileList | Call::ProfileGet { .. } => (P::ProfileRead, false),
        Call::ScheduleNext { .. } | Call::ScheduleCheck { .. } => (P::ProfileRead, false),
        Call::ProfileAdd { .. } | Call::ProfileUpdate { .. } => (P::ProfileWrite, true),
        Call::ProfileRemove { .. } => (P::ProfileRemove, true),
        Call::JobRun { .. } => (P::JobRun, true),
        Call::JobList { .. } | Call::JobGet { .. } | Call::JobLog { .. } => (P::JobRead, false),
        Call::JobCancel { .. } => (P::JobCancel, true),
        Call::SnapshotList { .. } => (P::SnapshotRead, false),
        Call::AlertList { .. } => (P::AlertRead, false),
        Call::AlertAck { .. } => (P::AlertAck, true),
        Call::AuditList { .. } | Call::AuditVerify => (P::AuditRead, true),
        Call::Reload => (P::ConfigReload, true),
        Call::UpdateStatus => (P::StatusRead, false),
        Call::UpdateInstall { .. } | Call::SystemReboot => (P::SystemUpdate, true),
        Call::PanelShow => (P::StatusRead, false),
        // A simulated button press stands for a person at the rack: it may
        // acknowledge an alert, so it needs that permission and is audited.
        Call::PanelPress { .. } => (P::AlertAck, true),
        Call::RemoteList | Call::ReplicateStatus => (P::RemoteRead, false),
        Call::RemoteAdd { .. } | Call::RemotePair { .. } | Call::RemoteRemove { .. } => {
            (P::RemoteManage, true)
        }
        Call::ReplicateRun { .. } => (P::ReplicateRun, true),
        Call::RemoteRestore { .. } => (P::RestoreRun, true),
        Call::RetentionShow { .. } | Call::LockList { .. } | Call::HoldList { .. } => {
            (P::SnapshotRead, false)
        }
        Call::Prune { .. } | Call::Gc { .. } => (P::JobRun, true),
        Call::SnapshotDelete { .. } => (P::SnapshotDelete, true),
        Call::LockSet { .. } => (P::LockManage, true),
        Call::HoldSet { .. } | Call::HoldRelease { .. } => (P::LegalHold, true),
        Call::ClockShow => (P::StatusRead, false),
        Call::ClockAccept => (P::ClockAccept, true),
        Call::DisposalList | Call::KeyStatus => (P::AuditRead, false),
        Call::KeyRotate => (P::KeyManage, true),
        Call::DrillRun { .. } => (P::RestoreRun, true),
        Call::DrillList { .. } => (P::JobRead, false),
        Call::Compliance => (P::StatusRead, false),
        Call::ReportIso27001 { .. } => (P::AuditRead, true),
        Call::VerifyRun { .. } => (P::JobRun, true),
        Call::MediaToday { .. }
        | Call::MediaPools
        | Call::MediaManifest { .. }
        | Call::MediaCustody { .. } => (P::MediaRead, false),
        Call::MediaStep {
            step: coffer_types::api::MediaStep::Dispose { .. },
            ..
        } => (P::MediaDispose, true),
        Call::MediaStep { .. } => (P::MediaHandle, true),
    })
}

/// The op's wire name, for the audit log.
fn op_name(call: &Call) -> String {
    serde_json::to_value(call)
        .ok()
        .and_then(|v| v.get("op").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
        .replace('_', ".")
}

/// The object a call acts on, for the audit log.
fn target(call: &Call) -> String {
    match call {
        Call::Bootstrap { user, .. } | Call::Login { user, .. } => user.clone(),
        Call::UserAdd { name, .. }
        | Call::UserRoles { name, .. }
        | Call::UserRemove { name }
        | Call::UserUnlock { name }
        | Call::UserResetMfa { name }
        | Call::AssetGet { name }
        | Call::AssetRemove { name }
        | Call::ProfileGet { name }
        | Call::ProfileRemove { name }
        | Call::TokenCreate { name, .. } => name.clone(),
        Call::TokenRevoke { id } => id.clone(),
        Call::AssetAdd { asset } | Call::AssetUpdate { asset } => asset.name.clone(),
        Call::ProfileAdd { profile } | Call::ProfileUpdate { profile } => profile.name.clone(),
        Call::JobRun { asset, level } => format!("{asset} ({})", level.as_str()),
        Call::JobGet { id } | Call::JobLog { id } | Call::JobCancel { id } => format!("job {id}"),
        Call::AlertAck { id } => format!("alert {id}"),
        Call::PanelPress { button } => format!("button {button}"),
        Call::RemoteAdd { remote } => remote.name.clone(),
        Call::RemotePair { name, .. } | Call::RemoteRemove { name } => name.clone(),
        Call::ReplicateRun { remote } => remote.clone(),
        Call::RetentionShow { asset } | Call::Prune { asset } | Call::LockList { asset } => {
            asset.clone().unwrap_or_default()
        }
        Call::SnapshotDelete { snapshot } | Call::LockSet { snapshot, .. } => snapshot.clone(),
        Call::HoldSet {
            snapshot, asset, ..
        } => snapshot
            .clone()
            .or_else(|| asset.clone())
            .unwrap_or_default(),
        Call::HoldRelease { id } => format!("hold {id}"),
        Call::UpdateInstall { path, .. } => path
            .clone()
            .unwrap_or_else(|| format!("the {} medium", crate::update::MEDIUM_LABEL)),
        Call::DrillRun { asset, .. } => asset.clone(),
        Call::MediaStep { step, .. } => {
            use coffer_types::api::MediaStep as S;
            match step {
                S::Settle { pool } => pool.clone().unwrap_or_else(|| "every pool".into()),
                S::Export { barcodes }
                | S::Received { barcodes }
                | S::Recall { barcodes, .. }
                | S::Import { barcodes }
                | S::Dispose { barcodes, .. } => barcodes.join(", "),
                S::Sent { manifest } => format!("manifest {manifest}"),
                S::Cleaned { pool } => pool.clone(),
                S::Damaged { barcode } => barcode.clone(),
            }
        }
        Call::RemoteRestore {
            remote, snapshot, ..
        } => format!("{snapshot} from {remote}"),
        _ => String::new(),
    }
}

fn identity_of(p: &Principal) -> String {
    p.identity()
}

fn dispatch(inner: &Inner, req: Request, peer_uid: Option<u32>) -> ApiResult<Value> {
    let now = inner.now_ms();
    let cat = inner.catalog().map_err(internal)?;
    let cat = &*cat;
    match &req.call {
        Call::Status => return status(inner, cat, req.auth.as_ref(), now),
        Call::Bootstrap { user, password } => {
            // Only from the appliance itself: root, or the daemon's own user.
            let me = nix::unistd::geteuid().as_raw();
            if !matches!(peer_uid, Some(0)) && peer_uid != Some(me) {
                return Err(err(
                    ErrorCode::Forbidden,
                    "bootstrap is only allowed from the appliance's console (root)",
                ));
            }
            let r = inner.auth.bootstrap(cat, user, password, now);
            inner.audit(
                cat,
                user,
                Source::Console,
                "bootstrap",
                user,
                if r.is_ok() { "ok" } else { "failed" },
                &r.as_ref().err().map_or(
                    "first administrator created; MFA enrollment pending".into(),
                    |e| e.to_string(),
                ),
            );
            return to_value(&r.map_err(from_auth)?);
        }
        Call::Login {
            user,
            password,
            code,
        } => {
            let r = inner.auth.login(cat, user, password, code, now);
            let (result, detail) = match &r {
                Ok(l) if l.recovery_codes_left.is_some() => ("ok", "with a recovery code".into()),
                Ok(_) => ("ok", String::new()),
                Err(e) => ("failed", e.to_string()),
            };
            inner.audit(cat, user, Source::Console, "login", user, result, &detail);
            return to_value(&r.map_err(from_auth)?);
        }
        _ => {}
    }

    let cred = req
        .auth
        .as_ref()
        .ok_or_else(|| err(ErrorCode::Unauthenticated, "log in first"))?;
    let principal = inner.auth.authenticate(cat, cred, now).map_err(from_auth)?;
    let source = match cred {
        Credential::Session(_) => Source::Console,
        Credential::Token(_) => Source::Api,
    };
    let who = identity_of(&principal);
    let action = op_name(&req.call);
    let tgt = target(&req.call);
    let Some((perm, audited)) = permission(&req.call) else {
        return Err(internal("no permission for this call"));
    };
    // User and token management check their own permissions (an inline
    // code is used up by the first check).
    let self_checked = matches!(
        req.call,
        Call::UserAdd { .. }
            | Call::UserRoles { .. }
            | Call::UserRemove { .. }
            | Call::UserUnlock { .. }
            | Call::UserResetMfa { .. }
            | Call::UserList
            | Call::TokenCreate { .. }
            | Call::TokenList
            | Call::TokenRevoke { .. }
    );
    let mut perms = if self_checked { Vec::new() } else { vec![perm] };
    perms.extend(extra_permissions(cat, &req.call));
    for p in perms {
        if let Err(e) = inner
            .auth
            .authorize(cat, &principal, p, req.mfa.as_deref(), now)
        {
            inner.audit(cat, &who, source, &action, &tgt, "denied", &e.to_string());
            return Err(from_auth(e));
        }
    }
    let r = execute(
        inner,
        cat,
        &principal,
        source,
        &req.call,
        req.mfa.as_deref(),
        now,
    );
    if audited {
        let (result, detail) = match &r {
            Ok((_, d)) => ("ok", d.clone()),
            Err(e) if matches!(e.code, ErrorCode::Forbidden | ErrorCode::FreshMfaRequired) => {
                ("denied", e.message.clone())
            }
            Err(e) => ("failed", e.message.clone()),
        };
        inner.audit(cat, &who, source, &action, &tgt, result, &detail);
    }
    r.map(|(v, _)| v)
}

/// Permissions beyond the call's own, from what it would change: a
/// profile update that moves a schedule or shortens retention needs those
/// (fresh-MFA) permissions too, and one that changes its remotes needs
/// `remote.manage`.
fn extra_permissions(cat: &Catalog, call: &Call) -> Vec<Permission> {
    match call {
        // Retiring old keys destroys them (crypto-shredding).
        Call::Gc {
            retire_old_keys: true,
            ..
        } => return vec![Permission::KeyDestroy],
        // Moving an asset to a profile that keeps less (or locks less)
        // shortens its retention as surely as editing the profile; so does
        // an import that replaces assets.
        Call::AssetUpdate { asset } => {
            return moves_to_weaker_retention(cat, std::slice::from_ref(asset));
        }
        Call::AssetImport { csv, replace: true } => {
            return register::parse_register_csv(csv)
                .map(|assets| moves_to_weaker_retention(cat, &assets))
                .unwrap_or_default();
        }
        _ => {}
    }
    let Call::ProfileUpdate { profile } = call else {
        return Vec::new();
    };
    let Ok(old) = cat.profile(&profile.name) else {
        return Vec::new();
    };
    let mut v = Vec::new();
    if old.schedules != profile.schedules || old.replicate_schedule != profile.replicate_schedule {
        v.push(Permission::ScheduleChange);
    }
    if old.replicate_to != profile.replicate_to {
        // Where the offsite copies go (or that they go at all).
        v.push(Permission::RemoteManage);
    }
    if retention_shortened(&old.retention, &profile.retention) {
        v.push(Permission::RetentionShorten);
    }
    v
}

/// `retention.shorten` when any of `assets` is registered under a profile
/// whose retention keeps more than the one it would move to.
fn moves_to_weaker_retention(
    cat: &Catalog,
    assets: &[coffer_types::api::Asset],
) -> Vec<Permission> {
    let retention_of = |profile: Option<&str>| {
        profile
            .and_then(|p| cat.profile(p).ok())
            .map(|p| p.retention)
    };
    let weaker = assets.iter().any(|a| {
        let Ok(old) = cat.asset(&a.name) else {
            return false;
        };
        matches!(
            (retention_of(old.asset.profile.as_deref()), retention_of(a.profile.as_deref())),
            (Some(o), Some(n)) if retention_shortened(&o, &n)
        )
    });
    if weaker {
        vec![Permission::RetentionShorten]
    } else {
        Vec::new()
    }
}

/// The daemon's state. Anyone who can reach the socket may read it; the
/// reasons behind the health state quote alert messages (asset names, job
/// errors, paths), so they go only to a caller whose credential carries
/// `alert.read`.
fn status(inner: &Inner, cat: &Catalog, cred: Option<&Credential>, now: i64) -> ApiResult<Value> {
    let config = inner.config();
    // One authentication for both: what a caller may see beyond the basics.
    let principal = cred.and_then(|c| inner.auth.authenticate(cat, c, now).ok());
    let may = |p: Permission| {
        principal
            .as_ref()
            .is_some_and(|pr| inner.auth.authorize(cat, pr, p, None, now).is_ok())
    };
    let may_read_alerts = may(Permission::AlertRead);
    // Left out (not an error) when it cannot be worked out now.
    let compliance = if may(Permission::StatusRead) {
        match crate::compliance::all(inner, cat, now) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "3-2-1-1-0 status not available");
                None
            }
        }
    } else {
        None
    };
    let mut health = current_health(inner, cat)?;
    if !may_read_alerts && let Some(h) = &mut health {
        h.reasons.clear();
        h.findings.clear();
    }
    to_value(&DaemonStatus {
        version: env!("CARGO_PKG_VERSION").into(),
        api: API_VERSION,
        host: inner.host.clone(),
        needs_bootstrap: inner.auth.needs_bootstrap(cat).map_err(from_auth)?,
        now: coffer_types::rfc3339_ms(inner.now_ms()),
        active_jobs: u32::try_from(
            cat.job_views(&JobViewFilter {
                status: Some(coffer_types::JobStatus::Queued),
                ..Default::default()
            })
            .map_err(from_catalog)?
            .len()
                + inner.jobs.count(),
        )
        .unwrap_or(u32::MAX),
        open_alerts: u32::try_from(cat.open_alert_count().map_err(from_catalog)?)
            .unwrap_or(u32::MAX),
        development: config.daemon.development,
        health,
        codec: crate::tuning::describe(
            inner.tuning().as_ref(),
            config.store.target_throughput_mb_s,
            inner.repo.config().zstd_level,
        ),
        compliance,
        image: inner.image.clone(),
    })
}

/// The monitor's last report, its state recomputed against the alerts open
/// now (an RPO alert may have cleared since the reading).
fn current_health(
    inner: &Inner,
    cat: &Catalog,
) -> ApiResult<Option<coffer_types::api::HealthReport>> {
    let report = match inner.health.read() {
        Ok(h) => h.clone(),
        Err(p) => p.into_inner().clone(),
    };
    let Some(mut r) = report else {
        return Ok(None);
    };
    let alerts = cat.alerts(false).map_err(from_catalog)?;
    (r.state, r.reasons) = crate::health::overall(&r.findings, &alerts);
    Ok(Some(r))
}

/// Does the call; returns the result and a detail line for the audit log.
fn execute(
    inner: &Inner,
    cat: &Catalog,
    p: &Principal,
    source: Source,
    call: &Call,
    mfa: Option<&str>,
    now: i64,
) -> ApiResult<(Value, String)> {
    let none = String::new;
    let auth = &inner.auth;
    Ok(match call {
        Call::Status | Call::Bootstrap { .. } | Call::Login { .. } => {
            return Err(internal("handled before authentication"));
        }
        Call::Logout => {
            auth.logout(p, now).map_err(from_auth)?;
            (Value::Null, none())
        }
        Call::MfaVerify { code } => {
            auth.mfa_verify(cat, p, code, now).map_err(from_auth)?;
            (Value::Null, none())
        }
        Call::Whoami => (
            to_value(&Whoami {
                user: p.user.clone(),
                roles: p.roles.clone(),
                source,
                token: p.token_id.clone(),
            })?,
            none(),
        ),
        Call::Passwd { old, new } => {
            auth.change_password(cat, p, old, new, now)
                .map_err(from_auth)?;
            (Value::Null, "password changed".into())
        }
        Call::UserList => (
            to_value(&auth.list_users(cat, p, now).map_err(from_auth)?)?,
            none(),
        ),
        Call::UserAdd {
            name,
            password,
            roles,
        } => {
            let e = auth
                .add_user(cat, p, mfa, name, password, roles, now)
                .map_err(from_auth)?;
            (to_value(&e)?, format!("roles {}", roles_text(roles)))
        }
        Call::UserRoles { name, roles } => {
            auth.set_roles(cat, p, mfa, name, roles, now)
                .map_err(from_auth)?;
            (Value::Null, format!("roles now {}", roles_text(roles)))
        }
        Call::UserRemove { name } => {
            if *name == p.user {
                return Err(err(ErrorCode::Invalid, "you cannot remove yourself"));
            }
            auth.remove_user(cat, p, mfa, name, now)
                .map_err(from_auth)?;
            (Value::Null, none())
        }
        Call::UserUnlock { name } => {
            auth.unlock_user(cat, p, mfa, name, now)
                .map_err(from_auth)?;
            (Value::Null, none())
        }
        Call::UserResetMfa { name } => {
            let e = auth.reset_mfa(cat, p, mfa, name, now).map_err(from_auth)?;
            (to_value(&e)?, "new TOTP secret and recovery codes".into())
        }
        Call::TokenCreate {
            name,
            roles,
            expires_in,
        } => {
            let t = auth
                .create_token(cat, p, name, roles, *expires_in, now)
                .map_err(from_auth)?;
            let detail = format!("token {} roles {}", t.info.id, roles_text(roles));
            (to_value(&t)?, detail)
        }
        Call::TokenList => (
            to_value(&auth.list_tokens(cat, p, now).map_err(from_auth)?)?,
            none(),
        ),
        Call::TokenRevoke { id } => {
            auth.revoke_token(cat, p, id, now).map_err(from_auth)?;
            (Value::Null, none())
        }
        Call::AssetList => (to_value(&asset_views(cat, now)?)?, none()),
        Call::AssetGet { name } => {
            let v = asset_views(cat, now)?
                .into_iter()
                .find(|a| a.asset.name == *name)
                .ok_or_else(|| err(ErrorCode::NotFound, format!("no asset '{name}'")))?;
            (to_value(&v)?, none())
        }
        Call::AssetAdd { asset } => {
            check_asset(asset)?;
            cat.add_asset(asset, now).map_err(from_catalog)?;
            inner.reschedule.notify_one();
            (Value::Null, asset_detail(asset))
        }
        Call::AssetUpdate { asset } => {
            check_asset(asset)?;
            cat.update_asset(asset, now).map_err(from_catalog)?;
            inner.reschedule.notify_one();
            (Value::Null, asset_detail(asset))
        }
        Call::AssetRemove { name } => {
            cat.remove_asset(name).map_err(from_catalog)?;
            inner.reschedule.notify_one();
            (
                Value::Null,
                "removed from the register; its snapshots stay".into(),
            )
        }
        Call::AssetImport { csv, replace } => {
            let report = import(cat, csv, *replace, now)?;
            inner.reschedule.notify_one();
            let detail = format!(
                "added {}, replaced {}, skipped {}, unprotected {}",
                report.added.len(),
                report.replaced.len(),
                report.skipped.len(),
                report.unprotected.len()
            );
            (to_value(&report)?, detail)
        }
        Call::ProfileList => (to_value(&cat.profiles().map_err(from_catalog)?)?, none()),
        Call::ProfileGet { name } => {
            let pr = cat.profile(name).map_err(from_catalog)?;
            (to_value(&pr)?, none())
        }
        Call::ProfileAdd { profile } => {
            register::validate_profile(profile)
                .map_err(|e| err(ErrorCode::Invalid, e.to_string()))?;
            cat.add_profile(profile, now).map_err(from_catalog)?;
            inner.reschedule.notify_one();
            (Value::Null, profile_detail(profile))
        }
        Call::ProfileUpdate { profile } => {
            register::validate_profile(profile)
                .map_err(|e| err(ErrorCode::Invalid, e.to_string()))?;
            cat.update_profile(profile, now).map_err(from_catalog)?;
            inner.reschedule.notify_one();
            (Value::Null, profile_detail(profile))
        }
        Call::ProfileRemove { name } => {
            cat.remove_profile(name).map_err(from_catalog)?;
            inner.reschedule.notify_one();
            (Value::Null, none())
        }
        Call::ScheduleNext { count } => {
            let tz = inner.config().time_zone();
            let runs = crate::scheduler::next_runs(cat, now, &tz, count.unwrap_or(10) as usize)
                .map_err(internal)?;
            (to_value(&runs)?, none())
        }
        Call::ScheduleCheck { expr, count } => {
            let tz = inner.config().time_zone();
            let c = crate::calendar::Calendar::parse(expr)
                .map_err(|e| err(ErrorCode::Invalid, e.to_string()))?;
            let mut at = now;
            let mut runs = Vec::new();
            for _ in 0..count.unwrap_or(5).min(100) {
                let Some(t) = c.next_after(at, &tz) else {
                    break;
                };
                runs.push(coffer_types::rfc3339_ms(t));
                at = t;
            }
            (json!({ "normalized": c.to_string(), "next": runs }), none())
        }
        Call::JobRun { asset, level } => {
            let a = cat.asset(asset).map_err(from_catalog)?.asset;
            let id = jobs::enqueue(
                inner,
                cat,
                &a,
                *level,
                &identity_of(p),
                source,
                a.profile.clone(),
                1,
                None,
                None,
            )
            .map_err(internal)?;
            (json!({ "job": id }), format!("job {id} queued"))
        }
        Call::JobList {
            asset,
            status,
            kind,
            limit,
        } => {
            let mut v = cat
                .job_views(&JobViewFilter {
                    asset: asset.clone(),
                    kind: *kind,
                    status: *status,
                    limit: Some(limit.unwrap_or(50) as usize),
                })
                .map_err(from_catalog)?;
            for j in &mut v {
                j.progress = inner.jobs.progress(j.record.id);
            }
            (to_value(&v)?, none())
        }
        Call::JobGet { id } => {
            let mut v = cat.job_view(*id).map_err(from_catalog)?;
            v.progress = inner.jobs.progress(*id);
            (to_value(&v)?, none())
        }
        Call::JobLog { id } => {
            cat.job_view(*id).map_err(from_catalog)?;
            let lines = crate::joblog::read(&inner.job_log_dir(), *id)
                .map_err(|e| internal(format!("read the log of job {id}: {e}")))?;
            (json!({ "lines": lines }), none())
        }
        Call::JobCancel { id } => {
            let msg = jobs::cancel(inner, cat, *id, &identity_of(p))
                .map_err(|e| err(ErrorCode::State, format!("{e:#}")))?;
            (json!({ "message": msg }), msg)
        }
        Call::SnapshotList { asset } => (
            to_value(&cat.snapshots(asset.as_deref()).map_err(from_catalog)?)?,
            none(),
        ),
        Call::AlertList { all } => (to_value(&cat.alerts(*all).map_err(from_catalog)?)?, none()),
        Call::AlertAck { id } => {
            cat.ack_alert(*id, &p.user, now).map_err(from_catalog)?;
            (Value::Null, none())
        }
        Call::AuditList { filter } => {
            let v = inner.auditor.list(cat, filter).map_err(from_auth)?;
            (to_value(&v)?, format!("{} entries read", v.len()))
        }
        Call::AuditVerify => {
            let v = inner.auditor.verify(cat).map_err(from_auth)?;
            let detail = format!("{} entries, ok={}", v.entries, v.ok);
            (to_value(&v)?, detail)
        }
        Call::PanelShow => (to_value(&inner.panel.show())?, none()),
        Call::PanelPress { button } => {
            let b = crate::panel::parse_button(button)
                .map_err(|e| err(ErrorCode::Invalid, format!("{e:#}")))?;
            inner
                .panel
                .press(b)
                .map_err(|e| err(ErrorCode::State, format!("{e:#}")))?;
            (
                Value::Null,
                format!("pressed {button} on the simulated panel"),
            )
        }
        Call::UpdateStatus => (crate::update::status(inner)?, none()),
        Call::UpdateInstall { path, tries } => {
            crate::update::install(inner, path.as_deref(), *tries)?
        }
        Call::SystemReboot => crate::update::reboot(inner)?,
        Call::Reload => {
            inner
                .reload()
                .map_err(|e| err(ErrorCode::Invalid, format!("{e:#}")))?;
            (Value::Null, "configuration reloaded".into())
        }
        Call::RemoteList => {
            let remotes = remote_views(cat)?;
            let listing = coffer_types::api::RemoteListing {
                identity: crate::replication::identity_view(inner),
                remotes,
                replicas: cat.replicas().map_err(from_catalog)?,
            };
            (to_value(&listing)?, none())
        }
        Call::RemoteAdd { remote } => {
            let r = crate::replication::add_remote(inner, cat, remote).map_err(from_anyhow)?;
            let detail = format!(
                "{} remote; presents {}; {}",
                remote.kind.as_str(),
                r.theirs.as_deref().unwrap_or("-"),
                if r.paired { "pinned" } else { "not paired yet" }
            );
            (to_value(&r)?, detail)
        }
        Call::RemotePair { name, fingerprint } => {
            let r = crate::replication::pair(inner, cat, name, fingerprint.as_deref())
                .map_err(from_anyhow)?;
            let detail = format!(
                "presents {}; {}",
                r.theirs.as_deref().unwrap_or("-"),
                if r.paired { "pinned" } else { "not pinned" }
            );
            (to_value(&r)?, detail)
        }
        Call::RemoteRemove { name } => {
            cat.remove_remote(name).map_err(from_catalog)?;
            (
                Value::Null,
                "removed; its copies stay where they are".into(),
            )
        }
        Call::RetentionShow { asset } => {
            let trusted = inner.observe_clock(cat).map_err(from_anyhow)?.trusted_ms;
            let order = coffer_engine::prune::PruneOrder {
                asset: asset.clone(),
                ..Default::default()
            };
            let plans = coffer_engine::prune::plan_order(cat, &order, trusted, false)
                .map_err(|e| internal(e.to_string()))?;
            (coffer_engine::prune::plans_json(&plans), none())
        }
        Call::Prune { asset } => {
            if let Some(a) = asset {
                cat.asset(a).map_err(from_catalog)?;
            }
            let id = crate::maintenance::enqueue_prune(
                inner,
                cat,
                asset.clone(),
                &identity_of(p),
                source,
            )
            .map_err(from_anyhow)?;
            (json!({ "job": id }), format!("job {id} queued"))
        }
        Call::Gc {
            compact_below_pct,
            retire_old_keys,
        } => {
            let id = crate::maintenance::enqueue_gc(
                inner,
                cat,
                compact_below_pct.unwrap_or(50),
                *retire_old_keys,
                &identity_of(p),
                source,
            )
            .map_err(|e| err(ErrorCode::Invalid, format!("{e:#}")))?;
            (json!({ "job": id }), format!("job {id} queued"))
        }
        Call::SnapshotDelete { snapshot } => {
            let (id, snap) =
                crate::maintenance::enqueue_delete(inner, cat, snapshot, &identity_of(p), source)
                    .map_err(from_anyhow)?;
            (
                json!({ "job": id }),
                format!("job {id} queued to delete snapshot {}", snap.short()),
            )
        }
        Call::LockSet {
            snapshot,
            until_ms,
            reason,
        } => {
            let s = cat.resolve_snapshot(snapshot).map_err(from_catalog)?;
            let trusted = inner.observe_clock(cat).map_err(from_anyhow)?.trusted_ms;
            if *until_ms <= trusted {
                return Err(err(
                    ErrorCode::Invalid,
                    format!(
                        "{} is not in the future (the trusted clock says {})",
                        coffer_types::rfc3339_ms(*until_ms),
                        coffer_types::rfc3339_ms(trusted)
                    ),
                ));
            }
            cat.set_lock(&s.id, *until_ms, &identity_of(p), now, reason)
                .map_err(from_catalog)?;
            let imm = apply_immutability(inner, cat, trusted)?;
            (
                json!({ "snapshot": s.id.to_hex(), "until": coffer_types::rfc3339_ms(*until_ms), "immutable_objects": imm.objects, "warnings": imm.warnings }),
                format!(
                    "snapshot {} locked until {}",
                    s.id.short(),
                    coffer_types::rfc3339_ms(*until_ms)
                ),
            )
        }
        Call::LockList { asset } => {
            let trusted = inner.observe_clock(cat).map_err(from_anyhow)?.trusted_ms;
            (
                to_value(&cat.locks(asset.as_deref(), trusted).map_err(from_catalog)?)?,
                none(),
            )
        }
        Call::HoldSet {
            snapshot,
            asset,
            reason,
        } => {
            let snap = match snapshot {
                Some(s) => Some(cat.resolve_snapshot(s).map_err(from_catalog)?.id),
                None => None,
            };
            let id = cat
                .set_hold(
                    snap.as_ref(),
                    asset.as_deref(),
                    reason,
                    &identity_of(p),
                    now,
                )
                .map_err(from_catalog)?;
            let trusted = inner.observe_clock(cat).map_err(from_anyhow)?.trusted_ms;
            let imm = apply_immutability(inner, cat, trusted)?;
            (
                json!({ "hold": id, "immutable_objects": imm.objects, "warnings": imm.warnings }),
                format!("legal hold {id} placed: {reason}"),
            )
        }
        Call::HoldRelease { id } => {
            let h = cat
                .release_hold(*id, &identity_of(p), now)
                .map_err(from_catalog)?;
            let trusted = inner.observe_clock(cat).map_err(from_anyhow)?.trusted_ms;
            apply_immutability(inner, cat, trusted)?;
            (
                to_value(&h)?,
                format!("legal hold {id} released ({})", h.reason),
            )
        }
        Call::HoldList { all } => (to_value(&cat.holds(*all).map_err(from_catalog)?)?, none()),
        Call::ClockShow => {
            let o = inner.observe_clock(cat).map_err(from_anyhow)?;
            (to_value(&o.status())?, none())
        }
        Call::ClockAccept => {
            let before = inner.observe_clock(cat).map_err(from_anyhow)?;
            let o = coffer_engine::protect::accept_wall_clock(cat, now, &inner.clock.boot())
                .map_err(|e| err(ErrorCode::Invalid, e.to_string()))?;
            inner.observe_clock(cat).map_err(from_anyhow)?;
            (
                to_value(&o.status())?,
                format!(
                    "trusted clock moved from {} to the wall clock {}",
                    coffer_types::rfc3339_ms(before.trusted_ms),
                    coffer_types::rfc3339_ms(o.trusted_ms)
                ),
            )
        }
        Call::DisposalList => (to_value(&cat.disposals().map_err(from_catalog)?)?, none()),
        Call::MediaToday { pool, date } => (
            crate::media_api::today_call(
                inner,
                cat,
                &identity_of(p),
                pool.as_deref(),
                date.as_deref(),
            )?,
            none(),
        ),
        Call::MediaPools => (crate::media_api::pools(inner, cat)?, none()),
        Call::MediaManifest { id } => (crate::media_api::manifest(cat, *id)?, none()),
        Call::MediaCustody { barcode } => (
            to_value(&cat.custody(barcode.as_deref()).map_err(from_catalog)?)?,
            none(),
        ),
        Call::MediaStep { step, date } => {
            crate::media_api::step(inner, cat, &identity_of(p), step, date.as_deref())?
        }
        Call::KeyRotate => {
            let k = coffer_engine::keys::rotate_data_key(&inner.repo, cat, &identity_of(p), now)
                .map_err(|e| internal(e.to_string()))?;
            (
                json!({ "generation": k.generation, "key_id": k.key_id }),
                format!(
                    "data key generation {} ({}) seals new data from now on",
                    k.generation, k.key_id
                ),
            )
        }
        Call::KeyStatus => (
            to_value(
                &coffer_engine::keys::status(&inner.repo, cat)
                    .map_err(|e| internal(e.to_string()))?,
            )?,
            none(),
        ),
        Call::DrillRun {
            asset,
            from,
            snapshot,
            random,
            remote,
        } => {
            let id = crate::drill::enqueue(
                inner,
                cat,
                asset,
                *from,
                remote.as_deref(),
                snapshot.as_deref(),
                *random,
                &identity_of(p),
                source,
                None,
            )
            .map_err(from_anyhow)?;
            (
                json!({ "job": id }),
                format!("job {id}: restore drill of {asset} from {}", from.as_str()),
            )
        }
        Call::VerifyRun { what, name } => {
            let ids =
                crate::verify::enqueue(inner, cat, *what, name.as_deref(), &identity_of(p), source)
                    .map_err(from_anyhow)?;
            (
                json!({ "jobs": ids }),
                format!(
                    "job(s) {ids:?}: verification of {}",
                    crate::verify::describe(*what, name.as_deref())
                ),
            )
        }
        Call::ReportIso27001 { from, to, .. } => {
            let r = crate::report::build(inner, cat, p, from, to, now)
                .map_err(|e| err(ErrorCode::Invalid, format!("{e:#}")))?;
            let html = crate::report::html(&r);
            (
                json!({ "report": r, "html": html }),
                format!("ISO 27001 evidence report of {from} to {to}"),
            )
        }
        Call::Compliance => (
            to_value(&crate::compliance::all(inner, cat, now).map_err(from_anyhow)?)?,
            none(),
        ),
        Call::DrillList { asset } => (
            to_value(&cat.drills(asset.as_deref()).map_err(from_catalog)?)?,
            none(),
        ),
        Call::ReplicateRun { remote } => {
            let id = crate::replication::enqueue(
                inner,
                cat,
                remote,
                &identity_of(p),
                source,
                None,
                crate::replication::RetryOf::default(),
            )
            .map_err(from_anyhow)?;
            match id {
                Some(id) => (json!({"job": id}), format!("job {id} queued")),
                None => (
                    json!({"job": null}),
                    "a replication to it is already queued".into(),
                ),
            }
        }
        Call::ReplicateStatus => {
            let remotes = remote_views(cat)?;
            let lag = crate::replication::lag(cat, now).map_err(from_anyhow)?;
            let profiles = cat.profiles().map_err(from_catalog)?;
            let (scheds, _) = crate::plan::replication_schedules(&profiles);
            let tz = inner.config().time_zone();
            let next = crate::plan::next_replications(now, &scheds, &tz)
                .into_iter()
                .filter_map(|(profile, at_ms)| {
                    let s = scheds.iter().find(|s| s.profile == profile)?;
                    Some(coffer_types::api::ReplicationNext {
                        remotes: s.remotes.clone(),
                        schedule: s.calendar.to_string(),
                        at: coffer_types::rfc3339_ms(at_ms),
                        profile,
                    })
                })
                .collect();
            (
                to_value(&coffer_types::api::ReplicationStatus { remotes, lag, next })?,
                none(),
            )
        }
        Call::RemoteRestore {
            remote,
            store,
            snapshot,
            target,
            passphrase,
        } => {
            let pass = coffer_keys::Passphrase::new(passphrase.0.as_bytes().to_vec())
                .map_err(|e| err(ErrorCode::Invalid, e.to_string()))?;
            let order = crate::replication::RestoreOrder {
                store: store.clone(),
                snapshot: snapshot.clone(),
                target: std::path::PathBuf::from(target),
                passphrase: pass,
            };
            let id = crate::replication::enqueue_restore(
                inner,
                cat,
                remote,
                order,
                &identity_of(p),
                source,
            )
            .map_err(from_anyhow)?;
            (
                json!({"job": id}),
                format!("job {id} queued: restore into {target}"),
            )
        }
    })
}

/// Every remote as listed.
fn remote_views(cat: &Catalog) -> ApiResult<Vec<coffer_types::api::RemoteView>> {
    Ok(cat
        .remotes()
        .map_err(from_catalog)?
        .iter()
        .map(coffer_catalog::RemoteRow::view)
        .collect())
}

/// An error from the replication code, classified for the caller.
fn from_anyhow(e: anyhow::Error) -> ApiError {
    use coffer_catalog::Error as E;
    let msg = format!("{e:#}");
    match e.downcast_ref::<E>() {
        Some(E::NotFound { .. } | E::SnapshotNotFound(_) | E::AmbiguousSnapshot { .. }) => {
            err(ErrorCode::NotFound, msg)
        }
        Some(E::Exists { .. }) => err(ErrorCode::Conflict, msg),
        Some(E::Refused(_)) => err(ErrorCode::Forbidden, msg),
        Some(_) => err(ErrorCode::Internal, msg),
        None => err(ErrorCode::Invalid, msg),
    }
}

fn roles_text(roles: &[coffer_types::api::Role]) -> String {
    roles
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

fn asset_detail(a: &coffer_types::api::Asset) -> String {
    format!(
        "owner {}, {}, rpo {}, rto {}, profile {}",
        a.owner,
        a.criticality.as_str(),
        a.rpo,
        a.rto,
        a.profile.as_deref().unwrap_or("(none)")
    )
}

fn profile_detail(p: &coffer_types::api::Profile) -> String {
    serde_json::to_string(&p.schedules).unwrap_or_default()
}

fn asset_views(cat: &Catalog, now: i64) -> ApiResult<Vec<AssetView>> {
    let assets = cat.register().map_err(from_catalog)?;
    let profiles: std::collections::HashSet<String> = cat
        .profiles()
        .map_err(from_catalog)?
        .into_iter()
        .map(|p| p.name)
        .collect();
    let last = cat.last_good_backups().map_err(from_catalog)?;
    let breached: std::collections::HashSet<String> = plan::rpo_breaches(now, &assets, &last)
        .into_iter()
        .map(|b| b.asset)
        .collect();
    Ok(assets
        .into_iter()
        .map(|a| {
            let last_ms = last.get(&a.asset.name).copied();
            let unprotected = a
                .asset
                .profile
                .as_ref()
                .is_none_or(|p| !profiles.contains(p));
            let rpo_breached = breached.contains(&a.asset.name);
            AssetView {
                last_good_backup: last_ms.map(coffer_types::rfc3339_ms),
                unprotected,
                rpo_breached,
                asset: a.asset,
            }
        })
        .collect())
}

fn import(cat: &Catalog, csv: &str, replace: bool, now: i64) -> ApiResult<ImportReport> {
    let assets =
        register::parse_register_csv(csv).map_err(|e| err(ErrorCode::Invalid, e.to_string()))?;
    for a in &assets {
        check_asset(a)?;
    }
    cat.import_assets(&assets, replace, now)
        .map_err(from_catalog)
}

/// Whether `new` keeps less than `old` under any rule (a weakening change).
fn retention_shortened(
    old: &coffer_types::api::Retention,
    new: &coffer_types::api::Retention,
) -> bool {
    fn less<T: Ord>(o: Option<T>, n: Option<T>) -> bool {
        match (o, n) {
            (Some(o), Some(n)) => n < o,
            (Some(_), None) => true,
            (None, _) => false,
        }
    }
    less(old.keep_last, new.keep_last)
        || less(old.keep_daily, new.keep_daily)
        || less(old.keep_weekly, new.keep_weekly)
        || less(old.keep_monthly, new.keep_monthly)
        || less(old.keep_yearly, new.keep_yearly)
        || less(old.keep_within, new.keep_within)
        || less(old.keep_hourly, new.keep_hourly)
        || less(old.lock_for, new.lock_for)
}

/// The register's rules, plus this version's limit of one source directory
/// per asset (ARCHITECTURE.md, decision 33).
fn check_asset(a: &coffer_types::api::Asset) -> ApiResult<()> {
    register::validate_asset(a).map_err(|e| err(ErrorCode::Invalid, e.to_string()))?;
    if a.sources.len() != 1 {
        return Err(err(
            ErrorCode::Invalid,
            format!(
                "asset '{}': lists {} sources; this version backs up exactly one directory per asset (register one asset per directory)",
                a.name,
                a.sources.len()
            ),
        ));
    }
    Ok(())
}
