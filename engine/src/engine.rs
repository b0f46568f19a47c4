//! [`Engine`]: owns the services, is started once, and is handed to handlers and server
//! functions. Every operation the UI or API offers is a method here.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use crate::auth::{self, AuthError, LoginLimiter, SESSION_IDLE_LIFETIME};
use crate::catalog::{Catalog, CatalogSources};
use crate::comfy::ComfyClient;
use crate::config::Config;
use crate::download::fetch::{Credentials, Fetcher, ScopedToken};
use crate::download::manager::{
    CatalogHandle, DownloadConfig, DownloadError, DownloadManager, RemoveReport,
};
use crate::events::{EventBus, WatchGuard};
use crate::metrics::{MetricsConfig, MetricsSampler};
use crate::model::*;
use crate::secret::Secret;
use crate::store::{Store, StoreError};
use crate::workspace::{self, WorkspaceError, WorkspaceLayout, WorkspaceLock};

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

const KEY_THEME: &str = "theme";
const KEY_HF_TOKEN: &str = "hf_token";
const KEY_CIVITAI_TOKEN: &str = "civitai_token";
const KEY_RETENTION_DAYS: &str = "activity_retention_days";
const KEY_GENERATED_PASSWORD_HASH: &str = "auth.generated_password_hash";

/// Longest accepted token (HF and CivitAI tokens are ~40 characters).
const MAX_TOKEN_LEN: usize = 512;
/// How often metrics are sampled while someone watches.
pub const METRICS_INTERVAL: Duration = Duration::from_secs(2);
const COMFY_INTERVAL: Duration = Duration::from_secs(5);
const RETENTION_INTERVAL: Duration = Duration::from_secs(3600);
/// Writing `last_seen` on every request would turn reads into writes; once a minute is enough.
const SESSION_TOUCH_INTERVAL_MS: i64 = 60_000;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Workspace(#[from] WorkspaceError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The request itself is wrong; the message says which field and why.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Download(#[from] DownloadError),
    #[error(transparent)]
    Bridge(#[from] crate::bridge::BridgeError),
    #[error(transparent)]
    Workflow(#[from] crate::workflows::WorkflowError),
    #[error(transparent)]
    Gallery(#[from] crate::gallery::GalleryError),
    #[error(transparent)]
    Generate(#[from] crate::generate::GenerateError),
}

/// Why a login was refused.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("too many failed attempts; try again in {} s", .0.as_secs())]
    RateLimited(Duration),
    #[error("wrong password")]
    WrongPassword,
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// Settings as held in memory; the secrets stay wrapped so `Debug` never prints them.
#[derive(Clone, Debug)]
struct Settings {
    theme: Theme,
    hf_token: Option<Secret>,
    civitai_token: Option<Secret>,
    activity_retention_days: u32,
}

impl Settings {
    fn view(&self) -> SettingsView {
        SettingsView {
            theme: self.theme,
            hf_token_masked: self.hf_token.as_ref().map(|t| mask_secret(t.expose())),
            civitai_token_masked: self.civitai_token.as_ref().map(|t| mask_secret(t.expose())),
            activity_retention_days: self.activity_retention_days,
        }
    }
}

/// How logins are checked.
enum PasswordCheck {
    None,
    /// `ACCESS_PASSWORD`: compared by SHA-256 digest in constant time.
    Given(Secret),
    /// Generated at first start; only its argon2 hash is stored.
    GeneratedHash(String),
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
    settings: RwLock<Settings>,
    /// Serialises settings writes so the cache and the database never disagree.
    settings_write: tokio::sync::Mutex<()>,
    sampler: Arc<Mutex<MetricsSampler>>,
    latest_stats: RwLock<Option<SystemStats>>,
    comfy: ComfyClient,
    latest_comfy: RwLock<Option<ComfyStatus>>,
    auth_mode: AuthMode,
    password: PasswordCheck,
    limiter: LoginLimiter,
    started: Instant,
    catalog: CatalogHandle,
    catalog_sources: CatalogSources,
    /// Whether the last registry sync failure was already reported (reported once, not on
    /// every request).
    registry_failure_reported: std::sync::atomic::AtomicBool,
    downloads: Arc<DownloadManager>,
    /// Set by [`Engine::spawn_background_jobs`] when `COMFYUI_DIR` is configured.
    supervisor: std::sync::OnceLock<Arc<crate::comfy::supervisor::Supervisor>>,
    bridge: Arc<crate::bridge::Bridge>,
    /// Replaced when an external ComfyUI reports another output folder.
    gallery: RwLock<Arc<crate::gallery::Gallery>>,
    /// Cancelled by [`Engine::shutdown`]: ends the background loops, which hold the engine
    /// (and so the workspace lock) while they run.
    stopping: tokio_util::sync::CancellationToken,
    _lock: WorkspaceLock,
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Engine {
    /// Prepares the workspace, opens the database and loads settings. Each phase is timed and
    /// logged. Fails with a message that names the problem when the workspace is unusable or
    /// already served by another process.
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
        let settings = load_settings(&store).await?;
        let comfy_client_id = stable_client_id(&store).await?;
        let (auth_mode, password, generated_password) = resolve_auth(&config, &store).await?;
        phase("settings and auth", t);

        let t = Instant::now();
        let catalog_sources = catalog_sources(&layout);
        let catalog = Catalog::load(
            &catalog_sources,
            remote_registry(&config, &catalog_sources).as_ref(),
        );
        for problem in &catalog.problems {
            tracing::warn!(%problem, "preset catalog");
        }
        let catalog: CatalogHandle = Arc::new(RwLock::new(Arc::new(catalog)));
        let events = EventBus::new();
        let downloads = DownloadManager::new(
            store.clone(),
            events.clone(),
            Fetcher::new(credentials(&config, &settings)),
            Arc::clone(&catalog),
            layout.models(),
            DownloadConfig::from_config(&config),
        );
        phase("preset catalog and downloads", t);

        let bridge = crate::bridge::Bridge::new(
            ComfyClient::new(&config.comfyui_url),
            comfy_client_id,
            events.clone(),
        );
        let output_dir = initial_output_dir(&config, &store).await?;
        let gallery = crate::gallery::Gallery::new(
            store.clone(),
            events.clone(),
            output_dir,
            layout.thumbnails(),
        );
        let metrics_config =
            MetricsConfig::for_workspace(layout.root().to_path_buf(), config.volume_quota_bytes);
        let engine = Arc::new(Engine {
            comfy: ComfyClient::new(&config.comfyui_url),
            sampler: Arc::new(Mutex::new(MetricsSampler::new(metrics_config))),
            config,
            layout,
            store,
            events,
            settings: RwLock::new(settings),
            settings_write: tokio::sync::Mutex::new(()),
            latest_stats: RwLock::new(None),
            latest_comfy: RwLock::new(None),
            auth_mode,
            password,
            limiter: LoginLimiter::default(),
            started: Instant::now(),
            catalog,
            catalog_sources,
            registry_failure_reported: std::sync::atomic::AtomicBool::new(false),
            downloads,
            supervisor: std::sync::OnceLock::new(),
            bridge,
            gallery: RwLock::new(gallery),
            stopping: tokio_util::sync::CancellationToken::new(),
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

    /// Starts the background jobs: metrics and ComfyUI sampling (only while someone watches)
    /// and the hourly clean-up of old activity and expired sessions.
    pub fn spawn_background_jobs(self: &Arc<Self>) {
        self.start_comfyui();
        // Subscribes to run events before the bridge can publish any.
        crate::generate::spawn_tracker(self);
        // Listens for the socket's connections before the bridge can make the first one.
        self.follow_reported_output_dir();
        self.bridge.start();
        self.gallery().start();
        tokio::spawn(Arc::clone(&self.downloads).run());
        self.spawn_until_shutdown(|engine| async move { engine.install_startup_presets().await });
        if self.config.preset_registry_url.is_some() {
            self.spawn_until_shutdown(|engine| async move {
                let _ = engine.sync_catalog().await;
            });
        }
        self.spawn_until_shutdown(|engine| async move {
            loop {
                engine.events.until_watched().await;
                let stats = engine.sample_stats().await;
                engine.events.publish(Event::SystemStats(stats));
                tokio::time::sleep(METRICS_INTERVAL).await;
            }
        });
        self.spawn_until_shutdown(|engine| async move {
            loop {
                engine.events.until_watched().await;
                let status = engine.refresh_comfy_status().await;
                engine.events.publish(Event::ComfyStatus(status));
                tokio::time::sleep(COMFY_INTERVAL).await;
            }
        });
        self.spawn_until_shutdown(|engine| async move {
            loop {
                if let Err(e) = engine.apply_retention().await {
                    tracing::warn!(error = %e, "activity retention job failed");
                }
                tokio::time::sleep(RETENTION_INTERVAL).await;
            }
        });
    }

    /// Runs `job` (given its own handle on the engine) until it ends or the engine shuts down.
    pub(crate) fn spawn_until_shutdown<F>(self: &Arc<Self>, job: impl FnOnce(Arc<Engine>) -> F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let stopping = self.stopping.clone();
        let job = job(Arc::clone(self));
        tokio::spawn(async move {
            tokio::select! {
                _ = stopping.cancelled() => {}
                _ = job => {}
            }
        });
    }

    pub fn config(&self) -> &Config {
        &self.config
    }
    pub fn layout(&self) -> &WorkspaceLayout {
        &self.layout
    }
    pub fn events(&self) -> &EventBus {
        &self.events
    }
    pub fn store(&self) -> &Store {
        &self.store
    }
    pub fn auth_mode(&self) -> AuthMode {
        self.auth_mode
    }

    /// Registers a live viewer: sampling runs while at least one guard is alive.
    pub fn watch(&self) -> WatchGuard {
        self.events.watch()
    }

    // -- status --------------------------------------------------------------------------------

    /// A fresh sample (or the last one if it is younger than the sampling interval).
    pub async fn system_stats(&self) -> SystemStats {
        if let Some(stats) = self.read_latest_stats() {
            if now_ms() - stats.sampled_at_ms < METRICS_INTERVAL.as_millis() as i64 {
                return stats;
            }
        }
        self.sample_stats().await
    }

    fn read_latest_stats(&self) -> Option<SystemStats> {
        self.latest_stats
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    async fn sample_stats(&self) -> SystemStats {
        let sampler = Arc::clone(&self.sampler);
        // Reading /proc, cgroups and NVML blocks; keep it off the async workers.
        let stats = tokio::task::spawn_blocking(move || {
            sampler
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .sample(now_ms())
        })
        .await
        .expect("metrics sampling does not panic");
        *self.latest_stats.write().unwrap_or_else(|p| p.into_inner()) = Some(stats.clone());
        stats
    }

    /// ComfyUI's status, cached for a few seconds.
    pub async fn comfy_status(&self) -> ComfyStatus {
        let cached = self
            .latest_comfy
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(status) = cached {
            if now_ms() - status.checked_at_ms < COMFY_INTERVAL.as_millis() as i64 {
                return status;
            }
        }
        self.refresh_comfy_status().await
    }

    async fn refresh_comfy_status(&self) -> ComfyStatus {
        let status = self.comfy.status(now_ms()).await;
        *self.latest_comfy.write().unwrap_or_else(|p| p.into_inner()) = Some(status.clone());
        status
    }

    pub async fn home_status(&self) -> Result<HomeStatus, EngineError> {
        let (stats, comfy, recent) = tokio::join!(
            self.system_stats(),
            self.comfy_status(),
            self.store.activity_page(None, 1, 8)
        );
        Ok(HomeStatus {
            stats,
            comfy_process: self.comfy_process().await,
            comfy,
            recent_activity: recent?.entries,
        })
    }

    pub async fn health(&self) -> HealthReport {
        let database = match self.store.ping().await {
            Ok(()) => ComponentHealth {
                ok: true,
                detail: "SQLite answers".into(),
            },
            Err(e) => ComponentHealth {
                ok: false,
                detail: e.to_string(),
            },
        };
        let root = self.layout.root().to_path_buf();
        let workspace =
            match tokio::task::spawn_blocking(move || workspace::check_writable(&root)).await {
                Ok(Ok(())) => ComponentHealth {
                    ok: true,
                    detail: format!("{} is writable", self.layout.root().display()),
                },
                Ok(Err(e)) => ComponentHealth {
                    ok: false,
                    detail: e.to_string(),
                },
                Err(e) => ComponentHealth {
                    ok: false,
                    detail: format!("check failed: {e}"),
                },
            };
        let comfyui = self.comfy_status().await;
        let ok = database.ok && workspace.ok;
        HealthReport {
            status: if ok { "ok" } else { "degraded" }.into(),
            version: VERSION.into(),
            uptime_s: self.started.elapsed().as_secs(),
            database,
            workspace,
            comfyui,
        }
    }

    // -- activity ------------------------------------------------------------------------------

    /// Records what happened and pushes it to live viewers. Never fails the caller: a lost
    /// activity line is logged, not turned into a failed user action.
    pub async fn record(&self, kind: ActivityKind, message: impl Into<String>) {
        crate::events::record_activity(&self.store, &self.events, kind, message).await
    }

    pub async fn activity(
        &self,
        kind: Option<ActivityKind>,
        page: u32,
        per_page: u32,
    ) -> Result<ActivityPage, EngineError> {
        Ok(self.store.activity_page(kind, page, per_page).await?)
    }

    pub async fn clear_activity(&self) -> Result<u64, EngineError> {
        let removed = self.store.clear_activity().await?;
        // Not recorded as activity: a cleared log should read as empty.
        tracing::info!(removed, "activity log cleared");
        Ok(removed)
    }

    /// Deletes activity older than the retention setting and expired sessions.
    pub async fn apply_retention(&self) -> Result<u64, EngineError> {
        let days = self.settings_view().activity_retention_days;
        let cutoff = now_ms() - i64::from(days) * 86_400_000;
        let removed = self.store.prune_activity(cutoff).await?;
        self.store.prune_sessions(now_ms()).await?;
        if removed > 0 {
            tracing::info!(removed, days, "old activity removed");
        }
        Ok(removed)
    }

    // -- settings ------------------------------------------------------------------------------

    pub fn settings_view(&self) -> SettingsView {
        self.settings
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .view()
    }

    /// The theme, for the server-rendered page (read from memory: no I/O per page).
    pub fn theme(&self) -> Theme {
        self.settings
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .theme
    }

    /// The saved Hugging Face token, for code that talks to Hugging Face only.
    pub fn hf_token(&self) -> Option<Secret> {
        self.settings
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .hf_token
            .clone()
    }

    pub fn civitai_token(&self) -> Option<Secret> {
        self.settings
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .civitai_token
            .clone()
    }

    /// Validates and applies a change in one transaction, then updates the in-memory copy and
    /// tells live viewers. Activity lines say what changed, with tokens masked.
    pub async fn update_settings(&self, patch: SettingsPatch) -> Result<SettingsView, EngineError> {
        let hf_token = patch
            .hf_token
            .as_deref()
            .map(|t| validate_token("Hugging Face token", t))
            .transpose()?;
        let civitai_token = patch
            .civitai_token
            .as_deref()
            .map(|t| validate_token("CivitAI token", t))
            .transpose()?;
        if let Some(days) = patch.activity_retention_days {
            if !(1..=MAX_ACTIVITY_RETENTION_DAYS).contains(&days) {
                return Err(EngineError::Invalid(format!(
                    "activity retention must be between 1 and {MAX_ACTIVITY_RETENTION_DAYS} days, got {days}"
                )));
            }
        }

        let write_guard = self.settings_write.lock().await;
        let mut next = self
            .settings
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut changes: Vec<(&str, Option<String>)> = Vec::new();
        let mut notes = Vec::new();
        if let Some(theme) = patch.theme {
            if theme != next.theme {
                next.theme = theme;
                changes.push((KEY_THEME, Some(theme.as_str().to_string())));
                notes.push(format!("theme set to {}", theme.as_str()));
            }
        }
        for (key, label, new_value, slot) in [
            (
                KEY_HF_TOKEN,
                "Hugging Face token",
                hf_token,
                &mut next.hf_token,
            ),
            (
                KEY_CIVITAI_TOKEN,
                "CivitAI token",
                civitai_token,
                &mut next.civitai_token,
            ),
        ] {
            let Some(new_value) = new_value else { continue };
            match new_value {
                Some(token) => {
                    notes.push(format!("{label} saved ({})", mask_secret(&token)));
                    changes.push((key, Some(token.clone())));
                    *slot = Some(Secret::new(token));
                }
                None if slot.is_some() => {
                    notes.push(format!("{label} removed"));
                    changes.push((key, None));
                    *slot = None;
                }
                None => {}
            }
        }
        if let Some(days) = patch.activity_retention_days {
            if days != next.activity_retention_days {
                next.activity_retention_days = days;
                changes.push((KEY_RETENTION_DAYS, Some(days.to_string())));
                notes.push(format!("activity retention set to {days} days"));
            }
        }
        if changes.is_empty() {
            return Ok(next.view());
        }
        self.store.write_settings(&changes, now_ms()).await?;
        let view = next.view();
        self.downloads
            .fetcher()
            .set_credentials(credentials(&self.config, &next));
        *self.settings.write().unwrap_or_else(|p| p.into_inner()) = next;
        drop(write_guard);

        self.record(ActivityKind::Settings, capitalize(&notes.join(", ")))
            .await;
        self.events.publish(Event::Settings(view.clone()));
        if patch.activity_retention_days.is_some() {
            if let Err(e) = self.apply_retention().await {
                tracing::warn!(error = %e, "retention after a settings change failed");
            }
        }
        Ok(view)
    }

    /// Asks Hugging Face who the saved token belongs to.
    pub async fn check_hf_token(&self) -> HfTokenCheck {
        let Some(token) = self.hf_token() else {
            return HfTokenCheck {
                valid: false,
                user: None,
                message: "No Hugging Face token is saved yet".into(),
            };
        };
        let check = crate::hf::check_token(&self.config.hf_base_url, token.expose()).await;
        let kind = if check.valid {
            ActivityKind::Settings
        } else {
            ActivityKind::Error
        };
        self.record(kind, format!("Hugging Face token check: {}", check.message))
            .await;
        check
    }

    // -- auth ----------------------------------------------------------------------------------

    /// Checks a password for `client` (an IP address) and opens a session: returns the
    /// session token for the cookie.
    pub async fn login(&self, password: &str, client: &str) -> Result<String, LoginError> {
        if let Err(wait) = self.limiter.begin_attempt(client, Instant::now()) {
            return Err(LoginError::RateLimited(wait));
        }
        let ok = match &self.password {
            PasswordCheck::None => true,
            PasswordCheck::Given(expected) => {
                let a = Sha256::digest(password.as_bytes());
                let b = Sha256::digest(expected.expose().as_bytes());
                constant_time_eq(&a, &b)
            }
            PasswordCheck::GeneratedHash(hash) => {
                let (password, hash) = (password.to_string(), hash.clone());
                tokio::task::spawn_blocking(move || auth::verify_password(&password, &hash))
                    .await
                    .expect("password verification does not panic")
                    .map_err(EngineError::from)?
            }
        };
        if !ok {
            self.record(ActivityKind::Auth, format!("Failed login from {client}"))
                .await;
            return Err(LoginError::WrongPassword);
        }
        self.limiter.record_success(client);
        let token = auth::new_session_token();
        let now = now_ms();
        self.store
            .create_session(
                &auth::hash_token(&token),
                now,
                now + SESSION_IDLE_LIFETIME.as_millis() as i64,
            )
            .await
            .map_err(EngineError::from)?;
        self.record(ActivityKind::Auth, format!("Login from {client}"))
            .await;
        Ok(token)
    }

    /// Whether a session cookie's token opens a live session; slides its expiry.
    pub async fn session_is_valid(&self, token: &str) -> Result<bool, EngineError> {
        let hash = auth::hash_token(token);
        let now = now_ms();
        let Some(session) = self.store.live_session(&hash, now).await? else {
            return Ok(false);
        };
        if now - session.last_seen_ms > SESSION_TOUCH_INTERVAL_MS {
            self.store
                .touch_session(&hash, now, now + SESSION_IDLE_LIFETIME.as_millis() as i64)
                .await?;
        }
        Ok(true)
    }

    pub async fn logout(&self, token: &str) -> Result<(), EngineError> {
        self.store.delete_session(&auth::hash_token(token)).await?;
        self.record(ActivityKind::Auth, "Logged out").await;
        Ok(())
    }

    pub async fn api_token_is_valid(&self, token: &str) -> Result<bool, EngineError> {
        Ok(self
            .store
            .use_api_token(&auth::hash_token(token), now_ms())
            .await?
            .is_some())
    }

    pub async fn api_tokens(&self) -> Result<Vec<ApiTokenInfo>, EngineError> {
        Ok(self.store.api_tokens().await?)
    }

    pub async fn create_api_token(&self, name: &str) -> Result<CreatedApiToken, EngineError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 64 {
            return Err(EngineError::Invalid(
                "a token needs a name of 1 to 64 characters".into(),
            ));
        }
        let (token, hint) = auth::new_api_token();
        let info = self
            .store
            .create_api_token(name, &auth::hash_token(&token), &hint, now_ms())
            .await?;
        self.record(
            ActivityKind::Auth,
            format!("API token \u{201c}{name}\u{201d} created ({hint})"),
        )
        .await;
        Ok(CreatedApiToken { info, token })
    }

    pub async fn revoke_api_token(&self, id: i64) -> Result<(), EngineError> {
        match self.store.revoke_api_token(id, now_ms()).await? {
            Some(name) => {
                self.record(
                    ActivityKind::Auth,
                    format!("API token \u{201c}{name}\u{201d} revoked"),
                )
                .await;
                Ok(())
            }
            None => Err(EngineError::NotFound(format!(
                "no live API token with id {id}"
            ))),
        }
    }
}

async fn load_settings(store: &Store) -> Result<Settings, EngineError> {
    let all = store.all_settings().await?;
    let theme = all
        .get(KEY_THEME)
        .and_then(|t| Theme::parse(t))
        .unwrap_or_default();
    let retention = all
        .get(KEY_RETENTION_DAYS)
        .and_then(|d| d.parse().ok())
        .filter(|d| (1..=MAX_ACTIVITY_RETENTION_DAYS).contains(d))
        .unwrap_or(DEFAULT_ACTIVITY_RETENTION_DAYS);
    Ok(Settings {
        theme,
        hf_token: all.get(KEY_HF_TOKEN).map(Secret::new),
        civitai_token: all.get(KEY_CIVITAI_TOKEN).map(Secret::new),
        activity_retention_days: retention,
    })
}

/// Decides how logins work. Off-loopback without a password, a password is generated once and
/// only its hash kept; the plain text is returned so the binary can print it this one time.
async fn resolve_auth(
    config: &Config,
    store: &Store,
) -> Result<(AuthMode, PasswordCheck, Option<String>), EngineError> {
    if let Some(password) = &config.access_password {
        return Ok((
            AuthMode::Password,
            PasswordCheck::Given(password.clone()),
            None,
        ));
    }
    if config.listens_on_loopback() {
        return Ok((AuthMode::Open, PasswordCheck::None, None));
    }
    if let Some(hash) = store.setting(KEY_GENERATED_PASSWORD_HASH).await? {
        return Ok((
            AuthMode::GeneratedPassword,
            PasswordCheck::GeneratedHash(hash),
            None,
        ));
    }
    let password = auth::generate_password();
    let pw = password.clone();
    let hash = tokio::task::spawn_blocking(move || auth::hash_password(&pw))
        .await
        .expect("password hashing does not panic")?;
    store
        .write_settings(
            &[(KEY_GENERATED_PASSWORD_HASH, Some(hash.clone()))],
            now_ms(),
        )
        .await?;
    Ok((
        AuthMode::GeneratedPassword,
        PasswordCheck::GeneratedHash(hash),
        Some(password),
    ))
}

/// `Some(None)` means "remove the token"; `Some(Some(t))` a cleaned token.
fn validate_token(label: &str, raw: &str) -> Result<Option<String>, EngineError> {
    let token = raw.trim();
    if token.is_empty() {
        return Ok(None);
    }
    if token.len() > MAX_TOKEN_LEN {
        return Err(EngineError::Invalid(format!(
            "{label} is too long ({} characters)",
            token.len()
        )));
    }
    if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(EngineError::Invalid(format!(
            "{label} must not contain spaces or line breaks"
        )));
    }
    Ok(Some(token.to_string()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The tokens downloads may use, each scoped to its own hosts.
fn credentials(config: &Config, settings: &Settings) -> Credentials {
    let mut tokens = Vec::new();
    if let Some(token) = &settings.hf_token {
        tokens.push(ScopedToken {
            hosts: config.hf_token_hosts(),
            token: token.clone(),
        });
    }
    if let Some(token) = &settings.civitai_token {
        tokens.push(ScopedToken {
            hosts: vec!["civitai.com".to_string(), "www.civitai.com".to_string()],
            token: token.clone(),
        });
    }
    Credentials { tokens }
}

// -- models and downloads ------------------------------------------------------------------------

impl Engine {
    pub fn downloads(&self) -> &Arc<DownloadManager> {
        &self.downloads
    }

    pub fn catalog(&self) -> Arc<Catalog> {
        self.downloads.catalog()
    }

    /// Stops transfers so their parts are flushed (they resume at the next start), and a
    /// supervised ComfyUI (SIGTERM, then SIGKILL after a timeout).
    pub async fn shutdown(&self) {
        self.stopping.cancel();
        self.bridge.stop();
        self.gallery().stop();
        let supervisor = self.supervisor.get().map(|s| s.shutdown());
        let downloads = self.downloads.shutdown();
        match supervisor {
            Some(supervisor) => {
                tokio::join!(supervisor, downloads);
            }
            None => downloads.await,
        }
    }

    /// With `COMFYUI_DIR`: starts ComfyUI and relays its state changes to live viewers and
    /// the activity log.
    fn start_comfyui(self: &Arc<Self>) {
        use crate::comfy::supervisor::{Supervisor, SupervisorConfig};
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
        if self.supervisor.set(Arc::clone(&supervisor)).is_err() {
            return;
        }
        let mut transitions = supervisor.transitions();
        self.spawn_until_shutdown(|engine| async move {
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
                    engine.record(kind, message).await;
                }
                engine
                    .events
                    .publish(Event::ComfyProcess(engine.comfy_process().await));
            }
        });
        // The log tail changes far more often than the state: relayed at most twice a second.
        let mut updates = supervisor.subscribe();
        self.spawn_until_shutdown(|engine| async move {
            while updates.changed().await.is_ok() {
                let process = updates.borrow_and_update().clone();
                engine.events.publish(Event::ComfyProcess(process));
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
    }

    /// The ComfyUI process as Home shows it: supervised, or `external` with reachability.
    pub async fn comfy_process(&self) -> ComfyProcess {
        match self.supervisor.get() {
            Some(supervisor) => supervisor.state(),
            None => ComfyProcess {
                state: ComfyProcessState::External {
                    reachable: self.comfy_status().await.reachable,
                },
                log_tail: Vec::new(),
                restarts: 0,
            },
        }
    }

    /// "Restart ComfyUI": only when comfydeck runs it.
    pub async fn restart_comfyui(&self) -> Result<ComfyProcess, EngineError> {
        let supervisor = self.supervisor.get().ok_or_else(|| {
            EngineError::Invalid(
                "ComfyUI is not started by comfydeck (set COMFYUI_DIR to let it); restart it where it runs".into(),
            )
        })?;
        self.record(ActivityKind::System, "ComfyUI restart requested")
            .await;
        supervisor.restart().await;
        Ok(supervisor.state())
    }

    /// Everything the Models page shows.
    pub async fn models_overview(&self) -> Result<ModelsOverview, EngineError> {
        let gpu_vram_bytes = gpu_vram(&self.system_stats().await);
        let presets = self.downloads.preset_views(&gpu_vram_bytes).await?;
        let folders = self.downloads.model_folders().await?;
        let catalog = self.catalog();
        Ok(ModelsOverview {
            presets,
            folders,
            space: self.downloads.space(),
            gpu_vram_bytes,
            catalog_problems: catalog.problems.iter().map(|p| p.to_string()).collect(),
        })
    }

    pub async fn install_preset(&self, id: &str) -> Result<PresetView, EngineError> {
        Ok(self.downloads.install_preset(id).await?)
    }

    pub async fn pause_preset(&self, id: &str) -> Result<(), EngineError> {
        Ok(self.downloads.pause_preset(id).await?)
    }

    pub async fn resume_preset(&self, id: &str) -> Result<(), EngineError> {
        Ok(self.downloads.resume_preset(id).await?)
    }

    pub async fn cancel_preset(&self, id: &str, delete_parts: bool) -> Result<(), EngineError> {
        Ok(self.downloads.cancel_preset(id, delete_parts).await?)
    }

    pub async fn remove_preset(&self, id: &str) -> Result<RemoveReport, EngineError> {
        Ok(self.downloads.remove_preset(id).await?)
    }

    pub async fn pause_download(&self, task_id: i64) -> Result<(), EngineError> {
        Ok(self.downloads.pause_task(task_id).await?)
    }

    pub async fn resume_download(&self, task_id: i64) -> Result<(), EngineError> {
        Ok(self.downloads.resume_task(task_id).await?)
    }

    pub async fn cancel_download(
        &self,
        task_id: i64,
        delete_part: bool,
    ) -> Result<(), EngineError> {
        Ok(self.downloads.cancel_task(task_id, delete_part).await?)
    }

    /// Re-reads the workspace layers and, with `PRESET_REGISTRY_URL`, syncs the remote
    /// registry first. A failed sync keeps the last good copy; it is reported once (activity
    /// and log), not on every call, until a sync succeeds again.
    pub async fn sync_catalog(&self) -> Result<String, EngineError> {
        use std::sync::atomic::Ordering;
        let mut note = None;
        if let Some(url) = &self.config.preset_registry_url {
            let registry = crate::catalog::RemoteRegistry::new(url.clone(), &self.catalog_sources);
            // Registries are often behind redirects (raw GitHub URLs): a client that follows
            // them, unlike the download client, which must see every hop.
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .map_err(|e| EngineError::Invalid(format!("HTTP client: {e}")))?;
            match registry.sync(&client).await {
                Ok(report) => {
                    self.registry_failure_reported
                        .store(false, Ordering::Relaxed);
                    note = Some(format!(
                        "registry synced: {} presets ({})",
                        report.presets,
                        format_bytes(report.bytes as u64)
                    ));
                }
                Err(e) => {
                    let message = format!("Preset registry sync failed: {e}");
                    if !self.registry_failure_reported.swap(true, Ordering::Relaxed) {
                        tracing::warn!(%message);
                        self.record(ActivityKind::Error, message.clone()).await;
                    }
                    note = Some(message);
                }
            }
        }
        let sources = self.catalog_sources.clone();
        let remote = remote_registry(&self.config, &sources);
        let catalog = tokio::task::spawn_blocking(move || Catalog::load(&sources, remote.as_ref()))
            .await
            .map_err(|e| EngineError::Invalid(format!("catalog reload failed: {e}")))?;
        let summary = format!(
            "{} presets{}",
            catalog.presets.len(),
            if catalog.problems.is_empty() {
                String::new()
            } else {
                format!(", {} with problems", catalog.problems.len())
            }
        );
        *self.catalog.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(catalog);
        Ok(match note {
            Some(note) => format!("{summary}; {note}"),
            None => summary,
        })
    }

    /// `PRESET_DOWNLOAD`, `IMAGE_PRESET_DOWNLOAD`, `AUDIO_PRESET_DOWNLOAD`: queued at start-up.
    /// Installed presets are skipped; unknown ids and refusals are logged and recorded.
    async fn install_startup_presets(&self) {
        for id in self.config.startup_presets.clone() {
            match self.downloads.install_preset(&id).await {
                Ok(view) => {
                    tracing::info!(preset = %view.id, state = ?view.state, "start-up preset")
                }
                Err(e) => {
                    let message = format!("Start-up preset {id}: {e}");
                    tracing::warn!(%message);
                    self.record(ActivityKind::Error, message).await;
                }
            }
        }
    }
}

/// The download view of a workspace that another process serves: `presets list` and
/// `presets status` read through it while a server runs (SQLite in WAL mode lets readers in).
/// Nothing here runs transfers or writes files.
pub async fn open_read_only(config: &Config) -> Result<Arc<DownloadManager>, EngineError> {
    let layout = config.layout();
    let store = Store::open(&layout.database()).await?;
    let settings = load_settings(&store).await?;
    let sources = catalog_sources(&layout);
    let remote = remote_registry(config, &sources);
    let catalog = Catalog::load(&sources, remote.as_ref());
    let catalog: CatalogHandle = Arc::new(RwLock::new(Arc::new(catalog)));
    Ok(DownloadManager::new(
        store,
        EventBus::new(),
        Fetcher::new(credentials(config, &settings)),
        catalog,
        layout.models(),
        DownloadConfig::from_config(config),
    ))
}

fn catalog_sources(layout: &WorkspaceLayout) -> CatalogSources {
    CatalogSources {
        workspace_config: layout.config_dir(),
        remote_cache: layout.data().join("preset-registry.json"),
    }
}

fn remote_registry(
    config: &Config,
    sources: &CatalogSources,
) -> Option<crate::catalog::RemoteRegistry> {
    config
        .preset_registry_url
        .as_ref()
        .map(|url| crate::catalog::RemoteRegistry::new(url.clone(), sources))
}

/// Total VRAM per GPU, largest first.
fn gpu_vram(stats: &SystemStats) -> Vec<u64> {
    let mut vram: Vec<u64> = match &stats.gpus {
        GpuReport::Available { gpus } => gpus.iter().map(|g| g.memory_total_bytes).collect(),
        _ => Vec::new(),
    };
    vram.sort_unstable_by(|a, b| b.cmp(a));
    vram
}

/// The `clientId` this deck uses with ComfyUI: made once, kept in the database, so prompts
/// and their events keep matching across restarts.
/// Where the attached ComfyUI last said it writes outputs (see
/// [`Engine::adopt_reported_output_dir`]).
const REPORTED_OUTPUT_DIR_KEY: &str = "gallery.reported_output_dir";

/// Set by hand, or passed to the ComfyUI comfydeck starts itself: never second-guessed.
fn output_dir_is_configured(config: &Config) -> bool {
    config.comfyui_output_dir.is_some() || config.comfyui_dir.is_some()
}

/// The folder the gallery starts on: the configured one, else the one ComfyUI reported last
/// time (while it still exists), else the workspace's `output`.
async fn initial_output_dir(
    config: &Config,
    store: &Store,
) -> Result<std::path::PathBuf, EngineError> {
    if !output_dir_is_configured(config) {
        if let Some(dir) = store.setting(REPORTED_OUTPUT_DIR_KEY).await? {
            let dir = std::path::PathBuf::from(dir);
            if dir.is_dir() {
                return Ok(dir);
            }
        }
    }
    let dir = config.output_dir();
    Ok(std::path::absolute(&dir).unwrap_or(dir))
}

async fn stable_client_id(store: &Store) -> Result<String, EngineError> {
    const KEY: &str = "comfy.client_id";
    if let Some(id) = store.setting(KEY).await? {
        return Ok(id);
    }
    let id = format!("comfydeck-{}", hex::encode(rand::random::<[u8; 8]>()));
    store
        .write_settings(&[(KEY, Some(id.clone()))], now_ms())
        .await?;
    Ok(id)
}

// -- workflow runs ---------------------------------------------------------------------------

impl Engine {
    pub fn bridge(&self) -> &Arc<crate::bridge::Bridge> {
        &self.bridge
    }

    /// Runs a workflow (UI or API format) with the given input values; problems come back per
    /// node, unsubmitted.
    pub async fn run_workflow(
        &self,
        workflow: &serde_json::Value,
        inputs: &[crate::bridge::InputValue],
    ) -> Result<RunSubmission, EngineError> {
        let catalog = self.catalog();
        Ok(self.bridge.submit(workflow, inputs, &catalog).await?)
    }

    pub async fn comfy_queue(&self) -> Result<QueueSnapshot, EngineError> {
        Ok(self.bridge.queue().await?)
    }

    pub async fn cancel_prompt(&self, prompt_id: &str) -> Result<(), EngineError> {
        Ok(self.bridge.cancel_pending(prompt_id).await?)
    }

    pub async fn interrupt_prompt(&self, prompt_id: &str) -> Result<(), EngineError> {
        Ok(self.bridge.interrupt(prompt_id).await?)
    }

    /// A finished prompt's outcome and outputs.
    pub async fn prompt_history(&self, prompt_id: &str) -> Result<RunRecord, EngineError> {
        Ok(self.bridge.history(prompt_id).await?)
    }

    pub async fn clear_comfy_queue(&self) -> Result<(), EngineError> {
        Ok(self.bridge.clear_queue().await?)
    }
}

// -- workflow library ------------------------------------------------------------------------

/// ComfyUI's saved workflows read per listing (each one is a request).
const COMFYUI_WORKFLOWS_READ: usize = 100;

impl Engine {
    fn workflow_library(&self) -> crate::workflows::WorkflowLibrary {
        crate::workflows::WorkflowLibrary::new(&self.layout)
    }

    /// `/object_info` when ComfyUI answers; the library works without it (fewer details).
    async fn object_info_if_reachable(&self) -> Option<Arc<crate::comfy::convert::ObjectInfo>> {
        self.bridge.object_info().await.ok()
    }

    /// Templates, the user's workflows and ComfyUI's saved ones (when it answers).
    pub async fn list_workflows(&self) -> Result<WorkflowList, EngineError> {
        use crate::workflows::{ComfyWorkflowEntry, WorkflowContext};
        let info = self.object_info_if_reachable().await;
        let catalog = self.catalog();
        let mut comfyui_note = None;
        let mut entries = Vec::new();
        match self.comfy.userdata_list("workflows", true).await {
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
        let library = self.workflow_library();
        let workflows = tokio::task::spawn_blocking(move || {
            let hint = crate::workflows::catalog_hint(&catalog);
            let mut ctx = WorkflowContext::new().with_preset_hint(&hint);
            if let Some(info) = &info {
                ctx = ctx.with_object_info(info);
            }
            let mut all = library.list_local(&ctx);
            all.extend(library.summarize_comfyui(entries, &ctx));
            all
        })
        .await
        .map_err(|e| EngineError::Invalid(format!("listing workflows failed: {e}")))?;
        Ok(WorkflowList {
            workflows,
            comfyui_note,
        })
    }

    /// One workflow with its content; ComfyUI's own are read from it.
    pub async fn workflow(&self, id: &str) -> Result<WorkflowDetail, EngineError> {
        use crate::workflows::{WorkflowContext, WorkflowError};
        let info = self.object_info_if_reachable().await;
        let catalog = self.catalog();
        let library = self.workflow_library();
        // The context borrows a non-Sync closure: built only after the last await.
        let with_ctx =
            |f: &dyn Fn(&WorkflowContext<'_>) -> Result<WorkflowDetail, WorkflowError>| {
                let hint = crate::workflows::catalog_hint(&catalog);
                let mut ctx = WorkflowContext::new().with_preset_hint(&hint);
                if let Some(info) = &info {
                    ctx = ctx.with_object_info(info);
                }
                f(&ctx)
            };
        if let Some(path) = id.strip_prefix("comfyui:") {
            crate::workspace::check_relative_path(path)
                .map_err(|e| WorkflowError::Invalid(e.to_string()))?;
            let bytes = self
                .comfy
                .userdata_get(&format!("workflows/{path}"))
                .await
                .map_err(|e| match e.is_not_found() {
                    true => WorkflowError::NotFound(format!("ComfyUI has no workflow {path}")),
                    false => WorkflowError::Invalid(e.to_string()),
                })?;
            let workflow: serde_json::Value = serde_json::from_slice(&bytes)
                .map_err(|e| WorkflowError::NotAWorkflow(format!("{path} is not JSON: {e}")))?;
            return Ok(with_ctx(&|ctx| {
                let summary = library.summarize_value(
                    WorkflowSource::ComfyUi,
                    path,
                    0,
                    bytes.len() as u64,
                    &workflow,
                    ctx,
                );
                Ok(WorkflowDetail {
                    summary,
                    workflow: workflow.clone(),
                })
            })?);
        }
        Ok(with_ctx(&|ctx| {
            let (summary, workflow) = library.load(id, ctx)?;
            Ok(WorkflowDetail { summary, workflow })
        })?)
    }

    pub async fn import_workflow(
        &self,
        file_name: &str,
        bytes: &[u8],
    ) -> Result<WorkflowSummary, EngineError> {
        let info = self.object_info_if_reachable().await;
        let catalog = self.catalog();
        let summary = {
            let hint = crate::workflows::catalog_hint(&catalog);
            let mut ctx = crate::workflows::WorkflowContext::new().with_preset_hint(&hint);
            if let Some(info) = &info {
                ctx = ctx.with_object_info(info);
            }
            self.workflow_library().import(file_name, bytes, &ctx)?
        };
        self.record(
            ActivityKind::System,
            format!("Imported workflow {}", summary.name),
        )
        .await;
        Ok(summary)
    }

    /// [`import_workflow`](Self::import_workflow) for JSON clients: the file base64-encoded.
    pub async fn import_workflow_base64(
        &self,
        file_name: &str,
        content_base64: &str,
    ) -> Result<WorkflowSummary, EngineError> {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(content_base64.trim())
            .map_err(|e| EngineError::Invalid(format!("content_base64 is not base64: {e}")))?;
        self.import_workflow(file_name, &bytes).await
    }

    pub async fn rename_workflow(
        &self,
        id: &str,
        name: &str,
    ) -> Result<WorkflowSummary, EngineError> {
        let ctx = crate::workflows::WorkflowContext::new();
        Ok(self.workflow_library().rename(id, name, &ctx)?)
    }

    pub async fn delete_workflow(&self, id: &str) -> Result<(), EngineError> {
        self.workflow_library().delete(id)?;
        self.record(ActivityKind::System, format!("Deleted workflow {id}"))
            .await;
        Ok(())
    }

    /// Runs a library workflow with the values the user set.
    pub async fn run_saved_workflow(
        &self,
        id: &str,
        inputs: &[crate::bridge::InputValue],
    ) -> Result<RunSubmission, EngineError> {
        let detail = self.workflow(id).await?;
        self.run_workflow(&detail.workflow, inputs).await
    }
}

// -- gallery ---------------------------------------------------------------------------------

impl Engine {
    pub fn gallery(&self) -> Arc<crate::gallery::Gallery> {
        Arc::clone(&self.gallery.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Without `COMFYUI_OUTPUT_DIR` or a supervised ComfyUI, the gallery follows the output
    /// folder the attached ComfyUI reports, re-read at every (re)connect: a pod's ComfyUI
    /// often writes to its own `ComfyUI/output`, not the workspace's.
    fn follow_reported_output_dir(self: &Arc<Self>) {
        if output_dir_is_configured(&self.config) {
            return;
        }
        let mut connections = self.bridge.connections();
        self.spawn_until_shutdown(|engine| async move {
            while connections.changed().await.is_ok() {
                engine.adopt_reported_output_dir().await;
            }
        });
    }

    /// Asks ComfyUI where it writes outputs and, when that is another folder this machine can
    /// read, re-roots the gallery there (remembered for the next start).
    pub async fn adopt_reported_output_dir(&self) -> Option<std::path::PathBuf> {
        if output_dir_is_configured(&self.config) {
            return None;
        }
        let (stats, paths) = tokio::join!(self.comfy.system_stats(), self.comfy.folder_paths());
        let argv = stats.map(|s| s.system.argv).unwrap_or_default();
        let paths = paths.unwrap_or_default();
        let dir = crate::comfy::http::reported_output_dir(&argv, &paths)?;
        let current = self.gallery().root().to_path_buf();
        // The same folder under another name (`/workspace` is often a symlink) is no change.
        let same = match (std::fs::canonicalize(&dir), std::fs::canonicalize(&current)) {
            (Ok(a), Ok(b)) => a == b,
            _ => dir == current,
        };
        if same {
            return None;
        }
        if !dir.is_dir() {
            tracing::warn!(
                reported = %dir.display(),
                indexed = %self.gallery().root().display(),
                "ComfyUI writes outputs to a folder this machine cannot see; set COMFYUI_OUTPUT_DIR to a shared one"
            );
            return None;
        }
        let gallery = crate::gallery::Gallery::new(
            self.store.clone(),
            self.events.clone(),
            dir.clone(),
            self.layout.thumbnails(),
        );
        let previous = std::mem::replace(
            &mut *self.gallery.write().unwrap_or_else(|p| p.into_inner()),
            Arc::clone(&gallery),
        );
        previous.stop();
        // The new scan drops the rows of files that are not in this folder.
        gallery.start();
        let written = self
            .store
            .write_settings(
                &[(REPORTED_OUTPUT_DIR_KEY, Some(dir.display().to_string()))],
                now_ms(),
            )
            .await;
        if let Err(e) = written {
            tracing::warn!(error = %e, "cannot remember ComfyUI's output folder");
        }
        self.record(
            ActivityKind::System,
            format!(
                "The gallery now shows ComfyUI's output folder {} (was {})",
                dir.display(),
                previous.root().display()
            ),
        )
        .await;
        Some(dir)
    }

    /// A page of outputs, newest first.
    pub async fn gallery_page(&self, query: &GalleryQuery) -> Result<GalleryPage, EngineError> {
        Ok(self.gallery().page(query).await?)
    }

    /// One output with the metadata its file holds.
    pub async fn gallery_item(&self, id: i64) -> Result<GalleryItemDetail, EngineError> {
        Ok(self.gallery().detail(id).await?)
    }

    /// Deletes an output file, its thumbnail and its index entry.
    pub async fn gallery_delete(&self, id: i64) -> Result<GalleryItem, EngineError> {
        Ok(self.gallery().delete(id).await?)
    }
}
