//! The wasm entry point: takes over the server-rendered page.

// Hydrating the whole app's view types nests deeper than rustc's default of 128.
#![recursion_limit = "256"]

#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
}
