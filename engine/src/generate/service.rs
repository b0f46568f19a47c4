//! The generator: submits library workflows with the form's values, keeps every generation
//! in SQLite and follows it through the live run events, uploads input images and enhances
//! prompts.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::enhance;
use super::history::{GenerationStore, NewGeneration};
use super::*;
use crate::bridge::Bridge;
use crate::catalog::CatalogService;
use crate::clock::now_ms;
use crate::comfy::ComfyClient;
use crate::config::LlmConfig;
use crate::events::EventBus;
use crate::gallery::GalleryService;
use crate::jobs::JobService;
use crate::workflows::WorkflowService;

pub struct Generator {
    history: GenerationStore,
    events: EventBus,
    bridge: Arc<Bridge>,
    workflows: Arc<WorkflowService>,
    gallery: Arc<GalleryService>,
    catalog: Arc<CatalogService>,
    /// Every run goes through the queue.
    jobs: Arc<JobService>,
    comfy: ComfyClient,
    llm: Option<LlmConfig>,
}

/// Applies the live run events to the generation history, and settles rows left queued or
/// running by an earlier process. Subscribes before returning, so no event after this call is
/// missed.
pub(crate) fn spawn_tracker(generator: &Arc<Generator>, stopping: &CancellationToken) {
    use tokio::sync::broadcast::error::RecvError;
    let mut rx = generator.events.subscribe();
    let tracker = Arc::clone(generator);
    crate::background::spawn_until(stopping, async move {
        let store = tracker.history.clone();
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
                // A job that ended without ComfyUI saying so (refused by the worker, out of
                // deliveries, cancelled while waiting) ends its generation too.
                Ok(Event::Job(job)) if !job.state.is_active() => {
                    match tracker.settle_from_job(&job).await {
                        Ok(true) => tracker.publish_generation(&job.prompt_id).await,
                        Ok(false) => {}
                        Err(e) => {
                            tracing::warn!(error = %e, job = job.id, "generation not settled from its job")
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
    let reconciler = Arc::clone(generator);
    crate::background::spawn_until(stopping, async move {
        for _ in 0..RECONCILE_TRIES {
            match reconciler.reconcile_generations().await {
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

/// The rows a caller's lists keep: an administrator's everyone's, a user's their own.
fn scope(caller: &Caller) -> Option<i64> {
    (!caller.is_admin()).then_some(caller.user_id)
}

impl Generator {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        history: GenerationStore,
        events: EventBus,
        bridge: Arc<Bridge>,
        workflows: Arc<WorkflowService>,
        gallery: Arc<GalleryService>,
        catalog: Arc<CatalogService>,
        jobs: Arc<JobService>,
        comfy: ComfyClient,
        llm: Option<LlmConfig>,
    ) -> Self {
        Generator {
            history,
            events,
            bridge,
            workflows,
            gallery,
            catalog,
            jobs,
            comfy,
            llm,
        }
    }

    /// The generations table.
    pub fn history(&self) -> &GenerationStore {
        &self.history
    }

    /// Tells live viewers that a generation's row changed.
    async fn publish_generation(&self, prompt_id: &str) {
        match self.history.by_prompt(prompt_id).await {
            Ok(Some(row)) => self.events.publish(Event::Generation(row)),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "generation not published"),
        }
    }

    /// Every library workflow as a card, split into ready and needing models (ready first;
    /// each group by name).
    pub async fn library(&self, caller: &Caller) -> Result<GenerateLibrary, GenerateError> {
        let list = self.workflows.list(caller).await?;
        let catalog = self.catalog.current();
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
    pub async fn form(
        &self,
        caller: &Caller,
        workflow_id: &str,
    ) -> Result<GenerateForm, GenerateError> {
        let detail = self.workflows.get(caller, workflow_id).await?;
        let store = &self.history;
        let remembered = applicable(
            store.remembered(caller.user_id, workflow_id).await?,
            &detail.summary.inputs,
        );
        let history = store.list(Some(workflow_id), scope(caller)).await?;
        Ok(GenerateForm {
            card: card(detail.summary, &self.catalog.current()),
            remembered,
            history,
            llm_enabled: self.llm.is_some(),
        })
    }

    /// Submits a library workflow with the form's values, remembers them for next time, and
    /// records the generation (before submitting, so that no event of it is missed).
    pub async fn submit(
        &self,
        caller: &Caller,
        workflow_id: &str,
        inputs: &[InputValue],
    ) -> Result<RunSubmission, GenerateError> {
        let detail = self.workflows.get(caller, workflow_id).await?;
        let store = &self.history;
        let prompt_id = crate::bridge::new_prompt_id();
        store
            .insert(NewGeneration {
                workflow_id,
                workflow_name: &detail.summary.name,
                inputs,
                prompt_id: &prompt_id,
                created_ms: now_ms(),
                user_id: caller.user_id,
            })
            .await?;
        let submitted = self
            .jobs
            .run(
                caller,
                Some(workflow_id.to_string()),
                None,
                inputs.to_vec(),
                prompt_id.clone(),
            )
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
        store
            .remember(caller.user_id, workflow_id, inputs, now_ms())
            .await?;
        Ok(submitted)
    }

    /// Newest first: one workflow's generations, or all; the caller's own (an
    /// administrator: everyone's).
    pub async fn list(
        &self,
        caller: &Caller,
        workflow_id: Option<&str>,
    ) -> Result<Vec<Generation>, GenerateError> {
        self.history.list(workflow_id, scope(caller)).await
    }

    /// One generation; another person's is not found.
    pub async fn get(&self, caller: &Caller, id: i64) -> Result<Generation, GenerateError> {
        self.history
            .by_id(id)
            .await?
            .filter(|g| caller.may_access(g.user_id))
            .ok_or_else(|| GenerateError::NotFound(format!("no generation {id}")))
    }

    /// Cancels a generation: removed from the queue while pending (then `cancelled`),
    /// interrupted while running (ComfyUI then reports it `interrupted`).
    pub async fn cancel(
        &self,
        caller: &Caller,
        prompt_id: &str,
    ) -> Result<Generation, GenerateError> {
        let store = &self.history;
        let found = store.by_prompt(prompt_id).await?;
        let found = found
            .filter(|g| caller.may_access(g.user_id))
            .ok_or_else(|| {
                GenerateError::NotFound(format!("no generation with prompt id {prompt_id}"))
            })?;
        if !found.status.is_active() {
            return Ok(found);
        }
        // Queued through the job queue: cancelled there (a waiting job at once; a running
        // one is interrupted by its worker, and ComfyUI reports it).
        if let Some(job) = self.jobs.by_prompt(caller, prompt_id).await? {
            let job = self.jobs.cancel(caller, job.id).await?;
            if job.state == JobState::Cancelled {
                store
                    .finish(prompt_id, GenerationStatus::Cancelled, None, now_ms())
                    .await?;
                self.publish_generation(prompt_id).await;
            }
            return Ok(store.by_prompt(prompt_id).await?.unwrap_or(found));
        }
        let queue = self.bridge.queue().await?;
        if queue.pending.iter().any(|e| e.prompt_id == prompt_id) {
            self.bridge.cancel_pending(prompt_id).await?;
            store
                .finish(prompt_id, GenerationStatus::Cancelled, None, now_ms())
                .await?;
            self.publish_generation(prompt_id).await;
        } else if queue.running.iter().any(|e| e.prompt_id == prompt_id) {
            self.bridge.interrupt(prompt_id).await?;
        } else {
            // Neither waiting nor running: it ended while the event was on its way.
            self.settle_generation(&found).await?;
        }
        Ok(store.by_prompt(prompt_id).await?.unwrap_or(found))
    }

    /// A generation whose job ended failed or cancelled, while the row still waits.
    async fn settle_from_job(&self, job: &JobView) -> Result<bool, GenerateError> {
        let Some(row) = self.history.by_prompt(&job.prompt_id).await? else {
            return Ok(false);
        };
        if !row.status.is_active() {
            return Ok(false);
        }
        let (status, error) = match job.state {
            JobState::Failed => (GenerationStatus::Failed, job.error.as_deref()),
            JobState::Cancelled => (GenerationStatus::Cancelled, None),
            // Succeeded: ComfyUI's events (or its history) say so with the outputs.
            _ => return Ok(false),
        };
        self.history
            .finish(&job.prompt_id, status, error, now_ms())
            .await?;
        Ok(true)
    }

    /// Settles every queued or running row from ComfyUI's history; returns how many changed.
    pub async fn reconcile_generations(&self) -> Result<usize, GenerateError> {
        let mut settled = 0;
        for generation in self.history.active().await? {
            if self.settle_generation(&generation).await? {
                self.publish_generation(&generation.prompt_id).await;
                settled += 1;
            }
        }
        Ok(settled)
    }

    /// One active row against ComfyUI: its history entry if it has one; still queued or
    /// running if ComfyUI says so; else lost (ComfyUI restarted before running it).
    async fn settle_generation(&self, generation: &Generation) -> Result<bool, GenerateError> {
        let store = &self.history;
        let id = &generation.prompt_id;
        // Its job still waits or runs: the queue delivers it (again, after a restart).
        if self
            .jobs
            .state_of_prompt(id)
            .await?
            .is_some_and(JobState::is_active)
        {
            return Ok(false);
        }
        match self.bridge.history(id).await {
            Ok(record) => {
                let (status, error) = match record.outcome {
                    RunOutcome::Succeeded => (GenerationStatus::Succeeded, None),
                    RunOutcome::Failed {
                        node,
                        node_type,
                        message,
                    } => (
                        GenerationStatus::Failed,
                        Some(run_failure_text(
                            node_type.as_deref(),
                            node.as_deref(),
                            &message,
                        )),
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
                let queue = self.bridge.queue().await?;
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
    pub async fn from_output(
        &self,
        caller: &Caller,
        item_id: i64,
    ) -> Result<GeneratePrefill, GenerateError> {
        let detail = self.gallery.detail(caller, item_id).await?;
        let list = self.workflows.list(caller).await?;
        let exists = |id: &str| list.workflows.iter().any(|w| w.id == id);
        if let Some(prompt_id) = &detail.item.prompt_id {
            if let Some(generation) = self.history.by_prompt(prompt_id).await? {
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
            )));
        };
        let stem = detail
            .item
            .name()
            .rsplit_once('.')
            .map_or(detail.item.name(), |(stem, _)| stem)
            .to_string();
        let bytes = serde_json::to_vec(embedded).map_err(GenerateError::encode)?;
        let summary = self
            .workflows
            .import(caller, &format!("{stem}.json"), &bytes)
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
    ) -> Result<UploadedImage, GenerateError> {
        check_upload_name(file_name)?;
        if bytes.is_empty() {
            return Err(GenerateError::Invalid(format!("{file_name} is empty")));
        }
        if bytes.len() > MAX_UPLOAD_BYTES {
            return Err(GenerateError::Invalid(format!(
                "{file_name} is {}; images up to {} are accepted",
                format_bytes(bytes.len() as u64),
                format_bytes(MAX_UPLOAD_BYTES as u64)
            )));
        }
        let uploaded = self
            .comfy
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
    ) -> Result<UploadedImage, GenerateError> {
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
    ) -> Result<EnhancedPrompt, GenerateError> {
        for (name, text) in [("positive", positive), ("negative", negative)] {
            if text.chars().count() > enhance::MAX_PROMPT_CHARS {
                return Err(GenerateError::Invalid(format!(
                    "the {name} prompt is longer than {} characters",
                    enhance::MAX_PROMPT_CHARS
                )));
            }
        }
        Ok(enhance::enhance(self.llm.as_ref(), positive, negative, style).await)
    }
}
