//! The view that follows a run: state, overall and per-node progress, previews, outputs, and
//! Stop / Cancel.

use engine::model::*;
use leptos::prelude::*;

use super::fields::format_number;
use super::folding::{fold, state_text, RunPhase, TrackedRun};
use crate::api::*;
use crate::components::{badge, ErrorNote, ProgressBar};
use crate::live::{Connection, Live};
use crate::server_calls::Write;

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

    let write = Write::new();
    let control = {
        let prompt_id = prompt_id.clone();
        Callback::new(move |what: Control| {
            let prompt_id = prompt_id.clone();
            write.run(
                async move {
                    match what {
                        _ if generation => crate::api::generate::cancel_generation(prompt_id)
                            .await
                            .map(|_| ()),
                        Control::Stop => interrupt_prompt(prompt_id).await,
                        Control::Cancel => cancel_prompt(prompt_id).await,
                    }
                },
                move |()| {
                    if what == Control::Cancel {
                        on_cancelled.run(());
                    }
                },
            );
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
                        <button type="button" class="btn-danger shrink-0" data-testid="run-stop" disabled=move || write.busy() on:click=move |_| control.run(Control::Stop)>
                            "Stop"
                        </button>
                    }.into_any()),
                    RunPhase::Queued => Some(view! {
                        <button type="button" class="btn-secondary shrink-0" data-testid="run-cancel" disabled=move || write.busy() on:click=move |_| control.run(Control::Cancel)>
                            "Cancel"
                        </button>
                    }.into_any()),
                    _ => None,
                }}
            </div>
            {move || write.error().map(|message| view! { <ErrorNote message/> })}
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
