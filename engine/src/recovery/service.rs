//! Sees every failure on the event bus, keeps it until it is resolved, and carries out the
//! actions a person chooses.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::store::{RecoveryStore, Report, StoredFailure};
use super::RecoveryError;
use crate::catalog::CatalogService;
use crate::clock::now_ms;
use crate::download::manager::{DownloadError, DownloadManager};
use crate::events::EventBus;
use crate::jobs::JobService;
use crate::model::*;
use crate::nodes::{NodePackService, PackUndo};
use crate::operations::OperationService;
use crate::status::StatusService;
use crate::workflows::WorkflowService;

pub struct RecoveryService {
    store: RecoveryStore,
    events: EventBus,
    downloads: Arc<DownloadManager>,
    operations: Arc<OperationService>,
    jobs: Arc<JobService>,
    status: Arc<StatusService>,
    services: ActionServices,
    /// `Event::Recovery`s the listener has passed: events arrive in order, so once it passes
    /// one published by [`RecoveryService::flush`], everything before it is recorded.
    passed_marks: Arc<AtomicU64>,
    /// Whether a listener runs (nothing to wait for otherwise).
    listening: AtomicBool,
}

/// The services the actions call besides the failed thing's own: the catalog's and the node
/// map's syncs, the packs' undo, and the workflows whose files a rollback keeps.
pub struct ActionServices {
    pub catalog: Arc<CatalogService>,
    pub nodes: Arc<NodePackService>,
    pub workflows: Arc<WorkflowService>,
}

/// What an event says about a thing that can fail.
enum Seen {
    Failed(Report),
    Worked(FailureSource, String),
}

impl RecoveryService {
    pub fn new(
        store: RecoveryStore,
        events: EventBus,
        downloads: Arc<DownloadManager>,
        operations: Arc<OperationService>,
        jobs: Arc<JobService>,
        status: Arc<StatusService>,
        services: ActionServices,
    ) -> Self {
        RecoveryService {
            store,
            events,
            downloads,
            operations,
            jobs,
            status,
            services,
            passed_marks: Arc::new(AtomicU64::new(0)),
            listening: AtomicBool::new(false),
        }
    }

    /// Follows the event bus until `stopping`: failures are recorded, successes resolve them.
    pub fn spawn_listener(self: &Arc<Self>, stopping: &CancellationToken) {
        let this = Arc::clone(self);
        let mut rx = self.events.subscribe_lossless(concerns_recovery);
        self.listening.store(true, Ordering::SeqCst);
        let stopping = stopping.clone();
        tokio::spawn(async move {
            loop {
                let event = tokio::select! {
                    _ = stopping.cancelled() => return,
                    event = rx.recv() => event,
                };
                let Some(event) = event else { return };
                if matches!(event, Event::Recovery) {
                    this.passed_marks.fetch_add(1, Ordering::SeqCst);
                }
                if let Some(seen) = this.seen(&event) {
                    this.record_patiently(seen).await;
                }
            }
        });
    }

    /// Waits (at most two seconds) until the listener has recorded every event published so
    /// far: a command about to exit calls it, so that what failed in it is not lost.
    pub async fn flush(&self) {
        if !self.listening.load(Ordering::SeqCst) {
            return;
        }
        let before = self.passed_marks.load(Ordering::SeqCst);
        self.events.publish(Event::Recovery);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while self.passed_marks.load(Ordering::SeqCst) <= before
            && std::time::Instant::now() < deadline
        {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    fn seen(&self, event: &Event) -> Option<Seen> {
        match event {
            Event::Download(file) => match file.state {
                // A preset's file is followed as the preset.
                FileState::Failed
                    if self
                        .downloads
                        .catalog()
                        .preset_for_model(&file.path)
                        .is_none() =>
                {
                    Some(Seen::Failed(Report {
                        source: FailureSource::Download,
                        key: file.path.clone(),
                        target: file.task_id.to_string(),
                        subject: file.path.clone(),
                        detail: file
                            .error
                            .clone()
                            .unwrap_or_else(|| "the download failed".into()),
                        user_id: None,
                    }))
                }
                // Paused by the engine, not by a person (a full disk): a preset's file too,
                // since its preset does not fail but waits.
                FileState::Paused if file.error.is_some() => Some(Seen::Failed(Report {
                    source: FailureSource::Download,
                    key: file.path.clone(),
                    target: file.task_id.to_string(),
                    subject: file.path.clone(),
                    detail: file.error.clone().unwrap_or_default(),
                    user_id: None,
                })),
                FileState::Installed => {
                    Some(Seen::Worked(FailureSource::Download, file.path.clone()))
                }
                _ => None,
            },
            Event::Preset(preset) => match preset.state {
                InstallState::Failed => Some(Seen::Failed(Report {
                    source: FailureSource::Preset,
                    key: preset.preset_id.clone(),
                    target: preset.preset_id.clone(),
                    subject: format!("preset {}", preset.preset_id),
                    detail: preset
                        .error
                        .clone()
                        .unwrap_or_else(|| "the install failed".into()),
                    user_id: None,
                })),
                InstallState::Installed => Some(Seen::Worked(
                    FailureSource::Preset,
                    preset.preset_id.clone(),
                )),
                _ => None,
            },
            Event::Operation(op) => {
                let key = format!("{}:{}", op.user_id, op.workflow_id);
                match op.state {
                    OperationState::Failed => Some(Seen::Failed(Report {
                        source: FailureSource::Operation,
                        key,
                        target: op.id.to_string(),
                        subject: format!("make \"{}\" runnable", op.workflow_name),
                        detail: op.summary.clone().unwrap_or_else(|| "it failed".into()),
                        user_id: Some(op.user_id),
                    })),
                    OperationState::Done => Some(Seen::Worked(FailureSource::Operation, key)),
                    _ => None,
                }
            }
            Event::Sync(sync) => {
                let key = sync.kind.as_str().to_string();
                Some(match &sync.error {
                    Some(error) => Seen::Failed(Report {
                        source: FailureSource::Sync,
                        key: key.clone(),
                        target: key,
                        subject: sync.kind.label().to_string(),
                        detail: format!("{error} (the last good copy is still used)"),
                        user_id: None,
                    }),
                    None => Seen::Worked(FailureSource::Sync, key),
                })
            }
            Event::Pack(pack) => {
                let key = format!("{}:{}", pack.change, pack.pack);
                Some(match &pack.error {
                    Some(error) => Seen::Failed(Report {
                        source: FailureSource::Pack,
                        key,
                        target: serde_json::to_string(pack).unwrap_or_default(),
                        subject: format!("{} pack {}", pack.change, pack.pack),
                        detail: error.clone(),
                        user_id: None,
                    }),
                    None => Seen::Worked(FailureSource::Pack, key),
                })
            }
            Event::Job(job) if job.state == JobState::Failed => Some(Seen::Failed(Report {
                source: FailureSource::Job,
                key: job.id.to_string(),
                target: job.id.to_string(),
                subject: format!("run of \"{}\"", job.workflow_name),
                detail: job.error.clone().unwrap_or_else(|| "the run failed".into()),
                user_id: Some(job.user_id),
            })),
            Event::ComfyProcess(process) => match &process.state {
                ComfyProcessState::Failed { error } => Some(Seen::Failed(Self::comfy_report(
                    error.clone(),
                    &process.log_tail,
                ))),
                // Crashing again and again: a person is needed (a restart alone is automatic).
                ComfyProcessState::Restarting { attempt, .. } if *attempt >= 3 => {
                    Some(Seen::Failed(Self::comfy_report(
                        format!("ComfyUI crashed {attempt} times in a row"),
                        &process.log_tail,
                    )))
                }
                ComfyProcessState::Ready { .. } => {
                    Some(Seen::Worked(FailureSource::Comfyui, "comfyui".into()))
                }
                _ => None,
            },
            _ => None,
        }
    }

    fn comfy_report(headline: String, log_tail: &[String]) -> Report {
        let tail: Vec<&str> = log_tail
            .iter()
            .rev()
            .take(8)
            .rev()
            .map(String::as_str)
            .collect();
        Report {
            source: FailureSource::Comfyui,
            key: "comfyui".into(),
            target: "comfyui".into(),
            subject: "ComfyUI".into(),
            detail: if tail.is_empty() {
                headline
            } else {
                format!("{headline}; its last lines:\n{}", tail.join("\n"))
            },
            user_id: None,
        }
    }

    /// [`Self::record`], tried again while the database is too busy (a pod under load): a
    /// failure nobody can find is the one thing Recovery must not do.
    async fn record_patiently(&self, seen: Seen) {
        let mut wait = std::time::Duration::from_millis(100);
        for attempt in 1..=4 {
            match self.record(&seen).await {
                Ok(()) => return,
                Err(e) if attempt == 4 => {
                    tracing::warn!(error = %e, "a failure was not recorded");
                }
                Err(e) => {
                    tracing::debug!(error = %e, attempt, "recording a failure again");
                    tokio::time::sleep(wait).await;
                    wait *= 4;
                }
            }
        }
    }

    async fn record(&self, seen: &Seen) -> Result<(), RecoveryError> {
        let changed = match seen {
            Seen::Failed(report) => self.store.report(report, now_ms()).await?,
            Seen::Worked(source, key) => self.store.resolve(*source, key, now_ms()).await?,
        };
        if changed {
            self.events.publish(Event::Recovery);
        }
        Ok(())
    }

    /// An administrator sees everything; a user their own operations and runs.
    fn scope(caller: &Caller) -> Option<i64> {
        (!caller.is_admin()).then_some(caller.user_id)
    }

    pub async fn list(&self, caller: &Caller) -> Result<RecoveryList, RecoveryError> {
        let mut list = self.store.list(Self::scope(caller), now_ms()).await?;
        if caller.is_admin() {
            list.partial_files = self
                .downloads
                .partial_files()
                .await
                .map_err(|e| RecoveryError::Store(e.to_string()))?;
        } else {
            // Restore points are the pod's: an administrator's to roll back.
            for failure in list.open.iter_mut().chain(list.recent.iter_mut()) {
                failure.actions.retain(|a| *a != RecoveryAction::RollBack);
            }
        }
        Ok(list)
    }

    /// The banner's sentence for the caller, `None` when nothing needs attention: the open
    /// failures only (every page asks, so not the walk of the models folder the list does).
    pub async fn banner(&self, caller: &Caller) -> Result<Option<String>, RecoveryError> {
        let open: Vec<FailureView> = self
            .store
            .open(Self::scope(caller))
            .await?
            .into_iter()
            .map(|f| f.view)
            .collect();
        Ok(banner_line(&open))
    }

    async fn owned(&self, caller: &Caller, id: i64) -> Result<StoredFailure, RecoveryError> {
        match self.store.get(id).await? {
            Some(f) if caller.is_admin() || f.view.user_id == Some(caller.user_id) => Ok(f),
            _ => Err(RecoveryError::NotFound(format!(
                "failure {id} does not exist"
            ))),
        }
    }

    /// Carries out `action` on failure `id`. A retry starts the thing again (the failure is
    /// resolved; it opens again, counted, if the retry fails too).
    pub async fn act(
        &self,
        caller: &Caller,
        id: i64,
        action: RecoveryAction,
        url: Option<&str>,
    ) -> Result<FailureView, RecoveryError> {
        let failure = self.owned(caller, id).await?;
        if !failure.view.actions.contains(&action) {
            return Err(RecoveryError::Invalid(format!(
                "\"{}\" does not fit this failure ({}); it offers: {}",
                action.as_str(),
                failure.view.class.label(),
                failure
                    .view
                    .actions
                    .iter()
                    .map(|a| a.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let state = match action {
            RecoveryAction::Dismiss => FailureState::Dismissed,
            // A paused download's retry is its resume (only downloads offer it).
            RecoveryAction::Retry | RecoveryAction::Resume => {
                self.retry(caller, &failure).await?;
                FailureState::Resolved
            }
            RecoveryAction::UseSource => {
                let url = url
                    .map(str::trim)
                    .filter(|u| !u.is_empty())
                    .ok_or_else(|| {
                        RecoveryError::Invalid(
                            "\"use_source\" needs the file's other link in \"url\"".into(),
                        )
                    })?;
                self.use_source(caller, &failure, url).await?;
                FailureState::Resolved
            }
            RecoveryAction::RollBack => {
                self.roll_back_failed(caller, &failure).await?;
                FailureState::Dismissed
            }
            RecoveryAction::RestartComfyui => {
                self.status
                    .restart_comfyui(caller)
                    .await
                    .map_err(|e| RecoveryError::Failed(e.to_string()))?;
                FailureState::Resolved
            }
            RecoveryAction::AddToken
            | RecoveryAction::AcceptLicence
            | RecoveryAction::FreeSpace => {
                return Err(RecoveryError::Invalid(format!(
                    "\"{}\" is done by you ({}), then press Retry",
                    action.as_str(),
                    failure
                        .view
                        .link
                        .as_deref()
                        .unwrap_or("see the failure's sentence")
                )))
            }
        };
        self.store.set_state(id, state, now_ms()).await?;
        self.events.publish(Event::Recovery);
        Ok(self
            .store
            .get(id)
            .await?
            .map(|f| f.view)
            .unwrap_or(failure.view))
    }

    /// Rolls back the restore point of the failed preset install or operation: the newest one
    /// not rolled back yet.
    async fn roll_back_failed(
        &self,
        caller: &Caller,
        failure: &StoredFailure,
    ) -> Result<RestorePointView, RecoveryError> {
        let kind = match failure.view.source {
            FailureSource::Preset => "preset",
            _ => "operation",
        };
        let point = self
            .downloads
            .newest_kept_point(kind, &failure.target)
            .await
            .map_err(|e| RecoveryError::Store(e.to_string()))?
            .ok_or_else(|| {
                RecoveryError::Invalid(format!(
                    "{} left nothing to roll back (it added nothing, or it was rolled back already)",
                    failure.view.subject
                ))
            })?;
        self.roll_back(caller, point).await
    }

    /// The failed file (a download's, or the one file of a preset that stopped) from `url`.
    async fn use_source(
        &self,
        caller: &Caller,
        failure: &StoredFailure,
        url: &str,
    ) -> Result<(), RecoveryError> {
        if !caller.is_admin() {
            return Err(RecoveryError::Forbidden(
                "only an administrator can change where a file is downloaded from".into(),
            ));
        }
        let words = |e: DownloadError| match e {
            DownloadError::Invalid(message) => RecoveryError::Invalid(message),
            other => RecoveryError::Failed(other.to_string()),
        };
        let task_id = match failure.view.source {
            FailureSource::Download => failure.target.parse::<i64>().map_err(|_| {
                RecoveryError::Invalid(format!("{} is not a download", failure.target))
            })?,
            FailureSource::Preset => self
                .downloads
                .stalled_file_of_preset(&failure.target)
                .await
                .map_err(words)?,
            _ => {
                return Err(RecoveryError::Invalid(
                    "another source is for a download or a preset's file".into(),
                ))
            }
        };
        self.downloads.use_source(task_id, url).await.map_err(words)
    }

    async fn retry(&self, caller: &Caller, failure: &StoredFailure) -> Result<(), RecoveryError> {
        let admin_only = || {
            if caller.is_admin() {
                Ok(())
            } else {
                Err(RecoveryError::Forbidden(
                    "only an administrator can retry downloads and installs".into(),
                ))
            }
        };
        let failed = |e: &dyn std::fmt::Display| RecoveryError::Failed(e.to_string());
        let number = || {
            failure
                .target
                .parse::<i64>()
                .map_err(|_| RecoveryError::Invalid(format!("{} is not an id", failure.target)))
        };
        match failure.view.source {
            FailureSource::Download => {
                admin_only()?;
                self.downloads
                    .resume_task(number()?)
                    .await
                    .map_err(|e| failed(&e))?;
            }
            FailureSource::Preset => {
                admin_only()?;
                self.downloads
                    .install_preset(&failure.target)
                    .await
                    .map_err(|e| failed(&e))?;
            }
            FailureSource::Operation => {
                self.operations
                    .start_again(caller, number()?)
                    .await
                    .map_err(|e| failed(&e))?;
            }
            FailureSource::Job => {
                self.jobs
                    .rerun(caller, number()?)
                    .await
                    .map_err(|e| failed(&e))?;
            }
            FailureSource::Comfyui => {
                self.status
                    .restart_comfyui(caller)
                    .await
                    .map_err(|e| failed(&e))?;
            }
            FailureSource::Pack => {
                admin_only()?;
                let asked: PackOutcome = serde_json::from_str(&failure.target).map_err(|_| {
                    RecoveryError::Invalid(format!(
                        "{} cannot be asked for again",
                        failure.view.subject
                    ))
                })?;
                let quiet = |_: &str| {};
                let nodes = &self.services.nodes;
                let done = match (asked.change.as_str(), asked.id.as_deref()) {
                    ("update", Some(id)) => {
                        nodes
                            .update(caller, id, asked.version.as_deref(), &quiet)
                            .await
                    }
                    _ => {
                        let target = crate::nodes::InstallTarget {
                            repo: asked.repo,
                            id: asked.id,
                            version: asked.version,
                        };
                        nodes.install(caller, target, &quiet).await
                    }
                };
                done.map_err(|e| failed(&e))?;
            }
            FailureSource::Sync => {
                admin_only()?;
                match SyncKind::parse(&failure.target) {
                    Some(SyncKind::PresetRegistry) => {
                        let note = self.services.catalog.sync().await.map_err(|e| failed(&e))?;
                        // The registry's failure is a note, not an error of the reload.
                        if note.contains("sync failed") {
                            return Err(RecoveryError::Failed(note));
                        }
                    }
                    Some(SyncKind::NodeMap) => {
                        self.services
                            .nodes
                            .sync_map()
                            .await
                            .map_err(|e| failed(&e))?;
                    }
                    None => {
                        return Err(RecoveryError::Invalid(format!(
                            "{} is not a sync",
                            failure.target
                        )))
                    }
                }
            }
        }
        Ok(())
    }

    /// The restore points of preset installs, newest first: the pod's, so an administrator's
    /// to see (a user gets none).
    pub async fn restore_points(
        &self,
        caller: &Caller,
    ) -> Result<Vec<RestorePointView>, RecoveryError> {
        if !caller.is_admin() {
            return Ok(Vec::new());
        }
        self.downloads
            .restore_points()
            .await
            .map_err(|e| RecoveryError::Store(e.to_string()))
    }

    /// Rolls restore point `id` back (administrators only); twice is harmless.
    pub async fn roll_back(
        &self,
        caller: &Caller,
        id: i64,
    ) -> Result<RestorePointView, RecoveryError> {
        if !caller.is_admin() {
            return Err(RecoveryError::Forbidden(
                "only an administrator can roll back an install".into(),
            ));
        }
        let point = self
            .downloads
            .restore_point(id)
            .await
            .map_err(|e| RecoveryError::Store(e.to_string()))?;
        let mut done = Vec::new();
        if point
            .as_ref()
            .is_some_and(|p| p.state == RestoreState::Kept)
        {
            // Newest change first: an update is undone before the install it followed.
            for change in [RestoreChange::PackUpdated, RestoreChange::Pack] {
                let items = self
                    .downloads
                    .restore_items_of(id, change)
                    .await
                    .map_err(|e| RecoveryError::Store(e.to_string()))?;
                for (pack, undo) in items {
                    done.push(self.undo_pack(caller, &pack, change, undo.as_deref()).await);
                }
            }
        }
        let needed = match &point {
            Some(point) if point.state == RestoreState::Kept => {
                self.models_other_workflows_need(caller, point).await
            }
            _ => HashSet::new(),
        };
        self.downloads
            .roll_back_with(id, &done, &needed)
            .await
            .map_err(|e| match e {
                DownloadError::UnknownRestorePoint(_) => RecoveryError::NotFound(e.to_string()),
                other => RecoveryError::Failed(other.to_string()),
            })
    }

    /// The model files (relative to the models folder) that the people's workflows and
    /// ComfyUI's saved ones name — not templates, and for a "make runnable" not its own
    /// workflow nor its runnable copy. A listing that fails keeps nothing extra: the preset
    /// and changed-file checks still hold.
    async fn models_other_workflows_need(
        &self,
        caller: &Caller,
        point: &RestorePointView,
    ) -> HashSet<String> {
        let mut own = Vec::new();
        if point.kind == "operation" {
            if let Some(op) = match point.target.parse::<i64>() {
                Ok(op_id) => self.operations.get(caller, op_id).await.ok(),
                Err(_) => None,
            } {
                own.push(op.workflow_id);
                own.extend(op.result_workflow_id);
            }
        }
        match self.services.workflows.list(caller).await {
            Ok(list) => list
                .workflows
                .iter()
                .filter(|w| w.source != WorkflowSource::Template && !own.contains(&w.id))
                .flat_map(|w| &w.required_models)
                .map(|m| format!("{}/{}", m.folder, m.file))
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "the workflows were not listed for a rollback");
                HashSet::new()
            }
        }
    }

    /// Undoes one pack change of a restore point and says how it went.
    async fn undo_pack(
        &self,
        caller: &Caller,
        pack: &str,
        change: RestoreChange,
        undo: Option<&str>,
    ) -> String {
        let quiet = |_: &str| {};
        let undo = undo.and_then(|json| serde_json::from_str::<PackUndo>(json).ok());
        let result = match (undo, change) {
            (Some(undo), _) => self.services.nodes.undo(caller, &undo, &quiet).await,
            // Recorded before packs kept how to undo them: the folder goes.
            (None, RestoreChange::Pack) => self
                .services
                .nodes
                .remove(caller, pack, &quiet)
                .await
                .map(|_| format!("removed pack {pack}")),
            (None, _) => return format!("pack {pack} not rolled back: its old state was not kept"),
        };
        result.unwrap_or_else(|e| format!("pack {pack} not rolled back: {e}"))
    }

    /// Retries every open failure that can be retried as it is (not those waiting for a token,
    /// space or a licence first).
    pub async fn retry_all(&self, caller: &Caller) -> Result<RetryAllOutcome, RecoveryError> {
        let mut outcome = RetryAllOutcome::default();
        for failure in self.store.open(Self::scope(caller)).await? {
            let first = failure.view.actions.first().copied();
            if first != Some(RecoveryAction::Retry) {
                outcome.skipped += 1;
                continue;
            }
            match self
                .act(caller, failure.view.id, RecoveryAction::Retry, None)
                .await
            {
                Ok(_) => outcome.retried += 1,
                Err(e) => {
                    tracing::warn!(failure = failure.view.id, error = %e, "retry failed");
                    outcome.skipped += 1;
                }
            }
        }
        Ok(outcome)
    }
}

/// The events [`RecoveryService::seen`] may record or resolve from (state changes, never
/// progress), and its own marks: the listener gets every one of them.
fn concerns_recovery(event: &Event) -> bool {
    match event {
        Event::Download(file) => matches!(
            file.state,
            FileState::Failed | FileState::Paused | FileState::Installed
        ),
        Event::Preset(preset) => {
            matches!(preset.state, InstallState::Failed | InstallState::Installed)
        }
        Event::Operation(op) => matches!(op.state, OperationState::Failed | OperationState::Done),
        Event::Job(job) => job.state == JobState::Failed,
        Event::ComfyProcess(process) => matches!(
            process.state,
            ComfyProcessState::Failed { .. }
                | ComfyProcessState::Restarting { .. }
                | ComfyProcessState::Ready { .. }
        ),
        Event::Sync(_) | Event::Pack(_) | Event::Recovery => true,
        _ => false,
    }
}
