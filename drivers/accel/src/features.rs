//! CPU feature detection: which instruction-set extensions the host has,
//! and which of them Coffer's codec crates actually use.
//!
//! Detection is at run time (`is_x86_feature_detected!`,
//! `is_aarch64_feature_detected!`), as the codec crates themselves do: one
//! appliance image runs on every CPU, and each crate picks its fastest path
//! on the machine it finds. What each feature buys, with the crate versions
//! in this workspace:
//!
//! | feature | used by |
//! |---|---|
//! | AES-NI | the `aes` crate's AES rounds inside AES-256-GCM (`aes-gcm`) |
//! | PCLMULQDQ | the `polyval` crate's GHASH inside AES-256-GCM |
//! | VAES | nothing yet: `aes` 0.8 has no VAES path (it runs AES-NI, 8 blocks at a time) |
//! | AVX2 | blake3 (8 lanes) and reed-solomon-simd's parity |
//! | AVX-512F | blake3 (16 lanes, together with AVX-512VL); not reed-solomon-simd |
//! | SHA-NI | nothing: Coffer's codecs use blake3, not SHA |
//! | NEON (aarch64) | blake3 and reed-solomon-simd |
//! | AES, PMULL (aarch64) | nothing in a default build: `aes` 0.8 and `polyval` 0.6 use them only when built with `--cfg aes_armv8` / `--cfg polyval_armv8` |
//!
//! zstd (libzstd, C) uses none of these by run-time detection; its speed
//! comes from the compiler's baseline for the target.

use serde::{Deserialize, Serialize};

/// The host's CPU: architecture, model and the codec-relevant extensions.
///
/// On aarch64 the fields carry the Arm equivalents: `aes` is FEAT_AES,
/// `pclmulqdq` is PMULL, `sha` is SHA2, and `neon` is Advanced SIMD; the x86
/// only fields (`vaes`, `avx2`, `avx512f`) are false there. On other
/// architectures every flag is false.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuFeatures {
    /// `std::env::consts::ARCH` of the running binary (`x86_64`, `aarch64` …).
    pub arch: String,
    /// AES-NI (x86) or the ARMv8 AES instructions (aarch64).
    pub aes: bool,
    /// VAES: AES on 256/512-bit vectors.
    pub vaes: bool,
    /// PCLMULQDQ (x86) or PMULL (aarch64): carry-less multiply, for GHASH.
    pub pclmulqdq: bool,
    /// AVX2.
    pub avx2: bool,
    /// AVX-512 Foundation.
    pub avx512f: bool,
    /// SHA-NI (x86) or the ARMv8 SHA2 instructions (aarch64).
    pub sha: bool,
    /// NEON / Advanced SIMD (aarch64 only).
    pub neon: bool,
    /// The CPU model from `/proc/cpuinfo` ("model name"), when readable.
    pub model: Option<String>,
}

impl CpuFeatures {
    /// The features in display order, named as the architecture names them:
    /// "AES-NI", "VAES", "PCLMULQDQ", "AVX2", "AVX-512F", "SHA-NI" on x86
    /// (and on architectures without any of these, all false); "AES",
    /// "PMULL", "SHA2", "NEON" on aarch64. [`CpuFeatures::purpose`] says what
    /// each one buys.
    pub fn list(&self) -> Vec<(&'static str, bool)> {
        if self.arch == "aarch64" {
            vec![
                ("AES", self.aes),
                ("PMULL", self.pclmulqdq),
                ("SHA2", self.sha),
                ("NEON", self.neon),
            ]
        } else {
            vec![
                ("AES-NI", self.aes),
                ("VAES", self.vaes),
                ("PCLMULQDQ", self.pclmulqdq),
                ("AVX2", self.avx2),
                ("AVX-512F", self.avx512f),
                ("SHA-NI", self.sha),
            ]
        }
    }

    /// What a feature named in [`CpuFeatures::list`] buys Coffer's codecs,
    /// in a few words; empty for an unknown name.
    pub fn purpose(name: &str) -> &'static str {
        match name {
            "AES-NI" => "AES-256-GCM: AES rounds (aes crate)",
            "VAES" => "unused: aes 0.8 has no VAES path",
            "PCLMULQDQ" => "AES-256-GCM: GHASH (polyval crate)",
            "AVX2" => "blake3, Reed-Solomon parity",
            "AVX-512F" => "blake3 (with AVX-512VL)",
            "SHA-NI" => "unused: Coffer hashes with blake3",
            "AES" => "unused unless built with --cfg aes_armv8",
            "PMULL" => "unused unless built with --cfg polyval_armv8",
            "SHA2" => "unused: Coffer hashes with blake3",
            "NEON" => "blake3, Reed-Solomon parity",
            _ => "",
        }
    }
}

/// Detects the running CPU's features.
pub fn detect() -> CpuFeatures {
    let mut features = CpuFeatures {
        arch: std::env::consts::ARCH.to_string(),
        model: std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|text| model_from_cpuinfo(&text)),
        ..CpuFeatures::default()
    };
    detect_flags(&mut features);
    features
}

#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
fn detect_flags(f: &mut CpuFeatures) {
    f.aes = std::arch::is_x86_feature_detected!("aes");
    f.vaes = std::arch::is_x86_feature_detected!("vaes");
    f.pclmulqdq = std::arch::is_x86_feature_detected!("pclmulqdq");
    f.avx2 = std::arch::is_x86_feature_detected!("avx2");
    f.avx512f = std::arch::is_x86_feature_detected!("avx512f");
    f.sha = std::arch::is_x86_feature_detected!("sha");
}

#[cfg(target_arch = "aarch64")]
fn detect_flags(f: &mut CpuFeatures) {
    f.aes = std::arch::is_aarch64_feature_detected!("aes");
    f.pclmulqdq = std::arch::is_aarch64_feature_detected!("pmull");
    f.sha = std::arch::is_aarch64_feature_detected!("sha2");
    f.neon = std::arch::is_aarch64_feature_detected!("neon");
}

#[cfg(not(any(target_arch = "x86", target_arch = "x86_64", target_arch = "aarch64")))]
fn detect_flags(_f: &mut CpuFeatures) {}

/// The first "model name" line of a `/proc/cpuinfo` text.
fn model_from_cpuinfo(text: &str) -> Option<String> {
    text.lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(key, _)| key.trim() == "model name")
        .map(|(_, value)| value.trim().to_string())
        .filter(|model| !model.is_empty())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn detect_agrees_with_std() {
        let f = detect();
        assert_eq!(f.arch, std::env::consts::ARCH);
        #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
        {
            assert_eq!(f.aes, std::arch::is_x86_feature_detected!("aes"));
            assert_eq!(f.vaes, std::arch::is_x86_feature_detected!("vaes"));
            assert_eq!(
                f.pclmulqdq,
                std::arch::is_x86_feature_detected!("pclmulqdq")
            );
            assert_eq!(f.avx2, std::arch::is_x86_feature_detected!("avx2"));
            assert_eq!(f.avx512f, std::arch::is_x86_feature_detected!("avx512f"));
            assert_eq!(f.sha, std::arch::is_x86_feature_detected!("sha"));
            assert!(!f.neon);
        }
        #[cfg(target_arch = "aarch64")]
        {
            assert_eq!(f.aes, std::arch::is_aarch64_feature_detected!("aes"));
            assert_eq!(
                f.pclmulqdq,
                std::arch::is_aarch64_feature_detected!("pmull")
            );
            assert_eq!(f.sha, std::arch::is_aarch64_feature_detected!("sha2"));
            assert_eq!(f.neon, std::arch::is_aarch64_feature_detected!("neon"));
            assert!(!f.vaes && !f.avx2 && !f.avx512f);
        }
    }

    #[test]
    fn list_is_in_display_order_with_the_flags() {
        let f = CpuFeatures {
            arch: "x86_64".into(),
            aes: true,
            vaes: false,
            pclmulqdq: true,
            avx2: true,
            avx512f: false,
            sha: true,
            neon: false,
            model: None,
        };
        assert_eq!(
            f.list(),
            vec![
                ("AES-NI", true),
                ("VAES", false),
                ("PCLMULQDQ", true),
                ("AVX2", true),
                ("AVX-512F", false),
                ("SHA-NI", true),
            ]
        );
        for (name, _) in f.list() {
            assert!(!CpuFeatures::purpose(name).is_empty(), "{name}");
        }
    }

    #[test]
    fn aarch64_lists_arm_names() {
        let f = CpuFeatures {
            arch: "aarch64".into(),
            aes: true,
            pclmulqdq: true,
            sha: false,
            neon: true,
            ..CpuFeatures::default()
        };
        assert_eq!(
            f.list(),
            vec![
                ("AES", true),
                ("PMULL", true),
                ("SHA2", false),
                ("NEON", true)
            ]
        );
        for (name, _) in f.list() {
            assert!(!CpuFeatures::purpose(name).is_empty(), "{name}");
        }
    }

    #[test]
    fn model_name_is_read_from_cpuinfo_text() {
        let text = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel\t\t: 85\n\
                    model name\t: Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz\n\
                    processor\t: 1\nmodel name\t: other\n";
        assert_eq!(
            model_from_cpuinfo(text).as_deref(),
            Some("Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz")
        );
        assert_eq!(
            model_from_cpuinfo("processor\t: 0\nCPU part\t: 0xd0c\n"),
            None
        );
        assert_eq!(model_from_cpuinfo("model name\t:   \n"), None);
    }
}
