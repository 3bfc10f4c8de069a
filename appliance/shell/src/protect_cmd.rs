//! Direct-mode retention locks, the trusted clock, keys and disposal
//! certificates (`coffer lock|clock|key|disposal …`). Legal holds and
//! accepting the clock need a security officer with fresh MFA, so they go
//! through cofferd (`coffer hold …`, `coffer remote clock accept`).

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use coffer_keys::{KdfParams, Passphrase};
use coffer_types::rfc3339_ms;

use crate::cli::{Direct, EXIT_OK, EXIT_WARNINGS, passphrase, print_json};
use crate::remote::render::{Table, details};

/// `coffer lock …`
#[derive(Subcommand, Debug)]
pub enum LockCmd {
    /// Lock a snapshot until a time: until then nobody (administrator and
    /// root included) can delete it, prune it or shorten the lock; the
    /// objects it needs get the immutable attribute. A lock can be
    /// extended, never shortened.
    Set {
        /// Snapshot id, prefix or "latest".
        snapshot: String,
        /// Until when: RFC 3339, a date (midnight UTC), or a duration from
        /// now (e.g. 90d).
        #[arg(long, value_name = "TIME")]
        until: String,
        /// Why (shown to the auditor).
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// List retention locks (running and ended).
    Show {
        /// Only this asset's.
        #[arg(long, value_name = "NAME")]
        asset: Option<String>,
    },
}

/// `coffer key …`
#[derive(Subcommand, Debug)]
pub enum KeyCmd {
    /// Algorithm, key ids, key generations, key files, created and
    /// rotated dates, history.
    Status,
    /// Start a new data key generation: new data is sealed under a fresh
    /// key from now on (older data keeps its key until `gc
    /// --retire-old-keys` re-encrypts it and destroys the old keys).
    Rotate,
    /// Re-wrap the master key under a new passphrase (data is not
    /// re-encrypted; the old passphrase stops working). The new passphrase
    /// comes from COFFER_NEW_PASSPHRASE, --new-passphrase-file or a prompt.
    Passwd {
        /// Read the new passphrase from this file (first line).
        #[arg(long, value_name = "FILE")]
        new_passphrase_file: Option<PathBuf>,
    },
    /// Print the escrow copy of the master key (a paper key, with a
    /// checksum per line) for the safe. Whoever holds it holds the data.
    Export,
    /// Restore access from a paper key (file, or "-" for standard input)
    /// when the passphrase is lost: sealed under the new passphrase.
    Import {
        /// The paper key's text.
        file: PathBuf,
        /// Read the new passphrase from this file (first line).
        #[arg(long, value_name = "FILE")]
        new_passphrase_file: Option<PathBuf>,
    },
}

/// `coffer disposal …`
#[derive(Subcommand, Debug)]
pub enum DisposalCmd {
    /// The disposal certificates: what was destroyed, which keys, when, by
    /// whom or by which policy.
    List,
}

/// A lock's end: RFC 3339, a date, or a duration from `now_ms`.
pub fn parse_until(v: &str, now_ms: i64) -> Result<i64> {
    let t = v.trim();
    if let Ok(d) = t.parse::<coffer_types::api::Duration>() {
        return Ok(now_ms.saturating_add(d.ms()));
    }
    if let Ok(ts) = t.parse::<jiff::Timestamp>() {
        return Ok(ts.as_millisecond());
    }
    if let Ok(date) = t.parse::<jiff::civil::Date>()
        && let Ok(z) = date.to_zoned(jiff::tz::TimeZone::UTC)
    {
        return Ok(z.timestamp().as_millisecond());
    }
    bail!(
        "'{v}' is neither a time (RFC 3339 such as 2027-01-31T08:00:00Z, or a date 2027-01-31) nor a duration from now (such as 90d)"
    )
}

fn new_passphrase(file: Option<&Path>) -> Result<Passphrase> {
    if let Some(f) = file {
        return passphrase(Some(f), false);
    }
    if let Some(v) = std::env::var_os("COFFER_NEW_PASSPHRASE") {
        use std::os::unix::ffi::OsStringExt;
        return Ok(Passphrase::new(v.into_vec())?);
    }
    if !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        bail!(
            "no new passphrase: set COFFER_NEW_PASSPHRASE, use --new-passphrase-file, or run on a terminal"
        );
    }
    let p = rpassword::prompt_password("New passphrase: ").context("read passphrase")?;
    let again = zeroize::Zeroizing::new(
        rpassword::prompt_password("Repeat new passphrase: ").context("read passphrase")?,
    );
    if *again != p {
        bail!("the passphrases differ");
    }
    Ok(Passphrase::new(p.into_bytes())?)
}

/// The trusted time for direct mode, warning on standard error when the
/// clocks disagree.
pub fn trusted_now(d: &Direct) -> Result<i64> {
    Ok(observe(d)?.trusted_ms)
}

/// Observes the clocks, warning on standard error when they disagree.
pub fn observe(d: &Direct) -> Result<coffer_engine::protect::Observation> {
    let o = coffer_engine::protect::trusted_now(
        &d.catalog,
        coffer_engine::now_ms(),
        &coffer_engine::protect::system_boot(),
    )?;
    if let Some(j) = o.jump {
        eprintln!("warning: {j}");
    }
    Ok(o)
}

/// `coffer lock …`
pub fn lock(d: &Direct, cmd: &LockCmd, pf: Option<&Path>, json: bool) -> Result<u8> {
    let trusted = trusted_now(d)?;
    match cmd {
        LockCmd::Set {
            snapshot,
            until,
            reason,
        } => {
            let s = d.catalog.resolve_snapshot(snapshot)?;
            let until_ms = parse_until(until, trusted)?;
            if until_ms <= trusted {
                bail!(
                    "{} is not in the future (the trusted clock says {})",
                    rfc3339_ms(until_ms),
                    rfc3339_ms(trusted)
                );
            }
            d.catalog
                .set_lock(&s.id, until_ms, &d.actor.identity, trusted, reason)?;
            let repo = d.unlock(&passphrase(pf, false)?)?;
            let imm = {
                let _l = coffer_engine::lock::StoreLock::shared(&d.catalog)?;
                coffer_engine::protect::apply_immutability(
                    &repo,
                    &d.catalog,
                    trusted,
                    &coffer_engine::Progress::default(),
                )?
            };
            if json {
                print_json(&imm)?;
            } else {
                for w in &imm.warnings {
                    println!("warning: {w}");
                }
                println!(
                    "snapshot {} of {} locked until {}; {} store objects carry the immutable attribute",
                    s.id.short(),
                    s.asset,
                    rfc3339_ms(until_ms),
                    imm.objects
                );
            }
            Ok(if imm.warnings.is_empty() {
                EXIT_OK
            } else {
                EXIT_WARNINGS
            })
        }
        LockCmd::Show { asset } => {
            let locks = d.catalog.locks(asset.as_deref(), trusted)?;
            if json {
                print_json(&locks)?;
                return Ok(EXIT_OK);
            }
            let mut t = Table::new(&["SNAPSHOT", "ASSET", "UNTIL", "STATE", "SET BY", "REASON"]);
            for l in &locks {
                t.row(vec![
                    l.snapshot[..12].to_string(),
                    l.asset.clone(),
                    l.until.clone(),
                    if l.active { "locked" } else { "ended" }.into(),
                    l.set_by.clone(),
                    l.reason.clone(),
                ]);
            }
            print!("{}", t.render());
            Ok(EXIT_OK)
        }
    }
}

/// `coffer clock`: the trusted clock against the wall clock.
pub fn clock(d: &Direct, json: bool) -> Result<u8> {
    let o = coffer_engine::protect::trusted_now(
        &d.catalog,
        coffer_engine::now_ms(),
        &coffer_engine::protect::system_boot(),
    )?;
    let s = o.status();
    if json {
        print_json(&s)?;
    } else {
        print!(
            "{}",
            details(&[
                ("wall clock", s.wall.clone()),
                ("trusted clock", s.trusted.clone()),
                ("ahead by", format!("{} s", s.ahead_ms / 1000)),
                ("state", s.jump.clone().unwrap_or_else(|| "agree".into())),
            ])
        );
    }
    Ok(if s.jump.is_some() {
        EXIT_WARNINGS
    } else {
        EXIT_OK
    })
}

/// `coffer key …`
pub fn key(d: &Direct, cmd: &KeyCmd, pf: Option<&Path>, json: bool) -> Result<u8> {
    let who = d.actor.identity.clone();
    match cmd {
        KeyCmd::Status => {
            let repo = d.unlock(&passphrase(pf, false)?)?;
            let s = coffer_engine::keys::status(&repo, &d.catalog)?;
            if json {
                print_json(&s)?;
            } else {
                print!("{}", crate::remote::render::key_status(&s));
            }
        }
        KeyCmd::Rotate => {
            let repo = d.unlock(&passphrase(pf, false)?)?;
            let k = coffer_engine::keys::rotate_data_key(
                &repo,
                &d.catalog,
                &who,
                coffer_engine::now_ms(),
            )?;
            if json {
                print_json(&serde_json::json!({"generation": k.generation, "key_id": k.key_id}))?;
            } else {
                println!(
                    "data key generation {} ({}) seals new data from now on; `coffer gc --retire-old-keys` re-encrypts older data and destroys the older keys",
                    k.generation, k.key_id
                );
            }
        }
        KeyCmd::Passwd {
            new_passphrase_file,
        } => {
            let repo = d.unlock(&passphrase(pf, false)?)?;
            let new = new_passphrase(new_passphrase_file.as_deref())?;
            let file = coffer_engine::keys::rotate_passphrase(
                &repo,
                &d.catalog,
                &new,
                KdfParams::DEFAULT,
                &who,
            )?;
            println!(
                "master key {} re-wrapped under the new passphrase as {file}; the old passphrase no longer opens the store; no data was re-encrypted",
                repo.master().key_id()
            );
        }
        KeyCmd::Export => {
            let repo = d.unlock(&passphrase(pf, false)?)?;
            let paper = coffer_engine::keys::export_paper(&repo, &d.catalog, &who)?;
            print!("{}", paper.as_str());
            eprintln!(
                "Write this down or print it, keep it in the safe, and destroy any other copy: whoever holds it can read every backup in this store."
            );
        }
        KeyCmd::Import {
            file,
            new_passphrase_file,
        } => {
            let mut text = zeroize::Zeroizing::new(String::new());
            if file.as_os_str() == "-" {
                std::io::stdin().read_to_string(&mut text)?;
            } else {
                *text = std::fs::read_to_string(file)
                    .with_context(|| format!("read paper key '{}'", file.display()))?;
            }
            let new = new_passphrase(new_passphrase_file.as_deref())?;
            let id = coffer_engine::keys::import_paper(
                d.blobs.clone(),
                &d.catalog,
                &text,
                &new,
                KdfParams::DEFAULT,
                &who,
            )?;
            println!("master key {id} imported: the store opens with the new passphrase");
        }
    }
    Ok(EXIT_OK)
}

/// `coffer disposal list`
pub fn disposal(d: &Direct, json: bool) -> Result<u8> {
    let v = d.catalog.disposals()?;
    if json {
        print_json(&v)?;
    } else {
        print!("{}", crate::remote::render::disposals(&v));
    }
    Ok(EXIT_OK)
}
