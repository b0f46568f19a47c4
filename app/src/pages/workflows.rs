//! Workflows: the library (templates, the user's own, ComfyUI's saved ones) with what each
//! needs, importing a JSON or PNG file, renaming and deleting the user's own, and a run panel
//! that edits the inputs worth changing, submits the workflow and follows the run live:
//! state, progress, previews, outputs, stop and cancel.
//!
//! The list is fetched once (server-rendered) and again after every change. The open workflow
//! is in the URL (`/workflows?w=user:portrait.json`), so a reload or the back button keeps or
//! closes it. Runs are followed through the live connection's run events; without WebSockets
//! ComfyUI's queue is polled instead, which tells queued, running and finished apart (previews
//! and outputs need the live connection).

mod install;
mod labels;
mod library;
mod run;
mod shelf;

use std::collections::HashMap;
use std::time::Duration;

use engine::model::*;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_navigate, use_query_map};
use leptos_router::NavigateOptions;
use leptos_router::{lazy_route, LazyRoute};

use crate::api::*;
use crate::browser;
use crate::components::ErrorNote;
use crate::live::{Connection, Live};
use crate::pages::run_panel::RunPhase;
use crate::server_calls::{api_error_view, error_message, RefreshGate, Write};
use library::Library;
use run::{MissingWorkflow, RunPanel};
use shelf::Shelf;

/// How often ComfyUI's queue is read while a run is followed without a live connection.
const POLL_EVERY: Duration = Duration::from_secs(3);

/// The route: the page's code comes in a wasm chunk of its own, loaded when the route is
/// first shown (see `pages/mod.rs`).
pub struct WorkflowsRoute;

#[lazy_route]
impl LazyRoute for WorkflowsRoute {
    fn data() -> Self {
        Self
    }

    fn view(_this: Self) -> AnyView {
        view! { <WorkflowsPage/> }.into_any()
    }
}

#[component]
pub fn WorkflowsPage() -> impl IntoView {
    let list = Resource::new(|| (), |_| list_workflows());
    view! {
        <Title text="Workflows · comfydeck"/>
        <Transition fallback=|| view! { <p class="text-muted">"Reading the workflow library…"</p> }>
            {move || Suspend::new(async move {
                match list.await {
                    Ok(initial) => view! { <WorkflowsBody initial/> }.into_any(),
                    Err(e) => view! {
                        <h1 class="mb-4 text-xl font-semibold">"Workflows"</h1>
                        {api_error_view(e)}
                    }
                    .into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn WorkflowsBody(initial: WorkflowList) -> impl IntoView {
    let query = use_query_map();
    let selected = Memo::new(move |_| query.with(|q| q.get("w")).filter(|w| !w.is_empty()));
    let navigate = use_navigate();
    let select = Callback::new(move |id: Option<String>| {
        let url = match &id {
            Some(id) => format!("/workflows?w={}", encode_component(id)),
            None => "/workflows".to_string(),
        };
        navigate(
            &url,
            NavigateOptions {
                scroll: false,
                ..Default::default()
            },
        );
        if id.is_some() {
            browser::reveal_run_panel();
        }
    });
    let shelf = Shelf {
        live: Live::get(),
        data: RwSignal::new(initial),
        refresh_gate: RefreshGate::new(),
        selected,
        select,
        runs: RwSignal::new(HashMap::new()),
        polled_queue: RwSignal::new(None),
    };
    watch(shelf);

    // The open workflow's id, and whether the library has it; the panel reads the rest itself,
    // so a refreshed list does not reset its form.
    let open = Memo::new(move |_| {
        selected.get().map(|id| {
            let known = shelf.data.with(|d| d.workflows.iter().any(|w| w.id == id));
            (id, known)
        })
    });
    let has_open = move || selected.with(Option::is_some);
    view! {
        <div class="mb-4 flex flex-wrap items-center gap-x-3 gap-y-2">
            <h1 class="mr-auto text-xl font-semibold">"Workflows"</h1>
            <QueueChip shelf/>
            <ImportButton shelf/>
        </div>
        {move || shelf.refresh_gate.error().map(|message| view! { <div class="mb-4"><ErrorNote message/></div> })}
        <div class=move || {
            if has_open() {
                "grid items-start gap-4 lg:grid-cols-[minmax(0,5fr)_minmax(0,7fr)]"
            } else {
                "grid gap-4"
            }
        }>
            // On phones the open workflow comes first; on wide screens it sits beside the list.
            <div class="min-w-0 lg:order-2 lg:sticky lg:top-16">
                {move || open.get().map(|(id, known)| if known {
                    view! { <RunPanel id shelf/> }.into_any()
                } else {
                    view! { <MissingWorkflow id shelf/> }.into_any()
                })}
            </div>
            <div class="min-w-0 lg:order-1">
                <Library shelf/>
            </div>
        </div>
    }
    .into_any()
}

/// Fetches the list when a preset install finishes (models turn ✓), and reads ComfyUI's queue:
/// once at the start, and every few seconds while a run is followed without a live connection.
fn watch(shelf: Shelf) {
    let live = shelf.live;
    Effect::new(move |previous: Option<HashMap<String, InstallState>>| {
        let now: HashMap<String, InstallState> = live
            .presets
            .with(|map| map.iter().map(|(id, p)| (id.clone(), p.state)).collect());
        if let Some(previous) = previous {
            if now
                .iter()
                .any(|(id, state)| state.is_installed() && previous.get(id) != Some(state))
            {
                shelf.refresh();
            }
        }
        now
    });
    // Events sent while the socket was down are lost: the list may be stale, and a followed run
    // may have ended unseen (the queue tells).
    Effect::new(move |previous: Option<Connection>| {
        let now = live.connection.get();
        if previous.is_some_and(|p| p != Connection::Live) && now == Connection::Live {
            shelf.refresh();
            if shelf.runs.with_untracked(|runs| !runs.is_empty()) {
                poll_queue(shelf);
            }
        }
        now
    });
    Effect::new(move |_| {
        // Unless the list already found ComfyUI away (asking would only log a failed request).
        if shelf.data.with_untracked(|d| d.comfyui_note.is_none()) {
            poll_queue(shelf);
        }
        let handle = set_interval_with_handle(
            move || {
                let polling = live.connection.try_get_untracked() == Some(Connection::Polling);
                let following = shelf
                    .runs
                    .try_with_untracked(|runs| runs.values().any(|r| r.needs_polling(live)))
                    .unwrap_or(false);
                if polling && following {
                    poll_queue(shelf);
                }
            },
            POLL_EVERY,
        )
        .ok();
        on_cleanup(move || {
            if let Some(handle) = handle {
                handle.clear();
            }
        });
    });
}

/// Reads ComfyUI's queue: its length, and where the followed runs are.
fn poll_queue(shelf: Shelf) {
    // A run submitted while the answer is on its way is not in it yet: only these are judged.
    let asked: Vec<String> = shelf
        .runs
        .try_with_untracked(|runs| runs.values().map(|r| r.prompt_id.clone()).collect())
        .unwrap_or_default();
    leptos::task::spawn_local(async move {
        let Ok(queue) = get_comfy_queue().await else {
            return;
        };
        shelf
            .polled_queue
            .try_set(Some((queue.running.len() + queue.pending.len()) as u64));
        shelf.runs.try_update(|runs| {
            for run in runs.values_mut().filter(|r| asked.contains(&r.prompt_id)) {
                let id = run.prompt_id.as_str();
                run.polled = Some(if queue.running.iter().any(|e| e.prompt_id == id) {
                    RunPhase::Running
                } else if queue.pending.iter().any(|e| e.prompt_id == id) {
                    RunPhase::Queued
                } else {
                    RunPhase::Finished
                });
            }
        });
    });
}

#[component]
fn QueueChip(shelf: Shelf) -> impl IntoView {
    move || {
        shelf.queue_len().map(|n| {
            let text = match n {
                0 => "ComfyUI queue empty".to_string(),
                1 => "1 prompt in ComfyUI's queue".to_string(),
                n => format!("{n} prompts in ComfyUI's queue"),
            };
            view! {
                <span
                    data-testid="comfy-queue"
                    data-count=n.to_string()
                    class="rounded-full border border-line px-2.5 py-1 text-xs text-muted tabular-nums"
                    title="Prompts running or waiting in ComfyUI, from any client"
                >
                    {text}
                </span>
            }
        })
    }
}

/// "Import workflow…": a JSON file (either format) or a PNG saved by ComfyUI, read in the
/// browser and sent base64-encoded; the imported workflow opens.
#[component]
fn ImportButton(shelf: Shelf) -> impl IntoView {
    let write = Write::new();
    // The name of the workflow just imported.
    let imported = RwSignal::new(None::<String>);
    let on_change = move |ev: leptos::ev::Event| {
        let Some(target) = ev.target() else {
            return;
        };
        imported.set(None);
        write.run(import_chosen_file(target), move |summary| {
            if let Some(summary) = summary {
                imported.try_set(Some(summary.name.clone()));
                shelf.refresh();
                shelf.select.run(Some(summary.id));
            }
        });
    };
    view! {
        <label
            class=move || format!(
                "btn-primary cursor-pointer focus-within:outline-2 focus-within:outline-offset-2 focus-within:outline-accent {}",
                if write.busy() { "pointer-events-none opacity-50" } else { "" },
            )
            title="A workflow saved from ComfyUI (.json, either format) or a PNG image ComfyUI made"
        >
            <input
                type="file"
                accept=".json,.png,application/json,image/png"
                class="sr-only"
                data-testid="workflow-import"
                disabled=move || write.busy()
                on:change=on_change
            />
            {move || if write.busy() { "Importing…" } else { "Import workflow…" }}
        </label>
        {move || match write.error() {
            Some(message) => Some(view! {
                <div data-testid="workflow-import-error" class="w-full">
                    <ErrorNote message=format!("Import failed: {message}")/>
                </div>
            }
            .into_any()),
            None => imported.get().map(|name| view! {
                <p data-testid="workflow-import-result" role="status" class="w-full text-sm text-ok wrap-anywhere">
                    {format!("Imported “{name}”.")}
                </p>
            }
            .into_any()),
        }}
    }
}

/// Reads the file chosen in `input` and imports it; `Ok(None)` when no file was chosen.
async fn import_chosen_file(
    input: leptos::web_sys::EventTarget,
) -> Result<Option<WorkflowSummary>, String> {
    let Some((name, bytes)) = browser::take_chosen_file(input).await? else {
        return Ok(None);
    };
    if bytes.len() as u64 > MAX_IMPORT_BYTES {
        return Err(format!(
            "{name} is {}; a workflow file is at most {}",
            format_bytes(bytes.len() as u64),
            format_bytes(MAX_IMPORT_BYTES)
        ));
    }
    import_workflow(name, browser::base64_encode(&bytes))
        .await
        .map(Some)
        .map_err(error_message)
}

/// The largest file the import sends (ComfyUI PNGs with a workflow are a few MB).
const MAX_IMPORT_BYTES: u64 = 32 * 1024 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(
            encode_component("user:my flow/a.json"),
            "user%3Amy%20flow%2Fa.json"
        );
        assert_eq!(
            encode_component("template:x-1_2.json"),
            "template%3Ax-1_2.json"
        );
    }
}
