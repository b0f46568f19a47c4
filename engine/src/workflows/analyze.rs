//! What a workflow needs and what a user would change before running it: the model files
//! its loaders pick, and its prompt/seed/sampler/size inputs. Also the checked setting of
//! those inputs on an API prompt.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use serde_json::Value;

use super::{
    EditableInput, InputKind, InputProblem, InputValue, RequiredModel, WorkflowContext,
    WorkflowError, WorkflowFileFormat,
};
use crate::comfy::convert::{
    check_prompt, detect_format, model_folder, ui_to_api_seeded, ApiNode, ApiPrompt, InputSpec,
    ObjectInfo, WorkflowFormat,
};

/// File name endings of model files, for scanning UI workflows without `/object_info`.
const MODEL_EXTENSIONS: &[&str] = &[
    ".safetensors",
    ".ckpt",
    ".pt",
    ".pth",
    ".bin",
    ".gguf",
    ".sft",
];

/// The widget inputs of the built-in loaders, in widget order (socket-only inputs left out):
/// lets a UI workflow's `widgets_values` be named without `/object_info`.
const LOADER_WIDGETS: &[(&str, &[&str])] = &[
    ("CheckpointLoaderSimple", &["ckpt_name"]),
    ("CheckpointLoader", &["config_name", "ckpt_name"]),
    ("ImageOnlyCheckpointLoader", &["ckpt_name"]),
    ("unCLIPCheckpointLoader", &["ckpt_name"]),
    ("VAELoader", &["vae_name"]),
    (
        "LoraLoader",
        &["lora_name", "strength_model", "strength_clip"],
    ),
    ("LoraLoaderModelOnly", &["lora_name", "strength_model"]),
    ("UNETLoader", &["unet_name", "weight_dtype"]),
    ("CLIPLoader", &["clip_name", "type", "device"]),
    (
        "DualCLIPLoader",
        &["clip_name1", "clip_name2", "type", "device"],
    ),
    (
        "TripleCLIPLoader",
        &["clip_name1", "clip_name2", "clip_name3"],
    ),
    (
        "QuadrupleCLIPLoader",
        &["clip_name1", "clip_name2", "clip_name3", "clip_name4"],
    ),
    ("CLIPVisionLoader", &["clip_name"]),
    ("ControlNetLoader", &["control_net_name"]),
    ("DiffControlNetLoader", &["control_net_name"]),
    ("UpscaleModelLoader", &["model_name"]),
    ("StyleModelLoader", &["style_model_name"]),
    ("GLIGENLoader", &["gligen_name"]),
    ("HypernetworkLoader", &["hypernetwork_name", "strength"]),
    ("PhotoMakerLoader", &["photomaker_model_name"]),
    ("ModelPatchLoader", &["name"]),
    ("AudioEncoderLoader", &["audio_encoder_name"]),
];

/// Input names that hold prompt text when `/object_info` cannot say (`STRING`, multiline).
const TEXT_INPUTS: &[&str] = &["text", "text_g", "text_l", "t5xxl", "clip_l", "prompt"];

/// How deep subgraphs are followed when scanning a UI workflow.
const MAX_SUBGRAPH_DEPTH: usize = 8;

/// The findings about one workflow.
pub(crate) struct Analysis {
    pub format: WorkflowFileFormat,
    pub node_count: usize,
    pub required_models: Vec<RequiredModel>,
    pub inputs: Vec<EditableInput>,
    pub node_types: Vec<String>,
    pub problems: Vec<String>,
}

/// Node classes of a UI workflow (top level and subgraph definitions) or an API prompt,
/// sorted and unique. Needs no `/object_info`, so search works while ComfyUI is down.
fn node_types(workflow: &Value, format: WorkflowFormat) -> Vec<String> {
    let mut types = std::collections::BTreeSet::new();
    match format {
        WorkflowFormat::Ui => {
            let subgraphs = workflow
                .pointer("/definitions/subgraphs")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|g| g.get("nodes"));
            for nodes in std::iter::once(&workflow["nodes"]).chain(subgraphs) {
                for node in nodes.as_array().into_iter().flatten() {
                    if let Some(t) = node.get("type").and_then(Value::as_str) {
                        types.insert(t.to_string());
                    }
                }
            }
        }
        WorkflowFormat::Api => {
            for node in workflow.as_object().into_iter().flat_map(|m| m.values()) {
                if let Some(t) = node.get("class_type").and_then(Value::as_str) {
                    types.insert(t.to_string());
                }
            }
        }
        WorkflowFormat::Unknown => {}
    }
    // Subgraph instances are typed by their definition's UUID: not a class anyone searches.
    types
        .into_iter()
        .filter(|t| !(t.len() == 36 && t.matches('-').count() == 4))
        .collect()
}

/// Analyzes a workflow in either format. `on_disk(folder, file)` tells whether a model file
/// is in the workspace.
pub(crate) fn analyze(
    workflow: &Value,
    ctx: &WorkflowContext<'_>,
    on_disk: &dyn Fn(&str, &str) -> bool,
) -> Analysis {
    let mut analysis = Analysis {
        format: WorkflowFileFormat::Unknown,
        node_count: 0,
        required_models: Vec::new(),
        inputs: Vec::new(),
        node_types: Vec::new(),
        problems: Vec::new(),
    };
    let format = detect_format(workflow);
    analysis.node_types = node_types(workflow, format);
    match format {
        WorkflowFormat::Ui => {
            analysis.format = WorkflowFileFormat::Ui;
            analysis.node_count = workflow["nodes"].as_array().map_or(0, Vec::len);
            let converted = ctx.object_info.map(|oi| ui_to_api_seeded(workflow, oi, 0));
            match converted {
                Some(Ok(prompt)) => from_api(&prompt, ctx, on_disk, &mut analysis),
                Some(Err(e)) => {
                    analysis.problems.push(e.to_string());
                    analysis.required_models = scan_ui_models(workflow, ctx, on_disk);
                }
                None => analysis.required_models = scan_ui_models(workflow, ctx, on_disk),
            }
        }
        WorkflowFormat::Api => {
            analysis.format = WorkflowFileFormat::Api;
            match ApiPrompt::from_value(workflow.clone()) {
                Ok(prompt) => {
                    analysis.node_count = prompt.len();
                    from_api(&prompt, ctx, on_disk, &mut analysis);
                }
                Err(e) => analysis.problems.push(e.to_string()),
            }
        }
        WorkflowFormat::Unknown => analysis.problems.push(
            "this JSON is neither a ComfyUI workflow (no `nodes` and `links` arrays) nor an API \
             prompt (node id → {class_type, inputs})"
                .into(),
        ),
    }
    analysis
}

fn from_api(
    prompt: &ApiPrompt,
    ctx: &WorkflowContext<'_>,
    on_disk: &dyn Fn(&str, &str) -> bool,
    analysis: &mut Analysis,
) {
    analysis.required_models = api_models(prompt, ctx, on_disk);
    analysis.inputs = editable_inputs(prompt, ctx.object_info);
    if let Some(oi) = ctx.object_info {
        // Missing model files are reported in `required_models` (which also looks on disk).
        let problems = check_prompt(prompt, oi, &|_, _| None);
        analysis.problems.extend(
            problems
                .iter()
                .filter(|p| {
                    p.input
                        .as_deref()
                        .is_none_or(|i| model_folder(&p.class_type, i).is_none())
                })
                .map(|p| p.sentence()),
        );
        // Small mistakes: offered as fixes ("Make runnable" applies them to a copy).
        analysis
            .problems
            .extend(super::fixes::find(prompt, oi).iter().map(|f| f.problem()));
    }
}

/// `["4", 0]` → `4`.
fn link_source(value: &Value) -> Option<String> {
    let parts = value.as_array().filter(|a| a.len() == 2)?;
    if !parts[1].is_u64() {
        return None;
    }
    match &parts[0] {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

pub(crate) use crate::comfy::convert::id_order;

fn sorted_nodes(prompt: &ApiPrompt) -> Vec<(&String, &ApiNode)> {
    let mut nodes: Vec<_> = prompt.nodes.iter().collect();
    nodes.sort_by(|a, b| id_order(a.0, b.0));
    nodes
}

fn same_file(a: &str, b: &str) -> bool {
    a.replace('\\', "/") == b.replace('\\', "/")
}

fn combo_has(options: &[Value], value: &str) -> bool {
    options
        .iter()
        .any(|o| o.as_str().is_some_and(|o| same_file(o, value)))
}

fn is_model_file_name(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    MODEL_EXTENSIONS.iter().any(|ext| lower.ends_with(ext))
}

fn required_model(
    folder: &str,
    file: &str,
    node_id: &str,
    class_type: &str,
    input: &str,
    installed: bool,
    ctx: &WorkflowContext<'_>,
) -> RequiredModel {
    RequiredModel {
        folder: folder.to_string(),
        file: file.to_string(),
        node_id: node_id.to_string(),
        class_type: class_type.to_string(),
        input: input.to_string(),
        installed,
        preset_id: ctx.preset_hint.and_then(|hint| hint(folder, file)),
    }
}

/// The model files an API prompt's loaders pick.
fn api_models(
    prompt: &ApiPrompt,
    ctx: &WorkflowContext<'_>,
    on_disk: &dyn Fn(&str, &str) -> bool,
) -> Vec<RequiredModel> {
    let mut out = Vec::new();
    for (id, node) in sorted_nodes(prompt) {
        for (input, value) in &node.inputs {
            let Some(file) = value.as_str() else {
                continue;
            };
            if file.trim().is_empty() || file == "None" {
                continue;
            }
            let Some(folder) = model_folder(&node.class_type, input) else {
                continue;
            };
            let listed = ctx
                .object_info
                .and_then(|oi| oi.combo_values(&node.class_type, input))
                .is_some_and(|options| combo_has(options, file));
            let installed = listed || on_disk(folder, file);
            out.push(required_model(
                folder,
                file,
                id,
                &node.class_type,
                input,
                installed,
                ctx,
            ));
        }
    }
    out
}

/// The folder a loader of an unknown class most likely reads, from its name.
fn folder_by_class_name(class_type: &str) -> Option<(&'static str, &'static str)> {
    let lower = class_type.to_ascii_lowercase();
    let table: &[(&str, &str, &str)] = &[
        ("checkpoint", "checkpoints", "ckpt_name"),
        ("lora", "loras", "lora_name"),
        ("clipvision", "clip_vision", "clip_vision_name"),
        ("clip_vision", "clip_vision", "clip_vision_name"),
        ("vae", "vae", "vae_name"),
        ("unet", "diffusion_models", "unet_name"),
        ("diffusion", "diffusion_models", "unet_name"),
        ("clip", "text_encoders", "clip_name"),
        ("controlnet", "controlnet", "control_net_name"),
        ("upscale", "upscale_models", "upscale_model_name"),
        ("stylemodel", "style_models", "style_model_name"),
        ("gligen", "gligen", "gligen_name"),
        ("hypernetwork", "hypernetworks", "hypernetwork_name"),
        ("photomaker", "photomaker", "photomaker_model_name"),
    ];
    table
        .iter()
        .find(|(needle, _, _)| lower.contains(needle))
        .map(|(_, folder, input)| (*folder, *input))
}

/// Where a model-file widget value of a UI node goes: (folder, input name).
fn ui_widget_target(class_type: &str, index: usize, key: Option<&str>) -> Option<(String, String)> {
    let input = key.map(str::to_string).or_else(|| {
        LOADER_WIDGETS
            .iter()
            .find(|(class, _)| *class == class_type)
            .and_then(|(_, names)| names.get(index))
            .map(|s| s.to_string())
    });
    if let Some(folder) = input.as_deref().and_then(|i| model_folder(class_type, i)) {
        return Some((folder.to_string(), input.unwrap_or_default()));
    }
    let (folder, guessed) = folder_by_class_name(class_type)?;
    Some((
        folder.to_string(),
        input.unwrap_or_else(|| guessed.to_string()),
    ))
}

/// The model files of a UI workflow, without `/object_info`: widget values that look like
/// model file names, on loaders (subgraphs followed; muted and bypassed nodes skipped).
fn scan_ui_models(
    workflow: &Value,
    ctx: &WorkflowContext<'_>,
    on_disk: &dyn Fn(&str, &str) -> bool,
) -> Vec<RequiredModel> {
    let definitions: HashMap<&str, &Value> = workflow
        .pointer("/definitions/subgraphs")
        .and_then(Value::as_array)
        .map(|subgraphs| {
            subgraphs
                .iter()
                .filter_map(|s| Some((s.get("id")?.as_str()?, s)))
                .collect()
        })
        .unwrap_or_default();
    let mut out = Vec::new();
    if let Some(nodes) = workflow.get("nodes").and_then(Value::as_array) {
        scan_ui_nodes(nodes, "", &definitions, 0, ctx, on_disk, &mut out);
    }
    out
}

fn scan_ui_nodes(
    nodes: &[Value],
    prefix: &str,
    definitions: &HashMap<&str, &Value>,
    depth: usize,
    ctx: &WorkflowContext<'_>,
    on_disk: &dyn Fn(&str, &str) -> bool,
    out: &mut Vec<RequiredModel>,
) {
    for node in nodes {
        // 2: muted, 4: bypassed; neither loads anything.
        if matches!(node.get("mode").and_then(Value::as_u64), Some(2 | 4)) {
            continue;
        }
        let id = match node.get("id") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => continue,
        };
        let id = if prefix.is_empty() {
            id
        } else {
            format!("{prefix}:{id}")
        };
        let class_type = node.get("type").and_then(Value::as_str).unwrap_or_default();
        if let Some(definition) = definitions.get(class_type) {
            if depth < MAX_SUBGRAPH_DEPTH {
                if let Some(inner) = definition.get("nodes").and_then(Value::as_array) {
                    scan_ui_nodes(inner, &id, definitions, depth + 1, ctx, on_disk, out);
                }
            }
            continue;
        }
        let widgets: Vec<(usize, Option<&str>, &Value)> = match node.get("widgets_values") {
            Some(Value::Array(values)) => values
                .iter()
                .enumerate()
                .map(|(i, v)| (i, None, v))
                .collect(),
            Some(Value::Object(values)) => values
                .iter()
                .enumerate()
                .map(|(i, (k, v))| (i, Some(k.as_str()), v))
                .collect(),
            _ => continue,
        };
        for (index, key, value) in widgets {
            let Some(file) = value.as_str().filter(|s| is_model_file_name(s)) else {
                continue;
            };
            let Some((folder, input)) = ui_widget_target(class_type, index, key) else {
                continue;
            };
            let installed = on_disk(&folder, file);
            out.push(required_model(
                &folder, file, &id, class_type, &input, installed, ctx,
            ));
        }
    }
}

// ---------------------------------------------------------------------------------------
// Editable inputs

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Role {
    Positive,
    Negative,
}

impl Role {
    fn public(self) -> crate::model::PromptRole {
        match self {
            Role::Positive => crate::model::PromptRole::Positive,
            Role::Negative => crate::model::PromptRole::Negative,
        }
    }
}

/// Which text encoders feed a sampler's `positive` or `negative` input: every node with such
/// an input marks its source, and the mark is carried upstream through `conditioning*`
/// inputs (combine, guidance, area nodes). `None` when a node feeds both.
fn conditioning_roles(prompt: &ApiPrompt) -> HashMap<String, Option<Role>> {
    let mut queue = VecDeque::new();
    for node in prompt.nodes.values() {
        for (name, value) in &node.inputs {
            let role = match name.as_str() {
                "positive" => Role::Positive,
                "negative" => Role::Negative,
                _ => continue,
            };
            if let Some(src) = link_source(value) {
                queue.push_back((src, role));
            }
        }
    }
    let mut seen: HashSet<(String, Role)> = HashSet::new();
    let mut roles: HashMap<String, Option<Role>> = HashMap::new();
    while let Some((id, role)) = queue.pop_front() {
        if !seen.insert((id.clone(), role)) {
            continue;
        }
        roles
            .entry(id.clone())
            .and_modify(|r| {
                if *r != Some(role) {
                    *r = None;
                }
            })
            .or_insert(Some(role));
        if let Some(node) = prompt.nodes.get(&id) {
            for (name, value) in &node.inputs {
                if name.starts_with("conditioning") {
                    if let Some(src) = link_source(value) {
                        queue.push_back((src, role));
                    }
                }
            }
        }
    }
    roles
}

fn role_from_title(title: &str) -> Option<Role> {
    let lower = title.to_lowercase();
    if lower.contains("negative") {
        Some(Role::Negative)
    } else if lower.contains("positive") {
        Some(Role::Positive)
    } else {
        None
    }
}

/// A node's title: `_meta.title`, else the class's display name, else the class.
pub(crate) fn node_title(node: &ApiNode, object_info: Option<&ObjectInfo>) -> String {
    node.title()
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .or_else(|| {
            object_info
                .and_then(|oi| oi.display_name(&node.class_type))
                .map(str::to_string)
        })
        .unwrap_or_else(|| node.class_type.clone())
}

/// Why an input is worth showing; decides its place in the list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Category {
    Text,
    Image,
    /// Seed, steps, cfg, … with their order.
    Sampling(u8),
    /// Width, height, batch size, with their order.
    Size(u8),
}

fn is_size_class(class_type: &str) -> bool {
    class_type.starts_with("Empty") && (class_type.contains("Latent") || class_type == "EmptyImage")
}

fn is_seed(name: &str) -> bool {
    matches!(name, "seed" | "noise_seed")
}

fn category(
    class_type: &str,
    name: &str,
    spec: Option<&InputSpec>,
    value: Option<&Value>,
) -> Option<Category> {
    let category = match name {
        "seed" | "noise_seed" => Category::Sampling(0),
        "steps" => Category::Sampling(1),
        "cfg" => Category::Sampling(2),
        "guidance" => Category::Sampling(3),
        "sampler_name" => Category::Sampling(4),
        "scheduler" => Category::Sampling(5),
        "denoise" => Category::Sampling(6),
        "width" if is_size_class(class_type) => Category::Size(0),
        "height" if is_size_class(class_type) => Category::Size(1),
        "batch_size" if is_size_class(class_type) => Category::Size(2),
        "image" if class_type.starts_with("LoadImage") => Category::Image,
        _ => {
            let text = match spec {
                Some(s) => {
                    s.type_name == "STRING"
                        && (s.flag("multiline") == Some(true) || TEXT_INPUTS.contains(&name))
                }
                None => value.is_some_and(Value::is_string) && TEXT_INPUTS.contains(&name),
            };
            if !text {
                return None;
            }
            Category::Text
        }
    };
    // A socket-only input (a link type) is not a value to edit.
    if spec.is_some_and(|s| !s.is_primitive_widget()) {
        return None;
    }
    Some(category)
}

/// Kind, range and choices of one input.
#[derive(Clone, Debug, PartialEq)]
struct Shape {
    kind: InputKind,
    min: Option<f64>,
    max: Option<f64>,
    step: Option<f64>,
    options: Option<Vec<String>>,
}

/// Ranges ComfyUI's own nodes declare, for when `/object_info` is not at hand.
fn default_range(name: &str) -> (Option<f64>, Option<f64>, Option<f64>) {
    match name {
        "seed" | "noise_seed" => (Some(0.0), Some(u64::MAX as f64), Some(1.0)),
        "steps" => (Some(1.0), Some(10000.0), Some(1.0)),
        "cfg" | "guidance" => (Some(0.0), Some(100.0), Some(0.1)),
        "denoise" => (Some(0.0), Some(1.0), Some(0.01)),
        "width" | "height" => (Some(16.0), Some(16384.0), Some(8.0)),
        "batch_size" => (Some(1.0), Some(4096.0), Some(1.0)),
        _ => (None, None, None),
    }
}

fn option_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The shape of an input: from its `/object_info` spec when there is one, else from its name
/// (`category`) or its current value.
fn shape(
    name: &str,
    spec: Option<&InputSpec>,
    category: Option<Category>,
    value: Option<&Value>,
) -> Option<Shape> {
    if let Some(spec) = spec {
        let kind = if spec.is_combo() {
            InputKind::Combo
        } else {
            match spec.type_name.as_str() {
                "INT" if is_seed(name) => InputKind::Seed,
                "INT" => InputKind::Int,
                "FLOAT" => InputKind::Float,
                "BOOLEAN" => InputKind::Bool,
                "STRING" => InputKind::Text,
                _ => return None,
            }
        };
        let numeric = matches!(kind, InputKind::Int | InputKind::Seed | InputKind::Float);
        return Some(Shape {
            kind,
            min: spec.min().filter(|_| numeric),
            max: spec.max().filter(|_| numeric),
            step: spec
                .options
                .get("step")
                .and_then(Value::as_f64)
                .filter(|_| numeric),
            options: spec
                .combo
                .as_ref()
                .map(|values| values.iter().map(option_text).collect()),
        });
    }
    let kind = match category {
        Some(Category::Sampling(0)) => InputKind::Seed,
        Some(Category::Sampling(1) | Category::Size(_)) => InputKind::Int,
        Some(Category::Sampling(2 | 3 | 6)) => InputKind::Float,
        Some(Category::Sampling(_) | Category::Image) => InputKind::Combo,
        Some(Category::Text) => InputKind::Text,
        None => match value? {
            Value::Bool(_) => InputKind::Bool,
            Value::String(_) => InputKind::Text,
            Value::Number(n) if n.is_f64() => InputKind::Float,
            Value::Number(_) => InputKind::Int,
            _ => return None,
        },
    };
    let (min, max, step) = if category.is_some() {
        default_range(name)
    } else {
        (None, None, None)
    };
    Some(Shape {
        kind,
        min,
        max,
        step,
        options: None,
    })
}

/// The input names of a node: the class's order when known, then the others.
fn input_names<'a>(node: &'a ApiNode, object_info: Option<&ObjectInfo>) -> Vec<&'a String> {
    let mut names: Vec<&String> = Vec::new();
    if let Some(order) = object_info.and_then(|oi| oi.input_order(&node.class_type)) {
        for name in order {
            if let Some((key, _)) = node.inputs.get_key_value(name) {
                names.push(key);
            }
        }
    }
    for key in node.inputs.keys() {
        if !names.contains(&key) {
            names.push(key);
        }
    }
    names
}

/// Link targets: source node id → (target node id, target input), in node order.
fn link_targets(prompt: &ApiPrompt) -> HashMap<String, Vec<(String, String)>> {
    let mut targets: HashMap<String, Vec<(String, String)>> = HashMap::new();
    for (id, node) in sorted_nodes(prompt) {
        for (name, value) in &node.inputs {
            if let Some(src) = link_source(value) {
                targets
                    .entry(src)
                    .or_default()
                    .push((id.clone(), name.clone()));
            }
        }
    }
    targets
}

/// How one input is shown and checked.
struct Described<'a> {
    /// Why it is worth showing; `None` for an input that can be set but is not listed.
    category: Option<Category>,
    shape: Shape,
    /// The node and input that name it: a primitive node's value is named after the widget
    /// it feeds (`width` of the Empty Latent Image), any other input after itself.
    label_node: &'a str,
    label_input: &'a str,
}

fn describe<'a>(
    prompt: &'a ApiPrompt,
    targets: &'a HashMap<String, Vec<(String, String)>>,
    id: &'a str,
    node: &'a ApiNode,
    name: &'a str,
    value: Option<&Value>,
    object_info: Option<&ObjectInfo>,
) -> Option<Described<'a>> {
    let spec = object_info.and_then(|oi| oi.input_spec(&node.class_type, name));
    // PrimitiveInt, PrimitiveStringMultiline, …: backend nodes whose `value` drives a widget
    // input of another node; shown (and range-checked) as that input.
    if node.class_type.starts_with("Primitive") && name == "value" {
        for (target_id, target_input) in targets.get(id).into_iter().flatten() {
            let Some(target) = prompt.nodes.get(target_id) else {
                continue;
            };
            let target_spec =
                object_info.and_then(|oi| oi.input_spec(&target.class_type, target_input));
            let Some(category) = category(&target.class_type, target_input, target_spec, value)
            else {
                continue;
            };
            let Some(shape) = shape(target_input, target_spec.or(spec), Some(category), value)
            else {
                continue;
            };
            return Some(Described {
                category: Some(category),
                shape,
                label_node: target_id,
                label_input: target_input,
            });
        }
    }
    let category = category(&node.class_type, name, spec, value);
    let shape = shape(name, spec, category, value)?;
    Some(Described {
        category,
        shape,
        label_node: id,
        label_input: name,
    })
}

/// The inputs a user would want to change before running the prompt: prompt texts, seed,
/// steps, cfg, guidance, sampler and scheduler, denoise, latent size and batch, LoadImage's
/// image, and the value of a primitive node that drives one of those. Positive prompts
/// first, then negative ones, other texts, images, sampler settings, sizes.
pub fn editable_inputs(prompt: &ApiPrompt, object_info: Option<&ObjectInfo>) -> Vec<EditableInput> {
    struct Found<'a> {
        key: (u8, u8, usize, usize),
        input: EditableInput,
        role: Option<Role>,
        text: bool,
        label_node: &'a str,
        label_input: &'a str,
    }
    let roles = conditioning_roles(prompt);
    let targets = link_targets(prompt);
    let title_of = |id: &str| {
        prompt
            .nodes
            .get(id)
            .map(|n| node_title(n, object_info))
            .unwrap_or_else(|| format!("node {id}"))
    };
    // The graph says where a text ends up; a title ("Negative Prompt") is only a fallback for
    // an encoder that feeds no sampler (or feeds both sides), since titles are often stale.
    let role_of = |id: &str| match roles.get(id).copied().flatten() {
        Some(role) => Some(role),
        None => role_from_title(&title_of(id)),
    };
    let mut found: Vec<Found<'_>> = Vec::new();
    for (node_order, (id, node)) in sorted_nodes(prompt).into_iter().enumerate() {
        let title = node_title(node, object_info);
        for (position, name) in input_names(node, object_info).into_iter().enumerate() {
            let value = &node.inputs[name];
            if value.is_array() || value.is_object() || value.is_null() {
                continue;
            }
            let Some(described) =
                describe(prompt, &targets, id, node, name, Some(value), object_info)
            else {
                continue;
            };
            let Some(category) = described.category else {
                continue;
            };
            let text = category == Category::Text;
            let role = if text {
                role_of(described.label_node)
            } else {
                None
            };
            let key = match category {
                Category::Text => {
                    let rank = match role {
                        Some(Role::Positive) => 0,
                        Some(Role::Negative) => 1,
                        None => 2,
                    };
                    (0, rank, node_order, position)
                }
                Category::Image => (1, 0, node_order, position),
                Category::Sampling(n) => (2, 0, node_order, n as usize),
                Category::Size(n) => (3, 0, node_order, n as usize),
            };
            let shape = described.shape;
            found.push(Found {
                key,
                input: EditableInput {
                    node_id: id.clone(),
                    class_type: node.class_type.clone(),
                    node_title: title.clone(),
                    input: name.clone(),
                    kind: shape.kind,
                    value: value.clone(),
                    min: shape.min,
                    max: shape.max,
                    step: shape.step,
                    options: shape.options,
                    label: String::new(),
                    role: role.map(Role::public),
                },
                role,
                text,
                label_node: described.label_node,
                label_input: described.label_input,
            });
        }
    }
    // Several texts named after one node (text_g and text_l): the input name is added.
    let mut texts_per_node: HashMap<&str, usize> = HashMap::new();
    for f in found.iter().filter(|f| f.text) {
        *texts_per_node.entry(f.label_node).or_default() += 1;
    }
    for f in &mut found {
        f.input.label = match f.role {
            Some(role) => {
                let base = match role {
                    Role::Positive => "Prompt (positive)",
                    Role::Negative => "Prompt (negative)",
                };
                if texts_per_node.get(f.label_node).copied().unwrap_or(0) > 1 {
                    format!("{base} · {}", f.label_input)
                } else {
                    base.to_string()
                }
            }
            None => plain_name(f.label_input)
                .map(str::to_string)
                .unwrap_or_else(|| format!("{} · {}", title_of(f.label_node), f.label_input)),
        };
    }
    // Two samplers (base and refiner) both have a "Seed": those are named after their node.
    let mut plain_counts: HashMap<String, usize> = HashMap::new();
    for f in found.iter().filter(|f| f.role.is_none()) {
        *plain_counts.entry(f.input.label.clone()).or_default() += 1;
    }
    for f in &mut found {
        if f.role.is_none()
            && plain_name(f.label_input) == Some(f.input.label.as_str())
            && plain_counts[&f.input.label] > 1
        {
            f.input.label = format!("{} · {}", title_of(f.label_node), f.label_input);
        }
    }
    found.sort_by_key(|f| f.key);
    let mut inputs: Vec<EditableInput> = found.into_iter().map(|f| f.input).collect();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for input in &inputs {
        *counts.entry(input.label.clone()).or_default() += 1;
    }
    for input in &mut inputs {
        if counts[&input.label] > 1 {
            input.label = format!("{} (node {})", input.label, input.node_id);
        }
    }
    inputs
}

/// What a creator calls the common inputs; anything else keeps `<node title> · <input>`.
fn plain_name(input: &str) -> Option<&'static str> {
    Some(match input {
        "seed" | "noise_seed" => "Seed",
        "steps" => "Steps",
        "cfg" => "CFG",
        "guidance" => "Guidance",
        "sampler_name" => "Sampler",
        "scheduler" => "Scheduler",
        "denoise" => "Denoise",
        "width" => "Width",
        "height" => "Height",
        "batch_size" => "Batch size",
        "image" => "Image",
        _ => return None,
    })
}

fn number_text(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e16 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

fn describe_value(v: &Value) -> String {
    match v {
        Value::String(s) => format!("'{s}'"),
        other => other.to_string(),
    }
}

fn check_range(n: f64, shape: &Shape) -> Result<(), String> {
    if let Some(min) = shape.min {
        if n < min {
            return Err(format!(
                "{} is below the minimum {}",
                number_text(n),
                number_text(min)
            ));
        }
    }
    if let Some(max) = shape.max {
        if n > max {
            return Err(format!(
                "{} is above the maximum {}",
                number_text(n),
                number_text(max)
            ));
        }
    }
    Ok(())
}

/// Checks a new value against an input's shape; returns the value to store.
fn check_value(shape: &Shape, value: &Value) -> Result<Value, String> {
    match shape.kind {
        InputKind::Text => match value {
            Value::String(_) => Ok(value.clone()),
            other => Err(format!("expects text, got {}", describe_value(other))),
        },
        InputKind::Bool => match value {
            Value::Bool(_) => Ok(value.clone()),
            other => Err(format!(
                "expects true or false, got {}",
                describe_value(other)
            )),
        },
        InputKind::Int | InputKind::Seed => {
            let whole = if let Some(i) = value.as_i64() {
                Some(Value::from(i))
            } else if let Some(u) = value.as_u64() {
                Some(Value::from(u))
            } else {
                value
                    .as_f64()
                    .filter(|f| f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e15)
                    .map(|f| Value::from(f as i64))
            };
            let Some(whole) = whole else {
                return Err(format!(
                    "expects a whole number, got {}",
                    describe_value(value)
                ));
            };
            let n = whole.as_f64().unwrap_or_default();
            if shape.kind == InputKind::Seed && whole.as_i64().is_some_and(|i| i < 0) {
                return Err(format!("a seed cannot be negative ({whole})"));
            }
            // Range checks in f64 are exact enough away from 2^53; seeds near u64::MAX pass
            // because the maximum itself rounds up.
            check_range(n, shape)?;
            Ok(whole)
        }
        InputKind::Float => {
            let Some(n) = value.as_f64().filter(|f| f.is_finite()) else {
                return Err(format!("expects a number, got {}", describe_value(value)));
            };
            check_range(n, shape)?;
            Ok(value.clone())
        }
        InputKind::Combo => {
            let text = match value {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                other => {
                    return Err(format!(
                        "expects one of the choices, got {}",
                        describe_value(other)
                    ))
                }
            };
            match shape.options.as_deref() {
                Some(options) if !options.is_empty() => {
                    if options.iter().any(|o| same_file(o, &text)) {
                        Ok(value.clone())
                    } else {
                        let mut shown: Vec<&str> =
                            options.iter().take(8).map(String::as_str).collect();
                        if options.len() > 8 {
                            shown.push("…");
                        }
                        Err(format!(
                            "'{text}' is not one of the choices ({})",
                            shown.join(", ")
                        ))
                    }
                }
                _ => Ok(value.clone()),
            }
        }
    }
}

/// Sets input values on an API prompt, after checking every one of them: the node and input
/// exist, the input is a value (not a link), and the value has the input's kind and is in its
/// range or list of choices (from `/object_info` when given, else ComfyUI's usual ranges for
/// the well-known inputs). Nothing is changed unless every value is accepted; the error lists
/// every refused value, naming node and input.
pub fn apply_inputs(
    prompt: &mut ApiPrompt,
    values: &[InputValue],
    object_info: Option<&ObjectInfo>,
) -> Result<(), WorkflowError> {
    let targets = link_targets(prompt);
    let mut problems = Vec::new();
    let mut accepted = Vec::new();
    for item in values {
        let refuse = |message: String| InputProblem {
            node_id: item.node_id.clone(),
            input: item.input.clone(),
            message,
        };
        let Some(node) = prompt.nodes.get(&item.node_id) else {
            problems.push(refuse(format!(
                "node {} is not in the workflow (input {})",
                item.node_id, item.input
            )));
            continue;
        };
        let title = node_title(node, object_info);
        let at = format!("{title} (node {}) · {}", item.node_id, item.input);
        let current = node.inputs.get(&item.input);
        let spec = object_info.and_then(|oi| oi.input_spec(&node.class_type, &item.input));
        if let Some(src) = current.and_then(link_source) {
            problems.push(refuse(format!(
                "{at}: the input is connected to node {src} and takes its value from there"
            )));
            continue;
        }
        let declared = spec.is_some_and(|s| s.is_primitive_widget() && !s.force_input());
        if current.is_none() && !declared {
            problems.push(refuse(format!(
                "{title} (node {}) has no input named {}",
                item.node_id, item.input
            )));
            continue;
        }
        if current.is_some_and(|v| v.is_array() || v.is_object()) {
            problems.push(refuse(format!(
                "{at}: this input holds a list or an object and cannot be set here"
            )));
            continue;
        }
        let described = describe(
            prompt,
            &targets,
            &item.node_id,
            node,
            &item.input,
            current.or(Some(&item.value)),
            object_info,
        );
        let Some(described) = described else {
            problems.push(refuse(format!(
                "{at}: this input is not a value that can be set"
            )));
            continue;
        };
        match check_value(&described.shape, &item.value) {
            Ok(value) => accepted.push((item.node_id.clone(), item.input.clone(), value)),
            Err(why) => problems.push(refuse(format!("{at}: {why}"))),
        }
    }
    if !problems.is_empty() {
        return Err(WorkflowError::Inputs(problems));
    }
    for (node_id, input, value) in accepted {
        if let Some(node) = prompt.nodes.get_mut(&node_id) {
            node.inputs.insert(input, value);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_sort_like_numbers() {
        let mut ids = vec!["10:12", "3", "10", "10:3", "2"];
        ids.sort_by(|a, b| id_order(a, b));
        assert_eq!(ids, vec!["2", "3", "10", "10:3", "10:12"]);
    }

    #[test]
    fn unknown_loaders_are_guessed_from_their_name() {
        assert_eq!(
            ui_widget_target("UnetLoaderGGUF", 0, None),
            Some(("diffusion_models".into(), "unet_name".into()))
        );
        assert_eq!(
            ui_widget_target("DualCLIPLoader", 1, None),
            Some(("text_encoders".into(), "clip_name2".into()))
        );
        assert_eq!(ui_widget_target("SaveImage", 0, None), None);
    }
}
