//! Small building blocks shared by the pages.

use leptos::prelude::*;
use leptos_router::components::{Outlet, A};
use leptos_router::hooks::use_location;

use crate::api::{get_session, ApiError};
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

/// A titled panel.
#[component]
pub fn Card(
    #[prop(into)] title: String,
    #[prop(optional, into)] testid: Option<&'static str>,
    children: Children,
) -> impl IntoView {
    view! {
        <section data-testid=testid class="rounded-xl border border-line bg-surface p-4 shadow-sm">
            <h2 class="mb-3 text-sm font-medium text-muted">{title}</h2>
            {children()}
        </section>
    }
}

/// A horizontal bar for a share from 0 to 100; turns amber and red as it fills.
#[component]
pub fn Meter(#[prop(into)] percent: Signal<f32>, #[prop(into)] label: String) -> impl IntoView {
    let colour = move || {
        let p = percent.get();
        if p >= 90.0 {
            "bg-bad"
        } else if p >= 75.0 {
            "bg-warn"
        } else {
            "bg-accent"
        }
    };
    view! {
        <div
            class="h-2 w-full overflow-hidden rounded-full bg-surface-2"
            role="meter"
            aria-label=label
            aria-valuemin="0"
            aria-valuemax="100"
            aria-valuenow=move || format!("{:.0}", percent.get())
        >
            <div
                class=move || format!("h-full rounded-full transition-[width] duration-500 {}", colour())
                style:width=move || format!("{:.1}%", percent.get().clamp(0.0, 100.0))
            ></div>
        </div>
    }
}

/// A bar for work under way (a download). `percent` is 0–100, or `None` when the total is not
/// known yet (the bar then pulses instead of filling). `tone` is a background class such as
/// `bg-accent`, `bg-warn` (paused) or `bg-bad` (failed).
#[component]
pub fn ProgressBar(
    #[prop(into)] percent: Signal<Option<f32>>,
    #[prop(into)] tone: Signal<&'static str>,
    #[prop(into)] label: String,
) -> impl IntoView {
    view! {
        <div
            class="h-2 w-full overflow-hidden rounded-full bg-surface-2"
            role="progressbar"
            aria-label=label
            aria-valuemin="0"
            aria-valuemax="100"
            aria-valuenow=move || percent.get().map(|p| format!("{p:.0}"))
        >
            <div
                class=move || format!(
                    "h-full rounded-full transition-[width] duration-500 {} {}",
                    tone.get(),
                    if percent.get().is_none() { "animate-pulse" } else { "" },
                )
                style:width=move || match percent.get() {
                    Some(p) => format!("{:.1}%", p.clamp(0.0, 100.0)),
                    None => "100%".to_string(),
                }
            ></div>
        </div>
    }
}

/// An error box with the message the server gave.
#[component]
pub fn ErrorNote(#[prop(into)] message: String) -> impl IntoView {
    view! {
        <p role="alert" class="rounded-lg border border-bad/40 bg-bad/10 px-3 py-2 text-sm text-bad wrap-anywhere">
            {message}
        </p>
    }
}

/// Runs a page's refresh one at a time: a refresh asked for while one is under way is folded
/// into a single further run after it, so bursts of live events cost at most two fetches.
#[derive(Clone, Copy)]
pub struct RefreshGate {
    running: StoredValue<bool>,
    again: StoredValue<bool>,
    /// Why the last refresh failed; cleared by the next one that works.
    error: RwSignal<Option<String>>,
}

impl RefreshGate {
    pub fn new() -> Self {
        Self {
            running: StoredValue::new(false),
            again: StoredValue::new(false),
            error: RwSignal::new(None),
        }
    }

    /// Why the last refresh failed (tracked).
    pub fn error(self) -> Option<String> {
        self.error.get()
    }

    /// Refreshes through the gate: `fetch`'s answer goes to `apply`; a failure is kept as
    /// "Could not refresh {what}: …", and a lost session goes to the login page.
    pub fn reload<T, F, Fut, A>(self, what: &'static str, fetch: F, apply: A)
    where
        F: Fn() -> Fut + Copy + 'static,
        Fut: std::future::Future<Output = Result<T, ApiError>> + 'static,
        A: Fn(T) + Copy + 'static,
    {
        let error = self.error;
        self.run(move || async move {
            let result = fetch().await;
            // The page is gone: nothing to show the answer in.
            if error.is_disposed() {
                return false;
            }
            match result {
                Ok(value) => {
                    apply(value);
                    error.set(None);
                }
                Err(e) => {
                    if e.login_required {
                        go_to_login();
                    }
                    error.set(Some(format!("Could not refresh {what}: {}", e.message)));
                }
            }
            true
        });
    }

    /// Starts `fetch` unless one is running (then it runs once more after it). `fetch` returns
    /// `false` when the page is gone, which ends the loop.
    fn run<F, Fut>(self, fetch: F)
    where
        F: Fn() -> Fut + 'static,
        Fut: std::future::Future<Output = bool> + 'static,
    {
        match self.running.try_get_value() {
            Some(false) => {}
            Some(true) => {
                self.again.try_set_value(true);
                return;
            }
            None => return,
        }
        self.running.set_value(true);
        leptos::task::spawn_local(async move {
            loop {
                self.again.try_set_value(false);
                if !fetch().await {
                    return;
                }
                if !self.again.try_get_value().unwrap_or(false) {
                    break;
                }
            }
            self.running.try_set_value(false);
        });
    }
}

impl Default for RefreshGate {
    fn default() -> Self {
        Self::new()
    }
}

/// Shows an API error; a lost session sends the visitor to the login page.
pub fn api_error_view(error: ApiError) -> AnyView {
    if error.login_required {
        go_to_login();
    }
    view! { <ErrorNote message=error.message/> }.into_any()
}

/// Sends the browser to the login page, coming back here afterwards.
pub fn go_to_login() {
    #[cfg(feature = "hydrate")]
    if let Some(window) = web_sys::window() {
        let location = window.location();
        let here = location.pathname().unwrap_or_else(|_| "/".into());
        let _ = location.set_href(&format!("/login?next={}", here));
    }
}

/// Applies a theme to the page at once (the server renders it on the next load).
pub fn apply_theme(theme: engine::model::Theme) {
    #[cfg(feature = "hydrate")]
    if let Some(root) = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.document_element())
    {
        let _ = root.set_attribute("data-theme", theme.as_str());
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = theme;
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Icon {
    Home,
    Generate,
    Models,
    Settings,
    Activity,
    Workflows,
    Gallery,
    Video,
    Audio,
    External,
    Logout,
}

/// An outline icon; `small` keeps it at text size on every screen.
#[component]
pub fn IconSvg(icon: Icon, #[prop(optional)] small: bool) -> impl IntoView {
    // Outline icons on a 24-unit grid, drawn with the current text colour.
    let d = match icon {
        Icon::Home => "M3 10.5 12 3l9 7.5V20a1 1 0 0 1-1 1h-5v-6H9v6H4a1 1 0 0 1-1-1z",
        // A four-point spark: something new being made.
        Icon::Generate => "M12 3c.6 4.4 2.6 6.4 7 7-4.4.6-6.4 2.6-7 7-.6-4.4-2.6-6.4-7-7 4.4-.6 6.4-2.6 7-7ZM19 15.5c.2 1.4.9 2.1 2.3 2.3-1.4.2-2.1.9-2.3 2.3-.2-1.4-.9-2.1-2.3-2.3 1.4-.2 2.1-.9 2.3-2.3Z",
        // A cube: a model file's box.
        Icon::Models => "M12 3 4 7.5v9L12 21l8-4.5v-9L12 3ZM4 7.5 12 12l8-4.5M12 12v9",
        Icon::Settings => "M12 15a3 3 0 1 0 0-6 3 3 0 0 0 0 6Zm7.4-3a7.4 7.4 0 0 0-.1-1.2l2-1.6-2-3.4-2.4 1a7.5 7.5 0 0 0-2-1.2L14.5 3h-5l-.4 2.6a7.5 7.5 0 0 0-2 1.2l-2.4-1-2 3.4 2 1.6a7.4 7.4 0 0 0 0 2.4l-2 1.6 2 3.4 2.4-1a7.5 7.5 0 0 0 2 1.2l.4 2.6h5l.4-2.6a7.5 7.5 0 0 0 2-1.2l2.4 1 2-3.4-2-1.6c.1-.4.1-.8.1-1.2Z",
        Icon::Activity => "M4 6h16M4 12h16M4 18h10",
        // Two nodes joined by a link: a node graph.
        Icon::Workflows => "M3 4h6v6H3zM15 14h6v6h-6zM9 7h2.5a3.5 3.5 0 0 1 3.5 3.5V14",
        // A framed picture: hills and a sun.
        Icon::Gallery => "M4 5h16v14H4zM4 16l4.5-4.5 4 4 2.5-2.5 5 5M15.5 10a1.5 1.5 0 1 0 0-3 1.5 1.5 0 0 0 0 3Z",
        // A film camera.
        Icon::Video => "M3 7h12v10H3zM15 10.5 21 7v10l-6-3.5",
        // A pair of notes.
        Icon::Audio => "M9 18V6l11-2v12M9 18a3 3 0 1 1-6 0 3 3 0 0 1 6 0Zm11-2a3 3 0 1 1-6 0 3 3 0 0 1 6 0Z",
        // An arrow leaving a box: opens elsewhere.
        Icon::External => "M14 4h6v6M20 4l-8 8M18 14v5a1 1 0 0 1-1 1H5a1 1 0 0 1-1-1V7a1 1 0 0 1 1-1h5",
        Icon::Logout => "M15 4h4a1 1 0 0 1 1 1v14a1 1 0 0 1-1 1h-4M10 17l5-5-5-5M15 12H3",
    };
    view! {
        <svg
            class=if small { "h-3.5 w-3.5 shrink-0" } else { "h-5 w-5 shrink-0 md:h-4 md:w-4" }
            viewBox="0 0 24 24"
            fill="none"
            stroke="currentColor"
            stroke-width="1.8"
            stroke-linecap="round"
            stroke-linejoin="round"
            aria-hidden="true"
        >
            <path d=d/>
        </svg>
    }
}
