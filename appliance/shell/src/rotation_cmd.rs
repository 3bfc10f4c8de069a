//! `coffer media pool|add|rotation|export|sent|received|recall|import|
//! manifest|custody|cleaned`: media pools and the daily rotation
//! procedure, recorded in the store's catalog (chain of custody included).

use anyhow::{Result, anyhow, bail};
use clap::{Args, Subcommand};
use coffer_media::rotation::{
    Allocation, Book, Continuous, Day, Gfs, Hanoi, Level, PoolPolicy, Recorded, Scheme, Weekday,
    state_label,
};

use crate::cli::{Direct, EXIT_OK, EXIT_WARNINGS, print_json};

/// `coffer media pool …`
#[derive(Subcommand, Debug)]
pub enum PoolCmd {
    /// Create or change a media pool and its rotation scheme.
    Add(Box<PoolArgs>),
    /// The pools, with their schemes and cartridge counts.
    List,
    /// One pool: its policy, sizing and cartridges.
    Show {
        /// The pool.
        name: String,
    },
}

/// A pool's policy, from flags.
#[derive(Args, Debug)]
pub struct PoolArgs {
    /// The pool's name.
    name: String,
    /// Rotation scheme: gfs, hanoi or continuous.
    #[arg(long, default_value = "gfs")]
    scheme: String,
    /// First day of the rotation (default: today).
    #[arg(long, value_name = "YYYY-MM-DD")]
    start: Option<String>,
    /// Backup days (default: mon,tue,wed,thu,fri).
    #[arg(long, value_delimiter = ',', value_name = "DAYS")]
    days: Vec<String>,
    /// GFS: the weekly full's day.
    #[arg(long, default_value = "fri", value_name = "DAY")]
    full_day: String,
    /// GFS: dailies are differential (default incremental).
    #[arg(long)]
    differential: bool,
    /// GFS: weeks a daily set is kept.
    #[arg(long, default_value_t = 2)]
    keep_daily_weeks: u32,
    /// GFS: weeks a weekly full is kept.
    #[arg(long, default_value_t = 5)]
    keep_weekly_weeks: u32,
    /// GFS: months a monthly full is kept.
    #[arg(long, default_value_t = 12)]
    keep_monthly_months: u32,
    /// GFS: years a yearly full is kept (0: no yearly tier).
    #[arg(long, default_value_t = 0)]
    keep_yearly_years: u32,
    /// Tower of Hanoi: number of sets.
    #[arg(long, default_value_t = 5)]
    sets: u8,
    /// Continuous: days a set is kept after its last write.
    #[arg(long, default_value_t = 30)]
    keep_days: u32,
    /// When a job starts a new set: continue, always-new, or every:N (days).
    #[arg(long, default_value = "continue")]
    allocation: String,
    /// Barcode rule of the pool's cartridges (`?` one character, `*` any).
    #[arg(long, default_value = "")]
    barcodes: String,
    /// The pool writes WORM cartridges only.
    #[arg(long)]
    worm: bool,
    /// Media sets are not encrypted (not recommended).
    #[arg(long)]
    no_encrypt: bool,
    /// The vault media sets go to (none: they stay onsite).
    #[arg(long, value_name = "NAME")]
    vault: Option<String>,
    /// GFS daily sets go to the vault too.
    #[arg(long)]
    offsite_dailies: bool,
    /// Days the courier takes, either way.
    #[arg(long, default_value_t = 1)]
    courier_days: u32,
    /// Days the courier calls (default: mon,tue,wed,thu,fri).
    #[arg(long, value_delimiter = ',', value_name = "DAYS")]
    pickups: Vec<String>,
    /// Cartridges a media set needs.
    #[arg(long, default_value_t = 1)]
    cartridges_per_set: u32,
    /// Clean the drives every this many days (0: never).
    #[arg(long, default_value_t = 30)]
    clean_every_days: u32,
    /// Crypto-shred expired sets: each set's key is kept in escrow (the
    /// catalog and the store), not on the cartridges, and destroyed when
    /// the set expires.
    #[arg(long)]
    shred: bool,
}

/// `coffer media rotation …`
#[derive(Subcommand, Debug)]
pub enum RotationCmd {
    /// The day's procedure: what goes to the vault, what comes back,
    /// tonight's cartridges, cleaning, warnings.
    Today {
        /// Only this pool (default: every pool).
        #[arg(long)]
        pool: Option<String>,
        /// Another day than today.
        #[arg(long, value_name = "YYYY-MM-DD")]
        date: Option<String>,
    },
    /// Records the day's expiries and closed sets.
    Settle {
        /// Only this pool (default: every pool).
        #[arg(long)]
        pool: Option<String>,
        /// Another day than today.
        #[arg(long, value_name = "YYYY-MM-DD")]
        date: Option<String>,
    },
}

fn weekday(s: &str) -> Result<Weekday> {
    Ok(match s.to_ascii_lowercase().get(..3).unwrap_or_default() {
        "mon" => Weekday::Mon,
        "tue" => Weekday::Tue,
        "wed" => Weekday::Wed,
        "thu" => Weekday::Thu,
        "fri" => Weekday::Fri,
        "sat" => Weekday::Sat,
        "sun" => Weekday::Sun,
        _ => bail!("'{s}' is not a day of the week (mon … sun)"),
    })
}

fn weekdays(v: &[String]) -> Result<Vec<Weekday>> {
    if v.is_empty() {
        return Ok(Weekday::WORKING.to_vec());
    }
    v.iter().map(|s| weekday(s)).collect()
}

/// The day `date` names, or today (UTC).
pub fn day(date: Option<&str>) -> Result<Day> {
    match date {
        Some(s) => Day::parse(s).ok_or_else(|| anyhow!("'{s}' is not a date (YYYY-MM-DD)")),
        None => Ok(Day::from_ms(coffer_engine::now_ms())),
    }
}

/// The day a state-changing step is recorded as: today, or an earlier day
/// (a step recorded late); never a day to come, which would expire sets
/// before their time.
pub fn day_to_record(date: Option<&str>) -> Result<Day> {
    let d = day(date)?;
    let today = day(None)?;
    if d > today {
        bail!(
            "{d} is after today ({today}): a step is recorded on the day it happens, never ahead"
        );
    }
    Ok(d)
}

impl PoolArgs {
    fn policy(&self) -> Result<PoolPolicy> {
        let days = weekdays(&self.days)?;
        let scheme = match self.scheme.as_str() {
            "gfs" => Scheme::Gfs(Gfs {
                backup_days: days,
                full_day: weekday(&self.full_day)?,
                daily_level: if self.differential {
                    Level::Differential
                } else {
                    Level::Incremental
                },
                keep_daily_weeks: self.keep_daily_weeks,
                keep_weekly_weeks: self.keep_weekly_weeks,
                keep_monthly_months: self.keep_monthly_months,
                keep_yearly_years: self.keep_yearly_years,
                yearly_month: 12,
            }),
            "hanoi" => Scheme::Hanoi(Hanoi {
                sets: self.sets,
                backup_days: days,
            }),
            "continuous" => Scheme::Continuous(Continuous {
                backup_days: days,
                keep_days: self.keep_days,
            }),
            other => bail!("'{other}' is not a rotation scheme (gfs, hanoi, continuous)"),
        };
        let allocation = match self.allocation.as_str() {
            "continue" => Allocation::Continue,
            "always-new" => Allocation::AlwaysNew,
            s => match s.strip_prefix("every:").map(str::parse::<u32>) {
                Some(Ok(days)) => Allocation::Every { days },
                _ => bail!(
                    "'{s}' is not an allocation (continue, always-new, every:N for a new set every N days)"
                ),
            },
        };
        Ok(PoolPolicy {
            name: self.name.clone(),
            scheme,
            allocation,
            start: day(self.start.as_deref())?,
            barcode_rule: self.barcodes.clone(),
            encrypt: !self.no_encrypt,
            worm: self.worm,
            vault: self.vault.clone(),
            offsite_dailies: self.offsite_dailies,
            courier_days: self.courier_days,
            pickup_days: weekdays(&self.pickups)?,
            cartridges_per_set: self.cartridges_per_set,
            clean_every_days: self.clean_every_days,
            shred: self.shred,
        })
    }
}

fn scheme_line(p: &PoolPolicy) -> String {
    let s = match &p.scheme {
        Scheme::Gfs(g) => format!(
            "GFS: fulls on {:?}, {:?} dailies kept {} weeks, weeklies {} weeks, monthlies {} months{}",
            g.full_day,
            g.daily_level,
            g.keep_daily_weeks,
            g.keep_weekly_weeks,
            g.keep_monthly_months,
            if g.keep_yearly_years > 0 {
                format!(", yearlies {} years", g.keep_yearly_years)
            } else {
                String::new()
            }
        ),
        Scheme::Hanoi(h) => format!("Tower of Hanoi, {} sets", h.sets),
        Scheme::Continuous(c) => format!("continuous, sets kept {} days", c.keep_days),
    };
    let vault = match &p.vault {
        Some(v) => format!(
            "vault {v} (courier {} day(s), calls {:?})",
            p.courier_days, p.pickup_days
        ),
        None => "no vault".into(),
    };
    format!(
        "{s}; {vault}; {}{}",
        if p.worm { "WORM, " } else { "" },
        if p.encrypt {
            "encrypted"
        } else {
            "not encrypted"
        }
    )
}

fn pool_of(book: &Book<'_>, d: &Direct, barcodes: &[String]) -> Result<String> {
    let Some(first) = barcodes.first() else {
        bail!("name at least one cartridge");
    };
    let pool = d.catalog.rotation_pool_of(first)?.ok_or_else(|| {
        anyhow!("cartridge {first} is not in any pool (`coffer media add POOL {first}`)")
    })?;
    book.pool(&pool)?;
    Ok(pool)
}

fn print_recorded(r: &Recorded, verb: &str, json: bool) -> Result<()> {
    if json {
        return print_json(r);
    }
    for (b, state) in &r.cartridges {
        println!("{b}: {verb}; now {state}");
    }
    if let Some(m) = r.manifest {
        println!("transfer manifest {m} (`coffer media manifest {m}` prints it)");
    }
    Ok(())
}

/// Says which expired sets were crypto-shredded.
pub fn print_shredded(shredded: &[coffer_media::rotation::shred::Shredded]) {
    for s in shredded {
        println!(
            "media set {}: expired; its key was destroyed (crypto-shredding), disposal certificate {}",
            s.set, s.certificate
        );
    }
}

/// What a rotation command does; `changer` opens the library when one is
/// given (export and import move cartridges through its mail slots).
pub enum RotationAction<'a> {
    /// `pool …`
    Pool(&'a PoolCmd),
    /// `add POOL BARCODE… [--shelf]`
    Add {
        /// Pool.
        pool: &'a str,
        /// Cartridges.
        barcodes: &'a [String],
        /// On the shelf rather than in the library.
        shelf: bool,
    },
    /// `rotation …`
    Rotation(&'a RotationCmd),
    /// `export BARCODE…`
    Export(&'a [String]),
    /// `sent MANIFEST`
    Sent(i64),
    /// `received BARCODE…`
    Received(&'a [String]),
    /// `recall BARCODE… [--needed-by D]`
    Recall(&'a [String], Option<&'a str>),
    /// `import BARCODE…`
    Import(&'a [String]),
    /// `manifest [ID]`
    Manifest(Option<i64>),
    /// `custody [BARCODE]`
    Custody(Option<&'a str>),
    /// `cleaned POOL`
    Cleaned(&'a str),
    /// `damaged BARCODE`
    Damaged(&'a str),
    /// `dispose BARCODE… --method M`
    Dispose(&'a [String], &'a str),
}

/// Runs a rotation command against the store's catalog.
pub fn run(
    d: &Direct,
    action: RotationAction<'_>,
    changer: Option<&mut dyn coffer_tape::MediaChanger>,
    date: Option<&str>,
    json: bool,
) -> Result<u8> {
    let book = Book::new(&d.catalog, &d.actor.identity, coffer_engine::now_ms());
    // Looking ahead is fine; recording ahead is not.
    let records = !matches!(
        action,
        RotationAction::Rotation(RotationCmd::Today { .. })
            | RotationAction::Pool(PoolCmd::List | PoolCmd::Show { .. })
            | RotationAction::Manifest(_)
            | RotationAction::Custody(_)
    );
    let today = if records {
        day_to_record(date)?
    } else {
        day(date)?
    };
    match action {
        RotationAction::Pool(PoolCmd::Add(args)) => {
            let policy = args.policy()?;
            book.put_pool(&policy)?;
            let required = book.required(&policy.name)?;
            if json {
                print_json(
                    &serde_json::json!({ "pool": policy, "required_cartridges": required }),
                )?;
            } else {
                println!("media pool {}: {}", policy.name, scheme_line(&policy));
                println!(
                    "its scheme needs {required} cartridges (`coffer media add {} BARCODE…`)",
                    policy.name
                );
            }
        }
        RotationAction::Pool(PoolCmd::List) => {
            let pools = book.pools()?;
            if json {
                return print_json(&pools).map(|()| EXIT_OK);
            }
            if pools.is_empty() {
                println!("no media pools: create one with `coffer media pool add NAME --vault V`");
            }
            for p in &pools {
                let n = book.inventory(&p.name)?.carts.len();
                println!("{:<12} {n:>4} cartridges  {}", p.name, scheme_line(p));
            }
        }
        RotationAction::Pool(PoolCmd::Show { name }) => {
            let p = book.pool(name)?;
            let inv = book.inventory(name)?;
            let required = book.required(name)?;
            if json {
                return print_json(&serde_json::json!({
                    "pool": p, "required_cartridges": required, "cartridges": inv.carts, "sets": inv.sets,
                }))
                .map(|()| EXIT_OK);
            }
            println!("media pool {name}: {}", scheme_line(&p));
            println!(
                "{} cartridges; the scheme needs {required}",
                inv.carts.len()
            );
            for c in &inv.carts {
                println!(
                    "  {:<9} {:<16} {:<40} {}",
                    c.barcode,
                    c.kind.to_string(),
                    state_label(c),
                    c.set.as_deref().unwrap_or("-")
                );
            }
        }
        RotationAction::Add {
            pool,
            barcodes,
            shelf,
        } => {
            let r = book.add_cartridges(pool, barcodes, !shelf, today)?;
            print_recorded(&r, &format!("registered in pool {pool}"), json)?;
        }
        RotationAction::Rotation(RotationCmd::Today { pool, .. }) => {
            let names: Vec<String> = match pool {
                Some(p) => vec![p.clone()],
                None => book.pools()?.into_iter().map(|p| p.name).collect(),
            };
            if names.is_empty() {
                bail!("no media pools: create one with `coffer media pool add NAME --vault V`");
            }
            let mut plans = Vec::new();
            for n in &names {
                plans.push(book.today(n, today)?);
            }
            let warned = plans.iter().any(|p| !p.warnings.is_empty());
            if json {
                print_json(&plans)?;
            } else {
                for p in &plans {
                    println!(
                        "{}",
                        coffer_media::rotation::checklist(p, &book.inventory(&p.pool)?)
                    );
                }
            }
            return Ok(if warned { EXIT_WARNINGS } else { EXIT_OK });
        }
        RotationAction::Rotation(RotationCmd::Settle { pool, .. }) => {
            let names: Vec<String> = match pool {
                Some(p) => vec![p.clone()],
                None => book.pools()?.into_iter().map(|p| p.name).collect(),
            };
            for n in &names {
                let plan = book.today(n, today)?;
                let r = book.settle(n, &plan)?;
                let shredded = coffer_media::rotation::shred::expired(
                    &d.catalog,
                    d.blobs.as_ref(),
                    n,
                    &d.actor.identity,
                    coffer_engine::now_ms(),
                )?;
                if json {
                    print_json(
                        &serde_json::json!({ "pool": n, "recorded": r, "shredded": shredded }),
                    )?;
                } else {
                    print_recorded(&r, "settled", false)?;
                    print_shredded(&shredded);
                }
            }
        }
        RotationAction::Export(barcodes) => {
            let pool = pool_of(&book, d, barcodes)?;
            let r = book.export(&pool, barcodes, today, changer)?;
            print_recorded(&r, "in an export slot", json)?;
        }
        RotationAction::Sent(id) => {
            let r = book.sent(id, today)?;
            print_recorded(&r, "handed to the courier", json)?;
        }
        RotationAction::Received(barcodes) => {
            let pool = pool_of(&book, d, barcodes)?;
            let r = book.received(&pool, barcodes, today)?;
            print_recorded(&r, "received", json)?;
        }
        RotationAction::Recall(barcodes, needed_by) => {
            let pool = pool_of(&book, d, barcodes)?;
            let by = match needed_by {
                Some(s) => day(Some(s))?,
                None => today.plus(book.pool(&pool)?.courier_days as i32 + 1),
            };
            let wanted: Vec<(String, Day)> = barcodes.iter().map(|b| (b.clone(), by)).collect();
            let r = book.recall(&pool, &wanted, today)?;
            print_recorded(&r, "recall requested", json)?;
        }
        RotationAction::Import(barcodes) => {
            let pool = pool_of(&book, d, barcodes)?;
            let r = book.import(&pool, barcodes, today, changer)?;
            print_recorded(&r, "in the library", json)?;
        }
        RotationAction::Manifest(Some(id)) => {
            let m = d
                .catalog
                .transfer_manifest(id)?
                .ok_or_else(|| anyhow!("no transfer manifest {id}"))?;
            if json {
                return print_json(&m).map(|()| EXIT_OK);
            }
            let inv = book.inventory(&m.pool)?;
            let sets: Vec<Option<String>> = m
                .barcodes
                .iter()
                .map(|b| inv.cart(b).and_then(|c| c.set.clone()))
                .collect();
            print!("{}", coffer_media::rotation::manifest_text(&m, &sets));
        }
        RotationAction::Manifest(None) => {
            let all = d.catalog.transfer_manifests()?;
            if json {
                return print_json(&all).map(|()| EXIT_OK);
            }
            print!("{}", coffer_media::rotation::manifests_table(&all));
        }
        RotationAction::Custody(barcode) => {
            let chain = d.catalog.custody(barcode)?;
            if json {
                return print_json(&chain).map(|()| EXIT_OK);
            }
            print!("{}", coffer_media::rotation::custody_text(&chain));
        }
        RotationAction::Cleaned(pool) => {
            book.cleaned(pool, today)?;
            if !json {
                println!("drive cleaning recorded for pool {pool} on {today}");
            }
        }
        RotationAction::Damaged(barcode) => {
            let b = [barcode.to_string()];
            let pool = pool_of(&book, d, &b)?;
            let r = book.damaged(&pool, barcode, today)?;
            print_recorded(&r, "recorded damaged", json)?;
            if !json {
                println!(
                    "it is never written again; destroy it with `coffer media dispose {barcode} --method …` once no kept set needs it"
                );
            }
        }
        RotationAction::Dispose(barcodes, method) => {
            let pool = pool_of(&book, d, barcodes)?;
            let (r, certificates) = book.disposed(&pool, barcodes, today, method)?;
            if json {
                print_json(&serde_json::json!({ "recorded": r, "certificates": certificates }))?;
            } else {
                print_recorded(&r, "destroyed", false)?;
                for c in certificates {
                    println!("disposal certificate {c} filed (`coffer disposal list`)");
                }
            }
        }
    }
    Ok(EXIT_OK)
}
