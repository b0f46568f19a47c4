//! The preset list: the filter bar (search, menus, "Fits my GPU") over the matching preset
//! cards, a page of them at a time ("Show more" is a link, so it works before the page's code
//! has loaded too).

use engine::model::*;
use leptos::prelude::*;
use leptos_router::hooks::{use_navigate, use_query_map};
use leptos_router::NavigateOptions;

use super::filters::{shown_from_query, FilterOptions, Filters, InstalledFilter, PAGE};
use super::preset_card::PresetCard;
use super::state::Models;

#[component]
pub(super) fn Catalog(m: Models) -> impl IntoView {
    let query = use_query_map();
    let filters = Memo::new(move |_| query.with(Filters::from_query));
    let limit = Memo::new(move |_| query.with(shown_from_query));
    let navigate = use_navigate();
    // Filters and "Show more" replace the history entry: the back button leaves the page, not
    // a keystroke.
    let go = Callback::new(move |url: String| {
        navigate(
            &url,
            NavigateOptions {
                replace: true,
                scroll: false,
                ..Default::default()
            },
        )
    });
    let apply = Callback::new(move |f: Filters| go.run(f.to_url()));
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
    let matching = Memo::new(move |_| {
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
    let listed = Memo::new(move |_| {
        let n = limit.get();
        matching.with(|all| all.iter().take(n).cloned().collect::<Vec<_>>())
    });
    let not_listed = move || matching.with(Vec::len).saturating_sub(limit.get());
    let showing_url = move |n: usize| filters.with(|f| f.to_url_showing(n));
    let show = move |ev: leptos::ev::MouseEvent, n: usize| {
        ev.prevent_default();
        go.run(showing_url(n));
    };
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
                            format!("{} of {} preset{}", matching.with(Vec::len), t, if t == 1 { "" } else { "s" })
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
                when=move || !matching.with(Vec::is_empty)
                fallback=move || view! {
                    <div data-testid="models-none" class="rounded-xl border border-line bg-surface p-6 text-center text-sm text-muted">
                        <p>{move || if total.get() == 0 { "The catalog has no presets." } else { "No preset matches these filters." }}</p>
                    </div>
                }
            >
                <div class="grid gap-3 lg:grid-cols-2">
                    <For each=move || listed.get() key=|p| p.id.clone() let:preset>
                        <PresetCard initial=preset m usable set_tag/>
                    </For>
                </div>
                <Show when=move || { not_listed() > 0 }>
                    <div data-testid="models-more" class="mt-4 flex flex-wrap items-center justify-center gap-x-4 gap-y-2">
                        <p class="w-full text-center text-sm text-muted tabular-nums sm:w-auto">
                            {move || format!("Showing {} of {}", limit.get(), matching.with(Vec::len))}
                        </p>
                        <a
                            data-testid="models-show-more"
                            class="btn-secondary"
                            href=move || showing_url(limit.get() + PAGE)
                            on:click=move |ev| show(ev, limit.get_untracked() + PAGE)
                        >
                            {move || format!("Show {} more", not_listed().min(PAGE))}
                        </a>
                        <a
                            data-testid="models-show-all"
                            class="text-sm text-accent hover:underline"
                            href=move || showing_url(matching.with(Vec::len))
                            on:click=move |ev| show(ev, matching.with_untracked(Vec::len))
                        >
                            {move || format!("Show all {}", matching.with(Vec::len))}
                        </a>
                    </div>
                </Show>
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
