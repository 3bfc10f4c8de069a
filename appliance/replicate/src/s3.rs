//! A store's objects in an S3-compatible bucket (AWS S3, MinIO, Ceph RGW,
//! moto), with S3 Object Lock as the retention lock
//! (`docs/formats/s3-layout.md`).
//!
//! [`S3Store`] is a [`BlobStore`]: keys are the store's own keys under a
//! prefix, so a bucket plus its prefix plus the passphrase is a whole
//! store that opens and restores like any other. Every object carries its
//! blake3 as user metadata (`coffer-blake3`), which [`crate::mirror`]
//! compares to know an object arrived whole. Locks are set with
//! `PutObjectRetention` on the version the upload made, after the upload,
//! for single and multipart uploads alike.
//!
//! The SDK is async; [`S3Store`] is not. It owns a small tokio runtime and
//! blocks on it, from any thread: a plain thread, a `spawn_blocking`
//! closure, or a thread inside a runtime context (there the call runs on a
//! helper thread, since a runtime cannot be blocked on from within one).

use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region, RequestChecksumCalculation};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{
    ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart, ObjectLockMode,
    ObjectLockRetention, ObjectLockRetentionMode,
};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use coffer_store::BlobStore;
use zeroize::Zeroizing;

use crate::Error;

/// The default multipart threshold and part size.
pub const DEFAULT_PART_SIZE: usize = 16 * 1024 * 1024;
/// S3's smallest part (every part but the last).
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;
/// The user metadata key holding an object's blake3 (hex): the header
/// `x-amz-meta-coffer-blake3`.
pub const HASH_META: &str = "coffer-blake3";

/// An S3 Object Lock retention mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// Nobody can delete the locked version or shorten the lock, not even
    /// the account's root user, until it expires.
    Compliance,
    /// Users with `s3:BypassGovernanceRetention` can still delete.
    Governance,
}

impl LockMode {
    /// `"compliance"` or `"governance"`.
    pub fn as_str(self) -> &'static str {
        match self {
            LockMode::Compliance => "compliance",
            LockMode::Governance => "governance",
        }
    }

    fn retention_mode(self) -> ObjectLockRetentionMode {
        match self {
            LockMode::Compliance => ObjectLockRetentionMode::Compliance,
            LockMode::Governance => ObjectLockRetentionMode::Governance,
        }
    }
}

impl fmt::Display for LockMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LockMode {
    type Err = String;
    fn from_str(s: &str) -> Result<LockMode, String> {
        match s.to_ascii_lowercase().as_str() {
            "compliance" => Ok(LockMode::Compliance),
            "governance" => Ok(LockMode::Governance),
            _ => Err(format!(
                "unknown Object Lock mode '{s}' (compliance or governance)"
            )),
        }
    }
}

/// An object's lock: its mode and when it ends (unix seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lock {
    /// The retention mode.
    pub mode: LockMode,
    /// When the lock ends, in seconds since the Unix epoch.
    pub retain_until_s: i64,
}

/// Access keys for the bucket. Debug output shows the key id only.
#[derive(Clone)]
pub struct S3Credentials {
    /// The access key id (not secret).
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: Zeroizing<String>,
    /// A session token, for temporary credentials.
    pub session_token: Option<Zeroizing<String>>,
}

impl fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl S3Credentials {
    /// From `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and (optional)
    /// `AWS_SESSION_TOKEN`; `None` unless both keys are set.
    pub fn from_env() -> Option<S3Credentials> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Some(S3Credentials {
            access_key_id: var("AWS_ACCESS_KEY_ID")?,
            secret_access_key: Zeroizing::new(var("AWS_SECRET_ACCESS_KEY")?),
            session_token: var("AWS_SESSION_TOKEN").map(Zeroizing::new),
        })
    }
}

/// Where and how to reach the bucket.
#[derive(Debug, Clone)]
pub struct S3Config {
    /// The endpoint, e.g. `http://127.0.0.1:5000`; `None` is AWS's own
    /// endpoint for the region.
    pub endpoint: Option<String>,
    /// The region (`us-east-1` if unsure).
    pub region: String,
    /// The bucket.
    pub bucket: String,
    /// The key prefix inside the bucket: empty or ending in `/`, e.g.
    /// `coffer/<store id hex>/`.
    pub prefix: String,
    /// Path-style addressing (`endpoint/bucket/key`), which most
    /// S3-compatible servers need.
    pub path_style: bool,
    /// The access keys.
    pub credentials: S3Credentials,
    /// Objects larger than this go up in parts of this size (at least
    /// [`MIN_PART_SIZE`]).
    pub part_size: usize,
    /// Attempts per request (the SDK's standard retry mode, with backoff).
    pub max_attempts: u32,
    /// Timeout per operation, in seconds.
    pub timeout_s: u64,
}

impl S3Config {
    /// A config for `bucket` at AWS in `us-east-1`, no prefix, virtual-host
    /// addressing, 16 MiB parts, 4 attempts, 120 s timeouts.
    pub fn new(bucket: &str, credentials: S3Credentials) -> S3Config {
        S3Config {
            endpoint: None,
            region: "us-east-1".into(),
            bucket: bucket.into(),
            prefix: String::new(),
            path_style: false,
            credentials,
            part_size: DEFAULT_PART_SIZE,
            max_attempts: 4,
            timeout_s: 120,
        }
    }
}

/// Owns the runtime; dropping it never blocks (and so never panics inside
/// an async context).
struct Runtime(Option<tokio::runtime::Runtime>);

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// A bucket (and prefix) holding a store's objects.
pub struct S3Store {
    client: Client,
    handle: tokio::runtime::Handle,
    _rt: Runtime,
    bucket: String,
    prefix: String,
    endpoint: Option<String>,
    region: String,
    part_size: usize,
    lock: Mutex<Option<Lock>>,
}

impl fmt::Debug for S3Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Store")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("part_size", &self.part_size)
            .field("lock", &self.lock_setting())
            .finish_non_exhaustive()
    }
}

/// What an S3 request failed with, without the SDK's types.
#[derive(Debug)]
pub(crate) struct Failure {
    status: Option<u16>,
    code: Option<String>,
    detail: String,
    unreachable: bool,
}

impl Failure {
    fn from_sdk<E>(e: SdkError<E>) -> Failure
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let status = e.raw_response().map(|r| r.status().as_u16());
        let code = e.code().map(str::to_string);
        let unreachable = matches!(e, SdkError::DispatchFailure(_) | SdkError::TimeoutError(_));
        let detail = match (&code, e.message()) {
            (Some(c), Some(m)) => format!("{c}: {m}"),
            (Some(c), None) => c.clone(),
            _ => match status {
                Some(s) if matches!(e, SdkError::ServiceError(_)) => format!("HTTP {s}"),
                _ => DisplayErrorContext(&e).to_string(),
            },
        };
        Failure {
            status,
            code,
            detail,
            unreachable,
        }
    }

    fn other(detail: String) -> Failure {
        Failure {
            status: None,
            code: None,
            detail,
            unreachable: false,
        }
    }

    fn is_not_found(&self) -> bool {
        self.status == Some(404)
            && !matches!(self.code.as_deref(), Some("NoSuchBucket" | "NoSuchUpload"))
    }

    fn is_credentials(&self) -> bool {
        match self.code.as_deref() {
            Some(
                "InvalidAccessKeyId"
                | "ExpiredToken"
                | "SignatureDoesNotMatch"
                | "AccessDenied"
                | "InvalidToken"
                | "TokenRefreshRequired"
                | "InvalidClientTokenId",
            ) => true,
            None => self.status == Some(403),
            _ => false,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail)
    }
}

/// An object's state as HeadObject tells it.
#[derive(Debug, Clone)]
pub(crate) struct Head {
    pub(crate) size: u64,
    pub(crate) hash: Option<[u8; 32]>,
    pub(crate) lock: Option<Lock>,
    pub(crate) version: Option<String>,
}

fn now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// When a lock ends, for messages (`2026-11-27 11:32:03 UTC`).
pub fn format_time(unix_s: i64) -> String {
    let days = unix_s.div_euclid(86_400);
    let secs = unix_s.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Refuses a lock that has already ended (S3 itself may accept it).
pub(crate) fn check_lock(lock: &Lock) -> Result<(), Error> {
    let now = now_s();
    if lock.retain_until_s <= now {
        return Err(Error::Refused(format!(
            "an Object Lock must end in the future; {} is {} s in the past",
            format_time(lock.retain_until_s),
            now - lock.retain_until_s
        )));
    }
    Ok(())
}

fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The base64 SHA-256 S3 checks a body against (`x-amz-checksum-sha256`).
fn sha256_b64(data: &[u8]) -> String {
    base64(ring::digest::digest(&ring::digest::SHA256, data).as_ref())
}

fn parse_hash(hex: &str) -> Option<[u8; 32]> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = (nibble(bytes[2 * i])? << 4) | nibble(bytes[2 * i + 1])?;
    }
    Some(out)
}

impl S3Store {
    /// Builds the client and checks that the bucket is there and the
    /// credentials are accepted.
    pub fn open(cfg: S3Config) -> Result<S3Store, Error> {
        if cfg.part_size < MIN_PART_SIZE {
            return Err(Error::Storage(format!(
                "the S3 part size of {} bytes is below S3's minimum of {MIN_PART_SIZE} bytes (5 MiB)",
                cfg.part_size
            )));
        }
        if cfg.bucket.is_empty() {
            return Err(Error::Storage("no S3 bucket is named".into()));
        }
        if !(cfg.prefix.is_empty() || cfg.prefix.ends_with('/')) || cfg.prefix.starts_with('/') {
            return Err(Error::Storage(format!(
                "the S3 key prefix '{}' must be empty or end in '/' (and not start with one)",
                cfg.prefix
            )));
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("coffer-s3")
            .enable_all()
            .build()
            .map_err(|e| Error::Storage(format!("start the S3 client's runtime: {e}")))?;
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
            .build_https();
        let creds = Credentials::new(
            cfg.credentials.access_key_id.clone(),
            cfg.credentials.secret_access_key.as_str(),
            cfg.credentials
                .session_token
                .as_ref()
                .map(|t| t.as_str().to_string()),
            None,
            "coffer",
        );
        let timeout = Duration::from_secs(cfg.timeout_s.max(1));
        let mut conf = aws_sdk_s3::config::Builder::new()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(cfg.region.clone()))
            .force_path_style(cfg.path_style)
            .credentials_provider(creds)
            .http_client(http)
            .retry_config(RetryConfig::standard().with_max_attempts(cfg.max_attempts.max(1)))
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_timeout(timeout)
                    .connect_timeout(timeout.min(Duration::from_secs(10)))
                    .build(),
            )
            // Checksums only where S3 requires them; uploads supply their
            // own SHA-256. Several S3-compatible servers refuse the SDK's
            // default CRC trailers.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired);
        if let Some(ep) = &cfg.endpoint {
            conf = conf.endpoint_url(ep);
        }
        let store = S3Store {
            client: Client::from_conf(conf.build()),
            handle: rt.handle().clone(),
            _rt: Runtime(Some(rt)),
            bucket: cfg.bucket,
            prefix: cfg.prefix,
            endpoint: cfg.endpoint,
            region: cfg.region,
            part_size: cfg.part_size,
            lock: Mutex::new(None),
        };
        store.check_bucket()?;
        Ok(store)
    }

    /// Runs a request to completion from any thread.
    fn run<F>(&self, f: F) -> F::Output
    where
        F: Future + Send,
        F::Output: Send,
    {
        if tokio::runtime::Handle::try_current().is_ok() {
            // Inside a runtime context block_on panics: block on a helper
            // thread instead.
            let handle = &self.handle;
            std::thread::scope(|s| match s.spawn(move || handle.block_on(f)).join() {
                Ok(v) => v,
                Err(panic) => std::panic::resume_unwind(panic),
            })
        } else {
            self.handle.block_on(f)
        }
    }

    fn full(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn where_(&self) -> String {
        match &self.endpoint {
            Some(ep) => ep.clone(),
            None => format!("AWS {}", self.region),
        }
    }

    /// A failure as this crate's error: refused credentials, an endpoint
    /// out of reach, or a storage error saying what failed.
    fn error(&self, what: &str, f: Failure) -> Error {
        if f.unreachable {
            Error::Link(std::io::Error::other(format!(
                "cannot reach the S3 endpoint {} for bucket '{}': {what}: {f}",
                self.where_(),
                self.bucket
            )))
        } else if f.is_credentials() {
            Error::Refused(format!(
                "the credentials for bucket '{}' were refused: {f} ({what})",
                self.bucket
            ))
        } else {
            Error::Storage(format!("{}: {what} failed: {f}", self.describe()))
        }
    }

    /// A failure as the [`BlobStore`] contract's error.
    fn blob_error(&self, what: &str, key: &str, f: Failure) -> coffer_store::Error {
        if f.is_not_found() {
            coffer_store::Error::NotFound { key: key.into() }
        } else {
            coffer_store::Error::Backend {
                store: self.describe(),
                reason: self.error(&format!("{what} '{key}'"), f).to_string(),
            }
        }
    }

    fn store_error(&self, e: Error) -> coffer_store::Error {
        coffer_store::Error::Backend {
            store: self.describe(),
            reason: e.to_string(),
        }
    }

    fn check_bucket(&self) -> Result<(), Error> {
        let head = self.run(self.client.head_bucket().bucket(&self.bucket).send());
        let Err(e) = head else { return Ok(()) };
        let f = Failure::from_sdk(e);
        match f.status {
            _ if f.unreachable => Err(self.error("HeadBucket", f)),
            Some(404) => Err(Error::Storage(format!(
                "there is no bucket '{}' at {}",
                self.bucket,
                self.where_()
            ))),
            Some(301) => Err(Error::Storage(format!(
                "bucket '{}' is in another region than '{}'",
                self.bucket, self.region
            ))),
            Some(403) => {
                // HEAD answers carry no error code: ask again with a GET
                // to say why.
                let why = self
                    .run(
                        self.client
                            .list_objects_v2()
                            .bucket(&self.bucket)
                            .max_keys(1)
                            .send(),
                    )
                    .err()
                    .map(Failure::from_sdk)
                    .filter(|g| g.code.is_some())
                    .unwrap_or(f);
                Err(Error::Refused(format!(
                    "the credentials for bucket '{}' were refused: {why}",
                    self.bucket
                )))
            }
            _ => Err(self.error("HeadBucket", f)),
        }
    }

    /// Whether the bucket has Object Lock: `None` if not, else the mode of
    /// its default retention rule, if it has one.
    pub fn bucket_lock(&self) -> Result<Option<Option<LockMode>>, Error> {
        let out = self.run(
            self.client
                .get_object_lock_configuration()
                .bucket(&self.bucket)
                .send(),
        );
        let conf = match out {
            Ok(out) => out,
            Err(e) => {
                let f = Failure::from_sdk(e);
                if f.code.as_deref() == Some("ObjectLockConfigurationNotFoundError") {
                    return Ok(None);
                }
                return Err(self.error("GetObjectLockConfiguration", f));
            }
        };
        let Some(c) = conf.object_lock_configuration() else {
            return Ok(None);
        };
        if c.object_lock_enabled().map(|e| e.as_str()) != Some("Enabled") {
            return Ok(None);
        }
        let mode = c
            .rule()
            .and_then(|r| r.default_retention())
            .and_then(|d| d.mode())
            .and_then(|m| match m {
                ObjectLockRetentionMode::Compliance => Some(LockMode::Compliance),
                ObjectLockRetentionMode::Governance => Some(LockMode::Governance),
                _ => None,
            });
        Ok(Some(mode))
    }

    /// Refuses a bucket without Object Lock.
    pub fn require_lock(&self) -> Result<(), Error> {
        match self.bucket_lock()? {
            Some(_) => Ok(()),
            None => Err(Error::Refused(format!(
                "bucket '{}' does not have Object Lock enabled; locked copies need it: \
                 create the bucket with Object Lock, or set the remote's lock to none",
                self.bucket
            ))),
        }
    }

    /// Sets the lock every later [`BlobStore::put`] and
    /// [`BlobStore::retention_lock`] applies (`None`: no lock).
    pub fn set_lock(&self, lock: Option<Lock>) {
        *self.lock.lock().unwrap_or_else(|p| p.into_inner()) = lock;
    }

    fn lock_setting(&self) -> Option<Lock> {
        *self.lock.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Uploads an object (replacing nothing: on a versioned bucket a second
    /// upload is a new version) and, with `lock`, locks that version.
    pub fn put_with_lock(&self, key: &str, data: &[u8], lock: Option<Lock>) -> Result<(), Error> {
        let hash = blake3::hash(data);
        self.upload(key, data, hash.as_bytes(), lock, &mut |_| {})
    }

    /// Uploads `data` (whose blake3 is `hash`) in one request or in parts;
    /// `before` is told each piece's size before it goes.
    pub(crate) fn upload(
        &self,
        key: &str,
        data: &[u8],
        hash: &[u8; 32],
        lock: Option<Lock>,
        before: &mut dyn FnMut(u64),
    ) -> Result<(), Error> {
        coffer_store::check_key(key)?;
        if let Some(l) = &lock {
            check_lock(l)?;
        }
        let full = self.full(key);
        let hex = blake3::Hash::from_bytes(*hash).to_hex().to_string();
        let version = if data.len() <= self.part_size {
            before(data.len() as u64);
            let out = self
                .run(
                    self.client
                        .put_object()
                        .bucket(&self.bucket)
                        .key(&full)
                        .metadata(HASH_META, &hex)
                        .checksum_sha256(sha256_b64(data))
                        .body(ByteStream::from(data.to_vec()))
                        .send(),
                )
                .map_err(|e| self.error(&format!("PutObject '{key}'"), Failure::from_sdk(e)))?;
            out.version_id().map(str::to_string)
        } else {
            self.multipart(key, &full, data, &hex, before)?
        };
        if let Some(l) = lock {
            self.put_retention(key, version.as_deref(), l)?;
        }
        Ok(())
    }

    fn multipart(
        &self,
        key: &str,
        full: &str,
        data: &[u8],
        hex: &str,
        before: &mut dyn FnMut(u64),
    ) -> Result<Option<String>, Error> {
        let created = self
            .run(
                self.client
                    .create_multipart_upload()
                    .bucket(&self.bucket)
                    .key(full)
                    .metadata(HASH_META, hex)
                    .checksum_algorithm(ChecksumAlgorithm::Sha256)
                    .send(),
            )
            .map_err(|e| {
                self.error(
                    &format!("CreateMultipartUpload '{key}'"),
                    Failure::from_sdk(e),
                )
            })?;
        let Some(upload_id) = created.upload_id().map(str::to_string) else {
            return Err(Error::Storage(format!(
                "{}: CreateMultipartUpload '{key}' returned no upload id",
                self.describe()
            )));
        };
        let mut parts = || -> Result<Option<String>, Error> {
            let mut done = Vec::new();
            for (i, piece) in data.chunks(self.part_size).enumerate() {
                let n = i as i32 + 1;
                let sha = sha256_b64(piece);
                before(piece.len() as u64);
                let out = self
                    .run(
                        self.client
                            .upload_part()
                            .bucket(&self.bucket)
                            .key(full)
                            .upload_id(&upload_id)
                            .part_number(n)
                            .checksum_sha256(&sha)
                            .body(ByteStream::from(piece.to_vec()))
                            .send(),
                    )
                    .map_err(|e| {
                        self.error(&format!("UploadPart {n} of '{key}'"), Failure::from_sdk(e))
                    })?;
                done.push(
                    CompletedPart::builder()
                        .part_number(n)
                        .set_e_tag(out.e_tag().map(str::to_string))
                        .checksum_sha256(sha)
                        .build(),
                );
            }
            let out = self
                .run(
                    self.client
                        .complete_multipart_upload()
                        .bucket(&self.bucket)
                        .key(full)
                        .upload_id(&upload_id)
                        .multipart_upload(
                            CompletedMultipartUpload::builder()
                                .set_parts(Some(done))
                                .build(),
                        )
                        .send(),
                )
                .map_err(|e| {
                    self.error(
                        &format!("CompleteMultipartUpload '{key}'"),
                        Failure::from_sdk(e),
                    )
                })?;
            Ok(out.version_id().map(str::to_string))
        };
        let result = parts();
        if result.is_err() {
            // Parts of an abandoned upload are billed until aborted.
            if let Err(e) = self.run(
                self.client
                    .abort_multipart_upload()
                    .bucket(&self.bucket)
                    .key(full)
                    .upload_id(&upload_id)
                    .send(),
            ) {
                tracing::warn!(
                    bucket = %self.bucket,
                    key,
                    error = %Failure::from_sdk(e),
                    "could not abort a failed multipart upload"
                );
            }
        }
        result
    }

    /// Locks one version of an object (the current one if `version` is
    /// `None`).
    pub(crate) fn put_retention(
        &self,
        key: &str,
        version: Option<&str>,
        lock: Lock,
    ) -> Result<(), Error> {
        check_lock(&lock)?;
        self.run(
            self.client
                .put_object_retention()
                .bucket(&self.bucket)
                .key(self.full(key))
                .set_version_id(version.map(str::to_string))
                .retention(
                    ObjectLockRetention::builder()
                        .mode(lock.mode.retention_mode())
                        .retain_until_date(DateTime::from_secs(lock.retain_until_s))
                        .build(),
                )
                .send(),
        )
        .map_err(|e| self.error(&format!("PutObjectRetention '{key}'"), Failure::from_sdk(e)))?;
        Ok(())
    }

    pub(crate) fn head_raw(&self, key: &str) -> Result<Option<Head>, Failure> {
        let out = self.run(
            self.client
                .head_object()
                .bucket(&self.bucket)
                .key(self.full(key))
                .send(),
        );
        let out = match out {
            Ok(out) => out,
            Err(e) => {
                let f = Failure::from_sdk(e);
                return if f.is_not_found() { Ok(None) } else { Err(f) };
            }
        };
        let mode = match out.object_lock_mode() {
            Some(ObjectLockMode::Compliance) => Some(LockMode::Compliance),
            Some(ObjectLockMode::Governance) => Some(LockMode::Governance),
            _ => None,
        };
        let lock = match (mode, out.object_lock_retain_until_date()) {
            (Some(mode), Some(until)) => Some(Lock {
                mode,
                retain_until_s: until.secs(),
            }),
            _ => None,
        };
        let size = u64::try_from(out.content_length().unwrap_or(0))
            .map_err(|_| Failure::other(format!("'{key}' has a negative size")))?;
        Ok(Some(Head {
            size,
            hash: out
                .metadata()
                .and_then(|m| m.get(HASH_META))
                .and_then(|h| parse_hash(h)),
            lock,
            version: out.version_id().map(str::to_string),
        }))
    }

    pub(crate) fn head(&self, key: &str) -> Result<Option<Head>, Error> {
        self.head_raw(key)
            .map_err(|f| self.error(&format!("HeadObject '{key}'"), f))
    }

    /// The lock on an object's current version (`None`: no lock), as
    /// HeadObject reports it.
    pub fn retention(&self, key: &str) -> Result<Option<Lock>, Error> {
        match self.head(key)? {
            Some(h) => Ok(h.lock),
            None => Err(Error::Storage(format!(
                "{}: object '{key}' not found",
                self.describe()
            ))),
        }
    }

    /// The blake3 stored with an object (`None` if it has none).
    pub fn stored_hash(&self, key: &str) -> Result<Option<[u8; 32]>, Error> {
        match self.head(key)? {
            Some(h) => Ok(h.hash),
            None => Err(Error::Storage(format!(
                "{}: object '{key}' not found",
                self.describe()
            ))),
        }
    }

    /// Deletes one version of an object, which a lock refuses.
    pub fn delete_version(&self, key: &str, version_id: &str) -> Result<(), Error> {
        let out = self.run(
            self.client
                .delete_object()
                .bucket(&self.bucket)
                .key(self.full(key))
                .version_id(version_id)
                .send(),
        );
        match out {
            Ok(_) => Ok(()),
            Err(e) => {
                let f = Failure::from_sdk(e);
                if f.status == Some(403) {
                    Err(Error::Refused(format!(
                        "{} refused to delete version {version_id} of '{key}' \
                         (an Object Lock holds it, or these credentials may not delete): {f}",
                        self.describe()
                    )))
                } else {
                    Err(self.error(&format!("DeleteObject '{key}' version {version_id}"), f))
                }
            }
        }
    }

    /// The version ids of an object, newest first (delete markers left out).
    pub fn versions(&self, key: &str) -> Result<Vec<String>, Error> {
        let full = self.full(key);
        let mut out = Vec::new();
        let mut key_marker: Option<String> = None;
        let mut version_marker: Option<String> = None;
        loop {
            let page = self
                .run(
                    self.client
                        .list_object_versions()
                        .bucket(&self.bucket)
                        .prefix(&full)
                        .set_key_marker(key_marker.take())
                        .set_version_id_marker(version_marker.take())
                        .send(),
                )
                .map_err(|e| {
                    self.error(&format!("ListObjectVersions '{key}'"), Failure::from_sdk(e))
                })?;
            for v in page.versions() {
                if v.key() == Some(full.as_str())
                    && let Some(id) = v.version_id()
                {
                    out.push((v.last_modified().map(|t| t.as_nanos()), id.to_string()));
                }
            }
            if page.is_truncated() != Some(true) {
                break;
            }
            key_marker = page.next_key_marker().map(str::to_string);
            version_marker = page.next_version_id_marker().map(str::to_string);
            if key_marker.is_none() {
                break;
            }
        }
        // S3 lists a key's versions newest first; keep that order stable
        // should a server not.
        out.sort_by_key(|v| std::cmp::Reverse(v.0));
        Ok(out.into_iter().map(|(_, id)| id).collect())
    }

    fn describe_self(&self) -> String {
        format!("s3://{}/{} ({})", self.bucket, self.prefix, self.where_())
    }

    fn get_bytes(&self, key: &str, range: Option<String>) -> Result<Vec<u8>, Failure> {
        let req = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.full(key))
            .set_range(range);
        self.run(async move {
            let out = req.send().await.map_err(Failure::from_sdk)?;
            let body = out
                .body
                .collect()
                .await
                .map_err(|e| Failure::other(format!("reading the body failed: {e}")))?;
            Ok(body.into_bytes().to_vec())
        })
    }
}

impl BlobStore for S3Store {
    fn put(&self, key: &str, data: &[u8]) -> coffer_store::Result<()> {
        coffer_store::check_key(key)?;
        if self.head(key).map_err(|e| self.store_error(e))?.is_some() {
            return Err(coffer_store::Error::AlreadyExists { key: key.into() });
        }
        self.put_with_lock(key, data, self.lock_setting())
            .map_err(|e| self.store_error(e))
    }

    fn get(&self, key: &str) -> coffer_store::Result<Vec<u8>> {
        coffer_store::check_key(key)?;
        self.get_bytes(key, None)
            .map_err(|f| self.blob_error("GetObject", key, f))
    }

    fn get_range(&self, key: &str, offset: u64, len: u64) -> coffer_store::Result<Vec<u8>> {
        coffer_store::check_key(key)?;
        let truncated = |have: String| coffer_store::Error::Truncated {
            key: key.into(),
            detail: format!("wanted {len} bytes at offset {offset}, {have}"),
        };
        if len == 0 {
            // An empty range: only the object's existence and size matter.
            let size = self.size(key)?;
            return if offset <= size {
                Ok(Vec::new())
            } else {
                Err(truncated(format!("object has {size}")))
            };
        }
        let Some(last) = offset.checked_add(len - 1) else {
            return Err(truncated("a range past any object's end".into()));
        };
        let data = self
            .get_bytes(key, Some(format!("bytes={offset}-{last}")))
            .map_err(|f| {
                if f.status == Some(416) {
                    truncated("the object ends before".into())
                } else {
                    self.blob_error("GetObject", key, f)
                }
            })?;
        if data.len() as u64 != len {
            return Err(truncated(format!("object ends after {}", data.len())));
        }
        Ok(data)
    }

    fn size(&self, key: &str) -> coffer_store::Result<u64> {
        coffer_store::check_key(key)?;
        match self.head_raw(key) {
            Ok(Some(h)) => Ok(h.size),
            Ok(None) => Err(coffer_store::Error::NotFound { key: key.into() }),
            Err(f) => Err(self.blob_error("HeadObject", key, f)),
        }
    }

    fn list(&self, prefix: &str) -> coffer_store::Result<Vec<String>> {
        let full = self.full(prefix);
        let req = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(&full);
        let keys = self.run(async move {
            let mut pages = req.into_paginator().send();
            let mut keys = Vec::new();
            while let Some(page) = pages.next().await {
                let page = page.map_err(Failure::from_sdk)?;
                keys.extend(
                    page.contents()
                        .iter()
                        .filter_map(|o| o.key().map(str::to_string)),
                );
            }
            Ok::<_, Failure>(keys)
        });
        let keys = keys.map_err(|f| coffer_store::Error::Backend {
            store: self.describe(),
            reason: self
                .error(&format!("ListObjectsV2 '{prefix}'"), f)
                .to_string(),
        })?;
        let mut out: Vec<String> = keys
            .into_iter()
            .filter_map(|k| k.strip_prefix(&self.prefix).map(str::to_string))
            .collect();
        out.sort();
        Ok(out)
    }

    fn delete(&self, key: &str) -> coffer_store::Result<()> {
        coffer_store::check_key(key)?;
        match self.run(
            self.client
                .delete_object()
                .bucket(&self.bucket)
                .key(self.full(key))
                .send(),
        ) {
            Ok(_) => Ok(()),
            Err(e) => {
                let f = Failure::from_sdk(e);
                if f.is_not_found() {
                    Ok(())
                } else {
                    Err(self.blob_error("DeleteObject", key, f))
                }
            }
        }
    }

    fn describe(&self) -> String {
        self.describe_self()
    }

    fn retention_lock(&self, key: &str, locked: bool) -> coffer_store::Result<()> {
        coffer_store::check_key(key)?;
        let head = match self.head_raw(key) {
            Ok(Some(h)) => h,
            Ok(None) => return Err(coffer_store::Error::NotFound { key: key.into() }),
            Err(f) => return Err(self.blob_error("HeadObject", key, f)),
        };
        if !locked {
            let reason = match head.lock {
                Some(l) => format!(
                    "an S3 Object Lock cannot be released; the {} lock on '{key}' expires at {}",
                    l.mode,
                    format_time(l.retain_until_s)
                ),
                None => format!(
                    "an S3 Object Lock cannot be released ('{key}' has none; it expires at its retain-until date)"
                ),
            };
            return Err(coffer_store::Error::Backend {
                store: self.describe(),
                reason,
            });
        }
        let Some(lock) = self.lock_setting() else {
            return Err(coffer_store::Error::Backend {
                store: self.describe(),
                reason: format!("no Object Lock is configured to apply to '{key}'"),
            });
        };
        match extended(head.lock, lock) {
            Some(l) => self
                .put_retention(key, head.version.as_deref(), l)
                .map_err(|e| self.store_error(e)),
            None => Ok(()),
        }
    }
}

/// The lock to set on an object that holds `current` when `wanted` is
/// asked for: `None` if `current` already lasts as long. A lock is never
/// shortened, and a compliance lock stays one.
pub(crate) fn extended(current: Option<Lock>, wanted: Lock) -> Option<Lock> {
    match current {
        Some(c) if c.retain_until_s >= wanted.retain_until_s => None,
        Some(c) if c.mode == LockMode::Compliance => Some(Lock {
            mode: LockMode::Compliance,
            ..wanted
        }),
        _ => Some(wanted),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_and_hashes() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(
            sha256_b64(b"hello"),
            "LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ="
        );
        let h = blake3::hash(b"x");
        assert_eq!(parse_hash(&h.to_hex()), Some(*h.as_bytes()));
        assert_eq!(parse_hash("zz"), None);
    }

    #[test]
    fn times_and_modes() {
        assert_eq!(format_time(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_time(1_795_779_123), "2026-11-27 11:32:03 UTC");
        assert_eq!("Compliance".parse::<LockMode>(), Ok(LockMode::Compliance));
        assert_eq!(LockMode::Governance.as_str(), "governance");
        assert!("legal".parse::<LockMode>().is_err());
        let past = Lock {
            mode: LockMode::Compliance,
            retain_until_s: now_s() - 10,
        };
        assert!(check_lock(&past).unwrap_err().to_string().contains("past"));
    }

    #[test]
    fn locks_are_extended_never_shortened() {
        let c = |t| Lock {
            mode: LockMode::Compliance,
            retain_until_s: t,
        };
        let g = |t| Lock {
            mode: LockMode::Governance,
            retain_until_s: t,
        };
        assert_eq!(extended(None, g(10)), Some(g(10)));
        assert_eq!(extended(Some(c(20)), c(10)), None);
        assert_eq!(extended(Some(c(10)), c(10)), None);
        assert_eq!(extended(Some(c(10)), g(20)), Some(c(20)));
        assert_eq!(extended(Some(g(10)), c(20)), Some(c(20)));
    }

    #[test]
    fn credentials_never_show_their_secrets() {
        let c = S3Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: Zeroizing::new("wJalrXUtnFEMI".into()),
            session_token: Some(Zeroizing::new("FQoGZXIvYXdzE".into())),
        };
        let cfg = S3Config::new("bucket", c);
        let d = format!("{cfg:?}");
        assert!(d.contains("AKIDEXAMPLE"), "{d}");
        assert!(
            !d.contains("wJalrXUtnFEMI") && !d.contains("FQoGZXIvYXdzE"),
            "{d}"
        );
        assert_eq!(cfg.part_size, 16 << 20);
        assert_eq!((cfg.max_attempts, cfg.timeout_s), (4, 120));
    }
}
