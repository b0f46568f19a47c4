//! The models volume: free space, how full it is, and the reserve downloads keep.

use engine::model::*;
use leptos::prelude::*;

use super::state::Models;
use crate::components::{Card, Meter};

#[component]
pub(super) fn SpaceCard(m: Models) -> impl IntoView {
    let space = Memo::new(move |_| m.data.with(|d| d.space.clone()));
    let known = move || space.with(|s| s.total_bytes > 0);
    let percent = Signal::derive(move || space.with(|s| percent_of(s.used_bytes, s.total_bytes)));
    view! {
        <Card title="Models volume" testid="space-card">
            <p class="mb-2 text-2xl font-semibold tabular-nums" data-testid="space-free">
                {move || if known() { format_bytes(space.with(|s| s.free_bytes)) } else { "unknown".to_string() }}
                <span class="text-base font-normal text-muted">" free"</span>
            </p>
            <div data-testid="space-meter">
                <Meter percent label="Models volume used"/>
            </div>
            <p class="mt-2 text-xs text-muted tabular-nums">
                {move || {
                    let s = space.get();
                    if known() {
                        format!("{} used of {}", format_bytes(s.used_bytes), format_bytes(s.total_bytes))
                    } else {
                        "Volume size unknown".to_string()
                    }
                }}
            </p>
            <p class="mt-1 text-xs text-muted" data-testid="space-reserve">
                {move || {
                    let s = space.get();
                    format!(
                        "Downloads keep {} free as a reserve, so {} can take new models.",
                        format_bytes(s.reserve_bytes),
                        format_bytes(s.usable_bytes()),
                    )
                }}
            </p>
        </Card>
    }
    .into_any()
}
