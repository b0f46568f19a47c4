//! Worker tokens for administrators: create one (shown once, with a copy button and the
//! command that starts a worker with it), see which are live, revoke one.

use engine::model::*;
use leptos::prelude::*;

use crate::api::jobs::{create_worker_token, list_worker_tokens, revoke_worker_token};
use crate::browser::{copy_text, page_origin};
use crate::components::{badge, Card, Tone};

#[component]
pub fn WorkerTokens(initial: Vec<WorkerTokenInfo>) -> impl IntoView {
    let tokens = RwSignal::new(initial);
    let name = RwSignal::new(String::new());
    let created = RwSignal::new(None::<NewWorkerToken>);
    let copied = RwSignal::new(None::<Result<(), String>>);
    let error = RwSignal::new(None::<String>);

    let on_create = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let token_name = name.get_untracked().trim().to_string();
        leptos::task::spawn_local(async move {
            match create_worker_token(token_name).await {
                Ok(new_token) => {
                    created.set(Some(new_token));
                    if let Ok(list) = list_worker_tokens().await {
                        tokens.set(list);
                    }
                    copied.set(None);
                    name.set(String::new());
                    error.set(None);
                }
                Err(e) => error.set(Some(e.message)),
            }
        });
    };
    let revoke = move |token_name: String| {
        leptos::task::spawn_local(async move {
            match revoke_worker_token(token_name.clone()).await {
                Ok(()) => {
                    tokens.update(|list| {
                        for t in list.iter_mut().filter(|t| t.name == token_name) {
                            t.revoked = true;
                        }
                    });
                    error.set(None);
                }
                Err(e) => error.set(Some(e.message)),
            }
        });
    };

    view! {
        <div class="mt-6">
            <Card title="Worker tokens" testid="worker-tokens">
                <p class="mb-3 text-xs text-muted">
                    "A worker on another GPU pod sends its token with every call. A token is shown once, when created; a revoked one is refused at its next call."
                </p>
                <form class="flex flex-wrap gap-2" on:submit=on_create>
                    <input
                        data-testid="worker-token-name"
                        type="text"
                        maxlength="64"
                        placeholder="Worker name, e.g. gpu-1"
                        class="min-w-0 flex-1 rounded-lg border border-line bg-surface-2 px-3 py-2 text-sm text-fg"
                        prop:value=name
                        on:input=move |ev| name.set(event_target_value(&ev))
                    />
                    <button data-testid="worker-token-create" type="submit" class="btn-primary">"Create"</button>
                </form>
                {move || created.get().map(|c| {
                    let token = c.token.clone();
                    let copy = move |_| {
                        let token = token.clone();
                        leptos::task::spawn_local(async move {
                            copied.try_set(Some(copy_text(&token).await));
                        });
                    };
                    view! {
                        <div data-testid="worker-token-revealed" role="status" class="mt-3 rounded-lg border border-ok/40 bg-ok/10 p-3 text-sm">
                            <p class="mb-2 wrap-anywhere">{format!("The token for {}, shown only now:", c.name)}</p>
                            <div class="flex flex-wrap items-center gap-2">
                                <code data-testid="worker-token-value" class="min-w-0 flex-1 select-all break-all rounded bg-surface px-2 py-1.5 font-mono text-xs">{c.token.clone()}</code>
                                <button type="button" data-testid="worker-token-copy" class="btn-secondary shrink-0" on:click=copy>"Copy"</button>
                                <button type="button" class="btn-secondary shrink-0" on:click=move |_| created.set(None)>"Done"</button>
                            </div>
                            {move || copied.get().map(|outcome| match outcome {
                                Ok(()) => view! { <p class="mt-2 text-xs text-ok">"Copied."</p> }.into_any(),
                                Err(m) => view! { <p class="mt-2 text-xs text-warn">{m}</p> }.into_any(),
                            })}
                            <p class="mt-2 text-xs text-muted">"On the GPU pod, next to its ComfyUI:"</p>
                            <code class="mt-1 block break-all font-mono text-xs">
                                {format!("WORKER_TOKEN=… comfydeck worker --coordinator-url {} --comfyui-url http://127.0.0.1:3000 --name {}", page_origin(), c.name)}
                            </code>
                        </div>
                    }
                })}
                {move || error.get().map(|m| view! { <p data-testid="worker-token-error" class="mt-2 text-sm text-bad">{m}</p> })}
                <ul class="mt-3 divide-y divide-line text-sm" data-testid="worker-token-list">
                    <For each=move || tokens.get() key=|t| (t.name.clone(), t.revoked) let:token>
                        <li data-testid="worker-token" data-name=token.name.clone() class="flex items-center justify-between gap-3 py-2">
                            <div class="min-w-0">
                                <p class="truncate font-medium">{token.name.clone()}</p>
                                <p class="text-xs text-muted">{format!("created {}", format_utc(token.created_ms))}</p>
                            </div>
                            {if token.revoked {
                                view! { <span class=badge(Tone::Muted)>"revoked"</span> }.into_any()
                            } else {
                                let name = token.name.clone();
                                view! {
                                    <button type="button" data-testid="worker-token-revoke" class="btn-danger" on:click=move |_| revoke(name.clone())>"Revoke"</button>
                                }.into_any()
                            }}
                        </li>
                    </For>
                </ul>
            </Card>
        </div>
    }
}
