//! The comfyui-presets registry format: one `presets/<type>/<id>/preset.yaml` per preset, a
//! `registry.json` summary (also the shape of the remote registry) and `model_index.json`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_yaml::{Mapping, Value};

use super::locate::FieldPath;
use super::parse::{as_mapping, build_preset, Doc, Format, Reader};
use super::size::{gb_to_bytes, parse_size};
use super::{CatalogError, CatalogLayer, Preset};

/// One preset's summary in a registry index (`registry.json`, or the remote registry).
///
/// It carries what the index knows beyond the preset file: a newer version, upstream update
/// flags, and requirements the YAML may lack.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RegistryEntry {
    /// Canonical preset id (the index key).
    pub id: String,
    /// The preset version the registry publishes; newer than an installed one means "update".
    pub version: Option<String>,
    /// Display name in the index.
    pub name: Option<String>,
    /// The index's download size (may differ from the YAML's; see presets/SOURCES.md).
    pub download_bytes: Option<u64>,
    /// `None` where the index says 0 (not stated).
    pub vram_gb: Option<f32>,
    /// Disk space from `disk_gb`; `None` where 0.
    pub disk_bytes: Option<u64>,
    /// The registry's own flag that the upstream model has a newer release.
    pub update_available: bool,
    /// How many files the index says the preset has.
    pub file_count: Option<usize>,
    /// Where the full definition lives in the registry repository (`presets/<type>/<id>/preset.yaml`).
    pub path: Option<String>,
}

/// A parsed registry index: summaries, presets embedded in it (remote format), problems.
#[derive(Debug, Default)]
pub(crate) struct RegistryDoc {
    pub entries: Vec<RegistryEntry>,
    pub presets: Vec<Preset>,
    pub problems: Vec<CatalogError>,
}

/// Registry ids are lower-case letters, digits and hyphens.
pub(crate) fn valid_registry_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// Parses one `preset.yaml`.
pub(crate) fn parse_preset_yaml(
    file: &str,
    text: &str,
    layer: CatalogLayer,
) -> Result<Preset, CatalogError> {
    let doc = Doc {
        file,
        text: Some(text),
    };
    let root: Value = serde_yaml::from_str(text).map_err(|e| doc.yaml_err(&e))?;
    let map = as_mapping(&doc, &FieldPath::root(), &root)?;
    preset_from_map(&doc, &FieldPath::root(), map, layer, None)
}

/// A registry-format preset mapping (a whole `preset.yaml`, or one embedded in the remote index).
fn preset_from_map(
    doc: &Doc<'_>,
    base: &FieldPath,
    map: &Mapping,
    layer: CatalogLayer,
    key: Option<&str>,
) -> Result<Preset, CatalogError> {
    let reader = Reader { doc };
    let id = match (reader.opt_str(map, base, "id")?, key) {
        (Some(id), Some(key)) if id != key => {
            return Err(doc.err(
                &base.key("id"),
                format!("id `{id}` differs from the registry key `{key}`"),
            ))
        }
        (Some(id), _) => id,
        (None, Some(key)) => key.to_string(),
        (None, None) => return Err(doc.err(&base.key("id"), "required field is missing")),
    };
    if !valid_registry_id(&id) {
        return Err(doc.err(
            &base.key("id"),
            format!("id `{id}` may only use lower-case letters, digits and `-`"),
        ));
    }
    build_preset(doc, base, map, id, Vec::new(), Format::Registry, layer)
}

/// Parses a registry index (JSON). Entries with an embedded `preset` also yield presets.
/// A document that is not JSON or has no `presets` object is an error; bad entries are problems.
pub(crate) fn parse_registry_json(
    file: &str,
    text: &str,
    layer: CatalogLayer,
) -> Result<RegistryDoc, CatalogError> {
    let json: serde_json::Value = serde_json::from_str(text).map_err(|e| CatalogError {
        file: file.to_string(),
        line: Some(e.line()).filter(|l| *l > 0),
        field: None,
        message: format!("JSON syntax error: {e}"),
    })?;
    // Same value model as the YAML formats, so the same readers (and messages) apply.
    let root: Value = serde_yaml::to_value(&json).map_err(|e| CatalogError {
        file: file.to_string(),
        line: None,
        field: None,
        message: e.to_string(),
    })?;
    let doc = Doc { file, text: None };
    let root_map = as_mapping(&doc, &FieldPath::root(), &root)?;
    let base = FieldPath::root().key("presets");
    let presets = match root_map.get("presets") {
        Some(Value::Mapping(m)) => m,
        Some(_) => return Err(doc.err(&base, "expected an object of preset ids")),
        None => return Err(doc.err(&FieldPath::root(), "no `presets` object in this registry")),
    };
    let reader = Reader { doc: &doc };
    let mut out = RegistryDoc::default();
    for (key, value) in presets {
        let Some(id) = key.as_str() else { continue };
        let path = base.key(id);
        if !valid_registry_id(id) {
            out.problems.push(doc.err(
                &path,
                format!("id `{id}` may only use lower-case letters, digits and `-`"),
            ));
            continue;
        }
        let entry = as_mapping(&doc, &path, value).and_then(|m| {
            let download_bytes = match reader.opt_str(m, &path, "download_size")? {
                Some(s) => {
                    Some(parse_size(&s).map_err(|msg| doc.err(&path.key("download_size"), msg))?)
                }
                None => None,
            };
            let entry = RegistryEntry {
                id: id.to_string(),
                version: reader
                    .opt_str(m, &path, "version")?
                    .filter(|s| !s.is_empty()),
                name: reader.opt_str(m, &path, "name")?,
                download_bytes,
                vram_gb: reader
                    .opt_number(m, &path, "vram_gb")?
                    .filter(|v| *v > 0.0)
                    .map(|v| v as f32),
                disk_bytes: reader
                    .opt_number(m, &path, "disk_gb")?
                    .filter(|v| *v > 0.0)
                    .and_then(gb_to_bytes),
                update_available: reader
                    .opt_bool(m, &path, "update_available")?
                    .unwrap_or(false),
                file_count: reader
                    .opt_number(m, &path, "file_count")?
                    .map(|n| n as usize),
                path: reader.opt_str(m, &path, "path")?,
            };
            let embedded = match reader.opt_map(m, &path, "preset")? {
                Some(pm) => Some(preset_from_map(
                    &doc,
                    &path.key("preset"),
                    pm,
                    layer,
                    Some(id),
                )?),
                None => None,
            };
            Ok((entry, embedded))
        });
        match entry {
            Ok((entry, embedded)) => {
                out.entries.push(entry);
                out.presets.extend(embedded);
            }
            Err(e) => out.problems.push(e),
        }
    }
    Ok(out)
}

#[derive(Deserialize)]
struct ModelIndexFile {
    #[serde(default)]
    mappings: BTreeMap<String, String>,
}

/// Parses `model_index.json`: model path (relative to the models folder) → preset id.
pub(crate) fn parse_model_index(
    file: &str,
    text: &str,
) -> Result<BTreeMap<String, String>, CatalogError> {
    serde_json::from_str::<ModelIndexFile>(text)
        .map(|f| f.mappings)
        .map_err(|e| CatalogError {
            file: file.to_string(),
            line: Some(e.line()).filter(|l| *l > 0),
            field: None,
            message: format!("invalid model index: {e}"),
        })
}
