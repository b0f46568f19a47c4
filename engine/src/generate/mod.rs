//! The Generate page's domain: workflow cards grouped by readiness (with the presets that
//! provide missing models), the form's remembered values, generations kept in SQLite and
//! updated from the live run events, image uploads into ComfyUI's input folder, and prompt
//! enhancement.

pub mod enhance;
pub mod history;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use crate::bridge::BridgeError;
use crate::catalog::Catalog;
use crate::comfy::http::ComfyError;
use crate::model::*;
use crate::{now_ms, Engine, EngineError};
use history::{GenerationStore, NewGeneration};

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

/// Applies the live run events to the generation history, and settles rows left queued or
/// running by an earlier process. Subscribes before returning, so no event after this call is
/// missed.
pub(crate) fn spawn_tracker(engine: &Arc<Engine>) {
    use tokio::sync::broadcast::error::RecvError;
    let mut rx = engine.events().subscribe();
    engine.spawn_until_shutdown(|tracker| async move {
        let store = tracker.generation_store();
        loop {
            match rx.recv().await {
                Ok(Event::Run(run)) => {
                    match store
                        .apply_event(&run.prompt_id, &run.event, now_ms())
                        .await
                    {
                        Ok(true) => tracker.publish_generation(&run.prompt_id).await,
                        Ok(false) => {}
                        Err(e) => {
                            tracing::warn!(error = %e, prompt_id = %run.prompt_id, "generation history not updated")
                        }
                    }
                }
                Ok(_) => {}
                // Events were dropped: ComfyUI's history tells how the runs ended.
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!(skipped = n, "generation tracker lagged; reconciling");
                    if let Err(e) = tracker.reconcile_generations().await {
                        tracing::warn!(error = %e, "generation reconciliation failed");
                    }
                }
                Err(RecvError::Closed) => return,
            }
        }
    });
    engine.spawn_until_shutdown(|engine| async move {
        for _ in 0..RECONCILE_TRIES {
            match engine.reconcile_generations().await {
                Ok(n) => {
                    if n > 0 {
                        tracing::info!(settled = n, "generations settled from ComfyUI's history");
                    }
                    return;
                }
                Err(e) => tracing::debug!(error = %e, "generation reconciliation will retry"),
            }
            tokio::time::sleep(RECONCILE_RETRY).await;
        }
    });
}

impl Engine {
    pub fn generation_store(&self) -> GenerationStore {
        GenerationStore::new(self.store().pool().clone())
    }

    /// Tells live viewers that a generation's row changed.
    async fn publish_generation(&self, prompt_id: &str) {
        match self.generation_store().by_prompt(prompt_id).await {
            Ok(Some(row)) => self.events().publish(Event::Generation(row)),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "generation not published"),
        }
    }

    /// Every library workflow as a card, split into ready and needing models (ready first;
    /// each group by name).
    pub async fn generate_library(&self) -> Result<GenerateLibrary, EngineError> {
        let list = self.list_workflows().await?;
        let catalog = self.catalog();
        let mut ready = Vec::new();
        let mut needs_models = Vec::new();
        // Files that hold no workflow cannot be run: they are listed on the Workflows page.
        for summary in list
            .workflows
            .into_iter()
            .filter(|w| w.format != WorkflowFileFormat::Unknown)
        {
            let card = card(summary, &catalog);
            if card.ready() {
                ready.push(card);
            } else {
                needs_models.push(card);
            }
        }
        let by_name = |a: &GenerateCard, b: &GenerateCard| {
            a.summary
                .name
                .to_lowercase()
                .cmp(&b.summary.name.to_lowercase())
                .then_with(|| a.summary.id.cmp(&b.summary.id))
        };
        ready.sort_by(by_name);
        needs_models.sort_by(by_name);
        Ok(GenerateLibrary {
            ready,
            needs_models,
            comfyui_note: list.comfyui_note,
        })
    }

    /// The form for one workflow: its card, the values last used with it, its history.
    pub async fn generate_form(&self, workflow_id: &str) -> Result<GenerateForm, EngineError> {
        let detail = self.workflow(workflow_id).await?;
        let store = self.generation_store();
        let remembered = applicable(store.remembered(workflow_id).await?, &detail.summary.inputs);
        let history = store.list(Some(workflow_id)).await?;
        Ok(GenerateForm {
            card: card(detail.summary, &self.catalog()),
            remembered,
            history,
            llm_enabled: self.config().llm().is_some(),
        })
    }

    /// Submits a library workflow with the form's values, remembers them for next time, and
    /// records the generation (before submitting, so that no event of it is missed).
    pub async fn generate(
        &self,
        workflow_id: &str,
        inputs: &[InputValue],
    ) -> Result<RunSubmission, EngineError> {
        let detail = self.workflow(workflow_id).await?;
        let store = self.generation_store();
        let prompt_id = crate::bridge::new_prompt_id();
        store
            .insert(NewGeneration {
                workflow_id,
                workflow_name: &detail.summary.name,
                inputs,
                prompt_id: &prompt_id,
                created_ms: now_ms(),
            })
            .await?;
        let catalog = self.catalog();
        let submitted = self
            .bridge()
            .submit_as(&detail.workflow, inputs, &catalog, prompt_id.clone())
            .await;
        match &submitted {
            Ok(s) if s.prompt_id.is_some() => {}
            // Refused before or by ComfyUI: nothing ran, so nothing to keep.
            _ => store.delete_by_prompt(&prompt_id).await?,
        }
        let submitted = submitted?;
        if submitted.prompt_id.is_some() {
            self.publish_generation(&prompt_id).await;
        }
        // Values that were refused are not worth remembering; accepted ones are, even when
        // ComfyUI then refused the prompt for a missing model.
        store.remember(workflow_id, inputs, now_ms()).await?;
        Ok(submitted)
    }

    /// Newest first: one workflow's generations, or all.
    pub async fn generations(
        &self,
        workflow_id: Option<&str>,
    ) -> Result<Vec<Generation>, EngineError> {
        Ok(self.generation_store().list(workflow_id).await?)
    }

    pub async fn generation(&self, id: i64) -> Result<Generation, EngineError> {
        self.generation_store()
            .by_id(id)
            .await?
            .ok_or_else(|| GenerateError::NotFound(format!("no generation {id}")).into())
    }

    /// Cancels a generation: removed from the queue while pending (then `cancelled`),
    /// interrupted while running (ComfyUI then reports it `interrupted`).
    pub async fn cancel_generation(&self, prompt_id: &str) -> Result<Generation, EngineError> {
        let store = self.generation_store();
        let found = store.by_prompt(prompt_id).await?.ok_or_else(|| {
            GenerateError::NotFound(format!("no generation with prompt id {prompt_id}"))
        })?;
        if !found.status.is_active() {
            return Ok(found);
        }
        let queue = self.bridge().queue().await?;
        if queue.pending.iter().any(|e| e.prompt_id == prompt_id) {
            self.bridge().cancel_pending(prompt_id).await?;
            store
                .finish(prompt_id, GenerationStatus::Cancelled, None, now_ms())
                .await?;
            self.publish_generation(prompt_id).await;
        } else if queue.running.iter().any(|e| e.prompt_id == prompt_id) {
            self.bridge().interrupt(prompt_id).await?;
        } else {
            // Neither waiting nor running: it ended while the event was on its way.
            self.settle_generation(&found).await?;
        }
        Ok(store.by_prompt(prompt_id).await?.unwrap_or(found))
    }

    /// Settles every queued or running row from ComfyUI's history; returns how many changed.
    pub async fn reconcile_generations(&self) -> Result<usize, EngineError> {
        let mut settled = 0;
        for generation in self.generation_store().active().await? {
            if self.settle_generation(&generation).await? {
                self.publish_generation(&generation.prompt_id).await;
                settled += 1;
            }
        }
        Ok(settled)
    }

    /// One active row against ComfyUI: its history entry if it has one; still queued or
    /// running if ComfyUI says so; else lost (ComfyUI restarted before running it).
    async fn settle_generation(&self, generation: &Generation) -> Result<bool, EngineError> {
        let store = self.generation_store();
        let id = &generation.prompt_id;
        match self.bridge().history(id).await {
            Ok(record) => {
                let (status, error) = match record.outcome {
                    RunOutcome::Succeeded => (GenerationStatus::Succeeded, None),
                    RunOutcome::Failed {
                        node,
                        node_type,
                        message,
                    } => (
                        GenerationStatus::Failed,
                        Some(match (node_type, node) {
                            (Some(t), Some(n)) => format!("{t} (node {n}): {message}"),
                            _ => message,
                        }),
                    ),
                    RunOutcome::Interrupted { .. } => (GenerationStatus::Interrupted, None),
                    RunOutcome::Unknown { .. } => return Ok(false),
                };
                store
                    .settle(
                        id,
                        status,
                        error.as_deref(),
                        record.started_at_ms,
                        record.ended_at_ms.unwrap_or_else(now_ms),
                        &record.outputs,
                    )
                    .await?;
                Ok(true)
            }
            Err(BridgeError::NotFound(_)) => {
                let queue = self.bridge().queue().await?;
                if queue.running.iter().any(|e| &e.prompt_id == id) {
                    store
                        .apply_event(id, &RunEventKind::Started, now_ms())
                        .await?;
                    return Ok(false);
                }
                if queue.pending.iter().any(|e| &e.prompt_id == id) {
                    return Ok(false);
                }
                store
                    .finish(
                        id,
                        GenerationStatus::Failed,
                        Some("ComfyUI has no record of this prompt: it restarted before finishing it"),
                        now_ms(),
                    )
                    .await?;
                Ok(true)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// "Open in Generate": the workflow a gallery output was made with and its values. The
    /// generation comfydeck recorded for it wins; else the library workflow shaped like the
    /// file's prompt; else the file's own workflow is imported into the user's workflows.
    pub async fn generate_from_output(&self, item_id: i64) -> Result<GeneratePrefill, EngineError> {
        let detail = self.gallery_item(item_id).await?;
        let list = self.list_workflows().await?;
        let exists = |id: &str| list.workflows.iter().any(|w| w.id == id);
        if let Some(prompt_id) = &detail.item.prompt_id {
            if let Some(generation) = self.generation_store().by_prompt(prompt_id).await? {
                if exists(&generation.workflow_id) {
                    return Ok(GeneratePrefill {
                        workflow_id: generation.workflow_id,
                        values: generation.inputs,
                        imported: false,
                    });
                }
            }
        }
        let meta = &detail.meta;
        if let Some(prompt) = &meta.prompt {
            let best = list
                .workflows
                .iter()
                .filter_map(|w| prompt_match(w, prompt).map(|score| (score, w)))
                // Most inputs set by the prompt; then the user's own over templates over
                // ComfyUI's saved ones; then by id, so the choice is stable.
                .max_by_key(|(score, w)| {
                    let source = match w.source {
                        WorkflowSource::User => 2,
                        WorkflowSource::Template => 1,
                        WorkflowSource::ComfyUi => 0,
                    };
                    (*score, source, std::cmp::Reverse(w.id.clone()))
                });
            if let Some((_, workflow)) = best {
                return Ok(GeneratePrefill {
                    workflow_id: workflow.id.clone(),
                    values: values_from_prompt(&workflow.inputs, prompt),
                    imported: false,
                });
            }
        }
        let Some(embedded) = meta.workflow.as_ref().or(meta.prompt.as_ref()) else {
            return Err(GenerateError::NotFound(format!(
                "{} carries no workflow, so it cannot be opened in Generate",
                detail.item.name()
            ))
            .into());
        };
        let stem = detail
            .item
            .name()
            .rsplit_once('.')
            .map_or(detail.item.name(), |(stem, _)| stem)
            .to_string();
        let bytes = serde_json::to_vec(embedded).map_err(GenerateError::encode)?;
        let summary = self
            .import_workflow(&format!("{stem}.json"), &bytes)
            .await?;
        let values = meta
            .prompt
            .as_ref()
            .map(|p| values_from_prompt(&summary.inputs, p))
            .unwrap_or_default();
        Ok(GeneratePrefill {
            workflow_id: summary.id,
            values,
            imported: true,
        })
    }

    /// Puts an image into ComfyUI's input folder (never overwriting: ComfyUI renames a
    /// different file with the same name); the answer's `value` goes into a LoadImage input.
    pub async fn upload_input_image(
        &self,
        file_name: &str,
        bytes: Vec<u8>,
    ) -> Result<UploadedImage, EngineError> {
        check_upload_name(file_name)?;
        if bytes.is_empty() {
            return Err(GenerateError::Invalid(format!("{file_name} is empty")).into());
        }
        if bytes.len() > MAX_UPLOAD_BYTES {
            return Err(GenerateError::Invalid(format!(
                "{file_name} is {}; images up to {} are accepted",
                format_bytes(bytes.len() as u64),
                format_bytes(MAX_UPLOAD_BYTES as u64)
            ))
            .into());
        }
        let client = crate::comfy::ComfyClient::new(&self.config().comfyui_url);
        let uploaded = client
            .upload_image(file_name.trim(), bytes, "", false)
            .await
            .map_err(GenerateError::Upload)?;
        let value = match uploaded.subfolder.as_str() {
            "" => uploaded.name.clone(),
            sub => format!("{sub}/{}", uploaded.name),
        };
        Ok(UploadedImage {
            value,
            name: uploaded.name,
            subfolder: uploaded.subfolder,
        })
    }

    /// [`upload_input_image`](Self::upload_input_image) for JSON clients.
    pub async fn upload_input_image_base64(
        &self,
        file_name: &str,
        content_base64: &str,
    ) -> Result<UploadedImage, EngineError> {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(content_base64.trim())
            .map_err(|e| GenerateError::Invalid(format!("content_base64 is not base64: {e}")))?;
        self.upload_input_image(file_name, bytes).await
    }

    /// Applies a style to a prompt pair: with the configured LLM (falling back to the static
    /// template on any failure, saying why), else with the template.
    pub async fn enhance_prompt(
        &self,
        positive: &str,
        negative: &str,
        style: PromptStyle,
    ) -> Result<EnhancedPrompt, EngineError> {
        for (name, text) in [("positive", positive), ("negative", negative)] {
            if text.chars().count() > enhance::MAX_PROMPT_CHARS {
                return Err(GenerateError::Invalid(format!(
                    "the {name} prompt is longer than {} characters",
                    enhance::MAX_PROMPT_CHARS
                ))
                .into());
            }
        }
        Ok(enhance::enhance(self.config().llm().as_ref(), positive, negative, style).await)
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
