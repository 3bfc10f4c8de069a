//! Tape files as sequences of fixed-size blocks (layout in [`crate::format`]).
//!
//! [`FileWriter`] cuts a byte stream into blocks, seals each payload with
//! AES-256-GCM under the tape file's key (derived from the media set key and
//! the file's random id; the block index is the nonce and the header the
//! associated data), puts a CRC-32C over each block so damage is found
//! without keys, and hands whole blocks to the drive. Blocks are sealed in
//! batches on two threads so a drive streaming at LTO speed never waits.
//!
//! [`FileReader`] reads a tape file back block by block, checking CRC,
//! file id, block order and the GCM tag; a bad block is reported, not fatal,
//! so the layer above can skip to the next entry.

use coffer_keys::{MediaSetKey, RecordSealer};
use coffer_tape::{Position, ReadOutcome, TapeDrive, Written};

use crate::format::{
    BlockFault, BlockHeader, Content, HEADER_LEN, MAX_BLOCK_SIZE, NO_ENTRY, TAG_LEN, finish_crc,
};
use crate::{Error, Result};

/// Blocks sealed together before they go to the drive.
const BATCH: usize = 16;

/// What a finished tape file occupies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileSummary {
    /// Logical object number of its first block.
    pub start: u64,
    /// Blocks written.
    pub blocks: u64,
    /// Plaintext bytes written.
    pub bytes: u64,
}

/// Writes one tape file.
pub struct FileWriter<'d> {
    drive: &'d mut dyn TapeDrive,
    content: Content,
    sealer: Option<RecordSealer>,
    file_id: [u8; 16],
    block_size: u32,
    /// Blocks filled, waiting to be sealed and written (the last one is the
    /// block being filled).
    batch: Vec<Vec<u8>>,
    /// Header fields of each block in `batch`: (payload plaintext length,
    /// first entry offset).
    meta: Vec<(usize, u32)>,
    spare: Vec<Vec<u8>>,
    /// Index of `batch[0]`.
    first_index: u64,
    start: u64,
    written: u64,
    bytes: u64,
    early_warning: bool,
}

impl<'d> FileWriter<'d> {
    /// Starts a tape file at the drive's current position. `key` seals the
    /// payloads (`None`: plaintext, for labels).
    pub fn begin(
        drive: &'d mut dyn TapeDrive,
        content: Content,
        key: Option<&MediaSetKey>,
        block_size: u32,
    ) -> Result<FileWriter<'d>> {
        let mut file_id = [0u8; 16];
        coffer_keys::random_bytes(&mut file_id)?;
        let start = drive.position().map_err(Error::Tape)?.block;
        Ok(FileWriter {
            sealer: key.map(|k| k.file_key(&file_id).sealer()),
            drive,
            content,
            file_id,
            block_size,
            batch: Vec::with_capacity(BATCH),
            meta: Vec::with_capacity(BATCH),
            spare: Vec::new(),
            first_index: 0,
            start,
            written: 0,
            bytes: 0,
            early_warning: false,
        })
    }

    fn capacity(&self) -> usize {
        BlockHeader::capacity(self.block_size)
    }

    /// Makes sure a block with room is being filled.
    fn current(&mut self) -> Result<usize> {
        let cap = self.capacity();
        if self.meta.last().is_none_or(|m| m.0 == cap) {
            if self.batch.len() == BATCH {
                self.flush_full()?;
            }
            let b = self
                .spare
                .pop()
                .unwrap_or_else(|| vec![0u8; self.block_size as usize]);
            self.batch.push(b);
            self.meta.push((0, NO_ENTRY));
        }
        Ok(self.batch.len() - 1)
    }

    /// Where the next byte goes: (logical object number of its block, offset
    /// in that block's plaintext).
    pub fn next_position(&mut self) -> Result<(u64, u32)> {
        let i = self.current()?;
        let off = self.meta[i].0;
        Ok((
            self.start + self.first_index + i as u64,
            u32::try_from(off).unwrap_or(NO_ENTRY),
        ))
    }

    /// Notes that an entry starts at the next byte; returns its position.
    pub fn mark_entry(&mut self) -> Result<(u64, u32)> {
        let (addr, off) = self.next_position()?;
        let m = &mut self.meta[self.batch.len() - 1];
        if m.1 == NO_ENTRY {
            m.1 = off;
        }
        Ok((addr, off))
    }

    /// Appends bytes to the file.
    pub fn write(&mut self, mut data: &[u8]) -> Result<()> {
        let cap = self.capacity();
        while !data.is_empty() {
            let i = self.current()?;
            let fill = self.meta[i].0;
            let n = (cap - fill).min(data.len());
            self.batch[i][HEADER_LEN + fill..HEADER_LEN + fill + n].copy_from_slice(&data[..n]);
            self.meta[i].0 += n;
            self.bytes += n as u64;
            data = &data[n..];
        }
        Ok(())
    }

    /// Index (within the file) of the block holding the last byte written.
    pub fn last_block_index(&self) -> u64 {
        (self.first_index + self.batch.len() as u64).saturating_sub(1)
    }

    /// Blocks the drive has accepted.
    pub fn blocks_written(&self) -> u64 {
        self.written
    }

    /// The drive reported early warning on a block of this file.
    pub fn early_warning(&self) -> bool {
        self.early_warning
    }

    /// Seals and writes every block in the batch except the one being
    /// filled (if it still has room).
    fn flush_full(&mut self) -> Result<()> {
        let cap = self.capacity();
        let keep = usize::from(self.meta.last().is_some_and(|m| m.0 < cap));
        let n = self.batch.len() - keep;
        self.write_out(n)
    }

    fn write_out(&mut self, n: usize) -> Result<()> {
        if n == 0 {
            return Ok(());
        }
        let content = self.content;
        let file_id = self.file_id;
        let block_size = self.block_size;
        let first = self.first_index;
        let sealer = self.sealer.as_ref();
        let seal = |i: usize, block: &mut Vec<u8>, meta: (usize, u32)| -> Result<()> {
            seal_block(
                block,
                &BlockHeader {
                    content,
                    sealed: sealer.is_some(),
                    block_size,
                    file_id,
                    index: first + i as u64,
                    payload_len: 0,
                    first_entry: meta.1,
                },
                meta.0,
                sealer,
            )
        };
        let (blocks, metas) = (&mut self.batch[..n], &self.meta[..n]);
        if sealer.is_some() && n > 1 {
            let half = n / 2;
            let (a, b) = blocks.split_at_mut(half);
            let (r1, r2) = std::thread::scope(|s| {
                let h = s.spawn(|| {
                    b.iter_mut()
                        .enumerate()
                        .try_for_each(|(j, blk)| seal(half + j, blk, metas[half + j]))
                });
                let r1 = a
                    .iter_mut()
                    .enumerate()
                    .try_for_each(|(j, blk)| seal(j, blk, metas[j]));
                (r1, h.join())
            });
            r1?;
            r2.map_err(|_| Error::Format("a sealing thread panicked".into()))??;
        } else {
            for (j, blk) in blocks.iter_mut().enumerate() {
                seal(j, blk, metas[j])?;
            }
        }
        for j in 0..n {
            match self
                .drive
                .write_block(&self.batch[j])
                .map_err(Error::Tape)?
            {
                Written::Ok => {}
                Written::EarlyWarning => self.early_warning = true,
            }
            self.written += 1;
        }
        let rest = self.batch.split_off(n);
        self.spare.extend(std::mem::replace(&mut self.batch, rest));
        self.meta.drain(..n);
        self.first_index += n as u64;
        Ok(())
    }

    /// Writes what is left and a filemark; the file is complete on tape.
    pub fn finish(&mut self) -> Result<FileSummary> {
        let n = self.batch.len();
        self.write_out(n)?;
        if self.drive.write_filemarks(1).map_err(Error::Tape)? == Written::EarlyWarning {
            self.early_warning = true;
        }
        Ok(FileSummary {
            start: self.start,
            blocks: self.written,
            bytes: self.bytes,
        })
    }
}

fn seal_block(
    block: &mut [u8],
    h: &BlockHeader,
    plain: usize,
    sealer: Option<&RecordSealer>,
) -> Result<()> {
    let payload_len = plain + if sealer.is_some() { TAG_LEN } else { 0 };
    let h = BlockHeader {
        payload_len: u32::try_from(payload_len)
            .map_err(|_| Error::Format("block too large".into()))?,
        ..*h
    };
    h.encode(block);
    // Zero the unused tail so no stale bytes from an earlier block leave.
    block[HEADER_LEN + payload_len..].fill(0);
    if let Some(s) = sealer {
        let (head, body) = block.split_at_mut(HEADER_LEN);
        let tag = s.seal_slice(h.index, &head[..48], &mut body[..plain])?;
        body[plain..plain + TAG_LEN].copy_from_slice(&tag);
    }
    finish_crc(block, payload_len);
    Ok(())
}

/// One block read back.
#[derive(Debug)]
pub enum Block<'a> {
    /// A good block: its header and plaintext.
    Data(BlockHeader, &'a [u8]),
    /// A block that failed its checks (the reader has moved past it).
    Damaged(String),
    /// A good block after one or more lost ones: the caller drops the
    /// entry it was reading and resumes at this block's first entry.
    AfterGap(BlockHeader, &'a [u8]),
    /// The filemark ending the file.
    EndOfFile,
    /// End of recorded data (no filemark: the file was cut short).
    EndOfData,
}

/// Reads one tape file.
pub struct FileReader<'d> {
    drive: &'d mut dyn TapeDrive,
    key: Option<&'d MediaSetKey>,
    opener: Option<([u8; 16], RecordSealer)>,
    buf: Vec<u8>,
    file_id: Option<[u8; 16]>,
    next_index: u64,
    expect: Option<Content>,
    authenticated: bool,
    held: Option<Held>,
}

/// A block read by [`FileReader::peek`] and not yet returned.
enum Held {
    Data(BlockHeader, usize, bool),
    Damaged(String),
    EndOfFile,
    EndOfData,
}

impl<'d> FileReader<'d> {
    /// Reads the file at the drive's current position; `key` opens sealed
    /// payloads (a sealed block without a key is reported damaged).
    pub fn new(
        drive: &'d mut dyn TapeDrive,
        expect: Option<Content>,
        key: Option<&'d MediaSetKey>,
    ) -> FileReader<'d> {
        FileReader {
            drive,
            key,
            opener: None,
            buf: vec![0u8; MAX_BLOCK_SIZE as usize],
            file_id: None,
            next_index: 0,
            expect,
            authenticated: false,
            held: None,
        }
    }

    /// Starts mid-file at a block whose index in its file is `index` (after
    /// a locate), for reading one object.
    pub fn resume_at(&mut self, file_id: Option<[u8; 16]>, index: u64) {
        self.file_id = file_id;
        self.next_index = index;
    }

    /// The file's id, once a good block has been read.
    pub fn file_id(&self) -> Option<[u8; 16]> {
        self.file_id
    }

    /// The drive's position.
    pub fn position(&mut self) -> Result<Position> {
        self.drive.position().map_err(Error::Tape)
    }

    /// What the next block holds, without consuming it: `None` at a
    /// filemark, end of data or a damaged block.
    pub fn peek(&mut self) -> Result<Option<Content>> {
        if self.held.is_none() {
            let held = match self.read()? {
                Block::Data(h, d) => Held::Data(h, d.len(), false),
                Block::AfterGap(h, d) => Held::Data(h, d.len(), true),
                Block::Damaged(why) => Held::Damaged(why),
                Block::EndOfFile => Held::EndOfFile,
                Block::EndOfData => Held::EndOfData,
            };
            self.held = Some(held);
        }
        Ok(match &self.held {
            Some(Held::Data(h, _, _)) => Some(h.content),
            _ => None,
        })
    }

    /// Reads the next block.
    pub fn next_block(&mut self) -> Result<Block<'_>> {
        match self.held.take() {
            None => self.read(),
            Some(Held::Data(h, len, gap)) => {
                let d = &self.buf[HEADER_LEN..HEADER_LEN + len];
                Ok(if gap {
                    Block::AfterGap(h, d)
                } else {
                    Block::Data(h, d)
                })
            }
            Some(Held::Damaged(why)) => Ok(Block::Damaged(why)),
            Some(Held::EndOfFile) => Ok(Block::EndOfFile),
            Some(Held::EndOfData) => Ok(Block::EndOfData),
        }
    }

    fn read(&mut self) -> Result<Block<'_>> {
        let n = match self.drive.read_block(&mut self.buf) {
            Ok(ReadOutcome::Block(n)) => n,
            Ok(ReadOutcome::Filemark) => return Ok(Block::EndOfFile),
            Ok(ReadOutcome::EndOfData) => return Ok(Block::EndOfData),
            Err(coffer_tape::Error::BlankCheck { .. }) => return Ok(Block::EndOfData),
            Err(coffer_tape::Error::BlockTooLarge { len, .. }) => {
                return Ok(Block::Damaged(format!(
                    "a {len}-byte block, larger than any coffer block"
                )));
            }
            // A medium error on one block: the drive has moved past it.
            Err(coffer_tape::Error::Sense { sense, .. }) if sense.key == 3 => {
                return Ok(Block::Damaged(format!("medium error: {sense}")));
            }
            Err(e) => return Err(Error::Tape(e)),
        };
        let h = match BlockHeader::parse(&self.buf[..n]) {
            Ok(h) => h,
            Err(BlockFault::NewerVersion(v)) => {
                return Err(Error::Format(BlockFault::NewerVersion(v).to_string()));
            }
            Err(f) => {
                self.next_index += 1;
                return Ok(Block::Damaged(f.to_string()));
            }
        };
        match self.expect {
            None => self.expect = Some(h.content),
            Some(c) if c != h.content => {
                return Ok(Block::Damaged(format!(
                    "a {} block where the {} continues",
                    h.content.name(),
                    c.name()
                )));
            }
            Some(_) => {}
        }
        match self.file_id {
            None => self.file_id = Some(h.file_id),
            Some(id) if id != h.file_id => {
                return Ok(Block::Damaged("a block of another tape file".into()));
            }
            Some(_) => {}
        }
        let missing = h.index != self.next_index;
        self.next_index = h.index + 1;
        let payload_len = h.payload_len as usize;
        let plain = if h.sealed {
            let Some(key) = self.key else {
                return Err(Error::KeyNeeded);
            };
            if self.opener.as_ref().is_none_or(|(id, _)| *id != h.file_id) {
                self.opener = Some((h.file_id, key.file_key(&h.file_id).sealer()));
            }
            let plain = payload_len - TAG_LEN;
            let mut tag = [0u8; TAG_LEN];
            tag.copy_from_slice(&self.buf[HEADER_LEN + plain..HEADER_LEN + payload_len]);
            let mut aad = [0u8; 48];
            aad.copy_from_slice(&self.buf[..48]);
            let Some((_, opener)) = &self.opener else {
                return Err(Error::KeyNeeded);
            };
            if opener
                .open_slice(
                    h.index,
                    &aad,
                    &mut self.buf[HEADER_LEN..HEADER_LEN + plain],
                    &tag,
                )
                .is_err()
            {
                // The CRC matched, so the bytes are as written: the first
                // block failing means the wrong key; a later one, tampering.
                if !self.authenticated {
                    return Err(Error::WrongSetKey);
                }
                return Ok(Block::Damaged(
                    "authentication failed: the block was altered".into(),
                ));
            }
            self.authenticated = true;
            plain
        } else {
            payload_len
        };
        let data = &self.buf[HEADER_LEN..HEADER_LEN + plain];
        Ok(if missing {
            Block::AfterGap(h, data)
        } else {
            Block::Data(h, data)
        })
    }
}
