//! Login: a plain HTML form that works before (and without) the wasm loads. The server checks
//! the username and password, sets the session cookie and sends the browser back where it
//! wanted to go.

use leptos::prelude::*;
use leptos::server::SharedValue;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;
use leptos_router::{lazy_route, LazyRoute};

/// What the auth layer tells the login page about the deck before anyone logs in: whether
/// `admin` is the only account (then the username field is filled in with it). The server puts
/// it on the `/login` request; the page reads it while rendering.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoginHint {
    pub only_admin: bool,
}

/// The username to fill in: the one of a failed attempt, else `admin` when it is the only
/// account. Rendered on the server and carried to the browser in the page, so the hydrated
/// form shows the same.
fn prefill_username(query_user: Option<String>) -> String {
    let only_admin = SharedValue::new(|| {
        #[cfg(feature = "ssr")]
        {
            use_context::<http::request::Parts>()
                .and_then(|parts| parts.extensions.get::<LoginHint>().copied())
                .unwrap_or_default()
                .only_admin
        }
        #[cfg(not(feature = "ssr"))]
        {
            false
        }
    });
    match query_user.filter(|u| !u.trim().is_empty()) {
        Some(user) => user,
        None if *only_admin => engine::model::ADMIN_USERNAME.to_string(),
        None => String::new(),
    }
}

/// The route: the page's code comes in a wasm chunk of its own, loaded when the route is
/// first shown (see `pages/mod.rs`).
pub struct LoginRoute;

#[lazy_route]
impl LazyRoute for LoginRoute {
    fn data() -> Self {
        Self
    }

    fn view(_this: Self) -> AnyView {
        view! { <LoginPage/> }.into_any()
    }
}

#[component]
pub fn LoginPage() -> impl IntoView {
    let query = use_query_map();
    let next = move || {
        query
            .read()
            .get("next")
            .filter(|n| n.starts_with('/') && !n.starts_with("//"))
            .unwrap_or_else(|| "/".into())
    };
    let error = move || match query.read().get("error").as_deref() {
        Some("wrong") => Some("Wrong username or password.".to_string()),
        Some("limited") => Some(format!(
            "Too many failed attempts. Try again in {}.",
            query
                .read()
                .get("wait")
                .and_then(|w| w.parse::<u64>().ok())
                .map(engine::model::format_duration_secs)
                .unwrap_or_else(|| "a few minutes".into())
        )),
        Some(_) => Some("Login failed; try again.".to_string()),
        None => None,
    };
    let notice = move || match query.read().get("notice").as_deref() {
        Some("password-changed") => Some(
            "Your password was changed and all your sessions ended. Log in with the new password.",
        ),
        _ => None,
    };
    let username = prefill_username(query.read_untracked().get("user"));
    // The cursor goes where there is something left to type.
    let focus_password = !username.is_empty();
    view! {
        <Title text="Log in · comfydeck"/>
        <main class="flex min-h-dvh items-center justify-center px-4">
            <div class="w-full max-w-sm rounded-2xl border border-line bg-surface p-6 shadow-sm">
                <div class="mb-5 flex items-center gap-2">
                    <img src="/favicon.svg" alt="" class="h-7 w-7"/>
                    <h1 class="text-lg font-semibold">"comfydeck"</h1>
                </div>
                <form data-testid="login-form" method="post" action="/api/auth/login" class="space-y-4">
                    <input type="hidden" name="next" value=next/>
                    <label class="block text-sm">
                        <span class="mb-1 block text-muted">"Username"</span>
                        <input
                            data-testid="login-username"
                            name="username"
                            type="text"
                            required
                            autofocus=!focus_password
                            value=username
                            maxlength=engine::model::MAX_USERNAME_CHARS.to_string()
                            autocomplete="username"
                            autocapitalize="none"
                            spellcheck="false"
                            class="w-full rounded-lg border border-line bg-surface-2 px-3 py-2.5 text-fg"
                        />
                    </label>
                    <label class="block text-sm">
                        <span class="mb-1 block text-muted">"Password"</span>
                        <input
                            data-testid="login-password"
                            name="password"
                            type="password"
                            required
                            autofocus=focus_password
                            autocomplete="current-password"
                            class="w-full rounded-lg border border-line bg-surface-2 px-3 py-2.5 text-fg"
                        />
                    </label>
                    {move || notice().map(|m| view! {
                        <p data-testid="login-notice" role="status" class="rounded-lg border border-ok/40 bg-ok/10 px-3 py-2 text-sm">{m}</p>
                    })}
                    {move || error().map(|m| view! {
                        <p data-testid="login-error" role="alert" class="text-sm text-bad">{m}</p>
                    })}
                    <button data-testid="login-submit" type="submit" class="btn-primary w-full py-2.5">"Log in"</button>
                </form>
                <p class="mt-4 text-xs text-muted">
                    "The administrator is \u{201c}admin\u{201d}: its password is ACCESS_PASSWORD, or the one printed in the log at first start. Everyone else gets theirs from an administrator."
                </p>
            </div>
        </main>
    }
}
