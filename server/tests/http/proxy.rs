//! `/comfyui/…` over real sockets: a small upstream that behaves like ComfyUI (its Origin check
//! included) behind comfydeck's login.

use crate::common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::ws::{Message as AxumMessage, WebSocketUpgrade};
use axum::extract::Request;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use common::PASSWORD;
use engine::config::Config;
use engine::secret::Secret;
use engine::Engine;
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// What the upstream saw of each request.
#[derive(Clone, Debug, Default)]
struct Seen {
    origin: Option<String>,
    host: Option<String>,
    cookie: Option<String>,
    authorization: Option<String>,
    body: Vec<u8>,
}

type SeenLog = Arc<Mutex<Vec<Seen>>>;

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap()
    });
    addr
}

/// A ComfyUI look-alike: refuses a foreign Origin like ComfyUI does, redirects `/old` to
/// `/`, streams a large body and echoes WebSocket frames.
async fn upstream(seen: SeenLog) -> SocketAddr {
    let record = move |headers: &HeaderMap, body: Vec<u8>| {
        let get = |name: header::HeaderName| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        Seen {
            origin: get(header::ORIGIN),
            host: get(header::HOST),
            cookie: get(header::COOKIE),
            authorization: get(header::AUTHORIZATION),
            body,
        }
    };
    let app = Router::new()
        .route(
            "/api/prompt",
            any({
                let seen = seen.clone();
                move |request: Request| async move {
                    let (parts, body) = request.into_parts();
                    let body = axum::body::to_bytes(body, usize::MAX)
                        .await
                        .unwrap()
                        .to_vec();
                    let entry = record(&parts.headers, body);
                    let origin_ok = match (&entry.origin, &entry.host) {
                        (Some(origin), Some(host)) => origin.ends_with(&format!("//{host}")),
                        (None, _) => true,
                        _ => false,
                    };
                    seen.lock().unwrap().push(entry);
                    if origin_ok {
                        (StatusCode::OK, "{\"prompt_id\": \"p1\"}").into_response()
                    } else {
                        StatusCode::FORBIDDEN.into_response()
                    }
                }
            }),
        )
        .route(
            "/old",
            get(|| async { axum::response::Redirect::to("/new") }),
        )
        .route("/big", get(|| async { vec![7u8; 3 * 1024 * 1024] }))
        .route(
            "/ws",
            get(|upgrade: WebSocketUpgrade| async move {
                upgrade.on_upgrade(|mut socket| async move {
                    while let Some(Ok(message)) = socket.next().await {
                        let reply = match message {
                            AxumMessage::Text(t) => AxumMessage::Text(format!("echo {t}").into()),
                            AxumMessage::Binary(b) => AxumMessage::Binary(b),
                            AxumMessage::Close(_) => break,
                            _ => continue,
                        };
                        if socket.send(reply).await.is_err() {
                            break;
                        }
                    }
                })
            }),
        );
    serve(app).await
}

async fn comfydeck(comfy: SocketAddr, password: Option<&str>) -> (SocketAddr, tempfile::TempDir) {
    let workspace = tempfile::tempdir().unwrap();
    let config = Config {
        comfyui_url: format!("http://{comfy}"),
        hf_base_url: common::closed_local_url(),
        access_password: password.map(Secret::new),
        ..Config::with_workspace(workspace.path())
    };
    let (engine, _) = Engine::start(config).await.unwrap();
    let app = server::router(server::AppState {
        engine,
        leptos: server::leptos_options(),
    });
    (serve(app).await, workspace)
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Logs in and returns the session cookie pair.
async fn log_in(addr: SocketAddr) -> String {
    let reply = client()
        .post(format!("http://{addr}/api/auth/login"))
        .json(&serde_json::json!({ "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    let set_cookie = reply
        .headers()
        .get(header::SET_COOKIE)
        .unwrap()
        .to_str()
        .unwrap();
    common::session_pair(set_cookie).expect("a session cookie")
}

#[tokio::test(flavor = "multi_thread")]
async fn http_is_forwarded_with_comfyuis_own_origin_and_without_comfydecks_credentials() {
    let seen: SeenLog = Arc::default();
    let comfy = upstream(seen.clone()).await;
    let (addr, _ws) = comfydeck(comfy, Some(PASSWORD)).await;
    let http = client();

    // Without a session nothing reaches ComfyUI.
    let reply = http
        .post(format!("http://{addr}/comfyui/api/prompt"))
        .header(header::ACCEPT, "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::UNAUTHORIZED);
    assert!(seen.lock().unwrap().is_empty());

    let cookie = log_in(addr).await;
    let reply = http
        .post(format!("http://{addr}/comfyui/api/prompt"))
        .header(header::COOKIE, &cookie)
        // What a browser on comfydeck's page sends; ComfyUI would refuse it as it is.
        .header(header::ORIGIN, format!("http://{addr}"))
        .body(r#"{"prompt": {}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::OK);
    assert_eq!(reply.text().await.unwrap(), "{\"prompt_id\": \"p1\"}");
    let entry = seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(
        entry.origin.as_deref(),
        Some(&format!("http://{comfy}")[..])
    );
    assert_eq!(
        entry.cookie, None,
        "comfydeck's session stays with comfydeck"
    );
    assert_eq!(entry.authorization, None);
    assert_eq!(entry.body, br#"{"prompt": {}}"#);

    // Redirects to ComfyUI's root stay under the prefix.
    let reply = http
        .get(format!("http://{addr}/comfyui/old"))
        .header(header::COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert!(reply.status().is_redirection());
    assert_eq!(reply.headers()[header::LOCATION], "/comfyui/new");

    // Large bodies stream through whole.
    let reply = http
        .get(format!("http://{addr}/comfyui/big"))
        .header(header::COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.bytes().await.unwrap().len(), 3 * 1024 * 1024);

    // `/comfyui` gets its trailing slash.
    let reply = http
        .get(format!("http://{addr}/comfyui?x=1"))
        .header(header::COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.headers()[header::LOCATION], "/comfyui/?x=1");
}

#[tokio::test(flavor = "multi_thread")]
async fn websockets_are_relayed_both_ways_behind_the_login() {
    let comfy = upstream(Arc::default()).await;
    let (addr, _ws) = comfydeck(comfy, Some(PASSWORD)).await;

    // Refused without a session.
    let request = format!("ws://{addr}/comfyui/ws?clientId=abc")
        .into_client_request()
        .unwrap();
    assert!(tokio_tungstenite::connect_async(request).await.is_err());

    let cookie = log_in(addr).await;
    let mut request = format!("ws://{addr}/comfyui/ws?clientId=abc")
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert(header::COOKIE, cookie.parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    socket.send(Message::text("hello")).await.unwrap();
    let reply = socket.next().await.unwrap().unwrap();
    assert_eq!(reply, Message::text("echo hello"));
    socket
        .send(Message::binary(vec![0u8, 0, 0, 1, 0xff]))
        .await
        .unwrap();
    let reply = socket.next().await.unwrap().unwrap();
    assert_eq!(reply, Message::binary(vec![0u8, 0, 0, 1, 0xff]));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_comfyui_is_a_502_that_says_so() {
    let closed: SocketAddr = common::closed_local_url()
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let (addr, _ws) = comfydeck(closed, None).await;
    let reply: Response = {
        let r = client()
            .get(format!("http://{addr}/comfyui/"))
            .send()
            .await
            .unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        assert!(text.contains("is not answering"), "{text}");
        (status, text).into_response()
    };
    assert_eq!(reply.status(), StatusCode::BAD_GATEWAY);
}
