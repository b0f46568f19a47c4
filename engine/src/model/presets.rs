//! Models: presets, downloads, installed files, and their live progress.

use serde::{Deserialize, Serialize};

/// A preset's install state. "Installed" means every required file exists with the size it
/// had when it was downloaded and verified.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstallState {
    NotInstalled,
    /// Waiting for a download slot.
    Queued,
    Downloading,
    Paused,
    /// Some files are installed, the rest are neither queued nor downloading.
    Partial,
    Installed,
    Failed,
    /// Installed, and the catalog has a newer version of the preset.
    UpdateAvailable,
}

impl InstallState {
    pub fn label(self) -> &'static str {
        match self {
            InstallState::NotInstalled => "Not installed",
            InstallState::Queued => "Queued",
            InstallState::Downloading => "Downloading",
            InstallState::Paused => "Paused",
            InstallState::Partial => "Partly installed",
            InstallState::Installed => "Installed",
            InstallState::Failed => "Failed",
            InstallState::UpdateAvailable => "Update available",
        }
    }

    /// Work is queued or under way.
    pub fn is_active(self) -> bool {
        matches!(self, InstallState::Queued | InstallState::Downloading)
    }

    pub fn is_installed(self) -> bool {
        matches!(
            self,
            InstallState::Installed | InstallState::UpdateAvailable
        )
    }
}

/// One file of a preset (or a lone download).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileState {
    /// Not on disk and not queued.
    Missing,
    Queued,
    Downloading,
    Paused,
    Failed,
    /// On disk and verified when it was downloaded.
    Installed,
}

impl FileState {
    pub fn label(self) -> &'static str {
        match self {
            FileState::Missing => "Missing",
            FileState::Queued => "Queued",
            FileState::Downloading => "Downloading",
            FileState::Paused => "Paused",
            FileState::Failed => "Failed",
            FileState::Installed => "Installed",
        }
    }
}

/// How well a preset's VRAM requirement fits the largest GPU present.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VramFit {
    /// Needs at most 85 % of the GPU's memory.
    Fits,
    /// Needs more than 85 % but no more than all of it.
    Tight,
    TooBig,
    /// No requirement known, or no GPU to compare with.
    Unknown,
}

impl VramFit {
    pub fn label(self) -> &'static str {
        match self {
            VramFit::Fits => "Fits your GPU",
            VramFit::Tight => "Tight fit",
            VramFit::TooBig => "Too big for your GPU",
            VramFit::Unknown => "VRAM need unknown",
        }
    }
}

/// Live transfer figures of one file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TransferFigures {
    pub bytes_done: u64,
    pub total_bytes: Option<u64>,
    /// Smoothed bytes per second.
    pub speed_bps: u64,
    /// Seconds left at the smoothed speed.
    pub eta_secs: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PresetFileView {
    /// Relative to the models folder.
    pub path: String,
    pub size_bytes: Option<u64>,
    pub optional: bool,
    pub state: FileState,
    pub figures: TransferFigures,
    pub error: Option<String>,
    /// The download task, while there is one (for per-file pause/resume/cancel).
    pub task_id: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PresetView {
    pub id: String,
    pub aliases: Vec<String>,
    pub name: String,
    pub category: String,
    /// `image`, `video`, `audio`, …
    pub kind: String,
    pub description: String,
    pub use_case: Option<String>,
    pub tags: Vec<String>,
    pub version: Option<String>,
    pub download_bytes: Option<u64>,
    /// Bytes still to fetch for the required files (what the disk check uses).
    pub remaining_bytes: u64,
    pub vram_gb: Option<f32>,
    pub vram_fit: VramFit,
    pub state: InstallState,
    pub files: Vec<PresetFileView>,
    /// `builtin`, `remote` or `workspace`.
    pub layer: String,
    pub error: Option<String>,
}

/// A file found in the models folder (from a preset or not).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelFileView {
    pub path: String,
    pub bytes: u64,
    /// Verified when comfydeck downloaded it.
    pub verified: bool,
    /// A catalog preset that provides this path.
    pub preset_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelFolderView {
    pub name: String,
    pub bytes: u64,
    pub files: Vec<ModelFileView>,
}

/// Free space as the download preflight sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VolumeSpace {
    pub total_bytes: u64,
    pub used_bytes: u64,
    pub free_bytes: u64,
    /// Kept free by the preflight.
    pub reserve_bytes: u64,
}

impl VolumeSpace {
    /// What downloads may still use.
    pub fn usable_bytes(&self) -> u64 {
        self.free_bytes.saturating_sub(self.reserve_bytes)
    }
}

/// Everything the Models page shows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelsOverview {
    pub presets: Vec<PresetView>,
    pub folders: Vec<ModelFolderView>,
    pub space: VolumeSpace,
    /// Total VRAM per GPU, largest first; empty without a GPU.
    pub gpu_vram_bytes: Vec<u64>,
    /// Catalog problems (a preset that failed validation, a failed registry sync).
    pub catalog_problems: Vec<String>,
}

/// Pushed while a file downloads, and when its state changes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FileProgress {
    pub task_id: i64,
    pub path: String,
    pub state: FileState,
    pub figures: TransferFigures,
    pub error: Option<String>,
}

/// Pushed while a preset installs, and when its state changes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PresetProgress {
    pub preset_id: String,
    pub state: InstallState,
    pub figures: TransferFigures,
    pub error: Option<String>,
}

impl PresetProgress {
    /// The live event for a preset as its view stands now.
    pub fn of_view(view: &PresetView) -> PresetProgress {
        PresetProgress {
            preset_id: view.id.clone(),
            state: view.state,
            figures: TransferFigures::of_preset(&view.files),
            error: view.error.clone(),
        }
    }
}

impl TransferFigures {
    /// A preset's progress from its files: the one rule behind the server's live preset
    /// events and the Models page before (or without) one.
    /// - Only required files count; optional ones are extras the preset works without.
    /// - An installed file counts as fully done.
    /// - A file's total is its size as the transfer knows it, else as the catalog does, and
    ///   never less than what has already arrived.
    /// - One required file of unknown size makes the total unknown: a percent or an ETA
    ///   over the others would run to 100 % and then jump back.
    /// - Only files that are transferring add to the speed; a paused, failed or finished
    ///   file's last speed is stale.
    pub fn of_preset(files: &[PresetFileView]) -> TransferFigures {
        let mut figures = TransferFigures::default();
        let mut total = Some(0u64);
        for file in files.iter().filter(|f| !f.optional) {
            let size = file.figures.total_bytes.or(file.size_bytes);
            let done = match (file.state, size) {
                (FileState::Installed, Some(size)) => size.max(file.figures.bytes_done),
                _ => file.figures.bytes_done,
            };
            figures.bytes_done += done;
            if file.state == FileState::Downloading {
                figures.speed_bps += file.figures.speed_bps;
            }
            total = total.zip(size).map(|(sum, size)| sum + size.max(done));
        }
        figures.total_bytes = total;
        figures.eta_secs = figures.implied_eta_secs();
        figures
    }

    /// The ETA these figures imply: the bytes left at the current speed, rounded up (so
    /// "0 s" means done), or none while the total is unknown or nothing moves.
    pub fn implied_eta_secs(&self) -> Option<u64> {
        let total = self.total_bytes?;
        if self.speed_bps == 0 {
            return None;
        }
        Some(
            total
                .saturating_sub(self.bytes_done)
                .div_ceil(self.speed_bps),
        )
    }
}

#[cfg(test)]
mod preset_progress_tests {
    use super::*;

    fn file(size: Option<u64>, state: FileState, done: u64, speed: u64) -> PresetFileView {
        PresetFileView {
            path: "checkpoints/a.safetensors".into(),
            size_bytes: size,
            optional: false,
            state,
            figures: TransferFigures {
                bytes_done: done,
                total_bytes: None,
                speed_bps: speed,
                eta_secs: None,
            },
            error: None,
            task_id: None,
        }
    }

    // The server used to count an unknown size as what had arrived, so its total ran to 100 %
    // while the page said "so far"; both now say the total is unknown.
    #[test]
    fn one_unknown_size_makes_the_total_unknown() {
        let f = TransferFigures::of_preset(&[
            file(Some(100), FileState::Downloading, 40, 10),
            file(None, FileState::Downloading, 30, 10),
        ]);
        assert_eq!(f.bytes_done, 70);
        assert_eq!(f.total_bytes, None);
        assert_eq!(f.speed_bps, 20);
        assert_eq!(f.eta_secs, None);
        // The transfer learning the size makes it known again.
        let mut learned = file(None, FileState::Downloading, 30, 10);
        learned.figures.total_bytes = Some(50);
        let f =
            TransferFigures::of_preset(&[file(Some(100), FileState::Downloading, 40, 10), learned]);
        assert_eq!(f.total_bytes, Some(150));
    }

    // The server added every file's last speed; a paused or failed file's speed is stale.
    #[test]
    fn only_transferring_files_add_speed() {
        let f = TransferFigures::of_preset(&[
            file(Some(100), FileState::Paused, 50, 7),
            file(Some(100), FileState::Failed, 10, 9),
            file(Some(100), FileState::Downloading, 20, 10),
        ]);
        assert_eq!(f.speed_bps, 10);
        assert_eq!(f.eta_secs, Some(22));
    }

    // Moved from the Models page, whose fallback this rule now is. The server counted an
    // installed file by its figures alone; it is done in full. Optional files never count.
    #[test]
    fn aggregate_counts_installed_files_and_unknown_sizes() {
        let mut extra = file(Some(1_000), FileState::Downloading, 500, 100);
        extra.optional = true;
        let f = TransferFigures::of_preset(&[
            file(Some(100), FileState::Installed, 0, 0),
            file(Some(300), FileState::Downloading, 100, 50),
            extra,
        ]);
        assert_eq!(f.speed_bps, 50);
        assert_eq!(f.bytes_done, 200);
        assert_eq!(f.total_bytes, Some(400));
        assert_eq!(f.eta_secs, Some(4));
        let unknown = TransferFigures::of_preset(&[file(None, FileState::Downloading, 10, 5)]);
        assert_eq!(unknown.total_bytes, None);
        assert_eq!(unknown.eta_secs, None);
    }

    // The server rounded the ETA down (0 s with bytes still to come), the page up.
    #[test]
    fn the_eta_rounds_up_and_a_file_never_counts_less_than_has_arrived() {
        let f = TransferFigures::of_preset(&[file(Some(100), FileState::Downloading, 90, 20)]);
        assert_eq!(f.eta_secs, Some(1));
        let over = TransferFigures::of_preset(&[file(Some(100), FileState::Downloading, 120, 20)]);
        assert_eq!(over.total_bytes, Some(120));
        assert_eq!(over.eta_secs, Some(0));
        assert_eq!(TransferFigures::of_preset(&[]).total_bytes, Some(0));
    }

    #[test]
    fn the_event_carries_the_views_state_and_the_rules_figures() {
        let view = PresetView {
            id: "pair".into(),
            aliases: vec![],
            name: "Pair".into(),
            category: "Image Generation".into(),
            kind: "image".into(),
            description: String::new(),
            use_case: None,
            tags: vec![],
            version: None,
            download_bytes: Some(400),
            remaining_bytes: 200,
            vram_gb: None,
            vram_fit: VramFit::Unknown,
            state: InstallState::Downloading,
            files: vec![
                file(Some(100), FileState::Installed, 100, 0),
                file(Some(300), FileState::Downloading, 100, 50),
            ],
            layer: "builtin".into(),
            error: Some("slow mirror".into()),
        };
        let event = PresetProgress::of_view(&view);
        assert_eq!(event.preset_id, "pair");
        assert_eq!(event.state, InstallState::Downloading);
        assert_eq!(event.error.as_deref(), Some("slow mirror"));
        assert_eq!(event.figures, TransferFigures::of_preset(&view.files));
    }
}
