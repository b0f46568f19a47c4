//! Models: the preset catalog (search and filters that live in the URL, so a reload or a link
//! keeps them), installs with live progress, and what the models folder holds.
//!
//! The overview is fetched once (server-rendered), then kept in a signal and fetched again after
//! every action, when a live event says a preset changed state or a file finished, and every few
//! seconds while downloads run and the live connection has fallen back to polling. Live download
//! events newer than the last fetch are laid over the fetched data, so progress moves in between.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use engine::model::*;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_navigate, use_query_map};
use leptos_router::params::ParamsMap;
use leptos_router::NavigateOptions;

use crate::api::*;
use crate::components::{
    api_error_view, go_to_login, Card, ErrorNote, Meter, ProgressBar, RefreshGate,
};
use crate::live::{Connection, Live};

/// How often the overview is fetched while downloads run and WebSockets are unavailable.
const POLL_EVERY: Duration = Duration::from_secs(3);

// ---------------------------------------------------------------------------------------------
// The page and its data
// ---------------------------------------------------------------------------------------------

#[component]
pub fn ModelsPage() -> impl IntoView {
    let live = Live::get();
    // Live events already received when the fetch starts are older than its answer.
    let baseline = StoredValue::new(Baseline::default());
    let overview = Resource::new(
        || (),
        move |_| {
            baseline.set_value(Baseline::take(live));
            get_models()
        },
    );
    view! {
        <Title text="Models · comfydeck"/>
        <h1 class="mb-4 text-xl font-semibold">"Models"</h1>
        <Transition fallback=|| view! { <p class="text-muted">"Reading the catalog and the models folder…"</p> }>
            {move || Suspend::new(async move {
                match overview.await {
                    Ok(initial) => view! { <ModelsBody initial baseline=baseline.get_value()/> }.into_any(),
                    Err(e) => api_error_view(e),
                }
            })}
        </Transition>
    }
}

/// The live events that were already known when the overview was fetched: only events that
/// differ from these are newer than the fetched data.
#[derive(Clone, Debug, Default, PartialEq)]
struct Baseline {
    presets: HashMap<String, PresetProgress>,
    downloads: HashMap<i64, FileProgress>,
}

impl Baseline {
    fn take(live: Live) -> Baseline {
        Baseline {
            presets: live.presets.try_get_untracked().unwrap_or_default(),
            downloads: live.downloads.try_get_untracked().unwrap_or_default(),
        }
    }
}

/// The page's state, shared by its parts.
#[derive(Clone, Copy)]
struct Models {
    live: Live,
    data: RwSignal<ModelsOverview>,
    baseline: RwSignal<Baseline>,
    refresh_gate: RefreshGate,
}

impl Models {
    /// Fetches the overview again; calls made while a fetch runs are folded into one more.
    fn refresh(self) {
        let (live, baseline, data) = (self.live, self.baseline, self.data);
        self.refresh_gate.reload(
            "the models",
            // The live events seen before the fetch are older than its answer.
            move || {
                let seen = Baseline::take(live);
                async move { get_models().await.map(|overview| (overview, seen)) }
            },
            move |(overview, seen)| {
                baseline.set(seen);
                data.set(overview);
            },
        );
    }

    /// The preset's live event, when it is newer than the fetched data (tracked).
    fn live_preset(self, id: &str) -> Option<PresetProgress> {
        let event = self.live.presets.with(|map| map.get(id).cloned())?;
        let seen = self.baseline.with(|b| b.presets.get(id) == Some(&event));
        (!seen).then_some(event)
    }

    /// The fetched files with newer live file events laid over them, matched by path (tracked).
    fn merge_files(self, mut files: Vec<PresetFileView>) -> Vec<PresetFileView> {
        self.live.downloads.with(|live| {
            if live.is_empty() {
                return;
            }
            self.baseline.with(|seen| {
                for file in &mut files {
                    let newest = live
                        .values()
                        .filter(|e| {
                            e.path == file.path && seen.downloads.get(&e.task_id) != Some(*e)
                        })
                        .max_by_key(|e| e.task_id);
                    if let Some(event) = newest {
                        file.state = event.state;
                        file.figures = event.figures.clone();
                        file.error = event.error.clone();
                        file.task_id =
                            (!matches!(event.state, FileState::Installed | FileState::Missing))
                                .then_some(event.task_id);
                    }
                }
            });
        });
        files
    }
}

#[component]
fn ModelsBody(initial: ModelsOverview, baseline: Baseline) -> impl IntoView {
    let m = Models {
        live: Live::get(),
        data: RwSignal::new(initial),
        baseline: RwSignal::new(baseline),
        refresh_gate: RefreshGate::new(),
    };
    watch_live(m);
    view! {
        {move || m.refresh_gate.error().map(|message| view! { <div class="mb-4"><ErrorNote message/></div> })}
        <div class="mb-4 grid gap-4 md:grid-cols-2">
            <SpaceCard m/>
            <CatalogCard m/>
        </div>
        <CatalogProblems m/>
        <Catalog m/>
        <InstalledModels m/>
    }
    .into_any()
}

/// Fetches the overview again when live events say something changed, when the live connection
/// comes back, and every few seconds while downloads run without a live connection.
fn watch_live(m: Models) {
    let live = m.live;
    Effect::new(move |previous: Option<HashMap<String, InstallState>>| {
        let now: HashMap<String, InstallState> = live
            .presets
            .with(|map| map.iter().map(|(id, p)| (id.clone(), p.state)).collect());
        if let Some(previous) = previous {
            let changed = now.iter().any(|(id, state)| match previous.get(id) {
                Some(before) => before != state,
                None => m.data.with_untracked(|d| {
                    d.presets
                        .iter()
                        .find(|p| &p.id == id)
                        .is_none_or(|p| p.state != *state)
                }),
            });
            if changed {
                m.refresh();
            }
        }
        now
    });
    // A finished file appears in the folder list and changes the free space.
    Effect::new(move |previous: Option<HashMap<i64, FileState>>| {
        let now: HashMap<i64, FileState> = live
            .downloads
            .with(|map| map.iter().map(|(id, f)| (*id, f.state)).collect());
        if let Some(previous) = previous {
            if now.iter().any(|(id, state)| {
                *state == FileState::Installed && previous.get(id) != Some(state)
            }) {
                m.refresh();
            }
        }
        now
    });
    // Events sent while the socket was down are lost: catch up when it is back.
    Effect::new(move |previous: Option<Connection>| {
        let now = live.connection.get();
        if previous.is_some_and(|p| p != Connection::Live) && now == Connection::Live {
            m.refresh();
        }
        now
    });
    Effect::new(move |_| {
        let handle = set_interval_with_handle(
            move || {
                let polling = live.connection.try_get_untracked() == Some(Connection::Polling);
                let active = m
                    .data
                    .try_with_untracked(|d| d.presets.iter().any(|p| p.state.is_active()))
                    .unwrap_or(false);
                if polling && active {
                    m.refresh();
                }
            },
            POLL_EVERY,
        )
        .ok();
        on_cleanup(move || {
            if let Some(handle) = handle {
                handle.clear();
            }
        });
    });
}

// ---------------------------------------------------------------------------------------------
// Header: space, catalog, problems
// ---------------------------------------------------------------------------------------------

#[component]
fn SpaceCard(m: Models) -> impl IntoView {
    let space = Memo::new(move |_| m.data.with(|d| d.space.clone()));
    let known = move || space.with(|s| s.total_bytes > 0);
    let percent = Signal::derive(move || space.with(|s| percent_of(s.used_bytes, s.total_bytes)));
    view! {
        <Card title="Models volume" testid="space-card">
            <p class="mb-2 text-2xl font-semibold tabular-nums" data-testid="space-free">
                {move || if known() { format_bytes(space.with(|s| s.free_bytes)) } else { "unknown".to_string() }}
                <span class="text-base font-normal text-muted">" free"</span>
            </p>
            <div data-testid="space-meter">
                <Meter percent label="Models volume used"/>
            </div>
            <p class="mt-2 text-xs text-muted tabular-nums">
                {move || {
                    let s = space.get();
                    if known() {
                        format!("{} used of {}", format_bytes(s.used_bytes), format_bytes(s.total_bytes))
                    } else {
                        "Volume size unknown".to_string()
                    }
                }}
            </p>
            <p class="mt-1 text-xs text-muted" data-testid="space-reserve">
                {move || {
                    let s = space.get();
                    format!(
                        "Downloads keep {} free as a reserve, so {} can take new models.",
                        format_bytes(s.reserve_bytes),
                        format_bytes(s.usable_bytes()),
                    )
                }}
            </p>
        </Card>
    }
    .into_any()
}

#[component]
fn CatalogCard(m: Models) -> impl IntoView {
    let counts = Memo::new(move |_| {
        m.data.with(|d| {
            let mut by_layer: BTreeMap<String, usize> = BTreeMap::new();
            for p in &d.presets {
                *by_layer.entry(p.layer.clone()).or_default() += 1;
            }
            (d.presets.len(), by_layer)
        })
    });
    let gpus = Memo::new(move |_| m.data.with(|d| d.gpu_vram_bytes.clone()));
    let syncing = RwSignal::new(false);
    let result = RwSignal::new(None::<Result<String, String>>);
    let on_sync = move |_| {
        syncing.set(true);
        result.set(None);
        leptos::task::spawn_local(async move {
            let outcome = sync_catalog().await;
            if let Err(e) = &outcome {
                if e.login_required {
                    go_to_login();
                }
            }
            result.try_set(Some(outcome.map_err(|e| e.message)));
            syncing.try_set(false);
            m.refresh();
        });
    };
    view! {
        <Card title="Catalog" testid="catalog-card">
            <div class="flex items-start justify-between gap-3">
                <p class="text-2xl font-semibold tabular-nums">
                    {move || counts.with(|(n, _)| n.to_string())}
                    <span class="text-base font-normal text-muted">
                        {move || if counts.with(|(n, _)| *n == 1) { " preset" } else { " presets" }}
                    </span>
                </p>
                <button
                    type="button"
                    class="btn-secondary shrink-0"
                    data-testid="catalog-sync"
                    title="Re-reads the workspace presets and the remote registry, if one is set"
                    disabled=move || syncing.get()
                    on:click=on_sync
                >
                    {move || if syncing.get() { "Reloading…" } else { "Reload catalog" }}
                </button>
            </div>
            <p class="mt-1 text-xs text-muted">
                {move || counts.with(|(_, by_layer)| {
                    by_layer
                        .iter()
                        .map(|(layer, n)| format!("{n} {}", layer_label(layer)))
                        .collect::<Vec<_>>()
                        .join(" · ")
                })}
            </p>
            <p class="mt-1 text-xs text-muted" data-testid="gpu-summary">
                {move || gpus.with(|g| match g.as_slice() {
                    [] => "No GPU detected: whether a preset fits cannot be judged.".to_string(),
                    [one] => format!("GPU with {} of VRAM", format_bytes(*one)),
                    [largest, ..] => format!("{} GPUs, the largest with {} of VRAM", g.len(), format_bytes(*largest)),
                })}
            </p>
            {move || result.get().map(|r| match r {
                Ok(summary) => view! {
                    <p data-testid="catalog-sync-result" class="mt-2 text-sm text-ok wrap-anywhere">{summary}</p>
                }.into_any(),
                Err(message) => view! { <div class="mt-2"><ErrorNote message/></div> }.into_any(),
            })}
        </Card>
    }
    .into_any()
}

fn layer_label(layer: &str) -> String {
    match layer {
        "builtin" => "built in".to_string(),
        "workspace" => "from the workspace".to_string(),
        "remote" => "from the registry".to_string(),
        other => format!("from {other}"),
    }
}

#[component]
fn CatalogProblems(m: Models) -> impl IntoView {
    let problems = Memo::new(move |_| m.data.with(|d| d.catalog_problems.clone()));
    move || {
        let list = problems.get();
        (!list.is_empty()).then(|| {
            let n = list.len();
            view! {
                <details data-testid="catalog-problems" class="mb-4 rounded-xl border border-warn/40 bg-warn/10 px-4 py-3 text-sm">
                    <summary class="cursor-pointer font-medium text-warn">
                        {format!(
                            "{n} catalog problem{}: some presets could not be read",
                            if n == 1 { "" } else { "s" },
                        )}
                    </summary>
                    <ul class="mt-2 list-disc space-y-1 pl-5">
                        {list.into_iter().map(|p| view! { <li class="wrap-anywhere">{p}</li> }).collect_view()}
                    </ul>
                </details>
            }
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Catalog: filters and preset cards
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum InstalledFilter {
    #[default]
    All,
    Installed,
    NotInstalled,
    InProgress,
}

impl InstalledFilter {
    const ALL: [InstalledFilter; 4] = [
        InstalledFilter::All,
        InstalledFilter::Installed,
        InstalledFilter::NotInstalled,
        InstalledFilter::InProgress,
    ];

    fn as_str(self) -> &'static str {
        match self {
            InstalledFilter::All => "",
            InstalledFilter::Installed => "installed",
            InstalledFilter::NotInstalled => "not_installed",
            InstalledFilter::InProgress => "in_progress",
        }
    }

    fn label(self) -> &'static str {
        match self {
            InstalledFilter::All => "Installed or not",
            InstalledFilter::Installed => "Installed",
            InstalledFilter::NotInstalled => "Not installed",
            InstalledFilter::InProgress => "In progress",
        }
    }

    fn parse(s: &str) -> InstalledFilter {
        InstalledFilter::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .unwrap_or_default()
    }

    fn matches(self, state: InstallState) -> bool {
        let in_progress = matches!(
            state,
            InstallState::Queued | InstallState::Downloading | InstallState::Paused
        );
        match self {
            InstalledFilter::All => true,
            InstalledFilter::Installed => state.is_installed(),
            InstalledFilter::InProgress => in_progress,
            InstalledFilter::NotInstalled => !state.is_installed() && !in_progress,
        }
    }
}

/// The catalog filters, as the URL query holds them:
/// `?q=flux&category=…&type=image&tag=fp8&installed=installed&fits=1`.
#[derive(Clone, Debug, Default, PartialEq)]
struct Filters {
    q: String,
    category: String,
    kind: String,
    tag: String,
    installed: InstalledFilter,
    fits: bool,
}

impl Filters {
    fn from_query(query: &ParamsMap) -> Filters {
        let get = |key: &str| query.get(key).unwrap_or_default();
        Filters {
            q: get("q"),
            category: get("category"),
            kind: get("type"),
            tag: get("tag"),
            installed: InstalledFilter::parse(&get("installed")),
            fits: matches!(get("fits").as_str(), "1" | "true" | "yes"),
        }
    }

    fn is_default(&self) -> bool {
        *self == Filters::default()
    }

    fn to_url(&self) -> String {
        let fits = if self.fits { "1" } else { "" };
        let params: Vec<String> = [
            ("q", self.q.as_str()),
            ("category", self.category.as_str()),
            ("type", self.kind.as_str()),
            ("tag", self.tag.as_str()),
            ("installed", self.installed.as_str()),
            ("fits", fits),
        ]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", encode_component(v)))
        .collect();
        if params.is_empty() {
            "/models".to_string()
        } else {
            format!("/models?{}", params.join("&"))
        }
    }

    fn matches(&self, p: &PresetView, gpu_known: bool) -> bool {
        (self.category.is_empty() || p.category == self.category)
            && (self.kind.is_empty() || p.kind == self.kind)
            && (self.tag.is_empty() || p.tags.contains(&self.tag))
            && self.installed.matches(p.state)
            && (!self.fits || !gpu_known || matches!(p.vram_fit, VramFit::Fits | VramFit::Tight))
            && matches_search(p, &self.q)
    }
}

/// Every word must appear in the name, id, aliases, tags, description, use case, category or
/// type (case-insensitive).
fn matches_search(p: &PresetView, q: &str) -> bool {
    let words: Vec<String> = q.split_whitespace().map(str::to_lowercase).collect();
    if words.is_empty() {
        return true;
    }
    let mut hay = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        p.name,
        p.id,
        p.description,
        p.use_case.as_deref().unwrap_or(""),
        p.category,
        p.kind
    );
    for extra in p.aliases.iter().chain(&p.tags) {
        hay.push('\n');
        hay.push_str(extra);
    }
    let hay = hay.to_lowercase();
    words.iter().all(|w| hay.contains(w.as_str()))
}

/// The values the filter menus offer, from the catalog.
#[derive(Clone, Debug, Default, PartialEq)]
struct FilterOptions {
    categories: Vec<String>,
    kinds: Vec<String>,
    tags: Vec<String>,
}

impl FilterOptions {
    fn of(presets: &[PresetView]) -> FilterOptions {
        let unique = |items: &mut dyn Iterator<Item = &String>| -> Vec<String> {
            items
                .filter(|s| !s.is_empty())
                .cloned()
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect()
        };
        FilterOptions {
            categories: unique(&mut presets.iter().map(|p| &p.category)),
            kinds: unique(&mut presets.iter().map(|p| &p.kind)),
            tags: unique(&mut presets.iter().flat_map(|p| p.tags.iter())),
        }
    }
}

#[component]
fn Catalog(m: Models) -> impl IntoView {
    let query = use_query_map();
    let filters = Memo::new(move |_| query.with(Filters::from_query));
    let navigate = use_navigate();
    // Filters replace the history entry: the back button leaves the page, not a keystroke.
    let apply = Callback::new(move |f: Filters| {
        navigate(
            &f.to_url(),
            NavigateOptions {
                replace: true,
                scroll: false,
                ..Default::default()
            },
        )
    });
    let update = move |edit: &dyn Fn(&mut Filters)| {
        let mut f = filters.get_untracked();
        edit(&mut f);
        apply.run(f);
    };

    // The search box keeps its own text (typing must never be overwritten) and follows the URL
    // when that changes from elsewhere (a link, the Models tab, "Clear filters").
    let search = RwSignal::new(filters.with_untracked(|f| f.q.clone()));
    Effect::new(move |_| {
        let q = filters.with(|f| f.q.clone());
        if search.get_untracked() != q {
            search.set(q);
        }
    });

    let gpu_known = Memo::new(move |_| m.data.with(|d| !d.gpu_vram_bytes.is_empty()));
    let options = Memo::new(move |_| m.data.with(|d| FilterOptions::of(&d.presets)));
    let usable = Memo::new(move |_| m.data.with(|d| d.space.usable_bytes()));
    let total = Memo::new(move |_| m.data.with(|d| d.presets.len()));
    let shown = Memo::new(move |_| {
        let gpu = gpu_known.get();
        filters.with(|f| {
            m.data.with(|d| {
                let mut list: Vec<PresetView> = d
                    .presets
                    .iter()
                    .filter(|p| f.matches(p, gpu))
                    .cloned()
                    .collect();
                list.sort_by_cached_key(|p| (p.name.to_lowercase(), p.id.clone()));
                list
            })
        })
    });
    let set_tag = Callback::new(move |tag: String| update(&|f| f.tag = tag.clone()));

    let select_class =
        "w-full min-w-0 rounded-lg border border-line bg-surface-2 px-3 py-2 text-sm text-fg";
    view! {
        <section data-testid="catalog" class="mt-2">
            <div class="mb-3 flex flex-wrap items-baseline justify-between gap-2">
                <h2 class="text-lg font-semibold">"Presets"</h2>
                <div class="flex items-baseline gap-3">
                    <Show when=move || !filters.with(Filters::is_default)>
                        <button
                            type="button"
                            class="text-sm text-accent hover:underline"
                            data-testid="filters-clear"
                            on:click=move |_| {
                                search.set(String::new());
                                apply.run(Filters::default());
                            }
                        >
                            "Clear filters"
                        </button>
                    </Show>
                    <p data-testid="models-count" class="text-sm text-muted tabular-nums">
                        {move || {
                            let t = total.get();
                            format!("{} of {} preset{}", shown.with(Vec::len), t, if t == 1 { "" } else { "s" })
                        }}
                    </p>
                </div>
            </div>
            <div class="mb-4 grid grid-cols-2 gap-2 lg:grid-cols-[minmax(0,2fr)_repeat(4,minmax(0,1fr))_auto]">
                <input
                    type="search"
                    data-testid="models-search"
                    aria-label="Search presets"
                    placeholder="Search name, id, tag…"
                    autocomplete="off"
                    spellcheck="false"
                    class="col-span-2 min-w-0 rounded-lg border border-line bg-surface-2 px-3 py-2 text-sm text-fg lg:col-span-1"
                    prop:value=search
                    on:input=move |ev| {
                        let text = event_target_value(&ev);
                        search.set(text.clone());
                        update(&|f| f.q = text.clone());
                    }
                />
                <select
                    data-testid="filter-category"
                    aria-label="Category"
                    class=select_class
                    prop:value=move || filters.with(|f| f.category.clone())
                    on:change=move |ev| {
                        let v = event_target_value(&ev);
                        update(&|f| f.category = v.clone());
                    }
                >
                    <option value="" selected=move || filters.with(|f| f.category.is_empty())>"All categories"</option>
                    {move || with_current(options.with(|o| o.categories.clone()), filters.with(|f| f.category.clone()))
                        .into_iter()
                        .map(|c| {
                            let (value, label) = (c.clone(), c.clone());
                            view! { <option value=c selected=move || filters.with(|f| f.category == value)>{label}</option> }
                        })
                        .collect_view()}
                </select>
                <select
                    data-testid="filter-type"
                    aria-label="Type"
                    class=select_class
                    prop:value=move || filters.with(|f| f.kind.clone())
                    on:change=move |ev| {
                        let v = event_target_value(&ev);
                        update(&|f| f.kind = v.clone());
                    }
                >
                    <option value="" selected=move || filters.with(|f| f.kind.is_empty())>"All types"</option>
                    {move || with_current(options.with(|o| o.kinds.clone()), filters.with(|f| f.kind.clone()))
                        .into_iter()
                        .map(|k| {
                            let (value, label) = (k.clone(), k.clone());
                            view! { <option value=k selected=move || filters.with(|f| f.kind == value)>{label}</option> }
                        })
                        .collect_view()}
                </select>
                <select
                    data-testid="filter-tag"
                    aria-label="Tag"
                    class=select_class
                    prop:value=move || filters.with(|f| f.tag.clone())
                    on:change=move |ev| {
                        let v = event_target_value(&ev);
                        update(&|f| f.tag = v.clone());
                    }
                >
                    <option value="" selected=move || filters.with(|f| f.tag.is_empty())>"All tags"</option>
                    {move || with_current(options.with(|o| o.tags.clone()), filters.with(|f| f.tag.clone()))
                        .into_iter()
                        .map(|t| {
                            let (value, label) = (t.clone(), t.clone());
                            view! { <option value=t selected=move || filters.with(|f| f.tag == value)>{label}</option> }
                        })
                        .collect_view()}
                </select>
                <select
                    data-testid="filter-installed"
                    aria-label="Install state"
                    class=select_class
                    prop:value=move || filters.with(|f| f.installed.as_str())
                    on:change=move |ev| {
                        let v = InstalledFilter::parse(&event_target_value(&ev));
                        update(&|f| f.installed = v);
                    }
                >
                    {InstalledFilter::ALL.into_iter().map(|i| view! {
                        <option value=i.as_str() selected=move || filters.with(|f| f.installed == i)>{i.label()}</option>
                    }).collect_view()}
                </select>
                <label
                    class="col-span-2 flex min-w-0 items-center gap-2 whitespace-nowrap rounded-lg border border-line bg-surface px-3 py-2 text-sm lg:col-span-1"
                    title=move || if gpu_known.get() { "Presets whose VRAM need fits your largest GPU" } else { "No GPU detected, so fit cannot be judged" }
                >
                    <input
                        type="checkbox"
                        data-testid="filter-fits"
                        class="h-4 w-4 shrink-0 accent-accent"
                        disabled=move || !gpu_known.get()
                        prop:checked=move || gpu_known.get() && filters.with(|f| f.fits)
                        on:change=move |ev| {
                            let on = event_target_checked(&ev);
                            update(&|f| f.fits = on);
                        }
                    />
                    <span class=move || if gpu_known.get() { "" } else { "text-muted" }>"Fits my GPU"</span>
                    <Show when=move || !gpu_known.get()>
                        <span data-testid="filter-fits-hint" class="ml-auto text-xs text-muted">"no GPU detected"</span>
                    </Show>
                </label>
            </div>
            <Show
                when=move || !shown.with(Vec::is_empty)
                fallback=move || view! {
                    <div data-testid="models-none" class="rounded-xl border border-line bg-surface p-6 text-center text-sm text-muted">
                        <p>{move || if total.get() == 0 { "The catalog has no presets." } else { "No preset matches these filters." }}</p>
                    </div>
                }
            >
                <div class="grid gap-3 lg:grid-cols-2">
                    <For each=move || shown.get() key=|p| p.id.clone() let:preset>
                        <PresetCard initial=preset m usable set_tag/>
                    </For>
                </div>
            </Show>
        </section>
    }
    .into_any()
}

/// The menu's options, plus the current value when the catalog no longer has it (so the menu
/// shows what the URL asks for instead of silently showing "All").
fn with_current(mut options: Vec<String>, current: String) -> Vec<String> {
    if !current.is_empty() && !options.contains(&current) {
        options.push(current);
    }
    options
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Install,
    Pause,
    Resume,
    Cancel { delete_parts: bool },
    Remove,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Confirm {
    Cancel,
    Remove,
}

#[component]
fn PresetCard(
    initial: PresetView,
    m: Models,
    usable: Memo<u64>,
    set_tag: Callback<String>,
) -> impl IntoView {
    let id = initial.id.clone();
    let preset = {
        let id = id.clone();
        Memo::new(move |previous: Option<&PresetView>| {
            m.data
                .with(|d| d.presets.iter().find(|p| p.id == id).cloned())
                .or_else(|| previous.cloned())
                .unwrap_or_else(|| initial.clone())
        })
    };
    let live_event = {
        let id = id.clone();
        Memo::new(move |_| m.live_preset(&id))
    };
    let state = Memo::new(move |_| {
        live_event
            .with(|e| e.as_ref().map(|e| e.state))
            .unwrap_or_else(|| preset.with(|p| p.state))
    });
    let error = Memo::new(move |_| match live_event.get() {
        Some(event) => event.error,
        None => preset.with(|p| p.error.clone()),
    });
    let files = Memo::new(move |_| m.merge_files(preset.with(|p| p.files.clone())));
    let figures = Memo::new(move |_| {
        live_event
            .with(|e| e.as_ref().map(|e| e.figures.clone()))
            .unwrap_or_else(|| files.with(|f| TransferFigures::of_preset(f)))
    });

    let busy = RwSignal::new(false);
    let action_error = RwSignal::new(None::<String>);
    let notice = RwSignal::new(None::<String>);
    let confirm = RwSignal::new(None::<Confirm>);
    let run = {
        let id = id.clone();
        Callback::new(move |op: Op| {
            let id = id.clone();
            busy.set(true);
            action_error.set(None);
            notice.set(None);
            confirm.set(None);
            leptos::task::spawn_local(async move {
                let outcome: Result<Option<String>, ApiError> = match op {
                    Op::Install => install_preset(id).await.map(|_| None),
                    Op::Pause => pause_preset(id).await.map(|()| None),
                    Op::Resume => resume_preset(id).await.map(|()| None),
                    Op::Cancel { delete_parts } => {
                        cancel_preset(id, delete_parts).await.map(|()| {
                            Some(if delete_parts {
                                "Cancelled; the downloaded parts were deleted.".to_string()
                            } else {
                                "Cancelled; the downloaded parts were kept, so installing again continues where it stopped.".to_string()
                            })
                        })
                    }
                    Op::Remove => remove_preset(id)
                        .await
                        .map(|freed| Some(format!("Removed; {} freed.", format_bytes(freed)))),
                };
                match outcome {
                    Ok(message) => {
                        notice.try_set(message);
                    }
                    Err(e) => {
                        if e.login_required {
                            go_to_login();
                        }
                        action_error.try_set(Some(e.message));
                    }
                }
                busy.try_set(false);
                m.refresh();
            });
        })
    };

    let can_install = move || {
        matches!(
            state.get(),
            InstallState::NotInstalled
                | InstallState::Partial
                | InstallState::Failed
                | InstallState::UpdateAvailable
        )
    };
    let can_pause = move || state.get().is_active();
    let can_resume = move || matches!(state.get(), InstallState::Paused | InstallState::Failed);
    let can_cancel = move || {
        matches!(
            state.get(),
            InstallState::Queued
                | InstallState::Downloading
                | InstallState::Paused
                | InstallState::Failed
        )
    };
    let can_remove = move || {
        matches!(
            state.get(),
            InstallState::Installed | InstallState::Partial | InstallState::UpdateAvailable
        )
    };
    let shows_progress = move || {
        let s = state.get();
        matches!(
            s,
            InstallState::Queued | InstallState::Downloading | InstallState::Paused
        ) || (s == InstallState::Failed && figures.with(|f| f.bytes_done > 0))
    };
    let short_of_space = move || {
        let needed = preset.with(|p| p.remaining_bytes);
        let avail = usable.get();
        (can_install() && needed > avail).then_some((needed, avail))
    };

    let name = move || preset.with(|p| p.name.clone());
    view! {
        <article
            data-testid="preset-card"
            data-preset-id=id.clone()
            data-state=move || state_key(state.get())
            class="flex min-w-0 flex-col gap-3 rounded-xl border border-line bg-surface p-4 shadow-sm"
        >
            <header class="flex items-start gap-3">
                <div class="min-w-0 flex-1">
                    <h3 class="font-medium leading-snug wrap-anywhere">{name}</h3>
                    <p class="mt-0.5 text-xs text-muted wrap-anywhere">
                        {move || preset.with(|p| {
                            let mut parts = vec![p.kind.clone(), p.category.clone()];
                            if let Some(v) = &p.version {
                                parts.push(format!("v{v}"));
                            }
                            if p.layer != "builtin" {
                                parts.push(layer_label(&p.layer));
                            }
                            parts.retain(|s| !s.is_empty());
                            parts.join(" · ")
                        })}
                    </p>
                    <p class="mt-0.5 font-mono text-xs text-muted break-all">{id.clone()}</p>
                </div>
                <span data-testid="preset-state" class=move || badge(state_tone(state.get()))>
                    {move || state.get().label()}
                </span>
            </header>

            {move || preset.with(|p| (!p.description.is_empty()).then(|| view! {
                <p class="text-sm leading-snug wrap-anywhere">{p.description.clone()}</p>
            }))}
            {move || preset.with(|p| p.use_case.clone()).map(|u| view! {
                <p class="text-xs text-muted wrap-anywhere">{u}</p>
            })}

            {move || {
                let tags = preset.with(|p| p.tags.clone());
                (!tags.is_empty()).then(|| view! {
                    <ul class="flex flex-wrap gap-1.5" aria-label="Tags">
                        {tags.into_iter().map(|tag| {
                            let t = tag.clone();
                            view! {
                                <li>
                                    <button
                                        type="button"
                                        class="rounded-full bg-surface-2 px-2 py-0.5 text-xs text-muted hover:text-fg wrap-anywhere"
                                        title="Show presets with this tag"
                                        on:click=move |_| set_tag.run(t.clone())
                                    >
                                        {tag}
                                    </button>
                                </li>
                            }
                        }).collect_view()}
                    </ul>
                })
            }}

            <dl class="grid grid-cols-[auto_1fr] gap-x-3 gap-y-1 text-sm">
                <dt class="text-muted">"Download"</dt>
                <dd class="tabular-nums" data-testid="preset-size">
                    {move || preset.with(|p| {
                        let size = p.download_bytes.map(format_bytes).unwrap_or_else(|| "unknown".to_string());
                        // Only worth saying when part of it is already here.
                        let some_installed = files.with(|f| f.iter().any(|f| !f.optional && f.state == FileState::Installed));
                        if some_installed && p.remaining_bytes > 0 && can_install() {
                            format!("{size} ({} still to fetch)", format_bytes(p.remaining_bytes))
                        } else {
                            size
                        }
                    })}
                </dd>
                <dt class="text-muted">"VRAM"</dt>
                <dd class="flex flex-wrap items-center gap-2" data-testid="preset-vram">
                    {move || preset.with(|p| match p.vram_gb {
                        Some(gb) => view! {
                            <span class="tabular-nums">{format_gb(gb)}</span>
                            <span class=badge(fit_tone(p.vram_fit))>
                                {if p.vram_fit == VramFit::Unknown { "no GPU to compare" } else { p.vram_fit.label() }}
                            </span>
                        }.into_any(),
                        None => view! { <span class="text-muted">"unknown"</span> }.into_any(),
                    })}
                </dd>
            </dl>

            {move || short_of_space().map(|(needed, avail)| view! {
                <p data-testid="preset-space-warning" class="rounded-lg border border-warn/40 bg-warn/10 px-3 py-2 text-sm text-warn">
                    {format!(
                        "Needs {}, {} free after the reserve. Installing will likely be refused; free some space first.",
                        format_bytes(needed),
                        format_bytes(avail),
                    )}
                </p>
            })}

            {move || error.get().map(|message| view! {
                <p data-testid="preset-error" role="alert" class="rounded-lg border border-bad/40 bg-bad/10 px-3 py-2 text-sm text-bad wrap-anywhere">
                    {message}
                </p>
            })}

            <Show when=shows_progress>
                <PresetProgressView state figures/>
            </Show>

            <details data-testid="preset-files" class="group text-sm">
                <summary class="flex cursor-pointer list-none items-center gap-1 text-muted hover:text-fg [&::-webkit-details-marker]:hidden">
                    <Chevron/>
                    {move || files.with(|f| {
                        let installed = f.iter().filter(|f| f.state == FileState::Installed).count();
                        format!(
                            "{} file{} · {} installed",
                            f.len(),
                            if f.len() == 1 { "" } else { "s" },
                            installed,
                        )
                    })}
                </summary>
                <ul class="mt-2 divide-y divide-line rounded-lg border border-line px-3">
                    <For each=move || files.get() key=|f| f.path.clone() let:file>
                        <FileRow initial=file files m/>
                    </For>
                </ul>
            </details>

            <div class="flex flex-wrap gap-2">
                <Show when=can_install>
                    <button
                        type="button"
                        class="btn-primary"
                        data-testid="preset-install"
                        disabled=move || busy.get()
                        on:click=move |_| run.run(Op::Install)
                    >
                        {move || if state.get() == InstallState::UpdateAvailable { "Update" } else { "Install" }}
                    </button>
                </Show>
                <Show when=can_pause>
                    <button type="button" class="btn-secondary" data-testid="preset-pause" disabled=move || busy.get() on:click=move |_| run.run(Op::Pause)>
                        "Pause"
                    </button>
                </Show>
                <Show when=can_resume>
                    <button type="button" class="btn-secondary" data-testid="preset-resume" disabled=move || busy.get() on:click=move |_| run.run(Op::Resume)>
                        "Resume"
                    </button>
                </Show>
                <Show when=can_cancel>
                    <button type="button" class="btn-secondary" data-testid="preset-cancel" disabled=move || busy.get() on:click=move |_| confirm.set(Some(Confirm::Cancel))>
                        "Cancel"
                    </button>
                </Show>
                <Show when=can_remove>
                    <button type="button" class="btn-danger" data-testid="preset-remove" disabled=move || busy.get() on:click=move |_| confirm.set(Some(Confirm::Remove))>
                        "Remove"
                    </button>
                </Show>
            </div>

            {move || confirm.get().map(|c| match c {
                Confirm::Remove => view! {
                    <div data-testid="preset-confirm" role="group" aria-label="Confirm removal" class="rounded-lg border border-bad/40 bg-bad/5 p-3 text-sm">
                        <p class="mb-2 wrap-anywhere">
                            {format!("Delete the files of \u{201c}{}\u{201d}? Files that another installed preset uses are kept.", name())}
                        </p>
                        <div class="flex flex-wrap gap-2">
                            <button type="button" class="btn-danger" data-testid="preset-remove-confirm" on:click=move |_| run.run(Op::Remove)>
                                "Delete files"
                            </button>
                            <button type="button" class="btn-secondary" data-testid="preset-confirm-back" on:click=move |_| confirm.set(None)>
                                "Keep them"
                            </button>
                        </div>
                    </div>
                }.into_any(),
                Confirm::Cancel => view! {
                    <div data-testid="preset-confirm" role="group" aria-label="Confirm cancelling" class="rounded-lg border border-line bg-surface-2 p-3 text-sm">
                        <p class="mb-2 wrap-anywhere">
                            {format!("Stop installing \u{201c}{}\u{201d}? Kept parts let a later install continue where it stopped.", name())}
                        </p>
                        <div class="flex flex-wrap gap-2">
                            <button type="button" class="btn-secondary" data-testid="preset-cancel-keep" on:click=move |_| run.run(Op::Cancel { delete_parts: false })>
                                "Stop, keep parts"
                            </button>
                            <button type="button" class="btn-danger" data-testid="preset-cancel-delete" on:click=move |_| run.run(Op::Cancel { delete_parts: true })>
                                "Stop, delete parts"
                            </button>
                            <button type="button" class="btn-secondary" data-testid="preset-confirm-back" on:click=move |_| confirm.set(None)>
                                "Back"
                            </button>
                        </div>
                    </div>
                }.into_any(),
            })}

            {move || action_error.get().map(|message| view! {
                <p data-testid="preset-action-error" role="alert" class="rounded-lg border border-bad/40 bg-bad/10 px-3 py-2 text-sm text-bad wrap-anywhere">
                    {message}
                </p>
            })}
            {move || notice.get().map(|message| view! {
                <p data-testid="preset-notice" aria-live="polite" class="text-sm text-ok">{message}</p>
            })}
        </article>
    }
    .into_any()
}

#[component]
fn PresetProgressView(state: Memo<InstallState>, figures: Memo<TransferFigures>) -> impl IntoView {
    let percent = Signal::derive(move || {
        figures.with(|f| {
            f.total_bytes
                .filter(|t| *t > 0)
                .map(|t| percent_of(f.bytes_done, t))
        })
    });
    let tone = Signal::derive(move || bar_tone(state.get()));
    view! {
        <div data-testid="preset-progress" class="space-y-1.5">
            <ProgressBar percent tone label="Install progress"/>
            <p class="flex flex-wrap gap-x-3 gap-y-0.5 text-xs text-muted tabular-nums">
                <span data-testid="preset-progress-bytes">{move || figures.with(bytes_text)}</span>
                {move || {
                    let f = figures.get();
                    match state.get() {
                        InstallState::Downloading => view! {
                            {(f.speed_bps > 0).then(|| view! {
                                <span data-testid="preset-speed">{format!("{}/s", format_bytes(f.speed_bps))}</span>
                            })}
                            {f.eta_secs.map(|eta| view! {
                                <span data-testid="preset-eta">{format!("{} left", format_duration_secs(eta))}</span>
                            })}
                        }.into_any(),
                        InstallState::Queued => view! { <span>"waiting for a download slot"</span> }.into_any(),
                        InstallState::Paused => view! { <span>"paused"</span> }.into_any(),
                        _ => ().into_any(),
                    }
                }}
            </p>
        </div>
    }
    .into_any()
}

#[component]
fn FileRow(initial: PresetFileView, files: Memo<Vec<PresetFileView>>, m: Models) -> impl IntoView {
    let path = initial.path.clone();
    let file = {
        let path = path.clone();
        Memo::new(move |previous: Option<&PresetFileView>| {
            files
                .with(|list| list.iter().find(|f| f.path == path).cloned())
                .or_else(|| previous.cloned())
                .unwrap_or_else(|| initial.clone())
        })
    };
    let state = Memo::new(move |_| file.with(|f| f.state));
    let task = Memo::new(move |_| file.with(|f| f.task_id));
    let busy = RwSignal::new(false);
    let op_error = RwSignal::new(None::<String>);
    let confirming = RwSignal::new(false);

    #[derive(Clone, Copy)]
    enum FileOp {
        Pause,
        Resume,
        Cancel { delete_part: bool },
    }
    let run = move |op: FileOp| {
        let Some(task_id) = task.get_untracked() else {
            return;
        };
        busy.set(true);
        op_error.set(None);
        confirming.set(false);
        leptos::task::spawn_local(async move {
            let outcome = match op {
                FileOp::Pause => pause_download(task_id).await,
                FileOp::Resume => resume_download(task_id).await,
                FileOp::Cancel { delete_part } => cancel_download(task_id, delete_part).await,
            };
            if let Err(e) = outcome {
                if e.login_required {
                    go_to_login();
                }
                op_error.try_set(Some(e.message));
            }
            busy.try_set(false);
            m.refresh();
        });
    };

    let has_task = move || task.get().is_some();
    let in_transfer = move || {
        has_task()
            && matches!(
                state.get(),
                FileState::Queued | FileState::Downloading | FileState::Paused | FileState::Failed
            )
    };
    // A file that failed before its first byte has no progress worth a bar.
    let shows_progress = move || {
        in_transfer()
            && (state.get() != FileState::Failed || file.with(|f| f.figures.bytes_done > 0))
    };
    let percent = Signal::derive(move || {
        file.with(|f| {
            f.figures
                .total_bytes
                .or(f.size_bytes)
                .filter(|t| *t > 0)
                .map(|t| percent_of(f.figures.bytes_done, t))
        })
    });
    let tone = Signal::derive(move || file_bar_tone(state.get()));
    view! {
        <li
            data-testid="preset-file"
            data-path=path.clone()
            data-state=move || file_state_key(state.get())
            class="space-y-1.5 py-2.5"
        >
            <div class="flex items-start justify-between gap-2">
                <code class="min-w-0 break-all font-mono text-xs">{path.clone()}</code>
                <span class=move || badge(file_tone(state.get()))>{move || state.get().label()}</span>
            </div>
            <p class="text-xs text-muted tabular-nums">
                {move || file.with(|f| {
                    let mut parts = Vec::new();
                    if shows_progress() {
                        let mut figures = f.figures.clone();
                        figures.total_bytes = figures.total_bytes.or(f.size_bytes);
                        parts.push(bytes_text(&figures));
                        if f.state == FileState::Downloading {
                            if f.figures.speed_bps > 0 {
                                parts.push(format!("{}/s", format_bytes(f.figures.speed_bps)));
                            }
                            if let Some(eta) = f.figures.eta_secs {
                                parts.push(format!("{} left", format_duration_secs(eta)));
                            }
                        }
                    } else {
                        parts.push(f.size_bytes.map(format_bytes).unwrap_or_else(|| "size unknown".to_string()));
                    }
                    if f.optional {
                        parts.push("optional".to_string());
                    }
                    parts.join(" · ")
                })}
            </p>
            <Show when=shows_progress>
                <ProgressBar percent tone label="File download progress"/>
            </Show>
            {move || file.with(|f| f.error.clone()).map(|message| view! {
                <p data-testid="preset-file-error" class="text-xs text-bad wrap-anywhere">{message}</p>
            })}
            <Show when=has_task>
                <div class="flex flex-wrap gap-2">
                    <Show when=move || matches!(state.get(), FileState::Queued | FileState::Downloading)>
                        <button type="button" class="btn-secondary px-2 py-1 text-xs" data-testid="file-pause" disabled=move || busy.get() on:click=move |_| run(FileOp::Pause)>
                            "Pause"
                        </button>
                    </Show>
                    <Show when=move || matches!(state.get(), FileState::Paused | FileState::Failed)>
                        <button type="button" class="btn-secondary px-2 py-1 text-xs" data-testid="file-resume" disabled=move || busy.get() on:click=move |_| run(FileOp::Resume)>
                            "Resume"
                        </button>
                    </Show>
                    <Show when=in_transfer>
                        <button type="button" class="btn-secondary px-2 py-1 text-xs" data-testid="file-cancel" disabled=move || busy.get() on:click=move |_| confirming.set(true)>
                            "Cancel"
                        </button>
                    </Show>
                </div>
            </Show>
            <Show when=move || confirming.get() && has_task()>
                <div class="flex flex-wrap items-center gap-2 rounded-lg bg-surface-2 p-2 text-xs" role="group" aria-label="Confirm cancelling this file">
                    <span class="w-full">"Stop this file?"</span>
                    <button type="button" class="btn-secondary px-2 py-1 text-xs" data-testid="file-cancel-keep" on:click=move |_| run(FileOp::Cancel { delete_part: false })>
                        "Stop, keep part"
                    </button>
                    <button type="button" class="btn-danger px-2 py-1 text-xs" data-testid="file-cancel-delete" on:click=move |_| run(FileOp::Cancel { delete_part: true })>
                        "Stop, delete part"
                    </button>
                    <button type="button" class="btn-secondary px-2 py-1 text-xs" on:click=move |_| confirming.set(false)>
                        "Back"
                    </button>
                </div>
            </Show>
            {move || op_error.get().map(|message| view! {
                <p role="alert" class="text-xs text-bad wrap-anywhere">{message}</p>
            })}
        </li>
    }
    .into_any()
}

// ---------------------------------------------------------------------------------------------
// Installed models, by folder
// ---------------------------------------------------------------------------------------------

#[component]
fn InstalledModels(m: Models) -> impl IntoView {
    let folders = Memo::new(move |_| m.data.with(|d| d.folders.clone()));
    let summary = move || {
        folders.with(|list| {
            let files: usize = list.iter().map(|f| f.files.len()).sum();
            let bytes: u64 = list.iter().map(|f| f.bytes).sum();
            format!(
                "{files} file{} · {} in {} folder{}",
                if files == 1 { "" } else { "s" },
                format_bytes(bytes),
                list.len(),
                if list.len() == 1 { "" } else { "s" },
            )
        })
    };
    view! {
        <section data-testid="installed-models" class="mt-8">
            <div class="mb-3 flex flex-wrap items-baseline justify-between gap-2">
                <h2 class="text-lg font-semibold">"Installed models"</h2>
                <p class="text-sm text-muted tabular-nums">{summary}</p>
            </div>
            <Show
                when=move || !folders.with(Vec::is_empty)
                fallback=|| view! {
                    <p data-testid="models-folder-empty" class="rounded-xl border border-line bg-surface p-6 text-center text-sm text-muted">
                        "The models folder has no model files yet."
                    </p>
                }
            >
                <div class="space-y-2">
                    <For each=move || folders.get() key=|f| f.name.clone() let:folder>
                        <FolderRow initial=folder folders/>
                    </For>
                </div>
            </Show>
        </section>
    }
    .into_any()
}

#[component]
fn FolderRow(initial: ModelFolderView, folders: Memo<Vec<ModelFolderView>>) -> impl IntoView {
    let name = initial.name.clone();
    let folder = {
        let name = name.clone();
        Memo::new(move |previous: Option<&ModelFolderView>| {
            folders
                .with(|list| list.iter().find(|f| f.name == name).cloned())
                .or_else(|| previous.cloned())
                .unwrap_or_else(|| initial.clone())
        })
    };
    view! {
        <details data-testid="model-folder" data-folder=name.clone() class="group rounded-xl border border-line bg-surface">
            <summary class="flex cursor-pointer list-none items-center gap-2 px-4 py-3 [&::-webkit-details-marker]:hidden">
                <Chevron/>
                <span class="min-w-0 break-all font-mono text-sm font-medium">{name.clone()}</span>
                <span class="ml-auto shrink-0 text-xs text-muted tabular-nums">
                    {move || folder.with(|f| format!(
                        "{} file{} · {}",
                        f.files.len(),
                        if f.files.len() == 1 { "" } else { "s" },
                        format_bytes(f.bytes),
                    ))}
                </span>
            </summary>
            <ul class="divide-y divide-line border-t border-line">
                <For
                    each=move || folder.with(|f| f.files.clone())
                    key=|f| (f.path.clone(), f.bytes, f.verified, f.preset_id.clone())
                    let:file
                >
                    <li data-testid="model-file" data-path=file.path.clone() class="flex flex-col gap-1 px-4 py-2 sm:flex-row sm:items-center sm:gap-3">
                        <code class="min-w-0 flex-1 break-all font-mono text-xs">{file.path.clone()}</code>
                        <div class="flex shrink-0 flex-wrap items-center gap-2 text-xs">
                            <span class="tabular-nums text-muted">{format_bytes(file.bytes)}</span>
                            {if file.verified {
                                view! {
                                    <span data-testid="model-file-verified" class=badge(Tone::Ok) title="Checked when comfydeck downloaded it">"verified"</span>
                                }.into_any()
                            } else {
                                view! {
                                    <span class="text-muted" title="Not downloaded by comfydeck, or changed since">"not verified"</span>
                                }.into_any()
                            }}
                            {match file.preset_id.clone() {
                                Some(id) => {
                                    let href = format!("/models?q={}", encode_component(&id));
                                    view! {
                                    <a
                                        href=href
                                        class="font-mono text-accent hover:underline break-all"
                                        title="Show this preset"
                                    >
                                        {id}
                                    </a>
                                    }.into_any()
                                }
                                None => view! { <span class="text-muted">"not from a preset"</span> }.into_any(),
                            }}
                        </div>
                    </li>
                </For>
            </ul>
        </details>
    }
    .into_any()
}

// ---------------------------------------------------------------------------------------------
// Small pieces
// ---------------------------------------------------------------------------------------------

/// A disclosure arrow that turns when its `<details class="group">` opens.
#[component]
fn Chevron() -> impl IntoView {
    view! {
        <svg
            class="h-4 w-4 shrink-0 transition-transform group-open:rotate-90"
            viewBox="0 0 24 24"
            fill="none"
            stroke="currentColor"
            stroke-width="2"
            stroke-linecap="round"
            stroke-linejoin="round"
            aria-hidden="true"
        >
            <path d="m9 6 6 6-6 6"/>
        </svg>
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tone {
    Ok,
    Warn,
    Bad,
    Accent,
    Muted,
}

fn badge(tone: Tone) -> &'static str {
    match tone {
        Tone::Ok => "inline-flex shrink-0 items-center rounded-full border border-ok/40 bg-ok/10 px-2 py-0.5 text-xs font-medium text-ok",
        Tone::Warn => "inline-flex shrink-0 items-center rounded-full border border-warn/40 bg-warn/10 px-2 py-0.5 text-xs font-medium text-warn",
        Tone::Bad => "inline-flex shrink-0 items-center rounded-full border border-bad/40 bg-bad/10 px-2 py-0.5 text-xs font-medium text-bad",
        Tone::Accent => "inline-flex shrink-0 items-center rounded-full border border-accent/40 bg-accent/10 px-2 py-0.5 text-xs font-medium text-accent",
        Tone::Muted => "inline-flex shrink-0 items-center rounded-full border border-line bg-surface-2 px-2 py-0.5 text-xs font-medium text-muted",
    }
}

fn state_tone(state: InstallState) -> Tone {
    match state {
        InstallState::Installed => Tone::Ok,
        InstallState::UpdateAvailable | InstallState::Queued | InstallState::Downloading => {
            Tone::Accent
        }
        InstallState::Paused | InstallState::Partial => Tone::Warn,
        InstallState::Failed => Tone::Bad,
        InstallState::NotInstalled => Tone::Muted,
    }
}

fn file_tone(state: FileState) -> Tone {
    match state {
        FileState::Installed => Tone::Ok,
        FileState::Queued | FileState::Downloading => Tone::Accent,
        FileState::Paused => Tone::Warn,
        FileState::Failed => Tone::Bad,
        FileState::Missing => Tone::Muted,
    }
}

fn fit_tone(fit: VramFit) -> Tone {
    match fit {
        VramFit::Fits => Tone::Ok,
        VramFit::Tight => Tone::Warn,
        VramFit::TooBig => Tone::Bad,
        VramFit::Unknown => Tone::Muted,
    }
}

fn bar_tone(state: InstallState) -> &'static str {
    match state {
        InstallState::Paused => "bg-warn",
        InstallState::Failed => "bg-bad",
        InstallState::Queued => "bg-muted",
        _ => "bg-accent",
    }
}

fn file_bar_tone(state: FileState) -> &'static str {
    match state {
        FileState::Paused => "bg-warn",
        FileState::Failed => "bg-bad",
        FileState::Queued => "bg-muted",
        _ => "bg-accent",
    }
}

/// The serde name of the state, for `data-state` (tests and styles read it).
fn state_key(state: InstallState) -> &'static str {
    match state {
        InstallState::NotInstalled => "not_installed",
        InstallState::Queued => "queued",
        InstallState::Downloading => "downloading",
        InstallState::Paused => "paused",
        InstallState::Partial => "partial",
        InstallState::Installed => "installed",
        InstallState::Failed => "failed",
        InstallState::UpdateAvailable => "update_available",
    }
}

fn file_state_key(state: FileState) -> &'static str {
    match state {
        FileState::Missing => "missing",
        FileState::Queued => "queued",
        FileState::Downloading => "downloading",
        FileState::Paused => "paused",
        FileState::Failed => "failed",
        FileState::Installed => "installed",
    }
}

/// `12 GB`, `7.5 GB`.
fn format_gb(gb: f32) -> String {
    if (gb - gb.round()).abs() < 0.05 {
        format!("{gb:.0} GB")
    } else {
        format!("{gb:.1} GB")
    }
}

/// `3.1 MB of 9.0 MB (34%)`, or just the bytes done when the total is not known.
fn bytes_text(f: &TransferFigures) -> String {
    match f.total_bytes.filter(|t| *t > 0) {
        Some(total) => format!(
            "{} of {} ({:.0}%)",
            format_bytes(f.bytes_done),
            format_bytes(total),
            percent_of(f.bytes_done, total).floor(),
        ),
        None => format!("{} so far", format_bytes(f.bytes_done)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn preset(id: &str, state: InstallState) -> PresetView {
        PresetView {
            id: id.into(),
            aliases: vec![id.to_uppercase().replace('-', "_")],
            name: format!("Preset {id}"),
            category: "Image Generation".into(),
            kind: "image".into(),
            description: "A test preset".into(),
            use_case: None,
            tags: vec!["fp8".into(), "flux".into()],
            version: None,
            download_bytes: Some(10),
            remaining_bytes: 10,
            vram_gb: Some(12.0),
            vram_fit: VramFit::Fits,
            state,
            files: vec![],
            layer: "builtin".into(),
            error: None,
        }
    }

    #[test]
    fn search_looks_at_names_ids_aliases_and_tags() {
        let p = preset("e2e-tiny", InstallState::NotInstalled);
        assert!(matches_search(&p, "e2e"));
        assert!(matches_search(&p, "E2E_TINY"));
        assert!(matches_search(&p, "flux test"));
        assert!(!matches_search(&p, "flux video"));
        assert!(matches_search(&p, "  "));
    }

    #[test]
    fn filters_round_trip_through_the_url() {
        let f = Filters {
            q: "a b&c".into(),
            category: "Image Generation".into(),
            kind: "image".into(),
            tag: String::new(),
            installed: InstalledFilter::InProgress,
            fits: true,
        };
        assert_eq!(
            f.to_url(),
            "/models?q=a%20b%26c&category=Image%20Generation&type=image&installed=in_progress&fits=1"
        );
        assert_eq!(Filters::default().to_url(), "/models");
    }

    #[test]
    fn install_filter_groups_states() {
        assert!(InstalledFilter::Installed.matches(InstallState::UpdateAvailable));
        assert!(InstalledFilter::InProgress.matches(InstallState::Paused));
        assert!(InstalledFilter::NotInstalled.matches(InstallState::Partial));
        assert!(!InstalledFilter::NotInstalled.matches(InstallState::Downloading));
    }

    #[test]
    fn fits_filter_is_ignored_without_a_gpu() {
        let mut p = preset("x", InstallState::NotInstalled);
        p.vram_fit = VramFit::TooBig;
        let f = Filters {
            fits: true,
            ..Default::default()
        };
        assert!(!f.matches(&p, true));
        assert!(f.matches(&p, false));
    }
}
