//! What the models folder holds, folder by folder: each file's size, whether comfydeck verified
//! it, and the preset it came from.

use engine::model::*;
use leptos::prelude::*;

use super::shared::Chevron;
use super::state::Models;
use crate::components::{badge, Tone};

#[component]
pub(super) fn InstalledModels(m: Models) -> impl IntoView {
    let folders = Memo::new(move |_| m.data.with(|d| d.folders.clone()));
    let summary = move || {
        folders.with(|list| {
            let files: usize = list.iter().map(|f| f.files.len()).sum();
            let bytes: u64 = list.iter().map(|f| f.bytes).sum();
            format!(
                "{files} file{} · {} in {} folder{}",
                if files == 1 { "" } else { "s" },
                format_bytes(bytes),
                list.len(),
                if list.len() == 1 { "" } else { "s" },
            )
        })
    };
    view! {
        <section data-testid="installed-models" class="mt-8">
            <div class="mb-3 flex flex-wrap items-baseline justify-between gap-2">
                <h2 class="text-lg font-semibold">"Installed models"</h2>
                <p class="text-sm text-muted tabular-nums">{summary}</p>
            </div>
            <Show
                when=move || !folders.with(Vec::is_empty)
                fallback=|| view! {
                    <p data-testid="models-folder-empty" class="rounded-xl border border-line bg-surface p-6 text-center text-sm text-muted">
                        "The models folder has no model files yet."
                    </p>
                }
            >
                <div class="space-y-2">
                    <For each=move || folders.get() key=|f| f.name.clone() let:folder>
                        <FolderRow initial=folder folders/>
                    </For>
                </div>
            </Show>
        </section>
    }
    .into_any()
}

#[component]
fn FolderRow(initial: ModelFolderView, folders: Memo<Vec<ModelFolderView>>) -> impl IntoView {
    let name = initial.name.clone();
    let folder = {
        let name = name.clone();
        Memo::new(move |previous: Option<&ModelFolderView>| {
            folders
                .with(|list| list.iter().find(|f| f.name == name).cloned())
                .or_else(|| previous.cloned())
                .unwrap_or_else(|| initial.clone())
        })
    };
    view! {
        <details data-testid="model-folder" data-folder=name.clone() class="group rounded-xl border border-line bg-surface">
            <summary class="flex cursor-pointer list-none items-center gap-2 px-4 py-3 [&::-webkit-details-marker]:hidden">
                <Chevron/>
                <span class="min-w-0 break-all font-mono text-sm font-medium">{name.clone()}</span>
                <span class="ml-auto shrink-0 text-xs text-muted tabular-nums">
                    {move || folder.with(|f| format!(
                        "{} file{} · {}",
                        f.files.len(),
                        if f.files.len() == 1 { "" } else { "s" },
                        format_bytes(f.bytes),
                    ))}
                </span>
            </summary>
            <ul class="divide-y divide-line border-t border-line">
                <For
                    each=move || folder.with(|f| f.files.clone())
                    key=|f| (f.path.clone(), f.bytes, f.verified, f.preset_id.clone())
                    let:file
                >
                    <li data-testid="model-file" data-path=file.path.clone() class="flex flex-col gap-1 px-4 py-2 sm:flex-row sm:items-center sm:gap-3">
                        <code class="min-w-0 flex-1 break-all font-mono text-xs">{file.path.clone()}</code>
                        <div class="flex shrink-0 flex-wrap items-center gap-2 text-xs">
                            <span class="tabular-nums text-muted">{format_bytes(file.bytes)}</span>
                            {if file.verified {
                                view! {
                                    <span data-testid="model-file-verified" class=badge(Tone::Ok) title="Checked when comfydeck downloaded it">"verified"</span>
                                }.into_any()
                            } else {
                                view! {
                                    <span class="text-muted" title="Not downloaded by comfydeck, or changed since">"not verified"</span>
                                }.into_any()
                            }}
                            {match file.preset_id.clone() {
                                Some(id) => {
                                    let href = format!("/models?q={}", encode_component(&id));
                                    view! {
                                    <a
                                        href=href
                                        class="font-mono text-accent hover:underline break-all"
                                        title="Show this preset"
                                    >
                                        {id}
                                    </a>
                                    }.into_any()
                                }
                                None => view! { <span class="text-muted">"not from a preset"</span> }.into_any(),
                            }}
                        </div>
                    </li>
                </For>
            </ul>
        </details>
    }
    .into_any()
}
