//! "Install preset X" beside a missing model, followed live.

use engine::model::*;
use leptos::prelude::*;

use super::shelf::Shelf;
use crate::api::install_preset;
use crate::components::ErrorNote;
use crate::server_calls::Write;

/// "Install preset X": queues the preset's downloads, then follows its state live (the Models
/// page has the details).
#[component]
pub(super) fn InstallPresetButton(#[prop(into)] preset_id: String, shelf: Shelf) -> impl IntoView {
    let write = Write::new();
    let started = RwSignal::new(false);
    let live_state = {
        let id = preset_id.clone();
        Memo::new(move |_| shelf.live.presets.with(|map| map.get(&id).cloned()))
    };
    let on_click = {
        let id = preset_id.clone();
        move |_| {
            write.run(install_preset(id.clone()), move |preset| {
                started.try_set(true);
                if preset.state.is_installed() {
                    shelf.refresh();
                }
            });
        }
    };
    let models_link = format!("/models?q={}", encode_component(&preset_id));
    let label = format!("Install preset {preset_id}");
    view! {
        <div class="flex min-w-0 flex-wrap items-center gap-x-2 gap-y-1">
            <Show when=move || !started.get()>
                <button
                    type="button"
                    data-testid="install-preset"
                    class="btn-secondary px-2 py-1 text-xs wrap-anywhere"
                    disabled=move || write.busy()
                    on:click=on_click.clone()
                >
                    {
                        let label = label.clone();
                        move || if write.busy() { "Installing…".to_string() } else { label.clone() }
                    }
                </button>
            </Show>
            <Show when=move || started.get() || live_state.with(Option::is_some)>
                <span data-testid="install-preset-state" class="text-xs text-muted wrap-anywhere">
                    {move || install_state_text(live_state.get().as_ref(), started.get())}
                    " "
                    <a href=models_link.clone() class="text-accent hover:underline">"Models page"</a>
                </span>
            </Show>
            {move || write.error().map(|message| view! { <div class="w-full"><ErrorNote message/></div> })}
        </div>
    }
    .into_any()
}

fn install_state_text(progress: Option<&PresetProgress>, started: bool) -> String {
    match progress {
        Some(p) => {
            let percent = p
                .figures
                .total_bytes
                .filter(|t| *t > 0)
                .map(|t| format!(" {:.0}%", percent_of(p.figures.bytes_done, t).floor()))
                .unwrap_or_default();
            match p.state {
                InstallState::Downloading => format!("Downloading{percent} — details on the"),
                InstallState::Installed => "Installed — see the".to_string(),
                InstallState::Failed => format!(
                    "Install failed{} — retry on the",
                    p.error
                        .as_deref()
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default()
                ),
                other => format!("{} — follow it on the", other.label()),
            }
        }
        None if started => "Install queued — follow it on the".to_string(),
        None => String::new(),
    }
}
