//! Progress under way: a preset's overall bar with speed and time left, and each of its files
//! with its own bar and pause / resume / cancel.

use engine::model::*;
use leptos::prelude::*;

use super::state::Models;
use crate::api::*;
use crate::components::{badge, ProgressBar, Tone};
use crate::server_calls::Write;

#[component]
pub(super) fn PresetProgressView(
    state: Memo<InstallState>,
    figures: Memo<TransferFigures>,
) -> impl IntoView {
    let percent = Signal::derive(move || {
        figures.with(|f| {
            f.total_bytes
                .filter(|t| *t > 0)
                .map(|t| percent_of(f.bytes_done, t))
        })
    });
    let tone = Signal::derive(move || bar_tone(state.get()));
    view! {
        <div data-testid="preset-progress" class="space-y-1.5">
            <ProgressBar percent tone label="Install progress"/>
            <p class="flex flex-wrap gap-x-3 gap-y-0.5 text-xs text-muted tabular-nums">
                <span data-testid="preset-progress-bytes">{move || figures.with(bytes_text)}</span>
                {move || {
                    let f = figures.get();
                    match state.get() {
                        InstallState::Downloading => view! {
                            {(f.speed_bps > 0).then(|| view! {
                                <span data-testid="preset-speed">{format!("{}/s", format_bytes(f.speed_bps))}</span>
                            })}
                            {f.eta_secs.map(|eta| view! {
                                <span data-testid="preset-eta">{format!("{} left", format_duration_secs(eta))}</span>
                            })}
                        }.into_any(),
                        InstallState::Queued => view! { <span>"waiting for a download slot"</span> }.into_any(),
                        InstallState::Paused => view! { <span>"paused"</span> }.into_any(),
                        _ => ().into_any(),
                    }
                }}
            </p>
        </div>
    }
    .into_any()
}

#[component]
pub(super) fn FileRow(
    initial: PresetFileView,
    files: Memo<Vec<PresetFileView>>,
    m: Models,
) -> impl IntoView {
    let path = initial.path.clone();
    let file = {
        let path = path.clone();
        Memo::new(move |previous: Option<&PresetFileView>| {
            files
                .with(|list| list.iter().find(|f| f.path == path).cloned())
                .or_else(|| previous.cloned())
                .unwrap_or_else(|| initial.clone())
        })
    };
    let state = Memo::new(move |_| file.with(|f| f.state));
    let task = Memo::new(move |_| file.with(|f| f.task_id));
    let write = Write::new();
    let confirming = RwSignal::new(false);

    #[derive(Clone, Copy)]
    enum FileOp {
        Pause,
        Resume,
        Cancel { delete_part: bool },
    }
    let run = move |op: FileOp| {
        let Some(task_id) = task.get_untracked() else {
            return;
        };
        confirming.set(false);
        write.run(
            async move {
                let outcome = match op {
                    FileOp::Pause => pause_download(task_id).await,
                    FileOp::Resume => resume_download(task_id).await,
                    FileOp::Cancel { delete_part } => cancel_download(task_id, delete_part).await,
                };
                // The row shows the state the server now has, whatever the answer was.
                m.refresh();
                outcome
            },
            |()| {},
        );
    };

    let has_task = move || task.get().is_some();
    let in_transfer = move || {
        has_task()
            && matches!(
                state.get(),
                FileState::Queued | FileState::Downloading | FileState::Paused | FileState::Failed
            )
    };
    // A file that failed before its first byte has no progress worth a bar.
    let shows_progress = move || {
        in_transfer()
            && (state.get() != FileState::Failed || file.with(|f| f.figures.bytes_done > 0))
    };
    let percent = Signal::derive(move || {
        file.with(|f| {
            f.figures
                .total_bytes
                .or(f.size_bytes)
                .filter(|t| *t > 0)
                .map(|t| percent_of(f.figures.bytes_done, t))
        })
    });
    let tone = Signal::derive(move || file_bar_tone(state.get()));
    view! {
        <li
            data-testid="preset-file"
            data-path=path.clone()
            data-state=move || file_state_key(state.get())
            class="space-y-1.5 py-2.5"
        >
            <div class="flex items-start justify-between gap-2">
                <code class="min-w-0 break-all font-mono text-xs">{path.clone()}</code>
                <span class=move || badge(file_tone(state.get()))>{move || state.get().label()}</span>
            </div>
            <p class="text-xs text-muted tabular-nums">
                {move || file.with(|f| {
                    let mut parts = Vec::new();
                    if shows_progress() {
                        let mut figures = f.figures.clone();
                        figures.total_bytes = figures.total_bytes.or(f.size_bytes);
                        parts.push(bytes_text(&figures));
                        if f.state == FileState::Downloading {
                            if f.figures.speed_bps > 0 {
                                parts.push(format!("{}/s", format_bytes(f.figures.speed_bps)));
                            }
                            if let Some(eta) = f.figures.eta_secs {
                                parts.push(format!("{} left", format_duration_secs(eta)));
                            }
                        }
                    } else {
                        parts.push(f.size_bytes.map(format_bytes).unwrap_or_else(|| "size unknown".to_string()));
                    }
                    if f.optional {
                        parts.push("optional".to_string());
                    }
                    parts.join(" · ")
                })}
            </p>
            <Show when=shows_progress>
                <ProgressBar percent tone label="File download progress"/>
            </Show>
            {move || file.with(|f| f.error.clone()).map(|message| view! {
                <p data-testid="preset-file-error" class="text-xs text-bad wrap-anywhere">{message}</p>
            })}
            <Show when=move || m.admin && has_task()>
                <div class="flex flex-wrap gap-2">
                    <Show when=move || matches!(state.get(), FileState::Queued | FileState::Downloading)>
                        <button type="button" class="btn-secondary px-2 py-1 text-xs" data-testid="file-pause" disabled=move || write.busy() on:click=move |_| run(FileOp::Pause)>
                            "Pause"
                        </button>
                    </Show>
                    <Show when=move || matches!(state.get(), FileState::Paused | FileState::Failed)>
                        <button type="button" class="btn-secondary px-2 py-1 text-xs" data-testid="file-resume" disabled=move || write.busy() on:click=move |_| run(FileOp::Resume)>
                            "Resume"
                        </button>
                    </Show>
                    <Show when=in_transfer>
                        <button type="button" class="btn-secondary px-2 py-1 text-xs" data-testid="file-cancel" disabled=move || write.busy() on:click=move |_| confirming.set(true)>
                            "Cancel"
                        </button>
                    </Show>
                </div>
            </Show>
            <Show when=move || confirming.get() && has_task()>
                <div class="flex flex-wrap items-center gap-2 rounded-lg bg-surface-2 p-2 text-xs" role="group" aria-label="Confirm cancelling this file">
                    <span class="w-full">"Stop this file?"</span>
                    <button type="button" class="btn-secondary px-2 py-1 text-xs" data-testid="file-cancel-keep" on:click=move |_| run(FileOp::Cancel { delete_part: false })>
                        "Stop, keep part"
                    </button>
                    <button type="button" class="btn-danger px-2 py-1 text-xs" data-testid="file-cancel-delete" on:click=move |_| run(FileOp::Cancel { delete_part: true })>
                        "Stop, delete part"
                    </button>
                    <button type="button" class="btn-secondary px-2 py-1 text-xs" on:click=move |_| confirming.set(false)>
                        "Back"
                    </button>
                </div>
            </Show>
            {move || write.error().map(|message| view! {
                <p role="alert" class="text-xs text-bad wrap-anywhere">{message}</p>
            })}
        </li>
    }
    .into_any()
}

fn bar_tone(state: InstallState) -> &'static str {
    match state {
        InstallState::Paused => "bg-warn",
        InstallState::Failed => "bg-bad",
        InstallState::Queued => "bg-muted",
        _ => "bg-accent",
    }
}

fn file_bar_tone(state: FileState) -> &'static str {
    match state {
        FileState::Paused => "bg-warn",
        FileState::Failed => "bg-bad",
        FileState::Queued => "bg-muted",
        _ => "bg-accent",
    }
}

fn file_tone(state: FileState) -> Tone {
    match state {
        FileState::Installed => Tone::Ok,
        FileState::Queued | FileState::Downloading => Tone::Accent,
        FileState::Paused => Tone::Warn,
        FileState::Failed => Tone::Bad,
        FileState::Missing => Tone::Muted,
    }
}

fn file_state_key(state: FileState) -> &'static str {
    match state {
        FileState::Missing => "missing",
        FileState::Queued => "queued",
        FileState::Downloading => "downloading",
        FileState::Paused => "paused",
        FileState::Failed => "failed",
        FileState::Installed => "installed",
    }
}

/// `3.1 MB of 9.0 MB (34%)`, or just the bytes done when the total is not known.
fn bytes_text(f: &TransferFigures) -> String {
    match f.total_bytes.filter(|t| *t > 0) {
        Some(total) => format!(
            "{} of {} ({:.0}%)",
            format_bytes(f.bytes_done),
            format_bytes(total),
            percent_of(f.bytes_done, total).floor(),
        ),
        None => format!("{} so far", format_bytes(f.bytes_done)),
    }
}
