//! The viewer: one output full size (image, playing video, audio player), previous / next
//! (arrow keys, buttons, horizontal swipes), and a panel with how it was made, "Open in
//! Generate", download and delete.

use engine::model::*;
use leptos::prelude::*;

use super::grid::kind_label;
use super::shelf::Shelf;
use crate::api::gallery::{delete_gallery_item, get_gallery_item};
use crate::components::{ErrorNote, Icon, IconSvg};
use crate::server_calls::{error_message, Write};

/// Horizontal travel (CSS px) that makes a swipe.
const SWIPE_PX: i32 = 50;

#[component]
pub(super) fn Viewer(shelf: Shelf) -> impl IntoView {
    let detail = Resource::new(
        move || shelf.open.get(),
        |id| async move {
            match id {
                Some(id) => Some(get_gallery_item(id).await),
                None => None,
            }
        },
    );
    // The grid's entry shows at once; the metadata follows.
    let listed = Memo::new(move |_| {
        let id = shelf.open.get()?;
        shelf
            .items
            .with(|items| items.iter().find(|i| i.id == id).cloned())
    });
    let fetched = Memo::new(move |_| match detail.get().flatten() {
        Some(Ok(d)) if Some(d.item.id) == shelf.open.get() => Some(d),
        _ => None,
    });
    // The fetched entry is the newer one (a run may have added its prompt id since the list).
    let item = Memo::new(move |_| fetched.get().map(|d| d.item).or_else(|| listed.get()));

    let position = Memo::new(move |_| {
        let id = shelf.open.get()?;
        shelf
            .items
            .with(|items| items.iter().position(|i| i.id == id))
    });
    let neighbour = move |step: isize| {
        let at = position.get_untracked()? as isize + step;
        let at = usize::try_from(at).ok()?;
        shelf
            .items
            .with_untracked(|items| items.get(at).map(|i| i.id))
    };
    let has_newer = move || position.get().is_some_and(|p| p > 0);
    let has_older = move || {
        position.get().is_some_and(|p| {
            p + 1 < shelf.items.with(Vec::len) || shelf.cursor.with(Option::is_some)
        })
    };
    let go_newer = move || {
        if let Some(id) = neighbour(-1) {
            shelf.select.run((Some(id), true));
        }
    };
    let go_older = move || {
        if let Some(id) = neighbour(1) {
            shelf.select.run((Some(id), true));
        } else if position.get_untracked().is_some() && shelf.cursor.with_untracked(Option::is_some)
        {
            // The last loaded item: fetch the next page, then step onto it.
            shelf.load_more(Some(Callback::new(move |_| {
                if let Some(id) = neighbour(1) {
                    shelf.select.run((Some(id), true));
                }
            })));
        }
    };
    let close = move || shelf.select.run((None, false));

    let keys = window_event_listener(leptos::ev::keydown, move |ev| {
        // Typing in a field is not navigating.
        let in_field = ev
            .target()
            .and_then(|t| {
                leptos::wasm_bindgen::JsCast::dyn_into::<leptos::web_sys::Element>(t).ok()
            })
            .is_some_and(|el| matches!(el.tag_name().as_str(), "INPUT" | "TEXTAREA" | "SELECT"));
        if in_field || ev.alt_key() || ev.ctrl_key() || ev.meta_key() {
            return;
        }
        match ev.key().as_str() {
            "ArrowLeft" => go_newer(),
            "ArrowRight" => go_older(),
            "Escape" => close(),
            _ => return,
        }
        ev.prevent_default();
    });
    on_cleanup(move || keys.remove());

    // Swipes: pointer events with `touch-action: pan-y`, so a horizontal drag reaches us and
    // a vertical one still scrolls.
    let swipe_from = StoredValue::new(None::<(i32, i32)>);
    let on_down = move |ev: leptos::ev::PointerEvent| {
        swipe_from.set_value(Some((ev.client_x(), ev.client_y())));
    };
    let on_up = move |ev: leptos::ev::PointerEvent| {
        let Some((x, y)) = swipe_from.get_value() else {
            return;
        };
        swipe_from.set_value(None);
        let (dx, dy) = (ev.client_x() - x, ev.client_y() - y);
        if dx.abs() >= SWIPE_PX && dx.abs() > dy.abs() * 2 {
            if dx < 0 {
                go_older();
            } else {
                go_newer();
            }
        }
    };

    let nav_button = "absolute top-1/2 z-10 flex h-11 w-11 -translate-y-1/2 items-center justify-center rounded-full bg-black/55 text-2xl leading-none text-white hover:bg-black/75 disabled:hidden";
    view! {
        <div
            data-testid="gallery-viewer"
            role="dialog"
            aria-modal="true"
            aria-label=move || item.get().map(|i| i.name().to_string()).unwrap_or_default()
            class="fixed inset-0 z-40 flex flex-col bg-bg md:flex-row"
        >
            <div
                data-testid="viewer-stage"
                class="relative flex min-h-0 flex-1 select-none items-center justify-center bg-black"
                style="touch-action: pan-y"
                on:pointerdown=on_down
                on:pointerup=on_up
                on:pointercancel=move |_| swipe_from.set_value(None)
            >
                {move || item.get().map(|item| view! { <Media item/> })}
                <button
                    type="button"
                    data-testid="viewer-prev"
                    aria-label="Newer"
                    class=format!("{nav_button} left-2")
                    disabled=move || !has_newer()
                    on:click=move |_| go_newer()
                >
                    "‹"
                </button>
                <button
                    type="button"
                    data-testid="viewer-next"
                    aria-label="Older"
                    class=format!("{nav_button} right-2")
                    disabled=move || !has_older()
                    on:click=move |_| go_older()
                >
                    "›"
                </button>
                <button
                    type="button"
                    data-testid="viewer-close"
                    aria-label="Close"
                    class="absolute right-2 top-2 z-10 flex h-10 w-10 items-center justify-center rounded-full bg-black/55 text-xl leading-none text-white hover:bg-black/75"
                    on:click=move |_| close()
                >
                    "✕"
                </button>
            </div>
            <aside
                data-testid="viewer-panel"
                class="max-h-[45dvh] shrink-0 overflow-y-auto border-t border-line bg-surface p-4 md:max-h-none md:w-80 md:border-l md:border-t-0 lg:w-96"
            >
                <Transition fallback=|| ()>
                    {move || match (item.get(), detail.get().flatten()) {
                        (Some(item), answer) => {
                            let meta = fetched.get().map(|d| d.meta);
                            let error = match answer {
                                Some(Err(e)) => Some(error_message(e)),
                                _ => None,
                            };
                            view! { <Panel item meta error shelf/> }.into_any()
                        }
                        (None, Some(Err(e))) => view! {
                            <ErrorNote message=e.message/>
                            <button type="button" class="btn-secondary mt-3" on:click=move |_| close()>"Back to the gallery"</button>
                        }
                        .into_any(),
                        (None, _) => view! { <p class="text-sm text-muted">"Loading…"</p> }.into_any(),
                    }}
                </Transition>
            </aside>
        </div>
    }
}

#[component]
fn Media(item: GalleryItem) -> impl IntoView {
    let src = item.file_url();
    let name = item.name().to_string();
    match item.kind {
        MediaKind::Image => view! {
            <img
                data-testid="viewer-image"
                src=src
                alt=name
                draggable="false"
                class="max-h-full max-w-full object-contain"
            />
        }
        .into_any(),
        // Muted so browsers let it start by itself; the controls unmute it.
        MediaKind::Video => view! {
            <video
                data-testid="viewer-video"
                src=src
                controls=true
                autoplay=true
                muted=true
                prop:muted=true
                playsinline=true
                class="max-h-full max-w-full"
            ></video>
        }
        .into_any(),
        MediaKind::Audio => view! {
            <div class="flex w-full max-w-md flex-col items-center gap-4 px-6 text-white">
                <IconSvg icon=Icon::Audio/>
                <p class="max-w-full truncate text-sm">{name}</p>
                <audio data-testid="viewer-audio" src=src controls=true class="w-full"></audio>
            </div>
        }
        .into_any(),
    }
}

#[component]
fn Panel(
    item: GalleryItem,
    meta: Option<GalleryMeta>,
    error: Option<String>,
    shelf: Shelf,
) -> impl IntoView {
    let id = item.id;
    let name = item.name().to_string();
    let size = match (
        meta.as_ref().and_then(|m| m.width).or(item.width),
        meta.as_ref().and_then(|m| m.height).or(item.height),
    ) {
        (Some(w), Some(h)) => format!("{w}×{h} · {}", format_bytes(item.size_bytes)),
        _ => format_bytes(item.size_bytes),
    };
    let can_generate = item.has_workflow
        || item.positive.is_some()
        || meta
            .as_ref()
            .is_some_and(|m| m.workflow.is_some() || m.prompt.is_some() || m.positive.is_some());
    let m = meta.clone().unwrap_or_default();
    let positive = m.positive.clone().or(item.positive.clone());
    let settings = [
        ("Seed", m.seed.or(item.seed).map(|s| s.to_string())),
        ("Model", m.model.clone().or(item.model.clone())),
        ("Steps", m.steps.map(|s| s.to_string())),
        ("CFG", m.cfg.map(|c| format!("{c}"))),
        ("Sampler", m.sampler.clone()),
        ("Scheduler", m.scheduler.clone()),
        ("Prompt id", item.prompt_id.clone()),
        ("Owner", item.owner.clone()),
    ];
    let workflow_json = m
        .workflow
        .as_ref()
        .or(m.prompt.as_ref())
        .map(|w| serde_json::to_string_pretty(w).unwrap_or_default());
    let workflow_label = if m.workflow.is_some() {
        "Workflow"
    } else {
        "API prompt"
    };
    let download_url = item.file_url();
    let download_name = name.clone();

    view! {
        <h2 data-testid="viewer-name" class="text-base font-semibold wrap-anywhere">{name.clone()}</h2>
        <p class="mt-0.5 text-xs text-muted wrap-anywhere">
            {format!("{} · {size} · {}", kind_label(item.kind), format_utc(item.modified_ms))}
        </p>
        {(item.path != name).then(|| view! { <p class="text-xs text-muted wrap-anywhere">{item.path.clone()}</p> })}
        {error.map(|message| view! { <div class="mt-3"><ErrorNote message/></div> })}
        <div class="mt-3 flex flex-wrap gap-2">
            {can_generate.then(|| view! {
                <a
                    data-testid="viewer-open-generate"
                    href=format!("/generate?from_output={id}")
                    class="btn-primary px-3 py-1.5 text-sm"
                >
                    "Open in Generate"
                </a>
            })}
            <a
                data-testid="viewer-download"
                href=download_url
                download=download_name
                rel="external"
                class="btn-secondary px-3 py-1.5 text-sm"
            >
                "Download"
            </a>
            <DeleteButton id name=name.clone() shelf/>
        </div>
        <dl class="mt-4 space-y-3 text-sm" data-testid="viewer-meta">
            {positive.map(|text| view! {
                <div>
                    <dt class="text-xs text-muted">"Prompt"</dt>
                    <dd data-testid="viewer-positive" class="whitespace-pre-wrap wrap-anywhere">{text}</dd>
                </div>
            })}
            {m.negative.clone().map(|text| view! {
                <div>
                    <dt class="text-xs text-muted">"Negative prompt"</dt>
                    <dd class="whitespace-pre-wrap wrap-anywhere">{text}</dd>
                </div>
            })}
            <div class="grid grid-cols-[auto_1fr] gap-x-3 gap-y-1">
                {settings
                    .into_iter()
                    .filter_map(|(label, value)| value.map(|v| (label, v)))
                    .map(|(label, value)| view! {
                        <dt class="text-xs leading-5 text-muted">{label}</dt>
                        <dd class="wrap-anywhere" data-testid=format!("viewer-{}", label.to_lowercase().replace(' ', "-"))>{value}</dd>
                    })
                    .collect_view()}
            </div>
            {m.note.clone().map(|note| view! { <p class="text-xs text-muted">{note}</p> })}
            {(meta.is_some() && !can_generate && item.kind == MediaKind::Image).then(|| view! {
                <p class="text-xs text-muted">"This image carries no ComfyUI workflow."</p>
            })}
        </dl>
        {workflow_json.map(|json| view! {
            <details class="mt-4 text-sm">
                <summary class="cursor-pointer text-muted">{format!("{workflow_label} JSON")}</summary>
                <pre class="mt-2 max-h-64 overflow-auto rounded-lg bg-surface-2 p-2 text-[11px] leading-4">{json}</pre>
            </details>
        })}
    }
}

/// Delete, with a confirmation that names the file.
#[component]
fn DeleteButton(id: i64, name: String, shelf: Shelf) -> impl IntoView {
    let asking = RwSignal::new(false);
    let write = Write::new();
    // The viewer moves on once the next item has loaded; until then the button stays as it
    // was while deleting.
    let deleted = RwSignal::new(false);
    let deleting = move || write.busy() || deleted.get();
    let confirm = move |_| {
        // Where to step on to (older, else newer, else close), chosen now: the live event of
        // the delete may take the item out of the list before the answer comes back.
        let next = shelf.items.with_untracked(|items| {
            let at = items.iter().position(|i| i.id == id)?;
            items
                .get(at + 1)
                .or_else(|| at.checked_sub(1).and_then(|p| items.get(p)))
                .map(|i| i.id)
        });
        write.run(delete_gallery_item(id), move |_| {
            deleted.try_set(true);
            shelf.forget(&[id]);
            shelf.select.run((next, true));
        });
    };
    let question = format!("Delete {name}? The file is removed from the volume.");
    view! {
        <Show
            when=move || asking.get()
            fallback=move || view! {
                <button type="button" data-testid="viewer-delete" class="btn-danger px-3 py-1.5 text-sm" on:click=move |_| asking.set(true)>
                    "Delete"
                </button>
            }
        >
            <div role="alertdialog" aria-label="Confirm delete" class="w-full rounded-lg border border-bad/40 bg-bad/10 p-3 text-sm">
                <p class="wrap-anywhere">{question.clone()}</p>
                <div class="mt-2 flex gap-2">
                    <button
                        type="button"
                        data-testid="viewer-delete-confirm"
                        class="btn-danger px-3 py-1.5 text-sm"
                        disabled=deleting
                        on:click=confirm
                    >
                        {move || if deleting() { "Deleting…" } else { "Delete file" }}
                    </button>
                    <button
                        type="button"
                        data-testid="viewer-delete-cancel"
                        class="btn-secondary px-3 py-1.5 text-sm"
                        on:click=move |_| asking.set(false)
                    >
                        "Cancel"
                    </button>
                </div>
            </div>
        </Show>
        {move || write.error().map(|message| view! { <div class="w-full"><ErrorNote message/></div> })}
    }
}
