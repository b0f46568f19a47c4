//! The remote registry (`PRESET_REGISTRY_URL`): fetched, checked, cached atomically; the
//! catalog reads the cached copy, so a failed sync keeps the last good one.
//!
//! The document is either
//! - JSON in the comfyui-presets `registry.json` shape, where each entry of `presets` may also
//!   embed its full definition under `"preset": { ...preset.yaml fields... }` (entries without
//!   one only contribute their summary: version, update flag, requirements), or
//! - a comfyui-docker `presets.yaml` (YAML).
//!
//! JSON is recognised by a JSON content type or a body whose first non-space character is `{`.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_yaml::Value;

use super::docker_format::{self, Parsed};
use super::parse::Doc;
use super::registry_format::{parse_registry_json, RegistryEntry};
use super::{CatalogError, CatalogLayer, CatalogSources, Preset};

/// The environment variable that names the remote registry.
pub const REGISTRY_URL_ENV: &str = "PRESET_REGISTRY_URL";

/// A remote body larger than this is refused (the real registry is ~30 KB).
pub const MAX_REGISTRY_BYTES: usize = 16 * 1024 * 1024;

/// Which of the two accepted shapes a remote document had.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemoteFormat {
    /// registry.json shape, presets optionally embedded.
    RegistryJson,
    /// comfyui-docker presets.yaml.
    DockerYaml,
}

/// What a successful sync fetched and cached.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncReport {
    /// The shape the document had.
    pub format: RemoteFormat,
    /// Installable presets in the document.
    pub presets: usize,
    /// Registry summaries (version/update info); 0 for the docker format.
    pub entries: usize,
    /// Presets or entries that were rejected (the catalog lists them as problems when loaded).
    pub problems: usize,
    /// Size of the cached document.
    pub bytes: usize,
}

/// A parsed remote document.
#[derive(Debug)]
pub(crate) struct RemoteContent {
    pub format: RemoteFormat,
    pub entries: Vec<RegistryEntry>,
    pub presets: Vec<Preset>,
    pub problems: Vec<CatalogError>,
}

/// Parses a remote document (fetched body or cached copy); `Err` when it is not a registry at all.
pub(crate) fn parse_remote(
    file: &str,
    text: &str,
    content_type: Option<&str>,
) -> Result<RemoteContent, CatalogError> {
    let is_json = content_type.is_some_and(|c| c.to_ascii_lowercase().contains("json"))
        || text.trim_start().starts_with('{');
    if is_json {
        let doc = parse_registry_json(file, text, CatalogLayer::Remote)?;
        return Ok(RemoteContent {
            format: RemoteFormat::RegistryJson,
            entries: doc.entries,
            presets: doc.presets,
            problems: doc.problems,
        });
    }
    let doc = Doc {
        file,
        text: Some(text),
    };
    let root: Value = serde_yaml::from_str(text).map_err(|e| doc.yaml_err(&e))?;
    let presets = docker_format::document_presets(&doc, &root)?;
    let mut parsed = Parsed::default();
    docker_format::parse_presets(&doc, presets, CatalogLayer::Remote, &mut parsed);
    Ok(RemoteContent {
        format: RemoteFormat::DockerYaml,
        entries: Vec::new(),
        presets: parsed.presets,
        problems: parsed.problems,
    })
}

/// Where the remote registry is fetched from and cached to.
#[derive(Clone, Debug)]
pub struct RemoteRegistry {
    /// The document's URL (`PRESET_REGISTRY_URL`).
    pub url: String,
    /// The cached copy the catalog's remote layer is read from.
    pub cache: PathBuf,
}

impl RemoteRegistry {
    /// A registry at `url`, cached at `sources.remote_cache`.
    pub fn new(url: impl Into<String>, sources: &CatalogSources) -> Self {
        Self {
            url: url.into(),
            cache: sources.remote_cache.clone(),
        }
    }

    /// When the cached copy was last written (= the last successful sync).
    pub fn cached_at(&self) -> Option<SystemTime> {
        std::fs::metadata(&self.cache)
            .and_then(|m| m.modified())
            .ok()
    }

    /// Fetches the document, checks that it parses, and only then replaces the cached copy
    /// (temp file + fsync + rename). On failure the cache is untouched and the error says
    /// which cached copy stays in use.
    pub async fn sync(&self, client: &reqwest::Client) -> Result<SyncReport, CatalogError> {
        self.fetch_and_store(client).await.map_err(|mut e| {
            let fallback = match self.cached_at() {
                Some(t) => format!("using the cached copy from {}", format_time(t)),
                None => "no cached copy yet, so the catalog has no remote presets".to_string(),
            };
            e.message = format!("{}; {fallback}", e.message);
            e
        })
    }

    /// [`sync`](Self::sync), logging a failure once until the next success.
    pub async fn sync_logged(
        &self,
        client: &reqwest::Client,
        state: &mut SyncState,
    ) -> Result<SyncReport, CatalogError> {
        let was_failing = state.failure_reported;
        let result = self.sync(client).await;
        if state.should_log(&result) {
            if let Err(e) = &result {
                tracing::warn!(url = %self.url, "preset registry sync failed: {e}");
            }
        } else if let (Ok(report), true) = (&result, was_failing) {
            tracing::info!(url = %self.url, presets = report.presets, "preset registry sync works again");
        }
        result
    }

    async fn fetch_and_store(&self, client: &reqwest::Client) -> Result<SyncReport, CatalogError> {
        let err = |message: String| CatalogError {
            file: self.url.clone(),
            line: None,
            field: None,
            message,
        };
        let response = client
            .get(&self.url)
            .send()
            .await
            .map_err(|e| err(format!("fetching the preset registry failed: {e}")))?;
        let status = response.status();
        if !status.is_success() {
            return Err(err(format!("the preset registry answered HTTP {status}")));
        }
        if response
            .content_length()
            .is_some_and(|n| n > MAX_REGISTRY_BYTES as u64)
        {
            return Err(err(format!(
                "the preset registry is larger than {MAX_REGISTRY_BYTES} bytes"
            )));
        }
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = response
            .bytes()
            .await
            .map_err(|e| err(format!("reading the preset registry failed: {e}")))?;
        if body.len() > MAX_REGISTRY_BYTES {
            return Err(err(format!(
                "the preset registry is larger than {MAX_REGISTRY_BYTES} bytes"
            )));
        }
        let text = std::str::from_utf8(&body)
            .map_err(|_| err("the preset registry is not UTF-8 text".into()))?;
        let content = parse_remote(&self.url, text, content_type.as_deref()).map_err(|mut e| {
            e.message = format!("the preset registry is not usable: {}", e.message);
            e
        })?;
        let report = SyncReport {
            format: content.format,
            presets: content.presets.len(),
            entries: content.entries.len(),
            problems: content.problems.len(),
            bytes: body.len(),
        };
        let cache = self.cache.clone();
        let bytes = body.to_vec();
        tokio::task::spawn_blocking(move || crate::workspace::write_atomic(&cache, &bytes))
            .await
            .map_err(|e| err(format!("writing the registry cache failed: {e}")))?
            .map_err(|e| {
                err(format!(
                    "writing the registry cache {} failed: {e}",
                    self.cache.display()
                ))
            })?;
        Ok(report)
    }
}

/// Remembers whether the current run of sync failures was already reported, so a registry
/// that stays down is logged once, not at every retry.
#[derive(Clone, Debug, Default)]
pub struct SyncState {
    failure_reported: bool,
}

impl SyncState {
    /// Records an outcome; `true` when it is a failure the caller should log now (the first
    /// since the last success).
    pub fn should_log(&mut self, outcome: &Result<SyncReport, CatalogError>) -> bool {
        match outcome {
            Ok(_) => {
                self.failure_reported = false;
                false
            }
            Err(_) if self.failure_reported => false,
            Err(_) => {
                self.failure_reported = true;
                true
            }
        }
    }
}

fn format_time(t: SystemTime) -> String {
    let ms = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    };
    crate::model::format_utc(ms)
}
