//! The A/B root slots and their boot entries (`docs/formats/update.md`,
//! "Installing").
//!
//! The boot disk holds an EFI system partition with systemd-boot, two
//! root partitions (slots `a` and `b`) and a data partition. Each slot
//! that can boot has one Boot Loader Specification entry on the ESP,
//! `loader/entries/coffer-<slot>[+LEFT[-DONE]].conf`, whose kernel and
//! initrd live in `coffer/<slot>/` on the ESP. Every entry carries
//! `sort-key coffer` and the slot's `version`, so systemd-boot puts the
//! newest version first — except that an entry whose boot counter has
//! reached zero (`+0-N`) is sorted after every other: that is the
//! rollback.
//!
//! [`install`] writes a verified bundle into the slot that is *not*
//! running, in an order that a power cut cannot break:
//! 1. the target slot's entry is removed first (a half-written slot is
//!    never bootable);
//! 2. the root filesystem image is streamed onto the slot's partition,
//!    the kernel and initrd into `coffer/<slot>/*.new` on the ESP, each
//!    hashed against the signed manifest and synced;
//! 3. the kernel and initrd are renamed into place and the directory is
//!    synced;
//! 4. the new entry is written with a boot counter (`+TRIES`) to a
//!    temporary name, synced, and renamed into `loader/entries/` last.
//!
//! Until step 4 the running slot's entry is the only one, so the old
//! slot boots. After it, systemd-boot boots the new slot, counting each
//! try down; `coffer-image boot-check` (run before `boot-complete.target`)
//! waits for a healthy `cofferd`, and `systemd-bless-boot` then drops the
//! counter. A slot that does not get there reboots (the check's unit has
//! `FailureAction=reboot`) until its tries are spent, and the old slot is
//! first again.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::bundle::{self, Item, Manifest, Version};

/// Where the build puts the slot layout on each root filesystem.
pub const LAYOUT_FILE: &str = "/usr/lib/coffer/slots.json";
/// Where the build puts a root filesystem's own version.
pub const VERSION_FILE: &str = "/usr/lib/coffer/version";
/// Where the trusted update keys are (`*.pub`, 64 hex digits each).
pub const KEYS_DIR: &str = "/usr/lib/coffer/update-keys";
/// Tries a newly installed slot gets before it counts as failed.
pub const DEFAULT_TRIES: u32 = 3;
/// The items a bundle for this layout must carry.
pub const ITEMS: [&str; 3] = ["rootfs", "vmlinuz", "initrd.img"];

/// A root slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Slot {
    /// The first root partition.
    A,
    /// The second root partition.
    B,
}

impl Slot {
    /// The other slot.
    pub fn other(self) -> Slot {
        match self {
            Slot::A => Slot::B,
            Slot::B => Slot::A,
        }
    }
    /// `a` or `b`.
    pub fn name(self) -> &'static str {
        match self {
            Slot::A => "a",
            Slot::B => "b",
        }
    }
    fn index(self) -> usize {
        match self {
            Slot::A => 0,
            Slot::B => 1,
        }
    }
}

impl std::str::FromStr for Slot {
    type Err = Error;
    fn from_str(s: &str) -> Result<Slot> {
        match s {
            "a" => Ok(Slot::A),
            "b" => Ok(Slot::B),
            _ => Err(Error::Layout(format!("'{s}' is not a slot (a or b)"))),
        }
    }
}

/// One root partition as the boot entry names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Partition {
    /// The block device (or, in tests, a file) the root image is written to.
    pub device: PathBuf,
    /// Its GPT partition UUID, for `root=PARTUUID=` on the kernel command line.
    pub partuuid: String,
}

/// The boot disk's layout, as the build recorded it ([`LAYOUT_FILE`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layout {
    /// Where the EFI system partition is mounted.
    pub esp: PathBuf,
    /// Slot a's and slot b's partitions.
    pub slots: [Partition; 2],
    /// The kernel command line every entry gets besides `root=`, `rw` and
    /// `coffer.slot=`.
    pub options: String,
}

impl Layout {
    /// Reads a layout file.
    pub fn read(path: &Path) -> Result<Layout> {
        let t = std::fs::read_to_string(path)
            .map_err(|e| Error::Layout(format!("cannot read '{}': {e}", path.display())))?;
        serde_json::from_str(&t)
            .map_err(|e| Error::Layout(format!("'{}' does not parse: {e}", path.display())))
    }
    /// A slot's partition.
    pub fn partition(&self, slot: Slot) -> &Partition {
        &self.slots[slot.index()]
    }
    fn entries(&self) -> PathBuf {
        self.esp.join("loader/entries")
    }
}

/// What can go wrong installing or reading the slots.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bundle was refused or damaged (nothing was switched).
    #[error(transparent)]
    Bundle(#[from] bundle::Error),
    /// The layout, the running slot or the versions cannot be read.
    #[error("slot layout: {0}")]
    Layout(String),
    /// A bundle that does not fit this layout.
    #[error("the bundle is refused: {0}")]
    Unfit(String),
    /// Reading or writing the slot or the ESP failed.
    #[error("{what}: {error}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        error: std::io::Error,
    },
}

/// A result of this module.
pub type Result<T> = std::result::Result<T, Error>;

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |error| Error::Io { what, error }
}

/// A boot entry's counter, as its file name carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Counter {
    /// No counter: the slot booted to a healthy `cofferd` (blessed).
    Good,
    /// Being tried: `left` boots remain, `done` were used.
    Trying {
        /// Boots left.
        left: u32,
        /// Boots used.
        done: u32,
    },
    /// Every try used without reaching a healthy `cofferd`: sorted last,
    /// so the other slot boots.
    Failed {
        /// Boots used.
        done: u32,
    },
}

/// One slot's boot entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The slot.
    pub slot: Slot,
    /// The version its entry names.
    pub version: String,
    /// Its counter.
    pub counter: Counter,
    /// Its file name under `loader/entries/`.
    pub file: String,
}

/// The slots as they are now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// The slot this system booted from.
    pub running: Slot,
    /// Its version.
    pub running_version: String,
    /// Every slot's entry, in systemd-boot's order (the first boots next).
    pub entries: Vec<Entry>,
}

/// Parses `coffer-<slot>[+LEFT[-DONE]].conf`.
fn parse_name(name: &str) -> Option<(Slot, Counter)> {
    let stem = name.strip_prefix("coffer-")?.strip_suffix(".conf")?;
    let (slot, counter) = match stem.split_once('+') {
        None => (stem, Counter::Good),
        Some((s, c)) => {
            let (left, done) = match c.split_once('-') {
                None => (c.parse().ok()?, 0),
                Some((l, d)) => (l.parse().ok()?, d.parse().ok()?),
            };
            let counter = if left == 0 {
                Counter::Failed { done }
            } else {
                Counter::Trying { left, done }
            };
            (s, counter)
        }
    };
    Some((slot.parse().ok()?, counter))
}

/// The slot's entries on the ESP, in the order systemd-boot sorts them:
/// failed entries last, then newest version first.
pub fn entries(layout: &Layout) -> Result<Vec<Entry>> {
    let dir = layout.entries();
    let mut out = Vec::new();
    let rd = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io(format!("read '{}'", dir.display()))(e)),
    };
    for d in rd {
        let d = d.map_err(io(format!("read '{}'", dir.display())))?;
        let name = d.file_name().to_string_lossy().into_owned();
        let Some((slot, counter)) = parse_name(&name) else {
            continue;
        };
        let text = std::fs::read_to_string(d.path())
            .map_err(io(format!("read '{}'", d.path().display())))?;
        let version = text
            .lines()
            .find_map(|l| l.strip_prefix("version "))
            .unwrap_or("")
            .trim()
            .to_string();
        out.push(Entry {
            slot,
            version,
            counter,
            file: name,
        });
    }
    out.sort_by(|x, y| {
        let failed = |e: &Entry| matches!(e.counter, Counter::Failed { .. });
        failed(x).cmp(&failed(y)).then_with(|| {
            let v = |e: &Entry| e.version.parse::<Version>().ok();
            v(y).cmp(&v(x))
        })
    });
    Ok(out)
}

/// The running slot, from the kernel command line's `coffer.slot=`.
pub fn running_slot(cmdline: &str) -> Result<Slot> {
    cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix("coffer.slot="))
        .ok_or_else(|| Error::Layout("the kernel command line names no coffer.slot".into()))?
        .parse()
}

/// The slots now: `running` and its version given, the entries read.
pub fn status(layout: &Layout, running: Slot, running_version: Version) -> Result<Status> {
    Ok(Status {
        running,
        running_version: running_version.to_string(),
        entries: entries(layout)?,
    })
}

/// What [`install`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Installed {
    /// The slot written.
    pub slot: Slot,
    /// The version now in it.
    pub version: String,
    /// The entry written (with its counter).
    pub entry: String,
    /// Boots it has to reach a healthy `cofferd`.
    pub tries: u32,
    /// The verified manifest.
    pub manifest: Manifest,
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(format!("sync '{}'", dir.display())))
}

/// The size of a block device or file.
fn capacity(f: &mut File) -> std::io::Result<u64> {
    let n = f.seek(SeekFrom::End(0))?;
    f.seek(SeekFrom::Start(0))?;
    Ok(n)
}

/// Where each item goes, opened lazily as the bundle reaches it.
struct Sinks<'l> {
    layout: &'l Layout,
    slot: Slot,
    /// A regular file as the slot (tests): may grow, so no size check.
    capacity: Option<u64>,
    kernel_dir: PathBuf,
}

impl Sinks<'_> {
    fn open(&self, item: &Item) -> bundle::Result<Box<dyn Write>> {
        let e = |what: String| move |error| bundle::Error::Io { what, error };
        match item.name.as_str() {
            "rootfs" => {
                let dev = &self.layout.partition(self.slot).device;
                if let Some(cap) = self.capacity
                    && item.size > cap
                {
                    return Err(bundle::Error::Refused(format!(
                        "its root filesystem is {} bytes and slot {}'s partition holds {cap}",
                        item.size,
                        self.slot.name()
                    )));
                }
                let f = OpenOptions::new().write(true).open(dev).map_err(e(format!(
                    "open slot {} ('{}')",
                    self.slot.name(),
                    dev.display()
                )))?;
                Ok(Box::new(Synced(Some(f))))
            }
            "vmlinuz" | "initrd.img" => {
                let p = self.kernel_dir.join(format!("{}.new", item.name));
                let f = File::create(&p).map_err(e(format!("create '{}'", p.display())))?;
                Ok(Box::new(Synced(Some(f))))
            }
            other => Err(bundle::Error::Refused(format!(
                "it carries an item '{other}' this appliance does not install"
            ))),
        }
    }
}

/// A file that is synced when its item ends (the writer is dropped after
/// `flush`, which syncs).
struct Synced(Option<File>);

impl Write for Synced {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        match &mut self.0 {
            Some(f) => f.write(b),
            None => Err(std::io::Error::other("closed")),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.0 {
            Some(f) => {
                f.flush()?;
                f.sync_all()
            }
            None => Ok(()),
        }
    }
}

/// Installs a bundle into the slot that is not `running`, newer than
/// `running_version`, signed by one of `trusted`; the new slot gets
/// `tries` boots to reach a healthy `cofferd`. On any error the running
/// slot's entry is untouched and the target slot has no entry.
pub fn install<R: std::io::Read>(
    layout: &Layout,
    running: Slot,
    running_version: Version,
    trusted: &[[u8; 32]],
    tries: u32,
    bundle_reader: R,
) -> Result<Installed> {
    if tries == 0 || tries > 9 {
        return Err(Error::Unfit(format!(
            "{tries} tries: a slot gets 1 to 9 boots"
        )));
    }
    let opened = bundle::open(bundle_reader, trusted, running_version)?;
    for name in ITEMS {
        if opened.item(name).is_none() {
            return Err(Error::Unfit(format!(
                "it carries no '{name}' (an image update carries {})",
                ITEMS.join(", ")
            )));
        }
    }
    let target = running.other();
    let entries_dir = layout.entries();
    std::fs::create_dir_all(&entries_dir)
        .map_err(io(format!("create '{}'", entries_dir.display())))?;
    let now = entries(layout)?;
    // The other slot is the fallback while this one is unproven: it is
    // not overwritten until this boot has been blessed.
    if let Some(e) = now.iter().find(|e| e.slot == running)
        && let Counter::Trying { left, .. } = e.counter
    {
        return Err(Error::Unfit(format!(
            "slot {} is running but still being tried ({left} boots left) and slot {} is its fallback: \
             install once this boot has been blessed good (`update status`)",
            running.name(),
            target.name()
        )));
    }
    // 1. The target slot is made unbootable before a byte of it changes.
    for e in now {
        if e.slot == target {
            let p = entries_dir.join(&e.file);
            std::fs::remove_file(&p).map_err(io(format!("remove '{}'", p.display())))?;
        }
    }
    sync_dir(&entries_dir)?;
    // 2. The items, each checked against the signed manifest.
    let kernel_dir = layout.esp.join("coffer").join(target.name());
    std::fs::create_dir_all(&kernel_dir)
        .map_err(io(format!("create '{}'", kernel_dir.display())))?;
    let dev = &layout.partition(target).device;
    let mut probe = OpenOptions::new().read(true).open(dev).map_err(io(format!(
        "open slot {} ('{}')",
        target.name(),
        dev.display()
    )))?;
    let is_file = probe.metadata().map(|m| m.is_file()).unwrap_or(false);
    let capacity = if is_file {
        None
    } else {
        Some(capacity(&mut probe).map_err(io(format!("size of '{}'", dev.display())))?)
    };
    drop(probe);
    let sinks = Sinks {
        layout,
        slot: target,
        capacity,
        kernel_dir: kernel_dir.clone(),
    };
    let version = opened.version;
    let manifest = match opened.install(&mut |item| sinks.open(item)) {
        Ok(m) => m,
        Err(e) => {
            // A partial kernel or initrd is of no use; the slot stays
            // without an entry.
            for name in ["vmlinuz", "initrd.img"] {
                let _ = std::fs::remove_file(kernel_dir.join(format!("{name}.new")));
            }
            return Err(e.into());
        }
    };
    // 3. Kernel and initrd into place.
    for name in ["vmlinuz", "initrd.img"] {
        let from = kernel_dir.join(format!("{name}.new"));
        let to = kernel_dir.join(name);
        std::fs::rename(&from, &to).map_err(io(format!("rename '{}'", from.display())))?;
    }
    sync_dir(&kernel_dir)?;
    // 4. The entry, last.
    let text = entry_text(layout, target, version);
    let name = format!("coffer-{}+{tries}.conf", target.name());
    let tmp = entries_dir.join(".coffer-new.tmp");
    {
        let mut f = File::create(&tmp).map_err(io(format!("create '{}'", tmp.display())))?;
        f.write_all(text.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(io(format!("write '{}'", tmp.display())))?;
    }
    std::fs::rename(&tmp, entries_dir.join(&name))
        .map_err(io(format!("rename '{}'", tmp.display())))?;
    sync_dir(&entries_dir)?;
    Ok(Installed {
        slot: target,
        version: version.to_string(),
        entry: name,
        tries,
        manifest,
    })
}

/// A slot's boot entry. The image build writes slot a's under
/// `coffer-a.conf` (no counter: the factory image is the known-good one);
/// [`install`] writes the new slot's under a counted name.
pub fn entry_text(layout: &Layout, slot: Slot, version: Version) -> String {
    let part = layout.partition(slot);
    format!(
        "title Coffer {version} (slot {s})\nsort-key coffer\nversion {version}\nlinux /coffer/{s}/vmlinuz\ninitrd /coffer/{s}/initrd.img\noptions root=PARTUUID={p} rw coffer.slot={s} {o}\n",
        s = slot.name(),
        p = part.partuuid,
        o = layout.options,
    )
}

/// Reads the trusted keys in `dir` (`*.pub`).
pub fn trusted_keys(dir: &Path) -> Result<Vec<[u8; 32]>> {
    let mut keys = Vec::new();
    let rd = std::fs::read_dir(dir).map_err(|e| {
        Error::Layout(format!(
            "no trusted update keys in '{}': {e}",
            dir.display()
        ))
    })?;
    for d in rd.flatten() {
        let p = d.path();
        if p.extension().is_some_and(|x| x == "pub") {
            let t = std::fs::read_to_string(&p).map_err(io(format!("read '{}'", p.display())))?;
            keys.push(bundle::parse_public(&t)?);
        }
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_names_parse_as_systemd_boot_writes_them() {
        assert_eq!(parse_name("coffer-a.conf"), Some((Slot::A, Counter::Good)));
        assert_eq!(
            parse_name("coffer-b+3.conf"),
            Some((Slot::B, Counter::Trying { left: 3, done: 0 }))
        );
        assert_eq!(
            parse_name("coffer-b+2-1.conf"),
            Some((Slot::B, Counter::Trying { left: 2, done: 1 }))
        );
        assert_eq!(
            parse_name("coffer-a+0-3.conf"),
            Some((Slot::A, Counter::Failed { done: 3 }))
        );
        for other in [
            "coffer-c.conf",
            "debian.conf",
            "coffer-a+x.conf",
            "coffer-a",
        ] {
            assert_eq!(parse_name(other), None, "{other}");
        }
    }

    #[test]
    fn the_running_slot_comes_from_the_command_line() {
        assert_eq!(
            running_slot("BOOT_IMAGE=/x root=PARTUUID=1 rw coffer.slot=b quiet").unwrap(),
            Slot::B
        );
        assert!(running_slot("root=/dev/vda2").is_err());
        assert!(running_slot("coffer.slot=c").is_err());
    }
}
