//! `coffer setup` and `coffer console`: the appliance's first-boot setup.
//!
//! The setup takes its answers from a file (`coffer setup --answers F`, or
//! `coffer-setup.toml` on a medium labelled `COFFER-SETUP` that the
//! console finds by itself) or asks on the console. Every answer is
//! checked before anything is touched; a bad one is named (`[network]
//! address: …`) and nothing changes. Then, in order:
//!
//! 1. **Network, host name, time**: saved in `setup/state.json` on the
//!    data partition and applied (`coffer setup apply`, which also runs
//!    at every boot and renders them under `/run`: the root slots carry
//!    no site configuration, so an update keeps all of it).
//! 2. **Disks**: every disk but the boot disk and the setup medium (or
//!    the ones named) is formatted ext4 if it is blank, reused if it is
//!    already a Coffer disk, refused if it holds anything else (unless
//!    `wipe = true`), and mounted; two or more become a disk pool.
//! 3. **Store**: made once, on the pool, with a generated passphrase in a
//!    root-only file (shown once: it opens tapes and offsite copies alone).
//! 4. **Tape library**: a SCSI changer if there is one, else a virtual
//!    library on the data partition (or none).
//! 5. **Service**: `cofferd.toml` written, `cofferd` (re)started.
//! 6. **Administrator**: created with TOTP enrollment shown (QR code,
//!    secret, recovery codes) if none exists yet.
//!
//! Run again, it changes only what the answers change: an existing pool,
//! store, library or administrator is kept, never reformatted.

use std::io::{BufRead, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// The file a setup medium carries.
pub const ANSWERS_NAME: &str = "coffer-setup.toml";
/// The filesystem label of a setup medium.
pub const MEDIUM_LABEL: &str = "COFFER-SETUP";

/// The answers (`docs/setup.md` lists every key).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Answers {
    /// The host name.
    #[serde(default)]
    pub hostname: Option<String>,
    /// `[network]`.
    #[serde(default)]
    pub network: Network,
    /// `[time]`.
    #[serde(default)]
    pub time: Time,
    /// `[admin]`: absent, the console's shell asks for the administrator.
    #[serde(default)]
    pub admin: Option<Admin>,
    /// `[disks]`.
    #[serde(default)]
    pub disks: Disks,
    /// `[tape]`.
    #[serde(default)]
    pub tape: Tape,
}

/// `[network]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// `dhcp` or `static`.
    #[serde(default = "dhcp")]
    pub mode: String,
    /// The interface (default: every Ethernet interface).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// Static: address with prefix length, `192.0.2.10/24`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Static: the default gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// Name servers.
    #[serde(default)]
    pub dns: Vec<String>,
}

fn dhcp() -> String {
    "dhcp".into()
}

impl Default for Network {
    fn default() -> Network {
        Network {
            mode: dhcp(),
            interface: None,
            address: None,
            gateway: None,
            dns: Vec::new(),
        }
    }
}

/// `[time]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Time {
    /// NTP servers (empty: no time synchronisation).
    #[serde(default = "default_ntp")]
    pub ntp: Vec<String>,
    /// The appliance's time zone (IANA name): schedules are in it.
    #[serde(default = "utc")]
    pub timezone: String,
}

fn default_ntp() -> Vec<String> {
    vec![
        "0.debian.pool.ntp.org".into(),
        "1.debian.pool.ntp.org".into(),
    ]
}

fn utc() -> String {
    "UTC".into()
}

impl Default for Time {
    fn default() -> Time {
        Time {
            ntp: default_ntp(),
            timezone: utc(),
        }
    }
}

/// `[admin]`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Admin {
    /// Login name.
    #[serde(default = "admin")]
    pub user: String,
    /// Password (or `password_file`).
    #[serde(default, deserialize_with = "secret")]
    pub password: Option<Zeroizing<String>>,
    /// A file with the password (first line), relative to the answers.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

fn secret<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Zeroizing<String>>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.map(Zeroizing::new))
}

fn admin() -> String {
    "admin".into()
}

/// `[disks]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Disks {
    /// `["auto"]` (every disk but the boot disk and the setup medium),
    /// `[]` (none: the store stays on the data partition), or names
    /// (`vdb`, `sdb`, …).
    #[serde(default = "auto")]
    pub use_disks: Vec<String>,
    /// Format disks that hold something (a filesystem, a partition table).
    #[serde(default)]
    pub wipe: bool,
    /// The pool's name.
    #[serde(default = "main_pool")]
    pub pool: String,
}

fn auto() -> Vec<String> {
    vec!["auto".into()]
}

fn main_pool() -> String {
    "main".into()
}

impl Default for Disks {
    fn default() -> Disks {
        Disks {
            use_disks: auto(),
            wipe: false,
            pool: main_pool(),
        }
    }
}

/// `[tape]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tape {
    /// `auto` (a SCSI changer if present, else virtual), `virtual`,
    /// `scsi` (a changer must be present), or `none`.
    #[serde(default = "auto_one")]
    pub library: String,
    /// Cartridges of a new virtual library.
    #[serde(default = "eight")]
    pub cartridges: u16,
}

fn auto_one() -> String {
    "auto".into()
}

fn eight() -> u16 {
    8
}

impl Default for Tape {
    fn default() -> Tape {
        Tape {
            library: auto_one(),
            cartridges: eight(),
        }
    }
}

fn bad(field: &str, why: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("{field}: {why}")
}

fn valid_hostname(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 63
        && h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !h.starts_with('-')
        && !h.ends_with('-')
}

fn valid_host_or_ip(h: &str) -> bool {
    h.parse::<std::net::IpAddr>().is_ok()
        || (!h.is_empty() && h.len() <= 253 && h.split('.').all(valid_hostname))
}

/// Parses `ADDRESS/PREFIX`.
fn parse_cidr(s: &str) -> Option<(std::net::IpAddr, u8)> {
    let (a, p) = s.split_once('/')?;
    let a: std::net::IpAddr = a.parse().ok()?;
    let p: u8 = p.parse().ok()?;
    let max = if a.is_ipv4() { 32 } else { 128 };
    (p > 0 && p <= max).then_some((a, p))
}

impl Answers {
    /// Parses answers; a TOML error names its line and key.
    pub fn parse(text: &str, origin: &str) -> Result<Answers> {
        let a: Answers = toml::from_str(text).map_err(|e| anyhow!("{origin}: {e}"))?;
        a.check().map_err(|e| anyhow!("{origin}: {e}"))?;
        Ok(a)
    }

    /// Checks every answer; the first bad one is named.
    pub fn check(&self) -> Result<()> {
        if let Some(h) = &self.hostname
            && !valid_hostname(h)
        {
            return Err(bad(
                "hostname",
                format!("'{h}' is not a host name (letters, digits and '-', at most 63)"),
            ));
        }
        let n = &self.network;
        match n.mode.as_str() {
            "dhcp" => {
                for (k, v) in [("address", &n.address), ("gateway", &n.gateway)] {
                    if v.is_some() {
                        return Err(bad(
                            &format!("[network] {k}"),
                            "given with mode = \"dhcp\" (set mode = \"static\", or leave it out)",
                        ));
                    }
                }
            }
            "static" => {
                let a = n.address.as_deref().ok_or_else(|| {
                    bad(
                        "[network] address",
                        "mode = \"static\" needs an address (192.0.2.10/24)",
                    )
                })?;
                let (ip, _) = parse_cidr(a).ok_or_else(|| {
                    bad(
                        "[network] address",
                        format!("'{a}' is not an address with a prefix length (192.0.2.10/24)"),
                    )
                })?;
                if let Some(g) = &n.gateway {
                    let gw: std::net::IpAddr = g.parse().map_err(|_| {
                        bad("[network] gateway", format!("'{g}' is not an IP address"))
                    })?;
                    if gw.is_ipv4() != ip.is_ipv4() {
                        return Err(bad(
                            "[network] gateway",
                            format!("'{g}' is not of the address's family"),
                        ));
                    }
                }
            }
            other => {
                return Err(bad("[network] mode", format!("'{other}' (dhcp or static)")));
            }
        }
        if let Some(i) = &n.interface
            && (i.is_empty()
                || i.len() > 15
                || !i
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.*".contains(&b)))
        {
            return Err(bad(
                "[network] interface",
                format!("'{i}' is not an interface name"),
            ));
        }
        for d in &n.dns {
            if d.parse::<std::net::IpAddr>().is_err() {
                return Err(bad("[network] dns", format!("'{d}' is not an IP address")));
            }
        }
        for s in &self.time.ntp {
            if !valid_host_or_ip(s) {
                return Err(bad(
                    "[time] ntp",
                    format!("'{s}' is not a host name or address"),
                ));
            }
        }
        jiff::tz::TimeZone::get(&self.time.timezone).map_err(|_| {
            bad(
                "[time] timezone",
                format!(
                    "'{}' is not a time zone (an IANA name such as Europe/Berlin)",
                    self.time.timezone
                ),
            )
        })?;
        if let Some(a) = &self.admin {
            if a.user.is_empty()
                || a.user.len() > 32
                || !a
                    .user
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            {
                return Err(bad(
                    "[admin] user",
                    format!("'{}' is not a user name", a.user),
                ));
            }
            match (&a.password, &a.password_file) {
                (Some(_), Some(_)) => {
                    return Err(bad("[admin]", "give password or password_file, not both"));
                }
                (None, None) => {
                    return Err(bad("[admin] password", "missing (or give password_file)"));
                }
                (Some(p), None) if p.is_empty() => {
                    return Err(bad("[admin] password", "empty"));
                }
                _ => {}
            }
        }
        let d = &self.disks;
        if d.use_disks.iter().any(|x| x == "auto") && d.use_disks.len() > 1 {
            return Err(bad("[disks] use_disks", "\"auto\" stands alone"));
        }
        for name in &d.use_disks {
            if name != "auto"
                && (name.is_empty()
                    || name.contains('/')
                    || name.starts_with('.')
                    || !name.bytes().all(|b| b.is_ascii_alphanumeric()))
            {
                return Err(bad(
                    "[disks] use_disks",
                    format!("'{name}' is not a disk name (vdb, sdc, nvme1n1)"),
                ));
            }
        }
        if !valid_hostname(&d.pool) {
            return Err(bad(
                "[disks] pool",
                format!("'{}' is not a pool name", d.pool),
            ));
        }
        if !["auto", "virtual", "scsi", "none"].contains(&self.tape.library.as_str()) {
            return Err(bad(
                "[tape] library",
                format!("'{}' (auto, virtual, scsi or none)", self.tape.library),
            ));
        }
        if !(1..=200).contains(&self.tape.cartridges) {
            return Err(bad("[tape] cartridges", "between 1 and 200"));
        }
        Ok(())
    }
}

/// Where the setup reads and writes: the real system, or a test's tree.
#[derive(Debug, Clone)]
pub struct Env {
    /// The data partition's mount (`/var/lib/coffer`).
    pub data: PathBuf,
    /// `/run`.
    pub run: PathBuf,
    /// `/sys/block`.
    pub sys_block: PathBuf,
    /// `/sys/class/scsi_generic`.
    pub sys_sg: PathBuf,
    /// `/dev`.
    pub dev: PathBuf,
    /// `/etc` (time zone link).
    pub etc: PathBuf,
    /// Whether to start services and set the host name (false in tests).
    pub system: bool,
    /// cofferd's control socket.
    pub socket: PathBuf,
}

impl Env {
    /// The appliance's paths, or under `COFFER_SETUP_ROOT` (tests).
    pub fn from_environment() -> Env {
        match std::env::var_os("COFFER_SETUP_ROOT") {
            Some(r) => {
                let r = PathBuf::from(r);
                Env {
                    data: r.join("var/lib/coffer"),
                    run: r.join("run"),
                    sys_block: r.join("sys/block"),
                    sys_sg: r.join("sys/class/scsi_generic"),
                    dev: r.join("dev"),
                    etc: r.join("etc"),
                    system: false,
                    socket: r.join("run/coffer/control.sock"),
                }
            }
            None => Env {
                data: "/var/lib/coffer".into(),
                run: "/run".into(),
                sys_block: "/sys/block".into(),
                sys_sg: "/sys/class/scsi_generic".into(),
                dev: "/dev".into(),
                etc: "/etc".into(),
                system: true,
                socket: "/run/coffer/control.sock".into(),
            },
        }
    }
    fn state_file(&self) -> PathBuf {
        self.data.join("setup/state.json")
    }
    fn etc_coffer(&self) -> PathBuf {
        self.data.join("etc")
    }
    /// The cofferd configuration the setup writes.
    pub fn config_file(&self) -> PathBuf {
        self.etc_coffer().join("cofferd.toml")
    }
}

/// What the setup saved (`setup/state.json`): what every boot applies.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    /// The host name.
    pub hostname: String,
    /// The network.
    pub network: Network,
    /// Time.
    pub time: Time,
    /// The member disks, by filesystem UUID, and where they mount.
    pub disks: Vec<MemberDisk>,
    /// The pool's name, when there is one.
    pub pool: Option<String>,
    /// The store's directory.
    pub store: Option<PathBuf>,
    /// `virtual:PATH`, `scsi:CHANGER`, or `none`.
    pub tape: String,
    /// When the setup last completed (RFC 3339), absent until it has.
    pub completed: Option<String>,
}

/// A disk the setup formatted for the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberDisk {
    /// Its ext4 UUID.
    pub uuid: String,
    /// Where it is mounted.
    pub mount: PathBuf,
    /// Its kernel name when set up (informational: names change).
    pub name: String,
}

impl State {
    fn load(env: &Env) -> Result<Option<State>> {
        let p = env.state_file();
        match std::fs::read_to_string(&p) {
            Ok(t) => Ok(Some(
                serde_json::from_str(&t).with_context(|| format!("'{}'", p.display()))?,
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("read '{}'", p.display())),
        }
    }
    fn save(&self, env: &Env) -> Result<()> {
        write_atomic(
            &env.state_file(),
            format!("{}\n", serde_json::to_string_pretty(self)?).as_bytes(),
            0o600,
        )
    }
}

/// Whether the setup has completed on this appliance.
pub fn done(env: &Env) -> bool {
    State::load(env)
        .ok()
        .flatten()
        .is_some_and(|s| s.completed.is_some())
}

fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| anyhow!("'{}' has no directory", path.display()))?;
    std::fs::create_dir_all(dir).with_context(|| format!("create '{}'", dir.display()))?;
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .with_context(|| format!("create '{}'", tmp.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))?;
    std::fs::rename(&tmp, path).with_context(|| format!("write '{}'", path.display()))?;
    Ok(())
}

/// A block device the setup may use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Disk {
    /// Kernel name (`vdb`).
    pub name: String,
    /// Bytes.
    pub size: u64,
    /// Model, if the kernel knows it.
    pub model: String,
    /// What is on it.
    pub content: Content,
}

/// What a disk holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Content {
    /// Its first MiB is zeros.
    Blank,
    /// An ext4 filesystem the setup made (label `coffer-…`).
    Coffer {
        /// Its UUID.
        uuid: String,
    },
    /// Anything else.
    Other {
        /// What it looks like.
        what: String,
    },
}

fn read_trim(p: &Path) -> Option<String> {
    std::fs::read_to_string(p)
        .ok()
        .map(|s| s.trim().to_string())
}

/// The disk (kernel name) a device path's partition is on.
fn disk_of(env: &Env, dev: &Path) -> Option<String> {
    let real = std::fs::canonicalize(dev).ok()?;
    let name = real.file_name()?.to_string_lossy().into_owned();
    for d in std::fs::read_dir(&env.sys_block).ok()?.flatten() {
        let disk = d.file_name().to_string_lossy().into_owned();
        if disk == name || d.path().join(&name).exists() {
            return Some(disk);
        }
    }
    None
}

/// Reads what is at the start of a disk.
fn content(dev: &Path) -> Result<Content> {
    let mut f = std::fs::File::open(dev).with_context(|| format!("open '{}'", dev.display()))?;
    let mut head = vec![0u8; 1 << 20];
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..])? {
            0 => break,
            k => n += k,
        }
    }
    head.truncate(n);
    if head.iter().all(|b| *b == 0) {
        return Ok(Content::Blank);
    }
    // ext4: superblock at 1024, magic 0xEF53 at +56, UUID at +104, label at +120.
    if head.len() >= 2048 && head[1024 + 56..1024 + 58] == [0x53, 0xEF] {
        let label: String = head[1024 + 120..1024 + 136]
            .iter()
            .take_while(|b| **b != 0)
            .map(|b| *b as char)
            .collect();
        let u = &head[1024 + 104..1024 + 120];
        let uuid = format!(
            "{}-{}-{}-{}-{}",
            hex(&u[0..4]),
            hex(&u[4..6]),
            hex(&u[6..8]),
            hex(&u[8..10]),
            hex(&u[10..16])
        );
        if label.starts_with("coffer-") {
            return Ok(Content::Coffer { uuid });
        }
        return Ok(Content::Other {
            what: format!("an ext4 filesystem labelled '{label}'"),
        });
    }
    if head.len() >= 520 && &head[512..520] == b"EFI PART" {
        return Ok(Content::Other {
            what: "a GPT partition table".into(),
        });
    }
    if head.len() >= 512 && head[510..512] == [0x55, 0xAA] {
        return Ok(Content::Other {
            what: "a partition table or boot sector".into(),
        });
    }
    Ok(Content::Other {
        what: "data (its first MiB is not blank)".into(),
    })
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The disks the setup may use: not the boot disk, not a setup or
/// update medium, not loop, RAM, optical or device-mapper devices.
pub fn discover(env: &Env) -> Result<Vec<Disk>> {
    let boot = disk_of(env, &env.dev.join("disk/by-partlabel/data"));
    let media: Vec<String> = [MEDIUM_LABEL, "COFFER-UPDATE"]
        .iter()
        .filter_map(|l| disk_of(env, &env.dev.join("disk/by-label").join(l)))
        .collect();
    let mut out = Vec::new();
    let rd = std::fs::read_dir(&env.sys_block)
        .with_context(|| format!("read '{}'", env.sys_block.display()))?;
    let mut names: Vec<String> = rd
        .flatten()
        .map(|d| d.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for name in names {
        if ["loop", "ram", "sr", "zram", "dm-", "md", "fd", "nbd"]
            .iter()
            .any(|p| name.starts_with(p))
            || Some(&name) == boot.as_ref()
            || media.contains(&name)
        {
            continue;
        }
        let sys = env.sys_block.join(&name);
        let sectors: u64 = read_trim(&sys.join("size"))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if sectors == 0 {
            continue;
        }
        let dev = env.dev.join(&name);
        let content = content(&dev)?;
        out.push(Disk {
            name: name.clone(),
            size: sectors * 512,
            model: read_trim(&sys.join("device/model")).unwrap_or_default(),
            content,
        });
    }
    Ok(out)
}

fn command(cmd: &mut std::process::Command, what: &str) -> Result<()> {
    let out = cmd
        .output()
        .with_context(|| format!("{what}: cannot run {:?}", cmd.get_program()))?;
    if !out.status.success() {
        bail!("{what}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

fn mounted(at: &Path) -> bool {
    let Ok(m) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let at = at.to_string_lossy();
    m.lines()
        .any(|l| l.split(' ').nth(4).is_some_and(|p| p == at))
}

fn mount_member(env: &Env, d: &MemberDisk) -> Result<()> {
    std::fs::create_dir_all(&d.mount)?;
    if mounted(&d.mount) {
        return Ok(());
    }
    let by_uuid = env.dev.join("disk/by-uuid").join(&d.uuid);
    let dev = if by_uuid.exists() {
        by_uuid
    } else {
        env.dev.join(&d.name)
    };
    command(
        std::process::Command::new("mount")
            .args(["-t", "ext4", "-o", "nosuid,nodev,noexec"])
            .arg(&dev)
            .arg(&d.mount),
        &format!("mount disk {} ({})", d.name, d.uuid),
    )
}

/// A report line, to the console and every mirror.
struct Report<'a> {
    mirrors: Vec<std::fs::File>,
    out: &'a mut dyn Write,
}

impl Report<'_> {
    fn say(&mut self, text: &str) {
        let _ = writeln!(self.out, "{text}");
        let _ = self.out.flush();
        for m in &mut self.mirrors {
            let t = text.replace('\n', "\r\n");
            let _ = write!(m, "{t}\r\n");
        }
    }
}

fn open_mirrors(paths: &[PathBuf]) -> Vec<std::fs::File> {
    paths
        .iter()
        .filter_map(|p| {
            std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK)
                .open(p)
                .ok()
        })
        .collect()
}

fn random_passphrase() -> Result<Zeroizing<String>> {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";
    let mut raw = Zeroizing::new([0u8; 24]);
    std::fs::File::open("/dev/urandom")?.read_exact(&mut raw[..])?;
    let mut s = Zeroizing::new(String::with_capacity(29));
    for (i, b) in raw.iter().enumerate() {
        if i > 0 && i % 4 == 0 {
            s.push('-');
        }
        s.push(ALPHABET[(*b as usize) % ALPHABET.len()] as char);
    }
    Ok(s)
}

/// Renders the saved network and time into `/run` (and, on the system,
/// the host name and time zone), and mounts the member disks. Runs at
/// every boot (`coffer-apply.service`) and at the end of the setup.
pub fn apply(env: &Env) -> Result<Vec<String>> {
    let Some(state) = State::load(env)? else {
        return Ok(vec!["the setup has not run yet: nothing to apply".into()]);
    };
    let mut did = Vec::new();
    let n = &state.network;
    let mut net = format!(
        "# Written by coffer setup apply from {}; do not edit.\n[Match]\nName={}\n\n[Network]\n",
        env.state_file().display(),
        n.interface.as_deref().unwrap_or("en* eth*")
    );
    if n.mode == "static" {
        net.push_str(&format!("Address={}\n", n.address.as_deref().unwrap_or("")));
        if let Some(g) = &n.gateway {
            net.push_str(&format!("Gateway={g}\n"));
        }
    } else {
        net.push_str("DHCP=yes\n");
    }
    for d in &n.dns {
        net.push_str(&format!("DNS={d}\n"));
    }
    write_atomic(
        &env.run.join("systemd/network/10-coffer.network"),
        net.as_bytes(),
        0o644,
    )?;
    did.push(format!(
        "network: {}",
        if n.mode == "static" {
            format!("static {}", n.address.as_deref().unwrap_or(""))
        } else {
            "DHCP".into()
        }
    ));
    let ntp = format!(
        "# Written by coffer setup apply; do not edit.\n[Time]\nNTP={}\n",
        state.time.ntp.join(" ")
    );
    write_atomic(
        &env.run.join("systemd/timesyncd.conf.d/coffer.conf"),
        ntp.as_bytes(),
        0o644,
    )?;
    did.push(if state.time.ntp.is_empty() {
        "time: no NTP server".into()
    } else {
        format!("time: NTP {}", state.time.ntp.join(", "))
    });
    if env.system {
        let _ = nix::unistd::sethostname(&state.hostname);
        let _ = std::fs::write(env.etc.join("hostname"), format!("{}\n", state.hostname));
        let zone = Path::new("/usr/share/zoneinfo").join(&state.time.timezone);
        if zone.exists() {
            let link = env.etc.join("localtime");
            let _ = std::fs::remove_file(&link);
            let _ = std::os::unix::fs::symlink(&zone, &link);
        }
    }
    did.push(format!("host name: {}", state.hostname));
    for d in &state.disks {
        mount_member(env, d)?;
    }
    if !state.disks.is_empty() {
        did.push(format!("disks mounted: {}", state.disks.len()));
    }
    Ok(did)
}

fn systemctl(env: &Env, args: &[&str]) -> Result<()> {
    if !env.system {
        return Ok(());
    }
    command(
        std::process::Command::new("systemctl").args(args),
        &format!("systemctl {}", args.join(" ")),
    )
}

/// How the setup runs.
pub struct Run<'a> {
    /// Where it works.
    pub env: Env,
    /// Where its report goes.
    pub out: &'a mut dyn Write,
    /// Other consoles that see the report too.
    pub mirrors: Vec<PathBuf>,
    /// Where relative paths in the answers are resolved.
    pub base: PathBuf,
}

/// Runs the setup with `answers`.
pub fn run(answers: &Answers, r: Run<'_>) -> Result<()> {
    answers.check()?;
    let env = r.env;
    let mut rep = Report {
        mirrors: open_mirrors(&r.mirrors),
        out: r.out,
    };
    // Everything that can be refused is refused before anything changes.
    let password: Option<Zeroizing<String>> = match &answers.admin {
        Some(a) => Some(match (&a.password, &a.password_file) {
            (Some(p), _) => p.clone(),
            (None, Some(f)) => {
                let p = r.base.join(f);
                let t = Zeroizing::new(std::fs::read_to_string(&p).map_err(|e| {
                    bad("[admin] password_file", format!("'{}': {e}", p.display()))
                })?);
                let line = Zeroizing::new(t.lines().next().unwrap_or("").to_string());
                if line.is_empty() {
                    return Err(bad(
                        "[admin] password_file",
                        format!("'{}' is empty", p.display()),
                    ));
                }
                line
            }
            (None, None) => return Err(bad("[admin] password", "missing")),
        }),
        None => None,
    };
    let disks = discover(&env)?;
    let chosen: Vec<Disk> = if answers.disks.use_disks == ["auto"] {
        disks
            .iter()
            .filter(|d| answers.disks.wipe || !matches!(d.content, Content::Other { .. }))
            .cloned()
            .collect()
    } else {
        let mut v = Vec::new();
        for name in &answers.disks.use_disks {
            let d = disks.iter().find(|d| &d.name == name).ok_or_else(|| {
                bad(
                    "[disks] use_disks",
                    format!(
                        "no disk '{name}' to use (found: {})",
                        if disks.is_empty() {
                            "none".to_string()
                        } else {
                            disks
                                .iter()
                                .map(|d| d.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        }
                    ),
                )
            })?;
            if let Content::Other { what } = &d.content
                && !answers.disks.wipe
            {
                return Err(bad(
                    "[disks] use_disks",
                    format!(
                        "disk '{name}' holds {what}; it is not formatted unless [disks] wipe = true"
                    ),
                ));
            }
            v.push(d.clone());
        }
        v
    };
    let tape_scsi = scsi_changer(&env);
    if answers.tape.library == "scsi" && tape_scsi.is_none() {
        return Err(bad(
            "[tape] library",
            "\"scsi\", and no SCSI medium changer is attached",
        ));
    }
    let mut state = State::load(&env)?.unwrap_or_default();
    rep.say("Coffer setup");
    rep.say("============");
    // 1. Network, host name, time.
    state.hostname = answers.hostname.clone().unwrap_or_else(|| {
        if state.hostname.is_empty() {
            "coffer".into()
        } else {
            state.hostname.clone()
        }
    });
    state.network = answers.network.clone();
    state.time = answers.time.clone();
    state.save(&env)?;
    // 2. Disks.
    let mut members = Vec::new();
    for d in &chosen {
        let dev = env.dev.join(&d.name);
        let uuid = match &d.content {
            Content::Coffer { uuid } => {
                rep.say(&format!(
                    "disk {}: already a Coffer disk ({uuid}), kept",
                    d.name
                ));
                uuid.clone()
            }
            Content::Blank | Content::Other { .. } => {
                let label = format!(
                    "coffer-{}",
                    &hex(&{
                        let mut b = [0u8; 4];
                        std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
                        b
                    })
                );
                command(
                    std::process::Command::new("mkfs.ext4")
                        .args(["-q", "-F", "-m", "0", "-L", &label])
                        .arg(&dev),
                    &format!("format disk {}", d.name),
                )?;
                let Content::Coffer { uuid } = content(&dev)? else {
                    bail!(
                        "disk {}: formatted, but no Coffer filesystem reads back",
                        d.name
                    );
                };
                rep.say(&format!(
                    "disk {}: formatted ext4 ({}, {})",
                    d.name,
                    coffer_types::size(d.size),
                    uuid
                ));
                uuid
            }
        };
        let m = MemberDisk {
            mount: env.data.join("disks").join(&uuid),
            uuid,
            name: d.name.clone(),
        };
        mount_member(&env, &m)?;
        members.push(m);
    }
    for m in &members {
        if !state.disks.iter().any(|x| x.uuid == m.uuid) {
            state.disks.push(m.clone());
        }
    }
    state.save(&env)?;
    // 3. The pool and the store.
    let store_dir = env.data.join("store");
    let member_dirs: Vec<PathBuf> = state.disks.iter().map(|d| d.mount.join("pool")).collect();
    let pool_member: Option<PathBuf> = if member_dirs.len() >= 2 {
        let existing = member_dirs
            .iter()
            .find(|p| coffer_pool::admin::open_any(p).is_ok());
        match existing {
            Some(p) => {
                rep.say(&format!("pool: kept the pool on {}", p.display()));
                Some(p.clone())
            }
            None => {
                for p in &member_dirs {
                    std::fs::create_dir_all(p)?;
                }
                let meta = coffer_pool::admin::create(
                    &member_dirs,
                    &coffer_pool::admin::CreateOptions {
                        name: answers.disks.pool.clone(),
                        geometry: None,
                        allow_same_device: false,
                        block_size: None,
                    },
                )?;
                rep.say(&format!(
                    "pool '{}': {}+{} over {} disks (any {} may fail)",
                    meta.name,
                    meta.data_shards,
                    meta.parity_shards,
                    meta.members.len(),
                    meta.parity_shards
                ));
                state.pool = Some(meta.name.clone());
                Some(member_dirs[0].clone())
            }
        }
    } else {
        None
    };
    let store_dir = match (&pool_member, state.disks.first()) {
        (Some(_), _) => store_dir,
        (None, Some(one)) => {
            rep.say("one disk: the store goes on it without a pool (it survives no disk failure)");
            one.mount.join("store")
        }
        (None, None) => {
            rep.say(
                "no disk for the store: it goes on the data partition of the boot disk; add disks and make a pool before relying on it",
            );
            store_dir
        }
    };
    let passphrase_file = env.etc_coffer().join("passphrase");
    let exists = store_dir.join("config").exists()
        || coffer_pool::PoolLink::read(&store_dir)
            .ok()
            .flatten()
            .is_some();
    let mut new_passphrase = None;
    if exists {
        rep.say(&format!("store: kept {}", store_dir.display()));
    } else {
        let p = random_passphrase()?;
        write_atomic(
            &passphrase_file,
            format!("{}\n", p.as_str()).as_bytes(),
            0o600,
        )?;
        let info = crate::cli::init(
            &store_dir,
            Some(&passphrase_file),
            coffer_store::InitOptions::default(),
            pool_member.as_deref(),
        )?;
        rep.say(&format!(
            "store {}: made at {}",
            info.store_id,
            store_dir.display()
        ));
        new_passphrase = Some(p);
    }
    state.store = Some(store_dir.clone());
    // 4. The tape library.
    let tape = match (answers.tape.library.as_str(), &tape_scsi) {
        ("none", _) => None,
        ("auto" | "scsi", Some((changer, drives))) => {
            rep.say(&format!(
                "tape: SCSI library {} with {} drive(s)",
                changer.display(),
                drives.len()
            ));
            Some(coffer_tape::LibraryConfig::Linux {
                changer: changer.clone(),
                drives: drives.clone(),
            })
        }
        _ => {
            let path = env.data.join("vtl");
            if path.exists() {
                rep.say(&format!(
                    "tape: no SCSI library; kept the virtual library {}",
                    path.display()
                ));
            } else {
                coffer_tape::VirtualLibrary::create(
                    &path,
                    &coffer_tape::VtlOptions {
                        cartridges: answers.tape.cartridges,
                        slots: answers.tape.cartridges + 3,
                        ..coffer_tape::VtlOptions::default()
                    },
                )?;
                rep.say(&format!(
                    "tape: no SCSI library; made a virtual library with {} cartridges in {}",
                    answers.tape.cartridges,
                    path.display()
                ));
            }
            Some(coffer_tape::LibraryConfig::Virtual { path })
        }
    };
    state.tape = match &tape {
        None => "none".into(),
        Some(coffer_tape::LibraryConfig::Virtual { path }) => format!("virtual:{}", path.display()),
        Some(coffer_tape::LibraryConfig::Linux { changer, .. }) => {
            format!("scsi:{}", changer.display())
        }
    };
    state.save(&env)?;
    // 5. The service's configuration.
    let config_path = env.config_file();
    let mut config = if config_path.exists() {
        cofferd::Config::load(&config_path)?
    } else {
        toml::from_str::<cofferd::Config>("").context("the default configuration")?
    };
    config.daemon.state_dir = env.data.join("state");
    config.daemon.socket = env.socket.clone();
    config.daemon.timezone = answers.time.timezone.clone();
    config.daemon.development = false;
    config.store.path = store_dir.clone();
    config.store.passphrase_file = Some(passphrase_file.clone());
    config.replication.replicas_dir = env.data.join("replicas");
    config.tape.library = tape;
    let text = format!(
        "# cofferd configuration, written by `coffer setup` (every key: docs/cofferd.toml).\n\
         # Edit and send SIGHUP (or `reload` in the shell) to apply; the setup keeps your other keys.\n\n{}",
        toml::to_string_pretty(&config).context("render the configuration")?
    );
    write_atomic(&config_path, text.as_bytes(), 0o600)?;
    rep.say(&format!("service: configuration {}", config_path.display()));
    for line in apply(&env)? {
        rep.say(&line);
    }
    systemctl(
        &env,
        &[
            "restart",
            "systemd-networkd.service",
            "systemd-timesyncd.service",
        ],
    )?;
    systemctl(&env, &["restart", "cofferd.service"])?;
    // 6. The administrator.
    if env.system || env.socket.exists() {
        let mut client = wait_for_service(&env.socket, Duration::from_secs(120))?;
        let status: coffer_types::api::DaemonStatus =
            serde_json::from_value(client.call(&coffer_types::api::Call::Status, None)?)?;
        rep.say(&format!("service: cofferd {} answers", status.version));
        match (&answers.admin, status.needs_bootstrap, &password) {
            (Some(a), true, Some(p)) => {
                let v = client.call(
                    &coffer_types::api::Call::Bootstrap {
                        user: a.user.clone(),
                        password: p.to_string(),
                    },
                    None,
                )?;
                let e: coffer_types::api::Enrollment = serde_json::from_value(v)?;
                rep.say(&format!("administrator '{}' created.", a.user));
                rep.say(&crate::remote::enrollment_text(&e));
                rep.say(
                    "Add the account to an authenticator app now (scan the code or type the secret) and keep the recovery codes offline: log in with the password and the app's code.",
                );
            }
            (_, false, _) => rep.say("administrator: one exists already; users are unchanged"),
            (None, true, _) => rep.say(
                "administrator: none yet; the console's shell creates the first one (password and TOTP enrollment)",
            ),
            (Some(_), true, None) => {}
        }
    }
    if let Some(p) = new_passphrase {
        rep.say(&format!(
            "\nThe store's passphrase (shown only now; it is kept root-only in {}):\n\n    {}\n\n\
             Write it down and keep it in a safe away from the appliance: with it alone the tapes and the offsite copies can be restored on another appliance.",
            passphrase_file.display(),
            p.as_str()
        ));
    }
    state.completed = Some(coffer_types::rfc3339_ms(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0),
    ));
    state.save(&env)?;
    rep.say("setup complete.");
    Ok(())
}

fn wait_for_service(socket: &Path, timeout: Duration) -> Result<crate::remote::client::Client> {
    let t0 = std::time::Instant::now();
    loop {
        match crate::remote::client::Client::connect(socket) {
            Ok(c) => return Ok(c),
            Err(e) if t0.elapsed() > timeout => {
                bail!("cofferd did not answer on '{}': {e}", socket.display())
            }
            Err(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}

/// A SCSI medium changer and its drives (generic devices), if attached.
fn scsi_changer(env: &Env) -> Option<(PathBuf, Vec<PathBuf>)> {
    let mut changer = None;
    let mut drives = Vec::new();
    let mut names: Vec<String> = std::fs::read_dir(&env.sys_sg)
        .ok()?
        .flatten()
        .map(|d| d.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for n in names {
        match read_trim(&env.sys_sg.join(&n).join("device/type")).as_deref() {
            Some("8") if changer.is_none() => changer = Some(env.dev.join(&n)),
            Some("1") => drives.push(env.dev.join(&n)),
            _ => {}
        }
    }
    changer.map(|c| (c, drives))
}

/// Looks for a setup medium (a filesystem labelled [`MEDIUM_LABEL`]) for
/// a few seconds; mounts it read-only, reads the answers, unmounts it.
pub fn answers_from_medium(env: &Env) -> Result<Option<(String, PathBuf)>> {
    let dev = env.dev.join("disk/by-label").join(MEDIUM_LABEL);
    for _ in 0..10 {
        if dev.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    if !dev.exists() {
        return Ok(None);
    }
    let at = env.run.join("coffer/setup-medium");
    std::fs::create_dir_all(&at)?;
    if !mounted(&at) {
        command(
            std::process::Command::new("mount")
                .args(["-o", "ro,nosuid,nodev,noexec"])
                .arg(&dev)
                .arg(&at),
            "mount the setup medium",
        )?;
    }
    // Left mounted until the setup has read a password file beside it.
    match std::fs::read_to_string(at.join(ANSWERS_NAME)) {
        Ok(t) => Ok(Some((t, at))),
        Err(e) => {
            unmount(&at);
            Err(anyhow!(
                "the setup medium has no readable {ANSWERS_NAME}: {e}"
            ))
        }
    }
}

fn unmount(at: &Path) {
    if mounted(at) {
        let _ = std::process::Command::new("umount").arg(at).status();
    }
}

/// Asks the answers on the console (the defaults in brackets).
fn ask(env: &Env, prompt: &mut dyn crate::remote::Prompt, err: &mut dyn Write) -> Result<Answers> {
    let mut a = Answers::default();
    let mut line = |q: &str, default: &str| -> Result<String> {
        let v = prompt.line(&format!("{q} [{default}]: "))?;
        let v = v.trim();
        Ok(if v.is_empty() {
            default.to_string()
        } else {
            v.to_string()
        })
    };
    loop {
        a.hostname = Some(line("host name", "coffer")?);
        a.network.mode = line("network: dhcp or static", "dhcp")?;
        if a.network.mode == "static" {
            a.network.address = Some(line("address/prefix", "192.0.2.10/24")?);
            let g = line("gateway (none: -)", "-")?;
            a.network.gateway = (g != "-").then_some(g);
            let d = line("name servers, space-separated (none: -)", "-")?;
            a.network.dns = if d == "-" {
                Vec::new()
            } else {
                d.split_whitespace().map(str::to_string).collect()
            };
        }
        let ntp = line(
            "NTP servers, space-separated (none: -)",
            &default_ntp().join(" "),
        )?;
        a.time.ntp = if ntp == "-" {
            Vec::new()
        } else {
            ntp.split_whitespace().map(str::to_string).collect()
        };
        a.time.timezone = line("time zone", "UTC")?;
        let disks = discover(env)?;
        let _ = writeln!(err, "disks found (the boot disk is not offered):");
        for d in &disks {
            let _ = writeln!(
                err,
                "  {:<8} {:>10}  {:<20} {}",
                d.name,
                coffer_types::size(d.size),
                d.model,
                match &d.content {
                    Content::Blank => "blank".to_string(),
                    Content::Coffer { .. } => "a Coffer disk".to_string(),
                    Content::Other { what } => format!("holds {what}"),
                }
            );
        }
        let use_disks = line(
            "disks for the store (names, 'auto' for every usable one, '-' none)",
            "auto",
        )?;
        a.disks.use_disks = if use_disks == "-" {
            Vec::new()
        } else {
            use_disks.split_whitespace().map(str::to_string).collect()
        };
        a.tape.library = line("tape library: auto, virtual, scsi or none", "auto")?;
        match a.check() {
            Ok(()) => return Ok(a),
            Err(e) => {
                let _ = writeln!(err, "{e}; again");
            }
        }
    }
}

/// `coffer setup …`.
#[derive(clap::Subcommand, Debug)]
pub enum SetupCmd {
    /// Render the saved setup (network, time, host name) and mount the disks (every boot).
    Apply,
    /// The disks the setup could use.
    Disks,
    /// Check an answers file without doing anything.
    Check {
        /// The answers.
        answers: PathBuf,
    },
}

/// Runs `coffer setup [--answers F] [apply|disks|check F]`.
pub fn setup(cmd: Option<&SetupCmd>, answers: Option<&Path>, json: bool) -> Result<u8> {
    let env = Env::from_environment();
    match cmd {
        Some(SetupCmd::Apply) => {
            for l in apply(&env)? {
                println!("coffer setup apply: {l}");
            }
            Ok(0)
        }
        Some(SetupCmd::Disks) => {
            let d = discover(&env)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&d)?);
            } else {
                for d in d {
                    println!("{} {} {:?}", d.name, coffer_types::size(d.size), d.content);
                }
            }
            Ok(0)
        }
        Some(SetupCmd::Check { answers }) => {
            let t = std::fs::read_to_string(answers)
                .with_context(|| format!("read '{}'", answers.display()))?;
            Answers::parse(&t, &answers.display().to_string())?;
            println!("{}: the answers are valid", answers.display());
            Ok(0)
        }
        None => {
            let _lock = lock(&env, true)?;
            let mut out = std::io::stdout();
            let (a, base) = match answers {
                Some(f) => {
                    let t = std::fs::read_to_string(f)
                        .with_context(|| format!("read '{}'", f.display()))?;
                    (
                        Answers::parse(&t, &f.display().to_string())?,
                        f.parent().map(Path::to_path_buf).unwrap_or_default(),
                    )
                }
                None => {
                    let mut p = crate::remote::console_prompt();
                    (
                        ask(&env, p.as_mut(), &mut std::io::stderr())?,
                        PathBuf::from("."),
                    )
                }
            };
            run(
                &a,
                Run {
                    env,
                    out: &mut out,
                    mirrors: Vec::new(),
                    base,
                },
            )?;
            Ok(0)
        }
    }
}

/// The setup's lock (one setup at a time, across consoles), held until
/// the guard is dropped; `None` when another holds it and `wait` is false.
fn lock(env: &Env, wait: bool) -> Result<Option<nix::fcntl::Flock<std::fs::File>>> {
    use nix::fcntl::{Flock, FlockArg};
    let p = env.data.join("setup/.lock");
    if let Some(d) = p.parent() {
        std::fs::create_dir_all(d).with_context(|| format!("create '{}'", d.display()))?;
    }
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&p)
        .with_context(|| format!("open '{}'", p.display()))?;
    let arg = if wait {
        FlockArg::LockExclusive
    } else {
        FlockArg::LockExclusiveNonblock
    };
    match Flock::lock(f, arg) {
        Ok(l) => Ok(Some(l)),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
        Err((_, e)) => Err(anyhow!("setup lock '{}': {e}", p.display())),
    }
}

/// `coffer console --tty T`: what tty1 and the serial console run.
/// Until the setup has completed it runs it (from a setup medium if one
/// is attached, else asking); then it opens the management shell, and
/// opens it again when someone leaves it.
pub fn console(tty: &Path, socket: &Path) -> Result<u8> {
    let env = Env::from_environment();
    let consoles = [PathBuf::from("/dev/tty1"), PathBuf::from("/dev/ttyS0")];
    let mirrors: Vec<PathBuf> = consoles
        .iter()
        .filter(|c| c.as_path() != tty)
        .cloned()
        .collect();
    let stdin = std::io::stdin();
    while !done(&env) {
        // One console looks for the medium and runs the setup; the other
        // waits, then finds it done (the report is mirrored to it).
        let Some(held) = lock(&env, false)? else {
            eprintln!(
                "coffer: the setup is running on another console; its report is shown here too"
            );
            let _l = lock(&env, true)?;
            continue;
        };
        if done(&env) {
            break;
        }
        match answers_from_medium(&env) {
            Ok(Some((text, base))) => {
                let msg = format!("coffer: setup answers found on the {MEDIUM_LABEL} medium");
                eprintln!("{msg}");
                for mut m in open_mirrors(&mirrors) {
                    let _ = write!(m, "{msg}\r\n");
                }
                let result = Answers::parse(&text, ANSWERS_NAME).and_then(|a| {
                    run(
                        &a,
                        Run {
                            env: env.clone(),
                            out: &mut std::io::stdout(),
                            mirrors: mirrors.clone(),
                            base: base.clone(),
                        },
                    )
                });
                unmount(&base);
                drop(held);
                if let Err(e) = result {
                    let msg = format!(
                        "coffer setup: {e:#}\ncoffer setup: nothing more was changed; fix the answers on the medium and restart (or press Enter to answer here instead)"
                    );
                    eprintln!("{msg}");
                    for mut m in open_mirrors(&mirrors) {
                        let _ = write!(m, "{}\r\n", msg.replace('\n', "\r\n"));
                    }
                    let mut l = String::new();
                    if stdin.lock().read_line(&mut l)? == 0 {
                        std::thread::sleep(Duration::from_secs(30));
                    } else {
                        setup_here(&env, &mirrors)?;
                    }
                }
            }
            Ok(None) => {
                drop(held);
                eprintln!(
                    "\nThis Coffer appliance is not set up yet. Press Enter to run the setup on this console\n\
                     (or attach a medium labelled {MEDIUM_LABEL} holding {ANSWERS_NAME} and restart)."
                );
                let mut l = String::new();
                if stdin.lock().read_line(&mut l)? == 0 {
                    std::thread::sleep(Duration::from_secs(5));
                    continue;
                }
                if done(&env) {
                    break;
                }
                setup_here(&env, &mirrors)?;
            }
            Err(e) => {
                drop(held);
                eprintln!("coffer setup: {e:#}");
                std::thread::sleep(Duration::from_secs(10));
            }
        }
    }
    // A slot whose cofferd does not come up (a bad update being tried)
    // says so here until the boot check rolls it back, rather than the
    // console failing and going blank.
    let mut waited = 0u32;
    while std::os::unix::net::UnixStream::connect(socket).is_err() {
        if waited.is_multiple_of(30) {
            eprintln!(
                "coffer: cofferd does not answer on {} yet; waiting (a slot whose service never starts is rolled back by the boot check)",
                socket.display()
            );
        }
        std::thread::sleep(Duration::from_secs(1));
        waited += 1;
    }
    crate::remote::shell(&crate::remote::Opts {
        socket: socket.to_path_buf(),
        json: false,
    })
}

fn setup_here(env: &Env, mirrors: &[PathBuf]) -> Result<()> {
    let Some(_l) = lock(env, false)? else {
        eprintln!("coffer: the setup is running on another console");
        let _l = lock(env, true)?;
        return Ok(());
    };
    let mut p = crate::remote::console_prompt();
    let a = ask(env, p.as_mut(), &mut std::io::stderr())?;
    if let Err(e) = run(
        &a,
        Run {
            env: env.clone(),
            out: &mut std::io::stdout(),
            mirrors: mirrors.to_vec(),
            base: PathBuf::from("."),
        },
    ) {
        eprintln!("coffer setup: {e:#}\ncoffer setup: nothing more was changed; run it again");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(t: &str) -> Result<Answers> {
        Answers::parse(t, "answers.toml")
    }

    #[test]
    fn apply_renders_a_static_network_and_ntp_under_run() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        let env = Env {
            data: r.join("var/lib/coffer"),
            run: r.join("run"),
            sys_block: r.join("sys/block"),
            sys_sg: r.join("sys/class/scsi_generic"),
            dev: r.join("dev"),
            etc: r.join("etc"),
            system: false,
            socket: r.join("run/coffer/control.sock"),
        };
        assert_eq!(
            apply(&env).unwrap(),
            ["the setup has not run yet: nothing to apply"]
        );
        let a = parse(include_str!("../../../docs/examples/coffer-setup.toml")).unwrap();
        let state = State {
            hostname: a.hostname.clone().unwrap(),
            network: a.network.clone(),
            time: a.time.clone(),
            disks: Vec::new(),
            pool: None,
            store: None,
            tape: "none".into(),
            completed: None,
        };
        state.save(&env).unwrap();
        let did = apply(&env).unwrap();
        assert!(
            did.contains(&"network: static 192.0.2.10/24".to_string()),
            "{did:?}"
        );
        let net = std::fs::read_to_string(r.join("run/systemd/network/10-coffer.network")).unwrap();
        for want in [
            "Address=192.0.2.10/24",
            "Gateway=192.0.2.1",
            "DNS=192.0.2.53",
        ] {
            assert!(net.contains(want), "{want} not in\n{net}");
        }
        assert!(!net.contains("DHCP"), "{net}");
        let ntp =
            std::fs::read_to_string(r.join("run/systemd/timesyncd.conf.d/coffer.conf")).unwrap();
        assert!(
            ntp.contains("NTP=ntp1.example.com ntp2.example.com"),
            "{ntp}"
        );
    }

    #[test]
    fn the_documented_example_is_valid() {
        let a = parse(include_str!("../../../docs/examples/coffer-setup.toml")).unwrap();
        assert_eq!(a.hostname.as_deref(), Some("vault-1"));
        assert_eq!(a.network.mode, "static");
        assert_eq!(a.network.address.as_deref(), Some("192.0.2.10/24"));
        assert_eq!(a.time.timezone, "Europe/Berlin");
        assert_eq!(
            a.admin.unwrap().password_file,
            Some(PathBuf::from("admin.password"))
        );
    }

    #[test]
    fn defaults_are_dhcp_auto_disks_and_an_automatic_library() {
        let a = parse("[admin]\npassword = \"pw\"\n").unwrap();
        assert_eq!(a.network.mode, "dhcp");
        assert_eq!(a.disks.use_disks, ["auto"]);
        assert_eq!(a.tape.library, "auto");
        assert_eq!(a.admin.as_ref().unwrap().user, "admin");
        assert_eq!(a.time.timezone, "UTC");
    }

    #[test]
    fn a_bad_field_is_named() {
        for (text, named) in [
            ("hostname = \"no_way\"", "hostname"),
            ("[network]\nmode = \"static\"", "[network] address"),
            (
                "[network]\nmode = \"static\"\naddress = \"10.0.0.300/24\"",
                "[network] address",
            ),
            (
                "[network]\nmode = \"static\"\naddress = \"10.0.0.3/24\"\ngateway = \"fe80::1\"",
                "[network] gateway",
            ),
            ("[network]\naddress = \"10.0.0.3/24\"", "[network] address"),
            ("[network]\nmode = \"bootp\"", "[network] mode"),
            ("[network]\ndns = [\"resolver\"]", "[network] dns"),
            ("[time]\ntimezone = \"Mars/Olympus\"", "[time] timezone"),
            ("[time]\nntp = [\"bad host!\"]", "[time] ntp"),
            (
                "[admin]\nuser = \"root me\"\npassword = \"x\"",
                "[admin] user",
            ),
            ("[admin]\nuser = \"a\"", "[admin] password"),
            ("[admin]\npassword = \"\"", "[admin] password"),
            ("[disks]\nuse_disks = [\"../sda\"]", "[disks] use_disks"),
            (
                "[disks]\nuse_disks = [\"auto\", \"vdb\"]",
                "[disks] use_disks",
            ),
            ("[tape]\nlibrary = \"cloud\"", "[tape] library"),
            ("[tape]\ncartridges = 0", "[tape] cartridges"),
        ] {
            let e = format!("{:#}", parse(text).unwrap_err());
            assert!(e.contains(named), "{text:?}: {e}");
        }
        // Unknown keys and wrong types are TOML errors naming the key and line.
        let e = format!("{:#}", parse("[network]\nmodee = \"dhcp\"").unwrap_err());
        assert!(e.contains("modee") && e.contains("line 2"), "{e}");
        let e = format!("{:#}", parse("[disks]\nwipe = \"yes\"").unwrap_err());
        assert!(e.contains("wipe") || e.contains("boolean"), "{e}");
    }

    #[test]
    fn a_static_network_and_custom_time_parse() {
        let a = parse(
            "hostname = \"vault-2\"\n[network]\nmode = \"static\"\naddress = \"192.0.2.10/24\"\ngateway = \"192.0.2.1\"\ndns = [\"192.0.2.53\"]\n[time]\nntp = [\"ntp.example.com\"]\ntimezone = \"Europe/Berlin\"\n",
        )
        .unwrap();
        assert_eq!(a.network.address.as_deref(), Some("192.0.2.10/24"));
        assert_eq!(a.time.ntp, ["ntp.example.com"]);
    }

    #[test]
    fn the_admin_password_is_not_in_debug_output() {
        let a = parse("[admin]\npassword = \"hunter2-secret\"\n").unwrap();
        assert!(!format!("{a:?}").contains("hunter2"));
    }
}
