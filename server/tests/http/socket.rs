//! The server on a real TCP socket: `/ws` pushes, the watcher count, the locked handshake and
//! the per-peer login rate limit.

use crate::common;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use common::{harness, session_pair, Harness, PASSWORD};
use futures::StreamExt;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Serves the harness's router on 127.0.0.1 and returns its address.
async fn serve(h: &Harness) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("local address");
    let app = h.app.clone();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .expect("the server runs");
    });
    addr
}

/// Starts the engine (with its background jobs) and serves it.
async fn start(password: Option<&str>) -> (Harness, SocketAddr) {
    let h = harness(password).await;
    h.engine.spawn_background_jobs();
    let addr = serve(&h).await;
    (h, addr)
}

/// The next JSON text frame, or a panic naming what was awaited.
async fn next_event(socket: &mut Socket, deadline: Instant, waiting_for: &str) -> Value {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let frame = tokio::time::timeout(left, socket.next())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {waiting_for}"))
            .unwrap_or_else(|| panic!("the socket closed while waiting for {waiting_for}"))
            .unwrap_or_else(|e| panic!("socket error while waiting for {waiting_for}: {e}"));
        match frame {
            Message::Text(text) => {
                return serde_json::from_str(text.as_str())
                    .unwrap_or_else(|e| panic!("a frame that is not JSON ({e}): {text}"))
            }
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected frame while waiting for {waiting_for}: {other:?}"),
        }
    }
}

/// Reads frames until one satisfies `wanted`; returns it.
async fn wait_for_event(
    socket: &mut Socket,
    within: Duration,
    what: &str,
    wanted: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let event = next_event(socket, deadline, what).await;
        if wanted(&event) {
            return event;
        }
    }
}

/// Polls `condition` every 20 ms until it holds or `within` passes.
async fn eventually(within: Duration, condition: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn check_first_frames(first: &[Value], comfyui_url: &str) -> i64 {
    let mut types: Vec<&str> = first
        .iter()
        .map(|e| e["type"].as_str().unwrap_or("?"))
        .collect();
    types.sort();
    assert_eq!(
        types,
        ["comfy_status", "system_stats"],
        "first frames: {first:?}"
    );
    let stats = first.iter().find(|e| e["type"] == "system_stats").unwrap();
    let sampled_at = stats["data"]["sampled_at_ms"]
        .as_i64()
        .expect("sampled_at_ms");
    assert!(
        sampled_at > 1_600_000_000_000,
        "a wall-clock time in ms: {stats}"
    );
    assert!(
        stats["data"]["cpu"]["cores"]
            .as_f64()
            .is_some_and(|c| c > 0.0),
        "{stats}"
    );
    assert!(
        stats["data"]["memory"]["limit_bytes"]
            .as_u64()
            .is_some_and(|m| m > 0),
        "{stats}"
    );
    let comfy = first.iter().find(|e| e["type"] == "comfy_status").unwrap();
    assert_eq!(comfy["data"]["reachable"], json!(false), "{comfy}");
    assert_eq!(comfy["data"]["url"], json!(comfyui_url), "{comfy}");
    sampled_at
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn websocket_pushes_stats_and_changes() {
    let (h, addr) = start(None).await;
    let (mut socket, response) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .expect("the WebSocket opens on the open server");
    assert_eq!(response.status(), 101);

    let deadline = Instant::now() + Duration::from_secs(10);
    let first = [
        next_event(&mut socket, deadline, "the first frame").await,
        next_event(&mut socket, deadline, "the second frame").await,
    ];
    let first_sample = check_first_frames(&first, &h.comfyui_url);

    // While someone watches, the engine samples every couple of seconds: wait for a sample
    // from a later tick (the job's first sample may land right after the greeting's).
    let tick_ms = engine::status::METRICS_INTERVAL.as_millis() as i64;
    let newer = wait_for_event(
        &mut socket,
        Duration::from_secs(7),
        "a system_stats from a later tick",
        |e| {
            e["type"] == "system_stats"
                && e["data"]["sampled_at_ms"]
                    .as_i64()
                    .is_some_and(|t| t >= first_sample + tick_ms * 3 / 4)
        },
    )
    .await;
    assert!(newer["data"]["cpu"].is_object(), "{newer}");

    // A change made over HTTP reaches the socket: an activity line and the new settings. (A
    // theme is each person's own and is not pushed to others; retention is the deck's.)
    let reply = http_client()
        .post(format!("http://{addr}/api/settings/update"))
        .json(&json!({ "patch": { "activity_retention_days": 12 } }))
        .send()
        .await
        .expect("the update is sent");
    assert_eq!(reply.status(), 200, "{:?}", reply.text().await);

    let mut saw_activity = None;
    let mut saw_settings = None;
    let deadline = Instant::now() + Duration::from_secs(5);
    while saw_activity.is_none() || saw_settings.is_none() {
        let event = next_event(&mut socket, deadline, "the activity and settings events").await;
        match event["type"].as_str() {
            Some("activity") => saw_activity = Some(event),
            Some("settings") => saw_settings = Some(event),
            _ => {}
        }
    }
    let activity = saw_activity.unwrap();
    assert_eq!(activity["data"]["kind"], "settings", "{activity}");
    assert!(
        activity["data"]["message"]
            .as_str()
            .is_some_and(|m| m.to_lowercase().contains("retention set to 12")),
        "{activity}"
    );
    let settings = saw_settings.unwrap();
    assert_eq!(
        settings["data"]["activity_retention_days"], 12,
        "{settings}"
    );

    socket.close(None).await.expect("the socket closes");
}

/// Opens `/ws` and waits for its first frame, so the server side is fully set up.
async fn open_and_await_first_frame(
    addr: SocketAddr,
    what: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .unwrap_or_else(|e| panic!("{what}: the WebSocket does not open: {e}"));
    next_event(&mut socket, Instant::now() + Duration::from_secs(10), what).await;
    socket
}

#[tokio::test(flavor = "multi_thread")]
async fn watchers_are_counted_while_connected() {
    let (h, addr) = start(None).await;
    assert_eq!(h.engine.events().watcher_count(), 0, "nobody watches yet");

    // Once the first frame arrives the handler has registered its watcher.
    let socket = open_and_await_first_frame(addr, "the first socket").await;
    assert_eq!(h.engine.events().watcher_count(), 1);

    let mut second = open_and_await_first_frame(addr, "the second socket").await;
    assert_eq!(h.engine.events().watcher_count(), 2);

    // A clean close and a dropped connection both release their watcher.
    second.close(None).await.expect("the socket closes");
    let engine = h.engine.clone();
    assert!(
        eventually(Duration::from_secs(2), || engine.events().watcher_count()
            == 1)
        .await,
        "the closed socket still counts: {}",
        engine.events().watcher_count()
    );
    drop(second);
    drop(socket);
    assert!(
        eventually(Duration::from_secs(2), || engine.events().watcher_count()
            == 0)
        .await,
        "watchers left after every client went away: {}",
        engine.events().watcher_count()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn locked_websocket_needs_a_session() {
    let (h, addr) = start(Some(PASSWORD)).await;

    match tokio_tungstenite::connect_async(format!("ws://{addr}/ws")).await {
        Err(tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 401);
            let body = response.body().as_deref().unwrap_or_default();
            let body: Value = serde_json::from_slice(body).expect("a JSON body");
            assert_eq!(body["login_required"], json!(true), "{body}");
        }
        Err(other) => panic!("expected HTTP 401, got {other}"),
        Ok(_) => panic!("the WebSocket opened without a login"),
    }
    assert_eq!(h.engine.events().watcher_count(), 0);

    let client = http_client();
    let reply = client
        .post(format!("http://{addr}/api/auth/login"))
        .form(&[("password", PASSWORD), ("next", "/")])
        .send()
        .await
        .expect("the login is sent");
    assert_eq!(reply.status(), 303);
    let set_cookie = reply
        .headers()
        .get(reqwest::header::SET_COOKIE)
        .expect("Set-Cookie")
        .to_str()
        .unwrap();
    let cookie = session_pair(set_cookie).expect("a session cookie");

    let mut request = format!("ws://{addr}/ws").into_client_request().unwrap();
    request
        .headers_mut()
        .insert("cookie", cookie.parse().unwrap());
    let (mut socket, response) = tokio_tungstenite::connect_async(request)
        .await
        .expect("the WebSocket opens with a session");
    assert_eq!(response.status(), 101);
    let event = wait_for_event(&mut socket, Duration::from_secs(10), "system_stats", |e| {
        e["type"] == "system_stats"
    })
    .await;
    assert!(
        event["data"]["sampled_at_ms"]
            .as_i64()
            .is_some_and(|t| t > 0),
        "{event}"
    );
    socket.close(None).await.expect("the socket closes");
}

#[tokio::test(flavor = "multi_thread")]
async fn login_rate_limit_keys_on_the_peer_address() {
    let (_h, addr) = start(Some(PASSWORD)).await;
    let url = format!("http://{addr}/api/auth/login");
    let client = http_client();

    // Guesses at another name: only this peer's count (and mallory's) fills up, not admin's.
    for attempt in 1..=5 {
        let reply = client
            .post(&url)
            .json(&json!({ "username": "mallory", "password": "wrong" }))
            .send()
            .await
            .expect("the login is sent");
        assert_eq!(reply.status(), 401, "attempt {attempt}");
    }
    let reply = client
        .post(&url)
        .json(&json!({ "password": PASSWORD }))
        .send()
        .await
        .expect("the login is sent");
    assert_eq!(
        reply.status(),
        429,
        "the sixth attempt is refused, even with the right password"
    );
    let retry: u64 = reply
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .expect("Retry-After")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=300).contains(&retry), "Retry-After {retry}");
    assert!(reply.headers().get(reqwest::header::SET_COOKIE).is_none());

    // Another peer address (127.0.0.2 is loopback too on Linux) is not limited.
    let other = reqwest::Client::builder()
        .local_address(IpAddr::from([127, 0, 0, 2]))
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let reply = other
        .post(&url)
        .json(&json!({ "password": PASSWORD }))
        .send()
        .await
        .expect("a login from 127.0.0.2 is sent");
    assert_eq!(reply.status(), 204, "a different peer logs in");
}
