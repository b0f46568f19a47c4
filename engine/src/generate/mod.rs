//! The Generate page's domain: workflow cards grouped by readiness (with the presets that
//! provide missing models), the form's remembered values, generations kept in SQLite and
//! updated from the live run events, image uploads into ComfyUI's input folder, and prompt
//! enhancement.

pub mod enhance;
pub mod history;
pub(crate) mod service;

use std::collections::BTreeSet;
use std::time::Duration;

use crate::bridge::BridgeError;
use crate::catalog::Catalog;
use crate::comfy::http::ComfyError;
use crate::model::*;
pub use service::Generator;

/// Largest image accepted for upload (ComfyUI's own default limit is 100 MB).
pub const MAX_UPLOAD_BYTES: usize = 50 * 1024 * 1024;
/// File types LoadImage reads.
const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "webp", "gif", "bmp", "tif", "tiff"];
/// How often start-up reconciliation retries while ComfyUI does not answer, and how often.
const RECONCILE_RETRY: Duration = Duration::from_secs(15);
const RECONCILE_TRIES: u32 = 40;

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("the generation history cannot be read or written: {0}")]
    Store(#[from] sqlx::Error),
    #[error("the generation history holds a row this version cannot read: {0}")]
    Corrupt(String),
    #[error("cannot encode the generation for the history: {0}")]
    Encode(String),
    /// The request is wrong; the message says which field and why.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("ComfyUI did not take the image: {0}")]
    Upload(ComfyError),
    #[error(transparent)]
    Workflow(#[from] crate::workflows::WorkflowError),
    #[error(transparent)]
    Bridge(#[from] BridgeError),
    #[error(transparent)]
    Gallery(#[from] crate::gallery::GalleryError),
    #[error(transparent)]
    Jobs(#[from] crate::jobs::JobError),
}

impl crate::error::Classify for GenerateError {
    fn kind(&self) -> ErrorKind {
        match self {
            GenerateError::Invalid(_) => ErrorKind::Invalid,
            GenerateError::NotFound(_) => ErrorKind::NotFound,
            // ComfyUI refused or is away: a gateway problem.
            GenerateError::Upload(_) => ErrorKind::Unavailable,
            GenerateError::Store(_) | GenerateError::Corrupt(_) | GenerateError::Encode(_) => {
                ErrorKind::Internal
            }
            GenerateError::Workflow(e) => e.kind(),
            GenerateError::Bridge(e) => e.kind(),
            GenerateError::Gallery(e) => e.kind(),
            GenerateError::Jobs(e) => e.kind(),
        }
    }
}

impl GenerateError {
    pub(crate) fn encode(e: serde_json::Error) -> Self {
        GenerateError::Encode(e.to_string())
    }

    pub(crate) fn corrupt(e: serde_json::Error) -> Self {
        GenerateError::Corrupt(e.to_string())
    }
}

/// A library workflow as a card: its tags and the presets (with download sizes) that provide
/// its missing models.
pub fn card(summary: WorkflowSummary, catalog: &Catalog) -> GenerateCard {
    let mut presets: Vec<PresetNeed> = Vec::new();
    let mut unprovided = Vec::new();
    for model in summary.required_models.iter().filter(|m| !m.installed) {
        match &model.preset_id {
            Some(id) if presets.iter().any(|p| &p.id == id) => {}
            Some(id) => {
                let (name, download_bytes) = match catalog.get(id) {
                    Some(p) => (
                        p.name.clone(),
                        p.download_bytes
                            .unwrap_or_else(|| p.files.iter().filter_map(|f| f.size_bytes).sum()),
                    ),
                    None => (id.clone(), 0),
                };
                presets.push(PresetNeed {
                    id: id.clone(),
                    name,
                    download_bytes,
                });
            }
            None => unprovided.push(format!("{}/{}", model.folder, model.file)),
        }
    }
    GenerateCard {
        tags: workflow_tags(&summary),
        download_bytes: presets.iter().map(|p| p.download_bytes).sum(),
        presets,
        unprovided,
        summary,
    }
}

/// Keeps only values the workflow still has an input for (a workflow edited since may have
/// lost nodes); the form fills the rest from the workflow.
pub fn applicable(values: Vec<InputValue>, inputs: &[EditableInput]) -> Vec<InputValue> {
    values
        .into_iter()
        .filter(|v| {
            inputs
                .iter()
                .any(|i| i.node_id == v.node_id && i.input == v.input)
        })
        .collect()
}

/// Node classes that exist only in ComfyUI's editor and never reach an API prompt.
const EDITOR_ONLY: &[&str] = &["Note", "MarkdownNote", "Reroute", "PrimitiveNode"];

/// How well a library workflow fits the API prompt an output was made with: `None` when it
/// cannot be the one (a class the prompt lacks, or an input on a node of another class); else
/// how many of its inputs the prompt sets.
pub fn prompt_match(summary: &WorkflowSummary, prompt: &serde_json::Value) -> Option<usize> {
    let nodes = prompt.as_object()?;
    let prompt_classes: BTreeSet<&str> = nodes
        .values()
        .filter_map(|n| n.get("class_type").and_then(serde_json::Value::as_str))
        .collect();
    let classes: BTreeSet<&str> = summary
        .node_types
        .iter()
        .map(String::as_str)
        .filter(|t| !EDITOR_ONLY.contains(t))
        .collect();
    if classes.is_empty() || classes != prompt_classes {
        return None;
    }
    let mut matched = 0;
    for input in &summary.inputs {
        let node = nodes.get(&input.node_id)?;
        if node.get("class_type").and_then(serde_json::Value::as_str) != Some(&input.class_type) {
            return None;
        }
        if node.pointer(&format!("/inputs/{}", input.input)).is_some() {
            matched += 1;
        }
    }
    Some(matched)
}

/// The values an API prompt gives a workflow's inputs (links and missing ones are skipped).
pub fn values_from_prompt(inputs: &[EditableInput], prompt: &serde_json::Value) -> Vec<InputValue> {
    inputs
        .iter()
        .filter_map(|input| {
            let value = prompt
                .get(&input.node_id)?
                .get("inputs")?
                .get(&input.input)?;
            (!value.is_array() && !value.is_object() && !value.is_null()).then(|| InputValue {
                node_id: input.node_id.clone(),
                input: input.input.clone(),
                value: value.clone(),
            })
        })
        .collect()
}

/// Checks an upload's file name: a plain image file name, no folders.
pub fn check_upload_name(file_name: &str) -> Result<(), GenerateError> {
    let name = file_name.trim();
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        return Err(GenerateError::Invalid(format!(
            "file_name must be a plain file name without folders, got {file_name:?}"
        )));
    }
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    match ext {
        Some(e) if IMAGE_EXTENSIONS.contains(&e.as_str()) => Ok(()),
        _ => Err(GenerateError::Invalid(format!(
            "{file_name:?} is not an image file ({} accepted)",
            IMAGE_EXTENSIONS.join(", ")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(types: &[&str]) -> WorkflowSummary {
        WorkflowSummary::of_node_types(types)
    }

    #[test]
    fn tags_come_from_node_types() {
        let txt2img = summary(&[
            "CheckpointLoaderSimple",
            "EmptyLatentImage",
            "KSampler",
            "SaveImage",
        ]);
        assert_eq!(workflow_tags(&txt2img), vec!["txt2img"]);
        let img2img = summary(&[
            "LoadImage",
            "VAEEncode",
            "KSampler",
            "ImageUpscaleWithModel",
        ]);
        assert_eq!(workflow_tags(&img2img), vec!["img2img", "upscale"]);
        let video = summary(&["EmptyHunyuanLatentVideo", "KSampler", "SaveVideo"]);
        assert_eq!(workflow_tags(&video), vec!["video"]);
    }

    #[test]
    fn intents_match_titles_tags_and_node_types() {
        let mut c = card(
            summary(&["LoadImage", "KSampler", "ImageUpscaleWithModel"]),
            &Catalog::builtin(),
        );
        c.summary.name = "Studio Portrait".into();
        assert!(generate_card_matches(&c, "portrait"));
        assert!(generate_card_matches(&c, "upscale"));
        assert!(generate_card_matches(&c, "img2img"));
        assert!(generate_card_matches(&c, "ksampler studio"));
        assert!(!generate_card_matches(&c, "video"));
        assert!(!generate_card_matches(&c, "portrait audio"));
        assert!(generate_card_matches(&c, ""));
    }

    #[test]
    fn cards_sum_the_presets_that_provide_missing_models() {
        let catalog = Catalog::builtin();
        let preset = catalog
            .presets
            .values()
            .find(|p| p.download_bytes.unwrap_or(0) > 0)
            .expect("a built-in preset with a size");
        let mut s = summary(&["CheckpointLoaderSimple"]);
        let model = |file: &str, preset_id: Option<&str>, installed: bool| RequiredModel {
            folder: "checkpoints".into(),
            file: file.into(),
            node_id: "1".into(),
            class_type: "CheckpointLoaderSimple".into(),
            input: "ckpt_name".into(),
            installed,
            preset_id: preset_id.map(str::to_string),
        };
        s.required_models = vec![
            model("a.safetensors", Some(&preset.id), false),
            model("b.safetensors", Some(&preset.id), false),
            model("c.safetensors", None, false),
            model("d.safetensors", None, true),
        ];
        let c = card(s, &catalog);
        assert!(!c.ready());
        assert_eq!(c.presets.len(), 1, "one preset, listed once");
        assert_eq!(c.presets[0].name, preset.name);
        assert!(c.download_bytes > 0);
        assert_eq!(c.download_bytes, c.presets[0].download_bytes);
        assert_eq!(c.unprovided, vec!["checkpoints/c.safetensors"]);
    }

    #[test]
    fn an_output_prompt_finds_the_workflow_of_its_shape() {
        let mut s = summary(&["EmptyImage", "ImageInvert", "SaveImage", "Note"]);
        s.inputs = vec![EditableInput {
            node_id: "1".into(),
            class_type: "EmptyImage".into(),
            node_title: "EmptyImage".into(),
            input: "width".into(),
            kind: InputKind::Int,
            value: serde_json::json!(64),
            min: None,
            max: None,
            step: None,
            options: None,
            label: "Width".into(),
            role: None,
        }];
        let prompt = serde_json::json!({
            "1": {"class_type": "EmptyImage", "inputs": {"width": 512, "height": 48}},
            "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
            "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0]}}
        });
        assert_eq!(prompt_match(&s, &prompt), Some(1));
        assert_eq!(
            values_from_prompt(&s.inputs, &prompt),
            vec![InputValue {
                node_id: "1".into(),
                input: "width".into(),
                value: serde_json::json!(512)
            }]
        );
        // Another class at the input's node, or other classes: not this workflow.
        let mut moved = prompt.clone();
        moved["1"]["class_type"] = serde_json::json!("EmptyLatentImage");
        assert_eq!(prompt_match(&s, &moved), None);
        let mut more = prompt.clone();
        more["4"] = serde_json::json!({"class_type": "ImageBlur", "inputs": {}});
        assert_eq!(prompt_match(&s, &more), None);
    }

    #[test]
    fn upload_names_are_plain_image_files() {
        assert!(check_upload_name("cat.PNG").is_ok());
        assert!(check_upload_name("a b (1).jpeg").is_ok());
        for bad in ["", "../x.png", "sub/x.png", ".hidden.png", "x.exe", "noext"] {
            assert!(check_upload_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn remembered_values_for_vanished_inputs_are_dropped() {
        let input = EditableInput {
            node_id: "3".into(),
            class_type: "KSampler".into(),
            node_title: "KSampler".into(),
            input: "steps".into(),
            kind: InputKind::Int,
            value: serde_json::json!(20),
            min: None,
            max: None,
            step: None,
            options: None,
            label: "Steps".into(),
            role: None,
        };
        let v = |node: &str, name: &str| InputValue {
            node_id: node.into(),
            input: name.into(),
            value: serde_json::json!(7),
        };
        let kept = applicable(
            vec![v("3", "steps"), v("9", "steps"), v("3", "cfg")],
            &[input],
        );
        assert_eq!(kept, vec![v("3", "steps")]);
    }
}
