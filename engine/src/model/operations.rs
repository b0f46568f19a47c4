//! "Make runnable": one stored operation per workflow and user, made of steps (each pack, each
//! model file, each small fix) that the browser follows live.

use serde::{Deserialize, Serialize};

use super::named::named_enum;

named_enum! {
    /// Where an operation stands.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum OperationState {
        /// Working through its steps (also after a restart: it continues).
        Running = "running",
        /// Every step done: the runnable copy is saved.
        Done = "done",
        /// A step asks the user (a choice, a download link) or an administrator must act.
        NeedsYou = "needs_you",
        /// A step failed; the summary says what is left.
        Failed = "failed",
    }
}

impl OperationState {
    pub fn is_running(self) -> bool {
        self == OperationState::Running
    }
}

named_enum! {
    /// What a step does.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum StepKind {
        /// Install a custom-node pack for node classes ComfyUI lacks.
        Pack = "pack",
        /// Install a missing model file (a preset, the workflow's own link, a link given here).
        Model = "model",
        /// Change one input on the runnable copy (a file's folder or case, a choice, a clamp).
        Fix = "fix",
        /// The last look: does the copy now run here?
        Check = "check",
    }
}

named_enum! {
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum StepState {
        Pending = "pending",
        Running = "running",
        Done = "done",
        Failed = "failed",
        /// Waits for the user: pick one of `choices`, or give a download link (`wants_url`).
        Question = "question",
        /// Not needed any more (another step already did it).
        Skipped = "skipped",
    }
}

impl StepState {
    /// Done with, one way or another.
    pub fn is_settled(self) -> bool {
        matches!(self, StepState::Done | StepState::Skipped)
    }
}

/// One step of an operation, as the browser shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OperationStep {
    /// Its place in the operation, from 1.
    pub seq: u32,
    pub kind: StepKind,
    /// What it does, in words: `Install pack ComfyUI-Fancy (for FancyNode)`.
    pub title: String,
    pub state: StepState,
    /// What happened or is happening: progress, the error, what was changed.
    pub detail: Option<String>,
    /// A question's answers to pick from.
    #[serde(default)]
    pub choices: Vec<String>,
    /// A question answered with a download link (Hugging Face or CivitAI).
    #[serde(default)]
    pub wants_url: bool,
}

/// An operation with its steps (`GET /api/operations/get?id=`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OperationView {
    pub id: i64,
    pub user_id: i64,
    /// The workflow it makes runnable (never changed itself).
    pub workflow_id: String,
    pub workflow_name: String,
    pub state: OperationState,
    pub steps: Vec<OperationStep>,
    /// The end in words: `Runnable: saved as "x (runnable)"`, or what is left.
    pub summary: Option<String>,
    /// The copy the fixes were applied to, once saved.
    pub result_workflow_id: Option<String>,
    pub created_ms: i64,
    pub updated_ms: i64,
}

impl OperationView {
    /// `3 of 5 steps done`.
    pub fn progress_line(&self) -> String {
        let done = self.steps.iter().filter(|s| s.state.is_settled()).count();
        format!("{done} of {} steps done", self.steps.len())
    }
}

/// `POST /api/operations/answer`: the answer to a step's question.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepAnswer {
    pub id: i64,
    pub seq: u32,
    /// One of the step's `choices`, or a download link.
    pub answer: String,
}
