//! UI-format workflow → API prompt: the frontend's `graphToPrompt`, in Rust.
//!
//! The steps, as the frontend takes them:
//! 1. every node gets the inputs and widgets its class defines (`/object_info`), and the
//!    saved `widgets_values` are put into the widgets by position;
//! 2. each PrimitiveNode copies its value into the widgets it is linked to;
//! 3. subgraph instances are flattened into "executable" nodes with path ids (`10:6`);
//! 4. each executable node that is not frontend-only, muted or bypassed becomes a prompt
//!    node: first its widget values, then each input's link, resolved through Reroutes,
//!    bypassed nodes and subgraph boundaries (a link can also resolve to a value: a widget
//!    promoted onto a subgraph instance);
//! 5. inputs linked to a node that is not in the prompt (muted) are removed.

use std::collections::{HashMap, HashSet};

use serde_json::{json, Map, Value};

use super::dynamic_prompt::{process_dynamic_prompt, Picker};
use super::object_info::{InputSpec, NodeClass};
use super::{ApiMeta, ApiNode, ApiPrompt, ConvertError, NodeRef, ObjectInfo};

/// LiteGraph's `NEVER` mode: the node is muted.
const MODE_NEVER: i64 = 2;
/// LiteGraph's `BYPASS` mode: the node passes its inputs through.
const MODE_BYPASS: i64 = 4;
/// The id links use for a subgraph's input node.
const SUBGRAPH_INPUT_ID: &str = "-10";
/// The id links use for a subgraph's output node.
const SUBGRAPH_OUTPUT_ID: &str = "-20";

/// Converts a UI-format workflow (what ComfyUI's editor saves) into the API prompt that the
/// frontend would queue. Dynamic prompts (`{a|b}` in text widgets that allow them) are
/// resolved with a random choice, as the frontend does; see [`ui_to_api_seeded`].
pub fn ui_to_api(workflow: &Value, object_info: &ObjectInfo) -> Result<ApiPrompt, ConvertError> {
    ui_to_api_seeded(workflow, object_info, Picker::random_seed())
}

/// [`ui_to_api`] with the dynamic-prompt choices drawn from `seed`: the same seed gives the
/// same prompt.
pub fn ui_to_api_seeded(
    workflow: &Value,
    object_info: &ObjectInfo,
    seed: u64,
) -> Result<ApiPrompt, ConvertError> {
    let converter = Converter::new(workflow, object_info)?;
    let mut picker = Picker::new(seed);
    converter.convert(&mut |n| picker.pick(n))
}

// ---------------------------------------------------------------------------------------
// The workflow as saved.

#[derive(Debug)]
struct Link {
    origin: String,
    origin_slot: usize,
    target: String,
    target_slot: usize,
}

#[derive(Debug)]
struct RawInput {
    name: String,
    type_name: String,
    link: Option<String>,
    widget: Option<String>,
}

#[derive(Debug)]
struct RawOutput {
    type_name: String,
    links: Option<Vec<String>>,
}

#[derive(Debug)]
struct RawNode<'a> {
    id: String,
    type_name: String,
    mode: i64,
    title: Option<String>,
    inputs: Vec<RawInput>,
    outputs: Vec<RawOutput>,
    widgets_values: Option<&'a Value>,
}

#[derive(Debug)]
struct IoSlot {
    name: String,
    type_name: String,
    link_ids: Vec<String>,
}

/// The root graph or one subgraph definition.
#[derive(Debug)]
struct Graph<'a> {
    nodes: Vec<RawNode<'a>>,
    links: HashMap<String, Link>,
    inputs: Vec<IoSlot>,
    outputs: Vec<IoSlot>,
}

/// A node id or link id as the map key it is used under (`3`, `"10"`, …).
fn id_key(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) => Some(match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i.to_string(),
            (None, Some(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => (f as i64).to_string(),
            _ => n.to_string(),
        }),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

fn slot_index(v: &Value) -> Option<usize> {
    match v {
        Value::Number(n) => n.as_u64().map(|u| u as usize).or_else(|| {
            n.as_f64()
                .filter(|f| *f >= 0.0 && f.fract() == 0.0)
                .map(|f| f as usize)
        }),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn slot_type(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => "*".to_string(),
    }
}

fn parse_links(v: Option<&Value>) -> Result<HashMap<String, Link>, ConvertError> {
    let mut links = HashMap::new();
    let Some(v) = v else {
        return Ok(links);
    };
    let Some(items) = v.as_array() else {
        return Err(ConvertError::Malformed("`links` is not an array".into()));
    };
    for item in items {
        let fields = match item {
            // [id, origin_id, origin_slot, target_id, target_slot, type]
            Value::Array(a) => (a.first(), a.get(1), a.get(2), a.get(3), a.get(4)),
            Value::Object(o) => (
                o.get("id"),
                o.get("origin_id"),
                o.get("origin_slot"),
                o.get("target_id"),
                o.get("target_slot"),
            ),
            _ => continue,
        };
        let (Some(id), Some(origin), Some(origin_slot), Some(target), Some(target_slot)) = (
            fields.0.and_then(id_key),
            fields.1.and_then(id_key),
            fields.2.and_then(slot_index),
            fields.3.and_then(id_key),
            fields.4.and_then(slot_index),
        ) else {
            tracing::debug!(link = %item, "skipping a malformed link");
            continue;
        };
        links.insert(
            id,
            Link {
                origin,
                origin_slot,
                target,
                target_slot,
            },
        );
    }
    Ok(links)
}

fn parse_node(v: &Value, position: usize) -> Result<RawNode<'_>, ConvertError> {
    let Some(obj) = v.as_object() else {
        return Err(ConvertError::Malformed(format!(
            "node #{position} is not an object"
        )));
    };
    let id = obj
        .get("id")
        .and_then(id_key)
        .ok_or_else(|| ConvertError::Malformed(format!("node #{position} has no id")))?;
    let type_name = obj
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| ConvertError::Malformed(format!("node {id} has no type")))?
        .to_string();
    let inputs = obj
        .get("inputs")
        .and_then(Value::as_array)
        .map(|inputs| {
            inputs
                .iter()
                .map(|i| RawInput {
                    name: i
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    type_name: slot_type(i.get("type")),
                    link: i.get("link").and_then(id_key),
                    widget: i
                        .get("widget")
                        .and_then(|w| w.get("name"))
                        .and_then(Value::as_str)
                        .map(str::to_string),
                })
                .collect()
        })
        .unwrap_or_default();
    let outputs = obj
        .get("outputs")
        .and_then(Value::as_array)
        .map(|outputs| {
            outputs
                .iter()
                .map(|o| RawOutput {
                    type_name: slot_type(o.get("type")),
                    links: o
                        .get("links")
                        .and_then(Value::as_array)
                        .map(|l| l.iter().filter_map(id_key).collect()),
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(RawNode {
        id,
        type_name,
        mode: obj.get("mode").and_then(Value::as_i64).unwrap_or(0),
        title: obj.get("title").and_then(Value::as_str).map(str::to_string),
        inputs,
        outputs,
        widgets_values: obj.get("widgets_values"),
    })
}

fn parse_io(v: Option<&Value>) -> Vec<IoSlot> {
    v.and_then(Value::as_array)
        .map(|slots| {
            slots
                .iter()
                .map(|s| IoSlot {
                    name: s
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    type_name: slot_type(s.get("type")),
                    link_ids: s
                        .get("linkIds")
                        .and_then(Value::as_array)
                        .map(|l| l.iter().filter_map(id_key).collect())
                        .unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn parse_graph<'a>(v: &'a Value, what: &str) -> Result<Graph<'a>, ConvertError> {
    let Some(nodes) = v.get("nodes").and_then(Value::as_array) else {
        return Err(ConvertError::Malformed(format!(
            "{what} has no `nodes` array"
        )));
    };
    let nodes = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| parse_node(n, i))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Graph {
        nodes,
        links: parse_links(v.get("links"))?,
        inputs: parse_io(v.get("inputs")),
        outputs: parse_io(v.get("outputs")),
    })
}

/// Subgraph definitions: `definitions.subgraphs` of the workflow, and of each definition.
fn collect_definitions<'a>(v: &'a Value, out: &mut Vec<(String, &'a Value)>) {
    let Some(defs) = v
        .get("definitions")
        .and_then(|d| d.get("subgraphs"))
        .and_then(Value::as_array)
    else {
        return;
    };
    for def in defs {
        let Some(id) = def.get("id").and_then(Value::as_str) else {
            continue;
        };
        if out.iter().any(|(known, _)| known == id) {
            continue;
        }
        out.push((id.to_string(), def));
        collect_definitions(def, out);
    }
}

fn looks_like_uuid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

// ---------------------------------------------------------------------------------------
// What the frontend makes of each node.

#[derive(Clone, Copy, Debug)]
enum Kind<'o> {
    /// A backend node class.
    Class(&'o NodeClass),
    /// `PrimitiveNode`: frontend-only, its value goes into the widgets it drives.
    Primitive,
    /// `Reroute` (legacy node): frontend-only, passes its input through.
    Reroute,
    /// `Note` / `MarkdownNote`: frontend-only, nothing to pass.
    Note,
    /// An instance of a subgraph (index into the converter's graphs).
    Instance(usize),
    /// A type that looks like a subgraph id but is not defined.
    MissingSubgraph,
    /// A legacy group node.
    GroupNode,
    /// A class this ComfyUI does not have.
    Unknown,
}

impl Kind<'_> {
    fn is_virtual(&self) -> bool {
        matches!(
            self,
            Kind::Primitive | Kind::Reroute | Kind::Note | Kind::Instance(_)
        )
    }
}

/// An input of a node as the frontend holds it (in the class's order).
#[derive(Clone, Debug)]
struct Input {
    name: String,
    type_name: String,
    link: Option<String>,
    /// The widget this input drives (a widget socket), if any.
    widget: Option<String>,
}

/// A widget and its value.
#[derive(Clone, Debug)]
struct Widget {
    name: String,
    value: Option<Value>,
    /// Serialized into the prompt (frontend-only widgets such as the seed's
    /// `control_after_generate` or an upload button are not).
    send: bool,
    /// `dynamicPrompts`: comments and `{a|b}` choices are resolved when sent.
    dynamic: bool,
    /// Has a `control_after_generate` companion.
    control: bool,
}

#[derive(Debug)]
struct Prepared<'o> {
    kind: Kind<'o>,
    title: String,
    inputs: Vec<Input>,
    output_types: Vec<String>,
    widgets: Vec<Widget>,
}

/// A widget slot of a class's layout (before values are put in).
#[derive(Clone, Debug)]
struct Slot {
    name: String,
    send: bool,
    dynamic: bool,
    control: bool,
    default: Option<Value>,
    /// Where the frontend's Load3D buttons go (their number varies between versions).
    buttons: bool,
    /// The value always sent, whatever was saved (the frontend's display widgets).
    fixed: Option<Value>,
    /// Takes a place in `widgets_values` (the frontend's `serialize = false` widgets do not).
    saved: bool,
}

impl Slot {
    fn hidden(name: &str) -> Slot {
        Slot {
            name: name.to_string(),
            send: false,
            dynamic: false,
            control: false,
            default: None,
            buttons: false,
            fixed: None,
            saved: true,
        }
    }

    fn sent(spec: &InputSpec) -> Slot {
        Slot {
            send: true,
            ..Slot::hidden(&spec.name)
        }
    }

    /// A widget of a frontend extension that shows something (an audio player, a 3D view, a
    /// text preview): sent as an empty string.
    fn display(name: &str, saved: bool) -> Slot {
        Slot {
            send: true,
            fixed: Some(json!("")),
            saved,
            ..Slot::hidden(name)
        }
    }

    /// A button: sent with its value (which a saved value replaces, as for any widget).
    fn button(name: &str, value: &str) -> Slot {
        Slot {
            send: true,
            default: Some(json!(value)),
            ..Slot::hidden(name)
        }
    }
}

/// Whether an INT or COMBO widget gets the `control_after_generate` companion widget: when
/// the spec asks for one, or (frontend convention) for an INT named `seed` / `noise_seed`
/// that says nothing.
fn has_control(spec: &InputSpec) -> bool {
    if !matches!(spec.type_name.as_str(), "INT" | "COMBO") {
        return false;
    }
    match spec.options.get("control_after_generate") {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(_)) => true,
        Some(Value::Null) | None => {
            spec.type_name == "INT" && matches!(spec.name.as_str(), "seed" | "noise_seed")
        }
        Some(_) => true,
    }
}

/// The value a new widget starts with.
fn default_value(spec: &InputSpec) -> Option<Value> {
    if let Some(d) = spec.default_value() {
        return Some(d.clone());
    }
    match spec.type_name.as_str() {
        "INT" | "FLOAT" => Some(json!(0)),
        "STRING" => Some(json!("")),
        "BOOLEAN" => Some(json!(false)),
        "COMBO" => spec.combo.as_ref().and_then(|c| c.first().cloned()),
        _ => None,
    }
}

/// The widgets one input makes, in order.
fn input_widgets(spec: &InputSpec, with_forced: bool, out: &mut Vec<Slot>) {
    if spec.force_input() {
        // Old workflows kept a value for inputs that have since become sockets.
        if with_forced && spec.is_primitive_widget() {
            out.push(Slot::hidden(&spec.name));
            if has_control(spec) {
                out.push(Slot::hidden("control_after_generate"));
            }
        }
        return;
    }
    match spec.type_name.as_str() {
        "INT" | "FLOAT" | "STRING" | "BOOLEAN" | "COMBO" => {
            let control = has_control(spec);
            out.push(Slot {
                dynamic: spec.type_name == "STRING" && spec.flag("dynamicPrompts") == Some(true),
                control,
                default: default_value(spec),
                ..Slot::sent(spec)
            });
            // A combo whose list comes from a route gets an auto-refresh toggle, and a
            // refresh button when asked for.
            if let Some(remote) = spec.options.get("remote").filter(|_| spec.is_combo()) {
                out.push(Slot::hidden("Auto-refresh after generation"));
                if remote.get("refresh_button").and_then(Value::as_bool) == Some(true) {
                    out.push(Slot::button("refresh", "refresh"));
                }
            }
            if control {
                out.push(Slot::hidden("control_after_generate"));
                if spec.type_name == "COMBO" {
                    out.push(Slot::hidden("control_filter_list"));
                }
            }
        }
        // Custom widgets of the core frontend extensions.
        "WEBCAM" | "MARKDOWN" => out.push(Slot::sent(spec)),
        "AUDIO_RECORD" => {
            out.push(Slot::sent(spec));
            out.push(Slot::hidden("record"));
        }
        "LOAD_3D" | "LOAD_3D_ANIMATION" => {
            out.push(Slot {
                buttons: true,
                ..Slot::hidden("")
            });
            out.push(Slot::sent(spec));
        }
        // Everything else is a socket only.
        _ => {}
    }
}

/// The widget layout of a class, as `widgets_values` stores it.
fn class_layout(class: &NodeClass, with_forced: bool) -> Vec<Slot> {
    let mut slots = Vec::new();
    for spec in class.inputs.iter().filter(|s| !s.optional) {
        input_widgets(spec, with_forced, &mut slots);
    }
    // Inputs that the core frontend extensions add to the required ones, by class: an audio
    // player, a 3D view.
    match class.name.as_str() {
        "LoadAudio" | "SaveAudio" | "PreviewAudio" | "SaveAudioMP3" | "SaveAudioOpus" => {
            slots.push(Slot::display("audioUI", false));
        }
        "Preview3D" | "Preview3DAnimation" | "SaveGLB" => slots.push(Slot::display("image", true)),
        _ => {}
    }
    // The upload extensions add a button input after the required ones.
    let media_upload = class.inputs.iter().any(|s| {
        !s.optional
            && s.is_combo()
            && ["image_upload", "video_upload", "animated_image_upload"]
                .iter()
                .any(|f| s.flag(f) == Some(true))
    });
    let audio_upload = class
        .inputs
        .iter()
        .any(|s| !s.optional && s.name == "audio" && s.flag("audio_upload") == Some(true));
    if media_upload || audio_upload {
        slots.push(Slot::hidden("upload"));
    }
    for spec in class.inputs.iter().filter(|s| s.optional) {
        input_widgets(spec, with_forced, &mut slots);
    }
    // Made when the node is created, after the class's widgets: the text preview.
    if class.name == "PreviewAny" {
        slots.push(Slot::display("preview", false));
    }
    slots
}

/// Expands the Load3D button placeholder: as many buttons as the saved values have room for.
fn expand_buttons(slots: Vec<Slot>, saved: Option<usize>) -> Vec<Slot> {
    let fixed = slots.iter().filter(|s| !s.buttons && s.saved).count();
    let names: &[(&str, &str)] = match saved.unwrap_or(fixed).saturating_sub(fixed) {
        0 => &[],
        1 => &[("upload 3d model", "upload3dmodel")],
        2 => &[("upload 3d model", "upload3dmodel"), ("clear", "clear")],
        _ => &[
            ("upload 3d model", "upload3dmodel"),
            ("upload extra resources", "uploadExtraResources"),
            ("clear", "clear"),
        ],
    };
    let mut out = Vec::with_capacity(slots.len() + names.len());
    for slot in slots {
        if slot.buttons {
            out.extend(names.iter().map(|(n, v)| Slot::button(n, v)));
        } else {
            out.push(slot);
        }
    }
    out
}

/// The widget layout that matches the saved values (old workflows kept values for inputs
/// that have since become sockets).
fn saved_layout(class: &NodeClass, saved: Option<&Value>) -> Vec<Slot> {
    let saved_len = saved.and_then(Value::as_array).map(Vec::len);
    let places = |layout: &[Slot]| layout.iter().filter(|s| s.saved).count();
    let mut layout = expand_buttons(class_layout(class, false), saved_len);
    if let Some(len) = saved_len {
        let with_forced = expand_buttons(class_layout(class, true), saved_len);
        if places(&with_forced) == len && places(&layout) != len {
            layout = with_forced;
        }
    }
    layout
}

/// Sets the saved value of widget `input` on a UI-format node (`widgets_values`, a list by
/// position or an object by name). `false` when the node keeps no value for that widget.
pub fn set_widget_value(node: &mut Value, class: &NodeClass, input: &str, value: Value) -> bool {
    let layout = saved_layout(class, node.get("widgets_values"));
    match node.get_mut("widgets_values") {
        Some(Value::Array(values)) => {
            let place = layout
                .iter()
                .filter(|s| s.saved)
                .position(|s| s.name == input);
            match place.and_then(|p| values.get_mut(p)) {
                Some(slot) => {
                    *slot = value;
                    true
                }
                None => false,
            }
        }
        Some(Value::Object(values)) if values.contains_key(input) => {
            values.insert(input.to_string(), value);
            true
        }
        _ => false,
    }
}

fn class_widgets(class: &NodeClass, saved: Option<&Value>) -> Vec<Widget> {
    let layout = saved_layout(class, saved);
    let mut place = 0;
    layout
        .into_iter()
        .map(|slot| {
            let value = if slot.saved {
                place += 1;
                match saved {
                    Some(Value::Array(values)) => values.get(place - 1).cloned(),
                    Some(Value::Object(values)) => values.get(&slot.name).cloned(),
                    _ => None,
                }
            } else {
                None
            };
            Widget {
                value: slot.fixed.or(value).or(slot.default),
                name: slot.name,
                send: slot.send,
                dynamic: slot.dynamic,
                control: slot.control,
            }
        })
        .collect()
}

/// The inputs of a class's node: sockets first, then the widget sockets, each in the class's
/// order; links are taken from the saved inputs of the same name.
fn class_inputs(class: &NodeClass, raw: &RawNode<'_>) -> Vec<Input> {
    let saved = |name: &str| raw.inputs.iter().find(|i| i.name == name);
    let socket_only = |s: &&InputSpec| s.force_input() || !s.is_primitive_widget();
    let sockets = class.inputs.iter().filter(socket_only).map(|spec| Input {
        name: spec.name.clone(),
        type_name: spec.type_name.clone(),
        link: saved(&spec.name).and_then(|i| i.link.clone()),
        widget: None,
    });
    let widget_sockets = class
        .inputs
        .iter()
        .filter(|s| !socket_only(s))
        .map(|spec| Input {
            name: spec.name.clone(),
            type_name: spec.type_name.clone(),
            link: saved(&spec.name).and_then(|i| i.link.clone()),
            widget: Some(spec.name.clone()),
        });
    sockets.chain(widget_sockets).collect()
}

fn raw_inputs(raw: &RawNode<'_>) -> Vec<Input> {
    raw.inputs
        .iter()
        .map(|i| Input {
            name: i.name.clone(),
            type_name: i.type_name.clone(),
            link: i.link.clone(),
            widget: i.widget.clone(),
        })
        .collect()
}

/// LiteGraph's type compatibility: `*` and empty match anything, comparison ignores case,
/// comma-separated lists match when any member does.
fn types_match(a: &str, b: &str) -> bool {
    let a = if a == "*" { "" } else { a };
    let b = if b == "*" { "" } else { b };
    if a.is_empty() || b.is_empty() || a == b {
        return true;
    }
    let (a, b) = (a.to_lowercase(), b.to_lowercase());
    if !a.contains(',') && !b.contains(',') {
        return a == b;
    }
    a.split(',')
        .any(|x| b.split(',').any(|y| types_match(x, y)))
}

// ---------------------------------------------------------------------------------------
// Flattening and resolution.

/// A node as the frontend executes it: one per node of the root graph and per node of each
/// subgraph instance.
#[derive(Debug)]
struct Exec {
    /// `3`, `10:6`, `11:10:6`.
    id: String,
    /// The path of the containing instance (`""` at the root).
    prefix: String,
    graph: usize,
    node: usize,
    /// The containing subgraph instance (an index into the exec list).
    instance: Option<usize>,
    /// The node's mode, or its instance's when that one is muted or bypassed.
    mode: i64,
}

enum Resolved {
    Link(String, usize),
    Value(Value),
}

struct Converter<'a, 'o> {
    /// `graphs[0]` is the root graph, then the subgraph definitions.
    graphs: Vec<Graph<'a>>,
    prepared: Vec<Vec<Prepared<'o>>>,
    execs: Vec<Exec>,
    exec_index: HashMap<String, usize>,
}

impl<'a, 'o> Converter<'a, 'o> {
    fn new(workflow: &'a Value, object_info: &'o ObjectInfo) -> Result<Self, ConvertError> {
        if !workflow.is_object() {
            return Err(ConvertError::Malformed(
                "a workflow must be a JSON object".into(),
            ));
        }
        let mut graphs = vec![parse_graph(workflow, "the workflow")?];
        let mut defs = Vec::new();
        collect_definitions(workflow, &mut defs);
        let mut def_index = HashMap::new();
        for (id, def) in &defs {
            def_index.insert(id.clone(), graphs.len());
            graphs.push(parse_graph(def, &format!("subgraph {id}"))?);
        }

        // 1. Inputs, outputs and widgets of every node (subgraph instances after the rest:
        //    their promoted widgets look at the nodes inside).
        let mut prepared: Vec<Vec<Prepared<'o>>> = graphs
            .iter()
            .map(|g| {
                g.nodes
                    .iter()
                    .map(|raw| prepare(raw, object_info, &def_index))
                    .collect()
            })
            .collect();
        //    Innermost definitions first: an instance's promoted widgets can be the promoted
        //    widgets of an instance nested in it.
        let mut state = vec![0u8; graphs.len()];
        for g in 0..graphs.len() {
            prepare_instances(g, &graphs, &mut prepared, &mut state);
        }

        // 2. PrimitiveNodes copy their value into the widgets they drive.
        for g in 0..graphs.len() {
            for (target, widget, value) in primitive_updates(&graphs[g], &prepared[g]) {
                if let Some(w) = prepared[g][target]
                    .widgets
                    .iter_mut()
                    .find(|w| w.name == widget)
                {
                    w.value = Some(value);
                }
            }
        }

        let mut converter = Converter {
            graphs,
            prepared,
            execs: Vec::new(),
            exec_index: HashMap::new(),
        };
        // 3. Flatten.
        let mut stack = Vec::new();
        converter.expand(0, "", None, &mut stack)?;
        Ok(converter)
    }

    fn expand(
        &mut self,
        graph: usize,
        prefix: &str,
        instance: Option<usize>,
        stack: &mut Vec<usize>,
    ) -> Result<(), ConvertError> {
        for node in 0..self.graphs[graph].nodes.len() {
            let raw = &self.graphs[graph].nodes[node];
            let id = if prefix.is_empty() {
                raw.id.clone()
            } else {
                format!("{prefix}:{}", raw.id)
            };
            // Each node keeps its own mode: an instance's mode does not reach the nodes inside
            // (the editor sets theirs when the instance is bypassed or muted).
            let mode = raw.mode;
            let index = self.execs.len();
            self.execs.push(Exec {
                id: id.clone(),
                prefix: prefix.to_string(),
                graph,
                node,
                instance,
                mode,
            });
            self.exec_index.insert(id.clone(), index);
            if let Kind::Instance(def) = self.prepared[graph][node].kind {
                if stack.contains(&def) {
                    return Err(ConvertError::Cycle {
                        node: self.node_ref(index),
                        detail: "the subgraph contains an instance of itself".into(),
                    });
                }
                stack.push(def);
                self.expand(def, &id, Some(index), stack)?;
                stack.pop();
            }
        }
        Ok(())
    }

    fn raw(&self, exec: usize) -> &RawNode<'a> {
        let e = &self.execs[exec];
        &self.graphs[e.graph].nodes[e.node]
    }

    fn prep(&self, exec: usize) -> &Prepared<'o> {
        let e = &self.execs[exec];
        &self.prepared[e.graph][e.node]
    }

    fn node_ref(&self, exec: usize) -> NodeRef {
        NodeRef {
            id: self.execs[exec].id.clone(),
            title: self.prep(exec).title.clone(),
            class_type: self.raw(exec).type_name.clone(),
        }
    }

    /// Where an input's value comes from: a node's output, a value, or nothing.
    fn resolve_input(
        &self,
        exec: usize,
        slot: usize,
        visited: &mut HashSet<(usize, usize, bool)>,
        type_override: Option<&str>,
    ) -> Result<Option<Resolved>, ConvertError> {
        if !visited.insert((exec, slot, true)) {
            return Err(ConvertError::Cycle {
                node: self.node_ref(exec),
                detail: format!("links loop back to input {slot}"),
            });
        }
        let e = &self.execs[exec];
        let Some(input) = self.prep(exec).inputs.get(slot) else {
            return Err(ConvertError::BadSubgraph {
                node: self.node_ref(exec),
                detail: format!("has no input slot {slot}"),
            });
        };
        let Some(link_id) = &input.link else {
            return Ok(None);
        };
        let graph = &self.graphs[e.graph];
        let Some(link) = graph.links.get(link_id) else {
            return Err(ConvertError::LinkNotFound {
                node: self.node_ref(exec),
                input: input.name.clone(),
                link: link_id.clone(),
            });
        };

        // The link comes in through the subgraph's input: continue outside the instance.
        if let (Some(instance), SUBGRAPH_INPUT_ID) = (e.instance, link.origin.as_str()) {
            let outer = self.prep(instance);
            let Some(outer_input) = outer.inputs.get(link.origin_slot) else {
                return Err(ConvertError::BadSubgraph {
                    node: self.node_ref(instance),
                    detail: format!(
                        "the subgraph uses input slot {} but the instance has {} inputs",
                        link.origin_slot,
                        outer.inputs.len()
                    ),
                });
            };
            return match &outer_input.link {
                // Not connected outside: the value of the widget promoted onto the instance.
                None => Ok(outer_input.widget.as_ref().and_then(|name| {
                    outer
                        .widgets
                        .iter()
                        .find(|w| &w.name == name)
                        .and_then(|w| w.value.clone())
                        .map(Resolved::Value)
                })),
                Some(outer_link) => {
                    let outer_graph = &self.graphs[self.execs[instance].graph];
                    if !outer_graph.links.contains_key(outer_link) {
                        return Err(ConvertError::LinkNotFound {
                            node: self.node_ref(instance),
                            input: outer_input.name.clone(),
                            link: outer_link.clone(),
                        });
                    }
                    self.resolve_input(instance, link.origin_slot, visited, None)
                }
            };
        }

        // A dangling link (its origin node is gone) is dropped.
        let origin_id = if e.prefix.is_empty() {
            link.origin.clone()
        } else {
            format!("{}:{}", e.prefix, link.origin)
        };
        let Some(&origin) = self.exec_index.get(&origin_id) else {
            tracing::debug!(node = %e.id, input = %input.name, origin = %origin_id, "dropping a link from a missing node");
            return Ok(None);
        };
        let wanted = type_override.unwrap_or(&input.type_name).to_string();
        self.resolve_output(origin, link.origin_slot, &wanted, visited)
    }

    /// The real node behind an output: through bypassed nodes, Reroutes and subgraphs.
    fn resolve_output(
        &self,
        exec: usize,
        slot: usize,
        wanted: &str,
        visited: &mut HashSet<(usize, usize, bool)>,
    ) -> Result<Option<Resolved>, ConvertError> {
        if !visited.insert((exec, slot, false)) {
            return Err(ConvertError::Cycle {
                node: self.node_ref(exec),
                detail: format!("links loop back to output {slot}"),
            });
        }
        let e = &self.execs[exec];
        let p = self.prep(exec);
        if e.mode == MODE_BYPASS {
            return match bypass_slot(p, slot, wanted) {
                Some(input) => self.resolve_input(exec, input, visited, None),
                None => Ok(None),
            };
        }
        match p.kind {
            Kind::Instance(def) => self.resolve_subgraph_output(exec, def, slot, wanted, visited),
            Kind::Primitive | Kind::Reroute | Kind::Note => {
                if p.inputs.get(slot).is_some() {
                    self.resolve_input(exec, slot, visited, Some(wanted))
                } else {
                    Ok(None)
                }
            }
            _ => Ok(Some(Resolved::Link(e.id.clone(), slot))),
        }
    }

    fn resolve_subgraph_output(
        &self,
        exec: usize,
        def: usize,
        slot: usize,
        wanted: &str,
        visited: &mut HashSet<(usize, usize, bool)>,
    ) -> Result<Option<Resolved>, ConvertError> {
        let sub = &self.graphs[def];
        let Some(output) = sub.outputs.get(slot) else {
            return Err(ConvertError::BadSubgraph {
                node: self.node_ref(exec),
                detail: format!(
                    "output slot {slot} is linked but the subgraph has {} outputs",
                    sub.outputs.len()
                ),
            });
        };
        let link = output
            .link_ids
            .first()
            .and_then(|id| sub.links.get(id))
            .or_else(|| {
                sub.links
                    .values()
                    .find(|l| l.target == SUBGRAPH_OUTPUT_ID && l.target_slot == slot)
            });
        let Some(link) = link else {
            return Ok(None);
        };
        if link.origin == SUBGRAPH_INPUT_ID {
            // Straight from the subgraph's input to its output.
            return self.resolve_input(exec, link.origin_slot, visited, Some(wanted));
        }
        let inner_id = format!("{}:{}", self.execs[exec].id, link.origin);
        match self.exec_index.get(&inner_id) {
            Some(&inner) => self.resolve_output(inner, link.origin_slot, wanted, visited),
            None => Ok(None),
        }
    }

    fn convert(&self, pick: &mut dyn FnMut(usize) -> usize) -> Result<ApiPrompt, ConvertError> {
        let mut prompt = ApiPrompt::default();
        for exec in 0..self.execs.len() {
            let e = &self.execs[exec];
            let p = self.prep(exec);
            if p.kind.is_virtual() || e.mode == MODE_NEVER || e.mode == MODE_BYPASS {
                continue;
            }
            match p.kind {
                Kind::Unknown => {
                    return Err(ConvertError::UnknownClass {
                        node: self.node_ref(exec),
                    })
                }
                Kind::GroupNode => {
                    return Err(ConvertError::GroupNode {
                        node: self.node_ref(exec),
                    })
                }
                Kind::MissingSubgraph => {
                    return Err(ConvertError::SubgraphMissing {
                        node: self.node_ref(exec),
                        subgraph: self.raw(exec).type_name.clone(),
                    })
                }
                _ => {}
            }
            let mut inputs = Map::new();
            for w in p.widgets.iter().filter(|w| w.send) {
                let Some(value) = &w.value else {
                    continue;
                };
                let value = match value {
                    Value::String(text) if w.dynamic => {
                        Value::String(process_dynamic_prompt(text, pick))
                    }
                    other => other.clone(),
                };
                inputs.insert(w.name.clone(), wrap_array(value));
            }
            for (slot, input) in p.inputs.iter().enumerate() {
                let mut visited = HashSet::new();
                match self.resolve_input(exec, slot, &mut visited, None)? {
                    None => {}
                    Some(Resolved::Value(v)) => {
                        inputs.insert(input.name.clone(), wrap_array(v));
                    }
                    Some(Resolved::Link(origin, origin_slot)) => {
                        inputs.insert(input.name.clone(), json!([origin, origin_slot]));
                    }
                }
            }
            prompt.nodes.insert(
                e.id.clone(),
                ApiNode {
                    inputs,
                    class_type: self.raw(exec).type_name.clone(),
                    meta: Some(ApiMeta {
                        title: Some(p.title.clone()),
                        extra: Map::new(),
                    }),
                    extra: Map::new(),
                },
            );
        }

        // Inputs linked to nodes that are not in the prompt (muted ones) go.
        let ids: HashSet<String> = prompt.nodes.keys().cloned().collect();
        for node in prompt.nodes.values_mut() {
            node.inputs.retain(|_, v| match v.as_array() {
                Some(link) if link.len() == 2 => {
                    link[0].as_str().is_some_and(|origin| ids.contains(origin))
                }
                _ => true,
            });
        }
        Ok(prompt)
    }
}

/// Arrays are links in a prompt; an array value is sent as `{"__value__": [...]}`. Numbers
/// are written as JavaScript writes them: `1.0` is `1`.
fn wrap_array(v: Value) -> Value {
    let v = js_numbers(v);
    if v.is_array() {
        json!({ "__value__": v })
    } else {
        v
    }
}

/// A whole-number float becomes an integer, as `JSON.stringify` prints it.
fn js_numbers(v: Value) -> Value {
    match v {
        Value::Number(n) if !n.is_i64() && !n.is_u64() => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 9.007_199_254_740_992e15 => json!(f as i64),
            _ => Value::Number(n),
        },
        Value::Array(items) => Value::Array(items.into_iter().map(js_numbers).collect()),
        Value::Object(map) => {
            Value::Object(map.into_iter().map(|(k, v)| (k, js_numbers(v))).collect())
        }
        other => other,
    }
}

/// The title a new node of a class gets: the frontend's English name for the few classes
/// that `/object_info` names only by class name (frontend 1.27.10's locale), else the
/// class's display name.
fn frontend_title(class: &NodeClass) -> &str {
    if class.display_name.is_none() {
        let english = match class.name.as_str() {
            "ImageBlend" => Some("Image Blend"),
            "ImageBlur" => Some("Image Blur"),
            "ImageQuantize" => Some("Image Quantize"),
            "ImageSharpen" => Some("Image Sharpen"),
            "ImageScaleToTotalPixels" => Some("Scale Image to Total Pixels"),
            _ => None,
        };
        if let Some(title) = english {
            return title;
        }
    }
    class.title()
}

/// The input a bypassed node passes through for one of its outputs: the input at the same
/// index when its type fits, else the first input of exactly the wanted type, else the
/// first compatible one.
fn bypass_slot(p: &Prepared<'_>, slot: usize, wanted: &str) -> Option<usize> {
    let inputs = &p.inputs;
    if wanted == "*" || wanted.is_empty() {
        return if inputs.len() > slot {
            Some(slot)
        } else if inputs.is_empty() {
            None
        } else {
            Some(0)
        };
    }
    let output_type = p
        .output_types
        .get(slot)
        .map(String::as_str)
        .unwrap_or(wanted);
    let fits =
        |i: &Input| types_match(&i.type_name, output_type) && types_match(&i.type_name, wanted);
    if inputs.get(slot).is_some_and(fits) {
        return Some(slot);
    }
    inputs
        .iter()
        .position(|i| i.type_name == wanted)
        .or_else(|| inputs.iter().position(fits))
}

fn prepare<'o>(
    raw: &RawNode<'_>,
    object_info: &'o ObjectInfo,
    def_index: &HashMap<String, usize>,
) -> Prepared<'o> {
    let kind = if let Some(&def) = def_index.get(&raw.type_name) {
        Kind::Instance(def)
    } else {
        match raw.type_name.as_str() {
            "PrimitiveNode" => Kind::Primitive,
            "Reroute" => Kind::Reroute,
            "Note" | "MarkdownNote" => Kind::Note,
            t => match object_info.class(t) {
                Some(class) => Kind::Class(class),
                None if looks_like_uuid(t) => Kind::MissingSubgraph,
                None if t.starts_with("workflow>") || t.starts_with("workflow/") => Kind::GroupNode,
                None => Kind::Unknown,
            },
        }
    };
    let raw_output_types = || raw.outputs.iter().map(|o| o.type_name.clone()).collect();
    match kind {
        Kind::Class(class) => Prepared {
            kind,
            title: raw
                .title
                .clone()
                .unwrap_or_else(|| frontend_title(class).to_string()),
            inputs: class_inputs(class, raw),
            output_types: if class.outputs.is_empty() {
                raw_output_types()
            } else {
                class.outputs.clone()
            },
            widgets: class_widgets(class, raw.widgets_values),
        },
        Kind::Primitive => Prepared {
            kind,
            title: raw.title.clone().unwrap_or_else(|| raw.type_name.clone()),
            inputs: raw_inputs(raw),
            output_types: raw_output_types(),
            widgets: vec![Widget {
                name: "value".into(),
                value: raw.widgets_values.and_then(|v| v.get(0)).cloned(),
                send: false,
                dynamic: false,
                control: false,
            }],
        },
        _ => Prepared {
            kind,
            title: raw.title.clone().unwrap_or_else(|| raw.type_name.clone()),
            inputs: raw_inputs(raw),
            output_types: raw_output_types(),
            widgets: Vec::new(),
        },
    }
}

/// Rebuilds the inputs and promoted widgets of the subgraph instances in graph `g`, after
/// those of the definitions they instantiate (`state`: 0 to do, 1 under way, 2 done; a
/// definition that contains itself is left for the flattening to report).
fn prepare_instances(
    g: usize,
    graphs: &[Graph<'_>],
    prepared: &mut [Vec<Prepared<'_>>],
    state: &mut [u8],
) {
    if state[g] != 0 {
        return;
    }
    state[g] = 1;
    for n in 0..graphs[g].nodes.len() {
        if let Kind::Instance(def) = prepared[g][n].kind {
            prepare_instances(def, graphs, prepared, state);
            let raw = &graphs[g].nodes[n];
            let inputs = instance_inputs(raw, &graphs[def], &prepared[def]);
            let widgets = promoted_widgets(raw, &inputs, &graphs[def], &prepared[def]);
            prepared[g][n].inputs = inputs;
            prepared[g][n].widgets = widgets;
        }
    }
    state[g] = 2;
}

/// The inputs of a subgraph instance as the frontend (1.27.10) rebuilds them: one per
/// input of the definition, connected as the saved input of the same name is (a newer
/// frontend, which promotes widgets through `proxyWidgets`, saves only some of them). An
/// input whose subgraph input drives a widget inside is a widget socket named after it.
fn instance_inputs(raw: &RawNode<'_>, def: &Graph<'_>, inner: &[Prepared<'_>]) -> Vec<Input> {
    def.inputs
        .iter()
        .map(|io| {
            let saved = raw.inputs.iter().find(|i| i.name == io.name);
            Input {
                name: io.name.clone(),
                type_name: io.type_name.clone(),
                link: saved.and_then(|i| i.link.clone()),
                widget: inner_widget(def, inner, io).map(|_| io.name.clone()),
            }
        })
        .collect()
}

/// The widgets promoted onto a subgraph instance, in the order of its inputs: a copy of the
/// inner widget that each widget socket's subgraph input drives (its value, without the
/// seed's `control_after_generate` companion), named after the subgraph input, then valued
/// from the instance's `widgets_values` by position.
fn promoted_widgets(
    raw: &RawNode<'_>,
    inputs: &[Input],
    def: &Graph<'_>,
    inner: &[Prepared<'_>],
) -> Vec<Widget> {
    let values: &[Value] = raw
        .widgets_values
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    inputs
        .iter()
        .filter(|i| i.widget.is_some())
        .filter_map(|i| {
            let io = def.inputs.iter().find(|io| io.name == i.name)?;
            Some((io, inner_widget(def, inner, io)?))
        })
        .enumerate()
        .map(|(place, (io, copied))| Widget {
            name: io.name.clone(),
            value: values.get(place).cloned().or_else(|| copied.value.clone()),
            send: false,
            dynamic: false,
            control: copied.control,
        })
        .collect()
}

/// The first widget inside that a subgraph input drives: through each of its links, the
/// widget of the target node's input at the link's `target_slot` (the frontend goes by the
/// slot index, even where a newer frontend saved the inputs in another order).
fn inner_widget<'p>(def: &Graph<'_>, inner: &'p [Prepared<'_>], io: &IoSlot) -> Option<&'p Widget> {
    io.link_ids.iter().find_map(|id| {
        let link = def.links.get(id)?;
        let n = def.nodes.iter().position(|n| n.id == link.target)?;
        let target = &inner[n];
        let name = target.inputs.get(link.target_slot)?.widget.as_ref()?;
        target.widgets.iter().find(|x| &x.name == name)
    })
}

/// What each PrimitiveNode of a graph writes: (target node, widget name, value).
fn primitive_updates(graph: &Graph<'_>, prepared: &[Prepared<'_>]) -> Vec<(usize, String, Value)> {
    let mut updates = Vec::new();
    for (n, raw) in graph.nodes.iter().enumerate() {
        if !matches!(prepared[n].kind, Kind::Primitive) {
            continue;
        }
        let Some(value) = prepared[n].widgets.first().and_then(|w| w.value.clone()) else {
            continue;
        };
        let link_ids: Vec<&String> = match raw.outputs.first().and_then(|o| o.links.as_ref()) {
            Some(ids) => ids.iter().collect(),
            None => graph
                .links
                .iter()
                .filter(|(_, l)| l.origin == raw.id && l.origin_slot == 0)
                .map(|(id, _)| id)
                .collect(),
        };
        for id in link_ids {
            let Some(link) = graph.links.get(id) else {
                continue;
            };
            let Some(target) = graph.nodes.iter().position(|t| t.id == link.target) else {
                continue;
            };
            let inputs = &prepared[target].inputs;
            let input = inputs
                .iter()
                .find(|i| i.link.as_ref() == Some(id))
                .or_else(|| inputs.get(link.target_slot));
            if let Some(widget) = input.and_then(|i| i.widget.clone()) {
                updates.push((target, widget, value.clone()));
            }
        }
    }
    updates
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_matching_follows_litegraph() {
        assert!(types_match("*", "MODEL"));
        assert!(types_match("", "MODEL"));
        assert!(types_match("model", "MODEL"));
        assert!(!types_match("CLIP", "MODEL"));
        assert!(types_match("IMAGE,MASK", "MASK"));
        assert!(!types_match("IMAGE,MASK", "LATENT"));
    }

    #[test]
    fn ids_normalise() {
        assert_eq!(id_key(&json!(3)), Some("3".into()));
        assert_eq!(id_key(&json!(3.0)), Some("3".into()));
        assert_eq!(id_key(&json!("10")), Some("10".into()));
        assert_eq!(id_key(&json!(null)), None);
        assert!(looks_like_uuid("79ad3f92-f1ab-4664-97e1-f1351eb9a3d3"));
        assert!(!looks_like_uuid("KSampler"));
    }
}
