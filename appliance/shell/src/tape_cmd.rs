//! Tape commands: the virtual library, drives, the changer and media sets.
//!
//! The library comes from `--library DIR` (a virtual tape library) or
//! `--scsi-changer /dev/sgN --scsi-drive /dev/sgM…` (hardware), or the
//! `COFFER_LIBRARY` environment variable; [`coffer_tape::open_library`] is
//! the one place a backend is chosen.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use coffer_engine::{Progress, RestoreRequest};
use coffer_media::restore::{RecoverRequest, TapeRestoreRequest};
use coffer_media::set::{self, WriteRequest};
use coffer_tape::{
    CartridgeSpec, Element, Inventory, Library, LibraryConfig, MediaChanger, VirtualLibrary,
    VtlOptions,
};
use coffer_types::{MediaSetId, SnapshotId};

use crate::cli::{Direct, EXIT_OK, EXIT_WARNINGS, passphrase, print_json};
use crate::output::size;

/// Which library.
#[derive(Args, Debug, Clone)]
pub struct LibraryArgs {
    /// A virtual tape library directory.
    #[arg(long, global = true, env = "COFFER_LIBRARY", value_name = "DIR")]
    library: Option<PathBuf>,
    /// A SCSI changer's generic device (hardware library).
    #[arg(long, global = true, value_name = "DEV", requires = "scsi_drive")]
    scsi_changer: Option<PathBuf>,
    /// The library's drives' generic devices, in the changer's order.
    #[arg(long, global = true, value_name = "DEV")]
    scsi_drive: Vec<PathBuf>,
    /// The drive to use (index, from 0).
    #[arg(long, global = true, default_value_t = 0)]
    drive: u16,
}

impl LibraryArgs {
    fn config(&self) -> Result<LibraryConfig> {
        match (&self.scsi_changer, &self.library) {
            (Some(changer), _) => Ok(LibraryConfig::Linux {
                changer: changer.clone(),
                drives: self.scsi_drive.clone(),
            }),
            (None, Some(dir)) => Ok(LibraryConfig::Virtual { path: dir.clone() }),
            (None, None) => bail!(
                "no tape library given: use --library DIR (a virtual library, see `coffer vtl create`), \
                 --scsi-changer/--scsi-drive, or set COFFER_LIBRARY"
            ),
        }
    }

    fn open(&self) -> Result<Box<dyn Library>> {
        Ok(coffer_tape::open_library(&self.config()?)?)
    }

    /// Whether a library was named.
    fn given(&self) -> bool {
        self.library.is_some() || self.scsi_changer.is_some()
    }
}

/// Sizes such as `2G`, `512M`, `64K` or plain bytes.
fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m = match c.to_ascii_uppercase() {
                'K' => 1u64 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'T' => 1 << 40,
                _ => return Err(format!("unknown size suffix in {s:?} (use K, M, G or T)")),
            };
            (&s[..i], m)
        }
        _ => (s, 1),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("{s:?} is not a size"))
}

/// `coffer vtl …`
#[derive(Subcommand, Debug)]
pub enum VtlCmd {
    /// Create a virtual tape library with cartridges in its slots.
    Create {
        /// The library directory.
        dir: PathBuf,
        /// Drives.
        #[arg(long, default_value_t = 2)]
        drives: u16,
        /// Storage slots.
        #[arg(long, default_value_t = 16)]
        slots: u16,
        /// Import/export (mail) slots.
        #[arg(long, default_value_t = 4)]
        ie_slots: u16,
        /// Data cartridges to put in the slots (default: all but two slots).
        #[arg(long)]
        cartridges: Option<u16>,
        /// Of those, how many (the last) are WORM.
        #[arg(long, default_value_t = 0)]
        worm: u16,
        /// Cleaning cartridges.
        #[arg(long, default_value_t = 1)]
        cleaning: u16,
        /// Native capacity of each cartridge (e.g. 2G).
        #[arg(long, default_value = "2G", value_parser = parse_size)]
        capacity: u64,
        /// Early-warning zone before the end of each cartridge.
        #[arg(long, default_value = "128M", value_parser = parse_size)]
        early_warning: u64,
        /// Barcode prefix.
        #[arg(long, default_value = "CF")]
        prefix: String,
    },
    /// Put a cartridge into a mail slot (one taken out earlier, or a new blank one).
    Insert {
        /// The library directory.
        dir: PathBuf,
        /// Barcode.
        barcode: String,
        /// Make a new blank cartridge with this capacity.
        #[arg(long, value_parser = parse_size)]
        new: Option<u64>,
        /// The new cartridge is WORM.
        #[arg(long, requires = "new")]
        worm: bool,
    },
    /// Take the cartridge out of a mail slot (to the library's outside shelf).
    Take {
        /// The library directory.
        dir: PathBuf,
        /// Mail slot index.
        #[arg(long, default_value_t = 0)]
        ie_slot: u16,
    },
}

/// `coffer drive …`
#[derive(Subcommand, Debug)]
pub enum DriveCmd {
    /// The drive's state: cartridge, position, WORM, TapeAlert flags.
    Status,
    /// Load a cartridge into the drive.
    Load {
        /// Barcode.
        barcode: String,
    },
    /// Unload the drive's cartridge back to a storage slot.
    Unload,
    /// Unload the drive's cartridge into a mail slot, for the operator.
    Eject,
}

/// `coffer changer …`
#[derive(Subcommand, Debug)]
pub enum ChangerCmd {
    /// Drives, slots and mail slots with their cartridges' barcodes.
    Inventory,
    /// Move a cartridge: FROM and TO are `slot:N`, `drive:N` or `mail:N`; FROM may be a barcode.
    Move {
        /// Source element or barcode.
        from: String,
        /// Destination element.
        to: String,
    },
    /// Move a cartridge from a mail slot into the first free storage slot.
    Import {
        /// Mail slot index (default: every full mail slot).
        #[arg(long)]
        ie_slot: Option<u16>,
    },
    /// Move a cartridge to a free mail slot for the operator to take out.
    Export {
        /// Barcode.
        barcode: String,
    },
}

/// `coffer media …`
#[derive(Subcommand, Debug)]
pub enum MediaCmd {
    /// Label cartridges for a media pool (blank ones; --force erases).
    Label {
        /// Barcodes (none with --all-blank).
        barcodes: Vec<String>,
        /// Media pool.
        #[arg(long, default_value = "default")]
        pool: String,
        /// Label every blank cartridge in the library.
        #[arg(long)]
        all_blank: bool,
        /// Relabel a cartridge that holds data, erasing it (named cartridges only).
        #[arg(long, conflicts_with = "all_blank")]
        force: bool,
    },
    /// Cartridges and media sets the catalog knows.
    List,
    /// Copy snapshots to a media set (only what the set does not hold yet).
    Write {
        /// Snapshots (id, prefix or `latest:ASSET`); none: every snapshot.
        snapshots: Vec<String>,
        /// Media pool.
        #[arg(long, default_value = "default")]
        pool: String,
        /// Continue this media set.
        #[arg(long, conflicts_with = "new_set")]
        set: Option<String>,
        /// Start a new media set.
        #[arg(long)]
        new_set: bool,
        /// Write the set unencrypted (not recommended; the store's own
        /// encryption still applies).
        #[arg(long)]
        no_encrypt: bool,
        /// Also turn on the drive's LTO hardware encryption.
        #[arg(long)]
        drive_encryption: bool,
        /// A pool with a rotation: the day whose tape job this is (default
        /// today).
        #[arg(long, value_name = "YYYY-MM-DD")]
        date: Option<String>,
    },
    /// Restore a snapshot from a media set, loading the cartridges it needs.
    Restore {
        /// Snapshot id or prefix.
        snapshot: String,
        /// Where to restore.
        #[arg(long)]
        target: PathBuf,
        /// The media set (default: the newest holding the snapshot).
        #[arg(long)]
        set: Option<String>,
        /// Paths inside the snapshot (default: everything).
        #[arg(long = "path")]
        paths: Vec<String>,
        /// Replace existing files in the target.
        #[arg(long)]
        overwrite: bool,
    },
    /// Read a whole media set back: every object authenticated, and
    /// compared with the store's copy where the store still holds it.
    Verify {
        /// The media set (id or prefix; default: the newest).
        #[arg(long)]
        set: Option<String>,
        /// The newest set of this pool.
        #[arg(long, conflicts_with = "set")]
        pool: Option<String>,
    },
    /// Rebuild a store from the cartridges of a media set and the passphrase alone.
    Recover {
        /// The media set (id or prefix; default: the only one in the library).
        #[arg(long)]
        set: Option<String>,
        /// Then restore this snapshot (id or prefix, or `latest`).
        #[arg(long, requires = "target")]
        restore: Option<String>,
        /// Where to restore.
        #[arg(long)]
        target: Option<PathBuf>,
        /// Recover what is here even if the newest cartridge says the set
        /// goes on to one that is missing.
        #[arg(long)]
        incomplete: bool,
    },
    /// Media pools and their rotation schemes: `pool add|list|show`.
    Pool {
        #[command(subcommand)]
        cmd: crate::rotation_cmd::PoolCmd,
    },
    /// Register cartridges in a media pool (scratch, in the library).
    Add {
        /// The pool.
        pool: String,
        /// Barcodes.
        #[arg(required = true)]
        barcodes: Vec<String>,
        /// They are on the shelf, not in the library.
        #[arg(long)]
        shelf: bool,
        /// Record as of this day (default today).
        #[arg(long, value_name = "YYYY-MM-DD")]
        date: Option<String>,
    },
    /// The daily rotation procedure: `rotation today [--json]`, `rotation settle`.
    Rotation {
        #[command(subcommand)]
        cmd: crate::rotation_cmd::RotationCmd,
    },
    /// Move cartridges to the export slots for the vault (files the
    /// transfer manifest).
    Export {
        /// Barcodes.
        #[arg(required = true)]
        barcodes: Vec<String>,
        /// Record as of this day (default today).
        #[arg(long, value_name = "YYYY-MM-DD")]
        date: Option<String>,
    },
    /// The courier took a transfer manifest's cartridges.
    Sent {
        /// Manifest number.
        manifest: i64,
        /// Record as of this day (default today).
        #[arg(long, value_name = "YYYY-MM-DD")]
        date: Option<String>,
    },
    /// Cartridges arrived: at the vault (its receipt) or back onsite.
    Received {
        /// Barcodes.
        #[arg(required = true)]
        barcodes: Vec<String>,
        /// Record as of this day (default today).
        #[arg(long, value_name = "YYYY-MM-DD")]
        date: Option<String>,
    },
    /// Ask the vault for cartridges back.
    Recall {
        /// Barcodes.
        #[arg(required = true)]
        barcodes: Vec<String>,
        /// The day they are needed (default: as soon as the courier can).
        #[arg(long, value_name = "YYYY-MM-DD")]
        needed_by: Option<String>,
        /// Record as of this day (default today).
        #[arg(long, value_name = "YYYY-MM-DD")]
        date: Option<String>,
    },
    /// Put cartridges that are onsite into the library.
    Import {
        /// Barcodes.
        #[arg(required = true)]
        barcodes: Vec<String>,
        /// Record as of this day (default today).
        #[arg(long, value_name = "YYYY-MM-DD")]
        date: Option<String>,
    },
    /// Print a transfer manifest (or list them).
    Manifest {
        /// Manifest number.
        id: Option<i64>,
    },
    /// The chain of custody (of one cartridge, or all).
    Custody {
        /// Barcode.
        barcode: Option<String>,
    },
    /// A drive cleaning was done.
    Cleaned {
        /// The pool.
        pool: String,
        /// Record as of this day (default today).
        #[arg(long, value_name = "YYYY-MM-DD")]
        date: Option<String>,
    },
    /// A cartridge was found damaged: never written again; its open set is
    /// closed.
    Damaged {
        /// The cartridge.
        barcode: String,
        /// Record as of this day (default today).
        #[arg(long, value_name = "YYYY-MM-DD")]
        date: Option<String>,
    },
    /// Cartridges were destroyed: they leave the rotation, and a disposal
    /// certificate is filed for each. Only expired cartridges, or damaged
    /// ones no kept set needs.
    Dispose {
        /// The cartridges.
        #[arg(required = true)]
        barcodes: Vec<String>,
        /// How and by whom (for the certificate), e.g. "degaussed and
        /// shredded by Vendor, their certificate 1234".
        #[arg(long)]
        method: String,
        /// Record as of this day (default today).
        #[arg(long, value_name = "YYYY-MM-DD")]
        date: Option<String>,
    },
}

fn inventory_json(inv: &Inventory) -> serde_json::Value {
    serde_json::json!({
        "drives": inv.drives, "slots": inv.slots, "mail_slots": inv.ie_slots,
    })
}

fn print_elements(title: &str, els: &[Element]) {
    for e in els {
        println!(
            "{title:<9} {:>3}  {:<10} {}",
            e.index,
            e.barcode.as_deref().unwrap_or("-"),
            if e.exception.is_some() {
                "exception"
            } else {
                ""
            }
        );
    }
}

/// Parses `slot:N`, `drive:N`, `mail:N` or a barcode to an element address.
fn element(inv: &Inventory, spec: &str) -> Result<u16> {
    let pick = |els: &[Element], n: &str, what: &str| -> Result<u16> {
        let i: usize = n
            .parse()
            .map_err(|_| anyhow!("'{spec}': {n} is not a number"))?;
        els.get(i)
            .map(|e| e.address)
            .ok_or_else(|| anyhow!("the library has no {what} {i}"))
    };
    match spec.split_once(':') {
        Some(("slot", n)) => pick(&inv.slots, n, "slot"),
        Some(("drive", n)) => pick(&inv.drives, n, "drive"),
        Some(("mail", n)) => pick(&inv.ie_slots, n, "mail slot"),
        Some((k, _)) => bail!("'{k}' is not an element kind: use slot:N, drive:N or mail:N"),
        None => inv
            .find(spec)
            .map(|e| e.address)
            .ok_or_else(|| anyhow!("no cartridge {spec} in the library")),
    }
}

pub fn vtl(cmd: &VtlCmd, json: bool) -> Result<u8> {
    match cmd {
        VtlCmd::Create {
            dir,
            drives,
            slots,
            ie_slots,
            cartridges,
            worm,
            cleaning,
            capacity,
            early_warning,
            prefix,
        } => {
            let opts = VtlOptions {
                drives: *drives,
                slots: *slots,
                ie_slots: *ie_slots,
                capacity: *capacity,
                early_warning: (*early_warning).min(capacity / 2),
                cartridges: cartridges.unwrap_or_else(|| slots.saturating_sub(2 + cleaning).max(1)),
                worm: *worm,
                cleaning: *cleaning,
                prefix: prefix.clone(),
            };
            let lib = VirtualLibrary::create(dir, &opts)?;
            let inv = lib.changer_handle().inventory()?;
            if json {
                print_json(&inventory_json(&inv))?;
            } else {
                println!(
                    "virtual tape library at {}: {} drives, {} slots, {} mail slots, {} cartridges of {}",
                    dir.display(),
                    drives,
                    slots,
                    ie_slots,
                    inv.slots.iter().filter(|e| e.full).count(),
                    size(*capacity)
                );
                println!(
                    "use it with --library {} (or COFFER_LIBRARY)",
                    dir.display()
                );
            }
        }
        VtlCmd::Insert {
            dir,
            barcode,
            new,
            worm,
        } => {
            let lib = VirtualLibrary::open(dir)?;
            let spec = new.map(|capacity| CartridgeSpec {
                capacity,
                early_warning: (capacity / 16).min(128 << 20),
                worm: *worm,
                cleaning: barcode.starts_with("CLN"),
                write_protected: false,
            });
            let slot = lib.insert(barcode, spec)?;
            if json {
                print_json(&serde_json::json!({ "barcode": barcode, "mail_slot": slot }))?;
            } else {
                println!(
                    "cartridge {barcode} is in mail slot {slot}: `coffer changer import` takes it in"
                );
            }
        }
        VtlCmd::Take { dir, ie_slot } => {
            let lib = VirtualLibrary::open(dir)?;
            let barcode = lib.take(*ie_slot)?;
            if json {
                print_json(&serde_json::json!({ "barcode": barcode }))?;
            } else {
                println!("took cartridge {barcode} out of mail slot {ie_slot}");
            }
        }
    }
    Ok(EXIT_OK)
}

pub fn drive(cmd: &DriveCmd, lib_args: &LibraryArgs, json: bool) -> Result<u8> {
    let mut lib = lib_args.open()?;
    let idx = lib_args.drive;
    match cmd {
        DriveCmd::Status => {
            let mut d = lib.drive(idx)?;
            let st = d.status()?;
            if json {
                print_json(&st)?;
            } else {
                println!("drive {idx}: {} ({})", st.name, st.product);
                match &st.barcode {
                    None => println!("  no cartridge"),
                    Some(b) => {
                        println!(
                            "  cartridge {b}{}{}{}",
                            if st.worm { ", WORM" } else { "" },
                            if st.cleaning { ", cleaning" } else { "" },
                            if st.write_protected {
                                ", write protected"
                            } else {
                                ""
                            }
                        );
                        if let Some(p) = st.position {
                            println!(
                                "  position: block {}, file {}{}",
                                p.block,
                                p.file,
                                if p.eop { " (past early warning)" } else { "" }
                            );
                        }
                        if let (Some(c), Some(r)) = (st.capacity, st.remaining) {
                            println!(
                                "  capacity {}, {} left before early warning",
                                size(c),
                                size(r)
                            );
                        }
                    }
                }
                println!("  encryption: {}", if st.encryption { "on" } else { "off" });
                for a in &st.alerts {
                    println!("  TapeAlert {:02x} {} ({})", a.flag, a.name, a.severity);
                }
            }
        }
        DriveCmd::Load { barcode } => {
            let mut ch = lib.changer()?;
            ch.load_barcode(barcode, idx)?;
            let mut d = lib.drive(idx)?;
            d.load()?;
            if json {
                print_json(&serde_json::json!({ "drive": idx, "barcode": barcode }))?;
            } else {
                println!("cartridge {barcode} loaded in drive {idx}");
            }
        }
        DriveCmd::Unload | DriveCmd::Eject => {
            {
                let mut d = lib.drive(idx)?;
                if d.status()?.barcode.is_some() {
                    d.unload()?;
                }
            }
            let mut ch = lib.changer()?;
            let inv = ch.inventory()?;
            let Some(barcode) = inv
                .drives
                .get(usize::from(idx))
                .and_then(|e| e.barcode.clone())
            else {
                bail!("drive {idx} holds no cartridge");
            };
            let where_to = if matches!(cmd, DriveCmd::Eject) {
                ch.unload_drive(idx)?;
                format!("mail slot {}", ch.export(&barcode)?)
            } else {
                ch.unload_drive(idx)?;
                "its slot".to_string()
            };
            if json {
                print_json(
                    &serde_json::json!({ "drive": idx, "barcode": barcode, "to": where_to }),
                )?;
            } else {
                println!("cartridge {barcode} unloaded from drive {idx} to {where_to}");
            }
        }
    }
    Ok(EXIT_OK)
}

pub fn changer(cmd: &ChangerCmd, lib_args: &LibraryArgs, json: bool) -> Result<u8> {
    let mut lib = lib_args.open()?;
    let mut ch = lib.changer()?;
    match cmd {
        ChangerCmd::Inventory => {
            let inv = ch.inventory()?;
            if json {
                print_json(&inventory_json(&inv))?;
            } else {
                println!("{:<9} {:>3}  barcode", "element", "#");
                print_elements("drive", &inv.drives);
                print_elements("slot", &inv.slots);
                print_elements("mail slot", &inv.ie_slots);
            }
        }
        ChangerCmd::Move { from, to } => {
            let inv = ch.inventory()?;
            let (f, t) = (element(&inv, from)?, element(&inv, to)?);
            ch.move_medium(f, t)?;
            if !json {
                println!("moved {from} to {to}");
            } else {
                print_json(&serde_json::json!({ "from": from, "to": to }))?;
            }
        }
        ChangerCmd::Import { ie_slot } => {
            let inv = ch.inventory()?;
            let slots: Vec<u16> = match ie_slot {
                Some(s) => vec![*s],
                None => inv
                    .ie_slots
                    .iter()
                    .filter(|e| e.full)
                    .map(|e| e.index)
                    .collect(),
            };
            if slots.is_empty() {
                bail!("every mail slot is empty");
            }
            let mut moved = Vec::new();
            for s in slots {
                let barcode = inv
                    .ie_slots
                    .get(usize::from(s))
                    .and_then(|e| e.barcode.clone());
                let to = ch.import(s)?;
                moved.push(serde_json::json!({ "barcode": barcode, "mail_slot": s, "slot": to }));
                if !json {
                    println!(
                        "imported {} from mail slot {s} into slot {to}",
                        barcode.as_deref().unwrap_or("cartridge")
                    );
                }
            }
            if json {
                print_json(&moved)?;
            }
        }
        ChangerCmd::Export { barcode } => {
            let s = ch.export(barcode)?;
            if json {
                print_json(&serde_json::json!({ "barcode": barcode, "mail_slot": s }))?;
            } else {
                println!("cartridge {barcode} is in mail slot {s}: take it out");
            }
        }
    }
    Ok(EXIT_OK)
}

/// A byte progress bar on standard error (none when quiet, JSON or not a terminal).
/// A tape progress callback that moves `pb`: the cartridge, bytes done
/// of the total.
fn follow(pb: &indicatif::ProgressBar) -> impl Fn(&str, u64, u64) + Sync + '_ {
    move |barcode: &str, done: u64, total: u64| {
        pb.set_length(total);
        pb.set_position(done);
        pb.set_message(barcode.to_string());
    }
}

fn bar(hidden: bool) -> indicatif::ProgressBar {
    if hidden || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let b = indicatif::ProgressBar::new(0);
    b.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg:>10} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    b
}

pub struct MediaCtx<'a> {
    pub store: Option<&'a Path>,
    pub passphrase_file: Option<&'a Path>,
    pub json: bool,
    pub quiet: bool,
}

fn store(ctx: &MediaCtx<'_>) -> Result<PathBuf> {
    ctx.store
        .map(Path::to_path_buf)
        .ok_or_else(|| anyhow!("no store given: use --store DIR or set COFFER_STORE"))
}

fn set_id(d: &Direct, s: &str) -> Result<MediaSetId> {
    Ok(d.catalog.media_set(s)?.id)
}

pub fn media(cmd: &MediaCmd, lib_args: &LibraryArgs, ctx: &MediaCtx<'_>) -> Result<u8> {
    let json = ctx.json;
    use crate::rotation_cmd::{RotationAction as A, RotationCmd};
    let rotation: Option<(A<'_>, Option<&str>)> = match cmd {
        MediaCmd::Pool { cmd } => Some((A::Pool(cmd), None)),
        MediaCmd::Add {
            pool,
            barcodes,
            shelf,
            date,
        } => Some((
            A::Add {
                pool,
                barcodes,
                shelf: *shelf,
            },
            date.as_deref(),
        )),
        MediaCmd::Rotation { cmd } => {
            let (RotationCmd::Today { date, .. } | RotationCmd::Settle { date, .. }) = cmd;
            Some((A::Rotation(cmd), date.as_deref()))
        }
        MediaCmd::Export { barcodes, date } => Some((A::Export(barcodes), date.as_deref())),
        MediaCmd::Sent { manifest, date } => Some((A::Sent(*manifest), date.as_deref())),
        MediaCmd::Received { barcodes, date } => Some((A::Received(barcodes), date.as_deref())),
        MediaCmd::Recall {
            barcodes,
            needed_by,
            date,
        } => Some((A::Recall(barcodes, needed_by.as_deref()), date.as_deref())),
        MediaCmd::Import { barcodes, date } => Some((A::Import(barcodes), date.as_deref())),
        MediaCmd::Manifest { id } => Some((A::Manifest(*id), None)),
        MediaCmd::Custody { barcode } => Some((A::Custody(barcode.as_deref()), None)),
        MediaCmd::Cleaned { pool, date } => Some((A::Cleaned(pool), date.as_deref())),
        MediaCmd::Damaged { barcode, date } => Some((A::Damaged(barcode), date.as_deref())),
        MediaCmd::Dispose {
            barcodes,
            method,
            date,
        } => Some((A::Dispose(barcodes, method), date.as_deref())),
        _ => None,
    };
    if let Some((action, date)) = rotation {
        let d = Direct::open(&store(ctx)?)?;
        let moves = matches!(action, A::Export(_) | A::Import(_));
        let mut lib = if moves && lib_args.given() {
            Some(lib_args.open()?)
        } else {
            None
        };
        let mut changer = match lib.as_mut() {
            Some(l) => Some(l.changer()?),
            None => None,
        };
        let ch = changer
            .as_mut()
            .map(|c| c.as_mut() as &mut dyn coffer_tape::MediaChanger);
        return crate::rotation_cmd::run(&d, action, ch, date, json);
    }
    match cmd {
        MediaCmd::Label {
            barcodes,
            pool,
            all_blank,
            force,
        } => {
            let d = Direct::open(&store(ctx)?)?;
            let mut lib = lib_args.open()?;
            let mut targets = barcodes.clone();
            if *all_blank {
                let inv = lib.changer()?.inventory()?;
                for e in inv.slots.iter().chain(&inv.ie_slots) {
                    if let Some(b) = &e.barcode
                        && !b.starts_with("CLN")
                    {
                        targets.push(b.clone());
                    }
                }
            }
            if targets.is_empty() {
                bail!("no cartridges to label: name barcodes or use --all-blank");
            }
            let mut done = Vec::new();
            let mut failed = 0;
            for b in &targets {
                match set::label(lib.as_mut(), &d.catalog, lib_args.drive, b, pool, *force) {
                    Ok(c) => {
                        if !json {
                            println!("labelled {b} for pool '{pool}' (media {})", c.media.short());
                        }
                        done.push(c);
                    }
                    // With --all-blank, a cartridge that holds anything is
                    // left alone: that is what --all-blank asks.
                    Err(coffer_media::Error::Label { reason, .. }) if *all_blank => {
                        if !json {
                            println!("left {b} alone: it {reason}");
                        }
                    }
                    Err(e) if *all_blank => {
                        eprintln!("coffer: {b}: {e}");
                        failed += 1;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            if json {
                print_json(&done)?;
            }
            Ok(if failed > 0 {
                crate::cli::EXIT_FAILED
            } else {
                EXIT_OK
            })
        }
        MediaCmd::List => {
            let d = Direct::open(&store(ctx)?)?;
            let carts = d.catalog.cartridges()?;
            let sets = d.catalog.media_sets()?;
            if json {
                print_json(&serde_json::json!({ "cartridges": carts, "media_sets": sets }))?;
            } else {
                println!(
                    "{:<10} {:<10} {:<9} {:<12} {:>4} {:>10}",
                    "barcode", "pool", "status", "media set", "seq", "data"
                );
                for c in &carts {
                    println!(
                        "{:<10} {:<10} {:<9} {:<12} {:>4} {:>10}{}",
                        c.barcode,
                        c.pool,
                        c.status.as_str(),
                        c.set.map_or("-".into(), |s| s.0.short()),
                        c.set.map_or("-".into(), |s| s.1.to_string()),
                        size(c.bytes),
                        if c.worm { "  WORM" } else { "" }
                    );
                }
                for s in &sets {
                    let n = d.catalog.set_cartridges(&s.id)?.len();
                    let objects = d.catalog.tape_objects(&s.id)?;
                    let snaps = objects
                        .iter()
                        .filter(|o| o.key.starts_with("snapshots/"))
                        .count();
                    println!(
                        "media set {} pool '{}': {n} cartridges, {snaps} snapshots, key {}",
                        s.id,
                        s.pool,
                        match (&s.key_fingerprint, &s.wrapped_key) {
                            (Some(f), Some(_)) => f.clone(),
                            (Some(_), None) => "destroyed".into(),
                            _ => "none (unencrypted)".into(),
                        }
                    );
                }
            }
            Ok(EXIT_OK)
        }
        MediaCmd::Write {
            snapshots,
            pool,
            set,
            new_set,
            no_encrypt,
            drive_encryption,
            date,
        } => {
            let d = Direct::open(&store(ctx)?)?;
            let repo = d.unlock(&passphrase(ctx.passphrase_file, false)?)?;
            let snaps: Vec<SnapshotId> = snapshots
                .iter()
                .map(|s| d.catalog.resolve_snapshot(s).map(|i| i.id))
                .collect::<std::result::Result<_, _>>()?;
            let mut lib = lib_args.open()?;
            // A pool with a rotation writes tonight's set onto the
            // cartridges its plan chose, recycling expired ones.
            let book = coffer_media::rotation::Book::new(
                &d.catalog,
                &d.actor.identity,
                coffer_engine::now_ms(),
            );
            let rotation = if d.catalog.media_pool(pool)?.is_some() {
                if set.is_some() || *new_set {
                    bail!(
                        "pool {pool} has a rotation: its plan chooses the set (leave out --set and --new-set)"
                    );
                }
                let policy = book.pool(pool)?;
                if !policy.encrypt && !no_encrypt {
                    bail!("pool {pool} writes unencrypted sets: add --no-encrypt to confirm");
                }
                if policy.encrypt && *no_encrypt {
                    bail!("pool {pool} encrypts its sets: leave out --no-encrypt");
                }
                let day = crate::rotation_cmd::day_to_record(date.as_deref())?;
                let prepared = coffer_media::rotation::tonight::prepare(
                    &book,
                    lib.as_mut(),
                    &d.catalog,
                    d.blobs.as_ref(),
                    pool,
                    day,
                    lib_args.drive,
                )?;
                if !json {
                    crate::rotation_cmd::print_shredded(&prepared.shredded);
                    for b in &prepared.recycled {
                        println!("recycled {b}: its set expired; relabelled for pool '{pool}'");
                    }
                    for b in &prepared.labelled {
                        println!("labelled {b}, a new scratch cartridge, for pool '{pool}'");
                    }
                }
                Some(prepared)
            } else {
                None
            };
            let base = WriteRequest {
                snapshots: snaps,
                set: set.as_deref().map(|s| set_id(&d, s)).transpose()?,
                new_set: *new_set,
                encrypt: !no_encrypt,
                drive_encryption: *drive_encryption,
                drive: lib_args.drive,
                ..WriteRequest::new(pool)
            };
            let req = match &rotation {
                Some(p) => p.request(&d.catalog, base)?,
                None => base,
            };
            let pb = bar(ctx.quiet || json);
            let on = follow(&pb);
            let out = set::write(&repo, &d.catalog, lib.as_mut(), &req, &d.actor, &on);
            pb.finish_and_clear();
            if let (Err(_), Some(p)) = (&out, &rotation) {
                // A cartridge the failed write began holds part of the set.
                match p.record_partial(&book, &d.catalog, pool) {
                    Ok(w) if !w.is_empty() => eprintln!(
                        "the failed write had begun on {}: recorded as part of tonight's set",
                        w.join(", ")
                    ),
                    Ok(_) => {}
                    Err(e) => eprintln!(
                        "the cartridges the failed write used could not be recorded in the rotation: {e}"
                    ),
                }
            }
            let out = out?;
            // The write is on tape: its figures are shown even when the
            // rotation cannot record it.
            let mut code = EXIT_OK;
            if let Some(p) = &rotation {
                match p.record(&book, pool, &out) {
                    Ok(false) if !json => {
                        println!("nothing new to write tonight; the rotation records no write")
                    }
                    Ok(_) => {}
                    Err(e) => {
                        eprintln!(
                            "warning: the write is on tape but the rotation could not record it: {e}"
                        );
                        code = EXIT_WARNINGS;
                    }
                }
            }
            if json {
                print_json(&serde_json::json!({
                    "media_set": out.set, "cartridges": out.cartridges, "objects": out.objects,
                    "bytes": out.bytes, "skipped": out.skipped, "snapshots": out.snapshots, "job": out.job_id,
                }))?;
            } else {
                println!(
                    "media set {}: wrote {} objects ({}) to {}; {} already on the set",
                    out.set.map(|s| s.to_hex()).unwrap_or_default(),
                    out.objects,
                    size(out.bytes),
                    if out.cartridges.is_empty() {
                        "the set's current cartridge".to_string()
                    } else {
                        out.cartridges.join(", ")
                    },
                    out.skipped
                );
            }
            Ok(code)
        }
        MediaCmd::Verify { set, pool } => {
            let dir = store(ctx)?;
            let d = Direct::open(&dir)?;
            let pass = passphrase(ctx.passphrase_file, false)?;
            let repo = d.unlock(&pass)?;
            let req = coffer_media::restore::VerifySetRequest {
                set: set.as_deref().map(|s| set_id(&d, s)).transpose()?,
                pool: pool.clone(),
                drive: lib_args.drive,
                job: None,
            };
            let mut lib = lib_args.open()?;
            let pb = bar(ctx.quiet || json);
            let on = follow(&pb);
            let r = coffer_media::restore::verify_set(
                &repo,
                &d.catalog,
                lib.as_mut(),
                &req,
                &d.actor,
                &on,
            );
            pb.finish_and_clear();
            let r = r?;
            if json {
                print_json(&serde_json::json!({
                    "media_set": r.set, "objects": r.objects, "bytes": r.bytes,
                    "compared": r.compared, "cartridges": r.cartridges,
                    "lost": r.lost, "differ": r.differ, "job": r.job_id, "ok": r.ok(),
                }))?;
            } else {
                println!(
                    "media set {}: {} objects ({}) read back from {}; {} compared with the store",
                    r.set,
                    r.objects,
                    size(r.bytes),
                    r.cartridges.join(", "),
                    r.compared
                );
                for (k, why) in &r.lost {
                    println!("  LOST    {k}: {why}");
                }
                for k in &r.differ {
                    println!("  DIFFERS {k}: the tape's copy is not the store's");
                }
                println!("{}", if r.ok() { "OK" } else { "DAMAGED" });
            }
            Ok(if r.ok() {
                EXIT_OK
            } else {
                crate::cli::EXIT_DAMAGED
            })
        }
        MediaCmd::Restore {
            snapshot,
            target,
            set,
            paths,
            overwrite,
        } => {
            let dir = store(ctx)?;
            let d = Direct::open(&dir)?;
            let pass = passphrase(ctx.passphrase_file, false)?;
            let repo = d.unlock(&pass)?;
            let snap = d.catalog.resolve_snapshot(snapshot)?.id;
            let req = TapeRestoreRequest {
                set: set.as_deref().map(|s| set_id(&d, s)).transpose()?,
                restore: RestoreRequest {
                    snapshot: snap,
                    target: target.clone(),
                    paths: paths
                        .iter()
                        .map(|p| coffer_engine::restore::normalize_selection(p.as_bytes()))
                        .collect(),
                    overwrite: *overwrite,
                    threads: 0,
                },
                drive: lib_args.drive,
                staging: dir.join(format!("tape-staging-{}", std::process::id())),
            };
            let mut lib = lib_args.open()?;
            let pb = bar(ctx.quiet || json);
            let on = follow(&pb);
            let out = coffer_media::restore::restore(
                &repo,
                &d.catalog,
                lib.as_mut(),
                &pass,
                &req,
                &d.actor,
                &on,
                &Progress::default(),
            );
            pb.finish_and_clear();
            let out = out?;
            let r = &out.restore;
            if json {
                print_json(&serde_json::json!({
                    "media_set": out.set, "cartridges": out.fetched.cartridges,
                    "objects_read": out.fetched.objects, "bytes_read": out.fetched.bytes,
                    "lost": out.fetched.lost, "files": r.files, "bytes": r.bytes,
                    "warnings": r.warnings, "errors": r.errors, "job": r.job_id, "media_job": out.job_id,
                }))?;
            } else {
                println!(
                    "read {} objects ({}) from {}",
                    out.fetched.objects,
                    size(out.fetched.bytes),
                    out.fetched.cartridges.join(", ")
                );
                for (k, why) in &out.fetched.lost {
                    println!("lost: {k}: {why}");
                }
                for w in &r.warnings {
                    println!("warning: {w}");
                }
                for e in &r.errors {
                    println!("error: {e}");
                }
                println!(
                    "restored {} files ({}) to {}",
                    r.files,
                    size(r.bytes),
                    target.display()
                );
            }
            Ok(if !r.errors.is_empty() {
                crate::cli::EXIT_FAILED
            } else if !r.warnings.is_empty() || !out.fetched.lost.is_empty() {
                EXIT_WARNINGS
            } else {
                EXIT_OK
            })
        }
        MediaCmd::Recover {
            set,
            restore,
            target,
            incomplete,
        } => {
            let dir = store(ctx)?;
            let pass = passphrase(ctx.passphrase_file, false)?;
            let mut lib = lib_args.open()?;
            let pb = bar(ctx.quiet || json);
            let on = |barcode: &str, done: u64, _total: u64| {
                pb.set_position(done);
                pb.set_message(barcode.to_string());
            };
            let actor = coffer_engine::Actor::current();
            let res = coffer_media::restore::recover(
                lib.as_mut(),
                &pass,
                &RecoverRequest {
                    store: dir.clone(),
                    set: set.clone(),
                    drive: lib_args.drive,
                    incomplete: *incomplete,
                },
                &actor,
                &on,
            );
            pb.finish_and_clear();
            let (repo, catalog, out) = res?;
            let mut restored = None;
            if let (Some(s), Some(t)) = (restore, target) {
                let snap = catalog.resolve_snapshot(s)?.id;
                let r = coffer_engine::restore(
                    &repo,
                    &catalog,
                    &RestoreRequest {
                        snapshot: snap,
                        target: t.clone(),
                        paths: Vec::new(),
                        overwrite: false,
                        threads: 0,
                    },
                    &actor,
                    &Progress::default(),
                )
                .with_context(|| format!("restore snapshot {s} from the recovered store"))?;
                restored = Some(r);
            }
            if json {
                print_json(&serde_json::json!({
                    "media_set": out.set, "store": dir, "store_id": out.store, "cartridges": out.cartridges,
                    "objects": out.objects, "bytes": out.bytes, "lost": out.lost, "missing": out.missing,
                    "snapshots": out.snapshots, "skipped": out.skipped, "notes": out.notes, "job": out.job_id,
                    "restore": restored.as_ref().map(|r| serde_json::json!({
                        "files": r.files, "bytes": r.bytes, "errors": r.errors, "warnings": r.warnings,
                        "job": r.job_id,
                    })),
                }))?;
            } else {
                println!(
                    "recovered media set {} into {}: {} objects ({}) from {}; {} snapshots",
                    out.set.map(|s| s.to_hex()).unwrap_or_default(),
                    dir.display(),
                    out.objects,
                    size(out.bytes),
                    out.cartridges.join(", "),
                    out.snapshots
                );
                for (b, why) in &out.skipped {
                    println!("skipped {b}: {why}");
                }
                for (k, why) in &out.lost {
                    println!("lost: {}: {why}", k.as_deref().unwrap_or("objects"));
                }
                for k in &out.missing {
                    println!("not recovered: {k}");
                }
                for n in &out.notes {
                    println!("note: {n}");
                }
                if let Some(r) = &restored {
                    for e in &r.errors {
                        println!("error: {e}");
                    }
                    println!("restored {} files ({})", r.files, size(r.bytes));
                }
            }
            let damaged = !out.lost.is_empty() || !out.missing.is_empty();
            Ok(match &restored {
                Some(r) if !r.errors.is_empty() => crate::cli::EXIT_FAILED,
                Some(r) if !r.warnings.is_empty() => EXIT_WARNINGS,
                _ if damaged || out.set_continues => EXIT_WARNINGS,
                _ => EXIT_OK,
            })
        }
        MediaCmd::Pool { .. }
        | MediaCmd::Add { .. }
        | MediaCmd::Rotation { .. }
        | MediaCmd::Export { .. }
        | MediaCmd::Sent { .. }
        | MediaCmd::Received { .. }
        | MediaCmd::Recall { .. }
        | MediaCmd::Import { .. }
        | MediaCmd::Manifest { .. }
        | MediaCmd::Custody { .. }
        | MediaCmd::Cleaned { .. }
        | MediaCmd::Damaged { .. }
        | MediaCmd::Dispose { .. } => unreachable!("rotation commands return above"),
    }
}
