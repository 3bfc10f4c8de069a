//! A blocking client of `cofferd`'s control socket: one request line out,
//! one response line back (`docs/formats/api.md`). Request ids count up
//! from 1 and each response must echo its request's; a response line is
//! read up to [`MAX_RESPONSE_BYTES`]. A connection that failed mid-request
//! is dropped and the next call connects again.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use coffer_types::api::{ApiError, Call, Credential, ErrorCode, Request, Response};
use serde_json::Value;
use zeroize::Zeroize;

/// The largest response line read, newline included.
pub const MAX_RESPONSE_BYTES: usize = 64 << 20;

/// The control socket's usual place.
pub const DEFAULT_SOCKET: &str = "/run/coffer/control.sock";

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The daemon answered with an error.
    #[error("{0}")]
    Api(ApiError),
    /// No daemon could be reached at the socket.
    #[error(
        "cannot connect to cofferd at {socket}: {reason} — {hint} (or use --store DIR for direct mode)"
    )]
    Connect {
        /// The socket.
        socket: String,
        /// The system's word for it.
        reason: String,
        /// What to check.
        hint: &'static str,
    },
    /// The connection broke or the daemon answered something unreadable.
    #[error("talking to cofferd at {socket} failed: {what}")]
    Transport {
        /// The socket.
        socket: String,
        /// What went wrong.
        what: String,
    },
}

impl CallError {
    /// The API error code, when the daemon refused.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            CallError::Api(e) => Some(e.code),
            _ => None,
        }
    }
}

/// The text of an I/O error without Rust's ` (os error N)` suffix.
fn reason(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// A connection to `cofferd` and the credential requests carry.
pub struct Client {
    socket: PathBuf,
    conn: Option<Conn>,
    next_id: u64,
    /// The credential sent with every request but `bootstrap` and `login`.
    pub credential: Option<Credential>,
    max_response: usize,
}

struct Conn {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Client {
    /// Connects to the socket at `socket`.
    pub fn connect(socket: &Path) -> Result<Client, CallError> {
        let mut c = Client {
            socket: socket.to_path_buf(),
            conn: None,
            next_id: 1,
            credential: None,
            max_response: MAX_RESPONSE_BYTES,
        };
        c.ensure_connected()?;
        Ok(c)
    }

    /// Lowers the response cap (tests).
    #[cfg(test)]
    fn with_max_response(mut self, n: usize) -> Client {
        self.max_response = n;
        self
    }

    fn ensure_connected(&mut self) -> Result<&mut Conn, CallError> {
        if self.conn.is_none() {
            let stream = UnixStream::connect(&self.socket).map_err(|e| {
                use std::io::ErrorKind as K;
                let hint = match e.kind() {
                    K::PermissionDenied => {
                        "are you root or in the daemon's socket group (daemon.socket_group)?"
                    }
                    K::NotFound | K::ConnectionRefused => "is the daemon running?",
                    _ => "is the daemon running, and is this its socket (--socket, COFFER_SOCKET)?",
                };
                CallError::Connect {
                    socket: self.socket.display().to_string(),
                    reason: reason(&e),
                    hint,
                }
            })?;
            let writer = stream.try_clone().map_err(|e| self.transport(reason(&e)))?;
            self.conn = Some(Conn {
                reader: BufReader::new(stream),
                writer,
            });
        }
        let not_connected = self.transport("not connected".into());
        self.conn.as_mut().ok_or(not_connected)
    }

    fn transport(&self, what: String) -> CallError {
        CallError::Transport {
            socket: self.socket.display().to_string(),
            what,
        }
    }

    /// Sends `call` with the current credential (and `mfa`, a TOTP code
    /// proving fresh MFA, when given) and returns the result (`null` for
    /// calls that return nothing).
    pub fn call(&mut self, call: &Call, mfa: Option<&str>) -> Result<Value, CallError> {
        // `status` carries the credential when there is one (the daemon
        // then adds why the health is not OK for a user who may read
        // alerts); it never needs one.
        let anonymous = matches!(call, Call::Bootstrap { .. } | Call::Login { .. });
        let req = Request {
            id: self.next_id,
            auth: if anonymous {
                None
            } else {
                self.credential.clone()
            },
            mfa: mfa.map(str::to_string),
            call: call.clone(),
        };
        self.next_id += 1;
        let resp = self.exchange(&req);
        drop_secrets(req);
        let resp = resp?;
        if resp.ok {
            Ok(resp.result.unwrap_or(Value::Null))
        } else {
            Err(CallError::Api(resp.error.unwrap_or_else(|| {
                ApiError::new(ErrorCode::Internal, "the daemon refused without saying why")
            })))
        }
    }

    fn exchange(&mut self, req: &Request) -> Result<Response, CallError> {
        let mut line = serde_json::to_vec(req).map_err(|e| self.transport(e.to_string()))?;
        line.push(b'\n');
        let max = self.max_response;
        let socket = self.socket.display().to_string();
        let result = (|| {
            let conn = self.ensure_connected()?;
            let broken = |what: String| CallError::Transport {
                socket: socket.clone(),
                what,
            };
            conn.writer
                .write_all(&line)
                .and_then(|_| conn.writer.flush())
                .map_err(|e| broken(format!("sending the request: {}", reason(&e))))?;
            let mut buf = Vec::new();
            let limit = u64::try_from(max).unwrap_or(u64::MAX);
            let n = (&mut conn.reader)
                .take(limit)
                .read_until(b'\n', &mut buf)
                .map_err(|e| broken(format!("reading the response: {}", reason(&e))))?;
            if n == 0 {
                return Err(broken("the daemon closed the connection".into()));
            }
            if buf.last() != Some(&b'\n') {
                return Err(broken(if buf.len() >= max {
                    format!(
                        "the response is larger than {} MiB; not read",
                        max.div_ceil(1 << 20)
                    )
                } else {
                    "the daemon closed the connection in the middle of a response".into()
                }));
            }
            let resp: Response = serde_json::from_slice(&buf)
                .map_err(|e| broken(format!("the response is not valid: {e}")))?;
            if resp.id != req.id {
                // A `bad_request` about an unreadable line carries id 0.
                if resp.id == 0 && !resp.ok {
                    return Ok(resp);
                }
                return Err(broken(format!(
                    "the response is for request {}, not {}",
                    resp.id, req.id
                )));
            }
            Ok(resp)
        })();
        line.zeroize();
        if result.is_err() {
            // Whatever is left on this connection cannot be framed.
            self.conn = None;
        }
        result
    }
}

/// Wipes the passwords a request carried.
fn drop_secrets(mut req: Request) {
    match &mut req.call {
        Call::Bootstrap { password, .. }
        | Call::Login { password, .. }
        | Call::UserAdd { password, .. } => password.zeroize(),
        Call::Passwd { old, new } => {
            old.zeroize();
            new.zeroize();
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;
    use std::thread::JoinHandle;

    /// A fake daemon: answers each request line with the next canned
    /// line (`{id}` replaced by the request's id), and hands back what it
    /// was sent.
    fn fake(dir: &Path, answers: Vec<String>) -> (PathBuf, JoinHandle<Vec<serde_json::Value>>) {
        let path = dir.join("control.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let h = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut r = BufReader::new(stream.try_clone().unwrap());
            let mut w = stream;
            let mut got = Vec::new();
            for a in answers {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap() == 0 {
                    break;
                }
                let v: serde_json::Value = serde_json::from_str(&line).unwrap();
                let id = v["id"].as_u64().unwrap();
                got.push(v);
                let out = a.replace("{id}", &id.to_string());
                if w.write_all(out.as_bytes()).is_err() {
                    break;
                }
            }
            got
        });
        (path, h)
    }

    #[test]
    fn frames_requests_and_echoes_ids() {
        let dir = tempfile::tempdir().unwrap();
        let (path, h) = fake(
            dir.path(),
            vec![
                r#"{"id":{id},"ok":true,"result":{"x":1}}"#.to_string() + "\n",
                r#"{"id":{id},"ok":true}"#.to_string() + "\n",
                r#"{"id":{id},"ok":false,"error":{"code":"fresh_mfa_required","message":"needs MFA"}}"#
                    .to_string()
                    + "\n",
            ],
        );
        let mut c = Client::connect(&path).unwrap();
        c.credential = Some(Credential::Session("s1".into()));
        assert_eq!(c.call(&Call::Status, None).unwrap()["x"], 1);
        assert_eq!(c.call(&Call::Whoami, None).unwrap(), Value::Null);
        let e = c
            .call(&Call::AssetRemove { name: "a".into() }, Some("123456"))
            .unwrap_err();
        assert_eq!(e.code(), Some(ErrorCode::FreshMfaRequired));
        assert_eq!(e.to_string(), "needs MFA");
        let sent = h.join().unwrap();
        assert_eq!(sent.len(), 3);
        assert_eq!(sent[0]["id"], 1);
        assert_eq!(sent[1]["id"], 2);
        assert_eq!(sent[2]["id"], 3);
        // status goes with the credential too (it never needs one)
        assert_eq!(sent[0]["auth"], serde_json::json!({"session": "s1"}));
        assert_eq!(sent[0]["op"], "status");
        assert_eq!(sent[1]["auth"], serde_json::json!({"session": "s1"}));
        assert_eq!(sent[2]["mfa"], "123456");
        assert_eq!(sent[2]["args"]["name"], "a");
    }

    #[test]
    fn a_wrong_id_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (path, h) = fake(
            dir.path(),
            vec![r#"{"id":99,"ok":true,"result":null}"#.to_string() + "\n"],
        );
        let mut c = Client::connect(&path).unwrap();
        let e = c.call(&Call::Status, None).unwrap_err();
        assert!(
            e.to_string()
                .contains("the response is for request 99, not 1"),
            "{e}"
        );
        h.join().unwrap();
    }

    #[test]
    fn an_oversized_response_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let big = format!(
            r#"{{"id":{{id}},"ok":true,"result":"{}"}}"#,
            "x".repeat(3 << 20)
        ) + "\n";
        let (path, h) = fake(dir.path(), vec![big]);
        let mut c = Client::connect(&path).unwrap().with_max_response(1 << 20);
        let e = c.call(&Call::Status, None).unwrap_err();
        assert!(e.to_string().contains("larger than 1 MiB"), "{e}");
        assert!(matches!(e, CallError::Transport { .. }));
        drop(c);
        h.join().unwrap();
    }

    #[test]
    fn a_closed_connection_is_reported_and_reconnected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let listener = UnixListener::bind(&path).unwrap();
        let h = std::thread::spawn(move || {
            // first connection: half a line, then hang up
            let (mut s, _) = listener.accept().unwrap();
            let mut line = String::new();
            BufReader::new(s.try_clone().unwrap())
                .read_line(&mut line)
                .unwrap();
            s.write_all(br#"{"id":1,"ok":"#).unwrap();
            drop(s);
            // second connection: a proper answer
            let (s, _) = listener.accept().unwrap();
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            let mut w = s;
            writeln!(w, r#"{{"id":{},"ok":true,"result":5}}"#, v["id"]).unwrap();
        });
        let mut c = Client::connect(&path).unwrap();
        let e = c.call(&Call::Status, None).unwrap_err();
        assert!(
            e.to_string()
                .contains("closed the connection in the middle of a response"),
            "{e}"
        );
        assert_eq!(c.call(&Call::Status, None).unwrap(), 5);
        h.join().unwrap();
    }

    #[test]
    fn no_daemon_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control.sock");
        let e = Client::connect(&path).err().unwrap();
        assert_eq!(
            e.to_string(),
            format!(
                "cannot connect to cofferd at {}: No such file or directory — is the daemon running? \
                 (or use --store DIR for direct mode)",
                path.display()
            )
        );
        // a socket file nobody listens on
        drop(UnixListener::bind(&path).unwrap());
        let e = Client::connect(&path).err().unwrap();
        assert!(
            e.to_string()
                .contains(": Connection refused — is the daemon running?"),
            "{e}"
        );
    }

    #[test]
    fn a_bad_request_error_with_id_zero_is_passed_on() {
        let dir = tempfile::tempdir().unwrap();
        let (path, h) = fake(
            dir.path(),
            vec![
                r#"{"id":0,"ok":false,"error":{"code":"bad_request","message":"not a valid request"}}"#
                    .to_string()
                    + "\n",
            ],
        );
        let mut c = Client::connect(&path).unwrap();
        let e = c.call(&Call::Status, None).unwrap_err();
        assert_eq!(e.code(), Some(ErrorCode::BadRequest));
        h.join().unwrap();
    }
}
