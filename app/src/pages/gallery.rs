//! Gallery: what ComfyUI wrote to its output folder, newest first, as a grid of server-made
//! thumbnails, with filters (kind, dates, words from the prompt or the file name) and a viewer
//! (previous / next by keys, buttons and swipes, the metadata of the file, download, delete
//! and "Open in Generate").
//!
//! The first page is server-rendered; filters fetch again in the browser and "Load more"
//! appends the next page (the server pages by cursor, so nothing is skipped when files
//! arrive meanwhile). A live gallery event fetches the first page again and merges it in.
//! The open item is in the URL (`/gallery?open=42`), so the back button closes the viewer.

mod grid;
mod shelf;
mod viewer;

use engine::model::*;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_navigate, use_query_map};
use leptos_router::NavigateOptions;
use leptos_router::{lazy_route, LazyRoute};

use crate::api::gallery::list_gallery;
use crate::api::users::list_users;
use crate::components::ErrorNote;
use crate::layout::Session;
use crate::live::Live;
use crate::server_calls::api_error_view;
use grid::Grid;
use shelf::{Filters, Shelf, PAGE_SIZE};
use viewer::Viewer;

/// How long typing pauses before the search runs.
const SEARCH_DELAY_MS: u64 = 300;

/// The route: the page's code comes in a wasm chunk of its own, loaded when the route is
/// first shown (see `pages/mod.rs`).
pub struct GalleryRoute;

#[lazy_route]
impl LazyRoute for GalleryRoute {
    fn data() -> Self {
        Self
    }

    fn view(_this: Self) -> AnyView {
        view! { <GalleryPage/> }.into_any()
    }
}

#[component]
pub fn GalleryPage() -> impl IntoView {
    let first = Resource::new(
        || (),
        |_| list_gallery(None, None, None, None, None, Some(PAGE_SIZE), None),
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

/// Administrators see everyone's outputs and may keep to one person's; users see only their
/// own, so they get no filter.
#[component]
fn OwnerFilter(shelf: Shelf) -> impl IntoView {
    let session = Session::get();
    view! {
        <Transition fallback=|| ()>
            {move || Suspend::new(async move {
                if !session.is_admin().await {
                    return None;
                }
                let users = list_users().await.unwrap_or_default();
                // One person's deck has nothing to filter by.
                (users.len() > 1).then(|| view! {
                    <label class="flex min-w-0 items-center gap-1.5 text-xs text-muted">
                        <span class="shrink-0">"Owner"</span>
                        <select
                            data-testid="gallery-owner"
                            class="min-w-0 flex-1 rounded-lg border border-line bg-surface px-2 py-1.5 text-sm text-fg md:flex-none"
                            prop:value=move || shelf.filters.with(|f| f.owner.clone())
                            on:change=move |ev| {
                                let owner = event_target_value(&ev);
                                shelf.filters.update(|f| f.owner = owner);
                            }
                        >
                            <option value="">"Everyone"</option>
                            {users.into_iter().map(|u| {
                                let name = u.username.clone();
                                view! { <option value=name.clone()>{name.clone()}</option> }
                            }).collect_view()}
                        </select>
                    </label>
                })
            })}
        </Transition>
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
            <OwnerFilter shelf/>
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
