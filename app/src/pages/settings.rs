//! Settings: everyone's own account (password, theme, API tokens for scripts); for
//! administrators also the deck's service tokens (shown masked, never in full), activity
//! retention and the users.

mod account;
mod users;

use engine::model::*;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;
use leptos_router::{lazy_route, LazyRoute};

use crate::api::*;
use crate::browser::apply_theme;
use crate::components::Card;
use crate::server_calls::api_error_view;
use account::AccountCard;
use users::UsersSection;

/// One line of feedback after an action: what worked, or what failed and why.
#[derive(Clone, Debug, PartialEq)]
enum Feedback {
    Ok(String),
    Failed(String),
}

/// The route: the page's code comes in a wasm chunk of its own, loaded when the route is
/// first shown (see `pages/mod.rs`).
pub struct SettingsRoute;

#[lazy_route]
impl LazyRoute for SettingsRoute {
    fn data() -> Self {
        Self
    }

    fn view(_this: Self) -> AnyView {
        view! { <SettingsPage/> }.into_any()
    }
}

/// Where Settings was opened from to fix something (`?back=/recovery`: "Add a token in
/// Settings"), offered as the way back. Only the Recovery page: no link to elsewhere.
fn way_back(back: Option<String>) -> Option<&'static str> {
    (back.as_deref() == Some("/recovery")).then_some("/recovery")
}

#[component]
pub fn SettingsPage() -> impl IntoView {
    let data = Resource::new(|| (), |_| get_settings());
    let query = use_query_map();
    let back = move || way_back(query.with(|q| q.get("back")));
    view! {
        <Title text="Settings · comfydeck"/>
        {move || back().map(|href| view! {
            <a href=href data-testid="settings-back" class="mb-2 inline-block text-sm font-medium underline">
                "← Back to Recovery"
            </a>
        })}
        <h1 class="mb-4 text-xl font-semibold">"Settings"</h1>
        <Suspense fallback=|| view! { <p class="text-muted">"Loading settings…"</p> }>
            {move || Suspend::new(async move {
                match data.await {
                    Ok(data) => view! { <SettingsForms data/> }.into_any(),
                    Err(e) => api_error_view(e),
                }
            })}
        </Suspense>
    }
}

#[component]
fn SettingsForms(data: SettingsPageData) -> impl IntoView {
    let admin = data.me.role == Role::Admin;
    let settings = RwSignal::new(data.settings);
    let feedback = RwSignal::new(None::<Feedback>);

    // Every settings change goes through here: save, then show the outcome.
    let save = Action::new(move |patch: &SettingsPatch| {
        let patch = patch.clone();
        async move {
            match update_settings(patch).await {
                Ok(view) => {
                    settings.set(view);
                    feedback.set(Some(Feedback::Ok("Saved".into())));
                    true
                }
                Err(e) => {
                    feedback.set(Some(Feedback::Failed(e.message)));
                    false
                }
            }
        }
    });

    let me = data.me.clone();
    let pinned = data.admin_password_pinned;
    view! {
        <div class="grid gap-4 lg:grid-cols-2">
            <AccountCard me=data.me auth_mode=data.auth_mode admin_password_pinned=pinned/>
            <ThemeCard settings save/>
            <ApiTokensCard initial=data.api_tokens auth_mode=data.auth_mode/>
            // The deck's own settings: administrators only (the server refuses them to users).
            {admin.then(|| view! {
                <RetentionCard settings save feedback/>
                <TokenCard
                    title="Hugging Face token"
                    prefix="hf-token"
                    help="Used for gated models. Sent only to huggingface.co."
                    masked=Signal::derive(move || settings.get().hf_token_masked)
                    save
                    to_patch=|token| SettingsPatch { hf_token: Some(token), ..Default::default() }
                    validate=true
                />
                <TokenCard
                    title="CivitAI token"
                    prefix="civitai-token"
                    help="Used for CivitAI downloads. Sent only to civitai.com."
                    masked=Signal::derive(move || settings.get().civitai_token_masked)
                    save
                    to_patch=|token| SettingsPatch { civitai_token: Some(token), ..Default::default() }
                    validate=false
                />
            })}
        </div>
        {admin.then(|| view! {
            <div class="mt-4">
                <UsersSection me admin_password_pinned=pinned/>
            </div>
        })}
        <p data-testid="settings-status" aria-live="polite" class="mt-4 min-h-5 text-sm">
            {move || match feedback.get() {
                Some(Feedback::Ok(m)) => view! { <span class="text-ok">{m}</span> }.into_any(),
                Some(Feedback::Failed(m)) => view! { <span class="text-bad">{m}</span> }.into_any(),
                None => ().into_any(),
            }}
        </p>
    }
}

#[component]
fn ThemeCard(settings: RwSignal<SettingsView>, save: Action<SettingsPatch, bool>) -> impl IntoView {
    let on_change = move |ev: leptos::ev::Event| {
        if let Some(theme) = Theme::parse(&event_target_value(&ev)) {
            apply_theme(theme);
            save.dispatch(SettingsPatch {
                theme: Some(theme),
                ..Default::default()
            });
        }
    };
    view! {
        <Card title="Appearance">
            <label class="flex items-center justify-between gap-4 text-sm">
                <span>"Theme"</span>
                <select
                    data-testid="theme-select"
                    class="rounded-lg border border-line bg-surface-2 px-3 py-2 text-fg"
                    on:change=on_change
                    prop:value=move || settings.get().theme.as_str()
                >
                    {Theme::ALL.into_iter().map(|t| view! {
                        <option value=t.as_str() selected=move || settings.get().theme == t>{t.label()}</option>
                    }).collect_view()}
                </select>
            </label>
            <p class="mt-2 text-xs text-muted">"Yours alone: everyone picks their own. System follows your device's light or dark setting."</p>
        </Card>
    }
}

#[component]
fn RetentionCard(
    settings: RwSignal<SettingsView>,
    save: Action<SettingsPatch, bool>,
    feedback: RwSignal<Option<Feedback>>,
) -> impl IntoView {
    let days = RwSignal::new(settings.get_untracked().activity_retention_days.to_string());
    let on_submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        match days.get_untracked().trim().parse::<u32>() {
            Ok(d) => {
                save.dispatch(SettingsPatch { activity_retention_days: Some(d), ..Default::default() });
            }
            Err(_) => feedback.set(Some(Feedback::Failed(format!(
                "Activity retention must be a whole number of days from 1 to {MAX_ACTIVITY_RETENTION_DAYS}"
            )))),
        }
    };
    view! {
        <Card title="Activity retention">
            <form class="flex flex-wrap items-end gap-3" on:submit=on_submit>
                <label class="flex flex-col gap-1 text-sm">
                    <span>"Keep activity for (days)"</span>
                    <input
                        data-testid="retention-input"
                        type="number"
                        min="1"
                        max=MAX_ACTIVITY_RETENTION_DAYS.to_string()
                        inputmode="numeric"
                        class="w-32 rounded-lg border border-line bg-surface-2 px-3 py-2 text-fg"
                        prop:value=days
                        on:input=move |ev| days.set(event_target_value(&ev))
                    />
                </label>
                <button data-testid="retention-save" type="submit" class="btn-secondary">"Save"</button>
            </form>
            <p class="mt-2 text-xs text-muted">"Older entries are removed every hour."</p>
        </Card>
    }
}

#[component]
fn TokenCard(
    title: &'static str,
    prefix: &'static str,
    help: &'static str,
    masked: Signal<Option<String>>,
    save: Action<SettingsPatch, bool>,
    to_patch: fn(String) -> SettingsPatch,
    validate: bool,
) -> impl IntoView {
    let draft = RwSignal::new(String::new());
    let check = RwSignal::new(None::<HfTokenCheck>);
    let checking = RwSignal::new(false);
    let on_submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let token = draft.get_untracked();
        if token.trim().is_empty() {
            return;
        }
        check.set(None);
        save.dispatch(to_patch(token));
        draft.set(String::new());
    };
    let remove = move |_| {
        check.set(None);
        save.dispatch(to_patch(String::new()));
    };
    let run_check = move |_| {
        checking.set(true);
        leptos::task::spawn_local(async move {
            let result = validate_hf_token().await.unwrap_or_else(|e| HfTokenCheck {
                valid: false,
                user: None,
                message: e.message,
            });
            check.set(Some(result));
            checking.set(false);
        });
    };
    Effect::new(move |_| crate::browser::reveal_anchor(prefix));
    view! {
        // `#hf-token`, `#civitai-token`: where "Add a token" on Recovery lands.
        <Card title=title anchor=prefix>
            <p class="mb-3 flex items-center gap-2 text-sm">
                <span class="text-muted">"Saved:"</span>
                <code data-testid=format!("{prefix}-masked") class="rounded bg-surface-2 px-2 py-0.5 font-mono">
                    {move || masked.get().unwrap_or_else(|| "none".into())}
                </code>
            </p>
            <form class="flex flex-wrap gap-2" on:submit=on_submit>
                <input
                    data-testid=format!("{prefix}-input")
                    type="password"
                    autocomplete="off"
                    spellcheck="false"
                    placeholder=move || if masked.get().is_some() { "Paste a new token to replace it" } else { "Paste a token" }
                    class="min-w-0 flex-1 rounded-lg border border-line bg-surface-2 px-3 py-2 font-mono text-sm text-fg"
                    prop:value=draft
                    on:input=move |ev| draft.set(event_target_value(&ev))
                />
                <button data-testid=format!("{prefix}-save") type="submit" class="btn-primary">"Save"</button>
            </form>
            <div class="mt-3 flex flex-wrap items-center gap-2">
                <Show when=move || masked.get().is_some()>
                    <button type="button" class="btn-secondary" data-testid=format!("{prefix}-remove") on:click=remove>"Remove"</button>
                    {validate.then(|| view! {
                        <button
                            type="button"
                            class="btn-secondary"
                            data-testid=format!("{prefix}-validate")
                            on:click=run_check
                            disabled=move || checking.get()
                        >
                            {move || if checking.get() { "Checking…" } else { "Validate" }}
                        </button>
                    })}
                </Show>
            </div>
            {move || check.get().map(|c| view! {
                <p data-testid=format!("{prefix}-check") class=if c.valid { "mt-2 text-sm text-ok" } else { "mt-2 text-sm text-bad" }>
                    {c.message}
                </p>
            })}
            <p class="mt-2 text-xs text-muted">{help}</p>
        </Card>
    }
}

#[component]
fn ApiTokensCard(initial: Vec<ApiTokenInfo>, auth_mode: AuthMode) -> impl IntoView {
    let tokens = RwSignal::new(initial);
    let name = RwSignal::new(String::new());
    let created = RwSignal::new(None::<CreatedApiToken>);
    let error = RwSignal::new(None::<String>);

    let on_create = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let token_name = name.get_untracked();
        leptos::task::spawn_local(async move {
            match create_api_token(token_name).await {
                Ok(new_token) => {
                    tokens.update(|list| list.insert(0, new_token.info.clone()));
                    created.set(Some(new_token));
                    name.set(String::new());
                    error.set(None);
                }
                Err(e) => error.set(Some(e.message)),
            }
        });
    };
    let revoke = move |id: i64| {
        leptos::task::spawn_local(async move {
            match revoke_api_token(id).await {
                Ok(()) => {
                    tokens.update(|list| list.retain(|t| t.id != id));
                    error.set(None);
                }
                Err(e) => error.set(Some(e.message)),
            }
        });
    };

    view! {
        <Card title="Your API tokens">
            <p class="mb-3 text-xs text-muted">
                {if auth_mode.requires_login() {
                    "For scripts: send as \u{201c}Authorization: Bearer <token>\u{201d}. A token acts as you and is shown once, when created."
                } else {
                    "Logins are off because the dashboard only listens on this machine; tokens take effect once it listens on a network address."
                }}
            </p>
            <form class="flex flex-wrap gap-2" on:submit=on_create>
                <input
                    data-testid="api-token-name"
                    type="text"
                    maxlength="64"
                    placeholder="Name, e.g. provisioning script"
                    class="min-w-0 flex-1 rounded-lg border border-line bg-surface-2 px-3 py-2 text-sm text-fg"
                    prop:value=name
                    on:input=move |ev| name.set(event_target_value(&ev))
                />
                <button data-testid="api-token-create" type="submit" class="btn-primary">"Create"</button>
            </form>
            {move || created.get().map(|c| view! {
                <div class="mt-3 rounded-lg border border-ok/40 bg-ok/10 p-3 text-sm">
                    <p class="mb-1">{format!("Copy the token for \u{201c}{}\u{201d} now; it will not be shown again:", c.info.name)}</p>
                    <code data-testid="api-token-created" class="block break-all font-mono text-xs">{c.token}</code>
                </div>
            })}
            {move || error.get().map(|m| view! { <p class="mt-2 text-sm text-bad">{m}</p> })}
            <ul class="mt-3 divide-y divide-line text-sm" data-testid="api-token-list">
                <For each=move || tokens.get() key=|t| t.id let:token>
                    <li class="flex items-center justify-between gap-3 py-2">
                        <div class="min-w-0">
                            <p class="truncate font-medium">{token.name.clone()}</p>
                            <p class="text-xs text-muted">
                                <code class="font-mono">{token.hint.clone()}</code>
                                {format!(" · created {}", format_utc(token.created_ms))}
                                {token.last_used_ms.map(|t| format!(" · last used {}", format_utc(t)))}
                            </p>
                        </div>
                        <button type="button" class="btn-danger" on:click=move |_| revoke(token.id)>"Revoke"</button>
                    </li>
                </For>
            </ul>
        </Card>
    }
}
