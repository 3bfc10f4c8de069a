//! Signed update bundles (`docs/formats/update.md`).
//!
//! A bundle is one file: a magic number, a JSON manifest (product,
//! version, the items it carries with their sizes and BLAKE3 hashes), an
//! Ed25519 signature over everything before it, then the items' bytes in
//! the manifest's order. The signature covers the manifest, the manifest
//! covers every byte of the payload through its hashes, so a bundle is
//! checked before a single payload byte is used: an unsigned, tampered,
//! truncated or foreign bundle, or one that is not newer than what is
//! installed, is refused with the reason.
//!
//! [`open`] reads and checks the header (bounded: the manifest may not
//! exceed [`MAX_MANIFEST`]); [`Opened::install`] streams each item into
//! the sink the caller names for it (the inactive root slot, files on the
//! EFI system partition), hashing as it goes, and fails, saying which
//! item, if any byte differs. Nothing here switches the boot: that is the
//! caller's last step, after every item verified ([`crate::slots`]).

use std::io::{Read, Write};

use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use serde::{Deserialize, Serialize};

/// `blake3("coffer update bundle v1")[..8]`. Do not modify: a new format
/// version gets a new string.
pub const MAGIC_V1: [u8; 8] = [0x94, 0x43, 0x28, 0x1b, 0x06, 0xda, 0xbf, 0x0a];

/// The format version this code writes and reads.
pub const FORMAT: u32 = 1;

/// The product bundles are for.
pub const PRODUCT: &str = "coffer-appliance";

/// The largest manifest read (a bundle claiming more is refused before
/// anything is allocated).
pub const MAX_MANIFEST: u32 = 64 * 1024;

/// Length of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;

/// What can go wrong with a bundle.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing failed.
    #[error("{what}: {error}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        error: std::io::Error,
    },
    /// Not a bundle, or a damaged one.
    #[error("not a valid update bundle: {0}")]
    Malformed(String),
    /// The signature does not verify under any trusted key.
    #[error(
        "the bundle's signature does not verify{0}: it was not signed by a trusted key, or it was changed after signing; nothing was installed"
    )]
    BadSignature(String),
    /// A signed bundle that may not be installed here.
    #[error("the bundle is refused: {0}")]
    Refused(String),
    /// An item's bytes differ from the signed manifest.
    #[error(
        "item '{item}' of the bundle is damaged: {reason}; the slot it was written to is not bootable and nothing was switched"
    )]
    Damaged {
        /// The item.
        item: String,
        /// How it differs.
        reason: String,
    },
    /// A signing key could not be read or used.
    #[error("signing key: {0}")]
    Key(String),
}

/// A result of this module.
pub type Result<T> = std::result::Result<T, Error>;

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |error| Error::Io { what, error }
}

/// A version `MAJOR.MINOR.PATCH`, compared field by field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u64, pub u64, pub u64);

impl std::str::FromStr for Version {
    type Err = Error;
    fn from_str(s: &str) -> Result<Version> {
        let bad = || Error::Malformed(format!("'{s}' is not a version (MAJOR.MINOR.PATCH)"));
        let mut it = s.trim().split('.');
        let mut next = || -> Result<u64> {
            let p = it.next().ok_or_else(bad)?;
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) || p.len() > 9 {
                return Err(bad());
            }
            p.parse().map_err(|_| bad())
        };
        let v = Version(next()?, next()?, next()?);
        if it.next().is_some() {
            return Err(bad());
        }
        Ok(v)
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// One item a bundle carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Item {
    /// Its name: `rootfs` (an ext4 image for the root slot), `vmlinuz`,
    /// `initrd.img` (for the slot's boot entry).
    pub name: String,
    /// Bytes.
    pub size: u64,
    /// BLAKE3 of the bytes, hex.
    pub blake3: String,
}

/// The signed manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: u32,
    /// [`PRODUCT`].
    pub product: String,
    /// The version the bundle installs.
    pub version: String,
    /// When it was made (RFC 3339, UTC), for the record.
    pub created: String,
    /// The signing key's id ([`key_id`]), so a refusal can name it.
    pub key: String,
    /// The items, in the order their bytes follow.
    pub items: Vec<Item>,
}

/// A public key's id: the first 16 hex digits of BLAKE3 of its 32 bytes.
pub fn key_id(public: &[u8]) -> String {
    hex::encode(&blake3::hash(public).as_bytes()[..8])
}

/// A signing key (PKCS#8 v2, as [`generate_key`] writes it); the bytes are
/// zeroized when dropped.
pub struct SigningKey {
    pair: Ed25519KeyPair,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({})", key_id(self.public()))
    }
}

impl SigningKey {
    /// Reads a key from its PKCS#8 document.
    pub fn from_pkcs8(doc: &[u8]) -> Result<SigningKey> {
        Ed25519KeyPair::from_pkcs8(doc)
            .map(|pair| SigningKey { pair })
            .map_err(|e| Error::Key(format!("not an Ed25519 PKCS#8 key: {e}")))
    }
    /// The public half (32 bytes).
    pub fn public(&self) -> &[u8] {
        self.pair.public_key().as_ref()
    }
}

/// A new signing key as a PKCS#8 document (keep it secret, offline).
pub fn generate_key() -> Result<zeroize::Zeroizing<Vec<u8>>> {
    let rng = ring::rand::SystemRandom::new();
    let doc = Ed25519KeyPair::generate_pkcs8(&rng)
        .map_err(|e| Error::Key(format!("generating a key failed: {e}")))?;
    Ok(zeroize::Zeroizing::new(doc.as_ref().to_vec()))
}

/// Parses a public key file: 64 hex digits (whitespace around is ignored).
pub fn parse_public(text: &str) -> Result<[u8; 32]> {
    let v =
        hex::decode(text.trim()).map_err(|_| Error::Key("a public key is 64 hex digits".into()))?;
    v.try_into()
        .map_err(|_| Error::Key("a public key is 64 hex digits".into()))
}

/// An item to put in a bundle: its name and a reader of its bytes.
pub struct Source<'a> {
    /// The item's name.
    pub name: String,
    /// Its bytes.
    pub reader: Box<dyn Read + 'a>,
}

/// [`write`] with each item read from a file (`(name, path)`).
pub fn write_files(
    out: &mut dyn Write,
    version: Version,
    created: &str,
    key: &SigningKey,
    items: &[(String, std::path::PathBuf)],
) -> Result<Manifest> {
    write(out, version, created, key, &mut || {
        items
            .iter()
            .map(|(n, p)| {
                let f = std::fs::File::open(p).map_err(io(format!("open '{}'", p.display())))?;
                Ok(Source {
                    name: n.clone(),
                    reader: Box::new(std::io::BufReader::new(f)),
                })
            })
            .collect()
    })
}

/// Writes a bundle of `items` for `version`, signed with `key`, to `out`.
/// Each item is read twice (hash, then copy), so `items` is a function
/// that opens them afresh.
pub fn write(
    out: &mut dyn Write,
    version: Version,
    created: &str,
    key: &SigningKey,
    items: &mut dyn FnMut() -> Result<Vec<Source<'static>>>,
) -> Result<Manifest> {
    let mut listed = Vec::new();
    for mut s in items()? {
        let mut h = blake3::Hasher::new();
        let size =
            std::io::copy(&mut s.reader, &mut h).map_err(io(format!("reading {}", s.name)))?;
        listed.push(Item {
            name: s.name,
            size,
            blake3: h.finalize().to_hex().to_string(),
        });
    }
    let manifest = Manifest {
        format: FORMAT,
        product: PRODUCT.into(),
        version: version.to_string(),
        created: created.into(),
        key: key_id(key.public()),
        items: listed,
    };
    let json = serde_json::to_vec(&manifest).map_err(|e| Error::Malformed(e.to_string()))?;
    let len = u32::try_from(json.len())
        .ok()
        .filter(|l| *l <= MAX_MANIFEST)
        .ok_or_else(|| Error::Malformed("the manifest is too long".into()))?;
    let mut head = Vec::with_capacity(12 + json.len());
    head.extend_from_slice(&MAGIC_V1);
    head.extend_from_slice(&len.to_le_bytes());
    head.extend_from_slice(&json);
    let sig = key.pair.sign(&head);
    out.write_all(&head).map_err(io("writing the bundle"))?;
    out.write_all(sig.as_ref())
        .map_err(io("writing the bundle"))?;
    for (mut s, item) in items()?.into_iter().zip(&manifest.items) {
        let mut h = blake3::Hasher::new();
        let mut tee = Tee {
            out: &mut *out,
            h: &mut h,
        };
        let n =
            std::io::copy(&mut s.reader, &mut tee).map_err(io(format!("copying {}", s.name)))?;
        if n != item.size || h.finalize().to_hex().as_str() != item.blake3 {
            return Err(Error::Damaged {
                item: item.name.clone(),
                reason: "it changed while the bundle was written".into(),
            });
        }
    }
    out.flush().map_err(io("writing the bundle"))?;
    Ok(manifest)
}

struct Tee<'a> {
    out: &'a mut dyn Write,
    h: &'a mut blake3::Hasher,
}

impl Write for Tee<'_> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let n = self.out.write(b)?;
        self.h.update(&b[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// A bundle whose header verified: its manifest, and the reader
/// positioned at the first item.
pub struct Opened<R> {
    /// The verified manifest.
    pub manifest: Manifest,
    /// Its version.
    pub version: Version,
    reader: R,
}

impl<R> std::fmt::Debug for Opened<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opened")
            .field("manifest", &self.manifest)
            .finish_non_exhaustive()
    }
}

fn read_exact(r: &mut dyn Read, buf: &mut [u8], what: &str) -> Result<()> {
    r.read_exact(buf).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => {
            Error::Malformed(format!("truncated: it ends inside the {what}"))
        }
        _ => Error::Io {
            what: format!("reading the bundle's {what}"),
            error: e,
        },
    })
}

/// Reads and checks a bundle's header: the magic, the manifest, the
/// signature under one of `trusted` (public keys), the product and the
/// format; and that its version is newer than `installed`.
pub fn open<R: Read>(mut r: R, trusted: &[[u8; 32]], installed: Version) -> Result<Opened<R>> {
    let mut head = vec![0u8; 12];
    read_exact(&mut r, &mut head, "header")?;
    if head[..8] != MAGIC_V1 {
        return Err(Error::Malformed(
            "no update bundle magic at its start".into(),
        ));
    }
    let mut l = [0u8; 4];
    l.copy_from_slice(&head[8..12]);
    let len = u32::from_le_bytes(l);
    if len == 0 || len > MAX_MANIFEST {
        return Err(Error::Malformed(format!(
            "a manifest of {len} bytes (at most {MAX_MANIFEST})"
        )));
    }
    head.resize(12 + len as usize, 0);
    read_exact(&mut r, &mut head[12..], "manifest")?;
    let mut sig = [0u8; SIGNATURE_LEN];
    read_exact(&mut r, &mut sig, "signature")?;
    // The signature first: nothing of an unverified manifest is believed.
    let claimed: Option<String> = serde_json::from_slice::<serde_json::Value>(&head[12..])
        .ok()
        .and_then(|v| v.get("key").and_then(|k| k.as_str()).map(str::to_string));
    if trusted.is_empty() {
        return Err(Error::BadSignature(
            " (this appliance trusts no update key)".into(),
        ));
    }
    if !trusted.iter().any(|k| {
        UnparsedPublicKey::new(&ED25519, k)
            .verify(&head, &sig)
            .is_ok()
    }) {
        let known: Vec<String> = trusted.iter().map(|k| key_id(k)).collect();
        return Err(Error::BadSignature(match claimed {
            Some(c) if !known.contains(&c) => format!(
                " (it names key {c}; this appliance trusts {})",
                known.join(", ")
            ),
            _ => String::new(),
        }));
    }
    let manifest: Manifest = serde_json::from_slice(&head[12..])
        .map_err(|e| Error::Malformed(format!("the signed manifest does not parse: {e}")))?;
    if manifest.format != FORMAT {
        return Err(Error::Refused(format!(
            "format {} (this appliance reads format {FORMAT})",
            manifest.format
        )));
    }
    if manifest.product != PRODUCT {
        return Err(Error::Refused(format!(
            "it is for '{}', not '{PRODUCT}'",
            manifest.product
        )));
    }
    let version: Version = manifest.version.parse()?;
    if version <= installed {
        return Err(Error::Refused(format!(
            "it installs version {version}, and {installed} is installed: a bundle must be newer (no downgrade, no reinstall)"
        )));
    }
    let mut names = std::collections::BTreeSet::new();
    for i in &manifest.items {
        if !names.insert(i.name.as_str()) {
            return Err(Error::Malformed(format!(
                "item '{}' is listed twice",
                i.name
            )));
        }
        if i.blake3.len() != 64 || hex::decode(&i.blake3).is_err() {
            return Err(Error::Malformed(format!(
                "item '{}' has no valid hash",
                i.name
            )));
        }
    }
    Ok(Opened {
        manifest,
        version,
        reader: r,
    })
}

impl<R: Read> Opened<R> {
    /// The item named `name`, if the bundle carries it.
    pub fn item(&self, name: &str) -> Option<&Item> {
        self.manifest.items.iter().find(|i| i.name == name)
    }

    /// Streams every item into the writer `sink` gives for it (in the
    /// manifest's order), hashing as it goes; fails on the first item
    /// whose bytes differ from the manifest, and if anything follows the
    /// last item. `sink` may refuse an item (too large for its slot, not
    /// wanted) with an error before a byte is written.
    pub fn install(
        mut self,
        sink: &mut dyn FnMut(&Item) -> Result<Box<dyn Write + '_>>,
    ) -> Result<Manifest> {
        let mut buf = vec![0u8; 1 << 20];
        for item in self.manifest.items.clone() {
            let mut out = sink(&item)?;
            let mut h = blake3::Hasher::new();
            let mut left = item.size;
            while left > 0 {
                let want = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
                let n = self
                    .reader
                    .read(&mut buf[..want])
                    .map_err(io(format!("reading item '{}'", item.name)))?;
                if n == 0 {
                    return Err(Error::Damaged {
                        item: item.name.clone(),
                        reason: format!("the bundle ends {left} bytes before its end (truncated)"),
                    });
                }
                h.update(&buf[..n]);
                out.write_all(&buf[..n])
                    .map_err(io(format!("writing item '{}'", item.name)))?;
                left -= n as u64;
            }
            out.flush()
                .map_err(io(format!("writing item '{}'", item.name)))?;
            drop(out);
            if h.finalize().to_hex().as_str() != item.blake3 {
                return Err(Error::Damaged {
                    item: item.name.clone(),
                    reason: "its BLAKE3 differs from the signed manifest's".into(),
                });
            }
        }
        let mut extra = [0u8; 1];
        match self.reader.read(&mut extra) {
            Ok(0) => Ok(self.manifest),
            Ok(_) => Err(Error::Malformed("bytes follow the last item".into())),
            Err(e) => Err(Error::Io {
                what: "reading the bundle's end".into(),
                error: e,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn the_magic_is_blake3_of_its_versioned_string() {
        assert_eq!(
            blake3::hash(b"coffer update bundle v1").as_bytes()[..8],
            MAGIC_V1
        );
    }

    #[test]
    fn versions_parse_and_order_field_by_field() {
        let v = |s: &str| s.parse::<Version>().unwrap();
        assert!(v("0.10.0") > v("0.9.9"));
        assert!(v("1.0.0") > v("0.99.99"));
        assert_eq!(v("2.3.4").to_string(), "2.3.4");
        for bad in [
            "", "1", "1.2", "1.2.3.4", "1.x.3", "-1.2.3", "1..3", "1.2.+3",
        ] {
            assert!(bad.parse::<Version>().is_err(), "{bad}");
        }
    }
}
