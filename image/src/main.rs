//! `coffer-image`: make and check signed update bundles.
//!
//! ```text
//! coffer-image keygen --key update.key --public update.pub
//! coffer-image bundle --key update.key --version 0.2.0 --out coffer-0.2.0.cub rootfs=root.ext4 vmlinuz=vmlinuz initrd.img=initrd.img
//! coffer-image verify --trust update.pub --installed 0.1.0 coffer-0.2.0.cub
//! coffer-image build --key update.key --out out/     # the disk image and its bundle
//! coffer-image slots                                  # on the appliance: the A/B slots
//! coffer-image install coffer-0.2.0.cub               # on the appliance (cofferd's `update install` is the audited way)
//! coffer-image boot-check                             # boot assessment (coffer-boot-check.service)
//! ```

use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use clap::{Parser, Subcommand};
use coffer_image::bundle::{self, Version};

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
    /// Build the appliance's disk image (and its update bundle) from
    /// Debian packages and the built binaries. Runs as root.
    Build {
        /// Where the image, bundle and build record go.
        #[arg(long, default_value = "coffer-image-out")]
        out: PathBuf,
        /// The update signing key (PKCS#8, from `keygen`); the image trusts
        /// its public half and the bundle is signed with it.
        #[arg(long)]
        key: PathBuf,
        /// Another trusted public key (repeatable).
        #[arg(long)]
        trust: Vec<PathBuf>,
        /// Downloaded packages and built bases, kept between builds.
        #[arg(
            long,
            env = "COFFER_IMAGE_CACHE",
            default_value = "/var/cache/coffer-image"
        )]
        cache: PathBuf,
        /// Where cofferd, coffer and coffer-image are (default: beside this program).
        #[arg(long)]
        binaries: Option<PathBuf>,
        /// The image's version (default: this program's).
        #[arg(long)]
        version: Option<String>,
        /// The Debian mirror.
        #[arg(long, default_value = "http://deb.debian.org/debian")]
        mirror: String,
        /// The Debian security mirror ("none" for none).
        #[arg(long, default_value = "http://deb.debian.org/debian-security")]
        security_mirror: String,
        /// The time every file gets (default: SOURCE_DATE_EPOCH, or 2025-01-01).
        #[arg(long, env = "SOURCE_DATE_EPOCH", default_value_t = 1_735_689_600)]
        source_date_epoch: i64,
        /// Only the root filesystem and the bundle, no disk image.
        #[arg(long)]
        bundle_only: bool,
        /// The overlay tree (default: image/rootfs of this workspace).
        #[arg(long)]
        overlay: Option<PathBuf>,
    },
    /// On the appliance: the running slot and every slot's boot entry.
    Slots,
    /// On the appliance: install a bundle into the inactive slot (it boots
    /// next, with TRIES boots to reach a healthy cofferd).
    Install {
        /// Boots the new slot gets.
        #[arg(long, default_value_t = coffer_image::slots::DEFAULT_TRIES)]
        tries: u32,
        /// The bundle.
        bundle: PathBuf,
    },
    /// Boot assessment: on a counted boot, wait for cofferd to answer;
    /// fail (the unit reboots) if it does not in time.
    BootCheck {
        /// cofferd's control socket.
        #[arg(long, default_value = "/run/coffer/control.sock")]
        socket: PathBuf,
        /// Seconds to wait.
        #[arg(long, default_value_t = 180)]
        timeout: u64,
        /// Assess even if this boot is not being counted.
        #[arg(long)]
        always: bool,
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
            let m = bundle::write_files(
                &mut w,
                version,
                &created.unwrap_or_else(created_now),
                &k,
                &pairs,
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
        Cmd::Build {
            out,
            key,
            trust,
            cache,
            binaries,
            version,
            mirror,
            security_mirror,
            source_date_epoch,
            bundle_only,
            overlay,
        } => {
            let binaries = match binaries {
                Some(b) => b,
                None => std::env::current_exe()?
                    .parent()
                    .map(Path::to_path_buf)
                    .ok_or_else(|| anyhow!("cannot tell where this program is"))?,
            };
            let overlay =
                overlay.unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("rootfs"));
            let o = coffer_image::build::Options {
                out,
                cache,
                binaries,
                version: version
                    .as_deref()
                    .unwrap_or(env!("CARGO_PKG_VERSION"))
                    .parse()?,
                mirror,
                security_mirror: (security_mirror != "none").then_some(security_mirror),
                key,
                trust,
                source_date_epoch,
                bundle_only,
            };
            eprintln!(
                "coffer-image: building {} {} from Debian {} ({})",
                if bundle_only {
                    "the bundle of"
                } else {
                    "the image"
                },
                o.version,
                coffer_image::build::SUITE,
                o.mirror
            );
            let b = coffer_image::build::build(&o, &overlay)?;
            println!("{}", serde_json::to_string_pretty(&b)?);
        }
        Cmd::Slots => {
            let s = coffer_image::system::status()?;
            println!("{}", serde_json::to_string_pretty(&s)?);
        }
        Cmd::Install { tries, bundle } => {
            let f = std::fs::File::open(&bundle)
                .with_context(|| format!("open '{}'", bundle.display()))?;
            let i = coffer_image::system::install(BufReader::new(f), tries)?;
            eprintln!(
                "coffer-image: version {} installed into slot {} ({} boots to reach a healthy cofferd); it boots next",
                i.version,
                i.slot.name(),
                i.tries
            );
            println!("{}", serde_json::to_string_pretty(&i)?);
        }
        Cmd::BootCheck {
            socket,
            timeout,
            always,
        } => {
            if !always && !coffer_image::system::counted_boot() {
                println!("coffer-image: this boot is not being counted; nothing to assess");
                return Ok(());
            }
            let v = coffer_image::system::wait_healthy(
                &socket,
                std::time::Duration::from_secs(timeout),
            )?;
            println!("coffer-image: cofferd {v} answers; this slot is good");
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
            }) || e
                .downcast_ref::<coffer_image::slots::Error>()
                .is_some_and(|e| {
                    matches!(
                        e,
                        coffer_image::slots::Error::Unfit(_)
                            | coffer_image::slots::Error::Bundle(
                                bundle::Error::BadSignature(_)
                                    | bundle::Error::Refused(_)
                                    | bundle::Error::Damaged { .. }
                            )
                    )
                })
            {
                return std::process::ExitCode::from(4);
            }
            std::process::ExitCode::from(1)
        }
    }
}
