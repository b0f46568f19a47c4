//! Recovery: every failure that needs a person, in one list, classified, with what can be done.

use serde::{Deserialize, Serialize};

use super::named::named_enum;

named_enum! {
    /// What failed.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
    pub enum FailureSource {
        /// One file's download.
        Download = "download",
        /// A preset's install (as a whole).
        Preset = "preset",
        /// A "make runnable" operation.
        Operation = "operation",
        /// A queue job (a run).
        Job = "job",
        /// The supervised ComfyUI process.
        Comfyui = "comfyui",
        /// The preset registry's or the node map's sync.
        Sync = "sync",
        /// A custom-node pack's install or update asked for on the Nodes page, the API or the
        /// CLI (one a "make runnable" asks for is that operation's).
        Pack = "pack",
    }
}

named_enum! {
    /// A catalog the deck keeps in step with a remote copy.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum SyncKind {
        /// `PRESET_REGISTRY_URL`.
        PresetRegistry = "preset_registry",
        /// `NODE_MAP_URL`.
        NodeMap = "node_map",
    }
}

impl SyncKind {
    /// In words, for the Recovery page.
    pub fn label(self) -> &'static str {
        match self {
            SyncKind::PresetRegistry => "preset registry sync",
            SyncKind::NodeMap => "node map sync",
        }
    }
}

/// How a custom-node pack's install or update ended; `error` is `None` when it worked.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PackOutcome {
    /// `install` or `update`.
    pub change: String,
    /// The pack's id, or the repository asked for when the install failed before one was
    /// known.
    pub pack: String,
    /// What a retry asks for again: the repository (or the pack's id) and the version.
    pub repo: Option<String>,
    pub id: Option<String>,
    pub version: Option<String>,
    pub error: Option<String>,
}

/// How a sync ended; `error` is `None` when it worked.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SyncOutcome {
    pub kind: SyncKind,
    pub error: Option<String>,
}

named_enum! {
    /// Why it failed, as a person would group it.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
    pub enum FailureClass {
        Network = "network",
        Auth = "auth",
        Licence = "licence",
        NotFound = "not_found",
        RateLimited = "rate_limited",
        DiskFull = "disk_full",
        Integrity = "integrity",
        Dependency = "dependency",
        Validation = "validation",
        OutOfMemory = "out_of_memory",
        ComfyuiCrashed = "comfyui_crashed",
        Unknown = "unknown",
    }
}

impl FailureClass {
    /// The class in a few words, for lists and the banner.
    pub fn label(self) -> &'static str {
        match self {
            FailureClass::Network => "network problem",
            FailureClass::Auth => "token missing or wrong",
            FailureClass::Licence => "licence not accepted",
            FailureClass::NotFound => "not found",
            FailureClass::RateLimited => "rate-limited",
            FailureClass::DiskFull => "disk full",
            FailureClass::Integrity => "damaged download",
            FailureClass::Dependency => "dependency conflict",
            FailureClass::Validation => "refused by ComfyUI",
            FailureClass::OutOfMemory => "out of GPU memory",
            FailureClass::ComfyuiCrashed => "ComfyUI crashed",
            FailureClass::Unknown => "failed",
        }
    }
}

named_enum! {
    /// What a person can do about a failure.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum RecoveryAction {
        /// Try it again as it is.
        Retry = "retry",
        /// Go on with a paused download from the bytes it has (once there is space).
        Resume = "resume",
        /// Save a token in Settings, then retry.
        AddToken = "add_token",
        /// Accept the model's licence (the failure's link), then retry.
        AcceptLicence = "accept_licence",
        /// Remove models or partial downloads (the Models page), then retry.
        FreeSpace = "free_space",
        /// Download the file from another URL the person gives (`url`); the old ones stay
        /// as its next sources.
        UseSource = "use_source",
        RestartComfyui = "restart_comfyui",
        /// Undo what the failed preset install or "make runnable" did so far (its restore
        /// point); administrators.
        RollBack = "roll_back",
        /// Nothing to do here: hide it.
        Dismiss = "dismiss",
    }
}

named_enum! {
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum FailureState {
        /// Needs a person.
        Open = "open",
        /// It worked later (by itself or after an action).
        Resolved = "resolved",
        Dismissed = "dismissed",
    }
}

/// One failure as the Recovery page shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FailureView {
    pub id: i64,
    pub source: FailureSource,
    /// What failed, in words: `checkpoints/flux1-dev.safetensors`, `preset FLUX_DEV`.
    pub subject: String,
    pub class: FailureClass,
    /// What happened and what to do, for anyone.
    pub sentence: String,
    /// The technical message behind it.
    pub detail: String,
    /// Where to go (a licence page, the Models page, Settings).
    pub link: Option<String>,
    pub actions: Vec<RecoveryAction>,
    /// Times it failed since it was first seen.
    pub count: u32,
    pub first_ms: i64,
    pub last_ms: i64,
    pub state: FailureState,
    /// Whose it is (operations and jobs); `None`: the pod's (administrators').
    pub user_id: Option<i64>,
}

/// How often a class happened in the last seven days.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassCount {
    pub class: FailureClass,
    pub count: u32,
}

named_enum! {
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum RestoreState {
        /// What the change added is still there.
        Kept = "kept",
        RolledBack = "rolled_back",
    }
}

named_enum! {
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum RestoreChange {
        /// The change added this file.
        Created = "created",
        /// The change replaces a file that was there (kept as a hard link until rolled back).
        Replaced = "replaced",
        /// A hard link to a file elsewhere in the models folder (removed while it still is one).
        Linked = "linked",
        /// A preset the change installed (its own restore point is rolled back with it).
        Preset = "preset",
        /// A custom-node pack the change installed (removed when rolled back).
        Pack = "pack",
        /// A custom-node pack the change checked out at another commit (checked out at its
        /// old one again, and the Python packages the change altered put back, when rolled
        /// back).
        PackUpdated = "pack_updated",
    }
}

/// One file a restore point covers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreItem {
    /// Relative to the models folder; a preset's id or a pack's id for those changes.
    pub path: String,
    pub change: RestoreChange,
}

/// What a preset install or a "make runnable" was about to add or replace, recorded before it
/// started.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestorePointView {
    pub id: i64,
    /// `preset` or `operation`.
    pub kind: String,
    /// The preset id, or the operation's id.
    pub target: String,
    /// `install FLUX Dev`.
    pub subject: String,
    pub created_ms: i64,
    pub state: RestoreState,
    pub rolled_back_ms: Option<i64>,
    pub items: Vec<RestoreItem>,
    /// What the rollback did and what it kept, in words.
    pub note: Option<String>,
}

named_enum! {
    /// What a partial download belongs to.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum PartOwner {
        /// A download that is queued, running or paused: it goes on from these bytes.
        Download = "download",
        /// A download that failed: kept for a retry until it is old.
        Failed = "failed",
        /// Nothing: left by a cancelled or forgotten download.
        Abandoned = "abandoned",
    }
}

/// A `.part` file in the models folder.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartialFile {
    /// The file it is becoming, relative to the models folder.
    pub path: String,
    pub bytes: u64,
    /// Last written.
    pub modified_ms: i64,
    pub owner: PartOwner,
}

/// `GET /api/recovery`: what needs a person, newest first, and the week's figures.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RecoveryList {
    pub open: Vec<FailureView>,
    /// Resolved or dismissed lately (newest first, a few).
    pub recent: Vec<FailureView>,
    pub week: Vec<ClassCount>,
    /// Partial downloads, biggest first (administrators only; empty for others).
    #[serde(default)]
    pub partial_files: Vec<PartialFile>,
}

impl RecoveryList {
    /// The banner's sentence, `None` when nothing needs attention: `2 downloads need a token`.
    pub fn banner(&self) -> Option<String> {
        banner_line(&self.open)
    }
}

/// The one sentence for open failures: the most common class and source, and how many.
pub fn banner_line(open: &[FailureView]) -> Option<String> {
    let first = open.first()?;
    let n = open.len();
    if open
        .iter()
        .all(|f| f.class == first.class && f.source == first.source)
    {
        let what = match (first.source, n) {
            (FailureSource::Download, 1) => "A download".to_string(),
            (FailureSource::Download, n) => format!("{n} downloads"),
            (FailureSource::Preset, 1) => "A preset install".to_string(),
            (FailureSource::Preset, n) => format!("{n} preset installs"),
            (FailureSource::Operation, 1) => "A \"make runnable\"".to_string(),
            (FailureSource::Operation, n) => format!("{n} \"make runnable\" operations"),
            (FailureSource::Job, 1) => "A run".to_string(),
            (FailureSource::Job, n) => format!("{n} runs"),
            (FailureSource::Comfyui, _) => "ComfyUI".to_string(),
            (FailureSource::Pack, 1) => "A custom-node pack change".to_string(),
            (FailureSource::Pack, n) => format!("{n} custom-node pack changes"),
            (FailureSource::Sync, 1) => "A catalog sync".to_string(),
            (FailureSource::Sync, n) => format!("{n} catalog syncs"),
        };
        return Some(format!("{what} failed: {}", first.class.label()));
    }
    Some(format!(
        "{n} things need attention (the newest: {}, {})",
        first.subject,
        first.class.label()
    ))
}

/// `POST /api/recovery/act`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecoveryActRequest {
    pub id: i64,
    pub action: RecoveryAction,
}

/// What `retry-all` did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryAllOutcome {
    pub retried: u32,
    /// Those that cannot be retried as they are (a token, space or a licence is needed first).
    pub skipped: u32,
}
