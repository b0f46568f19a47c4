//! comfydeck's UI: the HTML shell, the routes and the pages. Server functions in [`api`] are
//! the JSON API the pages (and scripts) use.

pub mod api;
pub mod browser;
pub mod components;
pub mod layout;
pub mod live;
pub mod pages;
pub mod server_calls;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Title};
use leptos_router::components::{ParentRoute, Route, Router, Routes};
use leptos_router::{path, Lazy};

use crate::layout::Layout;
use crate::pages::gallery::GalleryRoute;
use crate::pages::generate::GenerateRoute;
use crate::pages::{
    activity::ActivityRoute, home::HomeRoute, login::LoginRoute, models::ModelsRoute,
    queue::QueueRoute, recovery::RecoveryRoute, settings::SettingsRoute, workflows::WorkflowsRoute,
};

/// The document around the app. Rendered on the server only: the saved theme is written into
/// `<html data-theme>` here, so the first paint already has the right colours (no flash).
pub fn shell(options: LeptosOptions) -> impl IntoView {
    let theme = server_theme();
    view! {
        <!DOCTYPE html>
        <html lang="en" data-theme=theme.as_str()>
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1, viewport-fit=cover"/>
                <meta name="color-scheme" content="light dark"/>
                <link rel="icon" href="/favicon.svg" type="image/svg+xml"/>
                <link rel="manifest" href="/manifest.webmanifest"/>
                <link rel="stylesheet" id="leptos" href="/pkg/comfydeck.css"/>
                <AutoReload options=options.clone()/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body class="min-h-dvh bg-bg text-fg antialiased">
                <App/>
            </body>
        </html>
    }
}

/// The visitor's own theme, else the deck's.
#[cfg(feature = "ssr")]
fn server_theme() -> engine::model::Theme {
    let own = use_context::<http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<engine::model::Caller>()?.theme);
    own.or_else(|| use_context::<std::sync::Arc<engine::Engine>>().map(|e| e.settings().theme()))
        .unwrap_or_default()
}

#[cfg(not(feature = "ssr"))]
fn server_theme() -> engine::model::Theme {
    engine::model::Theme::default()
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    // Tests and people can tell a hydrated page from a server-rendered one.
    Effect::new(|_| {
        #[cfg(feature = "hydrate")]
        if let Some(root) = web_sys::window()
            .and_then(|w| w.document())
            .and_then(|d| d.document_element())
        {
            let _ = root.set_attribute("data-hydrated", "true");
        }
    });
    view! {
        <Title text="comfydeck"/>
        <Router>
            <Routes fallback=NotFound>
                // Each page is a lazy route: its code is a wasm chunk of its own (built with
                // `cargo leptos build --split`), fetched when the route is first shown. The shell,
                // the router, the layout (header, navigation, live badge) and the fallback stay
                // in the main module.
                <Route path=path!("/login") view={Lazy::<LoginRoute>::new()}/>
                <ParentRoute path=path!("") view=Layout>
                    <Route path=path!("") view={Lazy::<HomeRoute>::new()}/>
                    <Route path=path!("generate") view={Lazy::<GenerateRoute>::new()}/>
                    <Route path=path!("models") view={Lazy::<ModelsRoute>::new()}/>
                    <Route path=path!("workflows") view={Lazy::<WorkflowsRoute>::new()}/>
                    <Route path=path!("gallery") view={Lazy::<GalleryRoute>::new()}/>
                    <Route path=path!("settings") view={Lazy::<SettingsRoute>::new()}/>
                    <Route path=path!("activity") view={Lazy::<ActivityRoute>::new()}/>
                    <Route path=path!("queue") view={Lazy::<QueueRoute>::new()}/>
                    <Route path=path!("recovery") view={Lazy::<RecoveryRoute>::new()}/>
                </ParentRoute>
            </Routes>
        </Router>
    }
}

#[component]
fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(options) = use_context::<leptos_axum::ResponseOptions>() {
        options.set_status(http::StatusCode::NOT_FOUND);
    }
    view! {
        <Title text="Not found · comfydeck"/>
        <main class="mx-auto max-w-md px-4 py-16 text-center">
            <h1 class="mb-2 text-xl font-semibold">"Page not found"</h1>
            <p class="mb-6 text-muted">"There is nothing at this address."</p>
            <a href="/" class="btn-primary">"Go to Home"</a>
        </main>
    }
}
