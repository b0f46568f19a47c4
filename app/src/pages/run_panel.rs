//! Pieces shared by the pages that run workflows (Workflows, Generate): a run's phase folded
//! from the live run events, the form fields built from a workflow's editable inputs, and the
//! view that follows a run (overall and per-node progress, previews, outputs, stop / cancel).

use engine::model::*;
use leptos::prelude::*;
use serde_json::Value;

use crate::api::*;
use crate::components::{go_to_login, ErrorNote, ProgressBar};
use crate::live::{Connection, Live};
use crate::pages::workflows::browser;

// ---------------------------------------------------------------------------------------------
// A run and what its events say
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RunPhase {
    Queued,
    Running,
    Succeeded,
    Failed,
    Interrupted,
    /// Removed from the queue before it started.
    Cancelled,
    /// Gone from ComfyUI's queue, outcome unknown (followed without a live connection).
    Finished,
}

impl RunPhase {
    pub(crate) fn is_over(self) -> bool {
        !matches!(self, RunPhase::Queued | RunPhase::Running)
    }

    /// For `data-state` (tests read it).
    pub(crate) fn key(self) -> &'static str {
        match self {
            RunPhase::Queued => "queued",
            RunPhase::Running => "running",
            RunPhase::Succeeded => "succeeded",
            RunPhase::Failed => "failed",
            RunPhase::Interrupted => "interrupted",
            RunPhase::Cancelled => "cancelled",
            RunPhase::Finished => "finished",
        }
    }

    pub(crate) fn short_label(self) -> &'static str {
        match self {
            RunPhase::Queued => "Queued",
            RunPhase::Running => "Running",
            RunPhase::Succeeded => "Done",
            RunPhase::Failed => "Failed",
            RunPhase::Interrupted => "Stopped",
            RunPhase::Cancelled => "Cancelled",
            RunPhase::Finished => "Finished",
        }
    }

    pub(crate) fn tone(self) -> Tone {
        match self {
            RunPhase::Queued | RunPhase::Finished => Tone::Muted,
            RunPhase::Running => Tone::Accent,
            RunPhase::Succeeded => Tone::Ok,
            RunPhase::Failed => Tone::Bad,
            RunPhase::Interrupted | RunPhase::Cancelled => Tone::Warn,
        }
    }

    fn bar(self) -> &'static str {
        match self {
            RunPhase::Queued | RunPhase::Finished => "bg-muted",
            RunPhase::Running => "bg-accent",
            RunPhase::Succeeded => "bg-ok",
            RunPhase::Failed => "bg-bad",
            RunPhase::Interrupted | RunPhase::Cancelled => "bg-warn",
        }
    }
}

/// The latest run a workflow was given from this page.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct TrackedRun {
    pub prompt_id: String,
    /// Cancelled here while it was still waiting.
    pub cancelled: bool,
    /// Where ComfyUI's queue put it when last read (only read without a live connection).
    pub polled: Option<RunPhase>,
}

impl TrackedRun {
    pub(crate) fn new(prompt_id: String) -> TrackedRun {
        TrackedRun {
            prompt_id,
            cancelled: false,
            polled: None,
        }
    }

    /// The phase, from the live events and what polling found (tracked).
    pub(crate) fn phase(&self, live: Live) -> RunPhase {
        live.runs
            .with(|events| self.combine(&fold(&self.prompt_id, events)))
    }

    /// Whether polling could still tell something new (untracked).
    pub(crate) fn needs_polling(&self, live: Live) -> bool {
        let over = live
            .runs
            .try_with_untracked(|events| self.combine(&fold(&self.prompt_id, events)).is_over())
            .unwrap_or(true);
        !over
    }

    pub(crate) fn combine(&self, progress: &RunProgress) -> RunPhase {
        match progress.phase {
            Some(p) if p.is_over() => p,
            _ if self.polled == Some(RunPhase::Finished) => RunPhase::Finished,
            Some(RunPhase::Running) => RunPhase::Running,
            _ if self.cancelled => RunPhase::Cancelled,
            _ if self.polled == Some(RunPhase::Running) => RunPhase::Running,
            _ => RunPhase::Queued,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct NodeRef {
    id: String,
    label: String,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Failure {
    node: Option<String>,
    node_type: Option<String>,
    message: String,
}

/// A prompt's run events folded into what the panel shows.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct RunProgress {
    /// The phase the events tell (`None` before the first one).
    phase: Option<RunPhase>,
    /// The node running now (or last).
    node: Option<NodeRef>,
    /// `(value, max)` of the current node.
    step: Option<(f64, f64)>,
    preview: Option<String>,
    text: Option<String>,
    outputs: Vec<RunOutput>,
    /// Nodes ComfyUI took from its cache.
    cached: usize,
    failure: Option<Failure>,
    /// Overall progress across the prompt's nodes: (done, total, fraction 0–1).
    nodes: Option<(usize, usize, f64)>,
}

pub(crate) fn fold(prompt_id: &str, events: &[RunEvent]) -> RunProgress {
    let mut p = RunProgress::default();
    let running = |p: &mut RunProgress| {
        if !p.phase.is_some_and(RunPhase::is_over) {
            p.phase = Some(RunPhase::Running);
        }
    };
    for event in events.iter().filter(|e| e.prompt_id == prompt_id) {
        match &event.event {
            // The deck's own "queued" may come after ComfyUI's first events.
            RunEventKind::Queued => {
                if p.phase.is_none() {
                    p.phase = Some(RunPhase::Queued);
                }
            }
            RunEventKind::Started => running(&mut p),
            RunEventKind::Cached { nodes } => {
                p.cached = nodes.len();
                running(&mut p);
            }
            RunEventKind::Executing {
                node,
                title,
                class_type,
            } => {
                p.node = Some(NodeRef {
                    id: node.clone(),
                    label: title
                        .clone()
                        .filter(|t| !t.is_empty())
                        .or_else(|| class_type.clone())
                        .unwrap_or_else(|| format!("node {node}")),
                });
                p.step = None;
                p.text = None;
                running(&mut p);
            }
            RunEventKind::Progress { value, max, .. } => {
                p.step = Some((*value, *max));
                running(&mut p);
            }
            RunEventKind::Preview { url, .. } => p.preview = Some(url.clone()),
            RunEventKind::ProgressText { text, .. } => p.text = Some(text.clone()),
            RunEventKind::Output { files, .. } => {
                for file in files {
                    if !p.outputs.iter().any(|o| o.url == file.url) {
                        p.outputs.push(file.clone());
                    }
                }
            }
            RunEventKind::Nodes {
                done,
                total,
                fraction,
            } => {
                p.nodes = Some((*done, *total, *fraction));
                running(&mut p);
            }
            RunEventKind::Succeeded => p.phase = Some(RunPhase::Succeeded),
            RunEventKind::Failed {
                node,
                node_type,
                message,
            } => {
                p.phase = Some(RunPhase::Failed);
                p.failure = Some(Failure {
                    node: node.clone(),
                    node_type: node_type.clone(),
                    message: message.clone(),
                });
            }
            RunEventKind::Interrupted { node } => {
                p.phase = Some(RunPhase::Interrupted);
                if let Some(node) = node {
                    if p.node.as_ref().is_none_or(|n| &n.id != node) {
                        p.node = Some(NodeRef {
                            id: node.clone(),
                            label: format!("node {node}"),
                        });
                    }
                }
            }
        }
    }
    p
}

/// The state line.
fn state_text(phase: RunPhase, p: &RunProgress) -> String {
    let at = |n: &NodeRef| format!("“{}” (node {})", n.label, n.id);
    match phase {
        RunPhase::Queued => "Queued — waiting for ComfyUI".to_string(),
        RunPhase::Running => match &p.node {
            Some(n) => format!("Running {}", at(n)),
            None => "Running".to_string(),
        },
        RunPhase::Succeeded => match p.outputs.len() {
            0 if p.cached > 0 => {
                "Done — ComfyUI had every result cached, so nothing new was made".to_string()
            }
            0 => "Done — the workflow saved no files".to_string(),
            1 => "Done — 1 output".to_string(),
            n => format!("Done — {n} outputs"),
        },
        RunPhase::Failed => match &p.failure {
            Some(Failure {
                node: Some(node),
                node_type,
                ..
            }) => format!(
                "Failed in {} (node {node})",
                node_type.as_deref().unwrap_or("a node")
            ),
            _ => "Failed".to_string(),
        },
        RunPhase::Interrupted => match &p.node {
            Some(n) => format!("Stopped at {}", at(n)),
            None => "Stopped".to_string(),
        },
        RunPhase::Cancelled => "Cancelled before it started".to_string(),
        RunPhase::Finished => {
            "Finished — without a live connection the outcome is not known here; ComfyUI shows it"
                .to_string()
        }
    }
}

/// `3`, `2.5`.
pub(crate) fn format_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{n:.0}")
    } else {
        format!("{n}")
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tone {
    Ok,
    Warn,
    Bad,
    Accent,
    Muted,
    Plain,
}

pub(crate) fn badge(tone: Tone) -> &'static str {
    match tone {
        Tone::Ok => "inline-flex shrink-0 items-center rounded-full border border-ok/40 bg-ok/10 px-2 py-0.5 text-xs font-medium text-ok",
        Tone::Warn => "inline-flex shrink-0 items-center rounded-full border border-warn/40 bg-warn/10 px-2 py-0.5 text-xs font-medium text-warn",
        Tone::Bad => "inline-flex shrink-0 items-center rounded-full border border-bad/40 bg-bad/10 px-2 py-0.5 text-xs font-medium text-bad",
        Tone::Accent => "inline-flex shrink-0 items-center rounded-full border border-accent/40 bg-accent/10 px-2 py-0.5 text-xs font-medium text-accent",
        Tone::Muted => "inline-flex shrink-0 items-center rounded-full border border-line bg-surface-2 px-2 py-0.5 text-xs font-medium text-muted",
        Tone::Plain => "inline-flex shrink-0 items-center rounded-full border border-line px-2 py-0.5 text-xs font-medium text-fg",
    }
}

// ---------------------------------------------------------------------------------------------
// The form
// ---------------------------------------------------------------------------------------------

/// One editable input and what the form holds for it.
#[derive(Clone)]
pub(crate) struct Field {
    pub(crate) spec: EditableInput,
    pub(crate) text: RwSignal<String>,
    pub(crate) checked: RwSignal<bool>,
}

impl Field {
    pub(crate) fn new(spec: EditableInput) -> Field {
        let field = Field {
            text: RwSignal::new(String::new()),
            checked: RwSignal::new(false),
            spec,
        };
        field.set(&field.spec.value.clone());
        field
    }

    /// Shows `value` in the field (a remembered value, one from the history).
    pub(crate) fn set(&self, value: &Value) {
        self.text.set(match value {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            other => other.to_string(),
        });
        self.checked.set(value.as_bool().unwrap_or(false));
    }

    /// The value to send, or a sentence saying why the text is not one.
    pub(crate) fn value(&self) -> Result<InputValue, String> {
        let value = input_value(
            self.spec.kind,
            &self.text.get_untracked(),
            self.checked.get_untracked(),
        )
        .map_err(|why| format!("{}: {why}", self.spec.label))?;
        Ok(InputValue {
            node_id: self.spec.node_id.clone(),
            input: self.spec.input.clone(),
            value,
        })
    }
}

fn input_value(kind: InputKind, text: &str, checked: bool) -> Result<Value, String> {
    let trimmed = text.trim();
    let needs_number = || {
        if trimmed.is_empty() {
            "a number is needed".to_string()
        } else {
            format!("{trimmed:?} is not a number")
        }
    };
    Ok(match kind {
        InputKind::Text | InputKind::Combo => Value::String(text.to_string()),
        InputKind::Bool => Value::Bool(checked),
        InputKind::Seed => Value::from(
            trimmed
                .parse::<u64>()
                .map_err(|_| format!("{} (a whole number from 0 up)", needs_number()))?,
        ),
        InputKind::Int => match (trimmed.parse::<i64>(), trimmed.parse::<f64>()) {
            (Ok(n), _) => Value::from(n),
            (_, Ok(f)) if f.is_finite() && f.fract() == 0.0 && f.abs() < 9e15 => {
                Value::from(f as i64)
            }
            (_, Ok(f)) if f.is_finite() => return Err(format!("{trimmed} is not a whole number")),
            _ => return Err(needs_number()),
        },
        InputKind::Float => trimmed
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .ok_or_else(needs_number)?,
    })
}

/// What submitting answered, when it was not a queued prompt.

#[component]
pub(crate) fn InputField(field: Field) -> impl IntoView {
    let spec = field.spec.clone();
    let text = field.text;
    let checked = field.checked;
    let where_ = format!(
        "{} (node {}) · {}",
        spec.node_title, spec.node_id, spec.input
    );
    let control_class =
        "w-full min-w-0 rounded-lg border border-line bg-surface-2 px-3 py-2 text-sm text-fg";
    let hint = match spec.kind {
        InputKind::Int | InputKind::Float => match (spec.min, spec.max) {
            (Some(min), Some(max)) => {
                Some(format!("{} to {}", format_number(min), format_number(max)))
            }
            (Some(min), None) => Some(format!("at least {}", format_number(min))),
            (None, Some(max)) => Some(format!("at most {}", format_number(max))),
            (None, None) => None,
        },
        _ => None,
    };
    let node_id = spec.node_id.clone();
    let input = spec.input.clone();
    // Two columns, also on phones: numbers take one, texts both; a seed (with its button) and
    // a menu take both on phones.
    let span = match spec.kind {
        InputKind::Text => "col-span-2",
        InputKind::Seed | InputKind::Combo => "col-span-2 sm:col-span-1",
        _ => "",
    };
    let label = spec.label.clone();
    let control = match spec.kind {
        InputKind::Text => view! {
            <textarea
                data-testid="workflow-input"
                data-node=node_id
                data-input=input
                rows="3"
                class=format!("{control_class} resize-y leading-snug")
                prop:value=text
                on:input=move |ev| text.set(event_target_value(&ev))
            >
                {text.get_untracked()}
            </textarea>
        }
        .into_any(),
        InputKind::Bool => view! {
            <input
                type="checkbox"
                data-testid="workflow-input"
                data-node=node_id
                data-input=input
                class="h-5 w-5 accent-accent"
                prop:checked=checked
                on:change=move |ev| checked.set(event_target_checked(&ev))
            />
        }
        .into_any(),
        InputKind::Combo if spec.options.as_ref().is_some_and(|o| !o.is_empty()) => {
            let mut options = spec.options.clone().unwrap_or_default();
            let current = text.get_untracked();
            let unknown = !options.contains(&current);
            if unknown {
                options.insert(0, current.clone());
            }
            view! {
                <select
                    data-testid="workflow-input"
                    data-node=node_id
                    data-input=input
                    class=control_class
                    prop:value=text
                    on:change=move |ev| text.set(event_target_value(&ev))
                >
                    {options.into_iter().map(|o| {
                        let value = o.clone();
                        let label = if unknown && o == current { format!("{o} (not offered by ComfyUI)") } else { o.clone() };
                        view! { <option value=o selected=move || text.with(|t| *t == value)>{label}</option> }
                    }).collect_view()}
                </select>
            }
            .into_any()
        }
        InputKind::Combo => view! {
            <input
                type="text"
                data-testid="workflow-input"
                data-node=node_id
                data-input=input
                class=control_class
                prop:value=text
                on:input=move |ev| text.set(event_target_value(&ev))
            />
        }
        .into_any(),
        InputKind::Int | InputKind::Float | InputKind::Seed => {
            let seed = spec.kind == InputKind::Seed;
            let step = match (spec.step, spec.kind) {
                (Some(s), _) => format_number(s),
                (None, InputKind::Float) => "any".to_string(),
                (None, _) => "1".to_string(),
            };
            let (min, max) = (spec.min, spec.max);
            let number = view! {
                <input
                    type="number"
                    inputmode=if spec.kind == InputKind::Float { "decimal" } else { "numeric" }
                    data-testid="workflow-input"
                    data-node=node_id
                    data-input=input
                    min=min.map(format_number)
                    max=(!seed).then_some(max).flatten().map(format_number)
                    step=step
                    class=control_class
                    prop:value=text
                    on:input=move |ev| text.set(event_target_value(&ev))
                />
            };
            if seed {
                view! {
                    <div class="flex min-w-0 gap-2">
                        {number}
                        <button
                            type="button"
                            class="btn-secondary shrink-0"
                            data-testid="input-random"
                            title="A new random seed"
                            on:click=move |_| text.set(browser::random_seed(min, max).to_string())
                        >
                            "Random"
                        </button>
                    </div>
                }
                .into_any()
            } else {
                number.into_any()
            }
        }
    };
    if spec.kind == InputKind::Bool {
        return view! {
            <label class=format!("flex min-w-0 items-center gap-2 self-end py-2 text-sm {span}") title=where_>
                {control}
                <span class="font-medium wrap-anywhere">{label}</span>
            </label>
        }
        .into_any();
    }
    // The label (and range) take what height the row has left, so that the fields of a row line
    // up even when one label wraps.
    view! {
        <label class=format!("flex min-w-0 flex-col gap-1.5 text-sm {span}") title=where_>
            <span class="flex flex-1 flex-col justify-end gap-0.5">
                <span class="font-medium wrap-anywhere">{label}</span>
                {hint.map(|h| view! { <span class="text-xs text-muted tabular-nums">{h}</span> })}
            </span>
            {control}
        </label>
    }
    .into_any()
}

// ---------------------------------------------------------------------------------------------
// Following a run
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Control {
    Stop,
    Cancel,
}

/// Follows one run. `tracked` is what the page knows of it besides the events (cancelled here,
/// polled from the queue); `on_cancelled` is told when Cancel took it out of the queue. With
/// `generation`, Stop and Cancel go through the generation history (which records them).
#[component]
pub(crate) fn RunView(
    prompt_id: String,
    live: Live,
    #[prop(into)] tracked: Signal<Option<TrackedRun>>,
    on_cancelled: Callback<()>,
    #[prop(optional)] generation: bool,
) -> impl IntoView {
    let progress = {
        let id = prompt_id.clone();
        Memo::new(move |_| live.runs.with(|events| fold(&id, events)))
    };
    let phase = Memo::new(move |_| {
        tracked
            .get()
            .map(|t| progress.with(|p| t.combine(p)))
            .unwrap_or(RunPhase::Queued)
    });
    let percent = Signal::derive(move || {
        let step = progress.with(|p| p.step);
        let of_step = step
            .filter(|(_, max)| *max > 0.0)
            .map(|(value, max)| (value / max * 100.0) as f32);
        match phase.get() {
            RunPhase::Queued => None,
            RunPhase::Running => of_step,
            RunPhase::Succeeded | RunPhase::Finished | RunPhase::Cancelled => Some(100.0),
            RunPhase::Failed | RunPhase::Interrupted => Some(of_step.unwrap_or(100.0)),
        }
    });
    let tone = Signal::derive(move || phase.get().bar());
    let caption = move || {
        let p = progress.get();
        match (phase.get(), p.step) {
            (RunPhase::Queued, _) => "Waiting in ComfyUI's queue".to_string(),
            (RunPhase::Running, Some((value, max))) => {
                format!("Step {} of {}", format_number(value), format_number(max))
            }
            (RunPhase::Running, None) => "Working…".to_string(),
            (_, _) => String::new(),
        }
    };

    let busy = RwSignal::new(false);
    let control_error = RwSignal::new(None::<String>);
    let control = {
        let prompt_id = prompt_id.clone();
        Callback::new(move |what: Control| {
            let prompt_id = prompt_id.clone();
            busy.set(true);
            control_error.set(None);
            leptos::task::spawn_local(async move {
                let result = match what {
                    _ if generation => crate::api::generate::cancel_generation(prompt_id)
                        .await
                        .map(|_| ()),
                    Control::Stop => interrupt_prompt(prompt_id).await,
                    Control::Cancel => cancel_prompt(prompt_id).await,
                };
                match result {
                    Ok(()) if what == Control::Cancel => on_cancelled.run(()),
                    Ok(()) => {}
                    Err(e) => {
                        if e.login_required {
                            go_to_login();
                        }
                        control_error.try_set(Some(e.message));
                    }
                }
                busy.try_set(false);
            });
        })
    };

    let outputs = Memo::new(move |_| progress.with(|p| p.outputs.clone()));
    // The preview is shown while the run goes on, and afterwards when there is no output to
    // show instead.
    let preview = Memo::new(move |_| {
        let over = phase.get().is_over();
        progress.with(|p| p.preview.clone().filter(|_| !over || p.outputs.is_empty()))
    });
    let polling = move || live.connection.get() == Connection::Polling && !phase.get().is_over();

    view! {
        <div data-testid="run-view" data-prompt-id=prompt_id.clone() class="flex min-w-0 flex-col gap-3 border-t border-line pt-4">
            <div class="flex flex-wrap items-center gap-3">
                <p
                    data-testid="run-state"
                    data-state=move || phase.get().key()
                    role="status"
                    aria-live="polite"
                    class="flex min-w-0 flex-1 basis-48 items-start gap-2 text-sm font-medium"
                >
                    <span class=move || badge(phase.get().tone())>{move || phase.get().short_label()}</span>
                    <span class="min-w-0 pt-0.5 wrap-anywhere">{move || progress.with(|p| state_text(phase.get(), p))}</span>
                </p>
                {move || match phase.get() {
                    RunPhase::Running => Some(view! {
                        <button type="button" class="btn-danger shrink-0" data-testid="run-stop" disabled=move || busy.get() on:click=move |_| control.run(Control::Stop)>
                            "Stop"
                        </button>
                    }.into_any()),
                    RunPhase::Queued => Some(view! {
                        <button type="button" class="btn-secondary shrink-0" data-testid="run-cancel" disabled=move || busy.get() on:click=move |_| control.run(Control::Cancel)>
                            "Cancel"
                        </button>
                    }.into_any()),
                    _ => None,
                }}
            </div>
            {move || control_error.get().map(|message| view! { <ErrorNote message/> })}
            {move || progress.with(|p| p.failure.clone()).filter(|_| phase.get() == RunPhase::Failed).map(|f| view! {
                <div data-testid="run-failure"><ErrorNote message=f.message/></div>
            })}
            {move || progress.with(|p| p.nodes).map(|(done, total, fraction)| {
                let overall = Signal::derive(move || Some(match phase.get() {
                    RunPhase::Succeeded => 100.0,
                    _ => (fraction * 100.0) as f32,
                }));
                view! {
                    <div data-testid="run-overall" data-done=done.to_string() data-total=total.to_string() class="flex flex-col gap-1">
                        <ProgressBar percent=overall tone label="Progress of the whole workflow"/>
                        <p class="flex justify-between gap-2 text-xs text-muted tabular-nums">
                            <span>"Overall"</span>
                            <span data-testid="run-overall-text">{format!("{} % · {done} of {total} nodes", (fraction * 100.0).round())}</span>
                        </p>
                    </div>
                }
            })}
            <div data-testid="run-progress" class="flex flex-col gap-1">
                <ProgressBar percent tone label="Progress of the current node"/>
                <p class="flex min-h-4 justify-between gap-2 text-xs text-muted tabular-nums">
                    <span data-testid="run-step">{caption}</span>
                    {move || progress.with(|p| p.cached).gt(&0).then(|| view! {
                        <span>{move || format!("{} cached", progress.with(|p| p.cached))}</span>
                    })}
                </p>
            </div>
            {move || progress.with(|p| p.text.clone()).filter(|_| !phase.get().is_over()).map(|text| view! {
                <p data-testid="run-progress-text" class="rounded-lg bg-surface-2 px-3 py-2 font-mono text-xs wrap-anywhere">{text}</p>
            })}
            <Show when=polling>
                <p data-testid="run-polling" class="text-xs text-muted">
                    "Live updates are unavailable on this network, so the state is read from ComfyUI's queue every few seconds; previews and outputs need the live connection."
                </p>
            </Show>
            {move || preview.get().map(|url| view! {
                <figure class="flex flex-col items-start gap-1">
                    <img
                        data-testid="run-preview"
                        src=url
                        alt="The latest preview of the run"
                        class="max-h-80 max-w-full rounded-lg border border-line bg-surface-2 object-contain"
                    />
                    <figcaption class="text-xs text-muted">
                        {move || if phase.get().is_over() { "Last preview" } else { "Preview, updated as ComfyUI works" }}
                    </figcaption>
                </figure>
            })}
            <Show when=move || !outputs.with(Vec::is_empty)>
                <div data-testid="run-outputs" class="grid grid-cols-2 gap-3 sm:grid-cols-3">
                    <For each=move || outputs.get() key=|o| o.url.clone() let:output>
                        <OutputView output/>
                    </For>
                </div>
            </Show>
        </div>
    }
    .into_any()
}

/// One output file: images open full size in a new tab; videos and sounds play here.
#[component]
pub(crate) fn OutputView(output: RunOutput) -> impl IntoView {
    let lower = output.filename.to_lowercase();
    let ext = lower.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    let is_video = output.media == "video" || matches!(ext, "mp4" | "webm" | "mov" | "mkv");
    let is_audio =
        output.media == "audio" || matches!(ext, "mp3" | "wav" | "flac" | "ogg" | "opus" | "m4a");
    let is_image = !is_video
        && !is_audio
        && (matches!(output.media.as_str(), "images" | "gifs")
            || matches!(ext, "png" | "jpg" | "jpeg" | "webp" | "gif" | "avif"));
    let url = output.url.clone();
    let name = output.filename.clone();
    let media = if is_image {
        view! {
            <img
                src=url.clone()
                alt=name.clone()
                loading="lazy"
                class="aspect-square w-full bg-surface-2 object-contain"
            />
        }
        .into_any()
    } else if is_video {
        view! { <video src=url.clone() controls playsinline class="w-full bg-surface-2"></video> }
            .into_any()
    } else if is_audio {
        view! { <audio src=url.clone() controls class="w-full"></audio> }.into_any()
    } else {
        ().into_any()
    };
    view! {
        <figure data-testid="run-output" data-kind=output.kind.clone() class="flex min-w-0 flex-col overflow-hidden rounded-lg border border-line bg-surface">
            {if is_image {
                view! {
                    <a href=url.clone() target="_blank" rel="noopener" title="Open full size" class="block">
                        {media}
                    </a>
                }
                .into_any()
            } else {
                media
            }}
            <figcaption class="flex min-w-0 items-center justify-between gap-2 px-2 py-1.5 text-xs">
                <a href=url.clone() target="_blank" rel="noopener" class="min-w-0 truncate text-accent hover:underline" title=name.clone()>
                    {name.clone()}
                </a>
                <a
                    href=url
                    download=name.clone()
                    data-testid="run-output-download"
                    class="shrink-0 rounded px-1 text-muted hover:text-fg"
                    title=format!("Download {name}")
                    aria-label=format!("Download {name}")
                >
                    "⬇"
                </a>
                {(output.kind != "output").then(|| view! { <span class="shrink-0 text-muted">{output.kind.clone()}</span> })}
            </figcaption>
        </figure>
    }
    .into_any()
}
#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: RunEventKind) -> RunEvent {
        RunEvent {
            prompt_id: "p".into(),
            event: kind,
        }
    }

    #[test]
    fn overall_progress_folds_to_the_newest_and_means_running() {
        let nodes = |done, fraction| {
            ev(RunEventKind::Nodes {
                done,
                total: 3,
                fraction,
            })
        };
        let p = fold(
            "p",
            &[ev(RunEventKind::Queued), nodes(1, 0.4), nodes(2, 0.8)],
        );
        assert_eq!(p.nodes, Some((2, 3, 0.8)));
        assert_eq!(p.phase, Some(RunPhase::Running));
        let p = fold("p", &[nodes(3, 1.0), ev(RunEventKind::Succeeded)]);
        assert_eq!(p.phase, Some(RunPhase::Succeeded));
    }

    #[test]
    fn events_fold_into_the_latest_state() {
        let events = vec![
            ev(RunEventKind::Started),
            // The deck's own "queued" may arrive late; it must not go back.
            ev(RunEventKind::Queued),
            ev(RunEventKind::Executing {
                node: "2".into(),
                title: Some("Invert Image".into()),
                class_type: Some("ImageInvert".into()),
            }),
            ev(RunEventKind::Progress {
                node: Some("2".into()),
                value: 2.0,
                max: 3.0,
            }),
            RunEvent {
                prompt_id: "other".into(),
                event: RunEventKind::Succeeded,
            },
        ];
        let p = fold("p", &events);
        assert_eq!(p.phase, Some(RunPhase::Running));
        assert_eq!(p.step, Some((2.0, 3.0)));
        assert_eq!(
            state_text(RunPhase::Running, &p),
            "Running “Invert Image” (node 2)"
        );

        let mut more = events.clone();
        more.push(ev(RunEventKind::Output {
            node: "3".into(),
            files: vec![RunOutput {
                node: "3".into(),
                filename: "a.png".into(),
                subfolder: String::new(),
                kind: "output".into(),
                media: "images".into(),
                url: "/api/comfy/view?filename=a.png&subfolder=&type=output".into(),
            }],
        }));
        more.push(ev(RunEventKind::Succeeded));
        let p = fold("p", &more);
        assert_eq!(p.phase, Some(RunPhase::Succeeded));
        assert_eq!(p.outputs.len(), 1);
        assert_eq!(state_text(RunPhase::Succeeded, &p), "Done — 1 output");
    }

    #[test]
    fn cancelling_and_polling_only_count_without_events_that_say_more() {
        let mut run = TrackedRun::new("p".into());
        let none = RunProgress::default();
        assert_eq!(run.combine(&none), RunPhase::Queued);
        run.polled = Some(RunPhase::Running);
        assert_eq!(run.combine(&none), RunPhase::Running);
        run.polled = Some(RunPhase::Finished);
        assert_eq!(run.combine(&none), RunPhase::Finished);
        let done = fold("p", &[ev(RunEventKind::Succeeded)]);
        assert_eq!(run.combine(&done), RunPhase::Succeeded);
        let mut cancelled = TrackedRun::new("p".into());
        cancelled.cancelled = true;
        assert_eq!(cancelled.combine(&none), RunPhase::Cancelled);
        let running = fold("p", &[ev(RunEventKind::Started)]);
        assert_eq!(cancelled.combine(&running), RunPhase::Running);
    }

    #[test]
    fn input_values_parse_by_kind() {
        assert_eq!(
            input_value(InputKind::Int, " 96 ", false),
            Ok(Value::from(96))
        );
        assert_eq!(
            input_value(InputKind::Int, "96.0", false),
            Ok(Value::from(96))
        );
        assert!(input_value(InputKind::Int, "9.5", false).is_err());
        assert!(input_value(InputKind::Int, "", false).is_err());
        assert_eq!(
            input_value(InputKind::Seed, "18446744073709551615", false),
            Ok(Value::from(u64::MAX))
        );
        assert!(input_value(InputKind::Seed, "-1", false).is_err());
        assert_eq!(
            input_value(InputKind::Float, "7.5", false),
            Ok(Value::from(7.5))
        );
        assert_eq!(
            input_value(InputKind::Bool, "", true),
            Ok(Value::Bool(true))
        );
        assert_eq!(
            input_value(InputKind::Text, " a cat ", false),
            Ok(Value::from(" a cat "))
        );
    }
}
