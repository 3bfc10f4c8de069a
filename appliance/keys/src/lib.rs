//! Coffer's key hierarchy.
//!
//! A store has one random 256-bit **master secret**. It is never written
//! anywhere unwrapped: on disk it exists only inside a *key file*, sealed with
//! AES-256-GCM under a key-encryption key derived from the operator's
//! passphrase with Argon2id (byte layout in `docs/formats/store.md`).
//!
//! Every working key is derived from the master secret with blake3's
//! `derive_key` mode and a fixed, versioned context string:
//!
//! * the **chunk id key** (keyed blake3 of chunk plaintext, so ids reveal
//!   nothing to a holder of the ciphertext),
//! * the **chunker seed** (perturbs the content-defined chunker's gear table),
//! * one **object key per container or per store object**, derived from the
//!   object's random 128-bit id. A container key encrypts at most one
//!   container (tens of MiB, at most 2^32 records), with the record's index as
//!   the GCM nonce, so no nonce repeats under a key and every key stays far
//!   below GCM's usage limits.
//!
//! Key material lives in [`zeroize::Zeroizing`] buffers and never leaves this
//! crate: callers get [`ObjectKey`] handles that encrypt and decrypt. The key
//! *generation* recorded in key files and container headers leaves room for
//! rotation and per-media-set keys.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use coffer_types::ContainerId;
use zeroize::Zeroizing;

/// Format constants. **Do not modify**: they are part of the on-disk format.
/// Each magic is the first 8 bytes of blake3 of a versioned string, checked
/// by a test.
pub mod magic {
    /// `blake3("coffer key file v1")[..8]`
    pub const KEY_FILE_V1: [u8; 8] = [224, 157, 64, 105, 205, 229, 83, 200];
    /// blake3 `derive_key` context of the chunk id key.
    pub const CTX_CHUNK_ID: &str = "coffer 2026-11-26 chunk id key v1";
    /// blake3 `derive_key` context of the chunker seed.
    pub const CTX_CHUNKER_SEED: &str = "coffer 2026-11-26 chunker seed v1";
    /// blake3 `derive_key` context of per-container keys.
    pub const CTX_CONTAINER: &str = "coffer 2026-11-26 container key v1";
    /// blake3 `derive_key` context of per-object keys (snapshot records).
    pub const CTX_OBJECT: &str = "coffer 2026-11-26 object key v1";
    /// blake3 `derive_key` context of the key that wraps a media set's key.
    pub const CTX_MEDIA_SET_WRAP: &str = "coffer 2026-11-26 media set wrap key v1";
    /// blake3 `derive_key` context of the key that seals an appliance's own
    /// secrets at rest (its TLS identity, object storage credentials); the
    /// purpose is the extra input.
    pub const CTX_LOCAL_SEALING: &str = "coffer 2026-11-26 appliance secret sealing key v1";
    /// blake3 `derive_key` context of a media set key's public fingerprint.
    pub const CTX_MEDIA_SET_FINGERPRINT: &str = "coffer 2026-11-26 media set key fingerprint v1";
    /// blake3 `derive_key` context of the key of one tape file of a media set.
    pub const CTX_TAPE_FILE: &str = "coffer 2026-11-26 tape file key v1";
    /// blake3 `derive_key` context of the MAC key of one tape file.
    pub const CTX_TAPE_FILE_MAC: &str = "coffer 2026-11-26 tape file mac key v1";
    /// blake3 `derive_key` context of the key an LTO drive encrypts a set with.
    pub const CTX_DRIVE_KEY: &str = "coffer 2026-11-26 lto drive key v1";
    /// blake3 `derive_key` context of a master key's public id.
    pub const CTX_KEY_ID: &str = "coffer 2026-11-26 master key id v1";
    /// First line of a paper key.
    pub const PAPER_KEY_V1: &str = "COFFER PAPER KEY v1";
    /// `blake3("coffer data key v1")[..8]`
    pub const DATA_KEY_V1: [u8; 8] = [171, 186, 229, 146, 78, 12, 164, 94];
    /// blake3 `derive_key` context of the key that wraps data keys.
    pub const CTX_DATA_KEY_WRAP: &str = "coffer 2026-11-26 data key wrap key v1";
    /// blake3 `derive_key` context of per-container keys under a data key
    /// (generation 2 on; generation 1 is [`CTX_CONTAINER`] from the master).
    pub const CTX_CONTAINER_DATA: &str = "coffer 2026-11-26 container key from data key v1";
    /// blake3 `derive_key` context of a data key's public id.
    pub const CTX_DATA_KEY_ID: &str = "coffer 2026-11-26 data key id v1";
}

/// Size of a sealed key file in bytes.
pub const KEY_FILE_LEN: usize = 104;
const KEY_FILE_AAD_LEN: usize = 56;
const KEY_FILE_VERSION: u16 = 1;
const KDF_ARGON2ID: u16 = 1;

/// Errors of key handling.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The passphrase does not open the key file.
    #[error("wrong passphrase: it does not open the store's key")]
    WrongPassphrase,
    /// The key file is not a key file or is damaged.
    #[error("key file is damaged or not a coffer key file: {0}")]
    Malformed(String),
    /// The key file was written by a newer coffer.
    #[error(
        "key file format version {found} is newer than this coffer supports ({supported}); upgrade coffer"
    )]
    NewerVersion {
        /// Version found.
        found: u16,
        /// Highest supported version.
        supported: u16,
    },
    /// The passphrase is empty.
    #[error("the passphrase is empty")]
    EmptyPassphrase,
    /// The operating system's random source failed.
    #[error("random number generator failed: {0}")]
    Random(String),
    /// Argon2 rejected its parameters.
    #[error("key derivation failed: {0}")]
    Kdf(String),
    /// A decryption failed its authentication: the data was altered or the key is wrong.
    #[error("authentication failed: data was altered or does not belong to this key")]
    Authentication,
}

/// Result with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Fills `buf` from the operating system's random source.
pub fn random_bytes(buf: &mut [u8]) -> Result<()> {
    getrandom::getrandom(buf).map_err(|e| Error::Random(e.to_string()))
}

/// A passphrase, wiped from memory when dropped.
pub struct Passphrase(Zeroizing<Vec<u8>>);

impl Passphrase {
    /// Takes ownership of the bytes; a trailing newline (from a file or a
    /// pipe) is removed.
    pub fn new(mut bytes: Vec<u8>) -> Result<Passphrase> {
        while matches!(bytes.last(), Some(b'\n' | b'\r')) {
            bytes.pop();
        }
        let p = Passphrase(Zeroizing::new(bytes));
        if p.0.is_empty() {
            return Err(Error::EmptyPassphrase);
        }
        Ok(p)
    }
}

impl std::fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Passphrase(<redacted>)")
    }
}

/// Argon2id cost parameters, recorded in the key file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_kib: u32,
    /// Iterations.
    pub t: u32,
    /// Lanes.
    pub p: u32,
}

impl KdfParams {
    /// The default: 19 MiB, 4 passes, 1 lane. OWASP's Argon2id guidance is
    /// 19 MiB with 2 passes; twice the passes doubles an attacker's cost per
    /// guess while every command's peak memory stays small (see
    /// ARCHITECTURE.md). `coffer init --kdf-memory-kib` asks for more.
    pub const DEFAULT: KdfParams = KdfParams {
        m_kib: 19 * 1024,
        t: 4,
        p: 1,
    };
    /// Upper bounds accepted when reading a key file, so a hostile file cannot
    /// make `unseal` allocate without limit or run for hours.
    const MAX: KdfParams = KdfParams {
        m_kib: 4 * 1024 * 1024,
        t: 64,
        p: 64,
    };

    fn check(self) -> Result<()> {
        if self.m_kib < self.p.saturating_mul(8)
            || self.m_kib > Self::MAX.m_kib
            || self.t == 0
            || self.t > Self::MAX.t
            || self.p == 0
            || self.p > Self::MAX.p
        {
            return Err(Error::Malformed(format!(
                "argon2id parameters out of range (m={} KiB, t={}, p={})",
                self.m_kib, self.t, self.p
            )));
        }
        Ok(())
    }
}

fn derive_kek(
    pass: &Passphrase,
    salt: &[u8; 16],
    params: KdfParams,
) -> Result<Zeroizing<[u8; 32]>> {
    let argon_params = argon2::Params::new(params.m_kib, params.t, params.p, Some(32))
        .map_err(|e| Error::Kdf(e.to_string()))?;
    let argon = argon2::Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        argon_params,
    );
    let mut kek = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(&pass.0, salt, kek.as_mut())
        .map_err(|e| Error::Kdf(e.to_string()))?;
    Ok(kek)
}

fn gcm(key: &[u8; 32]) -> Aes256Gcm {
    Aes256Gcm::new(key.into())
}

/// Length of a wrapped data key (`datakeys/…` object).
pub const DATA_KEY_FILE_LEN: usize = 84;
const DATA_KEY_AAD_LEN: usize = 36;
const DATA_KEY_VERSION: u16 = 1;

/// A data key: the key new containers are sealed under from its generation
/// on (key rotation), wrapped by the master key in the store. Destroying
/// its wrapped copy makes every container sealed under it unreadable
/// (crypto-shredding).
pub struct DataKey {
    key: Zeroizing<[u8; 32]>,
    generation: u32,
    created_ms: i64,
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DataKey(generation {}, <redacted>)", self.generation)
    }
}

impl DataKey {
    /// Draws a new random data key for `generation` (2 or more).
    pub fn generate(generation: u32, created_ms: i64) -> Result<DataKey> {
        if generation < 2 {
            return Err(Error::Malformed(
                "data key generations start at 2 (1 is the master key's own)".into(),
            ));
        }
        let mut key = Zeroizing::new([0u8; 32]);
        random_bytes(key.as_mut())?;
        Ok(DataKey {
            key,
            generation,
            created_ms,
        })
    }

    /// Its generation.
    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// When it was created, ms since the epoch.
    pub fn created_ms(&self) -> i64 {
        self.created_ms
    }

    /// A public id (16 hex digits).
    pub fn key_id(&self) -> String {
        let mut h = blake3::Hasher::new_derive_key(magic::CTX_DATA_KEY_ID);
        h.update(self.key.as_ref());
        hex::encode(&h.finalize().as_bytes()[..8])
    }

    /// The key of container `id` sealed under this generation.
    pub fn container_key(&self, id: &ContainerId) -> ObjectKey {
        let mut h = blake3::Hasher::new_derive_key(magic::CTX_CONTAINER_DATA);
        h.update(self.key.as_ref());
        h.update(&id.0);
        ObjectKey(Zeroizing::new(*h.finalize().as_bytes()))
    }

    /// Wraps it under `master` for store `store` ([`DATA_KEY_FILE_LEN`]
    /// bytes): magic, version, flags, generation, creation time, nonce,
    /// then AES-256-GCM of the key (associated data: the 36 header bytes
    /// and the store id).
    pub fn wrap(&self, master: &MasterKey, store: &[u8; 16]) -> Result<Vec<u8>> {
        let mut nonce = [0u8; 12];
        random_bytes(&mut nonce)?;
        let mut out = Vec::with_capacity(DATA_KEY_FILE_LEN);
        out.extend_from_slice(&magic::DATA_KEY_V1);
        out.extend_from_slice(&DATA_KEY_VERSION.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&self.generation.to_le_bytes());
        out.extend_from_slice(&self.created_ms.to_le_bytes());
        out.extend_from_slice(&nonce);
        debug_assert_eq!(out.len(), DATA_KEY_AAD_LEN);
        let mut aad = out.clone();
        aad.extend_from_slice(store);
        let kek = master.derive(magic::CTX_DATA_KEY_WRAP, store);
        let ct = gcm(&kek)
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: self.key.as_ref(),
                    aad: &aad,
                },
            )
            .map_err(|_| Error::Authentication)?;
        out.extend_from_slice(&ct);
        debug_assert_eq!(out.len(), DATA_KEY_FILE_LEN);
        Ok(out)
    }

    /// Unwraps a `datakeys/…` object of store `store` with `master`.
    pub fn unwrap(file: &[u8], master: &MasterKey, store: &[u8; 16]) -> Result<DataKey> {
        if file.len() != DATA_KEY_FILE_LEN {
            return Err(Error::Malformed(format!(
                "a data key object is {DATA_KEY_FILE_LEN} bytes, not {}",
                file.len()
            )));
        }
        if file[..8] != magic::DATA_KEY_V1 {
            return Err(Error::Malformed("not a Coffer data key object".into()));
        }
        let version = u16::from_le_bytes([file[8], file[9]]);
        if version != DATA_KEY_VERSION {
            return Err(Error::Malformed(format!(
                "data key object version {version} is not supported"
            )));
        }
        let mut g = [0u8; 4];
        g.copy_from_slice(&file[12..16]);
        let generation = u32::from_le_bytes(g);
        let mut t = [0u8; 8];
        t.copy_from_slice(&file[16..24]);
        let created_ms = i64::from_le_bytes(t);
        let mut aad = file[..DATA_KEY_AAD_LEN].to_vec();
        aad.extend_from_slice(store);
        let kek = master.derive(magic::CTX_DATA_KEY_WRAP, store);
        let plain = Zeroizing::new(
            gcm(&kek)
                .decrypt(
                    Nonce::from_slice(&file[24..36]),
                    Payload {
                        msg: &file[DATA_KEY_AAD_LEN..],
                        aad: &aad,
                    },
                )
                .map_err(|_| Error::Authentication)?,
        );
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(&plain);
        Ok(DataKey {
            key,
            generation,
            created_ms,
        })
    }
}

/// A store's master secret and its generation.
pub struct MasterKey {
    secret: Zeroizing<[u8; 32]>,
    generation: u32,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey(generation {}, <redacted>)", self.generation)
    }
}

impl MasterKey {
    /// Draws a new random master secret.
    pub fn generate(generation: u32) -> Result<MasterKey> {
        let mut secret = Zeroizing::new([0u8; 32]);
        random_bytes(secret.as_mut())?;
        Ok(MasterKey { secret, generation })
    }

    /// Builds a master key from known bytes: golden fixtures and tests only.
    pub fn from_bytes_for_fixtures(bytes: [u8; 32], generation: u32) -> MasterKey {
        MasterKey {
            secret: Zeroizing::new(bytes),
            generation,
        }
    }

    /// The key generation (1 for a new store; rotation adds generations).
    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// A public id of this key (16 hex digits): names it in `key status`,
    /// the audit log and disposal certificates without revealing it.
    pub fn key_id(&self) -> String {
        hex::encode(&self.derive(magic::CTX_KEY_ID, &[])[..8])
    }

    /// The escrow copy of this key for `store` (16 bytes): a printable paper
    /// key, see [`parse_paper_key`]. Whoever holds it holds the store's data.
    pub fn paper_key(&self, store: &[u8; 16]) -> Zeroizing<String> {
        use std::fmt::Write;
        // Written straight into the zeroized buffer: no copy of the key's
        // digits is left in a temporary string.
        let mut out = Zeroizing::new(String::with_capacity(512));
        let _ = writeln!(out, "{}", magic::PAPER_KEY_V1);
        let _ = writeln!(out, "store {}", hex::encode(store));
        let _ = writeln!(out, "key id {}", self.key_id());
        let _ = writeln!(out, "generation {}", self.generation);
        for (i, part) in self.secret.chunks(8).enumerate() {
            let line = i as u8 + 1;
            let _ = write!(out, "{line}:");
            for pair in part.chunks(2) {
                let _ = write!(out, " ");
                for b in pair {
                    let _ = write!(out, "{b:02x}");
                }
            }
            let _ = writeln!(out, "  {}", paper_line_check(line, part));
        }
        let _ = writeln!(
            out,
            "check {}",
            paper_check(store, self.generation, &self.secret)
        );
        out
    }
}

/// The final check: BLAKE3 over the store id, the generation and the key,
/// so a mistyped store or generation line is caught too.
fn paper_check(store: &[u8; 16], generation: u32, secret: &[u8; 32]) -> String {
    let mut h = blake3::Hasher::new();
    h.update(store);
    h.update(&generation.to_le_bytes());
    h.update(secret);
    hex::encode(&h.finalize().as_bytes()[..4])
}

fn paper_line_check(line: u8, bytes: &[u8]) -> String {
    let mut h = blake3::Hasher::new();
    h.update(&[line]);
    h.update(bytes);
    hex::encode(&h.finalize().as_bytes()[..2])
}

/// Reads a paper key: the store it belongs to and the master key.
/// Whitespace and case do not matter; a mistyped group is caught by its
/// line's checksum, and the message names the line.
pub fn parse_paper_key(text: &str) -> Result<([u8; 16], MasterKey)> {
    let bad = |m: String| Error::Malformed(format!("paper key: {m}"));
    let mut lines = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'));
    if lines.next() != Some(magic::PAPER_KEY_V1) {
        return Err(bad(format!(
            "the first line must be '{}'",
            magic::PAPER_KEY_V1
        )));
    }
    let mut store = None;
    let mut check = None;
    let mut key_id = None;
    let mut generation = None;
    let mut secret = Zeroizing::new([0u8; 32]);
    let mut seen = [false; 4];
    for line in lines {
        // Keywords and hex digits in either case (the copy is wiped).
        let lower = Zeroizing::new(line.to_ascii_lowercase());
        let l: &str = &lower;
        if let Some(v) = l.strip_prefix("store ") {
            let b = hex::decode(v.trim()).map_err(|e| bad(format!("store id: {e}")))?;
            store = Some(
                <[u8; 16]>::try_from(b.as_slice())
                    .map_err(|_| bad("the store id is 32 hex digits".into()))?,
            );
        } else if let Some(v) = l.strip_prefix("key id ") {
            key_id = Some(v.trim().to_ascii_lowercase());
        } else if let Some(v) = l.strip_prefix("check ") {
            check = Some(v.trim().to_ascii_lowercase());
        } else if let Some(v) = l.strip_prefix("generation ") {
            generation = Some(
                v.trim()
                    .parse::<u32>()
                    .map_err(|e| bad(format!("generation: {e}")))?,
            );
        } else if let Some((n, rest)) = l.split_once(':') {
            let n: u8 = n
                .trim()
                .parse()
                .map_err(|_| bad(format!("'{l}' is not a key line")))?;
            if !(1..=4).contains(&n) {
                return Err(bad(format!("line {n}: key lines are numbered 1 to 4")));
            }
            let mut words: Vec<&str> = rest.split_whitespace().collect();
            let check = words
                .pop()
                .ok_or_else(|| bad(format!("line {n} is empty")))?;
            let digits = Zeroizing::new(words.concat());
            let bytes = Zeroizing::new(
                hex::decode(digits.as_bytes())
                    .map_err(|_| bad(format!("line {n}: not hex digits")))?,
            );
            if bytes.len() != 8 {
                return Err(bad(format!(
                    "line {n}: 16 hex digits expected, found {}",
                    digits.len()
                )));
            }
            if paper_line_check(n, &bytes) != check.to_ascii_lowercase() {
                return Err(bad(format!(
                    "line {n}: the checksum does not match; a group on this line is mistyped"
                )));
            }
            let at = usize::from(n - 1) * 8;
            secret[at..at + 8].copy_from_slice(&bytes);
            seen[usize::from(n - 1)] = true;
        } else {
            return Err(bad(format!("unexpected line '{l}'")));
        }
    }
    if let Some(missing) = seen.iter().position(|s| !s) {
        return Err(bad(format!("key line {} is missing", missing + 1)));
    }
    let store = store.ok_or_else(|| bad("the store line is missing".into()))?;
    let key = MasterKey {
        secret,
        generation: generation.ok_or_else(|| bad("the generation line is missing".into()))?,
    };
    match key_id {
        Some(id) if id == key.key_id() => {}
        Some(_) => {
            return Err(bad(
                "the key id does not match the key lines: they belong to another key, or are mistyped"
                    .into(),
            ));
        }
        None => return Err(bad("the key id line is missing".into())),
    }
    match check {
        Some(c) if c == paper_check(&store, key.generation, &key.secret) => Ok((store, key)),
        Some(_) => Err(bad(
            "the final check does not match: the store or generation line is mistyped".into(),
        )),
        None => Err(bad("the check line is missing".into())),
    }
}

impl MasterKey {
    fn derive(&self, ctx: &str, extra: &[u8]) -> Zeroizing<[u8; 32]> {
        let mut h = blake3::Hasher::new_derive_key(ctx);
        h.update(self.secret.as_ref());
        h.update(extra);
        Zeroizing::new(*h.finalize().as_bytes())
    }

    /// The key that seals one of the appliance's own secrets at rest
    /// (`purpose` names which: `replication identity`, `remote credentials`),
    /// so none is on disk unwrapped and each opens only with the store's
    /// passphrase-sealed master key.
    pub fn sealing_key(&self, purpose: &str) -> Zeroizing<[u8; 32]> {
        self.derive(magic::CTX_LOCAL_SEALING, purpose.as_bytes())
    }

    /// Seals a small secret of the appliance (object storage credentials)
    /// for `purpose`: a random 16-byte salt, then AES-256-GCM under a key
    /// derived from the master key, the purpose and the salt (one key per
    /// sealing, so the fixed nonce never repeats under a key), the purpose
    /// as associated data.
    pub fn seal_secret(&self, purpose: &str, secret: &[u8]) -> Result<Vec<u8>> {
        let mut salt = [0u8; 16];
        random_bytes(&mut salt)?;
        let mut extra = purpose.as_bytes().to_vec();
        extra.extend_from_slice(&salt);
        let key = self.derive(magic::CTX_LOCAL_SEALING, &extra);
        let ct = gcm(&key)
            .encrypt(
                Nonce::from_slice(&[0u8; 12]),
                Payload {
                    msg: secret,
                    aad: purpose.as_bytes(),
                },
            )
            .map_err(|_| Error::Authentication)?;
        let mut out = salt.to_vec();
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// Opens what [`MasterKey::seal_secret`] sealed for `purpose`; another
    /// store's key, another purpose or damage is [`Error::Authentication`].
    pub fn open_secret(&self, purpose: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        if sealed.len() < 16 + TAG_LEN {
            return Err(Error::Malformed(format!(
                "a sealed secret is at least {} bytes, not {}",
                16 + TAG_LEN,
                sealed.len()
            )));
        }
        let mut extra = purpose.as_bytes().to_vec();
        extra.extend_from_slice(&sealed[..16]);
        let key = self.derive(magic::CTX_LOCAL_SEALING, &extra);
        gcm(&key)
            .decrypt(
                Nonce::from_slice(&[0u8; 12]),
                Payload {
                    msg: &sealed[16..],
                    aad: purpose.as_bytes(),
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| Error::Authentication)
    }

    /// A keyed hasher for chunk ids.
    pub fn chunk_id_hasher(&self) -> ChunkIdKey {
        ChunkIdKey(self.derive(magic::CTX_CHUNK_ID, &[]))
    }

    /// The seed of the content-defined chunker's gear table.
    pub fn chunker_seed(&self) -> u64 {
        let k = self.derive(magic::CTX_CHUNKER_SEED, &[]);
        let mut b = [0u8; 8];
        b.copy_from_slice(&k[..8]);
        u64::from_le_bytes(b)
    }

    /// The key of one container.
    pub fn container_key(&self, id: &ContainerId) -> ObjectKey {
        ObjectKey(self.derive(magic::CTX_CONTAINER, &id.0))
    }

    /// The key of one store object (snapshot record), from its random id.
    pub fn object_key(&self, object_id: &[u8; 16]) -> ObjectKey {
        ObjectKey(self.derive(magic::CTX_OBJECT, object_id))
    }

    /// Seals the master key under `pass` into a key file ([`KEY_FILE_LEN`] bytes).
    pub fn seal(&self, pass: &Passphrase, params: KdfParams) -> Result<Vec<u8>> {
        params.check()?;
        let mut salt = [0u8; 16];
        random_bytes(&mut salt)?;
        let mut nonce = [0u8; 12];
        random_bytes(&mut nonce)?;
        let mut out = Vec::with_capacity(KEY_FILE_LEN);
        out.extend_from_slice(&magic::KEY_FILE_V1);
        out.extend_from_slice(&KEY_FILE_VERSION.to_le_bytes());
        out.extend_from_slice(&KDF_ARGON2ID.to_le_bytes());
        out.extend_from_slice(&params.m_kib.to_le_bytes());
        out.extend_from_slice(&params.t.to_le_bytes());
        out.extend_from_slice(&params.p.to_le_bytes());
        out.extend_from_slice(&salt);
        out.extend_from_slice(&self.generation.to_le_bytes());
        out.extend_from_slice(&nonce);
        debug_assert_eq!(out.len(), KEY_FILE_AAD_LEN);
        let kek = derive_kek(pass, &salt, params)?;
        let ct = gcm(&kek)
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: self.secret.as_ref(),
                    aad: &out,
                },
            )
            .map_err(|_| Error::Kdf("sealing the master key failed".into()))?;
        out.extend_from_slice(&ct);
        debug_assert_eq!(out.len(), KEY_FILE_LEN);
        Ok(out)
    }

    /// Opens a key file with `pass`.
    pub fn unseal(file: &[u8], pass: &Passphrase) -> Result<MasterKey> {
        let header = parse_key_file(file)?;
        let kek = derive_kek(pass, &header.salt, header.params)?;
        let pt = Zeroizing::new(
            gcm(&kek)
                .decrypt(
                    Nonce::from_slice(&header.nonce),
                    Payload {
                        msg: &file[KEY_FILE_AAD_LEN..],
                        aad: &file[..KEY_FILE_AAD_LEN],
                    },
                )
                .map_err(|_| Error::WrongPassphrase)?,
        );
        let mut secret = Zeroizing::new([0u8; 32]);
        if pt.len() != 32 {
            return Err(Error::Malformed(
                "sealed secret has the wrong length".into(),
            ));
        }
        secret.copy_from_slice(&pt);
        Ok(MasterKey {
            secret,
            generation: header.generation,
        })
    }
}

/// The parsed, not yet opened, fields of a key file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFileHeader {
    /// Argon2id parameters.
    pub params: KdfParams,
    /// Argon2id salt.
    pub salt: [u8; 16],
    /// Key generation.
    pub generation: u32,
    /// GCM nonce of the sealed secret.
    pub nonce: [u8; 12],
}

/// Parses a key file's header without opening it (also the fuzz entry point).
pub fn parse_key_file(file: &[u8]) -> Result<KeyFileHeader> {
    if file.len() < 10 || file[..8] != magic::KEY_FILE_V1 {
        return Err(Error::Malformed("bad magic".into()));
    }
    let version = u16::from_le_bytes([file[8], file[9]]);
    if version > KEY_FILE_VERSION {
        return Err(Error::NewerVersion {
            found: version,
            supported: KEY_FILE_VERSION,
        });
    }
    if file.len() != KEY_FILE_LEN {
        return Err(Error::Malformed(format!(
            "length {} (expected {KEY_FILE_LEN})",
            file.len()
        )));
    }
    let u32_at = |o: usize| u32::from_le_bytes([file[o], file[o + 1], file[o + 2], file[o + 3]]);
    let kdf = u16::from_le_bytes([file[10], file[11]]);
    if kdf != KDF_ARGON2ID {
        return Err(Error::Malformed(format!(
            "unknown key derivation function {kdf}"
        )));
    }
    let params = KdfParams {
        m_kib: u32_at(12),
        t: u32_at(16),
        p: u32_at(20),
    };
    params.check()?;
    let mut salt = [0u8; 16];
    salt.copy_from_slice(&file[24..40]);
    let mut nonce = [0u8; 12];
    nonce.copy_from_slice(&file[44..56]);
    Ok(KeyFileHeader {
        params,
        salt,
        generation: u32_at(40),
        nonce,
    })
}

/// The keyed blake3 that names chunks.
pub struct ChunkIdKey(Zeroizing<[u8; 32]>);

impl ChunkIdKey {
    /// The chunk id of `data`.
    pub fn id(&self, data: &[u8]) -> coffer_types::ChunkId {
        coffer_types::ChunkId(*blake3::keyed_hash(&self.0, data).as_bytes())
    }
    /// A keyed hasher for streaming use (whole-file content hashes).
    pub fn hasher(&self) -> blake3::Hasher {
        blake3::Hasher::new_keyed(&self.0)
    }
}

/// Bytes of a wrapped media set key: nonce (12), key (32), tag (16).
pub const WRAPPED_SET_KEY_LEN: usize = 60;

/// The key of one tape media set.
///
/// Every tape file of the set is encrypted under a key derived from it and
/// the file's random id, so no nonce repeats even when a cartridge is
/// rewritten. The key is stored only wrapped (AES-256-GCM) under a key
/// derived from the store's master key and the set's id: destroying every
/// wrapped copy is the set's secure disposal.
pub struct MediaSetKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for MediaSetKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MediaSetKey({}, <redacted>)", self.fingerprint())
    }
}

impl MediaSetKey {
    /// Draws a new random media set key.
    pub fn generate() -> Result<MediaSetKey> {
        let mut k = Zeroizing::new([0u8; 32]);
        random_bytes(k.as_mut())?;
        Ok(MediaSetKey(k))
    }

    /// Builds a key from known bytes: golden fixtures and tests only.
    pub fn from_bytes_for_fixtures(bytes: [u8; 32]) -> MediaSetKey {
        MediaSetKey(Zeroizing::new(bytes))
    }

    /// A public fingerprint (16 hex digits) naming the key without revealing it.
    pub fn fingerprint(&self) -> String {
        let mut h = blake3::Hasher::new_derive_key(magic::CTX_MEDIA_SET_FINGERPRINT);
        h.update(self.0.as_ref());
        h.finalize().as_bytes()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// The keys of the tape file with random id `file_id`.
    pub fn file_key(&self, file_id: &[u8; 16]) -> TapeFileKey {
        let derive = |ctx: &str| {
            let mut h = blake3::Hasher::new_derive_key(ctx);
            h.update(self.0.as_ref());
            h.update(file_id);
            Zeroizing::new(*h.finalize().as_bytes())
        };
        let enc = derive(magic::CTX_TAPE_FILE);
        let mac = derive(magic::CTX_TAPE_FILE_MAC);
        TapeFileKey {
            cipher: aes::Aes256::new(enc.as_ref().into()),
            mac,
        }
    }

    /// The 256-bit key handed to an LTO drive for its hardware encryption
    /// of this set (derived, so the set key itself never leaves the host).
    pub fn drive_key_bytes(&self) -> Zeroizing<[u8; 32]> {
        let mut h = blake3::Hasher::new_derive_key(magic::CTX_DRIVE_KEY);
        h.update(self.0.as_ref());
        Zeroizing::new(*h.finalize().as_bytes())
    }

    /// Wraps the key under `master` for the media set `set_id`
    /// ([`WRAPPED_SET_KEY_LEN`] bytes: random nonce, ciphertext, tag; the
    /// set id is the associated data).
    pub fn wrap(&self, master: &MasterKey, set_id: &[u8; 16]) -> Result<Vec<u8>> {
        let kek = master.derive(magic::CTX_MEDIA_SET_WRAP, set_id);
        let mut nonce = [0u8; 12];
        random_bytes(&mut nonce)?;
        let ct = gcm(&kek)
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: self.0.as_ref(),
                    aad: set_id,
                },
            )
            .map_err(|_| Error::Authentication)?;
        let mut out = Vec::with_capacity(WRAPPED_SET_KEY_LEN);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// Unwraps a key wrapped by [`MediaSetKey::wrap`]; a wrong master key, a
    /// wrong set id or damage is [`Error::Authentication`].
    pub fn unwrap_with(
        master: &MasterKey,
        set_id: &[u8; 16],
        wrapped: &[u8],
    ) -> Result<MediaSetKey> {
        if wrapped.len() != WRAPPED_SET_KEY_LEN {
            return Err(Error::Malformed(format!(
                "a wrapped media set key is {WRAPPED_SET_KEY_LEN} bytes, not {}",
                wrapped.len()
            )));
        }
        let kek = master.derive(magic::CTX_MEDIA_SET_WRAP, set_id);
        let pt = Zeroizing::new(
            gcm(&kek)
                .decrypt(
                    Nonce::from_slice(&wrapped[..12]),
                    Payload {
                        msg: &wrapped[12..],
                        aad: set_id,
                    },
                )
                .map_err(|_| Error::Authentication)?,
        );
        let mut k = Zeroizing::new([0u8; 32]);
        k.copy_from_slice(&pt);
        Ok(MediaSetKey(k))
    }
}

/// The keys of one tape file: AES-256 in counter mode for confidentiality
/// and keyed BLAKE3 for authentication, encrypt-then-MAC, each key derived
/// separately from the media set key and the file's random id.
///
/// Tape blocks are 256 KiB and a drive streams them at hundreds of MB/s;
/// GCM's GHASH in the `aes-gcm` crate runs at a third of the speed of AES-NI
/// counter mode plus BLAKE3 on these machines, and the data inside is
/// already AES-256-GCM (containers). Block `i` of a file uses counter block
/// `i ‖ 0` (big-endian, the low 64 bits count 16-byte blocks), so no counter
/// value repeats under a key; the tag is the first 16 bytes of
/// `BLAKE3-keyed(mac key, aad ‖ i ‖ len ‖ ciphertext)`.
pub struct TapeFileKey {
    cipher: aes::Aes256,
    mac: Zeroizing<[u8; 32]>,
}

impl TapeFileKey {
    fn tag(&self, index: u64, aad: &[u8], ct: &[u8]) -> [u8; TAG_LEN] {
        let mut h = blake3::Hasher::new_keyed(&self.mac);
        h.update(&(aad.len() as u64).to_le_bytes());
        h.update(aad);
        h.update(&index.to_le_bytes());
        h.update(&(ct.len() as u64).to_le_bytes());
        h.update(ct);
        let mut t = [0u8; TAG_LEN];
        t.copy_from_slice(&h.finalize().as_bytes()[..TAG_LEN]);
        t
    }

    fn apply(&self, index: u64, buf: &mut [u8]) {
        use ctr::cipher::{InnerIvInit, StreamCipher};
        let mut iv = [0u8; 16];
        iv[..8].copy_from_slice(&index.to_be_bytes());
        let core = ctr::CtrCore::<aes::Aes256, ctr::flavors::Ctr64BE>::inner_iv_init(
            self.cipher.clone(),
            &iv.into(),
        );
        let mut c = ctr::Ctr64BE::<aes::Aes256>::from_core(core);
        c.apply_keystream(buf);
    }

    /// Encrypts block `index` in place; returns its tag.
    pub fn seal(&self, index: u64, aad: &[u8], buf: &mut [u8]) -> [u8; TAG_LEN] {
        self.apply(index, buf);
        self.tag(index, aad, buf)
    }

    /// Checks the tag, then decrypts block `index` in place.
    pub fn open(&self, index: u64, aad: &[u8], buf: &mut [u8], tag: &[u8; TAG_LEN]) -> Result<()> {
        let want = self.tag(index, aad, buf);
        // Constant time: every byte is compared.
        let diff = want.iter().zip(tag).fold(0u8, |d, (a, b)| d | (a ^ b));
        if diff != 0 {
            return Err(Error::Authentication);
        }
        self.apply(index, buf);
        Ok(())
    }
}

/// An AES-256-GCM key bound to one container or store object. The caller
/// supplies a record index as the nonce; within one object each index is used
/// once (the container format guarantees it).
pub struct ObjectKey(Zeroizing<[u8; 32]>);

/// An [`ObjectKey`]'s expanded AES-256-GCM cipher, for sealing many records
/// in place without re-expanding the key or copying each record (the
/// cipher's round keys are zeroized when it is dropped).
pub struct RecordSealer(Aes256Gcm);

impl RecordSealer {
    /// Encrypts `buf[start..]` in place as record `index` and appends the tag.
    pub fn seal_tail(&self, index: u64, aad: &[u8], buf: &mut Vec<u8>, start: usize) -> Result<()> {
        use aes_gcm::aead::AeadInPlace;
        let tag = self
            .0
            .encrypt_in_place_detached(Nonce::from_slice(&nonce_for(index)), aad, &mut buf[start..])
            .map_err(|_| Error::Authentication)?;
        buf.extend_from_slice(&tag);
        Ok(())
    }
}

impl RecordSealer {
    /// Encrypts `buf` in place as record `index`; returns the tag.
    pub fn seal_slice(&self, index: u64, aad: &[u8], buf: &mut [u8]) -> Result<[u8; TAG_LEN]> {
        use aes_gcm::aead::AeadInPlace;
        let tag = self
            .0
            .encrypt_in_place_detached(Nonce::from_slice(&nonce_for(index)), aad, buf)
            .map_err(|_| Error::Authentication)?;
        let mut out = [0u8; TAG_LEN];
        out.copy_from_slice(&tag);
        Ok(out)
    }

    /// Decrypts and authenticates `buf` in place as record `index`.
    pub fn open_slice(
        &self,
        index: u64,
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<()> {
        use aes_gcm::aead::AeadInPlace;
        self.0
            .decrypt_in_place_detached(
                Nonce::from_slice(&nonce_for(index)),
                aad,
                buf,
                aes_gcm::Tag::from_slice(tag),
            )
            .map_err(|_| Error::Authentication)
    }
}

fn nonce_for(index: u64) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&index.to_le_bytes());
    n
}

impl ObjectKey {
    /// The expanded cipher, for sealing many records in place.
    pub fn sealer(&self) -> RecordSealer {
        RecordSealer(gcm(&self.0))
    }

    /// Encrypts record `index` with associated data `aad`; returns ciphertext || tag.
    pub fn encrypt(&self, index: u64, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
        gcm(&self.0)
            .encrypt(
                Nonce::from_slice(&nonce_for(index)),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .map_err(|_| Error::Authentication)
    }

    /// Decrypts and authenticates record `index`.
    pub fn decrypt(&self, index: u64, aad: &[u8], ciphertext: &[u8]) -> Result<Vec<u8>> {
        gcm(&self.0)
            .decrypt(
                Nonce::from_slice(&nonce_for(index)),
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .map_err(|_| Error::Authentication)
    }
}

/// Size of the GCM authentication tag appended to every ciphertext.
pub const TAG_LEN: usize = 16;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_only_with_its_store_and_purpose() {
        let m = MasterKey::from_bytes_for_fixtures([1; 32], 1);
        let other = MasterKey::from_bytes_for_fixtures([2; 32], 1);
        let a = m.seal_secret("remote s3-1", b"wJalrXUtnFEMI").unwrap();
        let b = m.seal_secret("remote s3-1", b"wJalrXUtnFEMI").unwrap();
        assert_ne!(a, b, "a fresh salt each time");
        assert!(!a.windows(13).any(|w| w == b"wJalrXUtnFEMI"));
        assert_eq!(
            &*m.open_secret("remote s3-1", &a).unwrap(),
            b"wJalrXUtnFEMI"
        );
        assert!(matches!(
            other.open_secret("remote s3-1", &a),
            Err(Error::Authentication)
        ));
        assert!(matches!(
            m.open_secret("remote s3-2", &a),
            Err(Error::Authentication)
        ));
        let mut bad = a.clone();
        bad[20] ^= 1;
        assert!(matches!(
            m.open_secret("remote s3-1", &bad),
            Err(Error::Authentication)
        ));
        assert!(matches!(
            m.open_secret("remote s3-1", &a[..20]),
            Err(Error::Malformed(_))
        ));
    }

    #[test]
    fn media_set_key_wraps_per_set_and_refuses_wrong_master_or_set() {
        let m = MasterKey::from_bytes_for_fixtures([1; 32], 1);
        let other = MasterKey::from_bytes_for_fixtures([2; 32], 1);
        let k = MediaSetKey::generate().unwrap();
        let set = [9u8; 16];
        let w = k.wrap(&m, &set).unwrap();
        assert_eq!(w.len(), WRAPPED_SET_KEY_LEN);
        let back = MediaSetKey::unwrap_with(&m, &set, &w).unwrap();
        assert_eq!(back.fingerprint(), k.fingerprint());
        assert!(matches!(
            MediaSetKey::unwrap_with(&other, &set, &w),
            Err(Error::Authentication)
        ));
        assert!(matches!(
            MediaSetKey::unwrap_with(&m, &[8; 16], &w),
            Err(Error::Authentication)
        ));
        assert!(MediaSetKey::unwrap_with(&m, &set, &w[..59]).is_err());
        // File keys differ per file id and per block; tags catch any change.
        let (mut a, mut b, mut c) = (
            *b"same plaintext!!",
            *b"same plaintext!!",
            *b"same plaintext!!",
        );
        let ka = k.file_key(&[1; 16]);
        let ta = ka.seal(0, b"hdr", &mut a);
        k.file_key(&[2; 16]).seal(0, b"hdr", &mut b);
        ka.seal(1, b"hdr", &mut c);
        assert!(a != b && a != c && &a != b"same plaintext!!");
        let mut x = a;
        ka.open(0, b"hdr", &mut x, &ta).unwrap();
        assert_eq!(&x, b"same plaintext!!");
        for bad in [(1u64, &b"hdr"[..]), (0, &b"hdX"[..])] {
            let mut y = a;
            assert!(ka.open(bad.0, bad.1, &mut y, &ta).is_err());
        }
        let mut y = a;
        y[3] ^= 1;
        assert!(ka.open(0, b"hdr", &mut y, &ta).is_err());
        assert!(!format!("{k:?}").contains(&hex_of(&k.0[..])));
    }

    fn hex_of(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    const FAST: KdfParams = KdfParams {
        m_kib: 256,
        t: 1,
        p: 1,
    };

    fn pass(s: &str) -> Passphrase {
        Passphrase::new(s.as_bytes().to_vec()).unwrap()
    }

    #[test]
    fn magic_is_derived_from_its_versioned_string() {
        assert_eq!(
            magic::KEY_FILE_V1,
            blake3::hash(b"coffer key file v1").as_bytes()[..8]
        );
        assert_eq!(
            magic::DATA_KEY_V1,
            blake3::hash(b"coffer data key v1").as_bytes()[..8]
        );
    }

    #[test]
    fn a_data_key_wraps_for_one_store_and_master_only() {
        let m = MasterKey::generate(1).unwrap();
        let k = DataKey::generate(2, 1_234).unwrap();
        let store = [5u8; 16];
        let w = k.wrap(&m, &store).unwrap();
        assert_eq!(w.len(), DATA_KEY_FILE_LEN);
        let back = DataKey::unwrap(&w, &m, &store).unwrap();
        assert_eq!((back.generation(), back.created_ms()), (2, 1_234));
        assert_eq!(back.key_id(), k.key_id());
        let cid = ContainerId([9; 16]);
        let ct = k.container_key(&cid).encrypt(1, b"a", b"data").unwrap();
        assert_eq!(
            back.container_key(&cid).decrypt(1, b"a", &ct).unwrap(),
            b"data"
        );
        // Not the master's own derivation, and not another container's.
        assert!(m.container_key(&cid).decrypt(1, b"a", &ct).is_err());
        assert!(
            k.container_key(&ContainerId([8; 16]))
                .decrypt(1, b"a", &ct)
                .is_err()
        );
        // Another store, another master, a flipped byte, a bad generation.
        assert!(DataKey::unwrap(&w, &m, &[6u8; 16]).is_err());
        assert!(DataKey::unwrap(&w, &MasterKey::generate(1).unwrap(), &store).is_err());
        for i in [0, 12, 20, 30, 50, 83] {
            let mut bad = w.clone();
            bad[i] ^= 1;
            assert!(DataKey::unwrap(&bad, &m, &store).is_err(), "byte {i}");
        }
        assert!(DataKey::unwrap(&w[..80], &m, &store).is_err());
        assert!(DataKey::generate(1, 0).is_err());
    }

    #[test]
    fn seal_unseal_round_trip_keeps_the_secret() {
        let k = MasterKey::generate(1).unwrap();
        let file = k.seal(&pass("correct horse"), FAST).unwrap();
        assert_eq!(file.len(), KEY_FILE_LEN);
        let k2 = MasterKey::unseal(&file, &pass("correct horse\n")).unwrap();
        assert_eq!(*k.secret, *k2.secret);
        assert_eq!(k2.generation(), 1);
        let cid = ContainerId([7; 16]);
        let ct = k.container_key(&cid).encrypt(3, b"aad", b"hello").unwrap();
        assert_eq!(
            k2.container_key(&cid).decrypt(3, b"aad", &ct).unwrap(),
            b"hello"
        );
    }

    #[test]
    fn wrong_passphrase_is_a_clear_error() {
        let k = MasterKey::generate(1).unwrap();
        let file = k.seal(&pass("right"), FAST).unwrap();
        let err = MasterKey::unseal(&file, &pass("wrong")).unwrap_err();
        assert!(matches!(err, Error::WrongPassphrase), "{err}");
        assert!(err.to_string().contains("wrong passphrase"));
    }

    #[test]
    fn damaged_key_files_are_rejected() {
        let k = MasterKey::generate(1).unwrap();
        let file = k.seal(&pass("p"), FAST).unwrap();
        // a flipped bit in the header (authenticated as AAD) fails like a wrong passphrase
        let mut bad = file.clone();
        bad[41] ^= 1;
        assert!(matches!(
            MasterKey::unseal(&bad, &pass("p")),
            Err(Error::WrongPassphrase)
        ));
        assert!(matches!(
            MasterKey::unseal(&file[..50], &pass("p")),
            Err(Error::Malformed(_))
        ));
        let mut newer = file.clone();
        newer[8] = 9;
        assert!(matches!(
            MasterKey::unseal(&newer, &pass("p")),
            Err(Error::NewerVersion { found: 9, .. })
        ));
        let mut hostile = file.clone();
        hostile[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(parse_key_file(&hostile), Err(Error::Malformed(_))));
        let mut lanes = file;
        lanes[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(parse_key_file(&lanes), Err(Error::Malformed(_))));
        assert!(matches!(
            Passphrase::new(b"\n".to_vec()),
            Err(Error::EmptyPassphrase)
        ));
    }

    #[test]
    fn derived_keys_are_distinct_and_bound_to_their_ids() {
        let k = MasterKey::from_bytes_for_fixtures([1; 32], 1);
        let a = k.container_key(&ContainerId([1; 16]));
        let b = k.container_key(&ContainerId([2; 16]));
        let ct = a.encrypt(0, b"", b"data").unwrap();
        assert!(matches!(b.decrypt(0, b"", &ct), Err(Error::Authentication)));
        assert!(matches!(a.decrypt(1, b"", &ct), Err(Error::Authentication)));
        assert!(matches!(
            a.decrypt(0, b"x", &ct),
            Err(Error::Authentication)
        ));
        let id = k.chunk_id_hasher().id(b"abc");
        let other = MasterKey::from_bytes_for_fixtures([2; 32], 1);
        assert_ne!(id, other.chunk_id_hasher().id(b"abc"));
        assert_ne!(k.chunker_seed(), other.chunker_seed());
    }

    #[test]
    fn a_paper_key_round_trips_and_a_typo_is_caught_by_its_line() {
        let k = MasterKey::generate(1).unwrap();
        let store = [7u8; 16];
        let paper = k.paper_key(&store);
        assert!(paper.starts_with("COFFER PAPER KEY v1\n"));
        let (s, back) = parse_paper_key(&paper).unwrap();
        assert_eq!(s, store);
        assert_eq!(back.key_id(), k.key_id());
        assert_eq!(*back.secret, *k.secret);
        // Upper case and extra blank lines are fine.
        assert!(
            parse_paper_key(&format!(
                "\n{}\n",
                paper
                    .to_uppercase()
                    .replace("COFFER PAPER KEY V1", "COFFER PAPER KEY v1")
                    .replace("STORE", "store")
                    .replace("KEY ID", "key id")
                    .replace("GENERATION", "generation")
            ))
            .is_ok()
        );
        // One mistyped digit on line 3.
        let lines: Vec<&str> = paper.lines().collect();
        let l3 = lines[6];
        let (head, tail) = l3.split_at(4);
        let flipped = tail
            .chars()
            .next()
            .map(|c| if c == '0' { '1' } else { '0' })
            .unwrap();
        let typo = format!("{head}{flipped}{}", &tail[1..]);
        let text = paper.replace(l3, &typo);
        let e = parse_paper_key(&text).unwrap_err().to_string();
        assert!(e.contains("line 3") && e.contains("checksum"), "{e}");
        // A missing line, another key's id.
        let e = parse_paper_key(&paper.replace(lines[5], ""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("key line 2 is missing"), "{e}");
        let other = MasterKey::generate(1).unwrap();
        let e = parse_paper_key(&paper.replace(&k.key_id(), &other.key_id()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("key id does not match"), "{e}");
        let e = parse_paper_key(&paper.replace("generation 1", "generation 2"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("store or generation line is mistyped"), "{e}");
        let e = parse_paper_key(&paper.replace("store 07", "store 08"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("store or generation line is mistyped"), "{e}");
    }

    /// The paper key format (docs/formats/paper-key.md) is frozen: a known
    /// key prints exactly the fixture, and the fixture parses back to it.
    #[test]
    fn the_paper_key_matches_its_golden_fixture() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/paper-key-v1/paper-key.txt"
        );
        let mut bytes = [0u8; 32];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(37).wrapping_add(11);
        }
        let k = MasterKey::from_bytes_for_fixtures(bytes, 1);
        let store = *b"coffer-fixture!!";
        let paper = k.paper_key(&store);
        if std::env::var_os("COFFER_REGENERATE_FIXTURES").is_some() {
            std::fs::write(path, paper.as_bytes()).unwrap();
        }
        let fixture = std::fs::read_to_string(path).unwrap();
        assert_eq!(*paper, fixture);
        let (s, back) = parse_paper_key(&fixture).unwrap();
        assert_eq!(s, store);
        assert_eq!(*back.secret, bytes);
    }

    proptest::proptest! {
        /// Any text: an error, never a panic.
        #[test]
        fn parsing_any_text_as_a_paper_key_never_panics(s in ".{0,400}") {
            let _ = parse_paper_key(&s);
            let _ = parse_paper_key(&format!("COFFER PAPER KEY v1\n{s}"));
        }
    }

    /// The data key object format (docs/formats/store.md) is frozen: the
    /// committed object unwraps under the fixture master key to the
    /// recorded key, and derives the recorded container key.
    #[test]
    fn the_data_key_object_matches_its_golden_fixture() {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/datakey-v1"
        );
        let master = MasterKey::from_bytes_for_fixtures([42; 32], 1);
        let store = *b"coffer-fixture!!";
        let cid = ContainerId([3; 16]);
        let sample = |k: &DataKey| {
            hex::encode(
                k.container_key(&cid)
                    .encrypt(0, b"aad", b"fixture")
                    .unwrap(),
            )
        };
        if std::env::var_os("COFFER_REGENERATE_FIXTURES").is_some() {
            let k = DataKey::generate(2, 1_795_392_000_000).unwrap();
            std::fs::write(format!("{dir}/00000002"), k.wrap(&master, &store).unwrap()).unwrap();
            std::fs::write(
                format!("{dir}/expected.txt"),
                format!("{}\n{}\n", k.key_id(), sample(&k)),
            )
            .unwrap();
        }
        let obj = std::fs::read(format!("{dir}/00000002")).unwrap();
        let expected = std::fs::read_to_string(format!("{dir}/expected.txt")).unwrap();
        let mut lines = expected.lines();
        let k = DataKey::unwrap(&obj, &master, &store).unwrap();
        assert_eq!((k.generation(), k.created_ms()), (2, 1_795_392_000_000));
        assert_eq!(Some(k.key_id().as_str()), lines.next());
        assert_eq!(Some(sample(&k).as_str()), lines.next());
    }
}
