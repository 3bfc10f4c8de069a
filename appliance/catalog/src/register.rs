//! The service's tables: the asset register, backup profiles, the
//! scheduler's state, alerts, and the newest good backup of each asset.
//!
//! The register (ISO 27001 A.5.9) maps each system to its owner, its
//! criticality, its RPO and RTO and the profile that backs it up. Profiles
//! are stored whole as JSON (`profile_json`): they are read and written as a
//! unit and nothing queries inside them. The scheduler's state is one row
//! per (asset, level): the expression it was computed for and the last
//! occurrence already handled, so a restart neither repeats nor loses runs.
//! Validation (names, paths, calendar expressions) is the daemon's; these
//! methods store what they are given.

use std::collections::HashMap;

use coffer_types::api::{Alert, Asset, Criticality, Duration, ImportReport, Profile};
use coffer_types::{Level, rfc3339_ms};
use rusqlite::{OptionalExtension, Transaction, params};

use crate::{Catalog, Error, Result};

/// An asset as the register holds it, with its bookkeeping times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredAsset {
    /// The register row.
    pub asset: Asset,
    /// When it was added, milliseconds since the Unix epoch (the RPO
    /// monitor measures a never-backed-up asset from here).
    pub registered_ms: i64,
    /// When it was last changed.
    pub updated_ms: i64,
}

/// Which schedule a [`ScheduleMark`] belongs to: (asset, level).
pub type ScheduleKey = (String, Level);

/// The scheduler's persisted state of one schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleMark {
    /// The calendar expression (normalized) this state was computed for; a
    /// changed expression starts afresh.
    pub expr: String,
    /// The last occurrence already handled, milliseconds since the epoch.
    pub last_due_ms: i64,
}

/// What [`Catalog::raise_alert`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RaisedAlert {
    /// The open alert's id.
    pub id: i64,
    /// True if this call opened it; false if it was already open (its
    /// message was refreshed).
    pub new: bool,
}

const ASSET_COLUMNS: &str = "name, owner, criticality, sources_json, excludes_json, rpo_s, rto_s, \
     profile, created_ms, updated_ms";

type RawAsset = (
    String,
    String,
    String,
    String,
    String,
    i64,
    i64,
    Option<String>,
    i64,
    i64,
);

type RawAlert = (
    i64,
    String,
    String,
    String,
    i64,
    Option<i64>,
    Option<String>,
);

const ALERT_COLUMNS: &str = "id, kind, subject, message, raised_ms, cleared_ms, acked_by";

fn alert_from(raw: RawAlert) -> Alert {
    let (id, kind, subject, message, raised_ms, cleared_ms, acked_by) = raw;
    Alert {
        id,
        kind,
        subject,
        message,
        raised: rfc3339_ms(raised_ms),
        cleared: cleared_ms.map(rfc3339_ms),
        acked_by,
    }
}

/// Seconds as SQLite's signed integer.
fn secs(field: &'static str, d: Duration) -> Result<i64> {
    i64::try_from(d.secs()).map_err(|_| Error::TooLarge {
        field,
        value: d.secs(),
    })
}

impl Catalog {
    fn encode_list(what: &'static str, v: &[String]) -> Result<String> {
        serde_json::to_string(v).map_err(|error| Error::Encode { what, error })
    }

    fn encode_profile(profile: &Profile) -> Result<String> {
        serde_json::to_string(profile).map_err(|error| Error::Encode {
            what: "the profile",
            error,
        })
    }

    fn asset_from(&self, raw: RawAsset) -> Result<RegisteredAsset> {
        let (name, owner, crit, sources, excludes, rpo, rto, profile, created, updated) = raw;
        let bad = |what: &str| Error::corrupt(self.path(), format!("asset {name}: bad {what}"));
        let criticality: Criticality = crit.parse().map_err(|_| bad("criticality"))?;
        let sources: Vec<String> = serde_json::from_str(&sources).map_err(|_| bad("sources"))?;
        let excludes: Vec<String> = serde_json::from_str(&excludes).map_err(|_| bad("excludes"))?;
        let rpo = Duration(u64::try_from(rpo).map_err(|_| bad("rpo"))?);
        let rto = Duration(u64::try_from(rto).map_err(|_| bad("rto"))?);
        Ok(RegisteredAsset {
            asset: Asset {
                name,
                owner,
                criticality,
                sources,
                excludes,
                rpo,
                rto,
                profile,
            },
            registered_ms: created,
            updated_ms: updated,
        })
    }

    /// Adds `asset` to the register at `now_ms`; [`Error::Exists`] if its
    /// name is taken.
    pub fn add_asset(&self, asset: &Asset, now_ms: i64) -> Result<()> {
        let tx = self.write_tx("locking the register to add an asset")?;
        if self.asset_in(&tx, &asset.name)? {
            return Err(Error::Exists {
                what: "asset",
                name: asset.name.clone(),
            });
        }
        self.insert_asset(&tx, asset, now_ms)?;
        tx.commit().map_err(self.sql("committing a new asset"))
    }

    fn asset_in(&self, tx: &Transaction<'_>, name: &str) -> Result<bool> {
        tx.query_row(
            "SELECT 1 FROM asset_register WHERE name = ?1",
            [name],
            |_| Ok(()),
        )
        .optional()
        .map(|found| found.is_some())
        .map_err(self.sql("looking up an asset in the register"))
    }

    fn insert_asset(&self, tx: &Transaction<'_>, asset: &Asset, now_ms: i64) -> Result<()> {
        tx.execute(
            &format!(
                "INSERT INTO asset_register ({ASSET_COLUMNS}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)"
            ),
            params![
                asset.name,
                asset.owner,
                asset.criticality.as_str(),
                Self::encode_list("the asset's sources", &asset.sources)?,
                Self::encode_list("the asset's excludes", &asset.excludes)?,
                secs("rpo", asset.rpo)?,
                secs("rto", asset.rto)?,
                asset.profile,
                now_ms,
            ],
        )
        .map_err(self.sql("adding an asset to the register"))?;
        Ok(())
    }

    /// Replaces the asset of that name; returns how many rows changed.
    fn replace_asset(&self, tx: &Transaction<'_>, asset: &Asset, now_ms: i64) -> Result<usize> {
        tx.execute(
            "UPDATE asset_register SET owner = ?2, criticality = ?3, sources_json = ?4, \
             excludes_json = ?5, rpo_s = ?6, rto_s = ?7, profile = ?8, updated_ms = ?9 \
             WHERE name = ?1",
            params![
                asset.name,
                asset.owner,
                asset.criticality.as_str(),
                Self::encode_list("the asset's sources", &asset.sources)?,
                Self::encode_list("the asset's excludes", &asset.excludes)?,
                secs("rpo", asset.rpo)?,
                secs("rto", asset.rto)?,
                asset.profile,
                now_ms,
            ],
        )
        .map_err(self.sql("updating an asset in the register"))
    }

    /// The asset named `name`; [`Error::NotFound`] if the register has none.
    pub fn asset(&self, name: &str) -> Result<RegisteredAsset> {
        let raw = self
            .conn
            .query_row(
                &format!("SELECT {ASSET_COLUMNS} FROM asset_register WHERE name = ?1"),
                [name],
                crate::tuple::<RawAsset>,
            )
            .optional()
            .map_err(self.sql("reading an asset from the register"))?
            .ok_or_else(|| Error::NotFound {
                what: "asset",
                name: name.to_string(),
            })?;
        self.asset_from(raw)
    }

    /// The whole register, by name.
    pub fn register(&self) -> Result<Vec<RegisteredAsset>> {
        let raw = self.rows(
            &format!("SELECT {ASSET_COLUMNS} FROM asset_register ORDER BY name"),
            "listing the register",
            crate::tuple::<RawAsset>,
        )?;
        raw.into_iter().map(|r| self.asset_from(r)).collect()
    }

    /// Replaces the asset with `asset.name` (its registration time stays);
    /// [`Error::NotFound`] if there is none.
    pub fn update_asset(&self, asset: &Asset, now_ms: i64) -> Result<()> {
        let tx = self.write_tx("locking the register to update an asset")?;
        if self.replace_asset(&tx, asset, now_ms)? == 0 {
            return Err(Error::NotFound {
                what: "asset",
                name: asset.name.clone(),
            });
        }
        tx.commit().map_err(self.sql("committing an asset update"))
    }

    /// Removes an asset from the register, with its schedule state (its
    /// snapshots and job log stay); [`Error::NotFound`] if there is none.
    pub fn remove_asset(&self, name: &str) -> Result<()> {
        let tx = self.write_tx("locking the register to remove an asset")?;
        let removed = tx
            .execute("DELETE FROM asset_register WHERE name = ?1", [name])
            .map_err(self.sql("removing an asset from the register"))?;
        if removed == 0 {
            return Err(Error::NotFound {
                what: "asset",
                name: name.to_string(),
            });
        }
        tx.execute("DELETE FROM schedule_state WHERE asset = ?1", [name])
            .map_err(self.sql("removing an asset's schedule state"))?;
        tx.commit().map_err(self.sql("committing an asset removal"))
    }

    /// Imports assets in one transaction: new names are added; existing
    /// ones are replaced if `replace`, else left alone. Assets without a
    /// profile, or naming a profile that does not exist, are also listed as
    /// unprotected.
    pub fn import_assets(
        &self,
        assets: &[Asset],
        replace: bool,
        now_ms: i64,
    ) -> Result<ImportReport> {
        let tx = self.write_tx("locking the register to import assets")?;
        let mut report = ImportReport {
            added: Vec::new(),
            replaced: Vec::new(),
            skipped: Vec::new(),
            unprotected: Vec::new(),
        };
        for asset in assets {
            if !self.asset_in(&tx, &asset.name)? {
                self.insert_asset(&tx, asset, now_ms)?;
                report.added.push(asset.name.clone());
            } else if replace {
                self.replace_asset(&tx, asset, now_ms)?;
                report.replaced.push(asset.name.clone());
            } else {
                report.skipped.push(asset.name.clone());
                continue;
            }
            let protected = match &asset.profile {
                None => false,
                Some(p) => tx
                    .query_row("SELECT 1 FROM profiles WHERE name = ?1", [p], |_| Ok(()))
                    .optional()
                    .map_err(self.sql("looking up a profile"))?
                    .is_some(),
            };
            if !protected {
                report.unprotected.push(asset.name.clone());
            }
        }
        tx.commit().map_err(self.sql("committing an import"))?;
        Ok(report)
    }

    fn profile_from(&self, name: &str, json: &str) -> Result<Profile> {
        serde_json::from_str(json)
            .map_err(|e| Error::corrupt(self.path(), format!("profile {name}: profile_json: {e}")))
    }

    /// Adds a profile; [`Error::Exists`] if its name is taken.
    pub fn add_profile(&self, profile: &Profile, now_ms: i64) -> Result<()> {
        let json = Self::encode_profile(profile)?;
        let added = self
            .conn
            .execute(
                "INSERT INTO profiles (name, profile_json, created_ms, updated_ms) \
                 VALUES (?1, ?2, ?3, ?3) ON CONFLICT (name) DO NOTHING",
                params![profile.name, json, now_ms],
            )
            .map_err(self.sql("adding a profile"))?;
        if added == 0 {
            return Err(Error::Exists {
                what: "profile",
                name: profile.name.clone(),
            });
        }
        Ok(())
    }

    /// The profile named `name`; [`Error::NotFound`] if there is none.
    pub fn profile(&self, name: &str) -> Result<Profile> {
        let json: String = self
            .conn
            .query_row(
                "SELECT profile_json FROM profiles WHERE name = ?1",
                [name],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.sql("reading a profile"))?
            .ok_or_else(|| Error::NotFound {
                what: "profile",
                name: name.to_string(),
            })?;
        self.profile_from(name, &json)
    }

    /// Every profile, by name.
    pub fn profiles(&self) -> Result<Vec<Profile>> {
        let raw = self.rows(
            "SELECT name, profile_json FROM profiles ORDER BY name",
            "listing profiles",
            |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
        )?;
        raw.iter()
            .map(|(name, json)| self.profile_from(name, json))
            .collect()
    }

    /// Replaces the profile with `profile.name`; [`Error::NotFound`] if
    /// there is none.
    pub fn update_profile(&self, profile: &Profile, now_ms: i64) -> Result<()> {
        let json = Self::encode_profile(profile)?;
        let changed = self
            .conn
            .execute(
                "UPDATE profiles SET profile_json = ?2, updated_ms = ?3 WHERE name = ?1",
                params![profile.name, json, now_ms],
            )
            .map_err(self.sql("updating a profile"))?;
        if changed == 0 {
            return Err(Error::NotFound {
                what: "profile",
                name: profile.name.clone(),
            });
        }
        Ok(())
    }

    /// Removes a profile; [`Error::InUse`] while an asset names it,
    /// [`Error::NotFound`] if there is none.
    pub fn remove_profile(&self, name: &str) -> Result<()> {
        let tx = self.write_tx("locking the catalog to remove a profile")?;
        let users: Vec<String> = {
            let mut stmt = tx
                .prepare("SELECT name FROM asset_register WHERE profile = ?1 ORDER BY name")
                .map_err(self.sql("listing the assets of a profile"))?;
            stmt.query_map([name], |r| r.get(0))
                .map_err(self.sql("listing the assets of a profile"))?
                .collect::<rusqlite::Result<_>>()
                .map_err(self.sql("listing the assets of a profile"))?
        };
        if !users.is_empty() {
            return Err(Error::InUse {
                what: "profile",
                name: name.to_string(),
                by_what: "assets",
                by: users,
            });
        }
        let removed = tx
            .execute("DELETE FROM profiles WHERE name = ?1", [name])
            .map_err(self.sql("removing a profile"))?;
        if removed == 0 {
            return Err(Error::NotFound {
                what: "profile",
                name: name.to_string(),
            });
        }
        tx.commit()
            .map_err(self.sql("committing a profile removal"))
    }

    /// The scheduler's state of every schedule.
    pub fn schedule_state(&self) -> Result<HashMap<ScheduleKey, ScheduleMark>> {
        let raw = self.rows(
            "SELECT asset, level, expr, last_due_ms FROM schedule_state",
            "reading the schedule state",
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            },
        )?;
        raw.into_iter()
            .map(|(asset, level, expr, last_due_ms)| {
                let level: Level = level.parse().map_err(|_| {
                    Error::corrupt(
                        self.path(),
                        format!("schedule state of {asset}: bad level '{level}'"),
                    )
                })?;
                Ok(((asset, level), ScheduleMark { expr, last_due_ms }))
            })
            .collect()
    }

    /// Writes the state of the schedules in `set` and deletes that of the
    /// schedules in `forget`, in one transaction.
    pub fn set_schedule_state(
        &self,
        set: &[(ScheduleKey, ScheduleMark)],
        forget: &[ScheduleKey],
    ) -> Result<()> {
        let tx = self.write_tx("locking the schedule state")?;
        for ((asset, level), mark) in set {
            tx.execute(
                "INSERT INTO schedule_state (asset, level, expr, last_due_ms) \
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT (asset, level) DO UPDATE SET \
                 expr = excluded.expr, last_due_ms = excluded.last_due_ms",
                params![asset, level.as_str(), mark.expr, mark.last_due_ms],
            )
            .map_err(self.sql("writing the schedule state"))?;
        }
        for (asset, level) in forget {
            tx.execute(
                "DELETE FROM schedule_state WHERE asset = ?1 AND level = ?2",
                params![asset, level.as_str()],
            )
            .map_err(self.sql("deleting schedule state"))?;
        }
        tx.commit()
            .map_err(self.sql("committing the schedule state"))
    }

    /// The replication calendars' state, by profile.
    pub fn replication_schedule_state(&self) -> Result<HashMap<String, ScheduleMark>> {
        self.calendar_state("replication_schedule")
    }

    /// Writes the replication calendars' state in `set` and deletes that
    /// of the profiles in `forget`, in one transaction.
    pub fn set_replication_schedule_state(
        &self,
        set: &[(String, ScheduleMark)],
        forget: &[String],
    ) -> Result<()> {
        self.set_calendar_state("replication_schedule", set, forget)
    }

    /// The restore drill calendars' state, by profile.
    pub fn drill_schedule_state(&self) -> Result<HashMap<String, ScheduleMark>> {
        self.calendar_state("drill_schedule")
    }

    /// Writes the drill calendars' state in `set` and deletes that of the
    /// profiles in `forget`, in one transaction.
    pub fn set_drill_schedule_state(
        &self,
        set: &[(String, ScheduleMark)],
        forget: &[String],
    ) -> Result<()> {
        self.set_calendar_state("drill_schedule", set, forget)
    }

    /// The verification calendars' state, by what they verify.
    pub fn verify_schedule_state(&self) -> Result<HashMap<String, ScheduleMark>> {
        self.calendar_state("verify_schedule")
    }

    /// Writes the verification calendars' state.
    pub fn set_verify_schedule_state(
        &self,
        set: &[(String, ScheduleMark)],
        forget: &[String],
    ) -> Result<()> {
        self.set_calendar_state("verify_schedule", set, forget)
    }

    /// A per-profile calendar's state (`table`: one of this crate's).
    fn calendar_state(&self, table: &'static str) -> Result<HashMap<String, ScheduleMark>> {
        let rows = self.rows(
            &format!("SELECT profile, expr, last_due_ms FROM {table}"),
            "reading a schedule's state",
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    ScheduleMark {
                        expr: r.get(1)?,
                        last_due_ms: r.get(2)?,
                    },
                ))
            },
        )?;
        Ok(rows.into_iter().collect())
    }

    fn set_calendar_state(
        &self,
        table: &'static str,
        set: &[(String, ScheduleMark)],
        forget: &[String],
    ) -> Result<()> {
        let tx = self.write_tx("locking a schedule's state")?;
        for (profile, mark) in set {
            tx.execute(
                &format!(
                    "INSERT INTO {table} (profile, expr, last_due_ms) \
                     VALUES (?1, ?2, ?3) ON CONFLICT (profile) DO UPDATE SET \
                     expr = excluded.expr, last_due_ms = excluded.last_due_ms"
                ),
                params![profile, mark.expr, mark.last_due_ms],
            )
            .map_err(self.sql("writing a schedule's state"))?;
        }
        for profile in forget {
            tx.execute(
                &format!("DELETE FROM {table} WHERE profile = ?1"),
                [profile],
            )
            .map_err(self.sql("deleting a schedule's state"))?;
        }
        tx.commit()
            .map_err(self.sql("committing a schedule's state"))
    }

    /// Deletes the schedule state of every level of `asset`; returns how
    /// many rows went.
    pub fn delete_schedule_state(&self, asset: &str) -> Result<usize> {
        self.conn
            .execute("DELETE FROM schedule_state WHERE asset = ?1", [asset])
            .map_err(self.sql("deleting an asset's schedule state"))
    }

    /// Opens an alert of `kind` about `subject`, unless one is open already
    /// (then its message is refreshed and nothing else changes).
    pub fn raise_alert(
        &self,
        kind: &str,
        subject: &str,
        message: &str,
        now_ms: i64,
    ) -> Result<RaisedAlert> {
        let tx = self.write_tx("locking the alerts")?;
        let open: Option<i64> = tx
            .query_row(
                "SELECT id FROM alerts WHERE kind = ?1 AND subject = ?2 AND cleared_ms IS NULL",
                [kind, subject],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.sql("looking up an open alert"))?;
        let raised = match open {
            Some(id) => {
                tx.execute(
                    "UPDATE alerts SET message = ?2 WHERE id = ?1",
                    params![id, message],
                )
                .map_err(self.sql("refreshing an open alert"))?;
                RaisedAlert { id, new: false }
            }
            None => {
                tx.execute(
                    "INSERT INTO alerts (kind, subject, message, raised_ms) \
                     VALUES (?1, ?2, ?3, ?4)",
                    params![kind, subject, message, now_ms],
                )
                .map_err(self.sql("raising an alert"))?;
                RaisedAlert {
                    id: tx.last_insert_rowid(),
                    new: true,
                }
            }
        };
        tx.commit().map_err(self.sql("committing an alert"))?;
        Ok(raised)
    }

    /// Clears the open alert of `kind` about `subject` (the condition
    /// ended); returns whether one was open.
    pub fn clear_alert(&self, kind: &str, subject: &str, now_ms: i64) -> Result<bool> {
        let cleared = self
            .conn
            .execute(
                "UPDATE alerts SET cleared_ms = ?3 \
                 WHERE kind = ?1 AND subject = ?2 AND cleared_ms IS NULL",
                params![kind, subject, now_ms],
            )
            .map_err(self.sql("clearing an alert"))?;
        Ok(cleared > 0)
    }

    /// Records that `user` acknowledged alert `id` (the first
    /// acknowledgement is kept); [`Error::NotFound`] if there is no such
    /// alert.
    pub fn ack_alert(&self, id: i64, user: &str, now_ms: i64) -> Result<()> {
        let tx = self.write_tx("locking the alerts")?;
        let changed = tx
            .execute(
                "UPDATE alerts SET acked_by = ?2, acked_ms = ?3 \
                 WHERE id = ?1 AND acked_by IS NULL",
                params![id, user, now_ms],
            )
            .map_err(self.sql("acknowledging an alert"))?;
        if changed == 0 {
            let exists = tx
                .query_row("SELECT 1 FROM alerts WHERE id = ?1", [id], |_| Ok(()))
                .optional()
                .map_err(self.sql("looking up an alert"))?
                .is_some();
            if !exists {
                return Err(Error::NotFound {
                    what: "alert",
                    name: id.to_string(),
                });
            }
        }
        tx.commit()
            .map_err(self.sql("committing an acknowledgement"))
    }

    /// Alerts, newest first: the open ones, or all if `all`.
    pub fn alerts(&self, all: bool) -> Result<Vec<Alert>> {
        let filter = if all { "" } else { "WHERE cleared_ms IS NULL" };
        let raw = self.rows(
            &format!(
                "SELECT {ALERT_COLUMNS} FROM alerts {filter} ORDER BY raised_ms DESC, id DESC"
            ),
            "listing alerts",
            crate::tuple::<RawAlert>,
        )?;
        Ok(raw.into_iter().map(alert_from).collect())
    }

    /// The alerts raised after alert `id` (open or not), oldest first.
    pub fn alerts_after(&self, id: i64) -> Result<Vec<Alert>> {
        let raw = self.rows_with(
            &format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE id > ?1 ORDER BY id"),
            [id],
            "listing new alerts",
            crate::tuple::<RawAlert>,
        )?;
        Ok(raw.into_iter().map(alert_from).collect())
    }

    /// How many alerts are open.
    pub fn open_alert_count(&self) -> Result<u64> {
        let n: i64 = self
            .conn
            .query_row(
                "SELECT count(*) FROM alerts WHERE cleared_ms IS NULL",
                [],
                |r| r.get(0),
            )
            .map_err(self.sql("counting open alerts"))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// The end of each asset's newest good backup (every snapshot comes
    /// from a backup that ended in success or warning), milliseconds since
    /// the epoch, by asset name. Assets with no snapshot are absent.
    pub fn last_good_backups(&self) -> Result<HashMap<String, i64>> {
        let rows = self.rows(
            "SELECT a.name, max(s.finished_ms) FROM snapshots s \
             JOIN assets a ON a.id = s.asset_id GROUP BY a.id",
            "finding each asset's last good backup",
            |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)),
        )?;
        Ok(rows.into_iter().collect())
    }
}

#[cfg(test)]
mod tests;

/// A notification target's delivery state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotifyState {
    /// The last alert delivered (or skipped as not wanted).
    pub last_alert: i64,
    /// Deliveries have failed since then, ms since the epoch.
    pub failing_since: Option<i64>,
    /// The next attempt, ms since the epoch.
    pub next_try_ms: Option<i64>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
}

impl Catalog {
    /// Target `target`'s delivery state; `None` before its first delivery.
    pub fn notify_state(&self, target: &str) -> Result<Option<NotifyState>> {
        use rusqlite::OptionalExtension;
        self.conn
            .query_row(
                "SELECT last_alert, failing_since, next_try_ms, last_error FROM notify_state \
                 WHERE target = ?1",
                [target],
                |r| {
                    Ok(NotifyState {
                        last_alert: r.get(0)?,
                        failing_since: r.get(1)?,
                        next_try_ms: r.get(2)?,
                        last_error: r.get(3)?,
                    })
                },
            )
            .optional()
            .map_err(self.sql("reading a notification target's state"))
    }

    /// Writes target `target`'s delivery state.
    pub fn set_notify_state(&self, target: &str, s: &NotifyState) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO notify_state (target, last_alert, failing_since, next_try_ms, last_error) \
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (target) DO UPDATE SET \
                 last_alert = excluded.last_alert, failing_since = excluded.failing_since, \
                 next_try_ms = excluded.next_try_ms, last_error = excluded.last_error",
                params![target, s.last_alert, s.failing_since, s.next_try_ms, s.last_error],
            )
            .map_err(self.sql("writing a notification target's state"))?;
        Ok(())
    }

    /// The newest alert's id (0 when there is none).
    pub fn newest_alert_id(&self) -> Result<i64> {
        self.conn
            .query_row("SELECT COALESCE(MAX(id), 0) FROM alerts", [], |r| r.get(0))
            .map_err(self.sql("reading the newest alert"))
    }
}
