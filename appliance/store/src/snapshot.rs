//! Snapshot records: one encrypted object per snapshot under `snapshots/`,
//! written last, after every container it needs is sealed. A snapshot exists
//! exactly when its record does; the catalog is a queryable copy that
//! `catalog rebuild` recreates from these records.

use coffer_keys::MasterKey;
use coffer_types::{BackupStats, ChunkId, Level, Scope, SnapshotId, SnapshotInfo, rfc3339_ms};

use crate::format::{Reader, Writer, magic};
use crate::{Error, Result};

const SNAPSHOT_VERSION: u16 = 1;
const HEADER_LEN: usize = 32;
const MAX_TEXT: usize = 64 * 1024;

/// Everything a snapshot record holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotRecord {
    /// What is listed about it.
    pub info: SnapshotInfo,
    /// Plaintext length of the manifest stream.
    pub manifest_len: u64,
    /// The manifest stream's chunks, in order.
    pub manifest: Vec<ChunkId>,
}

/// The object key of a snapshot record.
pub fn record_key(id: &SnapshotId) -> String {
    format!("snapshots/{}", id.to_hex())
}

impl SnapshotRecord {
    fn encode_payload(&self) -> Vec<u8> {
        let i = &self.info;
        let mut w = Writer::new();
        w.bytes(i.asset.as_bytes());
        w.u8(i.level.code());
        w.i64(i.started_ms);
        w.i64(i.finished_ms);
        match &i.reference {
            Some(r) => {
                w.u8(1);
                w.raw(&r.0);
            }
            None => w.u8(0),
        }
        w.bytes(i.host.as_bytes());
        w.bytes(i.identity.as_bytes());
        w.u32(i.scope.paths.len() as u32);
        for p in &i.scope.paths {
            w.bytes(p.as_bytes());
        }
        w.u32(i.scope.excludes.len() as u32);
        for p in &i.scope.excludes {
            w.bytes(p.as_bytes());
        }
        w.u8(u8::from(i.scope.one_file_system));
        let s = &i.stats;
        for v in [
            s.files_read,
            s.bytes_read,
            s.files_unchanged,
            s.bytes_unchanged,
            s.entries,
            s.chunks_new,
            s.bytes_new,
            s.bytes_stored,
            s.warnings,
        ] {
            w.u64(v);
        }
        w.u64(self.manifest_len);
        w.u32(self.manifest.len() as u32);
        for c in &self.manifest {
            w.raw(&c.0);
        }
        w.buf
    }

    fn decode_payload(id: SnapshotId, p: &[u8]) -> Result<SnapshotRecord> {
        let mut r = Reader::new(p, "snapshot record");
        let asset = r.string(MAX_TEXT)?;
        let code = r.u8()?;
        let level =
            Level::from_code(code).ok_or_else(|| r.corrupt(format!("unknown level {code}")))?;
        let started_ms = r.i64()?;
        let finished_ms = r.i64()?;
        let reference = match r.u8()? {
            0 => None,
            1 => Some(SnapshotId(r.array()?)),
            t => return Err(r.corrupt(format!("bad reference tag {t}"))),
        };
        let host = r.string(MAX_TEXT)?;
        let identity = r.string(MAX_TEXT)?;
        let mut scope = Scope::default();
        for _ in 0..r.count(4)? {
            scope.paths.push(r.string(MAX_TEXT)?);
        }
        for _ in 0..r.count(4)? {
            scope.excludes.push(r.string(MAX_TEXT)?);
        }
        scope.one_file_system = r.u8()? != 0;
        let mut v = [0u64; 9];
        for x in &mut v {
            *x = r.u64()?;
        }
        let stats = BackupStats {
            files_read: v[0],
            bytes_read: v[1],
            files_unchanged: v[2],
            bytes_unchanged: v[3],
            entries: v[4],
            chunks_new: v[5],
            bytes_new: v[6],
            bytes_stored: v[7],
            warnings: v[8],
        };
        let manifest_len = r.u64()?;
        let n = r.count(32)?;
        let mut manifest = Vec::with_capacity(n);
        for _ in 0..n {
            manifest.push(ChunkId(r.array()?));
        }
        r.finish()?;
        Ok(SnapshotRecord {
            info: SnapshotInfo {
                id,
                asset,
                level,
                time: rfc3339_ms(started_ms),
                started_ms,
                finished_ms,
                reference,
                host,
                identity,
                scope,
                stats,
            },
            manifest_len,
            manifest,
        })
    }

    /// Encrypts the record into its object bytes.
    pub fn seal(&self, master: &MasterKey) -> Result<Vec<u8>> {
        let mut w = Writer::new();
        w.raw(&magic::SNAPSHOT_V1);
        w.u16(SNAPSHOT_VERSION);
        w.u16(0);
        w.u32(master.generation());
        w.raw(&self.info.id.0);
        let key = master.object_key(&self.info.id.0);
        let ct = key.encrypt(0, &w.buf, &self.encode_payload())?;
        w.raw(&ct);
        Ok(w.buf)
    }

    /// Opens a record's object bytes.
    pub fn open(master: &MasterKey, bytes: &[u8]) -> Result<SnapshotRecord> {
        let mut r = Reader::new(bytes, "snapshot record");
        r.expect_header(magic::SNAPSHOT_V1, SNAPSHOT_VERSION, "snapshot record")?;
        let _flags = r.u16()?;
        let _generation = r.u32()?;
        let id = SnapshotId(r.array()?);
        let key = master.object_key(&id.0);
        let plain = key
            .decrypt(0, &bytes[..HEADER_LEN], &bytes[HEADER_LEN..])
            .map_err(|_| Error::Corrupt {
                what: format!("snapshot record {id}"),
                reason: "fails authentication (damaged, or not this store's key)".into(),
            })?;
        SnapshotRecord::decode_payload(id, &plain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> SnapshotRecord {
        SnapshotRecord {
            info: SnapshotInfo {
                id: SnapshotId([5; 16]),
                asset: "db-01".into(),
                level: Level::Differential,
                time: rfc3339_ms(1_700_000_000_000),
                started_ms: 1_700_000_000_000,
                finished_ms: 1_700_000_100_000,
                reference: Some(SnapshotId([4; 16])),
                host: "coffer-1".into(),
                identity: "root".into(),
                scope: Scope {
                    paths: vec!["/srv/db".into()],
                    excludes: vec!["*.tmp".into()],
                    one_file_system: true,
                },
                stats: BackupStats {
                    files_read: 1,
                    bytes_read: 2,
                    files_unchanged: 3,
                    bytes_unchanged: 4,
                    entries: 5,
                    chunks_new: 6,
                    bytes_new: 7,
                    bytes_stored: 8,
                    warnings: 9,
                },
            },
            manifest_len: 1234,
            manifest: vec![ChunkId([1; 32]), ChunkId([2; 32])],
        }
    }

    #[test]
    fn seal_open_round_trip_and_tamper() {
        let m = MasterKey::from_bytes_for_fixtures([8; 32], 1);
        let s = sample();
        let bytes = s.seal(&m).unwrap();
        assert_eq!(SnapshotRecord::open(&m, &bytes).unwrap(), s);
        let mut bad = bytes.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(SnapshotRecord::open(&m, &bad).is_err());
        let mut swapped = bytes;
        swapped[16] ^= 1; // the id is authenticated
        assert!(SnapshotRecord::open(&m, &swapped).is_err());
    }
}
