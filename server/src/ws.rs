//! `/ws`: one WebSocket per browser tab, carrying engine events as JSON text frames.
//!
//! Each socket knows who opened it and gets only what that person may see: activity entries
//! by [`ActivityLog::visible_to`], a run's events and generation rows by the prompt's owner,
//! gallery changes by the files' owner (a scan's change, whose files may be anyone's, reaches
//! a user as a bare "reload" without counts or ids), the deck's settings without its tokens.
//! System, ComfyUI, model and download events are everyone's.

use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{Extensions, HeaderMap};
use axum::response::{IntoResponse, Response};
use engine::activity::ActivityLog;
use engine::model::{Caller, Event, GalleryChange};
use engine::Engine;
use tokio::sync::broadcast::error::RecvError;

use crate::AppState;

/// The close code a socket ends with when its session has ended (4000–4999 are the
/// application's).
pub const SESSION_ENDED: u16 = 4401;

/// How often a socket checks that its session (or token) is still live: a password change,
/// a disabled or removed account ends the socket within this time.
const SESSION_RECHECK: std::time::Duration = std::time::Duration::from_secs(10);

pub async fn upgrade(
    State(state): State<AppState>,
    extensions: Extensions,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let caller = match crate::auth::caller_of(&extensions) {
        Ok(caller) => caller,
        Err(e) => return e.into_response(),
    };
    let credentials = state
        .engine
        .auth()
        .mode()
        .requires_login()
        .then_some(headers);
    upgrade.on_upgrade(move |socket| serve(state, caller, credentials, socket))
}

/// The event as `caller` may see it, or `None` when it is none of their business.
pub async fn visible_to(engine: &Engine, caller: &Caller, event: Event) -> Option<Event> {
    if matches!(event, Event::Sync(_) | Event::Pack(_)) {
        return None;
    }
    if caller.is_admin() {
        return Some(event);
    }
    match event {
        Event::Activity(entry) => {
            ActivityLog::visible_to(&entry, caller).then_some(Event::Activity(entry))
        }
        Event::Run(run) => {
            let owner = match engine.bridge().known_owner(&run.prompt_id) {
                Some(owner) => Some(owner),
                None => engine
                    .bridge()
                    .prompt_owner(&run.prompt_id)
                    .await
                    .unwrap_or_else(|e| {
                        tracing::warn!(error = %e, "a run's owner cannot be read");
                        None
                    }),
            };
            (owner == Some(caller.user_id)).then_some(Event::Run(run))
        }
        Event::Generation(row) => caller
            .may_access(row.user_id)
            .then_some(Event::Generation(row)),
        Event::Job(job) => caller.may_access(job.user_id).then_some(Event::Job(job)),
        Event::Operation(op) => caller
            .may_access(op.user_id)
            .then_some(Event::Operation(op)),
        Event::Gallery(change) => match change.user_id {
            Some(owner) => caller.may_access(owner).then_some(Event::Gallery(change)),
            None => Some(Event::Gallery(GalleryChange::default())),
        },
        Event::Settings(mut view) => {
            view.hf_token_masked = None;
            view.civitai_token_masked = None;
            Some(Event::Settings(view))
        }
        other => Some(other),
    }
}

/// `credentials`: the upgrade request's headers when logins are on, to check the session again
/// every [`SESSION_RECHECK`].
async fn serve(
    state: AppState,
    caller: Caller,
    credentials: Option<HeaderMap>,
    mut socket: WebSocket,
) {
    let engine = Arc::clone(&state.engine);
    let mut recheck = tokio::time::interval(SESSION_RECHECK);
    recheck.tick().await;
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
                    let Some(event) = visible_to(&engine, &caller, event).await else {
                        continue;
                    };
                    if send(&mut socket, &event).await.is_err() {
                        break;
                    }
                }
                // This viewer fell behind; skip what it missed and carry on with fresh events.
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => break,
            },
            _ = recheck.tick(), if credentials.is_some() => {
                let headers = credentials.as_ref().expect("checked by the guard");
                let still = crate::auth::authenticated_caller(&state, headers).await;
                if still.as_ref().map(|c| (c.user_id, c.role)) != Some((caller.user_id, caller.role)) {
                    let _ = socket
                        .send(Message::Close(Some(CloseFrame {
                            code: SESSION_ENDED,
                            reason: "the session ended; log in again".into(),
                        })))
                        .await;
                    break;
                }
            }
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
