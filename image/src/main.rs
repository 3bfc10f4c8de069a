//! `coffer-image`: make and check signed update bundles.
//!
//! ```text
//! coffer-image keygen --key update.key --public update.pub
//! coffer-image bundle --key update.key --version 0.2.0 --out coffer-0.2.0.cub rootfs=root.ext4 vmlinuz=vmlinuz initrd.img=initrd.img
//! coffer-image verify --trust update.pub --installed 0.1.0 coffer-0.2.0.cub
//! ```

use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use clap::{Parser, Subcommand};
use coffer_image::bundle::{self, Source, Version};

#[derive(Parser, Debug)]
#[command(
    name = "coffer-image",
    version,
    about = "Coffer's appliance image and signed update bundles"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Make an Ed25519 signing key (written 0600) and its public half.
    Keygen {
        /// Where the private key goes (PKCS#8; refused if it exists).
        #[arg(long)]
        key: PathBuf,
        /// Where the public key goes (64 hex digits).
        #[arg(long)]
        public: PathBuf,
    },
    /// Write a signed bundle of NAME=FILE items.
    Bundle {
        /// The signing key.
        #[arg(long)]
        key: PathBuf,
        /// The version it installs (MAJOR.MINOR.PATCH).
        #[arg(long)]
        version: String,
        /// The bundle to write.
        #[arg(long)]
        out: PathBuf,
        /// When it was made, for the record (RFC 3339; default: now, or
        /// SOURCE_DATE_EPOCH when set, for reproducible bundles).
        #[arg(long)]
        created: Option<String>,
        /// Items: NAME=FILE (rootfs, vmlinuz, initrd.img).
        #[arg(required = true)]
        items: Vec<String>,
    },
    /// Check a bundle completely (signature, every item's hash) without
    /// installing it; prints its manifest.
    Verify {
        /// A trusted public key (repeatable).
        #[arg(long, required = true)]
        trust: Vec<PathBuf>,
        /// The version installed now (the bundle must be newer).
        #[arg(long, default_value = "0.0.0")]
        installed: String,
        /// The bundle.
        bundle: PathBuf,
    },
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("create '{}'", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

fn created_now() -> String {
    let secs = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0)
        });
    coffer_types::rfc3339_ms(secs.saturating_mul(1000))
}

fn trusted(paths: &[PathBuf]) -> Result<Vec<[u8; 32]>> {
    paths
        .iter()
        .map(|p| {
            let t =
                std::fs::read_to_string(p).with_context(|| format!("read '{}'", p.display()))?;
            bundle::parse_public(&t).with_context(|| format!("'{}'", p.display()))
        })
        .collect()
}

fn run(cli: Cli) -> Result<()> {
    match cli.cmd {
        Cmd::Keygen { key, public } => {
            let doc = bundle::generate_key()?;
            let k = bundle::SigningKey::from_pkcs8(&doc)?;
            write_new(&key, &doc, 0o600)?;
            write_new(
                &public,
                format!("{}\n", hex::encode(k.public())).as_bytes(),
                0o644,
            )?;
            println!(
                "key {} written to {} (keep it offline); public key in {}",
                bundle::key_id(k.public()),
                key.display(),
                public.display()
            );
        }
        Cmd::Bundle {
            key,
            version,
            out,
            created,
            items,
        } => {
            let doc = zeroize::Zeroizing::new(
                std::fs::read(&key).with_context(|| format!("read '{}'", key.display()))?,
            );
            let k = bundle::SigningKey::from_pkcs8(&doc)?;
            let version: Version = version.parse()?;
            let pairs: Vec<(String, PathBuf)> = items
                .iter()
                .map(|i| {
                    i.split_once('=')
                        .map(|(n, f)| (n.to_string(), PathBuf::from(f)))
                        .ok_or_else(|| anyhow!("'{i}': an item is NAME=FILE"))
                })
                .collect::<Result<_>>()?;
            let tmp = out.with_extension("partial");
            let f = std::fs::File::create(&tmp)
                .with_context(|| format!("create '{}'", tmp.display()))?;
            let mut w = BufWriter::new(f);
            let m = bundle::write(
                &mut w,
                version,
                &created.unwrap_or_else(created_now),
                &k,
                &mut || {
                    pairs
                        .iter()
                        .map(|(n, p)| {
                            let f = std::fs::File::open(p).map_err(|e| bundle::Error::Io {
                                what: format!("open '{}'", p.display()),
                                error: e,
                            })?;
                            Ok(Source {
                                name: n.clone(),
                                reader: Box::new(BufReader::new(f)),
                            })
                        })
                        .collect()
                },
            )?;
            let f = w
                .into_inner()
                .map_err(|e| anyhow!("write '{}': {e}", tmp.display()))?;
            f.sync_all()?;
            std::fs::rename(&tmp, &out)?;
            println!("{}", serde_json::to_string_pretty(&m)?);
        }
        Cmd::Verify {
            trust,
            installed,
            bundle: path,
        } => {
            let keys = trusted(&trust)?;
            let f =
                std::fs::File::open(&path).with_context(|| format!("open '{}'", path.display()))?;
            let opened = bundle::open(BufReader::new(f), &keys, installed.parse()?)?;
            let m = opened.install(&mut |_| Ok(Box::new(std::io::sink())))?;
            println!("{}", serde_json::to_string_pretty(&m)?);
        }
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("coffer-image: {e:#}");
            if e.downcast_ref::<bundle::Error>().is_some_and(|e| {
                matches!(
                    e,
                    bundle::Error::BadSignature(_)
                        | bundle::Error::Refused(_)
                        | bundle::Error::Damaged { .. }
                )
            }) {
                return std::process::ExitCode::from(4);
            }
            std::process::ExitCode::from(1)
        }
    }
}
