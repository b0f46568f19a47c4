//! The workflow library.

use serde::{Deserialize, Serialize};

use super::named::named_enum;
use super::PromptRole;

named_enum! {
    /// Where a workflow is kept. Its name is also the prefix of a workflow's id.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
    pub enum WorkflowSource {
        /// `workflows/templates` on the volume: read-only here.
        Template = "template",
        /// `workflows/user` on the volume: the user's own.
        User = "user",
        /// ComfyUI's own workflow folder (`/api/userdata?dir=workflows`), reached over HTTP.
        ComfyUi = "comfyui",
    }
}

/// The shape of a workflow file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkflowFileFormat {
    /// Saved from ComfyUI's editor (`nodes`, `links`).
    Ui,
    /// An API prompt (node id → `{class_type, inputs}`).
    Api,
    /// Not known: not valid JSON, neither shape, or (ComfyUI entries) not fetched.
    Unknown,
}

/// One workflow of the library, as the browser lists it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkflowSummary {
    /// `"<source>:<relative path>"`, e.g. `user:portraits/flux.json`.
    pub id: String,
    pub source: WorkflowSource,
    /// The file name without `.json`.
    pub name: String,
    /// The path relative to the source's folder, `/`-separated.
    pub path: String,
    pub format: WorkflowFileFormat,
    /// Nodes at the top level of a UI workflow, or of an API prompt.
    pub node_count: usize,
    /// Last modification, milliseconds since the Unix epoch (0 when not known).
    pub modified_ms: u64,
    pub size_bytes: u64,
    /// The model files its loaders pick, in node order.
    pub required_models: Vec<RequiredModel>,
    /// What a user would change before running it (see [`editable_inputs`]).
    pub inputs: Vec<EditableInput>,
    /// The node classes it uses, sorted and unique (searchable: `KSampler`, `SaveVideo`, …).
    #[serde(default)]
    pub node_types: Vec<String>,
    /// Sentences: not valid JSON, a node type ComfyUI lacks, …
    pub problems: Vec<String>,
}

impl WorkflowSummary {
    /// Whether every required model file is installed.
    pub fn models_ready(&self) -> bool {
        self.required_models.iter().all(|m| m.installed)
    }
}

#[cfg(test)]
impl WorkflowSummary {
    /// For tests: the user's `x.json`, an API prompt of these node types and nothing else.
    pub(crate) fn of_node_types(types: &[&str]) -> WorkflowSummary {
        WorkflowSummary {
            id: "user:x.json".into(),
            source: WorkflowSource::User,
            name: "x".into(),
            path: "x.json".into(),
            format: WorkflowFileFormat::Api,
            node_count: types.len(),
            modified_ms: 0,
            size_bytes: 0,
            required_models: Vec::new(),
            inputs: Vec::new(),
            node_types: types.iter().map(|t| t.to_string()).collect(),
            problems: Vec::new(),
        }
    }
}

/// A model file a workflow's loader picks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequiredModel {
    /// ComfyUI's folder name (`checkpoints`, `loras`, `text_encoders`, …).
    pub folder: String,
    /// The file, relative to the folder, as the workflow names it (may contain `/`).
    pub file: String,
    /// The node (API id; `10:6` inside a subgraph).
    pub node_id: String,
    pub class_type: String,
    /// The loader's input (`ckpt_name`).
    pub input: String,
    /// The file is under `models/<folder>/` (or one of the folder's legacy names), or in
    /// ComfyUI's list of choices for the input.
    pub installed: bool,
    /// The preset that provides the file, when the catalog knows one.
    pub preset_id: Option<String>,
}

/// How an input is edited.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputKind {
    Text,
    Int,
    Float,
    /// An INT that is a seed (`seed`, `noise_seed`): a "randomize" button is welcome.
    Seed,
    Combo,
    Bool,
}

/// An input a user would want to change before running a workflow.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EditableInput {
    /// The node's id in the API prompt (`10:6` inside a subgraph).
    pub node_id: String,
    pub class_type: String,
    pub node_title: String,
    /// The input name (`text`, `seed`, …).
    pub input: String,
    pub kind: InputKind,
    /// The current value.
    pub value: serde_json::Value,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub step: Option<f64>,
    /// The choices of a combo (from `/object_info`; `None` without it).
    pub options: Option<Vec<String>>,
    /// `Prompt (positive)`, `Prompt (negative)`, a plain name (`Seed`, `Steps`, `Width`…) when
    /// only one node has that input, else `<title> · <input>`; made unique with ` (node <id>)`
    /// when two inputs would still read the same.
    pub label: String,
    /// For a prompt text: which sampler input it ends up in (traced through the graph).
    #[serde(default)]
    pub role: Option<PromptRole>,
}

/// A value to set on a prompt, as the browser sends it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InputValue {
    pub node_id: String,
    pub input: String,
    pub value: serde_json::Value,
}

/// A value that [`apply_inputs`] refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputProblem {
    pub node_id: String,
    pub input: String,
    /// A sentence naming node and input: `KSampler (node 3) · steps: 0 is below the minimum 1`.
    pub message: String,
}

/// The Workflows page's library.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkflowList {
    pub workflows: Vec<WorkflowSummary>,
    /// Why ComfyUI's own workflows are missing from the list, when they are.
    pub comfyui_note: Option<String>,
}

/// One workflow with its content.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkflowDetail {
    pub summary: WorkflowSummary,
    pub workflow: serde_json::Value,
}
