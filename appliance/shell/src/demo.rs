//! `coffer demo`: the main job on built-in defaults, narrated. It creates a
//! store under the work directory, backs up a real directory twice (full,
//! then incremental), lists the snapshots, restores the latest, compares the
//! restored tree with the source, and verifies every chunk.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use coffer_engine::{BackupRequest, Progress, RestoreRequest};
use coffer_store::InitOptions;
use coffer_types::Level;

use crate::cli::{Direct, EXIT_DAMAGED, EXIT_OK, EXIT_WARNINGS, init};
use crate::output::size;

const DEMO_PASSPHRASE: &str = "coffer demo passphrase";

pub fn run(source: &Path, workdir: &Path, pf: Option<&Path>) -> Result<u8> {
    let source =
        std::fs::canonicalize(source).with_context(|| format!("source '{}'", source.display()))?;
    let store = workdir.join("store");
    let target = workdir.join("restore");
    if store.join("config").exists() {
        std::fs::remove_dir_all(&store)
            .with_context(|| format!("remove the previous demo store '{}'", store.display()))?;
    }
    if target.exists() {
        std::fs::remove_dir_all(&target)
            .with_context(|| format!("remove the previous demo restore '{}'", target.display()))?;
    }
    // A demonstration store only: real stores take the passphrase from
    // COFFER_PASSPHRASE, a file or the terminal, never from a default.
    let pass_file;
    let pf = match (pf, std::env::var_os("COFFER_PASSPHRASE")) {
        (Some(p), _) => Some(p.to_path_buf()),
        (None, Some(_)) => None,
        (None, None) => {
            std::fs::create_dir_all(workdir)?;
            pass_file = workdir.join("demo-passphrase");
            std::fs::write(&pass_file, DEMO_PASSPHRASE)?;
            println!(
                "[demo] no COFFER_PASSPHRASE set: using the demo passphrase in {}",
                pass_file.display()
            );
            Some(pass_file.clone())
        }
    };
    let pass = || crate::cli::passphrase(pf.as_deref(), false);

    let t = Instant::now();
    let cfg = init(&store, pf.as_deref(), InitOptions::default(), None)?;
    println!(
        "[1/7] init: store {} at {} (AES-256-GCM, zstd {}, {} MiB containers; key sealed with Argon2id) in {:.2}s",
        cfg.store_id.short(),
        store.display(),
        cfg.zstd_level,
        cfg.container_size >> 20,
        t.elapsed().as_secs_f64()
    );

    let d = Direct::open(&store)?;
    let repo = d.unlock(&pass()?)?;
    let mut warnings = 0;
    for (step, level) in [(2, Level::Full), (3, Level::Incremental)] {
        let t = Instant::now();
        let out = coffer_engine::backup(
            &repo,
            &d.catalog,
            &BackupRequest {
                asset: "demo".into(),
                level,
                source: source.clone(),
                excludes: Vec::new(),
                one_file_system: true,
                threads: 0,
                compression_level: None,
            },
            &d.actor,
            &Progress::default(),
        )?;
        let s = &out.snapshot.stats;
        let secs = t.elapsed().as_secs_f64();
        println!(
            "[{step}/7] {level} backup of {}: snapshot {}, {} entries, {} files read ({}), {} unchanged, {} new data stored as {} in {:.2}s ({}/s)",
            source.display(),
            out.snapshot.id.short(),
            s.entries,
            s.files_read,
            size(s.bytes_read),
            s.files_unchanged,
            size(s.bytes_new),
            size(s.bytes_stored),
            secs,
            size(((s.bytes_read + s.bytes_unchanged) as f64 / secs.max(1e-3)) as u64),
        );
        for w in &out.warnings {
            println!("      warning: {w}");
        }
        warnings += out.warnings.len();
    }

    let snaps = d.catalog.snapshots(Some("demo"))?;
    println!("[4/7] snapshots:");
    for s in &snaps {
        println!(
            "      {} {} {:<12} {} entries",
            s.id.short(),
            s.time,
            s.level.as_str(),
            s.stats.entries
        );
    }
    let Some(latest) = snaps.last() else {
        bail!("the catalog lists no snapshot after two backups");
    };

    let t = Instant::now();
    let out = coffer_engine::restore(
        &repo,
        &d.catalog,
        &RestoreRequest {
            snapshot: latest.id,
            target: target.clone(),
            paths: Vec::new(),
            overwrite: false,
            threads: 0,
        },
        &d.actor,
        &Arc::new(Progress::default()),
    )?;
    println!(
        "[5/7] restore of {} to {}: {} entries, {} files, {} in {:.2}s",
        latest.id.short(),
        target.display(),
        out.entries,
        out.files,
        size(out.bytes),
        t.elapsed().as_secs_f64()
    );
    for w in &out.warnings {
        println!("      warning: {w}");
    }
    for e in &out.errors {
        println!("      error: {e}");
    }
    warnings += out.warnings.len();
    if !out.errors.is_empty() {
        bail!(
            "restore incomplete: {} entries could not be restored",
            out.errors.len()
        );
    }

    let (same, diffs) = compare_trees(&source, &target)?;
    println!(
        "[6/7] compare: {same} entries identical to the source (content, type, mode, mtime, link targets), {} differ",
        diffs.len()
    );
    for d in diffs.iter().take(20) {
        println!("      differs: {d}");
    }

    let t = Instant::now();
    let report = coffer_engine::verify(
        d.blobs.as_ref(),
        Some(&repo),
        Some(&d.catalog),
        true,
        &d.actor,
        &Progress::default(),
    )?;
    println!(
        "[7/7] verify --read-data: {} containers ({}) decrypted and re-hashed, {} snapshots checked: {} in {:.2}s",
        report.containers_checked,
        size(report.bytes_checked),
        report.snapshots_checked,
        if report.ok() {
            "no damage"
        } else {
            "DAMAGE FOUND"
        },
        t.elapsed().as_secs_f64()
    );
    println!("the job log: coffer --store {} log", store.display());
    if !report.ok() || !diffs.is_empty() {
        return Ok(EXIT_DAMAGED);
    }
    Ok(if warnings > 0 { EXIT_WARNINGS } else { EXIT_OK })
}

#[derive(PartialEq, Eq, Debug)]
struct Fingerprint {
    kind: u32,
    mode: u32,
    mtime: (i64, i64),
    content: Option<[u8; 32]>,
    link: Option<PathBuf>,
}

fn fingerprints(root: &Path) -> Result<BTreeMap<PathBuf, Fingerprint>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let md =
            std::fs::symlink_metadata(&p).with_context(|| format!("stat '{}'", p.display()))?;
        let rel = p.strip_prefix(root).unwrap_or(&p).to_path_buf();
        let ft = md.file_type();
        let content = if ft.is_file() {
            match std::fs::File::open(&p) {
                Ok(mut f) => {
                    let mut h = blake3::Hasher::new();
                    std::io::copy(&mut f, &mut h)
                        .with_context(|| format!("read '{}'", p.display()))?;
                    Some(*h.finalize().as_bytes())
                }
                Err(_) => continue, // unreadable in the source: the backup warned about it
            }
        } else {
            None
        };
        if ft.is_dir() {
            for e in std::fs::read_dir(&p).with_context(|| format!("list '{}'", p.display()))? {
                stack.push(e?.path());
            }
        }
        out.insert(
            rel,
            Fingerprint {
                kind: md.mode() & nix::libc::S_IFMT,
                mode: md.mode() & 0o7777,
                mtime: if ft.is_dir() {
                    (0, 0)
                } else {
                    (md.mtime(), md.mtime_nsec())
                },
                content,
                link: if ft.is_symlink() {
                    std::fs::read_link(&p).ok()
                } else {
                    None
                },
            },
        );
    }
    Ok(out)
}

/// Compares two trees; returns (identical entries, descriptions of differences).
fn compare_trees(a: &Path, b: &Path) -> Result<(usize, Vec<String>)> {
    let fa = fingerprints(a)?;
    let fb = fingerprints(b)?;
    let mut same = 0;
    let mut diffs = Vec::new();
    for (p, x) in &fa {
        match fb.get(p) {
            Some(y) if x == y || p.as_os_str().is_empty() => same += 1,
            Some(_) => diffs.push(format!("/{}", p.display())),
            None => diffs.push(format!("/{} (missing)", p.display())),
        }
    }
    for p in fb.keys() {
        if !fa.contains_key(p) {
            diffs.push(format!("/{} (extra)", p.display()));
        }
    }
    Ok((same, diffs))
}
