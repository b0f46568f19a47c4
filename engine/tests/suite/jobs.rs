//! The job queue against a real SQLite file and a real `redis-server`: the same scenarios on
//! both stores — fairness between people, leases and fences, retries of transient failures
//! only, cancel, per-person limits, model-aware routing, worker tokens, another person's job
//! answering 404 — and durability: the deck restarted, Redis killed with -9 and restarted.

use std::sync::Arc;
use std::time::Duration;

use engine::config::Config;
use engine::jobs::{JobError, JobLimits, SubmitJob};
use engine::model::*;
use engine::Engine;
use serde_json::json;

use crate::common::redis::RedisServer;
use crate::common::test_config;

const LEASE: Duration = Duration::from_millis(1500);
/// The wait before the second delivery after a transient failure (600 ms before the third).
const RETRY: Duration = Duration::from_millis(300);

fn config(dir: &std::path::Path, queue_url: Option<String>, max_pending: u64) -> Config {
    Config {
        queue_url,
        job_limits: JobLimits {
            max_pending_per_user: max_pending,
            max_running_per_user: None,
            lease: LEASE,
            retry_delay: RETRY,
        },
        ..test_config(dir)
    }
}

async fn start(config: Config) -> Arc<Engine> {
    Engine::start(config).await.expect("engine starts").0
}

async fn person(engine: &Engine, name: &str) -> Caller {
    let admin = engine.auth().open_caller();
    let added = engine
        .auth()
        .users()
        .add(&admin, name, Role::User, Some(format!("{name}-password")))
        .await
        .unwrap();
    Caller {
        user_id: added.user.id,
        username: added.user.username,
        role: Role::User,
        theme: None,
    }
}

/// A posted API-format workflow; with `model`, a checkpoint loader that needs that file.
fn workflow(model: Option<&str>) -> serde_json::Value {
    match model {
        Some(file) => json!({
            "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": file}},
            "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}
        }),
        None => json!({
            "1": {"class_type": "PrimitiveString", "inputs": {"value": "hello"}},
            "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}
        }),
    }
}

async fn submit(engine: &Engine, caller: &Caller, model: Option<&str>) -> JobSubmitted {
    engine
        .jobs()
        .submit(
            caller,
            SubmitJob {
                workflow: Some(workflow(model)),
                name: Some(format!("{}'s job", caller.username)),
                ..SubmitJob::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{} submits: {e}", caller.username))
}

fn hello(name: &str, models: &[&str]) -> WorkerHello {
    WorkerHello {
        name: name.to_string(),
        models: models.iter().map(|m| m.to_string()).collect(),
        ..WorkerHello::default()
    }
}

async fn claim(engine: &Engine, worker: &WorkerHello) -> Option<ClaimedJob> {
    engine
        .jobs()
        .claim(worker, Duration::ZERO)
        .await
        .expect("claim answers")
}

fn fence(job: &ClaimedJob) -> JobFence {
    JobFence {
        job_id: job.job_id,
        fence: job.fence,
    }
}

async fn state(engine: &Engine, id: i64) -> JobView {
    engine
        .jobs()
        .get(&engine.auth().open_caller(), id)
        .await
        .unwrap()
}

/// Every scenario that needs no restart, on one store.
async fn scenarios(queue_url: Option<String>) {
    let dir = tempfile::tempdir().unwrap();
    let engine = start(config(dir.path(), queue_url.clone(), 3)).await;
    let jobs = engine.jobs();
    let backend = if queue_url.is_some() {
        "redis"
    } else {
        "sqlite"
    };
    let alice = person(&engine, "alice").await;
    let bob = person(&engine, "bob").await;
    let w1 = hello("gpu-1", &[]);
    let w2 = hello("gpu-2", &[]);

    // Fair: bob's one job does not wait behind alice's three.
    let a: Vec<i64> = {
        let mut ids = Vec::new();
        for _ in 0..3 {
            ids.push(submit(&engine, &alice, None).await.job_id);
        }
        ids
    };
    let b = submit(&engine, &bob, None).await;
    assert_eq!(b.position, 2, "{backend}: bob is second in line");
    // The limit: alice has three waiting, the most allowed here.
    let refused = jobs
        .submit(
            &alice,
            SubmitJob {
                workflow: Some(workflow(None)),
                ..SubmitJob::default()
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(refused, JobError::TooMany(_)),
        "{backend}: {refused}"
    );
    assert!(refused.to_string().contains('3'), "{refused}");
    let order: Vec<i64> = {
        let mut order = Vec::new();
        while let Some(job) = claim(&engine, &w1).await {
            order.push(job.job_id);
            jobs.complete("gpu-1", fence(&job)).await.unwrap();
        }
        order
    };
    assert_eq!(
        order,
        vec![a[0], b.job_id, a[1], a[2]],
        "{backend}: round-robin"
    );
    assert_eq!(state(&engine, a[0]).await.state, JobState::Succeeded);

    // Another person's job is not found; lists keep to one's own.
    let bobs = jobs.get(&bob, a[0]).await.unwrap_err();
    assert!(matches!(bobs, JobError::NotFound(_)), "{bobs}");
    assert!(matches!(
        jobs.cancel(&bob, a[0]).await.unwrap_err(),
        JobError::NotFound(_)
    ));
    let page = jobs.list(&bob, None, None, None).await.unwrap();
    assert_eq!(page.jobs.len(), 1);
    assert!(page.jobs.iter().all(|j| j.user_id == bob.user_id));
    assert!(matches!(
        jobs.set_priority(&bob, b.job_id, 5).await.unwrap_err(),
        JobError::Forbidden(_)
    ));

    // A lease that runs out goes to another worker; the first one's late calls are refused.
    let job = submit(&engine, &alice, None).await.job_id;
    let first = claim(&engine, &w1).await.unwrap();
    assert_eq!(first.job_id, job);
    assert!(
        claim(&engine, &w2).await.is_none(),
        "{backend}: held by gpu-1"
    );
    tokio::time::sleep(LEASE + Duration::from_millis(300)).await;
    let second = claim(&engine, &w2).await.expect("the lease ran out");
    assert_eq!(second.job_id, job);
    assert!(second.fence > first.fence);
    assert_eq!(second.attempt, 2);
    let stale = HeartbeatRequest {
        job_id: job,
        fence: first.fence,
        wait_ms: 0,
    };
    assert!(matches!(
        jobs.heartbeat("gpu-1", &stale).await.unwrap_err(),
        JobError::Fenced(_)
    ));
    assert!(matches!(
        jobs.upload_output(fence(&first), "late.png", b"stale")
            .await
            .unwrap_err(),
        JobError::Fenced(_)
    ));
    assert!(matches!(
        jobs.complete("gpu-1", fence(&first)).await.unwrap_err(),
        JobError::Fenced(_)
    ));
    let output = jobs
        .upload_output(fence(&second), "out.png", b"the one output")
        .await
        .unwrap();
    // An upload retried with the same name replaces the file: still one output.
    jobs.upload_output(fence(&second), "out.png", b"the one output")
        .await
        .unwrap();
    let done = jobs.complete("gpu-2", fence(&second)).await.unwrap();
    assert_eq!(done.state, JobState::Succeeded);
    assert_eq!(done.outputs, vec![output]);
    assert_eq!(done.attempt_errors.len(), 1, "{:?}", done.attempt_errors);
    assert!(
        done.attempt_errors[0].contains("gpu-1"),
        "{:?}",
        done.attempt_errors
    );
    let stored = jobs.output_path(job, "out.png").unwrap();
    assert_eq!(std::fs::read(&stored).unwrap(), b"the one output");
    assert!(!jobs.output_path(job, "late.png").unwrap().exists());
    for bad in ["../x.png", ".hidden", "a/b.png", ""] {
        assert!(matches!(
            jobs.upload_output(fence(&second), bad, b"x")
                .await
                .unwrap_err(),
            JobError::Invalid(_) | JobError::Fenced(_)
        ));
    }

    // Transient failures: three deliveries, each after a longer wait, then failed with every
    // reason.
    let job = submit(&engine, &alice, None).await.job_id;
    let mut not_before = None;
    for n in 1..=3 {
        if let Some(at) = not_before {
            assert!(
                claim(&engine, &w1).await.is_none(),
                "{backend}: not delivered again before {at}"
            );
        }
        let claimed = jobs
            .claim(&w1, Duration::from_secs(5))
            .await
            .unwrap()
            .expect("delivered again");
        if let Some(at) = not_before {
            assert!(engine::clock::now_ms() >= at, "{backend}: delivered early");
        }
        assert_eq!(claimed.attempt, n);
        assert_eq!(
            state(&engine, job).await.retry_at_ms,
            None,
            "cleared by the claim"
        );
        let failure = JobFailure {
            job_id: job,
            fence: claimed.fence,
            reason: format!("ComfyUI is not reachable ({n})"),
            transient: true,
        };
        let after = jobs.fail("gpu-1", &failure).await.unwrap();
        let expected = if n < 3 {
            JobState::Pending
        } else {
            JobState::Failed
        };
        assert_eq!(after.state, expected, "{backend}: after delivery {n}");
        if n < 3 {
            let wait = RETRY.as_millis() as i64 * (1 << (n - 1));
            let at = after
                .retry_at_ms
                .expect("a requeued job says when it goes again");
            let now = engine::clock::now_ms();
            assert!(
                at > now && at <= now + wait,
                "{backend}: {at} within {wait} ms of {now}"
            );
            not_before = Some(at);
        } else {
            assert_eq!(after.retry_at_ms, None);
        }
    }
    let failed = state(&engine, job).await;
    let error = failed.error.unwrap();
    assert!(error.starts_with("Failed after 3 deliveries"), "{error}");
    assert!(error.contains("(1)") && error.contains("(3)"), "{error}");

    // A refused prompt fails at once.
    let job = submit(&engine, &alice, None).await.job_id;
    let claimed = claim(&engine, &w1).await.unwrap();
    let failure = JobFailure {
        job_id: job,
        fence: claimed.fence,
        reason: "KSampler (node 3): seed is below the minimum".into(),
        transient: false,
    };
    let after = jobs.fail("gpu-1", &failure).await.unwrap();
    assert_eq!(after.state, JobState::Failed);
    assert_eq!(after.attempts, 1);
    assert_eq!(after.error.as_deref(), Some(failure.reason.as_str()));

    // Cancel: pending leaves at once; running is told in the heartbeat, within its wait.
    let pending = submit(&engine, &bob, None).await.job_id;
    assert_eq!(
        jobs.cancel(&bob, pending).await.unwrap().state,
        JobState::Cancelled
    );
    assert!(
        claim(&engine, &w1).await.is_none(),
        "{backend}: nothing left"
    );
    let running = submit(&engine, &bob, None).await.job_id;
    let claimed = claim(&engine, &w1).await.unwrap();
    let waiting = {
        let jobs = Arc::clone(jobs);
        let request = HeartbeatRequest {
            job_id: running,
            fence: claimed.fence,
            wait_ms: 5_000,
        };
        tokio::spawn(async move {
            let t = std::time::Instant::now();
            let answer = jobs.heartbeat("gpu-1", &request).await.unwrap();
            (answer, t.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        jobs.cancel(&bob, running).await.unwrap().state,
        JobState::Running
    );
    let (answer, took) = waiting.await.unwrap();
    assert!(answer.cancel, "{backend}: the heartbeat carries the cancel");
    assert!(took < Duration::from_secs(2), "{backend}: {took:?}");
    let after = jobs
        .fail(
            "gpu-1",
            &JobFailure {
                job_id: running,
                fence: claimed.fence,
                reason: "cancelled".into(),
                transient: false,
            },
        )
        .await
        .unwrap();
    assert_eq!(after.state, JobState::Cancelled);

    // Models decide where a job runs.
    let needs = submit(&engine, &alice, Some("flux1-dev.safetensors"))
        .await
        .job_id;
    let view = state(&engine, needs).await;
    assert_eq!(
        view.required_models,
        vec!["checkpoints/flux1-dev.safetensors".to_string()]
    );
    assert!(
        claim(&engine, &w1).await.is_none(),
        "{backend}: gpu-1 lacks the file"
    );
    let view = state(&engine, needs).await;
    assert_eq!(
        view.waiting_for.as_deref(),
        Some("waiting for a worker with flux1-dev.safetensors"),
        "{backend}"
    );
    // A worker that installs what it lacks, but whose catalog does not provide the file,
    // leaves the job waiting for one that has it.
    let cannot_install = WorkerHello {
        install_missing: true,
        installable: Some(vec!["vae/ae.safetensors".to_string()]),
        ..hello("gpu-4", &[])
    };
    assert!(
        claim(&engine, &cannot_install).await.is_none(),
        "{backend}: gpu-4 cannot install the file"
    );
    assert_eq!(
        state(&engine, needs).await.waiting_for.as_deref(),
        Some("waiting for a worker with flux1-dev.safetensors"),
        "{backend}"
    );
    let equipped = hello("gpu-3", &["checkpoints/flux1-dev.safetensors"]);
    assert_eq!(claim(&engine, &equipped).await.unwrap().job_id, needs);
    let workers = jobs.workers(&engine.auth().open_caller()).await.unwrap();
    let gpu3 = workers.iter().find(|w| w.name == "gpu-3").unwrap();
    assert_eq!(gpu3.state, "busy");
    assert_eq!(gpu3.current_job, Some(needs));
    // One whose catalog provides it takes such a job (and installs the file first).
    let next = submit(&engine, &alice, Some("flux1-dev.safetensors"))
        .await
        .job_id;
    let installs = WorkerHello {
        installable: Some(vec!["checkpoints/flux1-dev.safetensors".to_string()]),
        ..cannot_install.clone()
    };
    assert_eq!(claim(&engine, &installs).await.unwrap().job_id, next);

    // Priority: an administrator moves one of alice's jobs ahead of her older one.
    let older = submit(&engine, &alice, None).await.job_id;
    let newer = submit(&engine, &alice, None).await.job_id;
    jobs.set_priority(&engine.auth().open_caller(), newer, 10)
        .await
        .unwrap();
    assert_eq!(claim(&engine, &w1).await.unwrap().job_id, newer);
    assert_eq!(claim(&engine, &w1).await.unwrap().job_id, older);

    let status = jobs.status(&engine.auth().open_caller()).await.unwrap();
    assert_eq!(status.backend, backend);
    assert!(status.wait_p50_ms.is_some());
    // gpu-3's, gpu-4's and w1's two.
    assert_eq!(status.running, 4);

    // Worker tokens: shown once, stored hashed, revoked at once.
    let admin = engine.auth().open_caller();
    let token = jobs.create_token(&admin, "gpu-1").await.unwrap();
    assert_eq!(
        jobs.authenticate(Some(&token.token)).await.unwrap(),
        "gpu-1"
    );
    assert!(matches!(
        jobs.create_token(&admin, "gpu-1").await.unwrap_err(),
        JobError::Conflict(_)
    ));
    assert!(matches!(
        jobs.create_token(&bob, "mine").await.unwrap_err(),
        JobError::Forbidden(_)
    ));
    assert!(matches!(
        jobs.authenticate(Some("cdw_wrong")).await.unwrap_err(),
        JobError::Unauthorized
    ));
    jobs.revoke_token(&admin, "gpu-1").await.unwrap();
    assert!(matches!(
        jobs.authenticate(Some(&token.token)).await.unwrap_err(),
        JobError::Unauthorized
    ));
    let listed = jobs.tokens(&admin).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].revoked);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_queue_is_fair_leased_fenced_and_limited() {
    scenarios(None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_queue_is_fair_leased_fenced_and_limited() {
    let redis = RedisServer::start();
    scenarios(Some(redis.url())).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_jobs_survive_a_deck_restart() {
    let dir = tempfile::tempdir().unwrap();
    let engine = start(config(dir.path(), None, 100)).await;
    let alice = person(&engine, "alice").await;
    let waiting = submit(&engine, &alice, None).await.job_id;
    let running = submit(&engine, &alice, None).await.job_id;
    let claimed = claim(&engine, &hello("gpu-1", &[])).await.unwrap();
    assert_eq!(claimed.job_id, waiting);
    engine.shutdown().await;
    drop(engine);

    let engine = start(config(dir.path(), None, 100)).await;
    // The claimed job's worker is gone with the old process: its lease runs out and the
    // job is delivered again; the other is still in line.
    assert_eq!(state(&engine, running).await.state, JobState::Pending);
    tokio::time::sleep(LEASE + Duration::from_millis(300)).await;
    let w2 = hello("gpu-2", &[]);
    let mut got = vec![
        claim(&engine, &w2).await.unwrap().job_id,
        claim(&engine, &w2).await.unwrap().job_id,
    ];
    got.sort();
    assert_eq!(got, vec![waiting, running]);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_jobs_survive_kill_9_of_redis_with_aof() {
    let mut redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let engine = start(config(dir.path(), Some(redis.url()), 100)).await;
    let alice = person(&engine, "alice").await;
    let acknowledged: Vec<i64> = {
        let mut ids = Vec::new();
        for _ in 0..5 {
            ids.push(submit(&engine, &alice, None).await.job_id);
        }
        ids
    };
    redis.kill_9();
    let down = engine
        .jobs()
        .claim(&hello("gpu-1", &[]), Duration::ZERO)
        .await
        .unwrap_err();
    assert!(matches!(down, JobError::Redis(_)), "{down}");
    redis.restart();
    // The connection comes back by itself; every acknowledged job is still in line.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut claimed = Vec::new();
    while claimed.len() < acknowledged.len() {
        match engine
            .jobs()
            .claim(&hello("gpu-1", &[]), Duration::ZERO)
            .await
        {
            Ok(Some(job)) => claimed.push(job.job_id),
            Ok(None) => break,
            Err(e) => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "Redis did not come back: {e}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    assert_eq!(claimed, acknowledged);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_decks_on_one_redis_share_the_queue_and_its_events() {
    let redis = RedisServer::start();
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let one = start(config(d1.path(), Some(redis.url()), 100)).await;
    let two = start(config(d2.path(), Some(redis.url()), 100)).await;
    one.spawn_background_jobs();
    two.spawn_background_jobs();
    let mut seen_on_two = two.events().subscribe();
    // Let the second deck's subscription settle before the first deck speaks.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let alice = person(&one, "alice").await;
    let submitted = submit(&one, &alice, None).await;
    let job = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Ok(Event::Job(job)) = seen_on_two.recv().await {
                return job;
            }
        }
    })
    .await
    .expect("the other deck hears of the job");
    assert_eq!(job.id, submitted.job_id);
    // A worker of the second deck takes the first deck's job.
    let claimed = claim(&two, &hello("gpu-1", &[])).await.unwrap();
    assert_eq!(claimed.job_id, submitted.job_id);

    // The worker's live preview, sent to the second deck, is served by the first one too.
    let fence = JobFence {
        job_id: claimed.job_id,
        fence: claimed.fence,
    };
    let jpeg = vec![0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3];
    let refused = two
        .jobs()
        .relay_preview(fence, None, "text/html", jpeg.clone())
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("image/jpeg"), "{refused}");
    let stale = JobFence {
        fence: claimed.fence - 1,
        ..fence
    };
    assert!(matches!(
        two.jobs()
            .relay_preview(stale, None, "image/jpeg", jpeg.clone())
            .await,
        Err(JobError::Fenced(_))
    ));
    let mut seen_on_one = one.events().subscribe();
    two.jobs()
        .relay_preview(fence, Some("9".into()), "image/jpeg", jpeg.clone())
        .await
        .unwrap();
    let url = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Ok(Event::Run(run)) = seen_on_one.recv().await {
                if let RunEventKind::Preview { node, url } = run.event {
                    assert_eq!(run.prompt_id, claimed.prompt_id);
                    assert_eq!(node.as_deref(), Some("9"));
                    return url;
                }
            }
        }
    })
    .await
    .expect("the first deck hears of the preview");
    assert!(url.contains(&claimed.prompt_id), "{url}");
    let (mime, bytes) = one.bridge().preview(&claimed.prompt_id).unwrap();
    assert_eq!((mime.as_str(), bytes.as_slice()), ("image/jpeg", &jpeg[..]));
    assert_eq!(
        two.bridge()
            .preview(&claimed.prompt_id)
            .unwrap()
            .1
            .as_slice(),
        &jpeg[..]
    );
    one.shutdown().await;
    two.shutdown().await;
}

/// Twenty people, each with several jobs, some with more than others: every round serves
/// each person with a waiting job once, in turn, whoever submitted first or most.
async fn twenty_people_take_turns(queue_url: Option<String>) {
    let dir = tempfile::tempdir().unwrap();
    let engine = start(config(dir.path(), queue_url, 100)).await;
    let mut people = Vec::new();
    for n in 0..20 {
        people.push(person(&engine, &format!("user{n:02}")).await);
    }
    // user00 queues 10, everyone else 1 to 3, all before any worker asks.
    let mut owner_of = std::collections::HashMap::new();
    for (n, caller) in people.iter().enumerate() {
        let count = if n == 0 { 10 } else { 1 + n % 3 };
        for _ in 0..count {
            owner_of.insert(submit(&engine, caller, None).await.job_id, caller.user_id);
        }
    }
    let total = owner_of.len();
    let worker = hello("gpu-1", &[]);
    let mut served = Vec::new();
    while let Some(job) = claim(&engine, &worker).await {
        served.push(owner_of[&job.job_id]);
        engine.jobs().complete("gpu-1", fence(&job)).await.unwrap();
    }
    assert_eq!(served.len(), total);
    // The first round: all twenty people, one job each, before anyone's second.
    let first: std::collections::HashSet<i64> = served[..20].iter().copied().collect();
    assert_eq!(first.len(), 20, "first round: {served:?}");
    // user00's ten jobs are spread out: after the first round only those still waiting share.
    let heavy = people[0].user_id;
    let positions: Vec<usize> = served
        .iter()
        .enumerate()
        .filter(|(_, u)| **u == heavy)
        .map(|(i, _)| i)
        .collect();
    assert!(
        positions[1] >= 20,
        "user00's second job waits for the round: {positions:?}"
    );
    assert_eq!(
        *served.last().unwrap(),
        heavy,
        "the one with most jobs finishes last"
    );
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_queue_serves_twenty_people_in_turn() {
    twenty_people_take_turns(None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_queue_serves_twenty_people_in_turn() {
    let redis = RedisServer::start();
    twenty_people_take_turns(Some(redis.url())).await;
}

/// `--max-running-per-user`: a person's next job waits while they have that many running,
/// and others' jobs go ahead of it.
async fn running_limit(queue_url: Option<String>) {
    let dir = tempfile::tempdir().unwrap();
    let engine = start(Config {
        job_limits: JobLimits {
            max_pending_per_user: 100,
            max_running_per_user: Some(1),
            lease: LEASE,
            retry_delay: RETRY,
        },
        ..config(dir.path(), queue_url, 100)
    })
    .await;
    let alice = person(&engine, "alice").await;
    let bob = person(&engine, "bob").await;
    let a1 = submit(&engine, &alice, None).await.job_id;
    let a2 = submit(&engine, &alice, None).await.job_id;
    let b1 = submit(&engine, &bob, None).await.job_id;
    let (w1, w2, w3) = (
        hello("gpu-1", &[]),
        hello("gpu-2", &[]),
        hello("gpu-3", &[]),
    );
    let first = claim(&engine, &w1).await.unwrap();
    assert_eq!(first.job_id, a1);
    assert_eq!(claim(&engine, &w2).await.unwrap().job_id, b1);
    assert!(
        claim(&engine, &w3).await.is_none(),
        "alice already has one running"
    );
    engine
        .jobs()
        .complete("gpu-1", fence(&first))
        .await
        .unwrap();
    assert_eq!(claim(&engine, &w3).await.unwrap().job_id, a2);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_queue_keeps_the_running_limit_per_person() {
    running_limit(None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_queue_keeps_the_running_limit_per_person() {
    let redis = RedisServer::start();
    running_limit(Some(redis.url())).await;
}
