//! Two people on one deck over a real socket: what alice owns (a workflow, a generation, a
//! gallery item, an API token) is invisible to bob through every list and by-id route (404),
//! bob's administrator-only attempts are refused (403), the live socket carries each person's
//! own events only, and sessions and tokens end when the account changes.

use crate::common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{harness, session_pair, Harness, PASSWORD};
use engine::generate::history::NewGeneration;
use engine::model::{Caller, Role};
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

const ALICE_PW: &str = "alice-password-1";
const BOB_PW: &str = "bob-password-12";

/// A one-pixel PNG (what ComfyUI writes, minus the workflow chunks).
const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xff, 0xff, 0x3f,
    0x00, 0x05, 0xfe, 0x02, 0xfe, 0xa7, 0x35, 0x81, 0x84, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e,
    0x44, 0xae, 0x42, 0x60, 0x82,
];

async fn serve(h: &Harness) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = h.app.clone();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    addr
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// One logged-in person: their cookie, on the served deck.
#[derive(Clone)]
struct Person {
    addr: SocketAddr,
    cookie: String,
    name: &'static str,
}

impl Person {
    async fn log_in(addr: SocketAddr, name: &'static str, password: &str) -> Person {
        let reply = client()
            .post(format!("http://{addr}/api/auth/login"))
            .json(&json!({ "username": name, "password": password }))
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 204, "{name} logs in");
        let set_cookie = reply.headers()["set-cookie"].to_str().unwrap().to_string();
        Person {
            addr,
            cookie: session_pair(&set_cookie).expect("a session cookie"),
            name,
        }
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let reply = client()
            .get(format!("http://{}{path}", self.addr))
            .header("cookie", &self.cookie)
            .header("accept", "application/json")
            .send()
            .await
            .unwrap();
        read(reply).await
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let reply = client()
            .post(format!("http://{}{path}", self.addr))
            .header("cookie", &self.cookie)
            .header("accept", "application/json")
            .json(&body)
            .send()
            .await
            .unwrap();
        read(reply).await
    }

    /// The route answers 404 to this person.
    async fn not_found(&self, method: &str, path: &str, body: Value) {
        let (status, answer) = if method == "GET" {
            self.get(path).await
        } else {
            self.post(path, body).await
        };
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "{method} {path} as {}: {answer}",
            self.name
        );
    }

    async fn socket(
        &self,
    ) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>
    {
        let mut request = format!("ws://{}/ws", self.addr)
            .into_client_request()
            .unwrap();
        request
            .headers_mut()
            .insert("cookie", self.cookie.parse().unwrap());
        let (socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        socket
    }
}

async fn read(reply: reqwest::Response) -> (StatusCode, Value) {
    let status = reply.status();
    let text = reply.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Reads frames until one satisfies `wanted`, panicking on any frame `forbidden` matches.
async fn watch_until(
    socket: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    what: &str,
    wanted: impl Fn(&Value) -> bool,
    forbidden: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let frame = tokio::time::timeout(left, socket.next())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
            .expect("the socket stays open")
            .expect("no socket error");
        let Message::Text(text) = frame else {
            continue;
        };
        let event: Value = serde_json::from_str(text.as_str()).unwrap();
        assert!(!forbidden(&event), "while waiting for {what}: {event}");
        if wanted(&event) {
            return event;
        }
    }
}

async fn add_user(h: &Harness, name: &str, password: &str) -> Caller {
    let open = h.engine.auth().open_caller();
    let added = h
        .engine
        .auth()
        .users()
        .add(&open, name, Role::User, Some(password.into()))
        .await
        .unwrap();
    Caller {
        user_id: added.user.id,
        username: added.user.username,
        role: Role::User,
        theme: None,
    }
}

fn encode(s: &str) -> String {
    engine::model::encode_path(s)
}

#[tokio::test(flavor = "multi_thread")]
async fn alices_things_are_invisible_to_bob_and_bobs_admin_attempts_are_refused() {
    let h = harness(Some(PASSWORD)).await;
    h.engine.spawn_background_jobs();
    let addr = serve(&h).await;
    let alice_caller = add_user(&h, "alice", ALICE_PW).await;
    let bob_caller = add_user(&h, "bob", BOB_PW).await;
    let alice = Person::log_in(addr, "alice", ALICE_PW).await;
    let bob = Person::log_in(addr, "bob", BOB_PW).await;
    let admin = Person::log_in(addr, "admin", PASSWORD).await;

    let mut alice_socket = alice.socket().await;
    let mut bob_socket = bob.socket().await;

    // Alice imports a workflow: it is hers, in her own folder.
    use base64::Engine as _;
    let workflow = json!({
        "1": { "class_type": "EmptyImage", "inputs": { "width": 64, "height": 64, "batch_size": 1, "color": 0 } },
        "2": { "class_type": "SaveImage", "inputs": { "images": ["1", 0], "filename_prefix": "ComfyUI" } }
    });
    let (status, summary) = alice
        .post(
            "/api/workflows/import",
            json!({
                "file_name": "secret flow.json",
                "content_base64": base64::engine::general_purpose::STANDARD
                    .encode(workflow.to_string()),
            }),
        )
        .await;
    assert_eq!(status, 200, "{summary}");
    let workflow_id = summary["id"].as_str().unwrap().to_string();
    assert_eq!(
        workflow_id,
        format!("user:@{}/secret flow.json", alice_caller.user_id)
    );
    // Her socket tells her; bob's never carries it (his own import arrives after it).
    watch_until(
        &mut alice_socket,
        "alice's import in her activity",
        |e| {
            e["type"] == "activity"
                && e["data"]["message"]
                    .as_str()
                    .unwrap_or("")
                    .contains("secret flow")
        },
        |_| false,
    )
    .await;
    let (status, _) = bob
        .post(
            "/api/workflows/import",
            json!({
                "file_name": "bobs.json",
                "content_base64": base64::engine::general_purpose::STANDARD
                    .encode(workflow.to_string()),
            }),
        )
        .await;
    assert_eq!(status, 200);
    watch_until(
        &mut bob_socket,
        "bob's own import",
        |e| e["type"] == "activity" && e["data"]["message"].as_str().unwrap_or("").contains("bobs"),
        |e| e.to_string().contains("secret flow"),
    )
    .await;

    // A prompt of hers, a generation and a gallery item made by it.
    let prompt_id = "11111111-2222-4333-8444-555555555555";
    h.engine
        .store()
        .set_prompt_owner(prompt_id, alice_caller.user_id, 1)
        .await
        .unwrap();
    let generation_id = h
        .engine
        .generator()
        .history()
        .insert(NewGeneration {
            workflow_id: &workflow_id,
            workflow_name: "secret flow",
            inputs: &[],
            prompt_id,
            created_ms: 1,
            user_id: alice_caller.user_id,
        })
        .await
        .unwrap();
    let file = "alice_00001_.png";
    std::fs::write(h.engine.gallery().root().join(file), PNG).unwrap();
    h.engine
        .gallery()
        .current()
        .index_path(file, Some(prompt_id))
        .await
        .unwrap();
    let (status, page) = alice.get("/api/gallery").await;
    assert_eq!(status, 200, "{page}");
    let item = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["path"] == file)
        .unwrap_or_else(|| panic!("alice sees her output: {page}"))
        .clone();
    assert_eq!(item["owner"], "alice", "{item}");
    let item_id = item["id"].as_i64().unwrap();

    // Her API token.
    let (status, token) = alice
        .post("/api/tokens/create", json!({ "name": "alice's script" }))
        .await;
    assert_eq!(status, 200, "{token}");
    let token_id = token["info"]["id"]
        .as_i64()
        .or_else(|| token["id"].as_i64())
        .unwrap_or_else(|| panic!("a token id in {token}"));
    let secret = token["token"].as_str().unwrap().to_string();

    // Every list bob can read leaves them out.
    let (_, workflows) = bob.get("/api/workflows").await;
    assert!(
        !workflows.to_string().contains("secret flow"),
        "{workflows}"
    );
    let (_, library) = bob.get("/api/generate/library").await;
    assert!(!library.to_string().contains("secret flow"), "{library}");
    let (_, history) = bob.get("/api/generate/history").await;
    assert_eq!(history, json!([]), "bob's history is empty");
    let (_, gallery) = bob.get("/api/gallery").await;
    assert_eq!(gallery["total"], 0, "{gallery}");
    let (_, settings) = bob.get("/api/settings").await;
    assert!(
        !settings.to_string().contains("alice's script"),
        "{settings}"
    );
    let (_, activity) = bob.get("/api/activity").await;
    assert!(!activity.to_string().contains("secret flow"), "{activity}");
    let (_, queue) = bob.get("/api/comfy/queue").await;
    assert!(!queue.to_string().contains(prompt_id), "{queue}");

    // Every by-id route answers 404, as for something that does not exist.
    let id = encode(&workflow_id);
    bob.not_found("GET", &format!("/api/workflows/get?id={id}"), json!(null))
        .await;
    bob.not_found(
        "GET",
        &format!("/api/generate/form?workflow_id={id}"),
        json!(null),
    )
    .await;
    bob.not_found(
        "POST",
        "/api/workflows/rename",
        json!({ "id": workflow_id, "name": "mine" }),
    )
    .await;
    bob.not_found(
        "POST",
        "/api/workflows/delete",
        json!({ "id": workflow_id }),
    )
    .await;
    bob.not_found(
        "POST",
        "/api/workflows/run-saved",
        json!({ "id": workflow_id, "inputs": [] }),
    )
    .await;
    bob.not_found(
        "POST",
        "/api/generate/submit",
        json!({ "workflow_id": workflow_id, "inputs": [] }),
    )
    .await;
    bob.not_found(
        "POST",
        "/api/generate/cancel",
        json!({ "prompt_id": prompt_id }),
    )
    .await;
    bob.not_found(
        "GET",
        &format!("/api/comfy/history?prompt_id={prompt_id}"),
        json!(null),
    )
    .await;
    bob.not_found(
        "POST",
        "/api/comfy/queue/cancel",
        json!({ "prompt_id": prompt_id }),
    )
    .await;
    bob.not_found(
        "POST",
        "/api/comfy/interrupt",
        json!({ "prompt_id": prompt_id }),
    )
    .await;
    bob.not_found(
        "GET",
        &format!("/api/comfy/preview/{prompt_id}"),
        json!(null),
    )
    .await;
    bob.not_found(
        "GET",
        &format!("/api/gallery/item?id={item_id}"),
        json!(null),
    )
    .await;
    bob.not_found("POST", "/api/gallery/delete", json!({ "id": item_id }))
        .await;
    bob.not_found(
        "POST",
        "/api/generate/from-output",
        json!({ "id": item_id }),
    )
    .await;
    bob.not_found("GET", &format!("/api/gallery/file/{file}"), json!(null))
        .await;
    bob.not_found(
        "GET",
        &format!("/api/gallery/thumb/{file}?v=1"),
        json!(null),
    )
    .await;
    bob.not_found(
        "GET",
        &format!("/api/comfy/view?filename={file}&type=output"),
        json!(null),
    )
    .await;
    bob.not_found("POST", "/api/tokens/revoke", json!({ "id": token_id }))
        .await;
    let _ = generation_id;

    // Alice still reaches all of it; her token still works.
    let (status, _) = alice.get(&format!("/api/workflows/get?id={id}")).await;
    assert_eq!(status, 200);
    let (status, _) = alice.get(&format!("/api/gallery/item?id={item_id}")).await;
    assert_eq!(status, 200);
    let reply = client()
        .get(format!("http://{addr}/api/gallery/file/{file}"))
        .header("cookie", &alice.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    let (status, history) = alice.get("/api/generate/history").await;
    assert_eq!(status, 200);
    assert_eq!(history.as_array().unwrap().len(), 1, "{history}");
    let reply = client()
        .get(format!("http://{addr}/api/settings"))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200, "alice's token survived bob's revoke");

    // The administrator sees everyone's, and can keep to one person's.
    let (_, all) = admin.get("/api/gallery").await;
    assert_eq!(all["total"], 1, "{all}");
    let (_, hers) = admin.get("/api/gallery?owner=alice").await;
    assert_eq!(hers["total"], 1, "{hers}");
    let (_, his) = admin.get("/api/gallery?owner=bob").await;
    assert_eq!(his["total"], 0, "{his}");
    let (_, workflows) = admin.get("/api/workflows").await;
    assert!(workflows.to_string().contains("secret flow"), "{workflows}");
    let (status, _) = admin.get(&format!("/api/workflows/get?id={id}")).await;
    assert_eq!(status, 200);

    // Bob's administrator attempts are refused with 403.
    for (path, body) in [
        ("/api/presets/install", json!({ "id": "sd15" })),
        (
            "/api/settings/update",
            json!({ "patch": { "hf_token": "hf_bobbobbobbobbobbob" } }),
        ),
    ] {
        let (status, answer) = bob.post(path, body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {answer}");
        assert_eq!(answer["kind"], "forbidden", "{path}: {answer}");
    }
    for path in ["/comfyui/", "/comfyui", "/comfyui/api/queue"] {
        let (status, answer) = bob.get(path).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {answer}");
    }
    // ComfyUI's own UI socket too.
    let mut request = format!("ws://{addr}/comfyui/ws")
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("cookie", bob.cookie.parse().unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403)
        }
        other => panic!("bob opened ComfyUI's socket: {:?}", other.map(|_| ())),
    }
    // The HF token stayed unset.
    assert!(h.engine.settings().view().hf_token_masked.is_none());

    // A user's gallery change reaches only them (and the administrator).
    std::fs::write(h.engine.gallery().root().join("alice_00002_.png"), PNG).unwrap();
    h.engine
        .gallery()
        .current()
        .index_path("alice_00002_.png", Some(prompt_id))
        .await
        .unwrap();
    watch_until(
        &mut alice_socket,
        "alice's gallery change",
        |e| e["type"] == "gallery" && e["data"]["user_id"] == alice_caller.user_id,
        |_| false,
    )
    .await;
    // Bob's next own event arrives with nothing of alice's before it.
    let (status, _) = bob
        .post(
            "/api/workflows/delete",
            json!({ "id": format!("user:@{}/bobs.json", bob_caller.user_id) }),
        )
        .await;
    assert_eq!(status, 200);
    watch_until(
        &mut bob_socket,
        "bob's delete",
        |e| e["type"] == "activity" && e["data"]["message"].as_str().unwrap_or("").contains("bobs"),
        |e| {
            (e["type"] == "gallery" && e["data"]["user_id"] == alice_caller.user_id)
                || e.to_string().contains(prompt_id)
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_end_on_password_change_disable_and_remove_and_tokens_on_remove() {
    let h = harness(Some(PASSWORD)).await;
    let addr = serve(&h).await;
    add_user(&h, "carol", "carol-password-1").await;
    let admin = Person::log_in(addr, "admin", PASSWORD).await;
    let live = |p: Person| async move { p.get("/api/session").await.0 };

    // A password reset by the administrator ends her sessions.
    let carol = Person::log_in(addr, "carol", "carol-password-1").await;
    assert_eq!(live(carol.clone()).await, 200);
    let (status, reset) = admin
        .post("/api/users/reset-password", json!({ "username": "carol" }))
        .await;
    assert_eq!(status, 200, "{reset}");
    let password = reset["password"].as_str().unwrap().to_string();
    assert_eq!(live(carol.clone()).await, 401, "reset ends the session");

    // Her own change ends her other sessions.
    let first = Person::log_in(addr, "carol", &password).await;
    let second = Person::log_in(addr, "carol", &password).await;
    let (status, answer) = second
        .post(
            "/api/account/password",
            json!({ "current": password, "new": "carol-password-2" }),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(live(first.clone()).await, 401, "the other session ended");

    // Disabling ends them too (her open WebSocket included), and no login gets in while
    // disabled.
    let carol = Person::log_in(addr, "carol", "carol-password-2").await;
    let mut socket = carol.socket().await;
    let (status, _) = admin
        .post(
            "/api/users/disable",
            json!({ "username": "carol", "disabled": true }),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(live(carol.clone()).await, 401, "disable ends the session");
    // The socket checks its session every 10 s, then closes with 4401.
    let deadline = Instant::now() + Duration::from_secs(25);
    let closed = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, socket.next()).await {
            Err(_) => panic!("the socket of a disabled user is still open"),
            Ok(Some(Ok(Message::Close(frame)))) => break frame,
            Ok(Some(Ok(_))) => continue,
            Ok(other) => panic!("the socket ended without a close frame: {other:?}"),
        }
    };
    let frame = closed.expect("a close frame with a code");
    assert_eq!(
        u16::from(frame.code),
        server::ws::SESSION_ENDED,
        "{frame:?}"
    );
    let reply = client()
        .post(format!("http://{addr}/api/auth/login"))
        .json(&json!({ "username": "carol", "password": "carol-password-2" }))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 401, "a disabled user cannot log in");
    let (status, _) = admin
        .post(
            "/api/users/disable",
            json!({ "username": "carol", "disabled": false }),
        )
        .await;
    assert_eq!(status, 200);

    // Removing her ends her session and her API token.
    let carol = Person::log_in(addr, "carol", "carol-password-2").await;
    let (status, token) = carol
        .post("/api/tokens/create", json!({ "name": "carol's script" }))
        .await;
    assert_eq!(status, 200, "{token}");
    let secret = token["token"].as_str().unwrap().to_string();
    let with_token = || {
        client()
            .get(format!("http://{addr}/api/session"))
            .bearer_auth(&secret)
            .send()
    };
    assert_eq!(with_token().await.unwrap().status(), 200);
    let (status, answer) = admin
        .post("/api/users/remove", json!({ "username": "carol" }))
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(live(carol).await, 401, "remove ends the session");
    assert_eq!(
        with_token().await.unwrap().status(),
        401,
        "a removed user's API token stops working"
    );
}
