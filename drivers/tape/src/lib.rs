//! Tape drives and media changers for Coffer.
//!
//! Two traits, one per device class:
//!
//! - [`TapeDrive`]: load and unload, rewind, read and write fixed-size
//!   blocks, filemarks, space and locate, position, status (TapeAlert flags,
//!   early warning, WORM), and LTO hardware encryption.
//! - [`MediaChanger`]: the library's robot: an inventory of drives, storage
//!   slots and import/export (mail) slots with barcodes, and moves between
//!   them.
//!
//! Two backends implement both:
//!
//! - [`linux`]: real hardware over the SCSI generic driver's `SG_IO` ioctl,
//!   with the command (CDB) builders and response/sense parsers in [`scsi`]
//!   and device discovery from sysfs in [`discover`];
//! - [`virtual_lib`]: a file-backed virtual tape library (cartridges are
//!   files, the library state a JSON file replaced atomically and locked),
//!   which is what the appliance runs on wherever no tape hardware exists.
//!
//! [`open_library`] is the one factory that picks a backend from a
//! [`LibraryConfig`]; nothing above this crate names a concrete backend.
//!
//! Conditions callers act on are [`Error`] variants: end of medium, early
//! warning, blank check, sense data (key/ASC/ASCQ), not ready, write
//! protected (including a WORM cartridge asked to overwrite).
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod discover;
pub mod linux;
pub mod scsi;
pub mod virtual_lib;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use virtual_lib::{CartridgeSpec, VirtualLibrary, VtlOptions};

/// Errors of the tape layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The drive is past the early-warning point: the block or filemark
    /// *was* written, but the medium is nearly full. Writers finish what
    /// they must (a catalog) and move to the next cartridge.
    #[error("{device}: early warning, end of medium is near")]
    EarlyWarning {
        /// The drive.
        device: String,
    },
    /// Physical end of medium (or partition): the block was not written.
    #[error("{device}: end of medium reached, nothing more fits on this cartridge")]
    EndOfMedium {
        /// The drive.
        device: String,
    },
    /// A read found no recorded data (blank medium or past end of data).
    #[error("{device}: blank check, no data recorded at this position")]
    BlankCheck {
        /// The drive.
        device: String,
    },
    /// No cartridge, or the drive is becoming ready.
    #[error("{device}: not ready: {reason}")]
    NotReady {
        /// The drive.
        device: String,
        /// What the device reported.
        reason: String,
    },
    /// The cartridge refuses the write: write-protect tab, or WORM medium
    /// that would be overwritten.
    #[error("{device}: write protected: {reason}")]
    WriteProtected {
        /// The drive.
        device: String,
        /// Why (tab set, WORM overwrite attempted).
        reason: String,
    },
    /// Any other CHECK CONDITION, with its decoded sense data.
    #[error("{device}: {op} failed: {sense}")]
    Sense {
        /// The device.
        device: String,
        /// The command.
        op: &'static str,
        /// The sense data.
        sense: scsi::Sense,
    },
    /// A response that does not parse.
    #[error("{device}: {what}: malformed response: {reason}")]
    Malformed {
        /// The device.
        device: String,
        /// What was parsed.
        what: &'static str,
        /// Why it was rejected.
        reason: String,
    },
    /// A changer request that makes no sense for the library's state.
    #[error("{device}: {reason}")]
    Changer {
        /// The library.
        device: String,
        /// What is wrong (slot empty, destination full, no such element).
        reason: String,
    },
    /// A cartridge with this barcode is not in the library.
    #[error("cartridge {barcode} is not in library {device}")]
    CartridgeMissing {
        /// The library.
        device: String,
        /// The barcode asked for.
        barcode: String,
    },
    /// Another process holds the device.
    #[error("{device} is in use by another process")]
    Busy {
        /// The device or library.
        device: String,
    },
    /// A read returned a block larger than the caller's buffer.
    #[error("{device}: block of {len} bytes does not fit a {buf}-byte buffer")]
    BlockTooLarge {
        /// The drive.
        device: String,
        /// The block's length.
        len: usize,
        /// The buffer's length.
        buf: usize,
    },
    /// The operation is not supported by this device or backend.
    #[error("{device}: {op} is not supported: {reason}")]
    Unsupported {
        /// The device.
        device: String,
        /// The operation.
        op: &'static str,
        /// Why.
        reason: String,
    },
    /// An operating-system call failed.
    #[error("{op} '{path}' failed: {error}")]
    Io {
        /// The operation.
        op: &'static str,
        /// The file or device.
        path: String,
        /// The OS error.
        error: std::io::Error,
    },
    /// Library state or configuration that does not parse.
    #[error("{what} is invalid: {reason}")]
    Invalid {
        /// What was read.
        what: String,
        /// Why it was rejected.
        reason: String,
    },
}

impl Error {
    pub(crate) fn io(
        op: &'static str,
        path: impl std::fmt::Display,
        error: std::io::Error,
    ) -> Self {
        Error::Io {
            op,
            path: path.to_string(),
            error,
        }
    }
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// What a successful write reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// Written, with room to spare.
    Ok,
    /// Written, but past the early-warning point: finish up and change
    /// cartridges.
    EarlyWarning,
}

/// What a read found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadOutcome {
    /// A block of this many bytes.
    Block(usize),
    /// A filemark (the drive is now positioned after it).
    Filemark,
    /// End of recorded data (blank check).
    EndOfData,
}

/// What [`TapeDrive::space`] moves over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpaceOver {
    /// Logical blocks (negative: backwards).
    Blocks(i64),
    /// Filemarks (negative: backwards, ending before the filemark).
    Filemarks(i64),
    /// To end of recorded data.
    EndOfData,
}

/// A drive's logical position (READ POSITION, long form).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Position {
    /// Logical object (block or filemark) number from beginning of partition.
    pub block: u64,
    /// Filemarks passed from beginning of partition.
    pub file: u64,
    /// Partition number.
    pub partition: u32,
    /// At beginning of partition.
    pub bop: bool,
    /// Past the early-warning point (end of partition is near).
    pub eop: bool,
}

/// A drive's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriveStatus {
    /// The drive's name (virtual) or device path (Linux).
    pub name: String,
    /// Vendor and product (INQUIRY).
    pub product: String,
    /// Drive serial number, where known.
    pub serial: Option<String>,
    /// A cartridge is loaded and ready.
    pub ready: bool,
    /// The loaded cartridge's barcode, where known.
    pub barcode: Option<String>,
    /// The cartridge is write protected (tab).
    pub write_protected: bool,
    /// The cartridge is WORM.
    pub worm: bool,
    /// The cartridge is a cleaning cartridge.
    pub cleaning: bool,
    /// Block size: 0 = variable.
    pub block_size: u32,
    /// Drive compression on.
    pub compression: bool,
    /// Drive (hardware) encryption on.
    pub encryption: bool,
    /// Current position, when a cartridge is loaded.
    pub position: Option<Position>,
    /// Native capacity of the loaded cartridge in bytes, where known.
    pub capacity: Option<u64>,
    /// Bytes remaining before the early-warning point, where known.
    pub remaining: Option<u64>,
    /// TapeAlert flags set (1..=64), with their names.
    pub alerts: Vec<TapeAlert>,
}

/// One TapeAlert flag (LOG SENSE page 0x2E; SSC-4 Annex, TapeAlert flags).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TapeAlert {
    /// Flag number, 1..=64.
    pub flag: u8,
    /// Its standard name.
    pub name: String,
    /// `critical`, `warning` or `information`.
    pub severity: String,
}

/// Cartridge memory (MAM) attributes read with READ ATTRIBUTE.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediumAttributes {
    /// Medium manufacturer (attribute 0x0400).
    pub manufacturer: Option<String>,
    /// Medium serial number (0x0401).
    pub serial: Option<String>,
    /// Remaining capacity in the partition, MiB (0x0000).
    pub remaining_mib: Option<u64>,
    /// Maximum capacity in the partition, MiB (0x0001).
    pub capacity_mib: Option<u64>,
    /// Load count (0x0003).
    pub load_count: Option<u64>,
    /// Barcode recorded in cartridge memory (0x0806).
    pub barcode: Option<String>,
}

/// A 256-bit key for LTO drive (hardware) AES-256-GCM encryption.
/// Zeroized on drop, never logged.
#[derive(Clone, zeroize::ZeroizeOnDrop)]
pub struct DriveKey {
    key: [u8; 32],
    /// Key descriptor (key-associated data) the drive records on tape, so
    /// a reader can tell which key it needs; not secret.
    pub kad: Vec<u8>,
}

impl DriveKey {
    /// Wraps key bytes.
    pub fn new(key: [u8; 32], kad: Vec<u8>) -> DriveKey {
        DriveKey { key, kad }
    }

    /// The key bytes, for the command that hands them to the drive.
    pub fn bytes(&self) -> &[u8; 32] {
        &self.key
    }
}

impl std::fmt::Debug for DriveKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DriveKey")
            .field("kad", &self.kad)
            .finish_non_exhaustive()
    }
}

/// A tape drive.
///
/// Blocks are written and read whole: one call, one logical block. All
/// positions are logical object numbers as READ POSITION reports them
/// (blocks and filemarks both count).
pub trait TapeDrive: Send {
    /// The drive's name, for messages.
    fn name(&self) -> &str;
    /// Current state; cheap enough to poll.
    fn status(&mut self) -> Result<DriveStatus>;
    /// Loads (threads) the cartridge in the drive and rewinds it.
    fn load(&mut self) -> Result<()>;
    /// Rewinds and unloads the cartridge so the changer can take it.
    fn unload(&mut self) -> Result<()>;
    /// Rewinds to the beginning of the partition.
    fn rewind(&mut self) -> Result<()>;
    /// Reads the next block into `buf`.
    fn read_block(&mut self, buf: &mut [u8]) -> Result<ReadOutcome>;
    /// Writes one block at the current position; everything after it on the
    /// medium is gone (tape semantics). Returns [`Written::EarlyWarning`] once
    /// past the early-warning point, [`Error::EndOfMedium`] when it did not fit.
    fn write_block(&mut self, data: &[u8]) -> Result<Written>;
    /// Writes `count` filemarks and flushes the drive's buffer to the medium.
    fn write_filemarks(&mut self, count: u32) -> Result<Written>;
    /// Spaces over blocks, filemarks or to end of data.
    fn space(&mut self, over: SpaceOver) -> Result<()>;
    /// Moves to a logical object number.
    fn locate(&mut self, block: u64) -> Result<()>;
    /// Where the drive is.
    fn position(&mut self) -> Result<Position>;
    /// Turns drive (hardware) encryption on with a key, or off with `None`.
    fn set_encryption(&mut self, key: Option<&DriveKey>) -> Result<()>;
    /// Cartridge memory attributes.
    fn medium_attributes(&mut self) -> Result<MediumAttributes>;
}

/// The kind of a changer element (SMC-3, element type codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ElementKind {
    /// The robot's picker (medium transport element, type 1).
    Transport,
    /// A storage slot (type 2).
    Storage,
    /// An import/export (mail) slot (type 3).
    ImportExport,
    /// A drive (data transfer element, type 4).
    Drive,
}

impl ElementKind {
    /// The word operators use.
    pub fn label(self) -> &'static str {
        match self {
            ElementKind::Transport => "picker",
            ElementKind::Storage => "slot",
            ElementKind::ImportExport => "mail slot",
            ElementKind::Drive => "drive",
        }
    }
}

/// One element of a changer's inventory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Element {
    /// Its kind.
    pub kind: ElementKind,
    /// SCSI element address.
    pub address: u16,
    /// Index among elements of its kind, from 0 (what operators number).
    pub index: u16,
    /// Holds a cartridge.
    pub full: bool,
    /// The cartridge's barcode (primary volume tag), when labelled.
    pub barcode: Option<String>,
    /// Where the cartridge came from, when the changer knows.
    pub source: Option<u16>,
    /// An exception the changer reports (ASC/ASCQ), if any.
    pub exception: Option<(u8, u8)>,
}

/// A changer's elements.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    /// Drives, in order.
    pub drives: Vec<Element>,
    /// Storage slots, in order.
    pub slots: Vec<Element>,
    /// Import/export slots, in order.
    pub ie_slots: Vec<Element>,
    /// Pickers.
    pub transports: Vec<Element>,
}

impl Inventory {
    /// Every element.
    pub fn all(&self) -> impl Iterator<Item = &Element> {
        self.drives
            .iter()
            .chain(&self.slots)
            .chain(&self.ie_slots)
            .chain(&self.transports)
    }

    /// The element holding a barcode.
    pub fn find(&self, barcode: &str) -> Option<&Element> {
        self.all().find(|e| e.barcode.as_deref() == Some(barcode))
    }

    /// The element at an address.
    pub fn at(&self, address: u16) -> Option<&Element> {
        self.all().find(|e| e.address == address)
    }
}

fn changer_err(device: &str, reason: impl Into<String>) -> Error {
    Error::Changer {
        device: device.to_string(),
        reason: reason.into(),
    }
}

/// A media changer (library robot).
pub trait MediaChanger: Send {
    /// The changer's name, for messages.
    fn name(&self) -> &str;
    /// Current inventory with barcodes.
    fn inventory(&mut self) -> Result<Inventory>;
    /// Makes the changer re-scan its elements (INITIALIZE ELEMENT STATUS).
    fn rescan(&mut self) -> Result<()>;
    /// Moves a cartridge between two element addresses.
    fn move_medium(&mut self, from: u16, to: u16) -> Result<()>;

    /// Loads the cartridge with `barcode` into drive `drive` (index),
    /// first returning whatever is in that drive to a free storage slot.
    fn load_barcode(&mut self, barcode: &str, drive: u16) -> Result<()> {
        let inv = self.inventory()?;
        let d = inv
            .drives
            .get(usize::from(drive))
            .ok_or_else(|| changer_err(self.name(), format!("no drive {drive}")))?;
        if d.barcode.as_deref() == Some(barcode) {
            return Ok(());
        }
        let src = inv.find(barcode).ok_or_else(|| Error::CartridgeMissing {
            device: self.name().to_string(),
            barcode: barcode.to_string(),
        })?;
        let (src_addr, drive_addr) = (src.address, d.address);
        if src.kind == ElementKind::Drive {
            return Err(changer_err(
                self.name(),
                format!("cartridge {barcode} is in another drive; unload it first"),
            ));
        }
        if d.full {
            self.unload_drive(drive)?;
        }
        self.move_medium(src_addr, drive_addr)
    }

    /// Returns the cartridge in drive `drive` (index) to its source slot, or
    /// to the first free storage slot.
    fn unload_drive(&mut self, drive: u16) -> Result<()> {
        let inv = self.inventory()?;
        let d = inv
            .drives
            .get(usize::from(drive))
            .ok_or_else(|| changer_err(self.name(), format!("no drive {drive}")))?;
        if !d.full {
            return Ok(());
        }
        let to = d
            .source
            .and_then(|s| inv.slots.iter().find(|e| e.address == s && !e.full))
            .or_else(|| inv.slots.iter().find(|e| !e.full))
            .ok_or_else(|| changer_err(self.name(), "no free storage slot to unload into"))?;
        self.move_medium(d.address, to.address)
    }

    /// Moves a cartridge from an import/export slot to the first free storage
    /// slot; returns that slot's index.
    fn import(&mut self, ie_slot: u16) -> Result<u16> {
        let inv = self.inventory()?;
        let from = inv
            .ie_slots
            .get(usize::from(ie_slot))
            .ok_or_else(|| changer_err(self.name(), format!("no mail slot {ie_slot}")))?;
        if !from.full {
            return Err(changer_err(
                self.name(),
                format!("mail slot {ie_slot} is empty"),
            ));
        }
        let to = inv
            .slots
            .iter()
            .find(|e| !e.full)
            .ok_or_else(|| changer_err(self.name(), "no free storage slot to import into"))?;
        let (f, t, idx) = (from.address, to.address, to.index);
        self.move_medium(f, t)?;
        Ok(idx)
    }

    /// Moves the cartridge with `barcode` to the first free import/export
    /// slot, for the operator to take out; returns that slot's index.
    fn export(&mut self, barcode: &str) -> Result<u16> {
        let inv = self.inventory()?;
        let from = inv.find(barcode).ok_or_else(|| Error::CartridgeMissing {
            device: self.name().to_string(),
            barcode: barcode.to_string(),
        })?;
        if from.kind == ElementKind::Drive {
            return Err(changer_err(
                self.name(),
                format!("cartridge {barcode} is in a drive; unload it first"),
            ));
        }
        let to =
            inv.ie_slots.iter().find(|e| !e.full).ok_or_else(|| {
                changer_err(self.name(), "every mail slot is full; empty one first")
            })?;
        let (f, t, idx) = (from.address, to.address, to.index);
        self.move_medium(f, t)?;
        Ok(idx)
    }
}

/// Which backend a library uses, from configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "backend", rename_all = "kebab-case")]
pub enum LibraryConfig {
    /// A virtual tape library in a directory.
    Virtual {
        /// The library directory.
        path: PathBuf,
    },
    /// A SCSI library: its changer's and drives' SCSI generic devices.
    Linux {
        /// The changer (`/dev/sgN`).
        changer: PathBuf,
        /// The drives (`/dev/sgN`), in the changer's drive order.
        drives: Vec<PathBuf>,
    },
}

/// An opened library: its changer and a way to open its drives.
pub trait Library: Send {
    /// The library's changer.
    fn changer(&mut self) -> Result<Box<dyn MediaChanger>>;
    /// Opens drive `index` (exclusively).
    fn drive(&mut self, index: u16) -> Result<Box<dyn TapeDrive>>;
    /// Number of drives.
    fn drive_count(&self) -> u16;
}

/// Opens a library from configuration: the one place a backend is chosen.
pub fn open_library(config: &LibraryConfig) -> Result<Box<dyn Library>> {
    match config {
        LibraryConfig::Virtual { path } => Ok(Box::new(VirtualLibrary::open(path)?)),
        LibraryConfig::Linux { changer, drives } => Ok(Box::new(linux::LinuxLibrary::new(
            changer.clone(),
            drives.clone(),
        ))),
    }
}
