//! The replication protocol's frames (`docs/formats/replication.md`).
//!
//! A frame is `u32` LE length of what follows, a type byte, the payload.
//! Integers are little-endian; a string is a `u16` LE length and UTF-8.
//! Readers are bounds-checked and return [`Error::Protocol`] on anything
//! malformed; none panics.

use std::io::{Read, Write};

use crate::Error;

/// The first bytes of a `Hello`. Do not modify: change [`VERSION`].
pub const MAGIC: [u8; 8] = *b"CFREPL\x00\x01";
/// The protocol version this code speaks.
pub const VERSION: u32 = 1;
/// Bytes of object data per `Data` frame at most: also how much of an
/// object a cut link can lose (a frame arrives whole or not at all).
pub const DATA_PIECE: usize = 64 * 1024;
/// The largest frame accepted (a data piece and a little).
pub const MAX_FRAME: usize = DATA_PIECE + 4096;
/// Inventory entries per `Inventory` frame at most.
pub const INVENTORY_BATCH: usize = 2048;

/// What a receiver holds of an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Have {
    /// The object's key (`data/ab/ab…`).
    pub key: String,
    /// Bytes held.
    pub size: u64,
    /// Whole and verified (`false`: an interrupted transfer, resumable).
    pub complete: bool,
}

/// How the receiver took an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckStatus {
    /// Stored; its blake3 is in the ack.
    Ok = 0,
    /// What arrived does not hash to what the sender said: discarded.
    Mismatch = 1,
}

/// One message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    /// Sender → receiver, first: who is sending which store.
    Hello {
        /// The store's id.
        store: [u8; 16],
        /// The sending appliance's name (for the receiver's log).
        source: String,
    },
    /// Receiver → holder, first, on a link the receiver opened: send me
    /// your copy of `store` (the holder then runs a session as its sender,
    /// starting with Hello).
    Pull {
        /// The store's id.
        store: [u8; 16],
        /// The requesting appliance's name.
        source: String,
    },
    /// Receiver → sender: accepted; `objects` inventory entries follow.
    Ready {
        /// How many entries the inventory has.
        objects: u64,
    },
    /// Receiver → sender: a batch of the inventory.
    Inventory(Vec<Have>),
    /// Receiver → sender: the inventory is complete.
    InventoryEnd,
    /// Sender → receiver: an object follows, from `offset` (a resume) to
    /// `size`.
    Begin {
        /// Its key.
        key: String,
        /// Its whole size.
        size: u64,
        /// Where the data starts (the receiver's partial size, or 0).
        offset: u64,
    },
    /// Sender → receiver: the next piece of the object.
    Data(Vec<u8>),
    /// Sender → receiver: the object is complete; blake3 of all of it.
    End {
        /// blake3 of the whole object.
        hash: [u8; 32],
    },
    /// Receiver → sender: what became of an object.
    Ack {
        /// Its key.
        key: String,
        /// Stored or discarded.
        status: AckStatus,
        /// blake3 of what the receiver has (or received).
        hash: [u8; 32],
    },
    /// Sender → receiver: nothing more.
    Done,
    /// Receiver → sender, last: what it took in this session.
    Summary {
        /// Objects stored.
        objects: u64,
        /// Bytes received.
        bytes: u64,
    },
    /// Either way: the session ends, and why.
    Refused {
        /// Why.
        message: String,
    },
}

const T_HELLO: u8 = 0x01;
const T_READY: u8 = 0x02;
const T_PULL: u8 = 0x05;
const T_INVENTORY: u8 = 0x03;
const T_INVENTORY_END: u8 = 0x04;
const T_BEGIN: u8 = 0x10;
const T_DATA: u8 = 0x11;
const T_END: u8 = 0x12;
const T_ACK: u8 = 0x13;
const T_DONE: u8 = 0x20;
const T_SUMMARY: u8 = 0x21;
const T_REFUSED: u8 = 0x7f;

fn put_str(out: &mut Vec<u8>, s: &str) -> Result<(), Error> {
    let len = u16::try_from(s.len())
        .map_err(|_| Error::Protocol(format!("a string of {} bytes is too long", s.len())))?;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

impl Msg {
    /// The frame's bytes, length prefix included.
    pub fn encode(&self) -> Result<Vec<u8>, Error> {
        let mut p = Vec::new();
        let t = match self {
            Msg::Hello { store, source } | Msg::Pull { store, source } => {
                p.extend_from_slice(&MAGIC);
                p.extend_from_slice(&VERSION.to_le_bytes());
                p.extend_from_slice(store);
                put_str(&mut p, source)?;
                if matches!(self, Msg::Pull { .. }) {
                    T_PULL
                } else {
                    T_HELLO
                }
            }
            Msg::Ready { objects } => {
                p.extend_from_slice(&VERSION.to_le_bytes());
                p.extend_from_slice(&objects.to_le_bytes());
                T_READY
            }
            Msg::Inventory(list) => {
                let n = u32::try_from(list.len())
                    .map_err(|_| Error::Protocol("inventory batch too large".into()))?;
                p.extend_from_slice(&n.to_le_bytes());
                for h in list {
                    put_str(&mut p, &h.key)?;
                    p.extend_from_slice(&h.size.to_le_bytes());
                    p.push(u8::from(h.complete));
                }
                T_INVENTORY
            }
            Msg::InventoryEnd => T_INVENTORY_END,
            Msg::Begin { key, size, offset } => {
                put_str(&mut p, key)?;
                p.extend_from_slice(&size.to_le_bytes());
                p.extend_from_slice(&offset.to_le_bytes());
                T_BEGIN
            }
            Msg::Data(d) => {
                p.extend_from_slice(d);
                T_DATA
            }
            Msg::End { hash } => {
                p.extend_from_slice(hash);
                T_END
            }
            Msg::Ack { key, status, hash } => {
                put_str(&mut p, key)?;
                p.push(*status as u8);
                p.extend_from_slice(hash);
                T_ACK
            }
            Msg::Done => T_DONE,
            Msg::Summary { objects, bytes } => {
                p.extend_from_slice(&objects.to_le_bytes());
                p.extend_from_slice(&bytes.to_le_bytes());
                T_SUMMARY
            }
            Msg::Refused { message } => {
                put_str(&mut p, message)?;
                T_REFUSED
            }
        };
        if p.len() + 1 > MAX_FRAME {
            return Err(Error::Protocol(format!(
                "a frame of {} bytes is larger than {MAX_FRAME}",
                p.len() + 1
            )));
        }
        let len = u32::try_from(p.len() + 1).unwrap_or(u32::MAX);
        let mut out = Vec::with_capacity(p.len() + 5);
        out.extend_from_slice(&len.to_le_bytes());
        out.push(t);
        out.extend_from_slice(&p);
        Ok(out)
    }

    /// Parses one frame's type and payload.
    pub fn decode(t: u8, p: &[u8]) -> Result<Msg, Error> {
        let mut r = Reader { p, at: 0 };
        let m = match t {
            T_HELLO | T_PULL => {
                if r.take(8)? != MAGIC {
                    return Err(Error::Protocol(
                        "not a Coffer replication peer (bad magic)".into(),
                    ));
                }
                let v = r.u32()?;
                if v != VERSION {
                    return Err(Error::Protocol(format!(
                        "the peer speaks replication protocol version {v}, this appliance {VERSION}"
                    )));
                }
                let store = r.array::<16>()?;
                let source = r.string()?;
                if t == T_PULL {
                    Msg::Pull { store, source }
                } else {
                    Msg::Hello { store, source }
                }
            }
            T_READY => {
                let v = r.u32()?;
                if v != VERSION {
                    return Err(Error::Protocol(format!(
                        "the peer speaks replication protocol version {v}, this appliance {VERSION}"
                    )));
                }
                Msg::Ready { objects: r.u64()? }
            }
            T_INVENTORY => {
                let n = r.u32()? as usize;
                if n > INVENTORY_BATCH {
                    return Err(Error::Protocol(format!(
                        "an inventory batch of {n} entries (at most {INVENTORY_BATCH})"
                    )));
                }
                let mut list = Vec::with_capacity(n);
                for _ in 0..n {
                    let key = r.string()?;
                    let size = r.u64()?;
                    let complete = match r.u8()? {
                        0 => false,
                        1 => true,
                        x => return Err(Error::Protocol(format!("bad inventory flag {x}"))),
                    };
                    list.push(Have {
                        key,
                        size,
                        complete,
                    });
                }
                Msg::Inventory(list)
            }
            T_INVENTORY_END => Msg::InventoryEnd,
            T_BEGIN => Msg::Begin {
                key: r.string()?,
                size: r.u64()?,
                offset: r.u64()?,
            },
            T_DATA => return Ok(Msg::Data(p.to_vec())),
            T_END => Msg::End { hash: r.array()? },
            T_ACK => {
                let key = r.string()?;
                let status = match r.u8()? {
                    0 => AckStatus::Ok,
                    1 => AckStatus::Mismatch,
                    x => return Err(Error::Protocol(format!("bad ack status {x}"))),
                };
                Msg::Ack {
                    key,
                    status,
                    hash: r.array()?,
                }
            }
            T_DONE => Msg::Done,
            T_SUMMARY => Msg::Summary {
                objects: r.u64()?,
                bytes: r.u64()?,
            },
            T_REFUSED => Msg::Refused {
                message: r.string()?,
            },
            x => return Err(Error::Protocol(format!("unknown frame type 0x{x:02x}"))),
        };
        if r.at != p.len() {
            return Err(Error::Protocol(format!(
                "{} stray bytes after a frame of type 0x{t:02x}",
                p.len() - r.at
            )));
        }
        Ok(m)
    }
}

struct Reader<'a> {
    p: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], Error> {
        let end = self
            .at
            .checked_add(n)
            .filter(|e| *e <= self.p.len())
            .ok_or_else(|| Error::Protocol("a frame ends early".into()))?;
        let s = &self.p[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, Error> {
        Ok(self.array::<1>()?[0])
    }
    fn u32(&mut self) -> Result<u32, Error> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, Error> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn string(&mut self) -> Result<String, Error> {
        let n = u16::from_le_bytes(self.array()?) as usize;
        String::from_utf8(self.take(n)?.to_vec())
            .map_err(|_| Error::Protocol("a string is not UTF-8".into()))
    }
}

/// Writes one message.
pub fn send(w: &mut dyn Write, m: &Msg) -> Result<(), Error> {
    w.write_all(&m.encode()?).map_err(Error::Link)
}

/// Sends one `Data` frame of `piece` (at most [`DATA_PIECE`] bytes),
/// assembled in `frame` (reused from call to call: no allocation, one copy).
pub fn send_data(w: &mut dyn Write, frame: &mut Vec<u8>, piece: &[u8]) -> Result<(), Error> {
    if piece.len() > DATA_PIECE {
        return Err(Error::Protocol(format!(
            "a data piece of {} bytes is larger than {DATA_PIECE}",
            piece.len()
        )));
    }
    let len = u32::try_from(piece.len() + 1).unwrap_or(u32::MAX);
    frame.clear();
    frame.extend_from_slice(&len.to_le_bytes());
    frame.push(T_DATA);
    frame.extend_from_slice(piece);
    w.write_all(frame).map_err(Error::Link)
}

/// A frame read by [`recv_frame`]: object data stays in the caller's
/// buffer; anything else is decoded.
#[derive(Debug)]
pub enum Frame {
    /// A `Data` frame: its bytes are `buf[1..]`.
    Data,
    /// Any other message.
    Msg(Msg),
}

/// Reads one frame into `buf` (reused from call to call). A `Data` frame's
/// payload is left there (`buf[1..]`) instead of being copied into a
/// [`Msg::Data`].
pub fn recv_frame(r: &mut dyn Read, buf: &mut Vec<u8>) -> Result<Frame, Error> {
    let len = recv_len(r)?;
    buf.resize(len, 0);
    r.read_exact(buf).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            Error::Closed
        } else {
            Error::Link(e)
        }
    })?;
    if buf[0] == T_DATA {
        return Ok(Frame::Data);
    }
    Msg::decode(buf[0], &buf[1..]).map(Frame::Msg)
}

fn recv_len(r: &mut dyn Read) -> Result<usize, Error> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(Error::Closed),
        Err(e) => return Err(Error::Link(e)),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len == 0 || len > MAX_FRAME {
        return Err(Error::Protocol(format!(
            "a frame of {len} bytes (1 to {MAX_FRAME})"
        )));
    }
    Ok(len)
}

/// Reads one message; a clean end of stream before it is
/// [`Error::Closed`].
pub fn recv(r: &mut dyn Read) -> Result<Msg, Error> {
    let len = recv_len(r)?;
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            Error::Closed
        } else {
            Error::Link(e)
        }
    })?;
    Msg::decode(buf[0], &buf[1..])
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn the_data_fast_path_is_the_same_frame() {
        let piece: Vec<u8> = (0..DATA_PIECE).map(|i| (i * 7) as u8).collect();
        let mut frame = Vec::new();
        let mut wire_bytes = Vec::new();
        send_data(&mut wire_bytes, &mut frame, &piece).unwrap();
        assert_eq!(wire_bytes, Msg::Data(piece.clone()).encode().unwrap());
        let end = Msg::End { hash: [9; 32] };
        wire_bytes.extend(end.encode().unwrap());
        let mut r = &wire_bytes[..];
        let mut buf = Vec::new();
        assert!(matches!(recv_frame(&mut r, &mut buf).unwrap(), Frame::Data));
        assert_eq!(&buf[1..], &piece[..]);
        match recv_frame(&mut r, &mut buf).unwrap() {
            Frame::Msg(m) => assert_eq!(m, end),
            Frame::Data => panic!("End read as data"),
        }
        assert!(matches!(recv_frame(&mut r, &mut buf), Err(Error::Closed)));
        let too_big = vec![0u8; DATA_PIECE + 1];
        assert!(send_data(&mut Vec::new(), &mut frame, &too_big).is_err());
    }

    fn all() -> Vec<Msg> {
        vec![
            Msg::Hello {
                store: [7; 16],
                source: "coffer-01".into(),
            },
            Msg::Ready { objects: 3 },
            Msg::Inventory(vec![
                Have {
                    key: "config".into(),
                    size: 200,
                    complete: true,
                },
                Have {
                    key: "data/ab/abcd".into(),
                    size: 5,
                    complete: false,
                },
            ]),
            Msg::InventoryEnd,
            Msg::Begin {
                key: "data/ab/abcd".into(),
                size: 1 << 33,
                offset: 5,
            },
            Msg::Data(vec![1, 2, 3]),
            Msg::End { hash: [9; 32] },
            Msg::Ack {
                key: "data/ab/abcd".into(),
                status: AckStatus::Mismatch,
                hash: [1; 32],
            },
            Msg::Done,
            Msg::Summary {
                objects: 2,
                bytes: 10,
            },
            Msg::Refused {
                message: "unknown store".into(),
            },
        ]
    }

    #[test]
    fn every_message_round_trips() {
        for m in all() {
            let bytes = m.encode().unwrap();
            let back = recv(&mut &bytes[..]).unwrap();
            assert_eq!(back, m);
        }
    }

    #[test]
    fn the_hello_frame_is_byte_exact() {
        let b = Msg::Hello {
            store: [0xaa; 16],
            source: "ab".into(),
        }
        .encode()
        .unwrap();
        let mut want = vec![1 + 8 + 4 + 16 + 2 + 2, 0, 0, 0, 0x01];
        want.extend_from_slice(b"CFREPL\x00\x01");
        want.extend_from_slice(&[1, 0, 0, 0]);
        want.extend_from_slice(&[0xaa; 16]);
        want.extend_from_slice(&[2, 0, b'a', b'b']);
        assert_eq!(b, want);
    }

    #[test]
    fn malformed_frames_are_protocol_errors_not_panics() {
        // Every truncation of every message.
        for m in all() {
            let b = m.encode().unwrap();
            for cut in 0..b.len() {
                match recv(&mut &b[..cut]) {
                    Err(Error::Closed) | Err(Error::Protocol(_)) => {}
                    other => panic!("{m:?} cut at {cut}: {other:?}"),
                }
            }
            // A stray byte after the payload.
            let mut longer = b.clone();
            longer.push(0);
            let len = u32::from_le_bytes(longer[..4].try_into().unwrap()) + 1;
            longer[..4].copy_from_slice(&len.to_le_bytes());
            if !matches!(m, Msg::Data(_)) {
                assert!(matches!(recv(&mut &longer[..]), Err(Error::Protocol(_))));
            }
        }
        let huge = ((MAX_FRAME + 1) as u32).to_le_bytes();
        assert!(matches!(recv(&mut &huge[..]), Err(Error::Protocol(_))));
        let mut wrong_magic = all()[0].encode().unwrap();
        wrong_magic[5] = b'X';
        let e = recv(&mut &wrong_magic[..]).unwrap_err().to_string();
        assert!(e.contains("bad magic"), "{e}");
        let unknown = [1u8, 0, 0, 0, 0x55];
        assert!(matches!(recv(&mut &unknown[..]), Err(Error::Protocol(_))));
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 64) as usize;
            let bytes: Vec<u8> = (0..len).map(|i| (x >> (i % 8 * 8)) as u8).collect();
            let _ = Msg::decode(
                bytes.first().copied().unwrap_or(0),
                bytes.get(1..).unwrap_or(&[]),
            );
        }
    }
}
