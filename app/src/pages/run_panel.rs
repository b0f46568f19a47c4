//! Pieces shared by the pages that run workflows (Workflows, Generate): a run's phase folded
//! from the live run events ([`folding`]), the form fields built from a workflow's editable
//! inputs ([`fields`]), and the view that follows a run ([`view`]: overall and per-node
//! progress, previews, outputs, stop / cancel).

mod fields;
mod folding;
mod view;

pub(crate) use fields::{Field, InputField};
pub(crate) use folding::{fold, RunPhase, TrackedRun};
pub(crate) use view::RunView;
