//! `coffer-image`: the appliance as something an operator installs and
//! updates.
//!
//! - [`bundle`]: signed update bundles (`docs/formats/update.md`): an
//!   Ed25519-signed manifest naming every item's size and BLAKE3, then
//!   the items. Opened and checked before a byte of payload is used;
//!   unsigned, tampered, truncated, foreign and downgrading bundles are
//!   refused with the reason.
//!
//! - [`slots`]: the A/B root slots and their systemd-boot entries;
//!   installing a bundle into the inactive slot with a boot counter, in
//!   an order a power cut cannot break.
//! - [`system`]: the installed appliance's layout, running slot, version
//!   and keys; the boot assessment.
//! - [`build`]: the disk image from Debian packages (mmdebstrap, GPT
//!   with an EFI system partition, root slots a and b, a data partition).
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod build;
pub mod bundle;
pub mod slots;
pub mod system;
