//! The live preset catalog: loaded from its layers at start-up, reloaded (and the remote
//! registry synced) on demand. Downloads read the same handle.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use super::{Catalog, CatalogSources, RemoteRegistry};
use crate::activity::ActivityLog;
use crate::config::Config;
use crate::error::Classify;
use crate::model::{format_bytes, ActivityKind, ErrorKind, Event, SyncKind, SyncOutcome};
use crate::workspace::WorkspaceLayout;

#[derive(Debug, thiserror::Error)]
pub enum CatalogSyncError {
    #[error("cannot build the HTTP client for the registry: {0}")]
    Client(String),
    #[error("the catalog reload failed: {0}")]
    Reload(String),
}

impl Classify for CatalogSyncError {
    /// A failed registry download is reported in the answer, not as an error: what is left
    /// are our own faults.
    fn kind(&self) -> ErrorKind {
        ErrorKind::Internal
    }
}

/// The live catalog, shared by the catalog service and the download manager; replaced whole
/// on reload.
pub type CatalogHandle = Arc<RwLock<Arc<Catalog>>>;

pub struct CatalogService {
    handle: CatalogHandle,
    sources: CatalogSources,
    registry_url: Option<String>,
    /// Whether the last registry sync failure was already reported (reported once, not on
    /// every request).
    failure_reported: AtomicBool,
    activity: ActivityLog,
}

impl CatalogService {
    /// Loads every layer; problems are logged (and listed on the Models page).
    pub fn load(config: &Config, layout: &WorkspaceLayout, activity: ActivityLog) -> Self {
        let (sources, handle) = load_handle(config, layout);
        for problem in &handle.read().unwrap_or_else(|p| p.into_inner()).problems {
            tracing::warn!(%problem, "preset catalog");
        }
        CatalogService {
            handle,
            sources,
            registry_url: config.preset_registry_url.clone(),
            failure_reported: AtomicBool::new(false),
            activity,
        }
    }

    /// The catalog as it is now.
    pub fn current(&self) -> Arc<Catalog> {
        Arc::clone(&self.handle.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// The handle the download manager reads (replaced in place on reload).
    pub fn handle(&self) -> CatalogHandle {
        Arc::clone(&self.handle)
    }

    /// Re-reads the workspace layers and, with `PRESET_REGISTRY_URL`, syncs the remote
    /// registry first. A failed sync keeps the last good copy; it is reported once (activity
    /// and log), not on every call, until a sync succeeds again.
    pub async fn sync(&self) -> Result<String, CatalogSyncError> {
        let mut note = None;
        if let Some(url) = &self.registry_url {
            let registry = RemoteRegistry::new(url.clone(), &self.sources);
            // Registries are often behind redirects (raw GitHub URLs): a client that follows
            // them, unlike the download client, which must see every hop.
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .map_err(|e| CatalogSyncError::Client(e.to_string()))?;
            let result = registry.sync(&client).await;
            self.activity.events().publish(Event::Sync(SyncOutcome {
                kind: SyncKind::PresetRegistry,
                error: result.as_ref().err().map(|e| e.to_string()),
            }));
            match result {
                Ok(report) => {
                    self.failure_reported.store(false, Ordering::Relaxed);
                    note = Some(format!(
                        "registry synced: {} presets ({})",
                        report.presets,
                        format_bytes(report.bytes as u64)
                    ));
                }
                Err(e) => {
                    let message = format!("Preset registry sync failed: {e}");
                    if !self.failure_reported.swap(true, Ordering::Relaxed) {
                        tracing::warn!(%message);
                        self.activity
                            .record(ActivityKind::Error, message.clone())
                            .await;
                    }
                    note = Some(message);
                }
            }
        }
        let sources = self.sources.clone();
        let remote = remote_registry(self.registry_url.as_deref(), &sources);
        let catalog = tokio::task::spawn_blocking(move || Catalog::load(&sources, remote.as_ref()))
            .await
            .map_err(|e| CatalogSyncError::Reload(e.to_string()))?;
        let summary = format!(
            "{} presets{}",
            catalog.presets.len(),
            if catalog.problems.is_empty() {
                String::new()
            } else {
                format!(", {} with problems", catalog.problems.len())
            }
        );
        *self.handle.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(catalog);
        Ok(match note {
            Some(note) => format!("{summary}; {note}"),
            None => summary,
        })
    }
}

/// The catalog of a workspace, loaded once (also for a read-only view of a served workspace).
pub fn load_handle(config: &Config, layout: &WorkspaceLayout) -> (CatalogSources, CatalogHandle) {
    let sources = CatalogSources {
        workspace_config: layout.config_dir(),
        remote_cache: layout.data().join("preset-registry.json"),
    };
    let remote = remote_registry(config.preset_registry_url.as_deref(), &sources);
    let catalog = Catalog::load(&sources, remote.as_ref());
    (sources, Arc::new(RwLock::new(Arc::new(catalog))))
}

fn remote_registry(url: Option<&str>, sources: &CatalogSources) -> Option<RemoteRegistry> {
    url.map(|url| RemoteRegistry::new(url.to_string(), sources))
}
