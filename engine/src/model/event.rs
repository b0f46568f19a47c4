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

/// The tag of every [`Event`] variant, as `/ws` writes it.
const EVENT_TYPES: &[&str] = &[
    "system_stats",
    "comfy_status",
    "activity",
    "settings",
    "download",
    "preset",
    "comfy_process",
    "run",
    "comfy_queue",
    "gallery",
    "generation",
    "job",
    "operation",
    "recovery",
    "sync",
    "pack",
];

impl Event {
    /// Reads one event as `/ws` sends it: the tag first, then only that variant's payload.
    ///
    /// The browser decodes events with this, not with the derived `Deserialize`: for an
    /// adjacently tagged enum serde must also accept `data` before `type`, so it buffers the
    /// payload and builds every payload type's decoder twice, and that code is in the first
    /// wasm module every page loads.
    pub fn from_json(text: &str) -> Result<Event, serde_json::Error> {
        use serde::de::{DeserializeOwned, Error};

        #[derive(Deserialize)]
        struct Tagged<'a> {
            #[serde(rename = "type", borrow)]
            kind: &'a str,
            #[serde(borrow, default)]
            data: Option<&'a serde_json::value::RawValue>,
        }
        #[derive(Deserialize)]
        struct Queue {
            remaining: u64,
        }
        fn payload<T: DeserializeOwned>(
            data: Option<&serde_json::value::RawValue>,
        ) -> Result<T, serde_json::Error> {
            match data {
                Some(raw) => serde_json::from_str(raw.get()),
                None => Err(serde_json::Error::missing_field("data")),
            }
        }

        let Tagged { kind, data } = serde_json::from_str(text)?;
        Ok(match kind {
            "system_stats" => Event::SystemStats(payload(data)?),
            "comfy_status" => Event::ComfyStatus(payload(data)?),
            "activity" => Event::Activity(payload(data)?),
            "settings" => Event::Settings(payload(data)?),
            "download" => Event::Download(payload(data)?),
            "preset" => Event::Preset(payload(data)?),
            "comfy_process" => Event::ComfyProcess(payload(data)?),
            "run" => Event::Run(payload(data)?),
            "comfy_queue" => Event::ComfyQueue {
                remaining: payload::<Queue>(data)?.remaining,
            },
            "gallery" => Event::Gallery(payload(data)?),
            "generation" => Event::Generation(payload(data)?),
            "job" => Event::Job(payload(data)?),
            "operation" => Event::Operation(payload(data)?),
            "recovery" => Event::Recovery,
            "sync" => Event::Sync(payload(data)?),
            "pack" => Event::Pack(payload(data)?),
            other => return Err(serde_json::Error::unknown_variant(other, EVENT_TYPES)),
        })
    }
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

    #[test]
    fn from_json_reads_what_the_server_writes() {
        let events = [
            Event::Activity(ActivityEntry {
                id: 7,
                at_ms: 9,
                kind: ActivityKind::Download,
                message: "done \"x\" ✓".into(),
                user_id: None,
            }),
            Event::ComfyQueue { remaining: 3 },
            Event::Recovery,
            Event::Gallery(GalleryChange::default()),
        ];
        for e in events {
            let text = serde_json::to_string(&e).unwrap();
            assert_eq!(Event::from_json(&text).unwrap(), e, "{text}");
        }
        // The order of the fields does not matter.
        let swapped = r#"{"data":{"remaining":4},"type":"comfy_queue"}"#;
        assert_eq!(
            Event::from_json(swapped).unwrap(),
            Event::ComfyQueue { remaining: 4 }
        );
    }

    #[test]
    fn from_json_knows_every_variant_the_enum_has() {
        // The derived decoder lists the enum's variants in its error for an unknown one.
        let derived = serde_json::from_str::<Event>(r#"{"type":"nope","data":null}"#)
            .unwrap_err()
            .to_string();
        let listed: Vec<&str> = derived
            .split("expected one of ")
            .nth(1)
            .expect("the variants are listed")
            .split(", ")
            .map(|name| name.trim_start_matches('`').split('`').next().unwrap())
            .collect();
        assert_eq!(listed, EVENT_TYPES, "{derived}");
        for kind in EVENT_TYPES {
            // A payload of the wrong shape is refused for what it is, not as an unknown type.
            let text = format!(r#"{{"type":"{kind}","data":"wrong"}}"#);
            if let Err(e) = Event::from_json(&text) {
                assert!(!e.to_string().contains("unknown variant"), "{kind}: {e}");
            }
        }
        let unknown = Event::from_json(r#"{"type":"nope"}"#)
            .unwrap_err()
            .to_string();
        assert!(unknown.contains("unknown variant `nope`"), "{unknown}");
        let missing = Event::from_json(r#"{"type":"activity"}"#)
            .unwrap_err()
            .to_string();
        assert!(missing.contains("missing field `data`"), "{missing}");
    }
}
