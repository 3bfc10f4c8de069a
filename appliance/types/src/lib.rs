//! Coffer's shared vocabulary: identifiers, backup levels, job records and
//! statistics that every other crate speaks.
//!
//! This crate sits at the bottom of the workspace (like proxmox's
//! `pbs-api-types`): it depends on `serde` and `hex` only and performs no I/O,
//! so the catalog, the engine, the shell and later the daemon's API can all use
//! it without pulling each other in.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub mod api;

/// A random 128-bit identifier, shown as 32 lowercase hex digits.
macro_rules! hex_id {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; 16]);

        impl $name {
            /// The id as 32 lowercase hex digits.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }
            /// The first 8 hex digits, the short form operators type.
            pub fn short(&self) -> String {
                hex::encode(&self.0[..4])
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.to_hex())
            }
        }
        impl FromStr for $name {
            type Err = ParseError;
            fn from_str(s: &str) -> Result<Self, ParseError> {
                let mut out = [0u8; 16];
                hex::decode_to_slice(s, &mut out).map_err(|_| ParseError {
                    what: stringify!($name),
                    input: s.to_string(),
                })?;
                Ok(Self(out))
            }
        }
        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_hex())
            }
        }
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

hex_id!(
    /// Identifies one snapshot (one complete restore point) in a store.
    SnapshotId
);
hex_id!(
    /// Identifies one container (a sealed, immutable file of chunks).
    ContainerId
);
hex_id!(
    /// Identifies a store, written in its config at `init`.
    StoreId
);
hex_id!(
    /// A tape media set: the cartridges written as one unit under one key.
    MediaSetId
);
hex_id!(
    /// One labelled tape cartridge (a new id each time it is labelled).
    MediaId
);

/// A string that did not parse as the named type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// What was being parsed.
    pub what: &'static str,
    /// The input that was rejected.
    pub input: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "'{}' is not a valid {}", self.input, self.what)
    }
}

impl std::error::Error for ParseError {}

/// A hasher for ids that are already uniformly random: keyed blake3 chunk
/// ids (nobody without the store's key can choose them) and random
/// container or snapshot ids. It takes the id's first eight bytes as the
/// hash instead of running SipHash over 32 bytes on every index lookup.
#[derive(Default, Clone, Copy)]
pub struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Arrays hash as a length then their bytes; only the bytes count.
        let mut b = [0u8; 8];
        let n = bytes.len().min(8);
        b[..n].copy_from_slice(&bytes[..n]);
        self.0 ^= u64::from_le_bytes(b);
    }
    fn write_usize(&mut self, _len: usize) {}
}

/// `BuildHasher` of [`IdHasher`].
pub type IdHash = std::hash::BuildHasherDefault<IdHasher>;
/// A map keyed by random ids.
pub type IdMap<K, V> = std::collections::HashMap<K, V, IdHash>;
/// A set of random ids.
pub type IdSet<K> = std::collections::HashSet<K, IdHash>;

/// A chunk id: the keyed blake3 hash of the chunk's plaintext.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChunkId(pub [u8; 32]);

impl ChunkId {
    /// The id as 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChunkId({})", &self.to_hex()[..16])
    }
}

impl fmt::Display for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Backup level, in the words of ISO 27001 and every operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Reads every file.
    Full,
    /// Reads what changed since the asset's last snapshot of any level.
    Incremental,
    /// Reads what changed since the asset's last full.
    Differential,
}

impl Level {
    /// The lowercase name used on the command line and in the catalog.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Full => "full",
            Level::Incremental => "incremental",
            Level::Differential => "differential",
        }
    }
    /// The on-disk code (store format: snapshot record `level`).
    pub fn code(self) -> u8 {
        match self {
            Level::Full => 1,
            Level::Incremental => 2,
            Level::Differential => 3,
        }
    }
    /// Inverse of [`Level::code`].
    pub fn from_code(code: u8) -> Option<Level> {
        match code {
            1 => Some(Level::Full),
            2 => Some(Level::Incremental),
            3 => Some(Level::Differential),
            _ => None,
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Level {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        match s {
            "full" => Ok(Level::Full),
            "incremental" | "incr" => Ok(Level::Incremental),
            "differential" | "diff" => Ok(Level::Differential),
            _ => Err(ParseError {
                what: "backup level (full, incremental, differential)",
                input: s.to_string(),
            }),
        }
    }
}

/// What kind of work a job did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum JobKind {
    /// A backup of an asset.
    Backup,
    /// A restore of a snapshot.
    Restore,
    /// A verification of the store.
    Verify,
    /// Snapshots written to a tape media set.
    MediaWrite,
    /// A snapshot restored from a tape media set.
    MediaRestore,
    /// A store rebuilt from tape cartridges alone.
    MediaRecover,
    /// A store's objects copied to an offsite remote (another appliance or
    /// an object storage bucket).
    Replicate,
    /// A snapshot restored from an offsite remote's copy.
    RemoteRestore,
    /// Snapshots removed by their profiles' retention.
    Prune,
    /// Unreferenced data removed from the store, partly dead containers
    /// compacted.
    Gc,
    /// A restore drill: a snapshot restored into a sandbox, every file
    /// verified, timed against the asset's RTO.
    Drill,
}

impl JobKind {
    /// The lowercase name used in the catalog and the log.
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Backup => "backup",
            JobKind::Restore => "restore",
            JobKind::Verify => "verify",
            JobKind::MediaWrite => "media-write",
            JobKind::MediaRestore => "media-restore",
            JobKind::MediaRecover => "media-recover",
            JobKind::Replicate => "replicate",
            JobKind::RemoteRestore => "remote-restore",
            JobKind::Prune => "prune",
            JobKind::Gc => "gc",
            JobKind::Drill => "drill",
        }
    }
}

impl FromStr for JobKind {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        match s {
            "backup" => Ok(JobKind::Backup),
            "restore" => Ok(JobKind::Restore),
            "verify" => Ok(JobKind::Verify),
            "media-write" => Ok(JobKind::MediaWrite),
            "media-restore" => Ok(JobKind::MediaRestore),
            "media-recover" => Ok(JobKind::MediaRecover),
            "replicate" => Ok(JobKind::Replicate),
            "remote-restore" => Ok(JobKind::RemoteRestore),
            "prune" => Ok(JobKind::Prune),
            "gc" => Ok(JobKind::Gc),
            "drill" => Ok(JobKind::Drill),
            _ => Err(ParseError {
                what: "job kind",
                input: s.to_string(),
            }),
        }
    }
}

/// How a job ended (or that it has not yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    /// Waiting in the daemon's queue (for its time, a retry's backoff or a
    /// free resource).
    Queued,
    /// Still running (or its process died; see [`JobStatus::Interrupted`]).
    Running,
    /// Finished with nothing to report.
    Success,
    /// Finished, but some entries could not be read or changed while read.
    Warning,
    /// Did not finish its work.
    Failed,
    /// Its process ended before the job finished (killed, crashed, power
    /// loss, or the daemon shut down); the daemon retries it.
    Interrupted,
    /// Cancelled by an operator before it finished.
    Cancelled,
}

impl JobStatus {
    /// The lowercase name used in the catalog and the log.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Success => "success",
            JobStatus::Warning => "warning",
            JobStatus::Failed => "failed",
            JobStatus::Interrupted => "interrupted",
            JobStatus::Cancelled => "cancelled",
        }
    }
}

impl FromStr for JobStatus {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        match s {
            "queued" => Ok(JobStatus::Queued),
            "running" => Ok(JobStatus::Running),
            "success" => Ok(JobStatus::Success),
            "warning" => Ok(JobStatus::Warning),
            "failed" => Ok(JobStatus::Failed),
            "interrupted" => Ok(JobStatus::Interrupted),
            "cancelled" => Ok(JobStatus::Cancelled),
            _ => Err(ParseError {
                what: "job status",
                input: s.to_string(),
            }),
        }
    }
}

/// What a backup read and wrote. All byte counts are plaintext bytes unless
/// the name says `stored`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupStats {
    /// Regular files whose content was read.
    pub files_read: u64,
    /// Bytes of file content read.
    pub bytes_read: u64,
    /// Regular files not read because they had not changed since the reference snapshot.
    pub files_unchanged: u64,
    /// Bytes in those unchanged files.
    pub bytes_unchanged: u64,
    /// Entries of all kinds in the snapshot (files, directories, links, …).
    pub entries: u64,
    /// Chunks that were not yet in the store.
    pub chunks_new: u64,
    /// Plaintext bytes of those new chunks.
    pub bytes_new: u64,
    /// Bytes the new chunks occupy in containers after compression and encryption.
    pub bytes_stored: u64,
    /// Entries that produced a warning (unreadable, vanished, changed while read).
    pub warnings: u64,
}

/// The scope of a backup job: what was asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    /// Source paths, as given (absolute after resolution).
    pub paths: Vec<String>,
    /// Exclude globs.
    pub excludes: Vec<String>,
    /// Whether the walk stayed on the source's filesystem.
    pub one_file_system: bool,
}

/// One snapshot as listed: enough to choose a restore point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotInfo {
    /// The snapshot's id.
    pub id: SnapshotId,
    /// The asset (system) it belongs to.
    pub asset: String,
    /// Its backup level.
    pub level: Level,
    /// When the backup started, RFC 3339 UTC (`time` is what scripts read).
    pub time: String,
    /// Start, milliseconds since the Unix epoch, UTC.
    pub started_ms: i64,
    /// End, milliseconds since the Unix epoch, UTC.
    pub finished_ms: i64,
    /// The snapshot whose unchanged files were reused (incremental, differential).
    pub reference: Option<SnapshotId>,
    /// Host that ran the backup.
    pub host: String,
    /// Identity that ran the backup.
    pub identity: String,
    /// What was backed up.
    pub scope: Scope,
    /// What the backup read and wrote.
    pub stats: BackupStats,
}

/// One row of the job log: what ISO 27001 A.8.13 asks a backup log to hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    /// Catalog row id.
    pub id: i64,
    /// Backup, restore or verify.
    pub kind: JobKind,
    /// The asset, for backups and restores.
    pub asset: Option<String>,
    /// The level, for backups.
    pub level: Option<Level>,
    /// What was asked for.
    pub scope: Scope,
    /// Start, RFC 3339 UTC.
    pub started: String,
    /// End, RFC 3339 UTC, once ended.
    pub ended: Option<String>,
    /// How it ended.
    pub status: JobStatus,
    /// Figures.
    pub stats: BackupStats,
    /// Warnings and errors, one line each, naming the path and the reason.
    pub messages: Vec<String>,
    /// Who ran it (the OS user in direct mode).
    pub identity: String,
    /// Host that ran it.
    pub host: String,
    /// The snapshot it made (backup) or read (restore).
    pub snapshot: Option<SnapshotId>,
}

/// `1.5 MiB`-style sizes, for people.
pub fn size(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Formats milliseconds since the Unix epoch as RFC 3339 UTC with millisecond
/// precision, e.g. `2026-11-26T03:06:28.123Z`.
pub fn rfc3339_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        sod / 3600,
        (sod % 3600) / 60,
        sod % 60
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian
/// calendar (Howard Hinnant's `civil_from_days`).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_instants() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339_ms(1_795_661_188_123), "2026-11-26T02:46:28.123Z");
        assert_eq!(rfc3339_ms(-1), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn id_maps_hash_by_the_ids_leading_bytes() {
        use std::hash::BuildHasher;
        let mut a = [0u8; 32];
        a[..8].copy_from_slice(&0x0102_0304_0506_0708u64.to_le_bytes());
        a[20] = 9;
        assert_eq!(
            IdHash::default().hash_one(ChunkId(a)),
            0x0102_0304_0506_0708
        );
        let mut m: IdMap<ChunkId, u32> = IdMap::default();
        for i in 0..1000u32 {
            let mut k = [0u8; 32];
            k[..4].copy_from_slice(&i.wrapping_mul(2_654_435_761).to_le_bytes());
            k[31] = i as u8;
            m.insert(ChunkId(k), i);
        }
        assert_eq!(m.len(), 1000);
        assert!(m.values().all(|v| *v < 1000));
    }

    #[test]
    fn ids_round_trip_through_hex() {
        let id = SnapshotId([0xab; 16]);
        assert_eq!(id.to_hex().parse::<SnapshotId>(), Ok(id));
        assert!("xyz".parse::<SnapshotId>().is_err());
        assert_eq!(id.short(), "abababab");
    }

    #[test]
    fn levels_parse_and_code() {
        for l in [Level::Full, Level::Incremental, Level::Differential] {
            assert_eq!(l.as_str().parse::<Level>(), Ok(l));
            assert_eq!(Level::from_code(l.code()), Some(l));
        }
        assert!("weekly".parse::<Level>().is_err());
        assert_eq!(Level::from_code(0), None);
    }
}

/// Where a cartridge stands in its life (this subset; media pools
/// and vaulting add the rotation states).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CartridgeStatus {
    /// Labelled for a pool, not yet part of a media set.
    Labelled,
    /// Part of a media set that can still append to it.
    Writing,
    /// Full: the set continued on another cartridge.
    Full,
}

impl CartridgeStatus {
    /// The lowercase name used in the catalog.
    pub fn as_str(self) -> &'static str {
        match self {
            CartridgeStatus::Labelled => "labelled",
            CartridgeStatus::Writing => "writing",
            CartridgeStatus::Full => "full",
        }
    }
}

impl FromStr for CartridgeStatus {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        match s {
            "labelled" => Ok(CartridgeStatus::Labelled),
            "writing" => Ok(CartridgeStatus::Writing),
            "full" => Ok(CartridgeStatus::Full),
            _ => Err(ParseError {
                what: "cartridge status",
                input: s.to_string(),
            }),
        }
    }
}

/// A labelled cartridge as the catalog knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cartridge {
    /// Barcode.
    pub barcode: String,
    /// Id written in its media label.
    pub media: MediaId,
    /// Media pool.
    pub pool: String,
    /// When it was labelled (ms since the epoch, UTC).
    pub labelled_ms: i64,
    /// Write once, read many.
    pub worm: bool,
    /// Its media set and sequence number in it.
    pub set: Option<(MediaSetId, u32)>,
    /// Life state.
    pub status: CartridgeStatus,
    /// Tape files written (labels included): the next file's number.
    pub files: u32,
    /// Logical object number of the end of data (where appending starts).
    pub end_of_data: u64,
    /// Plaintext bytes of store objects written to it.
    pub bytes: u64,
    /// Last write (ms since the epoch, UTC).
    pub written_ms: Option<i64>,
}

/// A media set as the catalog knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaSetInfo {
    /// Its id.
    pub id: MediaSetId,
    /// Media pool.
    pub pool: String,
    /// Created (ms since the epoch, UTC).
    pub created_ms: i64,
    /// The store it copies.
    pub store: StoreId,
    /// Fingerprint of its key; `None` for a set written unencrypted.
    pub key_fingerprint: Option<String>,
    /// Its key wrapped under the store's master key (`None`: unencrypted, or
    /// the key was destroyed).
    #[serde(skip)]
    pub wrapped_key: Option<Vec<u8>>,
    /// Its key is held in escrow (catalog and the store's `mediakeys/`),
    /// not on its cartridges' labels: destroying the escrow shreds it.
    #[serde(default)]
    pub escrowed: bool,
    /// When its key was destroyed (crypto-shredding), ms since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shredded_ms: Option<i64>,
}

/// Where one store object sits in a media set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TapeObject {
    /// Store object key.
    pub key: String,
    /// Length.
    pub len: u64,
    /// Cartridge barcode.
    pub barcode: String,
    /// The cartridge's sequence number in the set.
    pub seq: u32,
    /// Tape file number.
    pub file: u32,
    /// Logical object number of that tape file's first block.
    pub file_start: u64,
    /// Logical object number of the block where the object's entry begins.
    pub block: u64,
    /// Offset of the entry in that block's plaintext.
    pub offset: u32,
}
