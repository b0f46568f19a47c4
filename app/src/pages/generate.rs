//! Generate: workflow-first. Cards for every library workflow, ready ones apart from those that
//! need models (installable in one click, with the download size), searchable by title, tag and
//! node type with intent shortcuts. The chosen workflow opens as a form built from its graph
//! (prompts told apart by where they feed the sampler, seed, steps, CFG, sampler, scheduler,
//! size, denoise, image inputs), remembered per workflow; submitting follows the run live, and
//! the workflow's generations are listed under the form with "again".
//!
//! The chosen workflow is in the URL (`/generate?w=user:portrait.json`); `?from_output=<id>`
//! opens the workflow a gallery output was made with, its values filled in.

mod cards;
mod desk;
mod form;

use engine::model::*;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_navigate, use_query_map};
use leptos_router::NavigateOptions;
use leptos_router::{lazy_route, LazyRoute};

use crate::api::generate::*;
use crate::browser;
use crate::components::ErrorNote;
use crate::live::Live;
use crate::server_calls::{api_error_view, RefreshGate};

use cards::Cards;
use desk::Desk;
use form::FormPanel;

/// The route: the page's code comes in a wasm chunk of its own, loaded when the route is
/// first shown (see `pages/mod.rs`).
pub struct GenerateRoute;

#[lazy_route]
impl LazyRoute for GenerateRoute {
    fn data() -> Self {
        Self
    }

    fn view(_this: Self) -> AnyView {
        view! { <GeneratePage/> }.into_any()
    }
}

#[component]
pub fn GeneratePage() -> impl IntoView {
    let library = Resource::new(|| (), |_| get_generate_library());
    view! {
        <Title text="Generate · comfydeck"/>
        <Transition fallback=|| view! { <p class="text-muted">"Reading the workflow library…"</p> }>
            {move || Suspend::new(async move {
                match library.await {
                    Ok(initial) => view! { <GenerateBody initial/> }.into_any(),
                    Err(e) => view! {
                        <h1 class="mb-4 text-xl font-semibold">"Generate"</h1>
                        {api_error_view(e)}
                    }
                    .into_any(),
                }
            })}
        </Transition>
    }
    .into_any()
}

#[component]
fn GenerateBody(initial: GenerateLibrary) -> impl IntoView {
    let query = use_query_map();
    let selected = Memo::new(move |_| query.with(|q| q.get("w")).filter(|w| !w.is_empty()));
    let from_output = query.with_untracked(|q| q.get("from_output"));
    let navigate = use_navigate();
    let select = Callback::new(move |id: Option<String>| {
        let url = match &id {
            Some(id) => format!("/generate?w={}", encode_component(id)),
            None => "/generate".to_string(),
        };
        navigate(
            &url,
            NavigateOptions {
                scroll: false,
                ..Default::default()
            },
        );
        if id.is_some() {
            browser::reveal_run_panel();
        }
    });
    let desk = Desk {
        live: Live::get(),
        library: RwSignal::new(initial),
        refresh_gate: RefreshGate::new(),
        selected,
        select,
        prefill: RwSignal::new(None),
    };
    watch_installs(desk);
    let has_open = move || selected.with(Option::is_some);
    view! {
        <div class="mb-4 flex flex-wrap items-center gap-x-3 gap-y-2">
            <h1 class="mr-auto text-xl font-semibold">"Generate"</h1>
        </div>
        {move || desk.refresh_gate.error().map(|message| view! { <div class="mb-4"><ErrorNote message/></div> })}
        {from_output.map(|id| view! { <form::FromOutput id desk/> })}
        <div class=move || {
            if has_open() {
                "grid items-start gap-4 lg:grid-cols-[minmax(0,5fr)_minmax(0,7fr)]"
            } else {
                "grid gap-4"
            }
        }>
            // On phones the form comes first; on wide screens it sits beside the cards.
            <div class="min-w-0 lg:order-2">
                {move || selected.get().map(|id| view! { <FormPanel id desk/> })}
            </div>
            <div class="min-w-0 lg:order-1">
                <Cards desk/>
            </div>
        </div>
    }
    .into_any()
}

/// Reads the library again when a preset install finishes (models turn present).
fn watch_installs(desk: Desk) {
    let live = desk.live;
    Effect::new(
        move |previous: Option<std::collections::HashMap<String, InstallState>>| {
            let now: std::collections::HashMap<String, InstallState> = live
                .presets
                .with(|map| map.iter().map(|(id, p)| (id.clone(), p.state)).collect());
            if let Some(previous) = previous {
                if now
                    .iter()
                    .any(|(id, state)| state.is_installed() && previous.get(id) != Some(state))
                {
                    desk.refresh();
                }
            }
            now
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_encoded_for_the_url() {
        assert_eq!(
            encode_component("user:my flow/a.json"),
            "user%3Amy%20flow%2Fa.json"
        );
    }
}
