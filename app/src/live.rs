//! Live updates: one WebSocket per tab to `/ws`, reconnecting with backoff; when WebSockets
//! keep failing (some proxies block them) it polls `/api/status` instead and tries the socket
//! again now and then. Pages read the latest values from the [`Live`] context.

use std::collections::HashMap;

use engine::model::{
    ActivityEntry, ComfyProcess, ComfyStatus, FileProgress, PresetProgress, RunEvent, SettingsView,
    SystemStats,
};
use leptos::prelude::*;

/// Run events kept in memory for the pages.
const RUN_EVENTS_KEPT: usize = 500;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Connection {
    Connecting,
    Live,
    Reconnecting,
    Polling,
}

impl Connection {
    pub fn label(self) -> &'static str {
        match self {
            Connection::Connecting => "Connecting…",
            Connection::Live => "Live",
            Connection::Reconnecting => "Reconnecting…",
            Connection::Polling => "Polling",
        }
    }

    pub fn explanation(self) -> &'static str {
        match self {
            Connection::Connecting => "Opening the live connection",
            Connection::Live => "Live updates over a WebSocket",
            Connection::Reconnecting => "The live connection dropped; reconnecting",
            Connection::Polling => {
                "WebSockets are blocked on this network; updating every few seconds instead"
            }
        }
    }
}

/// The latest pushed values; `None` until the first event arrives (pages then show what the
/// server rendered).
#[derive(Clone, Copy)]
pub struct Live {
    pub connection: RwSignal<Connection>,
    pub stats: RwSignal<Option<SystemStats>>,
    pub comfy: RwSignal<Option<ComfyStatus>>,
    pub comfy_process: RwSignal<Option<ComfyProcess>>,
    pub activity: RwSignal<Option<ActivityEntry>>,
    pub settings: RwSignal<Option<SettingsView>>,
    /// Latest progress per download task; every event is kept (a signal holding only the last
    /// event would lose files that report in the same tick).
    pub downloads: RwSignal<HashMap<i64, FileProgress>>,
    /// Latest state per preset id.
    pub presets: RwSignal<HashMap<String, PresetProgress>>,
    /// Workflow run events, oldest first (the newest few hundred).
    pub runs: RwSignal<Vec<RunEvent>>,
    /// Prompts running or waiting in ComfyUI.
    pub comfy_queue: RwSignal<Option<u64>>,
    /// The newest gallery change (outputs added or removed).
    pub gallery: RwSignal<Option<engine::model::GalleryChange>>,
    /// The newest change to a generation's history row.
    pub generation: RwSignal<Option<engine::model::Generation>>,
    /// The newest change to a queue job (submitted, claimed, ended, cancelled, moved).
    pub job: RwSignal<Option<engine::model::JobView>>,
    /// Latest state of each "make runnable" operation, by operation id.
    pub operations: RwSignal<HashMap<i64, engine::model::OperationView>>,
    /// Raised each time the recovery list changes (the banner and the page read it again).
    pub recovery: RwSignal<u64>,
}

impl Live {
    /// Creates the context and, in the browser, starts the connection.
    pub fn provide() -> Live {
        let live = Live {
            connection: RwSignal::new(Connection::Connecting),
            stats: RwSignal::new(None),
            comfy: RwSignal::new(None),
            comfy_process: RwSignal::new(None),
            activity: RwSignal::new(None),
            settings: RwSignal::new(None),
            downloads: RwSignal::new(HashMap::new()),
            presets: RwSignal::new(HashMap::new()),
            runs: RwSignal::new(Vec::new()),
            comfy_queue: RwSignal::new(None),
            gallery: RwSignal::new(None),
            generation: RwSignal::new(None),
            job: RwSignal::new(None),
            operations: RwSignal::new(HashMap::new()),
            recovery: RwSignal::new(0),
        };
        provide_context(live);
        #[cfg(feature = "hydrate")]
        Effect::new(move |_| leptos::task::spawn_local(client::run(live)));
        live
    }

    pub fn get() -> Live {
        expect_context::<Live>()
    }

    #[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
    fn apply(&self, event: engine::model::Event) {
        use engine::model::{Event, RunEventKind};
        match event {
            Event::SystemStats(s) => self.stats.set(Some(s)),
            Event::ComfyStatus(c) => self.comfy.set(Some(c)),
            Event::ComfyProcess(p) => self.comfy_process.set(Some(p)),
            Event::Activity(a) => self.activity.set(Some(a)),
            Event::Settings(s) => self.settings.set(Some(s)),
            Event::Download(d) => self.downloads.update(|map| {
                map.insert(d.task_id, d);
            }),
            Event::Preset(p) => self.presets.update(|map| {
                map.insert(p.preset_id.clone(), p);
            }),
            Event::Run(run) => self.runs.update(|list| {
                // Overall progress comes with every step: only the newest one per prompt is
                // worth keeping, so it replaces the previous one instead of crowding out the
                // events that matter (outputs, outcome).
                if let RunEventKind::Nodes { .. } = run.event {
                    if let Some(previous) = list.iter_mut().rev().find(|e| {
                        e.prompt_id == run.prompt_id
                            && matches!(e.event, RunEventKind::Nodes { .. })
                    }) {
                        *previous = run;
                        return;
                    }
                }
                list.push(run);
                // Keep memory bounded on a tab left open for days.
                if list.len() > RUN_EVENTS_KEPT {
                    list.drain(..list.len() - RUN_EVENTS_KEPT);
                }
            }),
            Event::ComfyQueue { remaining } => self.comfy_queue.set(Some(remaining)),
            Event::Gallery(change) => self.gallery.set(Some(change)),
            Event::Generation(row) => self.generation.set(Some(row)),
            Event::Job(job) => self.job.set(Some(job)),
            Event::Operation(op) => self.operations.update(|map| {
                map.insert(op.id, op);
            }),
            Event::Recovery => self.recovery.update(|n| *n += 1),
            // The deck never sends it.
            Event::Sync(_) | Event::Pack(_) => {}
        }
    }
}

#[cfg(feature = "hydrate")]
mod client {
    use std::time::Duration;

    use engine::model::{Event, HomeStatus};
    use futures::StreamExt;
    use gloo_net::websocket::{futures::WebSocket, Message};
    use gloo_timers::future::sleep;
    use leptos::prelude::*;

    use super::{Connection, Live};

    /// Socket failures in a row (without a single message) before switching to polling.
    const FAILURES_BEFORE_POLLING: u32 = 3;
    const POLL_INTERVAL: Duration = Duration::from_secs(3);
    /// While polling, try the socket again after this many polls.
    const POLLS_BETWEEN_SOCKET_TRIES: u32 = 10;

    fn socket_url() -> Option<String> {
        let location = web_sys::window()?.location();
        let scheme = if location.protocol().ok()? == "https:" {
            "wss"
        } else {
            "ws"
        };
        Some(format!("{scheme}://{}/ws", location.host().ok()?))
    }

    pub async fn run(live: Live) {
        let mut failures: u32 = 0;
        loop {
            if listen(live).await {
                failures = 0;
            } else {
                failures += 1;
            }
            if failures >= FAILURES_BEFORE_POLLING {
                live.connection.set(Connection::Polling);
                for _ in 0..POLLS_BETWEEN_SOCKET_TRIES {
                    poll_once(live).await;
                    sleep(POLL_INTERVAL).await;
                }
            } else {
                live.connection.set(Connection::Reconnecting);
                // 0.5 s, 1 s, 2 s … capped at 10 s, with jitter so tabs don't reconnect in step.
                let base = 500u64.saturating_mul(1 << failures.min(5)).min(10_000);
                let jitter = (jitter_fraction() * 250.0) as u64;
                sleep(Duration::from_millis(base + jitter)).await;
            }
        }
    }

    /// Reads events until the socket closes; true if at least one message arrived.
    async fn listen(live: Live) -> bool {
        let Some(url) = socket_url() else {
            return false;
        };
        let Ok(socket) = WebSocket::open(&url) else {
            return false;
        };
        let (_write, mut read) = socket.split();
        let mut received = false;
        while let Some(message) = read.next().await {
            match message {
                Ok(Message::Text(text)) => {
                    if !received {
                        received = true;
                        live.connection.set(Connection::Live);
                    }
                    match Event::from_json(&text) {
                        Ok(event) => live.apply(event),
                        Err(e) => leptos::logging::warn!("unreadable live event: {e}"),
                    }
                }
                Ok(Message::Bytes(_)) => {}
                Err(_) => break,
            }
        }
        received
    }

    async fn poll_once(live: Live) {
        let Ok(response) = gloo_net::http::Request::get("/api/status").send().await else {
            return;
        };
        if response.status() == 401 {
            crate::browser::go_to_login();
            return;
        }
        if let Ok(status) = response.json::<HomeStatus>().await {
            live.stats.set(Some(status.stats));
            live.comfy.set(Some(status.comfy));
            live.comfy_process.set(Some(status.comfy_process));
        }
    }

    /// A number in [0, 1) that differs between tabs (they load at different instants), enough
    /// to spread their reconnects; no random generator is needed for that.
    fn jitter_fraction() -> f64 {
        web_sys::window()
            .and_then(|w| w.performance())
            .map(|p| (p.now() % 1000.0) / 1000.0)
            .unwrap_or(0.5)
    }
}
