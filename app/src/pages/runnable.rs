//! "Make runnable" on a workflow's card (Workflows and Generate pages): the button, then the
//! operation's steps followed live, with the questions a step asks (a choice, a download link).

use engine::model::*;
use leptos::prelude::*;

use crate::api::operations::{answer_operation_step, latest_operation, make_runnable};
use crate::components::{badge, ErrorNote, Tone};
use crate::live::Live;
use crate::server_calls::Write;

fn state_tone(state: OperationState) -> Tone {
    match state {
        OperationState::Running => Tone::Accent,
        OperationState::Done => Tone::Ok,
        OperationState::NeedsYou => Tone::Warn,
        OperationState::Failed => Tone::Bad,
    }
}

fn state_label(state: OperationState) -> &'static str {
    match state {
        OperationState::Running => "Making runnable…",
        OperationState::Done => "Runnable",
        OperationState::NeedsYou => "Needs you",
        OperationState::Failed => "Not runnable yet",
    }
}

fn step_mark(state: StepState) -> (&'static str, &'static str) {
    match state {
        StepState::Pending => ("○", "text-muted"),
        StepState::Running => ("◐", "text-accent"),
        StepState::Done => ("✓", "text-ok"),
        StepState::Skipped => ("–", "text-muted"),
        StepState::Failed => ("✗", "text-bad"),
        StepState::Question => ("?", "text-warn"),
    }
}

/// The button and the operation of one workflow. `needed`: the workflow lacks something (the
/// button is offered); `on_done` runs when an operation ends runnable (the list refreshes).
#[component]
pub fn MakeRunnable(
    #[prop(into)] workflow_id: String,
    #[prop(into)] needed: Signal<bool>,
    #[prop(into)] on_done: Callback<()>,
) -> impl IntoView {
    let live = Live::get();
    let op_id = RwSignal::new(None::<i64>);
    let fetched = RwSignal::new(None::<OperationView>);
    let write = Write::new();
    // An earlier operation on this workflow (also one a restart continues) shows at once.
    {
        let id = workflow_id.clone();
        Effect::new(move |seen: Option<bool>| {
            if seen == Some(true) || !needed.get() {
                return seen.unwrap_or(false);
            }
            let id = id.clone();
            leptos::task::spawn_local(async move {
                if let Ok(Some(op)) = latest_operation(id).await {
                    if op_id.try_get_untracked().flatten().is_none() {
                        op_id.try_set(Some(op.id));
                        fetched.try_set(Some(op));
                    }
                }
            });
            true
        });
    }
    // The newest of what was fetched and what the socket pushed.
    let operation = Memo::new(move |_| {
        let id = op_id.get()?;
        let pushed = live.operations.with(|m| m.get(&id).cloned());
        match (pushed, fetched.get()) {
            (Some(p), Some(f)) if f.id == id && f.updated_ms > p.updated_ms => Some(f),
            (Some(p), _) => Some(p),
            (None, f) => f.filter(|f| f.id == id),
        }
    });
    let ended = Memo::new(move |_| operation.with(|o| o.as_ref().map(|o| o.state)));
    Effect::new(move |previous: Option<Option<OperationState>>| {
        let now = ended.get();
        if now == Some(OperationState::Done) && previous.flatten() != Some(OperationState::Done) {
            on_done.run(());
        }
        now
    });
    let start = {
        let id = workflow_id.clone();
        move |_| {
            write.run(make_runnable(id.clone()), move |op: OperationView| {
                op_id.try_set(Some(op.id));
                fetched.try_set(Some(op));
            });
        }
    };
    let running = move || operation.with(|o| o.as_ref().is_some_and(|o| o.state.is_running()));
    view! {
        <div class="flex min-w-0 flex-col gap-2">
            <Show when=move || needed.get() && !running()>
                <div class="flex flex-wrap items-center gap-2">
                    <button
                        type="button"
                        data-testid="make-runnable"
                        class="btn-primary"
                        disabled=move || write.busy()
                        on:click=start.clone()
                    >
                        {move || if write.busy() { "Looking…" } else if operation.with(Option::is_some) { "Make runnable again" } else { "Make runnable" }}
                    </button>
                    <span class="text-xs text-muted">"Installs what it lacks and fixes small mistakes on a copy."</span>
                </div>
            </Show>
            {move || write.error().map(|message| view! { <ErrorNote message/> })}
            {move || operation.get().map(|op| view! { <OperationPanel op/> })}
        </div>
    }
    .into_any()
}

#[component]
fn OperationPanel(op: OperationView) -> impl IntoView {
    let id = op.id;
    let state = op.state;
    let progress = op.progress_line();
    let steps = op
        .steps
        .into_iter()
        .map(|step| view! { <StepRow operation=id step/> })
        .collect_view();
    view! {
        <section
            data-testid="operation"
            data-state=state.as_str()
            data-operation-id=id.to_string()
            aria-label="Make runnable"
            aria-live="polite"
            class="min-w-0 rounded-lg border border-line bg-surface-2 p-3 text-sm"
        >
            <div class="mb-2 flex flex-wrap items-center gap-2">
                <span class=badge(state_tone(state))>{state_label(state)}</span>
                <span class="text-xs text-muted tabular-nums">{progress}</span>
            </div>
            <ol class="space-y-1.5">{steps}</ol>
            {op.summary.map(|s| view! {
                <p data-testid="operation-summary" class="mt-2 text-xs wrap-anywhere">{s}</p>
            })}
            {op.result_workflow_id.filter(|_| state == OperationState::Done).map(|copy| view! {
                <a
                    data-testid="operation-open-copy"
                    href=format!("/workflows?w={}", encode_component(&copy))
                    class="btn-secondary mt-2 inline-flex"
                >
                    "Open the runnable copy"
                </a>
            })}
        </section>
    }
    .into_any()
}

#[component]
fn StepRow(operation: i64, step: OperationStep) -> impl IntoView {
    let (mark, mark_class) = step_mark(step.state);
    let asks = step.state == StepState::Question;
    let seq = step.seq;
    view! {
        <li
            data-testid="operation-step"
            data-state=step.state.as_str()
            data-kind=step.kind.as_str()
            class="flex min-w-0 gap-2"
        >
            <span class=format!("w-4 shrink-0 text-center {mark_class}") aria-label=step.state.as_str()>{mark}</span>
            <div class="min-w-0 flex-1">
                <p class="wrap-anywhere">{step.title}</p>
                {step.detail.map(|d| view! { <p data-testid="operation-step-detail" class="text-xs text-muted wrap-anywhere">{d}</p> })}
                {asks.then(|| view! { <Answer operation seq choices=step.choices wants_url=step.wants_url/> })}
            </div>
        </li>
    }
    .into_any()
}

/// A question's answers: its choices as buttons, or a link field.
#[component]
fn Answer(operation: i64, seq: u32, choices: Vec<String>, wants_url: bool) -> impl IntoView {
    let write = Write::new();
    let link = RwSignal::new(String::new());
    let send = move |answer: String| {
        write.run(answer_operation_step(operation, seq, answer), |_| {});
    };
    let buttons = choices
        .into_iter()
        .map(|choice| {
            let label = choice.clone();
            view! {
                <button
                    type="button"
                    data-testid="operation-choice"
                    class="btn-secondary px-2 py-1 text-xs wrap-anywhere"
                    disabled=move || write.busy()
                    on:click=move |_| send(choice.clone())
                >
                    {label}
                </button>
            }
            .into_any()
        })
        .collect_view();
    view! {
        <div class="mt-1 flex min-w-0 flex-wrap items-center gap-1.5">
            {buttons}
            {wants_url.then(|| view! {
                <form
                    class="flex w-full min-w-0 flex-wrap gap-1.5"
                    on:submit=move |ev: leptos::ev::SubmitEvent| {
                        ev.prevent_default();
                        let url = link.get_untracked().trim().to_string();
                        if url.is_empty() {
                            write.set_error(Some("Paste a Hugging Face or CivitAI link first.".into()));
                        } else {
                            send(url);
                        }
                    }
                >
                    <input
                        type="url"
                        data-testid="operation-link"
                        aria-label="Download link"
                        placeholder="https://huggingface.co/… or https://civitai.com/…"
                        class="min-w-0 flex-1 basis-48 rounded-lg border border-line bg-surface px-2 py-1 text-xs text-fg"
                        prop:value=link
                        on:input=move |ev| link.set(event_target_value(&ev))
                    />
                    <button type="submit" data-testid="operation-link-use" class="btn-secondary px-2 py-1 text-xs" disabled=move || write.busy()>
                        "Use this link"
                    </button>
                </form>
            }
            .into_any())}
            {move || write.error().map(|message| view! { <div class="w-full"><ErrorNote message/></div> })}
        </div>
    }
    .into_any()
}
