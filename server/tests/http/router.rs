//! The router driven in-process (`tower::ServiceExt::oneshot`): health, the auth guard on every
//! route, logins, logout, API tokens, settings masking and the fallback.

use crate::common;

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::response::Response;
use axum::Router;
use common::{closed_local_url, harness, session_pair, PASSWORD};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

const HF_TOKEN: &str = "hf_abcdefghijklmnopqrstuvwxyz9876";
const CIVITAI_TOKEN: &str = "0123456789abcdef0123456789abcdef";

/// What came back, with the body read to the end.
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    headers: HeaderMap,
    pub(crate) body: String,
}

impl Reply {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("expected a JSON body ({e}), got {:?}", self.body))
    }

    fn header(&self, name: header::HeaderName) -> Option<&str> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("ASCII header"))
    }

    fn location(&self) -> &str {
        self.header(header::LOCATION).unwrap_or_else(|| {
            panic!(
                "no Location header; status {}, body {:?}",
                self.status, self.body
            )
        })
    }

    fn set_cookie(&self) -> &str {
        self.header(header::SET_COOKIE).unwrap_or_else(|| {
            panic!(
                "no Set-Cookie header; status {}, body {:?}",
                self.status, self.body
            )
        })
    }
}

pub(crate) async fn send(app: &Router, request: Request<Body>) -> Reply {
    let response: Response = app
        .clone()
        .oneshot(request)
        .await
        .expect("the router never fails");
    let (parts, body) = response.into_parts();
    let bytes = body
        .collect()
        .await
        .expect("the body can be read")
        .to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8(bytes.to_vec()).expect("a UTF-8 body"),
    }
}

pub(crate) fn get(path: &str) -> axum::http::request::Builder {
    Request::builder().method(Method::GET).uri(path)
}

fn page(path: &str) -> axum::http::request::Builder {
    get(path).header(
        header::ACCEPT,
        "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8",
    )
}

pub(crate) fn post_json(path: &str, body: &Value) -> Request<Body> {
    Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn with_cookie(mut request: Request<Body>, cookie: &str) -> Request<Body> {
    request
        .headers_mut()
        .insert(header::COOKIE, cookie.parse().unwrap());
    request
}

/// A GET with the session cookie.
fn authed_get(path: &str, cookie: &str) -> Request<Body> {
    with_cookie(get(path).body(Body::empty()).unwrap(), cookie)
}

fn login_form(password: &str, next: &str, client: &str) -> Request<Body> {
    let body = format!("password={password}&next={next}");
    Request::builder()
        .method(Method::POST)
        .uri("/api/auth/login")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header("x-forwarded-for", client)
        .body(Body::from(body))
        .unwrap()
}

fn login_json(password: &str, client: &str) -> Request<Body> {
    Request::builder()
        .method(Method::POST)
        .uri("/api/auth/login")
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-forwarded-for", client)
        .body(Body::from(json!({ "password": password }).to_string()))
        .unwrap()
}

/// Logs in with the form and returns the `comfydeck_session=…` pair for a `Cookie` header.
async fn log_in(app: &Router) -> String {
    let reply = send(app, login_form(PASSWORD, "/settings", "198.51.100.1")).await;
    assert_eq!(
        reply.status,
        StatusCode::SEE_OTHER,
        "login: {:?}",
        reply.body
    );
    session_pair(reply.set_cookie()).expect("login sets the session cookie")
}

fn is_redirect(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::SEE_OTHER | StatusCode::TEMPORARY_REDIRECT | StatusCode::FOUND
    )
}

/// The reply is a redirect whose `Location` starts with `prefix`.
fn assert_redirect(reply: &Reply, prefix: &str) {
    assert!(
        is_redirect(reply.status),
        "expected a redirect, got {}",
        reply.status
    );
    assert!(
        reply.location().starts_with(prefix),
        "redirect to {:?}, expected {prefix:?}…",
        reply.location()
    );
}

/// Replaces `{x}`, `{*x}` and `:x` / `*x` segments with a plain value.
fn concrete(path: &str) -> String {
    let replaced: Vec<String> = path
        .split('/')
        .map(|segment| {
            let name = segment
                .strip_prefix('{')
                .and_then(|s| s.strip_suffix('}'))
                .map(|s| s.trim_start_matches('*'))
                .or_else(|| segment.strip_prefix(':'))
                .or_else(|| segment.strip_prefix('*').filter(|s| !s.is_empty()));
            match name {
                Some(name) => name.to_string(),
                None => segment.to_string(),
            }
        })
        .collect();
    let joined = replaced.join("/");
    if joined.is_empty() {
        "/".to_string()
    } else {
        joined
    }
}

fn assert_login_required(reply: &Reply, what: &str) {
    assert_eq!(
        reply.status,
        StatusCode::UNAUTHORIZED,
        "{what}: body {:?}",
        reply.body
    );
    let body = reply.json();
    assert_eq!(body["login_required"], json!(true), "{what}: body {body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: a message is expected, got {body}"
    );
}

const PUBLIC: &[&str] = &["/health", "/login", "/api/auth/login"];

fn is_api(path: &str) -> bool {
    path.starts_with("/api/") || path == "/ws"
}

// ---------------------------------------------------------------------------------------------

#[test]
fn concrete_paths_replace_parameters() {
    assert_eq!(
        concrete("/models/{id}/files/:name"),
        "/models/id/files/name"
    );
    assert_eq!(concrete("/files/{*rest}"), "/files/rest");
    assert_eq!(concrete("/api/status"), "/api/status");
    assert_eq!(concrete(""), "/");
}

#[test]
fn embedded_leptos_options_load() {
    let options = server::leptos_options();
    assert_eq!(&*options.output_name, "comfydeck");
    assert_eq!(&*options.site_pkg_dir, "pkg");
    assert_eq!(options.site_addr.port(), 8082);
    assert_eq!(options.env, leptos::config::Env::PROD);
}

#[tokio::test(flavor = "multi_thread")]
async fn health_is_public_and_reports_components() {
    for password in [None, Some(PASSWORD)] {
        let h = harness(password).await;
        let reply = send(&h.app, get("/health").body(Body::empty()).unwrap()).await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "password {password:?}: {}",
            reply.body
        );
        assert!(
            reply
                .header(header::CONTENT_TYPE)
                .is_some_and(|ct| ct.starts_with("application/json")),
            "content type {:?}",
            reply.header(header::CONTENT_TYPE)
        );
        assert_eq!(reply.header(header::CACHE_CONTROL), Some("no-store"));
        let body = reply.json();
        assert_eq!(body["status"], "ok", "{body}");
        assert_eq!(body["database"]["ok"], json!(true), "{body}");
        assert_eq!(body["workspace"]["ok"], json!(true), "{body}");
        assert_eq!(body["comfyui"]["reachable"], json!(false), "{body}");
        assert_eq!(body["comfyui"]["url"], json!(h.comfyui_url), "{body}");
        assert_eq!(body["version"], json!(engine::VERSION), "{body}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_non_public_route_requires_a_login() {
    let h = harness(Some(PASSWORD)).await;
    let inventory = server::route_inventory();
    let paths: Vec<String> = inventory.iter().map(|(_, p)| p.clone()).collect();
    for must in [
        "/",
        "/settings",
        "/activity",
        "/api/status",
        "/api/settings/update",
        "/ws",
    ] {
        assert!(
            paths.iter().any(|p| p == must),
            "{must} is missing from the inventory {paths:?}"
        );
    }
    assert!(
        inventory.len() >= 15,
        "the inventory looks too small: {inventory:?}"
    );

    let mut checked = 0;
    for (method, path) in &inventory {
        let path = concrete(path);
        if PUBLIC.contains(&path.as_str()) {
            continue;
        }
        checked += 1;
        let what = format!("{method} {path}");
        if path.starts_with(server::workers::PREFIX) {
            let request = Request::builder()
                .method(method.clone())
                .uri(&path)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from("{}"))
                .unwrap();
            assert_worker_token_required(&send(&h.app, request).await, &what);
            continue;
        }
        let is_page = *method == Method::GET && !is_api(&path);

        // A browser asking for a page is sent to the login page, with the way back.
        if *method == Method::GET {
            let reply = send(
                &h.app,
                page(&path)
                    .method(method.clone())
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
            if is_page {
                assert!(
                    is_redirect(reply.status),
                    "{what} (html): status {} {:?}",
                    reply.status,
                    reply.body
                );
                let location = reply.location();
                assert!(
                    location.starts_with("/login?next="),
                    "{what}: Location {location}"
                );
                assert!(
                    location.contains(&path.replace('?', "%3F")),
                    "{what}: Location {location}"
                );
            } else {
                // API reads asked for as HTML still must not leak data.
                assert!(
                    reply.status == StatusCode::UNAUTHORIZED || is_redirect(reply.status),
                    "{what} (html): status {} {:?}",
                    reply.status,
                    reply.body
                );
            }
        }

        // Everything else gets a JSON 401.
        let mut request = Request::builder().method(method.clone()).uri(&path);
        if *method == Method::POST {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let body = if *method == Method::POST {
            Body::from("{}")
        } else {
            Body::empty()
        };
        let reply = send(&h.app, request.body(body).unwrap()).await;
        assert_login_required(&reply, &what);
        assert_eq!(
            reply.header(header::WWW_AUTHENTICATE),
            Some("Bearer"),
            "{what}"
        );
        assert_eq!(
            reply.header(header::X_CONTENT_TYPE_OPTIONS),
            Some("nosniff"),
            "{what}"
        );

        // A JSON client stays a JSON client.
        let reply = send(
            &h.app,
            Request::builder()
                .method(method.clone())
                .uri(&path)
                .header(header::ACCEPT, "application/json")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_login_required(&reply, &format!("{what} (Accept JSON)"));
    }
    assert!(checked >= 12, "only {checked} routes were checked");

    // A WebSocket handshake without credentials is refused before the upgrade.
    let reply = send(
        &h.app,
        get("/ws")
            .header(header::CONNECTION, "upgrade")
            .header(header::UPGRADE, "websocket")
            .header(header::SEC_WEBSOCKET_VERSION, "13")
            .header(header::SEC_WEBSOCKET_KEY, "dGhlIHNhbXBsZSBub25jZQ==")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_login_required(&reply, "websocket handshake");

    // The public pages really are public.
    let reply = send(&h.app, page("/login").body(Body::empty()).unwrap()).await;
    assert_eq!(reply.status, StatusCode::OK, "/login: {:?}", reply.body);
    assert!(reply.body.contains("<html"), "/login renders a page");
}

/// Logs `username` in over JSON and returns the session cookie pair.
pub(crate) async fn log_in_as(
    app: &Router,
    username: &str,
    password: &str,
    client: &str,
) -> String {
    let request = Request::builder()
        .method(Method::POST)
        .uri("/api/auth/login")
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-forwarded-for", client)
        .body(Body::from(
            json!({ "username": username, "password": password }).to_string(),
        ))
        .unwrap();
    let reply = send(app, request).await;
    assert_eq!(
        reply.status,
        StatusCode::NO_CONTENT,
        "login of {username}: {:?}",
        reply.body
    );
    session_pair(reply.set_cookie()).expect("login sets the session cookie")
}

/// The routes the permission table keeps from users: each answers 403 to one, and anything
/// but 401/403 to an administrator. Every other route answers both roles.
const ADMIN_ONLY: &[&str] = &[
    "/api/users",
    "/api/users/add",
    "/api/users/role",
    "/api/users/reset-password",
    "/api/users/disable",
    "/api/users/remove",
    "/api/settings/hf/validate",
    "/api/activity/clear",
    "/api/presets/install",
    "/api/presets/pause",
    "/api/presets/resume",
    "/api/presets/cancel",
    "/api/presets/remove",
    "/api/downloads/pause",
    "/api/downloads/resume",
    "/api/downloads/cancel",
    "/api/catalog/sync",
    "/api/comfyui/restart",
    "/api/comfy/queue/clear",
    "/api/nodes",
    "/api/nodes/install",
    "/api/nodes/update",
    "/api/nodes/disable",
    "/api/nodes/enable",
    "/api/nodes/remove",
    "/api/restore-points/rollback",
    "/comfyui",
    "/comfyui/",
    "/comfyui/rest",
    "/api/jobs/priority",
    "/api/workers",
    "/api/workers/tokens",
    "/api/workers/tokens/create",
    "/api/workers/tokens/revoke",
];

/// A worker route answers 401 (`unauthorized`, no login asked for) to anyone without a
/// worker token, whatever session comes with the request.
fn assert_worker_token_required(reply: &Reply, what: &str) {
    assert_eq!(
        reply.status,
        StatusCode::UNAUTHORIZED,
        "{what}: {:?}",
        reply.body
    );
    let body = reply.json();
    assert_eq!(body["kind"], json!("unauthorized"), "{what}: {body}");
    assert_eq!(body["login_required"], json!(false), "{what}: {body}");
}

/// Bodies that get past a server function's argument parsing (so the answer is the role's,
/// not a 400 for a missing field), and that change nothing an administrator would miss.
fn matrix_body(path: &str) -> Value {
    match path {
        "/api/users/add" => json!({ "username": "bad name!", "role": "user" }),
        "/api/users/role" => json!({ "username": "nobody", "role": "user" }),
        "/api/users/reset-password" | "/api/users/remove" => json!({ "username": "nobody" }),
        "/api/users/disable" => json!({ "username": "nobody", "disabled": true }),
        "/api/presets/install"
        | "/api/presets/pause"
        | "/api/presets/resume"
        | "/api/presets/remove" => json!({ "id": "no-such-preset" }),
        "/api/presets/cancel" => json!({ "id": "no-such-preset", "delete_parts": false }),
        "/api/downloads/pause" | "/api/downloads/resume" => json!({ "task_id": 999_999 }),
        "/api/downloads/cancel" => json!({ "task_id": 999_999, "delete_part": false }),
        "/api/restore-points/rollback" => json!({ "id": 999_999 }),
        "/api/settings/update" => json!({ "patch": { "theme": "dark" } }),
        "/api/jobs/priority" => json!({ "id": 999_999, "priority": 1 }),
        "/api/jobs/cancel" => json!({ "id": 999_999 }),
        "/api/workers/tokens/create" => json!({ "name": "bad name!" }),
        "/api/workers/tokens/revoke" => json!({ "name": "nobody" }),
        "/api/nodes/update" | "/api/nodes/disable" | "/api/nodes/enable" | "/api/nodes/remove" => {
            json!({ "id": "no-such-pack" })
        }
        _ => json!({}),
    }
}

/// The permission matrix: every route of the inventory × {no session, user, admin}. Without a
/// session every non-public route answers 401 (JSON); a user gets 403 from exactly the routes
/// of [`ADMIN_ONLY`] and reaches every other; an administrator reaches all of them.
#[tokio::test(flavor = "multi_thread")]
async fn every_route_answers_each_role_as_the_permission_table_says() {
    let h = harness(Some(PASSWORD)).await;
    let open = h.engine.auth().open_caller();
    h.engine
        .auth()
        .users()
        .add(
            &open,
            "alice",
            engine::model::Role::User,
            Some("alice-password-1".into()),
        )
        .await
        .unwrap();
    let admin = log_in(&h.app).await;
    let alice = log_in_as(&h.app, "alice", "alice-password-1", "198.51.100.7").await;

    let inventory = server::route_inventory();
    let paths: Vec<String> = inventory.iter().map(|(_, p)| concrete(p)).collect();
    for listed in ADMIN_ONLY {
        assert!(
            paths.iter().any(|p| p == listed),
            "{listed} is not in the inventory any more: update ADMIN_ONLY"
        );
    }
    let mut forbidden_to_user = Vec::new();
    for (method, path) in &inventory {
        let path = concrete(path);
        if path == server::auth::LOGOUT_PATH || path == server::auth::LOGIN_PATH {
            continue;
        }
        let request = || {
            if *method == Method::POST {
                post_json(&path, &matrix_body(&path))
            } else {
                get(&path).body(Body::empty()).unwrap()
            }
        };
        let answer = |cookie: Option<String>| {
            let app = h.app.clone();
            let request = request();
            let what = format!("{method} {path}");
            async move {
                let request = match &cookie {
                    Some(c) => with_cookie(request, c),
                    None => request,
                };
                tokio::time::timeout(std::time::Duration::from_secs(30), send(&app, request))
                    .await
                    .unwrap_or_else(|_| panic!("{what} did not answer within 30 s"))
            }
        };
        let what = format!("{method} {path}");
        if path.starts_with(server::workers::PREFIX) {
            for cookie in [None, Some(&alice), Some(&admin)] {
                let request = Request::builder()
                    .method(method.clone())
                    .uri(&path)
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from("{}"))
                    .unwrap();
                let request = match cookie {
                    Some(c) => with_cookie(request, c),
                    None => request,
                };
                assert_worker_token_required(&send(&h.app, request).await, &what);
            }
            continue;
        }
        // No session.
        let anonymous = answer(None).await;
        if PUBLIC.contains(&path.as_str()) {
            assert_ne!(anonymous.status, StatusCode::UNAUTHORIZED, "{what}");
        } else if path == "/login" {
            assert_eq!(anonymous.status, StatusCode::OK, "{what}");
        } else {
            assert_login_required(&anonymous, &format!("{what} without a session"));
        }
        // A user.
        let user = answer(Some(alice.clone())).await;
        assert_ne!(
            user.status,
            StatusCode::UNAUTHORIZED,
            "{what} as alice: {:?}",
            user.body
        );
        if ADMIN_ONLY.contains(&path.as_str()) {
            assert_eq!(
                user.status,
                StatusCode::FORBIDDEN,
                "{what} as alice: {:?}",
                user.body
            );
            assert_eq!(user.json()["kind"], json!("forbidden"), "{what} as alice");
            forbidden_to_user.push(path.clone());
        } else {
            assert_ne!(
                user.status,
                StatusCode::FORBIDDEN,
                "{what} as alice (not an administrator's route): {:?}",
                user.body
            );
        }
        // The administrator.
        let admin_reply = answer(Some(admin.clone())).await;
        assert!(
            admin_reply.status != StatusCode::UNAUTHORIZED
                && admin_reply.status != StatusCode::FORBIDDEN,
            "{what} as admin: {} {:?}",
            admin_reply.status,
            admin_reply.body
        );
        if path == "/login" {
            // Logged-in visitors are sent home.
            for reply in [&user, &admin_reply] {
                assert!(is_redirect(reply.status), "{what}: {}", reply.status);
                assert_eq!(reply.location(), "/");
            }
        }
    }
    forbidden_to_user.sort();
    forbidden_to_user.dedup();
    let mut expected: Vec<String> = ADMIN_ONLY.iter().map(|p| p.to_string()).collect();
    expected.sort();
    assert_eq!(
        forbidden_to_user, expected,
        "every admin-only route was tried"
    );
    // The matrix changed nothing: alice is still there and still a user.
    let users = h.engine.auth().users().list(&open).await.unwrap();
    assert!(users.iter().any(|u| u.username == "alice" && !u.disabled));
}

#[tokio::test(flavor = "multi_thread")]
async fn login_sets_a_session_cookie_that_opens_pages_and_api() {
    let h = harness(Some(PASSWORD)).await;

    let reply = send(&h.app, login_form(PASSWORD, "/settings", "198.51.100.2")).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{:?}", reply.body);
    assert_eq!(reply.location(), "/settings");
    let set_cookie = reply.set_cookie().to_string();
    assert!(set_cookie.starts_with("comfydeck_session="), "{set_cookie}");
    assert!(set_cookie.contains("; HttpOnly"), "{set_cookie}");
    assert!(set_cookie.contains("; SameSite=Lax"), "{set_cookie}");
    assert!(set_cookie.contains("; Path=/"), "{set_cookie}");
    assert!(
        !set_cookie.contains("Secure"),
        "plain http gets no Secure flag: {set_cookie}"
    );
    let cookie = session_pair(&set_cookie).expect("a session value");
    assert!(
        cookie.len() > "comfydeck_session=".len() + 20,
        "a long random token: {cookie}"
    );

    // Behind the pod's HTTPS proxy the cookie is Secure.
    let mut request = login_form(PASSWORD, "/", "198.51.100.2");
    request
        .headers_mut()
        .insert("x-forwarded-proto", "https".parse().unwrap());
    let reply = send(&h.app, request).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(reply.location(), "/");
    let secure_cookie = reply.set_cookie();
    assert!(secure_cookie.contains("; Secure"), "{secure_cookie}");
    assert!(secure_cookie.contains("; HttpOnly"), "{secure_cookie}");
    assert_ne!(
        session_pair(secure_cookie).unwrap(),
        cookie,
        "each login gets its own session"
    );

    // An open redirect is refused: `next` must stay on this site.
    let reply = send(
        &h.app,
        login_form(PASSWORD, "//evil.example/", "198.51.100.2"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(reply.location(), "/");

    let reply = send(&h.app, authed_get("/api/status", &cookie)).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let status = reply.json();
    assert!(
        status["stats"]["sampled_at_ms"]
            .as_i64()
            .is_some_and(|t| t > 0),
        "{status}"
    );
    assert_eq!(status["comfy"]["reachable"], json!(false), "{status}");
    assert!(status["recent_activity"].is_array(), "{status}");

    let reply = send(
        &h.app,
        with_cookie(page("/").body(Body::empty()).unwrap(), &cookie),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert!(
        reply
            .header(header::CONTENT_TYPE)
            .is_some_and(|ct| ct.starts_with("text/html")),
        "{:?}",
        reply.header(header::CONTENT_TYPE)
    );
    assert!(reply.body.contains("data-theme="), "{}", reply.body);
    assert_eq!(
        reply.header(header::X_CONTENT_TYPE_OPTIONS),
        Some("nosniff")
    );

    // JSON logins answer 204 and set the same kind of cookie.
    let reply = send(&h.app, login_json(PASSWORD, "198.51.100.2")).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{:?}", reply.body);
    assert!(session_pair(reply.set_cookie()).is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_passwords_are_refused_and_rate_limited() {
    let h = harness(Some(PASSWORD)).await;
    let client = "203.0.113.7";

    let reply = send(&h.app, login_form("not-the-password", "/activity", client)).await;
    assert!(is_redirect(reply.status), "{}", reply.status);
    let location = reply.location();
    assert!(location.starts_with("/login?error=wrong"), "{location}");
    assert!(location.contains("next=/activity"), "{location}");
    assert!(
        reply.header(header::SET_COOKIE).is_none(),
        "no cookie for a wrong password"
    );

    for attempt in 2..=5 {
        let reply = send(&h.app, login_json("still-wrong", client)).await;
        assert_eq!(
            reply.status,
            StatusCode::UNAUTHORIZED,
            "attempt {attempt}: {:?}",
            reply.body
        );
        assert!(reply.json()["message"]
            .as_str()
            .unwrap()
            .contains("wrong username or password"));
        assert!(reply.header(header::SET_COOKIE).is_none());
    }

    // Even the right password is refused now, with how long to wait.
    let reply = send(&h.app, login_json(PASSWORD, client)).await;
    assert_eq!(
        reply.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{:?}",
        reply.body
    );
    let retry: u64 = reply
        .header(header::RETRY_AFTER)
        .expect("Retry-After")
        .parse()
        .expect("Retry-After in seconds");
    assert!((1..=300).contains(&retry), "Retry-After {retry}");
    assert!(reply.header(header::SET_COOKIE).is_none());
    assert!(reply.json()["message"]
        .as_str()
        .unwrap()
        .contains("too many"));

    // The form gets a redirect that says so.
    let reply = send(&h.app, login_form(PASSWORD, "/", client)).await;
    assert_redirect(&reply, "/login?error=limited");
    assert!(reply.header(header::SET_COOKIE).is_none());

    // The username counts too: admin's name is limited from another client as well, while
    // another name from that client is only checked.
    let reply = send(&h.app, login_json(PASSWORD, "203.0.113.8")).await;
    assert_eq!(
        reply.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{:?}",
        reply.body
    );
    let other_name = Request::builder()
        .method(Method::POST)
        .uri("/api/auth/login")
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-forwarded-for", "203.0.113.8")
        .body(Body::from(
            json!({ "username": "someone", "password": PASSWORD }).to_string(),
        ))
        .unwrap();
    let reply = send(&h.app, other_name).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{:?}", reply.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn logout_ends_the_session() {
    let h = harness(Some(PASSWORD)).await;
    let cookie = log_in(&h.app).await;
    let status = || get("/api/status").body(Body::empty()).unwrap();
    assert_eq!(
        send(&h.app, with_cookie(status(), &cookie)).await.status,
        StatusCode::OK
    );

    let logout = Request::builder()
        .method(Method::POST)
        .uri("/api/auth/logout")
        .body(Body::empty())
        .unwrap();
    let reply = send(&h.app, with_cookie(logout, &cookie)).await;
    assert!(
        is_redirect(reply.status),
        "{} {:?}",
        reply.status,
        reply.body
    );
    assert_eq!(reply.location(), "/login");
    let cleared = reply.set_cookie();
    assert!(cleared.starts_with("comfydeck_session=;"), "{cleared}");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");

    let reply = send(&h.app, with_cookie(status(), &cookie)).await;
    assert_login_required(&reply, "old cookie after logout");
    let reply = send(
        &h.app,
        with_cookie(page("/settings").body(Body::empty()).unwrap(), &cookie),
    )
    .await;
    assert_redirect(&reply, "/login?next=");
}

#[tokio::test(flavor = "multi_thread")]
async fn api_tokens_authenticate_until_revoked() {
    let h = harness(Some(PASSWORD)).await;
    let cookie = log_in(&h.app).await;

    let reply = send(
        &h.app,
        with_cookie(
            post_json("/api/tokens/create", &json!({ "name": "ci" })),
            &cookie,
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let created = reply.json();
    let token = created["token"]
        .as_str()
        .expect("the token is shown once")
        .to_string();
    assert!(token.starts_with("cd_"), "{token}");
    assert!(token.len() > 20, "{token}");
    assert_eq!(created["info"]["name"], "ci", "{created}");
    let id = created["info"]["id"].as_i64().expect("an id");

    // The list shows the token by name and hint, never in full.
    let reply = send(&h.app, authed_get("/api/settings", &cookie)).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert!(
        !reply.body.contains(&token),
        "the settings list leaks the token: {}",
        reply.body
    );
    let listed = reply.json();
    assert!(
        listed["api_tokens"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == json!(id)),
        "{listed}"
    );

    let bearer = |token: &str| {
        get("/api/status")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap()
    };
    let reply = send(&h.app, bearer(&token)).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert!(reply.json()["stats"].is_object());

    let reply = send(&h.app, bearer("cd_this-is-not-a-real-token-at-all")).await;
    assert_login_required(&reply, "garbage bearer");
    let reply = send(&h.app, bearer("garbage")).await;
    assert_login_required(&reply, "garbage bearer without prefix");

    let revoke = || {
        with_cookie(
            post_json("/api/tokens/revoke", &json!({ "id": id })),
            &cookie,
        )
    };
    let reply = send(&h.app, revoke()).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);

    let reply = send(&h.app, bearer(&token)).await;
    assert_login_required(&reply, "revoked bearer");

    // Revoking twice names the problem.
    let reply = send(&h.app, revoke()).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{:?}", reply.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn settings_round_trip_masks_tokens_everywhere() {
    let h = harness(None).await;
    let patch = json!({ "patch": { "theme": "dark", "hf_token": HF_TOKEN, "civitai_token": CIVITAI_TOKEN } });
    let no_full_tokens = |what: &str, body: &str| {
        assert!(
            !body.contains(HF_TOKEN),
            "{what} leaks the Hugging Face token: {body}"
        );
        assert!(
            !body.contains(CIVITAI_TOKEN),
            "{what} leaks the CivitAI token: {body}"
        );
        // Nor a long piece of either.
        assert!(
            !body.contains("abcdefghijklmnop"),
            "{what} leaks part of a token: {body}"
        );
        assert!(
            !body.contains("0123456789abcdef"),
            "{what} leaks part of a token: {body}"
        );
    };

    let reply = send(&h.app, post_json("/api/settings/update", &patch)).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    no_full_tokens("the update response", &reply.body);
    let view = reply.json();
    assert_eq!(view["theme"], "dark", "{view}");
    assert_eq!(view["hf_token_masked"], "hf_…9876", "{view}");
    assert_eq!(view["civitai_token_masked"], "…cdef", "{view}");

    let reply = send(&h.app, get("/api/settings").body(Body::empty()).unwrap()).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    no_full_tokens("GET /api/settings", &reply.body);
    let data = reply.json();
    assert_eq!(data["settings"]["theme"], "dark", "{data}");
    assert_eq!(data["settings"]["hf_token_masked"], "hf_…9876", "{data}");
    assert_eq!(data["settings"]["civitai_token_masked"], "…cdef", "{data}");
    assert_eq!(data["auth_mode"], "open", "{data}");

    let reply = send(&h.app, page("/settings").body(Body::empty()).unwrap()).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    no_full_tokens("the settings page", &reply.body);
    assert!(
        reply.body.contains(r#"data-theme="dark""#),
        "{}",
        reply.body
    );
    assert!(
        reply.body.contains("hf_…9876"),
        "the page shows the mask: {}",
        reply.body
    );
    assert!(
        reply.body.contains("…cdef"),
        "the page shows the mask: {}",
        reply.body
    );

    let reply = send(&h.app, get("/api/activity").body(Body::empty()).unwrap()).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    no_full_tokens("the activity log", &reply.body);
    assert!(
        reply.body.contains("hf_…9876"),
        "the change is recorded, masked: {}",
        reply.body
    );
    let reply = send(
        &h.app,
        get("/api/activity?kind=settings&page=1")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    no_full_tokens("the filtered activity log", &reply.body);

    // Bad input is a 400 that says what is wrong, and changes nothing.
    let reply = send(
        &h.app,
        post_json(
            "/api/settings/update",
            &json!({ "patch": { "activity_retention_days": 0 } }),
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{:?}", reply.body);
    let message = reply.json()["message"]
        .as_str()
        .expect("a message")
        .to_lowercase();
    assert!(message.contains("retention"), "{message}");
    let reply = send(&h.app, get("/api/settings").body(Body::empty()).unwrap()).await;
    assert_eq!(
        reply.json()["settings"]["activity_retention_days"],
        json!(30)
    );

    let reply = send(
        &h.app,
        get("/api/activity?kind=bogus").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{:?}", reply.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_input_is_a_client_error() {
    let h = harness(None).await;
    let request = Request::builder()
        .method(Method::POST)
        .uri("/api/settings/update")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "application/json")
        .body(Body::from(r#"{"patch": {"theme": "#))
        .unwrap();
    let reply = send(&h.app, request).await;
    assert!(
        reply.status.is_client_error(),
        "malformed JSON: {} {:?}",
        reply.status,
        reply.body
    );

    let reply = send(
        &h.app,
        post_json(
            "/api/settings/update",
            &json!({ "patch": { "theme": "purple" } }),
        ),
    )
    .await;
    assert!(
        reply.status.is_client_error(),
        "unknown theme: {} {:?}",
        reply.status,
        reply.body
    );
    // The error is the caller's, so it must not read like a server fault either.
    let message = reply.json()["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(!message.contains("results"), "{message}");

    // Query parameters of the wrong type are the same kind of mistake.
    let reply = send(
        &h.app,
        get("/api/activity?page=abc").body(Body::empty()).unwrap(),
    )
    .await;
    assert!(
        reply.status.is_client_error(),
        "bad page number: {} {:?}",
        reply.status,
        reply.body
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn open_server_needs_no_login() {
    let h = harness(None).await;
    let reply = send(&h.app, page("/login").body(Body::empty()).unwrap()).await;
    assert!(is_redirect(reply.status), "{}", reply.status);
    assert_eq!(reply.location(), "/");

    let reply = send(&h.app, get("/api/status").body(Body::empty()).unwrap()).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert!(reply.json()["stats"]["sampled_at_ms"]
        .as_i64()
        .is_some_and(|t| t > 0));

    let reply = send(&h.app, get("/api/session").body(Body::empty()).unwrap()).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.json()["auth_mode"], "open");

    let reply = send(&h.app, page("/").body(Body::empty()).unwrap()).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert!(
        reply.body.contains(r#"data-theme="system""#),
        "default theme: {}",
        reply.body
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_pages_are_not_found() {
    let open = harness(None).await;
    let reply = send(
        &open.app,
        page("/no-such-page").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(
        reply.status,
        StatusCode::NOT_FOUND,
        "open server: {:?}",
        reply.body
    );
    assert!(reply.body.contains("Page not found"), "{}", reply.body);
    assert_eq!(
        reply.header(header::X_CONTENT_TYPE_OPTIONS),
        Some("nosniff")
    );

    let locked = harness(Some(PASSWORD)).await;
    let cookie = log_in(&locked.app).await;
    let reply = send(
        &locked.app,
        with_cookie(page("/no-such-page").body(Body::empty()).unwrap(), &cookie),
    )
    .await;
    assert_eq!(
        reply.status,
        StatusCode::NOT_FOUND,
        "with a session: {:?}",
        reply.body
    );

    // Without a session the guard answers first and reveals nothing about what exists.
    let reply = send(
        &locked.app,
        page("/no-such-page").body(Body::empty()).unwrap(),
    )
    .await;
    assert_redirect(&reply, "/login?next=/no-such-page");
}

#[tokio::test(flavor = "multi_thread")]
async fn security_headers_are_set() {
    let h = harness(Some(PASSWORD)).await;
    let cookie = log_in(&h.app).await;
    let replies = [
        (
            "health",
            send(&h.app, get("/health").body(Body::empty()).unwrap()).await,
        ),
        (
            "401",
            send(&h.app, get("/api/status").body(Body::empty()).unwrap()).await,
        ),
        (
            "login page",
            send(&h.app, page("/login").body(Body::empty()).unwrap()).await,
        ),
        (
            "page",
            send(
                &h.app,
                with_cookie(page("/activity").body(Body::empty()).unwrap(), &cookie),
            )
            .await,
        ),
        (
            "api",
            send(&h.app, authed_get("/api/status", &cookie)).await,
        ),
    ];
    for (what, reply) in replies {
        assert_eq!(
            reply.header(header::X_CONTENT_TYPE_OPTIONS),
            Some("nosniff"),
            "{what}"
        );
        assert_eq!(
            reply.header(header::REFERRER_POLICY),
            Some("same-origin"),
            "{what}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_models_api_lists_the_catalog_and_names_bad_requests() {
    let h = harness(None).await;
    let reply = send(&h.app, get("/api/models").body(Body::empty()).unwrap()).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let overview = reply.json();
    let presets = overview["presets"].as_array().expect("presets");
    assert_eq!(presets.len(), 61, "every built-in preset");
    let flux = presets
        .iter()
        .find(|p| p["id"] == "flux-dev-basic")
        .expect("flux-dev-basic");
    assert_eq!(flux["state"], "not_installed");
    assert!(flux["aliases"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a == "FLUX_DEV_BASIC"));
    assert!(overview["space"]["free_bytes"].as_u64().is_some());

    let reply = send(
        &h.app,
        post_json("/api/presets/install", &json!({"id": "no-such-preset"})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{:?}", reply.body);
    assert_eq!(reply.json()["message"], "unknown preset \"no-such-preset\"");

    let reply = send(
        &h.app,
        post_json("/api/downloads/pause", &json!({"task_id": 4242})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{:?}", reply.body);

    let reply = send(&h.app, post_json("/api/presets/install", &json!({}))).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{:?}", reply.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_preset_that_does_not_fit_is_refused_with_409_and_the_sizes() {
    let workspace = tempfile::tempdir().unwrap();
    let config = engine::config::Config {
        comfyui_url: closed_local_url(),
        hf_base_url: closed_local_url(),
        // A 5 GB volume: FLUX Dev (about 17.5 GB) cannot fit.
        volume_quota_bytes: Some(5_000_000_000),
        ..engine::config::Config::with_workspace(workspace.path())
    };
    let (engine, _) = engine::Engine::start(config).await.unwrap();
    let app = server::router(server::AppState {
        engine,
        leptos: server::leptos_options(),
    });
    let reply = send(
        &app,
        post_json("/api/presets/install", &json!({"id": "FLUX_DEV_BASIC"})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CONFLICT, "{:?}", reply.body);
    let message = reply.json()["message"].as_str().unwrap().to_string();
    assert!(
        message.starts_with("FLUX Dev needs 17.5 GB more, but only"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_large_workflow_can_be_imported_and_garbage_is_refused() {
    use base64::Engine as _;
    let h = harness(None).await;
    // A 3 MB UI workflow: larger than axum's default body limit once base64-encoded.
    let workflow = json!({
        "nodes": [{"id": 1, "type": "Note", "mode": 0, "inputs": [], "outputs": [],
                   "widgets_values": ["x".repeat(3_000_000)]}],
        "links": []
    });
    let content = base64::engine::general_purpose::STANDARD.encode(workflow.to_string());
    let reply = send(
        &h.app,
        post_json(
            "/api/workflows/import",
            &json!({"file_name": "big.json", "content_base64": content}),
        ),
    )
    .await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "{:?}",
        &reply.body[..reply.body.len().min(300)]
    );
    assert_eq!(reply.json()["id"], "user:big.json");

    let garbage = base64::engine::general_purpose::STANDARD.encode(b"not a workflow at all");
    let reply = send(
        &h.app,
        post_json(
            "/api/workflows/import",
            &json!({"file_name": "junk.png", "content_base64": garbage}),
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{:?}", reply.body);
    assert!(!reply.json()["message"].as_str().unwrap().is_empty());
}

// -- gallery -----------------------------------------------------------------------------------

fn recorded_output_png() -> Vec<u8> {
    std::fs::read(comfy_standin::fixture_dir().join("view_output.png"))
        .expect("the recorded view_output.png")
}

async fn send_bytes(app: &Router, request: Request<Body>) -> (StatusCode, HeaderMap, Vec<u8>) {
    let response = app.clone().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes().to_vec();
    (parts.status, parts.headers, bytes)
}

#[tokio::test(flavor = "multi_thread")]
async fn gallery_lists_serves_and_deletes_outputs_behind_the_login() {
    let h = harness(Some(PASSWORD)).await;
    let cookie = log_in(&h.app).await;
    let output = h.engine.gallery().root().to_path_buf();
    let png = recorded_output_png();
    std::fs::create_dir_all(output.join("run 1")).unwrap();
    std::fs::write(output.join("run 1/fixture_invert_00001_.png"), &png).unwrap();
    let video: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(output.join("clip.webm"), &video).unwrap();
    h.engine.gallery().current().scan().await.unwrap();

    // Without a session: nothing.
    for path in [
        "/api/gallery",
        "/api/gallery/file/clip.webm",
        "/api/gallery/thumb/run%201/fixture_invert_00001_.png",
    ] {
        let reply = send(&h.app, get(path).body(Body::empty()).unwrap()).await;
        assert_login_required(&reply, path);
    }

    let list = send(&h.app, authed_get("/api/gallery?kind=image", &cookie)).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    let list = list.json();
    assert_eq!(list["total"], 1, "{list}");
    let item = &list["items"][0];
    assert_eq!(item["path"], "run 1/fixture_invert_00001_.png");
    assert_eq!(item["width"], 64);
    let id = item["id"].as_i64().unwrap();

    let detail = send(
        &h.app,
        authed_get(&format!("/api/gallery/item?id={id}"), &cookie),
    )
    .await;
    assert_eq!(detail.status, StatusCode::OK, "{}", detail.body);
    assert_eq!(
        detail.json()["meta"]["prompt"]["3"]["class_type"],
        "SaveImage"
    );

    // The original, byte for byte.
    let (status, headers, body) = send_bytes(
        &h.app,
        authed_get(
            "/api/gallery/file/run%201/fixture_invert_00001_.png",
            &cookie,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "image/png");
    assert_eq!(body, png);

    // The thumbnail: a JPEG, cached for good (the URL carries the mtime).
    let (status, headers, body) = send_bytes(
        &h.app,
        authed_get(
            "/api/gallery/thumb/run%201/fixture_invert_00001_.png?v=1",
            &cookie,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "image/jpeg");
    assert!(headers[header::CACHE_CONTROL]
        .to_str()
        .unwrap()
        .contains("immutable"));
    assert_eq!(&body[..2], &[0xFF, 0xD8], "JPEG magic");

    // Videos seek: a Range request gets 206 with just those bytes, never compressed.
    let mut request = authed_get("/api/gallery/file/clip.webm", &cookie);
    request
        .headers_mut()
        .insert(header::RANGE, "bytes=100-199".parse().unwrap());
    request
        .headers_mut()
        .insert(header::ACCEPT_ENCODING, "gzip, br".parse().unwrap());
    let (status, headers, body) = send_bytes(&h.app, request).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(headers[header::CONTENT_RANGE], "bytes 100-199/1000");
    assert_eq!(body, video[100..200]);
    let mut request = authed_get("/api/gallery/file/clip.webm", &cookie);
    request
        .headers_mut()
        .insert(header::ACCEPT_ENCODING, "gzip, br".parse().unwrap());
    let (status, headers, body) = send_bytes(&h.app, request).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers.get(header::CONTENT_ENCODING).is_none(),
        "{headers:?}"
    );
    assert_eq!(headers[header::ACCEPT_RANGES], "bytes");
    assert_eq!(body, video);
    let (status, _, _) =
        send_bytes(&h.app, authed_get("/api/gallery/thumb/clip.webm", &cookie)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "videos have no thumbnail");

    // Delete: the file and every way to reach it go.
    let deleted = send(
        &h.app,
        with_cookie(
            post_json("/api/gallery/delete", &json!({ "id": id })),
            &cookie,
        ),
    )
    .await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.body);
    assert!(!output.join("run 1/fixture_invert_00001_.png").exists());
    for path in [
        format!("/api/gallery/item?id={id}"),
        "/api/gallery/file/run%201/fixture_invert_00001_.png".to_string(),
    ] {
        let reply = send(&h.app, authed_get(&path, &cookie)).await;
        assert_eq!(
            reply.status,
            StatusCode::NOT_FOUND,
            "{path}: {}",
            reply.body
        );
    }
    let again = send(
        &h.app,
        with_cookie(
            post_json("/api/gallery/delete", &json!({ "id": id })),
            &cookie,
        ),
    )
    .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    assert!(again.json()["message"]
        .as_str()
        .unwrap()
        .contains(&format!("no output with id {id}")));

    let bad = send(&h.app, authed_get("/api/gallery?limit=9999", &cookie)).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.json()["message"].as_str().unwrap().contains("limit"));
}

#[tokio::test(flavor = "multi_thread")]
async fn gallery_paths_cannot_leave_the_output_folder() {
    let h = harness(Some(PASSWORD)).await;
    let cookie = log_in(&h.app).await;
    let output = h.engine.gallery().root().to_path_buf();
    let workspace = output.parent().unwrap();
    // A file beside the output folder that must never be served, and links towards it.
    std::fs::write(workspace.join("secret.png"), recorded_output_png()).unwrap();
    std::fs::write(output.join("ok.png"), recorded_output_png()).unwrap();
    std::os::unix::fs::symlink(workspace.join("secret.png"), output.join("link.png")).unwrap();
    std::os::unix::fs::symlink(workspace, output.join("up")).unwrap();
    h.engine.gallery().current().scan().await.unwrap();

    for route in ["file", "thumb"] {
        let (status, _, _) = send_bytes(
            &h.app,
            authed_get(&format!("/api/gallery/{route}/ok.png"), &cookie),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{route}/ok.png");
        for attempt in [
            "../secret.png",
            "sub/../../secret.png",
            "%2e%2e/secret.png",
            "%2E%2E%2Fsecret.png",
            "..%2fsecret.png",
            "/etc/passwd",
            "%2Fetc%2Fpasswd",
            "..%5csecret.png",
            "link.png",
            "up/secret.png",
            "data/comfydeck.db",
        ] {
            let path = format!("/api/gallery/{route}/{attempt}");
            let reply = send(&h.app, authed_get(&path, &cookie)).await;
            assert!(
                matches!(
                    reply.status,
                    StatusCode::BAD_REQUEST | StatusCode::NOT_FOUND
                ),
                "{path}: {} {}",
                reply.status,
                reply.body
            );
            assert!(!reply.body.contains("PNG"), "{path} leaked file bytes");
            let message = reply.json()["message"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            assert!(!message.is_empty(), "{path}: a message names the problem");
        }
        // The symlink is named as such.
        let reply = send(
            &h.app,
            authed_get(&format!("/api/gallery/{route}/link.png"), &cookie),
        )
        .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
        assert!(
            reply.json()["message"]
                .as_str()
                .unwrap()
                .contains("symlink"),
            "{}",
            reply.body
        );
    }
}
