//! What several parts show: the disclosure arrow and the name of a preset's catalog layer.

use leptos::prelude::*;

/// A disclosure arrow that turns when its `<details class="group">` opens.
#[component]
pub(super) fn Chevron() -> impl IntoView {
    view! {
        <svg
            class="h-4 w-4 shrink-0 transition-transform group-open:rotate-90"
            viewBox="0 0 24 24"
            fill="none"
            stroke="currentColor"
            stroke-width="2"
            stroke-linecap="round"
            stroke-linejoin="round"
            aria-hidden="true"
        >
            <path d="m9 6 6 6-6 6"/>
        </svg>
    }
}

/// Where a preset came from, as the cards say it ("built in", "from the workspace").
pub(super) fn layer_label(layer: &str) -> String {
    match layer {
        "builtin" => "built in".to_string(),
        "workspace" => "from the workspace".to_string(),
        "remote" => "from the registry".to_string(),
        other => format!("from {other}"),
    }
}
