//! Custom-node packs: what the deck shows about the packs in the supervised ComfyUI's
//! `custom_nodes/`, and how a missing node class resolves to a pack.

use serde::{Deserialize, Serialize};

use super::named::named_enum;

named_enum! {
    /// Where a pack stands.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum NodePackState {
        /// ComfyUI imported it (its classes are in `/object_info`).
        Loaded = "loaded",
        /// ComfyUI tried and failed to import it (the log's traceback is in `error`).
        FailedToImport = "failed_to_import",
        /// Moved aside into `custom_nodes/.disabled/`: ComfyUI does not load it.
        Disabled = "disabled",
        /// ComfyUI answers but did not load it (added since ComfyUI started: restart it).
        NotLoaded = "not_loaded",
        /// ComfyUI is not answering, so whether it loaded is not known.
        Unknown = "unknown",
    }
}

impl NodePackState {
    pub fn label(self) -> &'static str {
        match self {
            NodePackState::Loaded => "loaded",
            NodePackState::FailedToImport => "failed to import",
            NodePackState::Disabled => "disabled",
            NodePackState::NotLoaded => "not loaded (restart ComfyUI)",
            NodePackState::Unknown => "unknown (ComfyUI is not answering)",
        }
    }
}

/// One pack: a folder of `custom_nodes/` (or of `custom_nodes/.disabled/`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodePack {
    /// The folder's name: the pack's id everywhere (API, CLI).
    pub id: String,
    /// Its title in the node map, else the folder's name.
    pub name: String,
    /// The git remote (`origin`), when the folder is a git checkout.
    pub repository: Option<String>,
    /// The checked-out commit (full hash), when the folder is a git checkout.
    pub commit: Option<String>,
    pub state: NodePackState,
    /// The node classes it adds (from `/object_info`'s `python_module`), sorted.
    pub classes: Vec<String>,
    /// Why it failed to import: the last lines of the traceback in ComfyUI's log.
    pub error: Option<String>,
}

/// `GET /api/nodes`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodePackList {
    pub packs: Vec<NodePack>,
    /// The folder the packs live in.
    pub custom_nodes_dir: String,
    /// Whether ComfyUI answered `/object_info` (else states are `unknown`).
    pub comfyui_answered: bool,
}

/// What an install, update, disable, enable or remove did, in order, and the pack after it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodePackOutcome {
    /// The pack as it is now; `None` after a remove.
    pub pack: Option<NodePack>,
    /// Each step, in words ("cloned … at abc1234", "pip installs tinydep 1.0", …).
    pub steps: Vec<String>,
}

named_enum! {
    /// Where a resolution came from.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum PackSource {
        /// The node's own `properties` (`cnr_id`, `aux_id`, `ver`).
        NodeProperties = "node_properties",
        /// The node map (`NODE_MAP_URL`, ComfyUI-Manager's `extension-node-map.json` format).
        NodeMap = "node_map",
    }
}

/// A node class that ComfyUI lacks, and the pack that provides it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedPack {
    pub class_type: String,
    /// The repository to clone (`https://github.com/owner/repo`).
    pub repository: String,
    /// The folder it is installed as.
    pub id: String,
    /// The pack's title, when the node map names one.
    pub title: Option<String>,
    /// The commit or version the workflow names (`properties.ver`).
    pub version: Option<String>,
    pub source: PackSource,
}

/// A node class a workflow uses that ComfyUI lacks, and the pack that provides it when the
/// node's properties or the node map know one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MissingNodeClass {
    pub class_type: String,
    pub pack: Option<ResolvedPack>,
}

/// The packages a custom-node pack may never change, whatever the workspace adds
/// (`NODE_PROTECTED_PACKAGES`).
pub const DEFAULT_PROTECTED_PACKAGES: &[&str] =
    &["torch", "torchvision", "torchaudio", "xformers", "numpy"];

/// A Python distribution name as pip compares them (PEP 503: lower case, runs of `-_.` as `-`).
pub fn normalize_package_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut last_dash = false;
    for c in name.trim().chars() {
        if matches!(c, '-' | '_' | '.') {
            if !last_dash {
                out.push('-');
            }
            last_dash = true;
        } else {
            out.push(c.to_ascii_lowercase());
            last_dash = false;
        }
    }
    out
}

/// A pack id (its folder name) is safe to join under `custom_nodes/`, or the sentence saying
/// why not: 1–100 characters of `A-Z a-z 0-9 . _ -`, not starting with `.`, never `..`.
pub fn check_pack_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.chars().count() > 100 {
        return Err("a pack id has 1 to 100 characters".into());
    }
    if id.starts_with('.') {
        return Err(format!("a pack id cannot start with '.': {id:?}"));
    }
    if let Some(bad) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "a pack id may use only A-Z, a-z, 0-9, . _ and -; {bad:?} is not allowed in {id:?}"
        ));
    }
    if id.ends_with(".disabled") {
        return Err(format!("a pack id cannot end with .disabled: {id:?}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_names_normalise_like_pip() {
        assert_eq!(normalize_package_name("Torch_Vision"), "torch-vision");
        assert_eq!(normalize_package_name("a.-_b"), "a-b");
        assert_eq!(normalize_package_name("numpy"), "numpy");
    }

    #[test]
    fn pack_ids_cannot_escape() {
        assert!(check_pack_id("ComfyUI-KJNodes").is_ok());
        assert!(check_pack_id("comfyui_foo.bar").is_ok());
        for bad in [
            "",
            "..",
            ".hidden",
            "a/b",
            "/abs",
            "a\\b",
            "x.disabled",
            "a b",
        ] {
            assert!(check_pack_id(bad).is_err(), "{bad:?}");
        }
    }
}
