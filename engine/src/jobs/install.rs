//! `comfydeck worker --install-missing`: before a run, the worker installs the presets that
//! provide the model files a job needs and its ComfyUI lacks — with the deck's own download
//! engine (resumable, verified, token-scoped), into its workspace's `models/` — and tells the
//! job's owner how far it got. It tells the deck which files it can install, so a job that
//! needs a file no preset provides waits for a worker that has it instead of failing here.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::catalog::CatalogHandle;
use crate::config::Config;
use crate::download::fetch::{Credentials, Fetcher};
use crate::download::manager::{DownloadConfig, DownloadManager};
use crate::events::EventBus;
use crate::model::*;
use crate::store::Store;

/// How often an install's progress is looked at (and told to the owner).
const POLL: Duration = Duration::from_millis(500);

pub struct Installer {
    downloads: Arc<DownloadManager>,
    catalog: CatalogHandle,
}

impl Installer {
    /// The catalog is the built-in one plus the workspace's `config/presets.yaml` or
    /// `config/presets/` (as for `serve`); files land in `<workspace>/models`.
    pub fn start(
        workspace: &Path,
        store: Store,
        events: EventBus,
        credentials: Credentials,
    ) -> Result<Installer, String> {
        let config = Config::with_workspace(workspace);
        let layout = config.layout();
        // Downloads land only inside a models folder that exists (it is checked for escapes).
        std::fs::create_dir_all(layout.models())
            .map_err(|e| format!("{}: {e}", layout.models().display()))?;
        let (_, catalog) = crate::catalog::load_handle(&config, &layout);
        let downloads = DownloadManager::new(
            store,
            events,
            Fetcher::new(credentials),
            Arc::clone(&catalog),
            layout.models(),
            DownloadConfig::from_config(&config),
        );
        tokio::spawn(Arc::clone(&downloads).run());
        Ok(Installer { downloads, catalog })
    }

    fn catalog(&self) -> Arc<crate::catalog::Catalog> {
        Arc::clone(&self.catalog.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Every file a preset of the catalog installs (`folder/file`), for the claim.
    pub fn installable(&self) -> Vec<String> {
        let mut files: Vec<String> = self
            .catalog()
            .presets
            .values()
            .flat_map(|p| p.files.iter().filter(|f| !f.optional))
            .map(|f| f.path.clone())
            .collect();
        files.sort();
        files.dedup();
        files
    }

    /// Installs the presets that provide `missing` and waits until they are on disk;
    /// `report` is told each step in words. The error says which preset or file failed.
    pub async fn install(
        &self,
        missing: &[String],
        report: impl Fn(String),
        cancelled: &CancellationToken,
    ) -> Result<(), String> {
        let catalog = self.catalog();
        let mut presets: Vec<String> = Vec::new();
        for file in missing {
            let id = catalog
                .preset_for_model(file)
                .ok_or_else(|| format!("no preset of this worker's catalog provides {file}"))?;
            if !presets.iter().any(|p| p == id) {
                presets.push(id.to_string());
            }
        }
        for id in &presets {
            self.downloads
                .install_preset(id)
                .await
                .map_err(|e| format!("installing preset {id} on the worker: {e}"))?;
            loop {
                let view = self
                    .downloads
                    .preset_view(id)
                    .await
                    .map_err(|e| format!("installing preset {id} on the worker: {e}"))?;
                match view.state {
                    InstallState::Installed | InstallState::UpdateAvailable => break,
                    InstallState::Failed | InstallState::Partial | InstallState::NotInstalled => {
                        let why = view
                            .files
                            .iter()
                            .find_map(|f| f.error.clone())
                            .or(view.error)
                            .unwrap_or_else(|| "a download stopped".to_string());
                        return Err(format!(
                            "installing {} on the worker failed: {why}",
                            view.name
                        ));
                    }
                    _ => {}
                }
                // The one preset-progress rule, as the Models page shows it.
                let figures = TransferFigures::of_preset(&view.files);
                report(match figures.total_bytes {
                    Some(total) => format!(
                        "Installing {} on the worker: {} of {}",
                        view.name,
                        format_bytes(figures.bytes_done),
                        format_bytes(total)
                    ),
                    None => format!(
                        "Installing {} on the worker: {}",
                        view.name,
                        format_bytes(figures.bytes_done)
                    ),
                });
                tokio::select! {
                    _ = cancelled.cancelled() => {
                        let _ = self.downloads.cancel_preset(id, false).await;
                        return Err("cancelled".to_string());
                    }
                    _ = tokio::time::sleep(POLL) => {}
                }
            }
        }
        Ok(())
    }

    pub async fn shutdown(&self) {
        self.downloads.shutdown().await;
    }
}
