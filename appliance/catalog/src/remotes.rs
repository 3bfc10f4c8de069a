//! Offsite remotes: who they are (an appliance's pinned certificate, a
//! bucket and its sealed credentials), how far their copy of the store
//! reaches, and what each replication job did.

use coffer_types::api::{RemoteKind, RemoteSpec, RemoteView, ReplicationStats};
use coffer_types::{JobStatus, rfc3339_ms};
use rusqlite::OptionalExtension;

use crate::error::{Error, Result};
use crate::rows::messages_to_json;
use crate::{Catalog, tuple};

/// A remote as stored, with what the daemon needs and the API never shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteRow {
    /// The remote as added (no secret).
    pub spec: RemoteSpec,
    /// The pinned certificate fingerprint (hex), appliances.
    pub pinned: Option<String>,
    /// The fingerprint it presented when last probed.
    pub seen: Option<String>,
    /// Credentials sealed under the store's sealing key (S3).
    pub sealed_secret: Option<Vec<u8>>,
    /// The last replication job.
    pub last_job: Option<i64>,
    /// When a replication last completed verified.
    pub last_success_ms: Option<i64>,
    /// Every backup before this time was in the store when that replication
    /// began, so the copy holds it.
    pub covers_until_ms: Option<i64>,
    /// Why the last replication failed.
    pub last_error: Option<String>,
}

impl RemoteRow {
    /// The row as the API lists it.
    pub fn view(&self) -> RemoteView {
        let mut spec = self.spec.clone();
        if let Some(s3) = &mut spec.s3 {
            s3.secret_access_key = None;
        }
        // The fingerprint shown is the one pinned.
        spec.fingerprint = self.pinned.clone();
        let credentials = self.spec.s3.as_ref().map(|s3| {
            if s3.access_key_id.is_some() && self.sealed_secret.is_some() {
                "stored".to_string()
            } else {
                "environment".to_string()
            }
        });
        RemoteView {
            paired: match self.spec.kind {
                RemoteKind::Appliance => self.pinned.is_some(),
                RemoteKind::S3 => true,
            },
            spec,
            seen_fingerprint: self.seen.clone(),
            credentials,
            last_job: self.last_job,
            last_success: self.last_success_ms.map(rfc3339_ms),
            covers_until: self.covers_until_ms.map(rfc3339_ms),
            last_error: self.last_error.clone(),
        }
    }
}

type RawRemote = (
    String,
    Option<String>,
    Option<String>,
    Option<Vec<u8>>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<String>,
);

const REMOTE_COLUMNS: &str = "spec_json, pinned, seen, sealed_secret, last_job, last_success_ms, \
     covers_until_ms, last_error";

impl Catalog {
    fn remote_from_raw(&self, raw: RawRemote) -> Result<RemoteRow> {
        let (spec_json, pinned, seen, sealed_secret, last_job, last_success_ms, covers, err) = raw;
        let spec: RemoteSpec = serde_json::from_str(&spec_json)
            .map_err(|e| Error::corrupt(&self.path, format!("remote: spec_json: {e}")))?;
        Ok(RemoteRow {
            spec,
            pinned,
            seen,
            sealed_secret,
            last_job,
            last_success_ms,
            covers_until_ms: covers,
            last_error: err,
        })
    }

    /// Adds a remote; [`Error::Exists`] if the name is taken. The spec's
    /// secret is never stored in it (pass it sealed).
    pub fn add_remote(
        &self,
        spec: &RemoteSpec,
        pinned: Option<&str>,
        seen: Option<&str>,
        sealed_secret: Option<&[u8]>,
        now_ms: i64,
    ) -> Result<()> {
        let mut spec = spec.clone();
        if let Some(s3) = &mut spec.s3 {
            s3.secret_access_key = None;
        }
        let json = serde_json::to_string(&spec)
            .map_err(|e| Error::corrupt(&self.path, format!("remote spec: {e}")))?;
        let tx = self.write_tx("adding a remote")?;
        let exists: Option<i64> = tx
            .query_row("SELECT 1 FROM remotes WHERE name = ?1", [&spec.name], |r| {
                r.get(0)
            })
            .optional()
            .map_err(self.sql("adding a remote"))?;
        if exists.is_some() {
            return Err(Error::Exists {
                what: "remote",
                name: spec.name.clone(),
            });
        }
        tx.execute(
            "INSERT INTO remotes (name, kind, spec_json, pinned, seen, sealed_secret, created_ms, \
             updated_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
            rusqlite::params![
                spec.name,
                spec.kind.as_str(),
                json,
                pinned,
                seen,
                sealed_secret,
                now_ms
            ],
        )
        .map_err(self.sql("adding a remote"))?;
        tx.commit().map_err(self.sql("adding a remote"))?;
        Ok(())
    }

    /// One remote; [`Error::NotFound`] if there is none by that name.
    pub fn remote(&self, name: &str) -> Result<RemoteRow> {
        let raw: Option<RawRemote> = self
            .conn
            .query_row(
                &format!("SELECT {REMOTE_COLUMNS} FROM remotes WHERE name = ?1"),
                [name],
                tuple,
            )
            .optional()
            .map_err(self.sql("reading a remote"))?;
        match raw {
            Some(raw) => self.remote_from_raw(raw),
            None => Err(Error::NotFound {
                what: "remote",
                name: name.to_string(),
            }),
        }
    }

    /// Every remote, by name.
    pub fn remotes(&self) -> Result<Vec<RemoteRow>> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {REMOTE_COLUMNS} FROM remotes ORDER BY name"
            ))
            .map_err(self.sql("listing remotes"))?;
        let raws = stmt
            .query_map([], tuple::<RawRemote>)
            .map_err(self.sql("listing remotes"))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(self.sql("listing remotes"))?;
        raws.into_iter().map(|r| self.remote_from_raw(r)).collect()
    }

    /// Records what a probe of the remote saw and, with `pin`, pins it.
    pub fn set_remote_fingerprint(
        &self,
        name: &str,
        seen: Option<&str>,
        pin: Option<&str>,
        now_ms: i64,
    ) -> Result<()> {
        let changed = self
            .conn
            .execute(
                "UPDATE remotes SET seen = COALESCE(?2, seen), pinned = COALESCE(?3, pinned), \
                 updated_ms = ?4 WHERE name = ?1",
                rusqlite::params![name, seen, pin, now_ms],
            )
            .map_err(self.sql("updating a remote"))?;
        if changed == 0 {
            return Err(Error::NotFound {
                what: "remote",
                name: name.to_string(),
            });
        }
        Ok(())
    }

    /// Removes a remote; [`Error::NotFound`] if there is none.
    pub fn remove_remote(&self, name: &str) -> Result<()> {
        let changed = self
            .conn
            .execute("DELETE FROM remotes WHERE name = ?1", [name])
            .map_err(self.sql("removing a remote"))?;
        if changed == 0 {
            return Err(Error::NotFound {
                what: "remote",
                name: name.to_string(),
            });
        }
        Ok(())
    }

    /// Ends replication job `id`: its status and messages, its figures, and
    /// the remote's state (on success, its copy covers every backup taken
    /// before `covers_until_ms`, when the job started reading the store).
    pub fn finish_replication(
        &self,
        id: i64,
        status: JobStatus,
        messages: &[String],
        stats: &ReplicationStats,
        covers_until_ms: Option<i64>,
        now_ms: i64,
    ) -> Result<()> {
        let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let tx = self.write_tx("recording a replication")?;
        let changed = tx
            .execute(
                "UPDATE jobs SET status = ?1, ended_ms = ?2, messages_json = ?3, \
                 files_read = ?4, bytes_read = ?5 WHERE id = ?6",
                rusqlite::params![
                    status.as_str(),
                    now_ms,
                    messages_to_json(messages)?,
                    n(stats.sent),
                    n(stats.bytes_sent),
                    id
                ],
            )
            .map_err(self.sql("recording a replication"))?;
        if changed == 0 {
            return Err(Error::JobNotFound(id));
        }
        tx.execute(
            "INSERT OR REPLACE INTO replications (job, remote, objects, skipped, sent, bytes_sent, \
             bytes_resumed, verified, mismatched, locked, duration_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            rusqlite::params![
                id,
                stats.remote,
                n(stats.objects),
                n(stats.skipped),
                n(stats.sent),
                n(stats.bytes_sent),
                n(stats.bytes_resumed),
                n(stats.verified),
                n(stats.mismatched),
                n(stats.locked),
                n(stats.duration_ms)
            ],
        )
        .map_err(self.sql("recording a replication"))?;
        let ok = matches!(status, JobStatus::Success | JobStatus::Warning);
        let error = if ok { None } else { messages.last().cloned() };
        tx.execute(
            "UPDATE remotes SET last_job = ?2, last_error = ?3, \
             last_success_ms = CASE WHEN ?4 THEN ?5 ELSE last_success_ms END, \
             covers_until_ms = CASE WHEN ?4 THEN \
                 NULLIF(MAX(COALESCE(covers_until_ms, 0), COALESCE(?6, 0)), 0) \
                               ELSE covers_until_ms END \
             WHERE name = ?1",
            rusqlite::params![stats.remote, id, error, ok, now_ms, covers_until_ms],
        )
        .map_err(self.sql("recording a replication"))?;
        tx.commit().map_err(self.sql("recording a replication"))?;
        Ok(())
    }

    /// The figures of replication job `id`, once it ended.
    pub fn replication_stats(&self, id: i64) -> Result<Option<ReplicationStats>> {
        type Raw = (String, i64, i64, i64, i64, i64, i64, i64, i64, i64);
        let raw: Option<Raw> = self
            .conn
            .query_row(
                "SELECT remote, objects, skipped, sent, bytes_sent, bytes_resumed, verified, \
                 mismatched, locked, duration_ms FROM replications WHERE job = ?1",
                [id],
                tuple,
            )
            .optional()
            .map_err(self.sql("reading a replication"))?;
        let u = |v: i64| u64::try_from(v).unwrap_or(0);
        Ok(
            raw.map(|(remote, o, sk, se, bs, br, v, m, l, d)| ReplicationStats {
                remote,
                objects: u(o),
                skipped: u(sk),
                sent: u(se),
                bytes_sent: u(bs),
                bytes_resumed: u(br),
                verified: u(v),
                mismatched: u(m),
                locked: u(l),
                duration_ms: u(d),
            }),
        )
    }

    /// Binds the copy of `store` kept here to `owner` (the remote pushing
    /// it, with certificate `fingerprint`) unless it is bound already, and
    /// returns the remote it belongs to: only that remote may write to it.
    pub fn claim_replica(
        &self,
        store: &str,
        owner: &str,
        fingerprint: &str,
        now_ms: i64,
    ) -> Result<String> {
        let tx = self.write_tx("locking the replicas")?;
        tx.execute(
            "INSERT INTO replicas (store, owner, fingerprint, first_ms, last_ms) \
             VALUES (?1, ?2, ?3, ?4, ?4) ON CONFLICT (store) DO NOTHING",
            rusqlite::params![store, owner, fingerprint, now_ms],
        )
        .map_err(self.sql("binding a replica to its remote"))?;
        let bound: String = tx
            .query_row(
                "SELECT owner FROM replicas WHERE store = ?1",
                [store],
                |r| r.get(0),
            )
            .map_err(self.sql("reading a replica's owner"))?;
        tx.commit()
            .map_err(self.sql("binding a replica to its remote"))?;
        Ok(bound)
    }

    /// Counts a push into the copy of `store`.
    pub fn replica_received(
        &self,
        store: &str,
        objects: u64,
        bytes: u64,
        now_ms: i64,
    ) -> Result<()> {
        let i = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.conn
            .execute(
                "UPDATE replicas SET last_ms = ?2, objects = objects + ?3, bytes = bytes + ?4 \
                 WHERE store = ?1",
                rusqlite::params![store, now_ms, i(objects), i(bytes)],
            )
            .map_err(self.sql("recording a push into a replica"))?;
        Ok(())
    }

    /// The copies of other appliances' stores kept here.
    pub fn replicas(&self) -> Result<Vec<coffer_types::api::ReplicaHeld>> {
        let u = |v: i64| u64::try_from(v).unwrap_or(0);
        self.rows(
            "SELECT store, owner, fingerprint, first_ms, last_ms, objects, bytes \
             FROM replicas ORDER BY store",
            "listing the replicas",
            |r| {
                Ok(coffer_types::api::ReplicaHeld {
                    store: r.get(0)?,
                    owner: r.get(1)?,
                    fingerprint: r.get(2)?,
                    first_received: rfc3339_ms(r.get(3)?),
                    last_received: rfc3339_ms(r.get(4)?),
                    objects: u(r.get(5)?),
                    bytes: u(r.get(6)?),
                })
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coffer_types::api::{ObjectLockMode, S3Remote, Secret};

    #[test]
    fn a_replica_belongs_to_the_remote_that_first_pushed_it() {
        let d = tempfile::tempdir().unwrap();
        let cat = Catalog::open(&d.path().join("c.db")).unwrap();
        assert_eq!(
            cat.claim_replica("aa11", "site-a", "f1", 1000).unwrap(),
            "site-a"
        );
        // Another remote: the copy stays site-a's.
        assert_eq!(
            cat.claim_replica("aa11", "site-x", "f2", 2000).unwrap(),
            "site-a"
        );
        // site-a again (even re-keyed, paired again under its name).
        assert_eq!(
            cat.claim_replica("aa11", "site-a", "f3", 3000).unwrap(),
            "site-a"
        );
        cat.replica_received("aa11", 5, 5000, 3000).unwrap();
        cat.replica_received("aa11", 1, 10, 4000).unwrap();
        let list = cat.replicas().unwrap();
        assert_eq!(list.len(), 1);
        let r = &list[0];
        assert_eq!(
            (r.owner.as_str(), r.fingerprint.as_str(), r.objects, r.bytes),
            ("site-a", "f1", 6, 5010)
        );
        assert_eq!(r.first_received, rfc3339_ms(1000));
        assert_eq!(r.last_received, rfc3339_ms(4000));
    }

    fn spec(name: &str) -> RemoteSpec {
        RemoteSpec {
            name: name.into(),
            kind: RemoteKind::S3,
            address: None,
            fingerprint: None,
            s3: Some(S3Remote {
                endpoint: Some("http://127.0.0.1:9".into()),
                region: "us-east-1".into(),
                bucket: "offsite".into(),
                prefix: String::new(),
                path_style: true,
                lock: ObjectLockMode::Compliance,
                lock_days: 0,
                access_key_id: Some("AKIDEXAMPLE".into()),
                secret_access_key: Some(Secret("wJalrXUtnFEMI".into())),
            }),
            bandwidth_mb_s: 0,
        }
    }

    #[test]
    fn a_remote_is_stored_without_its_secret_and_tracks_its_replications() {
        let t = tempfile::tempdir().unwrap();
        let cat = Catalog::open(&t.path().join("c.db")).unwrap();
        cat.add_remote(&spec("b1"), None, None, Some(b"sealed"), 1000)
            .unwrap();
        assert!(matches!(
            cat.add_remote(&spec("b1"), None, None, None, 1000),
            Err(Error::Exists { .. })
        ));
        let r = cat.remote("b1").unwrap();
        assert_eq!(r.spec.s3.as_ref().unwrap().secret_access_key, None);
        assert_eq!(r.sealed_secret.as_deref(), Some(&b"sealed"[..]));
        let raw: String = cat
            .conn
            .query_row("SELECT spec_json FROM remotes", [], |r| r.get(0))
            .unwrap();
        assert!(!raw.contains("wJalrXUtnFEMI"), "{raw}");
        assert_eq!(r.view().credentials.as_deref(), Some("stored"));

        let id = cat
            .queue_job(&crate::QueuedJob {
                kind: coffer_types::JobKind::Replicate,
                asset: None,
                level: None,
                scope: coffer_types::Scope::default(),
                identity: "scheduler".into(),
                host: "h".into(),
                pid: 1,
                source: coffer_types::api::Source::Scheduler,
                profile: None,
                attempt: 1,
                retry_of: None,
                queued_ms: 2000,
                not_before_ms: None,
                remote: Some("b1".into()),
            })
            .unwrap();
        let stats = ReplicationStats {
            remote: "b1".into(),
            objects: 10,
            sent: 4,
            bytes_sent: 4096,
            verified: 4,
            duration_ms: 2,
            ..ReplicationStats::default()
        };
        cat.finish_replication(id, JobStatus::Success, &[], &stats, Some(2000), 3000)
            .unwrap();
        let v = cat.job_view(id).unwrap();
        assert_eq!(v.remote.as_deref(), Some("b1"));
        assert_eq!(v.replication.as_ref(), Some(&stats));
        assert_eq!(v.record.stats.bytes_read, 4096);
        let r = cat.remote("b1").unwrap();
        assert_eq!(
            (r.last_job, r.last_success_ms, r.covers_until_ms),
            (Some(id), Some(3000), Some(2000))
        );
        // A failure keeps how far the copy reaches and says why.
        cat.finish_replication(
            id,
            JobStatus::Failed,
            &["bucket full".to_string()],
            &stats,
            Some(9000),
            4000,
        )
        .unwrap();
        let r = cat.remote("b1").unwrap();
        assert_eq!(
            (
                r.last_success_ms,
                r.covers_until_ms,
                r.last_error.as_deref()
            ),
            (Some(3000), Some(2000), Some("bucket full"))
        );
        cat.remove_remote("b1").unwrap();
        assert!(matches!(cat.remote("b1"), Err(Error::NotFound { .. })));
    }
}
