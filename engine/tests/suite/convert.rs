//! UI-format workflows → API prompts, checked against what the real ComfyUI frontend
//! (1.27.10, `app.graphToPrompt()`) produced for the same workflows; pre-submit checks; and
//! ComfyUI's 400 answers in words.

use crate::common;

use std::path::Path;

use engine::comfy::convert::{
    check_prompt, detect_format, explain_prompt_error, strip_private_keys, to_api,
    ui_to_api_seeded, ApiPrompt, ConvertError, ObjectInfo, PromptRejection, WorkflowFormat,
};
use serde_json::{json, Value};

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

fn fixture(name: &str) -> Value {
    read_json(&common::fixture_dir().join(name))
}

fn full_object_info() -> ObjectInfo {
    ObjectInfo::from_json(fixture("object_info_full.json")).expect("object_info_full.json")
}

/// The 17-class subset, with the real model lists (a placeholder checkpoint, two LoRAs).
fn subset_object_info() -> ObjectInfo {
    let recorded = fixture("get_object_info_subset.json");
    ObjectInfo::from_json(recorded["response"]["body_json_subset"].clone()).expect("subset")
}

/// Where two prompts first differ, naming the node and input.
fn first_difference(expected: &Value, actual: &Value) -> Option<String> {
    let (Some(e), Some(a)) = (expected.as_object(), actual.as_object()) else {
        return (expected != actual).then(|| "the prompts are not both objects".into());
    };
    let mut ids: Vec<&String> = e.keys().chain(a.keys()).collect();
    ids.sort();
    ids.dedup();
    for id in ids {
        let (Some(en), Some(an)) = (e.get(id), a.get(id)) else {
            let which = if e.contains_key(id) {
                "missing from"
            } else {
                "unexpected in"
            };
            return Some(format!(
                "node {id} is {which} the converted prompt: {}",
                e.get(id).or(a.get(id)).unwrap()
            ));
        };
        if en["class_type"] != an["class_type"] {
            return Some(format!(
                "node {id}: class_type {} expected, got {}",
                en["class_type"], an["class_type"]
            ));
        }
        if en["_meta"] != an["_meta"] {
            return Some(format!(
                "node {id}: _meta {} expected, got {}",
                en["_meta"], an["_meta"]
            ));
        }
        let empty = serde_json::Map::new();
        let ei = en["inputs"].as_object().unwrap_or(&empty);
        let ai = an["inputs"].as_object().unwrap_or(&empty);
        let mut names: Vec<&String> = ei.keys().chain(ai.keys()).collect();
        names.sort();
        names.dedup();
        for name in names {
            if ei.get(name) != ai.get(name) {
                return Some(format!(
                    "node {id} ({}): input {name}: expected {}, got {}",
                    en["class_type"],
                    ei.get(name).map_or("nothing".into(), Value::to_string),
                    ai.get(name).map_or("nothing".into(), Value::to_string),
                ));
            }
        }
        if en != an {
            return Some(format!("node {id}: expected {en}, got {an}"));
        }
    }
    None
}

fn assert_converts_exactly(name: &str) {
    let pair = fixture(name);
    let prompt = ui_to_api_seeded(&pair["ui_workflow"], &full_object_info(), 0)
        .unwrap_or_else(|e| panic!("{name}: conversion failed: {e}"));
    let actual = prompt.to_value();
    if let Some(diff) = first_difference(&pair["api_prompt"], &actual) {
        panic!(
            "{name} ({}): {diff}",
            pair["description"].as_str().unwrap_or_default()
        );
    }
    assert_eq!(actual, pair["api_prompt"], "{name}");
}

#[test]
fn default_workflow_converts_exactly() {
    assert_converts_exactly("ui_to_api_default_workflow.json");
}

#[test]
fn bypass_and_mute_convert_exactly() {
    assert_converts_exactly("ui_to_api_bypass_and_mute.json");
}

#[test]
fn primitive_reroute_and_note_convert_exactly() {
    assert_converts_exactly("ui_to_api_primitive_reroute_note.json");
}

#[test]
fn widget_input_link_and_load_image_convert_exactly() {
    assert_converts_exactly("ui_to_api_widget_input_link_and_loadimage.json");
}

#[test]
fn subgraph_converts_exactly() {
    assert_converts_exactly("ui_to_api_subgraph.json");
}

#[test]
fn nested_subgraph_converts_exactly() {
    assert_converts_exactly("ui_to_api_nested_subgraph.json");
}

#[test]
fn every_ui_to_api_fixture_converts_exactly() {
    let mut names: Vec<String> = std::fs::read_dir(common::fixture_dir())
        .expect("fixture dir")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("ui_to_api_") && n.ends_with(".json"))
        .collect();
    names.sort();
    assert!(
        names.len() >= 6,
        "expected the six ui_to_api fixtures, found {names:?}"
    );
    for name in &names {
        assert_converts_exactly(name);
    }
}

#[test]
fn to_api_converts_a_ui_workflow() {
    let pair = fixture("ui_to_api_subgraph.json");
    assert_eq!(detect_format(&pair["ui_workflow"]), WorkflowFormat::Ui);
    let prompt = to_api(&pair["ui_workflow"], &full_object_info()).expect("converts");
    assert_eq!(prompt.to_value(), pair["api_prompt"]);
}

#[test]
fn api_prompt_passes_through_without_private_keys() {
    let pair = fixture("ui_to_api_default_workflow.json");
    let mut pasted = pair["api_prompt"].clone();
    pasted["_comment"] = json!("exported by a tool");
    pasted["_version"] = json!(2);
    assert_eq!(detect_format(&pasted), WorkflowFormat::Api);
    let prompt = to_api(&pasted, &full_object_info()).expect("passes through");
    assert_eq!(prompt.to_value(), pair["api_prompt"]);

    let mut value = pasted.clone();
    strip_private_keys(&mut value);
    assert_eq!(value, pair["api_prompt"]);

    // A prompt as sent to ComfyUI (no _meta) keeps its shape too.
    let sent = fixture("post_prompt_error_missing_checkpoint.json")["request"]["body_json"]
        ["prompt"]
        .clone();
    let prompt = to_api(&sent, &ObjectInfo::default()).expect("API prompt");
    assert_eq!(prompt.to_value(), sent);
}

#[test]
fn formats_are_detected() {
    assert_eq!(
        detect_format(&json!({"nodes": [], "links": []})),
        WorkflowFormat::Ui
    );
    assert_eq!(
        detect_format(&json!({"3": {"class_type": "KSampler", "inputs": {}}})),
        WorkflowFormat::Api
    );
    assert_eq!(
        detect_format(&json!({"1": {"inputs": {}}})),
        WorkflowFormat::Api
    );
    assert_eq!(
        detect_format(&json!({"nodes": []})),
        WorkflowFormat::Unknown
    );
    assert_eq!(detect_format(&json!({})), WorkflowFormat::Unknown);
    assert_eq!(
        detect_format(&json!({"_meta": {}})),
        WorkflowFormat::Unknown
    );
    assert_eq!(detect_format(&json!({"3": 1})), WorkflowFormat::Unknown);
    assert_eq!(detect_format(&json!([1, 2])), WorkflowFormat::Unknown);
    assert_eq!(detect_format(&json!("text")), WorkflowFormat::Unknown);
}

#[test]
fn malformed_workflows_are_refused() {
    let info = full_object_info();
    let err = to_api(&json!({"nodes": [{"id": 1, "type": "KSampler"}]}), &info).unwrap_err();
    assert!(matches!(err, ConvertError::Malformed(_)), "{err}");
    assert!(err.to_string().contains("links"), "{err}");

    let err = to_api(&json!({"hello": "world"}), &info).unwrap_err();
    assert!(matches!(err, ConvertError::Malformed(_)), "{err}");
    assert!(err.to_string().contains("nodes"), "{err}");

    let err = engine::comfy::convert::ui_to_api(&json!({"links": []}), &info).unwrap_err();
    assert!(err.to_string().contains("no `nodes` array"), "{err}");
}

#[test]
fn unknown_class_names_the_node() {
    let mut workflow = fixture("ui_to_api_default_workflow.json")["ui_workflow"].clone();
    let node = workflow["nodes"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|n| n["id"] == 8)
        .unwrap();
    node["type"] = json!("FancyVAEDecodeXYZ");
    node["title"] = json!("My decoder");
    let err = ui_to_api_seeded(&workflow, &full_object_info(), 0).unwrap_err();
    let ConvertError::UnknownClass { node } = &err else {
        panic!("expected UnknownClass, got {err}");
    };
    assert_eq!(node.id, "8");
    assert_eq!(node.class_type, "FancyVAEDecodeXYZ");
    assert_eq!(node.title, "My decoder");
    let text = err.to_string();
    assert!(
        text.contains("FancyVAEDecodeXYZ") && text.contains("node 8"),
        "{text}"
    );
    assert!(text.contains("My decoder"), "{text}");
    assert!(text.contains("custom node"), "{text}");

    // Muted, the unknown node is simply left out.
    let node = workflow["nodes"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|n| n["id"] == 8)
        .unwrap();
    node["mode"] = json!(2);
    let prompt = ui_to_api_seeded(&workflow, &full_object_info(), 0).expect("muted unknown node");
    assert!(prompt.get("8").is_none());
    assert!(prompt.get("9").unwrap().inputs.get("images").is_none());
}

#[test]
fn missing_subgraph_definition_is_an_error() {
    let mut workflow = fixture("ui_to_api_subgraph.json")["ui_workflow"].clone();
    workflow.as_object_mut().unwrap().remove("definitions");
    let err = ui_to_api_seeded(&workflow, &full_object_info(), 0).unwrap_err();
    let ConvertError::SubgraphMissing { node, subgraph } = &err else {
        panic!("expected SubgraphMissing, got {err}");
    };
    assert_eq!(node.id, "10");
    assert_eq!(subgraph, "79ad3f92-f1ab-4664-97e1-f1351eb9a3d3");
    assert!(err.to_string().contains("definitions.subgraphs"), "{err}");
}

#[test]
fn link_missing_from_the_link_list_is_an_error() {
    let mut workflow = fixture("ui_to_api_default_workflow.json")["ui_workflow"].clone();
    let node = workflow["nodes"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|n| n["id"] == 9)
        .unwrap();
    node["inputs"][0]["link"] = json!(999);
    let err = ui_to_api_seeded(&workflow, &full_object_info(), 0).unwrap_err();
    let ConvertError::LinkNotFound { node, input, link } = &err else {
        panic!("expected LinkNotFound, got {err}");
    };
    assert_eq!(
        (node.id.as_str(), input.as_str(), link.as_str()),
        ("9", "images", "999")
    );
    assert!(err.to_string().contains("link 999"), "{err}");
}

#[test]
fn link_from_a_missing_node_is_dropped() {
    let mut workflow = fixture("ui_to_api_default_workflow.json")["ui_workflow"].clone();
    // Link 9 (VAEDecode 8 → SaveImage 9) now starts at a node that does not exist.
    workflow["links"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|l| l[0] == 9)
        .unwrap()[1] = json!(77);
    let prompt = ui_to_api_seeded(&workflow, &full_object_info(), 0).expect("converts");
    assert_eq!(
        prompt.get("9").unwrap().inputs,
        json!({"filename_prefix": "ComfyUI"})
            .as_object()
            .unwrap()
            .clone()
    );
}

#[test]
fn dynamic_prompts_are_resolved_in_text_widgets() {
    let mut workflow = fixture("ui_to_api_default_workflow.json")["ui_workflow"].clone();
    let node = workflow["nodes"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|n| n["id"] == 6)
        .unwrap();
    node["widgets_values"] = json!(["a {red|red} car /* not sent */ // nor this"]);
    let prompt = ui_to_api_seeded(&workflow, &full_object_info(), 42).expect("converts");
    assert_eq!(
        prompt.get("6").unwrap().inputs["text"],
        json!("a red car  ")
    );
    // filename_prefix has no dynamicPrompts flag: sent as it is.
    let node = workflow["nodes"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|n| n["id"] == 9)
        .unwrap();
    node["widgets_values"] = json!(["{a|b}"]);
    let prompt = ui_to_api_seeded(&workflow, &full_object_info(), 42).expect("converts");
    assert_eq!(
        prompt.get("9").unwrap().inputs["filename_prefix"],
        json!("{a|b}")
    );
}

#[test]
fn check_prompt_flags_unknown_classes() {
    let prompt = ApiPrompt::from_value(json!({
        "1": {"class_type": "NoSuchNodeXYZ", "inputs": {}, "_meta": {"title": "Mystery"}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"inputs": {}}
    }))
    .unwrap();
    let problems = check_prompt(&prompt, &subset_object_info(), &|_, _| None);
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert_eq!(problems[0].node_id, "1");
    assert_eq!(problems[0].class_type, "NoSuchNodeXYZ");
    assert_eq!(problems[0].title, "Mystery");
    assert!(
        problems[0]
            .message
            .contains("NoSuchNodeXYZ is not installed"),
        "{}",
        problems[0].message
    );
    assert_eq!(problems[1].node_id, "3");
    assert!(
        problems[1].message.contains("no class_type"),
        "{}",
        problems[1].message
    );
}

#[test]
fn check_prompt_finds_missing_checkpoint_with_preset_hint() {
    let sent = fixture("post_prompt_error_missing_checkpoint.json")["request"]["body_json"]
        ["prompt"]
        .clone();
    let prompt = ApiPrompt::from_value(sent).unwrap();
    let asked = std::cell::RefCell::new(Vec::new());
    let hint = |folder: &str, file: &str| {
        asked
            .borrow_mut()
            .push((folder.to_string(), file.to_string()));
        (folder == "checkpoints" && file == "does_not_exist.safetensors")
            .then(|| "sdxl-base".to_string())
    };
    let problems = check_prompt(&prompt, &subset_object_info(), &hint);
    assert_eq!(problems.len(), 1, "{problems:#?}");
    let p = &problems[0];
    assert_eq!(p.node_id, "4");
    assert_eq!(p.class_type, "CheckpointLoaderSimple");
    assert_eq!(p.title, "Load Checkpoint");
    assert_eq!(p.input.as_deref(), Some("ckpt_name"));
    assert!(
        p.message.contains(
            "model file does_not_exist.safetensors is not installed (folder checkpoints)"
        ),
        "{}",
        p.message
    );
    assert!(
        p.message.contains("install preset sdxl-base"),
        "{}",
        p.message
    );
    assert_eq!(p.preset_hint.as_deref(), Some("sdxl-base"));
    assert_eq!(
        asked.into_inner(),
        vec![(
            "checkpoints".to_string(),
            "does_not_exist.safetensors".to_string()
        )]
    );

    // The installed placeholder passes; with no lists at all (an empty ComfyUI) it is missing.
    let ok = fixture("ui_to_api_default_workflow.json")["api_prompt"].clone();
    let ok = ApiPrompt::from_value(ok).unwrap();
    assert!(check_prompt(&ok, &subset_object_info(), &|_, _| None).is_empty());
    let problems = check_prompt(&ok, &full_object_info(), &|_, _| None);
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert_eq!(problems[0].preset_hint, None);
    assert!(problems[0]
        .message
        .contains("placeholder_model.safetensors"));
}

#[test]
fn check_prompt_flags_links_to_absent_nodes() {
    let prompt = ApiPrompt::from_value(json!({
        "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "x"}}
    }))
    .unwrap();
    let problems = check_prompt(&prompt, &subset_object_info(), &|_, _| None);
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].input.as_deref(), Some("images"));
    assert!(problems[0]
        .message
        .contains("node 8, which is not in the prompt"));
}

/// The body and the prompt of a recorded `POST /prompt`.
fn explain(name: &str) -> PromptRejection {
    let recorded = fixture(name);
    let body = &recorded["response"]["body_json"];
    explain_prompt_error(body, recorded["request"]["body_json"].get("prompt"))
}

fn assert_mentions(text: &str, parts: &[&str]) {
    for part in parts {
        assert!(text.contains(part), "{text:?} should mention {part:?}");
    }
}

#[test]
fn explains_value_out_of_range() {
    let r = explain("post_prompt_error_value_out_of_range.json");
    assert_eq!(r.nodes.len(), 2, "{r:#?}");
    assert_eq!(r.nodes[0].node_id, "1");
    assert_eq!(r.nodes[0].class_type, "EmptyImage");
    assert_eq!(r.nodes[0].input.as_deref(), Some("width"));
    assert_eq!(
        r.nodes[0].sentence(),
        "EmptyImage (node 1): width 999999 is above the maximum 16384"
    );
    assert_eq!(
        r.nodes[1].sentence(),
        "EmptyImage (node 1): height 0 is below the minimum 1"
    );
    assert_mentions(
        &r.message,
        &["rejected", "width 999999 is above the maximum 16384"],
    );
}

#[test]
fn explains_missing_checkpoint() {
    let r = explain("post_prompt_error_missing_checkpoint.json");
    assert_eq!(r.nodes.len(), 1);
    assert_eq!(r.nodes[0].input.as_deref(), Some("ckpt_name"));
    assert_eq!(
        r.nodes[0].sentence(),
        "CheckpointLoaderSimple (node 4): model file does_not_exist.safetensors is not installed (folder checkpoints)"
    );
    assert_mentions(&r.message, &["does_not_exist.safetensors"]);
}

#[test]
fn explains_missing_input() {
    let r = explain("post_prompt_error_missing_input.json");
    assert_eq!(r.nodes.len(), 1);
    assert_eq!(r.nodes[0].input.as_deref(), Some("image"));
    assert_mentions(
        &r.nodes[0].sentence(),
        &["ImageInvert (node 2)", "required input image is missing"],
    );
}

#[test]
fn explains_invalid_input_type() {
    let r = explain("post_prompt_error_invalid_input_type.json");
    assert_eq!(r.nodes.len(), 1);
    assert_eq!(r.nodes[0].input.as_deref(), Some("width"));
    assert_mentions(
        &r.nodes[0].sentence(),
        &["EmptyImage (node 1)", "width 'abc'", "whole number"],
    );
}

#[test]
fn explains_return_type_mismatch() {
    let r = explain("post_prompt_error_return_type_mismatch.json");
    assert_eq!(r.nodes.len(), 1);
    assert_eq!(r.nodes[0].input.as_deref(), Some("images"));
    assert_mentions(
        &r.nodes[0].sentence(),
        &[
            "SaveImage (node 3)",
            "images expects IMAGE",
            "LATENT output",
            "EmptyLatentImage (node 5)",
        ],
    );
}

#[test]
fn explains_bad_linked_input() {
    let r = explain("post_prompt_error_bad_linked_input.json");
    assert_eq!(r.nodes.len(), 1);
    assert_mentions(
        &r.nodes[0].sentence(),
        &["SaveImage (node 3)", "images", "malformed link", "[\"5\"]"],
    );
}

#[test]
fn explains_missing_image_file() {
    let r = explain("post_prompt_error_loadimage_missing_file.json");
    assert_eq!(r.nodes.len(), 1);
    assert_eq!(r.nodes[0].input.as_deref(), Some("image"));
    assert_mentions(
        &r.nodes[0].sentence(),
        &["LoadImage (node 10)", "not_uploaded.png", "input folder"],
    );
}

#[test]
fn explains_unknown_class() {
    let r = explain("post_prompt_error_unknown_class.json");
    assert_eq!(r.nodes.len(), 1);
    assert_eq!(r.nodes[0].node_id, "1");
    assert_eq!(r.nodes[0].class_type, "NoSuchNodeXYZ");
    assert_mentions(&r.message, &["NoSuchNodeXYZ", "not installed", "node 1"]);
}

#[test]
fn explains_missing_class_type() {
    let r = explain("post_prompt_error_missing_class_type.json");
    assert_eq!(r.nodes.len(), 1);
    assert_eq!(r.nodes[0].node_id, "1");
    assert_mentions(&r.message, &["node 1", "no class_type"]);
}

#[test]
fn explains_no_outputs() {
    let r = explain("post_prompt_error_no_outputs.json");
    assert!(r.nodes.is_empty());
    assert_mentions(&r.message, &["no output node", "Save Image"]);
}

#[test]
fn explains_no_prompt() {
    let r = explain("post_prompt_error_no_prompt.json");
    assert!(r.nodes.is_empty());
    assert_mentions(&r.message, &["no prompt"]);
}

#[test]
fn explains_partly_valid_prompt() {
    let r = explain("post_prompt_error_partial_valid.json");
    assert_eq!(r.nodes.len(), 1);
    assert_eq!(r.nodes[0].node_id, "20");
    assert_mentions(
        &r.message,
        &[
            "queued",
            "SaveImage (node 20)",
            "required input images is missing",
        ],
    );
}

#[test]
fn titles_come_from_the_prompt_meta() {
    let recorded = fixture("post_prompt_error_value_out_of_range.json");
    let mut prompt = recorded["request"]["body_json"]["prompt"].clone();
    prompt["1"]["_meta"] = json!({"title": "Canvas"});
    let r = explain_prompt_error(&recorded["response"]["body_json"], Some(&prompt));
    assert_eq!(r.nodes[0].title, "Canvas");
    assert!(
        r.message.contains("Canvas (node 1): width 999999"),
        "{}",
        r.message
    );
}

#[test]
fn every_prompt_error_fixture_is_explained() {
    let mut names: Vec<String> = std::fs::read_dir(common::fixture_dir())
        .expect("fixture dir")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("post_prompt_error_") && n.ends_with(".json"))
        .collect();
    names.sort();
    assert!(names.len() >= 12, "{names:?}");
    for name in names {
        let r = explain(&name);
        assert!(!r.message.is_empty(), "{name}");
        assert!(
            !r.message.contains("without saying why"),
            "{name}: {}",
            r.message
        );
        for n in &r.nodes {
            assert!(
                !n.message.is_empty() && !n.node_id.is_empty(),
                "{name}: {n:?}"
            );
        }
        // The records serialize for the UI.
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(serde_json::from_value::<PromptRejection>(json).unwrap(), r);
    }
}

/// The official workflow templates, converted by the real frontend (see
/// `fixtures/comfyui/templates/README.md` and `scripts/record-conversions.sh`): every pair
/// converts exactly, and a template whose node classes the recorded `object_info` lacks
/// fails naming one of them.
#[test]
fn every_template_pair_converts_exactly() {
    let root = common::fixture_dir().join("templates");
    let mut releases: Vec<_> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", root.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    releases.sort();
    assert!(
        releases.len() >= 2,
        "expected pairs of at least two template releases"
    );
    let object_info = full_object_info();
    let (mut compared, mut unknown, mut failures) = (0, 0, Vec::new());
    for release in &releases {
        let (compared_before, unknown_before) = (compared, unknown);
        let mut files: Vec<_> = std::fs::read_dir(release)
            .expect("release dir")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        for file in files {
            let pair = read_json(&file);
            let name = format!(
                "{}/{}",
                pair["release"].as_str().unwrap_or_default(),
                pair["template"].as_str().unwrap_or_default()
            );
            let missing: Vec<&str> = pair["missing_classes"]
                .as_array()
                .map(|m| m.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            match ui_to_api_seeded(&pair["ui_workflow"], &object_info, 0) {
                Err(ConvertError::UnknownClass { node }) => {
                    unknown += 1;
                    if !missing.contains(&node.class_type.as_str()) {
                        failures.push(format!(
                            "{name}: unknown class {} is not among the recorded missing \
                             classes {missing:?}",
                            node.class_type
                        ));
                    }
                }
                Err(e) => failures.push(format!("{name}: conversion failed: {e}")),
                Ok(prompt) => {
                    compared += 1;
                    let Some(expected) = pair.get("api_prompt") else {
                        failures.push(format!(
                            "{name}: converted, but the frontend refused it: {}",
                            pair["frontend_error"]
                        ));
                        continue;
                    };
                    if let Some(diff) = first_difference(expected, &prompt.to_value()) {
                        failures.push(format!("{name}: {diff}"));
                    }
                }
            }
        }
        eprintln!(
            "templates {}: {} compared, {} refused naming a missing class",
            release.file_name().unwrap_or_default().to_string_lossy(),
            compared - compared_before,
            unknown - unknown_before
        );
    }
    let total = compared + unknown;
    assert!(total > 0, "no template pairs under {}", root.display());
    eprintln!(
        "template pairs: {total} ({compared} compared, {unknown} with classes that object_info \
         lacks), {} failing",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {total} template pairs differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
