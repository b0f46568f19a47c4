//! The one persistent WebSocket to ComfyUI.
//!
//! [`ComfySocket::spawn`] opens `<base>/ws?clientId=<id>` (the id is the caller's, the same on
//! every reconnect, so that ComfyUI keeps sending a prompt's events to the prompt's
//! `client_id`), announces the frontend's feature flags, parses every frame with
//! [`protocol`](super::protocol), and publishes [`ComfyEvent`]s on a broadcast channel. When
//! ComfyUI goes away it reconnects with exponential backoff and jitter, capped. No `Origin`
//! header is ever sent (ComfyUI's origin check rejects a mismatch). It stops when its
//! [`CancellationToken`] is cancelled.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use super::protocol::{self, ComfyEvent, Tracker, CLIENT_FEATURE_FLAGS};

/// How the socket connects and retries.
#[derive(Clone, Debug)]
pub struct SocketConfig {
    /// ComfyUI's HTTP base URL (`http://127.0.0.1:8188`); `https` becomes `wss`.
    pub base_url: String,
    /// The `clientId`: stable across reconnects, and the `client_id` prompts are submitted with.
    pub client_id: String,
    /// The first retry delay after a failure.
    pub backoff_initial: Duration,
    /// The longest retry delay.
    pub backoff_max: Duration,
    /// How long one connection attempt (TCP + handshake) may take.
    pub connect_timeout: Duration,
    /// How often a ping is sent on a quiet connection.
    pub ping_interval: Duration,
    /// A connection that delivers nothing (not even a pong) for this long is dropped and
    /// reopened.
    pub idle_timeout: Duration,
    /// Events a slow subscriber may fall behind before it skips ahead (`Lagged`).
    pub capacity: usize,
}

impl SocketConfig {
    pub fn new(base_url: &str, client_id: &str) -> Self {
        SocketConfig {
            base_url: base_url.to_string(),
            client_id: client_id.to_string(),
            backoff_initial: Duration::from_millis(250),
            backoff_max: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            ping_interval: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(60),
            capacity: 1024,
        }
    }
}

/// Where the socket stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SocketState {
    /// Not connected: connecting, or waiting before the next attempt. `attempt` counts the
    /// failures since the last connection; `last_error` says why the last one ended.
    Connecting {
        attempt: u32,
        last_error: Option<String>,
    },
    Connected,
    /// Cancelled; it will not reconnect.
    Stopped,
}

/// The URL could not be turned into a WebSocket URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SocketError {
    #[error("ComfyUI's URL `{url}` is not usable for its WebSocket: {reason}")]
    BadUrl { url: String, reason: String },
}

struct Shared {
    client_id: String,
    ws_url: String,
    events: broadcast::Sender<ComfyEvent>,
    state: watch::Sender<SocketState>,
    tracker: Mutex<Tracker>,
    cancel: CancellationToken,
}

impl Shared {
    fn tracker(&self) -> MutexGuard<'_, Tracker> {
        // A panic while holding the tracker leaves it usable: it holds no invariants that a
        // half-done update could break badly.
        self.tracker.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn publish(&self, event: ComfyEvent) {
        // No subscriber is not an error.
        let _ = self.events.send(event);
    }
}

/// A handle on the persistent socket. Cheap to clone; the socket runs until its token is
/// cancelled (dropping handles does not stop it).
#[derive(Clone)]
pub struct ComfySocket {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ComfySocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ComfySocket")
            .field("ws_url", &self.shared.ws_url)
            .field("state", &*self.shared.state.borrow())
            .finish()
    }
}

/// `<base>/ws?clientId=<id>`, with `http` → `ws` and `https` → `wss`.
pub fn ws_url(base_url: &str, client_id: &str) -> Result<String, SocketError> {
    let bad = |reason: &str| SocketError::BadUrl {
        url: base_url.to_string(),
        reason: reason.to_string(),
    };
    let mut url = url::Url::parse(base_url).map_err(|e| bad(&e.to_string()))?;
    let scheme = match url.scheme() {
        "http" | "ws" => "ws",
        "https" | "wss" => "wss",
        other => {
            return Err(bad(&format!(
                "the scheme must be http or https, not {other}"
            )))
        }
    };
    url.set_scheme(scheme)
        .map_err(|_| bad("the scheme cannot be changed"))?;
    let path = format!("{}/ws", url.path().trim_end_matches('/'));
    url.set_path(&path);
    url.set_fragment(None);
    url.query_pairs_mut()
        .clear()
        .append_pair("clientId", client_id);
    Ok(url.to_string())
}

impl ComfySocket {
    /// Starts the socket task (on the current tokio runtime). It connects in the background;
    /// watch [`state`](Self::state) or the [`ComfyEvent::Connected`] event. The receiver
    /// returned with it sees every event from the first connection on (one from
    /// [`subscribe`](Self::subscribe) sees events from the moment it is made).
    pub fn spawn(
        config: SocketConfig,
        cancel: CancellationToken,
    ) -> Result<(Self, broadcast::Receiver<ComfyEvent>), SocketError> {
        let ws_url = ws_url(&config.base_url, &config.client_id)?;
        let (events, first) = broadcast::channel(config.capacity.max(16));
        let (state, _) = watch::channel(SocketState::Connecting {
            attempt: 0,
            last_error: None,
        });
        let shared = Arc::new(Shared {
            client_id: config.client_id.clone(),
            ws_url,
            events,
            state,
            tracker: Mutex::new(Tracker::new()),
            cancel,
        });
        tokio::spawn(run(Arc::clone(&shared), config));
        Ok((ComfySocket { shared }, first))
    }

    pub fn client_id(&self) -> &str {
        &self.shared.client_id
    }

    /// The URL it connects to.
    pub fn url(&self) -> &str {
        &self.shared.ws_url
    }

    /// Events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<ComfyEvent> {
        self.shared.events.subscribe()
    }

    /// The connection state, as a watch (for `changed()` / `wait_for`).
    pub fn state(&self) -> watch::Receiver<SocketState> {
        self.shared.state.subscribe()
    }

    pub fn connected(&self) -> bool {
        *self.shared.state.borrow() == SocketState::Connected
    }

    /// ComfyUI's queue length (running + pending) from its last `status`; `None` before the
    /// first one.
    pub fn queue_remaining(&self) -> Option<u64> {
        self.shared.tracker().queue_remaining()
    }

    /// The prompt ComfyUI is executing, as far as this socket has seen.
    pub fn current_prompt(&self) -> Option<String> {
        self.shared.tracker().current_prompt().map(str::to_string)
    }

    /// Lets `NodeExecuting` events name the nodes of this prompt (see
    /// [`Tracker::register_prompt`]).
    pub fn register_prompt(&self, prompt_id: &str, prompt: &Value) {
        self.shared.tracker().register_prompt(prompt_id, prompt);
    }

    /// Stops the socket (the same as cancelling its token).
    pub fn shutdown(&self) {
        self.shared.cancel.cancel();
    }
}

/// The delay before retry number `attempt` (0-based): `initial · 2^attempt`, capped, plus up to
/// half again of random jitter, still capped.
pub fn backoff_delay(initial: Duration, max: Duration, attempt: u32) -> Duration {
    let base = initial
        .checked_mul(1u32 << attempt.min(20))
        .unwrap_or(max)
        .min(max);
    let jitter = base.mul_f64(rand::random_range(0.0..0.5));
    (base + jitter).min(max)
}

async fn run(shared: Arc<Shared>, config: SocketConfig) {
    let mut attempt: u32 = 0;
    let mut last_error: Option<String> = None;
    loop {
        shared.state.send_replace(SocketState::Connecting {
            attempt,
            last_error: last_error.clone(),
        });
        let connect = tokio::time::timeout(
            config.connect_timeout,
            // Nagle off, as on every socket comfydeck opens or accepts.
            tokio_tungstenite::connect_async_with_config(shared.ws_url.as_str(), None, true),
        );
        let outcome = tokio::select! {
            _ = shared.cancel.cancelled() => break,
            outcome = connect => outcome,
        };
        match outcome {
            Ok(Ok((stream, _response))) => {
                attempt = 0;
                tracing::info!(url = %shared.ws_url, "ComfyUI socket connected");
                shared.state.send_replace(SocketState::Connected);
                shared.publish(ComfyEvent::Connected);
                let reason = session(&shared, &config, stream).await;
                shared.tracker().reset();
                shared.publish(ComfyEvent::Disconnected {
                    reason: reason.clone(),
                });
                if shared.cancel.is_cancelled() {
                    break;
                }
                tracing::warn!(url = %shared.ws_url, %reason, "ComfyUI socket lost; reconnecting");
                last_error = Some(reason);
            }
            Ok(Err(e)) => {
                tracing::debug!(url = %shared.ws_url, error = %e, attempt, "ComfyUI socket: connect failed");
                last_error = Some(describe_ws_error(&e));
            }
            Err(_) => {
                last_error = Some(format!(
                    "no WebSocket handshake within {:?}",
                    config.connect_timeout
                ));
            }
        }
        let delay = backoff_delay(config.backoff_initial, config.backoff_max, attempt);
        attempt = attempt.saturating_add(1);
        shared.state.send_replace(SocketState::Connecting {
            attempt,
            last_error: last_error.clone(),
        });
        tokio::select! {
            _ = shared.cancel.cancelled() => break,
            _ = tokio::time::sleep(delay) => {}
        }
    }
    shared.state.send_replace(SocketState::Stopped);
}

fn describe_ws_error(e: &tokio_tungstenite::tungstenite::Error) -> String {
    use tokio_tungstenite::tungstenite::Error;
    match e {
        Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            "connection refused: is ComfyUI running?".to_string()
        }
        Error::Http(response) => format!(
            "ComfyUI refused the WebSocket with HTTP {}",
            response.status()
        ),
        Error::Url(url) => format!("bad WebSocket URL: {url}"),
        other => other.to_string(),
    }
}

/// One connection, until it ends; returns why it ended.
async fn session<S>(
    shared: &Shared,
    config: &SocketConfig,
    stream: tokio_tungstenite::WebSocketStream<S>,
) -> String
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut sink, mut frames) = stream.split();
    if let Err(e) = sink.send(Message::text(CLIENT_FEATURE_FLAGS)).await {
        return format!("could not send the feature flags: {e}");
    }
    let mut ping =
        tokio::time::interval_at(Instant::now() + config.ping_interval, config.ping_interval);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_seen = Instant::now();
    loop {
        tokio::select! {
            _ = shared.cancel.cancelled() => {
                let _ = sink.send(Message::Close(None)).await;
                return "shut down".to_string();
            }
            _ = ping.tick() => {
                if last_seen.elapsed() >= config.idle_timeout {
                    return format!("nothing from ComfyUI for {:?}", last_seen.elapsed());
                }
                if let Err(e) = sink.send(Message::Ping(Default::default())).await {
                    return format!("could not ping ComfyUI: {e}");
                }
            }
            frame = frames.next() => {
                let message = match frame {
                    None => return "ComfyUI closed the connection".to_string(),
                    Some(Err(e)) => return describe_ws_error(&e),
                    Some(Ok(message)) => message,
                };
                last_seen = Instant::now();
                let parsed = match message {
                    Message::Text(text) => protocol::parse_text(text.as_str()),
                    Message::Binary(bytes) => protocol::parse_binary(&bytes),
                    Message::Close(frame) => {
                        return match frame {
                            Some(frame) if !frame.reason.is_empty() => {
                                format!("ComfyUI closed the socket: {}", frame.reason)
                            }
                            _ => "ComfyUI closed the socket".to_string(),
                        };
                    }
                    Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
                };
                match parsed {
                    Ok(message) => {
                        let events = shared.tracker().on_message(message);
                        for event in events {
                            shared.publish(event);
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "ComfyUI sent a frame that is not its protocol"),
                }
            }
        }
    }
}
