//! The page's state, shared by its parts: the fetched overview, the live events already known
//! when it was fetched, and fetching it again.

use std::collections::HashMap;

use engine::model::*;
use leptos::prelude::*;

use crate::api::get_models;
use crate::live::Live;
use crate::server_calls::RefreshGate;

/// The live events that were already known when the overview was fetched: only events that
/// differ from these are newer than the fetched data.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct Baseline {
    presets: HashMap<String, PresetProgress>,
    downloads: HashMap<i64, FileProgress>,
}

impl Baseline {
    pub(super) fn take(live: Live) -> Baseline {
        Baseline {
            presets: live.presets.try_get_untracked().unwrap_or_default(),
            downloads: live.downloads.try_get_untracked().unwrap_or_default(),
        }
    }
}

/// The page's state, shared by its parts.
#[derive(Clone, Copy)]
pub(super) struct Models {
    pub(super) live: Live,
    /// Whether the visitor may change anything (install, pause, cancel, remove, sync).
    pub(super) admin: bool,
    pub(super) data: RwSignal<ModelsOverview>,
    pub(super) baseline: RwSignal<Baseline>,
    pub(super) refresh_gate: RefreshGate,
}

impl Models {
    /// Fetches the overview again; calls made while a fetch runs are folded into one more.
    pub(super) fn refresh(self) {
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
    pub(super) fn live_preset(self, id: &str) -> Option<PresetProgress> {
        let event = self.live.presets.with(|map| map.get(id).cloned())?;
        let seen = self.baseline.with(|b| b.presets.get(id) == Some(&event));
        (!seen).then_some(event)
    }

    /// The fetched files with newer live file events laid over them, matched by path (tracked).
    pub(super) fn merge_files(self, mut files: Vec<PresetFileView>) -> Vec<PresetFileView> {
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
