//! The page's state, shared by its parts: the library, the chosen workflow, and values waiting
//! for its form.

use engine::model::*;
use leptos::prelude::*;

use crate::api::generate::get_generate_library;
use crate::live::Live;
use crate::server_calls::RefreshGate;

/// The page's state, shared by its parts.
#[derive(Clone, Copy)]
pub(super) struct Desk {
    pub(super) live: Live,
    pub(super) library: RwSignal<GenerateLibrary>,
    pub(super) refresh_gate: RefreshGate,
    /// The chosen workflow's id (from the URL).
    pub(super) selected: Memo<Option<String>>,
    pub(super) select: Callback<Option<String>>,
    pub(super) prefill: RwSignal<Option<Prefill>>,
}

impl Desk {
    /// Reads the library again (after a preset install: cards move to "ready").
    pub(super) fn refresh(self) {
        let library = self.library;
        self.refresh_gate
            .reload("the workflows", get_generate_library, move |fresh| {
                library.set(fresh)
            });
    }
}

/// Values waiting for the form of their workflow (from "Open in Generate").
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Prefill {
    pub workflow_id: String,
    pub values: Vec<InputValue>,
}
