//! The workflow cards: search, intent shortcuts, "ready" and "needs models" groups, and the
//! one-click install of the presets a workflow lacks.

use engine::model::*;
use leptos::prelude::*;

use super::desk::Desk;
use crate::api::install_preset;
use crate::components::{badge, ErrorNote, Tone};
use crate::pages::runnable::MakeRunnable;
use crate::server_calls::{error_message, Write};

#[component]
pub(super) fn Cards(desk: Desk) -> impl IntoView {
    let search = RwSignal::new(String::new());
    let matching = move |cards: &[GenerateCard]| -> Vec<GenerateCard> {
        search.with(|q| {
            cards
                .iter()
                .filter(|c| generate_card_matches(c, q))
                .cloned()
                .collect()
        })
    };
    let ready = Memo::new(move |_| desk.library.with(|l| matching(&l.ready)));
    let needs = Memo::new(move |_| desk.library.with(|l| matching(&l.needs_models)));
    let total = Memo::new(move |_| desk.library.with(|l| l.ready.len() + l.needs_models.len()));
    let intents = GENERATE_INTENTS.iter().map(|(label, _)| *label).map(|label| {
        let active = move || search.with(|q| q.trim() == label);
        view! {
            <button
                type="button"
                data-testid="generate-intent"
                data-intent=label
                aria-pressed=move || active().to_string()
                class=move || format!(
                    "rounded-full border px-3 py-1 text-xs {}",
                    if active() { "border-accent bg-accent/10 text-accent" } else { "border-line text-muted hover:text-fg" },
                )
                on:click=move |_| search.update(|q| {
                    *q = if q.trim() == label { String::new() } else { label.to_string() };
                })
            >
                {label}
            </button>
        }
    }).collect_view();
    view! {
        <section aria-label="Workflows" class="flex min-w-0 flex-col gap-4">
            <div class="flex flex-col gap-2">
                <input
                    type="search"
                    data-testid="generate-search"
                    placeholder="Search workflows, tags, node types…"
                    aria-label="Search workflows"
                    class="w-full min-w-0 rounded-lg border border-line bg-surface px-3 py-2 text-sm"
                    prop:value=search
                    on:input=move |ev| search.set(event_target_value(&ev))
                />
                <div class="flex flex-wrap gap-2">{intents}</div>
            </div>
            {move || desk.library.with(|l| l.comfyui_note.clone()).map(|note| view! {
                <p class="rounded-lg border border-warn/40 bg-warn/10 px-3 py-2 text-xs text-warn wrap-anywhere">{note}</p>
            })}
            <Show when=move || total.get() == 0>
                <p data-testid="generate-empty" class="rounded-xl border border-line bg-surface p-4 text-sm text-muted">
                    "No workflows yet. Import one on the "
                    <a href="/workflows" class="text-accent hover:underline">"Workflows page"</a>
                    " (a JSON file or a PNG made by ComfyUI), or save one in ComfyUI."
                </p>
            </Show>
            <Show when=move || { total.get() > 0 && ready.with(Vec::is_empty) && needs.with(Vec::is_empty) }>
                <p data-testid="generate-no-match" class="text-sm text-muted">"No workflow matches this search."</p>
            </Show>
            <Group title="Ready" testid="generate-ready" cards=ready desk/>
            <Group title="Needs models" testid="generate-needs-models" cards=needs desk/>
        </section>
    }
    .into_any()
}

#[component]
fn Group(
    title: &'static str,
    testid: &'static str,
    cards: Memo<Vec<GenerateCard>>,
    desk: Desk,
) -> impl IntoView {
    view! {
        <Show when=move || !cards.with(Vec::is_empty)>
            <div data-testid=testid class="flex flex-col gap-2">
                <h2 class="text-sm font-semibold text-muted">
                    {title} " " <span class="tabular-nums">{move || format!("({})", cards.with(Vec::len))}</span>
                </h2>
                <ul class="grid gap-2 sm:grid-cols-2 lg:grid-cols-1 xl:grid-cols-2">
                    <For each=move || cards.get() key=|c| (c.summary.id.clone(), c.summary.modified_ms, c.presets.len()) let:card>
                        <Card card desk/>
                    </For>
                </ul>
            </div>
        </Show>
    }
    .into_any()
}

#[component]
fn Card(card: GenerateCard, desk: Desk) -> impl IntoView {
    let id = card.summary.id.clone();
    let selected = {
        let id = id.clone();
        move || desk.selected.with(|s| s.as_deref() == Some(id.as_str()))
    };
    let open = {
        let id = id.clone();
        move |_| desk.select.run(Some(id.clone()))
    };
    let ready = card.ready();
    let inputs = card.summary.inputs.len();
    let detail = format!(
        "{} node{} · {} input{}",
        card.summary.node_count,
        if card.summary.node_count == 1 {
            ""
        } else {
            "s"
        },
        inputs,
        if inputs == 1 { "" } else { "s" },
    );
    let tags = card
        .tags
        .iter()
        .map(|t| view! { <span class=badge(Tone::Muted)>{t.clone()}</span> })
        .collect_view();
    view! {
        <li
            data-testid="generate-card"
            data-workflow-id=id.clone()
            data-ready=ready.to_string()
            class=move || format!(
                "flex min-w-0 flex-col gap-2 rounded-xl border bg-surface p-3 shadow-sm {}",
                if selected() { "border-accent" } else { "border-line" },
            )
        >
            <button type="button" data-testid="generate-card-open" class="flex min-w-0 flex-col items-start gap-1 text-left" on:click=open>
                <span class="font-medium leading-snug wrap-anywhere">{card.summary.name.clone()}</span>
                <span class="text-xs text-muted wrap-anywhere">{detail}</span>
            </button>
            <div class="flex flex-wrap gap-1">
                {if ready {
                    view! { <span class=badge(Tone::Ok)>"ready"</span> }.into_any()
                } else {
                    view! { <span class=badge(Tone::Bad)>"needs models"</span> }.into_any()
                }}
                {tags}
            </div>
            {(!ready).then(|| view! { <MissingModels card=card.clone() desk/> })}
            {(!ready).then(|| view! {
                <MakeRunnable workflow_id=id.clone() needed=Signal::stored(true) on_done=Callback::new(move |_| desk.refresh())/>
            })}
        </li>
    }
    .into_any()
}

/// The presets that provide a card's missing models, with one button that installs them all.
#[component]
pub(super) fn MissingModels(card: GenerateCard, desk: Desk) -> impl IntoView {
    let live = desk.live;
    let presets = card.presets.clone();
    let write = Write::new();
    let started = RwSignal::new(false);
    let ids: Vec<String> = presets.iter().map(|p| p.id.clone()).collect();
    let install = {
        let ids = ids.clone();
        move |_| {
            let ids = ids.clone();
            write.run(
                async move {
                    // One after another; the first refusal stops the rest.
                    let mut outcome = Ok(());
                    for id in ids {
                        if let Err(e) = install_preset(id.clone()).await {
                            outcome = Err(format!("{id}: {}", error_message(e)));
                            break;
                        }
                    }
                    // Those before a refusal have started too.
                    started.try_set(true);
                    outcome
                },
                |()| {},
            );
        }
    };
    let state_of = move |id: &str| {
        live.presets
            .with(|m| m.get(id).map(|p| (p.state, p.figures.clone())))
    };
    let size = format_bytes(card.download_bytes);
    let rows = presets
        .into_iter()
        .map(|p| {
            let id = p.id.clone();
            let state = move || match state_of(&id) {
                Some((InstallState::Installed | InstallState::UpdateAvailable, _)) => "installed".to_string(),
                Some((InstallState::Downloading, f)) if f.total_bytes.is_some_and(|t| t > 0) => {
                    format!(
                        "downloading {} %",
                        percent_of(f.bytes_done, f.total_bytes.unwrap_or(0)).round()
                    )
                }
                Some((InstallState::Failed, _)) => "failed — see the Models page".to_string(),
                Some((state, _)) => format!("{state:?}").to_lowercase(),
                None => String::new(),
            };
            view! {
                <li data-testid="generate-preset" data-preset-id=p.id.clone() class="flex min-w-0 flex-wrap justify-between gap-x-2 text-xs">
                    <span class="min-w-0 wrap-anywhere">{p.name.clone()}</span>
                    <span class="shrink-0 text-muted tabular-nums">
                        {move || {
                            let s = state();
                            if s.is_empty() { format_bytes(p.download_bytes) } else { s }
                        }}
                    </span>
                </li>
            }
        })
        .collect_view();
    let unprovided = card.unprovided.clone();
    let has_presets = !ids.is_empty();
    view! {
        <div class="flex min-w-0 flex-col gap-2 rounded-lg border border-bad/30 bg-bad/5 p-2">
            {has_presets.then(|| view! { <ul class="flex flex-col gap-1">{rows}</ul> })}
            {(!unprovided.is_empty()).then(|| view! {
                <p class="text-xs text-muted wrap-anywhere">
                    "No preset provides: " {unprovided.join(", ")}
                </p>
            })}
            {has_presets.then(|| view! {
                <button
                    type="button"
                    data-testid="generate-card-install"
                    class="btn-secondary self-start px-2.5 py-1 text-xs"
                    disabled=move || write.busy() || started.get()
                    on:click=install.clone()
                >
                    {
                        let size = size.clone();
                        move || if write.busy() {
                            "Starting…".to_string()
                        } else if started.get() {
                            "Installing — follow it here or on the Models page".to_string()
                        } else {
                            format!("Install models ({size})")
                        }
                    }
                </button>
            })}
            {move || write.error().map(|message| view! { <ErrorNote message/> })}
        </div>
    }
    .into_any()
}
