//! Types shared by the server and the browser (this module compiles for wasm).
//!
//! Everything here is plain data plus pure helpers: no I/O, no clocks.

use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------------------------------------
// System status
// ---------------------------------------------------------------------------------------------

/// One sample of the pod's resources, taken by `metrics`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SystemStats {
    pub sampled_at_ms: i64,
    pub cpu: CpuStats,
    pub memory: MemoryStats,
    pub disk: DiskStats,
    pub gpus: GpuReport,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CpuStats {
    /// Busy share of the CPUs this process may use, 0–100.
    pub percent: f32,
    /// How many CPUs that share is measured against (a cgroup quota such as 2.5, or the host's).
    pub cores: f32,
}

/// Where a memory figure came from: containers must be judged by their cgroup limit, not the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemorySource {
    CgroupV2,
    CgroupV1,
    Host,
}

impl MemorySource {
    pub fn label(self) -> &'static str {
        match self {
            MemorySource::CgroupV2 => "container limit (cgroup v2)",
            MemorySource::CgroupV1 => "container limit (cgroup v1)",
            MemorySource::Host => "host memory",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MemoryStats {
    pub used_bytes: u64,
    pub limit_bytes: u64,
    pub source: MemorySource,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DiskStats {
    pub path: String,
    pub used_bytes: u64,
    pub total_bytes: u64,
    pub free_bytes: u64,
    /// True when `total_bytes` is the `RUNPOD_VOLUME_GB` quota rather than the filesystem size.
    pub quota_from_env: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum GpuReport {
    Available {
        gpus: Vec<GpuStats>,
    },
    /// NVML could not be loaded or found no device; `reason` says why, for the curious.
    Unavailable {
        reason: String,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GpuStats {
    pub index: u32,
    pub name: String,
    pub utilization_percent: Option<u32>,
    pub memory_used_bytes: u64,
    pub memory_total_bytes: u64,
    pub temperature_c: Option<u32>,
    pub power_watts: Option<f32>,
    pub power_limit_watts: Option<f32>,
}

/// What comfydeck knows about the ComfyUI server it talks to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ComfyStatus {
    pub url: String,
    pub reachable: bool,
    pub version: Option<String>,
    /// Prompts running or waiting, from ComfyUI's `/prompt` (`exec_info.queue_remaining`).
    pub queue_remaining: Option<u64>,
    /// Why it is unreachable, in words.
    pub error: Option<String>,
    pub checked_at_ms: i64,
}

/// Everything the Home page shows, in one round trip.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HomeStatus {
    pub stats: SystemStats,
    pub comfy: ComfyStatus,
    /// The ComfyUI process: supervised by comfydeck, or `external`.
    pub comfy_process: ComfyProcess,
    pub recent_activity: Vec<ActivityEntry>,
}

/// `GET /health`: each component's state. The dashboard is healthy when its own parts work;
/// ComfyUI is reported but never makes it unhealthy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HealthReport {
    /// `ok` or `degraded`.
    pub status: String,
    pub version: String,
    pub uptime_s: u64,
    pub database: ComponentHealth,
    pub workspace: ComponentHealth,
    pub comfyui: ComfyStatus,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ComponentHealth {
    pub ok: bool,
    pub detail: String,
}

// ---------------------------------------------------------------------------------------------
// Activity
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActivityKind {
    Settings,
    Auth,
    Error,
    System,
    Download,
}

impl ActivityKind {
    pub const ALL: [ActivityKind; 5] = [
        ActivityKind::Settings,
        ActivityKind::Auth,
        ActivityKind::Download,
        ActivityKind::Error,
        ActivityKind::System,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ActivityKind::Settings => "settings",
            ActivityKind::Auth => "auth",
            ActivityKind::Error => "error",
            ActivityKind::System => "system",
            ActivityKind::Download => "download",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            ActivityKind::Settings => "Settings",
            ActivityKind::Auth => "Logins",
            ActivityKind::Error => "Errors",
            ActivityKind::System => "System",
            ActivityKind::Download => "Downloads",
        }
    }

    pub fn parse(s: &str) -> Option<ActivityKind> {
        ActivityKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActivityEntry {
    pub id: i64,
    pub at_ms: i64,
    pub kind: ActivityKind,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActivityPage {
    pub entries: Vec<ActivityEntry>,
    /// Entries matching the filter, over all pages.
    pub total: u64,
    /// 1-based.
    pub page: u32,
    pub per_page: u32,
}

impl ActivityPage {
    pub fn page_count(&self) -> u32 {
        let per = u64::from(self.per_page.max(1));
        (self.total.div_ceil(per)).max(1) as u32
    }
}

// ---------------------------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Theme {
    Dark,
    Light,
    #[default]
    System,
}

impl Theme {
    pub const ALL: [Theme; 3] = [Theme::System, Theme::Dark, Theme::Light];

    pub fn as_str(self) -> &'static str {
        match self {
            Theme::Dark => "dark",
            Theme::Light => "light",
            Theme::System => "system",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Theme::Dark => "Dark",
            Theme::Light => "Light",
            Theme::System => "System",
        }
    }

    pub fn parse(s: &str) -> Option<Theme> {
        Theme::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

pub const DEFAULT_ACTIVITY_RETENTION_DAYS: u32 = 30;
pub const MAX_ACTIVITY_RETENTION_DAYS: u32 = 3650;

/// Settings as every response shows them: secrets only ever masked.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SettingsView {
    pub theme: Theme,
    /// e.g. `hf_…abcd`; `None` when no token is saved.
    pub hf_token_masked: Option<String>,
    pub civitai_token_masked: Option<String>,
    pub activity_retention_days: u32,
}

/// A change to settings. `None` leaves a field alone; an empty token string removes the token.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SettingsPatch {
    #[serde(default)]
    pub theme: Option<Theme>,
    #[serde(default)]
    pub hf_token: Option<String>,
    #[serde(default)]
    pub civitai_token: Option<String>,
    #[serde(default)]
    pub activity_retention_days: Option<u32>,
}

/// What Hugging Face said about the saved token.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HfTokenCheck {
    pub valid: bool,
    /// The account name when valid.
    pub user: Option<String>,
    /// A sentence for the user: who the token belongs to, or why it failed.
    pub message: String,
}

// ---------------------------------------------------------------------------------------------
// API tokens and auth
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApiTokenInfo {
    pub id: i64,
    pub name: String,
    /// The first characters of the token, enough to recognise it (`cd_ab12…`).
    pub hint: String,
    pub created_ms: i64,
    pub last_used_ms: Option<i64>,
}

/// Returned once, when a token is created: the only time the full secret is shown.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CreatedApiToken {
    pub info: ApiTokenInfo,
    pub token: String,
}

/// Whether this server asks for a login, for the UI to show or hide auth controls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// Loopback only and no password: nobody else can reach it.
    Open,
    /// `ACCESS_PASSWORD` was given.
    Password,
    /// Off-loopback without a password: one was generated at first start.
    GeneratedPassword,
}

impl AuthMode {
    pub fn requires_login(self) -> bool {
        !matches!(self, AuthMode::Open)
    }
}

// ---------------------------------------------------------------------------------------------
// Models: presets, downloads, installed files
// ---------------------------------------------------------------------------------------------

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

    // The server counted an installed file by its figures alone; it is done in full.
    #[test]
    fn an_installed_file_counts_in_full_and_optional_files_not_at_all() {
        let mut extra = file(Some(1_000), FileState::Downloading, 500, 100);
        extra.optional = true;
        let f = TransferFigures::of_preset(&[
            file(Some(100), FileState::Installed, 0, 0),
            file(Some(300), FileState::Downloading, 100, 50),
            extra,
        ]);
        assert_eq!(f.bytes_done, 200);
        assert_eq!(f.total_bytes, Some(400));
        assert_eq!(f.speed_bps, 50);
        assert_eq!(f.eta_secs, Some(4));
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

/// Formats seconds as `1 h 02 min`, `3 min 05 s` or `42 s`.
pub fn format_duration_secs(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    if h > 0 {
        format!("{h} h {m:02} min")
    } else if m > 0 {
        format!("{m} min {s:02} s")
    } else {
        format!("{s} s")
    }
}

// ---------------------------------------------------------------------------------------------
// ComfyUI process (when comfydeck supervises it)
// ---------------------------------------------------------------------------------------------

/// How a ComfyUI process ended: an exit code, or the signal that killed it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComfyExit {
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

impl std::fmt::Display for ComfyExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.code, self.signal) {
            (Some(code), _) => write!(f, "exit code {code}"),
            (None, Some(signal)) => write!(f, "signal {signal}"),
            (None, None) => f.write_str("unknown exit status"),
        }
    }
}

/// Where the ComfyUI process is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ComfyProcessState {
    /// Spawned, not answering `/system_stats` yet.
    Starting { pid: u32 },
    /// Answering `/system_stats` since `since_ms` (Unix ms).
    Ready { pid: u32, since_ms: i64 },
    /// Exited on its own; a restart follows.
    Crashed {
        exit: ComfyExit,
        last_lines: Vec<String>,
    },
    /// Waiting `delay_ms` (until `at_ms`, Unix ms) before restart number `attempt` of the
    /// current run of failures.
    Restarting {
        delay_ms: u64,
        at_ms: i64,
        attempt: u32,
        last_exit: ComfyExit,
    },
    /// Cannot be started as configured (no `main.py`, no Python…); waits for a manual restart.
    Failed { error: String },
    /// Stopped by comfydeck (shutdown); a manual restart starts it again.
    Stopped,
    /// Attach-only mode: comfydeck does not manage ComfyUI, it only checks that it answers.
    External { reachable: bool },
}

/// What the deck shows about the ComfyUI process.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ComfyProcess {
    pub state: ComfyProcessState,
    /// The last lines of its output (stdout and stderr, interleaved), oldest first.
    pub log_tail: Vec<String>,
    /// Restarts since comfydeck started, automatic and manual.
    pub restarts: u32,
}

// ---------------------------------------------------------------------------------------------
// Workflow runs (through ComfyUI)
// ---------------------------------------------------------------------------------------------

/// A file a prompt produced, with the comfydeck URL that serves it (behind the login).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunOutput {
    pub node: String,
    pub filename: String,
    pub subfolder: String,
    /// `output`, `temp` or `input`.
    pub kind: String,
    /// `images`, `gifs`, `audio`, `video`, …
    pub media: String,
    pub url: String,
}

/// What happened to a prompt, as pushed on `/ws`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RunEventKind {
    Queued,
    Started,
    Cached {
        nodes: Vec<String>,
    },
    Executing {
        node: String,
        title: Option<String>,
        class_type: Option<String>,
    },
    Progress {
        node: Option<String>,
        value: f64,
        max: f64,
    },
    /// The newest preview image; fetch it from `url` (a counter in the URL busts caches).
    Preview {
        node: Option<String>,
        url: String,
    },
    ProgressText {
        node: String,
        text: String,
    },
    Output {
        node: String,
        files: Vec<RunOutput>,
    },
    Succeeded,
    Failed {
        node: Option<String>,
        node_type: Option<String>,
        message: String,
    },
    Interrupted {
        node: Option<String>,
    },
    /// Overall progress across the prompt's nodes, from ComfyUI's `progress_state`: `done`
    /// nodes finished or cached out of `total`, and `fraction` (0–1) counting the running
    /// nodes' own step progress too.
    Nodes {
        done: usize,
        total: usize,
        fraction: f64,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunEvent {
    pub prompt_id: String,
    pub event: RunEventKind,
}

/// One prompt in ComfyUI's queue (from this deck or from ComfyUI's own UI).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QueueEntry {
    pub prompt_id: String,
    pub number: f64,
    pub node_count: usize,
    /// Submitted by this comfydeck.
    pub ours: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct QueueSnapshot {
    pub running: Vec<QueueEntry>,
    pub pending: Vec<QueueEntry>,
}

/// How a finished prompt ended, from ComfyUI's history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum RunOutcome {
    Succeeded,
    Failed {
        node: Option<String>,
        node_type: Option<String>,
        message: String,
    },
    Interrupted {
        node: Option<String>,
    },
    /// Still queued or running, or a status comfydeck does not know.
    Unknown {
        status: Option<String>,
    },
}

/// A prompt's record in ComfyUI's history, with its outputs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub prompt_id: String,
    pub outcome: RunOutcome,
    pub outputs: Vec<RunOutput>,
    pub started_at_ms: Option<i64>,
    pub ended_at_ms: Option<i64>,
}

/// A problem found in a workflow before (or when) submitting it, per node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkflowProblem {
    pub node_id: String,
    pub class_type: String,
    pub title: Option<String>,
    pub input: Option<String>,
    pub message: String,
    /// A catalog preset that provides a missing model file.
    pub preset_hint: Option<String>,
}

/// The answer to "run this workflow".
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunSubmission {
    /// Set when ComfyUI accepted the prompt.
    pub prompt_id: Option<String>,
    /// Why it was not submitted (or what ComfyUI refused), per node.
    pub problems: Vec<WorkflowProblem>,
    /// One sentence for the user.
    pub message: String,
}

// ---------------------------------------------------------------------------------------------
// Workflow library

/// Where a workflow is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum WorkflowSource {
    /// `workflows/templates` on the volume: read-only here.
    #[serde(rename = "template")]
    Template,
    /// `workflows/user` on the volume: the user's own.
    #[serde(rename = "user")]
    User,
    /// ComfyUI's own workflow folder (`/api/userdata?dir=workflows`), reached over HTTP.
    #[serde(rename = "comfyui")]
    ComfyUi,
}

impl WorkflowSource {
    /// The id prefix: `template`, `user`, `comfyui`.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkflowSource::Template => "template",
            WorkflowSource::User => "user",
            WorkflowSource::ComfyUi => "comfyui",
        }
    }

    pub fn parse(s: &str) -> Option<WorkflowSource> {
        match s {
            "template" => Some(WorkflowSource::Template),
            "user" => Some(WorkflowSource::User),
            "comfyui" => Some(WorkflowSource::ComfyUi),
            _ => None,
        }
    }
}

/// The shape of a workflow file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkflowFileFormat {
    /// Saved from ComfyUI's editor (`nodes`, `links`).
    Ui,
    /// An API prompt (node id → `{class_type, inputs}`).
    Api,
    /// Not known: not valid JSON, neither shape, or (ComfyUI entries) not fetched.
    Unknown,
}

/// One workflow of the library, as the browser lists it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkflowSummary {
    /// `"<source>:<relative path>"`, e.g. `user:portraits/flux.json`.
    pub id: String,
    pub source: WorkflowSource,
    /// The file name without `.json`.
    pub name: String,
    /// The path relative to the source's folder, `/`-separated.
    pub path: String,
    pub format: WorkflowFileFormat,
    /// Nodes at the top level of a UI workflow, or of an API prompt.
    pub node_count: usize,
    /// Last modification, milliseconds since the Unix epoch (0 when not known).
    pub modified_ms: u64,
    pub size_bytes: u64,
    /// The model files its loaders pick, in node order.
    pub required_models: Vec<RequiredModel>,
    /// What a user would change before running it (see [`editable_inputs`]).
    pub inputs: Vec<EditableInput>,
    /// The node classes it uses, sorted and unique (searchable: `KSampler`, `SaveVideo`, …).
    #[serde(default)]
    pub node_types: Vec<String>,
    /// Sentences: not valid JSON, a node type ComfyUI lacks, …
    pub problems: Vec<String>,
}

impl WorkflowSummary {
    /// Whether every required model file is installed.
    pub fn models_ready(&self) -> bool {
        self.required_models.iter().all(|m| m.installed)
    }
}

/// A model file a workflow's loader picks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequiredModel {
    /// ComfyUI's folder name (`checkpoints`, `loras`, `text_encoders`, …).
    pub folder: String,
    /// The file, relative to the folder, as the workflow names it (may contain `/`).
    pub file: String,
    /// The node (API id; `10:6` inside a subgraph).
    pub node_id: String,
    pub class_type: String,
    /// The loader's input (`ckpt_name`).
    pub input: String,
    /// The file is under `models/<folder>/` (or one of the folder's legacy names), or in
    /// ComfyUI's list of choices for the input.
    pub installed: bool,
    /// The preset that provides the file, when the catalog knows one.
    pub preset_id: Option<String>,
}

/// How an input is edited.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputKind {
    Text,
    Int,
    Float,
    /// An INT that is a seed (`seed`, `noise_seed`): a "randomize" button is welcome.
    Seed,
    Combo,
    Bool,
}

/// An input a user would want to change before running a workflow.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EditableInput {
    /// The node's id in the API prompt (`10:6` inside a subgraph).
    pub node_id: String,
    pub class_type: String,
    pub node_title: String,
    /// The input name (`text`, `seed`, …).
    pub input: String,
    pub kind: InputKind,
    /// The current value.
    pub value: serde_json::Value,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub step: Option<f64>,
    /// The choices of a combo (from `/object_info`; `None` without it).
    pub options: Option<Vec<String>>,
    /// `Prompt (positive)`, `Prompt (negative)`, a plain name (`Seed`, `Steps`, `Width`…) when
    /// only one node has that input, else `<title> · <input>`; made unique with ` (node <id>)`
    /// when two inputs would still read the same.
    pub label: String,
    /// For a prompt text: which sampler input it ends up in (traced through the graph).
    #[serde(default)]
    pub role: Option<PromptRole>,
}

/// A value to set on a prompt, as the browser sends it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InputValue {
    pub node_id: String,
    pub input: String,
    pub value: serde_json::Value,
}

/// A value that [`apply_inputs`] refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputProblem {
    pub node_id: String,
    pub input: String,
    /// A sentence naming node and input: `KSampler (node 3) · steps: 0 is below the minimum 1`.
    pub message: String,
}

/// The Workflows page's library.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkflowList {
    pub workflows: Vec<WorkflowSummary>,
    /// Why ComfyUI's own workflows are missing from the list, when they are.
    pub comfyui_note: Option<String>,
}

/// One workflow with its content.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkflowDetail {
    pub summary: WorkflowSummary,
    pub workflow: serde_json::Value,
}

// ---------------------------------------------------------------------------------------------
// Live events (the /ws protocol)
// ---------------------------------------------------------------------------------------------

/// Everything pushed to the browser over `/ws`, as JSON `{"type": …, "data": …}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum Event {
    SystemStats(SystemStats),
    ComfyStatus(ComfyStatus),
    Activity(ActivityEntry),
    Settings(SettingsView),
    /// One file's transfer (at most two per second per file).
    Download(FileProgress),
    /// A preset's aggregate state and progress (at most two per second per preset).
    Preset(PresetProgress),
    /// The supervised ComfyUI process changed state (or its log tail grew).
    ComfyProcess(ComfyProcess),
    /// A prompt's progress, previews, outputs and outcome.
    Run(RunEvent),
    /// Prompts running or waiting in ComfyUI, including ones queued from its own UI.
    ComfyQueue {
        remaining: u64,
    },
    /// Output files appeared in or went from the gallery.
    Gallery(GalleryChange),
    /// A generation's history row changed (queued, started, ended, got outputs).
    Generation(Generation),
}

// ---------------------------------------------------------------------------------------------
// Generate
// ---------------------------------------------------------------------------------------------

/// Which sampler input a prompt text ends up in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromptRole {
    Positive,
    Negative,
}

/// A prompt style: a static template, or the brief an LLM gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromptStyle {
    Detailed,
    Cinematic,
    Artistic,
    Minimal,
}

impl PromptStyle {
    pub const ALL: [PromptStyle; 4] = [
        PromptStyle::Detailed,
        PromptStyle::Cinematic,
        PromptStyle::Artistic,
        PromptStyle::Minimal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PromptStyle::Detailed => "detailed",
            PromptStyle::Cinematic => "cinematic",
            PromptStyle::Artistic => "artistic",
            PromptStyle::Minimal => "minimal",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            PromptStyle::Detailed => "Detailed",
            PromptStyle::Cinematic => "Cinematic",
            PromptStyle::Artistic => "Artistic",
            PromptStyle::Minimal => "Minimal",
        }
    }

    pub fn parse(s: &str) -> Option<PromptStyle> {
        PromptStyle::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// An enhanced prompt pair.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EnhancedPrompt {
    pub positive: String,
    pub negative: String,
    pub style: PromptStyle,
    /// Written by the configured LLM; otherwise the static style template.
    pub by_llm: bool,
    /// Set when an LLM is configured but its answer could not be used: why, in words.
    pub fallback_reason: Option<String>,
}

/// Where a generation stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GenerationStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    Interrupted,
    Cancelled,
}

impl GenerationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            GenerationStatus::Queued => "queued",
            GenerationStatus::Running => "running",
            GenerationStatus::Succeeded => "succeeded",
            GenerationStatus::Failed => "failed",
            GenerationStatus::Interrupted => "interrupted",
            GenerationStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<GenerationStatus> {
        [
            GenerationStatus::Queued,
            GenerationStatus::Running,
            GenerationStatus::Succeeded,
            GenerationStatus::Failed,
            GenerationStatus::Interrupted,
            GenerationStatus::Cancelled,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }

    /// Queued or running: it can still change (and be cancelled).
    pub fn is_active(self) -> bool {
        matches!(self, GenerationStatus::Queued | GenerationStatus::Running)
    }
}

/// One generation from the Generate page, as kept in the history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Generation {
    pub id: i64,
    pub workflow_id: String,
    pub workflow_name: String,
    /// The values the form sent (the workflow's own values fill the rest).
    pub inputs: Vec<InputValue>,
    pub prompt_id: String,
    pub status: GenerationStatus,
    pub error: Option<String>,
    pub created_ms: i64,
    pub started_ms: Option<i64>,
    pub finished_ms: Option<i64>,
    pub outputs: Vec<RunOutput>,
}

impl Generation {
    /// From start (or submission, when the start was missed) to the end.
    pub fn duration_ms(&self) -> Option<i64> {
        let end = self.finished_ms?;
        Some((end - self.started_ms.unwrap_or(self.created_ms)).max(0))
    }
}

/// A preset that provides models a workflow lacks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PresetNeed {
    pub id: String,
    pub name: String,
    /// What installing it downloads (0 when the catalog does not say).
    pub download_bytes: u64,
}

/// A workflow as the Generate page lists it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GenerateCard {
    pub summary: WorkflowSummary,
    /// Derived from its nodes: `txt2img`, `img2img`, `video`, `upscale`, …
    pub tags: Vec<String>,
    /// The presets that provide its missing models.
    pub presets: Vec<PresetNeed>,
    /// Sum of `presets`' downloads.
    pub download_bytes: u64,
    /// Missing model files no preset provides (`folder/file`).
    pub unprovided: Vec<String>,
}

impl GenerateCard {
    pub fn ready(&self) -> bool {
        self.summary.models_ready()
    }
}

/// The Generate page's workflow list: ready ones first, then those that need models.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GenerateLibrary {
    pub ready: Vec<GenerateCard>,
    pub needs_models: Vec<GenerateCard>,
    pub comfyui_note: Option<String>,
}

/// The form for one workflow: its inputs, the values remembered from last time, and its
/// history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GenerateForm {
    pub card: GenerateCard,
    /// Values last used with this workflow (empty the first time).
    pub remembered: Vec<InputValue>,
    pub history: Vec<Generation>,
    /// Whether "enhance" asks an LLM (`LLM_BASE_URL` and `LLM_MODEL` set).
    pub llm_enabled: bool,
}

/// An image put into ComfyUI's input folder.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadedImage {
    /// The value for a LoadImage `image` input (`sub/name.png` in a subfolder).
    pub value: String,
    pub name: String,
    pub subfolder: String,
}

/// "Open in Generate" for a gallery output: the library workflow it was made with (imported
/// from the file's own workflow when the library has none like it) and its values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GeneratePrefill {
    pub workflow_id: String,
    pub values: Vec<InputValue>,
    /// The workflow was imported from the output file into the user's workflows.
    pub imported: bool,
}

/// Intent shortcuts on the Generate page: a label and the words it matches in titles, tags and
/// node types.
pub const GENERATE_INTENTS: &[(&str, &[&str])] = &[
    (
        "portrait",
        &[
            "portrait",
            "face",
            "headshot",
            "person",
            "photomaker",
            "instantid",
        ],
    ),
    (
        "video",
        &["video", "animate", "wan", "ltxv", "hunyuan", "mochi", "svd"],
    ),
    ("upscale", &["upscale", "esrgan", "superres"]),
    ("img2img", &["img2img", "loadimage"]),
    ("inpaint", &["inpaint", "mask"]),
    ("audio", &["audio", "music", "speech", "tts"]),
];

/// Whether a card matches a search: every word of `query` appears in its name, path, tags or
/// node types (case-insensitive); an intent label matches any of its words.
pub fn generate_card_matches(card: &GenerateCard, query: &str) -> bool {
    let haystack = [
        card.summary.name.to_lowercase(),
        card.summary.path.to_lowercase(),
        card.tags.join(" ").to_lowercase(),
        card.summary.node_types.join(" ").to_lowercase(),
    ]
    .join(" ");
    query.split_whitespace().map(str::to_lowercase).all(|word| {
        match GENERATE_INTENTS.iter().find(|(label, _)| *label == word) {
            Some((_, words)) => words.iter().any(|w| haystack.contains(w)),
            None => haystack.contains(&word),
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Pure helpers
// ---------------------------------------------------------------------------------------------

/// Masks a secret for display: keeps a short prefix such as `hf_` and the last four characters.
/// Short secrets show nothing of themselves.
pub fn mask_secret(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    if chars.len() < 12 {
        return "…".to_string();
    }
    let prefix_len = chars
        .iter()
        .take(5)
        .position(|c| *c == '_' || *c == '-')
        .map(|i| i + 1)
        .unwrap_or(0);
    let prefix: String = chars[..prefix_len].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{prefix}…{tail}")
}

/// Bytes in decimal units, as disk vendors, pods and model cards count them ("4.9 GB").
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "kB", "MB", "GB", "TB", "PB"];
    if bytes < 1000 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if value >= 100.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Share of `part` in `whole`, 0–100, safe for a zero whole.
pub fn percent_of(part: u64, whole: u64) -> f32 {
    if whole == 0 {
        0.0
    } else {
        ((part as f64 / whole as f64) * 100.0).clamp(0.0, 100.0) as f32
    }
}

/// A UTC timestamp as `2026-11-22 14:03:09 UTC`. The same text on server and browser, so a
/// server-rendered page hydrates without a mismatch whatever the viewer's time zone.
pub fn format_utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_keep_prefix_and_last_four() {
        assert_eq!(mask_secret("hf_AbCdEfGhIjKlMnOpabcd"), "hf_…abcd");
        assert_eq!(mask_secret("0123456789abcdef0123456789abwxyz"), "…wxyz");
        assert_eq!(mask_secret("short"), "…");
        // The masked form never contains the middle of the secret.
        let masked = mask_secret("hf_SECRETMIDDLEPARTzzzz");
        assert!(!masked.contains("SECRET"));
    }

    #[test]
    fn bytes_are_decimal() {
        assert_eq!(format_bytes(999), "999 B");
        assert_eq!(format_bytes(4_900_000_000), "4.9 GB");
        assert_eq!(format_bytes(246_000_000), "246 MB");
        assert_eq!(format_bytes(1_500), "1.5 kB");
    }

    #[test]
    fn utc_format_matches_known_dates() {
        assert_eq!(format_utc(0), "1970-01-01 00:00:00 UTC");
        // 2026-11-22 14:03:09 UTC
        assert_eq!(format_utc(1_795_356_189_000), "2026-11-22 14:03:09 UTC");
        assert_eq!(format_utc(951_782_400_000), "2000-02-29 00:00:00 UTC");
    }

    #[test]
    fn events_are_tagged_json() {
        let e = Event::Activity(ActivityEntry {
            id: 1,
            at_ms: 5,
            kind: ActivityKind::Auth,
            message: "login".into(),
        });
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["type"], "activity");
        assert_eq!(json["data"]["kind"], "auth");
        let back: Event = serde_json::from_value(json).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn page_count_rounds_up() {
        let page = ActivityPage {
            entries: vec![],
            total: 51,
            page: 1,
            per_page: 25,
        };
        assert_eq!(page.page_count(), 3);
        let empty = ActivityPage {
            entries: vec![],
            total: 0,
            page: 1,
            per_page: 25,
        };
        assert_eq!(empty.page_count(), 1);
    }
}

// ---------------------------------------------------------------------------------------------
// Gallery
// ---------------------------------------------------------------------------------------------

/// What an output file is, by its extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaKind {
    Image,
    Video,
    Audio,
}

impl MediaKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Image => "image",
            MediaKind::Video => "video",
            MediaKind::Audio => "audio",
        }
    }

    pub fn parse(s: &str) -> Option<MediaKind> {
        match s {
            "image" => Some(MediaKind::Image),
            "video" => Some(MediaKind::Video),
            "audio" => Some(MediaKind::Audio),
            _ => None,
        }
    }

    /// The kind of a file name, or `None` when the gallery does not show such files.
    pub fn of_file_name(name: &str) -> Option<MediaKind> {
        let ext = name.rsplit_once('.')?.1.to_ascii_lowercase();
        match ext.as_str() {
            "png" | "jpg" | "jpeg" | "webp" | "gif" | "bmp" | "avif" => Some(MediaKind::Image),
            "mp4" | "webm" | "mov" | "mkv" | "avi" | "m4v" => Some(MediaKind::Video),
            "mp3" | "wav" | "flac" | "ogg" | "m4a" | "opus" | "aac" => Some(MediaKind::Audio),
            _ => None,
        }
    }
}

/// One indexed output file, as the grid shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GalleryItem {
    pub id: i64,
    /// Relative to the output folder, `/`-separated (`sub/ComfyUI_00001_.png`).
    pub path: String,
    pub kind: MediaKind,
    pub size_bytes: u64,
    pub modified_ms: i64,
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// The positive prompt text, when the file (or its generation record) says.
    pub positive: Option<String>,
    pub seed: Option<i64>,
    pub model: Option<String>,
    /// Whether the file carries a workflow or an API prompt (then "Open in Generate" works).
    pub has_workflow: bool,
    /// The ComfyUI prompt that made it, when comfydeck saw the run finish.
    pub prompt_id: Option<String>,
}

impl GalleryItem {
    /// The file name without its folders.
    pub fn name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or(&self.path)
    }

    /// Where the original is served (behind the login).
    pub fn file_url(&self) -> String {
        format!("/api/gallery/file/{}", encode_path(&self.path))
    }

    /// Where its thumbnail is served; the modification time in the URL lets browsers cache it
    /// for good and still see a changed file.
    pub fn thumb_url(&self) -> String {
        format!(
            "/api/gallery/thumb/{}?v={}",
            encode_path(&self.path),
            self.modified_ms
        )
    }
}

/// Percent-encodes each segment of a relative path (the `/` between them stay).
pub fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// What a gallery listing asks for. Every filter is optional; results are newest first.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GalleryQuery {
    pub kind: Option<MediaKind>,
    /// Modified at or after this time (Unix ms).
    pub from_ms: Option<i64>,
    /// Modified before this time (Unix ms).
    pub to_ms: Option<i64>,
    /// Words searched in file names, prompts and model names (case-insensitive, all must match).
    pub text: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Items per page (1–500; 100 when absent).
    pub limit: Option<u32>,
}

/// One page of the gallery.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GalleryPage {
    pub items: Vec<GalleryItem>,
    /// How many items match the filters, all pages together.
    pub total: u64,
    /// Pass back as `cursor` for the next (older) page; `None` on the last page.
    pub next_cursor: Option<String>,
    /// True while the start-up scan of the output folder is still running.
    pub indexing: bool,
    /// The output folder these come from.
    #[serde(default)]
    pub folder: String,
}

/// What is known about how an output was made: read from the PNG's text chunks (ComfyUI's
/// `workflow` and `prompt`, or A1111-style `parameters`). Every field is optional: files
/// without metadata still open.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GalleryMeta {
    /// The UI-format workflow (ComfyUI's `workflow` chunk).
    pub workflow: Option<serde_json::Value>,
    /// The API-format prompt that ran (ComfyUI's `prompt` chunk).
    pub prompt: Option<serde_json::Value>,
    pub positive: Option<String>,
    pub negative: Option<String>,
    pub seed: Option<i64>,
    pub steps: Option<u32>,
    pub cfg: Option<f64>,
    pub sampler: Option<String>,
    pub scheduler: Option<String>,
    pub model: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// Why some metadata could not be read (a damaged chunk, a file that is not a PNG).
    pub note: Option<String>,
}

/// One output with everything the viewer shows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GalleryItemDetail {
    pub item: GalleryItem,
    pub meta: GalleryMeta,
}

/// The gallery changed: files appeared or went. Viewers reload their first page and drop
/// the removed ids.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GalleryChange {
    pub added: u32,
    pub removed_ids: Vec<i64>,
}

/// `2026-11-23` → Unix milliseconds at 00:00 UTC that day (dates are shown in UTC
/// everywhere, so date filters use UTC too). `None` for anything else.
pub fn utc_day_start_ms(date: &str) -> Option<i64> {
    let mut parts = date.trim().splitn(3, '-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let d: i64 = parts.next()?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    // Howard Hinnant's days_from_civil, the inverse of `civil_from_days`.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some((era * 146_097 + doe - 719_468) * 86_400_000)
}

#[cfg(test)]
mod gallery_tests {
    use super::*;

    #[test]
    fn day_starts_round_trip_with_format_utc() {
        for ms in [0i64, 951_782_400_000, 1_763_856_000_000, 4_102_444_800_000] {
            let date = &format_utc(ms)[..10];
            assert_eq!(utc_day_start_ms(date), Some(ms), "{date}");
        }
        assert_eq!(utc_day_start_ms("2024-02-29"), Some(1_709_164_800_000));
        assert_eq!(utc_day_start_ms("2024-13-01"), None);
        assert_eq!(utc_day_start_ms("yesterday"), None);
    }

    #[test]
    fn kinds_come_from_extensions() {
        assert_eq!(MediaKind::of_file_name("a/B.PNG"), Some(MediaKind::Image));
        assert_eq!(MediaKind::of_file_name("clip.webm"), Some(MediaKind::Video));
        assert_eq!(MediaKind::of_file_name("x.flac"), Some(MediaKind::Audio));
        assert_eq!(MediaKind::of_file_name("notes.txt"), None);
        assert_eq!(MediaKind::of_file_name("png"), None);
    }

    #[test]
    fn paths_are_encoded_per_segment() {
        assert_eq!(encode_path("sub dir/a#1%.png"), "sub%20dir/a%231%25.png");
        assert_eq!(encode_path("é.png"), "%C3%A9.png");
    }
}
