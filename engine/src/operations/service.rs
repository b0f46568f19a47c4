//! Starts, runs, answers and continues "make runnable" operations.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::plan::{self, check_step, Action, Facts, PlannedStep};
use super::store::{OperationStore, StoredOperation, StoredStep};
use super::OperationError;
use crate::bridge::Bridge;
use crate::clock::now_ms;
use crate::comfy::convert::{to_api, ObjectInfo};
use crate::download::manager::DownloadManager;
use crate::download::queue::{NewTask, TaskState};
use crate::events::EventBus;
use crate::model::*;
use crate::nodes::{InstallTarget, NodePackService};
use crate::workflows::fixes::{self, Fix};
use crate::workflows::links::{download_url_of, model_links};
use crate::workflows::WorkflowService;

/// How often a running download or preset is looked at.
const POLL: Duration = Duration::from_millis(400);

pub struct OperationService {
    store: OperationStore,
    events: EventBus,
    workflows: Arc<WorkflowService>,
    nodes: Arc<NodePackService>,
    downloads: Arc<DownloadManager>,
    bridge: Arc<Bridge>,
    /// Operations a task of this process is driving: never two drivers for one.
    driving: Mutex<HashSet<i64>>,
    stopping: CancellationToken,
}

/// What running one step came to.
struct Outcome {
    state: StepState,
    detail: String,
}

impl Outcome {
    fn done(detail: impl Into<String>) -> Self {
        Outcome {
            state: StepState::Done,
            detail: detail.into(),
        }
    }
    fn failed(detail: impl Into<String>) -> Self {
        Outcome {
            state: StepState::Failed,
            detail: detail.into(),
        }
    }
}

fn admin_needed(what: &str) -> Outcome {
    Outcome::failed(format!(
        "only an administrator can {what}: ask one to press \"Make runnable\" on this workflow"
    ))
}

impl OperationService {
    pub fn new(
        store: OperationStore,
        events: EventBus,
        workflows: Arc<WorkflowService>,
        nodes: Arc<NodePackService>,
        downloads: Arc<DownloadManager>,
        bridge: Arc<Bridge>,
        stopping: CancellationToken,
    ) -> Self {
        OperationService {
            store,
            events,
            workflows,
            nodes,
            downloads,
            bridge,
            driving: Mutex::new(HashSet::new()),
            stopping,
        }
    }

    /// Continues the operations a previous run left running.
    pub async fn resume_all(self: &Arc<Self>) {
        match self.store.running().await {
            Ok(ids) => {
                for id in ids {
                    tracing::info!(operation = id, "continuing a make-runnable operation");
                    self.spawn_drive(id);
                }
            }
            Err(e) => tracing::warn!(error = %e, "running operations cannot be read"),
        }
    }

    /// Starts making the workflow `workflow_id` runnable for `caller`, or answers the one that
    /// is already running for it.
    pub async fn start(
        self: &Arc<Self>,
        caller: &Caller,
        workflow_id: &str,
    ) -> Result<OperationView, OperationError> {
        let detail = self.workflows.get(caller, workflow_id).await?;
        if let Some(id) = self.store.latest_for(caller.user_id, workflow_id).await? {
            if let Some(op) = self.store.get(id).await? {
                if op.view.state.is_running() {
                    self.spawn_drive(id);
                    return Ok(op.view);
                }
            }
        }
        let info = self.fresh_object_info().await?;
        let mut steps = self
            .plan_for(&detail.workflow, &detail.summary, &info)
            .await?;
        steps.push(check_step());
        let id = self
            .store
            .insert(caller, workflow_id, &detail.summary.name, &steps, now_ms())
            .await?;
        let view = self.view(id).await?;
        self.events.publish(Event::Operation(view.clone()));
        self.spawn_drive(id);
        Ok(view)
    }

    /// Starts the workflow of operation `id` over, for the operation's owner (a retry from
    /// the Recovery page).
    pub async fn start_again(
        self: &Arc<Self>,
        caller: &Caller,
        id: i64,
    ) -> Result<OperationView, OperationError> {
        let op = self.owned(caller, id).await?;
        self.start(&op.caller, &op.view.workflow_id).await
    }

    /// The operation `id` as its owner (or an administrator) sees it; another person's is
    /// not found.
    pub async fn get(&self, caller: &Caller, id: i64) -> Result<OperationView, OperationError> {
        let op = self.owned(caller, id).await?;
        Ok(op.view)
    }

    /// The caller's newest operation on a workflow, if any.
    pub async fn latest(
        &self,
        caller: &Caller,
        workflow_id: &str,
    ) -> Result<Option<OperationView>, OperationError> {
        match self.store.latest_for(caller.user_id, workflow_id).await? {
            Some(id) => Ok(self.store.get(id).await?.map(|op| op.view)),
            None => Ok(None),
        }
    }

    /// Answers a step's question: one of its choices, or a download link; the operation goes on.
    pub async fn answer(
        self: &Arc<Self>,
        caller: &Caller,
        answer: &StepAnswer,
    ) -> Result<OperationView, OperationError> {
        let op = self.owned(caller, answer.id).await?;
        let step = op
            .steps
            .iter()
            .find(|s| s.view.seq == answer.seq)
            .ok_or_else(|| {
                OperationError::NotFound(format!(
                    "operation {} has no step {}",
                    answer.id, answer.seq
                ))
            })?;
        if step.view.state != StepState::Question {
            return Err(OperationError::Conflict(format!(
                "step {} asks nothing (it is {})",
                answer.seq,
                step.view.state.as_str()
            )));
        }
        let replaced = match &step.action {
            Action::Choose {
                node_id,
                input,
                value,
                choices,
            } => {
                if !choices.contains(&answer.answer) {
                    return Err(OperationError::Invalid(format!(
                        "{:?} is not one of the choices: {}",
                        answer.answer,
                        choices.join(", ")
                    )));
                }
                let mut title = step.view.title.clone();
                title.push_str(&format!(" — you chose {:?}", answer.answer));
                PlannedStep {
                    kind: StepKind::Fix,
                    key: step.key.clone(),
                    title,
                    state: StepState::Pending,
                    detail: None,
                    action: Action::Fix {
                        node_id: node_id.clone(),
                        input: input.clone(),
                        from: value.clone(),
                        to: Value::String(answer.answer.clone()),
                    },
                }
            }
            Action::NeedsLink { folder, file } => {
                let url = download_url_of(&answer.answer).map_err(OperationError::Invalid)?;
                PlannedStep {
                    kind: StepKind::Model,
                    key: step.key.clone(),
                    title: format!(
                        "Download {file} into {folder} from {}",
                        crate::secret::redact_url(&url)
                    ),
                    state: StepState::Pending,
                    detail: None,
                    action: Action::Download {
                        url,
                        mirrors: Vec::new(),
                        folder: folder.clone(),
                        file: file.clone(),
                        sha256: None,
                    },
                }
            }
            Action::UseFileElsewhere {
                found,
                folder,
                file,
                otherwise,
            } => {
                let action = if answer.answer == plan::use_found_choice(found) {
                    Action::LinkFile {
                        found: found.clone(),
                        folder: folder.clone(),
                        file: file.clone(),
                    }
                } else if answer.answer == plan::DOWNLOAD_INSTEAD && otherwise.is_some() {
                    otherwise.as_deref().cloned().unwrap_or(Action::Check)
                } else {
                    return Err(OperationError::Invalid(format!(
                        "{:?} is not one of the choices: {}",
                        answer.answer,
                        plan::asks(&step.action).0.join(", ")
                    )));
                };
                PlannedStep {
                    kind: StepKind::Model,
                    key: step.key.clone(),
                    title: plan::model_title(&action),
                    state: StepState::Pending,
                    detail: None,
                    action,
                }
            }
            _ => {
                return Err(OperationError::Conflict(format!(
                    "step {} asks nothing",
                    answer.seq
                )))
            }
        };
        self.store
            .replace_step(answer.id, answer.seq, &replaced, now_ms())
            .await?;
        let view = self.publish(answer.id).await?;
        self.spawn_drive(answer.id);
        Ok(view)
    }

    async fn owned(&self, caller: &Caller, id: i64) -> Result<StoredOperation, OperationError> {
        match self.store.get(id).await? {
            Some(op) if caller.may_access(op.view.user_id) => Ok(op),
            _ => Err(OperationError::NotFound(format!(
                "operation {id} does not exist"
            ))),
        }
    }

    async fn view(&self, id: i64) -> Result<OperationView, OperationError> {
        self.store
            .get(id)
            .await?
            .map(|op| op.view)
            .ok_or_else(|| OperationError::NotFound(format!("operation {id} does not exist")))
    }

    async fn publish(&self, id: i64) -> Result<OperationView, OperationError> {
        let view = self.view(id).await?;
        self.events.publish(Event::Operation(view.clone()));
        Ok(view)
    }

    /// ComfyUI's node list as it is now (not a copy from before a restart).
    async fn fresh_object_info(&self) -> Result<Arc<ObjectInfo>, OperationError> {
        self.bridge.forget_object_info();
        self.bridge.object_info().await.map_err(|e| {
            OperationError::Unavailable(format!(
                "ComfyUI does not answer, so what the workflow lacks cannot be told yet: {e}"
            ))
        })
    }

    /// The steps for a workflow as ComfyUI is now (without the closing check).
    async fn plan_for(
        &self,
        workflow: &Value,
        summary: &WorkflowSummary,
        info: &ObjectInfo,
    ) -> Result<Vec<PlannedStep>, OperationError> {
        let missing_classes = self
            .nodes
            .missing_packs(workflow)
            .await
            .map_err(|e| OperationError::Unavailable(e.to_string()))?;
        let links = model_links(workflow);
        let findings = match to_api(workflow, info) {
            Ok(prompt) => fixes::find(&prompt, info),
            // Classes still missing: the fixes are found again once their packs are in.
            Err(_) => Vec::new(),
        };
        let elsewhere: Vec<(String, String)> = summary
            .required_models
            .iter()
            .filter(|m| !m.installed)
            .filter_map(|m| {
                let found = self.workflows.model_elsewhere(&m.folder, &m.file)?;
                Some((format!("{}/{}", m.folder, m.file), found))
            })
            .collect();
        Ok(plan::plan(&Facts {
            missing_classes: &missing_classes,
            required_models: &summary.required_models,
            links: &links,
            findings: &findings,
            elsewhere: &elsewhere,
        }))
    }

    fn spawn_drive(self: &Arc<Self>, id: i64) {
        if !self
            .driving
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id)
        {
            return;
        }
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let stopping = this.stopping.clone();
            tokio::select! {
                result = this.drive(id) => {
                    if let Err(e) = result {
                        tracing::warn!(operation = id, error = %e, "make-runnable operation stopped");
                        let _ = this.store.finish(id, OperationState::Failed, &e.to_string(), None, now_ms()).await;
                        let _ = this.publish(id).await;
                    }
                }
                // A restart continues from the step that was running.
                _ = stopping.cancelled() => {}
            }
            this.driving
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
        });
    }

    /// Runs the operation's steps in order until it ends or waits for an answer.
    async fn drive(self: &Arc<Self>, id: i64) -> Result<(), OperationError> {
        loop {
            let op = self
                .store
                .get(id)
                .await?
                .ok_or_else(|| OperationError::NotFound(format!("operation {id} is gone")))?;
            if !op.view.state.is_running() {
                return Ok(());
            }
            // Fixes are applied all at once by the check, to one copy.
            let next = op.steps.iter().find(|s| {
                matches!(s.view.state, StepState::Pending | StepState::Running)
                    && !matches!(s.action, Action::Fix { .. })
            });
            let Some(step) = next else {
                self.store
                    .finish(
                        id,
                        OperationState::Failed,
                        "the operation has no check step",
                        None,
                        now_ms(),
                    )
                    .await?;
                self.publish(id).await?;
                return Ok(());
            };
            if matches!(step.action, Action::Check) {
                let questions: Vec<&StoredStep> = op
                    .steps
                    .iter()
                    .filter(|s| s.view.state == StepState::Question)
                    .collect();
                if !questions.is_empty() {
                    let summary = format!(
                        "{} waiting for you: {}",
                        match questions.len() {
                            1 => "1 question is".to_string(),
                            n => format!("{n} questions are"),
                        },
                        questions
                            .iter()
                            .map(|s| s.view.title.as_str())
                            .collect::<Vec<_>>()
                            .join("; ")
                    );
                    self.store
                        .finish(id, OperationState::NeedsYou, &summary, None, now_ms())
                        .await?;
                    self.publish(id).await?;
                    return Ok(());
                }
                return self.check(&op, step.view.seq).await;
            }
            let seq = step.view.seq;
            self.store
                .set_step(
                    id,
                    seq,
                    StepState::Running,
                    step.view.detail.as_deref(),
                    now_ms(),
                )
                .await?;
            let running = self.publish(id).await?;
            let outcome = self.run_step(&op.caller, step, &running).await;
            self.store
                .set_step(id, seq, outcome.state, Some(&outcome.detail), now_ms())
                .await?;
            self.publish(id).await?;
            if matches!(step.action, Action::InstallPack { .. }) && outcome.state == StepState::Done
            {
                self.replan(&op).await?;
            }
        }
    }

    /// After a pack is in, the classes it added can be looked at: new steps for what they
    /// lack (model files, fixes), before the check.
    async fn replan(&self, op: &StoredOperation) -> Result<(), OperationError> {
        let detail = self.workflows.get(&op.caller, &op.view.workflow_id).await?;
        let info = self.fresh_object_info().await?;
        let known: HashSet<&str> = op.steps.iter().map(|s| s.key.as_str()).collect();
        let new: Vec<PlannedStep> = self
            .plan_for(&detail.workflow, &detail.summary, &info)
            .await?
            .into_iter()
            .filter(|s| !known.contains(s.key.as_str()) && s.kind != StepKind::Pack)
            .collect();
        self.store
            .append_before_check(op.view.id, &new, now_ms())
            .await
    }

    /// The restore point of `running`: what it adds is recorded before it is added.
    fn point_of(running: &OperationView) -> OwnedPoint {
        OwnedPoint {
            target: running.id.to_string(),
            subject: format!("make \"{}\" runnable", running.workflow_name),
        }
    }

    /// Records one change in the operation's restore point (a failure to record is logged:
    /// the change itself still happens, as it would have without restore points).
    async fn record(
        &self,
        running: &OperationView,
        path: &str,
        change: RestoreChange,
        from: Option<&str>,
    ) {
        let point = Self::point_of(running);
        if let Err(e) = self
            .downloads
            .record_change(&point.key(), path, change, from)
            .await
        {
            tracing::warn!(error = %e, operation = running.id, "a restore point entry was not recorded");
        }
    }

    /// The step's progress line, live (not stored: the outcome is).
    fn progress(&self, running: &OperationView, seq: u32, line: &str) {
        let mut view = running.clone();
        if let Some(step) = view.steps.iter_mut().find(|s| s.seq == seq) {
            step.detail = Some(line.to_string());
        }
        self.events.publish(Event::Operation(view));
    }

    async fn run_step(
        &self,
        caller: &Caller,
        step: &StoredStep,
        running: &OperationView,
    ) -> Outcome {
        let seq = step.view.seq;
        match &step.action {
            Action::InstallPack {
                repo,
                version,
                classes,
            } => {
                if self.classes_present(classes).await {
                    return Outcome {
                        state: StepState::Skipped,
                        detail: format!("ComfyUI already has {}", classes.join(", ")),
                    };
                }
                if !caller.is_admin() {
                    return admin_needed("install custom-node packs");
                }
                let progress = |line: &str| self.progress(running, seq, line);
                let target = InstallTarget {
                    repo: Some(repo.clone()),
                    id: None,
                    version: version.clone(),
                };
                let result = self.nodes.install_undoable(caller, target, &progress).await;
                self.bridge.forget_object_info();
                match result {
                    Ok((outcome, undo)) => {
                        self.record(
                            running,
                            &undo.pack,
                            RestoreChange::Pack,
                            Some(&undo.to_json()),
                        )
                        .await;
                        Outcome::done(
                            outcome
                                .steps
                                .last()
                                .cloned()
                                .unwrap_or_else(|| "installed".into()),
                        )
                    }
                    // An install a restart interrupted may have finished after all.
                    Err(_) if self.classes_present(classes).await => {
                        Outcome::done(format!("installed: ComfyUI has {}", classes.join(", ")))
                    }
                    Err(e) => Outcome::failed(e.to_string()),
                }
            }
            Action::UnknownClass { class_type } => {
                Outcome::failed(format!("no known pack provides {class_type}"))
            }
            Action::InstallPreset { preset_id, .. } => {
                if !caller.is_admin() {
                    return admin_needed("install models");
                }
                self.record(running, preset_id, RestoreChange::Preset, None)
                    .await;
                self.install_preset(preset_id, running, seq).await
            }
            Action::Download {
                url,
                mirrors,
                folder,
                file,
                sha256,
            } => {
                if !caller.is_admin() {
                    return admin_needed("install models");
                }
                let point = Self::point_of(running);
                if let Err(e) = self
                    .downloads
                    .record_file(&point.key(), &format!("{folder}/{file}"), false)
                    .await
                {
                    return Outcome::failed(format!("cannot record the restore point: {e}"));
                }
                let sources = Sources { url, mirrors };
                self.download(sources, folder, file, sha256.as_deref(), running, seq)
                    .await
            }
            Action::LinkFile {
                found,
                folder,
                file,
            } => {
                if !caller.is_admin() {
                    return admin_needed("install models");
                }
                let to = format!("{folder}/{file}");
                let exists = crate::workspace::resolve_inside(self.workflows.models_dir(), &to)
                    .is_ok_and(|p| p.exists());
                if !exists {
                    self.record(running, &to, RestoreChange::Linked, Some(found))
                        .await;
                }
                self.link_file(found, folder, file)
            }
            // Asked, not run: an answer turns them into a download, a link or a fix.
            Action::NeedsLink { .. } | Action::Choose { .. } | Action::UseFileElsewhere { .. } => {
                Outcome {
                    state: StepState::Question,
                    detail: step.view.detail.clone().unwrap_or_default(),
                }
            }
            Action::Fix { .. } | Action::Check => Outcome::failed("not a step to run alone"),
        }
    }

    /// `models/<found>` also as `models/<folder>/<file>`: a hard link (no copy, no space);
    /// both paths checked against the models folder, symlinks included.
    fn link_file(&self, found: &str, folder: &str, file: &str) -> Outcome {
        use crate::workspace::resolve_inside;
        let models = self.workflows.models_dir();
        if folder.is_empty() || folder.contains(['/', '\\']) || folder.starts_with('.') {
            return Outcome::failed(format!("{folder:?} is not a model folder name"));
        }
        let to_rel = format!("{folder}/{file}");
        let from = match resolve_inside(models, found) {
            Ok(p) => p,
            Err(e) => return Outcome::failed(format!("refused to read models/{found}: {e}")),
        };
        let to = match resolve_inside(models, &to_rel) {
            Ok(p) => p,
            Err(e) => return Outcome::failed(format!("refused to write models/{to_rel}: {e}")),
        };
        if to.exists() {
            return Outcome::done(format!("models/{to_rel} is there already"));
        }
        let made = to
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::hard_link(&from, &to));
        match made {
            Ok(()) => Outcome::done(format!(
                "linked models/{found} as models/{to_rel} (the same file, no copy)"
            )),
            Err(e) => Outcome::failed(format!(
                "could not link models/{found} as models/{to_rel}: {e}; move or copy it there, \
                 then press \"Make runnable\" again"
            )),
        }
    }

    async fn classes_present(&self, classes: &[String]) -> bool {
        match self.fresh_object_info().await {
            Ok(info) => classes.iter().all(|c| info.contains(c)),
            Err(_) => false,
        }
    }

    async fn install_preset(&self, preset_id: &str, running: &OperationView, seq: u32) -> Outcome {
        if let Err(e) = self.downloads.install_preset(preset_id).await {
            return Outcome::failed(e.to_string());
        }
        loop {
            let view = match self.downloads.preset_view(preset_id).await {
                Ok(view) => view,
                Err(e) => return Outcome::failed(e.to_string()),
            };
            match view.state {
                InstallState::Installed | InstallState::UpdateAvailable => {
                    return Outcome::done(format!("preset {preset_id} installed"))
                }
                InstallState::Failed | InstallState::Partial | InstallState::NotInstalled => {
                    return Outcome::failed(view.error.unwrap_or_else(|| {
                        format!("preset {preset_id} did not install; see the Models page")
                    }))
                }
                _ => {
                    let left = format_bytes(view.remaining_bytes);
                    self.progress(running, seq, &format!("downloading: {left} to go"));
                }
            }
            tokio::time::sleep(POLL).await;
        }
    }

    async fn download(
        &self,
        sources: Sources<'_>,
        folder: &str,
        file: &str,
        sha256: Option<&str>,
        running: &OperationView,
        seq: u32,
    ) -> Outcome {
        // The folder is one name (ComfyUI's `checkpoints`, `loras`, …); the whole path stays
        // inside the models folder (the manager checks it against the root, symlinks too).
        if folder.is_empty() || folder.contains(['/', '\\']) || folder.starts_with('.') {
            return Outcome::failed(format!("{folder:?} is not a model folder name"));
        }
        let path = format!("{folder}/{file}");
        if let Err(e) = crate::workspace::check_relative_path(&path) {
            return Outcome::failed(format!("refused to write {path}: {e}"));
        }
        let checksum = sha256.map(|value| crate::catalog::Checksum {
            algorithm: crate::catalog::ChecksumAlgorithm::Sha256,
            value: value.to_string(),
        });
        let task_id = match self
            .downloads
            .enqueue_file(NewTask {
                url: sources.url.to_string(),
                mirrors: sources.mirrors.to_vec(),
                path: path.clone(),
                expected_size: None,
                checksum,
                priority: 0,
            })
            .await
        {
            Ok(id) => id,
            Err(e) => return Outcome::failed(e.to_string()),
        };
        let mut space_checked = false;
        loop {
            let task = match self.downloads.task(task_id).await {
                Ok(task) => task,
                Err(e) => return Outcome::failed(e.to_string()),
            };
            let Some(task) = task else {
                // Done: the row goes once the file is installed (or it was cancelled).
                return match self.downloads.installed_file(&path).await {
                    Ok(Some(f)) => Outcome::done(format!(
                        "downloaded {} into models/{path} ({})",
                        format_bytes(f.size),
                        match f.verified_by.as_str() {
                            "checksum" => "its SHA-256 matches the workflow's",
                            "size" => "no hash known: its size matches the server's",
                            _ => "its SHA-256 matches Hugging Face's",
                        }
                    )),
                    _ => Outcome::failed(format!(
                        "the download of {path} was cancelled (on the Models page?)"
                    )),
                };
            };
            match task.state {
                TaskState::Failed => {
                    return Outcome::failed(
                        task.last_error
                            .unwrap_or_else(|| format!("the download of {path} failed")),
                    )
                }
                _ => {
                    let total = task.validator.total_bytes;
                    // The disk check, as soon as the server said how big the file is.
                    if let (Some(total), false) = (total, space_checked) {
                        space_checked = true;
                        let needed = total.saturating_sub(task.bytes_done);
                        let space = self.downloads.space();
                        if needed > space.usable_bytes() {
                            let _ = self.downloads.pause_task(task_id).await;
                            return Outcome::failed(format!(
                                "{path} needs {} more, but only {} is free (keeping {} in \
                                 reserve); free some space, then press \"Make runnable\" again",
                                format_bytes(needed),
                                format_bytes(space.free_bytes),
                                format_bytes(space.reserve_bytes)
                            ));
                        }
                    }
                    let done = self
                        .downloads
                        .live_figures(task_id)
                        .map(|f| f.bytes_done)
                        .unwrap_or(task.bytes_done);
                    let line = match (task.state, total) {
                        (TaskState::Paused, _) => "paused (resume it on the Models page)".into(),
                        (_, Some(total)) if total > 0 => format!(
                            "{} of {} ({:.0}%)",
                            format_bytes(done),
                            format_bytes(total),
                            percent_of(done, total).floor()
                        ),
                        _ => format!("{} so far", format_bytes(done)),
                    };
                    self.progress(running, seq, &line);
                }
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The last step: the fixes applied to a copy of the workflow (never to the original),
    /// the copy saved, and looked at again against ComfyUI as it is now.
    async fn check(&self, op: &StoredOperation, seq: u32) -> Result<(), OperationError> {
        let id = op.view.id;
        self.store
            .set_step(id, seq, StepState::Running, None, now_ms())
            .await?;
        self.publish(id).await?;
        let original = self.workflows.get(&op.caller, &op.view.workflow_id).await?;
        let info = match self.fresh_object_info().await {
            Ok(info) => info,
            Err(e) => {
                let message = e.to_string();
                self.store
                    .set_step(id, seq, StepState::Failed, Some(&message), now_ms())
                    .await?;
                self.store
                    .finish(id, OperationState::Failed, &message, None, now_ms())
                    .await?;
                self.publish(id).await?;
                return Ok(());
            }
        };
        let mut copy = original.workflow.clone();
        for step in &op.steps {
            let Action::Fix {
                node_id,
                input,
                from,
                to,
            } = &step.action
            else {
                continue;
            };
            if step.view.state.is_settled() {
                continue;
            }
            let fix = Fix {
                node_id: node_id.clone(),
                input: input.clone(),
                from: from.clone(),
                to: to.clone(),
                sentence: step.view.title.clone(),
            };
            let (state, detail) = match fixes::apply(&mut copy, &info, &fix) {
                Ok(()) => (StepState::Done, "changed on the copy".to_string()),
                Err(reason) => (StepState::Failed, reason),
            };
            self.store
                .set_step(id, step.view.seq, state, Some(&detail), now_ms())
                .await?;
        }
        let name = format!("{} (runnable)", op.view.workflow_name);
        let saved = self
            .workflows
            .save_copy(
                &op.caller,
                &name,
                &copy,
                op.view.result_workflow_id.as_deref(),
            )
            .await?;
        let after = self.store.get(id).await?.unwrap_or_else(|| op.clone());
        let mut left: Vec<String> = after
            .steps
            .iter()
            .filter(|s| s.view.state == StepState::Failed)
            .map(|s| {
                format!(
                    "{}: {}",
                    s.view.title,
                    s.view.detail.as_deref().unwrap_or("failed")
                )
            })
            .collect();
        for model in saved.required_models.iter().filter(|m| !m.installed) {
            let line = format!(
                "model file {}/{} is not installed",
                model.folder, model.file
            );
            if !left.iter().any(|l| l.contains(&model.file)) {
                left.push(line);
            }
        }
        for problem in &saved.problems {
            if !left.iter().any(|l| l == problem) {
                left.push(problem.clone());
            }
        }
        let (state, step_state, summary) = if left.is_empty() {
            (
                OperationState::Done,
                StepState::Done,
                format!("Runnable: saved as \"{}\"", saved.name),
            )
        } else {
            (
                OperationState::Failed,
                StepState::Failed,
                format!(
                    "Saved as \"{}\", but it does not run yet. Left: {}",
                    saved.name,
                    left.join("; ")
                ),
            )
        };
        let check_detail = match state {
            OperationState::Done => format!("saved as \"{}\"; nothing is missing", saved.name),
            _ => format!("saved as \"{}\"; {} left", saved.name, left.len()),
        };
        self.store
            .set_step(id, seq, step_state, Some(&check_detail), now_ms())
            .await?;
        self.store
            .finish(id, state, &summary, Some(&saved.id), now_ms())
            .await?;
        self.publish(id).await?;
        Ok(())
    }
}

/// Where a model step downloads its file from: the link, then its mirrors.
struct Sources<'a> {
    url: &'a str,
    mirrors: &'a [String],
}

/// An operation's restore point key, owning its strings.
struct OwnedPoint {
    target: String,
    subject: String,
}

impl OwnedPoint {
    fn key(&self) -> crate::download::manager::PointKey<'_> {
        crate::download::manager::PointKey {
            kind: "operation",
            target: &self.target,
            subject: &self.subject,
        }
    }
}
