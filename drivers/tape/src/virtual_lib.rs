//! A virtual tape library: shipped code, the backend the appliance uses
//! wherever no tape hardware exists.
//!
//! ```text
//! <dir>/library.json            elements and what they hold (replaced atomically)
//! <dir>/lock                    flock held while the state changes
//! <dir>/drive-<n>.lock          flock held by the process driving drive n
//! <dir>/cartridges/<barcode>    one file per cartridge in the library
//! <dir>/outside/<barcode>       cartridges taken out through a mail slot
//! ```
//!
//! A cartridge file is a 64-byte header (magic, flags: WORM, cleaning,
//! write protected; native capacity; early-warning zone) followed by
//! records, each an 8-byte header (`u32` kind: 0 block, 1 filemark; `u32`
//! length) and the block's bytes. End of data is the end of the file:
//! writing anywhere but at end of data truncates what follows, as on a real
//! tape. Positions are record numbers, as a drive's logical object numbers.
//! The byte layout is in `docs/formats/tape.md`, "Virtual cartridge file".
//!
//! Behaviour follows an LTO drive: a write past the early-warning point
//! succeeds and reports [`Written::EarlyWarning`]; a write that does not fit
//! fails with [`Error::EndOfMedium`] and writes nothing; a read at end of
//! data is [`ReadOutcome::EndOfData`]; a WORM cartridge accepts writes only
//! at end of data; a cleaning cartridge is never readable or writable.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::{
    DriveKey, DriveStatus, Element, ElementKind, Error, Inventory, Library, MediaChanger,
    MediumAttributes, Position, ReadOutcome, Result, SpaceOver, TapeDrive, Written,
};

/// `blake3("coffer virtual cartridge v1")[..8]`. Never edited.
pub const CARTRIDGE_MAGIC: [u8; 8] = [0x72, 0x47, 0xb4, 0x7c, 0xd2, 0x59, 0xc5, 0x32];
/// Bytes of a cartridge file's header.
pub const CARTRIDGE_HEADER: u64 = 64;
const RECORD_HEADER: u64 = 8;
const KIND_BLOCK: u32 = 0;
const KIND_FILEMARK: u32 = 1;
const FLAG_WORM: u32 = 1;
const FLAG_CLEANING: u32 = 2;
const FLAG_WRITE_PROTECT: u32 = 4;
/// Largest block the virtual drive accepts (an LTO drive's limit is 8 MiB).
pub const MAX_BLOCK: usize = 8 << 20;

const STATE_FORMAT: &str = "coffer-vtl-1";
const TRANSPORT_ADDR: u16 = 0;
const DRIVE_BASE: u16 = 0x100;
const SLOT_BASE: u16 = 0x1000;
const IE_BASE: u16 = 0x4000;

/// Options for a new virtual library.
#[derive(Debug, Clone)]
pub struct VtlOptions {
    /// Drives.
    pub drives: u16,
    /// Storage slots.
    pub slots: u16,
    /// Import/export (mail) slots.
    pub ie_slots: u16,
    /// Native capacity of each new cartridge, bytes.
    pub capacity: u64,
    /// Size of the early-warning zone before the end of each cartridge.
    pub early_warning: u64,
    /// Data cartridges to put in the first storage slots.
    pub cartridges: u16,
    /// Of those, how many (the last ones) are WORM.
    pub worm: u16,
    /// Cleaning cartridges to put in the slots after the data cartridges.
    pub cleaning: u16,
    /// Barcode prefix: data cartridges are `<prefix><4 digits>L9` (WORM
    /// `…LZ`, the LTO-9 WORM suffix), cleaning cartridges `CLN<3 digits>CU`.
    pub prefix: String,
}

impl Default for VtlOptions {
    fn default() -> Self {
        VtlOptions {
            drives: 2,
            slots: 16,
            ie_slots: 4,
            capacity: 2 << 30,
            early_warning: 128 << 20,
            cartridges: 12,
            worm: 0,
            cleaning: 0,
            prefix: "CF".into(),
        }
    }
}

/// Properties of a new cartridge.
#[derive(Debug, Clone, Copy)]
pub struct CartridgeSpec {
    /// Native capacity, bytes.
    pub capacity: u64,
    /// Early-warning zone, bytes.
    pub early_warning: u64,
    /// Write once, read many.
    pub worm: bool,
    /// A cleaning cartridge.
    pub cleaning: bool,
    /// Write-protect tab set.
    pub write_protected: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct DriveState {
    barcode: Option<String>,
    /// The slot address the cartridge came from.
    source: Option<u16>,
    /// Threaded (loaded) in the drive, as opposed to ejected and waiting for
    /// the picker.
    loaded: bool,
    position: u64,
    encryption: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct State {
    format: String,
    name: String,
    drives: Vec<DriveState>,
    slots: Vec<Option<String>>,
    ie_slots: Vec<Option<String>>,
}

impl State {
    fn holder(&mut self, addr: u16) -> Option<&mut Option<String>> {
        let pick = |base: u16, len: usize| -> Option<usize> {
            let i = usize::from(addr.checked_sub(base)?);
            (i < len).then_some(i)
        };
        if let Some(i) = pick(DRIVE_BASE, self.drives.len()) {
            return Some(&mut self.drives[i].barcode);
        }
        if let Some(i) = pick(SLOT_BASE, self.slots.len()) {
            return Some(&mut self.slots[i]);
        }
        if let Some(i) = pick(IE_BASE, self.ie_slots.len()) {
            return Some(&mut self.ie_slots[i]);
        }
        None
    }

    fn barcodes(&self) -> impl Iterator<Item = &String> {
        self.drives
            .iter()
            .filter_map(|d| d.barcode.as_ref())
            .chain(self.slots.iter().flatten())
            .chain(self.ie_slots.iter().flatten())
    }
}

/// A virtual tape library in a directory.
#[derive(Debug, Clone)]
pub struct VirtualLibrary {
    dir: PathBuf,
    name: String,
    drives: u16,
}

fn count(n: usize) -> u16 {
    u16::try_from(n).unwrap_or(u16::MAX)
}

/// Checks a barcode: 1–16 characters of `A-Z`, `0-9`, `-`, `_` (what a
/// barcode label can carry and a file name can hold safely).
pub fn check_barcode(barcode: &str) -> Result<()> {
    let ok = !barcode.is_empty()
        && barcode.len() <= 16
        && barcode
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid {
            what: format!("barcode {barcode:?}"),
            reason: "use 1-16 characters A-Z, 0-9, '-' or '_'".into(),
        })
    }
}

impl VirtualLibrary {
    /// Creates a library in `dir` (which must be empty or absent), with
    /// cartridges in its first slots.
    pub fn create(dir: &Path, opts: &VtlOptions) -> Result<VirtualLibrary> {
        if opts.drives == 0 || opts.slots == 0 {
            return Err(Error::Invalid {
                what: "virtual library".into(),
                reason: "needs at least one drive and one slot".into(),
            });
        }
        if opts.drives > 0xF00 || opts.slots > 0x3000 || opts.ie_slots > 0x3000 {
            return Err(Error::Invalid {
                what: "virtual library".into(),
                reason: "at most 3840 drives, 12288 slots and 12288 mail slots".into(),
            });
        }
        if u32::from(opts.cartridges) + u32::from(opts.cleaning) > u32::from(opts.slots)
            || opts.worm > opts.cartridges
        {
            return Err(Error::Invalid {
                what: "virtual library".into(),
                reason: format!(
                    "{} data and {} cleaning cartridges do not fit {} slots",
                    opts.cartridges, opts.cleaning, opts.slots
                ),
            });
        }
        if opts.early_warning >= opts.capacity {
            return Err(Error::Invalid {
                what: "virtual library".into(),
                reason: "the early-warning zone must be smaller than the capacity".into(),
            });
        }
        if dir.join("library.json").exists() {
            return Err(Error::Invalid {
                what: dir.display().to_string(),
                reason: "a virtual library already exists here".into(),
            });
        }
        for sub in ["cartridges", "outside"] {
            fs::create_dir_all(dir.join(sub))
                .map_err(|e| Error::io("create", dir.join(sub).display(), e))?;
        }
        let name = format!(
            "vtl:{}",
            dir.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        );
        let mut state = State {
            format: STATE_FORMAT.into(),
            name: name.clone(),
            drives: (0..opts.drives)
                .map(|_| DriveState {
                    barcode: None,
                    source: None,
                    loaded: false,
                    position: 0,
                    encryption: false,
                })
                .collect(),
            slots: vec![None; usize::from(opts.slots)],
            ie_slots: vec![None; usize::from(opts.ie_slots)],
        };
        let lib = VirtualLibrary {
            dir: dir.to_path_buf(),
            name,
            drives: opts.drives,
        };
        for i in 0..opts.cartridges {
            let worm = i >= opts.cartridges - opts.worm;
            let barcode = format!(
                "{}{:04}{}",
                opts.prefix,
                i + 1,
                if worm { "LZ" } else { "L9" }
            );
            check_barcode(&barcode)?;
            lib.new_cartridge_file(
                &lib.dir.join("cartridges").join(&barcode),
                CartridgeSpec {
                    capacity: opts.capacity,
                    early_warning: opts.early_warning,
                    worm,
                    cleaning: false,
                    write_protected: false,
                },
            )?;
            state.slots[usize::from(i)] = Some(barcode);
        }
        for j in 0..opts.cleaning {
            let barcode = format!("CLN{:03}CU", j + 1);
            lib.new_cartridge_file(
                &lib.dir.join("cartridges").join(&barcode),
                CartridgeSpec {
                    capacity: opts.capacity,
                    early_warning: opts.early_warning,
                    worm: false,
                    cleaning: true,
                    write_protected: false,
                },
            )?;
            state.slots[usize::from(opts.cartridges + j)] = Some(barcode);
        }
        lib.save(&state)?;
        Ok(lib)
    }

    /// Opens a library directory.
    pub fn open(dir: &Path) -> Result<VirtualLibrary> {
        let lib = VirtualLibrary {
            dir: dir.to_path_buf(),
            name: String::new(),
            drives: 0,
        };
        let state = lib.load()?;
        Ok(VirtualLibrary {
            name: state.name.clone(),
            drives: count(state.drives.len()),
            ..lib
        })
    }

    /// The library directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn state_path(&self) -> PathBuf {
        self.dir.join("library.json")
    }

    fn cartridge_path(&self, barcode: &str) -> PathBuf {
        self.dir.join("cartridges").join(barcode)
    }

    fn load(&self) -> Result<State> {
        let p = self.state_path();
        let bytes = fs::read(&p).map_err(|e| Error::io("read", p.display(), e))?;
        let state: State = serde_json::from_slice(&bytes).map_err(|e| Error::Invalid {
            what: p.display().to_string(),
            reason: e.to_string(),
        })?;
        if state.format != STATE_FORMAT {
            return Err(Error::Invalid {
                what: p.display().to_string(),
                reason: format!("format {:?}, expected {STATE_FORMAT:?}", state.format),
            });
        }
        if state.drives.len() > 0xF00 || state.slots.len() > 0x3000 || state.ie_slots.len() > 0x3000
        {
            return Err(Error::Invalid {
                what: p.display().to_string(),
                reason: "too many elements".into(),
            });
        }
        Ok(state)
    }

    fn save(&self, state: &State) -> Result<()> {
        let p = self.state_path();
        let tmp = self
            .dir
            .join(format!("library.json.tmp-{}", std::process::id()));
        let bytes = serde_json::to_vec_pretty(state).map_err(|e| Error::Invalid {
            what: "library state".into(),
            reason: e.to_string(),
        })?;
        let mut f = File::create(&tmp).map_err(|e| Error::io("create", tmp.display(), e))?;
        f.write_all(&bytes)
            .and_then(|()| f.sync_all())
            .map_err(|e| Error::io("write", tmp.display(), e))?;
        fs::rename(&tmp, &p).map_err(|e| Error::io("rename", p.display(), e))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io("fsync", self.dir.display(), e))
    }

    /// Runs `f` on the state under the library lock and saves the result.
    fn update<T>(&self, f: impl FnOnce(&mut State) -> Result<T>) -> Result<T> {
        let _lock = self.lock_file("lock", false)?;
        let mut state = self.load()?;
        let out = f(&mut state)?;
        self.save(&state)?;
        Ok(out)
    }

    fn lock_file(&self, name: &str, nonblocking: bool) -> Result<Flock<File>> {
        let p = self.dir.join(name);
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .map_err(|e| Error::io("open", p.display(), e))?;
        let arg = if nonblocking {
            FlockArg::LockExclusiveNonblock
        } else {
            FlockArg::LockExclusive
        };
        Flock::lock(f, arg).map_err(|(_, errno)| {
            if errno == nix::errno::Errno::EWOULDBLOCK {
                Error::Busy {
                    device: format!("{} {name}", self.name),
                }
            } else {
                Error::io("lock", p.display(), errno.into())
            }
        })
    }

    fn new_cartridge_file(&self, path: &Path, spec: CartridgeSpec) -> Result<()> {
        let mut h = [0u8; CARTRIDGE_HEADER as usize];
        h[0..8].copy_from_slice(&CARTRIDGE_MAGIC);
        let flags = (if spec.worm { FLAG_WORM } else { 0 })
            | (if spec.cleaning { FLAG_CLEANING } else { 0 })
            | (if spec.write_protected {
                FLAG_WRITE_PROTECT
            } else {
                0
            });
        h[8..12].copy_from_slice(&flags.to_le_bytes());
        h[16..24].copy_from_slice(&spec.capacity.to_le_bytes());
        h[24..32].copy_from_slice(&spec.early_warning.to_le_bytes());
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| Error::io("create", path.display(), e))?;
        f.write_all(&h)
            .and_then(|()| f.sync_all())
            .map_err(|e| Error::io("write", path.display(), e))
    }

    /// Puts a cartridge into the first free mail slot, as an operator does:
    /// one taken out earlier (from `outside/`), or a new blank one. Returns
    /// the mail slot's index.
    pub fn insert(&self, barcode: &str, spec: Option<CartridgeSpec>) -> Result<u16> {
        check_barcode(barcode)?;
        self.update(|state| {
            if state.barcodes().any(|b| b == barcode) {
                return Err(Error::Changer {
                    device: self.name.clone(),
                    reason: format!("cartridge {barcode} is already in the library"),
                });
            }
            let slot = state
                .ie_slots
                .iter()
                .position(Option::is_none)
                .ok_or_else(|| Error::Changer {
                    device: self.name.clone(),
                    reason: "every mail slot is full".into(),
                })?;
            let outside = self.dir.join("outside").join(barcode);
            let inside = self.cartridge_path(barcode);
            if outside.exists() {
                fs::rename(&outside, &inside)
                    .map_err(|e| Error::io("rename", outside.display(), e))?;
            } else if let Some(spec) = spec {
                self.new_cartridge_file(&inside, spec)?;
            } else {
                return Err(Error::CartridgeMissing {
                    device: format!("{} (outside shelf)", self.name),
                    barcode: barcode.to_string(),
                });
            }
            state.ie_slots[slot] = Some(barcode.to_string());
            Ok(count(slot))
        })
    }

    /// Takes the cartridge out of mail slot `ie_slot`, as an operator does
    /// (it moves to `outside/`); returns its barcode.
    pub fn take(&self, ie_slot: u16) -> Result<String> {
        self.update(|state| {
            let held = state
                .ie_slots
                .get_mut(usize::from(ie_slot))
                .ok_or_else(|| Error::Changer {
                    device: self.name.clone(),
                    reason: format!("no mail slot {ie_slot}"),
                })?;
            let barcode = held.take().ok_or_else(|| Error::Changer {
                device: self.name.clone(),
                reason: format!("mail slot {ie_slot} is empty"),
            })?;
            let from = self.cartridge_path(&barcode);
            let shelf = self.dir.join("outside");
            fs::create_dir_all(&shelf).map_err(|e| Error::io("create", shelf.display(), e))?;
            let to = shelf.join(&barcode);
            fs::rename(&from, &to).map_err(|e| Error::io("rename", from.display(), e))?;
            Ok(barcode)
        })
    }

    /// Barcodes of the cartridges on the outside shelf.
    pub fn outside(&self) -> Result<Vec<String>> {
        let dir = self.dir.join("outside");
        let mut out = Vec::new();
        if !dir.exists() {
            return Ok(out);
        }
        for e in fs::read_dir(&dir).map_err(|e| Error::io("list", dir.display(), e))? {
            let e = e.map_err(|e| Error::io("list", dir.display(), e))?;
            out.push(e.file_name().to_string_lossy().into_owned());
        }
        out.sort();
        Ok(out)
    }

    /// Opens the changer.
    pub fn changer_handle(&self) -> VirtualChanger {
        VirtualChanger { lib: self.clone() }
    }

    /// Opens drive `index` exclusively.
    pub fn drive_handle(&self, index: u16) -> Result<VirtualDrive> {
        if index >= self.drives {
            return Err(Error::Changer {
                device: self.name.clone(),
                reason: format!("no drive {index} (the library has {})", self.drives),
            });
        }
        let lock = self.lock_file(&format!("drive-{index}.lock"), true)?;
        let mut d = VirtualDrive {
            lib: self.clone(),
            index,
            name: format!("{} drive {index}", self.name),
            _lock: lock,
            tape: None,
            encryption: false,
        };
        d.refresh()?;
        Ok(d)
    }
}

impl Library for VirtualLibrary {
    fn changer(&mut self) -> Result<Box<dyn MediaChanger>> {
        Ok(Box::new(self.changer_handle()))
    }

    fn drive(&mut self, index: u16) -> Result<Box<dyn TapeDrive>> {
        Ok(Box::new(self.drive_handle(index)?))
    }

    fn drive_count(&self) -> u16 {
        self.drives
    }
}

/// The virtual library's robot.
pub struct VirtualChanger {
    lib: VirtualLibrary,
}

impl MediaChanger for VirtualChanger {
    fn name(&self) -> &str {
        &self.lib.name
    }

    fn inventory(&mut self) -> Result<Inventory> {
        let state = self.lib.load()?;
        let el = |kind, base: u16, i: usize, barcode: &Option<String>, source| Element {
            kind,
            address: base + count(i),
            index: count(i),
            full: barcode.is_some(),
            barcode: barcode.clone(),
            source,
            exception: None,
        };
        Ok(Inventory {
            drives: state
                .drives
                .iter()
                .enumerate()
                .map(|(i, d)| el(ElementKind::Drive, DRIVE_BASE, i, &d.barcode, d.source))
                .collect(),
            slots: state
                .slots
                .iter()
                .enumerate()
                .map(|(i, b)| el(ElementKind::Storage, SLOT_BASE, i, b, None))
                .collect(),
            ie_slots: state
                .ie_slots
                .iter()
                .enumerate()
                .map(|(i, b)| el(ElementKind::ImportExport, IE_BASE, i, b, None))
                .collect(),
            transports: vec![el(ElementKind::Transport, TRANSPORT_ADDR, 0, &None, None)],
        })
    }

    fn rescan(&mut self) -> Result<()> {
        // The state file is the truth; check that every cartridge it names exists.
        let state = self.lib.load()?;
        for b in state.barcodes() {
            if !self.lib.cartridge_path(b).exists() {
                return Err(Error::Invalid {
                    what: self.lib.state_path().display().to_string(),
                    reason: format!("cartridge {b} is listed but its file is missing"),
                });
            }
        }
        Ok(())
    }

    fn move_medium(&mut self, from: u16, to: u16) -> Result<()> {
        let name = self.lib.name.clone();
        self.lib.update(|state| {
            let bad = |a: u16| Error::Changer {
                device: name.clone(),
                reason: format!("no element at address {a:#06x}"),
            };
            if let Some(d) = from
                .checked_sub(DRIVE_BASE)
                .and_then(|i| state.drives.get(usize::from(i)))
                && d.loaded
                && from < SLOT_BASE
            {
                return Err(Error::Changer {
                    device: name.clone(),
                    reason: format!(
                        "drive {} still holds cartridge {} loaded; unload it first",
                        from - DRIVE_BASE,
                        d.barcode.as_deref().unwrap_or("?")
                    ),
                });
            }
            if state.holder(to).ok_or_else(|| bad(to))?.is_some() {
                return Err(Error::Changer {
                    device: name.clone(),
                    reason: format!("destination {to:#06x} is full"),
                });
            }
            let barcode = state
                .holder(from)
                .ok_or_else(|| bad(from))?
                .take()
                .ok_or_else(|| Error::Changer {
                    device: name.clone(),
                    reason: format!("source {from:#06x} is empty"),
                })?;
            if let Some(h) = state.holder(to) {
                *h = Some(barcode);
            }
            if (DRIVE_BASE..SLOT_BASE).contains(&from) {
                let d = &mut state.drives[usize::from(from - DRIVE_BASE)];
                d.source = None;
                d.position = 0;
            }
            if (DRIVE_BASE..SLOT_BASE).contains(&to) {
                // An LTO drive threads a cartridge as soon as it is inserted.
                let d = &mut state.drives[usize::from(to - DRIVE_BASE)];
                d.source = Some(from).filter(|a| (SLOT_BASE..IE_BASE).contains(a));
                d.loaded = true;
                d.position = 0;
            }
            Ok(())
        })
    }
}

/// An open virtual cartridge: its file and record index.
struct Tape {
    barcode: String,
    file: File,
    path: PathBuf,
    flags: u32,
    capacity: u64,
    early_warning: u64,
    /// Byte offset of each record; `offsets.len()` is end of data.
    offsets: Vec<u64>,
    /// Filemark flags, parallel to `offsets`.
    filemarks: Vec<bool>,
    /// File length (end of data).
    end: u64,
    /// The file holds bytes past `end` (a record cut short by a crash).
    torn: bool,
    position: u64,
}

impl Tape {
    fn open(path: &Path, barcode: &str, position: u64) -> Result<Tape> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| Error::io("open", path.display(), e))?;
        let invalid = |reason: String| Error::Invalid {
            what: format!("virtual cartridge {barcode}"),
            reason,
        };
        let mut h = [0u8; CARTRIDGE_HEADER as usize];
        file.read_exact_at(&mut h, 0)
            .map_err(|e| invalid(format!("header unreadable: {e}")))?;
        if h[0..8] != CARTRIDGE_MAGIC {
            return Err(invalid("not a virtual cartridge (bad magic)".into()));
        }
        let u32_at = |o: usize| u32::from_le_bytes([h[o], h[o + 1], h[o + 2], h[o + 3]]);
        let u64_at = |o: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&h[o..o + 8]);
            u64::from_le_bytes(b)
        };
        let len = file
            .metadata()
            .map_err(|e| Error::io("stat", path.display(), e))?
            .len();
        let mut offsets = Vec::new();
        let mut filemarks = Vec::new();
        let mut at = CARTRIDGE_HEADER;
        let mut rh = [0u8; RECORD_HEADER as usize];
        while at < len {
            if at + RECORD_HEADER > len {
                // A record header cut short by a crash: end of data is before it.
                break;
            }
            file.read_exact_at(&mut rh, at)
                .map_err(|e| Error::io("read", path.display(), e))?;
            let kind = u32::from_le_bytes([rh[0], rh[1], rh[2], rh[3]]);
            let rlen = u64::from(u32::from_le_bytes([rh[4], rh[5], rh[6], rh[7]]));
            if kind > KIND_FILEMARK || at + RECORD_HEADER + rlen > len {
                break;
            }
            offsets.push(at);
            filemarks.push(kind == KIND_FILEMARK);
            at += RECORD_HEADER + rlen;
        }
        let position = position.min(count64(offsets.len()));
        Ok(Tape {
            barcode: barcode.to_string(),
            file,
            path: path.to_path_buf(),
            flags: u32_at(8),
            capacity: u64_at(16),
            early_warning: u64_at(24),
            offsets,
            filemarks,
            end: at,
            torn: at < len,
            position,
        })
    }

    fn eod(&self) -> u64 {
        count64(self.offsets.len())
    }

    fn used(&self) -> u64 {
        self.end - CARTRIDGE_HEADER
    }

    fn files_before(&self, pos: u64) -> u64 {
        count64(
            self.filemarks[..usize_of(pos)]
                .iter()
                .filter(|f| **f)
                .count(),
        )
    }

    fn append(&mut self, kind: u32, data: &[u8], device: &str) -> Result<Written> {
        if self.flags & FLAG_WRITE_PROTECT != 0 {
            return Err(Error::WriteProtected {
                device: device.into(),
                reason: format!("cartridge {} has its write-protect tab set", self.barcode),
            });
        }
        if self.flags & FLAG_WORM != 0 && self.position != self.eod() {
            return Err(Error::WriteProtected {
                device: device.into(),
                reason: format!(
                    "cartridge {} is WORM: overwrite at object {} refused (data ends at {})",
                    self.barcode,
                    self.position,
                    self.eod()
                ),
            });
        }
        let at = if self.position == self.eod() {
            self.end
        } else {
            self.offsets[usize_of(self.position)]
        };
        if at == self.end && self.torn {
            // Bytes of a record a crash cut short lie past the end of data:
            // drop them, or a later open could read them after the new record.
            self.file
                .set_len(at)
                .map_err(|e| Error::io("truncate", self.path.display(), e))?;
            self.torn = false;
        }
        let need = RECORD_HEADER + count64(data.len());
        if at - CARTRIDGE_HEADER + need > self.capacity {
            return Err(Error::EndOfMedium {
                device: device.into(),
            });
        }
        if at != self.end {
            // Writing mid-tape ends the recorded data here.
            self.file
                .set_len(at)
                .map_err(|e| Error::io("truncate", self.path.display(), e))?;
            self.offsets.truncate(usize_of(self.position));
            self.filemarks.truncate(usize_of(self.position));
            self.end = at;
        }
        let mut rh = [0u8; RECORD_HEADER as usize];
        rh[0..4].copy_from_slice(&kind.to_le_bytes());
        rh[4..8].copy_from_slice(&u32::try_from(data.len()).unwrap_or(u32::MAX).to_le_bytes());
        let r = self
            .file
            .write_all_at(&rh, at)
            .and_then(|()| self.file.write_all_at(data, at + RECORD_HEADER));
        if let Err(e) = r {
            // Leave the file at the old end of data.
            let _ = self.file.set_len(at);
            return Err(if e.raw_os_error() == Some(libc::ENOSPC) {
                Error::EndOfMedium {
                    device: device.into(),
                }
            } else {
                Error::io("write", self.path.display(), e)
            });
        }
        self.offsets.push(at);
        self.filemarks.push(kind == KIND_FILEMARK);
        self.end = at + need;
        self.position = self.eod();
        Ok(if self.used() > self.capacity - self.early_warning {
            Written::EarlyWarning
        } else {
            Written::Ok
        })
    }
}

fn count64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

fn usize_of(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// A drive of the virtual library. Holds the drive's lock while open; saves
/// its position to the library state when dropped.
pub struct VirtualDrive {
    lib: VirtualLibrary,
    index: u16,
    name: String,
    _lock: Flock<File>,
    tape: Option<Tape>,
    encryption: bool,
}

impl VirtualDrive {
    /// Re-reads which cartridge the drive holds.
    fn refresh(&mut self) -> Result<()> {
        let state = self.lib.load()?;
        let d = &state.drives[usize::from(self.index)];
        self.encryption = d.encryption;
        match (&d.barcode, d.loaded) {
            (Some(b), true) => {
                if self.tape.as_ref().map(|t| &t.barcode) != Some(b) {
                    self.tape = Some(Tape::open(&self.lib.cartridge_path(b), b, d.position)?);
                }
            }
            _ => self.tape = None,
        }
        Ok(())
    }

    fn tape(&mut self) -> Result<&mut Tape> {
        if self.tape.is_none() {
            self.refresh()?;
        }
        let name = self.name.clone();
        let t = self.tape.as_mut().ok_or_else(|| Error::NotReady {
            device: name.clone(),
            reason: "no cartridge loaded".into(),
        })?;
        if t.flags & FLAG_CLEANING != 0 {
            return Err(Error::NotReady {
                device: name,
                reason: format!("cleaning cartridge {} loaded", t.barcode),
            });
        }
        Ok(t)
    }

    fn save_position(&self) -> Result<()> {
        let (tape, enc, idx) = (
            self.tape.as_ref().map(|t| (t.barcode.clone(), t.position)),
            self.encryption,
            self.index,
        );
        self.lib.update(|s| {
            let d = &mut s.drives[usize::from(idx)];
            // Only while the drive still holds the cartridge this handle read.
            if let Some((barcode, p)) = tape
                && d.barcode.as_ref() == Some(&barcode)
            {
                d.position = p;
            }
            d.encryption = enc;
            Ok(())
        })
    }
}

impl Drop for VirtualDrive {
    fn drop(&mut self) {
        if let Err(e) = self.save_position() {
            tracing::warn!(drive = %self.name, error = %e, "saving the virtual drive's position failed");
        }
    }
}

impl TapeDrive for VirtualDrive {
    fn name(&self) -> &str {
        &self.name
    }

    fn status(&mut self) -> Result<DriveStatus> {
        self.refresh()?;
        let mut st = DriveStatus {
            name: self.name.clone(),
            product: "COFFER VIRTUAL LTO-9".into(),
            serial: Some(format!("VTL{:05}", self.index)),
            block_size: 0,
            encryption: self.encryption,
            ..DriveStatus::default()
        };
        if let Some(t) = &self.tape {
            st.ready = t.flags & FLAG_CLEANING == 0;
            st.barcode = Some(t.barcode.clone());
            st.worm = t.flags & FLAG_WORM != 0;
            st.cleaning = t.flags & FLAG_CLEANING != 0;
            st.write_protected = t.flags & FLAG_WRITE_PROTECT != 0;
            st.capacity = Some(t.capacity);
            st.remaining = Some((t.capacity - t.early_warning).saturating_sub(t.used()));
            st.position = Some(Position {
                block: t.position,
                file: t.files_before(t.position),
                partition: 0,
                bop: t.position == 0,
                eop: t.used() > t.capacity - t.early_warning,
            });
        }
        Ok(st)
    }

    fn load(&mut self) -> Result<()> {
        let idx = self.index;
        let name = self.name.clone();
        self.lib.update(|s| {
            let d = &mut s.drives[usize::from(idx)];
            if d.barcode.is_none() {
                return Err(Error::NotReady {
                    device: name,
                    reason: "no cartridge in the drive".into(),
                });
            }
            d.loaded = true;
            d.position = 0;
            Ok(())
        })?;
        self.tape = None;
        self.refresh()
    }

    fn unload(&mut self) -> Result<()> {
        let idx = self.index;
        let enc = self.encryption;
        self.lib.update(|s| {
            let d = &mut s.drives[usize::from(idx)];
            d.loaded = false;
            d.position = 0;
            d.encryption = enc;
            Ok(())
        })?;
        if let Some(t) = self.tape.take() {
            t.file
                .sync_data()
                .map_err(|e| Error::io("fsync", t.path.display(), e))?;
        }
        Ok(())
    }

    fn rewind(&mut self) -> Result<()> {
        self.tape()?.position = 0;
        Ok(())
    }

    fn read_block(&mut self, buf: &mut [u8]) -> Result<ReadOutcome> {
        let name = self.name.clone();
        let t = self.tape()?;
        if t.position >= t.eod() {
            return Ok(ReadOutcome::EndOfData);
        }
        let i = usize_of(t.position);
        t.position += 1;
        if t.filemarks[i] {
            return Ok(ReadOutcome::Filemark);
        }
        let at = t.offsets[i];
        let next = t.offsets.get(i + 1).copied().unwrap_or(t.end);
        let len = usize_of(next - at - RECORD_HEADER);
        if len > buf.len() {
            return Err(Error::BlockTooLarge {
                device: name,
                len,
                buf: buf.len(),
            });
        }
        t.file
            .read_exact_at(&mut buf[..len], at + RECORD_HEADER)
            .map_err(|e| Error::io("read", t.path.display(), e))?;
        Ok(ReadOutcome::Block(len))
    }

    fn write_block(&mut self, data: &[u8]) -> Result<Written> {
        let name = self.name.clone();
        if data.is_empty() || data.len() > MAX_BLOCK {
            return Err(Error::Invalid {
                what: format!("{name}: block of {} bytes", data.len()),
                reason: format!("blocks are 1 to {MAX_BLOCK} bytes"),
            });
        }
        self.tape()?.append(KIND_BLOCK, data, &name)
    }

    fn write_filemarks(&mut self, n: u32) -> Result<Written> {
        let name = self.name.clone();
        let t = self.tape()?;
        let mut w = Written::Ok;
        for _ in 0..n {
            w = t.append(KIND_FILEMARK, &[], &name)?;
        }
        // A filemark flushes the drive's buffer to the medium.
        t.file
            .sync_data()
            .map_err(|e| Error::io("fsync", t.path.display(), e))?;
        Ok(w)
    }

    fn space(&mut self, over: SpaceOver) -> Result<()> {
        let name = self.name.clone();
        let t = self.tape()?;
        match over {
            SpaceOver::EndOfData => t.position = t.eod(),
            SpaceOver::Blocks(n) => {
                // Stops at a filemark, which it does not cross.
                for _ in 0..n.unsigned_abs() {
                    let next = if n > 0 {
                        if t.position >= t.eod() {
                            return Err(Error::BlankCheck { device: name });
                        }
                        t.position
                    } else {
                        if t.position == 0 {
                            return Err(Error::Sense {
                                device: name,
                                op: "SPACE",
                                sense: crate::scsi::Sense::new(0, 0, 4),
                            });
                        }
                        t.position - 1
                    };
                    if t.filemarks[usize_of(next)] {
                        return Err(Error::Sense {
                            device: name,
                            op: "SPACE",
                            sense: crate::scsi::Sense::new(0, 0, 1),
                        });
                    }
                    t.position = if n > 0 { next + 1 } else { next };
                }
            }
            SpaceOver::Filemarks(n) if n >= 0 => {
                for _ in 0..n {
                    let rest = &t.filemarks[usize_of(t.position)..];
                    let fm = rest.iter().position(|f| *f).ok_or(Error::BlankCheck {
                        device: name.clone(),
                    })?;
                    t.position += count64(fm) + 1;
                }
            }
            SpaceOver::Filemarks(n) => {
                // Backwards: ends on the beginning-of-partition side of the filemark.
                for _ in 0..n.unsigned_abs() {
                    let before = &t.filemarks[..usize_of(t.position)];
                    let fm = before
                        .iter()
                        .rposition(|f| *f)
                        .ok_or_else(|| Error::Sense {
                            device: name.clone(),
                            op: "SPACE",
                            sense: crate::scsi::Sense::new(0, 0, 4),
                        })?;
                    t.position = count64(fm);
                }
            }
        }
        Ok(())
    }

    fn locate(&mut self, block: u64) -> Result<()> {
        let name = self.name.clone();
        let t = self.tape()?;
        if block > t.eod() {
            t.position = t.eod();
            return Err(Error::BlankCheck { device: name });
        }
        t.position = block;
        Ok(())
    }

    fn position(&mut self) -> Result<Position> {
        let t = self.tape()?;
        Ok(Position {
            block: t.position,
            file: t.files_before(t.position),
            partition: 0,
            bop: t.position == 0,
            eop: t.used() > t.capacity - t.early_warning,
        })
    }

    fn set_encryption(&mut self, key: Option<&DriveKey>) -> Result<()> {
        // The virtual drive records only that encryption is on: data sets
        // are already encrypted by Coffer, and a file-backed "drive" has no
        // hardware to hold a key. The key itself is not kept.
        self.encryption = key.is_some();
        Ok(())
    }

    fn medium_attributes(&mut self) -> Result<MediumAttributes> {
        let t = self.tape()?;
        Ok(MediumAttributes {
            manufacturer: Some("COFFER".into()),
            serial: Some(t.barcode.clone()),
            remaining_mib: Some((t.capacity - t.early_warning).saturating_sub(t.used()) >> 20),
            capacity_mib: Some(t.capacity >> 20),
            load_count: None,
            barcode: Some(t.barcode.clone()),
        })
    }
}

#[cfg(test)]
mod tests;
