//! `coffer-image`: the appliance as something an operator installs and
//! updates.
//!
//! - [`bundle`]: signed update bundles (`docs/formats/update.md`): an
//!   Ed25519-signed manifest naming every item's size and BLAKE3, then
//!   the items. Opened and checked before a byte of payload is used;
//!   unsigned, tampered, truncated, foreign and downgrading bundles are
//!   refused with the reason.
//!
//! The image build (Debian packages through mmdebstrap, GPT with an EFI
//! system partition, root slots A and B and a data partition), the A/B
//! switch with boot counting and the first-boot setup are issue 12's
//! later parts and are not here yet.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod bundle;
