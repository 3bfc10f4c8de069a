//! The control socket: newline-delimited JSON requests and responses
//! (`docs/formats/api.md`). Each connection is served in order, one request
//! at a time; a line that does not parse gets a `bad_request` error and the
//! connection stays open; a line longer than `MAX_REQUEST_BYTES` gets
//! `too_large` and the connection is closed (its rest cannot be framed).

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use coffer_types::api::{ApiError, ErrorCode, MAX_REQUEST_BYTES, Request, Response};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;

use crate::Inner;
use crate::config::Config;

/// Binds the control socket with restrictive permissions: 0600, or 0660
/// for `socket_group`. A stale socket file (no daemon answering) is
/// replaced; a live one is an error (another daemon runs).
pub(crate) fn bind(config: &Config) -> Result<UnixListener> {
    let path = &config.daemon.socket;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("create '{}'", parent.display()))?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            bail!(
                "another cofferd is already listening on '{}'",
                path.display()
            );
        }
        std::fs::remove_file(path)
            .with_context(|| format!("remove the stale socket '{}'", path.display()))?;
    }
    // Created under a tight umask so there is no moment when others can
    // connect, then set to its final mode.
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
    let bound = UnixListener::bind(path);
    nix::sys::stat::umask(old);
    let listener = bound.with_context(|| format!("bind '{}'", path.display()))?;
    let mode = match &config.daemon.socket_group {
        Some(group) => {
            let g = nix::unistd::Group::from_name(group)
                .ok()
                .flatten()
                .with_context(|| format!("daemon.socket_group: no group '{group}'"))?;
            nix::unistd::chown(path, None, Some(g.gid))
                .with_context(|| format!("chown '{}' to group {group}", path.display()))?;
            0o660
        }
        None => 0o600,
    };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod '{}'", path.display()))?;
    Ok(listener)
}

/// Accepts connections until `stop` turns true.
pub(crate) async fn serve(
    listener: UnixListener,
    inner: Arc<Inner>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let inner = inner.clone();
                    let stop = stop.clone();
                    tokio::spawn(async move {
                        if let Err(e) = connection(stream, inner, stop).await {
                            tracing::debug!(error = %e, "control connection ended");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a control connection failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    }
}

async fn connection(
    stream: UnixStream,
    inner: Arc<Inner>,
    mut stop: watch::Receiver<bool>,
) -> Result<()> {
    let peer_uid = stream.peer_cred().ok().map(|c| c.uid());
    let (r, mut w) = stream.into_split();
    let mut reader = BufReader::new(r);
    loop {
        let mut line = Vec::new();
        let limit = u64::try_from(MAX_REQUEST_BYTES).unwrap_or(u64::MAX);
        let mut limited = (&mut reader).take(limit);
        let n = tokio::select! {
            _ = stop.changed() => return Ok(()),
            n = limited.read_until(b'\n', &mut line) => n?,
        };
        if n == 0 {
            return Ok(());
        }
        if line.last() != Some(&b'\n') && n >= MAX_REQUEST_BYTES {
            let resp = error(
                0,
                ErrorCode::TooLarge,
                format!("request larger than {MAX_REQUEST_BYTES} bytes; connection closed"),
            );
            write(&mut w, &resp).await?;
            return Ok(());
        }
        let resp = match serde_json::from_slice::<Request>(&line) {
            Ok(req) => {
                let id = req.id;
                let inner = inner.clone();
                match tokio::task::spawn_blocking(move || crate::api::handle(&inner, req, peer_uid))
                    .await
                {
                    Ok(resp) => resp,
                    Err(e) => error(id, ErrorCode::Internal, format!("internal error: {e}")),
                }
            }
            Err(e) => error(
                request_id(&line),
                ErrorCode::BadRequest,
                format!("not a valid request: {e}"),
            ),
        };
        write(&mut w, &resp).await?;
    }
}

/// The id of a line that is JSON but not a valid request, so the client can
/// match the error; 0 otherwise.
fn request_id(line: &[u8]) -> u64 {
    serde_json::from_slice::<serde_json::Value>(line)
        .ok()
        .and_then(|v| v.get("id").and_then(serde_json::Value::as_u64))
        .unwrap_or(0)
}

pub(crate) fn error(id: u64, code: ErrorCode, message: impl Into<String>) -> Response {
    Response {
        id,
        ok: false,
        result: None,
        error: Some(ApiError::new(code, message)),
    }
}

async fn write(w: &mut tokio::net::unix::OwnedWriteHalf, resp: &Response) -> Result<()> {
    let mut bytes = serde_json::to_vec(resp)?;
    bytes.push(b'\n');
    w.write_all(&bytes).await?;
    Ok(())
}
