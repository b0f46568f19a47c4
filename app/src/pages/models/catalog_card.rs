//! The catalog's own card (how many presets from which layer, the GPUs, "Reload catalog") and
//! the presets that could not be read.

use std::collections::BTreeMap;

use engine::model::*;
use leptos::prelude::*;

use super::shared::layer_label;
use super::state::Models;
use crate::api::sync_catalog;
use crate::components::{Card, ErrorNote};
use crate::server_calls::Write;

#[component]
pub(super) fn CatalogCard(m: Models) -> impl IntoView {
    let counts = Memo::new(move |_| {
        m.data.with(|d| {
            let mut by_layer: BTreeMap<String, usize> = BTreeMap::new();
            for p in &d.presets {
                *by_layer.entry(p.layer.clone()).or_default() += 1;
            }
            (d.presets.len(), by_layer)
        })
    });
    let gpus = Memo::new(move |_| m.data.with(|d| d.gpu_vram_bytes.clone()));
    let write = Write::new();
    // What the last reload found.
    let summary = RwSignal::new(None::<String>);
    let on_sync = move |_| {
        summary.set(None);
        write.run(
            async move {
                let outcome = sync_catalog().await;
                // The page shows what the server now has, whatever the answer was.
                m.refresh();
                outcome
            },
            move |found| {
                summary.try_set(Some(found));
            },
        );
    };
    view! {
        <Card title="Catalog" testid="catalog-card">
            <div class="flex items-start justify-between gap-3">
                <p class="text-2xl font-semibold tabular-nums">
                    {move || counts.with(|(n, _)| n.to_string())}
                    <span class="text-base font-normal text-muted">
                        {move || if counts.with(|(n, _)| *n == 1) { " preset" } else { " presets" }}
                    </span>
                </p>
                {m.admin.then(|| view! {
                    <button
                        type="button"
                        class="btn-secondary shrink-0"
                        data-testid="catalog-sync"
                        title="Re-reads the workspace presets and the remote registry, if one is set"
                        disabled=move || write.busy()
                        on:click=on_sync
                    >
                        {move || if write.busy() { "Reloading…" } else { "Reload catalog" }}
                    </button>
                })}
            </div>
            <p class="mt-1 text-xs text-muted">
                {move || counts.with(|(_, by_layer)| {
                    by_layer
                        .iter()
                        .map(|(layer, n)| format!("{n} {}", layer_label(layer)))
                        .collect::<Vec<_>>()
                        .join(" · ")
                })}
            </p>
            <p class="mt-1 text-xs text-muted" data-testid="gpu-summary">
                {move || gpus.with(|g| match g.as_slice() {
                    [] => "No GPU detected: whether a preset fits cannot be judged.".to_string(),
                    [one] => format!("GPU with {} of VRAM", format_bytes(*one)),
                    [largest, ..] => format!("{} GPUs, the largest with {} of VRAM", g.len(), format_bytes(*largest)),
                })}
            </p>
            {move || match write.error() {
                Some(message) => Some(view! { <div class="mt-2"><ErrorNote message/></div> }.into_any()),
                None => summary.get().map(|summary| view! {
                    <p data-testid="catalog-sync-result" class="mt-2 text-sm text-ok wrap-anywhere">{summary}</p>
                }.into_any()),
            }}
        </Card>
    }
    .into_any()
}

#[component]
pub(super) fn CatalogProblems(m: Models) -> impl IntoView {
    let problems = Memo::new(move |_| m.data.with(|d| d.catalog_problems.clone()));
    move || {
        let list = problems.get();
        (!list.is_empty()).then(|| {
            let n = list.len();
            view! {
                <details data-testid="catalog-problems" class="mb-4 rounded-xl border border-warn/40 bg-warn/10 px-4 py-3 text-sm">
                    <summary class="cursor-pointer font-medium text-warn">
                        {format!(
                            "{n} catalog problem{}: some presets could not be read",
                            if n == 1 { "" } else { "s" },
                        )}
                    </summary>
                    <ul class="mt-2 list-disc space-y-1 pl-5">
                        {list.into_iter().map(|p| view! { <li class="wrap-anywhere">{p}</li> }).collect_view()}
                    </ul>
                </details>
            }
        })
    }
}
