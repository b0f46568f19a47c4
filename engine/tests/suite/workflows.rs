//! The workflow library on a real temporary workspace: listing, summaries (required models,
//! editable inputs) against the recorded ComfyUI fixtures, imports (JSON and ComfyUI PNGs),
//! renames, deletes and path checks, and setting input values on a prompt.

use crate::common;

use std::fs;
use std::path::Path;

use engine::catalog::Catalog;
use engine::comfy::convert::{ui_to_api_seeded, ApiPrompt, ObjectInfo};
use engine::model::PromptRole;
use engine::workflows::{
    apply_inputs, catalog_hint, editable_inputs, parse_userdata_listing, workflow_from_png,
    ComfyWorkflowEntry, EditableInput, InputKind, InputValue, WorkflowContext, WorkflowError,
    WorkflowFileFormat, WorkflowLibrary, WorkflowSource, WorkflowSummary,
};
use engine::workspace::WorkspaceLayout;
use serde_json::{json, Value};

fn fixture(name: &str) -> Value {
    let path = common::fixture_dir().join(name);
    let text =
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name} is not JSON: {e}"))
}

fn fixture_bytes(name: &str) -> Vec<u8> {
    fs::read(common::fixture_dir().join(name)).expect("fixture")
}

fn default_ui() -> Value {
    fixture("ui_to_api_default_workflow.json")["ui_workflow"].clone()
}

fn default_api() -> Value {
    fixture("ui_to_api_default_workflow.json")["api_prompt"].clone()
}

fn full_object_info() -> ObjectInfo {
    ObjectInfo::from_json(fixture("object_info_full.json")).expect("object_info_full.json")
}

/// The 17-class subset, with the real model lists (a placeholder checkpoint, two LoRAs).
fn subset_object_info() -> ObjectInfo {
    let recorded = fixture("get_object_info_subset.json");
    ObjectInfo::from_json(recorded["response"]["body_json_subset"].clone()).expect("subset")
}

struct Workspace {
    _dir: tempfile::TempDir,
    layout: WorkspaceLayout,
    library: WorkflowLibrary,
}

fn workspace() -> Workspace {
    let dir = tempfile::tempdir().unwrap();
    let layout = WorkspaceLayout::new(dir.path());
    engine::workspace::create_tree(&layout).unwrap();
    let library = WorkflowLibrary::new(&layout);
    Workspace {
        _dir: dir,
        layout,
        library,
    }
}

fn write(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

fn write_json(path: &Path, value: &Value) {
    write(path, &serde_json::to_string_pretty(value).unwrap());
}

fn input<'a>(summary: &'a [EditableInput], node: &str, name: &str) -> &'a EditableInput {
    summary
        .iter()
        .find(|i| i.node_id == node && i.input == name)
        .unwrap_or_else(|| {
            panic!(
                "no editable input {node}/{name} in {:?}",
                summary
                    .iter()
                    .map(|i| format!("{}/{}", i.node_id, i.input))
                    .collect::<Vec<_>>()
            )
        })
}

fn user_files(ws: &Workspace) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(ws.layout.workflow_user())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

const PRESET_HINT: &dyn Fn(&str, &str) -> Option<String> = &|folder, file| {
    (folder == "checkpoints" && file == "placeholder_model.safetensors")
        .then(|| "sd15-placeholder".to_string())
};

#[test]
fn lists_templates_and_user_workflows_with_a_broken_file() {
    let ws = workspace();
    let templates = ws.layout.workflow_templates();
    let user = ws.layout.workflow_user();
    write_json(&templates.join("txt2img.json"), &default_ui());
    write_json(&user.join("portraits/flux.json"), &default_api());
    write(&user.join("broken.json"), "{\"nodes\": [");
    write(&user.join(".hidden.json"), "{}");
    write(&user.join(".trash/old.json"), "{}");
    write(&user.join("notes.txt"), "not a workflow");
    write(&user.join("Upper.JSON"), "{}");

    let list = ws.library.list_local(&WorkflowContext::new());
    let ids: Vec<&str> = list.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "template:txt2img.json",
            "user:broken.json",
            "user:portraits/flux.json",
            "user:Upper.JSON",
        ]
    );

    let template = &list[0];
    assert_eq!(template.source, WorkflowSource::Template);
    assert_eq!(template.name, "txt2img");
    assert_eq!(template.format, WorkflowFileFormat::Ui);
    assert_eq!(template.node_count, 7);
    assert!(template.modified_ms > 1_600_000_000_000);
    assert!(template.size_bytes > 1000);
    assert!(template.problems.is_empty(), "{:?}", template.problems);

    let broken = &list[1];
    assert_eq!(broken.format, WorkflowFileFormat::Unknown);
    assert_eq!(broken.problems.len(), 1);
    assert!(
        broken.problems[0].contains("not valid JSON"),
        "{:?}",
        broken.problems
    );

    let api = &list[2];
    assert_eq!(api.path, "portraits/flux.json");
    assert_eq!(api.name, "flux");
    assert_eq!(api.format, WorkflowFileFormat::Api);

    // `{}` is JSON but no workflow: listed, with a problem.
    assert!(
        list[3].problems[0].contains("neither"),
        "{:?}",
        list[3].problems
    );
}

#[test]
fn default_workflow_summary_with_the_full_object_info() {
    let ws = workspace();
    write_json(
        &ws.layout.workflow_user().join("default.json"),
        &default_ui(),
    );
    let info = full_object_info();
    let ctx = WorkflowContext::new()
        .with_object_info(&info)
        .with_preset_hint(PRESET_HINT);
    let (summary, value) = ws.library.load("user:default.json", &ctx).unwrap();
    assert_eq!(value, default_ui());
    assert_eq!(summary.id, "user:default.json");
    assert_eq!(summary.format, WorkflowFileFormat::Ui);
    assert!(summary.problems.is_empty(), "{:?}", summary.problems);

    // The recording's model lists are empty and nothing is on the volume: missing.
    assert_eq!(summary.required_models.len(), 1);
    let model = &summary.required_models[0];
    assert_eq!(model.folder, "checkpoints");
    assert_eq!(model.file, "placeholder_model.safetensors");
    assert_eq!(model.node_id, "4");
    assert_eq!(model.class_type, "CheckpointLoaderSimple");
    assert_eq!(model.input, "ckpt_name");
    assert!(!model.installed);
    assert_eq!(model.preset_id.as_deref(), Some("sd15-placeholder"));
    assert!(!summary.models_ready());

    let inputs = &summary.inputs;
    // Both encoders are titled "CLIP Text Encode (Prompt)": the KSampler's links tell them apart.
    assert_eq!(inputs[0].label, "Prompt (positive)");
    assert_eq!(inputs[0].node_id, "6");
    assert_eq!(inputs[0].kind, InputKind::Text);
    assert_eq!(
        inputs[0].value,
        json!("beautiful scenery nature glass bottle landscape, , purple galaxy bottle,")
    );
    assert_eq!(inputs[1].label, "Prompt (negative)");
    assert_eq!(inputs[1].node_id, "7");
    assert_eq!(inputs[1].value, json!("text, watermark"));

    let seed = input(inputs, "3", "seed");
    assert_eq!(seed.kind, InputKind::Seed);
    assert_eq!(seed.value, json!(156680208700286u64));
    assert_eq!(seed.min, Some(0.0));
    assert_eq!(seed.label, "Seed");
    let steps = input(inputs, "3", "steps");
    assert_eq!(
        (steps.kind, steps.min, steps.max),
        (InputKind::Int, Some(1.0), Some(10000.0))
    );
    assert_eq!(steps.value, json!(20));
    let cfg = input(inputs, "3", "cfg");
    assert_eq!((cfg.kind, cfg.step), (InputKind::Float, Some(0.1)));
    let sampler = input(inputs, "3", "sampler_name");
    assert_eq!(sampler.kind, InputKind::Combo);
    assert!(sampler
        .options
        .as_ref()
        .unwrap()
        .contains(&"euler".to_string()));
    assert_eq!(input(inputs, "3", "scheduler").value, json!("normal"));
    assert_eq!(input(inputs, "3", "denoise").max, Some(1.0));
    let width = input(inputs, "5", "width");
    assert_eq!(
        (width.kind, width.value.clone(), width.step),
        (InputKind::Int, json!(512), Some(8.0))
    );
    assert_eq!(width.label, "Width");
    assert_eq!(input(inputs, "5", "height").value, json!(512));
    assert_eq!(input(inputs, "5", "batch_size").value, json!(1));
    // Not something to change before a run.
    assert!(!inputs.iter().any(|i| i.input == "filename_prefix"));
    assert!(!inputs.iter().any(|i| i.input == "ckpt_name"));

    // Once the file is on the volume, it is installed.
    write(
        &ws.layout
            .models()
            .join("checkpoints/placeholder_model.safetensors"),
        "",
    );
    let (summary, _) = ws.library.load("user:default.json", &ctx).unwrap();
    assert!(summary.required_models[0].installed);
    assert!(summary.models_ready());

    // A model file that is a link into a download cache elsewhere counts too.
    #[cfg(unix)]
    {
        let cache = tempfile::tempdir().unwrap();
        let blob = cache.path().join("blob");
        write(&blob, "");
        let checkpoints = ws.layout.models().join("checkpoints");
        fs::remove_file(checkpoints.join("placeholder_model.safetensors")).unwrap();
        std::os::unix::fs::symlink(&blob, checkpoints.join("placeholder_model.safetensors"))
            .unwrap();
        let (summary, _) = ws.library.load("user:default.json", &ctx).unwrap();
        assert!(summary.required_models[0].installed);
    }
}

#[test]
fn subset_object_info_marks_listed_models_installed() {
    let ws = workspace();
    let info = subset_object_info();
    let ctx = WorkflowContext::new().with_object_info(&info);
    let summary = ws.library.summarize_value(
        WorkflowSource::ComfyUi,
        "my flow.json",
        0,
        0,
        &default_ui(),
        &ctx,
    );
    assert!(summary.required_models[0].installed);
    assert_eq!(summary.required_models[0].preset_id, None);
    let scheduler = input(&summary.inputs, "3", "scheduler");
    assert!(scheduler
        .options
        .as_ref()
        .unwrap()
        .contains(&"karras".to_string()));
}

#[test]
fn ui_workflows_without_object_info_still_list_their_models() {
    let ws = workspace();
    let ctx = WorkflowContext::new().with_preset_hint(PRESET_HINT);
    let summary =
        ws.library
            .summarize_value(WorkflowSource::User, "a.json", 0, 0, &default_ui(), &ctx);
    assert_eq!(summary.format, WorkflowFileFormat::Ui);
    assert_eq!(summary.required_models.len(), 1);
    let model = &summary.required_models[0];
    assert_eq!(
        (
            model.folder.as_str(),
            model.input.as_str(),
            model.node_id.as_str()
        ),
        ("checkpoints", "ckpt_name", "4")
    );
    assert_eq!(model.preset_id.as_deref(), Some("sd15-placeholder"));
    // Widget values cannot be named without /object_info.
    assert!(summary.inputs.is_empty());

    // A bypassed LoRA loader loads nothing.
    let bypass = fixture("ui_to_api_bypass_and_mute.json")["ui_workflow"].clone();
    let summary = ws
        .library
        .summarize_value(WorkflowSource::User, "b.json", 0, 0, &bypass, &ctx);
    let folders: Vec<&str> = summary
        .required_models
        .iter()
        .map(|m| m.folder.as_str())
        .collect();
    assert_eq!(folders, ["checkpoints"]);

    // Inner nodes of subgraphs get API-style ids.
    let mut flux = json!({
        "nodes": [
            {"id": 1, "type": "sg-1", "mode": 0, "widgets_values": []},
            {"id": 2, "type": "UnetLoaderGGUF", "mode": 0, "widgets_values": ["flux1-dev-Q4.gguf"]}
        ],
        "links": [],
        "definitions": {"subgraphs": [{"id": "sg-1", "nodes": [
            {"id": 5, "type": "DualCLIPLoader", "mode": 0,
             "widgets_values": ["clip_l.safetensors", "t5xxl_fp8.safetensors", "flux", "default"]},
            {"id": 6, "type": "LoraLoader", "mode": 4,
             "widgets_values": ["skipped.safetensors", 1.0, 1.0]}
        ]}]}
    });
    write(&ws.layout.models().join("clip/clip_l.safetensors"), "");
    let summary = ws
        .library
        .summarize_value(WorkflowSource::User, "c.json", 0, 0, &flux, &ctx);
    let models: Vec<(String, String, String, bool)> = summary
        .required_models
        .iter()
        .map(|m| {
            (
                m.node_id.clone(),
                m.folder.clone(),
                m.input.clone(),
                m.installed,
            )
        })
        .collect();
    assert_eq!(
        models,
        [
            (
                "1:5".into(),
                "text_encoders".into(),
                "clip_name1".into(),
                true
            ),
            (
                "1:5".into(),
                "text_encoders".into(),
                "clip_name2".into(),
                false
            ),
            (
                "2".into(),
                "diffusion_models".into(),
                "unet_name".into(),
                false
            ),
        ]
    );
    // A file name that climbs out of the models folder is never installed.
    flux["nodes"][1]["widgets_values"][0] = json!("../../workflows/user/x.gguf");
    write(&ws.layout.workflow_user().join("x.gguf"), "");
    let summary = ws
        .library
        .summarize_value(WorkflowSource::User, "c.json", 0, 0, &flux, &ctx);
    assert!(!summary.required_models[2].installed);
}

#[test]
fn api_workflow_summary() {
    let ws = workspace();
    let summary = ws.library.summarize_value(
        WorkflowSource::User,
        "api.json",
        5,
        6,
        &default_api(),
        &WorkflowContext::new(),
    );
    assert_eq!(summary.format, WorkflowFileFormat::Api);
    assert_eq!(summary.node_count, 7);
    assert_eq!((summary.modified_ms, summary.size_bytes), (5, 6));
    assert_eq!(summary.required_models.len(), 1);
    assert_eq!(summary.required_models[0].folder, "checkpoints");
    let labels: Vec<&str> = summary.inputs.iter().map(|i| i.label.as_str()).collect();
    assert_eq!(
        labels,
        [
            "Prompt (positive)",
            "Prompt (negative)",
            "Seed",
            "Steps",
            "CFG",
            "Sampler",
            "Scheduler",
            "Denoise",
            "Width",
            "Height",
            "Batch size",
        ]
    );
    // Without /object_info: kinds from the input names, ComfyUI's usual ranges.
    let cfg = input(&summary.inputs, "3", "cfg");
    assert_eq!((cfg.kind, cfg.max), (InputKind::Float, Some(100.0)));
    assert_eq!(input(&summary.inputs, "3", "steps").min, Some(1.0));
    assert_eq!(
        input(&summary.inputs, "3", "sampler_name").kind,
        InputKind::Combo
    );
    assert_eq!(input(&summary.inputs, "3", "sampler_name").options, None);

    // With it, check_prompt's findings (other than missing models) become problems.
    let info = full_object_info();
    let mut api = default_api();
    api["12"] = json!({"class_type": "NoSuchNode", "inputs": {}});
    let summary = ws.library.summarize_value(
        WorkflowSource::User,
        "api.json",
        0,
        0,
        &api,
        &WorkflowContext::new().with_object_info(&info),
    );
    assert_eq!(summary.problems.len(), 1, "{:?}", summary.problems);
    assert!(summary.problems[0].contains("NoSuchNode"));
}

#[test]
fn subgraphs_titles_loadimage_and_primitives() {
    let info = full_object_info();
    let subgraph = fixture("ui_to_api_subgraph.json")["ui_workflow"].clone();
    let prompt = ui_to_api_seeded(&subgraph, &info, 0).unwrap();
    let inputs = editable_inputs(&prompt, Some(&info));
    assert_eq!(inputs[0].label, "Prompt (positive)");
    assert_eq!(inputs[0].node_id, "10:6");
    assert_eq!(inputs[1].node_id, "10:7");

    // A PrimitiveInt drives the latent's width: shown as that width.
    let linked = fixture("ui_to_api_widget_input_link_and_loadimage.json")["api_prompt"].clone();
    let prompt = ApiPrompt::from_value(linked).unwrap();
    let inputs = editable_inputs(&prompt, Some(&info));
    let width = input(&inputs, "10", "value");
    assert_eq!(width.label, "Width");
    assert_eq!((width.min, width.max), (Some(16.0), Some(16384.0)));
    assert!(!inputs
        .iter()
        .any(|i| i.node_id == "5" && i.input == "width"));
    let image = input(&inputs, "11", "image");
    assert_eq!(image.kind, InputKind::Combo);
    assert_eq!(image.value, json!("upload_test (1).png"));
    assert_eq!(image.label, "Image");

    // The links decide, not the titles: a stale title ("Negative prompt" on the encoder that
    // feeds the sampler's positive input) is ignored.
    let mut api = default_api();
    api["6"]["_meta"]["title"] = json!("Negative prompt");
    api["7"]["_meta"]["title"] = json!("Positive prompt");
    let inputs = editable_inputs(&ApiPrompt::from_value(api.clone()).unwrap(), None);
    assert_eq!(
        (
            inputs[0].node_id.as_str(),
            inputs[0].label.as_str(),
            inputs[0].role
        ),
        ("6", "Prompt (positive)", Some(PromptRole::Positive))
    );
    assert_eq!(
        (
            inputs[1].node_id.as_str(),
            inputs[1].label.as_str(),
            inputs[1].role
        ),
        ("7", "Prompt (negative)", Some(PromptRole::Negative))
    );
    // Only an encoder that feeds no sampler falls back to its title.
    api["20"] = json!({
        "class_type": "CLIPTextEncode",
        "inputs": {"text": "unused", "clip": ["4", 1]},
        "_meta": {"title": "Negative prompt (spare)"}
    });
    api["21"] = json!({
        "class_type": "CLIPTextEncode",
        "inputs": {"text": "also unused", "clip": ["4", 1]},
        "_meta": {"title": "Notes"}
    });
    let inputs = editable_inputs(&ApiPrompt::from_value(api).unwrap(), None);
    assert_eq!(
        input(&inputs, "20", "text").role,
        Some(PromptRole::Negative)
    );
    assert_eq!(input(&inputs, "21", "text").role, None);
    assert_eq!(input(&inputs, "21", "text").label, "Notes · text");
    // Non-text inputs have no role.
    assert!(inputs
        .iter()
        .filter(|i| i.kind != InputKind::Text)
        .all(|i| i.role.is_none()));

    // Two samplers with the same title: their inputs are named after the node, then its id.
    let mut api = default_api();
    api["13"] = api["3"].clone();
    let inputs = editable_inputs(&ApiPrompt::from_value(api).unwrap(), None);
    assert!(inputs.iter().any(|i| i.label == "KSampler · seed (node 3)"));
    assert!(inputs
        .iter()
        .any(|i| i.label == "KSampler · seed (node 13)"));
    assert_eq!(
        input(&inputs, "13", "steps").label,
        "KSampler · steps (node 13)"
    );
    assert_eq!(input(&inputs, "5", "width").label, "Width");
    assert!(inputs
        .iter()
        .any(|i| i.label == "Prompt (positive)" && i.node_id == "6"));
}

#[test]
fn imports_the_workflow_of_a_comfyui_png() {
    let ws = workspace();
    let png = fixture_bytes("view_output.png");
    let summary = ws
        .library
        .import("view_output.png", &png, &WorkflowContext::new())
        .unwrap();
    assert_eq!(summary.id, "user:view_output.json");
    assert_eq!(summary.name, "view_output");
    assert_eq!(
        summary.format,
        WorkflowFileFormat::Ui,
        "the workflow chunk is preferred"
    );
    assert_eq!(summary.node_count, 3);
    let stored: Value = serde_json::from_str(
        &fs::read_to_string(ws.layout.workflow_user().join("view_output.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(stored["id"], json!("6f0e3a0e-1f5b-4a55-9f0f-2b8c1c7a9d11"));
    assert_eq!(stored["nodes"][0]["type"], json!("EmptyImage"));
    // Same workflow as the one ComfyUI keeps.
    let comfy_copy = fixture("get_userdata_file.json")["response"]["body_json"].clone();
    assert_eq!(stored["nodes"], comfy_copy["nodes"]);

    // The prompt chunk is used when there is no workflow chunk.
    let only_prompt = rewrite_png_text(&png, |keyword| keyword != "workflow");
    let (value, _) = workflow_from_png(&only_prompt).unwrap();
    assert_eq!(value["1"]["class_type"], json!("EmptyImage"));

    // An iTXt (uncompressed) workflow chunk is read too.
    let itxt = rewrite_png_text(&png, |_| true);
    let itxt = text_to_itxt(&itxt);
    let (value, _) = workflow_from_png(&itxt).unwrap();
    assert!(value["nodes"].is_array());
}

/// Copies a PNG, keeping only the tEXt chunks whose keyword passes `keep`.
fn rewrite_png_text(png: &[u8], keep: impl Fn(&str) -> bool) -> Vec<u8> {
    let mut out = png[..8].to_vec();
    let mut at = 8;
    while at < png.len() {
        let length = u32::from_be_bytes(png[at..at + 4].try_into().unwrap()) as usize;
        let kind = &png[at + 4..at + 8];
        let data = &png[at + 8..at + 8 + length];
        let end = at + 12 + length;
        let keyword = data.split(|&b| b == 0).next().unwrap_or_default();
        if kind != b"tEXt" || keep(std::str::from_utf8(keyword).unwrap()) {
            out.extend_from_slice(&png[at..end]);
        }
        at = end;
    }
    out
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for &b in bytes {
        c ^= b as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}

fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = (data.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let mut crc_input = kind.to_vec();
    crc_input.extend_from_slice(data);
    out.extend_from_slice(&crc32(&crc_input).to_be_bytes());
    out
}

/// Turns every tEXt chunk into an uncompressed iTXt chunk.
fn text_to_itxt(png: &[u8]) -> Vec<u8> {
    let mut out = png[..8].to_vec();
    let mut at = 8;
    while at < png.len() {
        let length = u32::from_be_bytes(png[at..at + 4].try_into().unwrap()) as usize;
        let kind = &png[at + 4..at + 8];
        let data = &png[at + 8..at + 8 + length];
        let end = at + 12 + length;
        if kind == b"tEXt" {
            let nul = data.iter().position(|&b| b == 0).unwrap();
            let mut itxt = data[..nul].to_vec();
            itxt.extend_from_slice(&[0, 0, 0, 0, 0]);
            itxt.extend_from_slice(&data[nul + 1..]);
            out.extend(png_chunk(b"iTXt", &itxt));
        } else {
            out.extend_from_slice(&png[at..end]);
        }
        at = end;
    }
    out
}

#[test]
fn imports_json_files_with_unique_names() {
    let ws = workspace();
    let ctx = WorkflowContext::new();
    let ui = serde_json::to_vec_pretty(&default_ui()).unwrap();
    let ids: Vec<String> = (0..3)
        .map(|_| ws.library.import("flow.json", &ui, &ctx).unwrap().id)
        .collect();
    assert_eq!(
        ids,
        ["user:flow.json", "user:flow (2).json", "user:flow (3).json"]
    );
    // The file is stored as it came.
    assert_eq!(
        fs::read(ws.layout.workflow_user().join("flow (2).json")).unwrap(),
        ui
    );

    let api = serde_json::to_vec(&default_api()).unwrap();
    let summary = ws
        .library
        .import("C:\\Users\\me\\..\\prompt.json", &api, &ctx)
        .unwrap();
    assert_eq!(summary.id, "user:prompt.json");
    assert_eq!(summary.format, WorkflowFileFormat::Api);

    // A `POST /prompt` body: the UI workflow in extra_pnginfo is taken.
    let body = json!({
        "prompt": default_api(),
        "extra_data": {"extra_pnginfo": {"workflow": default_ui()}}
    });
    let summary = ws
        .library
        .import("request.json", body.to_string().as_bytes(), &ctx)
        .unwrap();
    assert_eq!(summary.format, WorkflowFileFormat::Ui);

    // Hostile file names stay inside the user folder.
    let summary = ws.library.import("../../../.bashrc", &api, &ctx).unwrap();
    assert_eq!(summary.id, "user:bashrc.json");
    assert_eq!(
        user_files(&ws),
        [
            "bashrc.json",
            "flow (2).json",
            "flow (3).json",
            "flow.json",
            "prompt.json",
            "request.json"
        ]
    );
}

fn not_a_workflow(result: Result<WorkflowSummary, WorkflowError>) -> String {
    match result {
        Err(WorkflowError::NotAWorkflow(message)) => message,
        other => panic!("expected NotAWorkflow, got {other:?}"),
    }
}

#[test]
fn refuses_imports_that_hold_no_workflow() {
    let ws = workspace();
    let ctx = WorkflowContext::new();
    let png = fixture_bytes("view_output.png");

    let plain = rewrite_png_text(&png, |_| false);
    let message = not_a_workflow(ws.library.import("photo.png", &plain, &ctx));
    assert!(message.contains("not a workflow image"), "{message}");
    assert!(message.contains("no ComfyUI workflow"), "{message}");

    let mut webp = b"RIFF\x24\x00\x00\x00WEBPVP8 ".to_vec();
    webp.extend_from_slice(&[0; 24]);
    let message = not_a_workflow(ws.library.import("out.webp", &webp, &ctx));
    assert!(
        message.contains("not a workflow image") && message.contains("WebP"),
        "{message}"
    );

    let jpeg = [0xFF, 0xD8, 0xFF, 0xE0, 0, 16, b'J', b'F', b'I', b'F'];
    assert!(not_a_workflow(ws.library.import("a.jpg", &jpeg, &ctx)).contains("JPEG"));

    let message = not_a_workflow(ws.library.import("x.bin", &[0, 159, 146, 150, 1, 2], &ctx));
    assert!(message.contains("neither JSON nor a PNG"), "{message}");

    let message = not_a_workflow(ws.library.import("x.json", b"{\"nodes\": [", &ctx));
    assert!(message.contains("not valid JSON"), "{message}");

    let message = not_a_workflow(ws.library.import("x.json", b"{\"hello\": 1}", &ctx));
    assert!(message.contains("not a ComfyUI workflow"), "{message}");

    assert!(not_a_workflow(ws.library.import("x.json", b"", &ctx)).contains("empty"));

    // A damaged workflow chunk (bad CRC) with no prompt chunk to fall back on.
    let mut damaged = rewrite_png_text(&png, |k| k == "workflow");
    let at = damaged.windows(8).position(|w| w == b"workflow").unwrap();
    damaged[at + 20] ^= 0x01;
    let message = not_a_workflow(ws.library.import("d.png", &damaged, &ctx));
    assert!(message.contains("CRC"), "{message}");

    // Nothing was written.
    assert!(user_files(&ws).is_empty());
}

#[test]
fn rename_delete_and_save_rules() {
    let ws = workspace();
    let ctx = WorkflowContext::new();
    write_json(
        &ws.layout.workflow_templates().join("t.json"),
        &default_ui(),
    );
    write_json(&ws.layout.workflow_user().join("sub/a.json"), &default_ui());
    write_json(
        &ws.layout.workflow_user().join("sub/b.json"),
        &default_api(),
    );

    let renamed = ws
        .library
        .rename("user:sub/a.json", "Portrait v2", &ctx)
        .unwrap();
    assert_eq!(renamed.id, "user:sub/Portrait v2.json");
    assert_eq!(renamed.format, WorkflowFileFormat::Ui);
    assert!(ws
        .layout
        .workflow_user()
        .join("sub/Portrait v2.json")
        .is_file());
    assert!(!ws.layout.workflow_user().join("sub/a.json").exists());
    // Same name: nothing to do.
    assert_eq!(
        ws.library
            .rename("user:sub/Portrait v2.json", "Portrait v2.json", &ctx)
            .unwrap()
            .id,
        "user:sub/Portrait v2.json"
    );

    // A taken name is refused, both files are kept.
    let err = ws
        .library
        .rename("user:sub/Portrait v2.json", "b", &ctx)
        .unwrap_err();
    assert!(matches!(err, WorkflowError::Conflict(_)), "{err:?}");
    assert!(err.to_string().contains("already exists"));
    let b: Value = serde_json::from_str(
        &fs::read_to_string(ws.layout.workflow_user().join("sub/b.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(b, default_api());

    for bad in [
        "../escape",
        "a/b",
        "a\\b",
        "..",
        ".hidden",
        "nul\0",
        "  ",
        "x..y",
    ] {
        let err = ws.library.rename("user:sub/b.json", bad, &ctx).unwrap_err();
        assert!(matches!(err, WorkflowError::Invalid(_)), "{bad:?}: {err:?}");
        assert!(err.to_string().contains("name"), "{err}");
    }

    let err = ws
        .library
        .rename("template:t.json", "mine", &ctx)
        .unwrap_err();
    assert!(matches!(err, WorkflowError::ReadOnly(_)), "{err:?}");
    assert!(err.to_string().contains("template"));
    let err = ws
        .library
        .rename("comfyui:my flow.json", "mine", &ctx)
        .unwrap_err();
    assert!(matches!(err, WorkflowError::ReadOnly(_)), "{err:?}");
    assert!(err.to_string().contains("ComfyUI"));
    assert!(matches!(
        ws.library.delete("template:t.json"),
        Err(WorkflowError::ReadOnly(_))
    ));
    assert!(matches!(
        ws.library.delete("comfyui:my flow.json"),
        Err(WorkflowError::ReadOnly(_))
    ));
    assert!(matches!(
        ws.library.load("comfyui:my flow.json", &ctx),
        Err(WorkflowError::Invalid(_))
    ));

    // Ids that try to leave their folder.
    for id in [
        "user:../templates/t.json",
        "user:sub/../../templates/t.json",
        "template:/etc/passwd.json",
        "user:sub//b.json",
        "user:sub\\b.json",
        "disk:t.json",
        "t.json",
    ] {
        for result in [
            ws.library.load(id, &ctx).map(|_| ()),
            ws.library.delete(id),
            ws.library.rename(id, "x", &ctx).map(|_| ()),
        ] {
            let err = result.unwrap_err();
            assert!(matches!(err, WorkflowError::Invalid(_)), "{id}: {err:?}");
        }
    }
    // A symlink out of the user folder is not followed.
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(
            ws.layout.workflow_templates(),
            ws.layout.workflow_user().join("link"),
        )
        .unwrap();
        let err = ws.library.load("user:link/t.json", &ctx).unwrap_err();
        assert!(matches!(err, WorkflowError::Invalid(_)), "{err:?}");
        assert!(err.to_string().contains("symlink"), "{err}");
        assert!(ws.library.delete("user:link/t.json").is_err());
        assert!(ws.layout.workflow_templates().join("t.json").is_file());
        let listed: Vec<String> = ws
            .library
            .list_local(&ctx)
            .into_iter()
            .map(|s| s.id)
            .collect();
        assert!(!listed.iter().any(|id| id.contains("link")), "{listed:?}");
    }

    assert!(matches!(
        ws.library.load("user:missing.json", &ctx),
        Err(WorkflowError::NotFound(_))
    ));
    ws.library.delete("user:sub/b.json").unwrap();
    assert!(matches!(
        ws.library.delete("user:sub/b.json"),
        Err(WorkflowError::NotFound(_))
    ));

    // Save: a new file each time, never over an existing one.
    let first = ws.library.save("My flow", &default_api(), &ctx).unwrap();
    let second = ws
        .library
        .save("My flow.json", &default_api(), &ctx)
        .unwrap();
    assert_eq!(
        (first.id.as_str(), second.id.as_str()),
        ("user:My flow.json", "user:My flow (2).json")
    );
    assert!(matches!(
        ws.library.save("x", &json!({"a": 1}), &ctx),
        Err(WorkflowError::NotAWorkflow(_))
    ));
    assert!(matches!(
        ws.library.save("../x", &default_api(), &ctx),
        Err(WorkflowError::Invalid(_))
    ));
    let updated = ws
        .library
        .update("user:My flow.json", &default_ui(), &ctx)
        .unwrap();
    assert_eq!(updated.format, WorkflowFileFormat::Ui);
    assert!(matches!(
        ws.library.update("template:t.json", &default_ui(), &ctx),
        Err(WorkflowError::ReadOnly(_))
    ));
}

#[test]
fn comfyui_listing_is_summarized() {
    let ws = workspace();
    let listing = fixture("get_userdata_list_full_info.json")["response"]["body_json"].clone();
    let mut entries = parse_userdata_listing(&listing);
    assert_eq!(
        entries
            .iter()
            .map(|e| (e.path.as_str(), e.size_bytes))
            .collect::<Vec<_>>(),
        [("my flow.json", 1564), ("sub/b.json", 7)]
    );
    assert_eq!(entries[0].modified_ms, 1_795_383_003_129);

    // The other listing shapes give the same paths.
    for name in [
        "get_userdata_list.json",
        "get_userdata_list_recurse_split.json",
        "get_userdata_v2.json",
    ] {
        let body = fixture(name)["response"]["body_json"].clone();
        let paths: Vec<String> = parse_userdata_listing(&body)
            .into_iter()
            .map(|e| e.path)
            .collect();
        assert!(
            paths.contains(&"my flow.json".to_string()),
            "{name}: {paths:?}"
        );
        assert!(!paths.iter().any(|p| p.starts_with("workflows/")), "{name}");
    }

    entries[0].content = Some(fixture("get_userdata_file.json")["response"]["body_json"].clone());
    entries.push(ComfyWorkflowEntry {
        path: "../escape.json".into(),
        modified_ms: 0,
        size_bytes: 0,
        content: Some(default_api()),
    });
    let info = subset_object_info();
    let summaries = ws
        .library
        .summarize_comfyui(entries, &WorkflowContext::new().with_object_info(&info));
    assert_eq!(summaries.len(), 2);
    assert_eq!(summaries[0].id, "comfyui:my flow.json");
    assert_eq!(summaries[0].source, WorkflowSource::ComfyUi);
    assert_eq!(summaries[0].name, "my flow");
    assert_eq!(summaries[0].format, WorkflowFileFormat::Ui);
    assert!(
        summaries[0].problems.is_empty(),
        "{:?}",
        summaries[0].problems
    );
    assert_eq!(input(&summaries[0].inputs, "1", "width").label, "Width");
    assert_eq!(summaries[1].id, "comfyui:sub/b.json");
    assert_eq!(summaries[1].format, WorkflowFileFormat::Unknown);

    // Serialized ids and sources as the browser sees them.
    let json = serde_json::to_value(&summaries[0]).unwrap();
    assert_eq!(json["source"], json!("comfyui"));
    assert_eq!(json["format"], json!("ui"));
}

#[test]
fn apply_inputs_sets_values_and_rejects_bad_ones() {
    let info = full_object_info();
    let mut prompt = ui_to_api_seeded(&default_ui(), &info, 0).unwrap();
    let value = |node: &str, input: &str, value: Value| InputValue {
        node_id: node.into(),
        input: input.into(),
        value,
    };
    apply_inputs(
        &mut prompt,
        &[
            value("6", "text", json!("a red fox in the snow")),
            value("3", "seed", json!(18446744073709551615u64)),
            value("3", "steps", json!(30.0)),
            value("3", "cfg", json!(6.5)),
            value("3", "sampler_name", json!("dpmpp_2m")),
            value("5", "width", json!(768)),
        ],
        Some(&info),
    )
    .unwrap();
    let node = |id: &str| &prompt.get(id).unwrap().inputs;
    assert_eq!(node("6")["text"], json!("a red fox in the snow"));
    assert_eq!(node("3")["seed"], json!(18446744073709551615u64));
    assert_eq!(node("3")["steps"], json!(30));
    assert_eq!(node("3")["cfg"], json!(6.5));
    assert_eq!(node("3")["sampler_name"], json!("dpmpp_2m"));
    assert_eq!(node("5")["width"], json!(768));

    let before = prompt.clone();
    let err = apply_inputs(
        &mut prompt,
        &[
            value("3", "steps", json!(0)),
            value("3", "cfg", json!(101)),
            value("3", "sampler_name", json!("nope")),
            value("99", "seed", json!(1)),
            value("3", "foo", json!(1)),
            value("3", "model", json!("x")),
            value("6", "text", json!(5)),
            value("3", "seed", json!(-1)),
            value("5", "height", json!(512.5)),
            // A valid one is not applied either.
            value("3", "denoise", json!(0.5)),
        ],
        Some(&info),
    )
    .unwrap_err();
    assert_eq!(prompt, before, "nothing is applied when a value is refused");
    let WorkflowError::Inputs(problems) = &err else {
        panic!("expected Inputs, got {err:?}");
    };
    let messages: Vec<&str> = problems.iter().map(|p| p.message.as_str()).collect();
    assert_eq!(problems.len(), 9, "{messages:#?}");
    assert_eq!(
        messages[0],
        "KSampler (node 3) · steps: 0 is below the minimum 1"
    );
    assert_eq!(
        messages[1],
        "KSampler (node 3) · cfg: 101 is above the maximum 100"
    );
    assert!(messages[2].contains("'nope' is not one of the choices"));
    assert!(messages[3].contains("node 99 is not in the workflow"));
    assert_eq!(messages[4], "KSampler (node 3) has no input named foo");
    assert!(
        messages[5].contains("connected to node 4"),
        "{}",
        messages[5]
    );
    assert!(messages[6].contains("expects text"));
    assert!(messages[7].contains("seed"));
    assert!(messages[8].contains("whole number"));
    assert_eq!(
        (problems[0].node_id.as_str(), problems[0].input.as_str()),
        ("3", "steps")
    );
    assert!(err
        .to_string()
        .contains("cfg: 101 is above the maximum 100"));

    // Without /object_info: the usual ranges of the well-known inputs.
    let mut api = ApiPrompt::from_value(default_api()).unwrap();
    let err = apply_inputs(
        &mut api,
        &[
            value("3", "steps", json!(0)),
            value("5", "width", json!(20000)),
        ],
        None,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("steps: 0 is below the minimum 1"),
        "{err}"
    );
    assert!(
        err.to_string().contains("20000 is above the maximum 16384"),
        "{err}"
    );
    apply_inputs(
        &mut api,
        &[
            value("3", "sampler_name", json!("anything")),
            value("9", "filename_prefix", json!("portraits/run")),
        ],
        None,
    )
    .unwrap();
    assert_eq!(
        api.get("9").unwrap().inputs["filename_prefix"],
        json!("portraits/run")
    );
}

#[test]
fn catalog_hints_name_the_preset() {
    let catalog = Catalog::builtin();
    let hint = catalog_hint(&catalog);
    assert_eq!(
        hint("checkpoints", "ltx-video-2b-v0.9.5.safetensors"),
        catalog
            .preset_for_model("checkpoints/ltx-video-2b-v0.9.5.safetensors")
            .map(str::to_string)
    );
    assert!(hint("checkpoints", "ltx-video-2b-v0.9.5.safetensors").is_some());
    assert_eq!(hint("checkpoints", "unknown.safetensors"), None);
}

#[test]
fn each_user_has_their_own_workflows_beside_the_shared_templates() {
    let ws = workspace();
    let ctx = WorkflowContext::new();
    write(
        &ws.layout.workflow_templates().join("shared.json"),
        &default_api().to_string(),
    );
    let admins = ws
        .library
        .import("mine.json", default_api().to_string().as_bytes(), &ctx)
        .unwrap();
    assert_eq!(
        admins.id, "user:mine.json",
        "the administrator's stay at the top level"
    );
    let alices = ws
        .library
        .import_as(2, "flow.json", default_api().to_string().as_bytes(), &ctx)
        .unwrap();
    assert_eq!(alices.id, "user:@2/flow.json");
    assert!(ws.layout.workflow_user().join("@2/flow.json").is_file());
    let bobs = ws
        .library
        .import_as(3, "flow.json", default_api().to_string().as_bytes(), &ctx)
        .unwrap();
    assert_eq!(
        bobs.id, "user:@3/flow.json",
        "the same name in another's folder"
    );

    let ids = |list: Vec<WorkflowSummary>| list.into_iter().map(|w| w.id).collect::<Vec<_>>();
    assert_eq!(
        ids(ws.library.list_own(2, &ctx)),
        ["template:shared.json", "user:@2/flow.json"]
    );
    assert_eq!(
        ids(ws.library.list_own(3, &ctx)),
        ["template:shared.json", "user:@3/flow.json"]
    );
    // The administrator's view is everyone's.
    let all = ids(ws.library.list_local(&ctx));
    for id in [
        "user:mine.json",
        "user:@2/flow.json",
        "user:@3/flow.json",
        "template:shared.json",
    ] {
        assert!(all.iter().any(|a| a == id), "{id} in {all:?}");
    }

    // Ownership is the path.
    assert_eq!(engine::workflows::owner_of_id("user:@2/flow.json"), Some(2));
    assert_eq!(
        engine::workflows::owner_of_id("user:@2/sub/x.json"),
        Some(2)
    );
    assert_eq!(engine::workflows::owner_of_id("user:mine.json"), Some(1));
    assert_eq!(engine::workflows::owner_of_id("user:@x/y.json"), Some(1));
    assert_eq!(engine::workflows::owner_of_id("user:@2.json"), Some(1));
    assert_eq!(engine::workflows::owner_of_id("template:shared.json"), None);
    assert_eq!(engine::workflows::owner_of_id("comfyui:a.json"), None);

    // A rename stays in the owner's folder.
    let renamed = ws
        .library
        .rename("user:@2/flow.json", "portrait", &ctx)
        .unwrap();
    assert_eq!(renamed.id, "user:@2/portrait.json");

    // A removed user's folder passes to the administrator's top level.
    assert_eq!(ws.library.hand_over_to_admin(2, "alice").unwrap(), 1);
    assert!(ws
        .layout
        .workflow_user()
        .join("alice (removed)/portrait.json")
        .is_file());
    assert!(!ws.layout.workflow_user().join("@2").exists());
    assert_eq!(
        ws.library.hand_over_to_admin(2, "alice").unwrap(),
        0,
        "nothing left"
    );
    assert_eq!(ws.library.hand_over_to_admin(1, "admin").unwrap(), 0);
}

#[tokio::test]
async fn users_reach_templates_and_their_own_workflows_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _) = engine::Engine::start(common::test_config(dir.path()))
        .await
        .unwrap();
    let open = engine.auth().open_caller();
    let add = |name: &'static str| {
        let engine = engine.clone();
        let open = open.clone();
        async move {
            let user = engine
                .auth()
                .users()
                .add(
                    &open,
                    name,
                    engine::model::Role::User,
                    Some("password-123".into()),
                )
                .await
                .unwrap()
                .user;
            engine::model::Caller {
                user_id: user.id,
                username: user.username,
                role: user.role,
                theme: None,
            }
        }
    };
    let alice = add("alice").await;
    let bob = add("bob").await;
    write(
        &engine.layout().workflow_templates().join("shared.json"),
        &default_api().to_string(),
    );
    let workflows = engine.workflows();
    let hers = workflows
        .import(&alice, "flow.json", default_api().to_string().as_bytes())
        .await
        .unwrap();
    assert_eq!(hers.id, format!("user:@{}/flow.json", alice.user_id));

    let kind = |e: engine::workflows::WorkflowError| engine::error::Classify::kind(&e);
    use engine::model::ErrorKind;
    // Bob: not found, by every route; his list leaves it out.
    assert_eq!(
        kind(workflows.get(&bob, &hers.id).await.unwrap_err()),
        ErrorKind::NotFound
    );
    assert_eq!(
        kind(workflows.rename(&bob, &hers.id, "x").await.unwrap_err()),
        ErrorKind::NotFound
    );
    assert_eq!(
        kind(workflows.delete(&bob, &hers.id).await.unwrap_err()),
        ErrorKind::NotFound
    );
    assert_eq!(
        kind(workflows.run_saved(&bob, &hers.id, &[]).await.unwrap_err()),
        ErrorKind::NotFound
    );
    let listed: Vec<String> = workflows
        .list(&bob)
        .await
        .unwrap()
        .workflows
        .into_iter()
        .map(|w| w.id)
        .collect();
    assert_eq!(listed, ["template:shared.json"]);
    // The administrator's own are not his either.
    let admins = workflows
        .import(&open, "admins.json", default_api().to_string().as_bytes())
        .await
        .unwrap();
    assert_eq!(
        kind(workflows.get(&bob, &admins.id).await.unwrap_err()),
        ErrorKind::NotFound
    );
    // Templates: read, never changed by a user (403); ComfyUI's own: the administrator's.
    workflows.get(&bob, "template:shared.json").await.unwrap();
    assert_eq!(
        kind(
            workflows
                .delete(&bob, "template:shared.json")
                .await
                .unwrap_err()
        ),
        ErrorKind::Forbidden
    );
    assert_eq!(
        kind(
            workflows
                .rename(&bob, "template:shared.json", "x")
                .await
                .unwrap_err()
        ),
        ErrorKind::Forbidden
    );
    assert_eq!(
        kind(
            workflows
                .get(&bob, "comfyui:my flow.json")
                .await
                .unwrap_err()
        ),
        ErrorKind::Forbidden
    );
    // Paths are still checked against the root.
    assert_eq!(
        kind(
            workflows
                .get(&alice, "user:@2/../../x.json")
                .await
                .unwrap_err()
        ),
        ErrorKind::Invalid
    );

    // Alice and the administrator reach hers.
    workflows.get(&alice, &hers.id).await.unwrap();
    workflows.get(&open, &hers.id).await.unwrap();
    let renamed = workflows.rename(&alice, &hers.id, "mine").await.unwrap();
    workflows.delete(&open, &renamed.id).await.unwrap();
}
