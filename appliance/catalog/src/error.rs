//! The catalog's one error type.

use std::path::{Path, PathBuf};

use rusqlite::ErrorCode;

/// Everything the catalog can fail at. Variants are split by what a caller
/// does about them; every message names what failed and on what.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database file could not be opened or created (missing directory,
    /// permissions, read-only filesystem, …).
    #[error("cannot open the catalog {}: {error}", path.display())]
    Open {
        /// The catalog file.
        path: PathBuf,
        /// SQLite's reason.
        error: rusqlite::Error,
    },

    /// The file exists but is not a SQLite database.
    #[error(
        "{} is not a Coffer catalog: the file is not a SQLite database \
         (move it aside and run `coffer catalog rebuild`)",
        path.display()
    )]
    NotADatabase {
        /// The file that is not a database.
        path: PathBuf,
    },

    /// The database was written by a newer Coffer whose schema this code does
    /// not know; nothing was changed.
    #[error(
        "the catalog {} has schema version {found}, but this Coffer supports \
         versions up to {supported}; upgrade Coffer to use it",
        path.display()
    )]
    NewerSchema {
        /// The catalog file.
        path: PathBuf,
        /// `PRAGMA user_version` found in the file.
        found: i64,
        /// The newest version this code knows.
        supported: i64,
    },

    /// Migrating the schema to `version` failed; the transaction was rolled
    /// back and the file is unchanged.
    #[error("cannot migrate the catalog {} to schema version {version}: {error}", path.display())]
    Migrate {
        /// The catalog file.
        path: PathBuf,
        /// The migration that failed.
        version: i64,
        /// SQLite's reason.
        error: rusqlite::Error,
    },

    /// Another process held the database locked for longer than the busy
    /// timeout (10 s).
    #[error("the catalog {} is locked by another process ({what})", path.display())]
    Busy {
        /// The catalog file.
        path: PathBuf,
        /// The operation that waited.
        what: &'static str,
    },

    /// Any other SQLite failure.
    #[error("catalog {}: {what}: {error}", path.display())]
    Sql {
        /// The catalog file.
        path: PathBuf,
        /// The operation that failed.
        what: &'static str,
        /// SQLite's reason.
        error: rusqlite::Error,
    },

    /// A row holds a value this code cannot read (a bad level, id, JSON, …).
    /// `coffer catalog rebuild` recreates the snapshot rows from the store.
    #[error("catalog {} holds a bad row: {detail}", path.display())]
    Corrupt {
        /// The catalog file.
        path: PathBuf,
        /// Which row and which value.
        detail: String,
    },

    /// A statistic is larger than SQLite's signed 64-bit integers can hold.
    #[error(
        "{field} = {value} is too large to store in the catalog (maximum {})",
        i64::MAX
    )]
    TooLarge {
        /// The statistic's name.
        field: &'static str,
        /// Its value.
        value: u64,
    },

    /// A value could not be encoded as JSON for storage.
    #[error("cannot encode {what} as JSON: {error}")]
    Encode {
        /// What was being encoded.
        what: &'static str,
        /// serde_json's reason.
        error: serde_json::Error,
    },

    /// No media set matches this id or prefix.
    #[error("no media set matches '{0}'")]
    MediaSetNotFound(String),

    /// The prefix matches more than one media set.
    #[error("media set prefix '{prefix}' matches {count} sets; give more hex digits")]
    AmbiguousMediaSet {
        /// The prefix as given.
        prefix: String,
        /// How many sets it matches.
        count: usize,
    },

    /// The action is refused: it would delete or weaken something a
    /// retention lock or legal hold protects, or shorten a lock.
    #[error("{0}")]
    Refused(String),

    /// No job row has this id.
    #[error("no job with id {0} in the catalog")]
    JobNotFound(i64),

    /// The job is no longer queued (it started, or was cancelled).
    #[error("job {0} is no longer queued")]
    JobNotQueued(i64),

    /// No snapshot matches this id, prefix or `latest`.
    #[error("no snapshot matches '{0}'")]
    SnapshotNotFound(String),

    /// The prefix matches more than one snapshot.
    #[error("snapshot prefix '{prefix}' matches {count} snapshots; give more hex digits")]
    AmbiguousSnapshot {
        /// The prefix as given.
        prefix: String,
        /// How many snapshots it matches.
        count: u64,
    },

    /// No asset in the register, profile or alert has this name (or id).
    #[error("no {what} '{name}' in the catalog")]
    NotFound {
        /// `asset`, `profile`, `alert`.
        what: &'static str,
        /// The name or id as given.
        name: String,
    },

    /// An asset or profile with this name is already in the catalog.
    #[error("{what} '{name}' already exists")]
    Exists {
        /// `asset`, `profile`.
        what: &'static str,
        /// The name.
        name: String,
    },

    /// The object cannot be removed while others name it.
    #[error("{what} '{name}' is still used by {by_what} {}", by.join(", "))]
    InUse {
        /// What was to be removed (`profile`).
        what: &'static str,
        /// Its name.
        name: String,
        /// What names it (`assets`).
        by_what: &'static str,
        /// Their names.
        by: Vec<String>,
    },

    /// The text cannot name a snapshot: not hex, too short a prefix, too long.
    #[error("'{input}' cannot name a snapshot: {reason}")]
    InvalidSnapshotRef {
        /// The text as given.
        input: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A user with this name exists already.
    #[error("a user named '{0}' exists already")]
    UserExists(String),

    /// No user has this name.
    #[error("no user named '{0}'")]
    UserNotFound(String),

    /// An API token with this id exists already.
    #[error("an API token with id '{0}' exists already")]
    TokenExists(String),
}

/// The catalog's result type.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Wraps a SQLite error from operation `what` on the catalog at `path`,
    /// singling out lock timeouts and files that are not databases.
    pub(crate) fn sql(path: &Path, what: &'static str, source: rusqlite::Error) -> Error {
        match source.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => Error::Busy {
                path: path.to_path_buf(),
                what,
            },
            Some(ErrorCode::NotADatabase) => Error::NotADatabase {
                path: path.to_path_buf(),
            },
            _ => Error::Sql {
                path: path.to_path_buf(),
                what,
                error: source,
            },
        }
    }

    /// A row that cannot be read.
    pub(crate) fn corrupt(path: &Path, detail: String) -> Error {
        Error::Corrupt {
            path: path.to_path_buf(),
            detail,
        }
    }
}
