//! Live events: the `/ws` protocol.

use serde::{Deserialize, Serialize};

use super::{
    ActivityEntry, ComfyProcess, ComfyStatus, FileProgress, GalleryChange, Generation, JobView,
    OperationView, PackOutcome, PresetProgress, RunEvent, SettingsView, SyncOutcome, SystemStats,
};

/// Everything pushed to the browser over `/ws`, as JSON `{"type": …, "data": …}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum Event {
    SystemStats(SystemStats),
    ComfyStatus(ComfyStatus),
    Activity(ActivityEntry),
    Settings(SettingsView),
    /// One file's transfer (at most two per second per file).
    Download(FileProgress),
    /// A preset's aggregate state and progress (at most two per second per preset).
    Preset(PresetProgress),
    /// The supervised ComfyUI process changed state (or its log tail grew).
    ComfyProcess(ComfyProcess),
    /// A prompt's progress, previews, outputs and outcome.
    Run(RunEvent),
    /// Prompts running or waiting in ComfyUI, including ones queued from its own UI.
    ComfyQueue {
        remaining: u64,
    },
    /// Output files appeared in or went from the gallery.
    Gallery(GalleryChange),
    /// A generation's history row changed (queued, started, ended, got outputs).
    Generation(Generation),
    /// A queue job changed (submitted, claimed, ended, cancelled, moved).
    Job(JobView),
    /// A "make runnable" operation changed (a step started, ended, or asks).
    Operation(OperationView),
    /// The recovery list changed (a failure recorded, resolved or dismissed): read it again.
    Recovery,
    /// A preset-registry or node-map sync ended. Kept inside the deck (recovery follows it);
    /// browsers are not sent it.
    Sync(SyncOutcome),
    /// A custom-node pack's install or update ended. Kept inside the deck like `Sync`.
    Pack(PackOutcome),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ActivityKind;

    #[test]
    fn events_are_tagged_json() {
        let e = Event::Activity(ActivityEntry {
            id: 1,
            at_ms: 5,
            kind: ActivityKind::Auth,
            message: "login".into(),
            user_id: Some(1),
        });
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["type"], "activity");
        assert_eq!(json["data"]["kind"], "auth");
        let back: Event = serde_json::from_value(json).unwrap();
        assert_eq!(back, e);
    }
}
