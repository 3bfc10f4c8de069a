//! Tape files as sequences of fixed-size blocks (layout in [`crate::format`]).
//!
//! [`FileWriter`] cuts a byte stream into blocks, seals each payload under
//! the tape file's keys (AES-256-CTR and keyed BLAKE3, derived from the
//! media set key and the file's random id; the block index is the counter
//! and the header is authenticated with the payload), puts a CRC-32C over
//! each block so damage is found without keys, and hands whole blocks to
//! the drive. A sealing thread seals one batch while the writer hands the
//! one before to the drive, so a drive streaming at LTO speed never waits.
//!
//! [`FileReader`] reads a tape file back block by block, checking CRC,
//! file id, block order and the tag; a bad block is reported, not fatal,
//! so the layer above can skip to the next entry.

use coffer_keys::{MediaSetKey, TapeFileKey};
use coffer_tape::{Position, ReadOutcome, TapeDrive, Written};

use crate::format::{
    BlockFault, BlockHeader, Content, HEADER_LEN, MAX_BLOCK_SIZE, NO_ENTRY, TAG_LEN, finish_crc,
};
use crate::{Error, Result};

/// Blocks sealed together before they go to the drive (1 MiB of 256 KiB
/// blocks): small enough that the drive's early warning reaches the writer
/// at most two batches after the block that crossed it.
const BATCH: usize = 4;

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

/// A batch of filled blocks on its way to the sealer and back.
struct Batch {
    blocks: Vec<Vec<u8>>,
    /// (payload plaintext length, first entry offset) per block.
    meta: Vec<(usize, u32)>,
    /// Index in the file of the first block.
    first: u64,
    sealed: Result<()>,
}

/// The sealing stage: a thread that seals one batch while the writer
/// fills the next and hands the one before to the drive.
struct Sealer {
    to: std::sync::mpsc::Sender<Batch>,
    from: std::sync::mpsc::Receiver<Batch>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sealer {
    fn start(
        content: Content,
        file_id: [u8; 16],
        block_size: u32,
        key: Option<TapeFileKey>,
    ) -> Sealer {
        let (to, rx) = std::sync::mpsc::channel::<Batch>();
        let (tx, from) = std::sync::mpsc::channel::<Batch>();
        let thread =
            std::thread::spawn(move || {
                for mut b in rx {
                    b.sealed = b.blocks.iter_mut().zip(&b.meta).enumerate().try_for_each(
                        |(j, (blk, m))| {
                            seal_block(
                                blk,
                                &BlockHeader {
                                    content,
                                    sealed: key.is_some(),
                                    block_size,
                                    file_id,
                                    index: b.first + j as u64,
                                    payload_len: 0,
                                    first_entry: m.1,
                                },
                                m.0,
                                key.as_ref(),
                            )
                        },
                    );
                    if tx.send(b).is_err() {
                        return;
                    }
                }
            });
        Sealer {
            to,
            from,
            thread: Some(thread),
        }
    }
}

impl Drop for Sealer {
    fn drop(&mut self) {
        // Closing the channel ends the thread.
        let (dead, _) = std::sync::mpsc::channel();
        drop(std::mem::replace(&mut self.to, dead));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Writes one tape file.
pub struct FileWriter<'d> {
    drive: &'d mut dyn TapeDrive,
    sealer: Sealer,
    block_size: u32,
    /// Blocks being filled (the last one may have room left).
    batch: Vec<Vec<u8>>,
    /// Header fields of each block in `batch`: (payload plaintext length,
    /// first entry offset).
    meta: Vec<(usize, u32)>,
    spare: Vec<Vec<u8>>,
    /// Index of `batch[0]`.
    first_index: u64,
    /// A batch with the sealer.
    in_flight: bool,
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
        let sealer = Sealer::start(
            content,
            file_id,
            block_size,
            key.map(|k| k.file_key(&file_id)),
        );
        Ok(FileWriter {
            drive,
            sealer,
            block_size,
            batch: Vec::with_capacity(BATCH),
            meta: Vec::with_capacity(BATCH),
            spare: Vec::new(),
            first_index: 0,
            in_flight: false,
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

    /// Hands every full block to the sealer (keeping the one being filled
    /// if it has room).
    fn flush_full(&mut self) -> Result<()> {
        let cap = self.capacity();
        let keep = usize::from(self.meta.last().is_some_and(|m| m.0 < cap));
        let n = self.batch.len() - keep;
        self.send(n)
    }

    /// Sends the first `n` blocks to the sealer, after writing the batch it
    /// sealed before to the drive.
    fn send(&mut self, n: usize) -> Result<()> {
        if n == 0 {
            return Ok(());
        }
        self.drain()?;
        let rest_blocks = self.batch.split_off(n);
        let rest_meta = self.meta.split_off(n);
        let batch = Batch {
            blocks: std::mem::replace(&mut self.batch, rest_blocks),
            meta: std::mem::replace(&mut self.meta, rest_meta),
            first: self.first_index,
            sealed: Ok(()),
        };
        self.first_index += n as u64;
        self.sealer
            .to
            .send(batch)
            .map_err(|_| Error::Format("the sealing thread stopped".into()))?;
        self.in_flight = true;
        Ok(())
    }

    /// Writes the batch the sealer has (if any) to the drive.
    fn drain(&mut self) -> Result<()> {
        if !self.in_flight {
            return Ok(());
        }
        self.in_flight = false;
        let b = self
            .sealer
            .from
            .recv()
            .map_err(|_| Error::Format("the sealing thread stopped".into()))?;
        b.sealed?;
        for blk in &b.blocks {
            match self.drive.write_block(blk).map_err(Error::Tape)? {
                Written::Ok => {}
                Written::EarlyWarning => self.early_warning = true,
            }
            self.written += 1;
        }
        self.spare.extend(b.blocks);
        Ok(())
    }

    /// Writes what is left and a filemark; the file is complete on tape.
    pub fn finish(&mut self) -> Result<FileSummary> {
        let n = self.batch.len();
        self.send(n)?;
        self.drain()?;
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
    sealer: Option<&TapeFileKey>,
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
        let tag = s.seal(h.index, &head[..48], &mut body[..plain]);
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
    opener: Option<([u8; 16], TapeFileKey)>,
    buf: Vec<u8>,
    file_id: Option<[u8; 16]>,
    next_index: u64,
    expect: Option<Content>,
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
    /// payloads (a sealed block without a key is [`Error::KeyNeeded`]; with a
    /// key, an unsealed block is damage).
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

    /// The block [`FileReader::peek`] looked at is the end of recorded data.
    pub fn peeked_end_of_data(&self) -> bool {
        matches!(self.held, Some(Held::EndOfData))
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
                self.opener = Some((h.file_id, key.file_key(&h.file_id)));
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
                .open(
                    h.index,
                    &aad,
                    &mut self.buf[HEADER_LEN..HEADER_LEN + plain],
                    &tag,
                )
                .is_err()
            {
                // The CRC matched, so these are the bytes written; the set
                // key is checked against the set label's fingerprint before
                // any read, so this is tampering, not the wrong key.
                return Ok(Block::Damaged(
                    "authentication failed: the block was altered after it was written".into(),
                ));
            }
            plain
        } else if self.key.is_some() {
            // An encrypted set holds no plaintext archive or catalog block: one
            // here was put there by someone else.
            return Ok(Block::Damaged(
                "an unsealed block in an encrypted media set".into(),
            ));
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
