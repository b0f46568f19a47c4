//! `/comfyui/…`: ComfyUI's own UI and API behind comfydeck's login, so a pod exposes one
//! authenticated port instead of an open ComfyUI. HTTP is streamed both ways; WebSockets are
//! relayed frame by frame.
//!
//! ComfyUI's frontend derives its API base from the page's path, so serving it under
//! `/comfyui/` makes it call `/comfyui/api/…` and `/comfyui/ws`, which land here too.

use axum::body::Body;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite;

use crate::AppState;

/// Where the proxy lives.
pub const PREFIX: &str = "/comfyui";

/// Hop-by-hop headers (RFC 9110 §7.6.1) and ones the proxy sets itself.
const NOT_FORWARDED: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    // comfydeck's own credentials stay with comfydeck.
    "authorization",
    "cookie",
    // The WebSocket handshake is redone by the proxy.
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-extensions",
    "sec-websocket-accept",
];

/// The one client all proxied requests share (connection pooling).
fn client() -> &'static ProxyClient {
    static CLIENT: std::sync::OnceLock<ProxyClient> = std::sync::OnceLock::new();
    CLIENT.get_or_init(ProxyClient::default)
}

/// A shared client: no redirects followed (the browser must see them, rewritten), no timeout
/// on bodies (a prompt's outputs or a large upload may take long), a connect timeout only,
/// Nagle off.
pub struct ProxyClient {
    http: reqwest::Client,
}

impl Default for ProxyClient {
    fn default() -> Self {
        ProxyClient {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .connect_timeout(std::time::Duration::from_secs(5))
                // reqwest's default, said here because the proxy's latency depends on it.
                .tcp_nodelay(true)
                .build()
                .expect("a client without TLS settings always builds"),
        }
    }
}

/// `GET /comfyui` → `/comfyui/` (the frontend needs the trailing slash for its relative URLs).
pub async fn redirect_to_slash(request: Request) -> Response {
    if let Some(refused) = refuse_non_admin(&request) {
        return refused;
    }
    let uri = request.uri();
    let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
    Redirect::permanent(&format!("{PREFIX}/{query}")).into_response()
}

/// ComfyUI's own UI sees every queue, file and workflow: administrators only (403 for a
/// user, page and WebSocket alike).
fn refuse_non_admin(request: &Request) -> Option<Response> {
    match crate::auth::caller_of(request.extensions()) {
        Ok(caller) if caller.is_admin() => None,
        Ok(_) => Some(
            crate::error::AppError::new(
                engine::model::ErrorKind::Forbidden,
                "only an administrator can open ComfyUI's own UI (it shows everyone's queue and files)",
            )
            .into_response(),
        ),
        Err(e) => Some(e.into_response()),
    }
}

/// Any method under `/comfyui/`: a WebSocket upgrade is relayed, anything else forwarded.
pub async fn forward(State(state): State<AppState>, request: Request) -> Response {
    if let Some(refused) = refuse_non_admin(&request) {
        return refused;
    }
    let comfy_base = state.engine.config().comfyui_url.clone();
    let path_and_query = match upstream_path(request.uri()) {
        Some(p) => p,
        None => return (StatusCode::NOT_FOUND, "not a ComfyUI path").into_response(),
    };
    let is_upgrade = request
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if is_upgrade {
        let (mut parts, _) = request.into_parts();
        return match WebSocketUpgrade::from_request_parts(&mut parts, &state).await {
            Ok(upgrade) => {
                let target = format!("{}{}", ws_base(&comfy_base), path_and_query);
                upgrade.on_upgrade(move |socket| relay_socket(socket, target))
            }
            Err(rejection) => rejection.into_response(),
        };
    }
    forward_http(client(), &comfy_base, &path_and_query, request).await
}

/// `/comfyui/api/prompt?x=1` → `/api/prompt?x=1`; `None` outside the prefix.
fn upstream_path(uri: &Uri) -> Option<String> {
    let rest = uri.path().strip_prefix(PREFIX)?;
    let rest = if rest.is_empty() { "/" } else { rest };
    if !rest.starts_with('/') {
        return None;
    }
    Some(match uri.query() {
        Some(q) => format!("{rest}?{q}"),
        None => rest.to_string(),
    })
}

fn ws_base(http_base: &str) -> String {
    if let Some(rest) = http_base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = http_base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        http_base.to_string()
    }
}

/// The `Origin` ComfyUI expects: its own scheme://host[:port]. ComfyUI refuses requests whose
/// Origin host differs from its Host, and the browser's Origin is comfydeck's.
fn upstream_origin(comfy_base: &str) -> Option<HeaderValue> {
    let url = url::Url::parse(comfy_base).ok()?;
    HeaderValue::from_str(&url.origin().ascii_serialization()).ok()
}

fn copy_headers(from: &HeaderMap, to: &mut HeaderMap) {
    for (name, value) in from {
        if NOT_FORWARDED.contains(&name.as_str()) {
            continue;
        }
        to.append(name.clone(), value.clone());
    }
}

async fn forward_http(
    proxy: &ProxyClient,
    comfy_base: &str,
    path_and_query: &str,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let mut headers = HeaderMap::new();
    copy_headers(&parts.headers, &mut headers);
    if headers.contains_key(header::ORIGIN) {
        match upstream_origin(comfy_base) {
            Some(origin) => {
                headers.insert(header::ORIGIN, origin);
            }
            None => {
                headers.remove(header::ORIGIN);
            }
        }
    }
    let url = format!("{comfy_base}{path_and_query}");
    let body = reqwest::Body::wrap_stream(body.into_data_stream());
    let upstream = proxy
        .http
        .request(parts.method, &url)
        .headers(headers)
        .body(body)
        .send()
        .await;
    let upstream = match upstream {
        Ok(response) => response,
        Err(e) => {
            tracing::warn!(error = %e, %url, "ComfyUI proxy request failed");
            return (
                StatusCode::BAD_GATEWAY,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                format!("ComfyUI at {comfy_base} is not answering: {e}"),
            )
                .into_response();
        }
    };
    let status = upstream.status();
    let mut response_headers = HeaderMap::new();
    for (name, value) in upstream.headers() {
        if NOT_FORWARDED.contains(&name.as_str()) && name != header::CONTENT_LENGTH {
            continue;
        }
        response_headers.append(name.clone(), value.clone());
    }
    // A redirect to ComfyUI's root must stay under the prefix.
    if let Some(location) = response_headers
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .filter(|l| l.starts_with('/') && !l.starts_with("//"))
        .and_then(|l| HeaderValue::from_str(&format!("{PREFIX}{l}")).ok())
    {
        response_headers.insert(header::LOCATION, location);
    }
    // ComfyUI's cookies (none today) must not be scoped to comfydeck's root.
    response_headers.remove(HeaderName::from_static("set-cookie"));
    let mut response = Response::new(Body::from_stream(upstream.bytes_stream()));
    *response.status_mut() = status;
    *response.headers_mut() = response_headers;
    response
}

/// Relays frames both ways until either side closes.
async fn relay_socket(browser: WebSocket, target: String) {
    // Nagle off on the upstream socket too (the browser side is an accepted socket, set in
    // `serve`): a small frame must not wait for the ACK of the previous one.
    let comfy =
        match tokio_tungstenite::connect_async_with_config(target.as_str(), None, true).await {
            Ok((socket, _)) => socket,
            Err(e) => {
                tracing::warn!(error = %e, %target, "ComfyUI WebSocket proxy: cannot connect");
                let mut browser = browser;
                let _ = browser
                    .send(Message::Close(Some(CloseFrame {
                        code: 1011,
                        reason: "ComfyUI is not answering".into(),
                    })))
                    .await;
                return;
            }
        };
    let (mut comfy_tx, mut comfy_rx) = comfy.split();
    let (mut browser_tx, mut browser_rx) = browser.split();
    let to_comfy = async {
        while let Some(Ok(message)) = browser_rx.next().await {
            let forwarded = match message {
                Message::Text(text) => tungstenite::Message::text(text.as_str()),
                Message::Binary(bytes) => tungstenite::Message::binary(bytes),
                Message::Ping(bytes) => tungstenite::Message::Ping(bytes),
                Message::Pong(bytes) => tungstenite::Message::Pong(bytes),
                Message::Close(_) => break,
            };
            if comfy_tx.send(forwarded).await.is_err() {
                break;
            }
        }
        let _ = comfy_tx.close().await;
    };
    let to_browser = async {
        while let Some(Ok(message)) = comfy_rx.next().await {
            let forwarded = match message {
                tungstenite::Message::Text(text) => Message::Text(text.as_str().into()),
                tungstenite::Message::Binary(bytes) => Message::Binary(bytes),
                tungstenite::Message::Ping(bytes) => Message::Ping(bytes),
                tungstenite::Message::Pong(bytes) => Message::Pong(bytes),
                tungstenite::Message::Close(_) => break,
                tungstenite::Message::Frame(_) => continue,
            };
            if browser_tx.send(forwarded).await.is_err() {
                break;
            }
        }
        let _ = browser_tx.close().await;
    };
    // When one direction ends, the other is dropped with it.
    tokio::select! {
        _ = to_comfy => {},
        _ = to_browser => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_under_the_prefix_only() {
        let map = |s: &str| upstream_path(&s.parse::<Uri>().unwrap());
        assert_eq!(map("/comfyui/").as_deref(), Some("/"));
        assert_eq!(map("/comfyui").as_deref(), Some("/"));
        assert_eq!(
            map("/comfyui/api/view?filename=a.png&type=output").as_deref(),
            Some("/api/view?filename=a.png&type=output")
        );
        assert_eq!(map("/comfyuix/api"), None);
        assert_eq!(map("/api/status"), None);
    }

    #[test]
    fn origin_and_websocket_bases_follow_comfyui() {
        assert_eq!(
            upstream_origin("http://127.0.0.1:3000").unwrap(),
            "http://127.0.0.1:3000"
        );
        assert_eq!(ws_base("http://127.0.0.1:3000"), "ws://127.0.0.1:3000");
        assert_eq!(ws_base("https://pod.example"), "wss://pod.example");
    }
}
