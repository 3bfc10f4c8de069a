//! Single-use recovery codes, for a user who lost their authenticator.
//!
//! Ten codes per enrollment, each `XXXX-XXXX-XXXX` over a 32-symbol alphabet
//! without the look-alikes `0 O 1 I`: 12 × 5 = 60 random bits. Codes that
//! random need no slow hash (nobody can enumerate 2^60 guesses against a
//! stolen hash in useful time, and online guessing is stopped by the
//! lockout), so the catalog keeps a blake3 hash, keyed by a domain string
//! and the user's name. Matching ignores case, spaces and dashes.

use zeroize::Zeroizing;

use crate::error::{Result, random};

/// Codes per enrollment.
pub const RECOVERY_CODES: usize = 10;

/// Symbols per code (without dashes).
pub const CODE_SYMBOLS: usize = 12;

/// The alphabet: A–Z without I and O, then 2–9. 32 symbols, 5 bits each.
pub const ALPHABET: &[u8; 32] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

const DOMAIN: &str = "coffer recovery code v1";

/// Generates [`RECOVERY_CODES`] new codes, formatted `XXXX-XXXX-XXXX`.
pub fn generate() -> Result<Vec<String>> {
    let mut random_bytes = Zeroizing::new([0u8; RECOVERY_CODES * CODE_SYMBOLS]);
    random(random_bytes.as_mut_slice(), "recovery codes")?;
    Ok(random_bytes
        .chunks(CODE_SYMBOLS)
        .map(|chunk| {
            let mut code = String::with_capacity(CODE_SYMBOLS + 2);
            for (i, &b) in chunk.iter().enumerate() {
                if i > 0 && i % 4 == 0 {
                    code.push('-');
                }
                // 32 divides 256: masking is uniform.
                code.push(char::from(ALPHABET[usize::from(b & 31)]));
            }
            code
        })
        .collect())
}

/// The code as [`CODE_SYMBOLS`] upper-case symbols, or `None` if it is not
/// a well-formed code (after dropping spaces and dashes).
pub fn normalize(code: &str) -> Option<Zeroizing<String>> {
    let out: Zeroizing<String> = Zeroizing::new(
        code.chars()
            .filter(|c| !matches!(c, '-' | ' '))
            .map(|c| c.to_ascii_uppercase())
            .collect(),
    );
    let ok = out.len() == CODE_SYMBOLS && out.bytes().all(|b| ALPHABET.contains(&b));
    ok.then_some(out)
}

/// The stored hash of `code` for `user`, or `None` if `code` is not a
/// well-formed recovery code.
pub fn hash_code(user: &str, code: &str) -> Option<[u8; 32]> {
    let normal = normalize(code)?;
    let mut h = blake3::Hasher::new_derive_key(DOMAIN);
    h.update(&(user.len() as u64).to_le_bytes());
    h.update(user.as_bytes());
    h.update(normal.as_bytes());
    Some(*h.finalize().as_bytes())
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn codes_have_the_format_and_differ() {
        let codes = generate().unwrap();
        assert_eq!(codes.len(), RECOVERY_CODES);
        for c in &codes {
            let parts: Vec<&str> = c.split('-').collect();
            assert_eq!(parts.len(), 3, "{c}");
            assert!(parts.iter().all(|p| p.len() == 4), "{c}");
            assert!(c.bytes().all(|b| b == b'-' || ALPHABET.contains(&b)), "{c}");
            assert!(!c.contains(['0', 'O', '1', 'I']), "{c}");
        }
        let distinct: HashSet<_> = codes.iter().collect();
        assert_eq!(distinct.len(), RECOVERY_CODES);
    }

    #[test]
    fn matching_ignores_case_dashes_and_spaces() {
        let h = hash_code("alice", "ABCD-EFGH-JK23").unwrap();
        for variant in [
            "abcd-efgh-jk23",
            "ABCDEFGHJK23",
            "abcd efgh jk23",
            " AbCd-EfGh-Jk23 ",
        ] {
            assert_eq!(hash_code("alice", variant), Some(h), "{variant}");
        }
        assert_ne!(hash_code("bob", "ABCD-EFGH-JK23"), Some(h), "per user");
        assert_ne!(hash_code("alice", "ABCD-EFGH-JK24"), Some(h));
    }

    #[test]
    fn malformed_codes_have_no_hash() {
        for bad in [
            "",
            "ABCD-EFGH-JK2",
            "ABCD-EFGH-JK234",
            "ABCD-EFGH-JK20",
            "ABCD-EFGH-JKI3",
            "123456",
        ] {
            assert_eq!(hash_code("alice", bad), None, "{bad}");
        }
    }
}
