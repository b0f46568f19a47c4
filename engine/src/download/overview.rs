//! Everything the Models page shows, in one answer.

use super::manager::{DownloadError, DownloadManager};
use crate::model::ModelsOverview;

impl DownloadManager {
    /// The presets (with their fit against `gpu_vram_bytes`, largest GPU first), the model
    /// folders, the volume's space and the catalog's problems.
    pub async fn overview(
        &self,
        gpu_vram_bytes: Vec<u64>,
    ) -> Result<ModelsOverview, DownloadError> {
        let presets = self.preset_views(&gpu_vram_bytes).await?;
        let folders = self.model_folders().await?;
        let catalog = self.catalog();
        Ok(ModelsOverview {
            presets,
            folders,
            space: self.space_for_view(),
            gpu_vram_bytes,
            catalog_problems: catalog.problems.iter().map(|p| p.to_string()).collect(),
        })
    }
}
