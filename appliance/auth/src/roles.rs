//! What each role may do: one explicit permission matrix.
//!
//! [`MATRIX`] is the single source of truth: [`allows`] reads it, and
//! `docs/roles.md` holds its rendering by [`render_matrix`] (a test fails if
//! the two differ). Permissions whose [`Permission::needs_fresh_mfa`] is set
//! are destructive or weaken protection; they need a TOTP code from the last
//! few minutes on top of the role (ISO 27001 A.8.13: MFA for changing
//! schedules or deleting data).

use std::fmt;

use coffer_types::api::Role;

/// One thing a caller may be allowed to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Permission {
    /// Read the daemon's status and the caller's own identity.
    StatusRead,
    /// Read the asset register.
    AssetRead,
    /// Add, import or change assets.
    AssetWrite,
    /// Remove an asset from the register.
    AssetRemove,
    /// Read profiles.
    ProfileRead,
    /// Add or change profiles (other than their schedules and shortening
    /// their retention).
    ProfileWrite,
    /// Remove a profile.
    ProfileRemove,
    /// Change a profile's schedules.
    ScheduleChange,
    /// Read the job log and job output; see upcoming runs.
    JobRead,
    /// Queue a backup now.
    JobRun,
    /// Cancel a queued or running job.
    JobCancel,
    /// List snapshots.
    SnapshotRead,
    /// Delete snapshots (prune outside retention).
    SnapshotDelete,
    /// Restore snapshots (and run restore drills).
    RestoreRun,
    /// Shorten a profile's retention.
    RetentionShorten,
    /// Read alerts.
    AlertRead,
    /// Acknowledge alerts.
    AlertAck,
    /// Read and verify the audit log.
    AuditRead,
    /// List users.
    UserRead,
    /// Add and remove users, change roles, unlock, reset MFA.
    UserManage,
    /// Create, list and revoke one's own API tokens.
    TokenManageOwn,
    /// List and revoke every user's API tokens.
    TokenManageAll,
    /// Change one's own password.
    PasswordChangeOwn,
    /// Create, rotate and escrow keys.
    KeyManage,
    /// Destroy a key (crypto-shredding: the data it protects is gone).
    KeyDestroy,
    /// Set or extend retention locks.
    LockManage,
    /// Place and release legal holds (security officer only).
    LegalHold,
    /// Accept a wall clock the appliance did not trust (after it jumped
    /// forward): retention locks then expire by it.
    ClockAccept,
    /// Re-read the configuration.
    ConfigReload,
    /// List offsite remotes and replication state.
    RemoteRead,
    /// Add, pair and remove offsite remotes (whom the appliance trusts with
    /// its ciphertext, and with which credentials).
    RemoteManage,
    /// Run a replication now.
    ReplicateRun,
    /// Read the media rotation: the day's procedure, pools, manifests,
    /// chain of custody.
    MediaRead,
    /// Record the media rotation's steps: exports, courier handovers,
    /// receipts, recalls, imports, cleaning, damaged cartridges.
    MediaHandle,
    /// Record that cartridges were destroyed (disposal certificates).
    MediaDispose,
    /// Install signed update bundles and restart the appliance.
    SystemUpdate,
}

impl Permission {
    /// Every permission, in declaration (and [`MATRIX`]) order.
    pub const ALL: [Permission; 36] = [
        Permission::StatusRead,
        Permission::AssetRead,
        Permission::AssetWrite,
        Permission::AssetRemove,
        Permission::ProfileRead,
        Permission::ProfileWrite,
        Permission::ProfileRemove,
        Permission::ScheduleChange,
        Permission::JobRead,
        Permission::JobRun,
        Permission::JobCancel,
        Permission::SnapshotRead,
        Permission::SnapshotDelete,
        Permission::RestoreRun,
        Permission::RetentionShorten,
        Permission::AlertRead,
        Permission::AlertAck,
        Permission::AuditRead,
        Permission::UserRead,
        Permission::UserManage,
        Permission::TokenManageOwn,
        Permission::TokenManageAll,
        Permission::PasswordChangeOwn,
        Permission::KeyManage,
        Permission::KeyDestroy,
        Permission::LockManage,
        Permission::LegalHold,
        Permission::ClockAccept,
        Permission::ConfigReload,
        Permission::RemoteRead,
        Permission::RemoteManage,
        Permission::ReplicateRun,
        Permission::MediaRead,
        Permission::MediaHandle,
        Permission::MediaDispose,
        Permission::SystemUpdate,
    ];

    /// The dotted name used in messages, the audit log and the docs.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::StatusRead => "status.read",
            Permission::AssetRead => "asset.read",
            Permission::AssetWrite => "asset.write",
            Permission::AssetRemove => "asset.remove",
            Permission::ProfileRead => "profile.read",
            Permission::ProfileWrite => "profile.write",
            Permission::ProfileRemove => "profile.remove",
            Permission::ScheduleChange => "schedule.change",
            Permission::JobRead => "job.read",
            Permission::JobRun => "job.run",
            Permission::JobCancel => "job.cancel",
            Permission::SnapshotRead => "snapshot.read",
            Permission::SnapshotDelete => "snapshot.delete",
            Permission::RestoreRun => "restore.run",
            Permission::RetentionShorten => "retention.shorten",
            Permission::AlertRead => "alert.read",
            Permission::AlertAck => "alert.ack",
            Permission::AuditRead => "audit.read",
            Permission::UserRead => "user.read",
            Permission::UserManage => "user.manage",
            Permission::TokenManageOwn => "token.manage-own",
            Permission::TokenManageAll => "token.manage-all",
            Permission::PasswordChangeOwn => "password.change-own",
            Permission::KeyManage => "key.manage",
            Permission::KeyDestroy => "key.destroy",
            Permission::LockManage => "lock.manage",
            Permission::LegalHold => "hold.manage",
            Permission::ClockAccept => "clock.accept",
            Permission::ConfigReload => "config.reload",
            Permission::RemoteRead => "remote.read",
            Permission::RemoteManage => "remote.manage",
            Permission::ReplicateRun => "replicate.run",
            Permission::MediaRead => "media.read",
            Permission::MediaHandle => "media.handle",
            Permission::MediaDispose => "media.dispose",
            Permission::SystemUpdate => "system.update",
        }
    }

    /// What it allows, in a few words (for the docs and the shell's help).
    pub fn description(self) -> &'static str {
        match self {
            Permission::StatusRead => "read the daemon's status",
            Permission::AssetRead => "read the asset register",
            Permission::AssetWrite => "add, import or change assets",
            Permission::AssetRemove => "remove an asset from the register",
            Permission::ProfileRead => "read profiles",
            Permission::ProfileWrite => "add or change profiles",
            Permission::ProfileRemove => "remove a profile",
            Permission::ScheduleChange => "change a profile's schedules",
            Permission::JobRead => "read the job log and upcoming runs",
            Permission::JobRun => "run a backup now",
            Permission::JobCancel => "cancel a job",
            Permission::SnapshotRead => "list snapshots",
            Permission::SnapshotDelete => "delete snapshots",
            Permission::RestoreRun => "restore snapshots, run restore drills",
            Permission::RetentionShorten => "shorten a profile's retention",
            Permission::AlertRead => "read alerts",
            Permission::AlertAck => "acknowledge alerts",
            Permission::AuditRead => "read and verify the audit log",
            Permission::UserRead => "list users",
            Permission::UserManage => "add and remove users, change roles, unlock, reset MFA",
            Permission::TokenManageOwn => "create, list and revoke one's own API tokens",
            Permission::TokenManageAll => "list and revoke every user's API tokens",
            Permission::PasswordChangeOwn => "change one's own password",
            Permission::KeyManage => "create, rotate and escrow keys",
            Permission::KeyDestroy => "destroy a key (crypto-shredding)",
            Permission::LockManage => "set or extend retention locks",
            Permission::LegalHold => "place and release legal holds",
            Permission::ClockAccept => "accept a wall clock that jumped forward",
            Permission::ConfigReload => "re-read the configuration",
            Permission::RemoteRead => "list offsite remotes and replication state",
            Permission::RemoteManage => "add, pair and remove offsite remotes",
            Permission::ReplicateRun => "run a replication now",
            Permission::MediaRead => "read the media rotation, manifests and custody",
            Permission::MediaHandle => {
                "record media rotation steps (export, receipt, recall, import)"
            }
            Permission::MediaDispose => "record that cartridges were destroyed",
            Permission::SystemUpdate => "install signed update bundles and restart the appliance",
        }
    }

    /// Whether this permission is destructive or weakens protection, and so
    /// needs a TOTP code from the last few minutes (fresh MFA).
    pub fn needs_fresh_mfa(self) -> bool {
        matches!(
            self,
            Permission::ScheduleChange
                | Permission::SnapshotDelete
                | Permission::RetentionShorten
                | Permission::LegalHold
                | Permission::ClockAccept
                | Permission::KeyDestroy
                | Permission::UserManage
                | Permission::AssetRemove
                | Permission::ProfileRemove
                | Permission::RemoteManage
                | Permission::MediaDispose
                | Permission::SystemUpdate
        )
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

const Y: bool = true;
const N: bool = false;

/// The permission matrix: for each permission, whether each role holds it,
/// in [`Role::ALL`] order — administrator, backup operator, restore
/// operator, auditor, security officer.
#[rustfmt::skip]
pub const MATRIX: [(Permission, [bool; 5]); 36] = [
    //                                 admin backup restore audit secoff
    (Permission::StatusRead,        [Y,    Y,     Y,      Y,    Y]),
    (Permission::AssetRead,         [Y,    Y,     Y,      Y,    Y]),
    (Permission::AssetWrite,        [Y,    Y,     N,      N,    N]),
    (Permission::AssetRemove,       [Y,    Y,     N,      N,    N]),
    (Permission::ProfileRead,       [Y,    Y,     N,      Y,    Y]),
    (Permission::ProfileWrite,      [Y,    Y,     N,      N,    N]),
    (Permission::ProfileRemove,     [Y,    Y,     N,      N,    N]),
    (Permission::ScheduleChange,    [Y,    Y,     N,      N,    N]),
    (Permission::JobRead,           [Y,    Y,     Y,      Y,    Y]),
    (Permission::JobRun,            [Y,    Y,     N,      N,    N]),
    (Permission::JobCancel,         [Y,    Y,     N,      N,    N]),
    (Permission::SnapshotRead,      [Y,    Y,     Y,      Y,    Y]),
    (Permission::SnapshotDelete,    [Y,    N,     N,      N,    N]),
    (Permission::RestoreRun,        [Y,    N,     Y,      N,    N]),
    (Permission::RetentionShorten,  [Y,    N,     N,      N,    N]),
    (Permission::AlertRead,         [Y,    Y,     N,      Y,    Y]),
    (Permission::AlertAck,          [Y,    Y,     N,      N,    N]),
    (Permission::AuditRead,         [Y,    N,     N,      Y,    Y]),
    (Permission::UserRead,          [Y,    N,     N,      Y,    Y]),
    (Permission::UserManage,        [Y,    N,     N,      N,    Y]),
    (Permission::TokenManageOwn,    [Y,    Y,     Y,      Y,    Y]),
    (Permission::TokenManageAll,    [Y,    N,     N,      N,    Y]),
    (Permission::PasswordChangeOwn, [Y,    Y,     Y,      Y,    Y]),
    (Permission::KeyManage,         [Y,    N,     N,      N,    Y]),
    (Permission::KeyDestroy,        [Y,    N,     N,      N,    Y]),
    (Permission::LockManage,        [Y,    N,     N,      N,    Y]),
    (Permission::LegalHold,         [N,    N,     N,      N,    Y]),
    (Permission::ClockAccept,       [N,    N,     N,      N,    Y]),
    (Permission::ConfigReload,      [Y,    N,     N,      N,    N]),
    (Permission::RemoteRead,        [Y,    Y,     Y,      Y,    Y]),
    (Permission::RemoteManage,      [Y,    N,     N,      N,    Y]),
    (Permission::ReplicateRun,      [Y,    Y,     N,      N,    N]),
    (Permission::MediaRead,         [Y,    Y,     Y,      Y,    Y]),
    (Permission::MediaHandle,       [Y,    Y,     N,      N,    N]),
    (Permission::MediaDispose,      [Y,    N,     N,      N,    Y]),
    (Permission::SystemUpdate,      [Y,    N,     N,      N,    N]),
];

/// Whether `role` holds permission `p`, by [`MATRIX`].
pub fn allows(role: Role, p: Permission) -> bool {
    let Some(col) = Role::ALL.iter().position(|&r| r == role) else {
        return false;
    };
    MATRIX
        .iter()
        .find(|(q, _)| *q == p)
        .and_then(|(_, row)| row.get(col).copied())
        .unwrap_or(false)
}

/// Whether any of `roles` holds `p`.
pub fn any_allows(roles: &[Role], p: Permission) -> bool {
    roles.iter().any(|&r| allows(r, p))
}

/// The matrix as a Markdown table, as `docs/roles.md` holds it.
pub fn render_matrix() -> String {
    let mut out = String::from("| permission | what it allows | fresh MFA |");
    for role in Role::ALL {
        out.push_str(&format!(" {role} |"));
    }
    out.push_str("\n|---|---|---|");
    for _ in Role::ALL {
        out.push_str("---|");
    }
    out.push('\n');
    for p in Permission::ALL {
        let mfa = if p.needs_fresh_mfa() { "yes" } else { "" };
        out.push_str(&format!(
            "| `{}` | {} | {mfa} |",
            p.as_str(),
            p.description()
        ));
        for role in Role::ALL {
            out.push_str(if allows(role, p) { " ✔ |" } else { "  |" });
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_matrix_lists_every_permission_once_in_order() {
        assert_eq!(MATRIX.len(), Permission::ALL.len());
        for (i, ((p, _), q)) in MATRIX.iter().zip(Permission::ALL).enumerate() {
            assert_eq!(*p, q, "row {i}");
            assert_eq!(*p as usize, i, "Permission::ALL is in declaration order");
        }
    }

    #[test]
    fn allows_reads_the_matrix_for_every_role_and_permission() {
        for (p, row) in MATRIX {
            for (role, expected) in Role::ALL.into_iter().zip(row) {
                assert_eq!(allows(role, p), expected, "{role} / {p}");
            }
        }
    }

    #[test]
    fn the_policy_in_words_holds() {
        use Role::*;
        for p in Permission::ALL {
            // Legal holds and the trusted clock are the security officer's
            // alone: the administrator whose deletions they stop cannot
            // lift them.
            let officers_only = matches!(p, Permission::LegalHold | Permission::ClockAccept);
            assert_eq!(
                allows(Administrator, p),
                !officers_only,
                "administrator / {p}"
            );
            if officers_only {
                assert!(allows(SecurityOfficer, p), "{p}");
            }
            // Everyone manages their own tokens and password.
            if matches!(
                p,
                Permission::TokenManageOwn | Permission::PasswordChangeOwn
            ) {
                assert!(Role::ALL.iter().all(|&r| allows(r, p)));
            }
            let is_read = p.as_str().ends_with(".read");
            // The auditor reads everything and changes nothing.
            let own = matches!(
                p,
                Permission::TokenManageOwn | Permission::PasswordChangeOwn
            );
            assert_eq!(allows(Auditor, p), is_read || own, "auditor / {p}");
            // The security officer reads everything too.
            if is_read {
                assert!(allows(SecurityOfficer, p), "security officer / {p}");
            }
            // Destructive actions are never the backup or restore operator's.
            if matches!(
                p,
                Permission::SnapshotDelete
                    | Permission::RetentionShorten
                    | Permission::KeyDestroy
                    | Permission::LegalHold
                    | Permission::ClockAccept
            ) {
                assert!(
                    !allows(BackupOperator, p) && !allows(RestoreOperator, p),
                    "{p}"
                );
            }
        }
        // Separation of duties: whoever manages users runs no backups or
        // restores, and the backup operator does not restore.
        for p in [
            Permission::JobRun,
            Permission::JobCancel,
            Permission::RestoreRun,
        ] {
            assert!(!allows(SecurityOfficer, p), "{p}");
        }
        assert!(!allows(BackupOperator, Permission::RestoreRun));
        assert!(!allows(RestoreOperator, Permission::JobRun));
        assert!(!allows(BackupOperator, Permission::UserManage));
        assert!(!allows(BackupOperator, Permission::AuditRead));
        assert!(allows(SecurityOfficer, Permission::AuditRead));
        assert!(allows(SecurityOfficer, Permission::KeyManage));
        assert!(allows(SecurityOfficer, Permission::LockManage));
    }

    #[test]
    fn fresh_mfa_flags_exactly_the_destructive_permissions() {
        let flagged: Vec<_> = Permission::ALL
            .into_iter()
            .filter(|p| p.needs_fresh_mfa())
            .collect();
        assert_eq!(
            flagged,
            [
                Permission::AssetRemove,
                Permission::ProfileRemove,
                Permission::ScheduleChange,
                Permission::SnapshotDelete,
                Permission::RetentionShorten,
                Permission::UserManage,
                Permission::KeyDestroy,
                Permission::LegalHold,
                Permission::ClockAccept,
                Permission::RemoteManage,
                Permission::MediaDispose,
                Permission::SystemUpdate,
            ]
        );
    }

    #[test]
    fn docs_roles_md_holds_the_rendered_matrix() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/roles.md");
        let doc = std::fs::read_to_string(path).unwrap();
        let table = render_matrix();
        assert!(
            doc.contains(&table),
            "docs/roles.md does not hold the current matrix; replace its table with:\n\n{table}"
        );
        // Exactly once, and nothing else looks like a matrix row.
        assert_eq!(doc.matches("| permission | what it allows |").count(), 1);
        let rows = doc.lines().filter(|l| l.starts_with("| `")).count();
        assert_eq!(rows, Permission::ALL.len());
    }
}
