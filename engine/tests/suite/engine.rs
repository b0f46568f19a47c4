//! Integration tests for `engine::Engine`: a real workspace in a temp dir, a real SQLite file and
//! real local HTTP servers standing in for ComfyUI and Hugging Face.

use crate::common;
use common::{fixture_dir, test_config};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use engine::auth::{AuthError, LoginError};
use engine::clock::now_ms;
use engine::config::Config;
use engine::model::{
    ActivityKind, AuthMode, Event, Role, SettingsPatch, SettingsView, Theme,
    DEFAULT_ACTIVITY_RETENTION_DAYS,
};
use engine::secret::Secret;
use engine::settings::SettingsError;
use engine::workspace::WorkspaceError;
use engine::{Engine, EngineError, StartupReport};

const HF_TOKEN: &str = "hf_abcdefghijklmnopqrstuvwxyz1234";
const DAY_MS: i64 = 86_400_000;

// -- helpers ---------------------------------------------------------------------------------

async fn start(config: Config) -> (Arc<Engine>, StartupReport) {
    match Engine::start(config).await {
        Ok(started) => started,
        Err(e) => panic!("Engine::start failed: {e}"),
    }
}

async fn start_err(config: Config) -> EngineError {
    match Engine::start(config).await {
        Ok(_) => panic!("Engine::start should have failed"),
        Err(e) => e,
    }
}

/// Drops the engine, checking that this was the last handle (so its lock is released).
fn shut_down(engine: Arc<Engine>) {
    assert_eq!(
        Arc::strong_count(&engine),
        1,
        "the test holds the only handle"
    );
    drop(engine);
}

fn patch() -> SettingsPatch {
    SettingsPatch::default()
}

async fn all_activity(engine: &Engine) -> Vec<engine::model::ActivityEntry> {
    engine
        .activity()
        .page(&engine.auth().open_caller(), None, 1, 500)
        .await
        .unwrap()
        .entries
}

/// admin's stored password hash, read from the database file as another process would.
async fn admin_password_hash(engine: &Engine) -> String {
    let url = format!("sqlite://{}", engine.layout().database().display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::query_scalar("SELECT password_hash FROM users WHERE username = 'admin'")
        .fetch_one(&pool)
        .await
        .unwrap()
}

/// Serves `router` on an ephemeral 127.0.0.1 port; returns its base URL.
async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, router)
            .await
            .expect("stand-in server");
    });
    format!("http://{addr}")
}

/// `response.body_raw` of a recorded ComfyUI exchange.
fn fixture_body_raw(name: &str) -> String {
    let path = fixture_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    doc["response"]["body_raw"]
        .as_str()
        .unwrap_or_else(|| panic!("{name} has no response.body_raw"))
        .to_string()
}

// -- start-up --------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn start_creates_the_workspace() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("nested").join("ws");
    let (engine, report) = start(test_config(&root)).await;

    assert!(root.is_dir(), "the root is created");
    let layout = engine.layout();
    assert_eq!(layout.root(), root);
    let dirs = layout.directories();
    assert!(dirs.len() > 8, "{dirs:?}");
    for d in &dirs {
        assert!(d.is_dir(), "{} was not created", d.display());
    }
    assert!(root.join("config/extra_model_paths.yaml").is_file());
    assert!(root.join("data/comfydeck.db").is_file());
    assert_eq!(layout.database(), root.join("data/comfydeck.db"));
    assert!(layout.lock_file().is_file());
    assert_eq!(
        std::fs::read_to_string(layout.lock_file()).unwrap().trim(),
        std::process::id().to_string(),
        "the lock file names its holder"
    );

    assert!(!report.phases.is_empty());
    assert!(report.phases.iter().all(|(name, _)| !name.is_empty()));
    assert_eq!(
        report.generated_password, None,
        "loopback needs no password"
    );
    assert_eq!(
        engine.store().journal_mode().await.unwrap().to_lowercase(),
        "wal"
    );

    // No write-probe is left behind in the root.
    let leftovers: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_engine_on_the_same_workspace_is_refused_until_the_first_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let (first, _) = start(test_config(dir.path())).await;

    let err = start_err(test_config(dir.path())).await;
    let text = err.to_string();
    assert!(text.contains("already serving"), "{text}");
    assert!(
        text.contains(&dir.path().display().to_string()),
        "names the workspace: {text}"
    );
    assert!(
        matches!(err, EngineError::Workspace(WorkspaceError::Locked { .. })),
        "{err:?}"
    );
    // The refused start did not break the running one.
    first.store().ping().await.unwrap();

    shut_down(first);
    let (second, _) = start(test_config(dir.path())).await;
    second.store().ping().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_is_not_a_workspace() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let err = start_err(test_config(&file)).await;
    assert!(err.to_string().contains("not a directory"), "{err}");
    assert!(
        matches!(
            err,
            EngineError::Workspace(WorkspaceError::NotADirectory { .. })
        ),
        "{err:?}"
    );
    assert_eq!(
        std::fs::read(&file).unwrap(),
        b"x",
        "the file is left alone"
    );
}

// -- settings --------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn settings_are_masked_validated_and_persisted() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _) = start(test_config(dir.path())).await;

    let defaults = engine.settings().view();
    assert_eq!(
        defaults,
        SettingsView {
            theme: Theme::System,
            hf_token_masked: None,
            civitai_token_masked: None,
            activity_retention_days: DEFAULT_ACTIVITY_RETENTION_DAYS,
        }
    );
    assert_eq!(defaults.activity_retention_days, 30);
    assert_eq!(engine.settings().theme(), Theme::System);
    assert!(engine.settings().hf_token().is_none());

    let view = engine
        .settings()
        .update(SettingsPatch {
            theme: Some(Theme::Dark),
            hf_token: Some(HF_TOKEN.into()),
            ..patch()
        })
        .await
        .unwrap();
    assert_eq!(view.theme, Theme::Dark);
    assert_eq!(view.hf_token_masked.as_deref(), Some("hf_…1234"));
    assert_eq!(view.civitai_token_masked, None);
    assert_eq!(view.activity_retention_days, 30);
    assert_eq!(engine.settings().view(), view);
    assert_eq!(engine.settings().theme(), Theme::Dark);
    assert!(!format!("{view:?}").contains(HF_TOKEN));
    let json = serde_json::to_string(&view).unwrap();
    assert!(!json.contains(HF_TOKEN), "{json}");
    assert!(json.contains("hf_…1234"), "{json}");
    assert_eq!(
        engine
            .settings()
            .hf_token()
            .map(|s| s.expose().to_string())
            .as_deref(),
        Some(HF_TOKEN)
    );
    assert!(!format!("{:?}", engine.settings().hf_token()).contains(HF_TOKEN));

    // The activity line says what changed, with the token masked.
    let entries = all_activity(&engine).await;
    let settings_entry = entries
        .iter()
        .find(|e| e.kind == ActivityKind::Settings)
        .unwrap_or_else(|| panic!("no settings activity in {entries:?}"));
    let message = settings_entry.message.to_lowercase();
    assert!(message.contains("theme"), "{message}");
    assert!(
        settings_entry.message.contains("hf_…1234"),
        "{}",
        settings_entry.message
    );
    assert!(
        entries.iter().all(|e| !e.message.contains(HF_TOKEN)),
        "{entries:?}"
    );

    // Restart on the same workspace: the settings were persisted.
    shut_down(engine);
    let (engine, _) = start(test_config(dir.path())).await;
    assert_eq!(engine.settings().view(), view);
    assert_eq!(
        engine
            .settings()
            .hf_token()
            .map(|s| s.expose().to_string())
            .as_deref(),
        Some(HF_TOKEN)
    );
    let entries = all_activity(&engine).await;
    assert!(
        entries
            .iter()
            .any(|e| e.kind == ActivityKind::Settings && e.message.contains("hf_…1234")),
        "activity persisted too: {entries:?}"
    );
    assert!(
        entries.iter().all(|e| !e.message.contains(HF_TOKEN)),
        "{entries:?}"
    );

    // Out-of-range retention is refused with a message that names the field.
    for days in [0u32, 5000] {
        let err = engine
            .settings()
            .update(SettingsPatch {
                activity_retention_days: Some(days),
                ..patch()
            })
            .await
            .unwrap_err();
        match &err {
            SettingsError::Invalid(msg) => assert!(msg.contains("retention"), "{msg}"),
            other => panic!("expected Invalid for {days} days, got {other:?}"),
        }
    }
    // A rejected patch changes nothing, not even its valid parts.
    let err = engine
        .settings()
        .update(SettingsPatch {
            theme: Some(Theme::Light),
            activity_retention_days: Some(0),
            ..patch()
        })
        .await
        .unwrap_err();
    assert!(matches!(err, SettingsError::Invalid(_)), "{err:?}");
    assert_eq!(engine.settings().view(), view);

    // A token with a space inside is refused.
    let err = engine
        .settings()
        .update(SettingsPatch {
            hf_token: Some("hf_abc defghijklmnopqrstuvwxyz".into()),
            ..patch()
        })
        .await
        .unwrap_err();
    assert!(matches!(err, SettingsError::Invalid(_)), "{err:?}");
    assert!(
        !err.to_string().contains("hf_abc"),
        "the error does not echo the token: {err}"
    );
    assert_eq!(engine.settings().view(), view);
    assert_eq!(
        engine
            .settings()
            .hf_token()
            .map(|s| s.expose().to_string())
            .as_deref(),
        Some(HF_TOKEN)
    );

    // An empty string removes the token.
    let view = engine
        .settings()
        .update(SettingsPatch {
            hf_token: Some(String::new()),
            ..patch()
        })
        .await
        .unwrap();
    assert_eq!(view.hf_token_masked, None);
    assert_eq!(view.theme, Theme::Dark);
    assert!(engine.settings().hf_token().is_none());
    assert_eq!(engine.store().setting("hf_token").await.unwrap(), None);
    let newest = &engine
        .activity()
        .page(
            &engine.auth().open_caller(),
            Some(ActivityKind::Settings),
            1,
            1,
        )
        .await
        .unwrap()
        .entries[0];
    assert!(newest.message.contains("removed"), "{newest:?}");

    // Retention at the bounds is accepted.
    let view = engine
        .settings()
        .update(SettingsPatch {
            activity_retention_days: Some(3650),
            ..patch()
        })
        .await
        .unwrap();
    assert_eq!(view.activity_retention_days, 3650);

    shut_down(engine);
    let (engine, _) = start(test_config(dir.path())).await;
    let after = engine.settings().view();
    assert_eq!(after.hf_token_masked, None, "the removal was persisted");
    assert_eq!(after.theme, Theme::Dark);
    assert_eq!(after.activity_retention_days, 3650);
}

#[tokio::test(flavor = "multi_thread")]
async fn retention_removes_old_activity() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _) = start(test_config(dir.path())).await;
    let now = now_ms();
    let store = engine.store();
    let old = store
        .add_activity(
            now - 40 * DAY_MS,
            None,
            ActivityKind::System,
            "forty days old",
        )
        .await
        .unwrap();
    let recent = store
        .add_activity(now - 3_600_000, None, ActivityKind::System, "an hour old")
        .await
        .unwrap();

    let removed = engine.settings().apply_retention().await.unwrap();
    assert_eq!(removed, 1);
    let entries = all_activity(&engine).await;
    assert!(entries.iter().all(|e| e.id != old.id), "{entries:?}");
    assert!(entries.iter().any(|e| e.id == recent.id), "{entries:?}");

    let two_days_a = store
        .add_activity(now - 2 * DAY_MS, None, ActivityKind::Auth, "two days old")
        .await
        .unwrap();
    let two_days_b = store
        .add_activity(
            now - 2 * DAY_MS - 1,
            None,
            ActivityKind::Error,
            "two days old too",
        )
        .await
        .unwrap();
    let half_day = store
        .add_activity(now - DAY_MS / 2, None, ActivityKind::Auth, "half a day old")
        .await
        .unwrap();
    // Nothing is pruned under the default 30 days.
    assert_eq!(engine.settings().apply_retention().await.unwrap(), 0);

    let view = engine
        .settings()
        .update(SettingsPatch {
            activity_retention_days: Some(1),
            ..patch()
        })
        .await
        .unwrap();
    assert_eq!(view.activity_retention_days, 1);
    let entries = all_activity(&engine).await;
    let ids: Vec<i64> = entries.iter().map(|e| e.id).collect();
    assert!(!ids.contains(&two_days_a.id), "{entries:?}");
    assert!(!ids.contains(&two_days_b.id), "{entries:?}");
    assert!(ids.contains(&half_day.id), "{entries:?}");
    assert!(ids.contains(&recent.id), "{entries:?}");
    assert!(
        entries
            .iter()
            .any(|e| e.kind == ActivityKind::Settings && e.message.contains("1 days")),
        "{entries:?}"
    );
}

// -- auth ------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn loopback_without_password_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, report) = start(test_config(dir.path())).await;
    assert_eq!(engine.auth().mode(), AuthMode::Open);
    assert!(!engine.auth().mode().requires_login());
    assert_eq!(report.generated_password, None);
    assert_eq!(
        engine
            .store()
            .setting("auth.generated_password_hash")
            .await
            .unwrap(),
        None
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn access_password_login_sessions_and_logout() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        access_password: Some(Secret::new("pw-123456")),
        ..test_config(dir.path())
    };
    let (engine, report) = start(config.clone()).await;
    assert_eq!(engine.auth().mode(), AuthMode::Password);
    assert_eq!(report.generated_password, None);
    let admin = engine.auth().open_caller();
    assert_eq!(admin.username, "admin");

    match engine.auth().login("admin", "wrong", "1.1.1.1").await {
        Err(LoginError::WrongPassword) => {}
        other => panic!("expected WrongPassword, got {other:?}"),
    }
    // A prefix or a longer string is wrong too.
    assert!(matches!(
        engine.auth().login("admin", "pw-12345", "1.1.1.1").await,
        Err(LoginError::WrongPassword)
    ));
    assert!(matches!(
        engine.auth().login("admin", "pw-1234567", "1.1.1.1").await,
        Err(LoginError::WrongPassword)
    ));

    let token = engine
        .auth()
        .login("admin", "pw-123456", "1.1.1.1")
        .await
        .expect("right password")
        .0;
    assert!(token.len() >= 32, "{token}");
    assert!(engine
        .auth()
        .session_caller(&token)
        .await
        .unwrap()
        .is_some());
    assert!(engine
        .auth()
        .session_caller("not-a-session")
        .await
        .unwrap()
        .is_none());
    // Only a hash of the token is stored.
    let store = engine.store();
    assert!(store
        .live_session(&engine::auth::hash_token(&token), now_ms())
        .await
        .unwrap()
        .is_some());
    assert!(store
        .live_session(&token, now_ms())
        .await
        .unwrap()
        .is_none());
    let (other, _) = engine
        .auth()
        .login("admin", "pw-123456", "1.1.1.1")
        .await
        .unwrap();
    assert_ne!(token, other, "each login gets its own session");

    let auth = engine
        .activity()
        .page(&admin, Some(ActivityKind::Auth), 1, 50)
        .await
        .unwrap()
        .entries;
    assert!(
        auth.iter()
            .any(|e| e.message.contains("Failed login as admin from 1.1.1.1")),
        "{auth:?}"
    );
    assert!(
        auth.iter()
            .any(|e| e.message.starts_with("admin logged in from 1.1.1.1")),
        "{auth:?}"
    );
    assert!(
        auth.iter().all(|e| !e.message.contains("pw-123456")),
        "{auth:?}"
    );

    // Sessions live in the database: they survive a restart.
    shut_down(engine);
    let (engine, _) = start(config).await;
    assert!(engine
        .auth()
        .session_caller(&token)
        .await
        .unwrap()
        .is_some());

    engine.auth().logout(&token).await.unwrap();
    assert!(engine
        .auth()
        .session_caller(&token)
        .await
        .unwrap()
        .is_none());
    assert!(
        engine
            .auth()
            .session_caller(&other)
            .await
            .unwrap()
            .is_some(),
        "only that session ends"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn off_loopback_without_password_generates_one_once() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        host: "0.0.0.0".parse().unwrap(),
        ..test_config(dir.path())
    };

    let (engine, report) = start(config.clone()).await;
    assert_eq!(engine.auth().mode(), AuthMode::GeneratedPassword);
    assert!(engine.auth().mode().requires_login());
    let password = report
        .generated_password
        .clone()
        .expect("generated on the first start");
    assert!(password.len() >= 16, "{password}");
    assert!(!format!("{:?}", engine.config()).contains(&password));

    // It is admin's password; only its argon2 hash is kept.
    let hash = admin_password_hash(&engine).await;
    assert!(hash.starts_with("$argon2"), "{hash}");
    assert!(!hash.contains(&password), "{hash}");
    let all = engine.store().all_settings().await.unwrap();
    assert!(
        all.values().all(|v| !v.contains(&password)),
        "the plain password is never stored"
    );

    shut_down(engine);
    let (engine, report) = start(config.clone()).await;
    assert_eq!(engine.auth().mode(), AuthMode::GeneratedPassword);
    assert_eq!(
        report.generated_password, None,
        "only the first start reveals it"
    );
    let still = admin_password_hash(&engine).await;
    assert_eq!(still, hash, "the same password is kept");
    let token = engine
        .auth()
        .login("admin", &password, "2.2.2.2")
        .await
        .expect("the generated password works")
        .0;
    assert!(engine
        .auth()
        .session_caller(&token)
        .await
        .unwrap()
        .is_some());
    assert!(matches!(
        engine
            .auth()
            .login("admin", "not-the-password", "2.2.2.2")
            .await,
        Err(LoginError::WrongPassword)
    ));

    // An explicit password wins over the generated one.
    shut_down(engine);
    let config = Config {
        access_password: Some(Secret::new("explicit-pw")),
        ..config
    };
    let (engine, report) = start(config).await;
    assert_eq!(engine.auth().mode(), AuthMode::Password);
    assert_eq!(report.generated_password, None);
    assert!(matches!(
        engine.auth().login("admin", &password, "3.3.3.3").await,
        Err(LoginError::WrongPassword)
    ));
    engine
        .auth()
        .login("admin", "explicit-pw", "3.3.3.3")
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_logins_are_rate_limited_per_client() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        access_password: Some(Secret::new("pw-123456")),
        ..test_config(dir.path())
    };
    let (engine, _) = start(config).await;

    for attempt in 1..=5 {
        match engine.auth().login("admin", "wrong", "6.6.6.6").await {
            Err(LoginError::WrongPassword) => {}
            other => panic!("attempt {attempt}: expected WrongPassword, got {other:?}"),
        }
    }
    match engine.auth().login("admin", "pw-123456", "6.6.6.6").await {
        Err(LoginError::RateLimited(wait)) => {
            assert!(wait >= Duration::from_secs(1), "{wait:?}");
            assert!(wait <= Duration::from_secs(5 * 60), "{wait:?}");
        }
        other => panic!("6th attempt: expected RateLimited, got {other:?}"),
    }
    assert!(matches!(
        engine.auth().login("admin", "wrong", "6.6.6.6").await,
        Err(LoginError::RateLimited(_))
    ));

    // The username is limited too, from any client: guesses spread over many addresses
    // cannot go on.
    assert!(matches!(
        engine.auth().login("admin", "pw-123456", "7.7.7.7").await,
        Err(LoginError::RateLimited(_))
    ));
    // Another user from another client is not affected.
    let admin = engine.auth().open_caller();
    let bob = engine
        .auth()
        .users()
        .add(&admin, "bob", Role::User, Some("bob-password".into()))
        .await
        .unwrap();
    let (token, caller) = engine
        .auth()
        .login("bob", "bob-password", "8.8.8.8")
        .await
        .expect("other user, other client");
    assert_eq!(caller.user_id, bob.user.id);
    assert!(engine
        .auth()
        .session_caller(&token)
        .await
        .unwrap()
        .is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn api_tokens_are_created_checked_and_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _) = start(test_config(dir.path())).await;
    let admin = engine.auth().open_caller();

    let created = engine
        .auth()
        .create_api_token(&admin, "  my script  ")
        .await
        .unwrap();
    assert!(created.token.starts_with("cd_"), "{}", created.token);
    assert_eq!(created.info.name, "my script", "the name is trimmed");
    assert!(
        created
            .token
            .starts_with(created.info.hint.trim_end_matches('…')),
        "{created:?}"
    );
    assert_ne!(created.info.hint, created.token);
    assert!(engine
        .auth()
        .api_token_caller(&created.token)
        .await
        .unwrap()
        .is_some());
    assert!(engine
        .auth()
        .api_token_caller("cd_not-a-token")
        .await
        .unwrap()
        .is_none());

    let second = engine
        .auth()
        .create_api_token(&admin, "second")
        .await
        .unwrap();
    let list = engine.auth().api_tokens(&admin).await.unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].id, second.info.id, "newest first");
    assert!(list[1].last_used_ms.is_some(), "use is recorded: {list:?}");

    let auth = engine
        .activity()
        .page(&admin, Some(ActivityKind::Auth), 1, 50)
        .await
        .unwrap()
        .entries;
    assert!(
        auth.iter().any(|e| e.message.contains("my script")),
        "{auth:?}"
    );
    assert!(
        auth.iter().all(|e| !e.message.contains(&created.token)),
        "{auth:?}"
    );

    engine
        .auth()
        .revoke_api_token(&admin, created.info.id)
        .await
        .unwrap();
    assert!(engine
        .auth()
        .api_token_caller(&created.token)
        .await
        .unwrap()
        .is_none());
    assert!(engine
        .auth()
        .api_token_caller(&second.token)
        .await
        .unwrap()
        .is_some());
    match engine
        .auth()
        .revoke_api_token(&admin, created.info.id)
        .await
    {
        Err(AuthError::NotFound(msg)) => {
            assert!(msg.contains(&created.info.id.to_string()), "{msg}")
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert_eq!(engine.auth().api_tokens(&admin).await.unwrap().len(), 1);

    for bad in ["", "   ", &"x".repeat(65)] {
        match engine.auth().create_api_token(&admin, bad).await {
            Err(AuthError::Invalid(_)) => {}
            other => panic!("name {bad:?}: expected Invalid, got {other:?}"),
        }
    }
    assert_eq!(engine.auth().api_tokens(&admin).await.unwrap().len(), 1);
}

// -- health and ComfyUI ----------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn health_is_ok_while_comfyui_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path());
    let comfy_url = config.comfyui_url.clone();
    let (engine, _) = start(config).await;

    let report = engine.status().health().await;
    assert_eq!(report.status, "ok", "{report:?}");
    assert_eq!(report.version, engine::VERSION);
    assert!(report.database.ok, "{report:?}");
    assert!(report.workspace.ok, "{report:?}");
    assert!(!report.comfyui.reachable, "{report:?}");
    assert_eq!(report.comfyui.url, comfy_url);
    let error = report.comfyui.error.as_deref().expect("an error text");
    assert!(!error.trim().is_empty());
    assert_eq!(report.comfyui.version, None);
    assert_eq!(report.comfyui.queue_remaining, None);
    serde_json::to_value(&report).unwrap();
}

#[derive(Clone, Default)]
struct ComfyStandIn {
    origin_seen: Arc<AtomicBool>,
    requests: Arc<Mutex<Vec<String>>>,
    system_stats: Arc<String>,
    prompt: Arc<String>,
}

impl ComfyStandIn {
    fn note(&self, path: &str, headers: &HeaderMap) {
        if headers.contains_key(header::ORIGIN) {
            self.origin_seen.store(true, Ordering::SeqCst);
        }
        self.requests.lock().unwrap().push(path.to_string());
    }
}

fn json_response(body: &str) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn comfy_system_stats(State(s): State<ComfyStandIn>, headers: HeaderMap) -> Response {
    s.note("/system_stats", &headers);
    json_response(&s.system_stats)
}

async fn comfy_prompt(State(s): State<ComfyStandIn>, headers: HeaderMap) -> Response {
    s.note("/prompt", &headers);
    json_response(&s.prompt)
}

#[tokio::test(flavor = "multi_thread")]
async fn comfyui_status_from_a_stand_in_server() {
    let stand_in = ComfyStandIn {
        system_stats: Arc::new(fixture_body_raw("get_system_stats.json")),
        prompt: Arc::new(fixture_body_raw("get_prompt_busy.json")),
        ..ComfyStandIn::default()
    };
    let router = Router::new()
        .route("/system_stats", get(comfy_system_stats))
        .route("/prompt", get(comfy_prompt))
        .with_state(stand_in.clone());
    let url = serve(router).await;

    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        comfyui_url: url.clone(),
        ..test_config(dir.path())
    };
    let (engine, _) = start(config).await;

    let status = engine.status().comfy_status().await;
    assert!(status.reachable, "{status:?}");
    assert_eq!(status.url, url);
    assert_eq!(status.version.as_deref(), Some("0.3.64"));
    assert_eq!(status.queue_remaining, Some(3));
    assert_eq!(status.error, None);
    assert!(status.checked_at_ms > 0);

    let mut requests = stand_in.requests.lock().unwrap().clone();
    requests.sort();
    assert_eq!(
        requests,
        ["/prompt", "/system_stats"],
        "both endpoints asked once"
    );
    assert!(
        !stand_in.origin_seen.load(Ordering::SeqCst),
        "no Origin header may be sent to ComfyUI"
    );

    // Health reports the same ComfyUI, from the cache.
    let health = engine.status().health().await;
    assert!(health.comfyui.reachable);
    assert_eq!(health.comfyui.version.as_deref(), Some("0.3.64"));
    assert_eq!(
        stand_in.requests.lock().unwrap().len(),
        2,
        "served from the cache"
    );

    // Control: the stand-in does notice an Origin header when one is sent.
    reqwest::Client::new()
        .get(format!("{url}/prompt"))
        .header("Origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert!(
        stand_in.origin_seen.load(Ordering::SeqCst),
        "the Origin detector works"
    );
}

// -- Hugging Face ----------------------------------------------------------------------------

const HF_GOOD: &str = "hf_goodTokenForIntegrationTests0abcd";
const HF_BAD: &str = "hf_badTokenForIntegrationTests00wxyz";

#[derive(Clone, Default)]
struct HfStandIn {
    authorizations: Arc<Mutex<Vec<Option<String>>>>,
    calls: Arc<AtomicUsize>,
}

async fn hf_whoami(State(s): State<HfStandIn>, headers: HeaderMap) -> Response {
    s.calls.fetch_add(1, Ordering::SeqCst);
    let auth = headers
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or("<not ascii>").to_string());
    s.authorizations.lock().unwrap().push(auth.clone());
    if auth.as_deref() == Some(&format!("Bearer {HF_GOOD}")) {
        (
            StatusCode::OK,
            axum::Json(serde_json::json!({
                "type": "user",
                "name": "alice",
                "auth": {"accessToken": {"displayName": "pod", "role": "read"}}
            })),
        )
            .into_response()
    } else {
        (
            StatusCode::UNAUTHORIZED,
            axum::Json(serde_json::json!({"error": "Invalid credentials in Authorization header"})),
        )
            .into_response()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn hugging_face_token_check_against_a_stand_in() {
    let stand_in = HfStandIn::default();
    let url = serve(
        Router::new()
            .route("/api/whoami-v2", get(hf_whoami))
            .with_state(stand_in.clone()),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (engine, _) = start(Config {
        hf_base_url: url,
        ..test_config(dir.path())
    })
    .await;

    // No token: nothing is sent.
    let check = engine.settings().check_hf_token().await;
    assert!(!check.valid);
    assert_eq!(check.user, None);
    assert!(
        check.message.contains("No Hugging Face token"),
        "{}",
        check.message
    );
    assert_eq!(stand_in.calls.load(Ordering::SeqCst), 0);

    engine
        .settings()
        .update(SettingsPatch {
            hf_token: Some(HF_GOOD.into()),
            ..patch()
        })
        .await
        .unwrap();
    let check = engine.settings().check_hf_token().await;
    assert!(check.valid, "{check:?}");
    assert_eq!(check.user.as_deref(), Some("alice"));
    assert!(check.message.contains("alice"), "{}", check.message);
    assert!(!check.message.contains(HF_GOOD));
    assert_eq!(
        stand_in.authorizations.lock().unwrap().as_slice(),
        [Some(format!("Bearer {HF_GOOD}"))]
    );

    engine
        .settings()
        .update(SettingsPatch {
            hf_token: Some(HF_BAD.into()),
            ..patch()
        })
        .await
        .unwrap();
    let check = engine.settings().check_hf_token().await;
    assert!(!check.valid, "{check:?}");
    assert_eq!(check.user, None);
    assert!(check.message.contains("rejected"), "{}", check.message);
    assert_eq!(
        stand_in.authorizations.lock().unwrap().as_slice(),
        [
            Some(format!("Bearer {HF_GOOD}")),
            Some(format!("Bearer {HF_BAD}"))
        ]
    );

    // Both checks are in the activity log, the failed one as an error, and no token in clear.
    let entries = all_activity(&engine).await;
    assert!(
        entries
            .iter()
            .any(|e| e.kind == ActivityKind::Settings && e.message.contains("alice")),
        "{entries:?}"
    );
    assert!(
        entries
            .iter()
            .any(|e| e.kind == ActivityKind::Error && e.message.contains("rejected")),
        "{entries:?}"
    );
    assert!(
        entries
            .iter()
            .all(|e| !e.message.contains(HF_GOOD) && !e.message.contains(HF_BAD)),
        "{entries:?}"
    );
}

// -- events and home -------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn settings_changes_are_published() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _) = start(test_config(dir.path())).await;
    let mut rx = engine.events().subscribe();

    engine
        .settings()
        .update(SettingsPatch {
            theme: Some(Theme::Light),
            ..patch()
        })
        .await
        .unwrap();

    let mut activity = None;
    let mut settings = None;
    while activity.is_none() || settings.is_none() {
        let event = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("an event within 5 s")
            .expect("the bus is open");
        match event {
            Event::Activity(entry) => activity = Some(entry),
            Event::Settings(view) => settings = Some(view),
            _ => {}
        }
    }
    let activity = activity.unwrap();
    assert_eq!(activity.kind, ActivityKind::Settings);
    assert!(activity.message.contains("light"), "{activity:?}");
    let settings = settings.unwrap();
    assert_eq!(settings.theme, Theme::Light);
    assert_eq!(settings, engine.settings().view());

    // An update that changes nothing publishes nothing.
    engine
        .settings()
        .update(SettingsPatch {
            theme: Some(Theme::Light),
            ..patch()
        })
        .await
        .unwrap();
    assert!(rx.try_recv().is_err(), "no event for a no-op update");
}

#[tokio::test(flavor = "multi_thread")]
async fn home_status_has_stats_and_newest_activity_first() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _) = start(test_config(dir.path())).await;
    let now = now_ms();
    for i in 0..10i64 {
        engine
            .store()
            .add_activity(
                now - 100_000 + i * 1_000,
                None,
                ActivityKind::System,
                &format!("event {i}"),
            )
            .await
            .unwrap();
    }

    let home = engine
        .status()
        .home_status(&engine.auth().open_caller())
        .await
        .unwrap();
    assert!(home.stats.memory.limit_bytes > 0, "{:?}", home.stats.memory);
    assert!(home.stats.sampled_at_ms > 0);
    assert!(!home.comfy.reachable);
    assert!(!home.recent_activity.is_empty());
    assert!(home.recent_activity.len() <= 10);
    assert_eq!(
        home.recent_activity[0].message, "event 9",
        "{:?}",
        home.recent_activity
    );
    assert!(
        home.recent_activity
            .windows(2)
            .all(|w| w[0].at_ms >= w[1].at_ms),
        "newest first: {:?}",
        home.recent_activity
    );
}

/// Each guess against the generated (argon2) password awaits a blocking verification between the
/// limiter check and the recorded failure, so concurrent guesses must not all pass the check.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_failed_logins_cannot_exceed_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        host: "0.0.0.0".parse().unwrap(),
        ..test_config(dir.path())
    };
    let (engine, report) = start(config).await;
    assert!(report.generated_password.is_some());

    // Twenty guesses fired at once from one client: at most five may be checked.
    let attempts: Vec<_> = (0..20)
        .map(|_| {
            let engine = Arc::clone(&engine);
            tokio::spawn(async move {
                engine
                    .auth()
                    .login("admin", "a-wrong-guess", "9.9.9.9")
                    .await
            })
        })
        .collect();
    let (mut wrong, mut limited) = (0, 0);
    for attempt in attempts {
        match attempt.await.unwrap() {
            Err(LoginError::WrongPassword) => wrong += 1,
            Err(LoginError::RateLimited(_)) => limited += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(wrong + limited, 20);
    assert!(
        wrong <= 5,
        "{wrong} guesses were checked, {limited} refused"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn clearing_activity_leaves_the_log_empty() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _report) = start(test_config(dir.path())).await;
    engine.activity().record(ActivityKind::System, "one").await;
    engine.activity().record(ActivityKind::Auth, "two").await;
    let removed = engine
        .activity()
        .clear(&engine.auth().open_caller())
        .await
        .unwrap();
    assert!(removed >= 2, "removed {removed}");
    let page = engine
        .activity()
        .page(&engine.auth().open_caller(), None, 1, 25)
        .await
        .unwrap();
    assert_eq!(
        page.total, 0,
        "a cleared log reads as empty: {:?}",
        page.entries
    );
}

/// A start-up sync that fails for a passing reason is run again by itself after a growing wait,
/// each wait said in Activity with the next try's time; one that fails for a reason that will
/// not pass, once; and never more than the cap.
#[tokio::test]
async fn a_sync_that_fails_for_a_passing_reason_is_tried_again_by_itself_and_not_forever() {
    use engine::recovery::{retry_transient, SYNC_RETRIES};
    use std::sync::atomic::AtomicU32;
    let dir = tempfile::tempdir().unwrap();
    let (engine, _) = engine::Engine::start(test_config(dir.path()))
        .await
        .unwrap();
    let wait = std::time::Duration::from_millis(5);
    let calls = AtomicU32::new(0);
    let runs = retry_transient("The test sync", wait, engine.activity(), || {
        let n = calls.fetch_add(1, Ordering::SeqCst);
        async move {
            if n < 2 {
                Err("error sending request: connection refused".to_string())
            } else {
                Ok(())
            }
        }
    })
    .await;
    assert_eq!(runs, 3, "two passing failures, then it worked");
    let page = engine
        .store()
        .activity_page(None, None, 1, 50)
        .await
        .unwrap();
    let said: Vec<&str> = page
        .entries
        .iter()
        .map(|e| e.message.as_str())
        .filter(|m| m.starts_with("The test sync failed"))
        .collect();
    assert_eq!(said.len(), 2, "{said:?}");
    assert!(
        said[0].contains("(network problem); trying again at 20"),
        "{said:?}"
    );

    let refused = retry_transient("The refused sync", wait, engine.activity(), || async {
        Err::<(), _>("HTTP 404 Not Found".to_string())
    })
    .await;
    assert_eq!(refused, 1, "a link that is gone is not tried again");

    let capped = retry_transient("The down sync", wait, engine.activity(), || async {
        Err::<(), _>("operation timed out".to_string())
    })
    .await;
    assert_eq!(
        capped,
        SYNC_RETRIES + 1,
        "the first try and the retries, then a person"
    );
    engine.shutdown().await;
}
