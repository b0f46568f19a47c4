//! Small building blocks shared by the pages: panels, bars, badges, error boxes and icons.
//! Imports no app module.

use leptos::prelude::*;

/// A titled panel.
#[component]
pub fn Card(
    #[prop(into)] title: String,
    #[prop(optional, into)] testid: Option<&'static str>,
    /// An `id` a link can land on (`/settings#hf-token`), clear of the sticky header.
    #[prop(optional)]
    anchor: Option<&'static str>,
    children: Children,
) -> impl IntoView {
    view! {
        <section
            id=anchor
            data-testid=testid
            class="scroll-mt-20 rounded-xl border border-line bg-surface p-4 shadow-sm"
        >
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

/// The colour of a [`badge`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tone {
    Ok,
    Warn,
    Bad,
    Accent,
    Muted,
    Plain,
}

/// The classes of a small rounded label (a state, a tag) in `tone`.
pub fn badge(tone: Tone) -> &'static str {
    match tone {
        Tone::Ok => "inline-flex shrink-0 items-center rounded-full border border-ok/40 bg-ok/10 px-2 py-0.5 text-xs font-medium text-ok",
        Tone::Warn => "inline-flex shrink-0 items-center rounded-full border border-warn/40 bg-warn/10 px-2 py-0.5 text-xs font-medium text-warn",
        Tone::Bad => "inline-flex shrink-0 items-center rounded-full border border-bad/40 bg-bad/10 px-2 py-0.5 text-xs font-medium text-bad",
        Tone::Accent => "inline-flex shrink-0 items-center rounded-full border border-accent/40 bg-accent/10 px-2 py-0.5 text-xs font-medium text-accent",
        Tone::Muted => "inline-flex shrink-0 items-center rounded-full border border-line bg-surface-2 px-2 py-0.5 text-xs font-medium text-muted",
        Tone::Plain => "inline-flex shrink-0 items-center rounded-full border border-line px-2 py-0.5 text-xs font-medium text-fg",
    }
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
    Queue,
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
        // Three waiting lines, the first one moving: a queue.
        Icon::Queue => "M4 6h10M4 12h16M4 18h16M17 3l3 3-3 3",
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
