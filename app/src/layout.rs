//! The frame around every signed-in page ([`Layout`]) and the pieces of its header.

use leptos::prelude::*;
use leptos_router::components::{Outlet, A};
use leptos_router::hooks::use_location;

use crate::api::get_session;
use crate::components::{Icon, IconSvg};
use crate::live::{Connection, Live};

/// The frame around every signed-in page: header with the brand, the navigation (a bottom
/// bar on phones), the live-connection badge and, when logins are on, a logout button.
#[component]
pub fn Layout() -> impl IntoView {
    Live::provide();
    let session = Resource::new(|| (), |_| get_session());
    view! {
        <header class="sticky top-0 z-20 border-b border-line bg-bg">
            <div class="mx-auto flex max-w-6xl items-center gap-3 px-4 py-2.5">
                <A href="/" attr:class="flex shrink-0 items-center gap-2 font-semibold tracking-tight text-fg">
                    <img src="/favicon.svg" alt="" class="h-6 w-6"/>
                    <span>"comfydeck"</span>
                </A>
                <Nav/>
                <div class="ml-auto flex min-w-0 items-center gap-2">
                    <ComfyLink/>
                    <LiveBadge/>
                    <Transition fallback=|| ()>
                        {move || Suspend::new(async move {
                            let needs_logout = session
                                .await
                                .map(|s| s.auth_mode.requires_login())
                                .unwrap_or(false);
                            needs_logout.then(|| view! { <LogoutButton/> })
                        })}
                    </Transition>
                </div>
            </div>
        </header>
        // Bottom padding keeps content clear of the phone tab bar.
        <main class="mx-auto max-w-6xl px-4 pb-24 pt-4 md:pb-10">
            <Outlet/>
        </main>
    }
}

#[component]
fn Nav() -> impl IntoView {
    let location = use_location();
    let link = move |href: &'static str, label: &'static str, testid: &'static str, icon: Icon| {
        let active = move || {
            let path = location.pathname.get();
            if href == "/" {
                path == "/"
            } else {
                path.starts_with(href)
            }
        };
        view! {
            <A
                href=href
                attr:data-testid=testid
                attr:class=move || {
                    format!(
                        "flex min-w-0 flex-1 flex-col items-center gap-0.5 rounded-lg px-0 py-1.5 text-[10px] tracking-tight sm:px-1 sm:text-xs sm:tracking-normal md:flex-none md:flex-row md:gap-2 md:px-3 md:text-sm {}",
                        if active() { "text-accent md:bg-surface-2" } else { "text-muted hover:text-fg" },
                    )
                }
            >
                <IconSvg icon/>
                <span class="max-w-full truncate">{label}</span>
            </A>
        }
    };
    view! {
        <nav
            data-testid="nav"
            aria-label="Main"
            class="fixed inset-x-0 bottom-0 z-30 flex border-t border-line bg-surface px-2 pb-[max(0.25rem,env(safe-area-inset-bottom))] pt-1 md:static md:ml-4 md:border-0 md:bg-transparent md:p-0"
        >
            {link("/", "Home", "nav-home", Icon::Home)}
            {link("/generate", "Generate", "nav-generate", Icon::Generate)}
            {link("/models", "Models", "nav-models", Icon::Models)}
            {link("/workflows", "Workflows", "nav-workflows", Icon::Workflows)}
            {link("/gallery", "Gallery", "nav-gallery", Icon::Gallery)}
            {link("/settings", "Settings", "nav-settings", Icon::Settings)}
            {link("/activity", "Activity", "nav-activity", Icon::Activity)}
        </nav>
    }
}

/// ComfyUI's own editor, proxied behind the login at `/comfyui/`, in a new tab. A plain link:
/// the router must not handle it.
#[component]
fn ComfyLink() -> impl IntoView {
    view! {
        <a
            href="/comfyui/"
            target="_blank"
            rel="noopener"
            data-testid="nav-comfyui"
            class="flex shrink-0 items-center gap-1 rounded-lg border border-line px-2 py-1 text-xs text-muted hover:text-fg"
            title="Open ComfyUI's own editor in a new tab"
        >
            <span>"ComfyUI"</span>
            <IconSvg icon=Icon::External small=true/>
        </a>
    }
}

#[component]
fn LiveBadge() -> impl IntoView {
    let live = Live::get();
    let dot = move || match live.connection.get() {
        Connection::Live => "bg-ok",
        Connection::Polling => "bg-muted",
        Connection::Connecting | Connection::Reconnecting => "bg-warn animate-pulse",
    };
    view! {
        <span
            class="flex min-w-0 items-center gap-1.5 rounded-full border border-line px-2.5 py-1 text-xs text-muted"
            title=move || live.connection.get().explanation()
        >
            <span class=move || format!("h-2 w-2 shrink-0 rounded-full {}", dot())></span>
            // On a narrow phone header a long state may be cut short; the title has it in full.
            <span data-testid="live-state" class="min-w-0 truncate">{move || live.connection.get().label()}</span>
        </span>
    }
}

#[component]
fn LogoutButton() -> impl IntoView {
    view! {
        <form method="post" action="/api/auth/logout" class="shrink-0">
            <button
                type="submit"
                data-testid="logout"
                class="flex items-center gap-1 rounded-lg border border-line px-2.5 py-1 text-xs text-muted hover:text-fg"
                title="Log out"
            >
                <IconSvg icon=Icon::Logout/>
                <span class="hidden sm:inline">"Log out"</span>
            </button>
        </form>
    }
}
