//! The workflow library as a service: templates, the user's workflows and the ones saved in
//! ComfyUI's own UI, summarised against ComfyUI's node list and the preset catalog, and run
//! through the bridge.

use std::sync::Arc;

use super::{
    catalog_hint, owner_of_id, ComfyWorkflowEntry, WorkflowContext, WorkflowError, WorkflowLibrary,
};
use crate::activity::ActivityLog;
use crate::bridge::{Bridge, InputValue};
use crate::catalog::{Catalog, CatalogService};
use crate::comfy::convert::ObjectInfo;
use crate::comfy::ComfyClient;
use crate::model::*;
use crate::workspace::WorkspaceLayout;

/// ComfyUI's saved workflows read per listing (each one is a request).
const COMFYUI_WORKFLOWS_READ: usize = 100;

pub struct WorkflowService {
    library: WorkflowLibrary,
    comfy: ComfyClient,
    bridge: Arc<Bridge>,
    catalog: Arc<CatalogService>,
    activity: ActivityLog,
}

/// Runs `f` with the context every summary is computed against: the catalog's preset hints
/// and, when ComfyUI answered, its node list. The one place that context is built.
fn with_context<R>(
    catalog: &Catalog,
    object_info: Option<&ObjectInfo>,
    f: impl FnOnce(&WorkflowContext<'_>) -> R,
) -> R {
    let hint = catalog_hint(catalog);
    let mut ctx = WorkflowContext::new().with_preset_hint(&hint);
    if let Some(info) = object_info {
        ctx = ctx.with_object_info(info);
    }
    f(&ctx)
}

impl WorkflowService {
    pub fn new(
        layout: &WorkspaceLayout,
        comfy: ComfyClient,
        bridge: Arc<Bridge>,
        catalog: Arc<CatalogService>,
        activity: ActivityLog,
    ) -> Self {
        WorkflowService {
            library: WorkflowLibrary::new(layout),
            comfy,
            bridge,
            catalog,
            activity,
        }
    }

    /// `/object_info` when ComfyUI answers; the library works without it (fewer details).
    async fn object_info_if_reachable(&self) -> Option<Arc<ObjectInfo>> {
        self.bridge.object_info().await.ok()
    }

    /// `NotFound` for another person's workflow (ids do not leak), `Forbidden` for ComfyUI's
    /// own saved workflows (the administrator's), nothing for templates and one's own.
    fn check_access(caller: &Caller, id: &str) -> Result<(), WorkflowError> {
        if id.starts_with("comfyui:") && !caller.is_admin() {
            return Err(WorkflowError::Forbidden(
                "ComfyUI's own saved workflows are the administrator's; import a copy instead"
                    .into(),
            ));
        }
        match owner_of_id(id) {
            Some(owner) if !caller.may_access(owner) => Err(WorkflowError::NotFound(format!(
                "workflow {id} does not exist"
            ))),
            _ => Ok(()),
        }
    }

    /// Whether `caller` may open the workflow `id` (templates: everyone).
    pub fn may_open(caller: &Caller, id: &str) -> bool {
        Self::check_access(caller, id).is_ok()
    }

    /// Templates and the caller's own workflows; for an administrator everyone's and
    /// ComfyUI's saved ones too (when it answers).
    pub async fn list(&self, caller: &Caller) -> Result<WorkflowList, WorkflowError> {
        let info = self.object_info_if_reachable().await;
        let catalog = self.catalog.current();
        let mut comfyui_note = None;
        let mut entries = Vec::new();
        let listed = if caller.is_admin() {
            Some(self.comfy.userdata_list("workflows", true).await)
        } else {
            None
        };
        match listed.unwrap_or_else(|| Ok(Vec::new())) {
            Ok(files) => {
                for file in files.into_iter().take(COMFYUI_WORKFLOWS_READ) {
                    let content = self
                        .comfy
                        .userdata_get(&format!("workflows/{}", file.path))
                        .await
                        .ok()
                        .and_then(|bytes| serde_json::from_slice(&bytes).ok());
                    entries.push(ComfyWorkflowEntry {
                        modified_ms: file.modified.map(|s| (s * 1000.0) as u64).unwrap_or(0),
                        size_bytes: file.size.unwrap_or(0),
                        path: file.path,
                        content,
                    });
                }
            }
            // ComfyUI has no workflows folder until one is saved there.
            Err(e) if e.is_not_found() => {}
            Err(e) => comfyui_note = Some(format!("ComfyUI's saved workflows are not listed: {e}")),
        }
        let library = self.library.clone();
        let user_id = caller.user_id;
        let admin = caller.is_admin();
        let workflows = tokio::task::spawn_blocking(move || {
            with_context(&catalog, info.as_deref(), |ctx| {
                let mut all = if admin {
                    library.list_local(ctx)
                } else {
                    library.list_own(user_id, ctx)
                };
                all.extend(library.summarize_comfyui(entries, ctx));
                all
            })
        })
        .await
        .map_err(|e| WorkflowError::Internal(format!("listing workflows failed: {e}")))?;
        Ok(WorkflowList {
            workflows,
            comfyui_note,
        })
    }

    /// One workflow with its content; ComfyUI's own are read from it.
    pub async fn get(&self, caller: &Caller, id: &str) -> Result<WorkflowDetail, WorkflowError> {
        Self::check_access(caller, id)?;
        let info = self.object_info_if_reachable().await;
        let catalog = self.catalog.current();
        if let Some(path) = id.strip_prefix("comfyui:") {
            crate::workspace::check_relative_path(path)
                .map_err(|e| WorkflowError::Invalid(e.to_string()))?;
            let bytes = self
                .comfy
                .userdata_get(&format!("workflows/{path}"))
                .await
                .map_err(|e| match e.is_not_found() {
                    true => WorkflowError::NotFound(format!("ComfyUI has no workflow {path}")),
                    false => WorkflowError::Comfy(e),
                })?;
            let workflow: serde_json::Value = serde_json::from_slice(&bytes)
                .map_err(|e| WorkflowError::NotAWorkflow(format!("{path} is not JSON: {e}")))?;
            let summary = with_context(&catalog, info.as_deref(), |ctx| {
                self.library.summarize_value(
                    WorkflowSource::ComfyUi,
                    path,
                    0,
                    bytes.len() as u64,
                    &workflow,
                    ctx,
                )
            });
            return Ok(WorkflowDetail { summary, workflow });
        }
        let (summary, workflow) =
            with_context(&catalog, info.as_deref(), |ctx| self.library.load(id, ctx))?;
        Ok(WorkflowDetail { summary, workflow })
    }

    /// Imports a workflow file: JSON (either format) or a PNG with an embedded workflow.
    /// It becomes the caller's own.
    pub async fn import(
        &self,
        caller: &Caller,
        file_name: &str,
        bytes: &[u8],
    ) -> Result<WorkflowSummary, WorkflowError> {
        let info = self.object_info_if_reachable().await;
        let catalog = self.catalog.current();
        let summary = with_context(&catalog, info.as_deref(), |ctx| {
            self.library
                .import_as(caller.user_id, file_name, bytes, ctx)
        })?;
        self.activity
            .record_for(
                caller.user_id,
                ActivityKind::System,
                format!("Imported workflow {}", summary.name),
            )
            .await;
        Ok(summary)
    }

    /// [`import`](Self::import) for JSON clients: the file base64-encoded.
    pub async fn import_base64(
        &self,
        caller: &Caller,
        file_name: &str,
        content_base64: &str,
    ) -> Result<WorkflowSummary, WorkflowError> {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(content_base64.trim())
            .map_err(|e| WorkflowError::Invalid(format!("content_base64 is not base64: {e}")))?;
        self.import(caller, file_name, &bytes).await
    }

    /// Renames one of the caller's workflows (an administrator: anyone's) within its folder.
    pub async fn rename(
        &self,
        caller: &Caller,
        id: &str,
        name: &str,
    ) -> Result<WorkflowSummary, WorkflowError> {
        Self::check_access(caller, id)?;
        self.library.rename(id, name, &WorkflowContext::new())
    }

    pub async fn delete(&self, caller: &Caller, id: &str) -> Result<(), WorkflowError> {
        Self::check_access(caller, id)?;
        self.library.delete(id)?;
        self.activity
            .record_for(
                caller.user_id,
                ActivityKind::System,
                format!("Deleted workflow {id}"),
            )
            .await;
        Ok(())
    }

    /// Runs a workflow (UI or API format) with the given input values; problems come back per
    /// node, unsubmitted.
    pub async fn run(
        &self,
        caller: &Caller,
        workflow: &serde_json::Value,
        inputs: &[InputValue],
    ) -> Result<RunSubmission, WorkflowError> {
        self.run_as(caller, workflow, inputs, crate::bridge::new_prompt_id())
            .await
    }

    /// [`run`](Self::run) under a prompt id chosen by the caller, who records the run first.
    /// Converts a UI-format workflow, applies the values (all or nothing: a refused value
    /// changes nothing and says which node and input), then the bridge checks and submits.
    /// The prompt belongs to `caller`.
    pub async fn run_as(
        &self,
        caller: &Caller,
        workflow: &serde_json::Value,
        inputs: &[InputValue],
        prompt_id: String,
    ) -> Result<RunSubmission, WorkflowError> {
        let info = self.bridge.object_info().await?;
        let mut prompt = match crate::comfy::convert::to_api(workflow, &info) {
            Ok(prompt) => prompt,
            Err(e) => {
                return Ok(RunSubmission {
                    prompt_id: None,
                    problems: Vec::new(),
                    message: format!("The workflow cannot be converted: {e}"),
                })
            }
        };
        super::apply_inputs(&mut prompt, inputs, Some(&info))?;
        let catalog = self.catalog.current();
        Ok(self
            .bridge
            .submit(prompt, &info, &catalog, prompt_id, caller)
            .await?)
    }

    /// Why a run of this workflow with these values would be refused, found before it is
    /// queued: it cannot be converted, or it names classes or model files ComfyUI lacks. A
    /// refused value is an error that names the node and input. `None` when nothing is found,
    /// and when ComfyUI cannot be asked now (the job waits for it).
    pub async fn check_run(
        &self,
        workflow: &serde_json::Value,
        inputs: &[InputValue],
    ) -> Result<Option<RunSubmission>, WorkflowError> {
        let Some(info) = self.object_info_if_reachable().await else {
            return Ok(None);
        };
        let mut prompt = match crate::comfy::convert::to_api(workflow, &info) {
            Ok(prompt) => prompt,
            Err(e) => {
                return Ok(Some(RunSubmission {
                    prompt_id: None,
                    problems: Vec::new(),
                    message: format!("The workflow cannot be converted: {e}"),
                }))
            }
        };
        super::apply_inputs(&mut prompt, inputs, Some(&info))?;
        Ok(Bridge::precheck(&prompt, &info, &self.catalog.current()))
    }

    /// What a workflow posted whole (not from the library) needs: its models, its problems.
    pub async fn summarize_posted(
        &self,
        name: &str,
        workflow: &serde_json::Value,
    ) -> WorkflowSummary {
        let info = self.object_info_if_reachable().await;
        let catalog = self.catalog.current();
        with_context(&catalog, info.as_deref(), |ctx| {
            self.library
                .summarize_value(WorkflowSource::User, name, 0, 0, workflow, ctx)
        })
    }

    /// Runs a library workflow with the values the user set.
    pub async fn run_saved(
        &self,
        caller: &Caller,
        id: &str,
        inputs: &[InputValue],
    ) -> Result<RunSubmission, WorkflowError> {
        let detail = self.get(caller, id).await?;
        self.run(caller, &detail.workflow, inputs).await
    }

    /// A file with the same name as a missing model in another folder of `models/` (its path
    /// there), if there is one.
    pub fn model_elsewhere(&self, folder: &str, file: &str) -> Option<String> {
        self.library.model_elsewhere(folder, file)
    }

    /// `<workspace>/models`.
    pub fn models_dir(&self) -> &std::path::Path {
        self.library.models_dir()
    }

    /// Saves `workflow` as the caller's own: over `replace` when that is still theirs (a
    /// second "make runnable" updates its copy), else as a new workflow named `name` (a taken
    /// name gets ` (2)`, …). Summarised against ComfyUI as it is now.
    pub async fn save_copy(
        &self,
        caller: &Caller,
        name: &str,
        workflow: &serde_json::Value,
        replace: Option<&str>,
    ) -> Result<WorkflowSummary, WorkflowError> {
        self.bridge.forget_object_info();
        let info = self.object_info_if_reachable().await;
        let catalog = self.catalog.current();
        let replace =
            replace.filter(|id| id.starts_with("user:") && Self::check_access(caller, id).is_ok());
        with_context(&catalog, info.as_deref(), |ctx| match replace {
            Some(id) => match self.library.update(id, workflow, ctx) {
                Err(WorkflowError::NotFound(_)) => {
                    self.library.save_as(caller.user_id, name, workflow, ctx)
                }
                other => other,
            },
            None => self.library.save_as(caller.user_id, name, workflow, ctx),
        })
    }

    /// What removing a user leaves behind: their folder `workflows/user/@N/` stays (the
    /// administrator sees and owns everything in it, and ids are never reused). This moves
    /// it to the administrator's top level as `<username> (removed)/`, so the files read as
    /// the administrator's own; returns how many workflows moved (0 when there was none).
    pub fn hand_over_to_admin(&self, user_id: i64, username: &str) -> Result<usize, WorkflowError> {
        self.library.hand_over_to_admin(user_id, username)
    }
}
