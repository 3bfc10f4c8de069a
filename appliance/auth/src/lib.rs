//! `coffer-auth`: who may do what on the appliance, and the record of what
//! they did (ISO 27001 A.8.13's dedicated backup roles, MFA for destructive
//! changes, and the access log an auditor reviews).
//!
//! - [`password`]: Argon2id PHC hashes and the password policy.
//! - [`totp`]: RFC 6238 TOTP (HMAC-SHA1, 30 s, 6 digits), base32 and
//!   `otpauth://` URIs, replay-proof verification.
//! - [`recovery`]: single-use recovery codes.
//! - [`roles`]: the [`Permission`] matrix of the five roles, and which
//!   permissions need fresh MFA (rendered in `docs/roles.md`).
//! - [`audit`]: the hash chain over the audit log, its anchor file and its
//!   verification.
//! - [`service`]: [`Auth`], the stateful service the daemon holds: bootstrap,
//!   login, sessions, API tokens, authorization, user management.
//!
//! All SQL is in `coffer-catalog` (its `auth` rows); this crate holds the
//! policy. Time is injected (`now_ms` on every call), randomness comes from
//! the OS. Nothing here logs a password, a code, a secret or a session
//! token; secrets this crate holds are zeroized on drop.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod audit;
mod error;
pub mod password;
pub mod recovery;
pub mod roles;
pub mod service;
#[cfg(test)]
mod service_tests;
pub mod totp;

pub use audit::{AUDIT_DOMAIN, Auditor, entry_hash};
pub use coffer_catalog::NewAuditRecord;
pub use error::{Error, LoginFailure, Result};
pub use password::PasswordParams;
pub use roles::{MATRIX, Permission, allows};
pub use service::{Auth, AuthPolicy, Principal};
