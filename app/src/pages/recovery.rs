//! Recovery: everything that failed and needs a person, newest first, each with what happened
//! in words, the technical detail behind a disclosure, and the actions that fit; "retry all";
//! the week's counts. Also the banner every page shows while something needs attention.

use engine::model::*;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::{lazy_route, LazyRoute};

use crate::api::recovery::{
    act_on_failure, list_recovery, list_restore_points, recovery_banner, retry_all_failures,
    roll_back_restore_point,
};
use crate::components::{badge, ErrorNote, Tone};
use crate::live::Live;
use crate::server_calls::{api_error_view, Write};

fn class_tone(class: FailureClass) -> Tone {
    match class {
        FailureClass::Network | FailureClass::RateLimited => Tone::Warn,
        FailureClass::Unknown => Tone::Muted,
        _ => Tone::Bad,
    }
}

fn source_label(source: FailureSource) -> &'static str {
    match source {
        FailureSource::Download => "Download",
        FailureSource::Preset => "Preset",
        FailureSource::Operation => "Make runnable",
        FailureSource::Job => "Run",
        FailureSource::Comfyui => "ComfyUI",
        FailureSource::Sync => "Sync",
        FailureSource::Pack => "Custom nodes",
    }
}

/// `2026-12-07 02:40 UTC`.
fn when(ms: i64) -> String {
    let full = format_utc(ms);
    match full.get(..16) {
        Some(minutes) => format!("{minutes} UTC"),
        None => full,
    }
}

/// The route: the page's code comes in a wasm chunk of its own, loaded when the route is
/// first shown (see `pages/mod.rs`).
pub struct RecoveryRoute;

#[lazy_route]
impl LazyRoute for RecoveryRoute {
    fn data() -> Self {
        Self
    }

    fn view(_this: Self) -> AnyView {
        view! { <RecoveryPage/> }.into_any()
    }
}

#[component]
pub fn RecoveryPage() -> impl IntoView {
    let live = Live::get();
    let list = Resource::new(move || live.recovery.get(), |_| list_recovery());
    let refresh = move || list.refetch();
    view! {
        <Title text="Recovery · comfydeck"/>
        <section class="flex min-w-0 flex-col gap-4" aria-labelledby="recovery-title">
            <header class="flex flex-wrap items-center gap-2">
                <h1 id="recovery-title" class="text-lg font-semibold">"Recovery"</h1>
                <p class="w-full text-sm text-muted">
                    "What failed and needs you. Network problems and rate limits are retried by themselves; what is here waits for a decision."
                </p>
            </header>
            <Transition fallback=|| view! { <p class="text-sm text-muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match list.await {
                        Ok(list) => view! { <RecoveryBody list refresh=Callback::new(move |_| refresh())/> }.into_any(),
                        Err(e) => api_error_view(e),
                    }
                })}
            </Transition>
            <RestorePoints/>
        </section>
    }
}

/// What each preset install added or replaced, with "Roll back" (administrators; the list is
/// empty, and so hidden, for others).
#[component]
fn RestorePoints() -> impl IntoView {
    let live = Live::get();
    let points = Resource::new(move || live.recovery.get(), |_| list_restore_points());
    view! {
        <Transition fallback=|| ()>
            {move || Suspend::new(async move {
                match points.await {
                    Ok(list) if list.is_empty() => ().into_any(),
                    Ok(list) => {
                        let rows = list
                            .into_iter()
                            .map(|point| view! { <RestorePointRow point refresh=Callback::new(move |_| points.refetch())/> })
                            .collect_view();
                        view! {
                            <section class="flex min-w-0 flex-col gap-2" aria-labelledby="restore-title" data-testid="restore-points">
                                <h2 id="restore-title" class="text-base font-semibold">"Restore points"</h2>
                                <p class="text-sm text-muted">
                                    "Each preset install, \"make runnable\", and custom-node pack install or update. Rolling one back removes what it added — files (not those another preset needs, nor ones changed since), links and packs — puts back the files it replaced, checks an updated pack out at its old commit, and puts back the Python packages a pack changed."
                                </p>
                                <ul class="flex flex-col gap-2">{rows}</ul>
                            </section>
                        }
                        .into_any()
                    }
                    Err(e) => api_error_view(e),
                }
            })}
        </Transition>
    }
}

/// `3 files, 1 replaced, 1 pack`: what a restore point covers, counted by kind.
fn restore_point_summary(items: &[RestoreItem]) -> String {
    let count =
        |changes: &[RestoreChange]| items.iter().filter(|i| changes.contains(&i.change)).count();
    let files = count(&[
        RestoreChange::Created,
        RestoreChange::Replaced,
        RestoreChange::Linked,
    ]);
    let plural =
        |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let mut parts = Vec::new();
    if files > 0 {
        parts.push(plural(files, "file", "files"));
    }
    let replaced = count(&[RestoreChange::Replaced]);
    if replaced > 0 {
        parts.push(format!("{replaced} replaced"));
    }
    let presets = count(&[RestoreChange::Preset]);
    if presets > 0 {
        parts.push(plural(presets, "preset", "presets"));
    }
    let packs = count(&[RestoreChange::Pack]);
    if packs > 0 {
        parts.push(plural(packs, "pack", "packs"));
    }
    let updated = count(&[RestoreChange::PackUpdated]);
    if updated > 0 {
        parts.push(plural(updated, "pack updated", "packs updated"));
    }
    parts.join(", ")
}

#[component]
fn RestorePointRow(point: RestorePointView, refresh: Callback<()>) -> impl IntoView {
    let write = Write::new();
    let confirming = RwSignal::new(false);
    let id = point.id;
    let what = restore_point_summary(&point.items);
    let rolled_back = point.state == RestoreState::RolledBack;
    let note = point.note.clone();
    view! {
        <li data-testid="restore-point" data-state=point.state.as_str()
            class="flex min-w-0 flex-col gap-2 rounded-xl border border-line bg-surface p-3 text-sm">
            <div class="flex min-w-0 flex-wrap items-center gap-x-2 gap-y-1">
                <span class="min-w-0 font-medium wrap-anywhere">{point.subject}</span>
                <span class="text-xs text-muted">{what}</span>
                <span class="text-xs text-muted tabular-nums">{when(point.created_ms)}</span>
                {rolled_back.then(|| view! { <span class=badge(Tone::Muted)>"rolled back"</span> })}
            </div>
            {note.map(|n| view! { <p data-testid="restore-note" class="text-xs text-muted wrap-anywhere">{n}</p> })}
            {(!rolled_back).then(|| view! {
                <div class="flex flex-wrap items-center gap-2">
                    {move || if confirming.get() {
                        view! {
                            <span class="text-xs">"Undo this change?"</span>
                            <button type="button" data-testid="restore-confirm" class="btn-primary"
                                disabled=move || write.busy()
                                on:click=move |_| write.run(roll_back_restore_point(id), move |_| refresh.run(()))>
                                "Roll back"
                            </button>
                            <button type="button" class="btn-secondary" on:click=move |_| confirming.set(false)>"Keep it"</button>
                        }.into_any()
                    } else {
                        view! {
                            <button type="button" data-testid="restore-roll-back" class="btn-secondary"
                                on:click=move |_| confirming.set(true)>
                                "Roll back…"
                            </button>
                        }.into_any()
                    }}
                </div>
            })}
            {move || write.error().map(|message| view! { <ErrorNote message/> })}
        </li>
    }
    .into_any()
}

#[component]
fn RecoveryBody(list: RecoveryList, refresh: Callback<()>) -> impl IntoView {
    let retry_all = Write::new();
    let outcome = RwSignal::new(None::<String>);
    let retryable = list
        .open
        .iter()
        .filter(|f| f.actions.first() == Some(&RecoveryAction::Retry))
        .count();
    let week = (!list.week.is_empty()).then(|| {
        list.week
            .iter()
            .map(|c| format!("{} {}", c.count, c.class.label()))
            .collect::<Vec<_>>()
            .join(" · ")
    });
    let open = list.open.len();
    let part_count = list.partial_files.len();
    let part_bytes: u64 = list.partial_files.iter().map(|p| p.bytes).sum();
    let parts = list
        .partial_files
        .into_iter()
        .map(|part| {
            let owner = match part.owner {
                PartOwner::Download => "its download goes on from here",
                PartOwner::Failed => "its download failed; a retry starts over once it is cleaned",
                PartOwner::Abandoned => "no download will finish it",
            };
            view! {
                <li data-testid="partial-file" class="flex min-w-0 flex-wrap gap-x-2 text-xs text-muted">
                    <span class="min-w-0 wrap-anywhere text-fg">{part.path}</span>
                    <span class="tabular-nums">{format_bytes(part.bytes)}</span>
                    <span>{owner}</span>
                    <span class="tabular-nums">"last written " {when(part.modified_ms)}</span>
                </li>
            }
        })
        .collect_view();
    let cards = list
        .open
        .into_iter()
        .map(|failure| view! { <FailureCard failure refresh/> })
        .collect_view();
    let recent = list
        .recent
        .into_iter()
        .map(|f| {
            let state = match f.state {
                FailureState::Resolved => "resolved",
                FailureState::Dismissed => "dismissed",
                FailureState::Open => "open",
            };
            view! {
                <li data-testid="failure-recent" class="flex min-w-0 flex-wrap gap-x-2 text-xs text-muted">
                    <span class="min-w-0 wrap-anywhere text-fg">{f.subject}</span>
                    <span>{f.class.label()}</span>
                    <span>{state}</span>
                    <span class="tabular-nums">{when(f.last_ms)}</span>
                </li>
            }
        })
        .collect_view();
    view! {
        <div class="flex flex-wrap items-center gap-2">
            <span data-testid="recovery-open-count" class=badge(if open == 0 { Tone::Ok } else { Tone::Bad })>
                {if open == 0 { "Nothing needs you".to_string() } else { format!("{open} need you") }}
            </span>
            {week.map(|w| view! { <span data-testid="recovery-week" class="text-xs text-muted wrap-anywhere">"This week: " {w}</span> })}
            {(retryable > 0).then(|| view! {
                <button
                    type="button"
                    data-testid="recovery-retry-all"
                    class="btn-primary ml-auto"
                    disabled=move || retry_all.busy()
                    on:click=move |_| {
                        retry_all.run(retry_all_failures(), move |o: RetryAllOutcome| {
                            outcome.try_set(Some(format!(
                                "Retried {}{}.",
                                o.retried,
                                if o.skipped > 0 { format!("; {} wait for you first", o.skipped) } else { String::new() }
                            )));
                            refresh.run(());
                        });
                    }
                >
                    {format!("Retry all that can be retried ({retryable})")}
                </button>
            })}
        </div>
        {move || outcome.get().map(|o| view! { <p data-testid="recovery-outcome" class="text-sm text-muted">{o}</p> })}
        {move || retry_all.error().map(|message| view! { <ErrorNote message/> })}
        <ul class="flex flex-col gap-3" data-testid="failures">{cards}</ul>
        {(part_count > 0).then(|| view! {
            <details class="text-sm" data-testid="partial-files">
                <summary class="cursor-pointer text-muted">
                    {format!("Partial downloads: {part_count} ({})", format_bytes(part_bytes))}
                </summary>
                <p class="mt-2 text-xs text-muted">
                    "Those no download will finish are deleted once untouched for RECOVERY_RETENTION_DAYS (7 by default)."
                </p>
                <ul class="mt-2 flex flex-col gap-1">{parts}</ul>
            </details>
        })}
        <details class="text-sm">
            <summary class="cursor-pointer text-muted">"Settled lately"</summary>
            <ul class="mt-2 flex flex-col gap-1">{recent}</ul>
        </details>
    }
    .into_any()
}

#[component]
fn FailureCard(failure: FailureView, refresh: Callback<()>) -> impl IntoView {
    let write = Write::new();
    let id = failure.id;
    let act = move |action: RecoveryAction, url: Option<String>| {
        write.run(act_on_failure(id, action, url), move |_| refresh.run(()));
    };
    let other_url = RwSignal::new(String::new());
    // Another link for the file: a field and its button, before the other actions.
    let use_source = failure
        .actions
        .contains(&RecoveryAction::UseSource)
        .then(|| {
            view! {
                <form
                    data-testid="failure-use-source"
                    class="flex w-full min-w-0 flex-wrap items-center gap-2"
                    on:submit=move |ev| {
                        ev.prevent_default();
                        act(RecoveryAction::UseSource, Some(other_url.get_untracked()));
                    }
                >
                    <input
                        data-testid="failure-source-url"
                        aria-label="Another link for this file"
                        type="url"
                        required
                        placeholder="Another link for this file: https://…"
                        class="min-w-0 flex-1 basis-56 rounded-lg border border-line bg-surface px-2 py-1.5 text-sm text-fg"
                        prop:value=move || other_url.get()
                        on:input=move |ev| other_url.set(event_target_value(&ev))
                    />
                    <button
                        type="submit"
                        data-testid="failure-action"
                        data-action="use_source"
                        class="btn-primary"
                        disabled=move || write.busy()
                    >
                        "Use this link"
                    </button>
                </form>
            }
        });
    let link = failure.link.clone();
    let guides = failure
        .actions
        .iter()
        .filter_map(|a| {
            let mut href = link.clone()?;
            // Settings opens at the tokens and offers the way back here once one is saved.
            if *a == RecoveryAction::AddToken && href == "/settings" {
                href = "/settings?back=/recovery#hf-token".to_string();
            }
            let label = match a {
                RecoveryAction::AddToken => "Add a token in Settings",
                RecoveryAction::AcceptLicence => "Accept the licence",
                RecoveryAction::FreeSpace => "Free space on the Models page",
                _ => return None,
            };
            let external = href.starts_with("http");
            Some(
                view! {
                    <a
                        data-testid="failure-guide"
                        data-action=a.as_str()
                        href=href
                        target=external.then_some("_blank")
                        rel=external.then_some("noopener")
                        class="btn-secondary"
                    >
                        {label}
                        {external.then_some(" ↗")}
                    </a>
                }
                .into_any(),
            )
        })
        .collect_view();
    let buttons = failure
        .actions
        .iter()
        .filter_map(|a| {
            let (label, class) = match a {
                RecoveryAction::Retry => ("Retry", "btn-primary"),
                RecoveryAction::Resume => ("Resume", "btn-primary"),
                RecoveryAction::RestartComfyui => ("Restart ComfyUI", "btn-primary"),
                RecoveryAction::RollBack => ("Roll back", "btn-secondary"),
                RecoveryAction::Dismiss => ("Dismiss", "btn-secondary"),
                _ => return None,
            };
            let action = *a;
            Some(
                view! {
                    <button
                        type="button"
                        data-testid="failure-action"
                        data-action=action.as_str()
                        class=class
                        disabled=move || write.busy()
                        on:click=move |_| act(action, None)
                    >
                        {label}
                    </button>
                }
                .into_any(),
            )
        })
        .collect_view();
    let times = if failure.count > 1 {
        format!(
            "{} times since {} · last {}",
            failure.count,
            when(failure.first_ms),
            when(failure.last_ms)
        )
    } else {
        when(failure.last_ms)
    };
    view! {
        <li
            data-testid="failure"
            data-class=failure.class.as_str()
            data-source=failure.source.as_str()
            class="flex min-w-0 flex-col gap-2 rounded-xl border border-line bg-surface p-4 shadow-sm"
        >
            <div class="flex min-w-0 flex-wrap items-center gap-2">
                <span class=badge(Tone::Muted)>{source_label(failure.source)}</span>
                <span data-testid="failure-class" class=badge(class_tone(failure.class))>{failure.class.label()}</span>
                <span class="text-xs text-muted tabular-nums">{times}</span>
            </div>
            <p data-testid="failure-subject" class="font-medium wrap-anywhere">{failure.subject}</p>
            <p data-testid="failure-sentence" class="text-sm wrap-anywhere">{failure.sentence}</p>
            <details class="text-xs">
                <summary class="cursor-pointer text-muted">"Technical detail"</summary>
                <pre data-testid="failure-detail" class="mt-1 whitespace-pre-wrap break-all rounded-lg bg-surface-2 p-2">{failure.detail}</pre>
            </details>
            {use_source}
            <div class="flex flex-wrap gap-2">{guides}{buttons}</div>
            {move || write.error().map(|message| view! { <ErrorNote message/> })}
        </li>
    }
    .into_any()
}

/// The banner every signed-in page shows while something needs attention, linking to the
/// Recovery page. Read in the browser only (after hydration), so no page pays for it on the
/// server.
#[component]
pub fn RecoveryBanner() -> impl IntoView {
    let live = Live::get();
    let line = RwSignal::new(None::<String>);
    Effect::new(move |_| {
        live.recovery.track();
        leptos::task::spawn_local(async move {
            if let Ok(banner) = recovery_banner().await {
                line.try_set(banner);
            }
        });
    });
    move || {
        line.get().map(|text| {
            view! {
                <div
                    data-testid="recovery-banner"
                    role="status"
                    class="mb-4 flex min-w-0 flex-wrap items-center gap-x-3 gap-y-1 rounded-lg border border-bad/40 bg-bad/10 px-3 py-2 text-sm text-bad"
                >
                    <span class="min-w-0 flex-1 wrap-anywhere">{text}</span>
                    <a href="/recovery" data-testid="recovery-banner-link" class="shrink-0 font-medium underline">"Open Recovery"</a>
                </div>
            }
        })
    }
}
