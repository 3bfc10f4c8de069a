//! `coffer disk …` and `coffer pool …`: the appliance's disks and the pools
//! built on them.

use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow, bail};
use clap::Subcommand;
pub use coffer_pool::PoolLink;
use coffer_pool::admin::{self, CreateOptions};
use coffer_pool::{Geometry, OpenOptions, Pool, PoolStatus, ScrubReport};
use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::{EXIT_DAMAGED, EXIT_OK, EXIT_WARNINGS, print_json};
use crate::output::size;

#[derive(Subcommand, Debug)]
pub enum DiskCmd {
    /// Block devices: size, type, model, serial, WWN, stable name, partitions, mounts, SMART health.
    List {
        /// Do not ask smartctl (faster; no health column).
        #[arg(long)]
        no_smart: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum PoolCmd {
    /// Create a pool on empty member directories (each its own mounted disk).
    Create {
        /// The pool's name.
        #[arg(long, default_value = "main")]
        name: String,
        /// Data shards per object (default by member count: 4 → 2+2, 6 → 4+2, …).
        #[arg(long, requires = "parity")]
        data: Option<u8>,
        /// Parity shards per object: how many members may fail.
        #[arg(long, requires = "data")]
        parity: Option<u8>,
        /// Allow members on one disk (development and tests only: such a pool survives no disk failure).
        #[arg(long)]
        allow_same_device: bool,
        /// The member directories.
        #[arg(required = true, num_args = 2..)]
        members: Vec<PathBuf>,
    },
    /// Capacity, members, their state and SMART health, the last scrub.
    Status {
        /// Any member of the pool (default: the pool of --store).
        #[arg(long)]
        pool: Option<PathBuf>,
    },
    /// Read every shard, verify its hashes, rewrite damaged or missing ones from parity.
    Scrub {
        /// Any member of the pool (default: the pool of --store).
        #[arg(long)]
        pool: Option<PathBuf>,
    },
    /// Replace a member (failed or failing) by an empty disk and rebuild onto it.
    Replace {
        /// Any member of the pool (default: the pool of --store).
        #[arg(long)]
        pool: Option<PathBuf>,
        /// Allow the new member on a disk another member uses (development only).
        #[arg(long)]
        allow_same_device: bool,
        /// Change the membership only; rebuild later with 'pool scrub'.
        #[arg(long)]
        no_rebuild: bool,
        /// The member to replace: its id or path.
        old: String,
        /// The new, empty member directory.
        new: PathBuf,
    },
    /// Add an empty disk to the pool; new data is placed on it by free space.
    Add {
        /// Any member of the pool (default: the pool of --store).
        #[arg(long)]
        pool: Option<PathBuf>,
        /// Allow the new member on a disk another member uses (development only).
        #[arg(long)]
        allow_same_device: bool,
        /// The new, empty member directory.
        new: PathBuf,
    },
    /// Mark the pool exported so its disks can move to another appliance.
    Export {
        /// Any member of the pool (default: the pool of --store).
        #[arg(long)]
        pool: Option<PathBuf>,
    },
    /// Import a pool from where its disks are mounted now.
    Import {
        /// Import a pool that was not exported (its old appliance is gone).
        #[arg(long)]
        force: bool,
        /// The member directories as mounted here.
        #[arg(required = true)]
        members: Vec<PathBuf>,
    },
}

/// The pool a pool command works on: `--pool`, or the store's.
fn pool_path(pool: &Option<PathBuf>, store: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = pool {
        return Ok(p.clone());
    }
    if let Some(s) = store
        && let Some(link) = PoolLink::read(s)?
    {
        return link
            .reachable_member()
            .map(Path::to_path_buf)
            .ok_or_else(|| anyhow!("none of the members of pool '{}' is reachable", link.name));
    }
    bail!("no pool given: use --pool MEMBER_DIR (any member), or --store of a store on a pool")
}

fn bar(total: u64, hidden: bool, what: &str) -> ProgressBar {
    if hidden {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(total);
    pb.set_style(
        ProgressStyle::with_template(&format!(
            "{what} [{{bar:30}}] {{pos}}/{{len}} objects, {{msg}} {{elapsed}}"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb
}

fn run_scrub(pool: &Pool, quiet: bool, what: &str) -> Result<ScrubReport> {
    let pb = bar(0, quiet, what);
    let r = pool.scrub(&|p| {
        pb.set_length(p.objects_total);
        pb.set_position(p.objects_done);
        pb.set_message(size(p.bytes));
    })?;
    pb.finish_and_clear();
    Ok(r)
}

fn print_scrub(r: &ScrubReport, what: &str) {
    println!(
        "{what} of pool '{}': {} objects, {} shards ({}) read in {:.1} s; {} missing, {} damaged, {} rewritten",
        r.pool,
        r.objects,
        r.shards_checked,
        size(r.bytes_checked),
        r.seconds,
        r.shards_missing,
        r.shards_damaged,
        r.shards_repaired
    );
    for m in &r.members {
        if m.damaged > 0 || m.written > 0 || m.state != "online" {
            println!(
                "  member {} ({}): {}, {} shards, {} damaged, {} written",
                m.id,
                m.path.display(),
                m.state,
                m.shards,
                m.damaged,
                m.written
            );
        }
    }
    for u in &r.unrecoverable {
        println!("UNRECOVERABLE: {u}");
    }
    for f in &r.failures {
        println!("NOT REPAIRED: {f}");
    }
    println!(
        "{}",
        if r.ok() {
            "every object is whole and fully redundant"
        } else {
            "DAMAGE REMAINS (see above)"
        }
    );
}

fn print_status(s: &PoolStatus) {
    println!(
        "pool '{}' ({}), {}+{}, generation {}, {}: {}",
        s.name,
        s.id,
        s.data_shards,
        s.parity_shards,
        s.generation,
        match s.state {
            coffer_pool::PoolState::Active => "active",
            coffer_pool::PoolState::Exported => "exported",
        },
        match s.health {
            coffer_pool::PoolHealth::Online => "ONLINE",
            coffer_pool::PoolHealth::Degraded => "DEGRADED",
            coffer_pool::PoolHealth::Unavailable => "UNAVAILABLE",
        }
    );
    println!(
        "capacity: {} raw, {} free raw, {} free for data after parity",
        size(s.raw_total),
        size(s.raw_available),
        size(s.usable_available)
    );
    println!(
        "{:<17} {:<8} {:>10} {:>10} {:<8} {:>6} PATH",
        "MEMBER", "STATE", "SIZE", "FREE", "SMART", "ERRORS"
    );
    for m in &s.members {
        let (total, free) = m
            .capacity
            .map(|c| (size(c.total), size(c.available)))
            .unwrap_or(("-".into(), "-".into()));
        println!(
            "{:<17} {:<8} {:>10} {:>10} {:<8} {:>6} {}",
            m.id,
            m.state,
            total,
            free,
            m.health.as_ref().map(|h| h.verdict.as_str()).unwrap_or("-"),
            m.read_errors + m.write_errors + m.checksum_errors,
            m.path.display()
        );
        if let Some(r) = &m.reason {
            println!("{:<17} └ {r}", "");
        }
        if let Some(h) = &m.health
            && !h.reasons.is_empty()
        {
            println!("{:<17} └ SMART: {}", "", h.reasons.join(", "));
        }
    }
    match &s.last_scrub {
        Some(r) => println!(
            "last scrub: {} ({} objects; {} damaged, {} missing, {} rewritten; {})",
            r.started,
            r.objects,
            r.shards_damaged,
            r.shards_missing,
            r.shards_repaired,
            if r.ok() { "ok" } else { "damage remained" }
        ),
        None => println!("last scrub: never"),
    }
}

/// Runs `coffer disk …`.
pub fn disk(cmd: &DiskCmd, json: bool) -> Result<u8> {
    let DiskCmd::List { no_smart } = cmd;
    let mut disks = coffer_block::disks::discover_system()?;
    let smart = !no_smart && coffer_block::smart::smartctl_available();
    let mut notes = Vec::new();
    if smart {
        for d in &mut disks {
            match coffer_block::smart::query(&d.path) {
                Ok(h) => d.health = h,
                Err(e) => notes.push(format!("{}: {e}", d.name)),
            }
        }
    } else if !no_smart {
        notes.push("smartctl is not installed (apt install smartmontools): no health shown".into());
    }
    // Capacity of every mounted filesystem on these disks, from statvfs.
    let mut filesystems = Vec::new();
    for d in &disks {
        let mounts = d
            .mounts
            .iter()
            .chain(d.partitions.iter().flat_map(|p| p.mounts.iter()));
        for m in mounts {
            if let Ok(c) = coffer_block::capacity(m) {
                filesystems.push((d.name.clone(), m.clone(), c));
            }
        }
    }
    if json {
        let fs: Vec<_> = filesystems
            .iter()
            .map(|(d, m, c)| serde_json::json!({ "disk": d, "mount": m, "capacity": c }))
            .collect();
        print_json(&serde_json::json!({ "disks": disks, "filesystems": fs, "notes": notes }))?;
        return Ok(EXIT_OK);
    }
    println!(
        "{:<10} {:>10} {:<4} {:<28} {:<20} {:<8} MOUNTS / STABLE NAME",
        "NAME", "SIZE", "TYPE", "MODEL", "SERIAL", "HEALTH"
    );
    for d in &disks {
        let mounts: Vec<String> = d
            .mounts
            .iter()
            .map(|m| m.display().to_string())
            .chain(d.partitions.iter().flat_map(|p| {
                p.mounts
                    .iter()
                    .map(move |m| format!("{}:{}", p.name, m.display()))
            }))
            .collect();
        println!(
            "{:<10} {:>10} {:<4} {:<28} {:<20} {:<8} {}{}",
            d.name,
            size(d.size),
            if d.rotational { "hdd" } else { "ssd" },
            d.model.as_deref().unwrap_or("-"),
            d.serial.as_deref().unwrap_or("-"),
            d.health.as_ref().map(|h| h.verdict.as_str()).unwrap_or("-"),
            mounts.join(","),
            d.by_id
                .as_ref()
                .map(|p| format!(" {}", p.display()))
                .unwrap_or_default()
        );
        if let Some(h) = &d.health
            && !h.reasons.is_empty()
        {
            println!("{:<10} └ {}", "", h.reasons.join(", "));
        }
    }
    if !filesystems.is_empty() {
        println!();
        println!("{:<10} {:>10} {:>10} MOUNT", "DISK", "SIZE", "FREE");
        for (d, m, c) in &filesystems {
            println!(
                "{:<10} {:>10} {:>10} {}",
                d,
                size(c.total),
                size(c.available),
                m.display()
            );
        }
    }
    for n in &notes {
        eprintln!("coffer: note: {n}");
    }
    Ok(EXIT_OK)
}

/// Runs `coffer pool …`.
pub fn pool(cmd: &PoolCmd, store: Option<&Path>, json: bool, quiet: bool) -> Result<u8> {
    let hidden = quiet || json;
    match cmd {
        PoolCmd::Create {
            name,
            data,
            parity,
            allow_same_device,
            members,
        } => {
            let geometry = match (data, parity) {
                (Some(d), Some(p)) => Some(Geometry {
                    data: *d,
                    parity: *p,
                }),
                _ => None,
            };
            let meta = admin::create(
                members,
                &CreateOptions {
                    name: name.clone(),
                    geometry,
                    allow_same_device: *allow_same_device,
                    block_size: None,
                },
            )?;
            if json {
                print_json(&meta)?;
            } else {
                println!(
                    "created pool '{}' ({}): {}+{} over {} members; any {} may fail",
                    meta.name,
                    meta.id,
                    meta.data_shards,
                    meta.parity_shards,
                    meta.members.len(),
                    meta.parity_shards
                );
                println!(
                    "put a store on it with: coffer --store DIR init --pool {}",
                    meta.members[0].path.display()
                );
            }
            Ok(EXIT_OK)
        }
        PoolCmd::Status { pool } => {
            let p = admin::open_any(&pool_path(pool, store)?)?;
            let s = p.status();
            if json {
                print_json(&s)?;
            } else {
                print_status(&s);
            }
            Ok(match s.health {
                coffer_pool::PoolHealth::Online => EXIT_OK,
                _ => EXIT_WARNINGS,
            })
        }
        PoolCmd::Scrub { pool } => {
            let p = Pool::open(&pool_path(pool, store)?, &OpenOptions::with_smart())?;
            let r = run_scrub(&p, hidden, "scrub")?;
            if json {
                print_json(&r)?;
            } else {
                print_scrub(&r, "scrub");
            }
            Ok(if r.ok() { EXIT_OK } else { EXIT_DAMAGED })
        }
        PoolCmd::Replace {
            pool,
            allow_same_device,
            no_rebuild,
            old,
            new,
        } => {
            let path = pool_path(pool, store)?;
            let p = Pool::open(&path, &OpenOptions::default())?;
            let meta = admin::replace(&p, old, new, *allow_same_device)?;
            drop(p);
            update_link(store, &meta)?;
            if !json {
                println!(
                    "member {old} replaced by {} (generation {})",
                    new.display(),
                    meta.generation
                );
            }
            if *no_rebuild {
                if json {
                    print_json(&meta)?;
                } else {
                    println!("run 'coffer pool scrub' to rebuild its shards");
                }
                return Ok(EXIT_OK);
            }
            let p = Pool::open(new, &OpenOptions::with_smart())?;
            let r = run_scrub(&p, hidden, "rebuild")?;
            if json {
                print_json(&serde_json::json!({ "pool": meta, "rebuild": r }))?;
            } else {
                print_scrub(&r, "rebuild");
            }
            Ok(if r.ok() { EXIT_OK } else { EXIT_DAMAGED })
        }
        PoolCmd::Add {
            pool,
            allow_same_device,
            new,
        } => {
            let p = Pool::open(&pool_path(pool, store)?, &OpenOptions::default())?;
            let meta = admin::add(&p, new, *allow_same_device)?;
            update_link(store, &meta)?;
            if json {
                print_json(&meta)?;
            } else {
                println!(
                    "added {} to pool '{}' (now {} members, generation {})",
                    new.display(),
                    meta.name,
                    meta.members.len(),
                    meta.generation
                );
            }
            Ok(EXIT_OK)
        }
        PoolCmd::Export { pool } => {
            let p = Pool::open(&pool_path(pool, store)?, &OpenOptions::default())?;
            let meta = admin::export(&p)?;
            if json {
                print_json(&meta)?;
            } else {
                println!(
                    "pool '{}' exported (generation {}): its disks may be moved; import it with 'coffer pool import MEMBER…'",
                    meta.name, meta.generation
                );
            }
            Ok(EXIT_OK)
        }
        PoolCmd::Import { force, members } => {
            let rep = admin::import(members, *force)?;
            update_link(store, &rep.pool)?;
            if json {
                print_json(&rep)?;
            } else {
                println!(
                    "imported pool '{}' ({}), generation {}: {} of {} members found",
                    rep.pool.name,
                    rep.pool.id,
                    rep.pool.generation,
                    rep.found.len(),
                    rep.pool.members.len()
                );
                for m in &rep.missing {
                    println!("missing: {m}");
                }
                for s in &rep.stale {
                    println!("stale, left untouched: {s}");
                }
            }
            Ok(if rep.missing.is_empty() && rep.stale.is_empty() {
                EXIT_OK
            } else {
                EXIT_WARNINGS
            })
        }
    }
}

/// Keeps a store's pool link current when the pool's members change.
fn update_link(store: Option<&Path>, meta: &coffer_pool::PoolMeta) -> Result<()> {
    let Some(s) = store else { return Ok(()) };
    match PoolLink::read(s)? {
        Some(link) if link.pool_id == meta.id => Ok(PoolLink::write(s, meta)?),
        _ => Ok(()),
    }
}
