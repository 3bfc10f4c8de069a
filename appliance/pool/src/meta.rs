//! Pool metadata: one copy on every member, so a pool imports from its disks
//! alone. JSON (operators read it), guarded by a blake3 checksum, replaced
//! atomically (temporary file, fsync, rename, fsync of the directory).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The metadata file at the root of every member.
pub const META_FILE: &str = "coffer-pool.json";
/// The metadata format this code writes and reads.
pub const META_FORMAT: u32 = 1;

/// Whether the pool is in use by an appliance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PoolState {
    /// Imported and in use.
    Active,
    /// Exported: its disks may be moved to another appliance.
    Exported,
}

/// A member of the pool as the metadata records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberMeta {
    /// The member's id (random, 16 hex digits).
    pub id: String,
    /// Where it was mounted when last imported or added.
    pub path: PathBuf,
    /// The disk under it when it joined (by-id name, or kernel name).
    pub disk: Option<String>,
    /// The generation at which it joined.
    pub joined: u64,
}

/// A member that left the pool (replaced).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetiredMember {
    /// The member's id.
    pub id: String,
    /// Its last path.
    pub path: PathBuf,
    /// The member that took its place.
    pub replaced_by: String,
    /// The generation at which it left.
    pub left: u64,
}

/// What every member stores about the pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolMeta {
    /// Pool id (32 hex digits).
    pub id: String,
    /// Operator's name for the pool.
    pub name: String,
    /// Data shards per object.
    pub data_shards: u8,
    /// Parity shards per object.
    pub parity_shards: u8,
    /// Bytes per shard block.
    pub block_size: u32,
    /// Bumped on every change of membership or state; the newest wins and
    /// a member with an older one is stale.
    pub generation: u64,
    /// In use or exported.
    pub state: PoolState,
    /// When the pool was created (RFC 3339).
    pub created: String,
    /// Current members.
    pub members: Vec<MemberMeta>,
    /// Members that were replaced.
    pub retired: Vec<RetiredMember>,
}

impl PoolMeta {
    /// The pool id as bytes.
    pub fn id_bytes(&self) -> Result<[u8; 16]> {
        let mut b = [0u8; 16];
        hex::decode_to_slice(&self.id, &mut b).map_err(|_| Error::BadMetadata {
            path: PathBuf::new(),
            reason: format!("pool id '{}' is not 32 hex digits", self.id),
        })?;
        Ok(b)
    }
}

#[derive(Serialize, Deserialize)]
struct Signed {
    format: u32,
    /// The member this copy sits on.
    member: String,
    pool: PoolMeta,
}

#[derive(Serialize, Deserialize)]
struct OnDisk {
    format: u32,
    member: String,
    pool: PoolMeta,
    /// blake3 of the compact JSON of the three fields above.
    checksum: String,
}

/// A copy of the metadata read from one member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberCopy {
    /// The member this copy says it sits on.
    pub member: String,
    /// The pool.
    pub pool: PoolMeta,
}

fn checksum(member: &str, pool: &PoolMeta) -> Result<String> {
    let signed = Signed {
        format: META_FORMAT,
        member: member.to_string(),
        pool: pool.clone(),
    };
    let bytes = serde_json::to_vec(&signed).map_err(|e| Error::BadMetadata {
        path: PathBuf::new(),
        reason: e.to_string(),
    })?;
    Ok(blake3::hash(&bytes).to_hex().to_string())
}

/// Reads the metadata copy at a member root: `Ok(None)` if there is none.
pub fn read(root: &Path) -> Result<Option<MemberCopy>> {
    let p = root.join(META_FILE);
    let text = match fs::read(&p) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("read", &p, e)),
    };
    let bad = |reason: String| Error::BadMetadata {
        path: p.clone(),
        reason,
    };
    let d: OnDisk = serde_json::from_slice(&text).map_err(|e| bad(e.to_string()))?;
    if d.format != META_FORMAT {
        return Err(bad(format!(
            "metadata format {}; this coffer reads {META_FORMAT}",
            d.format
        )));
    }
    if checksum(&d.member, &d.pool)? != d.checksum {
        return Err(bad("checksum mismatch".into()));
    }
    Ok(Some(MemberCopy {
        member: d.member,
        pool: d.pool,
    }))
}

/// Writes the metadata copy for member `member` at `root`, atomically.
pub fn write(root: &Path, member: &str, pool: &PoolMeta) -> Result<()> {
    let d = OnDisk {
        format: META_FORMAT,
        member: member.to_string(),
        pool: pool.clone(),
        checksum: checksum(member, pool)?,
    };
    let mut text = serde_json::to_vec_pretty(&d).map_err(|e| Error::BadMetadata {
        path: root.join(META_FILE),
        reason: e.to_string(),
    })?;
    text.push(b'\n');
    let tmp = root.join(format!(".{META_FILE}.tmp"));
    let dst = root.join(META_FILE);
    let mut f = fs::File::create(&tmp).map_err(|e| Error::io("create", &tmp, e))?;
    f.write_all(&text)
        .and_then(|_| f.sync_all())
        .map_err(|e| Error::io("write", &tmp, e))?;
    fs::rename(&tmp, &dst).map_err(|e| Error::io("rename", &dst, e))?;
    fs::File::open(root)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("sync directory", root, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> PoolMeta {
        PoolMeta {
            id: "00112233445566778899aabbccddeeff".into(),
            name: "main".into(),
            data_shards: 2,
            parity_shards: 1,
            block_size: 65536,
            generation: 1,
            state: PoolState::Active,
            created: "2026-11-26T00:00:00.000Z".into(),
            members: vec![MemberMeta {
                id: "0123456789abcdef".into(),
                path: "/srv/d1".into(),
                disk: None,
                joined: 1,
            }],
            retired: vec![],
        }
    }

    #[test]
    fn round_trip_and_tamper_detection() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(read(d.path()).unwrap(), None);
        write(d.path(), "0123456789abcdef", &sample()).unwrap();
        let c = read(d.path()).unwrap().unwrap();
        assert_eq!(c.pool, sample());
        assert_eq!(c.member, "0123456789abcdef");
        let p = d.path().join(META_FILE);
        let text = fs::read_to_string(&p).unwrap();
        fs::write(&p, text.replace("\"generation\": 1", "\"generation\": 9")).unwrap();
        let e = read(d.path()).unwrap_err().to_string();
        assert!(e.contains("checksum mismatch"), "{e}");
        fs::write(&p, "{").unwrap();
        assert!(read(d.path()).is_err());
    }
}
