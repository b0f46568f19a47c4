//! `/ws`: one WebSocket per browser tab, carrying engine events as JSON text frames.

use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use engine::model::Event;
use engine::Engine;
use tokio::sync::broadcast::error::RecvError;

use crate::AppState;

pub async fn upgrade(State(state): State<AppState>, upgrade: WebSocketUpgrade) -> Response {
    upgrade.on_upgrade(move |socket| serve(state.engine, socket))
}

async fn serve(engine: Arc<Engine>, mut socket: WebSocket) {
    // While this guard lives, the engine samples metrics and pushes them.
    let _watching = engine.events().watch();
    let mut events = engine.events().subscribe();

    // A new viewer should not wait for the next tick to see anything.
    let first = [
        Event::SystemStats(engine.status().system_stats().await),
        Event::ComfyStatus(engine.status().comfy_status().await),
    ];
    for event in first {
        if send(&mut socket, &event).await.is_err() {
            return;
        }
    }

    loop {
        tokio::select! {
            received = events.recv() => match received {
                Ok(event) => {
                    if send(&mut socket, &event).await.is_err() {
                        break;
                    }
                }
                // This viewer fell behind; skip what it missed and carry on with fresh events.
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => break,
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                // Pings are answered by axum; the client sends nothing else we act on.
                Some(Ok(_)) => {}
            },
        }
    }
}

async fn send(socket: &mut WebSocket, event: &Event) -> Result<(), axum::Error> {
    let text = serde_json::to_string(event).expect("events always serialise");
    socket.send(Message::Text(text.into())).await
}
