//! The comfydeck binary's web layer: the axum router (pages, server functions, `/health`,
//! `/ws`, login), the auth middleware and the embedded site assets. Handlers stay thin: they
//! translate HTTP to engine calls and back.

#![recursion_limit = "256"]

pub mod assets;
pub mod auth;
pub mod cli;
pub mod comfy_files;
pub mod commands;
pub mod error;
pub mod gallery_files;
pub mod logging;
pub mod memory;
pub mod proxy;
pub mod workers;
pub mod ws;

use std::sync::Arc;

use app::{shell, App};
use axum::extract::{FromRef, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{middleware, Json, Router};
use engine::{model, Engine};
use leptos::config::LeptosOptions;
use leptos::prelude::provide_context;
use leptos_axum::{generate_route_list, LeptosRoutes};
use tower_http::compression::predicate::{DefaultPredicate, NotForContentType, Predicate};
use tower_http::compression::CompressionLayer;
use tower_http::set_header::SetResponseHeaderLayer;

/// Largest request body: a 64 MiB workflow file, base64-encoded, with room to spare.
pub const MAX_REQUEST_BYTES: usize = 100 * 1024 * 1024;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<Engine>,
    pub leptos: LeptosOptions,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos.clone()
    }
}

/// Routes written by hand here (everything else comes from the Leptos app: its pages and
/// server functions). The route-inventory test walks this list too.
pub const HAND_WRITTEN_ROUTES: &[(Method, &str)] = &[
    (Method::GET, "/health"),
    (Method::GET, "/ws"),
    (Method::POST, auth::LOGIN_PATH),
    (Method::POST, auth::LOGOUT_PATH),
    (Method::GET, model::COMFY_VIEW_ROUTE),
    (Method::GET, model::COMFY_PREVIEW_ROUTE),
    (Method::GET, model::GALLERY_FILE_ROUTE),
    (Method::GET, model::GALLERY_THUMB_ROUTE),
    (Method::GET, "/comfyui"),
    (Method::GET, "/comfyui/"),
    (Method::GET, "/comfyui/{*rest}"),
    (Method::POST, "/comfyui/{*rest}"),
];

/// Every route the router answers: hand-written ones, the app's pages and its server
/// functions. Used by tests to prove that each one is guarded.
pub fn route_inventory() -> Vec<(Method, String)> {
    let mut routes: Vec<(Method, String)> = HAND_WRITTEN_ROUTES
        .iter()
        .chain(workers::ROUTES)
        .map(|(m, p)| (m.clone(), p.to_string()))
        .collect();
    for listing in generate_route_list(App) {
        routes.push((Method::GET, listing.path().to_string()));
    }
    for (path, method) in server_fn::axum::server_fn_paths() {
        routes.push((method, path.to_string()));
    }
    routes
}

/// Leptos options for the embedded site (no `Leptos.toml` needed beside the binary; `LEPTOS_*`
/// environment variables still override).
pub fn leptos_options() -> LeptosOptions {
    leptos::config::get_config_from_str(include_str!("../../Leptos.toml"))
        .unwrap_or_else(|e| panic!("the embedded Leptos.toml is invalid: {e}"))
}

pub fn router(state: AppState) -> Router {
    let engine = Arc::clone(&state.engine);
    let split = assets::split_manifest(&state.leptos.site_pkg_dir);
    let context = move || {
        provide_context(Arc::clone(&engine));
        if let Some(split) = split.clone() {
            provide_context(split);
        }
    };
    let shell_options = state.leptos.clone();
    let app_shell = move || shell(shell_options.clone());

    Router::new()
        .route("/health", get(health))
        .route("/ws", get(ws::upgrade))
        .route(auth::LOGIN_PATH, post(auth::login))
        .route(auth::LOGOUT_PATH, post(auth::logout))
        .route(model::COMFY_VIEW_ROUTE, get(comfy_files::view))
        .route(model::COMFY_PREVIEW_ROUTE, get(comfy_files::preview))
        .route(model::GALLERY_FILE_ROUTE, get(gallery_files::original))
        .route(model::GALLERY_THUMB_ROUTE, get(gallery_files::thumbnail))
        .route(proxy::PREFIX, get(proxy::redirect_to_slash))
        .route("/comfyui/", any(proxy::forward))
        .route("/comfyui/{*rest}", any(proxy::forward))
        .merge(workers::routes())
        .leptos_routes_with_context(
            &state,
            generate_route_list(App),
            context.clone(),
            app_shell.clone(),
        )
        .fallback(move |state: State<AppState>, request: Request| {
            fallback(state, request, context.clone(), app_shell.clone())
        })
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_auth,
        ))
        // Imported workflow images travel base64-encoded in JSON; 2 MB (axum's default) is
        // too small for a PNG with a large workflow. Only signed-in requests get this far.
        .layer(axum::extract::DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        // Videos and audio are already compressed, and a compressed body loses
        // `Accept-Ranges` (browsers could not seek).
        .layer(
            CompressionLayer::new().compress_when(
                DefaultPredicate::new()
                    .and(NotForContentType::const_new("video/"))
                    .and(NotForContentType::const_new("audio/")),
            ),
        )
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ))
        .with_state(state)
}

/// `GET /health`: 200 while the dashboard's own parts work (ComfyUI is only reported).
async fn health(State(state): State<AppState>) -> Response {
    let report = state.engine.status().health().await;
    let status = if report.status == "ok" {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut response = (status, Json(report)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Static files first; anything else is rendered by the app (its not-found page, with 404).
async fn fallback<C, S, V>(
    State(_): State<AppState>,
    request: Request,
    context: C,
    app_shell: S,
) -> Response
where
    C: Fn() + Clone + Send + Sync + 'static,
    S: Fn() -> V + Clone + Send + Sync + 'static,
    V: leptos::IntoView + 'static,
{
    if request.method() == Method::GET || request.method() == Method::HEAD {
        if let Some(response) = assets::serve(request.uri().path(), request.headers()) {
            return response;
        }
    }
    let handler = leptos_axum::render_app_to_stream_with_context(context, app_shell);
    handler(request).await.into_response()
}
