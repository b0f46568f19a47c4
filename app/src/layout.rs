//! The frame around every signed-in page ([`Layout`]) and the pieces of its header.

use leptos::prelude::*;
use leptos_router::components::{Outlet, A};
use leptos_router::hooks::use_location;

use engine::model::{Caller, Role};

use crate::api::{get_session, ApiError, SessionInfo};
use crate::components::{badge, Icon, IconSvg, Tone};
use crate::live::{Connection, Live};
use crate::pages::recovery::RecoveryBanner;

/// Who is logged in, fetched once by the [`Layout`] and shared with the pages inside it: they
/// leave out what the visitor's role may not do (a user is offered no model installs).
#[derive(Clone, Copy)]
pub struct Session(Resource<Result<SessionInfo, ApiError>>);

impl Session {
    /// The session of the page's [`Layout`].
    pub fn get() -> Session {
        expect_context()
    }

    /// Who is asking; `None` when the session could not be read (the page's own call then
    /// says why).
    pub async fn caller(self) -> Option<Caller> {
        self.0.await.ok().map(|s| s.caller)
    }

    /// Whether the visitor is an administrator (in open mode, everyone is).
    pub async fn is_admin(self) -> bool {
        self.caller().await.is_some_and(|c| c.is_admin())
    }
}

/// The frame around every signed-in page: header with the brand, the navigation (a bottom
/// bar on phones), the live-connection badge and, when logins are on, who is logged in and a
/// logout button.
#[component]
pub fn Layout() -> impl IntoView {
    Live::provide();
    let session = Resource::new(|| (), |_| get_session());
    provide_context(Session(session));
    view! {
        <header class="sticky top-0 z-20 border-b border-line bg-bg">
            <div class="mx-auto flex max-w-6xl items-center gap-3 px-4 py-2.5">
                <A href="/" attr:class="flex shrink-0 items-center gap-2 font-semibold tracking-tight text-fg">
                    <img src="/favicon.svg" alt="" class="h-6 w-6"/>
                    <span>"comfydeck"</span>
                </A>
                <Nav/>
                <div class="ml-auto flex min-w-0 items-center gap-2">
                    <Transition fallback=|| ()>
                        {move || Suspend::new(async move {
                            // ComfyUI's own editor sees every queue and file: administrators only.
                            let admin = session.await.map(|s| s.caller.is_admin()).unwrap_or(false);
                            admin.then(|| view! { <ComfyLink/> })
                        })}
                    </Transition>
                    <LiveBadge/>
                    <Transition fallback=|| ()>
                        {move || Suspend::new(async move {
                            session
                                .await
                                .ok()
                                .filter(|s| s.auth_mode.requires_login())
                                .map(|s| view! {
                                    <UserChip caller=s.caller/>
                                    <LogoutButton/>
                                })
                        })}
                    </Transition>
                </div>
            </div>
        </header>
        // Bottom padding keeps content clear of the phone tab bar.
        <main class="mx-auto max-w-6xl px-4 pb-24 pt-4 md:pb-10">
            <Show when=move || !use_location().pathname.get().starts_with("/recovery")>
                <RecoveryBanner/>
            </Show>
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
            {link("/queue", "Queue", "nav-queue", Icon::Queue)}
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

/// Who is logged in and their role; opens their account settings.
#[component]
fn UserChip(caller: Caller) -> impl IntoView {
    let (tone, role) = match caller.role {
        Role::Admin => (Tone::Accent, "admin"),
        Role::User => (Tone::Muted, "user"),
    };
    let title = format!(
        "Logged in as {} ({}): your account",
        caller.username,
        caller.role.label()
    );
    view! {
        <A
            href="/settings#account"
            attr:data-testid="current-user"
            attr:data-role=caller.role.as_str()
            attr:class="flex min-w-0 items-center gap-1.5 rounded-lg px-1 py-1 text-xs text-fg hover:bg-surface-2"
            attr:title=title
        >
            <span data-testid="current-username" class="min-w-0 max-w-[6rem] truncate font-medium sm:max-w-[10rem]">{caller.username}</span>
            // A phone's header has no room for it beside the ComfyUI link and the live badge (it
            // overlapped Log out at 375 px); the title and Settings say it there.
            <span class="hidden sm:inline-flex">
                <span data-testid="current-role" class=badge(tone)>{role}</span>
            </span>
        </A>
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
