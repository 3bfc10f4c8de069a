//! Time-based one-time passwords (RFC 6238 over RFC 4226 HOTP):
//! HMAC-SHA1, 30-second steps, 6 digits — what every authenticator app
//! accepts from an `otpauth://` URI.
//!
//! Verification accepts the previous, current and next step (clock drift of
//! up to 30 s either way) but only a step strictly newer than the last one
//! the user used, so a code is accepted at most once; the caller records the
//! step it returns (atomically, [`coffer_catalog::Catalog::advance_totp_step`]).

use std::fmt;

use hmac::{Hmac, Mac};
use sha1::Sha1;
use zeroize::Zeroizing;

use crate::error::{Result, random};

/// Seconds per time step.
pub const STEP_SECS: i64 = 30;

/// Digits per code.
pub const DIGITS: u32 = 6;

/// Bytes of a generated secret (160 bits, as RFC 4226 recommends for SHA-1).
pub const SECRET_LEN: usize = 20;

/// The issuer shown by authenticator apps.
pub const ISSUER: &str = "Coffer";

/// A TOTP secret; zeroized on drop, redacted in `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpSecret(Zeroizing<Vec<u8>>);

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret(<redacted>)")
    }
}

impl TotpSecret {
    /// A new random secret of [`SECRET_LEN`] bytes.
    pub fn generate() -> Result<TotpSecret> {
        let mut bytes = Zeroizing::new(vec![0u8; SECRET_LEN]);
        random(bytes.as_mut_slice(), "a TOTP secret")?;
        Ok(TotpSecret(bytes))
    }

    /// A secret from its raw bytes (as stored in the catalog).
    pub fn from_bytes(bytes: &[u8]) -> TotpSecret {
        TotpSecret(Zeroizing::new(bytes.to_vec()))
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The secret in base32 without padding, for typing into an app.
    pub fn to_base32(&self) -> Zeroizing<String> {
        Zeroizing::new(base32_encode(&self.0))
    }

    /// The `otpauth://totp/…` URI an authenticator app reads (from a QR
    /// code) for `user`.
    pub fn otpauth_uri(&self, user: &str) -> Zeroizing<String> {
        Zeroizing::new(format!(
            "otpauth://totp/{issuer}:{user}?secret={secret}&issuer={issuer}\
             &algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
            issuer = percent_encode(ISSUER),
            user = percent_encode(user),
            secret = self.to_base32().as_str(),
        ))
    }
}

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// RFC 4648 base32 (upper case, no padding).
pub fn base32_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let mut buffer: u32 = 0;
    let mut bits = 0u32;
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(BASE32[((buffer >> bits) & 31) as usize]));
        }
        buffer &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(char::from(BASE32[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

/// Decodes RFC 4648 base32, ignoring case, spaces and `=` padding; `None`
/// on any other character.
pub fn base32_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let mut buffer: u32 = 0;
    let mut bits = 0u32;
    for c in text.bytes() {
        if c == b' ' || c == b'=' {
            continue;
        }
        let c = c.to_ascii_uppercase();
        let v = BASE32.iter().position(|&a| a == c)?;
        buffer = (buffer << 5) | u32::try_from(v).ok()?;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((buffer >> bits) & 0xff).ok()?);
        }
        buffer &= (1 << bits) - 1;
    }
    Some(out)
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// RFC 4226 HOTP: the `digits`-digit value for `counter` (dynamic
/// truncation of HMAC-SHA1). `None` only if HMAC refuses the key, which
/// HMAC never does.
pub fn hotp(secret: &[u8], counter: u64, digits: u32) -> Option<u32> {
    let mut mac = Hmac::<Sha1>::new_from_slice(secret).ok()?;
    mac.update(&counter.to_be_bytes());
    let out = mac.finalize().into_bytes();
    let offset = usize::from(*out.last()? & 0x0f);
    let four: [u8; 4] = out.get(offset..offset + 4)?.try_into().ok()?;
    let binary = u32::from_be_bytes(four) & 0x7fff_ffff;
    Some(binary % 10u32.checked_pow(digits)?)
}

/// The time step of `unix_secs`.
pub fn step_at(unix_secs: i64) -> i64 {
    unix_secs.div_euclid(STEP_SECS)
}

/// The 6-digit code for step `step`, zero-padded; `None` for a negative step.
fn code_for_step(secret: &[u8], step: i64) -> Option<[u8; 6]> {
    let value = hotp(secret, u64::try_from(step).ok()?, DIGITS)?;
    let text = format!("{value:06}");
    text.as_bytes().try_into().ok()
}

/// The 6-digit code at `unix_secs` (empty before the epoch).
pub fn code_at(secret: &[u8], unix_secs: i64) -> String {
    code_for_step(secret, step_at(unix_secs))
        .map(|c| c.iter().map(|&b| char::from(b)).collect())
        .unwrap_or_default()
}

/// Checks `code` (6 digits; spaces ignored) at `now_secs`: returns the step
/// it belongs to if that is one of the previous, current or next steps and
/// newer than `last_used_step`. Every candidate is computed and compared in
/// constant time, whatever matches.
pub fn verify(secret: &[u8], code: &str, now_secs: i64, last_used_step: i64) -> Option<i64> {
    let given: Zeroizing<Vec<u8>> = Zeroizing::new(code.bytes().filter(|&b| b != b' ').collect());
    if given.len() != 6 || !given.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let now = step_at(now_secs);
    let mut accepted = None;
    for step in [now - 1, now, now + 1] {
        let Some(expected) = code_for_step(secret, step) else {
            continue;
        };
        let diff = expected
            .iter()
            .zip(given.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if diff == 0 && step > last_used_step && accepted.is_none() {
            accepted = Some(step);
        }
    }
    accepted
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B, the SHA-1 rows: time, T (hex), 8-digit TOTP.
    const RFC6238_SHA1: [(i64, u64, u32); 6] = [
        (59, 0x1, 94_287_082),
        (1_111_111_109, 0x23523EC, 7_081_804),
        (1_111_111_111, 0x23523ED, 14_050_471),
        (1_234_567_890, 0x273EF07, 89_005_924),
        (2_000_000_000, 0x3F940AA, 69_279_037),
        (20_000_000_000, 0x27BC86AA, 65_353_130),
    ];
    const RFC_SECRET: &[u8] = b"12345678901234567890";

    #[test]
    fn rfc6238_sha1_vectors() {
        for (time, t, expected) in RFC6238_SHA1 {
            assert_eq!(step_at(time), i64::try_from(t).unwrap(), "T at {time}");
            assert_eq!(hotp(RFC_SECRET, t, 8), Some(expected), "8 digits at {time}");
            // Six digits are the same truncation modulo 10^6: the last six.
            assert_eq!(
                code_at(RFC_SECRET, time),
                format!("{:06}", expected % 1_000_000),
                "6 digits at {time}"
            );
        }
        assert_eq!(code_at(RFC_SECRET, 1_111_111_109), "081804");
    }

    #[test]
    fn rfc4226_hotp_vectors() {
        let expected = [
            755_224, 287_082, 359_152, 969_429, 338_314, 254_676, 287_922, 162_583, 399_871,
            520_489,
        ];
        for (counter, want) in (0u64..).zip(expected) {
            assert_eq!(
                hotp(RFC_SECRET, counter, 6),
                Some(want),
                "counter {counter}"
            );
        }
    }

    #[test]
    fn the_window_is_one_step_either_way() {
        let now = 1_000_000_000;
        let step = step_at(now);
        for (delta, ok) in [(-2, false), (-1, true), (0, true), (1, true), (2, false)] {
            let code = code_at(RFC_SECRET, now + delta * STEP_SECS);
            assert_eq!(
                verify(RFC_SECRET, &code, now, 0),
                ok.then_some(step + delta),
                "step offset {delta}"
            );
        }
    }

    #[test]
    fn a_used_step_or_an_older_one_is_refused() {
        let now = 1_000_000_000;
        let step = step_at(now);
        let code = code_at(RFC_SECRET, now);
        assert_eq!(verify(RFC_SECRET, &code, now, 0), Some(step));
        assert_eq!(verify(RFC_SECRET, &code, now, step), None, "replay");
        assert_eq!(
            verify(RFC_SECRET, &code, now + 20, step),
            None,
            "replay later"
        );
        // The previous step's code after the current one was used.
        let prev = code_at(RFC_SECRET, now - STEP_SECS);
        assert_eq!(verify(RFC_SECRET, &prev, now, step), None);
        // The next step's code is still newer.
        let next = code_at(RFC_SECRET, now + STEP_SECS);
        assert_eq!(verify(RFC_SECRET, &next, now, step), Some(step + 1));
    }

    #[test]
    fn malformed_codes_are_refused_and_spaces_ignored() {
        let now = 1_234_567_890;
        let code = code_at(RFC_SECRET, now);
        let spaced = format!("{} {}", &code[..3], &code[3..]);
        assert!(verify(RFC_SECRET, &spaced, now, 0).is_some());
        for bad in ["", "12345", "1234567", "abcdef", "12345x", "+12345"] {
            assert_eq!(verify(RFC_SECRET, bad, now, 0), None, "{bad:?}");
        }
        let wrong = format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000);
        assert_eq!(verify(RFC_SECRET, &wrong, now, 0), None);
    }

    #[test]
    fn base32_matches_rfc4648_and_round_trips() {
        // RFC 4648 section 10, padding stripped.
        for (plain, enc) in [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ] {
            assert_eq!(base32_encode(plain.as_bytes()), enc);
            assert_eq!(base32_decode(enc).unwrap(), plain.as_bytes());
        }
        assert_eq!(base32_decode("mzxw6ytboi======").unwrap(), b"foobar");
        assert_eq!(base32_decode("MZ1W"), None);
        assert_eq!(
            base32_encode(RFC_SECRET),
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
        );
        let s = TotpSecret::generate().unwrap();
        assert_eq!(s.as_bytes().len(), SECRET_LEN);
        assert_eq!(base32_decode(&s.to_base32()).unwrap(), s.as_bytes());
    }

    #[test]
    fn the_otpauth_uri_names_issuer_user_and_parameters() {
        let s = TotpSecret::from_bytes(RFC_SECRET);
        assert_eq!(
            s.otpauth_uri("alice").as_str(),
            "otpauth://totp/Coffer:alice?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
             &issuer=Coffer&algorithm=SHA1&digits=6&period=30"
        );
        assert!(
            s.otpauth_uri("a b:c/é")
                .starts_with("otpauth://totp/Coffer:a%20b%3Ac%2F%C3%A9?")
        );
        assert_eq!(format!("{s:?}"), "TotpSecret(<redacted>)");
        assert_ne!(
            TotpSecret::generate().unwrap(),
            TotpSecret::generate().unwrap()
        );
    }
}
