//! Cartridge barcodes: what the label says the cartridge is.
//!
//! An LTO barcode label is a six-character volume serial followed by a
//! two-character media identifier: `L5`–`L9` for LTO-5 to LTO-9 data
//! cartridges, `LT`–`LZ` for LTO-3 to LTO-9 WORM cartridges (`LZ` is LTO-9
//! WORM), and `CU` (or an `L` id) on a cleaning cartridge, whose serial
//! starts with `CLN`.

use serde::{Deserialize, Serialize};

/// What a barcode says about its cartridge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum MediaKind {
    /// A rewritable data cartridge of LTO generation `generation`.
    Data {
        /// LTO generation (5 to 9).
        generation: u8,
    },
    /// A write-once (WORM) cartridge of LTO generation `generation`.
    Worm {
        /// LTO generation (3 to 9).
        generation: u8,
    },
    /// A cleaning cartridge.
    Cleaning,
}

impl MediaKind {
    /// Whether the cartridge can be written once and never again.
    pub fn is_worm(self) -> bool {
        matches!(self, MediaKind::Worm { .. })
    }
}

impl std::fmt::Display for MediaKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MediaKind::Data { generation } => write!(f, "LTO-{generation} data"),
            MediaKind::Worm { generation } => write!(f, "LTO-{generation} WORM"),
            MediaKind::Cleaning => f.write_str("cleaning"),
        }
    }
}

/// Why a barcode was not recognised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BarcodeError {
    /// Not eight characters of A–Z and 0–9.
    #[error(
        "barcode '{0}' is not an LTO label: six letters or digits of serial and a two-character media id (for example ABC123L9)"
    )]
    Shape(String),
    /// A media id Coffer does not write to.
    #[error(
        "barcode '{0}': media id '{1}' is not LTO-5 to LTO-9 data (L5–L9), LTO WORM (LT–LZ) or cleaning (CLN…)"
    )]
    MediaId(String, String),
}

/// Classifies an LTO barcode label.
pub fn classify(barcode: &str) -> Result<MediaKind, BarcodeError> {
    let b = barcode.as_bytes();
    if b.len() != 8
        || !b
            .iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    {
        return Err(BarcodeError::Shape(barcode.to_string()));
    }
    let id = &barcode[6..];
    if barcode.starts_with("CLN") {
        return if id == "CU" || (id.as_bytes()[0] == b'L' && id.as_bytes()[1].is_ascii_digit()) {
            Ok(MediaKind::Cleaning)
        } else {
            Err(BarcodeError::MediaId(barcode.to_string(), id.to_string()))
        };
    }
    match id.as_bytes() {
        [b'L', g @ b'5'..=b'9'] => Ok(MediaKind::Data {
            generation: g - b'0',
        }),
        [b'L', w @ b'T'..=b'Z'] => Ok(MediaKind::Worm {
            generation: w - b'T' + 3,
        }),
        _ => Err(BarcodeError::MediaId(barcode.to_string(), id.to_string())),
    }
}

/// Whether `barcode` follows a pool's naming rule: `?` stands for any one
/// character, `*` for any run of characters (an empty rule matches all).
pub fn matches_rule(rule: &str, barcode: &str) -> bool {
    fn go(p: &[u8], s: &[u8]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], s) || (!s.is_empty() && go(p, &s[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &s[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &s[1..]),
            _ => false,
        }
    }
    rule.is_empty() || go(rule.as_bytes(), barcode.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lto_data_worm_and_cleaning_labels_are_recognised() {
        assert_eq!(classify("ABC123L9"), Ok(MediaKind::Data { generation: 9 }));
        assert_eq!(classify("000001L5"), Ok(MediaKind::Data { generation: 5 }));
        assert_eq!(classify("WRM001LZ"), Ok(MediaKind::Worm { generation: 9 }));
        assert_eq!(classify("WRM001LT"), Ok(MediaKind::Worm { generation: 3 }));
        assert_eq!(classify("WRM001LY"), Ok(MediaKind::Worm { generation: 8 }));
        assert_eq!(classify("CLN001CU"), Ok(MediaKind::Cleaning));
        assert_eq!(classify("CLN002L1"), Ok(MediaKind::Cleaning));
        assert!(classify("WRM001LZ").unwrap().is_worm());
        assert_eq!(MediaKind::Worm { generation: 9 }.to_string(), "LTO-9 WORM");
    }

    #[test]
    fn other_labels_are_refused_with_the_reason() {
        for bad in ["ABC12L9", "abc123L9", "ABC123L9X", "ABC-23L9", ""] {
            assert!(
                matches!(classify(bad), Err(BarcodeError::Shape(_))),
                "{bad}"
            );
        }
        for bad in ["ABC123L4", "ABC123L1", "ABC123LS", "ABC123XX", "CLN001XX"] {
            let e = classify(bad).unwrap_err();
            assert!(matches!(e, BarcodeError::MediaId(..)), "{bad}");
            assert!(e.to_string().contains(&bad[6..]), "{e}");
        }
    }

    #[test]
    fn naming_rules_match_with_wildcards() {
        assert!(matches_rule("", "ABC123L9"));
        assert!(matches_rule("DLY???L9", "DLY001L9"));
        assert!(!matches_rule("DLY???L9", "WKL001L9"));
        assert!(matches_rule("W*", "WKL001L9"));
        assert!(matches_rule("*L9", "WKL001L9"));
        assert!(!matches_rule("*L8", "WKL001L9"));
        assert!(!matches_rule("DLY???L9", "DLY0011L9"));
    }
}
