//! Any bytes as the blocks of a tape: the label, set-label, catalog and
//! archive readers must return documents, objects, "lost" or "truncated"
//! reports, or errors; never panic, never loop, never hand back an object
//! whose bytes were not written as that object. The input is split into
//! tape records: each starts with a length byte pair (u16 LE, 0 = filemark).
#![no_main]
use coffer_keys::MediaSetKey;
use coffer_media::archive::{ArchiveReader, Item};
use coffer_media::format::{BlockHeader, Content};
use coffer_media::label::read_doc;
use coffer_media::{MediaLabel, SetLabel, TapeCatalog};
use coffer_tape::{
    DriveKey, DriveStatus, MediumAttributes, Position, ReadOutcome, SpaceOver, TapeDrive, Written,
};
use libfuzzer_sys::fuzz_target;

/// A read-only tape in memory: `Some(block)` or `None` for a filemark.
struct MemDrive {
    records: Vec<Option<Vec<u8>>>,
    pos: usize,
}

impl TapeDrive for MemDrive {
    fn name(&self) -> &str {
        "fuzz"
    }
    fn status(&mut self) -> coffer_tape::Result<DriveStatus> {
        Ok(DriveStatus::default())
    }
    fn load(&mut self) -> coffer_tape::Result<()> {
        Ok(())
    }
    fn unload(&mut self) -> coffer_tape::Result<()> {
        Ok(())
    }
    fn rewind(&mut self) -> coffer_tape::Result<()> {
        self.pos = 0;
        Ok(())
    }
    fn read_block(&mut self, buf: &mut [u8]) -> coffer_tape::Result<ReadOutcome> {
        let Some(r) = self.records.get(self.pos) else {
            return Ok(ReadOutcome::EndOfData);
        };
        self.pos += 1;
        match r {
            None => Ok(ReadOutcome::Filemark),
            Some(b) if b.len() > buf.len() => Err(coffer_tape::Error::BlockTooLarge {
                device: "fuzz".into(),
                len: b.len(),
                buf: buf.len(),
            }),
            Some(b) => {
                buf[..b.len()].copy_from_slice(b);
                Ok(ReadOutcome::Block(b.len()))
            }
        }
    }
    fn write_block(&mut self, _: &[u8]) -> coffer_tape::Result<Written> {
        Ok(Written::Ok)
    }
    fn write_filemarks(&mut self, _: u32) -> coffer_tape::Result<Written> {
        Ok(Written::Ok)
    }
    fn space(&mut self, _: SpaceOver) -> coffer_tape::Result<()> {
        Ok(())
    }
    fn locate(&mut self, block: u64) -> coffer_tape::Result<()> {
        self.pos = usize::try_from(block)
            .unwrap_or(usize::MAX)
            .min(self.records.len());
        Ok(())
    }
    fn position(&mut self) -> coffer_tape::Result<Position> {
        Ok(Position {
            block: self.pos as u64,
            ..Position::default()
        })
    }
    fn set_encryption(&mut self, _: Option<&DriveKey>) -> coffer_tape::Result<()> {
        Ok(())
    }
    fn medium_attributes(&mut self) -> coffer_tape::Result<MediumAttributes> {
        Ok(MediumAttributes::default())
    }
}

fn split(mut data: &[u8]) -> Vec<Option<Vec<u8>>> {
    let mut out = Vec::new();
    while data.len() >= 2 && out.len() < 64 {
        let n = usize::from(u16::from_le_bytes([data[0], data[1]]));
        data = &data[2..];
        if n == 0 {
            out.push(None);
            continue;
        }
        let n = n.min(data.len());
        out.push(Some(data[..n].to_vec()));
        data = &data[n..];
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let records = split(data);
    for r in records.iter().flatten() {
        let _ = BlockHeader::parse(r);
    }
    let key = MediaSetKey::from_bytes_for_fixtures([7; 32]);
    for k in [None, Some(&key)] {
        let mut d = MemDrive {
            records: records.clone(),
            pos: 0,
        };
        let _ = read_doc::<MediaLabel>(&mut d, Content::MediaLabel, k);
        let _ = read_doc::<SetLabel>(&mut d, Content::SetLabel, k);
        let _ = read_doc::<TapeCatalog>(&mut d, Content::Catalog, k);
        let mut d = MemDrive {
            records: records.clone(),
            pos: 0,
        };
        let mut a = ArchiveReader::new(&mut d, k);
        let mut n = 0;
        while let Ok(Some(item)) = a.next_item() {
            n += 1;
            assert!(n < 10_000, "the archive reader loops");
            if let Item::Object { key, .. } = item {
                assert!(!key.is_empty());
            }
        }
    }
});
