//! Passwords: Argon2id hashes in PHC string form, and the password policy.
//!
//! A hash records its own parameters, so verification uses whatever the
//! hash was made with; changing [`PasswordParams`] affects only new hashes.
//! The comparison of the computed and stored outputs is constant-time
//! (the `password-hash` crate's `Output` equality).

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use zeroize::Zeroizing;

use crate::error::{Error, Result, random};

/// The fewest characters a password may have.
pub const MIN_PASSWORD_CHARS: usize = 12;

/// The most bytes a password may have (Argon2 takes any length; this bounds
/// the work a request can cause).
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Argon2id cost parameters for new hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordParams {
    /// Memory, KiB.
    pub m_kib: u32,
    /// Passes.
    pub t: u32,
    /// Lanes.
    pub p: u32,
}

impl Default for PasswordParams {
    /// The `argon2` crate's defaults, which follow OWASP's Argon2id
    /// guidance: 19 MiB, 2 passes, 1 lane.
    fn default() -> Self {
        PasswordParams {
            m_kib: Params::DEFAULT_M_COST,
            t: Params::DEFAULT_T_COST,
            p: Params::DEFAULT_P_COST,
        }
    }
}

impl PasswordParams {
    /// Cheap parameters (64 KiB, 1 pass) for tests, where hashing thousands
    /// of passwords must take milliseconds. Never for production.
    pub fn insecure_for_tests() -> Self {
        PasswordParams {
            m_kib: 64,
            t: 1,
            p: 1,
        }
    }

    fn argon2(self) -> Result<Argon2<'static>> {
        let params = Params::new(self.m_kib, self.t, self.p, None).map_err(|e| {
            Error::PasswordHash(format!(
                "argon2id parameters m={} KiB, t={}, p={}: {e}",
                self.m_kib, self.t, self.p
            ))
        })?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }
}

/// Hashes `password` with Argon2id under a fresh random salt; returns the
/// PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`).
pub fn hash_password(password: &str, params: PasswordParams) -> Result<String> {
    let mut salt = Zeroizing::new([0u8; 16]);
    random(salt.as_mut_slice(), "a password salt")?;
    let salt = SaltString::encode_b64(salt.as_slice())
        .map_err(|e| Error::PasswordHash(format!("encoding the salt: {e}")))?;
    let hash = params
        .argon2()?
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| Error::PasswordHash(format!("hashing: {e}")))?;
    Ok(hash.to_string())
}

/// Whether `password` matches the PHC string `phc`. A wrong password is
/// `Ok(false)`; an unreadable hash is an error.
pub fn verify_password(password: &str, phc: &str) -> Result<bool> {
    let parsed = PasswordHash::new(phc)
        .map_err(|e| Error::PasswordHash(format!("reading a stored hash: {e}")))?;
    match Argon2::default().verify_password(password.as_bytes(), &parsed) {
        Ok(()) => Ok(true),
        Err(argon2::password_hash::Error::Password) => Ok(false),
        Err(e) => Err(Error::PasswordHash(format!("verifying: {e}"))),
    }
}

/// Checks a new password for `user` against the policy: at least
/// [`MIN_PASSWORD_CHARS`] characters, at most [`MAX_PASSWORD_BYTES`] bytes,
/// not the user name (in any case), not only spaces.
pub fn check_policy(user: &str, password: &str) -> Result<()> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(Error::WeakPassword(format!(
            "it has {chars} characters; at least {MIN_PASSWORD_CHARS} are needed"
        )));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(Error::WeakPassword(format!(
            "it is longer than {MAX_PASSWORD_BYTES} bytes"
        )));
    }
    if password.trim().is_empty() {
        return Err(Error::WeakPassword("it is only spaces".into()));
    }
    let lower = Zeroizing::new(password.to_lowercase());
    if *lower == user.to_lowercase() {
        return Err(Error::WeakPassword("it is the user name".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let params = PasswordParams::insecure_for_tests();
        let phc = hash_password("correct horse battery", params).unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{phc}");
        assert!(verify_password("correct horse battery", &phc).unwrap());
        assert!(!verify_password("correct horse batterY", &phc).unwrap());
        assert!(!verify_password("", &phc).unwrap());
        // Salted: the same password hashes differently each time.
        assert_ne!(phc, hash_password("correct horse battery", params).unwrap());
    }

    #[test]
    fn verification_uses_the_parameters_recorded_in_the_hash() {
        let phc = hash_password(
            "another long secret",
            PasswordParams {
                m_kib: 128,
                t: 2,
                p: 1,
            },
        )
        .unwrap();
        assert!(phc.contains("m=128,t=2,p=1"));
        assert!(verify_password("another long secret", &phc).unwrap());
    }

    #[test]
    fn the_default_parameters_are_the_argon2_crates() {
        assert_eq!(
            PasswordParams::default(),
            PasswordParams {
                m_kib: 19_456,
                t: 2,
                p: 1
            }
        );
    }

    #[test]
    fn production_parameters_hash_and_verify() {
        let phc = hash_password("production strength", PasswordParams::default()).unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify_password("production strength", &phc).unwrap());
    }

    #[test]
    fn an_unreadable_hash_is_an_error_not_a_mismatch() {
        assert!(matches!(
            verify_password("whatever long", "not a phc string"),
            Err(Error::PasswordHash(_))
        ));
    }

    #[test]
    fn the_policy_explains_what_is_wrong() {
        let msg = check_policy("alice", "short").unwrap_err().to_string();
        assert!(
            msg.contains("5 characters") && msg.contains("at least 12"),
            "{msg}"
        );
        let msg = check_policy("administrator", "Administrator")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("user name"), "{msg}");
        assert!(check_policy("alice", &" ".repeat(20)).is_err());
        assert!(check_policy("alice", &"x".repeat(MAX_PASSWORD_BYTES + 1)).is_err());
        // Characters, not bytes: twelve non-ASCII letters are enough.
        assert!(check_policy("alice", "ääääääääääää").is_ok());
        assert!(check_policy("alice", "correct horse").is_ok());
    }
}
