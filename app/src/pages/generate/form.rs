//! The form of the chosen workflow: prompts (with styles and "enhance"), the sampler settings,
//! size, image inputs (uploaded to ComfyUI), submitting and following the run, and the
//! workflow's generations with "again".

use engine::model::*;
use leptos::prelude::*;

use super::cards::MissingModels;
use super::desk::{Desk, Prefill};
use crate::api::generate::*;
use crate::browser;
use crate::components::{badge, ErrorNote, Tone};
use crate::pages::run_panel::{Field, InputField, RunView, TrackedRun};
use crate::server_calls::{api_error_view, error_message, Write};

#[component]
pub(super) fn FormPanel(id: String, desk: Desk) -> impl IntoView {
    let form = Resource::new(move || id.clone(), get_generate_form);
    view! {
        <Transition fallback=|| view! { <p class="text-sm text-muted">"Reading the workflow…"</p> }>
            {move || Suspend::new(async move {
                match form.await {
                    Ok(form) => view! { <FormBody form desk/> }.into_any(),
                    Err(e) => view! {
                        <section id="run-panel" data-testid="generate-form-error" class="flex flex-col gap-3 rounded-xl border border-line bg-surface p-4">
                            {api_error_view(e)}
                            <button type="button" class="btn-secondary self-start" on:click=move |_| desk.select.run(None)>"Close"</button>
                        </section>
                    }
                    .into_any(),
                }
            })}
        </Transition>
    }
    .into_any()
}

#[component]
fn FormBody(form: GenerateForm, desk: Desk) -> impl IntoView {
    let summary = form.card.summary.clone();
    let workflow_id = summary.id.clone();
    let fields: Vec<Field> = summary.inputs.iter().cloned().map(Field::new).collect();
    let set_values = {
        let fields = fields.clone();
        move |values: &[InputValue]| {
            for v in values {
                if let Some(f) = fields
                    .iter()
                    .find(|f| f.spec.node_id == v.node_id && f.spec.input == v.input)
                {
                    f.set(&v.value);
                }
            }
        }
    };
    set_values(&form.remembered);
    let note = RwSignal::new(None::<String>);
    if let Some(prefill) = desk
        .prefill
        .try_update(|p| p.take_if(|p| p.workflow_id == workflow_id))
        .flatten()
    {
        set_values(&prefill.values);
        note.set(Some("Filled in from the gallery output.".to_string()));
    }
    // A seed is new for every run (as in ComfyUI) unless fixed; "again" fixes it.
    let randomize = RwSignal::new(true);
    let history = RwSignal::new(form.history.clone());
    let current = RwSignal::new(None::<TrackedRun>);
    let submitting = RwSignal::new(false);
    let refusal = RwSignal::new(None::<(String, Vec<WorkflowProblem>)>);

    let refresh_history = {
        let workflow_id = workflow_id.clone();
        move || {
            let workflow_id = workflow_id.clone();
            leptos::task::spawn_local(async move {
                if let Ok(list) = get_generations(Some(workflow_id)).await {
                    history.try_set(list);
                }
            });
        }
    };
    // The history follows the server's rows as they change (queued, running, ended, outputs).
    {
        let live = desk.live;
        let workflow_id = workflow_id.clone();
        Effect::new(move |seen: Option<()>| {
            let row = live.generation.get();
            // The first run only subscribes: the newest change may predate this form's data.
            let (Some(()), Some(row)) = (seen, row) else {
                return;
            };
            if row.workflow_id != workflow_id {
                return;
            }
            history.update(|list| match list.iter_mut().find(|g| g.id == row.id) {
                Some(existing) => *existing = row,
                None => {
                    list.insert(0, row);
                    list.sort_by_key(|g| std::cmp::Reverse(g.id));
                }
            });
        });
    }

    let is_prompt = |f: &Field| f.spec.kind == InputKind::Text && f.spec.role.is_some();
    let is_image = |f: &Field| f.spec.class_type == "LoadImage" && f.spec.input == "image";
    let prompts: Vec<Field> = fields.iter().filter(|f| is_prompt(f)).cloned().collect();
    let images: Vec<Field> = fields.iter().filter(|f| is_image(f)).cloned().collect();
    // Everything else: seed, steps, CFG, sampler, scheduler, denoise, size, other texts.
    let others: Vec<Field> = fields
        .iter()
        .filter(|f| !is_prompt(f) && !is_image(f))
        .cloned()
        .collect();
    let seeds: Vec<Field> = fields
        .iter()
        .filter(|f| f.spec.kind == InputKind::Seed)
        .cloned()
        .collect();

    let on_submit = {
        let fields = fields.clone();
        let workflow_id = workflow_id.clone();
        let refresh_history = refresh_history.clone();
        move |ev: leptos::ev::SubmitEvent| {
            ev.prevent_default();
            if submitting.get_untracked() {
                return;
            }
            if randomize.get_untracked() {
                for seed in &seeds {
                    seed.text
                        .set(browser::random_seed(seed.spec.min, seed.spec.max).to_string());
                }
            }
            let values: Result<Vec<InputValue>, String> = fields.iter().map(Field::value).collect();
            let values = match values {
                Ok(values) => values,
                Err(why) => {
                    refusal.set(Some((why, Vec::new())));
                    return;
                }
            };
            let workflow_id = workflow_id.clone();
            let refresh_history = refresh_history.clone();
            submitting.set(true);
            refusal.set(None);
            leptos::task::spawn_local(async move {
                match submit_generation(workflow_id, values).await {
                    Ok(RunSubmission {
                        prompt_id: Some(prompt_id),
                        ..
                    }) => {
                        current.try_set(Some(TrackedRun::new(prompt_id)));
                        refresh_history();
                    }
                    Ok(answer) => {
                        refusal.try_set(Some((answer.message, answer.problems)));
                    }
                    Err(e) => {
                        refusal.try_set(Some((error_message(e), Vec::new())));
                    }
                }
                submitting.try_set(false);
            });
        }
    };

    let again = {
        let set_values = set_values.clone();
        Callback::new(move |generation: Generation| {
            set_values(&generation.inputs);
            // "Again" means the same picture: the seed it used is kept.
            randomize.set(false);
            note.set(Some(format!(
                "Filled in from the generation of {}.",
                format_utc(generation.created_ms)
            )));
            browser::reveal_run_panel();
        })
    };

    let card = form.card.clone();
    let ready = card.ready();
    let llm_enabled = form.llm_enabled;
    let has_seed = fields.iter().any(|f| f.spec.kind == InputKind::Seed);
    let tags = card
        .tags
        .iter()
        .map(|t| view! { <span class=badge(Tone::Muted)>{t.clone()}</span> })
        .collect_view();
    let prompt_views = prompts
        .iter()
        .cloned()
        .map(|field| view! { <PromptBox field/> })
        .collect_view();
    let has_prompts = !prompts.is_empty();
    let has_images = !images.is_empty();
    let image_views = images
        .into_iter()
        .map(|field| view! { <ImageField field/> })
        .collect_view();
    let other_views = others
        .into_iter()
        .map(|field| view! { <InputField field/> })
        .collect_view();
    let form_view = view! {
        <form class="flex flex-col gap-4" novalidate on:submit=on_submit>
            {has_prompts.then(|| view! {
                <div class="flex flex-col gap-3">
                    {prompt_views}
                    <Enhance prompts=prompts.clone() llm_enabled/>
                </div>
            })}
            {has_images.then(|| view! { <div class="flex flex-col gap-3">{image_views}</div> })}
            <div class="grid grid-cols-2 gap-3">{other_views}</div>
            {has_seed.then(|| view! {
                <label class="flex items-center gap-2 text-sm">
                    <input
                        type="checkbox"
                        data-testid="seed-randomize"
                        class="h-5 w-5 accent-accent"
                        prop:checked=randomize
                        on:change=move |ev| randomize.set(event_target_checked(&ev))
                    />
                    <span>"New random seed for every run"</span>
                    <span class="text-xs text-muted">{move || if randomize.get() { "(randomize)" } else { "(fixed)" }}</span>
                </label>
            })}
            <div class="flex flex-wrap items-center gap-3">
                <button type="submit" class="btn-primary min-w-32" data-testid="generate-submit" disabled=move || submitting.get()>
                    {move || if submitting.get() { "Submitting…" } else { "Generate" }}
                </button>
                <p class="min-w-0 flex-1 text-xs text-muted">"Values are remembered for this workflow."</p>
            </div>
        </form>
    }
    .into_any();
    let name = summary.name.clone();
    view! {
        <section
            id="run-panel"
            data-testid="generate-form"
            data-workflow-id=workflow_id.clone()
            aria-label="Generate"
            class="flex min-w-0 scroll-mt-16 flex-col gap-4 rounded-xl border border-line bg-surface p-4 shadow-sm"
        >
            <header class="flex items-start gap-3">
                <div class="min-w-0 flex-1">
                    <h2 class="text-lg font-semibold leading-snug wrap-anywhere">{name}</h2>
                    <div class="mt-1 flex flex-wrap gap-1">{tags}</div>
                </div>
                <button
                    type="button"
                    data-testid="generate-close"
                    class="btn-secondary shrink-0 px-2.5 py-1.5"
                    aria-label="Close"
                    title="Close"
                    on:click=move |_| desk.select.run(None)
                >
                    "✕"
                </button>
            </header>
            {(!ready).then(|| view! {
                <div class="flex flex-col gap-2">
                    <p class="text-sm text-bad">"Models are missing: ComfyUI fails the run until they are installed."</p>
                    <MissingModels card=card.clone() desk/>
                </div>
            })}
            {move || note.get().map(|n| view! {
                <p data-testid="generate-note" role="status" class="rounded-lg bg-surface-2 px-3 py-2 text-xs text-muted wrap-anywhere">{n}</p>
            })}
            {form_view}
            {move || refusal.get().map(|(message, problems)| view! { <Refusal message problems/> })}
            {move || current.get().map(|run| {
                let prompt_id = run.prompt_id.clone();
                let tracked = Signal::derive(move || current.get());
                let refresh_history = refresh_history.clone();
                let on_cancelled = Callback::new(move |()| {
                    current.update(|c| if let Some(c) = c { c.cancelled = true });
                    refresh_history();
                });
                view! { <RunView prompt_id live=desk.live tracked on_cancelled generation=true/> }
            })}
            <History history again/>
        </section>
    }
    .into_any()
}

/// A prompt text, marked with the sampler input it feeds.
#[component]
fn PromptBox(field: Field) -> impl IntoView {
    let text = field.text;
    let role = match field.spec.role {
        Some(PromptRole::Negative) => "negative",
        _ => "positive",
    };
    let where_ = format!(
        "{} (node {}) · {}",
        field.spec.node_title, field.spec.node_id, field.spec.input
    );
    let rows = if role == "negative" { "2" } else { "4" };
    view! {
        <label class="flex min-w-0 flex-col gap-1.5 text-sm" title=where_>
            <span class="font-medium">{field.spec.label.clone()}</span>
            <textarea
                data-testid="generate-prompt"
                data-role=role
                data-node=field.spec.node_id.clone()
                data-input=field.spec.input.clone()
                rows=rows
                class="w-full min-w-0 resize-y rounded-lg border border-line bg-surface-2 px-3 py-2 text-sm leading-snug text-fg"
                prop:value=text
                on:input=move |ev| text.set(event_target_value(&ev))
            >
                {text.get_untracked()}
            </textarea>
        </label>
    }
    .into_any()
}

/// Styles and "enhance": the first positive and negative prompts are rewritten.
#[component]
fn Enhance(prompts: Vec<Field>, llm_enabled: bool) -> impl IntoView {
    let positive = prompts
        .iter()
        .find(|f| f.spec.role == Some(PromptRole::Positive))
        .cloned();
    let negative = prompts
        .iter()
        .find(|f| f.spec.role == Some(PromptRole::Negative))
        .cloned();
    let style = RwSignal::new(PromptStyle::Detailed);
    let write = Write::new();
    let enhanced = RwSignal::new(None::<EnhancedPrompt>);
    let Some(positive) = positive else {
        return ().into_any();
    };
    let on_click = move |_| {
        let positive_text = positive.text;
        let negative_text = negative.as_ref().map(|f| f.text);
        enhanced.set(None);
        write.run(
            async move {
                let neg_text = negative_text.map(|t| t.get_untracked()).unwrap_or_default();
                enhance_prompt(
                    positive_text.get_untracked(),
                    neg_text,
                    style.get_untracked(),
                )
                .await
            },
            move |answer| {
                positive_text.try_set(answer.positive.clone());
                if let Some(negative_text) = negative_text {
                    negative_text.try_set(answer.negative.clone());
                }
                enhanced.try_set(Some(answer));
            },
        );
    };
    let styles = PromptStyle::ALL
        .into_iter()
        .map(|s| {
            let active = move || style.get() == s;
            view! {
                <button
                    type="button"
                    data-testid="generate-style"
                    data-style=s.as_str()
                    aria-pressed=move || active().to_string()
                    class=move || format!(
                        "rounded-full border px-3 py-1 text-xs {}",
                        if active() { "border-accent bg-accent/10 text-accent" } else { "border-line text-muted hover:text-fg" },
                    )
                    on:click=move |_| style.set(s)
                >
                    {s.label()}
                </button>
            }
        })
        .collect_view();
    view! {
        <div class="flex flex-col gap-2">
            <div class="flex flex-wrap items-center gap-2">
                {styles}
                <button type="button" data-testid="generate-enhance" class="btn-secondary px-3 py-1 text-xs" disabled=move || write.busy() on:click=on_click>
                    {move || if write.busy() {
                        if llm_enabled { "Asking the LLM…" } else { "Enhancing…" }
                    } else if llm_enabled {
                        "Enhance with LLM"
                    } else {
                        "Apply style"
                    }}
                </button>
            </div>
            {move || match write.error() {
                Some(message) => Some(view! { <ErrorNote message/> }.into_any()),
                None => enhanced.get().map(|answer| {
                    let (text, warn) = match (&answer.fallback_reason, answer.by_llm) {
                        (Some(reason), _) => (reason.clone(), true),
                        (None, true) => ("Rewritten by the LLM; the negative prompt got the style's terms.".to_string(), false),
                        (None, false) => (format!("Applied the {} style.", answer.style.as_str()), false),
                    };
                    view! {
                        <p
                            data-testid="generate-enhance-note"
                            data-by-llm=answer.by_llm.to_string()
                            role="status"
                            class=if warn { "text-xs text-warn wrap-anywhere" } else { "text-xs text-muted wrap-anywhere" }
                        >
                            {text}
                        </p>
                    }
                    .into_any()
                }),
            }}
        </div>
    }
    .into_any()
}

/// A LoadImage input: the file name in ComfyUI's input folder, an upload button and a preview.
#[component]
fn ImageField(field: Field) -> impl IntoView {
    let text = field.text;
    let write = Write::new();
    let on_change = move |ev: leptos::ev::Event| {
        let Some(target) = ev.target() else {
            return;
        };
        write.run(
            async move {
                match browser::take_chosen_file(target).await {
                    Ok(Some((name, bytes))) => {
                        upload_input_image(name, browser::base64_encode(&bytes))
                            .await
                            .map(Some)
                            .map_err(error_message)
                    }
                    Ok(None) => Ok(None),
                    Err(why) => Err(why),
                }
                .map_err(|why| format!("Upload failed: {why}"))
            },
            move |uploaded| {
                if let Some(uploaded) = uploaded {
                    text.try_set(uploaded.value);
                }
            },
        );
    };
    let preview = move || {
        text.with(|t| {
            let t = t.trim();
            (!t.is_empty()).then(|| {
                let (sub, name) = t.rsplit_once('/').unwrap_or(("", t));
                comfy_view_url(name, sub, "input")
            })
        })
    };
    let mounted = RwSignal::new(false);
    Effect::new(move |_| mounted.set(true));
    view! {
        <div class="flex min-w-0 flex-col gap-1.5 text-sm">
            <span class="font-medium wrap-anywhere">{field.spec.label.clone()}</span>
            <div class="flex min-w-0 gap-2">
                <input
                    type="text"
                    data-testid="workflow-input"
                    data-node=field.spec.node_id.clone()
                    data-input=field.spec.input.clone()
                    aria-label=field.spec.label.clone()
                    class="w-full min-w-0 rounded-lg border border-line bg-surface-2 px-3 py-2 text-sm text-fg"
                    prop:value=text
                    on:input=move |ev| text.set(event_target_value(&ev))
                />
                <label class=move || format!(
                    "btn-secondary shrink-0 cursor-pointer focus-within:outline-2 focus-within:outline-accent {}",
                    if write.busy() { "pointer-events-none opacity-50" } else { "" },
                )>
                    <input
                        type="file"
                        accept="image/*"
                        class="sr-only"
                        data-testid="generate-upload"
                        disabled=move || write.busy()
                        on:change=on_change
                    />
                    {move || if write.busy() { "Uploading…" } else { "Upload…" }}
                </label>
            </div>
            // Only in the browser: an image that fails before hydration would leave its error
            // unseen, and a broken image where the note belongs.
            {move || if mounted.get() { preview() } else { None }.map(|src| {
                // A workflow may name an image this pod's ComfyUI does not have: say so instead
                // of showing a broken image.
                let missing = RwSignal::new(false);
                view! {
                    <img
                        data-testid="generate-image-preview"
                        src=src
                        alt="The chosen input image"
                        class=move || format!(
                            "max-h-40 max-w-full self-start rounded-lg border border-line bg-surface-2 object-contain {}",
                            if missing.get() { "hidden" } else { "" },
                        )
                        on:error=move |_| missing.set(true)
                    />
                    <Show when=move || missing.get()>
                        <p data-testid="generate-image-missing" class="text-xs text-warn wrap-anywhere">
                            {move || format!("“{}” is not in ComfyUI's input folder; upload it.", text.get().trim())}
                        </p>
                    </Show>
                }
            })}
            {move || write.error().map(|message| view! { <ErrorNote message/> })}
        </div>
    }
    .into_any()
}

#[component]
fn Refusal(message: String, problems: Vec<WorkflowProblem>) -> impl IntoView {
    view! {
        <div data-testid="generate-problems" role="alert" class="rounded-lg border border-bad/40 bg-bad/5 p-3 text-sm">
            <p class="font-medium text-bad wrap-anywhere">{message}</p>
            {(!problems.is_empty()).then(|| view! {
                <ul class="mt-2 space-y-1">
                    {problems.into_iter().map(|p| {
                        let who = format!(
                            "{} (node {}){}",
                            p.title.clone().unwrap_or_else(|| p.class_type.clone()),
                            p.node_id,
                            p.input.as_deref().map(|i| format!(" · {i}")).unwrap_or_default(),
                        );
                        let hint = p.preset_hint.map(|id| format!(" — the preset {id} provides it (Models page)"));
                        view! {
                            <li class="wrap-anywhere"><span class="font-medium">{who}</span>": "{p.message}{hint}</li>
                        }
                    }).collect_view()}
                </ul>
            })}
        </div>
    }
    .into_any()
}

fn status_tone(status: GenerationStatus) -> Tone {
    match status {
        GenerationStatus::Queued => Tone::Muted,
        GenerationStatus::Running => Tone::Accent,
        GenerationStatus::Succeeded => Tone::Ok,
        GenerationStatus::Failed => Tone::Bad,
        GenerationStatus::Interrupted | GenerationStatus::Cancelled => Tone::Warn,
    }
}

/// `4.2 s`, `1 min 05 s`.
fn duration_text(ms: i64) -> String {
    if ms < 60_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else {
        format_duration_secs((ms / 1000) as u64)
    }
}

/// The workflow's generations, newest first, each with "again".
#[component]
fn History(history: RwSignal<Vec<Generation>>, again: Callback<Generation>) -> impl IntoView {
    view! {
        <section data-testid="generate-history" aria-label="History" class="flex min-w-0 flex-col gap-2 border-t border-line pt-4">
            <h3 class="text-sm font-semibold">"History"</h3>
            <Show when=move || history.with(Vec::is_empty)>
                <p class="text-xs text-muted">"Nothing generated with this workflow yet."</p>
            </Show>
            <ul class="flex flex-col gap-2">
                <For each=move || history.get() key=|g| (g.id, g.status, g.outputs.len()) let:generation>
                    {
                        // Rows are replaced as the server reports changes (see FormBody).
                        let g = generation.clone();
                        let status = g.status;
                        let status_label = status.as_str();
                        let when = format_utc(g.created_ms);
                        let duration = g.duration_ms().map(duration_text);
                        let outputs = g.outputs.clone();
                        let again_row = g.clone();
                        view! {
                            <li data-testid="generation-row" data-status=g.status.as_str() data-prompt-id=g.prompt_id.clone() class="flex min-w-0 flex-col gap-2 rounded-lg border border-line p-2">
                                <div class="flex min-w-0 flex-wrap items-center gap-2 text-xs">
                                    <span class=badge(status_tone(status))>{status_label}</span>
                                    <span class="text-muted tabular-nums">{when}</span>
                                    {duration.map(|d| view! { <span class="text-muted tabular-nums" data-testid="generation-duration">{d}</span> })}
                                    <button type="button" data-testid="generation-again" class="btn-secondary ml-auto px-2.5 py-1 text-xs" on:click=move |_| again.run(again_row.clone())>
                                        "Again"
                                    </button>
                                </div>
                                {g.error.clone().map(|e| view! { <p class="text-xs text-bad wrap-anywhere">{e}</p> })}
                                {(!outputs.is_empty()).then(|| view! {
                                    <div class="flex flex-wrap gap-2">
                                        {outputs.into_iter().map(|output| view! { <HistoryOutput output/> }).collect_view()}
                                    </div>
                                })}
                            </li>
                        }
                    }
                </For>
            </ul>
        </section>
    }
    .into_any()
}

/// One output of a past generation: a small thumbnail (or the file type) that opens the file.
#[component]
fn HistoryOutput(output: RunOutput) -> impl IntoView {
    let lower = output.filename.to_lowercase();
    let ext = lower
        .rsplit_once('.')
        .map(|(_, e)| e)
        .unwrap_or("")
        .to_string();
    let is_image = matches!(output.media.as_str(), "images" | "gifs")
        && matches!(
            ext.as_str(),
            "png" | "jpg" | "jpeg" | "webp" | "gif" | "avif"
        );
    let name = output.filename.clone();
    view! {
        <a
            data-testid="generation-output"
            href=output.url.clone()
            target="_blank"
            rel="noopener"
            title=format!("Open {name}")
            class="flex h-16 w-16 items-center justify-center overflow-hidden rounded-lg border border-line bg-surface-2 text-xs text-muted"
        >
            {if is_image {
                view! { <img src=output.url.clone() alt=name.clone() loading="lazy" class="h-full w-full object-cover"/> }.into_any()
            } else {
                view! { <span class="uppercase">{ext}</span> }.into_any()
            }}
        </a>
    }
    .into_any()
}

/// "Open in Generate" from the gallery: finds (or imports) the workflow an output was made with,
/// then opens it with the output's values.
#[component]
pub(super) fn FromOutput(id: String, desk: Desk) -> impl IntoView {
    let error = RwSignal::new(None::<String>);
    let prefill = desk.prefill;
    Effect::new(move |done: Option<()>| {
        if done.is_some() {
            return;
        }
        let Ok(item_id) = id.trim().parse::<i64>() else {
            error.set(Some(format!(
                "from_output must be a gallery item id, got {id:?}"
            )));
            return;
        };
        leptos::task::spawn_local(async move {
            match generate_from_output(item_id).await {
                Ok(found) => {
                    if found.imported {
                        desk.refresh();
                    }
                    prefill.try_set(Some(Prefill {
                        workflow_id: found.workflow_id.clone(),
                        values: found.values,
                    }));
                    desk.select.run(Some(found.workflow_id));
                }
                Err(e) => {
                    error.try_set(Some(error_message(e)));
                }
            }
        });
    });
    move || {
        error.get().map(|message| view! {
        <div data-testid="generate-from-output-error" class="mb-4"><ErrorNote message/></div>
    })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration_text(4_200), "4.2 s");
        assert_eq!(duration_text(65_000), "1 min 05 s");
    }

    #[test]
    fn statuses_have_tones() {
        assert_eq!(status_tone(GenerationStatus::Failed), Tone::Bad);
        assert_eq!(status_tone(GenerationStatus::Succeeded), Tone::Ok);
    }
}
