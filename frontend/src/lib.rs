//! The wasm entry point: takes over the server-rendered page.

// Hydrating the whole app's view types nests deeper than rustc's default of 128.
#![recursion_limit = "256"]

#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    // The routes are lazy (their code is in split wasm chunks): hydration waits for the chunk of
    // the route being shown, which `hydrate_body` cannot.
    leptos::mount::hydrate_lazy(app::App);
}
