//! The node map: which repository provides which node class, in ComfyUI-Manager's
//! `extension-node-map.json` format —
//!
//! ```json
//! { "https://github.com/owner/repo": [ ["ClassA", "ClassB"], { "title_aux": "…", "nodename_pattern": "…" } ] }
//! ```
//!
//! synced from `NODE_MAP_URL` into the workspace (`data/nodes/extension-node-map.json`); a
//! failed sync keeps the last good copy, like the preset registry.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

/// ComfyUI-Manager's published map: the default `NODE_MAP_URL`.
pub use crate::config::DEFAULT_NODE_MAP_URL;

/// A larger map is refused (the published one is a few MB).
pub const MAX_NODE_MAP_BYTES: usize = 64 * 1024 * 1024;

/// One repository of the map.
#[derive(Clone, Debug)]
pub struct MapEntry {
    /// The key: the repository URL (a few entries are single `.py` files, which are skipped
    /// when installing).
    pub repository: String,
    pub classes: Vec<String>,
    pub title: Option<String>,
    /// `nodename_pattern`, searched like ComfyUI-Manager does (anywhere in the class name).
    pub pattern: Option<regex::Regex>,
}

/// The parsed map.
#[derive(Clone, Debug, Default)]
pub struct NodeMap {
    pub entries: Vec<MapEntry>,
    /// Class → index of the first entry that lists it.
    by_class: BTreeMap<String, usize>,
}

impl NodeMap {
    /// Parses a map document. Entries that are not `[ [names…], {meta} ]` are skipped, as are
    /// patterns that do not compile; `Err` only when the document is not a JSON object.
    pub fn parse(text: &str) -> Result<NodeMap, String> {
        let root: Value =
            serde_json::from_str(text).map_err(|e| format!("the node map is not JSON: {e}"))?;
        let Value::Object(object) = root else {
            return Err("the node map is not a JSON object of repositories".into());
        };
        let mut map = NodeMap::default();
        for (repository, value) in object {
            let Some(parts) = value.as_array() else {
                continue;
            };
            let classes: Vec<String> = parts
                .first()
                .and_then(Value::as_array)
                .map(|names| {
                    names
                        .iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            let meta = parts.get(1).and_then(Value::as_object);
            let title = meta
                .and_then(|m| m.get("title_aux"))
                .and_then(Value::as_str)
                .map(str::to_string);
            let pattern = meta
                .and_then(|m| m.get("nodename_pattern"))
                .and_then(Value::as_str)
                .and_then(|p| regex::Regex::new(p).ok());
            let index = map.entries.len();
            for class in &classes {
                map.by_class.entry(class.clone()).or_insert(index);
            }
            map.entries.push(MapEntry {
                repository,
                classes,
                title,
                pattern,
            });
        }
        Ok(map)
    }

    /// The entry that provides `class_type`: listed by name first, else the first whose
    /// `nodename_pattern` matches. Entries that are not git repositories are never answers.
    pub fn lookup(&self, class_type: &str) -> Option<&MapEntry> {
        if let Some(&i) = self.by_class.get(class_type) {
            let entry = &self.entries[i];
            if is_git_repository(&entry.repository) {
                return Some(entry);
            }
        }
        self.entries.iter().find(|e| {
            is_git_repository(&e.repository)
                && e.pattern.as_ref().is_some_and(|p| p.is_match(class_type))
        })
    }

    /// The entry whose repository is `owner/repo` or ends in `/name` (case-insensitive), as a
    /// workflow's `aux_id` or `cnr_id` names it.
    pub fn by_name(&self, name: &str) -> Option<&MapEntry> {
        let name = name.trim().trim_end_matches(".git").to_ascii_lowercase();
        self.entries.iter().find(|e| {
            if !is_git_repository(&e.repository) {
                return false;
            }
            let repo = e
                .repository
                .trim_end_matches('/')
                .trim_end_matches(".git")
                .to_ascii_lowercase();
            repo.ends_with(&format!("/{name}"))
        })
    }

    /// The title of the entry for `repository`, when the map has it.
    pub fn title_of(&self, repository: &str) -> Option<&str> {
        let want = canonical(repository);
        self.entries
            .iter()
            .find(|e| canonical(&e.repository) == want)
            .and_then(|e| e.title.as_deref())
    }
}

fn canonical(url: &str) -> String {
    url.trim()
        .trim_end_matches('/')
        .trim_end_matches(".git")
        .to_ascii_lowercase()
}

/// Single-file entries (`…/raw/main/x.py`) are not installable by cloning.
fn is_git_repository(url: &str) -> bool {
    !url.ends_with(".py") && !url.contains("/raw/") && !url.contains("/blob/")
}

/// Where the map is fetched from and cached.
#[derive(Clone, Debug)]
pub struct NodeMapSource {
    pub url: Option<String>,
    pub cache: PathBuf,
}

impl NodeMapSource {
    /// The cached copy, parsed; `None` when there is none yet (or it no longer parses).
    pub fn cached(&self) -> Option<NodeMap> {
        let text = std::fs::read_to_string(&self.cache).ok()?;
        match NodeMap::parse(&text) {
            Ok(map) => Some(map),
            Err(e) => {
                tracing::warn!(path = %self.cache.display(), "cached node map unusable: {e}");
                None
            }
        }
    }

    /// Fetches the map, checks that it parses, and only then replaces the cached copy. On
    /// failure the cache is untouched and the error says so.
    pub async fn sync(&self) -> Result<NodeMap, String> {
        let Some(url) = &self.url else {
            return Err("NODE_MAP_URL is empty, so there is no node map to sync".into());
        };
        let result = fetch(url, &self.cache).await;
        result.map_err(|e| {
            let fallback = if self.cache.is_file() {
                "the last good copy stays in use"
            } else {
                "there is no cached copy yet"
            };
            format!(
                "node map sync from {} failed: {e}; {fallback}",
                super::redact_url(url)
            )
        })
    }
}

async fn fetch(url: &str, cache: &Path) -> Result<NodeMap, String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|e| format!("fetching failed: {}", e.without_url()))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("the server answered HTTP {status}"));
    }
    if response
        .content_length()
        .is_some_and(|n| n > MAX_NODE_MAP_BYTES as u64)
    {
        return Err(format!("the map is larger than {MAX_NODE_MAP_BYTES} bytes"));
    }
    let body = response
        .bytes()
        .await
        .map_err(|e| format!("reading failed: {}", e.without_url()))?;
    if body.len() > MAX_NODE_MAP_BYTES {
        return Err(format!("the map is larger than {MAX_NODE_MAP_BYTES} bytes"));
    }
    let text = std::str::from_utf8(&body).map_err(|_| "the map is not UTF-8 text".to_string())?;
    let map = NodeMap::parse(text)?;
    let (cache, bytes) = (cache.to_path_buf(), body.to_vec());
    tokio::task::spawn_blocking(move || crate::workspace::write_atomic(&cache, &bytes))
        .await
        .map_err(|e| format!("writing the cache failed: {e}"))?
        .map_err(|e| format!("writing the cache failed: {e}"))?;
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAP: &str = r#"{
        "https://github.com/kijai/ComfyUI-KJNodes": [["GetImageSizeAndCount", "ImageResizeKJ"], {"title_aux": "KJNodes"}],
        "https://github.com/rgthree/rgthree-comfy": [[], {"title_aux": "rgthree", "nodename_pattern": " \\(rgthree\\)$"}],
        "https://github.com/x/y/raw/main/single.py": [["SingleFileNode"], {"title_aux": "single"}],
        "https://github.com/bad/pattern": [[], {"nodename_pattern": "a(?!b)"}],
        "https://github.com/odd/entry": "not a list"
    }"#;

    #[test]
    fn classes_resolve_by_name_then_pattern() {
        let map = NodeMap::parse(MAP).unwrap();
        let kj = map.lookup("ImageResizeKJ").unwrap();
        assert_eq!(kj.repository, "https://github.com/kijai/ComfyUI-KJNodes");
        assert_eq!(kj.title.as_deref(), Some("KJNodes"));
        let rg = map.lookup("Any Switch (rgthree)").unwrap();
        assert_eq!(rg.repository, "https://github.com/rgthree/rgthree-comfy");
        assert!(
            map.lookup("SingleFileNode").is_none(),
            "single files are not clonable"
        );
        assert!(map.lookup("Nothing").is_none());
    }

    #[test]
    fn packs_resolve_by_repository_name() {
        let map = NodeMap::parse(MAP).unwrap();
        assert_eq!(
            map.by_name("comfyui-kjnodes").unwrap().repository,
            "https://github.com/kijai/ComfyUI-KJNodes"
        );
        assert_eq!(
            map.by_name("kijai/ComfyUI-KJNodes").unwrap().repository,
            "https://github.com/kijai/ComfyUI-KJNodes"
        );
        assert_eq!(
            map.title_of("https://github.com/kijai/comfyui-kjnodes.git"),
            Some("KJNodes")
        );
    }

    #[test]
    fn a_map_that_is_not_an_object_is_refused() {
        assert!(NodeMap::parse("[]").is_err());
        assert!(NodeMap::parse("nope").is_err());
    }
}
