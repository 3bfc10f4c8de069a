//! Labels and tape catalogs: small JSON documents in their own tape files.
//!
//! The media label (file 0) and media-set label (file 1) are plaintext, so
//! any Coffer can tell what a cartridge is before it has a key; the tape
//! catalog (last file) is sealed under the set key like the archives.

use coffer_keys::MediaSetKey;
use coffer_tape::TapeDrive;
use coffer_types::{MediaId, MediaSetId, StoreId};
use serde::{Deserialize, Serialize};

use crate::archive::ObjectPos;
use crate::blocks::{Block, FileReader, FileWriter};
use crate::format::Content;
use crate::{Error, Result};

/// Largest label or catalog a reader accepts.
const MAX_DOC: usize = 1 << 30;

/// The media label: tape file 0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaLabel {
    /// Label format (`coffer-media-label-1`).
    pub format: String,
    /// A new random id each time the cartridge is labelled.
    pub media: MediaId,
    /// The barcode it was labelled with.
    pub barcode: String,
    /// Its media pool.
    pub pool: String,
    /// Labelled at (ms since the epoch, UTC).
    pub labelled_ms: i64,
}

/// Label format string.
pub const MEDIA_LABEL_FORMAT: &str = "coffer-media-label-1";
/// Set label format string.
pub const SET_LABEL_FORMAT: &str = "coffer-media-set-label-1";
/// Tape catalog format string.
pub const CATALOG_FORMAT: &str = "coffer-tape-catalog-1";

/// The media-set label: tape file 1. Everything a recovery needs to open
/// the set with the passphrase alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetLabel {
    /// Label format (`coffer-media-set-label-1`).
    pub format: String,
    /// The set.
    pub set: MediaSetId,
    /// This cartridge's sequence number in the set, from 1.
    pub seq: u32,
    /// The cartridge's media id (binds this label to its media label).
    pub media: MediaId,
    /// Media pool.
    pub pool: String,
    /// The set was created at (ms since the epoch, UTC).
    pub created_ms: i64,
    /// The store the set copies.
    pub store: StoreId,
    /// The store's `config` object, hex.
    pub store_config: String,
    /// The store's key files (`keys/…`, sealed under the passphrase), hex.
    pub store_keys: Vec<(String, String)>,
    /// Fingerprint of the set key; `None` when the set is not encrypted.
    pub key_fingerprint: Option<String>,
    /// The set key wrapped under the store's master key, hex.
    pub wrapped_key: Option<String>,
    /// Block size of the set's tape files.
    pub block_size: u32,
}

/// A cartridge of a set, as a tape catalog lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TapeRef {
    /// Sequence number.
    pub seq: u32,
    /// Barcode.
    pub barcode: String,
    /// Media id.
    pub media: MediaId,
}

/// The tape catalog at the end of a cartridge: what it holds, and which
/// cartridges came before it in the set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TapeCatalog {
    /// Catalog format (`coffer-tape-catalog-1`).
    pub format: String,
    /// The set.
    pub set: MediaSetId,
    /// This cartridge.
    pub tape: TapeRef,
    /// The set's cartridges up to and including this one.
    pub tapes: Vec<TapeRef>,
    /// Every object on this cartridge, in tape order.
    pub objects: Vec<ObjectPos>,
    /// Written at (ms since the epoch, UTC).
    pub written_ms: i64,
    /// The cartridge is full and the write went on to the next cartridge
    /// of the set (absent in catalogs of the first format release: false).
    #[serde(default)]
    pub continues: bool,
}

/// Writes a JSON document as one tape file (with its filemark).
pub fn write_doc<T: Serialize>(
    drive: &mut dyn TapeDrive,
    content: Content,
    doc: &T,
    key: Option<&MediaSetKey>,
    block_size: u32,
) -> Result<crate::blocks::FileSummary> {
    let bytes = serde_json::to_vec(doc).map_err(|e| Error::Format(e.to_string()))?;
    let mut w = FileWriter::begin(drive, content, key, block_size)?;
    w.mark_entry()?;
    w.write(&bytes)?;
    w.finish()
}

/// What reading a document found.
#[derive(Debug)]
pub enum Doc<T> {
    /// The document.
    Found(T),
    /// End of recorded data where the file should start.
    Blank,
}

/// Reads a JSON document tape file at the drive's position.
pub fn read_doc<T: for<'de> Deserialize<'de>>(
    drive: &mut dyn TapeDrive,
    content: Content,
    key: Option<&MediaSetKey>,
) -> Result<Doc<T>> {
    let mut r = FileReader::new(drive, Some(content), key);
    collect_doc(&mut r, content)
}

/// Reads the rest of a JSON document tape file from `r`.
pub fn collect_doc<T: for<'de> Deserialize<'de>>(
    r: &mut FileReader<'_>,
    content: Content,
) -> Result<Doc<T>> {
    let mut bytes = Vec::new();
    let mut first = true;
    loop {
        match r.next_block()? {
            Block::Data(_, d) => bytes.extend_from_slice(d),
            Block::EndOfData if first => return Ok(Doc::Blank),
            Block::EndOfFile if first => {
                return Err(Error::Format(format!(
                    "an empty tape file where the {} should be",
                    content.name()
                )));
            }
            Block::EndOfFile => break,
            Block::EndOfData => {
                return Err(Error::Format(format!(
                    "the {} is cut short (no filemark)",
                    content.name()
                )));
            }
            Block::Damaged(why) => {
                return Err(Error::Format(format!(
                    "the {} is damaged: {why}",
                    content.name()
                )));
            }
            Block::AfterGap(..) => {
                return Err(Error::Format(format!(
                    "the {} is missing blocks",
                    content.name()
                )));
            }
        }
        first = false;
        if bytes.len() > MAX_DOC {
            return Err(Error::Format(format!(
                "the {} is larger than 1 GiB",
                content.name()
            )));
        }
    }
    serde_json::from_slice(&bytes)
        .map(Doc::Found)
        .map_err(|e| Error::Format(format!("the {} does not parse: {e}", content.name())))
}
