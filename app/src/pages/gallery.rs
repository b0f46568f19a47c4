//! Gallery: what ComfyUI wrote to its output folder, newest first, as a grid of server-made
//! thumbnails, with filters (kind, dates, words from the prompt or the file name) and a viewer
//! (previous / next by keys, buttons and swipes, the metadata of the file, download, delete
//! and "Open in Generate").
//!
//! The first page is server-rendered; filters fetch again in the browser and "Load more"
//! appends the next page (the server pages by cursor, so nothing is skipped when files
//! arrive meanwhile). A live gallery event fetches the first page again and merges it in.
//! The open item is in the URL (`/gallery?open=42`), so the back button closes the viewer.

mod viewer;

use engine::model::*;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_navigate, use_query_map};
use leptos_router::NavigateOptions;

use crate::api::gallery::list_gallery;
use crate::api::ApiError;
use crate::components::{ErrorNote, Icon, IconSvg};
use crate::live::Live;
use crate::server_calls::{api_error_view, error_message};

use viewer::Viewer;

/// Items per fetch: a few screens of thumbnails on a phone.
const PAGE_SIZE: u32 = 60;
/// How long typing pauses before the search runs.
const SEARCH_DELAY_MS: u64 = 300;

#[component]
pub fn GalleryPage() -> impl IntoView {
    let first = Resource::new(
        || (),
        |_| list_gallery(None, None, None, None, None, Some(PAGE_SIZE)),
    );
    view! {
        <Title text="Gallery · comfydeck"/>
        <Transition fallback=|| view! { <p class="text-muted">"Reading the gallery…"</p> }>
            {move || Suspend::new(async move {
                match first.await {
                    Ok(initial) => view! { <GalleryBody initial/> }.into_any(),
                    Err(e) => view! {
                        <h1 class="mb-4 text-xl font-semibold">"Gallery"</h1>
                        {api_error_view(e)}
                    }
                    .into_any(),
                }
            })}
        </Transition>
    }
}

/// What the filters ask for.
#[derive(Clone, Debug, Default, PartialEq)]
struct Filters {
    kind: Option<MediaKind>,
    text: String,
    /// `YYYY-MM-DD` from the date inputs (UTC days, like every date on the deck).
    from: String,
    to: String,
}

impl Filters {
    fn is_empty(&self) -> bool {
        self == &Filters::default()
    }
}

/// The page's state, shared by its parts.
#[derive(Clone, Copy)]
struct Shelf {
    items: RwSignal<Vec<GalleryItem>>,
    total: RwSignal<u64>,
    cursor: RwSignal<Option<String>>,
    indexing: RwSignal<bool>,
    /// The output folder indexed (shown when there is nothing yet, so a wrong one is obvious).
    folder: RwSignal<String>,
    filters: RwSignal<Filters>,
    loading: RwSignal<bool>,
    error: RwSignal<Option<String>>,
    /// Bumped by every fetch of the first page; an older answer arriving late is dropped.
    generation: StoredValue<u64>,
    /// The open item (from the URL).
    open: Memo<Option<i64>>,
    select: Callback<(Option<i64>, bool)>,
}

impl Shelf {
    /// Fetches the first page for the current filters. `merge` keeps the pages already loaded
    /// (a live change); otherwise the list is replaced (the filters changed).
    fn reload(self, merge: bool) {
        let Some(generation) = self.generation.try_update_value(|g| {
            *g += 1;
            *g
        }) else {
            return;
        };
        let filters = self.filters.get_untracked();
        if !merge {
            self.loading.set(true);
        }
        leptos::task::spawn_local(async move {
            let result = fetch(&filters, None).await;
            if self.generation.try_get_value() != Some(generation) {
                return;
            }
            self.loading.try_set(false);
            match result {
                Ok(page) => {
                    self.error.set(None);
                    self.total.set(page.total);
                    self.indexing.set(page.indexing);
                    self.folder.set(page.folder);
                    if merge && !self.items.with_untracked(Vec::is_empty) {
                        self.items.update(|items| merge_page(items, page.items));
                        // The cursor of the loaded pages stays: they continue where they were.
                        if self.cursor.with_untracked(Option::is_none)
                            && self.items.with_untracked(Vec::len) < page.total as usize
                        {
                            self.cursor.set(page.next_cursor);
                        }
                    } else {
                        self.items.set(page.items);
                        self.cursor.set(page.next_cursor);
                    }
                }
                Err(e) => self.fail(e),
            }
        });
    }

    /// Appends the next page; `then` runs after it arrived (the viewer steps on with it).
    fn load_more(self, then: Option<Callback<()>>) {
        let Some(cursor) = self.cursor.get_untracked() else {
            return;
        };
        if self.loading.get_untracked() {
            return;
        }
        self.loading.set(true);
        let generation = self.generation.get_value();
        let filters = self.filters.get_untracked();
        leptos::task::spawn_local(async move {
            let result = fetch(&filters, Some(cursor)).await;
            if self.generation.try_get_value() != Some(generation) {
                return;
            }
            self.loading.try_set(false);
            match result {
                Ok(page) => {
                    self.total.set(page.total);
                    self.items.update(|items| {
                        let known: std::collections::HashSet<i64> =
                            items.iter().map(|i| i.id).collect();
                        items.extend(page.items.into_iter().filter(|i| !known.contains(&i.id)));
                    });
                    self.cursor.set(page.next_cursor);
                    if let Some(then) = then {
                        then.run(());
                    }
                }
                Err(e) => self.fail(e),
            }
        });
    }

    fn fail(self, e: ApiError) {
        self.error.try_set(Some(format!(
            "Could not read the gallery: {}",
            error_message(e)
        )));
    }

    /// Takes an item out of the list (deleted here or elsewhere).
    fn forget(self, ids: &[i64]) {
        let before = self.items.with_untracked(Vec::len);
        self.items
            .update(|items| items.retain(|i| !ids.contains(&i.id)));
        let gone = before - self.items.with_untracked(Vec::len);
        self.total.update(|t| *t = t.saturating_sub(gone as u64));
    }
}

async fn fetch(filters: &Filters, cursor: Option<String>) -> Result<GalleryPage, ApiError> {
    let from_ms = utc_day_start_ms(&filters.from);
    // The "to" day is included: up to the start of the next day.
    let to_ms = utc_day_start_ms(&filters.to).map(|ms| ms + 86_400_000);
    let text = Some(filters.text.trim().to_string()).filter(|t| !t.is_empty());
    list_gallery(filters.kind, from_ms, to_ms, text, cursor, Some(PAGE_SIZE)).await
}

/// Lays a fresh first page over the loaded items: new ones come in, changed ones are
/// replaced, and the order stays newest first.
fn merge_page(items: &mut Vec<GalleryItem>, fresh: Vec<GalleryItem>) {
    for item in fresh {
        match items.iter_mut().find(|i| i.id == item.id) {
            Some(known) => *known = item,
            None => items.push(item),
        }
    }
    items.sort_by_key(|i| std::cmp::Reverse((i.modified_ms, i.id)));
}

#[component]
fn GalleryBody(initial: GalleryPage) -> impl IntoView {
    let query = use_query_map();
    let open = Memo::new(move |_| {
        query
            .with(|q| q.get("open"))
            .and_then(|id| id.parse::<i64>().ok())
    });
    let navigate = use_navigate();
    // (item, replace): stepping through items replaces the history entry, opening pushes one.
    let select = Callback::new(move |(id, replace): (Option<i64>, bool)| {
        let url = match id {
            Some(id) => format!("/gallery?open={id}"),
            None => "/gallery".to_string(),
        };
        navigate(
            &url,
            NavigateOptions {
                scroll: false,
                replace,
                ..Default::default()
            },
        );
    });
    let shelf = Shelf {
        items: RwSignal::new(initial.items),
        total: RwSignal::new(initial.total),
        cursor: RwSignal::new(initial.next_cursor),
        indexing: RwSignal::new(initial.indexing),
        folder: RwSignal::new(initial.folder),
        filters: RwSignal::new(Filters::default()),
        loading: RwSignal::new(false),
        error: RwSignal::new(None),
        generation: StoredValue::new(0),
        open,
        select,
    };

    let live = Live::get();
    Effect::watch(
        move || live.gallery.get(),
        move |change, _, _| {
            if let Some(change) = change {
                if !change.removed_ids.is_empty() {
                    shelf.forget(&change.removed_ids);
                }
                shelf.reload(true);
            }
        },
        false,
    );
    Effect::watch(
        move || shelf.filters.get(),
        move |_, _, _| shelf.reload(false),
        false,
    );

    view! {
        <div class="mb-3 flex flex-wrap items-baseline gap-x-3 gap-y-1">
            <h1 class="text-xl font-semibold">"Gallery"</h1>
            <p class="text-sm text-muted" data-testid="gallery-count">
                {move || {
                    let total = shelf.total.get();
                    let noun = if total == 1 { "output" } else { "outputs" };
                    let indexing = if shelf.indexing.get() { " · still indexing the folder…" } else { "" };
                    format!("{total} {noun}{indexing}")
                }}
            </p>
        </div>
        <FilterBar shelf/>
        {move || shelf.error.get().map(|message| view! { <div class="mb-3"><ErrorNote message/></div> })}
        <Grid shelf/>
        <Show when=move || shelf.open.with(Option::is_some)>
            <Viewer shelf/>
        </Show>
    }
}

#[component]
fn FilterBar(shelf: Shelf) -> impl IntoView {
    let kinds: [(Option<MediaKind>, &'static str, &'static str); 4] = [
        (None, "All", "gallery-kind-all"),
        (Some(MediaKind::Image), "Images", "gallery-kind-image"),
        (Some(MediaKind::Video), "Videos", "gallery-kind-video"),
        (Some(MediaKind::Audio), "Audio", "gallery-kind-audio"),
    ];
    let typed = RwSignal::new(String::new());
    let typing = StoredValue::new(0u64);
    let on_search = move |ev: leptos::ev::Event| {
        typed.set(event_target_value(&ev));
        let Some(mine) = typing.try_update_value(|n| {
            *n += 1;
            *n
        }) else {
            return;
        };
        set_timeout(
            move || {
                if typing.try_get_value() == Some(mine) {
                    let text = typed.get_untracked();
                    shelf.filters.update(|f| f.text = text);
                }
            },
            std::time::Duration::from_millis(SEARCH_DELAY_MS),
        );
    };
    let date_input = |label: &'static str, testid: &'static str, is_from: bool| {
        view! {
            <label class="flex min-w-0 flex-1 items-center gap-1.5 text-xs text-muted sm:flex-none">
                <span class="shrink-0">{label}</span>
                <input
                    type="date"
                    data-testid=testid
                    class="min-w-0 flex-1 rounded-lg border border-line bg-surface px-2 py-1.5 text-sm text-fg"
                    prop:value=move || shelf.filters.with(|f| if is_from { f.from.clone() } else { f.to.clone() })
                    on:change=move |ev| {
                        let value = event_target_value(&ev);
                        shelf.filters.update(|f| if is_from { f.from = value } else { f.to = value });
                    }
                />
            </label>
        }
    };
    view! {
        <div class="mb-3 flex flex-col gap-2 md:flex-row md:flex-wrap md:items-center">
            <div role="group" aria-label="Kind" class="flex shrink-0 rounded-lg border border-line bg-surface p-0.5">
                {kinds
                    .into_iter()
                    .map(|(kind, label, testid)| {
                        let active = move || shelf.filters.with(|f| f.kind == kind);
                        view! {
                            <button
                                type="button"
                                data-testid=testid
                                aria-pressed=move || active().to_string()
                                class=move || format!(
                                    "flex-1 rounded-md px-3 py-1 text-sm {}",
                                    if active() { "bg-surface-2 text-fg font-medium" } else { "text-muted hover:text-fg" },
                                )
                                on:click=move |_| shelf.filters.update(|f| f.kind = kind)
                            >
                                {label}
                            </button>
                        }
                    })
                    .collect_view()}
            </div>
            <input
                type="search"
                data-testid="gallery-search"
                placeholder="Search prompts, models, file names"
                aria-label="Search prompts, models and file names"
                class="min-w-0 flex-1 rounded-lg border border-line bg-surface px-3 py-1.5 text-sm text-fg placeholder:text-muted"
                prop:value=move || typed.get()
                on:input=on_search
            />
            <div class="flex min-w-0 items-center gap-2">
                {date_input("From", "gallery-from", true)}
                {date_input("To", "gallery-to", false)}
                <Show when=move || !shelf.filters.with(Filters::is_empty)>
                    <button
                        type="button"
                        data-testid="gallery-clear"
                        class="btn-secondary shrink-0 px-2 py-1 text-xs"
                        on:click=move |_| {
                            typed.set(String::new());
                            shelf.filters.set(Filters::default());
                        }
                    >
                        "Clear"
                    </button>
                </Show>
            </div>
        </div>
    }
}

#[component]
fn Grid(shelf: Shelf) -> impl IntoView {
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

fn kind_label(kind: MediaKind) -> &'static str {
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

    fn item(id: i64, modified_ms: i64) -> GalleryItem {
        GalleryItem {
            id,
            path: format!("{id}.png"),
            kind: MediaKind::Image,
            size_bytes: 1,
            modified_ms,
            width: None,
            height: None,
            positive: None,
            seed: None,
            model: None,
            has_workflow: false,
            prompt_id: None,
        }
    }

    #[test]
    fn a_fresh_first_page_merges_newest_first() {
        let mut items = vec![item(5, 500), item(4, 400), item(2, 200)];
        let mut changed = item(4, 450);
        changed.path = "changed.png".into();
        merge_page(&mut items, vec![item(6, 600), changed, item(5, 500)]);
        let ids: Vec<i64> = items.iter().map(|i| i.id).collect();
        assert_eq!(ids, [6, 5, 4, 2]);
        assert_eq!(items[2].path, "changed.png");
    }

    #[test]
    fn shorten_cuts_on_characters() {
        assert_eq!(shorten("héllo", 2), "hé…");
        assert_eq!(shorten("hi", 5), "hi");
    }
}
