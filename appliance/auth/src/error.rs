//! The crate's one error type, and how each variant maps to the API's
//! [`ErrorCode`].
//!
//! Error policy: a variant per thing a caller acts on. Messages go to the
//! operator, so they never contain a password, a code, a secret or a session
//! token; and a failed login says only that it failed (the reason is kept
//! for the audit log in [`LoginFailure`], outside the message).

use std::path::PathBuf;

use coffer_types::api::ErrorCode;
use coffer_types::rfc3339_ms;

use crate::roles::Permission;

/// Why a login (or a code) was refused. Kept for the audit log and the
/// daemon's own log; never shown to the client, who sees one message for all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginFailure {
    /// No user has that name.
    UnknownUser,
    /// The password is wrong.
    WrongPassword,
    /// The TOTP or recovery code is wrong.
    WrongCode,
    /// The TOTP code is right but its time step was used already.
    ReplayedCode,
}

impl LoginFailure {
    /// A short name for logs and the audit detail.
    pub fn as_str(self) -> &'static str {
        match self {
            LoginFailure::UnknownUser => "unknown user",
            LoginFailure::WrongPassword => "wrong password",
            LoginFailure::WrongCode => "wrong code",
            LoginFailure::ReplayedCode => "code already used",
        }
    }
}

/// Everything `coffer-auth` can fail at.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The catalog failed (or named a missing or duplicate row).
    #[error(transparent)]
    Catalog(#[from] coffer_catalog::Error),

    /// The operating system's random number generator failed.
    #[error("cannot draw random bytes for {what}: {reason}")]
    Random {
        /// What the bytes were for.
        what: &'static str,
        /// The OS's reason.
        reason: String,
    },

    /// Argon2 failed to hash, or a stored hash cannot be read.
    #[error("password hashing failed: {0}")]
    PasswordHash(String),

    /// A new password breaks the policy.
    #[error("the password is not acceptable: {0}")]
    WeakPassword(String),

    /// The arguments are wrong (a bad user name, no roles, a bad lifetime).
    #[error("{0}")]
    Invalid(String),

    /// Wrong user, password or code; deliberately not saying which.
    #[error("login failed: wrong user name, password or code")]
    LoginFailed {
        /// What was wrong, for the audit log only.
        reason: LoginFailure,
    },

    /// A TOTP code given to prove fresh MFA was wrong or used already.
    #[error("the TOTP code is wrong or was used already")]
    CodeRejected {
        /// What was wrong, for the audit log only.
        reason: LoginFailure,
    },

    /// Too many failed logins.
    #[error("too many failed logins; locked until {}", rfc3339_ms(*until_ms))]
    LockedOut {
        /// When the lockout ends, milliseconds since the Unix epoch.
        until_ms: i64,
    },

    /// No credential, an unknown one, or an expired or revoked API token.
    #[error("not authenticated: {0}")]
    Unauthenticated(&'static str),

    /// The session ended (idle timeout or logout).
    #[error("the session has ended ({0}); log in again")]
    SessionExpired(&'static str),

    /// The caller's roles (or the rules on who may act on whom) do not allow it.
    #[error("forbidden: {0}")]
    Forbidden(String),

    /// The action needs fresh MFA: a TOTP code within the last minutes.
    #[error(
        "'{}' needs fresh MFA: verify a TOTP code first (or send one with the request){}",
        permission.as_str(),
        if reason.is_empty() { String::new() } else { format!("; {reason}") }
    )]
    FreshMfaRequired {
        /// The permission asked for.
        permission: Permission,
        /// Why the proof given was not enough, if one was given.
        reason: &'static str,
    },

    /// No such user.
    #[error("no user named '{0}'")]
    UserNotFound(String),

    /// The user name is taken.
    #[error("a user named '{0}' exists already")]
    UserExists(String),

    /// No such API token (or not one the caller may see).
    #[error("no API token '{0}'")]
    TokenNotFound(String),

    /// Not possible in the current state (bootstrap done, last administrator).
    #[error("{0}")]
    State(String),

    /// The audit anchor file could not be read.
    #[error("cannot read the audit anchor {}: {error}", path.display())]
    Anchor {
        /// The anchor file.
        path: PathBuf,
        /// The reason.
        error: std::io::Error,
    },
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// The API error code a client acts on.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::Catalog(e) => match e {
                coffer_catalog::Error::UserExists(_) | coffer_catalog::Error::TokenExists(_) => {
                    ErrorCode::Conflict
                }
                coffer_catalog::Error::UserNotFound(_) => ErrorCode::NotFound,
                _ => ErrorCode::Internal,
            },
            Error::Random { .. } | Error::PasswordHash(_) | Error::Anchor { .. } => {
                ErrorCode::Internal
            }
            Error::WeakPassword(_) | Error::Invalid(_) => ErrorCode::Invalid,
            Error::LoginFailed { .. } | Error::CodeRejected { .. } => ErrorCode::LoginFailed,
            Error::LockedOut { .. } => ErrorCode::LockedOut,
            Error::Unauthenticated(_) => ErrorCode::Unauthenticated,
            Error::SessionExpired(_) => ErrorCode::SessionExpired,
            Error::Forbidden(_) => ErrorCode::Forbidden,
            Error::FreshMfaRequired { .. } => ErrorCode::FreshMfaRequired,
            Error::UserNotFound(_) | Error::TokenNotFound(_) => ErrorCode::NotFound,
            Error::UserExists(_) => ErrorCode::Conflict,
            Error::State(_) => ErrorCode::State,
        }
    }
}

/// Fills `buf` from the OS's random number generator.
pub(crate) fn random(buf: &mut [u8], what: &'static str) -> Result<()> {
    getrandom::getrandom(buf).map_err(|e| Error::Random {
        what,
        reason: e.to_string(),
    })
}
