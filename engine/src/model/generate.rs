//! The Generate page: prompt styles, generations, workflow cards, intents.

use serde::{Deserialize, Serialize};

use super::{InputValue, RunOutput, WorkflowSummary};

/// Which sampler input a prompt text ends up in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromptRole {
    Positive,
    Negative,
}

/// A prompt style: a static template, or the brief an LLM gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromptStyle {
    Detailed,
    Cinematic,
    Artistic,
    Minimal,
}

impl PromptStyle {
    pub const ALL: [PromptStyle; 4] = [
        PromptStyle::Detailed,
        PromptStyle::Cinematic,
        PromptStyle::Artistic,
        PromptStyle::Minimal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PromptStyle::Detailed => "detailed",
            PromptStyle::Cinematic => "cinematic",
            PromptStyle::Artistic => "artistic",
            PromptStyle::Minimal => "minimal",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            PromptStyle::Detailed => "Detailed",
            PromptStyle::Cinematic => "Cinematic",
            PromptStyle::Artistic => "Artistic",
            PromptStyle::Minimal => "Minimal",
        }
    }

    pub fn parse(s: &str) -> Option<PromptStyle> {
        PromptStyle::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// An enhanced prompt pair.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EnhancedPrompt {
    pub positive: String,
    pub negative: String,
    pub style: PromptStyle,
    /// Written by the configured LLM; otherwise the static style template.
    pub by_llm: bool,
    /// Set when an LLM is configured but its answer could not be used: why, in words.
    pub fallback_reason: Option<String>,
}

/// Where a generation stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GenerationStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    Interrupted,
    Cancelled,
}

impl GenerationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            GenerationStatus::Queued => "queued",
            GenerationStatus::Running => "running",
            GenerationStatus::Succeeded => "succeeded",
            GenerationStatus::Failed => "failed",
            GenerationStatus::Interrupted => "interrupted",
            GenerationStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<GenerationStatus> {
        [
            GenerationStatus::Queued,
            GenerationStatus::Running,
            GenerationStatus::Succeeded,
            GenerationStatus::Failed,
            GenerationStatus::Interrupted,
            GenerationStatus::Cancelled,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }

    /// Queued or running: it can still change (and be cancelled).
    pub fn is_active(self) -> bool {
        matches!(self, GenerationStatus::Queued | GenerationStatus::Running)
    }
}

/// One generation from the Generate page, as kept in the history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Generation {
    pub id: i64,
    pub workflow_id: String,
    pub workflow_name: String,
    /// The values the form sent (the workflow's own values fill the rest).
    pub inputs: Vec<InputValue>,
    pub prompt_id: String,
    pub status: GenerationStatus,
    pub error: Option<String>,
    pub created_ms: i64,
    pub started_ms: Option<i64>,
    pub finished_ms: Option<i64>,
    pub outputs: Vec<RunOutput>,
}

impl Generation {
    /// From start (or submission, when the start was missed) to the end.
    pub fn duration_ms(&self) -> Option<i64> {
        let end = self.finished_ms?;
        Some((end - self.started_ms.unwrap_or(self.created_ms)).max(0))
    }
}

/// A preset that provides models a workflow lacks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PresetNeed {
    pub id: String,
    pub name: String,
    /// What installing it downloads (0 when the catalog does not say).
    pub download_bytes: u64,
}

/// A workflow as the Generate page lists it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GenerateCard {
    pub summary: WorkflowSummary,
    /// Derived from its nodes: `txt2img`, `img2img`, `video`, `upscale`, …
    pub tags: Vec<String>,
    /// The presets that provide its missing models.
    pub presets: Vec<PresetNeed>,
    /// Sum of `presets`' downloads.
    pub download_bytes: u64,
    /// Missing model files no preset provides (`folder/file`).
    pub unprovided: Vec<String>,
}

impl GenerateCard {
    pub fn ready(&self) -> bool {
        self.summary.models_ready()
    }
}

/// The Generate page's workflow list: ready ones first, then those that need models.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GenerateLibrary {
    pub ready: Vec<GenerateCard>,
    pub needs_models: Vec<GenerateCard>,
    pub comfyui_note: Option<String>,
}

/// The form for one workflow: its inputs, the values remembered from last time, and its
/// history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GenerateForm {
    pub card: GenerateCard,
    /// Values last used with this workflow (empty the first time).
    pub remembered: Vec<InputValue>,
    pub history: Vec<Generation>,
    /// Whether "enhance" asks an LLM (`LLM_BASE_URL` and `LLM_MODEL` set).
    pub llm_enabled: bool,
}

/// An image put into ComfyUI's input folder.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadedImage {
    /// The value for a LoadImage `image` input (`sub/name.png` in a subfolder).
    pub value: String,
    pub name: String,
    pub subfolder: String,
}

/// "Open in Generate" for a gallery output: the library workflow it was made with (imported
/// from the file's own workflow when the library has none like it) and its values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GeneratePrefill {
    pub workflow_id: String,
    pub values: Vec<InputValue>,
    /// The workflow was imported from the output file into the user's workflows.
    pub imported: bool,
}

/// Intent shortcuts on the Generate page: a label and the words it matches in titles, tags and
/// node types.
pub const GENERATE_INTENTS: &[(&str, &[&str])] = &[
    (
        "portrait",
        &[
            "portrait",
            "face",
            "headshot",
            "person",
            "photomaker",
            "instantid",
        ],
    ),
    (
        "video",
        &["video", "animate", "wan", "ltxv", "hunyuan", "mochi", "svd"],
    ),
    ("upscale", &["upscale", "esrgan", "superres"]),
    ("img2img", &["img2img", "loadimage"]),
    ("inpaint", &["inpaint", "mask"]),
    ("audio", &["audio", "music", "speech", "tts"]),
];

/// Whether a card matches a search: every word of `query` appears in its name, path, tags or
/// node types (case-insensitive); an intent label matches any of its words.
pub fn generate_card_matches(card: &GenerateCard, query: &str) -> bool {
    let haystack = [
        card.summary.name.to_lowercase(),
        card.summary.path.to_lowercase(),
        card.tags.join(" ").to_lowercase(),
        card.summary.node_types.join(" ").to_lowercase(),
    ]
    .join(" ");
    query.split_whitespace().map(str::to_lowercase).all(|word| {
        match GENERATE_INTENTS.iter().find(|(label, _)| *label == word) {
            Some((_, words)) => words.iter().any(|w| haystack.contains(w)),
            None => haystack.contains(&word),
        }
    })
}
