//! The workflow library: the workflows on the volume (`workflows/templates`, read-only, and
//! `workflows/user`), summaries of them (format, the model files they need, the inputs a
//! user would change before running them), imports from JSON files and ComfyUI PNGs, and
//! renames, deletes and saves of the user's own workflows.
//!
//! A workflow is named by an id `"<source>:<relative path>"`: `template:sdxl/basic.json`,
//! `user:portraits/flux.json`, `comfyui:my flow.json` (ComfyUI's own `user/default/workflows`,
//! which the caller lists and loads over HTTP and hands to [`WorkflowLibrary::summarize_comfyui`]
//! / [`WorkflowLibrary::summarize_value`]; nothing here talks to the network).
//!
//! Every path is checked with [`resolve_inside`]; every write goes through [`write_atomic`].
//! The methods do blocking file I/O.
//!
//! Each person has their own workflows. The administrator's are `workflows/user/` itself
//! (as before accounts existed, so existing workspaces keep theirs); user N's are the folder
//! `workflows/user/@N/` (ids `user:@N/<path>`): a folder that comfydeck never lets anyone
//! create otherwise (names with `/` are refused), named by the user's id, which is never
//! reused. Ownership is the path: [`owner_of_id`] reads it. Templates are everyone's, to read.

pub(crate) mod analyze;
pub mod fixes;
pub mod links;
mod service;
pub use service::WorkflowService;
// The gallery reads output PNGs with the same chunk walker.
pub(crate) mod png;

use std::fs::{self, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use serde_json::Value;

pub use analyze::{apply_inputs, editable_inputs};

use crate::catalog::Catalog;
use crate::comfy::convert::{detect_format, ObjectInfo, WorkflowFormat};
use crate::workspace::{check_relative_path, resolve_inside, write_atomic};
use crate::workspace::{WorkspaceLayout, MODEL_FOLDERS};

/// Files larger than this are not read as workflows.
pub const MAX_WORKFLOW_BYTES: u64 = 64 * 1024 * 1024;

/// The administrator's user id: the owner of every workflow outside a `@N/` folder.
pub const ADMIN_USER_ID: i64 = 1;

/// The folder (inside `workflows/user/`) of user `user_id`'s workflows; `""` for the
/// administrator's, which are the top level.
pub fn owner_folder(user_id: i64) -> String {
    if user_id == ADMIN_USER_ID {
        String::new()
    } else {
        format!("@{user_id}")
    }
}

/// Who owns the user workflow at `rel` (inside `workflows/user/`).
pub fn owner_of_rel(rel: &str) -> i64 {
    rel.split_once('/')
        .and_then(|(first, _)| first.strip_prefix('@'))
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|n| n.parse().ok())
        .unwrap_or(ADMIN_USER_ID)
}

/// Who owns the workflow `id`: `Some(user id)` for user workflows, `None` for templates and
/// ComfyUI's own (and ids that do not parse).
pub fn owner_of_id(id: &str) -> Option<i64> {
    match parse_id(id) {
        Ok((WorkflowSource::User, rel)) => Some(owner_of_rel(rel)),
        _ => None,
    }
}

/// How deep `list_local` goes into sub-folders.
const MAX_DEPTH: usize = 16;

/// The longest workflow name accepted (bytes, without `.json`).
const MAX_NAME_BYTES: usize = 200;

// Types the browser sees live in the shared model.
pub use crate::model::{
    EditableInput, InputKind, InputProblem, InputValue, RequiredModel, WorkflowFileFormat,
    WorkflowSource, WorkflowSummary,
};

impl From<WorkflowFormat> for WorkflowFileFormat {
    fn from(f: WorkflowFormat) -> Self {
        match f {
            WorkflowFormat::Ui => WorkflowFileFormat::Ui,
            WorkflowFormat::Api => WorkflowFileFormat::Api,
            WorkflowFormat::Unknown => WorkflowFileFormat::Unknown,
        }
    }
}

/// One workflow of ComfyUI's listing
/// (`GET /api/userdata?dir=workflows&recurse=true&full_info=true`), with its content when the
/// caller fetched it.
#[derive(Clone, Debug, PartialEq)]
pub struct ComfyWorkflowEntry {
    /// Relative to ComfyUI's workflows folder (`my flow.json`, `sub/b.json`).
    pub path: String,
    pub modified_ms: u64,
    pub size_bytes: u64,
    pub content: Option<Value>,
}

/// Why a library operation failed.
#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    /// No workflow with that id (HTTP 404).
    #[error("{0}")]
    NotFound(String),
    /// A malformed id, name or workflow (HTTP 400).
    #[error("{0}")]
    Invalid(String),
    /// An import that holds no workflow (HTTP 400/415).
    #[error("{0}")]
    NotAWorkflow(String),
    /// A template or a ComfyUI workflow cannot be changed here (HTTP 403/409).
    #[error("{0}")]
    ReadOnly(String),
    /// The new name is taken (HTTP 409).
    #[error("{0}")]
    Conflict(String),
    /// Input values refused by [`apply_inputs`] (HTTP 400/422); one entry per value.
    #[error("{}", .0.iter().map(|p| p.message.as_str()).collect::<Vec<_>>().join("; "))]
    Inputs(Vec<InputProblem>),
    /// Not for this role: ComfyUI's own saved workflows are the administrator's (HTTP 403).
    #[error("{0}")]
    Forbidden(String),
    /// The file system failed (HTTP 500).
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    /// ComfyUI did not hand over one of its saved workflows (HTTP 502).
    #[error("ComfyUI's saved workflow cannot be read: {0}")]
    Comfy(crate::comfy::http::ComfyError),
    /// Running the workflow failed before or at ComfyUI.
    #[error(transparent)]
    Run(#[from] crate::bridge::BridgeError),
    /// A bug or a crashed worker thread (HTTP 500).
    #[error("{0}")]
    Internal(String),
}

impl crate::error::Classify for WorkflowError {
    fn kind(&self) -> crate::model::ErrorKind {
        use crate::model::ErrorKind;
        match self {
            WorkflowError::NotFound(_) => ErrorKind::NotFound,
            WorkflowError::Invalid(_)
            | WorkflowError::NotAWorkflow(_)
            | WorkflowError::Inputs(_) => ErrorKind::Invalid,
            WorkflowError::ReadOnly(_) | WorkflowError::Forbidden(_) => ErrorKind::Forbidden,
            WorkflowError::Conflict(_) => ErrorKind::Conflict,
            WorkflowError::Io { .. } | WorkflowError::Internal(_) => ErrorKind::Internal,
            WorkflowError::Comfy(_) => ErrorKind::Unavailable,
            WorkflowError::Run(e) => e.kind(),
        }
    }
}

fn io_error<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> WorkflowError + 'a {
    move |source| WorkflowError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// `(folder, file)` → the preset that provides the model file.
pub type PresetHint<'a> = &'a dyn Fn(&str, &str) -> Option<String>;

/// What a summary is computed against: ComfyUI's `/object_info` (needed to convert UI
/// workflows, name their inputs and know the combo choices), and where preset hints come from.
#[derive(Clone, Copy, Default)]
pub struct WorkflowContext<'a> {
    pub object_info: Option<&'a ObjectInfo>,
    pub preset_hint: Option<PresetHint<'a>>,
}

impl<'a> WorkflowContext<'a> {
    /// Neither object_info nor preset hints.
    pub fn new() -> Self {
        WorkflowContext::default()
    }

    pub fn with_object_info(mut self, object_info: &'a ObjectInfo) -> Self {
        self.object_info = Some(object_info);
        self
    }

    pub fn with_preset_hint(mut self, hint: PresetHint<'a>) -> Self {
        self.preset_hint = Some(hint);
        self
    }
}

/// Preset hints from the catalog: `(folder, file)` →
/// `catalog.preset_for_model("<folder>/<file>")`, also trying the folder's legacy names
/// (`clip` for `text_encoders`, `unet` for `diffusion_models`).
pub fn catalog_hint(catalog: &Catalog) -> impl Fn(&str, &str) -> Option<String> + '_ {
    move |folder: &str, file: &str| {
        let file = file.replace('\\', "/");
        model_subdirs(folder)
            .into_iter()
            .find_map(|dir| catalog.preset_for_model(&format!("{dir}/{file}")))
            .map(str::to_string)
    }
}

/// The folders under `models/` that ComfyUI reads for a folder name.
fn model_subdirs(folder: &str) -> Vec<&str> {
    MODEL_FOLDERS
        .iter()
        .find(|(name, _)| *name == folder)
        .map(|(_, subdirs)| subdirs.to_vec())
        .unwrap_or_else(|| vec![folder])
}

// ---------------------------------------------------------------------------------------
// The library

/// The workflows on the volume.
#[derive(Clone, Debug)]
pub struct WorkflowLibrary {
    templates: PathBuf,
    user: PathBuf,
    models: PathBuf,
}

impl WorkflowLibrary {
    pub fn new(layout: &WorkspaceLayout) -> Self {
        WorkflowLibrary {
            templates: layout.workflow_templates(),
            user: layout.workflow_user(),
            models: layout.models(),
        }
    }

    /// Templates then user workflows, each sorted by path: every `.json` file, sub-folders
    /// included, hidden files and folders skipped. A file that cannot be read or parsed is
    /// listed with a problem.
    pub fn list_local(&self, ctx: &WorkflowContext<'_>) -> Vec<WorkflowSummary> {
        let mut out = Vec::new();
        for source in [WorkflowSource::Template, WorkflowSource::User] {
            let base = self.base(source).expect("local source");
            let mut files = Vec::new();
            walk(base, "", 0, &mut files);
            files.sort_by_key(|rel| (rel.to_lowercase(), rel.clone()));
            for rel in files {
                if let Ok(path) = resolve_inside(base, &rel) {
                    out.push(self.summarize_file(source, &rel, &path, ctx).0);
                }
            }
        }
        out
    }

    /// What one person sees: templates, then their own workflows (the administrator's view,
    /// every user's included, is [`list_local`](Self::list_local)).
    pub fn list_own(&self, user_id: i64, ctx: &WorkflowContext<'_>) -> Vec<WorkflowSummary> {
        if user_id == ADMIN_USER_ID {
            // Admin's own are the top level, which holds everyone's folders too.
            return self.list_local(ctx);
        }
        let mut out = Vec::new();
        let folder = owner_folder(user_id);
        for (source, base, prefix) in [
            (
                WorkflowSource::Template,
                self.templates.clone(),
                String::new(),
            ),
            (
                WorkflowSource::User,
                self.user.join(&folder),
                folder.clone(),
            ),
        ] {
            let mut files = Vec::new();
            walk(&base, &prefix, usize::from(!prefix.is_empty()), &mut files);
            files.sort_by_key(|rel| (rel.to_lowercase(), rel.clone()));
            let root = self.base(source).expect("local source");
            for rel in files {
                if let Ok(path) = resolve_inside(root, &rel) {
                    out.push(self.summarize_file(source, &rel, &path, ctx).0);
                }
            }
        }
        out
    }

    /// Summaries of ComfyUI's own workflows (see [`parse_userdata_listing`]). Entries with an
    /// unsafe path, hidden or not `.json` are skipped. An entry without content is listed
    /// with format `unknown` and nothing else.
    pub fn summarize_comfyui(
        &self,
        entries: Vec<ComfyWorkflowEntry>,
        ctx: &WorkflowContext<'_>,
    ) -> Vec<WorkflowSummary> {
        let mut entries: Vec<_> = entries.into_iter().filter(|e| listable(&e.path)).collect();
        entries.sort_by_key(|e| (e.path.to_lowercase(), e.path.clone()));
        entries
            .into_iter()
            .map(|e| match &e.content {
                Some(value) => self.summarize_value(
                    WorkflowSource::ComfyUi,
                    &e.path,
                    e.modified_ms,
                    e.size_bytes,
                    value,
                    ctx,
                ),
                None => bare_summary(
                    WorkflowSource::ComfyUi,
                    &e.path,
                    e.modified_ms,
                    e.size_bytes,
                ),
            })
            .collect()
    }

    /// The summary of a workflow given as JSON (any source; used for ComfyUI's workflows
    /// after the caller fetched one).
    pub fn summarize_value(
        &self,
        source: WorkflowSource,
        path: &str,
        modified_ms: u64,
        size_bytes: u64,
        workflow: &Value,
        ctx: &WorkflowContext<'_>,
    ) -> WorkflowSummary {
        let mut summary = bare_summary(source, path, modified_ms, size_bytes);
        let on_disk = |folder: &str, file: &str| self.model_installed(folder, file);
        let analysis = analyze::analyze(workflow, ctx, &on_disk);
        summary.format = analysis.format;
        summary.node_count = analysis.node_count;
        summary.required_models = analysis.required_models;
        summary.inputs = analysis.inputs;
        summary.node_types = analysis.node_types;
        summary.problems = analysis.problems;
        summary
    }

    /// Whether a model file is in the workspace: `models/<folder>/<file>`, or under one of
    /// the folder's legacy names. A file name that is absolute or climbs with `..` is never
    /// installed. Only existence is probed, so symlinks are followed (model folders and files
    /// are often links to another volume or to a download cache).
    pub fn model_installed(&self, folder: &str, file: &str) -> bool {
        let file = file.replace('\\', "/");
        let file = file.trim_start_matches("./");
        if check_relative_path(file).is_err() {
            return false;
        }
        model_subdirs(folder).into_iter().any(|dir| {
            check_relative_path(dir).is_ok() && self.models.join(dir).join(file).exists()
        })
    }

    /// A model file with the same name (any case) as `file` in another folder of `models/`
    /// than those ComfyUI reads for `folder`: its path relative to `models/`. Looks at a few
    /// thousand entries at most (a volume can hold many files).
    pub fn model_elsewhere(&self, folder: &str, file: &str) -> Option<String> {
        const LOOKED_AT: usize = 20_000;
        let name = file.rsplit(['/', '\\']).next()?.to_lowercase();
        let own = model_subdirs(folder);
        walkdir::WalkDir::new(&self.models)
            .max_depth(6)
            .into_iter()
            .take(LOOKED_AT)
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_file())
            .filter(|e| e.file_name().to_string_lossy().to_lowercase() == name)
            .filter_map(|e| {
                let rel = e.path().strip_prefix(&self.models).ok()?;
                let rel = rel.to_string_lossy().replace('\\', "/");
                let top = rel.split('/').next()?.to_string();
                (!own.contains(&top.as_str())).then_some(rel)
            })
            .min()
    }

    /// The models folder (`<workspace>/models`).
    pub fn models_dir(&self) -> &Path {
        &self.models
    }

    /// A local workflow (template or user) and its summary.
    pub fn load(
        &self,
        id: &str,
        ctx: &WorkflowContext<'_>,
    ) -> Result<(WorkflowSummary, Value), WorkflowError> {
        let (source, rel) = parse_id(id)?;
        let base = self.base(source).ok_or_else(|| {
            WorkflowError::Invalid(format!(
                "{id} is one of ComfyUI's workflows: it is read from ComfyUI, not from the volume"
            ))
        })?;
        let path = self.existing(base, id, rel)?;
        match self.summarize_file(source, rel, &path, ctx) {
            (summary, Some(value)) => Ok((summary, value)),
            (summary, None) => Err(WorkflowError::Invalid(format!(
                "{id} cannot be used: {}",
                summary.problems.join("; ")
            ))),
        }
    }

    /// Imports a workflow file into `workflows/user/`: a JSON file (UI or API format, or a
    /// request body `{"prompt": …}`) or a PNG that ComfyUI saved (its `workflow` text chunk,
    /// else its `prompt` chunk). The name comes from `file_name` (sanitized, extension
    /// dropped); a taken name gets ` (2)`, ` (3)`, … — nothing is overwritten.
    pub fn import(
        &self,
        file_name: &str,
        bytes: &[u8],
        ctx: &WorkflowContext<'_>,
    ) -> Result<WorkflowSummary, WorkflowError> {
        self.import_as(ADMIN_USER_ID, file_name, bytes, ctx)
    }

    /// [`import`](Self::import) into `user_id`'s own workflows.
    pub fn import_as(
        &self,
        user_id: i64,
        file_name: &str,
        bytes: &[u8],
        ctx: &WorkflowContext<'_>,
    ) -> Result<WorkflowSummary, WorkflowError> {
        let (value, text) = parse_import(file_name, bytes)?;
        let stem = import_stem(file_name);
        let rel = self.create_unique(&owner_folder(user_id), &stem, text.as_bytes())?;
        Ok(self.stored_summary(&rel, &value, ctx))
    }

    /// Saves a workflow (UI or API format) as a new user workflow named `name`; a taken name
    /// gets ` (2)`, ` (3)`, …. The name is checked like [`rename`](Self::rename)'s.
    pub fn save(
        &self,
        name: &str,
        workflow: &Value,
        ctx: &WorkflowContext<'_>,
    ) -> Result<WorkflowSummary, WorkflowError> {
        self.save_as(ADMIN_USER_ID, name, workflow, ctx)
    }

    /// [`save`](Self::save) into user `user_id`'s own folder.
    pub fn save_as(
        &self,
        user_id: i64,
        name: &str,
        workflow: &Value,
        ctx: &WorkflowContext<'_>,
    ) -> Result<WorkflowSummary, WorkflowError> {
        let stem = check_name(name)?;
        require_workflow(workflow)?;
        let text = pretty(workflow);
        let rel = self.create_unique(&owner_folder(user_id), &stem, text.as_bytes())?;
        Ok(self.stored_summary(&rel, workflow, ctx))
    }

    /// Replaces the content of an existing user workflow (atomically).
    pub fn update(
        &self,
        id: &str,
        workflow: &Value,
        ctx: &WorkflowContext<'_>,
    ) -> Result<WorkflowSummary, WorkflowError> {
        let (source, rel) = parse_id(id)?;
        require_user(source, id, "changed")?;
        let path = self.existing(&self.user, id, rel)?;
        require_workflow(workflow)?;
        write_atomic(&path, pretty(workflow).as_bytes()).map_err(io_error("write", &path))?;
        Ok(self.summarize_file(source, rel, &path, ctx).0)
    }

    /// Renames a user workflow within its folder. `new_name` is a file name (`.json` is
    /// added when missing); `/`, `\`, `..`, control characters and a leading dot are refused.
    /// A taken name is refused, never overwritten. Returns the new summary.
    pub fn rename(
        &self,
        id: &str,
        new_name: &str,
        ctx: &WorkflowContext<'_>,
    ) -> Result<WorkflowSummary, WorkflowError> {
        let (source, rel) = parse_id(id)?;
        require_user(source, id, "renamed")?;
        let path = self.existing(&self.user, id, rel)?;
        let file = format!("{}.json", check_name(new_name)?);
        let new_rel = match rel.rsplit_once('/') {
            Some((folder, _)) => format!("{folder}/{file}"),
            None => file.clone(),
        };
        if new_rel != rel {
            let new_path = resolve_inside(&self.user, &new_rel).map_err(|e| {
                WorkflowError::Invalid(format!("cannot rename to {new_name:?}: {e}"))
            })?;
            move_no_replace(&path, &new_path, &file)?;
        }
        let new_path = resolve_inside(&self.user, &new_rel)
            .map_err(|e| WorkflowError::Invalid(e.to_string()))?;
        Ok(self.summarize_file(source, &new_rel, &new_path, ctx).0)
    }

    /// Deletes a user workflow.
    pub fn delete(&self, id: &str) -> Result<(), WorkflowError> {
        let (source, rel) = parse_id(id)?;
        require_user(source, id, "deleted")?;
        let path = self.existing(&self.user, id, rel)?;
        fs::remove_file(&path).map_err(io_error("delete", &path))
    }

    /// Moves user `user_id`'s folder to the administrator's top level as
    /// `<username> (removed)` (or `… (removed 2)`, …); returns how many workflows it held.
    pub fn hand_over_to_admin(&self, user_id: i64, username: &str) -> Result<usize, WorkflowError> {
        let folder = owner_folder(user_id);
        if folder.is_empty() {
            return Ok(0);
        }
        let from = self.user.join(&folder);
        if !fs::symlink_metadata(&from).is_ok_and(|m| m.is_dir()) {
            return Ok(0);
        }
        let mut files = Vec::new();
        walk(&from, "", 1, &mut files);
        let stem = check_name(username).unwrap_or_else(|_| format!("user {user_id}"));
        for n in 1..=1000u32 {
            let name = if n == 1 {
                format!("{stem} (removed)")
            } else {
                format!("{stem} (removed {n})")
            };
            let to = self.user.join(&name);
            if fs::symlink_metadata(&to).is_ok() {
                continue;
            }
            fs::rename(&from, &to).map_err(io_error("move", &from))?;
            return Ok(files.len());
        }
        Err(WorkflowError::Conflict(format!(
            "too many folders are named {stem} (removed)"
        )))
    }

    fn base(&self, source: WorkflowSource) -> Option<&Path> {
        match source {
            WorkflowSource::Template => Some(&self.templates),
            WorkflowSource::User => Some(&self.user),
            WorkflowSource::ComfyUi => None,
        }
    }

    /// The file of a local id, which must exist.
    fn existing(&self, base: &Path, id: &str, rel: &str) -> Result<PathBuf, WorkflowError> {
        let path = resolve_inside(base, rel)
            .map_err(|e| WorkflowError::Invalid(format!("workflow id {id:?} is refused: {e}")))?;
        if !path.is_file() {
            return Err(WorkflowError::NotFound(format!(
                "workflow {id} does not exist"
            )));
        }
        Ok(path)
    }

    /// Reads and summarizes one local file; the JSON too when it parsed.
    fn summarize_file(
        &self,
        source: WorkflowSource,
        rel: &str,
        path: &Path,
        ctx: &WorkflowContext<'_>,
    ) -> (WorkflowSummary, Option<Value>) {
        let meta = fs::metadata(path).ok();
        let modified_ms = meta.as_ref().map_or(0, modified_ms);
        let size = meta.as_ref().map_or(0, |m| m.len());
        let broken = |problem: String| {
            let mut summary = bare_summary(source, rel, modified_ms, size);
            summary.problems.push(problem);
            (summary, None)
        };
        if size > MAX_WORKFLOW_BYTES {
            return broken(format!(
                "the file is too large to be a workflow ({size} bytes, at most \
                 {MAX_WORKFLOW_BYTES})"
            ));
        }
        let bytes = match fs::read(path) {
            Ok(b) => b,
            Err(e) => return broken(format!("the file cannot be read: {e}")),
        };
        match parse_json(&bytes) {
            Ok(value) => {
                let summary = self.summarize_value(source, rel, modified_ms, size, &value, ctx);
                (summary, Some(value))
            }
            Err(e) => broken(e),
        }
    }

    /// The summary of a user workflow just written from `value`.
    fn stored_summary(
        &self,
        rel: &str,
        value: &Value,
        ctx: &WorkflowContext<'_>,
    ) -> WorkflowSummary {
        let (modified_ms, size) = self
            .user
            .join(rel)
            .metadata()
            .map(|m| (modified_ms(&m), m.len()))
            .unwrap_or((0, 0));
        self.summarize_value(WorkflowSource::User, rel, modified_ms, size, value, ctx)
    }

    /// Writes `<stem>.json` (or `<stem> (n).json`) into `folder` of the user folder (`""`:
    /// its top level) without replacing anything; returns its relative path.
    fn create_unique(
        &self,
        folder: &str,
        stem: &str,
        bytes: &[u8],
    ) -> Result<String, WorkflowError> {
        fs::create_dir_all(&self.user).map_err(io_error("create", &self.user))?;
        if !folder.is_empty() {
            let dir = resolve_inside(&self.user, folder)
                .map_err(|e| WorkflowError::Invalid(format!("cannot save into {folder:?}: {e}")))?;
            fs::create_dir_all(&dir).map_err(io_error("create", &dir))?;
        }
        for n in 1..=10_000u32 {
            let file = if n == 1 {
                format!("{stem}.json")
            } else {
                format!("{stem} ({n}).json")
            };
            let name = if folder.is_empty() {
                file
            } else {
                format!("{folder}/{file}")
            };
            let path = resolve_inside(&self.user, &name)
                .map_err(|e| WorkflowError::Invalid(format!("cannot save as {name:?}: {e}")))?;
            // Claims the name first (create_new fails on a taken one), then fills it
            // atomically.
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(_) => {
                    if let Err(e) = write_atomic(&path, bytes) {
                        let _ = fs::remove_file(&path);
                        return Err(io_error("write", &path)(e));
                    }
                    return Ok(name);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io_error("create", &path)(e)),
            }
        }
        Err(WorkflowError::Conflict(format!(
            "too many workflows are named {stem}; pick another name"
        )))
    }
}

/// Reads ComfyUI's workflow listing, in any of its shapes: `GET /api/userdata?dir=workflows`
/// (names), with `&full_info=true` (`{path, size, modified}` with seconds), with `&split=true`
/// (`[path, …parts]`), or `GET /api/v2/userdata?path=workflows` (`{name, path, type, …}`,
/// paths starting with `workflows/`). Only `.json` files that are not hidden are kept;
/// `content` is `None`.
pub fn parse_userdata_listing(body: &Value) -> Vec<ComfyWorkflowEntry> {
    let Some(items) = body.as_array() else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| {
            let (path, size, modified) = match item {
                Value::String(p) => (p.clone(), None, None),
                Value::Array(parts) => (parts.first()?.as_str()?.to_string(), None, None),
                Value::Object(o) => {
                    let mut path = o.get("path")?.as_str()?.to_string();
                    if let Some(kind) = o.get("type") {
                        if kind.as_str() != Some("file") {
                            return None;
                        }
                        path = path.strip_prefix("workflows/")?.to_string();
                    }
                    (
                        path,
                        o.get("size").and_then(Value::as_u64),
                        o.get("modified").and_then(Value::as_f64),
                    )
                }
                _ => return None,
            };
            let path = path.replace('\\', "/");
            listable(&path).then(|| ComfyWorkflowEntry {
                path,
                modified_ms: modified.map_or(0, |s| (s * 1000.0).max(0.0) as u64),
                size_bytes: size.unwrap_or(0),
                content: None,
            })
        })
        .collect()
}

/// The workflow JSON embedded in a PNG that ComfyUI saved: the `workflow` text chunk (UI
/// format) when there is a usable one, else the `prompt` chunk (API format). Returns the
/// value and its text.
pub fn workflow_from_png(bytes: &[u8]) -> Result<(Value, String), WorkflowError> {
    if !png::is_png(bytes) {
        return Err(WorkflowError::NotAWorkflow(
            "this is not a PNG image".into(),
        ));
    }
    let found = png::text_chunks(bytes);
    let mut reasons = Vec::new();
    // The UI workflow keeps layout, groups and notes: preferred to the API prompt.
    for keyword in ["workflow", "prompt"] {
        for chunk in found.chunks.iter().filter(|c| c.keyword == keyword) {
            let text = match &chunk.text {
                Ok(t) => t,
                Err(why) => {
                    reasons.push(format!("the `{keyword}` chunk cannot be read: {why}"));
                    continue;
                }
            };
            match serde_json::from_str::<Value>(text) {
                Ok(value) => {
                    if detect_format(&value) != WorkflowFormat::Unknown {
                        return Ok((value, text.clone()));
                    }
                    reasons.push(format!(
                        "the `{keyword}` chunk is JSON but not a ComfyUI workflow"
                    ));
                }
                Err(e) => reasons.push(format!("the `{keyword}` chunk is not valid JSON: {e}")),
            }
        }
    }
    if let Some(damage) = found.damage {
        reasons.push(format!("the PNG is damaged: {damage}"));
    }
    let mut message = "not a workflow image: this PNG has no ComfyUI workflow embedded (no \
                       `workflow` or `prompt` text chunk); only images saved by ComfyUI's Save \
                       Image node carry one"
        .to_string();
    if !reasons.is_empty() {
        message = format!(
            "not a workflow image: no usable ComfyUI workflow in this PNG ({})",
            reasons.join("; ")
        );
    }
    Err(WorkflowError::NotAWorkflow(message))
}

// ---------------------------------------------------------------------------------------
// Helpers

fn modified_ms(meta: &fs::Metadata) -> u64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as u64)
}

fn pretty(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
    text.push('\n');
    text
}

/// Whether `name` ends in `.json` (any case) after at least one byte. Compares bytes: the
/// fifth byte from the end may be inside a multi-byte character (found by fuzzing); when the
/// suffix matches, `name.len() - 5` is the `.`, a character boundary the callers slice at.
fn has_json_extension(name: &str) -> bool {
    name.len() > 5 && name.as_bytes()[name.len() - 5..].eq_ignore_ascii_case(b".json")
}

/// Whether a relative path names a workflow file that may be listed.
fn listable(rel: &str) -> bool {
    check_relative_path(rel).is_ok()
        && has_json_extension(rel)
        && !rel.split('/').any(|segment| segment.starts_with('.'))
}

/// `name` of `sub/name.json`.
fn stem_of(rel: &str) -> String {
    let file = rel.rsplit('/').next().unwrap_or(rel);
    if has_json_extension(file) {
        file[..file.len() - 5].to_string()
    } else {
        file.to_string()
    }
}

fn bare_summary(
    source: WorkflowSource,
    rel: &str,
    modified_ms: u64,
    size_bytes: u64,
) -> WorkflowSummary {
    WorkflowSummary {
        id: format!("{}:{rel}", source.as_str()),
        source,
        name: stem_of(rel),
        path: rel.to_string(),
        format: WorkflowFileFormat::Unknown,
        node_count: 0,
        modified_ms,
        size_bytes,
        required_models: Vec::new(),
        inputs: Vec::new(),
        node_types: Vec::new(),
        problems: Vec::new(),
    }
}

/// `user:sub/a.json` → (User, `sub/a.json`), refusing unknown sources and unsafe paths.
fn parse_id(id: &str) -> Result<(WorkflowSource, &str), WorkflowError> {
    let Some((source, rel)) = id.split_once(':') else {
        return Err(WorkflowError::Invalid(format!(
            "{id:?} is not a workflow id (expected <template|user|comfyui>:<path>)"
        )));
    };
    let source = WorkflowSource::parse(source).ok_or_else(|| {
        WorkflowError::Invalid(format!(
            "{id:?}: unknown workflow source {source:?} (expected template, user or comfyui)"
        ))
    })?;
    check_relative_path(rel)
        .map_err(|e| WorkflowError::Invalid(format!("workflow id {id:?} is refused: {e}")))?;
    if rel.split('/').any(|segment| segment.starts_with('.')) {
        return Err(WorkflowError::Invalid(format!(
            "workflow id {id:?} is refused: hidden files are not workflows"
        )));
    }
    if !has_json_extension(rel) {
        return Err(WorkflowError::NotFound(format!(
            "workflow {id} does not exist (workflows are .json files)"
        )));
    }
    Ok((source, rel))
}

fn require_user(source: WorkflowSource, id: &str, verb: &str) -> Result<(), WorkflowError> {
    match source {
        WorkflowSource::User => Ok(()),
        WorkflowSource::Template => Err(WorkflowError::ReadOnly(format!(
            "{id} is a template, and templates cannot be {verb}; save a copy to your workflows \
             first"
        ))),
        WorkflowSource::ComfyUi => Err(WorkflowError::ReadOnly(format!(
            "{id} is kept by ComfyUI and cannot be {verb} here; do it in ComfyUI, or import a \
             copy into your workflows"
        ))),
    }
}

/// Refuses JSON that is neither a UI workflow nor an API prompt.
fn require_workflow(value: &Value) -> Result<(), WorkflowError> {
    match detect_format(value) {
        WorkflowFormat::Ui | WorkflowFormat::Api => Ok(()),
        WorkflowFormat::Unknown => Err(WorkflowError::NotAWorkflow(
            "this JSON is neither a ComfyUI workflow (an object with `nodes` and `links` \
             arrays) nor an API prompt (node id → {class_type, inputs})"
                .into(),
        )),
    }
}

/// Checks a name that a user typed; returns it without `.json`.
pub(crate) fn check_name(name: &str) -> Result<String, WorkflowError> {
    let trimmed = name.trim();
    let stem = if has_json_extension(trimmed) {
        trimmed[..trimmed.len() - 5].trim_end()
    } else {
        trimmed
    };
    let refuse = |why: &str| Err(WorkflowError::Invalid(format!("the name {name:?} {why}")));
    if stem.is_empty() {
        return refuse("is empty");
    }
    if stem.contains('/') || stem.contains('\\') {
        return refuse("contains / or \\; a name cannot lead into another folder");
    }
    if stem.contains("..") {
        return refuse("contains '..'");
    }
    if stem.chars().any(char::is_control) {
        return refuse("contains a control character");
    }
    if stem.starts_with('.') {
        return refuse("starts with a dot (that would hide the file)");
    }
    if stem.len() > MAX_NAME_BYTES {
        return refuse(&format!("is longer than {MAX_NAME_BYTES} bytes"));
    }
    Ok(stem.to_string())
}

/// A safe file stem from an uploaded file's name: its last path component without its
/// extension, separators and control characters replaced, leading dots dropped.
pub(crate) fn import_stem(file_name: &str) -> String {
    let last = file_name
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or_default()
        .trim();
    let without_ext = match last.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() && !ext.contains(' ') && ext.len() <= 5 => stem,
        _ => last,
    };
    let mut stem: String = without_ext
        .chars()
        .map(|c| if c.is_control() { '_' } else { c })
        .collect::<String>()
        .replace("..", "_");
    stem = stem.trim_start_matches(['.', ' ']).trim_end().to_string();
    if stem.len() > MAX_NAME_BYTES {
        let mut end = MAX_NAME_BYTES;
        while !stem.is_char_boundary(end) {
            end -= 1;
        }
        stem.truncate(end);
    }
    if stem.is_empty() {
        "workflow".to_string()
    } else {
        stem
    }
}

/// JSON from file bytes (a UTF-8 BOM is allowed).
fn parse_json(bytes: &[u8]) -> Result<Value, String> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err("the file is empty".into());
    }
    serde_json::from_slice(bytes).map_err(|e| format!("not valid JSON: {e}"))
}

/// An import's workflow and the text to store.
pub(crate) fn parse_import(
    file_name: &str,
    bytes: &[u8],
) -> Result<(Value, String), WorkflowError> {
    let not = |what: &str| {
        Err(WorkflowError::NotAWorkflow(format!(
            "not a workflow image: {file_name:?} is {what}; comfydeck reads workflows from .json \
             files and from PNG images saved by ComfyUI"
        )))
    };
    if bytes.is_empty() {
        return Err(WorkflowError::NotAWorkflow(format!(
            "{file_name:?} is empty"
        )));
    }
    if png::is_png(bytes) {
        return workflow_from_png(bytes);
    }
    if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        return not("a WebP image");
    }
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return not("a JPEG image");
    }
    if bytes.starts_with(b"GIF8") {
        return not("a GIF image");
    }
    if bytes.len() as u64 > MAX_WORKFLOW_BYTES {
        return Err(WorkflowError::NotAWorkflow(format!(
            "{file_name:?} is too large to be a workflow"
        )));
    }
    let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let Ok(text) = std::str::from_utf8(body) else {
        return not("neither JSON nor a PNG image");
    };
    let value: Value = serde_json::from_str(text).map_err(|e| {
        if text.trim_start().starts_with(['{', '[']) {
            WorkflowError::NotAWorkflow(format!("{file_name:?} is not valid JSON: {e}"))
        } else {
            WorkflowError::NotAWorkflow(format!(
                "{file_name:?} is neither JSON nor a PNG image; comfydeck reads workflows from \
                 .json files and from PNG images saved by ComfyUI"
            ))
        }
    })?;
    match detect_format(&value) {
        WorkflowFormat::Ui | WorkflowFormat::Api => Ok((value, text.to_string())),
        WorkflowFormat::Unknown => {
            // A `POST /prompt` body: its UI workflow (extra_pnginfo) or its prompt.
            let inner = [
                value.pointer("/extra_data/extra_pnginfo/workflow"),
                value.get("prompt"),
                value.get("workflow"),
            ]
            .into_iter()
            .flatten()
            .find(|v| detect_format(v) != WorkflowFormat::Unknown);
            match inner {
                Some(inner) => Ok((inner.clone(), pretty(inner))),
                None => Err(WorkflowError::NotAWorkflow(format!(
                    "{file_name:?} is JSON but not a ComfyUI workflow: it has neither `nodes` \
                     and `links` arrays (a workflow saved from ComfyUI) nor node id → \
                     {{class_type, inputs}} entries (an API prompt)"
                ))),
            }
        }
    }
}

/// Moves a file to a name that must not be taken: a hard link (which fails on a taken
/// name) then removal of the old name; a plain rename where hard links are not supported.
fn move_no_replace(from: &Path, to: &Path, shown: &str) -> Result<(), WorkflowError> {
    let taken = || WorkflowError::Conflict(format!("a workflow named {shown} already exists"));
    match fs::hard_link(from, to) {
        Ok(()) => {
            if let Err(e) = fs::remove_file(from) {
                let _ = fs::remove_file(to);
                return Err(io_error("rename", from)(e));
            }
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(taken()),
        Err(_) => {
            if fs::symlink_metadata(to).is_ok() {
                return Err(taken());
            }
            fs::rename(from, to).map_err(io_error("rename", from))
        }
    }
}

/// Collects the `.json` files under `dir` (paths relative to where the walk began),
/// skipping hidden entries and symlinked folders.
fn walk(dir: &Path, prefix: &str, depth: usize, out: &mut Vec<String>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        let rel = if prefix.is_empty() {
            name.to_string()
        } else {
            format!("{prefix}/{name}")
        };
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            if depth < MAX_DEPTH {
                walk(&entry.path(), &rel, depth + 1, out);
            }
        } else if has_json_extension(name)
            && (kind.is_file() || entry.path().metadata().is_ok_and(|m| m.is_file()))
            && check_relative_path(&rel).is_ok()
        {
            out.push(rel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_uploads_are_made_safe() {
        assert_eq!(import_stem("view_output.png"), "view_output");
        assert_eq!(import_stem("C:\\Users\\me\\my flow.json"), "my flow");
        assert_eq!(import_stem("../../etc/passwd"), "passwd");
        assert_eq!(import_stem(".hidden.json"), "hidden");
        assert_eq!(import_stem("a\u{7}b..c.json"), "a_b_c");
        assert_eq!(import_stem(""), "workflow");
        assert_eq!(import_stem("flux v1.0 final.json"), "flux v1.0 final");
    }

    #[test]
    fn typed_names_are_checked() {
        assert_eq!(check_name(" portrait.json ").unwrap(), "portrait");
        assert_eq!(check_name("portrait").unwrap(), "portrait");
        for bad in [
            "",
            "a/b",
            "a\\b",
            "..",
            "x..y",
            ".hidden",
            "tab\there",
            ".json",
        ] {
            assert!(check_name(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn ids_are_parsed_and_checked() {
        assert_eq!(
            parse_id("user:sub/a.json").unwrap(),
            (WorkflowSource::User, "sub/a.json")
        );
        assert!(matches!(
            parse_id("user:../a.json"),
            Err(WorkflowError::Invalid(_))
        ));
        assert!(matches!(
            parse_id("user:/etc/a.json"),
            Err(WorkflowError::Invalid(_))
        ));
        assert!(matches!(
            parse_id("disk:a.json"),
            Err(WorkflowError::Invalid(_))
        ));
        assert!(matches!(parse_id("a.json"), Err(WorkflowError::Invalid(_))));
        assert!(matches!(
            parse_id("user:a.txt"),
            Err(WorkflowError::NotFound(_))
        ));
    }
}
