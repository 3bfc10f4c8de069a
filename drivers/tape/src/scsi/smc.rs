//! Media changer responses (SMC-3): the Element Address Assignment mode
//! page and READ ELEMENT STATUS data.

use super::cdb::ElementType;
use super::{Bytes, ParseResult, ascii};
use crate::{Element, ElementKind, Inventory};

/// First address and count of one element type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ElementRange {
    /// First element address.
    pub first: u16,
    /// Number of elements.
    pub count: u16,
}

/// The changer's element address assignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ElementAddressAssignment {
    /// Medium transport elements (pickers).
    pub transport: ElementRange,
    /// Storage elements (slots).
    pub storage: ElementRange,
    /// Import/export elements (mail slots).
    pub import_export: ElementRange,
    /// Data transfer elements (drives).
    pub drive: ElementRange,
}

impl ElementAddressAssignment {
    /// The range of one element type.
    pub fn range(&self, kind: ElementKind) -> ElementRange {
        match kind {
            ElementKind::Transport => self.transport,
            ElementKind::Storage => self.storage,
            ElementKind::ImportExport => self.import_export,
            ElementKind::Drive => self.drive,
        }
    }

    /// Number of elements of every type.
    pub fn total(&self) -> u32 {
        [self.transport, self.storage, self.import_export, self.drive]
            .iter()
            .map(|r| u32::from(r.count))
            .sum()
    }
}

/// Parses the Element Address Assignment mode page (1Dh; SMC-3, table
/// "Element Address Assignment mode page"), given the page's bytes:
///
/// ```text
/// byte 0      PS(7) SPF(6) PAGE CODE 1Dh    byte 1  PAGE LENGTH 12h
/// bytes 2-3   FIRST MEDIUM TRANSPORT ELEMENT ADDRESS   4-5  NUMBER OF
/// bytes 6-7   FIRST STORAGE ELEMENT ADDRESS            8-9  NUMBER OF
/// bytes 10-11 FIRST IMPORT/EXPORT ELEMENT ADDRESS      12-13 NUMBER OF
/// bytes 14-15 FIRST DATA TRANSFER ELEMENT ADDRESS      16-17 NUMBER OF
/// ```
pub fn parse_element_address_assignment(page: &[u8]) -> ParseResult<ElementAddressAssignment> {
    let b = Bytes::new("element address assignment mode page", page);
    let code = b.u8(0)? & 0x3f;
    if code != 0x1D {
        return Err(b.err(format!("page code {code:#04x}, expected 0x1d")));
    }
    let range = |at: usize| -> ParseResult<ElementRange> {
        Ok(ElementRange {
            first: b.u16(at)?,
            count: b.u16(at + 2)?,
        })
    };
    Ok(ElementAddressAssignment {
        transport: range(2)?,
        storage: range(6)?,
        import_export: range(10)?,
        drive: range(14)?,
    })
}

/// One element descriptor of READ ELEMENT STATUS data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElementStatus {
    /// Element type.
    pub kind: ElementKind,
    /// Element address.
    pub address: u16,
    /// Holds a cartridge (FULL).
    pub full: bool,
    /// The element is in an abnormal state (EXCEPT); see `asc`/`ascq`.
    pub except: bool,
    /// Additional sense code of the exception.
    pub asc: u8,
    /// Its qualifier.
    pub ascq: u8,
    /// Where the cartridge came from (SOURCE STORAGE ELEMENT ADDRESS, when
    /// SVALID).
    pub source: Option<u16>,
    /// Primary volume tag (the barcode), trimmed; `None` when not reported
    /// or blank.
    pub volume_tag: Option<String>,
}

/// READ ELEMENT STATUS data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElementStatusData {
    /// BYTE COUNT OF REPORT AVAILABLE: the whole report's size after the
    /// 8-byte header, which may exceed what the allocation length let
    /// through.
    pub report_available: u32,
    /// The descriptors returned.
    pub elements: Vec<ElementStatus>,
}

impl ElementStatusData {
    /// The allocation length that returns the whole report.
    pub fn allocation_needed(&self) -> u32 {
        self.report_available.saturating_add(8)
    }
}

/// Parses READ ELEMENT STATUS data (SMC-3, tables "Element status data",
/// "Element status page", "Storage element descriptor" and the other
/// element descriptors, "Volume tag information"):
///
/// ```text
/// header:  bytes 0-1 FIRST ELEMENT ADDRESS REPORTED, 2-3 NUMBER OF ELEMENTS
///          AVAILABLE, 5-7 BYTE COUNT OF REPORT AVAILABLE
/// page:    byte 0 ELEMENT TYPE CODE, 1 PVOLTAG(7) AVOLTAG(6),
///          2-3 ELEMENT DESCRIPTOR LENGTH, 5-7 BYTE COUNT OF DESCRIPTOR DATA
///          AVAILABLE
/// element: bytes 0-1 ELEMENT ADDRESS, 2 flags: EXCEPT(2) FULL(0),
///          4 ASC, 5 ASCQ, 9 SVALID(7), 10-11 SOURCE STORAGE ELEMENT ADDRESS,
///          12-47 PRIMARY VOLUME TAG (when PVOLTAG): 32 bytes of
///          VOLUME IDENTIFICATION, 2 reserved, 2 VOLUME SEQUENCE NUMBER
/// ```
pub fn parse_element_status(data: &[u8]) -> ParseResult<ElementStatusData> {
    let b = Bytes::new("READ ELEMENT STATUS data", data);
    let report_available = b.be(5, 3)? as u32;
    let b = b.declared(8 + u64::from(report_available));
    let mut elements = Vec::new();
    let mut at = 8;
    while at + 8 <= b.len() {
        let code = b.u8(at)? & 0x0f;
        let pvoltag = b.u8(at + 1)? & 0x80 != 0;
        let desc_len = usize::from(b.u16(at + 2)?);
        let page_bytes = b.be(at + 5, 3)? as usize;
        let kind = match code {
            1 => ElementType::Transport,
            2 => ElementType::Storage,
            3 => ElementType::ImportExport,
            4 => ElementType::Drive,
            other => return Err(b.err(format!("unknown element type code {other}"))),
        }
        .kind()
        .ok_or_else(|| b.err("element type code 0 in a status page"))?;
        let min = if pvoltag { 48 } else { 12 };
        if desc_len < min {
            return Err(b.err(format!(
                "element descriptor length {desc_len}, expected at least {min}"
            )));
        }
        // The page's descriptors as far as they were returned: the last
        // page may be cut by the allocation length; a partial descriptor
        // is dropped (the caller asks again with the size reported).
        let start = at + 8;
        let end = start.saturating_add(page_bytes).min(b.len());
        let mut d_at = start;
        while d_at + desc_len <= end {
            let d = Bytes::new("element descriptor", b.slice(d_at, desc_len)?);
            let flags = d.u8(2)?;
            let svalid = d.u8(9)? & 0x80 != 0;
            let volume_tag = if pvoltag {
                Some(ascii(d.slice(12, 32)?)).filter(|s| !s.is_empty())
            } else {
                None
            };
            elements.push(ElementStatus {
                kind,
                address: d.u16(0)?,
                full: flags & 0x01 != 0,
                except: flags & 0x04 != 0,
                asc: d.u8(4)?,
                ascq: d.u8(5)?,
                source: if svalid { Some(d.u16(10)?) } else { None },
                volume_tag,
            });
            d_at += desc_len;
        }
        at = start.saturating_add(page_bytes);
    }
    Ok(ElementStatusData {
        report_available,
        elements,
    })
}

/// Builds the inventory from element descriptors: each kind in address
/// order, numbered from 0.
pub fn inventory(mut elements: Vec<ElementStatus>) -> Inventory {
    elements.sort_by_key(|e| (e.kind as u8, e.address));
    elements.dedup_by_key(|e| (e.kind as u8, e.address));
    let mut inv = Inventory::default();
    for e in elements {
        let list = match e.kind {
            ElementKind::Transport => &mut inv.transports,
            ElementKind::Storage => &mut inv.slots,
            ElementKind::ImportExport => &mut inv.ie_slots,
            ElementKind::Drive => &mut inv.drives,
        };
        let index = u16::try_from(list.len()).unwrap_or(u16::MAX);
        list.push(Element {
            kind: e.kind,
            address: e.address,
            index,
            full: e.full,
            // A barcode on an empty element is stale; do not report it.
            barcode: if e.full { e.volume_tag } else { None },
            source: e.source,
            exception: e.except.then_some((e.asc, e.ascq)),
        });
    }
    inv
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scsi::fixtures::fixture;
    use crate::scsi::ssc::parse_mode_sense10;

    // SMC-3 table "Element Address Assignment mode page", inside SPC-4
    // MODE SENSE(10) data: 1 picker at 1, 24 slots at 1000h, 2 mail slots
    // at 10h, 2 drives at 100h.
    #[test]
    fn element_address_assignment() {
        let m = parse_mode_sense10(&fixture("mode_sense10_element_address")).unwrap();
        let eaa = parse_element_address_assignment(&m.page(0x1D).unwrap().bytes).unwrap();
        assert_eq!(
            eaa,
            ElementAddressAssignment {
                transport: ElementRange { first: 1, count: 1 },
                storage: ElementRange {
                    first: 0x1000,
                    count: 24
                },
                import_export: ElementRange {
                    first: 0x10,
                    count: 2
                },
                drive: ElementRange {
                    first: 0x100,
                    count: 2
                },
            }
        );
        assert_eq!(eaa.total(), 29);
        assert!(parse_element_address_assignment(&[0x10, 0x12]).is_err());
    }

    // SMC-3 tables "Element status data", "Element status page", "Storage
    // element descriptor", "Volume tag information": three storage slots
    // with PVOLTAG, 52-byte descriptors (12 + 36 + 4 vendor bytes).
    #[test]
    fn storage_elements() {
        let s = parse_element_status(&fixture("read_element_status_storage")).unwrap();
        assert_eq!(
            s.report_available as usize + 8,
            fixture("read_element_status_storage").len()
        );
        assert_eq!(s.elements.len(), 3);
        let e = &s.elements[0];
        assert_eq!(e.kind, ElementKind::Storage);
        assert_eq!(e.address, 0x1000);
        assert!(e.full && !e.except);
        assert_eq!(e.volume_tag.as_deref(), Some("CF0001L8"));
        assert_eq!(e.source, None);
        let e = &s.elements[1];
        assert!(!e.full);
        assert_eq!(e.volume_tag, None);
        let e = &s.elements[2];
        assert!(e.full && e.except);
        assert_eq!((e.asc, e.ascq), (0x83, 0x02));
        assert_eq!(e.volume_tag.as_deref(), Some("CLN001L1"));
    }

    // SMC-3 "Data transfer element descriptor": a full drive with a valid
    // source slot, and an empty one.
    #[test]
    fn drive_elements_and_inventory() {
        let d = parse_element_status(&fixture("read_element_status_drives")).unwrap();
        assert_eq!(d.elements.len(), 2);
        assert_eq!(d.elements[0].source, Some(0x1001));
        let s = parse_element_status(&fixture("read_element_status_storage")).unwrap();
        let mut all = d.elements;
        all.extend(s.elements);
        let inv = inventory(all);
        assert_eq!(inv.drives.len(), 2);
        assert_eq!(inv.slots.len(), 3);
        assert_eq!(inv.drives[0].barcode.as_deref(), Some("CF0002L8"));
        assert_eq!(inv.drives[0].index, 0);
        assert_eq!(inv.drives[1].index, 1);
        assert_eq!(inv.slots[2].exception, Some((0x83, 0x02)));
        assert_eq!(inv.find("CF0001L8").unwrap().address, 0x1000);
        assert_eq!(inv.at(0x101).unwrap().kind, ElementKind::Drive);
    }

    // SMC-3 "Element status data" cut by the allocation length: the header
    // reports more than was returned; whole descriptors are still parsed.
    #[test]
    fn truncated_report() {
        let full = fixture("read_element_status_storage");
        let s = parse_element_status(&full[..8 + 8 + 52 + 10]).unwrap();
        assert_eq!(s.elements.len(), 1);
        assert_eq!(s.allocation_needed() as usize, full.len());
    }
}
