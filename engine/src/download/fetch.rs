//! One file from a URL to its final path: resumable, verified, token-safe.
//!
//! The interface below is the contract the download manager relies on.
//!
//! A transfer goes like this:
//! 1. `HEAD` of the original URL, redirects not followed: Hugging Face answers 302 with the
//!    file's sha256 and size (`X-Linked-ETag`, `X-Linked-Size`).
//! 2. Large files on servers that take ranges go over several connections into a preallocated
//!    part whose progress is kept in a sidecar (`<dest>.part.segments`, see `segments`); others
//!    stream into `<dest>.part`, resuming with `Range` + `If-Range` (see `sequential`).
//! 3. The SHA-256 is computed while the bytes arrive; the part is verified, fsynced and only
//!    then renamed to `dest`.
//!
//! Redirects are followed by hand so that a token only ever goes to its own hosts, and never
//! after a redirect to another origin. Failures are retried with backoff (honouring
//! `Retry-After`), every retry resuming from what is on disk; a host that keeps failing trips a
//! circuit breaker shared by all transfers of the [`Fetcher`].

mod disk;
mod http;
mod segments;
mod sequential;

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use rand::Rng;
use reqwest::header::HeaderMap;
use reqwest::Method;
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::catalog::{Checksum, ChecksumAlgorithm};
use crate::secret::Secret;
use disk::{Digests, Hashes, SidecarState};

/// A token and the exact hosts (`host` or `host:port`) it may be sent to.
#[derive(Clone, Debug)]
pub struct ScopedToken {
    pub hosts: Vec<String>,
    pub token: Secret,
}

/// Tokens the fetcher may attach; each only to its own hosts, never after a cross-host redirect.
#[derive(Clone, Debug, Default)]
pub struct Credentials {
    pub tokens: Vec<ScopedToken>,
}

/// What the server said about the file; persisted so a restart can send `If-Range`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RemoteValidator {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub total_bytes: Option<u64>,
    /// SHA-256 from Hugging Face's `X-Linked-ETag`, when the file is on HF LFS/Xet.
    pub linked_sha256: Option<String>,
}

/// One file to fetch, with what is known about it beforehand.
#[derive(Clone, Debug)]
pub struct FetchRequest {
    /// The original URL; signed redirect targets are re-resolved from it when they expire.
    pub url: String,
    /// The final path. The transfer writes `<dest>.part` (plus a sidecar for segmented
    /// downloads) and renames only after verification.
    pub dest: PathBuf,
    /// From the catalog; the server's length wins when they differ (logged).
    pub expected_size: Option<u64>,
    /// Verified instead of Hugging Face's linked sha256 when given.
    pub checksum: Option<Checksum>,
    /// From a previous attempt (database), so the first resume request can use `If-Range`.
    pub validator: Option<RemoteValidator>,
    /// Connections for one large file (1 = sequential).
    pub connections: usize,
    /// Files larger than this use `connections` when the server supports ranges.
    pub segment_threshold: u64,
}

/// What the finished file was checked against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerifiedBy {
    /// The preset's own checksum.
    PresetChecksum,
    /// Hugging Face's `X-Linked-ETag` (the file's sha256).
    LinkedEtag,
    /// The caller's `--sha256`.
    /// (Same as PresetChecksum from the fetcher's point of view; kept for messages.)
    /// No checksum anywhere: the size matched the server's declared length.
    SizeOnly,
}

/// A verified file, renamed into place.
#[derive(Clone, Debug)]
pub struct FetchOutcome {
    pub bytes: u64,
    /// Lower-case hex SHA-256 of the whole file.
    pub sha256: String,
    pub verified_by: VerifiedBy,
    pub validator: RemoteValidator,
}

/// Progress callbacks; called from the transfer task, must be cheap (the manager throttles).
pub trait FetchObserver: Send + Sync {
    /// Once the remote file is known (size, validators); persist for restarts.
    fn resolved(&self, validator: &RemoteValidator);
    /// Bytes on disk so far (for segmented downloads: all segments together).
    fn progress(&self, bytes_done: u64, total: Option<u64>);
    /// A retry is about to happen after `delay`; `reason` is user-readable.
    fn retrying(&self, attempt: u32, delay: Duration, reason: &str);
}

/// Why a transfer ended without a verified file. Messages are written for users.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The cancellation token fired (pause or cancel); the part file is kept.
    #[error("stopped")]
    Stopped,
    #[error("{repo} is a gated repository: accept the licence at https://huggingface.co/{repo}, then save your Hugging Face token in Settings")]
    Gated { repo: String },
    #[error("{host} refused the token (HTTP {status}): check the token in Settings")]
    BadToken { host: String, status: u16 },
    #[error("{host} requires a token (HTTP {status}): save one in Settings")]
    TokenRequired { host: String, status: u16 },
    #[error("access denied by {host} (HTTP 403)")]
    Forbidden { host: String },
    #[error("the file is gone from {url} (HTTP {status})")]
    Gone { url: String, status: u16 },
    #[error(
        "checksum mismatch for {file}: expected {expected}, got {actual}; the file was deleted"
    )]
    ChecksumMismatch {
        file: String,
        expected: String,
        actual: String,
    },
    #[error("size mismatch for {file}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        file: String,
        expected: u64,
        actual: u64,
    },
    #[error("disk full while writing {file}; free some space, then resume")]
    NoSpace { file: String },
    #[error("{host} is not answering; paused retries for {} s", .retry_in.as_secs())]
    HostUnavailable { host: String, retry_in: Duration },
    #[error("HTTP {status} from {url}")]
    Http { url: String, status: u16 },
    #[error("network error after {attempts} attempts: {message}")]
    Network { attempts: u32, message: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

impl FetchError {
    /// Worth retrying later without user action (the manager re-queues these).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            FetchError::HostUnavailable { .. }
                | FetchError::Network { .. }
                | FetchError::Http { .. }
        )
    }
}

impl FetchRequest {
    /// A request with no prior knowledge: 4 connections for files over 64 MiB.
    pub fn new(url: impl Into<String>, dest: impl Into<PathBuf>) -> FetchRequest {
        FetchRequest {
            url: url.into(),
            dest: dest.into(),
            expected_size: None,
            checksum: None,
            validator: None,
            connections: 4,
            segment_threshold: 64 << 20,
        }
    }
}

/// Timing and sizing knobs of a [`Fetcher`]. The defaults suit real networks; tests shrink the
/// delays to milliseconds.
#[derive(Clone, Debug)]
pub struct FetchTuning {
    /// First retry delay; doubles per consecutive failure, with jitter (half to all of it).
    pub backoff_base: Duration,
    /// Longest computed retry delay.
    pub backoff_cap: Duration,
    /// Attempts in a row without progress before giving up (`Network` / `Http`).
    pub max_attempts: u32,
    /// A longer `Retry-After` ends the transfer with a transient error instead of waiting.
    pub max_retry_after: Duration,
    /// No byte (or no response) for this long: drop the connection and resume.
    pub stall_timeout: Duration,
    /// TCP (and TLS) connection setup.
    pub connect_timeout: Duration,
    /// Consecutive failures to one host before its circuit opens.
    pub breaker_threshold: u32,
    /// How long an open circuit refuses requests before one trial.
    pub breaker_cooldown: Duration,
    /// Bytes gathered before one write (and hash) of a sequential transfer. 1 MiB: on the
    /// project's machine a 4 MiB `write(2)` into the page cache cost from 1× to 5× the time of
    /// the same bytes in 1 MiB writes (`dd` of 1 GiB: 0.3 s against 0.4–2.9 s), and a buffer
    /// that fits the CPU's cache is still there when the hash reads it.
    pub write_buffer: usize,
    /// Bytes gathered per connection before one positional write of a segmented transfer.
    pub segment_buffer: usize,
    /// An idle connection takes over half of another's remaining segment only when that half
    /// is at least this large.
    pub min_split: u64,
    /// How often the segment sidecar is saved (it is also saved on stop).
    pub sidecar_interval: Duration,
    /// Redirect hops per request, followed by hand (tokens are decided per hop).
    pub max_redirects: u32,
}

impl Default for FetchTuning {
    fn default() -> Self {
        FetchTuning {
            backoff_base: Duration::from_secs(1),
            backoff_cap: Duration::from_secs(60),
            max_attempts: 8,
            max_retry_after: Duration::from_secs(600),
            stall_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(30),
            breaker_threshold: 5,
            breaker_cooldown: Duration::from_secs(60),
            write_buffer: 1 << 20,
            segment_buffer: 1 << 20,
            min_split: 4 << 20,
            sidecar_interval: Duration::from_secs(1),
            max_redirects: 10,
        }
    }
}

/// Shared between all transfers: the HTTP client and the per-host circuit breakers.
/// Cloning is cheap and shares both.
#[derive(Clone)]
pub struct Fetcher {
    inner: Arc<Inner>,
}

struct Inner {
    client: reqwest::Client,
    credentials: RwLock<Credentials>,
    breaker: crate::breaker::Breaker,
    tuning: FetchTuning,
}

impl Fetcher {
    /// A fetcher with the default [`FetchTuning`].
    pub fn new(credentials: Credentials) -> Fetcher {
        Fetcher::with_tuning(credentials, FetchTuning::default())
    }

    /// A fetcher with its own delays and buffer sizes.
    pub fn with_tuning(credentials: Credentials, tuning: FetchTuning) -> Fetcher {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(tuning.connect_timeout)
            // Several connections must be several TCP streams, not HTTP/2 streams on one.
            .http1_only()
            .tcp_nodelay(true)
            .user_agent(concat!("comfydeck/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("a client with a redirect policy and timeouts always builds");
        Fetcher {
            inner: Arc::new(Inner {
                client,
                credentials: RwLock::new(credentials),
                breaker: crate::breaker::Breaker::new(
                    tuning.breaker_threshold,
                    tuning.breaker_cooldown,
                ),
                tuning,
            }),
        }
    }

    /// Replaces the tokens (after a settings change); running transfers pick them up on their
    /// next request.
    pub fn set_credentials(&self, credentials: Credentials) {
        *self
            .inner
            .credentials
            .write()
            .unwrap_or_else(|e| e.into_inner()) = credentials;
    }

    /// The knobs this fetcher was built with.
    pub fn tuning(&self) -> &FetchTuning {
        &self.inner.tuning
    }

    /// Downloads `request.url` to `request.dest`, resuming from any part file, and verifies it.
    pub async fn fetch(
        &self,
        request: &FetchRequest,
        observer: Arc<dyn FetchObserver>,
        stop: CancellationToken,
    ) -> Result<FetchOutcome, FetchError> {
        let original = Url::parse(&request.url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
            .ok_or_else(|| FetchError::Invalid("the download URL is not an http(s) URL".into()))?;
        let label = request
            .dest
            .file_name()
            .ok_or_else(|| {
                FetchError::Invalid(format!("{} is not a file path", request.dest.display()))
            })?
            .to_string_lossy()
            .into_owned();
        if let Some(parent) = request.dest.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| FetchError::Io {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        let part = part_path(&request.dest);
        let ctx = Ctx {
            inner: &self.inner,
            req: request,
            observer: observer.as_ref(),
            sidecar: disk::sidecar_path(&part),
            part,
            label,
            route: Mutex::new(Route {
                url: original.clone(),
                crossed: false,
                generation: 0,
            }),
            want_md5: request
                .checksum
                .as_ref()
                .is_some_and(|c| c.algorithm == ChecksumAlgorithm::Md5),
            original,
        };
        let mut transfer = Transfer {
            part_validator: request.validator.clone(),
            ctx,
            stop: &stop,
            remote: RemoteValidator::default(),
            reported: None,
            accept_ranges: None,
            failures: 0,
            high_water: 0,
            hashes: None,
            probed: false,
            warned_size: false,
        };
        let mut redownloaded = false;
        loop {
            let digests = transfer.download().await?;
            let mismatch = match transfer.verify(&digests) {
                Ok(verified_by) => return transfer.finish(digests, verified_by).await,
                Err(mismatch) => mismatch,
            };
            transfer.discard_part()?;
            if !redownloaded {
                tracing::warn!(file = %transfer.ctx.label, ?mismatch, "verification failed; downloading once more from the start");
                redownloaded = true;
                transfer.hashes = None;
                transfer.part_validator = None;
                transfer.failures = 0;
                transfer.high_water = 0;
                continue;
            }
            let file = transfer.ctx.label.clone();
            return Err(match mismatch {
                Mismatch::Checksum { expected, actual } => FetchError::ChecksumMismatch {
                    file,
                    expected,
                    actual,
                },
                Mismatch::Size { expected, actual } => FetchError::SizeMismatch {
                    file,
                    expected,
                    actual,
                },
            });
        }
    }
}

/// `<dest>.part`
pub fn part_path(dest: &std::path::Path) -> PathBuf {
    let mut name = dest.as_os_str().to_owned();
    name.push(".part");
    PathBuf::from(name)
}

/// `<dest>.part.segments`: the progress of a segmented download (removed when it finishes).
pub fn segments_path(dest: &std::path::Path) -> PathBuf {
    disk::sidecar_path(&part_path(dest))
}

/// The part of `dest` is to go on from another URL of the same file: the segment sidecar
/// forgets the old host's etag and date (the size and Hugging Face's sha256 stay), so the next
/// fetch may resume the bytes on disk when it knows a checksum to verify them with. A
/// sequential part has no sidecar; it resumes on a checksum as it is.
pub fn forget_source(dest: &Path) -> io::Result<()> {
    let sidecar = segments_path(dest);
    match disk::read_sidecar(&sidecar) {
        SidecarState::Valid(mut s) => {
            s.etag = None;
            s.last_modified = None;
            disk::write_sidecar(&sidecar, &s)
        }
        SidecarState::Missing | SidecarState::Corrupt => Ok(()),
    }
}

/// Where requests start: the original URL, or the last redirect target while it works.
struct Route {
    url: Url,
    /// The chain that reached `url` left the original origin.
    crossed: bool,
    /// Bumped on every change, so concurrent connections re-resolve only once.
    generation: u64,
}

/// What one transfer shares between its connections.
struct Ctx<'a> {
    inner: &'a Inner,
    req: &'a FetchRequest,
    observer: &'a dyn FetchObserver,
    original: Url,
    /// The destination's file name, for messages.
    label: String,
    part: PathBuf,
    sidecar: PathBuf,
    route: Mutex<Route>,
    want_md5: bool,
}

/// A failed attempt worth retrying.
#[derive(Debug)]
struct Failure {
    reason: String,
    retry_after: Option<Duration>,
    status: Option<u16>,
}

impl Failure {
    fn new(reason: impl Into<String>) -> Failure {
        Failure {
            reason: reason.into(),
            retry_after: None,
            status: None,
        }
    }
}

enum AttemptError {
    Retry(Failure),
    Fatal(FetchError),
}

impl From<http::SendError> for AttemptError {
    fn from(e: http::SendError) -> Self {
        match e {
            http::SendError::Stopped => AttemptError::Fatal(FetchError::Stopped),
            http::SendError::HostUnavailable { host, retry_in } => {
                AttemptError::Fatal(FetchError::HostUnavailable { host, retry_in })
            }
            http::SendError::Network(message) => AttemptError::Retry(Failure::new(message)),
            http::SendError::Invalid(message) => AttemptError::Fatal(FetchError::Invalid(message)),
        }
    }
}

/// Progress is reported at most every this many bytes (the manager throttles further).
const PROGRESS_STEP: u64 = 256 << 10;
/// Bytes read per blocking call when hashing a part from disk (the segmented prefix, a resumed
/// part): small enough to stay in the CPU's cache between the read and the hash.
const HASH_BLOCK: usize = 1 << 20;

impl Ctx<'_> {
    /// A GET from the current route (following redirects) that answered 2xx or 416. When a
    /// cached redirect target on another host refuses (400/401/403: an expired signed URL), the
    /// route goes back to the original URL once and the request is sent again.
    async fn send_get(
        &self,
        range: Option<String>,
        if_range: Option<&str>,
        stop: &CancellationToken,
    ) -> Result<http::Sent, AttemptError> {
        let mut re_resolved = false;
        loop {
            let (start, crossed, generation) = {
                let r = self.route.lock().unwrap_or_else(|e| e.into_inner());
                (r.url.clone(), r.crossed, r.generation)
            };
            let from_original = start == self.original;
            let request = http::Request {
                method: Method::GET,
                start: &start,
                crossed,
                original: &self.original,
                range: range.clone(),
                if_range,
                redirects: http::Redirects::All,
            };
            let sent = self.inner.send(&request, stop).await?;
            let status = sent.response.status().as_u16();
            if sent.response.status().is_success() || status == 416 {
                let mut r = self.route.lock().unwrap_or_else(|e| e.into_inner());
                if r.url != sent.url {
                    r.url = sent.url.clone();
                    r.crossed = sent.crossed;
                    r.generation += 1;
                }
                return Ok(sent);
            }
            let foreign = http::authority(&sent.url) != http::authority(&self.original);
            if matches!(status, 400 | 401 | 403) && foreign && !from_original && !re_resolved {
                tracing::info!(
                    file = %self.label,
                    host = %http::display_host(&sent.url),
                    status,
                    "the redirect target refused (expired signed URL?); resolving again from the original URL"
                );
                let mut r = self.route.lock().unwrap_or_else(|e| e.into_inner());
                if r.generation == generation {
                    r.url = self.original.clone();
                    r.crossed = false;
                    r.generation += 1;
                }
                re_resolved = true;
                continue;
            }
            return Err(self.classify(&sent));
        }
    }

    /// What a non-2xx answer means for the transfer.
    fn classify(&self, sent: &http::Sent) -> AttemptError {
        let status = sent.response.status().as_u16();
        let headers = sent.response.headers();
        let host = http::display_host(&sent.url);
        if status == 429 || status == 408 || status >= 500 {
            return AttemptError::Retry(Failure {
                reason: format!("HTTP {status} from {host}"),
                retry_after: http::retry_after(headers, SystemTime::now()),
                status: Some(status),
            });
        }
        let url = http::redact(&self.original);
        let error = match (status, http::header_str(headers, "x-error-code")) {
            (401 | 403 | 404 | 410, Some("GatedRepo")) => FetchError::Gated {
                repo: self.gated_repo(sent, headers),
            },
            (
                401 | 403 | 404 | 410,
                Some("RepoNotFound" | "EntryNotFound" | "RevisionNotFound"),
            ) => FetchError::Gone { url, status },
            (401, _) if sent.token_sent => FetchError::BadToken { host, status },
            (401, _) => FetchError::TokenRequired { host, status },
            (403, _) => FetchError::Forbidden { host },
            (404 | 410, _) => FetchError::Gone { url, status },
            _ => FetchError::Http { url, status },
        };
        AttemptError::Fatal(error)
    }

    fn gated_repo(&self, sent: &http::Sent, headers: &HeaderMap) -> String {
        http::hf_repo(&sent.url)
            .or_else(|| http::hf_repo(&self.original))
            .or_else(|| {
                http::header_str(headers, "x-error-message").and_then(http::hf_repo_in_message)
            })
            .unwrap_or_else(|| self.original.path().trim_matches('/').to_string())
    }

    /// Counts a failed attempt and waits before the next one (honouring `Retry-After`), or
    /// gives up when the attempts are spent.
    async fn wait_retry(
        &self,
        failures: &mut u32,
        failure: Failure,
        stop: &CancellationToken,
    ) -> Result<(), FetchError> {
        *failures += 1;
        let tuning = &self.inner.tuning;
        let give_up = || match failure.status {
            Some(status) => FetchError::Http {
                url: http::redact(&self.original),
                status,
            },
            None => FetchError::Network {
                attempts: *failures,
                message: failure.reason.clone(),
            },
        };
        if *failures >= tuning.max_attempts.max(1) {
            return Err(give_up());
        }
        let delay = match failure.retry_after {
            Some(wait) if wait > tuning.max_retry_after => return Err(give_up()),
            Some(wait) => wait,
            None => backoff(tuning, *failures),
        };
        tracing::info!(
            file = %self.label,
            attempt = *failures,
            delay_ms = delay.as_millis() as u64,
            reason = %failure.reason,
            "retrying"
        );
        self.observer.retrying(*failures, delay, &failure.reason);
        tokio::select! {
            biased;
            _ = stop.cancelled() => Err(FetchError::Stopped),
            _ = tokio::time::sleep(delay) => Ok(()),
        }
    }

    /// A write error: a full disk is the user's to fix; anything else is an I/O error.
    fn write_error(&self, e: io::Error) -> FetchError {
        if disk::is_no_space(&e) {
            FetchError::NoSpace {
                file: self.label.clone(),
            }
        } else {
            self.io_error(e)
        }
    }

    /// Hashes `file` from what `hashes` already covers up to `end`, in blocks read off the
    /// async workers; stops when `stop` fires.
    async fn hash_to(
        &self,
        file: &Arc<File>,
        mut hashes: Hashes,
        end: u64,
        stop: &CancellationToken,
    ) -> Result<Hashes, FetchError> {
        let mut buf = Vec::new();
        while hashes.len < end {
            if stop.is_cancelled() {
                return Err(FetchError::Stopped);
            }
            let file = file.clone();
            let (h, b, r) = tokio::task::spawn_blocking(move || {
                let r = disk::hash_block(&file, &mut hashes, end, &mut buf, HASH_BLOCK);
                (hashes, buf, r)
            })
            .await
            .map_err(|e| self.io_error(io::Error::other(e)))?;
            r.map_err(|e| self.io_error(e))?;
            hashes = h;
            buf = b;
        }
        Ok(hashes)
    }

    fn io_error(&self, source: io::Error) -> FetchError {
        FetchError::Io {
            path: self.part.clone(),
            source,
        }
    }

    fn progress_total(&self, total: Option<u64>) -> Option<u64> {
        total.or(self.req.expected_size)
    }
}

/// Exponential backoff with jitter: between half and all of `base × 2^(n-1)`, capped.
fn backoff(tuning: &FetchTuning, failures: u32) -> Duration {
    let exp = tuning
        .backoff_base
        .saturating_mul(1u32 << failures.saturating_sub(1).min(20));
    let full = exp.min(tuning.backoff_cap).as_nanos() as u64;
    Duration::from_nanos(rand::rng().random_range(full / 2..=full))
}

/// `Accept-Ranges`: `bytes` → yes, `none` → no, absent → unknown.
fn accept_ranges(headers: &HeaderMap) -> Option<bool> {
    http::header_str(headers, "accept-ranges").map(|v| v.eq_ignore_ascii_case("bytes"))
}

/// The `If-Range` value for a validator: a strong etag, else the date.
fn if_range_value(v: &RemoteValidator) -> Option<&str> {
    v.etag
        .as_deref()
        .filter(|e| http::is_strong_etag(e))
        .or(v.last_modified.as_deref())
}

#[derive(Debug)]
enum Mismatch {
    Checksum { expected: String, actual: String },
    Size { expected: u64, actual: u64 },
}

/// The state of one `fetch` call.
struct Transfer<'a> {
    ctx: Ctx<'a>,
    stop: &'a CancellationToken,
    /// What is known about the remote file now.
    remote: RemoteValidator,
    /// The last validator given to `observer.resolved`.
    reported: Option<RemoteValidator>,
    accept_ranges: Option<bool>,
    /// The remote file the bytes in the part came from (for `If-Range`).
    part_validator: Option<RemoteValidator>,
    /// Failed attempts in a row without progress.
    failures: u32,
    /// The longest the sequential part has been in this call: progress means going past it
    /// (a server without ranges that always breaks at the same byte must not loop forever).
    high_water: u64,
    /// Hashes of the sequential part's bytes, when they are known to match the part.
    hashes: Option<Hashes>,
    probed: bool,
    warned_size: bool,
}

impl Transfer<'_> {
    fn check_stop(&self) -> Result<(), FetchError> {
        if self.stop.is_cancelled() {
            Err(FetchError::Stopped)
        } else {
            Ok(())
        }
    }

    /// A checksum will catch a part that does not belong to the current file.
    fn checksum_known(&self) -> bool {
        self.ctx.req.checksum.is_some() || self.remote.linked_sha256.is_some()
    }

    /// A complete part with its digests, sequentially or over several connections.
    async fn download(&mut self) -> Result<Digests, FetchError> {
        loop {
            self.check_stop()?;
            if !self.probed {
                self.head_probe().await?;
                self.probed = true;
            }
            let threshold = self.ctx.req.segment_threshold;
            let connections = self.ctx.req.connections;
            let sidecar = disk::read_sidecar(&self.ctx.sidecar);
            let has_sidecar = !matches!(sidecar, SidecarState::Missing);
            // A part without a sidecar was written sequentially (or adopted): continue it so.
            let sequential_part =
                !has_sidecar && std::fs::metadata(&self.ctx.part).is_ok_and(|m| m.len() > 0);
            let may_segment = !sequential_part
                && connections > 1
                && self.remote.total_bytes.is_none_or(|t| t > threshold);
            if (may_segment || has_sidecar) && self.accept_ranges.is_none() {
                self.range_probe().await?;
            }
            let total = match (self.accept_ranges, self.remote.total_bytes) {
                (Some(true), Some(total))
                    if total > 0 && (has_sidecar || (may_segment && total > threshold)) =>
                {
                    total
                }
                _ => {
                    if has_sidecar {
                        tracing::info!(file = %self.ctx.label, "the server no longer serves ranges; starting over sequentially");
                        self.discard_part()?;
                    }
                    return self.sequential().await;
                }
            };
            let resume = match sidecar {
                SidecarState::Valid(s)
                    if s.matches(&self.remote)
                        && (s.has_validator() || self.checksum_known())
                        && std::fs::metadata(&self.ctx.part).map(|m| m.len()).ok()
                            == Some(total) =>
                {
                    Some(s)
                }
                SidecarState::Missing => None,
                _ => {
                    tracing::info!(file = %self.ctx.label, "the segment sidecar does not match the part or the file; starting over");
                    None
                }
            };
            if resume.is_none() {
                self.discard_part()?;
            }
            self.report_resolved();
            match segments::run(&self.ctx, total, resume, &self.remote, self.stop).await {
                Ok(digests) => return Ok(digests),
                Err(segments::SegError::Fetch(e)) => return Err(e),
                Err(segments::SegError::Restart(reason)) => {
                    tracing::info!(file = %self.ctx.label, %reason, "starting the file over");
                    self.discard_part()?;
                    self.hashes = None;
                    self.part_validator = None;
                    self.accept_ranges = None;
                    self.probed = false;
                    self.remote = RemoteValidator::default();
                    self.ctx
                        .wait_retry(&mut self.failures, Failure::new(reason), self.stop)
                        .await?;
                }
            }
        }
    }

    /// `HEAD` of the original URL, redirects to other origins not followed: HF's linked sha256
    /// and size (on its 302 to the CDN), or a direct server's size, validators and range
    /// support. Best effort, except for HF's own error codes (gated, missing), which end the
    /// transfer at once.
    async fn head_probe(&mut self) -> Result<(), FetchError> {
        let sent = loop {
            self.check_stop()?;
            let request = http::Request {
                method: Method::HEAD,
                start: &self.ctx.original,
                crossed: false,
                original: &self.ctx.original,
                range: None,
                if_range: None,
                redirects: http::Redirects::SameOrigin,
            };
            let failure = match self.ctx.inner.send(&request, self.stop).await {
                Ok(sent) => match sent.response.status().as_u16() {
                    429 | 500.. => match self.ctx.classify(&sent) {
                        AttemptError::Retry(f) => f,
                        AttemptError::Fatal(e) => return Err(e),
                    },
                    _ => break sent,
                },
                Err(e) => match AttemptError::from(e) {
                    AttemptError::Retry(f) => f,
                    AttemptError::Fatal(e) => return Err(e),
                },
            };
            self.ctx
                .wait_retry(&mut self.failures, failure, self.stop)
                .await?;
        };
        let status = sent.response.status();
        let headers = sent.response.headers();
        if status.is_success() || status.is_redirection() {
            let mut total = sent.linked_size;
            if status.is_success() {
                self.accept_ranges = accept_ranges(headers);
                self.remote.etag = http::header_str(headers, "etag").map(String::from);
                self.remote.last_modified =
                    http::header_str(headers, "last-modified").map(String::from);
                total = total.or_else(|| http::content_length(headers));
            }
            if total.is_some() {
                self.remote.total_bytes = total;
            }
            if sent.linked_sha256.is_some() {
                self.remote.linked_sha256 = sent.linked_sha256.clone();
            }
        } else if http::header_str(headers, "x-error-code").is_some() {
            if let AttemptError::Fatal(e) = self.ctx.classify(&sent) {
                return Err(e);
            }
        } else {
            tracing::debug!(file = %self.ctx.label, status = status.as_u16(), "HEAD not answered; going on with GET");
        }
        drop(sent);
        let changed = matches!(
            (self.part_validator.as_ref().and_then(|v| v.linked_sha256.as_ref()), &self.remote.linked_sha256),
            (Some(old), Some(new)) if old != new
        );
        if changed {
            tracing::info!(file = %self.ctx.label, "the file changed upstream; dropping the part");
            self.discard_part()?;
            self.part_validator = None;
            self.hashes = None;
        }
        self.note_total();
        self.report_resolved();
        Ok(())
    }

    /// `Range: bytes=0-0`: does the server (after redirects) take ranges, and how large is
    /// the file? Only asked when the answer decides between one and several connections.
    async fn range_probe(&mut self) -> Result<(), FetchError> {
        loop {
            self.check_stop()?;
            let sent = match self
                .ctx
                .send_get(Some("bytes=0-0".into()), None, self.stop)
                .await
            {
                Ok(sent) => sent,
                Err(AttemptError::Retry(f)) => {
                    self.ctx
                        .wait_retry(&mut self.failures, f, self.stop)
                        .await?;
                    continue;
                }
                Err(AttemptError::Fatal(e)) => return Err(e),
            };
            let headers = sent.response.headers();
            let total = match sent.response.status().as_u16() {
                206 => http::content_range(headers).and_then(|(_, _, t)| t),
                416 => http::unsatisfied_total(headers),
                _ => http::content_length(headers),
            };
            self.absorb(&sent, total);
            if sent.response.status().as_u16() != 206 {
                self.accept_ranges = Some(false);
            }
            return Ok(());
        }
    }

    /// Takes the validators of a 2xx answer (which describes the bytes actually served).
    fn absorb(&mut self, sent: &http::Sent, total: Option<u64>) {
        let headers = sent.response.headers();
        self.remote.etag = http::header_str(headers, "etag").map(String::from);
        self.remote.last_modified = http::header_str(headers, "last-modified").map(String::from);
        if total.is_some() {
            self.remote.total_bytes = total;
        }
        if sent.linked_sha256.is_some() {
            self.remote.linked_sha256 = sent.linked_sha256.clone();
        }
        if sent.response.status().as_u16() == 206 {
            self.accept_ranges = Some(true);
        } else if let Some(ranges) = accept_ranges(headers) {
            self.accept_ranges = Some(ranges);
        }
        self.note_total();
        self.report_resolved();
    }

    /// The server is trusted over the catalog's size, but the difference is worth a log line.
    fn note_total(&mut self) {
        if let (Some(expected), Some(total)) = (self.ctx.req.expected_size, self.remote.total_bytes)
        {
            if expected != total && !self.warned_size {
                self.warned_size = true;
                tracing::warn!(file = %self.ctx.label, expected, server = total, "the server's size differs from the expected size; trusting the server");
            }
        }
    }

    fn report_resolved(&mut self) {
        let known = self.remote != RemoteValidator::default();
        if known && self.reported.as_ref() != Some(&self.remote) {
            self.ctx.observer.resolved(&self.remote);
            self.reported = Some(self.remote.clone());
        }
    }

    /// Checks the digests against the preset checksum, else HF's linked sha256, else the size.
    fn verify(&self, d: &Digests) -> Result<VerifiedBy, Mismatch> {
        if let Some(checksum) = &self.ctx.req.checksum {
            let expected = checksum.value.trim().to_ascii_lowercase();
            let actual = match checksum.algorithm {
                ChecksumAlgorithm::Sha256 => d.sha256.clone(),
                ChecksumAlgorithm::Md5 => d.md5.clone().unwrap_or_default(),
            };
            if let Some(linked) = &self.remote.linked_sha256 {
                if checksum.algorithm == ChecksumAlgorithm::Sha256 && *linked != expected {
                    tracing::warn!(file = %self.ctx.label, "the preset checksum differs from Hugging Face's; checking the preset's");
                }
            }
            return if actual == expected {
                Ok(VerifiedBy::PresetChecksum)
            } else {
                Err(Mismatch::Checksum { expected, actual })
            };
        }
        if let Some(expected) = &self.remote.linked_sha256 {
            return if d.sha256 == *expected {
                Ok(VerifiedBy::LinkedEtag)
            } else {
                Err(Mismatch::Checksum {
                    expected: expected.clone(),
                    actual: d.sha256.clone(),
                })
            };
        }
        match self.remote.total_bytes {
            Some(expected) if expected != d.len => Err(Mismatch::Size {
                expected,
                actual: d.len,
            }),
            _ => Ok(VerifiedBy::SizeOnly),
        }
    }

    /// Renames the verified (and already fsynced) part into place.
    async fn finish(
        &self,
        d: Digests,
        verified_by: VerifiedBy,
    ) -> Result<FetchOutcome, FetchError> {
        let part = self.ctx.part.clone();
        let dest = self.ctx.req.dest.clone();
        let renamed = tokio::task::spawn_blocking(move || {
            std::fs::rename(&part, &dest)?;
            if let Some(dir) = dest.parent() {
                disk::sync_dir(if dir.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    dir
                });
            }
            Ok::<(), io::Error>(())
        })
        .await
        .map_err(io::Error::other)
        .and_then(|r| r);
        renamed.map_err(|source| FetchError::Io {
            path: self.ctx.req.dest.clone(),
            source,
        })?;
        if let Err(e) = disk::remove_if_exists(&self.ctx.sidecar) {
            tracing::warn!(file = %self.ctx.label, error = %e, "could not remove the segment sidecar");
        }
        tracing::info!(file = %self.ctx.label, bytes = d.len, ?verified_by, "download verified");
        Ok(FetchOutcome {
            bytes: d.len,
            sha256: d.sha256,
            verified_by,
            validator: self.remote.clone(),
        })
    }

    /// Deletes the part and its sidecar.
    fn discard_part(&self) -> Result<(), FetchError> {
        disk::remove_if_exists(&self.ctx.sidecar).map_err(|e| self.ctx.io_error(e))?;
        disk::remove_if_exists(&self.ctx.part).map_err(|e| self.ctx.io_error(e))
    }

    /// Hashes `file` from what `hashes` already covers up to `end`, in blocks, stoppable.
    async fn rehash(
        &self,
        file: &Arc<File>,
        hashes: Hashes,
        end: u64,
    ) -> Result<Hashes, FetchError> {
        self.ctx.hash_to(file, hashes, end, self.stop).await
    }
}
