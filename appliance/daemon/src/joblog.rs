//! Per-job logs: each job keeps its own log, `<state_dir>/jobs/<id>.log`,
//! beside its row in the job log (`coffer job log ID`). Every line is also
//! a `tracing` event in the job's span, so the daemon's log has it too.
//!
//! The job writes its log itself rather than through a `tracing` layer: a
//! layer only sees events of a subscriber installed by the binary, and the
//! daemon also runs in-process (tests, `coffer dev`) under subscribers it
//! does not control; the engine's worker threads do not carry the job's
//! span either.

use std::io::Write as _;
use std::path::{Path, PathBuf};

/// The path of job `id`'s log under `dir`.
pub fn path(dir: &Path, id: i64) -> PathBuf {
    dir.join(format!("{id}.log"))
}

/// How serious a line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Progress and outcomes.
    Info,
    /// Something the operator should look at (an unreadable file).
    Warn,
    /// The job failed.
    Error,
}

/// One job's log.
#[derive(Debug)]
pub struct JobLog {
    path: PathBuf,
    job: i64,
}

impl JobLog {
    /// The log of job `job` under `dir` (created on the first line).
    pub fn new(dir: &Path, job: i64) -> JobLog {
        JobLog {
            path: path(dir, job),
            job,
        }
    }

    /// Appends a line (time, level, text) and emits it as a `tracing` event.
    pub fn line(&self, level: Level, text: &str) {
        match level {
            Level::Info => tracing::info!(job_id = self.job, "{text}"),
            Level::Warn => tracing::warn!(job_id = self.job, "{text}"),
            Level::Error => tracing::error!(job_id = self.job, "{text}"),
        }
        let tag = match level {
            Level::Info => "INFO",
            Level::Warn => "WARN",
            Level::Error => "ERROR",
        };
        let now = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.3fZ");
        let entry = format!("{now} {tag:<5} {text}\n");
        if let Some(dir) = self.path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .and_then(|mut f| f.write_all(entry.as_bytes()));
        if let Err(e) = written {
            tracing::error!(job_id = self.job, path = %self.path.display(), error = %e, "cannot write the job's log");
        }
    }

    /// [`JobLog::line`] at info.
    pub fn info(&self, text: &str) {
        self.line(Level::Info, text);
    }

    /// [`JobLog::line`] at warn.
    pub fn warn(&self, text: &str) {
        self.line(Level::Warn, text);
    }

    /// [`JobLog::line`] at error.
    pub fn error(&self, text: &str) {
        self.line(Level::Error, text);
    }
}

/// The lines of job `id`'s log (none if it has not written one).
pub fn read(dir: &Path, id: i64) -> std::io::Result<Vec<String>> {
    match std::fs::read_to_string(path(dir, id)) {
        Ok(t) => Ok(t.lines().map(str::to_string).collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_appended_to_the_jobs_own_file() {
        let dir = tempfile::tempdir().unwrap();
        let log = JobLog::new(&dir.path().join("jobs"), 7);
        log.info("backup started");
        log.warn("cannot read /srv/x: permission denied");
        let lines = read(&dir.path().join("jobs"), 7).unwrap();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].contains("INFO  backup started"), "{lines:?}");
        assert!(lines[1].contains("WARN  cannot read /srv/x"), "{lines:?}");
        assert!(read(&dir.path().join("jobs"), 8).unwrap().is_empty());
    }
}
