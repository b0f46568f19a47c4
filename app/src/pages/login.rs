//! Login: a plain HTML form that works before (and without) the wasm loads. The server checks
//! the password, sets the session cookie and sends the browser back where it wanted to go.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

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
        Some("wrong") => Some("That password is not right.".to_string()),
        Some("limited") => Some(format!(
            "Too many failed attempts. Try again in {} seconds.",
            query.read().get("wait").unwrap_or_else(|| "a few".into())
        )),
        Some(_) => Some("Login failed; try again.".to_string()),
        None => None,
    };
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
                        <span class="mb-1 block text-muted">"Password"</span>
                        <input
                            data-testid="login-password"
                            name="password"
                            type="password"
                            required
                            autofocus
                            autocomplete="current-password"
                            class="w-full rounded-lg border border-line bg-surface-2 px-3 py-2.5 text-fg"
                        />
                    </label>
                    {move || error().map(|m| view! {
                        <p data-testid="login-error" role="alert" class="text-sm text-bad">{m}</p>
                    })}
                    <button data-testid="login-submit" type="submit" class="btn-primary w-full py-2.5">"Log in"</button>
                </form>
                <p class="mt-4 text-xs text-muted">
                    "The password is ACCESS_PASSWORD, or the one printed in the log at first start."
                </p>
            </div>
        </main>
    }
}
