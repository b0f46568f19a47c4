//! Accounts against a real SQLite file: adding and naming people, roles, passwords that end
//! sessions, disabling and removing (with their tokens), and workspaces from before accounts
//! migrating without a step.

use crate::common::test_config;

use std::sync::Arc;

use engine::auth::{AuthError, LoginError};
use engine::config::Config;
use engine::model::{ActivityKind, Caller, Role};
use engine::secret::Secret;
use engine::Engine;

async fn start(config: Config) -> Arc<Engine> {
    Engine::start(config).await.expect("engine starts").0
}

fn locked(dir: &std::path::Path) -> Config {
    Config {
        access_password: Some(Secret::new("admin-password")),
        ..test_config(dir)
    }
}

async fn log_in(engine: &Engine, name: &str, password: &str) -> (String, Caller) {
    engine
        .auth()
        .login(name, password, "10.0.0.1")
        .await
        .unwrap_or_else(|e| panic!("{name} logs in: {e}"))
}

async fn session_alive(engine: &Engine, token: &str) -> bool {
    engine.auth().session_caller(token).await.unwrap().is_some()
}

async fn activity_lines(engine: &Engine) -> Vec<String> {
    engine
        .activity()
        .page(
            &engine.auth().open_caller(),
            Some(ActivityKind::Auth),
            1,
            200,
        )
        .await
        .unwrap()
        .entries
        .into_iter()
        .map(|e| e.message)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn users_are_added_named_and_listed() {
    let dir = tempfile::tempdir().unwrap();
    let engine = start(locked(dir.path())).await;
    let admin = engine.auth().open_caller();
    let users = engine.auth().users();
    assert!(users.only_admin_exists().await.unwrap());

    let alice = users
        .add(&admin, "  Alice ", Role::User, None)
        .await
        .expect("alice is added");
    assert_eq!(alice.user.username, "alice", "names are lower-cased");
    assert_eq!(alice.user.role, Role::User);
    assert!(alice.password.len() >= 20, "a generated password");
    assert!(!users.only_admin_exists().await.unwrap());
    let (_, caller) = log_in(&engine, "ALICE", &alice.password).await;
    assert_eq!(caller.username, "alice", "login names are case-insensitive");
    assert_eq!(caller.role, Role::User);

    match users.add(&admin, "alice", Role::Admin, None).await {
        Err(AuthError::Conflict(m)) => assert!(m.contains("alice"), "{m}"),
        other => panic!("a taken name: {other:?}"),
    }
    for bad in ["", "a b", "x/..", &"y".repeat(33)] {
        assert!(
            matches!(
                users.add(&admin, bad, Role::User, None).await,
                Err(AuthError::Invalid(_))
            ),
            "{bad:?} is refused"
        );
    }
    match users
        .add(&admin, "bob", Role::User, Some("short".into()))
        .await
    {
        Err(AuthError::Invalid(m)) => assert!(m.contains("8"), "{m}"),
        other => panic!("a short password: {other:?}"),
    }
    users
        .add(&admin, "bob", Role::Admin, Some("bob-password".into()))
        .await
        .unwrap();

    // A user cannot manage anyone.
    match users.add(&caller, "mallory", Role::Admin, None).await {
        Err(AuthError::Forbidden(_)) => {}
        other => panic!("a user adding a user: {other:?}"),
    }
    assert!(matches!(
        users.list(&caller).await,
        Err(AuthError::Forbidden(_))
    ));

    let list = users.list(&admin).await.unwrap();
    let names: Vec<_> = list.iter().map(|u| u.username.as_str()).collect();
    assert_eq!(names, ["admin", "alice", "bob"]);
    assert!(list[1].last_login_ms.is_some(), "alice's login is recorded");
    assert!(list[2].last_login_ms.is_none());
    let lines = activity_lines(&engine).await.join("\n");
    assert!(lines.contains("admin added user alice (user)"), "{lines}");
    assert!(
        !lines.contains(&alice.password),
        "passwords are never logged"
    );

    // The accounts live in the database: they survive a restart.
    drop(engine);
    let engine = start(locked(dir.path())).await;
    log_in(&engine, "bob", "bob-password").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn passwords_disable_and_remove_end_sessions_and_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let engine = start(locked(dir.path())).await;
    let admin = engine.auth().open_caller();
    let users = engine.auth().users();
    users
        .add(&admin, "alice", Role::User, Some("alice-pass-1".into()))
        .await
        .unwrap();
    let (first, alice) = log_in(&engine, "alice", "alice-pass-1").await;
    let token = engine
        .auth()
        .create_api_token(&alice, "alice's script")
        .await
        .unwrap()
        .token;
    let acts_as = engine.auth().api_token_caller(&token).await.unwrap();
    assert_eq!(acts_as.as_ref().map(|c| c.username.as_str()), Some("alice"));
    assert!(
        engine.auth().api_tokens(&admin).await.unwrap().is_empty(),
        "tokens are per user"
    );

    // Her own password change needs the current one and ends her sessions.
    assert!(matches!(
        users
            .change_own_password(&alice, "not-it", "alice-pass-2")
            .await,
        Err(AuthError::Invalid(_))
    ));
    assert!(session_alive(&engine, &first).await);
    users
        .change_own_password(&alice, "alice-pass-1", "alice-pass-2")
        .await
        .unwrap();
    assert!(!session_alive(&engine, &first).await, "the session ended");
    assert!(matches!(
        engine
            .auth()
            .login("alice", "alice-pass-1", "10.0.0.2")
            .await,
        Err(LoginError::WrongPassword)
    ));
    assert!(
        engine
            .auth()
            .api_token_caller(&token)
            .await
            .unwrap()
            .is_some(),
        "a password change revokes nothing else"
    );

    // An administrator's reset: generated, and her sessions end.
    let (second, _) = log_in(&engine, "alice", "alice-pass-2").await;
    let reset = users.reset_password(&admin, "alice", None).await.unwrap();
    assert!(!session_alive(&engine, &second).await);
    let (third, _) = log_in(&engine, "alice", &reset.password).await;

    // Disabled: sessions end, no login, tokens stop working, until enabled again.
    users.set_disabled(&admin, "alice", true).await.unwrap();
    assert!(!session_alive(&engine, &third).await);
    assert!(matches!(
        engine
            .auth()
            .login("alice", &reset.password, "10.0.0.3")
            .await,
        Err(LoginError::WrongPassword)
    ));
    assert!(engine
        .auth()
        .api_token_caller(&token)
        .await
        .unwrap()
        .is_none());
    users.set_disabled(&admin, "alice", false).await.unwrap();
    assert!(engine
        .auth()
        .api_token_caller(&token)
        .await
        .unwrap()
        .is_some());
    let (fourth, _) = log_in(&engine, "alice", &reset.password).await;

    // Removed: sessions end and tokens are revoked for good, even if the name comes back; her
    // workflows pass to admin.
    let (_, alice) = log_in(&engine, "alice", &reset.password).await;
    let workflow = br#"{"1": {"class_type": "SaveImage", "inputs": {"filename_prefix": "a"}}}"#;
    let imported = engine
        .workflows()
        .import(&alice, "alice-flow.json", workflow)
        .await
        .unwrap();
    assert!(engine.workflows().get(&admin, &imported.id).await.is_ok());
    users.remove(&admin, "alice").await.unwrap();
    let names: Vec<String> = engine
        .workflows()
        .list(&admin)
        .await
        .unwrap()
        .workflows
        .into_iter()
        .map(|w| w.id)
        .collect();
    assert!(
        names
            .iter()
            .any(|id| id.contains("alice (removed)/alice-flow.json")),
        "{names:?}"
    );
    assert!(!session_alive(&engine, &fourth).await);
    assert!(engine
        .auth()
        .api_token_caller(&token)
        .await
        .unwrap()
        .is_none());
    users
        .add(&admin, "alice", Role::User, Some("alice-pass-3".into()))
        .await
        .unwrap();
    assert!(
        engine
            .auth()
            .api_token_caller(&token)
            .await
            .unwrap()
            .is_none(),
        "a new alice does not inherit the old one's tokens"
    );
    let lines = activity_lines(&engine).await.join("\n");
    assert!(lines.contains("admin disabled user alice"), "{lines}");
    assert!(
        lines.contains("admin removed user alice: 1 API token(s) revoked"),
        "{lines}"
    );
    assert!(
        lines.contains("1 workflow(s) now belong to admin"),
        "{lines}"
    );
    assert!(!lines.contains(&token));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_admin_account_stays_and_access_password_is_its_password() {
    let dir = tempfile::tempdir().unwrap();
    let engine = start(locked(dir.path())).await;
    let admin = engine.auth().open_caller();
    let users = engine.auth().users();
    for result in [
        users.remove(&admin, "admin").await.map(|_| ()),
        users.set_disabled(&admin, "admin", true).await.map(|_| ()),
        users
            .set_role(&admin, "admin", Role::User)
            .await
            .map(|_| ()),
    ] {
        assert!(matches!(result, Err(AuthError::Conflict(_))), "{result:?}");
    }
    // ACCESS_PASSWORD is set at every start, so changing it here would be undone: refused.
    match users
        .change_own_password(&admin, "admin-password", "another-one")
        .await
    {
        Err(AuthError::Conflict(m)) => assert!(m.contains("ACCESS_PASSWORD"), "{m}"),
        other => panic!("{other:?}"),
    }
    let (session, _) = log_in(&engine, "admin", "admin-password").await;
    // Another user can be made an administrator, and back.
    users.add(&admin, "carol", Role::User, None).await.unwrap();
    let carol = users.set_role(&admin, "carol", Role::Admin).await.unwrap();
    assert_eq!(carol.role, Role::Admin);
    assert!(matches!(
        users.set_role(&admin, "nobody", Role::Admin).await,
        Err(AuthError::NotFound(_))
    ));

    // A new ACCESS_PASSWORD replaces the old one and ends the sessions opened with it.
    drop(engine);
    let engine = start(Config {
        access_password: Some(Secret::new("new-admin-password")),
        ..test_config(dir.path())
    })
    .await;
    assert!(!session_alive(&engine, &session).await);
    assert!(matches!(
        engine
            .auth()
            .login("admin", "admin-password", "10.0.0.9")
            .await,
        Err(LoginError::WrongPassword)
    ));
    log_in(&engine, "admin", "new-admin-password").await;
}

/// A workspace made by the version before accounts: its generated password, its sessions and
/// its API tokens are admin's after the upgrade, with nothing to do.
#[tokio::test(flavor = "multi_thread")]
async fn a_workspace_from_before_accounts_keeps_its_password_sessions_and_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        host: "0.0.0.0".parse().unwrap(),
        ..test_config(dir.path())
    };
    // The earlier schema: the migrations before 0005, applied by sqlx as that version did.
    let old_migrations = tempfile::tempdir().unwrap();
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    for entry in std::fs::read_dir(&shipped).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        if name.as_str() < "0005" {
            std::fs::copy(&path, old_migrations.path().join(&name)).unwrap();
        }
    }
    let database = config.layout().database();
    std::fs::create_dir_all(database.parent().unwrap()).unwrap();
    let old_hash = engine::auth::hash_password("the-old-generated-pw").unwrap();
    let (session, token) = ("an-old-session-token", "cd_an-old-api-token");
    {
        let pool = sqlx::SqlitePool::connect_with(
            sqlx::sqlite::SqliteConnectOptions::new()
                .filename(&database)
                .create_if_missing(true),
        )
        .await
        .unwrap();
        sqlx::migrate::Migrator::new(old_migrations.path())
            .await
            .unwrap()
            .run(&pool)
            .await
            .unwrap();
        let now = engine::clock::now_ms();
        sqlx::query("INSERT INTO settings (key, value, updated_ms) VALUES ('auth.generated_password_hash', ?, 0)")
            .bind(&old_hash)
            .execute(&pool)
            .await
            .unwrap();
        sqlx::query("INSERT INTO sessions (token_hash, created_ms, expires_ms, last_seen_ms) VALUES (?, ?, ?, ?)")
            .bind(engine::auth::hash_token(session))
            .bind(now)
            .bind(now + 86_400_000)
            .bind(now)
            .execute(&pool)
            .await
            .unwrap();
        sqlx::query("INSERT INTO api_tokens (name, token_hash, hint, created_ms) VALUES ('ci', ?, 'cd_an-old…', ?)")
            .bind(engine::auth::hash_token(token))
            .bind(now)
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    }

    let (engine, report) = Engine::start(config).await.unwrap();
    assert_eq!(report.generated_password, None, "the old password is kept");
    let admin = engine.auth().session_caller(session).await.unwrap();
    assert_eq!(admin.map(|c| c.username), Some("admin".to_string()));
    let by_token = engine.auth().api_token_caller(token).await.unwrap();
    assert_eq!(by_token.map(|c| c.role), Some(Role::Admin));
    log_in(&engine, "admin", "the-old-generated-pw").await;
    assert_eq!(
        engine
            .store()
            .setting("auth.generated_password_hash")
            .await
            .unwrap(),
        None,
        "the hash moved to the admin account"
    );
}
