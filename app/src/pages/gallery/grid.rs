//! The grid of thumbnails (a kind's icon where there is none) and "Load more".

use engine::model::*;
use leptos::prelude::*;

use super::shelf::{Filters, Shelf};
use crate::components::{Icon, IconSvg};

#[component]
pub(super) fn Grid(shelf: Shelf) -> impl IntoView {
    let empty = move || shelf.items.with(Vec::is_empty);
    view! {
        <Show
            when=move || !empty()
            fallback=move || view! {
                <div data-testid="gallery-empty" class="rounded-xl border border-dashed border-line px-4 py-10 text-center text-sm text-muted">
                    {move || if shelf.filters.with(Filters::is_empty) {
                        view! {
                            <p>"No outputs yet. Images, videos and audio that ComfyUI saves appear here as soon as they are written."</p>
                            <p class="mt-2 break-all text-xs">"Watching " <code data-testid="gallery-folder">{move || shelf.folder.get()}</code></p>
                        }.into_any()
                    } else {
                        "Nothing matches these filters.".into_any()
                    }}
                </div>
            }
        >
            <ul data-testid="gallery-grid" class="grid grid-cols-3 gap-1.5 sm:grid-cols-4 md:grid-cols-5 lg:grid-cols-6">
                <For
                    each=move || shelf.items.get()
                    key=|item| (item.id, item.modified_ms)
                    children=move |item| view! { <li><Tile item shelf/></li> }
                />
            </ul>
        </Show>
        <div class="mt-4 flex justify-center">
            <Show when=move || shelf.cursor.with(Option::is_some)>
                <button
                    type="button"
                    data-testid="gallery-more"
                    class="btn-secondary"
                    disabled=move || shelf.loading.get()
                    on:click=move |_| shelf.load_more(None)
                >
                    {move || {
                        let left = shelf.total.get().saturating_sub(shelf.items.with(Vec::len) as u64);
                        if shelf.loading.get() { "Loading…".to_string() } else { format!("Load more ({left} left)") }
                    }}
                </button>
            </Show>
        </div>
    }
}

#[component]
fn Tile(item: GalleryItem, shelf: Shelf) -> impl IntoView {
    let id = item.id;
    let name = item.name().to_string();
    let failed = RwSignal::new(false);
    let label = format!(
        "{} {}{}",
        kind_label(item.kind),
        name,
        item.positive
            .as_deref()
            .map(|p| format!(": {}", shorten(p, 80)))
            .unwrap_or_default()
    );
    let thumb = (item.kind == MediaKind::Image).then(|| item.thumb_url());
    let kind = item.kind;
    let tile_name = name.clone();
    view! {
        <button
            type="button"
            data-testid="gallery-item"
            data-kind=kind.as_str()
            data-path=item.path.clone()
            title=label.clone()
            aria-label=label
            class="group relative block aspect-square w-full overflow-hidden rounded-md bg-surface-2 focus-visible:outline-2 focus-visible:outline-accent"
            on:click=move |_| shelf.select.run((Some(id), false))
        >
            {move || match (&thumb, failed.get()) {
                (Some(src), false) => view! {
                    <img
                        src=src.clone()
                        alt=""
                        loading="lazy"
                        decoding="async"
                        class="h-full w-full object-cover transition-transform group-hover:scale-105"
                        on:error=move |_| failed.set(true)
                    />
                }
                .into_any(),
                _ => view! { <KindTile kind name=tile_name.clone()/> }.into_any(),
            }}
        </button>
    }
}

/// The tile of a file without a thumbnail: its kind's icon and its name.
#[component]
fn KindTile(kind: MediaKind, name: String) -> impl IntoView {
    let icon = match kind {
        MediaKind::Image => Icon::Gallery,
        MediaKind::Video => Icon::Video,
        MediaKind::Audio => Icon::Audio,
    };
    view! {
        <span class="flex h-full w-full flex-col items-center justify-center gap-1 p-1.5 text-muted">
            <IconSvg icon/>
            <span class="text-[10px] uppercase tracking-wide">{kind_label(kind)}</span>
            <span class="max-w-full truncate text-[11px] text-fg">{name}</span>
        </span>
    }
}

pub(super) fn kind_label(kind: MediaKind) -> &'static str {
    match kind {
        MediaKind::Image => "Image",
        MediaKind::Video => "Video",
        MediaKind::Audio => "Audio",
    }
}

/// At most `max` characters, with an ellipsis when cut.
fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shorten_cuts_on_characters() {
        assert_eq!(shorten("héllo", 2), "hé…");
        assert_eq!(shorten("hi", 5), "hi");
    }
}
