//! The preset catalog: bundles of model files users install with one click.
//!
//! Reads both real formats (the monolithic comfyui-docker `presets.yaml` and the per-preset
//! comfyui-presets registry), normalises them into [`Preset`]s and merges the layers:
//! built-in (embedded in the binary) < remote registry < workspace overrides.
//!
//! Ids: registry ids are canonical (`flux-dev-basic`); a comfyui-docker id (`FLUX_DEV_BASIC`)
//! becomes lower-case with `_` → `-` and stays reachable as an alias. Within one layer a
//! docker preset whose canonical id matches a registry preset is merged into it (the registry
//! definition wins). Bad presets are skipped and listed in [`Catalog::problems`].

pub(crate) mod docker_format;
mod locate;
mod parse;
pub(crate) mod registry_format;
pub(crate) mod remote;
mod size;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

mod service;
pub use service::{load_handle, CatalogHandle, CatalogService, CatalogSyncError};

pub use parse::{canonical_id, infer_source, normalise_url, validate_model_path};
pub use registry_format::RegistryEntry;
pub use remote::{
    RemoteFormat, RemoteRegistry, SyncReport, SyncState, MAX_REGISTRY_BYTES, REGISTRY_URL_ENV,
};
pub use size::parse_size;

/// Where a preset definition came from; later layers override earlier ones by id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CatalogLayer {
    /// Embedded in the binary (`presets/` in the repository).
    Builtin,
    /// The cached copy of the remote registry.
    Remote,
    /// `<workspace>/config/presets.yaml` and `<workspace>/config/presets/**/preset.yaml`.
    Workspace,
}

/// The hash a preset file's checksum uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChecksumAlgorithm {
    /// 64 hex digits.
    Sha256,
    /// 32 hex digits.
    Md5,
}

/// A file's expected hash, checked after download.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checksum {
    /// Which hash.
    pub algorithm: ChecksumAlgorithm,
    /// Lower-case hex.
    pub value: String,
}

/// Where a file is hosted; decides which token (if any) may be sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FileSource {
    /// `repo` is `owner/name`; `revision` a pinned commit when the preset gives one.
    HuggingFace {
        /// `owner/name` (`datasets/owner/name` for datasets).
        repo: String,
        /// A pinned commit, when the preset (or a commit-pinned URL) gives one.
        revision: Option<String>,
    },
    /// civitai.com.
    Civitai,
    /// Any other host: no token is sent.
    Direct,
}

/// One model file of a preset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PresetFile {
    /// Relative to the models folder, `/`-separated, validated (no `..`, not absolute).
    pub path: String,
    /// Normalised (`/blob/` → `/resolve/` for Hugging Face).
    pub url: String,
    /// Other URLs of the same file (`mirrors:`), normalised like `url`, tried in order after
    /// it when it is not found or its host stops answering.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mirrors: Vec<String>,
    /// The declared size in bytes (the data's "4.9GB" is 4 900 000 000).
    pub size_bytes: Option<u64>,
    /// Not installed unless asked for.
    pub optional: bool,
    /// Verified after download when given.
    pub checksum: Option<Checksum>,
    /// The host kind; decides which token may be sent.
    pub source: FileSource,
}

/// A bundle of model files installed together, normalised from either format.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Preset {
    /// Canonical id: lower-case, hyphenated (`flux-dev-basic`).
    pub id: String,
    /// Other ids that name this preset (the comfyui-docker `FLUX_DEV_BASIC` form).
    pub aliases: Vec<String>,
    /// Display name.
    pub name: String,
    /// `Image Generation`, `Video Generation`, …
    pub category: String,
    /// `image`, `video`, `audio`, …
    pub kind: String,
    /// Empty when the definition has none.
    pub description: String,
    /// What it is good for, one line.
    pub use_case: Option<String>,
    /// Search keywords.
    pub tags: Vec<String>,
    /// The preset's own semantic version, when its format has one.
    pub version: Option<String>,
    /// At least one; optional ones are flagged.
    pub files: Vec<PresetFile>,
    /// Declared download size; the sum of file sizes when not declared.
    pub download_bytes: Option<u64>,
    /// GPU memory it needs (GB as GPU makers count them, i.e. GiB); `None` when not stated.
    pub vram_gb: Option<f32>,
    /// Disk space it needs once installed.
    pub disk_bytes: Option<u64>,
    /// The layer this definition came from.
    pub layer: CatalogLayer,
    /// The file it was read from (for messages).
    pub origin: String,
}

/// A catalog problem, naming the file, the line when the parser gives one, and the field.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
#[error("{file}{}: {}{message}", line.map(|l| format!(":{l}")).unwrap_or_default(), field.as_ref().map(|f| format!("{f}: ")).unwrap_or_default())]
pub struct CatalogError {
    /// The file (built-in: its path under `presets/`; workspace: its full path; remote: the URL).
    pub file: String,
    /// 1-based; from the parser, or where the offending field was found in the text.
    pub line: Option<usize>,
    /// Like `presets.FLUX_DEV.files[2].size`.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

/// The merged catalog.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    /// By canonical id.
    pub presets: BTreeMap<String, Preset>,
    /// Problems that made a preset or a layer unusable; the rest still loads.
    pub problems: Vec<CatalogError>,
    /// Registry summaries by id (built-in `registry.json`, replaced by the remote registry's):
    /// the published version, upstream update flags.
    pub registry: BTreeMap<String, RegistryEntry>,
    /// Model path (relative to the models folder) → preset id, from `model_index.json`.
    pub model_index: BTreeMap<String, String>,
    /// What each loaded layer contributed, for diagnostics.
    pub stats: Vec<LayerStats>,
}

/// Where the workspace and remote layers live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CatalogSources {
    /// `<workspace>/config`: `presets.yaml` and/or a `presets/` registry folder are read from it.
    pub workspace_config: PathBuf,
    /// The cached copy of the remote registry (`<workspace>/data/remote-registry.json` or so).
    pub remote_cache: PathBuf,
}

/// What one layer contributed to the catalog.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerStats {
    /// The layer described.
    pub layer: CatalogLayer,
    /// Presets read in the registry format (preset.yaml, or embedded in the remote index).
    pub registry_presets: usize,
    /// Presets read in the comfyui-docker format.
    pub docker_presets: usize,
    /// Docker presets whose canonical id matched a registry preset of the same layer (merged;
    /// their docker id became an alias).
    pub merged: usize,
    /// Registry index entries without a definition (cannot be installed; skipped).
    pub index_only: usize,
    /// Problems recorded while reading this layer.
    pub problems: usize,
}

/// The presets and problems of one layer, before it is laid over the previous ones.
#[derive(Default)]
struct LayerInput {
    registry: Vec<Preset>,
    docker: Vec<Preset>,
    entries: Vec<RegistryEntry>,
    problems: Vec<CatalogError>,
}

#[derive(rust_embed::Embed)]
#[folder = "../presets/"]
struct BuiltinFiles;

const BUILTIN_DOCKER: &str = "comfyui-docker/presets.yaml";
const BUILTIN_REGISTRY: &str = "comfyui-presets/registry.json";
const BUILTIN_MODEL_INDEX: &str = "comfyui-presets/model_index.json";
const BUILTIN_PRESETS_DIR: &str = "comfyui-presets/presets/";

fn builtin_text(path: &str) -> Option<String> {
    BuiltinFiles::get(path).map(|f| String::from_utf8_lossy(&f.data).into_owned())
}

impl Catalog {
    /// The catalog embedded in the binary (parsed once per process, then cloned).
    pub fn builtin() -> Catalog {
        static BUILTIN: OnceLock<Catalog> = OnceLock::new();
        BUILTIN.get_or_init(Self::read_builtin).clone()
    }

    fn read_builtin() -> Catalog {
        parse::take_rewritten();
        let mut catalog = Catalog::default();
        let mut input = LayerInput::default();
        let layer = CatalogLayer::Builtin;

        if let Some(text) = builtin_text(BUILTIN_REGISTRY) {
            match registry_format::parse_registry_json(BUILTIN_REGISTRY, &text, layer) {
                Ok(doc) => {
                    input.entries = doc.entries;
                    input.registry.extend(doc.presets);
                    input.problems.extend(doc.problems);
                }
                Err(e) => input.problems.push(e),
            }
        }
        if let Some(text) = builtin_text(BUILTIN_MODEL_INDEX) {
            match registry_format::parse_model_index(BUILTIN_MODEL_INDEX, &text) {
                Ok(index) => catalog.model_index = index,
                Err(e) => input.problems.push(e),
            }
        }
        let mut preset_files: Vec<String> = BuiltinFiles::iter()
            .filter(|p| p.starts_with(BUILTIN_PRESETS_DIR) && p.ends_with("/preset.yaml"))
            .map(|p| p.into_owned())
            .collect();
        preset_files.sort();
        for file in preset_files {
            let Some(text) = builtin_text(&file) else {
                continue;
            };
            match registry_format::parse_preset_yaml(&file, &text, layer) {
                Ok(p) => input.registry.push(p),
                Err(e) => input.problems.push(e),
            }
        }
        if let Some(text) = builtin_text(BUILTIN_DOCKER) {
            let parsed = docker_format::parse(BUILTIN_DOCKER, &text, layer);
            input.docker = parsed.presets;
            input.problems.extend(parsed.problems);
        }
        catalog.apply_layer(layer, input);
        catalog
    }

    /// Built-in, then the remote registry's cached copy (when a registry is configured), then
    /// the workspace overrides in `sources.workspace_config`. Never fails: unreadable or bad
    /// definitions are listed in [`problems`](Self::problems).
    pub fn load(sources: &CatalogSources, remote: Option<&RemoteRegistry>) -> Catalog {
        let mut catalog = Catalog::builtin();
        if let Some(remote) = remote {
            catalog.apply_remote_cache(&remote.cache);
        }
        catalog.apply_workspace(&sources.workspace_config);
        catalog
    }

    fn apply_remote_cache(&mut self, cache: &Path) {
        parse::take_rewritten();
        let label = cache.display().to_string();
        let mut input = LayerInput::default();
        match std::fs::read_to_string(cache) {
            Ok(text) => match remote::parse_remote(&label, &text, None) {
                Ok(content) => {
                    input.registry = content.presets;
                    input.entries = content.entries;
                    input.problems = content.problems;
                    // A docker-format remote has no registry presets to merge into.
                    if content.format == RemoteFormat::DockerYaml {
                        input.docker = std::mem::take(&mut input.registry);
                    }
                }
                Err(e) => input.problems.push(e),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::debug!(cache = %label, "no cached remote registry yet");
                return;
            }
            Err(e) => input.problems.push(io_problem(&label, &e)),
        }
        self.apply_layer(CatalogLayer::Remote, input);
    }

    fn apply_workspace(&mut self, config_dir: &Path) {
        parse::take_rewritten();
        let layer = CatalogLayer::Workspace;
        let mut input = LayerInput::default();
        let docker_file = config_dir.join("presets.yaml");
        let mut any = false;
        if docker_file.is_file() {
            any = true;
            let label = docker_file.display().to_string();
            match std::fs::read_to_string(&docker_file) {
                Ok(text) => {
                    let parsed = docker_format::parse(&label, &text, layer);
                    input.docker = parsed.presets;
                    input.problems.extend(parsed.problems);
                }
                Err(e) => input.problems.push(io_problem(&label, &e)),
            }
        }
        let registry_dir = config_dir.join("presets");
        if registry_dir.is_dir() {
            any = true;
            let mut files = Vec::new();
            collect_preset_files(&registry_dir, 0, &mut files, &mut input.problems);
            files.sort();
            for file in files {
                let label = file.display().to_string();
                match std::fs::read_to_string(&file) {
                    Ok(text) => match registry_format::parse_preset_yaml(&label, &text, layer) {
                        Ok(p) => input.registry.push(p),
                        Err(e) => input.problems.push(e),
                    },
                    Err(e) => input.problems.push(io_problem(&label, &e)),
                }
            }
        }
        if any {
            self.apply_layer(layer, input);
        }
    }

    /// Merges the formats of one layer, fills requirements from its index, and lays the
    /// result over the catalog (same canonical id: replaced, aliases kept).
    fn apply_layer(&mut self, layer: CatalogLayer, input: LayerInput) {
        let LayerInput {
            registry,
            docker,
            entries,
            mut problems,
        } = input;
        let mut stats = LayerStats {
            layer,
            registry_presets: registry.len(),
            docker_presets: docker.len(),
            merged: 0,
            index_only: 0,
            problems: 0,
        };

        let mut merged: BTreeMap<String, Preset> = BTreeMap::new();
        for preset in registry {
            if let Some(earlier) = merged.get(&preset.id) {
                problems.push(CatalogError {
                    file: preset.origin.clone(),
                    line: None,
                    field: Some("id".into()),
                    message: format!(
                        "preset `{}` is also defined in {}; this later definition is used",
                        preset.id, earlier.origin
                    ),
                });
            }
            merged.insert(preset.id.clone(), preset);
        }
        for preset in docker {
            match merged.get_mut(&preset.id) {
                Some(existing) => {
                    stats.merged += 1;
                    for alias in preset.aliases {
                        add_alias(existing, alias);
                    }
                }
                None => {
                    merged.insert(preset.id.clone(), preset);
                }
            }
        }

        let entries: BTreeMap<String, RegistryEntry> =
            entries.into_iter().map(|e| (e.id.clone(), e)).collect();
        for entry in entries.values() {
            match merged.get_mut(&entry.id) {
                Some(p) => {
                    if p.vram_gb.is_none() {
                        p.vram_gb = entry.vram_gb;
                    }
                    if p.disk_bytes.is_none() {
                        p.disk_bytes = entry.disk_bytes;
                    }
                    if p.download_bytes.is_none() {
                        p.download_bytes = entry.download_bytes;
                    }
                }
                None if self.presets.contains_key(&entry.id) => {}
                None => {
                    stats.index_only += 1;
                    tracing::debug!(id = %entry.id, ?layer, "registry entry without a preset definition skipped (cannot be installed)");
                }
            }
        }
        self.registry.extend(entries);

        for (id, mut preset) in merged {
            if let Some(old) = self.presets.remove(&id) {
                tracing::debug!(%id, from = ?old.layer, to = ?layer, "preset overridden by a later layer");
                for alias in old.aliases {
                    add_alias(&mut preset, alias);
                }
            }
            self.presets.insert(id, preset);
        }
        stats.problems = problems.len();
        let rewritten = parse::take_rewritten();
        if rewritten > 0 {
            tracing::info!(layer = ?layer, files = rewritten, "Hugging Face /blob/ URLs rewritten to /resolve/ (each one at debug)");
        }
        for p in &problems {
            tracing::warn!(layer = ?layer, "preset catalog: {p}");
        }
        self.problems.extend(problems);
        self.stats.push(stats);
    }

    /// A preset by canonical id or alias (`LTX_VIDEO_T2V`, `ltx-video-t2v`; aliases and the
    /// docker spelling match case-insensitively).
    pub fn get(&self, id_or_alias: &str) -> Option<&Preset> {
        if let Some(p) = self.presets.get(id_or_alias) {
            return Some(p);
        }
        let canonical = canonical_id(id_or_alias);
        if let Some(p) = self.presets.get(&canonical) {
            return Some(p);
        }
        let wanted = id_or_alias.trim();
        self.presets
            .values()
            .find(|p| p.aliases.iter().any(|a| a.eq_ignore_ascii_case(wanted)))
    }

    /// The version the registry publishes for a preset, when it states one.
    pub fn registry_version(&self, id_or_alias: &str) -> Option<&str> {
        let id = self
            .get(id_or_alias)
            .map(|p| p.id.clone())
            .unwrap_or_else(|| canonical_id(id_or_alias));
        self.registry.get(&id).and_then(|e| e.version.as_deref())
    }

    /// The newest version known for a preset: its definition's or the registry's.
    pub fn latest_version(&self, id_or_alias: &str) -> Option<&str> {
        let own = self.get(id_or_alias).and_then(|p| p.version.as_deref());
        match (own, self.registry_version(id_or_alias)) {
            (Some(a), Some(b)) => Some(if version_newer(b, a) { b } else { a }),
            (a, b) => a.or(b),
        }
    }

    /// Whether a newer version than `installed_version` is known (definition or registry).
    pub fn update_available(&self, id_or_alias: &str, installed_version: &str) -> bool {
        self.latest_version(id_or_alias)
            .is_some_and(|latest| version_newer(latest, installed_version))
    }

    /// Which preset a model file belongs to: `model_index.json` first, then the first preset
    /// (by id) listing that path.
    pub fn preset_for_model(&self, model_path: &str) -> Option<&str> {
        let path = model_path
            .trim()
            .trim_start_matches("./")
            .replace('\\', "/");
        if let Some(p) = self.model_index.get(&path).and_then(|id| self.get(id)) {
            return Some(p.id.as_str());
        }
        self.presets
            .values()
            .find(|p| p.files.iter().any(|f| f.path == path))
            .map(|p| p.id.as_str())
    }
}

/// Adds an alias unless it is the id or already there (case-insensitively).
fn add_alias(preset: &mut Preset, alias: String) {
    if alias != preset.id
        && !preset
            .aliases
            .iter()
            .any(|a| a.eq_ignore_ascii_case(&alias))
    {
        preset.aliases.push(alias);
    }
}

fn io_problem(label: &str, e: &std::io::Error) -> CatalogError {
    CatalogError {
        file: label.to_string(),
        line: None,
        field: None,
        message: format!("cannot be read: {e}"),
    }
}

/// `preset.yaml` files below `dir` (symlinked folders are not followed).
fn collect_preset_files(
    dir: &Path,
    depth: usize,
    out: &mut Vec<PathBuf>,
    problems: &mut Vec<CatalogError>,
) {
    if depth > 8 {
        return;
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            problems.push(io_problem(&dir.display().to_string(), &e));
            return;
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() => collect_preset_files(&path, depth + 1, out, problems),
            Ok(_)
                if path
                    .file_name()
                    .is_some_and(|n| n == "preset.yaml" || n == "preset.yml")
                    && path.is_file() =>
            {
                out.push(path)
            }
            _ => {}
        }
    }
}

/// Whether version `a` is newer than `b`, for semver-ish strings (`1.2.0`, `v1.10`, `2.0.0-rc1`).
///
/// Numeric parts compare as numbers (missing parts are 0), other parts as text; a pre-release
/// (`-…`) is older than the release; build metadata (`+…`) is ignored.
pub fn version_newer(a: &str, b: &str) -> bool {
    compare_versions(a, b) == std::cmp::Ordering::Greater
}

fn compare_versions(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    fn split(v: &str) -> (&str, Option<&str>) {
        let v = v.trim();
        let v = v.strip_prefix(['v', 'V']).unwrap_or(v);
        let v = v.split('+').next().unwrap_or(v);
        match v.split_once('-') {
            Some((core, pre)) => (core, Some(pre)),
            None => (v, None),
        }
    }
    fn compare_parts(a: &str, b: &str) -> Ordering {
        let (pa, pb): (Vec<&str>, Vec<&str>) = (a.split('.').collect(), b.split('.').collect());
        for i in 0..pa.len().max(pb.len()) {
            let (x, y) = (
                pa.get(i).copied().unwrap_or("0"),
                pb.get(i).copied().unwrap_or("0"),
            );
            let ord = match (x.parse::<u64>(), y.parse::<u64>()) {
                (Ok(x), Ok(y)) => x.cmp(&y),
                (Ok(_), Err(_)) => Ordering::Less,
                (Err(_), Ok(_)) => Ordering::Greater,
                (Err(_), Err(_)) => x.cmp(y),
            };
            if ord != Ordering::Equal {
                return ord;
            }
        }
        Ordering::Equal
    }
    let ((core_a, pre_a), (core_b, pre_b)) = (split(a), split(b));
    compare_parts(core_a, core_b).then_with(|| match (pre_a, pre_b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(x), Some(y)) => compare_parts(x, y),
    })
}

/// Shared with the browser: the type lives in [`crate::model`].
pub use crate::model::VramFit;

/// Compares a requirement in GB (as GPU makers count them, i.e. GiB: "24 GB" cards have
/// 24 GiB) with the largest of the GPUs' total memory.
pub fn vram_fit(required_gb: Option<f32>, gpu_total_bytes: &[u64]) -> VramFit {
    let Some(required) = required_gb.filter(|r| r.is_finite() && *r > 0.0) else {
        return VramFit::Unknown;
    };
    let Some(&largest) = gpu_total_bytes.iter().max().filter(|b| **b > 0) else {
        return VramFit::Unknown;
    };
    let needed = f64::from(required) * (1u64 << 30) as f64;
    let total = largest as f64;
    if needed <= total * 0.85 {
        VramFit::Fits
    } else if needed <= total {
        VramFit::Tight
    } else {
        VramFit::TooBig
    }
}
