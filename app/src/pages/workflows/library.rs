//! The library: filters, one card per workflow with what it needs, rename and delete.

use engine::model::*;
use leptos::prelude::*;

use super::install::InstallPresetButton;
use super::labels::{describe, format_date, source_label, source_tone};
use super::shelf::Shelf;
use crate::api::{delete_workflow, rename_workflow};
use crate::components::{badge, ErrorNote};
use crate::pages::run_panel::RunPhase;
use crate::pages::runnable::MakeRunnable;
use crate::server_calls::Write;

/// Which sources the list shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum SourceFilter {
    #[default]
    All,
    Only(WorkflowSource),
}

impl SourceFilter {
    const ALL: [SourceFilter; 4] = [
        SourceFilter::All,
        SourceFilter::Only(WorkflowSource::User),
        SourceFilter::Only(WorkflowSource::Template),
        SourceFilter::Only(WorkflowSource::ComfyUi),
    ];

    fn as_str(self) -> &'static str {
        match self {
            SourceFilter::All => "",
            SourceFilter::Only(s) => s.as_str(),
        }
    }

    fn label(self) -> &'static str {
        match self {
            SourceFilter::All => "Any source",
            SourceFilter::Only(WorkflowSource::User) => "Mine",
            SourceFilter::Only(WorkflowSource::Template) => "Templates",
            SourceFilter::Only(WorkflowSource::ComfyUi) => "ComfyUI",
        }
    }

    fn parse(s: &str) -> SourceFilter {
        WorkflowSource::parse(s)
            .map(SourceFilter::Only)
            .unwrap_or_default()
    }

    fn matches(self, source: WorkflowSource) -> bool {
        match self {
            SourceFilter::All => true,
            SourceFilter::Only(s) => s == source,
        }
    }
}

/// Every word must appear in the name, path, a required model file or an input's label.
fn matches_search(w: &WorkflowSummary, q: &str) -> bool {
    let words: Vec<String> = q.split_whitespace().map(str::to_lowercase).collect();
    if words.is_empty() {
        return true;
    }
    let mut hay = format!("{}\n{}\n{}", w.name, w.path, source_label(w.source));
    for m in &w.required_models {
        hay.push('\n');
        hay.push_str(&m.file);
    }
    for i in &w.inputs {
        hay.push('\n');
        hay.push_str(&i.label);
    }
    let hay = hay.to_lowercase();
    words.iter().all(|w| hay.contains(w.as_str()))
}

/// Mine first, then templates, then ComfyUI's; by name within each.
fn source_rank(source: WorkflowSource) -> u8 {
    match source {
        WorkflowSource::User => 0,
        WorkflowSource::Template => 1,
        WorkflowSource::ComfyUi => 2,
    }
}

#[component]
pub(super) fn Library(shelf: Shelf) -> impl IntoView {
    let source = RwSignal::new(SourceFilter::All);
    let search = RwSignal::new(String::new());
    let total = Memo::new(move |_| shelf.data.with(|d| d.workflows.len()));
    let shown = Memo::new(move |_| {
        let q = search.get();
        let source = source.get();
        shelf.data.with(|d| {
            let mut list: Vec<WorkflowSummary> = d
                .workflows
                .iter()
                .filter(|w| source.matches(w.source) && matches_search(w, &q))
                .cloned()
                .collect();
            list.sort_by_cached_key(|w| {
                (source_rank(w.source), w.name.to_lowercase(), w.id.clone())
            });
            list
        })
    });
    let note = Memo::new(move |_| shelf.data.with(|d| d.comfyui_note.clone()));
    let wide = move || shelf.selected.with(Option::is_none);
    view! {
        <section data-testid="workflow-library" aria-label="Workflow library">
            <div class="mb-3 grid grid-cols-[minmax(0,1fr)_auto] gap-2">
                <input
                    type="search"
                    data-testid="workflows-search"
                    aria-label="Search workflows"
                    placeholder="Search workflows"
                    autocomplete="off"
                    spellcheck="false"
                    class="min-w-0 rounded-lg border border-line bg-surface-2 px-3 py-2 text-sm text-fg"
                    prop:value=search
                    on:input=move |ev| search.set(event_target_value(&ev))
                />
                <select
                    data-testid="workflows-source"
                    aria-label="Source"
                    class="min-w-0 rounded-lg border border-line bg-surface-2 px-3 py-2 text-sm text-fg"
                    prop:value=move || source.get().as_str()
                    on:change=move |ev| source.set(SourceFilter::parse(&event_target_value(&ev)))
                >
                    {SourceFilter::ALL.into_iter().map(|s| view! {
                        <option value=s.as_str() selected=move || source.get() == s>{s.label()}</option>
                    }).collect_view()}
                </select>
            </div>
            <p data-testid="workflows-count" class="mb-3 text-sm text-muted tabular-nums">
                {move || {
                    let t = total.get();
                    format!("{} of {} workflow{}", shown.with(Vec::len), t, if t == 1 { "" } else { "s" })
                }}
            </p>
            {move || note.get().map(|n| view! {
                <p data-testid="comfyui-note" class="mb-3 rounded-lg border border-line bg-surface-2 px-3 py-2 text-xs text-muted wrap-anywhere">
                    {n}
                </p>
            })}
            <Show
                when=move || !shown.with(Vec::is_empty)
                fallback=move || view! {
                    <div data-testid="workflows-none" class="rounded-xl border border-line bg-surface p-6 text-center text-sm text-muted">
                        {move || if total.get() == 0 {
                            "The library is empty. Import a workflow saved from ComfyUI (.json) or a PNG image ComfyUI made."
                        } else {
                            "No workflow matches these filters."
                        }}
                    </div>
                }
            >
                <div class=move || if wide() { "grid gap-3 md:grid-cols-2 xl:grid-cols-3" } else { "grid gap-3" }>
                    <For each=move || shown.get() key=|w| w.id.clone() let:workflow>
                        <WorkflowCard initial=workflow shelf/>
                    </For>
                </div>
            </Show>
        </section>
    }
    .into_any()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Editing {
    None,
    Rename,
    ConfirmDelete,
}

#[component]
fn WorkflowCard(initial: WorkflowSummary, shelf: Shelf) -> impl IntoView {
    let id = initial.id.clone();
    let workflow = {
        let id = id.clone();
        Memo::new(move |previous: Option<&WorkflowSummary>| {
            shelf
                .summary(&id)
                .or_else(|| previous.cloned())
                .unwrap_or_else(|| initial.clone())
        })
    };
    let is_open = {
        let id = id.clone();
        Memo::new(move |_| shelf.selected.with(|s| s.as_deref() == Some(id.as_str())))
    };
    let own = move || workflow.with(|w| w.source == WorkflowSource::User);
    let run_phase = {
        let id = id.clone();
        Memo::new(move |_| {
            let run = shelf.runs.with(|runs| runs.get(&id).cloned())?;
            Some(run.phase(shelf.live))
        })
    };

    let editing = RwSignal::new(Editing::None);
    let new_name = RwSignal::new(String::new());
    let write = Write::new();

    let start_rename = move |_| {
        new_name.set(workflow.with_untracked(|w| w.name.clone()));
        write.set_error(None);
        editing.set(Editing::Rename);
    };
    let save_rename = {
        let id = id.clone();
        move || {
            let name = new_name.get_untracked().trim().to_string();
            if name.is_empty() {
                write.set_error(Some("A name is needed.".into()));
                return;
            }
            if workflow.with_untracked(|w| w.name == name) {
                editing.set(Editing::None);
                return;
            }
            let id = id.clone();
            write.run(rename_workflow(id.clone(), name), move |renamed| {
                editing.try_set(Editing::None);
                let was_open = shelf
                    .selected
                    .try_with_untracked(|s| s.as_deref() == Some(id.as_str()))
                    .unwrap_or(false);
                shelf.runs.try_update(|runs| {
                    if let Some(run) = runs.remove(&id) {
                        runs.insert(renamed.id.clone(), run);
                    }
                });
                shelf.refresh();
                if was_open {
                    shelf.select.run(Some(renamed.id));
                }
            });
        }
    };
    let save_on_enter = save_rename.clone();
    let delete = {
        let id = id.clone();
        move |_| {
            let id = id.clone();
            write.run(delete_workflow(id.clone()), move |()| {
                editing.try_set(Editing::None);
                if shelf
                    .selected
                    .try_with_untracked(|s| s.as_deref() == Some(id.as_str()))
                    .unwrap_or(false)
                {
                    shelf.select.run(None);
                }
                shelf.refresh();
            });
        }
    };
    let open = {
        let id = id.clone();
        move |_| shelf.select.run(Some(id.clone()))
    };

    view! {
        <article
            data-testid="workflow-card"
            data-workflow-id=id.clone()
            data-source=move || workflow.with(|w| w.source.as_str())
            aria-current=move || is_open.get().then_some("true")
            class=move || format!(
                "flex min-w-0 flex-col gap-3 rounded-xl border bg-surface p-4 shadow-sm {}",
                if is_open.get() { "border-accent ring-1 ring-accent" } else { "border-line" },
            )
        >
            {card_header(workflow, run_phase)}

            <RequiredModels workflow shelf/>

            <Problems workflow testid="workflow-problems"/>

            <MakeRunnable
                workflow_id=id.clone()
                needed=Signal::derive(move || workflow.with(|w| !w.models_ready() || !w.problems.is_empty()))
                on_done=Callback::new(move |_| shelf.refresh())
            />

            {move || match editing.get() {
                Editing::Rename => view! {
                    <form
                        class="flex flex-wrap items-center gap-2"
                        on:submit={
                            let save = save_rename.clone();
                            move |ev: leptos::ev::SubmitEvent| {
                                ev.prevent_default();
                                save();
                            }
                        }
                    >
                        <input
                            type="text"
                            data-testid="workflow-rename-input"
                            aria-label="New name"
                            class="min-w-0 flex-1 basis-40 rounded-lg border border-line bg-surface-2 px-3 py-1.5 text-sm text-fg"
                            prop:value=new_name
                            on:input=move |ev| new_name.set(event_target_value(&ev))
                            on:keydown={
                                let save = save_on_enter.clone();
                                move |ev: leptos::ev::KeyboardEvent| match ev.key().as_str() {
                                    "Escape" => editing.set(Editing::None),
                                    "Enter" => {
                                        ev.prevent_default();
                                        save();
                                    }
                                    _ => {}
                                }
                            }
                            autofocus
                        />
                        <button type="submit" class="btn-primary px-3 py-1.5" data-testid="workflow-rename-save" disabled=move || write.busy()>
                            "Save"
                        </button>
                        <button type="button" class="btn-secondary px-3 py-1.5" on:click=move |_| editing.set(Editing::None)>
                            "Cancel"
                        </button>
                    </form>
                }
                .into_any(),
                Editing::ConfirmDelete => view! {
                    <div data-testid="workflow-delete-confirm-box" role="group" aria-label="Confirm deletion" class="rounded-lg border border-bad/40 bg-bad/5 p-3 text-sm">
                        <p class="mb-2 wrap-anywhere">
                            {move || format!("Delete “{}”? Its file in workflows/user is removed; this cannot be undone.", workflow.with(|w| w.name.clone()))}
                        </p>
                        <div class="flex flex-wrap gap-2">
                            <button type="button" class="btn-danger" data-testid="workflow-delete-confirm" disabled=move || write.busy() on:click=delete.clone()>
                                "Delete"
                            </button>
                            <button type="button" class="btn-secondary" data-testid="workflow-delete-cancel" on:click=move |_| editing.set(Editing::None)>
                                "Keep it"
                            </button>
                        </div>
                    </div>
                }
                .into_any(),
                Editing::None => view! {
                    <div class="flex flex-wrap items-center gap-2">
                        <button
                            type="button"
                            data-testid="workflow-open"
                            class=move || if is_open.get() { "btn-secondary" } else { "btn-primary" }
                            disabled=move || is_open.get()
                            on:click=open.clone()
                        >
                            {move || if is_open.get() { "Opened" } else { "Open" }}
                        </button>
                        <Show when=own>
                            <button type="button" class="btn-secondary" data-testid="workflow-rename" on:click=start_rename>
                                "Rename"
                            </button>
                            <button
                                type="button"
                                class="btn-danger"
                                data-testid="workflow-delete"
                                on:click=move |_| {
                                    write.set_error(None);
                                    editing.set(Editing::ConfirmDelete);
                                }
                            >
                                "Delete"
                            </button>
                        </Show>
                    </div>
                }
                .into_any(),
            }}
            {move || write.error().map(|message| view! { <ErrorNote message/> })}
        </article>
    }
    .into_any()
}

/// Name, format, date, source and the state of the latest run started here.
fn card_header(workflow: Memo<WorkflowSummary>, run_phase: Memo<Option<RunPhase>>) -> AnyView {
    view! {
        <header class="flex items-start gap-3">
            <div class="min-w-0 flex-1">
                <h3 data-testid="workflow-name" class="font-medium leading-snug wrap-anywhere">
                    {move || workflow.with(|w| w.name.clone())}
                </h3>
                <p class="mt-0.5 text-xs text-muted wrap-anywhere">{move || workflow.with(describe)}</p>
                {move || workflow.with(|w| (w.modified_ms > 0 && w.source != WorkflowSource::Template).then(|| view! {
                    <p class="mt-0.5 text-xs text-muted tabular-nums">{format!("Changed {}", format_date(w.modified_ms))}</p>
                }))}
            </div>
            <div class="flex shrink-0 flex-col items-end gap-1">
                <span data-testid="workflow-source" class=move || badge(workflow.with(|w| source_tone(w.source)))>
                    {move || workflow.with(|w| source_label(w.source))}
                </span>
                {move || run_phase.get().map(|phase| view! {
                    <span data-testid="workflow-run-phase" class=badge(phase.tone())>{phase.short_label()}</span>
                })}
            </div>
        </header>
    }
    .into_any()
}

/// The model files a workflow's loaders pick: ✓ installed, ✗ missing (with the preset that
/// provides it, when the catalog knows one).
/// What stops the workflow from running as it is (unknown nodes, bad values), if anything.
#[component]
pub(super) fn Problems(workflow: Memo<WorkflowSummary>, testid: &'static str) -> impl IntoView {
    move || {
        let problems = workflow.with(|w| w.problems.clone());
        (!problems.is_empty()).then(|| view! {
            <ul data-testid=testid class="space-y-1 rounded-lg border border-warn/40 bg-warn/10 px-3 py-2 text-xs text-warn">
                {problems.into_iter().map(|p| view! { <li class="wrap-anywhere">{p}</li> }).collect_view()}
            </ul>
        })
    }
}

#[component]
pub(super) fn RequiredModels(workflow: Memo<WorkflowSummary>, shelf: Shelf) -> impl IntoView {
    let models = Memo::new(move |_| workflow.with(|w| w.required_models.clone()));
    move || {
        let list = models.get();
        if list.is_empty() {
            return None;
        }
        let missing = list.iter().filter(|m| !m.installed).count();
        // One button per preset, even when it provides several of the missing files.
        let mut offered: Vec<String> = Vec::new();
        let rows = list
            .into_iter()
            .map(|m| {
                let offer = m
                    .preset_id
                    .clone()
                    .filter(|p| !m.installed && !offered.contains(p));
                if let Some(p) = &offer {
                    offered.push(p.clone());
                }
                view! {
                    <li data-testid="required-model" data-installed=m.installed.to_string() class="flex min-w-0 flex-col gap-1">
                        <div class="flex min-w-0 items-baseline gap-2">
                            {if m.installed {
                                view! { <span class="shrink-0 text-ok" title="Installed" aria-label="installed">"✓"</span> }.into_any()
                            } else {
                                view! { <span class="shrink-0 text-bad" title="Missing" aria-label="missing">"✗"</span> }.into_any()
                            }}
                            <span class="min-w-0 font-mono text-xs break-all">{format!("{}/{}", m.folder, m.file)}</span>
                            {(!m.installed).then(|| view! { <span class="shrink-0 text-xs text-bad">"missing"</span> })}
                        </div>
                        {offer.map(|preset_id| view! { <div class="pl-5"><InstallPresetButton preset_id shelf/></div> })}
                    </li>
                }
                .into_any()
            })
            .collect_view();
        Some(view! {
            <div>
                <p class={if missing > 0 { "mb-1 text-xs font-medium text-bad" } else { "mb-1 text-xs font-medium text-muted" }}>
                    {if missing == 0 {
                        "Models: all installed".to_string()
                    } else {
                        format!("Models: {missing} missing")
                    }}
                </p>
                <ul class="space-y-1.5" data-testid="required-models">{rows}</ul>
            </div>
        }
        .into_any())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(name: &str, source: WorkflowSource) -> WorkflowSummary {
        WorkflowSummary {
            id: format!("{}:{name}.json", source.as_str()),
            source,
            name: name.into(),
            path: format!("{name}.json"),
            format: WorkflowFileFormat::Api,
            node_count: 3,
            modified_ms: 0,
            size_bytes: 10,
            required_models: vec![RequiredModel {
                folder: "checkpoints".into(),
                file: "sd_xl_base.safetensors".into(),
                node_id: "4".into(),
                class_type: "CheckpointLoaderSimple".into(),
                input: "ckpt_name".into(),
                installed: false,
                preset_id: None,
            }],
            inputs: Vec::new(),
            node_types: Vec::new(),
            problems: Vec::new(),
        }
    }

    #[test]
    fn search_looks_at_names_and_models() {
        let w = summary("Portrait flux", WorkflowSource::User);
        assert!(matches_search(&w, ""));
        assert!(matches_search(&w, "portrait"));
        assert!(matches_search(&w, "FLUX sd_xl"));
        assert!(matches_search(&w, "mine"));
        assert!(!matches_search(&w, "video"));
    }

    #[test]
    fn source_filter_round_trips() {
        for f in SourceFilter::ALL {
            assert_eq!(SourceFilter::parse(f.as_str()), f);
        }
        assert!(SourceFilter::All.matches(WorkflowSource::ComfyUi));
        assert!(!SourceFilter::Only(WorkflowSource::User).matches(WorkflowSource::Template));
    }
}
