//! The monolithic comfyui-docker format: `presets: { LTX_VIDEO_T2V: {...}, ... }`.

use serde_yaml::Value;

use super::locate::FieldPath;
use super::parse::{as_mapping, build_preset, canonical_id, Doc, Format};
use super::{CatalogError, CatalogLayer, Preset};

/// Presets read from one document, and the problems that made some of them unusable.
#[derive(Debug, Default)]
pub(crate) struct Parsed {
    pub presets: Vec<Preset>,
    pub problems: Vec<CatalogError>,
}

/// Parses a docker-format `presets.yaml`. Each bad preset becomes a problem; a syntax error
/// makes the whole file one problem.
pub(crate) fn parse(file: &str, text: &str, layer: CatalogLayer) -> Parsed {
    let doc = Doc {
        file,
        text: Some(text),
    };
    let mut out = Parsed::default();
    let root: Value = match serde_yaml::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            out.problems.push(doc.yaml_err(&e));
            return out;
        }
    };
    match document_presets(&doc, &root) {
        Ok(v) => parse_presets(&doc, v, layer, &mut out),
        Err(e) => out.problems.push(e),
    }
    out
}

/// Whether a parsed YAML document is docker-format (has a `presets` mapping); used to check
/// a remote body before caching it.
pub(crate) fn document_presets<'v>(
    doc: &Doc<'_>,
    root: &'v Value,
) -> Result<&'v Value, CatalogError> {
    let root_map = as_mapping(doc, &FieldPath::root(), root)?;
    match root_map.get("presets") {
        Some(v @ (Value::Mapping(_) | Value::Null)) => Ok(v),
        Some(_) => Err(doc.err(
            &FieldPath::root().key("presets"),
            "expected a mapping of preset ids",
        )),
        None => Err(doc.err(&FieldPath::root(), "no `presets:` mapping in this file")),
    }
}

/// Reads the entries of a `presets` mapping.
pub(crate) fn parse_presets(doc: &Doc<'_>, presets: &Value, layer: CatalogLayer, out: &mut Parsed) {
    let Value::Mapping(entries) = presets else {
        return;
    };
    let base = FieldPath::root().key("presets");
    for (key, value) in entries {
        let Some(raw_id) = key.as_str() else {
            out.problems
                .push(doc.err(&base, format!("preset id `{key:?}` is not text")));
            continue;
        };
        let path = base.key(raw_id);
        if raw_id.is_empty()
            || !raw_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            out.problems.push(doc.err(
                &path,
                format!("preset id `{raw_id}` may only use letters, digits, `_` and `-`"),
            ));
            continue;
        }
        let id = canonical_id(raw_id);
        if out.presets.iter().any(|p| p.id == id) {
            out.problems.push(doc.err(
                &path,
                format!("preset id `{raw_id}` is the same preset as an earlier one (`{id}`)"),
            ));
            continue;
        }
        let aliases = if raw_id == id {
            Vec::new()
        } else {
            vec![raw_id.to_string()]
        };
        let result = as_mapping(doc, &path, value)
            .and_then(|map| build_preset(doc, &path, map, id, aliases, Format::Docker, layer));
        match result {
            Ok(p) => out.presets.push(p),
            Err(e) => out.problems.push(e),
        }
    }
}
