//! The Generate page: prompt styles, generations, workflow cards, intents.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::named::named_enum;
use super::{InputValue, RunOutput, WorkflowSummary};

/// Which sampler input a prompt text ends up in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromptRole {
    Positive,
    Negative,
}

named_enum! {
    /// A prompt style: a static template, or the brief an LLM gets.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum PromptStyle {
        Detailed = "detailed",
        Cinematic = "cinematic",
        Artistic = "artistic",
        Minimal = "minimal",
    }
}

impl PromptStyle {
    pub const ALL: [PromptStyle; 4] = [
        PromptStyle::Detailed,
        PromptStyle::Cinematic,
        PromptStyle::Artistic,
        PromptStyle::Minimal,
    ];

    pub fn label(self) -> &'static str {
        match self {
            PromptStyle::Detailed => "Detailed",
            PromptStyle::Cinematic => "Cinematic",
            PromptStyle::Artistic => "Artistic",
            PromptStyle::Minimal => "Minimal",
        }
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

named_enum! {
    /// Where a generation stands.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum GenerationStatus {
        Queued = "queued",
        Running = "running",
        Succeeded = "succeeded",
        Failed = "failed",
        Interrupted = "interrupted",
        Cancelled = "cancelled",
    }
}

impl GenerationStatus {
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
    /// Whose generation it is.
    #[serde(default)]
    pub user_id: i64,
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

/// The Generate page's intents, each written once: the label (a search shortcut, and the tag a
/// workflow gets when its nodes show it) and the words that show it, as parts of node types,
/// names or paths (lowercase).
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
    // A LoadImage alone is no img2img (an upscale or a caption loads images too): the graph
    // rule in `workflow_tags` gives that tag.
    ("img2img", &["img2img"]),
    ("inpaint", &["inpaint", "mask"]),
    ("audio", &["audio", "music", "speech", "tts"]),
];

/// Tags derived from a workflow's nodes, for the cards and the intent shortcuts: every intent
/// whose words appear in a node type; `img2img` for a sampler with a LoadImage, `txt2img` for
/// a sampler on an empty latent with neither; and the model families its files name.
pub fn workflow_tags(summary: &WorkflowSummary) -> Vec<String> {
    let types: Vec<String> = summary
        .node_types
        .iter()
        .map(|t| t.to_lowercase())
        .collect();
    let has = |needle: &str| types.iter().any(|t| t.contains(needle));
    let mut tags = BTreeSet::new();
    for (label, words) in GENERATE_INTENTS {
        if words.iter().any(|w| has(w)) {
            tags.insert(*label);
        }
    }
    let samples = has("sampler");
    if types.iter().any(|t| t == "loadimage") {
        if samples {
            tags.insert("img2img");
        }
    } else if samples
        && !tags.contains("video")
        && types
            .iter()
            .any(|t| t.starts_with("empty") && t.contains("latent"))
    {
        tags.insert("txt2img");
    }
    let models = summary
        .required_models
        .iter()
        .map(|m| m.file.to_lowercase())
        .collect::<Vec<_>>()
        .join(" ");
    for family in ["flux", "sdxl", "sd3", "wan", "hidream", "qwen"] {
        if models.contains(family) {
            tags.insert(family);
        }
    }
    tags.into_iter().map(str::to_string).collect()
}

/// Whether a card matches a search: every word of `query` appears in its name, path, tags or
/// node types (case-insensitive); an intent label matches any of its words (its own label, so
/// its tag, among them).
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

#[cfg(test)]
mod tests {
    use super::*;

    fn card(types: &[&str]) -> GenerateCard {
        let summary = WorkflowSummary::of_node_types(types);
        GenerateCard {
            tags: workflow_tags(&summary),
            summary,
            presets: Vec::new(),
            download_bytes: 0,
            unprovided: Vec::new(),
        }
    }

    // The tags and the shortcuts used to keep lists of their own: an ESRGAN upscale, a Mochi
    // video or a SetLatentNoiseMask inpaint matched the shortcut without showing its tag.
    #[test]
    fn every_word_of_an_intent_in_a_node_type_gives_its_tag_and_its_shortcut() {
        for (label, words) in GENERATE_INTENTS {
            for word in *words {
                let c = card(&[&format!("Some{word}Node"), "SaveImage"]);
                assert!(c.tags.iter().any(|t| t == label), "{word}: {:?}", c.tags);
                assert!(generate_card_matches(&c, label), "{word}");
            }
        }
        let c = card(&["UpscaleModelLoader", "ESRGANLoader", "SetLatentNoiseMask"]);
        assert_eq!(c.tags, vec!["inpaint", "upscale"]);
    }

    #[test]
    fn a_shortcut_matches_exactly_the_cards_with_its_tag() {
        let cards = [
            card(&["LoadImage", "KSampler", "SaveImage"]),
            card(&["LoadImage", "ImageUpscaleWithModel", "SaveImage"]),
            card(&["EmptyLatentImage", "KSampler", "SaveImage"]),
            card(&["EmptyMochiLatentVideo", "KSampler", "SaveVideo"]),
            card(&["LoadAudio", "SaveAudio"]),
            card(&["FaceDetailer", "KSampler"]),
            card(&["ImageInvert"]),
        ];
        for (label, _) in GENERATE_INTENTS {
            for c in &cards {
                assert_eq!(
                    generate_card_matches(c, label),
                    c.tags.iter().any(|t| t == label),
                    "{label}: {:?} tagged {:?}",
                    c.summary.node_types,
                    c.tags
                );
            }
        }
        // A LoadImage without a sampler is an upscale, not an img2img.
        assert_eq!(cards[1].tags, vec!["upscale"]);
        assert_eq!(cards[2].tags, vec!["txt2img"]);
        assert_eq!(cards[3].tags, vec!["video"]);
    }
}
