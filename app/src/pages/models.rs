//! Models: the preset catalog (search and filters that live in the URL, so a reload or a link
//! keeps them), installs with live progress, and what the models folder holds.
//!
//! The overview is fetched once (server-rendered), then kept in a signal and fetched again after
//! every action, when a live event says a preset changed state or a file finished, and every few
//! seconds while downloads run and the live connection has fallen back to polling. Live download
//! events newer than the last fetch are laid over the fetched data, so progress moves in between.

mod catalog;
mod catalog_card;
mod disk;
mod filters;
mod folders;
mod preset_card;
mod progress;
mod shared;
mod state;

use std::collections::HashMap;
use std::time::Duration;

use engine::model::*;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::{lazy_route, LazyRoute};

use crate::api::get_models;
use crate::components::ErrorNote;
use crate::layout::Session;
use crate::live::{Connection, Live};
use crate::server_calls::{api_error_view, RefreshGate};
use catalog::Catalog;
use catalog_card::{CatalogCard, CatalogProblems};
use disk::SpaceCard;
use folders::InstalledModels;
use state::{Baseline, Models};

/// How often the overview is fetched while downloads run and WebSockets are unavailable.
const POLL_EVERY: Duration = Duration::from_secs(3);

/// The route: the page's code comes in a wasm chunk of its own, loaded when the route is
/// first shown (see `pages/mod.rs`).
pub struct ModelsRoute;

#[lazy_route]
impl LazyRoute for ModelsRoute {
    fn data() -> Self {
        Self
    }

    fn view(_this: Self) -> AnyView {
        view! { <ModelsPage/> }.into_any()
    }
}

#[component]
pub fn ModelsPage() -> impl IntoView {
    let live = Live::get();
    let session = Session::get();
    // Live events already received when the fetch starts are older than its answer.
    let baseline = StoredValue::new(Baseline::default());
    let overview = Resource::new(
        || (),
        move |_| {
            baseline.set_value(Baseline::take(live));
            get_models()
        },
    );
    view! {
        <Title text="Models · comfydeck"/>
        <h1 class="mb-4 text-xl font-semibold">"Models"</h1>
        <Transition fallback=|| view! { <p class="text-muted">"Reading the catalog and the models folder…"</p> }>
            {move || Suspend::new(async move {
                let admin = session.is_admin().await;
                match overview.await {
                    Ok(initial) => view! { <ModelsBody initial baseline=baseline.get_value() admin/> }.into_any(),
                    Err(e) => api_error_view(e),
                }
            })}
        </Transition>
    }
}

/// `admin`: whether the visitor may install, pause, cancel, remove and sync; a user sees the
/// same catalog and folders without those controls.
#[component]
fn ModelsBody(initial: ModelsOverview, baseline: Baseline, admin: bool) -> impl IntoView {
    let m = Models {
        live: Live::get(),
        admin,
        data: RwSignal::new(initial),
        baseline: RwSignal::new(baseline),
        refresh_gate: RefreshGate::new(),
    };
    watch_live(m);
    view! {
        {move || m.refresh_gate.error().map(|message| view! { <div class="mb-4"><ErrorNote message/></div> })}
        {(!admin).then(|| view! {
            <p data-testid="models-admin-only" class="mb-4 rounded-lg border border-line bg-surface-2 px-3 py-2 text-sm text-muted">
                "Only an administrator can install models. You can see the catalog and what is installed."
            </p>
        })}
        <div class="mb-4 grid gap-4 md:grid-cols-2">
            <SpaceCard m/>
            <CatalogCard m/>
        </div>
        <CatalogProblems m/>
        <Catalog m/>
        <InstalledModels m/>
    }
    .into_any()
}

/// Fetches the overview again when live events say something changed, when the live connection
/// comes back, and every few seconds while downloads run without a live connection.
fn watch_live(m: Models) {
    let live = m.live;
    Effect::new(move |previous: Option<HashMap<String, InstallState>>| {
        let now: HashMap<String, InstallState> = live
            .presets
            .with(|map| map.iter().map(|(id, p)| (id.clone(), p.state)).collect());
        if let Some(previous) = previous {
            let changed = now.iter().any(|(id, state)| match previous.get(id) {
                Some(before) => before != state,
                None => m.data.with_untracked(|d| {
                    d.presets
                        .iter()
                        .find(|p| &p.id == id)
                        .is_none_or(|p| p.state != *state)
                }),
            });
            if changed {
                m.refresh();
            }
        }
        now
    });
    // A finished file appears in the folder list and changes the free space.
    Effect::new(move |previous: Option<HashMap<i64, FileState>>| {
        let now: HashMap<i64, FileState> = live
            .downloads
            .with(|map| map.iter().map(|(id, f)| (*id, f.state)).collect());
        if let Some(previous) = previous {
            if now.iter().any(|(id, state)| {
                *state == FileState::Installed && previous.get(id) != Some(state)
            }) {
                m.refresh();
            }
        }
        now
    });
    // Events sent while the socket was down are lost: catch up when it is back.
    Effect::new(move |previous: Option<Connection>| {
        let now = live.connection.get();
        if previous.is_some_and(|p| p != Connection::Live) && now == Connection::Live {
            m.refresh();
        }
        now
    });
    Effect::new(move |_| {
        let handle = set_interval_with_handle(
            move || {
                let polling = live.connection.try_get_untracked() == Some(Connection::Polling);
                let active = m
                    .data
                    .try_with_untracked(|d| d.presets.iter().any(|p| p.state.is_active()))
                    .unwrap_or(false);
                if polling && active {
                    m.refresh();
                }
            },
            POLL_EVERY,
        )
        .ok();
        on_cleanup(move || {
            if let Some(handle) = handle {
                handle.clear();
            }
        });
    });
}
