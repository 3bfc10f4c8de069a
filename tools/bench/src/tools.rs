//! How each tool is driven: the same operations, encryption on, zstd at
//! comparable levels (Coffer 3, borg `zstd,3`, restic `auto`, which is its
//! zstd default level), repositories and caches inside the bench's workdir.

use std::path::{Path, PathBuf};

use crate::measure::Cmd;

const PASSPHRASE: &str = "coffer bench passphrase, not a secret";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tool {
    Coffer,
    Restic,
    Borg,
}

impl Tool {
    pub fn name(self) -> &'static str {
        match self {
            Tool::Coffer => "coffer",
            Tool::Restic => "restic",
            Tool::Borg => "borg",
        }
    }

    pub fn parse(s: &str) -> Option<Tool> {
        match s {
            "coffer" => Some(Tool::Coffer),
            "restic" => Some(Tool::Restic),
            "borg" => Some(Tool::Borg),
            _ => None,
        }
    }
}

/// One tool working on one repository.
pub struct Session {
    pub tool: Tool,
    /// The `coffer` binary (the peers come from PATH).
    pub coffer: PathBuf,
    pub repo: PathBuf,
    /// Client-side state: restic's cache, borg's base directory.
    pub state: PathBuf,
    backups: u32,
}

impl Session {
    pub fn new(tool: Tool, coffer: &Path, dir: &Path) -> Session {
        Session {
            tool,
            coffer: coffer.to_path_buf(),
            repo: dir.join("repo"),
            state: dir.join("state"),
            backups: 0,
        }
    }

    fn base(&self, program: &str) -> Cmd {
        match self.tool {
            Tool::Coffer => Cmd::new(&self.coffer)
                .env("COFFER_PASSPHRASE", PASSPHRASE)
                .arg("--store")
                .arg(&self.repo)
                .arg("--quiet"),
            Tool::Restic => Cmd::new(program)
                .env("RESTIC_PASSWORD", PASSPHRASE)
                .arg("--repo")
                .arg(&self.repo)
                .arg("--cache-dir")
                .arg(&self.state)
                .arg("--quiet"),
            Tool::Borg => Cmd::new(program)
                .env("BORG_PASSPHRASE", PASSPHRASE)
                .env("BORG_BASE_DIR", &self.state)
                .env("BORG_RELOCATED_REPO_ACCESS_IS_OK", "yes"),
        }
    }

    pub fn init(&self) -> Cmd {
        match self.tool {
            Tool::Coffer => self.base("coffer").arg("init"),
            Tool::Restic => self.base("restic").arg("init"),
            Tool::Borg => self
                .base("borg")
                .args(["init", "--encryption", "repokey-blake2"])
                .arg(&self.repo),
        }
    }

    /// The next backup of `src`: the first is full, the rest use the
    /// previous snapshot to skip unchanged files (each tool's own way).
    pub fn backup(&mut self, src: &Path) -> Cmd {
        self.backups += 1;
        match self.tool {
            Tool::Coffer => {
                let level = if self.backups == 1 {
                    "full"
                } else {
                    "incremental"
                };
                self.base("coffer")
                    .args(["backup", "--asset", "bench", "--level", level])
                    .arg(src)
            }
            Tool::Restic => self
                .base("restic")
                .args(["backup", "--compression", "auto", "--host", "bench"])
                .arg(src),
            Tool::Borg => {
                let mut archive = self.repo.clone().into_os_string();
                archive.push(format!("::b{}", self.backups));
                self.base("borg")
                    .args(["create", "--compression", "zstd,3"])
                    .arg(archive)
                    .arg(src)
            }
        }
    }

    /// Restores the latest snapshot into `target`; returns the command and
    /// where the backed-up tree `src` lands inside `target`.
    pub fn restore(&self, src: &Path, target: &Path) -> (Cmd, PathBuf) {
        let below = target.join(src.strip_prefix("/").unwrap_or(src));
        match self.tool {
            Tool::Coffer => (
                self.base("coffer")
                    .args(["restore", "latest", "--target"])
                    .arg(target),
                target.to_path_buf(),
            ),
            Tool::Restic => (
                self.base("restic")
                    .args(["restore", "latest", "--target"])
                    .arg(target),
                below,
            ),
            Tool::Borg => {
                let mut archive = self.repo.clone().into_os_string();
                archive.push(format!("::b{}", self.backups));
                (
                    self.base("borg").arg("extract").arg(archive).cwd(target),
                    below,
                )
            }
        }
    }

    /// Verification that reads and authenticates all data.
    pub fn verify(&self) -> Cmd {
        match self.tool {
            Tool::Coffer => self.base("coffer").args(["verify", "--read-data"]),
            Tool::Restic => self.base("restic").args(["check", "--read-data"]),
            Tool::Borg => self
                .base("borg")
                .args(["check", "--verify-data"])
                .arg(&self.repo),
        }
    }

    /// Retention down to the latest snapshot with its space reclaimed.
    pub fn retention(&self) -> Cmd {
        match self.tool {
            // prune removes the snapshots, gc frees their data
            Tool::Coffer => self
                .base("sh")
                .arg("-c")
                .arg(
                    "\"$1\" --store \"$2\" --quiet prune --asset bench --keep-last 1 \
                     && \"$1\" --store \"$2\" --quiet gc",
                )
                .arg("sh")
                .arg(&self.coffer)
                .arg(&self.repo),
            Tool::Restic => self
                .base("restic")
                .args(["forget", "--keep-last", "1", "--prune"]),
            // prune marks, compact frees: both are one operation here
            Tool::Borg => self
                .base("sh")
                .arg("-c")
                .arg("borg prune --keep-last 1 \"$1\" && borg compact \"$1\"")
                .arg("sh")
                .arg(&self.repo),
        }
    }

    /// Forgets every snapshot but the newest `n` (metadata only: nothing
    /// is freed yet).
    pub fn forget(&self, n: u32) -> Cmd {
        let n = n.to_string();
        match self.tool {
            Tool::Coffer => {
                self.base("coffer")
                    .args(["prune", "--asset", "bench", "--keep-last", &n])
            }
            Tool::Restic => self.base("restic").args(["forget", "--keep-last", &n]),
            Tool::Borg => self
                .base("borg")
                .args(["prune", "--keep-last", &n])
                .arg(&self.repo),
        }
    }

    /// Frees what the forgotten snapshots alone referenced: Coffer's gc,
    /// restic's prune, borg's compact.
    pub fn reclaim(&self) -> Cmd {
        match self.tool {
            Tool::Coffer => self.base("coffer").arg("gc"),
            Tool::Restic => self.base("restic").arg("prune"),
            Tool::Borg => self.base("borg").arg("compact").arg(&self.repo),
        }
    }
}
