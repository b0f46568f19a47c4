//! Where a file comes from when its own URL fails: a preset's `mirrors:` after a not-found or
//! a host whose circuit opened (keeping the bytes already on disk), `HF_ENDPOINT` before
//! huggingface.co, and a fault campaign of 200 injected faults across preset installs.

use std::time::Duration;

use crate::common::fileserver::{Fault, FileServer, Times};
use crate::common::test_config;
use crate::downloads::{file, installed, sha256_of, start, wait_for, write_preset, TestFile};
use engine::config::Config;
use engine::download::fetch::FetchTuning;
use engine::model::{FileState, InstallState, SettingsPatch};

/// Delays of milliseconds instead of seconds, so a test sees many retries quickly.
fn quick_tuning() -> FetchTuning {
    FetchTuning {
        backoff_base: Duration::from_millis(5),
        backoff_cap: Duration::from_millis(40),
        stall_timeout: Duration::from_millis(400),
        breaker_cooldown: Duration::from_millis(300),
        ..FetchTuning::default()
    }
}

/// The file's own host takes it down half-way (404 from then on): the download goes on from
/// the mirror, asking only for the bytes after those already on disk, and the result is the
/// file (its SHA-256 checked). The switch is recorded, so a restart would go on there too.
#[tokio::test]
async fn a_file_taken_down_mid_download_comes_from_its_mirror_keeping_the_bytes_on_disk() {
    let server = FileServer::start().await;
    let size = 600_000;
    let primary = server.add_file_seeded("/gone/model.safetensors", size, 41);
    let mirror = server.add_file_seeded("/mirror/model.safetensors", size, 41);
    assert_eq!(primary.sha256, mirror.sha256, "the same file on both");
    let half = size / 2;
    // HEAD and the first GET are answered (the GET breaks off half-way), then 404.
    server.add_fault(&primary.path, Fault::GoneAfter(2), Times::Always);
    server.add_fault(&primary.path, Fault::DropAt(half), Times::Once);
    let dir = tempfile::tempdir().unwrap();
    let mut spec = file(
        &server,
        &primary,
        "checkpoints/mirrored.safetensors",
        "600KB",
    );
    spec.mirrors = vec![server.url(&mirror.path)];
    write_preset(dir.path(), "mirrored", &[spec]);
    let engine = start(test_config(dir.path())).await;
    engine.downloads().install_preset("mirrored").await.unwrap();
    wait_for(&engine, "mirrored", Duration::from_secs(20), installed).await;

    let dest = dir.path().join("models/checkpoints/mirrored.safetensors");
    assert_eq!(sha256_of(&dest), primary.sha256);
    assert_eq!(server.bytes_sent(&primary.path), half);
    assert_eq!(
        server.bytes_sent(&mirror.path),
        size - half,
        "the mirror sent only the second half"
    );
    let to_mirror = server.gets(&mirror.path);
    assert_eq!(
        to_mirror[0].range.as_deref(),
        Some(format!("bytes={half}-").as_str())
    );
    assert!(
        to_mirror.iter().all(|r| r.if_range.is_none()),
        "the old host's etag means nothing to the mirror: {to_mirror:?}"
    );
    let admin = engine.auth().open_caller();
    let said = engine.activity().recent(&admin, 20).await.unwrap();
    assert!(
        said.iter().any(
            |a| a.message.contains("trying") && a.message.contains("/mirror/model.safetensors")
        ),
        "{said:?}"
    );
}

/// Quick retries, and a host's circuit that opens after three failures and stays open.
fn circuit_after_three(workspace: &std::path::Path) -> Config {
    Config {
        fetch_tuning: FetchTuning {
            breaker_threshold: 3,
            breaker_cooldown: Duration::from_secs(600),
            ..quick_tuning()
        },
        ..test_config(workspace)
    }
}

/// A host that keeps failing opens its circuit; the file then comes from its mirror on
/// another host instead of waiting for the circuit to close.
#[tokio::test]
async fn a_host_whose_circuit_opened_gives_way_to_the_mirror() {
    let server = FileServer::start().await;
    let primary = server.add_file_seeded("/down/model.safetensors", 200_000, 7);
    let mirror = server.add_file_seeded("/up/model.safetensors", 200_000, 7);
    server.set_fault(&primary.path, Fault::status(503));
    let dir = tempfile::tempdir().unwrap();
    let mut spec = TestFile {
        path: "loras/breaker.safetensors",
        // The primary on `localhost`, the mirror on `127.0.0.1`: two hosts, two circuits.
        url: server.url_on_other_host(&primary.path),
        size: "200KB",
        sha256: Some(Box::leak(primary.sha256.clone().into_boxed_str())),
        mirrors: Vec::new(),
    };
    spec.mirrors = vec![server.url(&mirror.path)];
    write_preset(dir.path(), "breaker", &[spec]);
    let engine = start(circuit_after_three(dir.path())).await;
    engine.downloads().install_preset("breaker").await.unwrap();
    wait_for(&engine, "breaker", Duration::from_secs(20), installed).await;
    assert_eq!(
        sha256_of(&dir.path().join("models/loras/breaker.safetensors")),
        primary.sha256
    );
    let asked = server.requests_for(&primary.path);
    assert!(
        (3..=4).contains(&asked.len()),
        "the failing host was left alone once its circuit opened: {asked:?}"
    );
    assert_eq!(server.bytes_sent(&mirror.path), 200_000);
}

/// A file with no other source whose host keeps failing waits, queued, and says when it tries
/// again (the time the queue will take it up).
#[tokio::test]
async fn a_file_whose_host_keeps_failing_says_when_it_tries_again() {
    let server = FileServer::start().await;
    let primary = server.add_file_seeded("/down/alone.safetensors", 50_000, 9);
    server.set_fault(&primary.path, Fault::status(503));
    let dir = tempfile::tempdir().unwrap();
    write_preset(
        dir.path(),
        "alone",
        &[TestFile {
            path: "loras/alone.safetensors",
            url: server.url(&primary.path),
            size: "50KB",
            sha256: Some(Box::leak(primary.sha256.clone().into_boxed_str())),
            mirrors: Vec::new(),
        }],
    );
    let engine = start(circuit_after_three(dir.path())).await;
    engine.downloads().install_preset("alone").await.unwrap();
    let waiting = wait_for(&engine, "alone", Duration::from_secs(20), |v| {
        v.files[0].state == FileState::Queued && v.files[0].error.is_some()
    })
    .await;
    let said = waiting.files[0].error.clone().unwrap();
    let at = said
        .split("; tries again at ")
        .nth(1)
        .unwrap_or_else(|| panic!("no time of the next try: {said}"));
    assert!(
        at.ends_with(" UTC") && at.len() == "2026-12-07 14:55:00 UTC".len(),
        "{said}"
    );
    assert!(
        said.contains("HTTP 503") || said.contains("not answering"),
        "{said}"
    );
    assert_ne!(waiting.state, InstallState::Failed, "it waits, not fails");
}

/// With `HF_ENDPOINT`, a huggingface.co link is fetched from the endpoint, which is treated
/// as the Hub (the Hugging Face token goes to it); the endpoint's CDN still gets no token.
#[tokio::test]
async fn hf_endpoint_serves_hugging_face_links_and_is_given_the_hub_token() {
    const TOKEN: &str = "hf_endpointendpointendpointendpoint";
    let server = FileServer::start().await;
    let spec = server.add_hf_file("/org/repo/resolve/main/model.safetensors", 150_000);
    let dir = tempfile::tempdir().unwrap();
    write_preset(
        dir.path(),
        "endpoint",
        &[TestFile {
            path: "vae/endpoint.safetensors",
            url: "https://huggingface.co/org/repo/resolve/main/model.safetensors".into(),
            size: "150KB",
            sha256: None,
            mirrors: Vec::new(),
        }],
    );
    let config = Config {
        hf_endpoint: Some(server.url("")),
        ..test_config(dir.path())
    };
    let engine = start(config).await;
    engine
        .settings()
        .update(SettingsPatch {
            hf_token: Some(TOKEN.to_string()),
            ..Default::default()
        })
        .await
        .unwrap();
    engine.downloads().install_preset("endpoint").await.unwrap();
    wait_for(&engine, "endpoint", Duration::from_secs(20), installed).await;
    assert_eq!(
        sha256_of(&dir.path().join("models/vae/endpoint.safetensors")),
        spec.sha256
    );
    let (to_endpoint, to_cdn) = server.requests_by_host();
    assert!(
        !to_endpoint.is_empty() && !to_cdn.is_empty(),
        "{to_endpoint:?} {to_cdn:?}"
    );
    assert!(
        to_endpoint
            .iter()
            .all(|r| r.authorization.as_deref() == Some(&format!("Bearer {TOKEN}")[..])),
        "{to_endpoint:?}"
    );
    assert!(to_cdn.iter().all(|r| !r.has_auth()), "{to_cdn:?}");
}

/// A deterministic pseudo-random sequence (xorshift), so a failing campaign can be replayed.
struct Dice(u64);

impl Dice {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// 200 faults injected across 20 preset installs — connection resets at random offsets,
/// 5xx answers, 429 with `Retry-After`, stalls, truncated bodies, and files taken down with a
/// working mirror — through the local fault server. The test prints what it saw and demands
/// that at least 95 % recover with no person, no installed file is corrupt, and under 1 % of
/// the bytes are downloaded twice.
#[tokio::test(flavor = "multi_thread")]
async fn a_campaign_of_200_faults_recovers_with_no_person() {
    const PRESETS: u64 = 20;
    const FAULTS_PER_PRESET: u64 = 10;
    let server = FileServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut dice = Dice(0x5eed_c0ff_ee15_f00d);
    let mut files = Vec::new();
    let mut kinds: std::collections::BTreeMap<&str, u32> = Default::default();
    for i in 0..PRESETS {
        let size = 1_000_000 + dice.below(1_000_000);
        let primary = server.add_file_seeded(&format!("/campaign/{i}.safetensors"), size, 100 + i);
        let mut mirrors = Vec::new();
        let mut faults = 0;
        if i % 5 == 0 {
            // Taken down after HEAD and a GET that breaks off: the rest from the mirror.
            let mirror =
                server.add_file_seeded(&format!("/campaign-mirror/{i}.safetensors"), size, 100 + i);
            mirrors.push(server.url(&mirror.path));
            server.add_fault(&primary.path, Fault::GoneAfter(2), Times::Always);
            *kinds.entry("404 with a working mirror").or_default() += 1;
            faults += 1;
        }
        // Answer-level faults come first (they apply to the first requests, HEAD included),
        // at most three in a row so a file always gets somewhere between them.
        let answers = dice.below(4);
        for _ in 0..answers {
            let (kind, fault) = match dice.below(4) {
                0 => ("429 with Retry-After", Fault::status_retry_after(429, 1)),
                1 => ("HTTP 500", Fault::status(500)),
                2 => ("HTTP 502", Fault::status(502)),
                _ => ("HTTP 503", Fault::status(503)),
            };
            server.add_fault(&primary.path, fault, Times::Once);
            *kinds.entry(kind).or_default() += 1;
            faults += 1;
        }
        // Body faults at distinct random offsets: each breaks one response after some bytes.
        let mut offsets: Vec<u64> = (faults..FAULTS_PER_PRESET)
            .map(|_| 1 + dice.below(size - 1))
            .collect();
        offsets.sort_unstable();
        offsets.dedup();
        while (offsets.len() as u64) < FAULTS_PER_PRESET - faults {
            let extra = 1 + dice.below(size - 1);
            if !offsets.contains(&extra) {
                offsets.push(extra);
                offsets.sort_unstable();
            }
        }
        for offset in offsets {
            let (kind, fault) = match dice.below(3) {
                0 => ("reset at a random offset", Fault::DropAt(offset)),
                1 => ("truncated body", Fault::TruncateAt(offset)),
                _ => (
                    "stall",
                    Fault::StallAt {
                        offset,
                        pause: Duration::from_millis(1_500),
                    },
                ),
            };
            server.add_fault(&primary.path, fault, Times::Once);
            *kinds.entry(kind).or_default() += 1;
        }
        let id = format!("campaign-{i}");
        let path: &'static str = Box::leak(format!("checkpoints/campaign-{i}.safetensors").into());
        let size_text: &'static str = Box::leak(size.to_string().into());
        let mut spec = file(&server, &primary, path, size_text);
        spec.mirrors = mirrors;
        write_preset(dir.path(), &id, &[spec]);
        files.push((id, path, primary));
    }
    let injected: u32 = kinds.values().sum();
    assert_eq!(u64::from(injected), PRESETS * FAULTS_PER_PRESET);

    let config = Config {
        fetch_tuning: quick_tuning(),
        ..test_config(dir.path())
    };
    // The whole engine, its recovery listener included: nothing may reach the recovery list.
    let (engine, _) = engine::Engine::start(config).await.unwrap();
    engine.spawn_background_jobs();
    for (id, _, _) in &files {
        engine.downloads().install_preset(id).await.unwrap();
    }
    let mut recovered_faults = 0;
    let (mut corrupt, mut total_bytes, mut sent_bytes) = (0, 0u64, 0u64);
    for (i, (id, path, spec)) in files.iter().enumerate() {
        let view = wait_for(&engine, id, Duration::from_secs(120), |v| {
            installed(v) || v.state == engine::model::InstallState::Failed
        })
        .await;
        if installed(&view) {
            recovered_faults += FAULTS_PER_PRESET;
            if sha256_of(&dir.path().join("models").join(path)) != spec.sha256 {
                corrupt += 1;
            }
        }
        total_bytes += spec.size;
        sent_bytes += server.bytes_sent(&spec.path)
            + server.bytes_sent(&format!("/campaign-mirror/{i}.safetensors"));
    }
    let redownloaded = sent_bytes.saturating_sub(total_bytes);
    let recovered_share = recovered_faults as f64 / f64::from(injected);
    let redownloaded_share = redownloaded as f64 / total_bytes as f64;
    println!(
        "fault campaign: {injected} faults ({kinds:?}) across {PRESETS} preset installs; \
         {recovered_faults} recovered with no person ({:.1} %), {corrupt} corrupt files, \
         {redownloaded} of {total_bytes} bytes downloaded twice ({:.3} %)",
        recovered_share * 100.0,
        redownloaded_share * 100.0
    );
    assert!(recovered_share >= 0.95, "{recovered_share}");
    assert_eq!(corrupt, 0);
    assert!(redownloaded_share < 0.01, "{redownloaded_share}");
    let admin = engine.auth().open_caller();
    let open = engine.recovery().list(&admin).await.unwrap().open;
    assert!(open.is_empty(), "nothing waits for a person: {open:#?}");
}

/// A preset file whose only link is gone half-way: Recovery offers "use another source"
/// first. No link, or one that is not http(s), is refused in words, and a user cannot do it;
/// the file's new home (another host) finishes it from the bytes already on disk (the
/// checksum will tell), the failure is resolved, and the old link stays as the next source.
#[tokio::test(flavor = "multi_thread")]
async fn another_source_given_in_recovery_finishes_a_file_whose_link_is_gone() {
    use engine::error::Classify;
    use engine::model::{ErrorKind, FailureClass, FailureSource, FailureState, RecoveryAction};
    let server = FileServer::start().await;
    let size = 400_000;
    let old = server.add_file_seeded("/old/moved.safetensors", size, 9);
    let new = server.add_file_seeded("/new/moved.safetensors", size, 9);
    let half = size / 2;
    server.add_fault(&old.path, Fault::GoneAfter(2), Times::Always);
    server.add_fault(&old.path, Fault::DropAt(half), Times::Once);
    let dir = tempfile::tempdir().unwrap();
    write_preset(
        dir.path(),
        "moved",
        &[file(
            &server,
            &old,
            "checkpoints/moved.safetensors",
            "400KB",
        )],
    );
    let (engine, _) = engine::Engine::start(Config {
        fetch_tuning: quick_tuning(),
        ..test_config(dir.path())
    })
    .await
    .unwrap();
    engine.spawn_background_jobs();
    let admin = engine.auth().open_caller();
    engine.downloads().install_preset("moved").await.unwrap();
    let list =
        crate::common::recovery_until(&engine, &admin, "the gone file", |l| !l.open.is_empty())
            .await;
    let failure = &list.open[0];
    assert_eq!(failure.source, FailureSource::Preset);
    assert_eq!(failure.class, FailureClass::NotFound);
    assert_eq!(
        failure.actions,
        [
            RecoveryAction::UseSource,
            RecoveryAction::RollBack,
            RecoveryAction::Dismiss,
            RecoveryAction::Retry
        ]
    );
    let part = dir.path().join("models/checkpoints/moved.safetensors.part");
    assert_eq!(std::fs::metadata(&part).unwrap().len(), half);

    let act = |url: Option<&'static str>| {
        let engine = std::sync::Arc::clone(&engine);
        let id = failure.id;
        async move {
            engine
                .recovery()
                .act(
                    &engine.auth().open_caller(),
                    id,
                    RecoveryAction::UseSource,
                    url,
                )
                .await
        }
    };
    let none = act(None).await.unwrap_err();
    assert_eq!(none.kind(), ErrorKind::Invalid);
    assert!(none.to_string().contains("\"url\""), "{none}");
    let ftp = act(Some("ftp://example.com/moved.safetensors"))
        .await
        .unwrap_err();
    assert_eq!(ftp.kind(), ErrorKind::Invalid);
    assert!(ftp.to_string().contains("not an http(s) link"), "{ftp}");
    let hidden = engine
        .recovery()
        .act(
            &crate::common::bob(),
            failure.id,
            RecoveryAction::UseSource,
            Some("http://localhost/x"),
        )
        .await
        .unwrap_err();
    assert_eq!(
        hidden.kind(),
        ErrorKind::NotFound,
        "a user does not see the pod's"
    );

    let new_url = server.url_on_other_host(&new.path);
    let done = engine
        .recovery()
        .act(
            &admin,
            failure.id,
            RecoveryAction::UseSource,
            Some(&new_url),
        )
        .await
        .unwrap();
    assert_eq!(done.state, FailureState::Resolved);
    wait_for(&engine, "moved", Duration::from_secs(20), installed).await;
    let dest = dir.path().join("models/checkpoints/moved.safetensors");
    assert_eq!(sha256_of(&dest), old.sha256);
    assert_eq!(
        server.bytes_sent(&new.path),
        size - half,
        "the new host sent only what was missing"
    );
    let list = crate::common::recovery_until(&engine, &admin, "the failure resolved", |l| {
        l.open.is_empty()
    })
    .await;
    assert_eq!(list.recent[0].state, FailureState::Resolved);
    let said = engine.activity().recent(&admin, 20).await.unwrap();
    assert!(
        said.iter().any(|a| a.message.contains("downloading from")
            && a.message.contains("/new/moved.safetensors")
            && a.message.contains("kept")),
        "{said:?}"
    );
    engine.shutdown().await;
}
