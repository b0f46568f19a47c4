//! Activity: the paged log of what happened, filterable by kind, with a clear button.
//! The filter and page live in the URL (`?kind=auth&page=2`), so views can be linked.

use engine::model::*;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_navigate, use_query_map};
use leptos_router::{lazy_route, LazyRoute};

use crate::api::{clear_activity, list_activity};
use crate::components::ErrorNote;
use crate::layout::Session;
use crate::live::Live;
use crate::server_calls::api_error_view;

/// The route: the page's code comes in a wasm chunk of its own, loaded when the route is
/// first shown (see `pages/mod.rs`).
pub struct ActivityRoute;

#[lazy_route]
impl LazyRoute for ActivityRoute {
    fn data() -> Self {
        Self
    }

    fn view(_this: Self) -> AnyView {
        view! { <ActivityPage/> }.into_any()
    }
}

#[component]
pub fn ActivityPage() -> impl IntoView {
    let query = use_query_map();
    let kind = Memo::new(move |_| query.read().get("kind").unwrap_or_default());
    let page = Memo::new(move |_| {
        query
            .read()
            .get("page")
            .and_then(|p| p.parse::<u32>().ok())
            .unwrap_or(1)
            .max(1)
    });
    let reload = RwSignal::new(0u32);
    let entries = Resource::new(
        move || (kind.get(), page.get(), reload.get()),
        |(kind, page, _)| list_activity(Some(kind), Some(page)),
    );
    let clear_error = RwSignal::new(None::<String>);
    let session = Session::get();

    // New activity arrives live: the first page shows it at once.
    let live = Live::get();
    Effect::new(move |previous: Option<()>| {
        let entry = live.activity.get();
        if previous.is_some() && entry.is_some() && page.get_untracked() == 1 {
            reload.update(|n| *n += 1);
        }
    });

    let navigate = use_navigate();
    let go = move |kind: String, page: u32| {
        let mut params = Vec::new();
        if !kind.is_empty() {
            params.push(format!("kind={kind}"));
        }
        if page > 1 {
            params.push(format!("page={page}"));
        }
        let url = if params.is_empty() {
            "/activity".to_string()
        } else {
            format!("/activity?{}", params.join("&"))
        };
        navigate(&url, Default::default());
    };
    let go_filter = go.clone();
    let on_filter = move |ev: leptos::ev::Event| go_filter(event_target_value(&ev), 1);

    let on_clear = move |_| {
        #[cfg(feature = "hydrate")]
        {
            let confirmed = web_sys::window()
                .and_then(|w| {
                    w.confirm_with_message("Clear the whole activity log? This cannot be undone.")
                        .ok()
                })
                .unwrap_or(false);
            if !confirmed {
                return;
            }
        }
        leptos::task::spawn_local(async move {
            match clear_activity().await {
                Ok(_) => {
                    clear_error.set(None);
                    reload.update(|n| *n += 1);
                }
                Err(e) => clear_error.set(Some(e.message)),
            }
        });
    };

    view! {
        <Title text="Activity · comfydeck"/>
        <div class="mb-4 flex flex-wrap items-center gap-3">
            <h1 class="mr-auto text-xl font-semibold">"Activity"</h1>
            <label class="flex items-center gap-2 text-sm">
                <span class="text-muted">"Show"</span>
                <select
                    data-testid="activity-filter"
                    class="rounded-lg border border-line bg-surface-2 px-3 py-2 text-fg"
                    on:change=on_filter
                    prop:value=move || kind.get()
                >
                    <option value="" selected=move || kind.get().is_empty()>"Everything"</option>
                    {ActivityKind::ALL.into_iter().map(|k| view! {
                        <option value=k.as_str() selected=move || kind.get() == k.as_str()>{k.label()}</option>
                    }).collect_view()}
                </select>
            </label>
            // Clearing the deck's log is an administrator's (a user sees only their own entries).
            <Transition fallback=|| ()>
                {move || Suspend::new(async move {
                    session.is_admin().await.then(|| view! {
                        <button data-testid="activity-clear" type="button" class="btn-danger" on:click=on_clear>"Clear log"</button>
                    })
                })}
            </Transition>
        </div>
        {move || clear_error.get().map(|m| view! { <ErrorNote message=m/> })}
        <Transition fallback=|| view! { <p class="text-muted">"Loading activity…"</p> }>
            {move || {
                let go = go.clone();
                Suspend::new(async move {
                    match entries.await {
                        Ok(page) => view! { <ActivityList page go/> }.into_any(),
                        Err(e) => api_error_view(e),
                    }
                })
            }}
        </Transition>
    }
}

#[component]
fn ActivityList<F>(page: ActivityPage, go: F) -> impl IntoView
where
    F: Fn(String, u32) + Clone + Send + Sync + 'static,
{
    if page.entries.is_empty() {
        return view! {
            <p data-testid="activity-empty" class="rounded-xl border border-line bg-surface p-6 text-center text-sm text-muted">
                {if page.page > 1 { "No entries on this page." } else { "No activity to show." }}
            </p>
        }
        .into_any();
    }
    let kind = use_query_map()
        .read_untracked()
        .get("kind")
        .unwrap_or_default();
    let pages = page.page_count();
    let current = page.page;
    let (kind_prev, kind_next) = (kind.clone(), kind);
    let (go_prev, go_next) = (go.clone(), go);
    view! {
        <ul data-testid="activity-list" class="divide-y divide-line rounded-xl border border-line bg-surface">
            {page.entries.into_iter().map(|entry| view! {
                <li data-testid="activity-entry" data-kind=entry.kind.as_str() class="flex flex-col gap-1 px-4 py-3 sm:flex-row sm:items-baseline sm:gap-4">
                    <span class=format!("w-20 shrink-0 text-xs font-medium uppercase tracking-wide {}", kind_colour(entry.kind))>
                        {entry.kind.label()}
                    </span>
                    <span class="flex-1 text-sm leading-snug">{entry.message}</span>
                    <time class="shrink-0 text-xs tabular-nums text-muted">{format_utc(entry.at_ms)}</time>
                </li>
            }).collect_view()}
        </ul>
        <nav class="mt-4 flex items-center justify-between text-sm" aria-label="Pages">
            <button type="button" class="btn-secondary" disabled={current <= 1} on:click=move |_| go_prev(kind_prev.clone(), current - 1)>
                "← Newer"
            </button>
            <span class="text-muted">
                {format!("Page {current} of {pages} · {} {}", page.total, if page.total == 1 { "entry" } else { "entries" })}
            </span>
            <button type="button" class="btn-secondary" disabled={current >= pages} on:click=move |_| go_next(kind_next.clone(), current + 1)>
                "Older →"
            </button>
        </nav>
    }
    .into_any()
}

fn kind_colour(kind: ActivityKind) -> &'static str {
    match kind {
        ActivityKind::Error => "text-bad",
        ActivityKind::Auth => "text-warn",
        ActivityKind::Settings => "text-accent",
        ActivityKind::System => "text-muted",
        ActivityKind::Download => "text-ok",
    }
}
