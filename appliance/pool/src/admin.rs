//! Creating, growing, replacing, exporting and importing pools. Every
//! change writes a new metadata generation to every member it can reach;
//! a disk offered as a new member must be empty and belong to no pool, so
//! nothing is ever overwritten.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::meta::{self, MemberMeta, PoolMeta, PoolState, RetiredMember};
use crate::pool::{Geometry, MemberState, OBJECTS, OpenOptions, Pool, TMP, default_geometry};
use crate::shard::{DEFAULT_BLOCK, MAX_SHARDS};
use crate::{Error, Result};

/// What a new pool looks like.
#[derive(Debug, Clone)]
pub struct CreateOptions {
    /// The pool's name.
    pub name: String,
    /// k + m (default by member count: [`default_geometry`]).
    pub geometry: Option<Geometry>,
    /// Allow members on the same device (development: directories on one
    /// disk). A pool whose members share a disk survives no disk failure.
    pub allow_same_device: bool,
    /// Bytes per shard block (default 64 KiB).
    pub block_size: Option<u32>,
}

fn random_hex(n: usize) -> Result<String> {
    let mut b = vec![0u8; n];
    coffer_keys::random_bytes(&mut b).map_err(|e| Error::Store(e.into()))?;
    Ok(hex::encode(b))
}

fn disk_name(path: &Path) -> Option<String> {
    coffer_block::disk_of_path(path, Path::new("/sys"))
}

/// Checks that `path` can become a member: an existing empty directory,
/// in no pool, not another member's directory or (unless allowed) disk.
fn check_new_member(path: &Path, others: &[PathBuf], allow_same_device: bool) -> Result<PathBuf> {
    let md = fs::metadata(path).map_err(|e| Error::io("open new member", path, e))?;
    if !md.is_dir() {
        return Err(Error::io(
            "open new member",
            path,
            std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory"),
        ));
    }
    let canon = fs::canonicalize(path).map_err(|e| Error::io("resolve", path, e))?;
    match meta::read(path) {
        Ok(Some(c)) => {
            return Err(Error::AlreadyMember {
                path: path.to_path_buf(),
                name: c.pool.name,
                id: c.pool.id,
                generation: c.pool.generation,
                member: c.member,
            });
        }
        Ok(None) => {}
        Err(e) => {
            return Err(Error::BadMetadata {
                path: path.join(meta::META_FILE),
                reason: format!("{e}; it may belong to a pool, so nothing was changed"),
            });
        }
    }
    let rd = fs::read_dir(path).map_err(|e| Error::io("list", path, e))?;
    for ent in rd {
        let ent = ent.map_err(|e| Error::io("list", path, e))?;
        let name = ent.file_name().to_string_lossy().into_owned();
        if name != "lost+found" {
            return Err(Error::NotEmpty {
                path: path.to_path_buf(),
                entry: name,
            });
        }
    }
    for o in others {
        let Ok(om) = fs::metadata(o) else { continue };
        if om.dev() == md.dev() && om.ino() == md.ino() {
            return Err(Error::SameDisk(format!(
                "'{}' and '{}' are the same directory: a member can be given once",
                path.display(),
                o.display()
            )));
        }
        if om.dev() == md.dev() && !allow_same_device {
            return Err(Error::SameDisk(format!(
                "'{}' and '{}' are on the same disk (device {}:{}): a pool whose members share a disk survives no disk failure. Give each member its own disk, or pass --allow-same-device for development",
                path.display(),
                o.display(),
                nix::sys::stat::major(md.dev()),
                nix::sys::stat::minor(md.dev())
            )));
        }
    }
    Ok(canon)
}

fn prepare_member(root: &Path) -> Result<()> {
    for d in [OBJECTS, TMP] {
        let p = root.join(d);
        fs::create_dir_all(&p).map_err(|e| Error::io("create", &p, e))?;
    }
    Ok(())
}

/// Writes `pool` to every listed member whose path is reachable and which
/// holds this pool's metadata or none (a new member); returns those that
/// could not be written.
fn write_all(pool: &PoolMeta, skip: &[String]) -> Vec<String> {
    let mut failed = Vec::new();
    for m in &pool.members {
        if skip.contains(&m.id) {
            continue;
        }
        if let Err(e) = meta::write(&m.path, &m.id, pool) {
            failed.push(format!("{}: {e}", m.id));
        }
    }
    failed
}

/// Creates a pool on empty member directories.
pub fn create(paths: &[PathBuf], opts: &CreateOptions) -> Result<PoolMeta> {
    let n = paths.len();
    let g = match opts.geometry {
        Some(g) => g,
        None => default_geometry(n).ok_or_else(|| {
            Error::Geometry(format!(
                "a pool needs at least 2 members (a disk can fail only if another holds its parity); {n} given"
            ))
        })?,
    };
    let (k, m) = (g.data as usize, g.parity as usize);
    if k == 0 || m == 0 {
        return Err(Error::Geometry(format!(
            "{k}+{m}: a pool needs at least one data and one parity shard"
        )));
    }
    if k + m > n {
        return Err(Error::Geometry(format!(
            "{k}+{m} needs {} members on distinct disks, {n} given",
            k + m
        )));
    }
    if k + m > MAX_SHARDS {
        return Err(Error::Geometry(format!(
            "{k}+{m}: at most {MAX_SHARDS} shards per object"
        )));
    }
    let block = opts.block_size.unwrap_or(DEFAULT_BLOCK);
    if block < 1024 || !block.is_multiple_of(64) {
        return Err(Error::Geometry(format!(
            "block size {block}: must be a multiple of 64 bytes, at least 1024"
        )));
    }
    if opts.name.is_empty() || opts.name.len() > 64 {
        return Err(Error::Geometry(
            "the pool name must be 1 to 64 characters".into(),
        ));
    }
    let mut seen: Vec<PathBuf> = Vec::new();
    let mut members = Vec::new();
    for p in paths {
        let canon = check_new_member(p, &seen, opts.allow_same_device)?;
        seen.push(p.clone());
        members.push(MemberMeta {
            id: random_hex(8)?,
            path: canon.clone(),
            disk: disk_name(&canon),
            joined: 1,
        });
    }
    let pool = PoolMeta {
        id: random_hex(16)?,
        name: opts.name.clone(),
        data_shards: k as u8,
        parity_shards: m as u8,
        block_size: block,
        generation: 1,
        state: PoolState::Active,
        created: crate::scrub::now(),
        members,
        retired: Vec::new(),
    };
    for mm in &pool.members {
        prepare_member(&mm.path)?;
    }
    let failed = write_all(&pool, &[]);
    if !failed.is_empty() {
        return Err(Error::Unavailable {
            name: pool.name.clone(),
            reason: format!("could not write metadata: {}", failed.join("; ")),
        });
    }
    Ok(pool)
}

fn bump(pool: &Pool) -> PoolMeta {
    let mut meta = pool.meta().clone();
    meta.generation += 1;
    meta
}

/// Members that will not get the new generation (their disks are not
/// there, or hold something else): stale copies are never overwritten.
fn unreachable(pool: &Pool) -> Vec<String> {
    pool.members
        .iter()
        .filter(|m| {
            !matches!(
                m.state(),
                MemberState::Online
                    | MemberState::Full(_)
                    | MemberState::Failing(_)
                    | MemberState::Failed(_)
            )
        })
        .map(|m| m.meta.id.clone())
        .collect()
}

/// Adds an empty disk to the pool. Existing objects stay where they are;
/// new ones are placed on it by free space.
pub fn add(pool: &Pool, path: &Path, allow_same_device: bool) -> Result<PoolMeta> {
    let others: Vec<PathBuf> = pool
        .members
        .iter()
        .map(|m| m.root().to_path_buf())
        .collect();
    let canon = check_new_member(path, &others, allow_same_device)?;
    let mut meta = bump(pool);
    let id = random_hex(8)?;
    meta.members.push(MemberMeta {
        id: id.clone(),
        path: canon.clone(),
        disk: disk_name(&canon),
        joined: meta.generation,
    });
    prepare_member(&canon)?;
    let failed = write_all(&meta, &unreachable(pool));
    with_new_member(meta, &id, failed)
}

/// Replaces member `old` (id or path) by the empty disk at `path`. The old
/// disk is not written to (it may be dead, or about to be pulled); run a
/// scrub afterwards to rebuild its shards onto the new one.
pub fn replace(pool: &Pool, old: &str, path: &Path, allow_same_device: bool) -> Result<PoolMeta> {
    let old_m = pool
        .members
        .iter()
        .find(|m| m.meta.id == old || m.root() == Path::new(old))
        .ok_or_else(|| Error::UnknownMember(old.to_string()))?;
    let others: Vec<PathBuf> = pool
        .members
        .iter()
        .filter(|m| m.meta.id != old_m.meta.id)
        .map(|m| m.root().to_path_buf())
        .collect();
    let canon = check_new_member(path, &others, allow_same_device)?;
    let mut meta = bump(pool);
    let id = random_hex(8)?;
    let slot = meta
        .members
        .iter()
        .position(|m| m.id == old_m.meta.id)
        .ok_or_else(|| Error::UnknownMember(old.to_string()))?;
    let gone = meta.members.remove(slot);
    meta.retired.push(RetiredMember {
        id: gone.id.clone(),
        path: gone.path,
        replaced_by: id.clone(),
        left: meta.generation,
    });
    meta.members.insert(
        slot,
        MemberMeta {
            id: id.clone(),
            path: canon.clone(),
            disk: disk_name(&canon),
            joined: meta.generation,
        },
    );
    prepare_member(&canon)?;
    let mut skip = unreachable(pool);
    skip.push(gone.id);
    let failed = write_all(&meta, &skip);
    with_new_member(meta, &id, failed)
}

/// The new generation, if it reached the new member `id`; other members it
/// missed are stale from now on and say so when the pool is opened.
fn with_new_member(meta: PoolMeta, id: &str, failed: Vec<String>) -> Result<PoolMeta> {
    if failed.iter().any(|f| f.starts_with(id)) {
        return Err(Error::Unavailable {
            name: meta.name.clone(),
            reason: format!(
                "could not write metadata to the new member: {}",
                failed.join("; ")
            ),
        });
    }
    for f in &failed {
        tracing::warn!(failed = %f, "a member missed the new pool generation");
    }
    Ok(meta)
}

/// Marks the pool exported on its members: no appliance uses it until it
/// is imported.
pub fn export(pool: &Pool) -> Result<PoolMeta> {
    let mut meta = bump(pool);
    meta.state = PoolState::Exported;
    let failed = write_all(&meta, &unreachable(pool));
    if !failed.is_empty() {
        tracing::warn!(failed = %failed.join("; "), "export could not reach every member");
    }
    Ok(meta)
}

/// What an import found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ImportReport {
    /// The pool as imported.
    pub pool: PoolMeta,
    /// Members found at the given paths.
    pub found: Vec<String>,
    /// Members of the pool not found at any given path.
    pub missing: Vec<String>,
    /// Paths holding an older generation of this pool: left untouched.
    pub stale: Vec<String>,
}

/// Imports a pool from the paths its disks are mounted at now (on this or
/// another appliance). Every path must hold metadata of the same pool; the
/// newest generation wins and member paths are updated; copies of older
/// generations are reported and not overwritten. A pool that was not
/// exported is refused unless `force` (its old appliance is gone).
pub fn import(paths: &[PathBuf], force: bool) -> Result<ImportReport> {
    let mut copies = Vec::new();
    for p in paths {
        let c = meta::read(p)?.ok_or_else(|| Error::NotAMember { path: p.clone() })?;
        let canon = fs::canonicalize(p).map_err(|e| Error::io("resolve", p, e))?;
        copies.push((canon, c));
    }
    let ids: BTreeMap<&str, &str> = copies
        .iter()
        .map(|(_, c)| (c.pool.id.as_str(), c.pool.name.as_str()))
        .collect();
    if ids.len() != 1 {
        let list: Vec<String> = ids.iter().map(|(i, n)| format!("'{n}' ({i})")).collect();
        return Err(Error::Import(format!(
            "the paths belong to {} different pools: {}; import one pool at a time",
            ids.len(),
            list.join(", ")
        )));
    }
    let newest = copies
        .iter()
        .map(|(_, c)| c.pool.generation)
        .max()
        .unwrap_or(0);
    let Some((_, latest)) = copies.iter().find(|(_, c)| c.pool.generation == newest) else {
        return Err(Error::Import("no metadata found".into()));
    };
    let mut meta = latest.pool.clone();
    if meta.state == PoolState::Active && !force {
        return Err(Error::NotExported(meta.name.clone()));
    }
    let mut found = Vec::new();
    let mut stale = Vec::new();
    for (path, c) in &copies {
        if c.pool.generation < newest {
            stale.push(format!(
                "{} (member {}, generation {} < {newest})",
                path.display(),
                c.member,
                c.pool.generation
            ));
            continue;
        }
        if let Some(m) = meta.members.iter_mut().find(|m| m.id == c.member) {
            m.path = path.clone();
            found.push(c.member.clone());
        }
    }
    let missing: Vec<String> = meta
        .members
        .iter()
        .filter(|m| !found.contains(&m.id))
        .map(|m| format!("{} (last at {})", m.id, m.path.display()))
        .collect();
    if found.len() < meta.data_shards as usize {
        return Err(Error::Unavailable {
            name: meta.name.clone(),
            reason: format!(
                "{} of its members found, every object needs {}; missing: {}",
                found.len(),
                meta.data_shards,
                missing.join(", ")
            ),
        });
    }
    meta.generation = newest + 1;
    meta.state = PoolState::Active;
    let skip: Vec<String> = meta
        .members
        .iter()
        .filter(|m| !found.contains(&m.id))
        .map(|m| m.id.clone())
        .collect();
    let failed = write_all(&meta, &skip);
    if !failed.is_empty() {
        return Err(Error::Unavailable {
            name: meta.name.clone(),
            reason: format!("could not write metadata: {}", failed.join("; ")),
        });
    }
    Ok(ImportReport {
        pool: meta,
        found,
        missing,
        stale,
    })
}

/// Opens a pool for administration (also when exported).
pub fn open_any(path: &Path) -> Result<Pool> {
    Pool::open(
        path,
        &OpenOptions {
            require_active: false,
            ..OpenOptions::with_smart()
        },
    )
}
