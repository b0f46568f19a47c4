//! The `config/extra_model_paths.yaml` that `Engine::start` writes for ComfyUI.

use crate::common;
use common::{closed_port_url, fixture_dir};
use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;

use engine::config::Config;
use engine::Engine;

const REQUIRED: [&str; 9] = [
    "checkpoints",
    "loras",
    "vae",
    "text_encoders",
    "diffusion_models",
    "upscale_models",
    "controlnet",
    "clip_vision",
    "embeddings",
];

async fn start(root: &Path) -> Arc<Engine> {
    let config = Config {
        comfyui_url: closed_port_url(),
        hf_base_url: closed_port_url(),
        ..Config::with_workspace(root)
    };
    match Engine::start(config).await {
        Ok((engine, _)) => engine,
        Err(e) => panic!("Engine::start failed: {e}"),
    }
}

fn shut_down(engine: Arc<Engine>) {
    assert_eq!(Arc::strong_count(&engine), 1);
    drop(engine);
}

/// The folder names ComfyUI 0.3.64 registers, as recorded from `GET /models`.
fn comfyui_folder_names() -> BTreeSet<String> {
    let path = fixture_dir().join("get_models.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    doc["response"]["body_json"]
        .as_array()
        .expect("body_json is a list")
        .iter()
        .map(|v| v.as_str().expect("folder names are strings").to_string())
        .collect()
}

fn config_dir_entries(root: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root.join("config"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The `comfydeck` section as (key, sub-folder lines), checking each value's YAML shape.
fn parse_section(text: &str, root: &Path) -> Vec<(String, Vec<String>)> {
    let doc: serde_yaml::Value = serde_yaml::from_str(text).expect("valid YAML");
    let top = doc.as_mapping().expect("a mapping at the top");
    assert_eq!(top.len(), 1, "one section: {top:?}");
    let section = doc["comfydeck"].as_mapping().expect("a comfydeck section");

    let base_path = section
        .get("base_path")
        .and_then(|v| v.as_str())
        .expect("base_path is a string");
    assert_eq!(Path::new(base_path), root.join("models"));
    assert_eq!(
        section.get("is_default").and_then(|v| v.as_bool()),
        Some(true)
    );

    let mut folders = Vec::new();
    for (key, value) in section {
        let key = key.as_str().expect("keys are strings").to_string();
        if key == "base_path" || key == "is_default" {
            continue;
        }
        assert!(
            !value.is_sequence(),
            "{key} must be a string, not a list: {value:?}"
        );
        let value = value
            .as_str()
            .unwrap_or_else(|| panic!("{key} must be a string, got {value:?}"));
        let lines: Vec<String> = value.lines().map(str::to_string).collect();
        assert!(!lines.is_empty(), "{key} lists no sub-folder");
        for line in &lines {
            assert!(
                !line.is_empty()
                    && line.trim() == line
                    && !line.contains('/')
                    && !line.contains(' '),
                "{key}: {line:?} is not a plain sub-folder name"
            );
        }
        folders.push((key, lines));
    }
    folders
}

#[tokio::test(flavor = "multi_thread")]
async fn generated_yaml_is_what_comfyui_reads() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("ws");
    let engine = start(&root).await;
    let yaml = engine.layout().extra_model_paths_yaml();
    assert_eq!(yaml, root.join("config/extra_model_paths.yaml"));

    let text = std::fs::read_to_string(&yaml).unwrap();
    let folders = parse_section(&text, &root);
    let keys: BTreeSet<&str> = folders.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys.len(), folders.len(), "no duplicate keys");
    for required in REQUIRED {
        assert!(keys.contains(required), "{required} missing from {keys:?}");
    }

    let known = comfyui_folder_names();
    let unknown: Vec<&str> = keys
        .iter()
        .copied()
        .filter(|k| !known.contains(*k))
        .collect();
    assert!(
        unknown.is_empty(),
        "folder names ComfyUI does not know: {unknown:?}"
    );

    // Legacy sub-folders are read too, and every first (preferred) sub-folder exists on disk.
    let lookup = |key: &str| folders.iter().find(|(k, _)| k == key).unwrap().1.clone();
    assert_eq!(lookup("text_encoders"), ["text_encoders", "clip"]);
    assert_eq!(lookup("diffusion_models"), ["diffusion_models", "unet"]);
    assert_eq!(lookup("checkpoints"), ["checkpoints"]);
    for (key, lines) in &folders {
        let first = root.join("models").join(&lines[0]);
        assert!(first.is_dir(), "{key}: {} was not created", first.display());
    }

    // Only the yaml is in config/: no temp file was left behind.
    assert_eq!(config_dir_entries(&root), ["extra_model_paths.yaml"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_workspace_path_with_odd_characters_stays_one_string() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("my ws: #1 \"quoted\"");
    let engine = start(&root).await;
    let text = std::fs::read_to_string(engine.layout().extra_model_paths_yaml()).unwrap();
    // parse_section checks base_path equals <root>/models exactly.
    let folders = parse_section(&text, &root);
    assert!(folders.iter().any(|(k, _)| k == "checkpoints"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_yaml_is_kept_when_current_and_replaced_atomically_when_not() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("ws");
    let yaml = root.join("config/extra_model_paths.yaml");

    let engine = start(&root).await;
    let original = std::fs::read_to_string(&yaml).unwrap();
    let first_inode = std::fs::metadata(&yaml).unwrap().ino();
    shut_down(engine);

    // Unchanged content: a restart leaves the very same file in place.
    let engine = start(&root).await;
    assert_eq!(
        std::fs::metadata(&yaml).unwrap().ino(),
        first_inode,
        "not rewritten when current"
    );
    assert_eq!(std::fs::read_to_string(&yaml).unwrap(), original);
    shut_down(engine);

    // A stale or hand-edited file is replaced by a new file renamed over it, not edited in place.
    std::fs::write(
        &yaml,
        "comfydeck:\n    base_path: /elsewhere\n    checkpoints:\n      - a list\n",
    )
    .unwrap();
    let edited_inode = std::fs::metadata(&yaml).unwrap().ino();
    let engine = start(&root).await;
    let rewritten = std::fs::read_to_string(&yaml).unwrap();
    assert_eq!(rewritten, original);
    assert_ne!(
        std::fs::metadata(&yaml).unwrap().ino(),
        edited_inode,
        "replaced by rename, not truncated and rewritten"
    );
    parse_section(&rewritten, &root);
    assert_eq!(config_dir_entries(&root), ["extra_model_paths.yaml"]);
    shut_down(engine);

    // A deleted file comes back.
    std::fs::remove_file(&yaml).unwrap();
    let _engine = start(&root).await;
    assert_eq!(std::fs::read_to_string(&yaml).unwrap(), original);
    assert_eq!(config_dir_entries(&root), ["extra_model_paths.yaml"]);
}

/// ComfyUI resolves a relative `base_path` against the yaml's own folder, so a workspace given
/// as a relative path (the laptop default `./workspace`) must still produce an absolute one.
#[tokio::test(flavor = "multi_thread")]
async fn a_relative_workspace_gives_an_absolute_base_path() {
    let cwd = std::env::current_dir().unwrap();
    let dir = tempfile::tempdir_in(&cwd).unwrap();
    let relative = Path::new(dir.path().file_name().unwrap());
    assert!(relative.is_relative());
    let engine = start(relative).await;
    let text = std::fs::read_to_string(dir.path().join("config/extra_model_paths.yaml")).unwrap();
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let base = doc["comfydeck"]["base_path"].as_str().unwrap();
    assert!(
        Path::new(base).is_absolute(),
        "base_path {base:?} must be absolute"
    );
    assert_eq!(Path::new(base), cwd.join(relative).join("models"));
    shut_down(engine);
}
