//! Updates through the control API: the slots' state, installing a
//! signed bundle into the inactive slot (`coffer_image::slots`), and the
//! restart that boots it. Both changing calls need `system.update` with
//! fresh MFA and are audited by the API with what they did.

use std::io::BufReader;
use std::path::{Path, PathBuf};

use coffer_types::api::{ApiError, ErrorCode};
use serde_json::Value;

use crate::Inner;

type ApiResult<T> = Result<T, ApiError>;

/// The label of an update medium.
pub const MEDIUM_LABEL: &str = "COFFER-UPDATE";

fn from_slots(e: coffer_image::slots::Error) -> ApiError {
    use coffer_image::bundle::Error as B;
    use coffer_image::slots::Error as S;
    let code = match &e {
        S::Layout(_) => ErrorCode::State,
        S::Unfit(_) | S::Bundle(B::BadSignature(_) | B::Refused(_) | B::Malformed(_)) => {
            ErrorCode::Invalid
        }
        S::Bundle(B::Damaged { .. }) => ErrorCode::Invalid,
        _ => ErrorCode::Internal,
    };
    ApiError::new(code, e.to_string())
}

/// `update_status`.
pub(crate) fn status(inner: &Inner) -> ApiResult<Value> {
    let s = inner.config().update.status().map_err(from_slots)?;
    serde_json::to_value(s).map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))
}

/// A mounted update medium, unmounted when dropped.
struct Medium(PathBuf);

impl Drop for Medium {
    fn drop(&mut self) {
        let _ = nix::mount::umount(&self.0);
    }
}

fn mount_medium(dev: &Path) -> ApiResult<Medium> {
    use nix::mount::{MsFlags, mount};
    let at = PathBuf::from("/run/coffer/update-medium");
    std::fs::create_dir_all(&at).map_err(|e| {
        ApiError::new(
            ErrorCode::Internal,
            format!("create '{}': {e}", at.display()),
        )
    })?;
    let flags = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let mut last = String::new();
    for fs in ["ext4", "vfat", "iso9660"] {
        match mount(Some(dev), &at, Some(fs), flags, None::<&str>) {
            Ok(()) => return Ok(Medium(at)),
            Err(e) => last = e.to_string(),
        }
    }
    Err(ApiError::new(
        ErrorCode::State,
        format!("cannot mount the update medium {}: {last}", dev.display()),
    ))
}

/// `update_install`.
pub(crate) fn install(
    inner: &Inner,
    path: Option<&str>,
    tries: Option<u32>,
) -> ApiResult<(Value, String)> {
    let system = inner.config().update;
    let tries = tries.unwrap_or(coffer_image::slots::DEFAULT_TRIES);
    // Refuse early, before a medium is mounted, on a machine without slots.
    system.layout().map_err(from_slots)?;
    let medium;
    let bundle = match path {
        Some(p) => PathBuf::from(p),
        None => {
            let dev = PathBuf::from("/dev/disk/by-label").join(MEDIUM_LABEL);
            if !dev.exists() {
                return Err(ApiError::new(
                    ErrorCode::State,
                    format!("no bundle named and no medium labelled {MEDIUM_LABEL} attached"),
                ));
            }
            medium = mount_medium(&dev)?;
            let found: Vec<PathBuf> = std::fs::read_dir(&medium.0)
                .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?
                .flatten()
                .map(|d| d.path())
                .filter(|p| p.extension().is_some_and(|x| x == "cub"))
                .collect();
            match found.as_slice() {
                [one] => one.clone(),
                [] => {
                    return Err(ApiError::new(
                        ErrorCode::State,
                        format!("the {MEDIUM_LABEL} medium holds no update bundle (*.cub)"),
                    ));
                }
                many => {
                    return Err(ApiError::new(
                        ErrorCode::State,
                        format!(
                            "the {MEDIUM_LABEL} medium holds {} bundles; name one with a path",
                            many.len()
                        ),
                    ));
                }
            }
        }
    };
    let f = std::fs::File::open(&bundle).map_err(|e| {
        ApiError::new(
            ErrorCode::NotFound,
            format!("cannot open '{}': {e}", bundle.display()),
        )
    })?;
    tracing::info!(bundle = %bundle.display(), tries, "installing an update bundle");
    let i = system
        .install(BufReader::with_capacity(1 << 20, f), tries)
        .map_err(|e| {
            tracing::warn!(error = %e, "the update bundle was not installed");
            from_slots(e)
        })?;
    let detail = format!(
        "version {} (bundle signed by key {}) installed into slot {}, {} boots to reach a healthy cofferd; boots next",
        i.version,
        i.manifest.key,
        i.slot.name(),
        i.tries
    );
    tracing::info!("{detail}");
    let v =
        serde_json::to_value(&i).map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?;
    Ok((v, detail))
}

/// `system_reboot`: asks systemd to restart the machine (cofferd stops
/// on SIGTERM like at every shutdown, checkpointing running jobs).
pub(crate) fn reboot(inner: &Inner) -> ApiResult<(Value, String)> {
    if inner.config().daemon.development {
        return Err(ApiError::new(
            ErrorCode::State,
            "a development appliance does not restart its machine",
        ));
    }
    std::process::Command::new("systemctl")
        .arg("reboot")
        .spawn()
        .map_err(|e| {
            ApiError::new(
                ErrorCode::Internal,
                format!("cannot run systemctl reboot: {e}"),
            )
        })?;
    Ok((Value::Null, "restarting the appliance".into()))
}
