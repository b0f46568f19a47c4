//! [`NodePackService`]: the packs of the supervised ComfyUI.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::git;
use super::map::{NodeMap, NodeMapSource};
use super::pip::{self, Frozen, Pip};
use super::process::tail;
use super::{redact_url, NodesError};
use crate::activity::ActivityLog;
use crate::breaker::Breaker;
use crate::comfy::supervisor::resolve_python;
use crate::comfy::ComfyClient;
use crate::config::Config;
use crate::download::manager::{DownloadManager, PointKey};
use crate::model::{
    check_pack_id, format_utc, normalize_package_name, ActivityKind, Caller, ComfyProcessState,
    Event, FailureClass, FailureSource, MissingNodeClass, NodePack, NodePackList, NodePackOutcome,
    NodePackState, PackOutcome, PackSource, ResolvedPack, RestoreChange,
    DEFAULT_PROTECTED_PACKAGES,
};
use crate::recovery::{passing_class, with_patience, Patience};
use crate::status::StatusService;
use crate::workspace::WorkspaceLayout;

/// Where disabled packs are moved (as ComfyUI-Manager does; ComfyUI skips `*.disabled`).
const DISABLED_DIR: &str = ".disabled";
/// Lines of a traceback quoted for a pack that failed to import.
const TRACEBACK_LINES: usize = 12;
/// Restore points kept in `data/nodes/restore-points/` (older ones are deleted).
const KEPT_RESTORE_POINTS: usize = 20;
/// How much of the end of ComfyUI's log is read to find import failures.
const LOG_WINDOW_BYTES: u64 = 512 * 1024;

/// Called with each step as it happens (the CLI prints them; the API collects them).
pub type Progress<'a> = &'a (dyn Fn(&str) + Send + Sync);

/// What the service is started with; [`NodesConfig::from_config`] reads the engine's.
#[derive(Clone, Debug)]
pub struct NodesConfig {
    pub comfyui_dir: Option<PathBuf>,
    pub python: Option<PathBuf>,
    /// Normalised names; the defaults plus `NODE_PROTECTED_PACKAGES`.
    pub protected: Vec<String>,
    /// `NODE_PIP_ARGS`: appended to every `pip install` (e.g. `--no-index --find-links DIR`).
    pub pip_args: Vec<String>,
    pub map_url: Option<String>,
    pub map_cache: PathBuf,
    pub restore_points: PathBuf,
    pub comfyui_log: PathBuf,
    /// How long ComfyUI may take to answer again after a restart.
    pub ready_timeout: Duration,
    /// How a clone or fetch that failed on the network is tried again.
    pub network_patience: Patience,
}

impl NodesConfig {
    pub fn from_config(config: &Config, layout: &WorkspaceLayout) -> Self {
        let mut protected: Vec<String> = DEFAULT_PROTECTED_PACKAGES
            .iter()
            .map(|p| p.to_string())
            .chain(config.node_protected_packages.iter().cloned())
            .map(|p| normalize_package_name(&p))
            .filter(|p| !p.is_empty())
            .collect();
        protected.sort();
        protected.dedup();
        NodesConfig {
            comfyui_dir: config.comfyui_dir.clone(),
            python: config.comfyui_python.clone(),
            protected,
            pip_args: config.node_pip_args.clone(),
            map_url: config.node_map_url.clone(),
            map_cache: layout.data().join("nodes").join("extension-node-map.json"),
            restore_points: layout.data().join("nodes").join("restore-points"),
            comfyui_log: layout.comfyui_log(),
            ready_timeout: config.node_ready_timeout,
            network_patience: Patience {
                retries: NETWORK_RETRIES,
                first: config.node_network_retry,
            },
        }
    }
}

/// `POST /api/nodes/install`: a repository URL (or `owner/repo`), or a pack's id as the node
/// map knows it; optionally a commit, branch, tag or version.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct InstallTarget {
    pub repo: Option<String>,
    pub id: Option<String>,
    pub version: Option<String>,
}

/// The state before a change: each pack folder with its commit, and `pip freeze`. Written to
/// `data/nodes/restore-points/` as JSON before anything changes.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct RestorePoint {
    at_ms: i64,
    operation: String,
    /// Folder (relative to `custom_nodes/`) → its commit, when a git checkout.
    packs: BTreeMap<String, Option<String>>,
    pip_freeze: Frozen,
}

/// A pack change under way, written beside its restore point before anything changes and
/// removed when it ends, however it ends: found at a start, it means the deck stopped in the
/// middle (kill -9, a power cut), and the pod is put back as the point says.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct ChangeInProgress {
    /// The restore point's file.
    point: PathBuf,
    /// What was asked (`change` "install" or "update"; `pack` its id): to say it, and retry it.
    asked: PackOutcome,
    /// An update's commit before it.
    from_commit: Option<String>,
    /// The install made `custom_nodes/.disabled/`.
    made_disabled_folder: bool,
    /// Asked for directly (not by a "make runnable", which goes on by itself).
    announced: bool,
}

/// How to undo one pack change that succeeded, kept with its restore point (as JSON): an
/// install (`from_commit` is `None`: the folder goes) or an update (checked out at
/// `from_commit` again); in both, the Python packages it altered are put back.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PackUndo {
    pub pack: String,
    pub from_commit: Option<String>,
    /// The commit the change left, when a git checkout: a pack at another one since is kept.
    pub to_commit: Option<String>,
    pub pip: pip::PipChanges,
    /// The install made `custom_nodes/.disabled/` (removed again with the pack, when empty).
    #[serde(default)]
    pub made_disabled_folder: bool,
}

impl PackUndo {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a pack undo serialises")
    }
}

/// What to undo beyond the pip packages.
enum Undo<'a> {
    /// Remove the folder that the install created.
    RemoveFolder(&'a Path),
    /// Check the folder out at its old commit again.
    Checkout(&'a Path, &'a str),
    /// The folders are as they were (only pip may not be).
    Nothing,
}

pub struct NodePackService {
    config: NodesConfig,
    status: Arc<StatusService>,
    /// Keeps the deck's restore points (pack installs and updates are recorded there).
    restore_points: Arc<DownloadManager>,
    comfy: ComfyClient,
    activity: ActivityLog,
    /// One change at a time: two installs must not restart ComfyUI under each other.
    lock: tokio::sync::Mutex<()>,
    /// The cached map parsed once per version of its file (size and modification time).
    parsed_map: std::sync::Mutex<Option<(MapFileStamp, Arc<NodeMap>)>>,
    /// When a sync made for a first use last failed: not retried on every lookup.
    first_sync_failed: std::sync::Mutex<Option<std::time::Instant>>,
    /// Git hosts that keep failing are left alone for a while (every pack of a workflow may
    /// come from the same one).
    git_hosts: Breaker,
}

/// Tries of a clone or fetch after the first when the network failed.
const NETWORK_RETRIES: u32 = 2;
/// Network failures in a row (tries included) after which a git host is left alone.
const GIT_HOST_FAILURES: u32 = 3;
/// How long a git host that keeps failing is left alone.
const GIT_HOST_COOLDOWN: Duration = Duration::from_secs(120);

type MapFileStamp = (u64, Option<std::time::SystemTime>);

/// How long a failed first-use sync of the node map waits before a lookup tries again.
const FIRST_SYNC_RETRY: Duration = Duration::from_secs(600);

impl NodePackService {
    pub fn new(
        config: NodesConfig,
        status: Arc<StatusService>,
        restore_points: Arc<DownloadManager>,
        comfy: ComfyClient,
        activity: ActivityLog,
    ) -> Self {
        NodePackService {
            config,
            status,
            restore_points,
            comfy,
            activity,
            lock: tokio::sync::Mutex::new(()),
            parsed_map: std::sync::Mutex::new(None),
            first_sync_failed: std::sync::Mutex::new(None),
            git_hosts: Breaker::new(GIT_HOST_FAILURES, GIT_HOST_COOLDOWN),
        }
    }

    /// Runs a clone or fetch of `url` (`attempt`) with the network's patience: a failure that
    /// may pass is tried again after a wait said in `steps` with the next try's time; a host
    /// that keeps failing is left alone for a while (the error says until when).
    async fn over_the_network<T, F, Fut>(
        &self,
        url: &str,
        steps: &mut Steps<'_>,
        mut attempt: F,
    ) -> Result<T, String>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, String>>,
    {
        /// Why one try did not work: git failed, or the host is left alone (not tried again
        /// here: the wait is the breaker's).
        enum Missed {
            Failed(String),
            Resting(String),
        }
        let host = git::git_host(url);
        let guarded = || {
            // Made now, run only below, once the host may be asked.
            let run = attempt();
            let host = host.clone();
            async move {
                let permit = match &host {
                    Some(host) => match self.git_hosts.acquire(host) {
                        Ok(permit) => Some(permit),
                        Err(wait) => {
                            let until = crate::clock::now_ms() + wait.as_millis() as i64;
                            return Err(Missed::Resting(format!(
                                "{host} is not answering (the network failed \
                                 {GIT_HOST_FAILURES} times in a row), so comfydeck leaves it \
                                 alone until {}; retry after that",
                                format_utc(until)
                            )));
                        }
                    },
                    None => None,
                };
                let result = run.await;
                match (&result, permit) {
                    (Err(e), Some(permit)) if passing_class(FailureSource::Pack, e).is_some() => {
                        permit.failure()
                    }
                    // The host answered (a refusal, a missing repository): it is up.
                    (_, Some(permit)) => permit.success(),
                    _ => {}
                }
                result.map_err(Missed::Failed)
            }
        };
        let passing = |missed: &Missed| match missed {
            Missed::Failed(e) => passing_class(FailureSource::Pack, e),
            Missed::Resting(_) => None,
        };
        let waiting = |class: FailureClass, next_ms: i64, next_try: u32| {
            steps.say(format!(
                "that failed ({}); trying again at {} (try {next_try} of {})",
                class.label(),
                format_utc(next_ms),
                self.config.network_patience.retries + 1
            ));
            std::future::ready(())
        };
        let patience = self.config.network_patience;
        match with_patience(passing, patience, waiting, guarded).await.0 {
            Ok(done) => Ok(done),
            Err(Missed::Failed(e) | Missed::Resting(e)) => Err(e),
        }
    }

    pub fn config(&self) -> &NodesConfig {
        &self.config
    }

    fn custom_nodes(&self) -> Result<PathBuf, NodesError> {
        let dir = self
            .config
            .comfyui_dir
            .as_ref()
            .ok_or(NodesError::NotSupervised)?;
        let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.clone());
        Ok(dir.join("custom_nodes"))
    }

    /// The folder of packs, for a change: comfydeck must also run ComfyUI, to restart it.
    fn custom_nodes_to_change(&self) -> Result<PathBuf, NodesError> {
        let root = self.custom_nodes()?;
        if self.status.supervisor().is_none() {
            return Err(NodesError::NotSupervised);
        }
        Ok(root)
    }

    fn pip(&self) -> Result<Pip, NodesError> {
        let dir = self
            .config
            .comfyui_dir
            .as_ref()
            .ok_or(NodesError::NotSupervised)?;
        Ok(Pip {
            python: resolve_python(dir, self.config.python.as_deref()),
            install_args: self.config.pip_args.clone(),
        })
    }

    // -- the node map --------------------------------------------------------------------------

    fn map_source(&self) -> NodeMapSource {
        NodeMapSource {
            url: self.config.map_url.clone(),
            cache: self.config.map_cache.clone(),
        }
    }

    /// Syncs the node map from `NODE_MAP_URL` (the cached copy stays when it fails). Returns
    /// how many repositories it lists.
    pub async fn sync_map(&self) -> Result<usize, NodesError> {
        let result = self.map_source().sync().await;
        self.announce_sync(result.as_ref().err());
        match result {
            Ok(map) => Ok(map.entries.len()),
            Err(message) => {
                tracing::warn!(%message);
                Err(NodesError::Failed(message))
            }
        }
    }

    /// Tells the deck (recovery) how a sync ended.
    fn announce_sync(&self, error: Option<&String>) {
        self.activity
            .events()
            .publish(crate::model::Event::Sync(crate::model::SyncOutcome {
                kind: crate::model::SyncKind::NodeMap,
                error: error.cloned(),
            }));
    }

    /// The cached copy of the map, parsed again only when its file changed.
    fn cached_map(&self) -> Option<Arc<NodeMap>> {
        let meta = std::fs::metadata(&self.config.map_cache).ok()?;
        let stamp: MapFileStamp = (meta.len(), meta.modified().ok());
        let mut parsed = self.parsed_map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((seen, map)) = parsed.as_ref() {
            if *seen == stamp {
                return Some(Arc::clone(map));
            }
        }
        let map = Arc::new(self.map_source().cached()?);
        *parsed = Some((stamp, Arc::clone(&map)));
        Some(map)
    }

    /// The cached map; synced first when there is no cached copy yet (a failed first sync is
    /// tried again after a while, not on every lookup).
    async fn map(&self) -> Arc<NodeMap> {
        if let Some(map) = self.cached_map() {
            return map;
        }
        let recently_failed = self
            .first_sync_failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|at| at.elapsed() < FIRST_SYNC_RETRY);
        if self.config.map_url.is_none() || recently_failed {
            return Arc::new(NodeMap::default());
        }
        let result = self.map_source().sync().await;
        self.announce_sync(result.as_ref().err());
        match result {
            Ok(map) => Arc::new(map),
            Err(message) => {
                tracing::warn!(%message);
                *self
                    .first_sync_failed
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = Some(std::time::Instant::now());
                Arc::new(NodeMap::default())
            }
        }
    }

    /// The pack that provides `class_type`: from the node's own `properties` (`cnr_id`,
    /// `aux_id` as `owner/repo`, `ver`) when they name one, else from the node map. `None`
    /// when neither knows it.
    pub async fn resolve(
        &self,
        class_type: &str,
        properties: Option<&Value>,
    ) -> Option<ResolvedPack> {
        let prop = |key: &str| {
            properties
                .and_then(|p| p.get(key))
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let version = prop("ver");
        let map = self.map().await;
        if let Some(aux) = prop("aux_id").filter(|a| is_owner_repo(a)) {
            let repository = format!("https://github.com/{aux}");
            if let Ok(id) = pack_id_of(&repository) {
                return Some(ResolvedPack {
                    class_type: class_type.to_string(),
                    title: map.title_of(&repository).map(str::to_string),
                    repository,
                    id,
                    version,
                    source: PackSource::NodeProperties,
                });
            }
        }
        // `comfy-core` is ComfyUI itself: nothing to install.
        if let Some(cnr) = prop("cnr_id").filter(|c| c != "comfy-core") {
            if let Some(entry) = map.by_name(&cnr) {
                if let Ok(id) = pack_id_of(&entry.repository) {
                    return Some(ResolvedPack {
                        class_type: class_type.to_string(),
                        repository: entry.repository.clone(),
                        id,
                        title: entry.title.clone(),
                        version,
                        source: PackSource::NodeProperties,
                    });
                }
            }
        }
        let entry = map.lookup(class_type)?;
        Some(ResolvedPack {
            class_type: class_type.to_string(),
            repository: entry.repository.clone(),
            id: pack_id_of(&entry.repository).ok()?,
            title: entry.title.clone(),
            version: None,
            source: PackSource::NodeMap,
        })
    }

    /// The node classes of `workflow` (UI format with its sub-graphs, or API format) that
    /// ComfyUI's `/object_info` lacks, in order of first use, each resolved to its pack when
    /// the node's `properties` or the node map know one. Frontend-only nodes (notes,
    /// reroutes, primitives) and sub-graph instances are not classes.
    pub async fn missing_packs(
        &self,
        workflow: &Value,
    ) -> Result<Vec<MissingNodeClass>, NodesError> {
        let object_info = self.comfy.object_info().await.map_err(|e| {
            NodesError::Failed(format!("cannot tell which node classes are missing: {e}"))
        })?;
        let mut seen = std::collections::BTreeSet::new();
        let mut missing = Vec::new();
        for (class_type, properties) in workflow_classes(workflow) {
            if object_info.get(&class_type).is_some() || !seen.insert(class_type.clone()) {
                continue;
            }
            let pack = self.resolve(&class_type, properties).await;
            missing.push(MissingNodeClass { class_type, pack });
        }
        Ok(missing)
    }

    // -- listing -------------------------------------------------------------------------------

    /// Every pack: enabled folders of `custom_nodes/` and those in `custom_nodes/.disabled/`,
    /// with their repository, commit, state and classes (from `/object_info`).
    pub async fn list(&self, caller: &Caller) -> Result<NodePackList, NodesError> {
        require_admin(caller, "list custom-node packs")?;
        self.list_inner().await
    }

    async fn list_inner(&self) -> Result<NodePackList, NodesError> {
        let root = self.custom_nodes()?;
        let object_info = self.comfy.object_info().await.ok();
        let log = self.log_since_start();
        let map = self.cached_map().unwrap_or_default();
        let mut packs = Vec::new();
        for (id, disabled) in pack_folders(&root) {
            let dir = if disabled {
                root.join(DISABLED_DIR).join(&id)
            } else {
                root.join(&id)
            };
            packs.push(
                self.describe(&id, &dir, disabled, object_info.as_ref(), &log, &map)
                    .await,
            );
        }
        Ok(NodePackList {
            packs,
            custom_nodes_dir: root.display().to_string(),
            comfyui_answered: object_info.is_some(),
        })
    }

    async fn describe(
        &self,
        id: &str,
        dir: &Path,
        disabled: bool,
        object_info: Option<&Value>,
        log: &[String],
        map: &NodeMap,
    ) -> NodePack {
        let repository = git::origin(dir).await;
        let commit = git::head(dir).await;
        let name = repository
            .as_deref()
            .and_then(|r| map.title_of(r))
            .unwrap_or(id)
            .to_string();
        let mut pack = NodePack {
            id: id.to_string(),
            name,
            repository,
            commit,
            state: NodePackState::Disabled,
            classes: Vec::new(),
            error: None,
        };
        if disabled {
            return pack;
        }
        pack.classes = object_info.map(|i| classes_of(i, id)).unwrap_or_default();
        pack.error = import_failure(log, id);
        pack.state = if pack.error.is_some() {
            NodePackState::FailedToImport
        } else if object_info.is_none() {
            NodePackState::Unknown
        } else if !pack.classes.is_empty() || imported(log, id) {
            NodePackState::Loaded
        } else {
            NodePackState::NotLoaded
        };
        pack
    }

    async fn pack(&self, id: &str) -> Result<NodePack, NodesError> {
        self.list_inner()
            .await?
            .packs
            .into_iter()
            .find(|p| p.id == id)
            .ok_or_else(|| NodesError::NotFound(format!("no custom-node pack {id:?}")))
    }

    // -- install -------------------------------------------------------------------------------

    /// Clones the pack into `custom_nodes/`, installs its `requirements.txt` (after checking
    /// pip's plan against the protected packages), restarts ComfyUI and checks that the pack's
    /// classes appear. Any failure after the restore point puts the folders and pip's packages
    /// back and starts ComfyUI again.
    pub async fn install(
        &self,
        caller: &Caller,
        target: InstallTarget,
        progress: Progress<'_>,
    ) -> Result<NodePackOutcome, NodesError> {
        let asked = PackOutcome {
            change: "install".into(),
            // The id the install will give it, so that a later success resolves this.
            pack: target
                .id
                .clone()
                .or_else(|| target.repo.as_deref().and_then(|r| pack_id_of(r).ok()))
                .or_else(|| target.repo.as_deref().map(redact_url))
                .unwrap_or_default(),
            repo: target.repo.clone(),
            id: target.id.clone(),
            version: target.version.clone(),
            error: None,
        };
        let result = self.install_inner(caller, target, progress, true).await;
        self.announce(asked, result.as_ref().map(|(_, undo)| undo.pack.as_str()));
        let (outcome, undo) = result?;
        self.record(
            &format!("install pack {}", undo.pack),
            &undo.pack,
            RestoreChange::Pack,
            &undo,
        )
        .await;
        Ok(outcome)
    }

    /// Tells the deck (recovery) how an install or update asked for directly ended: `Ok` with
    /// the pack's id, or the error. A refusal for want of rights is the caller's answer only.
    fn announce(&self, mut outcome: PackOutcome, result: Result<&str, &NodesError>) {
        match result {
            Ok(id) => outcome.pack = id.to_string(),
            Err(NodesError::Forbidden(_)) => return,
            Err(e) => outcome.error = Some(e.to_string()),
        }
        self.activity.events().publish(Event::Pack(outcome));
    }

    /// [`install`](Self::install) for a change that keeps its own restore point (a "make
    /// runnable"): how to undo the install is handed back instead of recorded.
    pub async fn install_undoable(
        &self,
        caller: &Caller,
        target: InstallTarget,
        progress: Progress<'_>,
    ) -> Result<(NodePackOutcome, PackUndo), NodesError> {
        self.install_inner(caller, target, progress, false).await
    }

    /// An install; `announced`: asked for directly, so that if the deck stops in the middle
    /// of it, the put-back at the next start is a failure in Recovery (a "make runnable"
    /// goes on by itself instead).
    async fn install_inner(
        &self,
        caller: &Caller,
        target: InstallTarget,
        progress: Progress<'_>,
        announced: bool,
    ) -> Result<(NodePackOutcome, PackUndo), NodesError> {
        require_admin(caller, "install custom-node packs")?;
        let root = self.custom_nodes_to_change()?;
        let _guard = self.lock.try_lock().map_err(|_| NodesError::Busy)?;
        self.put_back_interrupted_locked(&root).await;
        let disabled = root.join(DISABLED_DIR);
        let created = !exists(&disabled);
        let mut result = self
            .install_locked(&root, target, progress, announced, created)
            .await;
        self.change_finished();
        match &mut result {
            Ok((_, undo)) => undo.made_disabled_folder = created,
            // Only when empty: the folder is put back exactly as it was.
            Err(_) if created => {
                let _ = std::fs::remove_dir(&disabled);
            }
            Err(_) => {}
        }
        result
    }

    async fn install_locked(
        &self,
        root: &Path,
        target: InstallTarget,
        progress: Progress<'_>,
        announced: bool,
        made_disabled_folder: bool,
    ) -> Result<(NodePackOutcome, PackUndo), NodesError> {
        let root = root.to_path_buf();
        let mut steps = Steps::new(progress);
        git::available().await.map_err(NodesError::Failed)?;
        let repository = self.repository_of(&target).await?;
        let id = pack_id_of(&repository).map_err(NodesError::Invalid)?;
        let shown = redact_url(&repository);
        let dest = root.join(&id);
        if exists(&dest) || exists(&root.join(DISABLED_DIR).join(&id)) {
            return Err(NodesError::Conflict(format!(
                "a pack {id:?} is already installed; update, enable or remove it instead"
            )));
        }
        std::fs::create_dir_all(root.join(DISABLED_DIR))
            .map_err(|e| NodesError::Io(format!("cannot create {}: {e}", root.display())))?;
        let pip = self.pip()?;
        let point = self
            .restore_point(&root, &pip, &format!("install {id}"), &mut steps)
            .await?;
        self.change_started(&ChangeInProgress {
            point: point_path(&self.config, &point),
            asked: PackOutcome {
                change: "install".into(),
                pack: id.clone(),
                repo: target.repo.clone(),
                id: target.id.clone(),
                version: target.version.clone(),
                error: None,
            },
            from_commit: None,
            made_disabled_folder,
            announced,
        })?;

        // Cloned aside (ComfyUI skips `.disabled/`), moved into place only once it is checked.
        let staging = root.join(DISABLED_DIR).join(format!(
            "{}{}",
            staging_prefix(&id),
            hex::encode(rand::random::<[u8; 4]>())
        ));
        steps.say(format!("cloning {shown}"));
        let cloned = self
            .over_the_network(&repository, &mut steps, || async {
                // A try that failed half-way leaves part of a clone.
                let _ = std::fs::remove_dir_all(&staging);
                git::clone(&repository, &staging).await
            })
            .await;
        if let Err(e) = cloned {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(NodesError::Failed(format!("{e}. Nothing was changed.")));
        }
        let checked = async {
            if let Some(version) = target.version.as_deref().filter(|v| !v.trim().is_empty()) {
                let commit = git::checkout(&staging, version.trim())
                    .await
                    .map_err(NodesError::Invalid)?;
                steps.say(format!("checked out {version} ({})", short(&commit)));
            } else if let Some(commit) = git::head(&staging).await {
                steps.say(format!("cloned at {}", short(&commit)));
            }
            self.check_plan(&id, &staging, &pip, &point.pip_freeze, &mut steps)
                .await
        }
        .await;
        let requirements = match checked {
            Ok(requirements) => requirements,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&staging);
                return Err(e);
            }
        };
        if exists(&dest) {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(NodesError::Conflict(format!(
                "{} appeared meanwhile",
                dest.display()
            )));
        }
        std::fs::rename(&staging, &dest).map_err(|e| {
            let _ = std::fs::remove_dir_all(&staging);
            NodesError::Io(format!("cannot move the clone to {}: {e}", dest.display()))
        })?;
        steps.say(format!("placed in {}", dest.display()));
        let requirements = requirements.map(|_| dest.join("requirements.txt"));

        let applied = self.apply(&id, &dest, requirements, &pip, &mut steps).await;
        match applied {
            Ok(pack) => {
                let message = format!(
                    "Custom-node pack {id} installed from {shown} ({} classes)",
                    pack.classes.len()
                );
                self.activity.record(ActivityKind::System, message).await;
                let undo = PackUndo {
                    pack: id.clone(),
                    from_commit: None,
                    to_commit: git::head(&dest).await,
                    pip: self.pip_changes(&pip, &point.pip_freeze).await,
                    made_disabled_folder: false,
                };
                Ok((
                    NodePackOutcome {
                        pack: Some(pack),
                        steps: steps.done,
                    },
                    undo,
                ))
            }
            Err(reason) => Err(self
                .fail(
                    &format!("installing {id}"),
                    reason,
                    &point,
                    &pip,
                    Undo::RemoveFolder(&dest),
                    &mut steps,
                )
                .await),
        }
    }

    /// The repository URL to clone for an install request.
    async fn repository_of(&self, target: &InstallTarget) -> Result<String, NodesError> {
        let repo = target
            .repo
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty());
        let id = target
            .id
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty());
        match (repo, id) {
            (Some(repo), _) => check_repository(repo),
            (None, Some(id)) if is_owner_repo(id) => Ok(format!("https://github.com/{id}")),
            (None, Some(id)) => {
                let map = self.map().await;
                map.by_name(id)
                    .map(|e| e.repository.clone())
                    .ok_or_else(|| {
                        NodesError::NotFound(format!(
                            "the node map knows no pack {id:?}; give its repository URL instead"
                        ))
                    })
            }
            (None, None) => Err(NodesError::Invalid(
                "repo or id: give a repository URL or a pack id".into(),
            )),
        }
    }

    /// pip's plan for the pack's `requirements.txt`, refused when it changes a protected
    /// package. Returns the requirements file to install, if the pack has one.
    async fn check_plan(
        &self,
        id: &str,
        dir: &Path,
        pip: &Pip,
        installed: &Frozen,
        steps: &mut Steps<'_>,
    ) -> Result<Option<PathBuf>, NodesError> {
        let requirements = dir.join("requirements.txt");
        if !requirements.is_file() {
            steps.say("no requirements.txt".to_string());
            return Ok(None);
        }
        let plan = pip
            .plan(&requirements, dir)
            .await
            .map_err(|e| NodesError::Failed(format!("{e}. Nothing was changed.")))?;
        if let Some(changes) = pip::protected_changes(&plan, &self.config.protected, installed) {
            let message = format!("Custom-node pack {id} refused: it would change {changes}");
            self.activity.record(ActivityKind::Error, message).await;
            return Err(NodesError::Protected {
                pack: id.to_string(),
                changes,
                protected: self.config.protected.join(", "),
            });
        }
        if plan.is_empty() {
            steps.say("requirements already satisfied".to_string());
        } else {
            let list: Vec<String> = plan
                .iter()
                .map(|p| format!("{} {}", p.name, p.version))
                .collect();
            steps.say(format!("pip will install {}", list.join(", ")));
        }
        Ok(Some(requirements))
    }

    /// Installs the requirements, restarts ComfyUI and checks that the pack loaded.
    async fn apply(
        &self,
        id: &str,
        dir: &Path,
        requirements: Option<PathBuf>,
        pip: &Pip,
        steps: &mut Steps<'_>,
    ) -> Result<NodePack, String> {
        if let Some(requirements) = requirements {
            pip.install_requirements(&requirements, dir).await?;
            steps.say("requirements installed".to_string());
        }
        self.restart(steps).await?;
        let pack = self.loaded_pack(id).await?;
        match pack.state {
            NodePackState::FailedToImport => Err(format!(
                "ComfyUI could not import {id}:\n{}",
                pack.error.clone().unwrap_or_default()
            )),
            NodePackState::Loaded => {
                steps.say(format!(
                    "ComfyUI loaded {id}: {}",
                    if pack.classes.is_empty() {
                        "no node classes".to_string()
                    } else {
                        pack.classes.join(", ")
                    }
                ));
                Ok(pack)
            }
            other => Err(format!("after the restart {id} is {}", other.label())),
        }
    }

    /// The pack after a restart. The log is written by another task: an import failure may
    /// reach it a moment after ComfyUI answers, so a pack without classes is looked at again.
    async fn loaded_pack(&self, id: &str) -> Result<NodePack, String> {
        let mut last = None;
        for _ in 0..10 {
            let pack = self.pack(id).await.map_err(|e| e.to_string())?;
            if pack.state == NodePackState::Loaded && !pack.classes.is_empty()
                || pack.state == NodePackState::FailedToImport
            {
                return Ok(pack);
            }
            last = Some(pack);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(last.expect("the loop ran"))
    }

    // -- update, disable, enable, remove ------------------------------------------------------

    /// Checks the pack out at `version` (or its remote's newest commit), installs its
    /// requirements, restarts ComfyUI and checks it loads; a failure goes back to the old commit.
    pub async fn update(
        &self,
        caller: &Caller,
        id: &str,
        version: Option<&str>,
        progress: Progress<'_>,
    ) -> Result<NodePackOutcome, NodesError> {
        require_admin(caller, "update custom-node packs")?;
        let asked = PackOutcome {
            change: "update".into(),
            pack: id.to_string(),
            repo: None,
            id: Some(id.to_string()),
            version: version.map(str::to_string),
            error: None,
        };
        let result = self
            .update_locked(id, version, progress, asked.clone())
            .await;
        self.announce(asked, result.as_ref().map(|_| id));
        result
    }

    async fn update_locked(
        &self,
        id: &str,
        version: Option<&str>,
        progress: Progress<'_>,
        asked: PackOutcome,
    ) -> Result<NodePackOutcome, NodesError> {
        let root = self.custom_nodes_to_change()?;
        let _guard = self.lock.try_lock().map_err(|_| NodesError::Busy)?;
        self.put_back_interrupted_locked(&root).await;
        let result = self
            .update_checked_out(&root, id, version, progress, asked)
            .await;
        self.change_finished();
        result
    }

    async fn update_checked_out(
        &self,
        root: &Path,
        id: &str,
        version: Option<&str>,
        progress: Progress<'_>,
        asked: PackOutcome,
    ) -> Result<NodePackOutcome, NodesError> {
        let root = root.to_path_buf();
        let mut steps = Steps::new(progress);
        let dir = pack_dir(&root, id, false)?;
        let old = git::head(&dir).await.ok_or_else(|| {
            NodesError::Invalid(format!(
                "{id} is not a git checkout, so it cannot be updated"
            ))
        })?;
        let pip = self.pip()?;
        let point = self
            .restore_point(&root, &pip, &format!("update {id}"), &mut steps)
            .await?;
        self.change_started(&ChangeInProgress {
            point: point_path(&self.config, &point),
            asked,
            from_commit: Some(old.clone()),
            made_disabled_folder: false,
            announced: true,
        })?;
        steps.say("fetching".to_string());
        let remote = git::origin(&dir).await.unwrap_or_default();
        let fetched = self
            .over_the_network(&remote, &mut steps, || git::fetch_newest(&dir))
            .await;
        let rev = match version.map(str::trim).filter(|v| !v.is_empty()) {
            // A pinned commit may be in the checkout already.
            Some(v) => v.to_string(),
            None => fetched.map_err(NodesError::Failed)?,
        };
        let new = git::checkout(&dir, &rev)
            .await
            .map_err(NodesError::Invalid)?;
        if new == old {
            let _ = std::fs::remove_file(point_path(&self.config, &point));
            steps.say(format!("{id} is already at {}", short(&new)));
            return Ok(NodePackOutcome {
                pack: Some(self.pack(id).await?),
                steps: steps.done,
            });
        }
        steps.say(format!("checked out {} (was {})", short(&new), short(&old)));
        let requirements = match self
            .check_plan(id, &dir, &pip, &point.pip_freeze, &mut steps)
            .await
        {
            Ok(r) => r,
            Err(e) => {
                let _ = git::checkout(&dir, &old).await;
                return Err(e);
            }
        };
        match self.apply(id, &dir, requirements, &pip, &mut steps).await {
            Ok(pack) => {
                self.activity
                    .record(
                        ActivityKind::System,
                        format!("Custom-node pack {id} updated to {}", short(&new)),
                    )
                    .await;
                let undo = PackUndo {
                    pack: id.to_string(),
                    from_commit: Some(old.clone()),
                    to_commit: Some(new.clone()),
                    pip: self.pip_changes(&pip, &point.pip_freeze).await,
                    made_disabled_folder: false,
                };
                self.record(
                    &format!("update pack {id} to {} (was {})", short(&new), short(&old)),
                    &format!("{id}@{new}"),
                    RestoreChange::PackUpdated,
                    &undo,
                )
                .await;
                Ok(NodePackOutcome {
                    pack: Some(pack),
                    steps: steps.done,
                })
            }
            Err(reason) => Err(self
                .fail(
                    &format!("updating {id}"),
                    reason,
                    &point,
                    &pip,
                    Undo::Checkout(&dir, &old),
                    &mut steps,
                )
                .await),
        }
    }

    /// Moves the pack into `custom_nodes/.disabled/` and restarts ComfyUI.
    pub async fn disable(
        &self,
        caller: &Caller,
        id: &str,
        progress: Progress<'_>,
    ) -> Result<NodePackOutcome, NodesError> {
        require_admin(caller, "disable custom-node packs")?;
        self.move_pack(id, true, progress).await
    }

    /// Moves the pack back from `custom_nodes/.disabled/` and restarts ComfyUI.
    pub async fn enable(
        &self,
        caller: &Caller,
        id: &str,
        progress: Progress<'_>,
    ) -> Result<NodePackOutcome, NodesError> {
        require_admin(caller, "enable custom-node packs")?;
        self.move_pack(id, false, progress).await
    }

    async fn move_pack(
        &self,
        id: &str,
        disable: bool,
        progress: Progress<'_>,
    ) -> Result<NodePackOutcome, NodesError> {
        let root = self.custom_nodes_to_change()?;
        let _guard = self.lock.try_lock().map_err(|_| NodesError::Busy)?;
        let mut steps = Steps::new(progress);
        let from = pack_dir(&root, id, !disable)?;
        let to = if disable {
            root.join(DISABLED_DIR).join(id)
        } else {
            root.join(id)
        };
        if exists(&to) {
            return Err(NodesError::Conflict(format!(
                "{} already exists; remove one of the two first",
                to.display()
            )));
        }
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| NodesError::Io(format!("cannot create {}: {e}", parent.display())))?;
        }
        std::fs::rename(&from, &to).map_err(|e| {
            NodesError::Io(format!(
                "cannot move {} to {}: {e}",
                from.display(),
                to.display()
            ))
        })?;
        steps.say(format!("moved to {}", to.display()));
        let verb = if disable { "disabled" } else { "enabled" };
        self.restart(&mut steps)
            .await
            .map_err(|e| NodesError::Failed(format!("{id} was {verb}, but {e}")))?;
        let pack = if disable {
            self.pack(id).await?
        } else {
            self.loaded_pack(id).await.map_err(NodesError::Failed)?
        };
        self.activity
            .record(
                ActivityKind::System,
                format!("Custom-node pack {id} {verb}"),
            )
            .await;
        Ok(NodePackOutcome {
            pack: Some(pack),
            steps: steps.done,
        })
    }

    /// Deletes the pack's folder (enabled or disabled); restarts ComfyUI when it was loaded.
    /// Its Python packages stay (other packs may need them).
    pub async fn remove(
        &self,
        caller: &Caller,
        id: &str,
        progress: Progress<'_>,
    ) -> Result<NodePackOutcome, NodesError> {
        require_admin(caller, "remove custom-node packs")?;
        let root = self.custom_nodes_to_change()?;
        let _guard = self.lock.try_lock().map_err(|_| NodesError::Busy)?;
        let mut steps = Steps::new(progress);
        let (dir, enabled) = match pack_dir(&root, id, false) {
            Ok(dir) => (dir, true),
            Err(NodesError::NotFound(_)) => (pack_dir(&root, id, true)?, false),
            Err(e) => return Err(e),
        };
        remove_entry(&dir)
            .map_err(|e| NodesError::Io(format!("cannot remove {}: {e}", dir.display())))?;
        steps.say(format!("removed {}", dir.display()));
        if enabled {
            self.restart(&mut steps)
                .await
                .map_err(|e| NodesError::Failed(format!("{id} was removed, but {e}")))?;
        }
        self.activity
            .record(
                ActivityKind::System,
                format!("Custom-node pack {id} removed"),
            )
            .await;
        Ok(NodePackOutcome {
            pack: None,
            steps: steps.done,
        })
    }

    /// Undoes one pack change of a restore point (administrators only): the pack an install
    /// added is removed, an updated one checked out at its old commit again; the Python
    /// packages the change altered are put back (not those changed again since); ComfyUI is
    /// restarted. A pack at another commit than the change left is kept. Says what it did.
    pub async fn undo(
        &self,
        caller: &Caller,
        undo: &PackUndo,
        progress: Progress<'_>,
    ) -> Result<String, NodesError> {
        require_admin(caller, "roll back custom-node packs")?;
        let root = self.custom_nodes_to_change()?;
        let _guard = self.lock.lock().await;
        let mut steps = Steps::new(progress);
        let id = undo.pack.as_str();
        let dir = match pack_dir(&root, id, false) {
            Ok(dir) => Some(dir),
            Err(NodesError::NotFound(_)) => pack_dir(&root, id, true).ok(),
            Err(e) => return Err(e),
        };
        let head = match &dir {
            Some(dir) => git::head(dir).await,
            None => None,
        };
        let at_old = undo.from_commit.is_some() && head == undo.from_commit;
        if dir.is_some() && undo.to_commit.is_some() && head != undo.to_commit && !at_old {
            return Err(NodesError::Conflict(format!(
                "pack {id} was changed since{}, so it was kept",
                head.as_deref()
                    .map(|h| format!(" (it is at {} now)", short(h)))
                    .unwrap_or_default()
            )));
        }
        let mut done = Vec::new();
        match (&undo.from_commit, &dir) {
            (None, None) | (Some(_), None) => done.push(format!("pack {id} was gone already")),
            (None, Some(dir)) => {
                remove_entry(dir)
                    .map_err(|e| NodesError::Io(format!("cannot remove {}: {e}", dir.display())))?;
                if undo.made_disabled_folder {
                    let _ = std::fs::remove_dir(root.join(DISABLED_DIR));
                }
                done.push(format!("removed pack {id}"));
            }
            (Some(from), Some(_)) if at_old => {
                done.push(format!("pack {id} was at {} already", short(from)))
            }
            (Some(from), Some(dir)) => {
                git::checkout(dir, from).await.map_err(NodesError::Failed)?;
                done.push(format!("checked pack {id} out at {} again", short(from)));
            }
        }
        steps.say(done[0].clone());
        let pip = self.pip()?;
        match pip.undo(&undo.pip).await {
            Ok(said) => done.extend(said.into_iter().map(|s| format!("pip: {s}"))),
            Err(e) => done.push(format!("pip's packages not put back: {e}")),
        }
        match self.restart(&mut steps).await {
            Err(e) => done.push(e),
            Ok(()) if undo.from_commit.is_some() && dir.is_some() => {
                match self.loaded_pack(id).await {
                    Ok(pack) if pack.state == NodePackState::Loaded => {
                        done.push(format!("ComfyUI loaded {id} again"))
                    }
                    Ok(pack) => {
                        done.push(format!("after the restart {id} is {}", pack.state.label()))
                    }
                    Err(e) => done.push(e),
                }
            }
            Ok(()) => done.push("ComfyUI is running again".into()),
        }
        let said = done.join("; ");
        self.activity
            .record(
                ActivityKind::System,
                format!("Custom-node pack {id} rolled back: {said}"),
            )
            .await;
        Ok(said)
    }

    // -- restore points, restarts, failures ----------------------------------------------------

    /// What the change did to pip's packages since `before`; nothing when pip cannot say (the
    /// rollback then leaves the packages alone).
    async fn pip_changes(&self, pip: &Pip, before: &Frozen) -> pip::PipChanges {
        match pip.freeze().await {
            Ok(after) => pip::changes(before, &after),
            Err(e) => {
                tracing::warn!(error = %e, "pip freeze after a pack change failed");
                pip::PipChanges::new()
            }
        }
    }

    /// Records a pack change that succeeded as a restore point of its own.
    async fn record(&self, subject: &str, target: &str, change: RestoreChange, undo: &PackUndo) {
        let point = PointKey {
            kind: "pack",
            target,
            subject,
        };
        if let Err(e) = self
            .restore_points
            .record_change(&point, &undo.pack, change, Some(&undo.to_json()))
            .await
        {
            tracing::warn!(error = %e, pack = %undo.pack, "a restore point was not recorded");
        }
    }

    async fn restore_point(
        &self,
        root: &Path,
        pip: &Pip,
        operation: &str,
        steps: &mut Steps<'_>,
    ) -> Result<RestorePoint, NodesError> {
        let mut packs = BTreeMap::new();
        for (id, disabled) in pack_folders(root) {
            let (key, dir) = if disabled {
                (
                    format!("{DISABLED_DIR}/{id}"),
                    root.join(DISABLED_DIR).join(&id),
                )
            } else {
                (id.clone(), root.join(&id))
            };
            packs.insert(key, git::head(&dir).await);
        }
        let pip_freeze = pip.freeze().await.map_err(|e| {
            NodesError::Failed(format!(
                "cannot record a restore point ({e}); nothing was changed"
            ))
        })?;
        let point = RestorePoint {
            at_ms: crate::clock::now_ms(),
            operation: operation.to_string(),
            packs,
            pip_freeze,
        };
        let path = point_path(&self.config, &point);
        let json = serde_json::to_vec_pretty(&point).expect("a restore point serialises");
        crate::workspace::write_atomic(&path, &json).map_err(|e| {
            NodesError::Io(format!(
                "cannot write the restore point {}: {e}; nothing was changed",
                path.display()
            ))
        })?;
        prune_restore_points(&self.config.restore_points);
        steps.say(format!(
            "restore point recorded: {} packs, {} Python packages ({})",
            point.packs.len(),
            point.pip_freeze.len(),
            path.display()
        ));
        Ok(point)
    }

    fn change_file(&self) -> PathBuf {
        self.config
            .restore_points
            .with_file_name("change-in-progress.json")
    }

    /// Notes `change` as under way (its restore point is written): nothing changes before.
    fn change_started(&self, change: &ChangeInProgress) -> Result<(), NodesError> {
        let json = serde_json::to_vec_pretty(change).expect("a change serialises");
        crate::workspace::write_atomic(&self.change_file(), &json).map_err(|e| {
            NodesError::Io(format!(
                "cannot note the change under way: {e}; nothing was changed"
            ))
        })
    }

    /// The change ended (done, or put back): nothing to put back at the next start.
    fn change_finished(&self) {
        let _ = std::fs::remove_file(self.change_file());
    }

    /// Puts the pod back as it was before a pack change the deck stopped in the middle of
    /// (found at a start): the half clone goes, an installed folder is removed or an updated
    /// one checked out at its old commit, pip's packages are restored, ComfyUI restarted. An
    /// install or update asked for directly is then a failure in Recovery (Retry asks for it
    /// again). Returns what was said, `None` when nothing was under way.
    pub async fn put_back_interrupted(&self) -> Option<String> {
        let root = self.custom_nodes_to_change().ok()?;
        let _guard = self.lock.lock().await;
        self.put_back_interrupted_locked(&root).await
    }

    async fn put_back_interrupted_locked(&self, root: &Path) -> Option<String> {
        let file = self.change_file();
        let change: ChangeInProgress = match std::fs::read(&file) {
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(change) => change,
                Err(e) => {
                    tracing::warn!(error = %e, file = %file.display(), "an unreadable change record is dropped");
                    self.change_finished();
                    return None;
                }
            },
            Err(_) => return None,
        };
        let id = change.asked.pack.clone();
        let what = match change.asked.change.as_str() {
            "update" => format!("updating {id}"),
            _ => format!("installing {id}"),
        };
        let mut steps = Steps::new(&|_: &str| {});
        // A clone the stop cut short, in `.disabled/` where ComfyUI does not look.
        let staging = staging_prefix(&id);
        if let Ok(entries) = std::fs::read_dir(root.join(DISABLED_DIR)) {
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().starts_with(&staging) {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        let point: Option<RestorePoint> = std::fs::read(&change.point)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok());
        let dir = root.join(&id);
        let message = match (point, self.pip()) {
            (Some(point), Ok(pip)) => {
                let undo = match change.from_commit.as_deref() {
                    Some(commit) if exists(&dir) => Undo::Checkout(&dir, commit),
                    None if exists(&dir) && !point.packs.contains_key(&id) => {
                        Undo::RemoveFolder(&dir)
                    }
                    _ => Undo::Nothing,
                };
                let reason = "comfydeck stopped in the middle of it".to_string();
                self.fail(&what, reason, &point, &pip, undo, &mut steps)
                    .await
                    .to_string()
            }
            _ => format!(
                "{what} failed: comfydeck stopped in the middle of it, and its restore point \
                 {} cannot be read; check custom_nodes/{id} and pip's packages by hand",
                change.point.display()
            ),
        };
        if change.made_disabled_folder {
            // Only when empty: the folder is put back exactly as it was.
            let _ = std::fs::remove_dir(root.join(DISABLED_DIR));
        }
        self.change_finished();
        if change.announced {
            let mut outcome = change.asked;
            outcome.error = Some(message.clone());
            self.activity.events().publish(Event::Pack(outcome));
        }
        Some(message)
    }

    /// Restarts the supervised ComfyUI and waits until it answers again.
    async fn restart(&self, steps: &mut Steps<'_>) -> Result<(), String> {
        let supervisor = self
            .status
            .supervisor()
            .ok_or_else(|| "comfydeck does not run ComfyUI, so it cannot restart it".to_string())?;
        steps.say("restarting ComfyUI".to_string());
        let mut transitions = supervisor.transitions();
        supervisor.restart().await;
        let wait = async {
            let mut started = None;
            loop {
                match transitions.recv().await {
                    Ok(ComfyProcessState::Starting { pid }) => started = Some(pid),
                    Ok(ComfyProcessState::Ready { pid, .. }) if started == Some(pid) => {
                        return Ok(());
                    }
                    Ok(ComfyProcessState::Crashed { exit, last_lines }) if started.is_some() => {
                        let last: Vec<&String> = last_lines
                            .iter()
                            .rev()
                            .take(TRACEBACK_LINES)
                            .rev()
                            .collect();
                        return Err(format!(
                            "ComfyUI stopped while starting ({exit}):\n{}",
                            last.iter()
                                .map(|s| s.as_str())
                                .collect::<Vec<_>>()
                                .join("\n")
                        ));
                    }
                    Ok(ComfyProcessState::Failed { error }) => {
                        return Err(format!("ComfyUI cannot start: {error}"));
                    }
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                        return Err("the ComfyUI supervisor stopped".to_string());
                    }
                }
            }
        };
        match tokio::time::timeout(self.config.ready_timeout, wait).await {
            Ok(Ok(())) => {
                steps.say("ComfyUI is answering again".to_string());
                Ok(())
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(format!(
                "ComfyUI did not answer within {} s of its restart",
                self.config.ready_timeout.as_secs()
            )),
        }
    }

    /// Puts the restore point back after `reason`, restarts ComfyUI, and answers with what
    /// happened.
    async fn fail(
        &self,
        what: &str,
        reason: String,
        point: &RestorePoint,
        pip: &Pip,
        undo: Undo<'_>,
        steps: &mut Steps<'_>,
    ) -> NodesError {
        steps.say(format!("{what} failed; putting the restore point back"));
        let mut restored = Vec::new();
        let mut problems = Vec::new();
        match undo {
            Undo::RemoveFolder(dir) => match remove_entry(dir) {
                Ok(()) => restored.push(format!("removed {}", dir.display())),
                Err(e) => problems.push(format!("cannot remove {}: {e}", dir.display())),
            },
            Undo::Checkout(dir, commit) => match git::checkout(dir, commit).await {
                Ok(_) => restored.push(format!(
                    "checked {} out at {} again",
                    dir.display(),
                    short(commit)
                )),
                Err(e) => problems.push(e),
            },
            Undo::Nothing => {}
        }
        match pip.restore(&point.pip_freeze).await {
            Ok(done) if done.is_empty() => restored.push("pip's packages were unchanged".into()),
            Ok(done) => restored.push(format!("pip: {}", done.join("; "))),
            Err(e) => problems.push(e),
        }
        match self.restart(steps).await {
            Ok(()) => restored.push("ComfyUI is running again".into()),
            Err(e) => problems.push(e),
        }
        let message = format!(
            "{what} failed: {reason}\nPut back: {}.{}",
            restored.join("; "),
            if problems.is_empty() {
                String::new()
            } else {
                format!(" Could not put back: {}.", problems.join("; "))
            }
        );
        tracing::warn!(%message, "custom-node pack");
        self.activity
            .record(ActivityKind::Error, first_line(&message).to_string())
            .await;
        if problems.is_empty() {
            NodesError::Failed(message)
        } else {
            NodesError::RestoreFailed(message)
        }
    }

    /// ComfyUI's output since the current process started: the end of its log file (lines
    /// after the supervisor's last "starting ComfyUI"), else the supervisor's in-memory tail.
    fn log_since_start(&self) -> Vec<String> {
        let lines = read_tail(&self.config.comfyui_log).unwrap_or_else(|| {
            self.status
                .supervisor()
                .map(|s| s.state().log_tail)
                .unwrap_or_default()
        });
        let start = lines
            .iter()
            .rposition(|l| l.contains("[comfydeck] starting ComfyUI"))
            .map(|i| i + 1)
            .unwrap_or(0);
        lines[start..].to_vec()
    }
}

/// Collects steps and hands each to the progress callback.
struct Steps<'a> {
    done: Vec<String>,
    progress: Progress<'a>,
}

impl<'a> Steps<'a> {
    fn new(progress: Progress<'a>) -> Self {
        Steps {
            done: Vec::new(),
            progress,
        }
    }
    fn say(&mut self, step: String) {
        (self.progress)(&step);
        self.done.push(step);
    }
}

/// Every node's class and `properties` in a workflow: UI format (`nodes`, and the nodes of
/// `definitions.subgraphs`) or API format (`{id: {class_type}}`).
fn workflow_classes(workflow: &Value) -> Vec<(String, Option<&Value>)> {
    const FRONTEND_ONLY: &[&str] = &["Note", "MarkdownNote", "PrimitiveNode", "Reroute"];
    let mut out = Vec::new();
    if let Some(nodes) = workflow.get("nodes").and_then(Value::as_array) {
        let subgraphs: Vec<&Value> = workflow
            .pointer("/definitions/subgraphs")
            .and_then(Value::as_array)
            .map(|s| s.iter().collect())
            .unwrap_or_default();
        let subgraph_ids: Vec<&str> = subgraphs
            .iter()
            .filter_map(|s| s.get("id").and_then(Value::as_str))
            .collect();
        let inner = subgraphs
            .iter()
            .filter_map(|s| s.get("nodes").and_then(Value::as_array))
            .flatten();
        for node in nodes.iter().chain(inner) {
            let Some(class) = node.get("type").and_then(Value::as_str) else {
                continue;
            };
            if FRONTEND_ONLY.contains(&class)
                || subgraph_ids.contains(&class)
                || class.starts_with("workflow>")
                || class.starts_with("workflow/")
            {
                continue;
            }
            out.push((class.to_string(), node.get("properties")));
        }
    } else if let Some(prompt) = workflow.as_object() {
        for node in prompt.values() {
            if let Some(class) = node.get("class_type").and_then(Value::as_str) {
                out.push((class.to_string(), None));
            }
        }
    }
    out
}

fn require_admin(caller: &Caller, what: &'static str) -> Result<(), NodesError> {
    if caller.is_admin() {
        Ok(())
    } else {
        Err(NodesError::Forbidden(what))
    }
}

fn is_owner_repo(s: &str) -> bool {
    let mut parts = s.split('/');
    let (Some(owner), Some(repo), None) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let ok = |p: &str| {
        !p.is_empty()
            && !p.starts_with('.')
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    ok(owner) && ok(repo)
}

/// A repository URL that git may clone: `https://`, `http://` or `file://` (or `owner/repo`
/// for GitHub). Options (`-…`) and other transports are refused.
fn check_repository(repo: &str) -> Result<String, NodesError> {
    if is_owner_repo(repo) {
        return Ok(format!("https://github.com/{repo}"));
    }
    let url = url::Url::parse(repo).map_err(|_| {
        NodesError::Invalid(format!(
            "repo: {:?} is not a repository URL",
            redact_url(repo)
        ))
    })?;
    if !matches!(url.scheme(), "https" | "http" | "file") {
        return Err(NodesError::Invalid(format!(
            "repo: only https://, http:// and file:// repositories are cloned, not {}://",
            url.scheme()
        )));
    }
    Ok(repo.to_string())
}

/// The folder a repository is installed as: its last path segment without `.git`.
fn pack_id_of(repository: &str) -> Result<String, String> {
    let name = repository
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .trim_end_matches(".git");
    check_pack_id(name)?;
    Ok(name.to_string())
}

/// How the clones of pack `id` made aside in `.disabled/` begin (a random end follows).
fn staging_prefix(id: &str) -> String {
    format!(".staging-{id}-")
}

fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

/// The folder of pack `id` (enabled, or in `.disabled/`), checked against `root`: a safe id,
/// present, and not a link that leads out of `custom_nodes/`.
fn pack_dir(root: &Path, id: &str, disabled: bool) -> Result<PathBuf, NodesError> {
    check_pack_id(id).map_err(|e| NodesError::Invalid(format!("id: {e}")))?;
    let dir = if disabled {
        root.join(DISABLED_DIR).join(id)
    } else {
        root.join(id)
    };
    let meta = std::fs::symlink_metadata(&dir).map_err(|_| {
        NodesError::NotFound(format!(
            "no {}custom-node pack {id:?}",
            if disabled { "disabled " } else { "" }
        ))
    })?;
    if meta.file_type().is_symlink() {
        let target = std::fs::canonicalize(&dir).ok();
        let root = std::fs::canonicalize(root).ok();
        match (target, root) {
            (Some(t), Some(r)) if t.starts_with(&r) => {}
            _ => {
                return Err(NodesError::Invalid(format!(
                    "{} is a link that leads out of custom_nodes; manage it by hand",
                    dir.display()
                )))
            }
        }
    } else if !meta.is_dir() {
        return Err(NodesError::NotFound(format!("no custom-node pack {id:?}")));
    }
    Ok(dir)
}

/// Removes a folder, or only the link when it is one (never what it points to).
fn remove_entry(path: &Path) -> std::io::Result<()> {
    let meta = std::fs::symlink_metadata(path)?;
    if meta.file_type().is_symlink() || !meta.is_dir() {
        std::fs::remove_file(path)
    } else {
        std::fs::remove_dir_all(path)
    }
}

/// The pack folders: `(id, disabled)`, enabled ones first, each sorted by name. Python
/// caches, hidden entries, files and legacy `*.disabled` folders are not packs here.
fn pack_folders(root: &Path) -> Vec<(String, bool)> {
    let read = |dir: &Path| -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n != "__pycache__" && check_pack_id(n).is_ok())
            .collect();
        names.sort();
        names
    };
    let mut out: Vec<(String, bool)> = read(root).into_iter().map(|n| (n, false)).collect();
    out.extend(
        read(&root.join(DISABLED_DIR))
            .into_iter()
            .map(|n| (n, true)),
    );
    out
}

/// The classes `/object_info` says come from `custom_nodes/<id>` (its `python_module`).
fn classes_of(object_info: &Value, id: &str) -> Vec<String> {
    let module = format!("custom_nodes.{id}");
    let mut classes: Vec<String> = object_info
        .as_object()
        .map(|o| {
            o.iter()
                .filter(|(_, info)| {
                    info.get("python_module")
                        .and_then(Value::as_str)
                        .is_some_and(|m| m == module || m.starts_with(&format!("{module}.")))
                })
                .map(|(name, _)| name.clone())
                .collect()
        })
        .unwrap_or_default();
    classes.sort();
    classes
}

/// Whether the log names `custom_nodes/<id>` as a module that ComfyUI could not import; then
/// the traceback's last lines and that line.
fn import_failure(log: &[String], id: &str) -> Option<String> {
    let needle = format!("custom_nodes/{id}");
    let at = log.iter().rposition(|l| {
        l.contains("Cannot import")
            && l.contains("module for custom nodes")
            && (l.contains(&format!("{needle} ")) || l.contains(&format!("{needle}:")))
    })?;
    // The traceback ends at the "Cannot import" line; it starts at "Traceback" (or we take
    // the lines just before it).
    let begin = log[..at]
        .iter()
        .rposition(|l| l.starts_with("Traceback"))
        .unwrap_or(at.saturating_sub(TRACEBACK_LINES));
    let lines = &log[begin..=at];
    let keep = lines.len().saturating_sub(TRACEBACK_LINES);
    Some(tail(&lines[keep..].join("\n"), 3000))
}

/// Whether the log's import-times list names the pack (it loaded, maybe with no classes).
fn imported(log: &[String], id: &str) -> bool {
    let needle = format!("custom_nodes/{id}");
    log.iter().any(|l| {
        l.contains("seconds") && l.trim_end().ends_with(&needle) && !l.contains("IMPORT FAILED")
    })
}

fn read_tail(path: &Path) -> Option<Vec<String>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    let from = len.saturating_sub(LOG_WINDOW_BYTES);
    file.seek(SeekFrom::Start(from)).ok()?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).ok()?;
    let text = String::from_utf8_lossy(&bytes);
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    if from > 0 && !lines.is_empty() {
        lines.remove(0);
    }
    Some(lines)
}

/// Keeps the newest [`KEPT_RESTORE_POINTS`] restore points (their names start with the time).
fn prune_restore_points(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut files: Vec<(i64, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let at: i64 = name.split('-').next()?.parse().ok()?;
            name.ends_with(".json").then(|| (at, e.path()))
        })
        .collect();
    files.sort();
    let excess = files.len().saturating_sub(KEPT_RESTORE_POINTS);
    for (_, path) in files.into_iter().take(excess) {
        let _ = std::fs::remove_file(path);
    }
}

fn point_path(config: &NodesConfig, point: &RestorePoint) -> PathBuf {
    let name: String = point
        .operation
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    config
        .restore_points
        .join(format!("{}-{name}.json", point.at_ms))
}

fn short(commit: &str) -> &str {
    commit.get(..10).unwrap_or(commit)
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repositories_and_ids() {
        assert_eq!(
            check_repository("kijai/ComfyUI-KJNodes").unwrap(),
            "https://github.com/kijai/ComfyUI-KJNodes"
        );
        assert!(check_repository("-uhoh").is_err());
        assert!(check_repository("ssh://host/x").is_err());
        assert!(check_repository("ext::sh -c touch% /tmp/pwned").is_err());
        assert_eq!(
            pack_id_of("https://github.com/a/Pack.git/").unwrap(),
            "Pack"
        );
        assert!(pack_id_of("https://github.com/a/..").is_err());
        assert!(pack_id_of("file:///").is_err());
    }

    #[test]
    fn import_failures_are_found_in_the_log() {
        let log: Vec<String> = [
            "Traceback (most recent call last):",
            "  File \"/c/custom_nodes/broken/__init__.py\", line 1, in <module>",
            "ImportError: boom",
            "Cannot import /c/custom_nodes/broken module for custom nodes: boom",
            "Import times for custom nodes:",
            "   0.0 seconds: /c/custom_nodes/good",
            "   0.0 seconds (IMPORT FAILED): /c/custom_nodes/broken",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let error = import_failure(&log, "broken").unwrap();
        assert!(error.starts_with("Traceback"), "{error}");
        assert!(error.contains("ImportError: boom"), "{error}");
        assert!(import_failure(&log, "good").is_none());
        assert!(import_failure(&log, "brok").is_none());
        assert!(imported(&log, "good"));
        assert!(!imported(&log, "broken"));
    }

    #[test]
    fn workflow_classes_skip_frontend_nodes_and_subgraph_instances() {
        let ui = serde_json::json!({
            "nodes": [
                {"type": "KSampler"},
                {"type": "Note"},
                {"type": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"},
                {"type": "ImageResizeKJ", "properties": {"cnr_id": "comfyui-kjnodes", "ver": "1.1"}}
            ],
            "definitions": {"subgraphs": [
                {"id": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", "nodes": [{"type": "InnerNode"}]}
            ]}
        });
        let classes: Vec<String> = workflow_classes(&ui).into_iter().map(|(c, _)| c).collect();
        assert_eq!(classes, vec!["KSampler", "ImageResizeKJ", "InnerNode"]);
        assert!(workflow_classes(&ui)[1].1.is_some());
        let api = serde_json::json!({"3": {"class_type": "KSampler", "inputs": {}}});
        assert_eq!(workflow_classes(&api)[0].0, "KSampler");
    }

    #[test]
    fn paths_stay_inside_custom_nodes() {
        let root = tempfile_dir();
        let outside = tempfile_dir();
        std::fs::create_dir_all(root.join("ok")).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("escape")).unwrap();
        assert!(pack_dir(&root, "ok", false).is_ok());
        assert!(matches!(
            pack_dir(&root, "escape", false),
            Err(NodesError::Invalid(_))
        ));
        assert!(matches!(
            pack_dir(&root, "../x", false),
            Err(NodesError::Invalid(_))
        ));
        assert!(matches!(
            pack_dir(&root, "missing", false),
            Err(NodesError::NotFound(_))
        ));
        let _ = std::fs::remove_dir_all(&root);
        let _ = std::fs::remove_dir_all(&outside);
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "comfydeck-nodes-{}-{}",
            std::process::id(),
            hex::encode(rand::random::<[u8; 6]>())
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
