//! Tape data encryption (SSC-4, security protocol 20h): the pages read with
//! SECURITY PROTOCOL IN and the Set Data Encryption page sent with
//! SECURITY PROTOCOL OUT.

use zeroize::Zeroizing;

use super::{Bytes, ParseResult};

/// SECURITY PROTOCOL IN page: Data Encryption Capabilities.
pub const PAGE_CAPABILITIES: u16 = 0x0010;
/// SECURITY PROTOCOL IN page: Data Encryption Status.
pub const PAGE_STATUS: u16 = 0x0020;
/// SECURITY PROTOCOL OUT page: Set Data Encryption.
pub const PAGE_SET_DATA_ENCRYPTION: u16 = 0x0010;

/// Security algorithm code of AES-256 in GCM mode, the LTO drive cipher
/// (SSC-4, "Data Encryption Algorithm descriptor", SECURITY ALGORITHM CODE
/// 00010014h).
pub const AES256_GCM: u32 = 0x0001_0014;

/// ENCRYPTION MODE: DISABLE.
pub const ENCRYPT_DISABLE: u8 = 0x0;
/// ENCRYPTION MODE: ENCRYPT (the drive encrypts with the key it was given).
pub const ENCRYPT_ENCRYPT: u8 = 0x2;
/// DECRYPTION MODE: DISABLE.
pub const DECRYPT_DISABLE: u8 = 0x0;
/// DECRYPTION MODE: MIXED (decrypt encrypted blocks, pass plain blocks).
pub const DECRYPT_MIXED: u8 = 0x3;

/// Scope ALL I_T NEXUS: the key applies to every initiator's connection.
const SCOPE_ALL_IT_NEXUS: u8 = 0x2;

/// One Data Encryption Algorithm descriptor of the capabilities page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Algorithm {
    /// ALGORITHM INDEX, what the Set Data Encryption page names.
    pub index: u8,
    /// ENCRYPT_C: 0 not capable, 1 external only, 2 hardware, 3 reserved.
    pub encrypt_capable: u8,
    /// DECRYPT_C, same values.
    pub decrypt_capable: u8,
    /// Largest unauthenticated key-associated data (U-KAD) in bytes.
    pub max_ukad: u16,
    /// Largest authenticated key-associated data (A-KAD) in bytes.
    pub max_akad: u16,
    /// KEY SIZE in bytes.
    pub key_size: u16,
    /// SECURITY ALGORITHM CODE.
    pub code: u32,
}

/// Parses the Data Encryption Capabilities page (0010h; SSC-4, tables
/// "Data Encryption Capabilities page" and "Data Encryption Algorithm
/// descriptor"):
///
/// ```text
/// page:       bytes 0-1 PAGE CODE, 2-3 PAGE LENGTH (n - 3), 4 EXTDECC/CFG_P,
///             5-19 reserved, 20.. algorithm descriptors
/// descriptor: byte 0 ALGORITHM INDEX, 2-3 DESCRIPTOR LENGTH (n - 3),
///             4 AVFMV SDK_C MAC_C DELB_C DECRYPT_C(3..2) ENCRYPT_C(1..0),
///             6-7 MAXIMUM U-KAD BYTES, 8-9 MAXIMUM A-KAD BYTES, 10-11 KEY SIZE,
///             12 DKAD_C EEMC_C RDMC_C EAREM, 13 reserved,
///             14-15 MAXIMUM SUPPLEMENTAL DECRYPTION KEY COUNT, 16-19 reserved,
///             20-23 SECURITY ALGORITHM CODE
/// ```
pub fn parse_capabilities(data: &[u8]) -> ParseResult<Vec<Algorithm>> {
    let b = Bytes::new("data encryption capabilities page", data);
    let page = b.u16(0)?;
    if page != PAGE_CAPABILITIES {
        return Err(b.err(format!("page code {page:#06x}, expected 0x0010")));
    }
    let b = b.declared(4 + u64::from(b.u16(2)?));
    let mut algs = Vec::new();
    let mut at = 20;
    while at + 4 <= b.len() {
        let len = usize::from(b.u16(at + 2)?);
        let d = Bytes::new(
            "data encryption algorithm descriptor",
            b.slice(at, 4 + len)?,
        );
        if len < 20 {
            return Err(d.err(format!("descriptor length {len}, expected at least 20")));
        }
        let c = d.u8(4)?;
        algs.push(Algorithm {
            index: d.u8(0)?,
            encrypt_capable: c & 0x03,
            decrypt_capable: (c >> 2) & 0x03,
            max_ukad: d.u16(6)?,
            max_akad: d.u16(8)?,
            key_size: d.u16(10)?,
            code: d.u32(20)?,
        });
        at += 4 + len;
    }
    Ok(algs)
}

/// The algorithm the drive should use for a 256-bit key: AES-256-GCM,
/// encrypting and decrypting in the drive.
pub fn pick_aes256_gcm(algs: &[Algorithm]) -> Option<&Algorithm> {
    algs.iter().find(|a| {
        a.code == AES256_GCM && a.key_size == 32 && a.encrypt_capable == 2 && a.decrypt_capable == 2
    })
}

/// Where the key-associated data goes (SSC-4, KEY DESCRIPTOR TYPE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KadKind {
    /// U-KAD (00h): recorded in the clear, readable without the key.
    Unauthenticated = 0,
    /// A-KAD (01h): recorded in the clear and authenticated with the key.
    Authenticated = 1,
}

/// Builds the Set Data Encryption page (0010h; SSC-4, table "Set Data
/// Encryption page") that turns encryption on with `key`:
///
/// ```text
/// bytes 0-1   PAGE CODE 0010h        bytes 2-3  PAGE LENGTH (n - 3)
/// byte 4      SCOPE(7..5) = ALL I_T NEXUS, LOCK(0) = 0
/// byte 5      CEEM(7..6) RDMC(5..4) SDK(3) CKOD(2) CKORP(1) CKORL(0), all 0
/// byte 6      ENCRYPTION MODE = 2 ENCRYPT
/// byte 7      DECRYPTION MODE = 3 MIXED
/// byte 8      ALGORITHM INDEX
/// byte 9      LOGICAL BLOCK ENCRYPTION KEY FORMAT = 0 (plain key)
/// byte 10     KAD FORMAT = 0
/// bytes 11-17 reserved
/// bytes 18-19 KEY LENGTH = 0020h      bytes 20-51 KEY
/// then, with `kad`: KEY DESCRIPTOR TYPE, reserved/AUTHENTICATED,
///   KEY DESCRIPTOR LENGTH (2), descriptor
/// ```
///
/// The page holds the key: it is wiped when dropped.
pub fn set_data_encryption_page(
    algorithm_index: u8,
    key: &[u8; 32],
    kad: Option<(KadKind, &[u8])>,
) -> Zeroizing<Vec<u8>> {
    let kad_len = kad.map_or(0, |(_, d)| 4 + d.len().min(0xFFFF));
    let mut p = Zeroizing::new(Vec::with_capacity(52 + kad_len));
    p.extend_from_slice(&PAGE_SET_DATA_ENCRYPTION.to_be_bytes());
    p.extend_from_slice(&[0, 0]); // page length, set below
    p.push(SCOPE_ALL_IT_NEXUS << 5);
    p.push(0);
    p.push(ENCRYPT_ENCRYPT);
    p.push(DECRYPT_MIXED);
    p.push(algorithm_index);
    p.push(0); // key format: plain text
    p.push(0); // KAD format: unspecified
    p.extend_from_slice(&[0; 7]);
    p.extend_from_slice(&32u16.to_be_bytes());
    p.extend_from_slice(key);
    if let Some((kind, data)) = kad {
        let data = &data[..data.len().min(0xFFFF)];
        p.push(kind as u8);
        p.push(0);
        p.extend_from_slice(&(data.len() as u16).to_be_bytes());
        p.extend_from_slice(data);
    }
    let len = u16::try_from(p.len() - 4).unwrap_or(u16::MAX);
    p[2..4].copy_from_slice(&len.to_be_bytes());
    p
}

/// The Set Data Encryption page that turns encryption off: both modes
/// DISABLE, no key (KEY LENGTH 0).
pub fn disable_encryption_page() -> Vec<u8> {
    let mut p = vec![0u8; 20];
    p[0..2].copy_from_slice(&PAGE_SET_DATA_ENCRYPTION.to_be_bytes());
    p[2..4].copy_from_slice(&16u16.to_be_bytes());
    p[4] = SCOPE_ALL_IT_NEXUS << 5;
    p[6] = ENCRYPT_DISABLE;
    p[7] = DECRYPT_DISABLE;
    p
}

/// What the Data Encryption Status page reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncryptionStatus {
    /// ENCRYPTION MODE (0 disable, 1 external, 2 encrypt).
    pub encryption_mode: u8,
    /// DECRYPTION MODE (0 disable, 1 raw, 2 decrypt, 3 mixed).
    pub decryption_mode: u8,
    /// ALGORITHM INDEX in use.
    pub algorithm_index: u8,
}

impl EncryptionStatus {
    /// The drive encrypts what it writes.
    pub fn encrypting(&self) -> bool {
        self.encryption_mode == ENCRYPT_ENCRYPT
    }
}

/// Parses the Data Encryption Status page (0020h; SSC-4, table "Data
/// Encryption Status page"): bytes 0-1 PAGE CODE, 2-3 PAGE LENGTH, 4
/// I_T NEXUS SCOPE / KEY SCOPE, 5 ENCRYPTION MODE, 6 DECRYPTION MODE, 7
/// ALGORITHM INDEX, 8-11 KEY INSTANCE COUNTER, ...
pub fn parse_status(data: &[u8]) -> ParseResult<EncryptionStatus> {
    let b = Bytes::new("data encryption status page", data);
    let page = b.u16(0)?;
    if page != PAGE_STATUS {
        return Err(b.err(format!("page code {page:#06x}, expected 0x0020")));
    }
    let b = b.declared(4 + u64::from(b.u16(2)?));
    Ok(EncryptionStatus {
        encryption_mode: b.u8(5)?,
        decryption_mode: b.u8(6)?,
        algorithm_index: b.u8(7)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scsi::fixtures::fixture;

    // SSC-4 tables "Data Encryption Capabilities page" and "Data Encryption
    // Algorithm descriptor": two algorithms, index 1 AES-256-CCM-like
    // (code 00010010h, external only) and index 2 AES-256-GCM in hardware.
    #[test]
    fn capabilities() {
        let algs = parse_capabilities(&fixture("spin_encryption_capabilities")).unwrap();
        assert_eq!(algs.len(), 2);
        assert_eq!(algs[0].index, 1);
        assert_eq!(algs[0].encrypt_capable, 1);
        let a = pick_aes256_gcm(&algs).unwrap();
        assert_eq!(
            *a,
            Algorithm {
                index: 2,
                encrypt_capable: 2,
                decrypt_capable: 2,
                max_ukad: 32,
                max_akad: 12,
                key_size: 32,
                code: AES256_GCM,
            }
        );
    }

    #[test]
    fn capabilities_wrong_page() {
        let mut d = fixture("spin_encryption_capabilities");
        d[1] = 0x01;
        assert!(parse_capabilities(&d).is_err());
    }

    // SSC-4 table "Set Data Encryption page", with a U-KAD descriptor
    // (table "Tape data encryption key descriptor", type 00h).
    #[test]
    fn set_data_encryption() {
        let key: [u8; 32] = std::array::from_fn(|i| i as u8);
        let p = set_data_encryption_page(2, &key, Some((KadKind::Unauthenticated, b"coffer-k1")));
        assert_eq!(&p[..], &fixture("spout_set_data_encryption")[..]);
        let p = set_data_encryption_page(2, &key, None);
        assert_eq!(p.len(), 52);
        assert_eq!(&p[2..4], &[0, 48]);
    }

    // SSC-4 table "Set Data Encryption page", both modes DISABLE.
    #[test]
    fn disable() {
        assert_eq!(
            disable_encryption_page(),
            fixture("spout_disable_encryption")
        );
    }

    // SSC-4 table "Data Encryption Status page".
    #[test]
    fn status() {
        let s = parse_status(&fixture("spin_encryption_status_on")).unwrap();
        assert!(s.encrypting());
        assert_eq!(s.decryption_mode, DECRYPT_MIXED);
        assert_eq!(s.algorithm_index, 2);
        let mut d = fixture("spin_encryption_status_on");
        d[5] = 0;
        d[6] = 0;
        assert!(!parse_status(&d).unwrap().encrypting());
    }
}
