//! The installed appliance as the update code sees it: its slot layout,
//! the running slot and version, the trusted keys — each read from a
//! path that [`System`] names, so the service's tests can point them at
//! files.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::bundle::Version;
use crate::slots::{self, Error, Installed, Layout, Result, Slot, Status};

/// systemd-boot's vendor GUID; `LoaderBootCountPath` exists while the
/// booted entry is being counted.
pub const COUNTED_BOOT_VAR: &str =
    "/sys/firmware/efi/efivars/LoaderBootCountPath-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f";

/// Where the pieces of an installed appliance are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct System {
    /// The slot layout ([`slots::LAYOUT_FILE`]).
    pub layout: PathBuf,
    /// The running root's version ([`slots::VERSION_FILE`]).
    pub version_file: PathBuf,
    /// The trusted update keys ([`slots::KEYS_DIR`]).
    pub keys: PathBuf,
    /// The kernel command line (names the running slot).
    pub cmdline: PathBuf,
}

impl Default for System {
    fn default() -> System {
        System {
            layout: PathBuf::from(slots::LAYOUT_FILE),
            version_file: PathBuf::from(slots::VERSION_FILE),
            keys: PathBuf::from(slots::KEYS_DIR),
            cmdline: PathBuf::from("/proc/cmdline"),
        }
    }
}

impl System {
    /// The layout, or why this is not an installed appliance.
    pub fn layout(&self) -> Result<Layout> {
        if !self.layout.exists() {
            return Err(Error::Layout(format!(
                "this is not an installed appliance ('{}' is absent): updates install into the slots of an appliance image",
                self.layout.display()
            )));
        }
        Layout::read(&self.layout)
    }
    /// The running slot.
    pub fn running(&self) -> Result<Slot> {
        let c = std::fs::read_to_string(&self.cmdline)
            .map_err(|e| Error::Layout(format!("cannot read '{}': {e}", self.cmdline.display())))?;
        slots::running_slot(&c)
    }
    /// The running root's version.
    pub fn version(&self) -> Result<Version> {
        let t = std::fs::read_to_string(&self.version_file).map_err(|e| {
            Error::Layout(format!(
                "cannot read '{}': {e}",
                self.version_file.display()
            ))
        })?;
        Ok(t.trim().parse()?)
    }
    /// The slots now.
    pub fn status(&self) -> Result<Status> {
        slots::status(&self.layout()?, self.running()?, self.version()?)
    }
    /// Installs a bundle into the inactive slot.
    pub fn install<R: std::io::Read>(&self, bundle: R, tries: u32) -> Result<Installed> {
        let layout = self.layout()?;
        let keys = slots::trusted_keys(&self.keys)?;
        slots::install(
            &layout,
            self.running()?,
            self.version()?,
            &keys,
            tries,
            bundle,
        )
    }
}

/// [`System::status`] of this machine.
pub fn status() -> Result<Status> {
    System::default().status()
}

/// [`System::install`] on this machine.
pub fn install<R: std::io::Read>(bundle: R, tries: u32) -> Result<Installed> {
    System::default().install(bundle, tries)
}

/// Whether systemd-boot is counting this boot (the entry had `+N`).
pub fn counted_boot() -> bool {
    Path::new(COUNTED_BOOT_VAR).exists()
}

/// Asks `cofferd` for its status on `socket` until it answers, for at
/// most `timeout`; returns its version.
pub fn wait_healthy(socket: &Path, timeout: Duration) -> anyhow::Result<String> {
    use std::io::{BufRead, BufReader, Write};
    let t0 = Instant::now();
    let mut last = String::from("no answer yet");
    while t0.elapsed() < timeout {
        let attempt = (|| -> anyhow::Result<String> {
            let mut s = std::os::unix::net::UnixStream::connect(socket)?;
            s.set_read_timeout(Some(Duration::from_secs(10)))?;
            s.write_all(b"{\"id\":1,\"op\":\"status\"}\n")?;
            let mut line = String::new();
            BufReader::new(s).read_line(&mut line)?;
            let v: serde_json::Value = serde_json::from_str(&line)?;
            if v.get("ok").and_then(serde_json::Value::as_bool) != Some(true) {
                anyhow::bail!("it answered {}", line.trim());
            }
            Ok(v.pointer("/result/version")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("?")
                .to_string())
        })();
        match attempt {
            Ok(v) => return Ok(v),
            Err(e) => last = format!("{e:#}"),
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    anyhow::bail!(
        "cofferd did not answer on '{}' within {}s ({last}): this slot is not healthy",
        socket.display(),
        timeout.as_secs()
    )
}
