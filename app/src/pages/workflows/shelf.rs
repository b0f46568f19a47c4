//! The page's state, shared by its parts: the list, the open workflow, the runs started here
//! and ComfyUI's queue.

use std::collections::HashMap;

use engine::model::*;
use leptos::prelude::*;

use crate::api::list_workflows;
use crate::live::{Connection, Live};
use crate::pages::run_panel::TrackedRun;
use crate::server_calls::RefreshGate;

/// The page's state, shared by its parts.
#[derive(Clone, Copy)]
pub(super) struct Shelf {
    pub(super) live: Live,
    pub(super) data: RwSignal<WorkflowList>,
    pub(super) refresh_gate: RefreshGate,
    /// The open workflow's id (from the URL).
    pub(super) selected: Memo<Option<String>>,
    pub(super) select: Callback<Option<String>>,
    /// The latest run started from this page, per workflow id.
    pub(super) runs: RwSignal<HashMap<String, TrackedRun>>,
    /// ComfyUI's queue length as last read over HTTP (the live value wins when there is one).
    pub(super) polled_queue: RwSignal<Option<u64>>,
}

impl Shelf {
    /// Fetches the list again; calls made while a fetch runs are folded into one more.
    pub(super) fn refresh(self) {
        let data = self.data;
        self.refresh_gate
            .reload("the workflow list", list_workflows, move |list| {
                data.set(list)
            });
    }

    /// The summary of a workflow in the current list (tracked).
    pub(super) fn summary(self, id: &str) -> Option<WorkflowSummary> {
        self.data
            .with(|d| d.workflows.iter().find(|w| w.id == id).cloned())
    }

    /// ComfyUI's queue length: the live value while the socket is up, else the last one read.
    pub(super) fn queue_len(self) -> Option<u64> {
        let (live, polled) = (self.live.comfy_queue.get(), self.polled_queue.get());
        if self.live.connection.get() == Connection::Live {
            live.or(polled)
        } else {
            polled.or(live)
        }
    }
}
