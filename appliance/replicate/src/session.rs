//! One replication session over any byte stream (TLS in the appliance, a
//! socket pair in tests): [`push`] on the side that has the store,
//! [`serve`] on the side that keeps the replica.
//!
//! The sender learns what the receiver holds, sends only what it lacks —
//! resuming an interrupted object where it stopped — and learns, object by
//! object, the blake3 of what the receiver stored. At most [`WINDOW`]
//! objects are unacknowledged at once, so neither side's writes can fill
//! the other's buffers while it is not reading.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::Path;

use coffer_store::BlobStore;

use crate::Error;
use crate::limit::TokenBucket;
use crate::replica::{PREFIXES, Replica};
use crate::wire::{self, AckStatus, DATA_PIECE, Frame, INVENTORY_BATCH, Msg};

/// Objects sent ahead of their acknowledgements at most.
pub const WINDOW: usize = 64;

/// A byte stream both ways.
pub trait Stream: Read + Write {}
impl<T: Read + Write> Stream for T {}

/// What a push did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushReport {
    /// Objects the store has.
    pub objects: u64,
    /// Objects the receiver already held whole.
    pub skipped: u64,
    /// Objects sent (whole or the rest of an interrupted one).
    pub sent: u64,
    /// Object bytes sent.
    pub bytes_sent: u64,
    /// Bytes not sent again because an interrupted object resumed.
    pub bytes_resumed: u64,
    /// Objects whose blake3 at the receiver matched ours.
    pub verified: u64,
    /// Objects that arrived damaged (discarded by the receiver).
    pub mismatched: Vec<String>,
}

/// Live counters for a progress display.
#[derive(Debug, Clone, Copy, Default)]
pub struct Progress {
    /// Objects to send.
    pub to_send: u64,
    /// Objects sent.
    pub sent: u64,
    /// Bytes sent.
    pub bytes: u64,
}

fn expect_reply(stream: &mut dyn Stream) -> Result<Msg, Error> {
    match wire::recv(stream)? {
        Msg::Refused { message } => Err(Error::Refused(message)),
        m => Ok(m),
    }
}

/// Pushes the store's objects to the receiver at the other end of
/// `stream`. `limit` caps the rate (bytes a second, 0 = none).
///
/// A receiver that gives up mid-transfer (its disk is full) says why with
/// `Refused` and closes; the sender then finds its writes failing, so a
/// link error is followed by one look for that reason.
pub fn push(
    stream: &mut dyn Stream,
    store: &dyn BlobStore,
    store_id: [u8; 16],
    source: &str,
    limit: &mut TokenBucket,
    progress: &mut dyn FnMut(Progress),
) -> Result<PushReport, Error> {
    match push_objects(stream, store, store_id, source, limit, progress) {
        Err(Error::Link(e)) => {
            // Acknowledgements not yet read come first.
            for _ in 0..=WINDOW {
                match wire::recv(stream) {
                    Ok(Msg::Refused { message }) => return Err(Error::Refused(message)),
                    Ok(Msg::Ack { .. }) => {}
                    _ => break,
                }
            }
            Err(Error::Link(e))
        }
        other => other,
    }
}

fn push_objects(
    stream: &mut dyn Stream,
    store: &dyn BlobStore,
    store_id: [u8; 16],
    source: &str,
    limit: &mut TokenBucket,
    progress: &mut dyn FnMut(Progress),
) -> Result<PushReport, Error> {
    wire::send(
        stream,
        &Msg::Hello {
            store: store_id,
            source: source.to_string(),
        },
    )?;
    let Msg::Ready { .. } = expect_reply(stream)? else {
        return Err(Error::Protocol("expected Ready".into()));
    };
    let mut have: HashMap<String, (u64, bool)> = HashMap::new();
    loop {
        match expect_reply(stream)? {
            Msg::Inventory(list) => {
                for h in list {
                    // A whole copy wins over a partial one of the same key.
                    let e = have.entry(h.key).or_insert((h.size, h.complete));
                    if h.complete {
                        *e = (h.size, true);
                    }
                }
            }
            Msg::InventoryEnd => break,
            m => {
                return Err(Error::Protocol(format!(
                    "expected the inventory, got {m:?}"
                )));
            }
        }
    }
    let mut report = PushReport::default();
    let mut plan = Vec::new();
    for prefix in PREFIXES {
        for key in store.list(prefix)? {
            if prefix == "config" && key != "config" {
                continue;
            }
            let size = store.size(&key)?;
            report.objects += 1;
            match have.get(&key) {
                Some((s, true)) if *s == size => report.skipped += 1,
                Some((s, false)) if *s <= size => plan.push((key, size, *s)),
                _ => plan.push((key, size, 0)),
            }
        }
    }
    let mut live = Progress {
        to_send: plan.len() as u64,
        ..Progress::default()
    };
    let mut ours: HashMap<String, [u8; 32]> = HashMap::new();
    let mut outstanding = 0usize;
    let mut buf = vec![0u8; DATA_PIECE];
    let mut frame = Vec::with_capacity(DATA_PIECE + 5);
    for (key, size, offset) in plan {
        wire::send(
            stream,
            &Msg::Begin {
                key: key.clone(),
                size,
                offset,
            },
        )?;
        let mut r = store.reader(&key)?;
        let mut hasher = blake3::Hasher::new();
        let mut at = 0u64;
        loop {
            let n = r.read(&mut buf).map_err(|e| {
                Error::Storage(format!("read '{key}' from {}: {e}", store.describe()))
            })?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            // The part the receiver already holds is hashed, not sent.
            let skip = offset.saturating_sub(at).min(n as u64) as usize;
            at += n as u64;
            if skip < n {
                let piece = &buf[skip..n];
                limit.take(piece.len() as u64);
                wire::send_data(stream, &mut frame, piece)?;
                report.bytes_sent += piece.len() as u64;
                live.bytes += piece.len() as u64;
                // Every 1 MiB, so a display follows a large object.
                if live.bytes % (1 << 20) < piece.len() as u64 {
                    progress(live);
                }
            }
        }
        if at != size {
            return Err(Error::Storage(format!(
                "'{key}' changed size while it was sent ({size} → {at} bytes)"
            )));
        }
        report.bytes_resumed += offset;
        let hash = *hasher.finalize().as_bytes();
        wire::send(stream, &Msg::End { hash })?;
        ours.insert(key, hash);
        report.sent += 1;
        live.sent += 1;
        progress(live);
        outstanding += 1;
        while outstanding >= WINDOW {
            take_ack(stream, &mut ours, &mut report)?;
            outstanding -= 1;
        }
    }
    wire::send(stream, &Msg::Done)?;
    while outstanding > 0 {
        take_ack(stream, &mut ours, &mut report)?;
        outstanding -= 1;
    }
    match expect_reply(stream)? {
        Msg::Summary { .. } => {}
        m => return Err(Error::Protocol(format!("expected the summary, got {m:?}"))),
    }
    Ok(report)
}

fn take_ack(
    stream: &mut dyn Stream,
    ours: &mut HashMap<String, [u8; 32]>,
    report: &mut PushReport,
) -> Result<(), Error> {
    let Msg::Ack { key, status, hash } = expect_reply(stream)? else {
        return Err(Error::Protocol("expected an acknowledgement".into()));
    };
    let Some(mine) = ours.remove(&key) else {
        return Err(Error::Protocol(format!(
            "the receiver acknowledged '{key}', which was not sent"
        )));
    };
    if status == AckStatus::Ok && hash == mine {
        report.verified += 1;
    } else {
        report.mismatched.push(key);
    }
    Ok(())
}

/// What a receiving session took in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServeReport {
    /// The store replicated.
    pub store: [u8; 16],
    /// The sender's name.
    pub source: String,
    /// Objects stored.
    pub stored: u64,
    /// Bytes received.
    pub bytes: u64,
    /// Objects that arrived damaged and were discarded.
    pub discarded: Vec<String>,
}

/// Decides whether a store (by id, from a named sender) may replicate
/// here; `Err` says why not.
pub type Accept<'a> = &'a dyn Fn(&[u8; 16], &str) -> Result<(), String>;

/// Serves one session on the receiving side: replicas live under `root`,
/// one directory per store; `accept` decides whether this store (and
/// sender) may replicate here.
pub fn serve(
    stream: &mut dyn Stream,
    root: &Path,
    accept: Accept<'_>,
) -> Result<ServeReport, Error> {
    let first = wire::recv(stream)?;
    serve_from(stream, first, root, accept)
}

/// Asks the peer at the other end of `stream` for its copy of `store` and
/// receives it under `root` (as [`serve`] would: resumable, verified).
pub fn pull(
    stream: &mut dyn Stream,
    store: &[u8; 16],
    name: &str,
    root: &Path,
) -> Result<ServeReport, Error> {
    wire::send(
        stream,
        &Msg::Pull {
            store: *store,
            source: name.to_string(),
        },
    )?;
    let want = *store;
    serve(stream, root, &move |s: &[u8; 16], _: &str| {
        if *s == want {
            Ok(())
        } else {
            Err("the peer offered another store than the one asked for".to_string())
        }
    })
}

/// [`serve`] once its first message (which must be Hello) is read; the
/// daemon reads it itself to tell a push from a [`pull`] request.
pub fn serve_from(
    stream: &mut dyn Stream,
    first: Msg,
    root: &Path,
    accept: Accept<'_>,
) -> Result<ServeReport, Error> {
    let (store, source) = match first {
        Msg::Hello { store, source } => (store, source),
        Msg::Refused { message } => return Err(Error::Refused(message)),
        m => return Err(Error::Protocol(format!("expected Hello, got {m:?}"))),
    };
    if let Err(why) = accept(&store, &source) {
        let _ = wire::send(
            stream,
            &Msg::Refused {
                message: why.clone(),
            },
        );
        return Err(Error::Refused(why));
    }
    let replica = Replica::open(root, &store)?;
    let inventory = replica.inventory()?;
    wire::send(
        stream,
        &Msg::Ready {
            objects: inventory.len() as u64,
        },
    )?;
    for batch in inventory.chunks(INVENTORY_BATCH) {
        wire::send(stream, &Msg::Inventory(batch.to_vec()))?;
    }
    wire::send(stream, &Msg::InventoryEnd)?;
    let mut report = ServeReport {
        store,
        source,
        ..ServeReport::default()
    };
    let refuse = |stream: &mut dyn Stream, e: Error| {
        let _ = wire::send(
            stream,
            &Msg::Refused {
                message: e.to_string(),
            },
        );
        e
    };
    // A link that broke under an Ack: what is already in flight is still
    // read and kept (as partial objects to resume), then the error returns.
    let mut broken: Option<Error> = None;
    let mut frame = Vec::with_capacity(DATA_PIECE + 5);
    loop {
        let next = match wire::recv(stream) {
            Ok(m) => m,
            Err(e) => return Err(broken.unwrap_or(e)),
        };
        match next {
            Msg::Begin { key, size, offset } => {
                let mut incoming = replica
                    .receive(&key, offset)
                    .map_err(|e| refuse(stream, e))?;
                let end = loop {
                    let next = match wire::recv_frame(stream, &mut frame) {
                        Ok(m) => m,
                        Err(e) => return Err(broken.unwrap_or(e)),
                    };
                    match next {
                        Frame::Data => {
                            let d = &frame[1..];
                            if incoming.len() + d.len() as u64 > size {
                                return Err(refuse(
                                    stream,
                                    Error::Protocol(format!(
                                        "'{key}' is longer than the {size} bytes announced"
                                    )),
                                ));
                            }
                            report.bytes += d.len() as u64;
                            incoming.write(d).map_err(|e| refuse(stream, e))?;
                        }
                        Frame::Msg(Msg::End { hash }) => break hash,
                        Frame::Msg(m) => {
                            return Err(refuse(
                                stream,
                                Error::Protocol(format!("expected object data, got {m:?}")),
                            ));
                        }
                    }
                };
                if incoming.len() != size {
                    return Err(refuse(
                        stream,
                        Error::Protocol(format!(
                            "'{key}' ended at {} of {size} bytes",
                            incoming.len()
                        )),
                    ));
                }
                let (ok, hash) = incoming.finish(&end).map_err(|e| refuse(stream, e))?;
                if ok {
                    report.stored += 1;
                } else {
                    report.discarded.push(key.clone());
                }
                let ack = Msg::Ack {
                    key,
                    status: if ok {
                        AckStatus::Ok
                    } else {
                        AckStatus::Mismatch
                    },
                    hash,
                };
                if broken.is_none()
                    && let Err(e) = wire::send(stream, &ack)
                {
                    broken = Some(e);
                }
            }
            Msg::Done => {
                if let Some(e) = broken {
                    return Err(e);
                }
                wire::send(
                    stream,
                    &Msg::Summary {
                        objects: report.stored,
                        bytes: report.bytes,
                    },
                )?;
                stream.flush().map_err(Error::Link)?;
                return Ok(report);
            }
            m => {
                return Err(refuse(
                    stream,
                    Error::Protocol(format!("expected an object or Done, got {m:?}")),
                ));
            }
        }
    }
}
