//! Archives: tape files holding store objects as a stream of entries.
//!
//! Each entry is an [`EntryHeader`](crate::format::EntryHeader) with the
//! object's key, then the object's bytes; an end entry closes the archive.
//! Entries run across block boundaries; every block header says where the
//! first entry starting in it begins, so a reader that lost a block drops
//! only the objects touching it and carries on at the next entry.

use coffer_keys::MediaSetKey;
use coffer_tape::TapeDrive;

use crate::blocks::{Block, FileReader, FileSummary, FileWriter};
use crate::format::{Content, ENTRY_END, ENTRY_HEADER_LEN, ENTRY_OBJECT, EntryHeader, NO_ENTRY};
use crate::{Error, Result};

/// Where an object sits on a cartridge.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ObjectPos {
    /// The store object's key.
    pub key: String,
    /// Its length.
    pub len: u64,
    /// Tape file number.
    pub file: u32,
    /// Logical object number of the tape file's first block.
    pub file_start: u64,
    /// Logical object number of the block where the entry begins.
    pub block: u64,
    /// Offset of the entry in that block's plaintext.
    pub offset: u32,
}

/// Writes one archive.
pub struct ArchiveWriter<'d> {
    file: FileWriter<'d>,
    file_no: u32,
    start: u64,
    /// Objects written, with the index of the block holding their last byte.
    objects: Vec<(ObjectPos, u64)>,
}

impl<'d> ArchiveWriter<'d> {
    /// Starts archive number `file_no` at the drive's position.
    pub fn begin(
        drive: &'d mut dyn TapeDrive,
        file_no: u32,
        key: Option<&MediaSetKey>,
        block_size: u32,
    ) -> Result<ArchiveWriter<'d>> {
        let mut file = FileWriter::begin(drive, Content::Archive, key, block_size)?;
        let start = file.next_position()?.0;
        Ok(ArchiveWriter {
            file,
            file_no,
            start,
            objects: Vec::new(),
        })
    }

    /// Appends one object.
    pub fn put(&mut self, key: &str, data: &[u8]) -> Result<()> {
        if key.is_empty() || key.len() > crate::format::MAX_KEY_LEN {
            return Err(Error::Format(format!("object key of {} bytes", key.len())));
        }
        let (block, offset) = self.file.mark_entry()?;
        let h = EntryHeader {
            kind: ENTRY_OBJECT,
            key: key.to_string(),
            len: data.len() as u64,
        };
        self.file.write(&h.encode())?;
        self.file.write(data)?;
        self.objects.push((
            ObjectPos {
                key: key.to_string(),
                len: data.len() as u64,
                file: self.file_no,
                file_start: self.start,
                block,
                offset,
            },
            self.file.last_block_index(),
        ));
        Ok(())
    }

    /// Plaintext bytes so far.
    pub fn objects(&self) -> usize {
        self.objects.len()
    }

    /// The drive reported early warning.
    pub fn early_warning(&self) -> bool {
        self.file.early_warning()
    }

    /// How many of the objects put so far (a prefix) the drive has
    /// accepted every byte of.
    pub fn confirmed(&self) -> usize {
        let w = self.file.blocks_written();
        self.objects.partition_point(|(_, last)| *last < w)
    }

    /// Objects whose every byte the drive has accepted: after an end of
    /// medium, what this cartridge really holds.
    pub fn safely_written(&self) -> Vec<ObjectPos> {
        self.objects[..self.confirmed()]
            .iter()
            .map(|(p, _)| p.clone())
            .collect()
    }

    /// Writes the end entry and the filemark; returns every object.
    pub fn finish(&mut self) -> Result<(FileSummary, Vec<ObjectPos>)> {
        self.file.mark_entry()?;
        self.file.write(
            &EntryHeader {
                kind: ENTRY_END,
                key: String::new(),
                len: self.objects.len() as u64,
            }
            .encode(),
        )?;
        let summary = self.file.finish()?;
        Ok((
            summary,
            self.objects.iter().map(|(p, _)| p.clone()).collect(),
        ))
    }
}

/// What an archive reader found.
#[derive(Debug)]
pub enum Item {
    /// A whole object.
    Object {
        /// Its key.
        key: String,
        /// Its bytes.
        data: Vec<u8>,
    },
    /// An object (named when its header was read) lost to a damaged block.
    Lost {
        /// Its key, when known.
        key: Option<String>,
        /// What was wrong.
        reason: String,
    },
    /// The end entry: the archive is complete.
    End {
        /// Objects the writer put in it.
        count: u64,
    },
    /// The archive stops without its end entry (the cartridge ran out or the
    /// write was interrupted).
    Truncated,
}

enum Fault {
    Damaged(String),
    End,
}

/// Reads an archive's entries.
pub struct ArchiveReader<'d> {
    file: FileReader<'d>,
    cur: Vec<u8>,
    pos: usize,
    /// The next read must first move to an entry start.
    resync: bool,
    /// `cur` holds a block not yet used for resynchronising.
    fresh_first_entry: Option<u32>,
    /// Reading one object: the offset of its entry in the first block.
    start_offset: Option<u32>,
    done: bool,
    /// The file's filemark has been read.
    at_filemark: bool,
    /// End of recorded data was reached.
    at_eod: bool,
}

impl<'d> ArchiveReader<'d> {
    /// Reads the archive at the drive's position.
    pub fn new(drive: &'d mut dyn TapeDrive, key: Option<&'d MediaSetKey>) -> ArchiveReader<'d> {
        ArchiveReader::from_reader(FileReader::new(drive, Some(Content::Archive), key))
    }

    /// Reads an archive whose first block `file` has already peeked.
    pub fn from_reader(file: FileReader<'d>) -> ArchiveReader<'d> {
        ArchiveReader {
            file,
            cur: Vec::new(),
            pos: 0,
            resync: false,
            fresh_first_entry: None,
            start_offset: None,
            done: false,
            at_filemark: false,
            at_eod: false,
        }
    }

    /// Reads from an object's position (after the caller located the drive
    /// to `pos.block`).
    pub fn at(
        drive: &'d mut dyn TapeDrive,
        key: Option<&'d MediaSetKey>,
        pos: &ObjectPos,
    ) -> ArchiveReader<'d> {
        let mut r = ArchiveReader::new(drive, key);
        r.file
            .resume_at(None, pos.block.saturating_sub(pos.file_start));
        r.resync = true;
        r.start_offset = Some(pos.offset);
        r
    }

    fn load_block(&mut self) -> Result<std::result::Result<(), Fault>> {
        let (h, d, gap) = match self.file.next_block()? {
            Block::Data(h, d) => (h, d, false),
            Block::AfterGap(h, d) => (h, d, true),
            Block::Damaged(why) => {
                self.cur.clear();
                self.pos = 0;
                self.fresh_first_entry = None;
                self.resync = true;
                return Ok(Err(Fault::Damaged(why)));
            }
            Block::EndOfFile => {
                self.done = true;
                self.at_filemark = true;
                return Ok(Err(Fault::End));
            }
            Block::EndOfData => {
                self.done = true;
                self.at_eod = true;
                return Ok(Err(Fault::End));
            }
        };
        self.cur.clear();
        self.cur.extend_from_slice(d);
        self.pos = 0;
        self.fresh_first_entry = Some(h.first_entry);
        if gap {
            // Blocks were lost before this one: the entry being read is
            // gone; carry on at this block's first entry.
            self.resync = true;
            return Ok(Err(Fault::Damaged("blocks missing".into())));
        }
        Ok(Ok(()))
    }

    fn read_into(
        &mut self,
        out: &mut Vec<u8>,
        mut n: usize,
    ) -> Result<std::result::Result<(), Fault>> {
        while n > 0 {
            if self.pos == self.cur.len() {
                if let Err(f) = self.load_block()? {
                    return Ok(Err(f));
                }
                continue;
            }
            let take = n.min(self.cur.len() - self.pos);
            out.extend_from_slice(&self.cur[self.pos..self.pos + take]);
            self.pos += take;
            n -= take;
        }
        Ok(Ok(()))
    }

    /// Moves to the next entry start after damage (or to the entry asked for).
    fn seek_entry(&mut self) -> Result<std::result::Result<(), Fault>> {
        if let Some(off) = self.start_offset.take() {
            if let Err(f) = self.load_block()? {
                return Ok(Err(f));
            }
            if off as usize > self.cur.len() {
                return Ok(Err(Fault::Damaged(format!("no entry at offset {off}"))));
            }
            self.pos = off as usize;
            self.resync = false;
            return Ok(Ok(()));
        }
        loop {
            if let Some(first) = self.fresh_first_entry.take()
                && first != NO_ENTRY
            {
                self.pos = first as usize;
                self.resync = false;
                return Ok(Ok(()));
            }
            if let Err(Fault::End) = self.load_block()? {
                return Ok(Err(Fault::End));
            }
        }
    }

    /// Reads past the rest of the tape file (its filemark).
    pub fn skip_rest(&mut self) -> Result<()> {
        if self.at_eod || self.at_filemark {
            return Ok(());
        }
        loop {
            match self.file.next_block()? {
                Block::EndOfFile => return Ok(()),
                Block::EndOfData => {
                    self.at_eod = true;
                    return Ok(());
                }
                _ => {}
            }
        }
    }

    /// The archive ended at end of recorded data (no filemark followed).
    pub fn at_end_of_data(&self) -> bool {
        self.at_eod
    }

    /// The next item; `None` once the archive has ended.
    pub fn next_item(&mut self) -> Result<Option<Item>> {
        if self.done {
            return Ok(None);
        }
        if self.resync {
            match self.seek_entry()? {
                Ok(()) => {}
                Err(Fault::End) => return Ok(Some(Item::Truncated)),
                Err(Fault::Damaged(reason)) => {
                    return Ok(Some(Item::Lost { key: None, reason }));
                }
            }
        }
        let mut hdr = Vec::with_capacity(ENTRY_HEADER_LEN);
        match self.read_into(&mut hdr, ENTRY_HEADER_LEN)? {
            Ok(()) => {}
            Err(Fault::End) => return Ok(Some(Item::Truncated)),
            Err(Fault::Damaged(reason)) => {
                return Ok(Some(Item::Lost { key: None, reason }));
            }
        }
        let mut fixed = [0u8; ENTRY_HEADER_LEN];
        fixed.copy_from_slice(&hdr);
        let (kind, key_len, len) = match EntryHeader::parse_fixed(&fixed) {
            Ok(v) => v,
            Err(reason) => {
                self.resync = true;
                self.fresh_first_entry = None;
                return Ok(Some(Item::Lost { key: None, reason }));
            }
        };
        if kind == ENTRY_END {
            self.done = true;
            return Ok(Some(Item::End { count: len }));
        }
        let mut key = Vec::with_capacity(key_len);
        match self.read_into(&mut key, key_len)? {
            Ok(()) => {}
            Err(Fault::End) => return Ok(Some(Item::Truncated)),
            Err(Fault::Damaged(reason)) => return Ok(Some(Item::Lost { key: None, reason })),
        }
        let Ok(key) = String::from_utf8(key) else {
            self.resync = true;
            self.fresh_first_entry = None;
            return Ok(Some(Item::Lost {
                key: None,
                reason: "object key is not UTF-8".into(),
            }));
        };
        if len > MAX_OBJECT {
            self.resync = true;
            self.fresh_first_entry = None;
            return Ok(Some(Item::Lost {
                key: Some(key),
                reason: format!("object length {len} is beyond any store object"),
            }));
        }
        // Grown as the bytes arrive beyond 64 MiB: a damaged length cannot
        // make the reader reserve gigabytes up front.
        let mut data = Vec::with_capacity((len as usize).min(64 << 20));
        Ok(Some(match self.read_into(&mut data, len as usize)? {
            Ok(()) => Item::Object { key, data },
            Err(Fault::End) => Item::Truncated,
            Err(Fault::Damaged(reason)) => Item::Lost {
                key: Some(key),
                reason,
            },
        }))
    }
}

/// Largest object a reader accepts (a container is at most 1 GiB plus its
/// table).
pub const MAX_OBJECT: u64 = 2 << 30;
