//! Entry points for the fuzz targets in `fuzz/` and for the suite test that replays their
//! corpora (`engine/tests/suite/fuzz_regressions.rs`). Behind the `fuzzing` feature; each
//! function feeds arbitrary bytes to one parser the way the server does and panics only
//! when the engine has a bug (a panic, or an invariant broken below).

use std::io::Cursor;
use std::sync::OnceLock;

use serde_json::Value;

use crate::catalog::{docker_format, registry_format, remote, CatalogLayer};
use crate::comfy::convert::{
    detect_format, to_api, ui_to_api_seeded, ApiPrompt, ObjectInfo, WorkflowFormat,
};
use crate::gallery::meta;
use crate::model::MediaKind;
use crate::workflows::{self, analyze, png, WorkflowContext};

/// The recorded `/object_info` of a real ComfyUI (`comfy-standin/fixtures/comfyui/`), so that
/// converted UI workflows reach deep into the converter (their classes are known).
pub fn recorded_object_info() -> &'static ObjectInfo {
    static INFO: OnceLock<ObjectInfo> = OnceLock::new();
    INFO.get_or_init(|| {
        let text = include_str!("../../comfy-standin/fixtures/comfyui/object_info_full.json");
        let value: Value = serde_json::from_str(text).expect("recorded object_info is JSON");
        ObjectInfo::from_json(value).expect("recorded object_info is valid")
    })
}

/// The workflow converter: JSON → format detection → API prompt (UI workflows through
/// `ui_to_api` with a fixed seed, so a run is reproducible), and the input read as an
/// `/object_info` too. A converted prompt must survive its own JSON.
pub fn convert(data: &[u8], object_info: &ObjectInfo) {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let converted = match detect_format(&value) {
        WorkflowFormat::Ui => ui_to_api_seeded(&value, object_info, 1),
        _ => to_api(&value, object_info),
    };
    match converted {
        Ok(prompt) => {
            let json = prompt.to_value();
            let again = ApiPrompt::from_value(json.clone()).expect("a converted prompt reads back");
            assert_eq!(again.to_value(), json, "a converted prompt round-trips");
        }
        Err(e) => drop(e.to_string()),
    }
    if let Ok(info) = ObjectInfo::from_json(value) {
        for class in info.class_names() {
            let _ = info.input_order(class);
            let _ = info.output_types(class);
        }
    }
}

/// The preset parsers, both formats: docker `presets.yaml`, registry `preset.yaml`,
/// `registry.json`, `model_index.json` and a remote document (sniffed, and as JSON).
pub fn presets(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = docker_format::parse("presets.yaml", text, CatalogLayer::Workspace);
    for problem in &parsed.problems {
        let _ = problem.to_string();
    }
    if let Err(e) = registry_format::parse_preset_yaml("preset.yaml", text, CatalogLayer::Workspace)
    {
        let _ = e.to_string();
    }
    match registry_format::parse_registry_json("registry.json", text, CatalogLayer::Remote) {
        Ok(doc) => doc.problems.iter().for_each(|p| drop(p.to_string())),
        Err(e) => drop(e.to_string()),
    }
    let _ = registry_format::parse_model_index("model_index.json", text);
    for content_type in [None, Some("application/json")] {
        match remote::parse_remote("https://registry.example/registry", text, content_type) {
            Ok(doc) => doc.problems.iter().for_each(|p| drop(p.to_string())),
            Err(e) => drop(e.to_string()),
        }
    }
}

/// The PNG metadata readers: the text-chunk walk over the whole file, the header reader the
/// gallery uses (seeking past image data), the gallery's metadata (workflow, prompt, A1111
/// parameters, size) and the workflow found in a PNG.
pub fn png_meta(data: &[u8]) {
    if png::is_png(data) {
        let _ = png::text_chunks(data);
    }
    let _ = png::read_head(&mut Cursor::new(data));
    let _ = meta::read_meta_from(Cursor::new(data), MediaKind::Image);
    let _ = workflows::workflow_from_png(data);
}

/// The workflow importer without the disk: the file name (the input up to a first NUL
/// within 64 bytes, else `workflow.json`) made a safe stem, the bytes parsed as a JSON
/// workflow, a request body or a PNG, then analyzed as the summary of a stored import is.
pub fn import(data: &[u8], object_info: &ObjectInfo) {
    let (name, body) = match data.iter().take(64).position(|b| *b == 0) {
        Some(nul) => (
            String::from_utf8_lossy(&data[..nul]).into_owned(),
            &data[nul + 1..],
        ),
        None => ("workflow.json".to_string(), data),
    };
    let stem = workflows::import_stem(&name);
    assert!(!stem.is_empty() && !stem.contains(['/', '\\']) && !stem.contains(".."));
    let _ = workflows::check_name(&name);
    let Ok((value, text)) = workflows::parse_import(&name, body) else {
        return;
    };
    assert_ne!(detect_format(&value), WorkflowFormat::Unknown);
    let _ = text;
    let ctx = WorkflowContext::new().with_object_info(object_info);
    let _ = analyze::analyze(&value, &ctx, &|_, _| false);
    let _ = analyze::analyze(&value, &WorkflowContext::new(), &|_, _| true);
}
