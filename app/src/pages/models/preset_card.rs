//! One preset: what it is and needs (size, VRAM, space), its state, install / pause / resume /
//! cancel / remove with confirmations, its progress and its files.

use engine::model::*;
use leptos::prelude::*;

use super::progress::{FileRow, PresetProgressView};
use super::shared::{layer_label, Chevron};
use super::state::Models;
use crate::api::*;
use crate::components::{badge, Tone};
use crate::server_calls::Write;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Install,
    Pause,
    Resume,
    Cancel { delete_parts: bool },
    Remove,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Confirm {
    Cancel,
    Remove,
}

#[component]
pub(super) fn PresetCard(
    initial: PresetView,
    m: Models,
    usable: Memo<u64>,
    set_tag: Callback<String>,
) -> impl IntoView {
    let id = initial.id.clone();
    let preset = {
        let id = id.clone();
        Memo::new(move |previous: Option<&PresetView>| {
            m.data
                .with(|d| d.presets.iter().find(|p| p.id == id).cloned())
                .or_else(|| previous.cloned())
                .unwrap_or_else(|| initial.clone())
        })
    };
    let live_event = {
        let id = id.clone();
        Memo::new(move |_| m.live_preset(&id))
    };
    let state = Memo::new(move |_| {
        live_event
            .with(|e| e.as_ref().map(|e| e.state))
            .unwrap_or_else(|| preset.with(|p| p.state))
    });
    let error = Memo::new(move |_| match live_event.get() {
        Some(event) => event.error,
        None => preset.with(|p| p.error.clone()),
    });
    let files = Memo::new(move |_| m.merge_files(preset.with(|p| p.files.clone())));
    let figures = Memo::new(move |_| {
        live_event
            .with(|e| e.as_ref().map(|e| e.figures.clone()))
            .unwrap_or_else(|| files.with(|f| TransferFigures::of_preset(f)))
    });

    let write = Write::new();
    let notice = RwSignal::new(None::<String>);
    let confirm = RwSignal::new(None::<Confirm>);
    let run = {
        let id = id.clone();
        Callback::new(move |op: Op| {
            let id = id.clone();
            notice.set(None);
            confirm.set(None);
            write.run(async move {
                let outcome: Result<Option<String>, ApiError> = match op {
                    Op::Install => install_preset(id).await.map(|_| None),
                    Op::Pause => pause_preset(id).await.map(|()| None),
                    Op::Resume => resume_preset(id).await.map(|()| None),
                    Op::Cancel { delete_parts } => {
                        cancel_preset(id, delete_parts).await.map(|()| {
                            Some(if delete_parts {
                                "Cancelled; the downloaded parts were deleted.".to_string()
                            } else {
                                "Cancelled; the downloaded parts were kept, so installing again continues where it stopped.".to_string()
                            })
                        })
                    }
                    Op::Remove => remove_preset(id)
                        .await
                        .map(|freed| Some(format!("Removed; {} freed.", format_bytes(freed)))),
                };
                // The card shows the state the server now has, whatever the answer was.
                m.refresh();
                outcome
            }, move |message| {
                notice.try_set(message);
            });
        })
    };

    let can_install = move || {
        matches!(
            state.get(),
            InstallState::NotInstalled
                | InstallState::Partial
                | InstallState::Failed
                | InstallState::UpdateAvailable
        )
    };
    let can_pause = move || state.get().is_active();
    let can_resume = move || matches!(state.get(), InstallState::Paused | InstallState::Failed);
    let can_cancel = move || {
        matches!(
            state.get(),
            InstallState::Queued
                | InstallState::Downloading
                | InstallState::Paused
                | InstallState::Failed
        )
    };
    let can_remove = move || {
        matches!(
            state.get(),
            InstallState::Installed | InstallState::Partial | InstallState::UpdateAvailable
        )
    };
    let shows_progress = move || {
        let s = state.get();
        matches!(
            s,
            InstallState::Queued | InstallState::Downloading | InstallState::Paused
        ) || (s == InstallState::Failed && figures.with(|f| f.bytes_done > 0))
    };
    let short_of_space = move || {
        let needed = preset.with(|p| p.remaining_bytes);
        let avail = usable.get();
        (can_install() && needed > avail).then_some((needed, avail))
    };

    let name = move || preset.with(|p| p.name.clone());
    view! {
        <article
            data-testid="preset-card"
            data-preset-id=id.clone()
            data-state=move || state_key(state.get())
            class="flex min-w-0 flex-col gap-3 rounded-xl border border-line bg-surface p-4 shadow-sm"
        >
            <header class="flex items-start gap-3">
                <div class="min-w-0 flex-1">
                    <h3 class="font-medium leading-snug wrap-anywhere">{name}</h3>
                    <p class="mt-0.5 text-xs text-muted wrap-anywhere">
                        {move || preset.with(|p| {
                            let mut parts = vec![p.kind.clone(), p.category.clone()];
                            if let Some(v) = &p.version {
                                parts.push(format!("v{v}"));
                            }
                            if p.layer != "builtin" {
                                parts.push(layer_label(&p.layer));
                            }
                            parts.retain(|s| !s.is_empty());
                            parts.join(" · ")
                        })}
                    </p>
                    <p class="mt-0.5 font-mono text-xs text-muted break-all">{id.clone()}</p>
                </div>
                <span data-testid="preset-state" class=move || badge(state_tone(state.get()))>
                    {move || state.get().label()}
                </span>
            </header>

            {move || preset.with(|p| (!p.description.is_empty()).then(|| view! {
                <p class="text-sm leading-snug wrap-anywhere">{p.description.clone()}</p>
            }))}
            {move || preset.with(|p| p.use_case.clone()).map(|u| view! {
                <p class="text-xs text-muted wrap-anywhere">{u}</p>
            })}

            {move || {
                let tags = preset.with(|p| p.tags.clone());
                (!tags.is_empty()).then(|| view! {
                    <ul class="flex flex-wrap gap-1.5" aria-label="Tags">
                        {tags.into_iter().map(|tag| {
                            let t = tag.clone();
                            view! {
                                <li>
                                    <button
                                        type="button"
                                        class="rounded-full bg-surface-2 px-2 py-0.5 text-xs text-muted hover:text-fg wrap-anywhere"
                                        title="Show presets with this tag"
                                        on:click=move |_| set_tag.run(t.clone())
                                    >
                                        {tag}
                                    </button>
                                </li>
                            }
                        }).collect_view()}
                    </ul>
                })
            }}

            <dl class="grid grid-cols-[auto_1fr] gap-x-3 gap-y-1 text-sm">
                <dt class="text-muted">"Download"</dt>
                <dd class="tabular-nums" data-testid="preset-size">
                    {move || preset.with(|p| {
                        let size = p.download_bytes.map(format_bytes).unwrap_or_else(|| "unknown".to_string());
                        // Only worth saying when part of it is already here.
                        let some_installed = files.with(|f| f.iter().any(|f| !f.optional && f.state == FileState::Installed));
                        if some_installed && p.remaining_bytes > 0 && can_install() {
                            format!("{size} ({} still to fetch)", format_bytes(p.remaining_bytes))
                        } else {
                            size
                        }
                    })}
                </dd>
                <dt class="text-muted">"VRAM"</dt>
                <dd class="flex flex-wrap items-center gap-2" data-testid="preset-vram">
                    {move || preset.with(|p| match p.vram_gb {
                        Some(gb) => view! {
                            <span class="tabular-nums">{format_gb(gb)}</span>
                            <span class=badge(fit_tone(p.vram_fit))>
                                {if p.vram_fit == VramFit::Unknown { "no GPU to compare" } else { p.vram_fit.label() }}
                            </span>
                        }.into_any(),
                        None => view! { <span class="text-muted">"unknown"</span> }.into_any(),
                    })}
                </dd>
            </dl>

            {move || short_of_space().map(|(needed, avail)| view! {
                <p data-testid="preset-space-warning" class="rounded-lg border border-warn/40 bg-warn/10 px-3 py-2 text-sm text-warn">
                    {format!(
                        "Needs {}, {} free after the reserve. Installing will likely be refused; free some space first.",
                        format_bytes(needed),
                        format_bytes(avail),
                    )}
                </p>
            })}

            {move || error.get().map(|message| view! {
                <p data-testid="preset-error" role="alert" class="rounded-lg border border-bad/40 bg-bad/10 px-3 py-2 text-sm text-bad wrap-anywhere">
                    {message}
                </p>
            })}

            <Show when=shows_progress>
                <PresetProgressView state figures/>
            </Show>

            <details data-testid="preset-files" class="group text-sm">
                <summary class="flex cursor-pointer list-none items-center gap-1 text-muted hover:text-fg [&::-webkit-details-marker]:hidden">
                    <Chevron/>
                    {move || files.with(|f| {
                        let installed = f.iter().filter(|f| f.state == FileState::Installed).count();
                        format!(
                            "{} file{} · {} installed",
                            f.len(),
                            if f.len() == 1 { "" } else { "s" },
                            installed,
                        )
                    })}
                </summary>
                <ul class="mt-2 divide-y divide-line rounded-lg border border-line px-3">
                    <For each=move || files.get() key=|f| f.path.clone() let:file>
                        <FileRow initial=file files m/>
                    </For>
                </ul>
            </details>

            // Users see the state, not the controls (the server refuses them anyway).
            {m.admin.then(|| view! {
                <div class="flex flex-wrap gap-2">
                    <Show when=can_install>
                        <button
                            type="button"
                            class="btn-primary"
                            data-testid="preset-install"
                            disabled=move || write.busy()
                            on:click=move |_| run.run(Op::Install)
                        >
                            {move || if state.get() == InstallState::UpdateAvailable { "Update" } else { "Install" }}
                        </button>
                    </Show>
                    <Show when=can_pause>
                        <button type="button" class="btn-secondary" data-testid="preset-pause" disabled=move || write.busy() on:click=move |_| run.run(Op::Pause)>
                            "Pause"
                        </button>
                    </Show>
                    <Show when=can_resume>
                        <button type="button" class="btn-secondary" data-testid="preset-resume" disabled=move || write.busy() on:click=move |_| run.run(Op::Resume)>
                            "Resume"
                        </button>
                    </Show>
                    <Show when=can_cancel>
                        <button type="button" class="btn-secondary" data-testid="preset-cancel" disabled=move || write.busy() on:click=move |_| confirm.set(Some(Confirm::Cancel))>
                            "Cancel"
                        </button>
                    </Show>
                    <Show when=can_remove>
                        <button type="button" class="btn-danger" data-testid="preset-remove" disabled=move || write.busy() on:click=move |_| confirm.set(Some(Confirm::Remove))>
                            "Remove"
                        </button>
                    </Show>
                </div>

                {move || confirm.get().map(|c| match c {
                    Confirm::Remove => view! {
                        <div data-testid="preset-confirm" role="group" aria-label="Confirm removal" class="rounded-lg border border-bad/40 bg-bad/5 p-3 text-sm">
                            <p class="mb-2 wrap-anywhere">
                                {format!("Delete the files of \u{201c}{}\u{201d}? Files that another installed preset uses are kept.", name())}
                            </p>
                            <div class="flex flex-wrap gap-2">
                                <button type="button" class="btn-danger" data-testid="preset-remove-confirm" on:click=move |_| run.run(Op::Remove)>
                                    "Delete files"
                                </button>
                                <button type="button" class="btn-secondary" data-testid="preset-confirm-back" on:click=move |_| confirm.set(None)>
                                    "Keep them"
                                </button>
                            </div>
                        </div>
                    }.into_any(),
                    Confirm::Cancel => view! {
                        <div data-testid="preset-confirm" role="group" aria-label="Confirm cancelling" class="rounded-lg border border-line bg-surface-2 p-3 text-sm">
                            <p class="mb-2 wrap-anywhere">
                                {format!("Stop installing \u{201c}{}\u{201d}? Kept parts let a later install continue where it stopped.", name())}
                            </p>
                            <div class="flex flex-wrap gap-2">
                                <button type="button" class="btn-secondary" data-testid="preset-cancel-keep" on:click=move |_| run.run(Op::Cancel { delete_parts: false })>
                                    "Stop, keep parts"
                                </button>
                                <button type="button" class="btn-danger" data-testid="preset-cancel-delete" on:click=move |_| run.run(Op::Cancel { delete_parts: true })>
                                    "Stop, delete parts"
                                </button>
                                <button type="button" class="btn-secondary" data-testid="preset-confirm-back" on:click=move |_| confirm.set(None)>
                                    "Back"
                                </button>
                            </div>
                        </div>
                    }.into_any(),
                })}
            })}

            {move || write.error().map(|message| view! {
                <p data-testid="preset-action-error" role="alert" class="rounded-lg border border-bad/40 bg-bad/10 px-3 py-2 text-sm text-bad wrap-anywhere">
                    {message}
                </p>
            })}
            {move || notice.get().map(|message| view! {
                <p data-testid="preset-notice" aria-live="polite" class="text-sm text-ok">{message}</p>
            })}
        </article>
    }
    .into_any()
}

fn state_tone(state: InstallState) -> Tone {
    match state {
        InstallState::Installed => Tone::Ok,
        InstallState::UpdateAvailable | InstallState::Queued | InstallState::Downloading => {
            Tone::Accent
        }
        InstallState::Paused | InstallState::Partial => Tone::Warn,
        InstallState::Failed => Tone::Bad,
        InstallState::NotInstalled => Tone::Muted,
    }
}

fn fit_tone(fit: VramFit) -> Tone {
    match fit {
        VramFit::Fits => Tone::Ok,
        VramFit::Tight => Tone::Warn,
        VramFit::TooBig => Tone::Bad,
        VramFit::Unknown => Tone::Muted,
    }
}

/// The serde name of the state, for `data-state` (tests and styles read it).
fn state_key(state: InstallState) -> &'static str {
    match state {
        InstallState::NotInstalled => "not_installed",
        InstallState::Queued => "queued",
        InstallState::Downloading => "downloading",
        InstallState::Paused => "paused",
        InstallState::Partial => "partial",
        InstallState::Installed => "installed",
        InstallState::Failed => "failed",
        InstallState::UpdateAvailable => "update_available",
    }
}

/// `12 GB`, `7.5 GB`.
fn format_gb(gb: f32) -> String {
    if (gb - gb.round()).abs() < 0.05 {
        format!("{gb:.0} GB")
    } else {
        format!("{gb:.1} GB")
    }
}
