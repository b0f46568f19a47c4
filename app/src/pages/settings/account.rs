//! The visitor's own account: who they are and their password.

use engine::model::*;
use leptos::prelude::*;

use crate::api::users::change_own_password;
use crate::browser::go_to;
use crate::components::{badge, Card, Tone};
use crate::server_calls::Write;

/// Who is logged in, and the form that changes their own password. A change ends every session
/// of theirs, this one included: afterwards they log in again.
#[component]
pub(super) fn AccountCard(
    me: UserInfo,
    auth_mode: AuthMode,
    admin_password_pinned: bool,
) -> impl IntoView {
    let pinned = admin_password_pinned && me.username == ADMIN_USERNAME;
    let has_password = me.has_password;
    let username = me.username.clone();
    let (tone, role) = match me.role {
        Role::Admin => (Tone::Accent, me.role.label()),
        Role::User => (Tone::Muted, me.role.label()),
    };
    view! {
        <Card title="Your account" testid="account-card">
            <div id="account" class="mb-3 flex flex-wrap items-center gap-2 text-sm">
                <span class="text-muted">"Logged in as"</span>
                <span data-testid="account-username" class="font-medium wrap-anywhere">{me.username.clone()}</span>
                <span data-testid="account-role" class=badge(tone)>{role}</span>
            </div>
            {if pinned {
                view! {
                    <p data-testid="password-pinned" class="text-sm text-muted">
                        "The administrator's password is ACCESS_PASSWORD, set where comfydeck is started. To change it, change ACCESS_PASSWORD there and restart comfydeck."
                    </p>
                }.into_any()
            } else {
                view! { <PasswordForm username has_password auth_mode/> }.into_any()
            }}
        </Card>
    }
}

#[component]
fn PasswordForm(username: String, has_password: bool, auth_mode: AuthMode) -> impl IntoView {
    let current = RwSignal::new(String::new());
    let new = RwSignal::new(String::new());
    let repeat = RwSignal::new(String::new());
    let write = Write::new();
    let login_again = format!(
        "/login?user={}&next=/settings&notice=password-changed",
        encode_path(&username)
    );
    let on_submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let (cur, next, again) = (
            current.get_untracked(),
            new.get_untracked(),
            repeat.get_untracked(),
        );
        if let Err(why) = check_new_password(&next) {
            write.set_error(Some(capitalize(&why)));
            return;
        }
        if next != again {
            write.set_error(Some("The new password and its repetition differ.".into()));
            return;
        }
        // Every session of theirs has ended, this one too: straight to the login page, which
        // says why.
        let login_again = login_again.clone();
        write.run(change_own_password(cur, next), move |()| {
            go_to(&login_again);
        });
    };
    let field =
        "w-full min-w-0 rounded-lg border border-line bg-surface-2 px-3 py-2 text-sm text-fg";
    view! {
        <form data-testid="password-form" class="space-y-3" on:submit=on_submit>
            // Lets password managers tie the new password to this account.
            <input type="text" name="username" autocomplete="username" value=username.clone() hidden/>
            {has_password.then(|| view! {
                <label class="block text-sm">
                    <span class="mb-1 block">"Current password"</span>
                    <input
                        data-testid="password-current"
                        type="password"
                        required
                        autocomplete="current-password"
                        class=field
                        prop:value=current
                        on:input=move |ev| current.set(event_target_value(&ev))
                    />
                </label>
            })}
            <div class="grid gap-3 sm:grid-cols-2">
                <label class="block text-sm">
                    <span class="mb-1 block">"New password"</span>
                    <input
                        data-testid="password-new"
                        type="password"
                        required
                        minlength=MIN_PASSWORD_CHARS.to_string()
                        autocomplete="new-password"
                        class=field
                        prop:value=new
                        on:input=move |ev| new.set(event_target_value(&ev))
                    />
                </label>
                <label class="block text-sm">
                    <span class="mb-1 block">"Repeat it"</span>
                    <input
                        data-testid="password-repeat"
                        type="password"
                        required
                        autocomplete="new-password"
                        class=field
                        prop:value=repeat
                        on:input=move |ev| repeat.set(event_target_value(&ev))
                    />
                </label>
            </div>
            <button data-testid="password-save" type="submit" class="btn-primary" disabled=move || write.busy()>
                {move || if write.busy() { "Changing…" } else { "Change password" }}
            </button>
        </form>
        {move || write.error().map(|m| view! {
            <p data-testid="password-error" role="alert" class="mt-2 text-sm text-bad wrap-anywhere">{m}</p>
        })}
        <p class="mt-2 text-xs text-muted">
            {if auth_mode.requires_login() {
                format!("At least {MIN_PASSWORD_CHARS} characters. Changing it logs you out everywhere, here too: you then log in with the new one.")
            } else {
                format!("At least {MIN_PASSWORD_CHARS} characters. Logins are off while the dashboard only listens on this machine; the password counts once it listens on a network address.")
            }}
        </p>
    }
}

/// "a password needs…" as the start of a sentence.
pub(super) fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => {
            let mut out: String = first.to_uppercase().collect();
            out.push_str(chars.as_str());
            if !out.ends_with('.') {
                out.push('.');
            }
            out
        }
        None => String::new(),
    }
}
