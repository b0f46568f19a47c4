//! The run panel: the workflow's editable inputs as a form, submitting it, and following the
//! run through the live run events (or ComfyUI's queue when WebSockets are blocked).

use engine::model::*;
use leptos::prelude::*;

use super::install::InstallPresetButton;
use super::labels::{describe, source_label, source_tone};
use super::library::{Problems, RequiredModels};
use super::shelf::Shelf;
use crate::api::run_saved_workflow;
use crate::components::{badge, ErrorNote};
use crate::pages::run_panel::{Field, InputField, RunView, TrackedRun};
use crate::server_calls::error_message;

#[derive(Clone, Debug, PartialEq)]
enum Refusal {
    /// Found before or by ComfyUI, per node.
    Problems {
        message: String,
        problems: Vec<WorkflowProblem>,
    },
    /// The request failed (bad values, ComfyUI away, …).
    Error(String),
}

#[component]
pub(super) fn RunPanel(id: String, shelf: Shelf) -> impl IntoView {
    let initial = shelf
        .data
        .with_untracked(|d| d.workflows.iter().find(|w| w.id == id).cloned());
    let Some(initial) = initial else {
        return view! { <MissingWorkflow id shelf/> }.into_any();
    };
    let fields: Vec<Field> = initial.inputs.iter().cloned().map(Field::new).collect();
    let workflow = {
        let id = id.clone();
        Memo::new(move |previous: Option<&WorkflowSummary>| {
            shelf
                .summary(&id)
                .or_else(|| previous.cloned())
                .unwrap_or_else(|| initial.clone())
        })
    };
    let missing = Memo::new(move |_| {
        workflow.with(|w| w.required_models.iter().filter(|m| !m.installed).count())
    });
    let tracked_prompt = {
        let id = id.clone();
        Memo::new(move |_| {
            shelf
                .runs
                .with(|runs| runs.get(&id).map(|r| r.prompt_id.clone()))
        })
    };

    let submitting = RwSignal::new(false);
    let refusal = RwSignal::new(None::<Refusal>);
    let on_submit = {
        let id = id.clone();
        let fields = fields.clone();
        move |ev: leptos::ev::SubmitEvent| {
            ev.prevent_default();
            if submitting.get_untracked() {
                return;
            }
            let values: Result<Vec<InputValue>, String> = fields.iter().map(Field::value).collect();
            let values = match values {
                Ok(values) => values,
                Err(why) => {
                    refusal.set(Some(Refusal::Error(why)));
                    return;
                }
            };
            let id = id.clone();
            submitting.set(true);
            refusal.set(None);
            leptos::task::spawn_local(async move {
                match run_saved_workflow(id.clone(), values).await {
                    Ok(RunSubmission {
                        prompt_id: Some(prompt_id),
                        ..
                    }) => {
                        shelf.runs.try_update(|runs| {
                            runs.insert(id, TrackedRun::new(prompt_id));
                        });
                    }
                    Ok(answer) => {
                        refusal.try_set(Some(Refusal::Problems {
                            message: answer.message,
                            problems: answer.problems,
                        }));
                    }
                    Err(e) => {
                        refusal.try_set(Some(Refusal::Error(error_message(e))));
                    }
                }
                submitting.try_set(false);
            });
        }
    };

    let has_fields = !fields.is_empty();
    let field_views = fields
        .into_iter()
        .map(|field| view! { <InputField field/> })
        .collect_view();
    let panel_id = id.clone();
    view! {
        <section
            id="run-panel"
            data-testid="run-panel"
            data-workflow-id=panel_id
            aria-label="Run workflow"
            class="flex min-w-0 scroll-mt-16 flex-col gap-4 rounded-xl border border-line bg-surface p-4 shadow-sm"
        >
            <header class="flex items-start gap-3">
                <div class="min-w-0 flex-1">
                    <h2 class="text-lg font-semibold leading-snug wrap-anywhere">{move || workflow.with(|w| w.name.clone())}</h2>
                    <p class="mt-0.5 flex flex-wrap items-center gap-x-2 gap-y-1 text-xs text-muted">
                        <span class=move || badge(workflow.with(|w| source_tone(w.source)))>{move || workflow.with(|w| source_label(w.source))}</span>
                        <span class="wrap-anywhere">{move || workflow.with(describe)}</span>
                    </p>
                </div>
                <button
                    type="button"
                    data-testid="run-close"
                    class="btn-secondary shrink-0 px-2.5 py-1.5"
                    aria-label="Close"
                    title="Close"
                    on:click=move |_| shelf.select.run(None)
                >
                    "✕"
                </button>
            </header>

            <Show when=move || { missing.get() > 0 }>
                <div class="rounded-lg border border-bad/40 bg-bad/5 p-3">
                    <RequiredModels workflow shelf/>
                    <p class="mt-2 text-xs text-muted">"ComfyUI refuses or fails the run until the missing files are installed."</p>
                </div>
            </Show>

            <Problems workflow testid="run-workflow-problems"/>

            <form class="flex flex-col gap-4" novalidate on:submit=on_submit>
                {if has_fields {
                    view! { <div class="grid grid-cols-2 gap-3">{field_views}</div> }.into_any()
                } else {
                    view! {
                        <p class="text-sm text-muted">"No inputs to change here: Run submits the workflow as saved."</p>
                    }
                    .into_any()
                }}
                <div class="flex flex-wrap items-center gap-3">
                    <button type="submit" class="btn-primary min-w-28" data-testid="workflow-run" disabled=move || submitting.get()>
                        {move || if submitting.get() {
                            "Submitting…"
                        } else if tracked_prompt.with(Option::is_some) {
                            "Run again"
                        } else {
                            "Run"
                        }}
                    </button>
                    <p class="min-w-0 flex-1 text-xs text-muted">"Queues the workflow in ComfyUI with these values; the saved file is not changed."</p>
                </div>
            </form>

            {move || refusal.get().map(|r| view! { <RefusalView refusal=r shelf/> })}
            {move || tracked_prompt.get().map(|prompt_id| {
                let tracked = {
                    let id = id.clone();
                    Signal::derive(move || shelf.runs.with(|runs| runs.get(&id).cloned()))
                };
                let on_cancelled = {
                    let id = id.clone();
                    Callback::new(move |()| {
                        shelf.runs.try_update(|runs| {
                            if let Some(run) = runs.get_mut(&id) {
                                run.cancelled = true;
                            }
                        });
                    })
                };
                view! { <RunView prompt_id live=shelf.live tracked on_cancelled/> }
            })}
        </section>
    }
    .into_any()
}

#[component]
fn RefusalView(refusal: Refusal, shelf: Shelf) -> impl IntoView {
    match refusal {
        Refusal::Error(message) => view! {
            <div data-testid="run-problems"><ErrorNote message/></div>
        }
        .into_any(),
        Refusal::Problems { message, problems } => {
            let heading = if problems.is_empty() {
                message
            } else {
                "Not submitted — ComfyUI would refuse it:".to_string()
            };
            view! {
                <div data-testid="run-problems" role="alert" class="rounded-lg border border-bad/40 bg-bad/5 p-3 text-sm">
                    <p class="font-medium text-bad wrap-anywhere">{heading}</p>
                    <ul class="mt-2 space-y-2">
                        {problems.into_iter().map(|p| {
                            let who = format!(
                                "{} (node {}){}",
                                p.title.clone().unwrap_or_else(|| p.class_type.clone()),
                                p.node_id,
                                p.input.as_deref().map(|i| format!(" · {i}")).unwrap_or_default(),
                            );
                            view! {
                                <li data-testid="run-problem" data-node=p.node_id.clone() class="flex min-w-0 flex-col gap-1">
                                    <p class="wrap-anywhere">
                                        <span class="font-medium">{who}</span>
                                        ": "
                                        {p.message}
                                    </p>
                                    {p.preset_hint.map(|preset_id| view! { <InstallPresetButton preset_id shelf/> })}
                                </li>
                            }
                        }).collect_view()}
                    </ul>
                </div>
            }
            .into_any()
        }
    }
}

/// The URL names a workflow the library does not have (deleted, renamed, or ComfyUI is away).
#[component]
pub(super) fn MissingWorkflow(id: String, shelf: Shelf) -> impl IntoView {
    view! {
        <section id="run-panel" data-testid="run-panel" class="rounded-xl border border-line bg-surface p-4 shadow-sm">
            <p class="text-sm wrap-anywhere">
                "The library has no workflow "
                <span class="font-mono">{id}</span>
                " (it may have been renamed or deleted)."
            </p>
            <button type="button" class="btn-secondary mt-3" on:click=move |_| shelf.select.run(None)>
                "Close"
            </button>
        </section>
    }
}
