//! A local HTTP file server with injectable faults, for the downloader's tests.
//!
//! It serves deterministic pseudo-random files of any size (every byte is derived from its
//! offset, so nothing large is held in memory) with real `HEAD`, `Accept-Ranges`, strong
//! `ETag`, `Last-Modified`, single `Range` (206 + `Content-Range`), 416 and `If-Range`.
//! The same server answers as `127.0.0.1:PORT` and `localhost:PORT`, which the tests use as
//! two different hosts (e.g. Hugging Face and its CDN).
//!
//! Faults are set per path and can be changed while a download runs; every request is
//! recorded (method, host, path, range, if-range, authorization, status).

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;
use axum::Router;
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// A file the server holds (virtually).
#[derive(Clone, Debug)]
pub struct FileSpec {
    pub path: String,
    pub size: u64,
    pub seed: u64,
    /// Lower-case hex of the whole content.
    pub sha256: String,
    pub md5: String,
    /// Strong, quoted (`"…"`), as sent in `ETag`.
    pub etag: String,
    pub last_modified: String,
}

impl FileSpec {
    fn new(path: &str, size: u64, seed: u64) -> FileSpec {
        let mut sha = Sha256::new();
        let mut md5 = md5::Md5::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut pos = 0;
        while pos < size {
            let n = (size - pos).min(buf.len() as u64) as usize;
            fill(seed, pos, &mut buf[..n]);
            sha.update(&buf[..n]);
            md5.update(&buf[..n]);
            pos += n as u64;
        }
        let sha256 = hex::encode(sha.finalize());
        FileSpec {
            path: path.to_string(),
            size,
            seed,
            etag: format!("\"{}\"", &sha256[..16]),
            last_modified: http_date(1_600_000_000 + seed % 100_000_000),
            sha256,
            md5: hex::encode(md5.finalize()),
        }
    }

    /// The whole content.
    pub fn bytes(&self) -> Vec<u8> {
        self.range(0, self.size)
    }

    /// Bytes `start..end`.
    pub fn range(&self, start: u64, end: u64) -> Vec<u8> {
        content(self.seed, start, (end - start) as usize)
    }
}

/// `len` bytes of the content with `seed`, from `offset`.
pub fn content(seed: u64, offset: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    fill(seed, offset, &mut buf);
    buf
}

fn word(seed: u64, index: u64) -> u64 {
    // splitmix64 of (seed, index)
    let mut z = seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn fill(seed: u64, offset: u64, buf: &mut [u8]) {
    let mut pos = offset;
    let mut i = 0;
    while i < buf.len() && !pos.is_multiple_of(8) {
        buf[i] = word(seed, pos / 8).to_le_bytes()[(pos % 8) as usize];
        i += 1;
        pos += 1;
    }
    let mut chunks = buf[i..].chunks_exact_mut(8);
    for chunk in &mut chunks {
        chunk.copy_from_slice(&word(seed, pos / 8).to_le_bytes());
        pos += 8;
    }
    for (j, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b = word(seed, pos / 8).to_le_bytes()[j];
    }
}

/// How many requests a fault applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Times {
    Once,
    Always,
}

/// Misbehaviour injected for one path.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Abort the connection when the body reaches this absolute offset (the bytes before it
    /// are sent). Applies to responses whose range contains the offset.
    DropAt(u64),
    /// Promise the full `Content-Length` but end the body early, cleanly, at this offset.
    TruncateAt(u64),
    /// Send nothing for `pause` once the body reaches `offset`, then go on.
    StallAt { offset: u64, pause: Duration },
    /// Send the body in `chunk`-byte pieces, `interval` apart.
    Trickle { chunk: usize, interval: Duration },
    /// Answer `code` with an empty body, and `Retry-After` when given (seconds or a date).
    Status {
        code: u16,
        retry_after: Option<String>,
    },
    /// Hugging Face's gated repository: 401 without `Authorization`, 403 with one, and
    /// `X-Error-Code: GatedRepo` + `X-Error-Message`.
    Gated,
    /// 404, with `X-Error-Code: <hf_code>` when given (`EntryNotFound`, `RepoNotFound`).
    NotFound { hf_code: Option<String> },
    /// The first `n` requests are answered as usual, every later one 404: a file taken down
    /// while it was being downloaded.
    GoneAfter(u32),
    /// 401 unless the request carries `Authorization: Bearer <token>`.
    RequireToken(String),
    /// No `Accept-Ranges`, `Range` ignored: always 200 with the whole file.
    NoRanges,
    /// Signed-URL expiry on a CDN path: each `sig` (issued by an HF redirect) is good for
    /// `requests` requests; later ones (and requests without `sig`) get 403 "Request has
    /// expired" until the client resolves the HF URL again.
    ExpireSignedUrl { requests: u32 },
}

impl Fault {
    /// An error status without `Retry-After`.
    pub fn status(code: u16) -> Fault {
        Fault::Status {
            code,
            retry_after: None,
        }
    }

    /// An error status with `Retry-After: <secs>`.
    pub fn status_retry_after(code: u16, secs: u64) -> Fault {
        Fault::Status {
            code,
            retry_after: Some(secs.to_string()),
        }
    }
}

/// One request as the server saw it.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub method: String,
    /// The `Host` header (`127.0.0.1:PORT` or `localhost:PORT`).
    pub host: String,
    pub path: String,
    pub query: Option<String>,
    pub range: Option<String>,
    pub if_range: Option<String>,
    pub authorization: Option<String>,
    /// The status the server answered.
    pub status: u16,
}

impl RecordedRequest {
    pub fn has_auth(&self) -> bool {
        self.authorization.is_some()
    }

    pub fn is_get(&self) -> bool {
        self.method == "GET"
    }

    /// The first byte of `Range: bytes=a-…`.
    pub fn range_start(&self) -> Option<u64> {
        let spec = self.range.as_deref()?.strip_prefix("bytes=")?;
        spec.split_once('-')?.0.parse().ok()
    }
}

struct FaultSlot {
    fault: Fault,
    remaining: Option<u32>,
}

enum RouteKind {
    File(FileSpec),
    Redirect {
        location: String,
        status: u16,
    },
    /// HF `resolve` URL: 302 to the CDN path on the other host name, with a fresh `sig`.
    HfRedirect {
        cdn_path: String,
        spec: FileSpec,
    },
}

struct Route {
    kind: RouteKind,
    faults: Vec<FaultSlot>,
    sent: Arc<AtomicU64>,
}

#[derive(Default)]
struct ServerState {
    routes: HashMap<String, Route>,
    requests: Vec<RecordedRequest>,
    next_sig: u64,
    sig_uses: HashMap<String, u32>,
    next_seed: u64,
}

struct Shared {
    port: u16,
    state: Mutex<ServerState>,
    /// Set by `stop`: bodies in flight break off.
    stopped: Arc<AtomicBool>,
}

/// The server. Dropping it shuts it down.
pub struct FileServer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    shutdown: Mutex<Option<CancellationToken>>,
}

impl FileServer {
    /// Binds `127.0.0.1:0` and serves until dropped.
    pub async fn start() -> FileServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared {
            port: addr.port(),
            state: Mutex::new(ServerState {
                next_seed: 1,
                ..Default::default()
            }),
            stopped: Arc::new(AtomicBool::new(false)),
        });
        let token = serve(listener, shared.clone());
        FileServer {
            shared,
            addr,
            shutdown: Mutex::new(Some(token)),
        }
    }

    fn state(&self) -> MutexGuard<'_, ServerState> {
        self.shared.state.lock().unwrap()
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `127.0.0.1:PORT`
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port())
    }

    /// `localhost:PORT`: the same server under another host name.
    pub fn other_host(&self) -> String {
        format!("localhost:{}", self.port())
    }

    /// `http://127.0.0.1:PORT<path>`
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.host())
    }

    /// `http://localhost:PORT<path>`
    pub fn url_on_other_host(&self, path: &str) -> String {
        format!("http://{}{path}", self.other_host())
    }

    /// Adds (or replaces) a file of `size` bytes with fresh content.
    pub fn add_file(&self, path: &str, size: u64) -> FileSpec {
        let seed = {
            let mut st = self.state();
            st.next_seed += 1;
            st.next_seed * 0x1000_0001
        };
        self.add_file_seeded(path, size, seed)
    }

    /// Adds (or replaces) a file whose content is derived from `seed`.
    pub fn add_file_seeded(&self, path: &str, size: u64, seed: u64) -> FileSpec {
        let spec = FileSpec::new(path, size, seed);
        self.set_route(path, RouteKind::File(spec.clone()));
        spec
    }

    /// New content (and so a new ETag) at `path`, keeping its faults: "the file changed".
    pub fn replace_file(&self, path: &str, size: u64) -> FileSpec {
        self.add_file(path, size)
    }

    /// `path` answers 302 to `location` (absolute, or relative to the request).
    pub fn add_redirect(&self, path: &str, location: &str) {
        self.set_route(
            path,
            RouteKind::Redirect {
                location: location.to_string(),
                status: 302,
            },
        );
    }

    /// A Hugging Face LFS file: `hf_path` answers 302 (with `X-Linked-ETag`, `X-Linked-Size`)
    /// to `cdn_path(hf_path)` on the *other* host name with a fresh `?sig=N`. Returns the CDN
    /// file (its `path` is the CDN path).
    pub fn add_hf_file(&self, hf_path: &str, size: u64) -> FileSpec {
        let cdn_path = Self::cdn_path(hf_path);
        let spec = self.add_file(&cdn_path, size);
        self.set_route(
            hf_path,
            RouteKind::HfRedirect {
                cdn_path,
                spec: spec.clone(),
            },
        );
        spec
    }

    /// Where `add_hf_file` puts the bytes: `/cdn<hf_path>`.
    pub fn cdn_path(hf_path: &str) -> String {
        format!("/cdn{hf_path}")
    }

    fn set_route(&self, path: &str, kind: RouteKind) {
        let mut st = self.state();
        match st.routes.get_mut(path) {
            Some(route) => route.kind = kind,
            None => {
                st.routes.insert(
                    path.to_string(),
                    Route {
                        kind,
                        faults: Vec::new(),
                        sent: Arc::new(AtomicU64::new(0)),
                    },
                );
            }
        }
    }

    /// Replaces the path's faults with `fault`, applying to every request.
    pub fn set_fault(&self, path: &str, fault: Fault) {
        self.clear_faults(path);
        self.add_fault(path, fault, Times::Always);
    }

    /// Replaces the path's faults with `fault`, applying once.
    pub fn set_fault_once(&self, path: &str, fault: Fault) {
        self.clear_faults(path);
        self.add_fault(path, fault, Times::Once);
    }

    /// Adds a fault after the existing ones (request-level faults apply in order).
    pub fn add_fault(&self, path: &str, fault: Fault, times: Times) {
        let remaining = match times {
            Times::Once => Some(1),
            Times::Always => None,
        };
        let mut st = self.state();
        let route = st
            .routes
            .get_mut(path)
            .unwrap_or_else(|| panic!("no route {path}: add the file first"));
        route.faults.push(FaultSlot { fault, remaining });
    }

    pub fn clear_faults(&self, path: &str) {
        if let Some(route) = self.state().routes.get_mut(path) {
            route.faults.clear();
        }
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state().requests.clone()
    }

    /// Every request so far, split by the host it was sent to: `(host(), other_host())`.
    pub fn requests_by_host(&self) -> (Vec<RecordedRequest>, Vec<RecordedRequest>) {
        let (here, other): (Vec<_>, Vec<_>) = self
            .requests()
            .into_iter()
            .filter(|r| r.host == self.host() || r.host == self.other_host())
            .partition(|r| r.host == self.host());
        (here, other)
    }

    /// The requests for one path.
    pub fn requests_for(&self, path: &str) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }

    /// GET requests for one path.
    pub fn gets(&self, path: &str) -> Vec<RecordedRequest> {
        self.requests_for(path)
            .into_iter()
            .filter(|r| r.is_get())
            .collect()
    }

    pub fn clear_requests(&self) {
        self.state().requests.clear();
    }

    /// Body bytes the server has handed to the connection for `path` (since the last reset).
    pub fn bytes_sent(&self, path: &str) -> u64 {
        self.state()
            .routes
            .get(path)
            .map(|r| r.sent.load(Ordering::Relaxed))
            .unwrap_or(0)
    }

    pub fn reset_bytes_sent(&self, path: &str) {
        if let Some(r) = self.state().routes.get(path) {
            r.sent.store(0, Ordering::Relaxed);
        }
    }

    /// Stops listening and breaks off the bodies in flight (files and faults are kept).
    pub fn stop(&self) {
        self.shared.stopped.store(true, Ordering::SeqCst);
        if let Some(token) = self.shutdown.lock().unwrap().take() {
            token.cancel();
        }
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn serve(listener: TcpListener, shared: Arc<Shared>) -> CancellationToken {
    let token = CancellationToken::new();
    let app = Router::new().fallback(handle).with_state(shared);
    let shutdown = token.clone();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
    });
    token
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let headers = request.headers();
    let text = |name: header::HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let mut recorded = RecordedRequest {
        method: request.method().to_string(),
        host: text(header::HOST).unwrap_or_default(),
        path: request.uri().path().to_string(),
        query: request.uri().query().map(str::to_string),
        range: text(header::RANGE),
        if_range: text(header::IF_RANGE),
        authorization: text(header::AUTHORIZATION),
        status: 0,
    };
    let response = if shared.stopped.load(Ordering::SeqCst) {
        status_response(StatusCode::SERVICE_UNAVAILABLE)
    } else {
        respond(&shared, request.method(), &recorded, headers)
    };
    recorded.status = response.status().as_u16();
    shared.state.lock().unwrap().requests.push(recorded);
    response
}

fn status_response(status: StatusCode) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = status;
    r
}

fn set(r: &mut Response, name: &'static str, value: &str) {
    r.headers_mut()
        .insert(name, HeaderValue::from_str(value).expect("header value"));
}

/// Takes one use of a fault slot; false when it is spent.
fn consume(slot: &mut FaultSlot) -> bool {
    match &mut slot.remaining {
        None => true,
        Some(0) => false,
        Some(n) => {
            *n -= 1;
            true
        }
    }
}

fn respond(
    shared: &Shared,
    method: &Method,
    req: &RecordedRequest,
    headers: &HeaderMap,
) -> Response {
    let mut guard = shared.state.lock().unwrap();
    let st = &mut *guard;
    let Some(route) = st.routes.get_mut(&req.path) else {
        return status_response(StatusCode::NOT_FOUND);
    };
    route.faults.retain(|s| s.remaining != Some(0));

    // Faults that decide the whole answer, in order.
    for slot in route.faults.iter_mut() {
        if let Fault::GoneAfter(left) = &mut slot.fault {
            if *left > 0 {
                *left -= 1;
            } else if consume(slot) {
                return status_response(StatusCode::NOT_FOUND);
            }
            continue;
        }
        match slot.fault.clone() {
            Fault::Status { code, retry_after } if consume(slot) => {
                let mut r = status_response(StatusCode::from_u16(code).expect("status"));
                if let Some(after) = retry_after {
                    set(&mut r, "retry-after", &after);
                }
                return r;
            }
            Fault::Gated if consume(slot) => {
                let repo = repo_of(&req.path);
                let (code, message) = if req.has_auth() {
                    (StatusCode::FORBIDDEN, format!("Access to model {repo} is restricted and you are not in the authorized list. Visit https://huggingface.co/{repo} to ask for access."))
                } else {
                    (StatusCode::UNAUTHORIZED, format!("Access to model {repo} is restricted. You must have access to it and be authenticated to access it. Please log in."))
                };
                let mut r = status_response(code);
                set(&mut r, "x-error-code", "GatedRepo");
                set(&mut r, "x-error-message", &message);
                return r;
            }
            Fault::NotFound { hf_code } if consume(slot) => {
                let mut r = status_response(StatusCode::NOT_FOUND);
                if let Some(code) = hf_code {
                    set(&mut r, "x-error-code", &code);
                    set(&mut r, "x-error-message", "Entry not found");
                }
                return r;
            }
            Fault::RequireToken(token) => {
                let good = req.authorization.as_deref() == Some(&format!("Bearer {token}"));
                if !good && consume(slot) {
                    let mut r = status_response(StatusCode::UNAUTHORIZED);
                    if req.has_auth() {
                        set(
                            &mut r,
                            "x-error-message",
                            "Invalid credentials in Authorization header",
                        );
                    }
                    return r;
                }
            }
            Fault::ExpireSignedUrl { requests } => {
                let sig = req.query.as_deref().and_then(|q| {
                    q.split('&')
                        .find_map(|kv| kv.strip_prefix("sig=").map(str::to_string))
                });
                let expired = match sig {
                    None => true,
                    Some(sig) => {
                        let uses = st.sig_uses.entry(sig).or_default();
                        *uses += 1;
                        *uses > requests
                    }
                };
                if expired && consume(slot) {
                    return status_response(StatusCode::FORBIDDEN);
                }
            }
            _ => {}
        }
    }

    match &route.kind {
        RouteKind::Redirect { location, status } => {
            let mut r = status_response(StatusCode::from_u16(*status).expect("status"));
            set(&mut r, "location", location);
            r
        }
        RouteKind::HfRedirect { cdn_path, spec } => {
            st.next_sig += 1;
            let other = if req.host.starts_with("127.0.0.1") {
                format!("localhost:{}", shared.port)
            } else {
                format!("127.0.0.1:{}", shared.port)
            };
            let mut r = status_response(StatusCode::FOUND);
            set(
                &mut r,
                "location",
                &format!("http://{other}{cdn_path}?sig={}", st.next_sig),
            );
            set(&mut r, "x-linked-etag", &format!("\"{}\"", spec.sha256));
            set(&mut r, "x-linked-size", &spec.size.to_string());
            set(&mut r, "etag", &format!("\"{}\"", spec.sha256));
            set(
                &mut r,
                "x-repo-commit",
                "0123456789abcdef0123456789abcdef01234567",
            );
            r
        }
        RouteKind::File(spec) => {
            let spec = spec.clone();
            serve_file(&spec, method, req, headers, route, shared)
        }
    }
}

/// Body-level faults for one response.
#[derive(Default)]
struct BodyPlan {
    drop_at: Option<u64>,
    truncate_at: Option<u64>,
    stall: Option<(u64, Duration)>,
    trickle: Option<(usize, Duration)>,
}

fn serve_file(
    spec: &FileSpec,
    method: &Method,
    req: &RecordedRequest,
    headers: &HeaderMap,
    route: &mut Route,
    shared: &Shared,
) -> Response {
    let mut no_ranges = false;
    let mut plan = BodyPlan::default();
    for slot in route.faults.iter_mut() {
        if matches!(slot.fault, Fault::NoRanges) && consume(slot) {
            no_ranges = true;
        }
    }
    let range = if no_ranges {
        None
    } else {
        let if_range_ok = match req.if_range.as_deref() {
            None => true,
            Some(v) => v == spec.etag || v == spec.last_modified,
        };
        headers
            .get(header::RANGE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_range(v, spec.size))
            .filter(|_| if_range_ok)
    };
    let (status, start, end) = match range {
        Some(RangeAsk::Unsatisfiable) => {
            let mut r = status_response(StatusCode::RANGE_NOT_SATISFIABLE);
            set(&mut r, "content-range", &format!("bytes */{}", spec.size));
            return r;
        }
        Some(RangeAsk::Bytes(a, b)) => (StatusCode::PARTIAL_CONTENT, a, b),
        None => (StatusCode::OK, 0, spec.size),
    };
    let head = method == Method::HEAD;
    if !head {
        for slot in route.faults.iter_mut() {
            let applies = match &slot.fault {
                Fault::DropAt(o) | Fault::TruncateAt(o) => (start..end).contains(o),
                Fault::StallAt { offset, .. } => (start..end).contains(offset),
                Fault::Trickle { .. } => true,
                _ => false,
            };
            if !applies || !consume(slot) {
                continue;
            }
            match slot.fault.clone() {
                Fault::DropAt(o) => plan.drop_at = Some(o),
                Fault::TruncateAt(o) => plan.truncate_at = Some(o),
                Fault::StallAt { offset, pause } => plan.stall = Some((offset, pause)),
                Fault::Trickle { chunk, interval } => plan.trickle = Some((chunk.max(1), interval)),
                _ => {}
            }
        }
    }
    let body = if head {
        Body::empty()
    } else {
        body_stream(
            spec.seed,
            start,
            end,
            plan,
            route.sent.clone(),
            shared.stopped.clone(),
        )
    };
    let mut r = Response::new(body);
    *r.status_mut() = status;
    set(&mut r, "content-type", "application/octet-stream");
    set(&mut r, "content-length", &(end - start).to_string());
    set(&mut r, "etag", &spec.etag);
    set(&mut r, "last-modified", &spec.last_modified);
    if !no_ranges {
        set(&mut r, "accept-ranges", "bytes");
    }
    if status == StatusCode::PARTIAL_CONTENT {
        set(
            &mut r,
            "content-range",
            &format!("bytes {start}-{}/{}", end - 1, spec.size),
        );
    }
    r
}

enum RangeAsk {
    /// `start..end`
    Bytes(u64, u64),
    Unsatisfiable,
}

/// One range of `bytes=a-b`, `bytes=a-`, `bytes=-n`; anything else is ignored (200).
fn parse_range(v: &str, size: u64) -> Option<RangeAsk> {
    let spec = v.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        if n == 0 || size == 0 {
            return Some(RangeAsk::Unsatisfiable);
        }
        return Some(RangeAsk::Bytes(size - n.min(size), size));
    }
    let a: u64 = a.parse().ok()?;
    let b: Option<u64> = if b.is_empty() {
        None
    } else {
        Some(b.parse().ok()?)
    };
    if b.is_some_and(|b| b < a) {
        return None;
    }
    if a >= size {
        return Some(RangeAsk::Unsatisfiable);
    }
    let end = b.map_or(size, |b| (b + 1).min(size));
    Some(RangeAsk::Bytes(a, end))
}

const FLUSH_PAUSE: Duration = Duration::from_millis(30);

fn body_stream(
    seed: u64,
    start: u64,
    end: u64,
    plan: BodyPlan,
    sent: Arc<AtomicU64>,
    stopped: Arc<AtomicBool>,
) -> Body {
    struct S {
        seed: u64,
        start: u64,
        pos: u64,
        end: u64,
        plan: BodyPlan,
        sent: Arc<AtomicU64>,
        stopped: Arc<AtomicBool>,
        done: bool,
    }
    let state = S {
        seed,
        start,
        pos: start,
        end,
        plan,
        sent,
        stopped,
        done: false,
    };
    let stream = futures_util::stream::unfold(state, |mut s| async move {
        if s.done {
            return None;
        }
        if s.stopped.load(Ordering::SeqCst) {
            s.done = true;
            return Some((Err(io::Error::other("server stopped")), s));
        }
        // Before breaking off, pause so the connection flushes what was sent: the client then
        // gets exactly the bytes before the offset.
        if s.plan.truncate_at.is_some_and(|t| s.pos >= t) {
            tokio::time::sleep(FLUSH_PAUSE).await;
            return None;
        }
        if s.plan.drop_at.is_some_and(|d| s.pos >= d) {
            tokio::time::sleep(FLUSH_PAUSE).await;
            s.done = true;
            return Some((Err(io::Error::other("injected connection drop")), s));
        }
        if let Some((offset, pause)) = s.plan.stall {
            if s.pos >= offset {
                s.plan.stall = None;
                tokio::time::sleep(pause).await;
            }
        }
        if let Some((_, interval)) = s.plan.trickle {
            if s.pos > s.start {
                tokio::time::sleep(interval).await;
            }
        }
        if s.pos >= s.end {
            return None;
        }
        let mut n = s.plan.trickle.map_or(64 << 10, |(chunk, _)| chunk as u64);
        n = n.min(s.end - s.pos);
        for boundary in [
            s.plan.drop_at,
            s.plan.truncate_at,
            s.plan.stall.map(|(o, _)| o),
        ]
        .into_iter()
        .flatten()
        {
            if boundary > s.pos {
                n = n.min(boundary - s.pos);
            }
        }
        let data = content(s.seed, s.pos, n as usize);
        s.pos += n;
        s.sent.fetch_add(n, Ordering::Relaxed);
        Some((Ok(Bytes::from(data)), s))
    });
    Body::from_stream(stream)
}

/// The repository part of an HF-style path (`/org/name/resolve/…` → `org/name`).
fn repo_of(path: &str) -> String {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.iter().position(|s| *s == "resolve") {
        Some(i) if i > 0 => segments[..i].join("/"),
        _ => path.trim_matches('/').to_string(),
    }
}

/// An IMF-fixdate for seconds since the epoch.
fn http_date(secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // civil from days (Howard Hinnant)
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
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        d,
        MONTHS[(m - 1) as usize],
        y,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
