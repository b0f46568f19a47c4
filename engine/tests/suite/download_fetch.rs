//! `engine::download::fetch`: one file over a misbehaving network, against a local server
//! (`common::fileserver`) that drops, truncates, stalls, redirects and refuses on demand.

use crate::common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::fileserver::{Fault, FileServer, FileSpec, Times};
use engine::catalog::{Checksum, ChecksumAlgorithm};
use engine::download::fetch::{
    part_path, segments_path, Credentials, FetchError, FetchObserver, FetchOutcome, FetchRequest,
    FetchTuning, Fetcher, RemoteValidator, ScopedToken, VerifiedBy,
};
use engine::secret::Secret;
use tokio_util::sync::CancellationToken;

const MIB: u64 = 1 << 20;

/// Records every callback.
#[derive(Default)]
struct Recorder {
    resolved: Mutex<Vec<RemoteValidator>>,
    progress: AtomicU64,
    retries: Mutex<Vec<(u32, Duration, String)>>,
}

impl FetchObserver for Recorder {
    fn resolved(&self, validator: &RemoteValidator) {
        self.resolved.lock().unwrap().push(validator.clone());
    }

    fn progress(&self, bytes_done: u64, _total: Option<u64>) {
        self.progress.store(bytes_done, Ordering::SeqCst);
    }

    fn retrying(&self, attempt: u32, delay: Duration, reason: &str) {
        self.retries
            .lock()
            .unwrap()
            .push((attempt, delay, reason.to_string()));
    }
}

impl Recorder {
    fn retries(&self) -> Vec<(u32, Duration, String)> {
        self.retries.lock().unwrap().clone()
    }

    fn last_resolved(&self) -> Option<RemoteValidator> {
        self.resolved.lock().unwrap().last().cloned()
    }

    /// Waits (bounded) until at least `bytes` were reported.
    async fn wait_progress(&self, bytes: u64) {
        for _ in 0..2000 {
            if self.progress.load(Ordering::SeqCst) >= bytes {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("no progress to {bytes} bytes");
    }
}

/// Millisecond delays, small buffers: the faults show up quickly.
fn tuning() -> FetchTuning {
    FetchTuning {
        backoff_base: Duration::from_millis(5),
        backoff_cap: Duration::from_millis(40),
        max_attempts: 6,
        stall_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(5),
        write_buffer: 256 << 10,
        segment_buffer: 64 << 10,
        min_split: 256 << 10,
        sidecar_interval: Duration::from_millis(50),
        ..FetchTuning::default()
    }
}

fn fetcher() -> Fetcher {
    Fetcher::with_tuning(Credentials::default(), tuning())
}

fn token_for(hosts: &[String], token: &str) -> Credentials {
    Credentials {
        tokens: vec![ScopedToken {
            hosts: hosts.to_vec(),
            token: Secret::new(token),
        }],
    }
}

fn request(url: String, dest: &Path) -> FetchRequest {
    FetchRequest {
        connections: 1,
        ..FetchRequest::new(url, dest)
    }
}

fn sha256(spec: &FileSpec) -> Option<Checksum> {
    Some(Checksum {
        algorithm: ChecksumAlgorithm::Sha256,
        value: spec.sha256.clone(),
    })
}

async fn run(
    fetcher: &Fetcher,
    req: &FetchRequest,
) -> (Result<FetchOutcome, FetchError>, Arc<Recorder>) {
    let rec = Arc::new(Recorder::default());
    let result = fetcher
        .fetch(req, rec.clone(), CancellationToken::new())
        .await;
    (result, rec)
}

fn assert_file(dest: &Path, spec: &FileSpec) {
    let data = std::fs::read(dest).expect("the final file exists");
    assert_eq!(data.len() as u64, spec.size, "size of {}", dest.display());
    assert!(
        data == spec.bytes(),
        "content of {} differs",
        dest.display()
    );
    assert!(!part_path(dest).exists(), "no part left beside the file");
    assert!(
        !segments_path(dest).exists(),
        "no sidecar left beside the file"
    );
}

fn dest_in(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    dir.path().join("models").join("sub").join(name)
}

#[tokio::test]
async fn plain_download_is_verified_by_the_preset_checksum() {
    let server = FileServer::start().await;
    let spec = server.add_file("/files/model.bin", 3 * MIB + 123);
    let dir = tempfile::tempdir().unwrap();
    let dest = dest_in(&dir, "model.bin");
    let req = FetchRequest {
        checksum: sha256(&spec),
        expected_size: Some(spec.size),
        ..request(server.url("/files/model.bin"), &dest)
    };
    let (result, rec) = run(&fetcher(), &req).await;
    let outcome = result.expect("download");
    assert_eq!(outcome.verified_by, VerifiedBy::PresetChecksum);
    assert_eq!(outcome.sha256, spec.sha256);
    assert_eq!(outcome.bytes, spec.size);
    assert_eq!(outcome.validator.etag.as_deref(), Some(spec.etag.as_str()));
    assert_eq!(outcome.validator.total_bytes, Some(spec.size));
    assert_file(&dest, &spec);
    let resolved = rec.last_resolved().expect("resolved reported");
    assert_eq!(resolved.total_bytes, Some(spec.size));
    assert_eq!(
        resolved.last_modified.as_deref(),
        Some(spec.last_modified.as_str())
    );
    assert_eq!(rec.progress.load(Ordering::SeqCst), spec.size);
    assert!(rec.retries().is_empty());
    assert_eq!(server.gets("/files/model.bin").len(), 1);
}

#[tokio::test]
async fn md5_checksums_are_checked_too() {
    let server = FileServer::start().await;
    let spec = server.add_file("/m.bin", MIB / 2);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("m.bin");
    let req = FetchRequest {
        checksum: Some(Checksum {
            algorithm: ChecksumAlgorithm::Md5,
            value: spec.md5.to_uppercase(),
        }),
        ..request(server.url("/m.bin"), &dest)
    };
    let outcome = run(&fetcher(), &req).await.0.expect("download");
    assert_eq!(outcome.verified_by, VerifiedBy::PresetChecksum);
    assert_eq!(outcome.sha256, spec.sha256);
    assert_file(&dest, &spec);
}

#[tokio::test]
async fn without_any_checksum_the_size_is_checked() {
    let server = FileServer::start().await;
    let spec = server.add_file("/plain.bin", MIB + 7);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("plain.bin");
    let req = FetchRequest {
        // A stale catalog size: the server wins (and it is logged).
        expected_size: Some(42),
        ..request(server.url("/plain.bin"), &dest)
    };
    let outcome = run(&fetcher(), &req).await.0.expect("download");
    assert_eq!(outcome.verified_by, VerifiedBy::SizeOnly);
    assert_eq!(outcome.bytes, spec.size);
    assert_file(&dest, &spec);
}

#[tokio::test]
async fn empty_files_download() {
    let server = FileServer::start().await;
    let spec = server.add_file("/empty.txt", 0);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("empty.txt");
    let outcome = run(&fetcher(), &request(server.url("/empty.txt"), &dest))
        .await
        .0
        .expect("download");
    assert_eq!(outcome.bytes, 0);
    assert_file(&dest, &spec);
}

#[tokio::test]
async fn hf_redirect_is_verified_by_the_linked_etag_and_the_token_stays_on_its_host() {
    let server = FileServer::start().await;
    let hf_path = "/acme/model/resolve/main/unet.safetensors";
    let spec = server.add_hf_file(hf_path, 2 * MIB + 5);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("unet.safetensors");
    // Even a token that also lists the CDN's host name must not follow a cross-host redirect.
    let fetcher = Fetcher::with_tuning(
        token_for(&[server.host(), server.other_host()], "hf_secret_token"),
        tuning(),
    );
    let (result, rec) = run(&fetcher, &request(server.url(hf_path), &dest)).await;
    let outcome = result.expect("download");
    assert_eq!(outcome.verified_by, VerifiedBy::LinkedEtag);
    assert_eq!(
        outcome.validator.linked_sha256.as_deref(),
        Some(spec.sha256.as_str())
    );
    assert_eq!(outcome.validator.total_bytes, Some(spec.size));
    assert_file(&dest, &spec);

    let hf = server.requests_for(hf_path);
    assert!(hf.iter().any(|r| r.method == "HEAD"), "HEAD of the HF URL");
    assert!(!hf.is_empty());
    for r in &hf {
        assert_eq!(r.host, server.host());
        assert_eq!(r.authorization.as_deref(), Some("Bearer hf_secret_token"));
    }
    let cdn = server.requests_for(&spec.path);
    assert!(!cdn.is_empty());
    for r in &cdn {
        assert_eq!(r.host, server.other_host(), "the CDN is the other host");
        assert!(!r.has_auth(), "no token to the CDN: {r:?}");
    }
    let resolved = rec.last_resolved().unwrap();
    assert_eq!(
        resolved.linked_sha256.as_deref(),
        Some(spec.sha256.as_str())
    );
}

#[tokio::test]
async fn tokens_go_only_to_their_listed_hosts() {
    let server = FileServer::start().await;
    let spec = server.add_file("/t.bin", 1000);
    let dir = tempfile::tempdir().unwrap();

    let other = Fetcher::with_tuning(
        token_for(
            &["huggingface.co".into(), server.other_host()],
            "not-for-you",
        ),
        tuning(),
    );
    run(
        &other,
        &request(server.url("/t.bin"), &dir.path().join("a")),
    )
    .await
    .0
    .expect("download");
    assert!(server.requests().iter().all(|r| !r.has_auth()));

    // A bare host name matches any port of that host.
    server.clear_requests();
    let bare = Fetcher::with_tuning(token_for(&["127.0.0.1".into()], "yours"), tuning());
    run(&bare, &request(server.url("/t.bin"), &dir.path().join("b")))
        .await
        .0
        .expect("download");
    let requests = server.requests();
    assert!(!requests.is_empty());
    assert!(requests
        .iter()
        .all(|r| r.authorization.as_deref() == Some("Bearer yours")));
    assert_file(&dir.path().join("b"), &spec);
}

#[tokio::test]
async fn a_dropped_connection_resumes_with_range() {
    let server = FileServer::start().await;
    let spec = server.add_file("/drop.bin", 4 * MIB);
    server.set_fault_once("/drop.bin", Fault::DropAt(2 * MIB + 1000));
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("drop.bin");
    let req = FetchRequest {
        checksum: sha256(&spec),
        ..request(server.url("/drop.bin"), &dest)
    };
    let (result, rec) = run(&fetcher(), &req).await;
    result.expect("download");
    assert_file(&dest, &spec);
    let gets = server.gets("/drop.bin");
    assert_eq!(gets.len(), 2, "{gets:?}");
    let resumed = &gets[1];
    assert_eq!(resumed.status, 206);
    let start = resumed.range_start().expect("a Range request");
    assert!(start > 0 && start <= 2 * MIB + 1000, "resumed at {start}");
    assert_eq!(resumed.if_range.as_deref(), Some(spec.etag.as_str()));
    assert!(server.bytes_sent("/drop.bin") < 2 * spec.size);
    assert_eq!(rec.retries().len(), 1);
}

#[tokio::test]
async fn a_connection_that_always_drops_at_the_same_byte_gives_up() {
    let server = FileServer::start().await;
    server.add_file("/bad.bin", MIB);
    server.set_fault("/bad.bin", Fault::DropAt(MIB / 2));
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("bad.bin");
    let (result, rec) = run(&fetcher(), &request(server.url("/bad.bin"), &dest)).await;
    match result {
        Err(FetchError::Network { attempts, .. }) => assert_eq!(attempts, tuning().max_attempts),
        other => panic!("expected a network error, got {other:?}"),
    }
    assert!(result_is_transient(&FetchError::Network {
        attempts: 1,
        message: String::new()
    }));
    assert_eq!(rec.retries().len() as u32, tuning().max_attempts - 1);
    assert!(!dest.exists());
    assert_eq!(std::fs::metadata(part_path(&dest)).unwrap().len(), MIB / 2);
}

fn result_is_transient(e: &FetchError) -> bool {
    e.is_transient()
}

#[tokio::test]
async fn a_part_from_a_previous_run_resumes_with_if_range() {
    let server = FileServer::start().await;
    let spec = server.add_file("/half.bin", 3 * MIB);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("half.bin");
    let half = spec.size / 2;
    std::fs::write(part_path(&dest), spec.range(0, half)).unwrap();
    let req = FetchRequest {
        checksum: sha256(&spec),
        validator: Some(RemoteValidator {
            etag: Some(spec.etag.clone()),
            last_modified: Some(spec.last_modified.clone()),
            total_bytes: Some(spec.size),
            linked_sha256: None,
        }),
        ..request(server.url("/half.bin"), &dest)
    };
    let outcome = run(&fetcher(), &req).await.0.expect("download");
    assert_eq!(outcome.verified_by, VerifiedBy::PresetChecksum);
    assert_file(&dest, &spec);
    let gets = server.gets("/half.bin");
    assert_eq!(gets.len(), 1, "{gets:?}");
    assert_eq!(
        gets[0].range.as_deref(),
        Some(format!("bytes={half}-").as_str())
    );
    assert_eq!(gets[0].if_range.as_deref(), Some(spec.etag.as_str()));
    assert_eq!(gets[0].status, 206);
    assert_eq!(server.bytes_sent("/half.bin"), spec.size - half);
}

#[tokio::test]
async fn a_changed_file_fails_if_range_and_restarts_cleanly() {
    let server = FileServer::start().await;
    let old = server.add_file("/changing.bin", 2 * MIB);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("changing.bin");
    std::fs::write(part_path(&dest), old.range(0, MIB)).unwrap();
    let new = server.replace_file("/changing.bin", 2 * MIB);
    assert_ne!(old.etag, new.etag);
    let req = FetchRequest {
        validator: Some(RemoteValidator {
            etag: Some(old.etag.clone()),
            last_modified: Some(old.last_modified.clone()),
            total_bytes: Some(old.size),
            linked_sha256: None,
        }),
        ..request(server.url("/changing.bin"), &dest)
    };
    let (result, rec) = run(&fetcher(), &req).await;
    let outcome = result.expect("download");
    assert_eq!(outcome.sha256, new.sha256);
    assert_eq!(outcome.validator.etag.as_deref(), Some(new.etag.as_str()));
    assert_file(&dest, &new);
    let gets = server.gets("/changing.bin");
    assert_eq!(gets.len(), 1);
    assert_eq!(gets[0].if_range.as_deref(), Some(old.etag.as_str()));
    assert_eq!(gets[0].status, 200, "If-Range mismatch → the whole file");
    assert_eq!(
        rec.last_resolved().unwrap().etag.as_deref(),
        Some(new.etag.as_str())
    );
}

#[tokio::test]
async fn a_complete_part_gets_416_and_is_verified_without_downloading() {
    let server = FileServer::start().await;
    let spec = server.add_file("/done.bin", MIB + 3);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("done.bin");
    std::fs::write(part_path(&dest), spec.bytes()).unwrap();
    let req = FetchRequest {
        checksum: sha256(&spec),
        validator: Some(RemoteValidator {
            etag: Some(spec.etag.clone()),
            total_bytes: Some(spec.size),
            ..Default::default()
        }),
        ..request(server.url("/done.bin"), &dest)
    };
    let outcome = run(&fetcher(), &req).await.0.expect("download");
    assert_eq!(outcome.verified_by, VerifiedBy::PresetChecksum);
    assert_file(&dest, &spec);
    let gets = server.gets("/done.bin");
    assert_eq!(gets.len(), 1);
    assert_eq!(gets[0].status, 416);
    assert_eq!(server.bytes_sent("/done.bin"), 0);
}

#[tokio::test]
async fn an_unsatisfiable_range_for_a_shrunk_file_restarts() {
    let server = FileServer::start().await;
    let old = server.add_file("/shrunk.bin", 2 * MIB);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("shrunk.bin");
    std::fs::write(part_path(&dest), old.range(0, 3 * MIB / 2)).unwrap();
    // Same validator (a server that keeps ETags), but the file is now smaller than the part;
    // HEAD is refused so the fetcher cannot know the new size before asking for the range.
    let new = server.replace_file("/shrunk.bin", MIB);
    let req = FetchRequest {
        validator: Some(RemoteValidator {
            etag: Some(new.etag.clone()),
            ..Default::default()
        }),
        ..request(server.url("/shrunk.bin"), &dest)
    };
    server.set_fault_once("/shrunk.bin", Fault::status(405));
    let outcome = run(&fetcher(), &req).await.0.expect("download");
    assert_eq!(outcome.bytes, MIB);
    assert_file(&dest, &new);
    let gets = server.gets("/shrunk.bin");
    assert_eq!(gets[0].status, 416, "{gets:?}");
    assert_eq!(gets.last().unwrap().status, 200);
}

#[tokio::test]
async fn a_truncated_body_is_resumed() {
    let server = FileServer::start().await;
    let spec = server.add_file("/short.bin", 2 * MIB);
    server.set_fault_once("/short.bin", Fault::TruncateAt(MIB + 17));
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("short.bin");
    let req = FetchRequest {
        checksum: sha256(&spec),
        ..request(server.url("/short.bin"), &dest)
    };
    let (result, rec) = run(&fetcher(), &req).await;
    result.expect("download");
    assert_file(&dest, &spec);
    let gets = server.gets("/short.bin");
    assert_eq!(gets.len(), 2);
    assert_eq!(gets[1].range_start(), Some(MIB + 17));
    assert_eq!(rec.retries().len(), 1);
}

#[tokio::test]
async fn server_errors_are_retried_honouring_retry_after() {
    let server = FileServer::start().await;
    let spec = server.add_file("/busy.bin", MIB);
    server.add_fault("/busy.bin", Fault::status(500), Times::Once);
    server.add_fault("/busy.bin", Fault::status_retry_after(503, 1), Times::Once);
    server.add_fault("/busy.bin", Fault::status_retry_after(429, 1), Times::Once);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("busy.bin");
    let (result, rec) = run(&fetcher(), &request(server.url("/busy.bin"), &dest)).await;
    result.expect("download after retries");
    assert_file(&dest, &spec);
    let retries = rec.retries();
    assert_eq!(retries.len(), 3, "{retries:?}");
    assert!(
        retries[0].1 <= tuning().backoff_cap,
        "plain backoff for the 500"
    );
    assert!(retries[0].2.contains("500"));
    assert_eq!(
        retries[1].1,
        Duration::from_secs(1),
        "Retry-After of the 503"
    );
    assert!(retries[1].2.contains("503"));
    assert_eq!(
        retries[2].1,
        Duration::from_secs(1),
        "Retry-After of the 429"
    );
    assert!(retries[2].2.contains("429"));
    assert_eq!(
        retries.iter().map(|r| r.0).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
}

#[tokio::test]
async fn too_many_server_errors_end_with_an_http_error() {
    let server = FileServer::start().await;
    server.add_file("/down.bin", 1000);
    server.set_fault("/down.bin", Fault::status(500));
    let dir = tempfile::tempdir().unwrap();
    let fetcher = Fetcher::with_tuning(
        Credentials::default(),
        FetchTuning {
            breaker_threshold: 100,
            ..tuning()
        },
    );
    let (result, rec) = run(
        &fetcher,
        &request(server.url("/down.bin"), &dir.path().join("d")),
    )
    .await;
    match result {
        Err(e @ FetchError::Http { status: 500, .. }) => assert!(e.is_transient()),
        other => panic!("expected HTTP 500, got {other:?}"),
    }
    assert_eq!(rec.retries().len() as u32, tuning().max_attempts - 1);
}

#[tokio::test]
async fn a_gated_repo_fails_at_once_with_the_licence_url() {
    let server = FileServer::start().await;
    let hf_path = "/acme/gated-model/resolve/main/model.safetensors";
    server.add_hf_file(hf_path, 1000);
    server.set_fault(hf_path, Fault::Gated);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("model.safetensors");

    let (result, rec) = run(&fetcher(), &request(server.url(hf_path), &dest)).await;
    let err = result.expect_err("gated");
    match &err {
        FetchError::Gated { repo } => assert_eq!(repo, "acme/gated-model"),
        other => panic!("expected Gated, got {other:?}"),
    }
    assert!(err
        .to_string()
        .contains("https://huggingface.co/acme/gated-model"));
    assert!(!err.is_transient());
    assert!(rec.retries().is_empty(), "no retries");
    assert_eq!(server.requests().len(), 1, "one HEAD, nothing more");
    assert!(!part_path(&dest).exists());

    // With a token that has not been granted access: 403 + GatedRepo, still Gated.
    server.clear_requests();
    let with_token = Fetcher::with_tuning(token_for(&[server.host()], "hf_x"), tuning());
    let (result, _) = run(&with_token, &request(server.url(hf_path), &dest)).await;
    assert!(
        matches!(result, Err(FetchError::Gated { .. })),
        "{result:?}"
    );
    assert_eq!(server.requests()[0].status, 403);
}

#[tokio::test]
async fn missing_files_are_gone() {
    let server = FileServer::start().await;
    server.add_file("/gone.bin", 10);
    server.set_fault("/gone.bin", Fault::NotFound { hf_code: None });
    let hf_path = "/acme/model/resolve/main/missing.bin";
    server.add_hf_file(hf_path, 10);
    server.set_fault(
        hf_path,
        Fault::NotFound {
            hf_code: Some("EntryNotFound".into()),
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let (result, rec) = run(
        &fetcher(),
        &request(server.url("/gone.bin"), &dir.path().join("a")),
    )
    .await;
    assert!(
        matches!(result, Err(FetchError::Gone { status: 404, .. })),
        "{result:?}"
    );
    assert!(rec.retries().is_empty());
    let (result, _) = run(
        &fetcher(),
        &request(server.url(hf_path), &dir.path().join("b")),
    )
    .await;
    match result {
        Err(e @ FetchError::Gone { status: 404, .. }) => assert!(!e.is_transient()),
        other => panic!("expected Gone, got {other:?}"),
    }
    // Nothing with a 404 at all: 404 for the unknown path (no route).
    let (result, _) = run(
        &fetcher(),
        &request(server.url("/nope"), &dir.path().join("c")),
    )
    .await;
    assert!(matches!(result, Err(FetchError::Gone { .. })), "{result:?}");
}

#[tokio::test]
async fn tokens_that_are_missing_or_refused_are_named() {
    let server = FileServer::start().await;
    let spec = server.add_file("/private.bin", 5000);
    server.set_fault("/private.bin", Fault::RequireToken("good-token".into()));
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("private.bin");
    let req = request(server.url("/private.bin"), &dest);

    let (result, rec) = run(&fetcher(), &req).await;
    match result {
        Err(FetchError::TokenRequired { host, status: 401 }) => assert_eq!(host, server.host()),
        other => panic!("expected TokenRequired, got {other:?}"),
    }
    assert!(rec.retries().is_empty());

    let fetcher = Fetcher::with_tuning(token_for(&[server.host()], "bad-token"), tuning());
    let (result, _) = run(&fetcher, &req).await;
    let err = result.expect_err("bad token");
    assert!(
        matches!(err, FetchError::BadToken { status: 401, .. }),
        "{err:?}"
    );
    assert!(
        !err.to_string().contains("bad-token"),
        "no token in messages"
    );
    assert!(
        !format!("{err:?}").contains("bad-token"),
        "no token in Debug"
    );

    // The settings change reaches the same fetcher.
    fetcher.set_credentials(token_for(&[server.host()], "good-token"));
    run(&fetcher, &req)
        .await
        .0
        .expect("download with the good token");
    assert_file(&dest, &spec);
}

#[tokio::test]
async fn a_checksum_mismatch_downloads_once_more_then_fails_and_cleans_up() {
    let server = FileServer::start().await;
    let spec = server.add_file("/wrong.bin", MIB);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("wrong.bin");
    let req = FetchRequest {
        checksum: Some(Checksum {
            algorithm: ChecksumAlgorithm::Sha256,
            value: "0".repeat(64),
        }),
        ..request(server.url("/wrong.bin"), &dest)
    };
    let (result, _) = run(&fetcher(), &req).await;
    match result {
        Err(FetchError::ChecksumMismatch {
            file,
            expected,
            actual,
        }) => {
            assert_eq!(file, "wrong.bin");
            assert_eq!(expected, "0".repeat(64));
            assert_eq!(actual, spec.sha256);
        }
        other => panic!("expected ChecksumMismatch, got {other:?}"),
    }
    let gets = server.gets("/wrong.bin");
    assert_eq!(gets.len(), 2, "downloaded twice");
    assert!(gets.iter().all(|g| g.range.is_none()), "both from zero");
    assert!(!dest.exists());
    assert!(!part_path(&dest).exists());
}

#[tokio::test]
async fn a_wrong_linked_etag_is_a_checksum_mismatch() {
    let server = FileServer::start().await;
    let hf_path = "/acme/m/resolve/main/x.bin";
    let spec = server.add_hf_file(hf_path, 100_000);
    // The CDN now serves other bytes than the ones HF's X-Linked-ETag describes.
    server.add_file(&spec.path, 100_000);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("x.bin");
    let (result, _) = run(&fetcher(), &request(server.url(hf_path), &dest)).await;
    match result {
        Err(FetchError::ChecksumMismatch { expected, .. }) => assert_eq!(expected, spec.sha256),
        other => panic!("expected ChecksumMismatch, got {other:?}"),
    }
    assert!(!dest.exists() && !part_path(&dest).exists());
}

#[tokio::test]
async fn stop_keeps_the_part_and_a_new_fetch_resumes_it() {
    let server = FileServer::start().await;
    let spec = server.add_file("/slow.bin", 2 * MIB);
    server.set_fault(
        "/slow.bin",
        Fault::Trickle {
            chunk: 32 << 10,
            interval: Duration::from_millis(10),
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("slow.bin");
    let req = FetchRequest {
        checksum: sha256(&spec),
        ..request(server.url("/slow.bin"), &dest)
    };
    let rec = Arc::new(Recorder::default());
    let stop = CancellationToken::new();
    let task = {
        let (fetcher, req, rec, stop) = (fetcher(), req.clone(), rec.clone(), stop.clone());
        tokio::spawn(async move { fetcher.fetch(&req, rec, stop).await })
    };
    rec.wait_progress(300 << 10).await;
    stop.cancel();
    let result = task.await.unwrap();
    assert!(matches!(result, Err(FetchError::Stopped)), "{result:?}");
    let kept = std::fs::metadata(part_path(&dest))
        .expect("part kept")
        .len();
    assert!(
        kept >= 300 << 10 && kept < spec.size,
        "part of {kept} bytes"
    );
    assert_eq!(
        std::fs::read(part_path(&dest)).unwrap(),
        spec.range(0, kept),
        "the part holds the first bytes"
    );
    assert!(!dest.exists());

    // A new fetcher (a restart), with the validator the manager persisted.
    server.clear_faults("/slow.bin");
    server.clear_requests();
    let req = FetchRequest {
        validator: rec.last_resolved(),
        ..req
    };
    let outcome = run(&fetcher(), &req).await.0.expect("resume");
    assert_eq!(outcome.verified_by, VerifiedBy::PresetChecksum);
    assert_file(&dest, &spec);
    let gets = server.gets("/slow.bin");
    assert_eq!(gets.len(), 1);
    assert_eq!(gets[0].range_start(), Some(kept));
    assert_eq!(gets[0].if_range.as_deref(), Some(spec.etag.as_str()));
}

fn segmented(url: String, dest: &Path) -> FetchRequest {
    FetchRequest {
        connections: 4,
        segment_threshold: MIB,
        ..FetchRequest::new(url, dest)
    }
}

#[tokio::test]
async fn a_large_file_downloads_over_four_connections() {
    let server = FileServer::start().await;
    let spec = server.add_file("/big.bin", 6 * MIB + 11);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("big.bin");
    let req = FetchRequest {
        checksum: sha256(&spec),
        ..segmented(server.url("/big.bin"), &dest)
    };
    let (result, rec) = run(&fetcher(), &req).await;
    let outcome = result.expect("download");
    assert_eq!(outcome.verified_by, VerifiedBy::PresetChecksum);
    assert_eq!(outcome.sha256, spec.sha256);
    assert_file(&dest, &spec);
    let ranged: Vec<_> = server
        .gets("/big.bin")
        .into_iter()
        .filter(|g| g.status == 206 && g.range.as_deref() != Some("bytes=0-0"))
        .collect();
    assert!(ranged.len() >= 4, "{ranged:?}");
    let starts: std::collections::BTreeSet<u64> =
        ranged.iter().filter_map(|g| g.range_start()).collect();
    assert!(starts.len() >= 4, "four segments: {starts:?}");
    // Each byte is sent about once (an idle connection may take over half a segment, and the
    // connection it was taken from stops reading a little late).
    assert!(server.bytes_sent("/big.bin") < 2 * spec.size);
    assert_eq!(rec.progress.load(Ordering::SeqCst), spec.size);
}

#[tokio::test]
async fn a_segmented_download_survives_drops() {
    let server = FileServer::start().await;
    let spec = server.add_file("/flaky.bin", 4 * MIB);
    server.add_fault("/flaky.bin", Fault::DropAt(MIB / 2), Times::Once);
    server.add_fault("/flaky.bin", Fault::DropAt(3 * MIB + 5), Times::Once);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("flaky.bin");
    let req = FetchRequest {
        checksum: sha256(&spec),
        ..segmented(server.url("/flaky.bin"), &dest)
    };
    let (result, rec) = run(&fetcher(), &req).await;
    result.expect("download");
    assert_file(&dest, &spec);
    assert_eq!(rec.retries().len(), 2, "{:?}", rec.retries());
}

#[tokio::test]
async fn an_idle_connection_takes_over_half_of_a_slow_segment() {
    let server = FileServer::start().await;
    let spec = server.add_file("/split.bin", 4 * MIB);
    // The last segment's connection stalls for a while (below the stall timeout).
    server.set_fault_once(
        "/split.bin",
        Fault::StallAt {
            offset: 3 * MIB + 1000,
            pause: Duration::from_millis(1500),
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("split.bin");
    let req = FetchRequest {
        checksum: sha256(&spec),
        ..segmented(server.url("/split.bin"), &dest)
    };
    let (result, rec) = run(&fetcher(), &req).await;
    result.expect("download");
    assert_file(&dest, &spec);
    assert!(rec.retries().is_empty());
    let starts: std::collections::BTreeSet<u64> = server
        .gets("/split.bin")
        .iter()
        .filter_map(|g| g.range_start())
        .collect();
    assert!(
        starts.iter().any(|&s| s > 3 * MIB + 1000),
        "a range inside the stalled segment: {starts:?}"
    );
}

#[tokio::test]
async fn a_stopped_segmented_download_resumes_from_its_sidecar() {
    let server = FileServer::start().await;
    let spec = server.add_file("/seg.bin", 8 * MIB);
    server.set_fault(
        "/seg.bin",
        Fault::Trickle {
            chunk: 32 << 10,
            interval: Duration::from_millis(10),
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("seg.bin");
    let req = FetchRequest {
        checksum: sha256(&spec),
        ..segmented(server.url("/seg.bin"), &dest)
    };
    let rec = Arc::new(Recorder::default());
    let stop = CancellationToken::new();
    let task = {
        let (fetcher, req, rec, stop) = (fetcher(), req.clone(), rec.clone(), stop.clone());
        tokio::spawn(async move { fetcher.fetch(&req, rec, stop).await })
    };
    rec.wait_progress(2 * MIB).await;
    stop.cancel();
    let result = task.await.unwrap();
    assert!(matches!(result, Err(FetchError::Stopped)), "{result:?}");
    assert_eq!(
        std::fs::metadata(part_path(&dest)).unwrap().len(),
        spec.size,
        "the part is preallocated"
    );
    let sidecar = std::fs::read_to_string(segments_path(&dest)).expect("sidecar kept");
    let done_at_stop = rec.progress.load(Ordering::SeqCst);
    assert!(done_at_stop >= 2 * MIB);

    server.clear_faults("/seg.bin");
    server.clear_requests();
    server.reset_bytes_sent("/seg.bin");
    // No splitting on the resume, so every byte sent is a byte that was missing.
    let no_split = Fetcher::with_tuning(
        Credentials::default(),
        FetchTuning {
            min_split: u64::MAX / 4,
            ..tuning()
        },
    );
    let (result, rec2) = run(
        &no_split,
        &FetchRequest {
            validator: rec.last_resolved(),
            ..req
        },
    )
    .await;
    result.unwrap_or_else(|e| panic!("resume failed: {e}; sidecar was {sidecar}"));
    assert_file(&dest, &spec);
    let sent = server.bytes_sent("/seg.bin");
    assert!(
        sent <= spec.size - done_at_stop + 1,
        "re-sent {sent} bytes after {done_at_stop} were done"
    );
    assert!(
        server
            .gets("/seg.bin")
            .iter()
            .all(|g| g.range_start() != Some(0) || g.range.as_deref() == Some("bytes=0-0")),
        "segment 0 resumed where it was: {:?}",
        server.gets("/seg.bin")
    );
    assert_eq!(rec2.progress.load(Ordering::SeqCst), spec.size);
}

#[tokio::test]
async fn a_corrupt_sidecar_means_starting_over() {
    let server = FileServer::start().await;
    let spec = server.add_file("/side.bin", 4 * MIB);
    server.set_fault(
        "/side.bin",
        Fault::Trickle {
            chunk: 32 << 10,
            interval: Duration::from_millis(10),
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("side.bin");
    let req = segmented(server.url("/side.bin"), &dest);
    let rec = Arc::new(Recorder::default());
    let stop = CancellationToken::new();
    let task = {
        let (fetcher, req, rec, stop) = (fetcher(), req.clone(), rec.clone(), stop.clone());
        tokio::spawn(async move { fetcher.fetch(&req, rec, stop).await })
    };
    rec.wait_progress(MIB).await;
    stop.cancel();
    assert!(matches!(task.await.unwrap(), Err(FetchError::Stopped)));
    std::fs::write(segments_path(&dest), b"{\"version\":1,\"tot").unwrap();

    server.clear_faults("/side.bin");
    server.reset_bytes_sent("/side.bin");
    let req = FetchRequest {
        validator: rec.last_resolved(),
        ..req
    };
    run(&fetcher(), &req).await.0.expect("download");
    assert_file(&dest, &spec);
    assert!(
        server.bytes_sent("/side.bin") >= spec.size,
        "everything fetched again"
    );
}

#[tokio::test]
async fn a_server_without_ranges_gets_one_connection() {
    let server = FileServer::start().await;
    let spec = server.add_file("/noranges.bin", 3 * MIB);
    server.set_fault("/noranges.bin", Fault::NoRanges);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("noranges.bin");
    let outcome = run(&fetcher(), &segmented(server.url("/noranges.bin"), &dest))
        .await
        .0
        .expect("download");
    assert_eq!(outcome.verified_by, VerifiedBy::SizeOnly);
    assert_file(&dest, &spec);
    assert!(server.gets("/noranges.bin").iter().all(|g| g.status == 200));
}

#[tokio::test]
async fn a_segmented_hf_download_keeps_the_token_off_the_cdn() {
    let server = FileServer::start().await;
    let hf_path = "/acme/big/resolve/main/big.safetensors";
    let spec = server.add_hf_file(hf_path, 5 * MIB);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("big.safetensors");
    let fetcher = Fetcher::with_tuning(token_for(&[server.host()], "hf_tok"), tuning());
    let outcome = run(&fetcher, &segmented(server.url(hf_path), &dest))
        .await
        .0
        .expect("download");
    assert_eq!(outcome.verified_by, VerifiedBy::LinkedEtag);
    assert_file(&dest, &spec);
    let cdn = server.requests_for(&spec.path);
    assert!(cdn.len() >= 4, "{cdn:?}");
    assert!(cdn.iter().all(|r| !r.has_auth()));
    assert!(server
        .requests_for(hf_path)
        .iter()
        .all(|r| r.authorization.as_deref() == Some("Bearer hf_tok")));
}

#[tokio::test]
async fn the_circuit_breaker_opens_and_fails_fast() {
    let server = FileServer::start().await;
    server.add_file("/a.bin", 1000);
    let spec_b = server.add_file("/b.bin", 1000);
    server.set_fault("/a.bin", Fault::status(503));
    let fetcher = Fetcher::with_tuning(
        Credentials::default(),
        FetchTuning {
            breaker_threshold: 3,
            breaker_cooldown: Duration::from_millis(300),
            max_attempts: 10,
            ..tuning()
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let (result, rec) = run(
        &fetcher,
        &request(server.url("/a.bin"), &dir.path().join("a")),
    )
    .await;
    match &result {
        Err(e @ FetchError::HostUnavailable { host, retry_in }) => {
            assert_eq!(*host, server.host());
            assert!(*retry_in <= Duration::from_millis(300));
            assert!(e.is_transient());
        }
        other => panic!("expected HostUnavailable, got {other:?}"),
    }
    assert_eq!(
        server.requests().len(),
        3,
        "three failures, then the circuit opened"
    );
    assert_eq!(rec.retries().len(), 3);

    // Another file on the same host fails fast, without a request.
    let dest_b = dir.path().join("b");
    let (result, _) = run(&fetcher, &request(server.url("/b.bin"), &dest_b)).await;
    assert!(
        matches!(result, Err(FetchError::HostUnavailable { .. })),
        "{result:?}"
    );
    assert_eq!(server.requests().len(), 3);

    // Another host is unaffected.
    run(
        &fetcher,
        &request(server.url_on_other_host("/b.bin"), &dest_b),
    )
    .await
    .0
    .expect("other host");

    // After the cool-down one trial goes through and closes the circuit.
    tokio::time::sleep(Duration::from_millis(350)).await;
    std::fs::remove_file(&dest_b).unwrap();
    run(&fetcher, &request(server.url("/b.bin"), &dest_b))
        .await
        .0
        .expect("after the cool-down");
    assert_file(&dest_b, &spec_b);
}

#[tokio::test]
async fn a_stalled_connection_is_dropped_and_resumed() {
    let server = FileServer::start().await;
    let spec = server.add_file("/stall.bin", 2 * MIB);
    server.set_fault_once(
        "/stall.bin",
        Fault::StallAt {
            offset: MIB,
            pause: Duration::from_secs(30),
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("stall.bin");
    let fetcher = Fetcher::with_tuning(
        Credentials::default(),
        FetchTuning {
            stall_timeout: Duration::from_millis(300),
            ..tuning()
        },
    );
    let (result, rec) = run(&fetcher, &request(server.url("/stall.bin"), &dest)).await;
    result.expect("download");
    assert_file(&dest, &spec);
    let retries = rec.retries();
    assert_eq!(retries.len(), 1, "{retries:?}");
    assert!(retries[0].2.contains("no data"), "{retries:?}");
    let gets = server.gets("/stall.bin");
    assert_eq!(gets.len(), 2);
    assert_eq!(gets[1].range_start(), Some(MIB));
}

#[tokio::test]
async fn an_expired_signed_cdn_url_is_resolved_again() {
    let server = FileServer::start().await;
    let hf_path = "/acme/signed/resolve/main/w.bin";
    let spec = server.add_hf_file(hf_path, 2 * MIB);
    server.add_fault(
        &spec.path,
        Fault::ExpireSignedUrl { requests: 1 },
        Times::Always,
    );
    server.add_fault(&spec.path, Fault::DropAt(MIB), Times::Once);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("w.bin");
    let fetcher = Fetcher::with_tuning(token_for(&[server.host()], "hf_tok"), tuning());
    let (result, rec) = run(&fetcher, &request(server.url(hf_path), &dest)).await;
    let outcome = result.expect("download");
    assert_eq!(outcome.verified_by, VerifiedBy::LinkedEtag);
    assert_file(&dest, &spec);
    let cdn = server.gets(&spec.path);
    assert!(
        cdn.iter().any(|r| r.status == 403),
        "the old signature expired: {cdn:?}"
    );
    let last = cdn.last().unwrap();
    assert_eq!(last.status, 206);
    assert_eq!(last.range_start(), Some(MIB));
    assert!(cdn.iter().all(|r| !r.has_auth()));
    assert_eq!(
        server.gets(hf_path).len(),
        2,
        "resolved again from the HF URL"
    );
    assert_eq!(
        rec.retries().len(),
        1,
        "only the drop waited: {:?}",
        rec.retries()
    );
}

#[tokio::test]
async fn a_refusing_cdn_on_the_first_try_is_forbidden() {
    let server = FileServer::start().await;
    let hf_path = "/acme/x/resolve/main/f.bin";
    let spec = server.add_hf_file(hf_path, 1000);
    server.set_fault(&spec.path, Fault::status(403));
    let dir = tempfile::tempdir().unwrap();
    let (result, _) = run(
        &fetcher(),
        &request(server.url(hf_path), &dir.path().join("f")),
    )
    .await;
    match result {
        Err(FetchError::Forbidden { host }) => assert_eq!(host, server.other_host()),
        other => panic!("expected Forbidden, got {other:?}"),
    }
}

#[tokio::test]
async fn redirects_are_followed_by_hand_and_bounded() {
    let server = FileServer::start().await;
    let spec = server.add_file("/files/real.bin", 5000);
    server.add_redirect("/short/real", "../files/real.bin");
    server.add_redirect("/loop", "/loop");
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("real.bin");
    run(&fetcher(), &request(server.url("/short/real"), &dest))
        .await
        .0
        .expect("relative redirect");
    assert_file(&dest, &spec);

    let (result, _) = run(
        &fetcher(),
        &request(server.url("/loop"), &dir.path().join("l")),
    )
    .await;
    assert!(matches!(result, Err(FetchError::Invalid(_))), "{result:?}");
    assert_eq!(
        server.requests_for("/loop").len(),
        11,
        "the first request and 10 hops"
    );
}

#[tokio::test]
async fn a_full_disk_is_no_space_and_keeps_the_part() {
    if std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .is_err()
    {
        eprintln!("no writable /dev/full here; skipping");
        return;
    }
    let server = FileServer::start().await;
    server.add_file("/full.bin", MIB);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("full.bin");
    // The part is a link to /dev/full: every write fails with ENOSPC.
    std::os::unix::fs::symlink("/dev/full", part_path(&dest)).unwrap();
    let (result, rec) = run(&fetcher(), &request(server.url("/full.bin"), &dest)).await;
    match result {
        Err(e @ FetchError::NoSpace { .. }) => {
            assert!(!e.is_transient());
            assert!(e.to_string().contains("full.bin"));
        }
        other => panic!("expected NoSpace, got {other:?}"),
    }
    assert!(rec.retries().is_empty());
    assert!(
        std::fs::symlink_metadata(part_path(&dest)).is_ok(),
        "part kept"
    );
}

#[tokio::test]
async fn invalid_requests_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (result, _) = run(
        &fetcher(),
        &request(
            "ftp://example.com/x?token=secret".into(),
            &dir.path().join("x"),
        ),
    )
    .await;
    match result {
        Err(e @ FetchError::Invalid(_)) => assert!(!e.to_string().contains("secret")),
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn the_fetch_future_can_be_spawned() {
    fn assert_send<T: Send>(_: &T) {}
    let fetcher = fetcher();
    let req = FetchRequest::new("http://127.0.0.1:1/x", "/tmp/x");
    let fut = fetcher.fetch(
        &req,
        Arc::new(Recorder::default()),
        CancellationToken::new(),
    );
    assert_send(&fut);
}

#[tokio::test]
async fn a_sequential_part_is_continued_even_when_segments_are_allowed() {
    let server = FileServer::start().await;
    let spec = server.add_file("/cont.bin", 4 * MIB);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("cont.bin");
    std::fs::write(part_path(&dest), spec.range(0, MIB + 99)).unwrap();
    let req = FetchRequest {
        validator: Some(RemoteValidator {
            etag: Some(spec.etag.clone()),
            ..Default::default()
        }),
        ..segmented(server.url("/cont.bin"), &dest)
    };
    let outcome = run(&fetcher(), &req).await.0.expect("download");
    assert_eq!(outcome.verified_by, VerifiedBy::SizeOnly);
    assert_file(&dest, &spec);
    let gets = server.gets("/cont.bin");
    assert_eq!(gets.len(), 1, "{gets:?}");
    assert_eq!(gets[0].range_start(), Some(MIB + 99));
}

#[tokio::test]
async fn an_adopted_complete_file_is_only_checked() {
    let server = FileServer::start().await;
    let spec = server.add_file("/adopt.bin", 3 * MIB);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("adopt.bin");
    // What the manager does with a file of the right size already at the destination.
    std::fs::write(part_path(&dest), spec.bytes()).unwrap();
    let req = segmented(server.url("/adopt.bin"), &dest);
    let outcome = run(&fetcher(), &req).await.0.expect("download");
    assert_eq!(outcome.verified_by, VerifiedBy::SizeOnly);
    assert_file(&dest, &spec);
    assert_eq!(server.bytes_sent("/adopt.bin"), 0);
    assert_eq!(server.gets("/adopt.bin")[0].status, 416);
}

#[tokio::test]
async fn a_part_that_nothing_ties_to_the_file_starts_over() {
    let server = FileServer::start().await;
    let spec = server.add_file("/untied.bin", 2 * MIB);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("untied.bin");
    // No validator, no checksum: these bytes could be from any version of the file.
    std::fs::write(part_path(&dest), vec![7u8; MIB as usize]).unwrap();
    let outcome = run(&fetcher(), &request(server.url("/untied.bin"), &dest))
        .await
        .0
        .expect("download");
    assert_eq!(outcome.verified_by, VerifiedBy::SizeOnly);
    assert_file(&dest, &spec);
    let gets = server.gets("/untied.bin");
    assert_eq!(gets.len(), 1);
    assert_eq!(gets[0].range, None);
}

#[tokio::test]
async fn a_server_without_ranges_that_keeps_breaking_gives_up() {
    let server = FileServer::start().await;
    server.add_file("/nr.bin", MIB);
    server.add_fault("/nr.bin", Fault::NoRanges, Times::Always);
    server.add_fault("/nr.bin", Fault::DropAt(MIB / 2), Times::Always);
    let dir = tempfile::tempdir().unwrap();
    let (result, rec) = run(
        &fetcher(),
        &request(server.url("/nr.bin"), &dir.path().join("nr")),
    )
    .await;
    assert!(
        matches!(result, Err(FetchError::Network { .. })),
        "{result:?}"
    );
    assert_eq!(rec.retries().len() as u32, tuning().max_attempts - 1);
    assert!(server.gets("/nr.bin").iter().all(|g| g.status == 200));
}

#[tokio::test]
async fn a_renamed_hf_repo_redirect_keeps_the_linked_etag() {
    let server = FileServer::start().await;
    let hf_path = "/acme/new-name/resolve/main/v.bin";
    let spec = server.add_hf_file(hf_path, 300_000);
    // HF answers a renamed repo's URL with a relative redirect on its own host.
    server.add_redirect(
        "/acme/old-name/resolve/main/v.bin",
        "/acme/new-name/resolve/main/v.bin",
    );
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("v.bin");
    let fetcher = Fetcher::with_tuning(token_for(&[server.host()], "hf_tok"), tuning());
    let outcome = run(
        &fetcher,
        &request(server.url("/acme/old-name/resolve/main/v.bin"), &dest),
    )
    .await
    .0
    .expect("download");
    assert_eq!(outcome.verified_by, VerifiedBy::LinkedEtag);
    assert_file(&dest, &spec);
    let heads: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.method == "HEAD")
        .collect();
    assert_eq!(
        heads.len(),
        2,
        "HEAD follows the same-host hop only: {heads:?}"
    );
    assert!(heads
        .iter()
        .all(|r| r.host == server.host() && r.has_auth()));
}
