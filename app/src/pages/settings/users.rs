//! The Users section (administrators): everyone on the deck, adding people, roles, password
//! resets, disabling and removing.

use engine::model::*;
use leptos::prelude::*;

use super::account::capitalize;
use crate::api::users::*;
use crate::browser::copy_text;
use crate::components::{badge, Card, Tone};
use crate::server_calls::{api_error_view, Write};

/// A password the server just made or set: shown once, with a copy button.
#[derive(Clone, Debug, PartialEq)]
struct Revealed {
    username: String,
    password: String,
    /// Added (`true`) or reset.
    added: bool,
}

#[component]
pub(super) fn UsersSection(me: UserInfo, admin_password_pinned: bool) -> impl IntoView {
    let users = Resource::new(|| (), |_| list_users());
    view! {
        <Card title="Users" testid="users-card">
            <Suspense fallback=|| view! { <p class="text-sm text-muted">"Loading the users…"</p> }>
                {move || {
                    let me = me.clone();
                    Suspend::new(async move {
                        match users.await {
                            Ok(initial) => view! { <UsersBody initial me admin_password_pinned/> }.into_any(),
                            Err(e) => api_error_view(e),
                        }
                    })
                }}
            </Suspense>
        </Card>
    }
}

#[component]
fn UsersBody(initial: Vec<UserInfo>, me: UserInfo, admin_password_pinned: bool) -> impl IntoView {
    let users = RwSignal::new(initial);
    let revealed = RwSignal::new(None::<Revealed>);
    let me_id = me.id;
    view! {
        <AddUserForm users revealed/>
        {move || revealed.get().map(|r| view! { <RevealedPassword r revealed/> })}
        <ul data-testid="user-list" class="mt-4 divide-y divide-line border-t border-line">
            <For each=move || users.get() key=|u| u.id let:user>
                <UserRow initial=user users revealed me_id admin_password_pinned/>
            </For>
        </ul>
        <p class="mt-3 text-xs text-muted">
            "A new password or disabling ends the user's sessions; a disabled user's API tokens stop working until enabled again. The \u{201c}admin\u{201d} account cannot be removed, disabled or made a user."
        </p>
    }
}

#[component]
fn AddUserForm(
    users: RwSignal<Vec<UserInfo>>,
    revealed: RwSignal<Option<Revealed>>,
) -> impl IntoView {
    let username = RwSignal::new(String::new());
    let role = RwSignal::new(Role::User);
    let password = RwSignal::new(String::new());
    let write = Write::new();
    let on_submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let name = match normalize_username(&username.get_untracked()) {
            Ok(name) => name,
            Err(why) => return write.set_error(Some(capitalize(&why))),
        };
        let chosen = password.get_untracked();
        if !chosen.is_empty() {
            if let Err(why) = check_new_password(&chosen) {
                return write.set_error(Some(capitalize(&why)));
            }
        }
        revealed.set(None);
        write.run(
            add_user(
                name,
                role.get_untracked(),
                (!chosen.is_empty()).then_some(chosen),
            ),
            move |added| {
                users.update(|list| list.push(added.user.clone()));
                revealed.set(Some(Revealed {
                    username: added.user.username,
                    password: added.password,
                    added: true,
                }));
                username.set(String::new());
                password.set(String::new());
                role.set(Role::User);
            },
        );
    };
    let field =
        "w-full min-w-0 rounded-lg border border-line bg-surface-2 px-3 py-2 text-sm text-fg";
    view! {
        <form data-testid="user-add-form" class="grid gap-3 sm:grid-cols-[minmax(0,1fr)_auto_minmax(0,1fr)_auto] sm:items-end" on:submit=on_submit>
            <label class="block text-sm">
                <span class="mb-1 block">"Username"</span>
                <input
                    data-testid="user-add-name"
                    type="text"
                    required
                    maxlength=MAX_USERNAME_CHARS.to_string()
                    autocomplete="off"
                    autocapitalize="none"
                    spellcheck="false"
                    placeholder="e.g. alice"
                    class=field
                    prop:value=username
                    on:input=move |ev| username.set(event_target_value(&ev))
                />
            </label>
            <label class="block text-sm">
                <span class="mb-1 block">"Role"</span>
                <select
                    data-testid="user-add-role"
                    class="w-full rounded-lg border border-line bg-surface-2 px-3 py-2 text-sm text-fg"
                    prop:value=move || role.get().as_str()
                    on:change=move |ev| if let Some(r) = Role::parse(&event_target_value(&ev)) { role.set(r) }
                >
                    {Role::VARIANTS.iter().rev().map(|r| view! {
                        <option value=r.as_str() selected=move || role.get() == *r>{r.label()}</option>
                    }).collect_view()}
                </select>
            </label>
            <label class="block text-sm">
                <span class="mb-1 block">"Password " <span class="text-muted">"(optional)"</span></span>
                <input
                    data-testid="user-add-password"
                    type="password"
                    autocomplete="new-password"
                    placeholder="Empty: one is generated"
                    class=field
                    prop:value=password
                    on:input=move |ev| password.set(event_target_value(&ev))
                />
            </label>
            <button data-testid="user-add" type="submit" class="btn-primary" disabled=move || write.busy()>
                {move || if write.busy() { "Adding…" } else { "Add user" }}
            </button>
        </form>
        {move || write.error().map(|m| view! {
            <p data-testid="user-add-error" role="alert" class="mt-2 text-sm text-bad wrap-anywhere">{m}</p>
        })}
    }
}

/// The password just made, once: the administrator passes it on.
#[component]
fn RevealedPassword(r: Revealed, revealed: RwSignal<Option<Revealed>>) -> impl IntoView {
    let copied = RwSignal::new(None::<Result<(), String>>);
    let password = r.password.clone();
    let copy = move |_| {
        let password = password.clone();
        leptos::task::spawn_local(async move {
            let outcome = copy_text(&password).await;
            copied.try_set(Some(outcome));
        });
    };
    let intro = if r.added {
        format!("Added {}. Their password, shown only now:", r.username)
    } else {
        format!(
            "New password for {}, shown only now (their sessions ended):",
            r.username
        )
    };
    view! {
        <div data-testid="user-password-revealed" data-username=r.username.clone() role="status" class="mt-3 rounded-lg border border-ok/40 bg-ok/10 p-3 text-sm">
            <p class="mb-2 wrap-anywhere">{intro}</p>
            <div class="flex flex-wrap items-center gap-2">
                <code data-testid="user-password" class="min-w-0 flex-1 select-all break-all rounded bg-surface px-2 py-1.5 font-mono text-sm">{r.password.clone()}</code>
                <button type="button" data-testid="user-password-copy" class="btn-secondary shrink-0" on:click=copy>"Copy"</button>
                <button type="button" data-testid="user-password-dismiss" class="btn-secondary shrink-0" on:click=move |_| revealed.set(None)>"Done"</button>
            </div>
            {move || copied.get().map(|outcome| match outcome {
                Ok(()) => view! { <p class="mt-2 text-xs text-ok">"Copied."</p> }.into_any(),
                Err(m) => view! { <p class="mt-2 text-xs text-warn">{m}</p> }.into_any(),
            })}
            <p class="mt-2 text-xs text-muted">"They log in with it and can change it in their Settings."</p>
        </div>
    }
}

#[component]
fn UserRow(
    initial: UserInfo,
    users: RwSignal<Vec<UserInfo>>,
    revealed: RwSignal<Option<Revealed>>,
    me_id: i64,
    admin_password_pinned: bool,
) -> impl IntoView {
    let id = initial.id;
    let name = initial.username.clone();
    let user = Memo::new(move |previous: Option<&UserInfo>| {
        users
            .with(|list| list.iter().find(|u| u.id == id).cloned())
            .or_else(|| previous.cloned())
            .unwrap_or_else(|| initial.clone())
    });
    let is_admin_account = name == ADMIN_USERNAME;
    let is_me = id == me_id;
    // The built-in administrator keeps its role and stays; nobody disables or removes themselves.
    let fixed = is_admin_account || is_me;
    let can_reset = !(is_me || is_admin_account && admin_password_pinned);
    let confirming = RwSignal::new(false);
    let confirm_text = format!(
        "Remove {name}? Their sessions end and their API tokens are revoked; their generations and outputs pass to admin."
    );
    let confirm_button = format!("Remove {name}");
    let write = Write::new();
    let replace = move |updated: UserInfo| {
        users.update(|list| {
            if let Some(slot) = list.iter_mut().find(|u| u.id == updated.id) {
                *slot = updated;
            }
        })
    };
    let set_role = {
        let name = name.clone();
        move |ev: leptos::ev::Event| {
            if let Some(role) = Role::parse(&event_target_value(&ev)) {
                write.run(set_user_role(name.clone(), role), replace);
            }
        }
    };
    let reset = {
        let name = name.clone();
        move |_| {
            revealed.set(None);
            write.run(reset_user_password(name.clone()), move |done| {
                replace(done.user.clone());
                revealed.set(Some(Revealed {
                    username: done.user.username,
                    password: done.password,
                    added: false,
                }));
            });
        }
    };
    let toggle = {
        let name = name.clone();
        move |_| {
            let disable = !user.get_untracked().disabled;
            write.run(set_user_disabled(name.clone(), disable), replace);
        }
    };
    let remove = {
        let name = name.clone();
        move |_| {
            let gone = name.clone();
            write.run(remove_user(name.clone()), move |()| {
                users.update(|list| list.retain(|u| u.id != id));
                revealed.update(|r| {
                    if r.as_ref().is_some_and(|r| r.username == gone) {
                        *r = None;
                    }
                });
            });
        }
    };
    view! {
        <li
            data-testid="user-row"
            data-username=name.clone()
            data-role=move || user.get().role.as_str()
            data-disabled=move || user.get().disabled.to_string()
            class="flex flex-col gap-2 py-3 sm:flex-row sm:flex-wrap sm:items-center sm:gap-x-4"
        >
            <div class="min-w-0 flex-1">
                <p class="flex flex-wrap items-center gap-1.5">
                    <span class="font-medium wrap-anywhere">{name.clone()}</span>
                    <span data-testid="user-role" class=move || badge(if user.get().role == Role::Admin { Tone::Accent } else { Tone::Muted })>
                        {move || user.get().role.label()}
                    </span>
                    {is_me.then(|| view! { <span class=badge(Tone::Plain)>"you"</span> })}
                    <Show when=move || user.get().disabled>
                        <span data-testid="user-disabled" class=badge(Tone::Bad)>"disabled"</span>
                    </Show>
                </p>
                <p class="mt-0.5 text-xs text-muted">
                    {move || {
                        let u = user.get();
                        format!(
                            "Added {} · {}",
                            format_utc(u.created_ms),
                            u.last_login_ms
                                .map(|t| format!("last login {}", format_utc(t)))
                                .unwrap_or_else(|| "never logged in".into()),
                        )
                    }}
                </p>
            </div>
            <div class="flex flex-wrap items-center gap-2">
                {(!fixed).then(|| view! {
                    <select
                        data-testid="user-role-select"
                        aria-label=format!("Role of {name}")
                        class="rounded-lg border border-line bg-surface-2 px-2 py-1.5 text-sm text-fg"
                        prop:value=move || user.get().role.as_str()
                        disabled=move || write.busy()
                        on:change=set_role
                    >
                        {Role::VARIANTS.iter().rev().map(|r| view! {
                            <option value=r.as_str() selected=move || user.get().role == *r>{r.label()}</option>
                        }).collect_view()}
                    </select>
                })}
                {can_reset.then(|| view! {
                    <button type="button" data-testid="user-reset" class="btn-secondary" disabled=move || write.busy() on:click=reset>
                        "New password"
                    </button>
                })}
                {(!fixed).then(|| view! {
                    <button type="button" data-testid="user-toggle" class="btn-secondary" disabled=move || write.busy() on:click=toggle>
                        {move || if user.get().disabled { "Enable" } else { "Disable" }}
                    </button>
                    <button type="button" data-testid="user-remove" class="btn-danger" disabled=move || write.busy() on:click=move |_| confirming.set(true)>
                        "Remove"
                    </button>
                })}
            </div>
            <Show when=move || confirming.get()>
                <div data-testid="user-remove-confirm" role="group" aria-label="Confirm removal" class="rounded-lg border border-bad/40 bg-bad/5 p-3 text-sm sm:basis-full">
                    <p class="mb-2 wrap-anywhere">
                        {confirm_text.clone()}
                    </p>
                    <div class="flex flex-wrap gap-2">
                        <button type="button" data-testid="user-remove-yes" class="btn-danger" disabled=move || write.busy() on:click=remove.clone()>
                            {confirm_button.clone()}
                        </button>
                        <button type="button" data-testid="user-remove-no" class="btn-secondary" on:click=move |_| confirming.set(false)>"Keep"</button>
                    </div>
                </div>
            </Show>
            {move || write.error().map(|m| view! {
                <p data-testid="user-error" role="alert" class="text-sm text-bad wrap-anywhere sm:basis-full">{m}</p>
            })}
        </li>
    }
}
