//! Workflow runs through ComfyUI: events, the queue, history, submissions.

use serde::{Deserialize, Serialize};

use super::tagged::{required, unknown_variant};

/// A file a prompt produced, with the comfydeck URL that serves it (behind the login).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunOutput {
    pub node: String,
    pub filename: String,
    pub subfolder: String,
    /// `output`, `temp` or `input`.
    pub kind: String,
    /// `images`, `gifs`, `audio`, `video`, …
    pub media: String,
    pub url: String,
}

/// What happened to a prompt, as pushed on `/ws`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", try_from = "RunEventFields")]
pub enum RunEventKind {
    Queued,
    Started,
    Cached {
        nodes: Vec<String>,
    },
    Executing {
        node: String,
        title: Option<String>,
        class_type: Option<String>,
    },
    Progress {
        node: Option<String>,
        value: f64,
        max: f64,
    },
    /// The newest preview image; fetch it from `url` (a counter in the URL busts caches).
    Preview {
        node: Option<String>,
        url: String,
    },
    ProgressText {
        node: String,
        text: String,
    },
    Output {
        node: String,
        files: Vec<RunOutput>,
    },
    Succeeded,
    Failed {
        node: Option<String>,
        node_type: Option<String>,
        message: String,
    },
    Interrupted {
        node: Option<String>,
    },
    /// Overall progress across the prompt's nodes, from ComfyUI's `progress_state`: `done`
    /// nodes finished or cached out of `total`, and `fraction` (0–1) counting the running
    /// nodes' own step progress too.
    Nodes {
        done: usize,
        total: usize,
        fraction: f64,
    },
}

/// Every field of every [`RunEventKind`], read flat (see `tagged.rs`).
#[derive(Deserialize)]
struct RunEventFields {
    kind: String,
    nodes: Option<Vec<String>>,
    node: Option<String>,
    title: Option<String>,
    class_type: Option<String>,
    value: Option<f64>,
    max: Option<f64>,
    url: Option<String>,
    text: Option<String>,
    files: Option<Vec<RunOutput>>,
    node_type: Option<String>,
    message: Option<String>,
    done: Option<usize>,
    total: Option<usize>,
    fraction: Option<f64>,
}

impl TryFrom<RunEventFields> for RunEventKind {
    type Error = String;

    fn try_from(f: RunEventFields) -> Result<Self, String> {
        let kind = f.kind.as_str();
        Ok(match kind {
            "queued" => RunEventKind::Queued,
            "started" => RunEventKind::Started,
            "cached" => RunEventKind::Cached {
                nodes: required(f.nodes, kind, "nodes")?,
            },
            "executing" => RunEventKind::Executing {
                node: required(f.node, kind, "node")?,
                title: f.title,
                class_type: f.class_type,
            },
            "progress" => RunEventKind::Progress {
                node: f.node,
                value: required(f.value, kind, "value")?,
                max: required(f.max, kind, "max")?,
            },
            "preview" => RunEventKind::Preview {
                node: f.node,
                url: required(f.url, kind, "url")?,
            },
            "progress_text" => RunEventKind::ProgressText {
                node: required(f.node, kind, "node")?,
                text: required(f.text, kind, "text")?,
            },
            "output" => RunEventKind::Output {
                node: required(f.node, kind, "node")?,
                files: required(f.files, kind, "files")?,
            },
            "succeeded" => RunEventKind::Succeeded,
            "failed" => RunEventKind::Failed {
                node: f.node,
                node_type: f.node_type,
                message: required(f.message, kind, "message")?,
            },
            "interrupted" => RunEventKind::Interrupted { node: f.node },
            "nodes" => RunEventKind::Nodes {
                done: required(f.done, kind, "done")?,
                total: required(f.total, kind, "total")?,
                fraction: required(f.fraction, kind, "fraction")?,
            },
            other => {
                return Err(unknown_variant(
                    other,
                    &[
                        "queued",
                        "started",
                        "cached",
                        "executing",
                        "progress",
                        "preview",
                        "progress_text",
                        "output",
                        "succeeded",
                        "failed",
                        "interrupted",
                        "nodes",
                    ],
                ))
            }
        })
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunEvent {
    pub prompt_id: String,
    pub event: RunEventKind,
}

/// One prompt in ComfyUI's queue (from this deck or from ComfyUI's own UI).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QueueEntry {
    pub prompt_id: String,
    pub number: f64,
    pub node_count: usize,
    /// Submitted by this comfydeck.
    pub ours: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct QueueSnapshot {
    pub running: Vec<QueueEntry>,
    pub pending: Vec<QueueEntry>,
}

/// A failed run in one line: `KSampler (node 3): what ComfyUI said`.
pub fn run_failure_text(node_type: Option<&str>, node: Option<&str>, message: &str) -> String {
    match (node_type, node) {
        (Some(t), Some(n)) => format!("{t} (node {n}): {message}"),
        (None, Some(n)) => format!("node {n}: {message}"),
        _ => message.to_string(),
    }
}

/// How a finished prompt ended, from ComfyUI's history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum RunOutcome {
    Succeeded,
    Failed {
        node: Option<String>,
        node_type: Option<String>,
        message: String,
    },
    Interrupted {
        node: Option<String>,
    },
    /// Still queued or running, or a status comfydeck does not know.
    Unknown {
        status: Option<String>,
    },
}

/// A prompt's record in ComfyUI's history, with its outputs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub prompt_id: String,
    pub outcome: RunOutcome,
    pub outputs: Vec<RunOutput>,
    pub started_at_ms: Option<i64>,
    pub ended_at_ms: Option<i64>,
}

/// A problem found in a workflow before (or when) submitting it, per node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkflowProblem {
    pub node_id: String,
    pub class_type: String,
    pub title: Option<String>,
    pub input: Option<String>,
    pub message: String,
    /// A catalog preset that provides a missing model file.
    pub preset_hint: Option<String>,
}

/// The answer to "run this workflow".
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunSubmission {
    /// Set when ComfyUI accepted the prompt.
    pub prompt_id: Option<String>,
    /// Why it was not submitted (or what ComfyUI refused), per node.
    pub problems: Vec<WorkflowProblem>,
    /// One sentence for the user.
    pub message: String,
}
