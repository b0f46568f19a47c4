//! ComfyUI workflows in both of their shapes, and the checks made before one is queued.
//!
//! A workflow saved from ComfyUI's editor (the *UI format*: `nodes`, `links`, subgraph
//! `definitions`, widget values by position) cannot be queued as it is: `POST /prompt` takes
//! the *API format*, an object of node id → `{inputs, class_type, _meta}`. [`ui_to_api`]
//! does what the frontend's `graphToPrompt` does (verified against prompts that the real
//! frontend 1.27.10 produced: the `ui_to_api_*.json` fixtures and, under `templates/`, every
//! official template of two template releases, recorded by `scripts/record-conversions.sh`):
//!
//! - widget values are mapped to input names through the class's `/object_info` inputs, in
//!   `input_order` (required, then optional), skipping the values of frontend-only widgets
//!   (the `control_after_generate` companion of a seed, an upload button, …) and sending
//!   those the frontend's core extensions add (a button's value, an empty string for an
//!   audio player, a 3D view or a text preview);
//! - frontend-only nodes (Note, MarkdownNote, PrimitiveNode, Reroute) never reach the
//!   prompt: links are followed through Reroutes, a PrimitiveNode's value is copied into the
//!   widgets it drives;
//! - bypassed nodes (mode 4) are replaced by a pass-through of their input of the matching
//!   type, muted nodes (mode 2) are dropped together with every input linked to them;
//! - subgraph instances are flattened, their inner nodes get ids like `10:6` (`10:3:6` when
//!   nested) and keep their own mode; an instance has one input per subgraph input, and the
//!   widgets promoted onto it are valued from its `widgets_values`;
//! - `STRING` widgets flagged `dynamicPrompts` have comments removed and `{a|b}` choices made.
//!
//! [`check_prompt`] looks for what would make ComfyUI refuse the prompt (unknown node types,
//! model files that are not installed, with the preset that provides them), and
//! [`explain_prompt_error`] turns ComfyUI's own 400 answer into sentences.

mod check;
mod dynamic_prompt;
mod object_info;
mod ui;

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub(crate) use check::id_order;
pub use check::{check_prompt, explain_prompt_error, model_folder, NodeProblem, PromptRejection};
pub use dynamic_prompt::process_dynamic_prompt;
pub use object_info::{InputSpec, NodeClass, ObjectInfo};
pub use ui::{set_widget_value, ui_to_api, ui_to_api_seeded};

/// A prompt in ComfyUI's API format, as `POST /prompt` takes it under `prompt`.
///
/// Serializes to exactly the object the frontend sends: node id → [`ApiNode`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ApiPrompt {
    /// Node id (`"3"`, or `"10:6"` inside a subgraph) → node.
    pub nodes: BTreeMap<String, ApiNode>,
}

/// One node of an [`ApiPrompt`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ApiNode {
    /// Input name → a value, or a link `["<node id>", <output index>]`. Array values are
    /// wrapped as `{"__value__": [...]}` so that they are not read as links.
    #[serde(default)]
    pub inputs: Map<String, Value>,
    /// The node class (`KSampler`). Empty when a pasted prompt lacked it.
    #[serde(default)]
    pub class_type: String,
    /// Ignored by ComfyUI; the frontend puts the node's title here.
    #[serde(rename = "_meta", default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<ApiMeta>,
    /// Any other key of a pasted prompt, kept as it was.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The `_meta` object of an [`ApiNode`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ApiMeta {
    /// The node's title as shown in the editor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Other keys, kept.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ApiNode {
    /// The title from `_meta`, if the prompt has one.
    pub fn title(&self) -> Option<&str> {
        self.meta.as_ref()?.title.as_deref()
    }
}

impl ApiPrompt {
    /// Reads an API-format prompt. Root keys starting with `_` are ignored.
    pub fn from_value(mut value: Value) -> Result<Self, ConvertError> {
        strip_private_keys(&mut value);
        if !value.is_object() {
            return Err(ConvertError::Malformed(
                "an API prompt must be a JSON object of node id → node".into(),
            ));
        }
        serde_json::from_value(value)
            .map_err(|e| ConvertError::Malformed(format!("not a valid API prompt: {e}")))
    }

    /// The prompt as JSON (the value to send under `prompt`).
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// The node with this id.
    pub fn get(&self, id: &str) -> Option<&ApiNode> {
        self.nodes.get(id)
    }

    /// How many nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the prompt has no node.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
}

/// Which shape a workflow JSON has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkflowFormat {
    /// Saved from ComfyUI's editor: `nodes` and `links` arrays.
    Ui,
    /// A prompt: node id → `{class_type, inputs}`.
    Api,
    /// Neither.
    Unknown,
}

/// Tells a UI-format workflow from an API prompt.
///
/// UI: an object with a `nodes` array and a `links` array. API: a non-empty object whose
/// entries (other than root keys starting with `_`) are all objects with `class_type` or
/// `inputs`.
pub fn detect_format(v: &Value) -> WorkflowFormat {
    let Some(obj) = v.as_object() else {
        return WorkflowFormat::Unknown;
    };
    if obj.get("nodes").is_some_and(Value::is_array)
        && obj.get("links").is_some_and(Value::is_array)
    {
        return WorkflowFormat::Ui;
    }
    let mut entries = obj.iter().filter(|(k, _)| !k.starts_with('_')).peekable();
    if entries.peek().is_none() {
        return WorkflowFormat::Unknown;
    }
    let all_nodes = entries.all(|(_, node)| {
        node.as_object()
            .is_some_and(|n| n.contains_key("class_type") || n.contains_key("inputs"))
    });
    if all_nodes {
        WorkflowFormat::Api
    } else {
        WorkflowFormat::Unknown
    }
}

/// Any workflow → an API prompt: a UI workflow is converted with [`ui_to_api`], an API prompt
/// is passed through (root keys starting with `_` removed).
pub fn to_api(v: &Value, object_info: &ObjectInfo) -> Result<ApiPrompt, ConvertError> {
    match detect_format(v) {
        WorkflowFormat::Ui => ui_to_api(v, object_info),
        WorkflowFormat::Api => ApiPrompt::from_value(v.clone()),
        WorkflowFormat::Unknown => {
            if v.as_object().is_some_and(|o| o.contains_key("nodes")) {
                Err(ConvertError::Malformed(
                    "the workflow has `nodes` but no `links` array".into(),
                ))
            } else {
                Err(ConvertError::Malformed(
                    "this is neither a ComfyUI workflow (no `nodes` array) nor an API prompt \
                     (node id → {class_type, inputs})"
                        .into(),
                ))
            }
        }
    }
}

/// Removes the root keys that start with `_` (comments and metadata that tools add to a
/// prompt; ComfyUI would take them for nodes).
pub fn strip_private_keys(prompt: &mut Value) {
    if let Some(obj) = prompt.as_object_mut() {
        obj.retain(|k, _| !k.starts_with('_'));
    }
}

/// The node an error is about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRef {
    /// Its id in the prompt (`"10:6"` inside a subgraph instance).
    pub id: String,
    /// Its title (the class's display name unless the user renamed it).
    pub title: String,
    /// Its type: a node class, or a subgraph id.
    pub class_type: String,
}

impl fmt::Display for NodeRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.title.is_empty() || self.title == self.class_type {
            write!(f, "node {} ({})", self.id, self.class_type)
        } else {
            write!(f, "node {} “{}” ({})", self.id, self.title, self.class_type)
        }
    }
}

/// Why a workflow could not be converted.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// Not a workflow at all, or a required part is missing or of the wrong type.
    #[error("malformed workflow: {0}")]
    Malformed(String),
    /// A node whose class this ComfyUI does not know: its widget values cannot be named.
    #[error(
        "{node}: node type `{}` is not known to ComfyUI (no /object_info entry), so its widget \
         values cannot be mapped to inputs; install the custom node that provides it",
        node.class_type
    )]
    UnknownClass {
        /// The node.
        node: NodeRef,
    },
    /// A legacy group node (`workflow>…`): the frontend expands those itself.
    #[error(
        "{node}: `{}` is a legacy group node; open the workflow in ComfyUI and convert it to a \
         subgraph (or ungroup it) first",
        node.class_type
    )]
    GroupNode {
        /// The node.
        node: NodeRef,
    },
    /// An input refers to a link id that the link list does not have.
    #[error("{node}: input `{input}` refers to link {link}, which is not in the workflow")]
    LinkNotFound {
        /// The node.
        node: NodeRef,
        /// The input's name.
        input: String,
        /// The link id.
        link: String,
    },
    /// A node's type is a subgraph id that `definitions.subgraphs` does not define.
    #[error("{node}: subgraph {subgraph} is not defined in the workflow's definitions.subgraphs")]
    SubgraphMissing {
        /// The instance node.
        node: NodeRef,
        /// The subgraph id (the node's `type`).
        subgraph: String,
    },
    /// A subgraph instance whose slots do not match its definition.
    #[error("{node}: {detail}")]
    BadSubgraph {
        /// The instance node (or the inner node).
        node: NodeRef,
        /// What does not match.
        detail: String,
    },
    /// Links (or subgraphs) that lead back to where they started.
    #[error("{node}: circular reference: {detail}")]
    Cycle {
        /// Where the loop was noticed.
        node: NodeRef,
        /// What loops.
        detail: String,
    },
}

impl ConvertError {
    /// The node the error is about, if it is about one.
    pub fn node(&self) -> Option<&NodeRef> {
        match self {
            ConvertError::Malformed(_) => None,
            ConvertError::UnknownClass { node }
            | ConvertError::GroupNode { node }
            | ConvertError::LinkNotFound { node, .. }
            | ConvertError::SubgraphMissing { node, .. }
            | ConvertError::BadSubgraph { node, .. }
            | ConvertError::Cycle { node, .. } => Some(node),
        }
    }
}

#[cfg(test)]
mod tests;
