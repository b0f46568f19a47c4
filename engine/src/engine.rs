//! [`Engine`]: starts the deck once (workspace, database, services), runs the background jobs,
//! shuts them down, and hands out one handle per domain. It does no domain work itself: every
//! operation the UI, the API or the CLI offers is a method of one of the services.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::activity::ActivityLog;
use crate::auth::{AuthError, AuthService};
use crate::background::spawn_until;
use crate::bridge::Bridge;
use crate::catalog::CatalogService;
use crate::comfy::supervisor::{Supervisor, SupervisorConfig};
use crate::comfy::ComfyClient;
use crate::config::Config;
use crate::download::fetch::{Credentials, Fetcher};
use crate::download::manager::{DownloadConfig, DownloadManager};
use crate::events::EventBus;
use crate::gallery::GalleryService;
use crate::generate::history::GenerationStore;
use crate::generate::Generator;
use crate::jobs::{JobService, QueueStore, RedisQueue, SqliteQueue};
use crate::metrics::{MetricsConfig, MetricsSampler};
use crate::model::*;
use crate::nodes::{NodePackService, NodesConfig};
use crate::operations::store::OperationStore;
use crate::operations::OperationService;
use crate::recovery::store::RecoveryStore;
use crate::recovery::RecoveryService;
use crate::settings::SettingsService;
use crate::status::{StatusService, COMFY_INTERVAL, METRICS_INTERVAL};
use crate::store::{Store, StoreError};
use crate::workflows::WorkflowService;
use crate::workspace::{self, WorkspaceError, WorkspaceLayout, WorkspaceLock};

pub use crate::status::VERSION;

/// The first wait before a start-up sync that failed for a passing reason runs again
/// (doubling after each try: 1, 2, 4, 8, 16 minutes).
const SYNC_RETRY_FIRST_WAIT: Duration = Duration::from_secs(60);
const RETENTION_INTERVAL: Duration = Duration::from_secs(3600);

/// Why the deck could not start.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Workspace(#[from] WorkspaceError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("{0}")]
    Queue(String),
}

impl crate::error::Classify for EngineError {
    fn kind(&self) -> ErrorKind {
        match self {
            EngineError::Workspace(e) => e.kind(),
            EngineError::Store(e) => e.kind(),
            EngineError::Auth(e) => e.kind(),
            EngineError::Queue(_) => ErrorKind::Unavailable,
        }
    }
}

/// What start-up did, for the binary to report.
#[derive(Debug)]
pub struct StartupReport {
    pub phases: Vec<(&'static str, Duration)>,
    /// Set only on the start that generated it: the binary prints it once.
    pub generated_password: Option<String>,
}

pub struct Engine {
    config: Config,
    layout: WorkspaceLayout,
    store: Store,
    events: EventBus,
    activity: ActivityLog,
    settings: Arc<SettingsService>,
    auth: Arc<AuthService>,
    status: Arc<StatusService>,
    catalog: Arc<CatalogService>,
    downloads: Arc<DownloadManager>,
    bridge: Arc<Bridge>,
    workflows: Arc<WorkflowService>,
    generator: Arc<Generator>,
    gallery: Arc<GalleryService>,
    jobs: Arc<JobService>,
    nodes: Arc<NodePackService>,
    operations: Arc<OperationService>,
    recovery: Arc<RecoveryService>,
    /// Cancelled by [`Engine::shutdown`]: ends the background loops, which hold service
    /// handles (and so the workspace lock) while they run.
    stopping: CancellationToken,
    _lock: WorkspaceLock,
}

impl Engine {
    /// Prepares the workspace, opens the database and starts the services. Each phase is timed
    /// and logged. Fails with a message that names the problem when the workspace is unusable
    /// or already served by another process.
    pub async fn start(mut config: Config) -> Result<(Arc<Engine>, StartupReport), EngineError> {
        // ComfyUI resolves a relative `base_path` against the yaml's own folder, and the process
        // may change directory: from here on every workspace path is absolute.
        config.workspace_root = std::path::absolute(&config.workspace_root).map_err(|source| {
            WorkspaceError::CannotCreate {
                path: config.workspace_root.clone(),
                source,
            }
        })?;
        let layout = config.layout();
        let mut phases = Vec::new();
        let mut phase = |name: &'static str, t: Instant| {
            let took = t.elapsed();
            tracing::info!(
                phase = name,
                ms = format!("{:.1}", took.as_secs_f64() * 1000.0),
                "start-up phase done"
            );
            phases.push((name, took));
        };

        let t = Instant::now();
        workspace::check_writable(layout.root())?;
        phase("workspace writable", t);

        let t = Instant::now();
        workspace::create_tree(&layout)?;
        let lock = WorkspaceLock::acquire(&layout)?;
        phase("directory tree and lock", t);

        let t = Instant::now();
        let rewritten = workspace::write_extra_model_paths(&layout)?;
        tracing::debug!(rewritten, path = %layout.extra_model_paths_yaml().display(), "extra_model_paths.yaml");
        phase("extra_model_paths.yaml", t);

        let t = Instant::now();
        let store = Store::open(&layout.database()).await?;
        phase("database", t);

        let t = Instant::now();
        let events = EventBus::new();
        let activity = ActivityLog::new(store.clone(), events.clone());
        let fetcher = Fetcher::with_tuning(Credentials::default(), config.fetch_tuning.clone());
        let settings = SettingsService::load(
            &config,
            store.clone(),
            events.clone(),
            activity.clone(),
            fetcher.clone(),
        )
        .await?;
        let comfy_client_id = stable_client_id(&store).await?;
        let (auth, generated_password) =
            AuthService::start(&config, store.clone(), activity.clone()).await?;
        phase("settings and auth", t);

        let t = Instant::now();
        let catalog = Arc::new(CatalogService::load(&config, &layout, activity.clone()));
        let downloads = DownloadManager::new(
            store.clone(),
            events.clone(),
            fetcher,
            catalog.handle(),
            layout.models(),
            DownloadConfig::from_config(&config),
        );
        downloads.keep_restore_points_in(layout.data().join("restore"));
        phase("preset catalog and downloads", t);

        let comfy = ComfyClient::new(&config.comfyui_url);
        let bridge = Bridge::new(
            comfy.clone(),
            comfy_client_id,
            events.clone(),
            store.clone(),
        );
        let gallery = Arc::new(
            GalleryService::open(
                &config,
                store.clone(),
                events.clone(),
                activity.clone(),
                comfy.clone(),
            )
            .await?,
        );
        let metrics_config =
            MetricsConfig::for_workspace(layout.root().to_path_buf(), config.volume_quota_bytes);
        let status = Arc::new(StatusService::new(
            MetricsSampler::new(metrics_config),
            comfy.clone(),
            store.clone(),
            activity.clone(),
            layout.root().to_path_buf(),
        ));
        let nodes = Arc::new(NodePackService::new(
            NodesConfig::from_config(&config, &layout),
            Arc::clone(&status),
            Arc::clone(&downloads),
            comfy.clone(),
            activity.clone(),
        ));
        let workflows = Arc::new(WorkflowService::new(
            &layout,
            comfy.clone(),
            Arc::clone(&bridge),
            Arc::clone(&catalog),
            activity.clone(),
        ));
        let t = Instant::now();
        let queue = match &config.queue_url {
            Some(url) => QueueStore::Redis(RedisQueue::connect(url).await.map_err(|e| {
                EngineError::Queue(format!(
                    "the job queue at {} cannot be reached: {e}",
                    crate::secret::redact_url(url)
                ))
            })?),
            None => QueueStore::Sqlite(SqliteQueue::new(store.clone())),
        };
        let jobs = Arc::new(JobService::new(
            queue,
            store.clone(),
            Arc::clone(&workflows),
            events.clone(),
            config.job_limits.clone(),
            Arc::clone(&gallery),
            Arc::clone(&bridge),
        ));
        phase("job queue", t);
        let generator = Arc::new(Generator::new(
            GenerationStore::new(store.pool().clone()),
            events.clone(),
            Arc::clone(&bridge),
            Arc::clone(&workflows),
            Arc::clone(&gallery),
            Arc::clone(&catalog),
            Arc::clone(&jobs),
            comfy,
            config.llm(),
        ));
        let stopping = CancellationToken::new();
        let operations = Arc::new(OperationService::new(
            OperationStore::new(store.pool().clone()),
            events.clone(),
            Arc::clone(&workflows),
            Arc::clone(&nodes),
            Arc::clone(&downloads),
            Arc::clone(&bridge),
            stopping.clone(),
        ));
        let recovery = Arc::new(RecoveryService::new(
            RecoveryStore::new(store.pool().clone()),
            events.clone(),
            Arc::clone(&downloads),
            Arc::clone(&operations),
            Arc::clone(&jobs),
            Arc::clone(&status),
            crate::recovery::ActionServices {
                catalog: Arc::clone(&catalog),
                nodes: Arc::clone(&nodes),
                workflows: Arc::clone(&workflows),
            },
        ));
        let engine = Arc::new(Engine {
            config,
            layout,
            store,
            events,
            activity,
            settings: Arc::new(settings),
            auth: Arc::new(auth),
            status,
            catalog,
            downloads,
            bridge,
            workflows,
            generator,
            gallery,
            jobs,
            nodes,
            operations,
            recovery,
            stopping,
            _lock: lock,
        });
        Ok((
            engine,
            StartupReport {
                phases,
                generated_password,
            },
        ))
    }

    /// Starts the background jobs: a supervised ComfyUI, the bridge, the gallery index, the
    /// download queue, start-up presets, the node map's sync (with a supervised ComfyUI),
    /// metrics and ComfyUI sampling (only while someone watches) and the hourly clean-up of old
    /// activity and expired sessions.
    pub fn spawn_background_jobs(&self) {
        // Every failure on the bus goes to the recovery store: subscribed before anything runs.
        self.recovery.spawn_listener(&self.stopping);
        self.start_comfyui();
        // Subscribes to run events before the bridge can publish any.
        crate::generate::service::spawn_tracker(&self.generator, &self.stopping);
        // Listens for the socket's connections before the bridge can make the first one.
        self.gallery
            .follow_reported_output_dir(&self.bridge, &self.stopping);
        self.bridge.start();
        self.gallery.start();
        self.jobs.spawn_background(&self.stopping);
        // Embedded: the local ComfyUI is the queue's worker. A team deck coordinates only.
        if matches!(self.jobs.queue(), QueueStore::Sqlite(_)) {
            crate::jobs::local::spawn(
                Arc::clone(&self.jobs),
                Arc::clone(&self.bridge),
                self.events.clone(),
                self.bridge.client().clone(),
                &self.stopping,
            );
        }
        tokio::spawn(Arc::clone(&self.downloads).run());

        let (downloads, activity) = (Arc::clone(&self.downloads), self.activity.clone());
        let presets = self.config.startup_presets.clone();
        spawn_until(&self.stopping, async move {
            install_startup_presets(&downloads, &activity, presets).await
        });
        // A failed sync keeps the last good copy; one that failed for a passing reason is
        // tried again by itself a few times (said in Activity), then waits in Recovery.
        if self.config.preset_registry_url.is_some() {
            let (catalog, activity) = (Arc::clone(&self.catalog), self.activity.clone());
            spawn_until(&self.stopping, async move {
                crate::recovery::retry_transient(
                    "The preset registry sync",
                    SYNC_RETRY_FIRST_WAIT,
                    &activity,
                    || catalog.sync(),
                )
                .await;
            });
        }
        if self.config.comfyui_dir.is_some() && self.config.node_map_url.is_some() {
            let (nodes, activity) = (Arc::clone(&self.nodes), self.activity.clone());
            spawn_until(&self.stopping, async move {
                crate::recovery::retry_transient(
                    "The node map sync",
                    SYNC_RETRY_FIRST_WAIT,
                    &activity,
                    || nodes.sync_map(),
                )
                .await;
            });
        }
        // A pack change the deck stopped in the middle of is put back first; then "make
        // runnable" operations a restart interrupted go on where they were (a pack step of
        // theirs installs again on the pod as it was).
        let (nodes, operations) = (Arc::clone(&self.nodes), Arc::clone(&self.operations));
        spawn_until(&self.stopping, async move {
            if let Some(said) = nodes.put_back_interrupted().await {
                tracing::warn!(%said, "a custom-node change was interrupted");
            }
            operations.resume_all().await
        });
        let (events, status) = (self.events.clone(), Arc::clone(&self.status));
        spawn_until(&self.stopping, async move {
            loop {
                events.until_watched().await;
                let stats = status.sample_stats().await;
                events.publish(Event::SystemStats(stats));
                tokio::time::sleep(METRICS_INTERVAL).await;
            }
        });
        let (events, status) = (self.events.clone(), Arc::clone(&self.status));
        spawn_until(&self.stopping, async move {
            loop {
                events.until_watched().await;
                let comfy = status.refresh_comfy_status().await;
                events.publish(Event::ComfyStatus(comfy));
                tokio::time::sleep(COMFY_INTERVAL).await;
            }
        });
        let (settings, auth) = (Arc::clone(&self.settings), Arc::clone(&self.auth));
        let (downloads, activity) = (Arc::clone(&self.downloads), self.activity.clone());
        let part_days = self.config.recovery_retention_days;
        spawn_until(&self.stopping, async move {
            loop {
                match downloads
                    .clean_partial_files(part_days, crate::clock::now_ms())
                    .await
                {
                    Ok(cleaned) if cleaned.files > 0 => {
                        activity
                            .record(
                                ActivityKind::Download,
                                format!(
                                    "Removed {} partial download{} nobody will finish ({}), \
                                     untouched for {part_days} days",
                                    cleaned.files,
                                    if cleaned.files == 1 { "" } else { "s" },
                                    crate::model::format_bytes(cleaned.bytes)
                                ),
                            )
                            .await;
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "old partial downloads not cleaned"),
                }
                if let Err(e) = settings.apply_retention().await {
                    tracing::warn!(error = %e, "activity retention job failed");
                }
                if let Err(e) = auth.prune_sessions().await {
                    tracing::warn!(error = %e, "expired sessions not pruned");
                }
                tokio::time::sleep(RETENTION_INTERVAL).await;
            }
        });
    }

    /// With `COMFYUI_DIR`: starts ComfyUI and relays its state changes to live viewers and
    /// the activity log. Part of [`Engine::spawn_background_jobs`]; the `nodes` command calls
    /// it alone (it needs ComfyUI, not the deck's other loops).
    pub fn start_comfyui(&self) {
        let Some(dir) = &self.config.comfyui_dir else {
            return;
        };
        let mut config = SupervisorConfig::new(dir.clone(), &self.layout);
        config.port = self.config.comfyui_port;
        config.python = self.config.comfyui_python.clone();
        config.extra_args = self.config.comfyui_args.clone();
        // The gallery indexes the same folder ComfyUI writes to.
        config.output_dir = self.config.output_dir();
        let supervisor = Supervisor::start(config);
        if !self.status.supervise(Arc::clone(&supervisor)) {
            return;
        }
        let mut transitions = supervisor.transitions();
        let (status, events, activity) = (
            Arc::clone(&self.status),
            self.events.clone(),
            self.activity.clone(),
        );
        spawn_until(&self.stopping, async move {
            use crate::model::ComfyProcessState as S;
            use tokio::sync::broadcast::error::RecvError;
            loop {
                let state = match transitions.recv().await {
                    Ok(state) => state,
                    Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => return,
                };
                let note = match &state {
                    S::Ready { .. } => Some((ActivityKind::System, "ComfyUI is ready".to_string())),
                    S::Crashed { exit, .. } => Some((
                        ActivityKind::Error,
                        format!("ComfyUI stopped unexpectedly ({exit})"),
                    )),
                    S::Failed { error } => Some((
                        ActivityKind::Error,
                        format!("ComfyUI cannot start: {error}"),
                    )),
                    _ => None,
                };
                if let Some((kind, message)) = note {
                    activity.record(kind, message).await;
                }
                events.publish(Event::ComfyProcess(status.comfy_process().await));
            }
        });
        // The log tail changes far more often than the state: relayed at most twice a second.
        let mut updates = supervisor.subscribe();
        let events = self.events.clone();
        spawn_until(&self.stopping, async move {
            while updates.changed().await.is_ok() {
                let process = updates.borrow_and_update().clone();
                events.publish(Event::ComfyProcess(process));
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
    }

    /// Ends the background loops, stops transfers so their parts are flushed (they resume at
    /// the next start), and a supervised ComfyUI (SIGTERM, then SIGKILL after a timeout).
    pub async fn shutdown(&self) {
        // What failed up to now is in the recovery store before the listener stops.
        self.recovery.flush().await;
        self.stopping.cancel();
        self.bridge.stop();
        self.gallery.stop();
        let supervisor = self.status.supervisor().map(|s| s.shutdown());
        let downloads = self.downloads.shutdown();
        match supervisor {
            Some(supervisor) => {
                tokio::join!(supervisor, downloads);
            }
            None => downloads.await,
        }
    }

    // -- the handles ---------------------------------------------------------------------------

    pub fn config(&self) -> &Config {
        &self.config
    }
    pub fn layout(&self) -> &WorkspaceLayout {
        &self.layout
    }
    /// The live event bus (`/ws` subscribes; viewers register with `watch`).
    pub fn events(&self) -> &EventBus {
        &self.events
    }
    /// The database itself, for tests that arrange or inspect rows. Services never share it
    /// with callers: the web layer and the CLI go through the handles below.
    pub fn store(&self) -> &Store {
        &self.store
    }
    pub fn activity(&self) -> &ActivityLog {
        &self.activity
    }
    pub fn settings(&self) -> &Arc<SettingsService> {
        &self.settings
    }
    pub fn auth(&self) -> &Arc<AuthService> {
        &self.auth
    }
    pub fn status(&self) -> &Arc<StatusService> {
        &self.status
    }
    pub fn catalog(&self) -> &Arc<CatalogService> {
        &self.catalog
    }
    pub fn downloads(&self) -> &Arc<DownloadManager> {
        &self.downloads
    }
    /// ComfyUI runs: submitting, queue, history, previews.
    pub fn bridge(&self) -> &Arc<Bridge> {
        &self.bridge
    }
    /// Custom-node packs of the supervised ComfyUI.
    pub fn recovery(&self) -> &Arc<RecoveryService> {
        &self.recovery
    }

    pub fn operations(&self) -> &Arc<OperationService> {
        &self.operations
    }

    pub fn nodes(&self) -> &Arc<NodePackService> {
        &self.nodes
    }
    pub fn workflows(&self) -> &Arc<WorkflowService> {
        &self.workflows
    }
    pub fn generator(&self) -> &Arc<Generator> {
        &self.generator
    }
    pub fn jobs(&self) -> &Arc<JobService> {
        &self.jobs
    }
    pub fn gallery(&self) -> &Arc<GalleryService> {
        &self.gallery
    }
}

/// `PRESET_DOWNLOAD`, `IMAGE_PRESET_DOWNLOAD`, `AUDIO_PRESET_DOWNLOAD`: queued at start-up.
/// Installed presets are skipped; unknown ids and refusals are logged and recorded.
async fn install_startup_presets(
    downloads: &Arc<DownloadManager>,
    activity: &ActivityLog,
    presets: Vec<String>,
) {
    for id in presets {
        match downloads.install_preset(&id).await {
            Ok(view) => {
                tracing::info!(preset = %view.id, state = ?view.state, "start-up preset")
            }
            Err(e) => {
                let message = format!("Start-up preset {id}: {e}");
                tracing::warn!(%message);
                activity.record(ActivityKind::Error, message).await;
            }
        }
    }
}

/// The download view of a workspace that another process serves: `presets list` and
/// `presets status` read through it while a server runs (SQLite in WAL mode lets readers in).
/// Nothing here runs transfers or writes files.
/// The accounts of a workspace, for the `users` commands: they work while a server holds it
/// (both write through SQLite; the server sees a change at the next request).
pub async fn open_users(config: &Config) -> Result<crate::auth::UsersService, EngineError> {
    let database = config.layout().database();
    if let Some(folder) = database.parent() {
        // A first `users add` before the first start: the server creates the rest later.
        std::fs::create_dir_all(folder).map_err(|e| {
            EngineError::Workspace(crate::workspace::WorkspaceError::CreateDir {
                path: folder.to_path_buf(),
                source: e,
            })
        })?;
    }
    let store = Store::open(&database).await?;
    let activity = ActivityLog::new(store.clone(), EventBus::new());
    Ok(crate::auth::UsersService::new(
        store,
        activity,
        config.access_password.is_some(),
        crate::workflows::WorkflowLibrary::new(&config.layout()),
    ))
}

pub async fn open_read_only(config: &Config) -> Result<Arc<DownloadManager>, EngineError> {
    let layout = config.layout();
    let store = Store::open(&layout.database()).await?;
    let credentials = crate::settings::saved_credentials(config, &store).await?;
    let (_, catalog) = crate::catalog::load_handle(config, &layout);
    Ok(DownloadManager::new(
        store,
        EventBus::new(),
        Fetcher::new(credentials),
        catalog,
        layout.models(),
        DownloadConfig::from_config(config),
    ))
}

/// The `clientId` this deck uses with ComfyUI: made once, kept in the database, so prompts
/// and their events keep matching across restarts.
async fn stable_client_id(store: &Store) -> Result<String, EngineError> {
    const KEY: &str = "comfy.client_id";
    if let Some(id) = store.setting(KEY).await? {
        return Ok(id);
    }
    let id = format!("comfydeck-{}", hex::encode(rand::random::<[u8; 8]>()));
    store
        .write_settings(&[(KEY, Some(id.clone()))], crate::clock::now_ms())
        .await?;
    Ok(id)
}
