//! A media changer over a [`ScsiTransport`].

use std::path::Path;

use super::{DataDir, Scsi, ScsiTransport, SgDevice, timeouts};
use crate::scsi::cdb::{self, ElementType, PageControl};
use crate::scsi::smc::{self, ElementAddressAssignment, ElementStatus};
use crate::scsi::ssc;
use crate::{ElementKind, Error, Inventory, MediaChanger, Result};

const MODE_SENSE_LEN: u16 = 64;
/// Bytes per element asked for up front: a descriptor with both volume
/// tags (12 + 36 + 36) and room for vendor bytes. The report says if more
/// was needed, and the command is repeated with that size.
const BYTES_PER_ELEMENT: u32 = 128;
/// READ ELEMENT STATUS allocation length is a 24-bit field.
const MAX_ALLOCATION: u32 = 0x00FF_FFFF;

/// A media changer through SCSI.
pub struct LinuxChanger<T: ScsiTransport = SgDevice> {
    scsi: Scsi<T>,
    layout: Option<ElementAddressAssignment>,
}

impl LinuxChanger<SgDevice> {
    /// Opens (and locks) the changer's SCSI generic device.
    pub fn open(path: &Path) -> Result<LinuxChanger<SgDevice>> {
        LinuxChanger::new(SgDevice::open(path)?)
    }
}

impl<T: ScsiTransport> LinuxChanger<T> {
    /// A changer on `transport`: checks with INQUIRY that it is a medium
    /// changer.
    pub fn new(transport: T) -> Result<LinuxChanger<T>> {
        let mut scsi = Scsi { t: transport };
        let dev = scsi.device().to_string();
        let inquiry =
            scsi.inquire_expecting(ssc::TYPE_CHANGER, "open changer", "a medium changer")?;
        tracing::debug!(device = %dev, vendor = %inquiry.vendor, product = %inquiry.product, "changer opened");
        Ok(LinuxChanger { scsi, layout: None })
    }

    /// The transport, handed back.
    pub fn into_transport(self) -> T {
        self.scsi.t
    }

    /// The element address assignment (MODE SENSE page 1Dh), read once.
    pub fn layout(&mut self) -> Result<ElementAddressAssignment> {
        if let Some(l) = self.layout {
            return Ok(l);
        }
        let dev = self.scsi.device().to_string();
        let data = self.scsi.read_data(
            &cdb::mode_sense10(ssc::PAGE_1D, 0, PageControl::Current, true, MODE_SENSE_LEN),
            usize::from(MODE_SENSE_LEN),
            timeouts::SHORT,
        )?;
        let mode = ssc::parse_mode_sense10(&data).map_err(|e| e.on(&dev))?;
        let page = mode.page(ssc::PAGE_1D).ok_or_else(|| Error::Malformed {
            device: dev.clone(),
            what: "MODE SENSE(10) data",
            reason: "no element address assignment page".into(),
        })?;
        let layout = smc::parse_element_address_assignment(&page.bytes).map_err(|e| e.on(&dev))?;
        self.layout = Some(layout);
        Ok(layout)
    }

    /// The status of `count` elements of one kind from `first`.
    fn element_status(
        &mut self,
        kind: ElementKind,
        first: u16,
        count: u16,
    ) -> Result<Vec<ElementStatus>> {
        let mut alloc = (u32::from(count) * BYTES_PER_ELEMENT + 16).min(MAX_ALLOCATION);
        let mut retried = false;
        loop {
            let c = cdb::read_element_status(ElementType::of(kind), true, first, count, alloc);
            let data = self.scsi.read_data(&c, alloc as usize, timeouts::SHORT)?;
            let status = smc::parse_element_status(&data).map_err(|e| e.on(self.scsi.device()))?;
            let needed = status.allocation_needed().min(MAX_ALLOCATION);
            if needed > alloc && !retried {
                alloc = needed;
                retried = true;
                continue;
            }
            return Ok(status
                .elements
                .into_iter()
                .filter(|e| e.kind == kind)
                .collect());
        }
    }
}

impl<T: ScsiTransport> MediaChanger for LinuxChanger<T> {
    fn name(&self) -> &str {
        self.scsi.device()
    }

    fn inventory(&mut self) -> Result<Inventory> {
        let layout = self.layout()?;
        let mut all = Vec::new();
        for kind in [
            ElementKind::Transport,
            ElementKind::Storage,
            ElementKind::ImportExport,
            ElementKind::Drive,
        ] {
            let r = layout.range(kind);
            if r.count > 0 {
                all.extend(self.element_status(kind, r.first, r.count)?);
            }
        }
        Ok(smc::inventory(all))
    }

    fn rescan(&mut self) -> Result<()> {
        self.scsi.run_ok(
            &cdb::initialize_element_status(),
            DataDir::None,
            timeouts::INITIALIZE_ELEMENT_STATUS,
        )?;
        Ok(())
    }

    fn move_medium(&mut self, from: u16, to: u16) -> Result<()> {
        let transport = self.layout()?.transport;
        // With no transport element reported, address 0 asks for the
        // changer's default picker.
        let picker = if transport.count > 0 {
            transport.first
        } else {
            0
        };
        tracing::info!(device = %self.scsi.device(), from, to, picker, "move medium");
        self.scsi.run_ok(
            &cdb::move_medium(picker, from, to),
            DataDir::None,
            timeouts::MOVE_MEDIUM,
        )?;
        Ok(())
    }
}
