//! Checks before a prompt is queued, and ComfyUI's refusals in words.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{ApiPrompt, ObjectInfo};

/// Something wrong with one node of a prompt.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeProblem {
    /// The node's id in the prompt (`"4"`, `"10:6"`).
    pub node_id: String,
    /// Its class (empty when the prompt did not say).
    pub class_type: String,
    /// Its title (from the prompt's `_meta`, else the class's display name, else the class).
    pub title: String,
    /// The input concerned, if one is.
    pub input: Option<String>,
    /// What is wrong, as a sentence for the user.
    pub message: String,
    /// The preset that installs the missing model file.
    pub preset_hint: Option<String>,
}

impl NodeProblem {
    /// `KSampler (node 3): steps 10001 is above the maximum 10000`.
    pub fn sentence(&self) -> String {
        format!("{} (node {}): {}", self.title, self.node_id, self.message)
    }
}

/// ComfyUI's answer to a refused (or partly refused) prompt, in words.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PromptRejection {
    /// One paragraph for the user.
    pub message: String,
    /// One entry per error ComfyUI reported on a node.
    pub nodes: Vec<NodeProblem>,
}

/// The models folder a loader input picks its file from (`ckpt_name` → `checkpoints`), as
/// ComfyUI's `folder_paths` names them; `None` when the input is not a model file.
pub fn model_folder(class_type: &str, input: &str) -> Option<&'static str> {
    let by_class = match (class_type, input) {
        ("CLIPVisionLoader", "clip_name") => Some("clip_vision"),
        ("UpscaleModelLoader", "model_name") => Some("upscale_models"),
        ("ModelPatchLoader", "name") => Some("model_patches"),
        ("DiffusersLoader", "model_path") => Some("diffusers"),
        ("CheckpointLoader", "config_name") => Some("configs"),
        _ => None,
    };
    by_class.or(match input {
        "ckpt_name" => Some("checkpoints"),
        "lora_name" => Some("loras"),
        "vae_name" => Some("vae"),
        "unet_name" => Some("diffusion_models"),
        "clip_name" | "clip_name1" | "clip_name2" | "clip_name3" | "clip_name4" => {
            Some("text_encoders")
        }
        "clip_vision_name" => Some("clip_vision"),
        "control_net_name" => Some("controlnet"),
        "upscale_model" | "upscale_model_name" => Some("upscale_models"),
        "model_name" if class_type.to_lowercase().contains("upscale") => Some("upscale_models"),
        "gligen_name" => Some("gligen"),
        "hypernetwork_name" => Some("hypernetworks"),
        "style_model_name" => Some("style_models"),
        "photomaker_model_name" => Some("photomaker"),
        "audio_encoder_name" => Some("audio_encoders"),
        _ => None,
    })
}

/// Orders node ids the way people read them: `2` < `10` < `10:3` < `10:12`. A total order
/// (sorting panics on one that is not): per `:` segment, numbers by value before other
/// segments, those by text. Comparing a number with a word by text made `9` < `10` < `1a` < `9`
/// (found by fuzzing).
pub(crate) fn id_order(a: &str, b: &str) -> Ordering {
    let mut left = a.split(':');
    let mut right = b.split(':');
    loop {
        match (left.next(), right.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                let ord = match (x.parse::<i64>(), y.parse::<i64>()) {
                    (Ok(p), Ok(q)) => p.cmp(&q).then_with(|| x.cmp(y)),
                    (Ok(_), Err(_)) => Ordering::Less,
                    (Err(_), Ok(_)) => Ordering::Greater,
                    (Err(_), Err(_)) => x.cmp(y),
                };
                if ord != Ordering::Equal {
                    return ord;
                }
            }
        }
    }
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn same_file(a: &str, b: &str) -> bool {
    a.replace('\\', "/") == b.replace('\\', "/")
}

/// Looks for what would make ComfyUI refuse the prompt or fail at once: nodes without a
/// class, classes this ComfyUI does not have, model files that are not installed, links to
/// nodes that are not in the prompt.
///
/// `model_hint(folder, file)` names the preset that provides a missing model file (the
/// caller looks it up in the preset catalog's model index).
pub fn check_prompt(
    prompt: &ApiPrompt,
    object_info: &ObjectInfo,
    model_hint: &dyn Fn(&str, &str) -> Option<String>,
) -> Vec<NodeProblem> {
    let mut ids: Vec<&String> = prompt.nodes.keys().collect();
    ids.sort_by(|a, b| id_order(a, b));
    let mut problems = Vec::new();
    for id in ids {
        let node = &prompt.nodes[id];
        let class = object_info.class(&node.class_type);
        let title = node
            .title()
            .map(str::to_string)
            .or_else(|| class.map(|c| c.title().to_string()))
            .unwrap_or_else(|| node.class_type.clone());
        let problem =
            |input: Option<&str>, message: String, preset_hint: Option<String>| NodeProblem {
                node_id: id.clone(),
                class_type: node.class_type.clone(),
                title: if title.is_empty() {
                    format!("node {id}")
                } else {
                    title.clone()
                },
                input: input.map(str::to_string),
                message,
                preset_hint,
            };
        if node.class_type.is_empty() {
            problems.push(problem(None, "the node has no class_type".into(), None));
            continue;
        }
        let Some(class) = class else {
            problems.push(problem(
                None,
                format!(
                    "node type {} is not installed in ComfyUI (a custom node is missing)",
                    node.class_type
                ),
                None,
            ));
            continue;
        };
        for (name, value) in &node.inputs {
            if let Some(link) = value.as_array().filter(|a| a.len() == 2) {
                let origin = value_text(&link[0]);
                if !prompt.nodes.contains_key(&origin) {
                    problems.push(problem(
                        Some(name),
                        format!("{name} is connected to node {origin}, which is not in the prompt"),
                        None,
                    ));
                }
                continue;
            }
            let Some(file) = value.as_str() else {
                continue;
            };
            let (Some(folder), Some(allowed)) = (
                model_folder(&node.class_type, name),
                class.input(name).and_then(|s| s.combo.as_ref()),
            ) else {
                continue;
            };
            let installed = allowed
                .iter()
                .any(|v| v.as_str().is_some_and(|a| same_file(a, file)));
            if !installed {
                let hint = model_hint(folder, file);
                let mut message = format!("model file {file} is not installed (folder {folder})");
                if let Some(preset) = &hint {
                    message.push_str(&format!(": install preset {preset}"));
                }
                problems.push(problem(Some(name), message, hint));
            }
        }
    }
    problems
}

/// The title of a prompt node: `_meta.title`, else its class.
fn title_in(prompt: Option<&Value>, id: &str, class_type: &str) -> String {
    prompt
        .and_then(|p| p.get(id))
        .and_then(|n| n.get("_meta"))
        .and_then(|m| m.get("title"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| (!class_type.is_empty()).then(|| class_type.to_string()))
        .unwrap_or_else(|| format!("node {id}"))
}

fn class_in(prompt: Option<&Value>, id: &str) -> Option<String> {
    prompt?
        .get(id)?
        .get("class_type")?
        .as_str()
        .map(str::to_string)
}

/// `Node ID '#12'` → `12`.
fn node_id_in(details: &str) -> Option<String> {
    let start = details.find('#')? + 1;
    let rest = &details[start..];
    let end = rest.find(['\'', '"', ' ']).unwrap_or(rest.len());
    Some(rest[..end].to_string()).filter(|s| !s.is_empty())
}

/// A number from ComfyUI's message (`Value 0 smaller than min of 1` → after `of `).
fn number_after<'a>(text: &'a str, marker: &str) -> Option<&'a str> {
    let start = text.find(marker)? + marker.len();
    let rest = &text[start..];
    let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
    Some(rest[..end].trim_end_matches(['.', ',']))
}

fn type_words(t: &str) -> String {
    match t {
        "INT" => "a whole number (INT)".into(),
        "FLOAT" => "a number (FLOAT)".into(),
        "BOOLEAN" => "true or false (BOOLEAN)".into(),
        "STRING" => "text (STRING)".into(),
        other => format!("a {other} value"),
    }
}

/// One of ComfyUI's per-node validation errors as a sentence.
fn error_sentence(
    err: &Value,
    class_type: &str,
    prompt: Option<&Value>,
) -> (Option<String>, String) {
    let text = |key: &str| {
        err.get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let kind = text("type");
    let message = text("message");
    let details = text("details");
    let extra = err.get("extra_info");
    let input = extra
        .and_then(|e| e.get("input_name"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| {
            (kind == "required_input_missing" && !details.is_empty()).then(|| details.clone())
        });
    let name = input.clone().unwrap_or_else(|| "an input".into());
    let received = extra.and_then(|e| e.get("received_value"));
    let received_text = received.map(value_text).unwrap_or_default();
    let config_option = |key: &str| {
        extra
            .and_then(|e| e.get("input_config"))
            .and_then(|c| c.get(1))
            .and_then(|o| o.get(key))
            .map(value_text)
    };
    let sentence = match kind.as_str() {
        "required_input_missing" => {
            format!("required input {name} is missing (nothing is connected to it)")
        }
        "value_bigger_than_max" => {
            let max = config_option("max")
                .or_else(|| number_after(&message, "max of ").map(str::to_string))
                .unwrap_or_else(|| "allowed".into());
            format!("{name} {received_text} is above the maximum {max}")
        }
        "value_smaller_than_min" => {
            let min = config_option("min")
                .or_else(|| number_after(&message, "min of ").map(str::to_string))
                .unwrap_or_else(|| "allowed".into());
            format!("{name} {received_text} is below the minimum {min}")
        }
        "value_not_in_list" => match model_folder(class_type, &name) {
            Some(folder) => {
                format!("model file {received_text} is not installed (folder {folder})")
            }
            None => {
                let choices: Vec<String> = extra
                    .and_then(|e| e.get("input_config"))
                    .and_then(|c| c.get(0))
                    .and_then(Value::as_array)
                    .map(|a| a.iter().map(value_text).collect())
                    .unwrap_or_default();
                let mut s = format!("{name} '{received_text}' is not one of the allowed values");
                if !choices.is_empty() && choices.len() <= 8 {
                    s.push_str(&format!(" ({})", choices.join(", ")));
                }
                s
            }
        },
        "invalid_input_type" => {
            let expected = extra
                .and_then(|e| e.get("input_config"))
                .and_then(|c| c.get(0))
                .and_then(Value::as_str)
                .map(str::to_string)
                .or_else(|| {
                    let t = message.split(" to a ").nth(1)?;
                    Some(t.trim_end_matches(" value").to_string())
                })
                .unwrap_or_default();
            let shown = match received {
                Some(Value::String(s)) => format!("'{s}'"),
                _ => received_text.clone(),
            };
            format!("{name} {shown} is not {}", type_words(&expected))
        }
        "return_type_mismatch" => {
            let got = extra
                .and_then(|e| e.get("received_type"))
                .map(value_text)
                .unwrap_or_else(|| "another type".into());
            let wanted = extra
                .and_then(|e| e.get("input_config"))
                .and_then(|c| c.get(0))
                .and_then(Value::as_str)
                .unwrap_or("another type")
                .to_string();
            let from = extra
                .and_then(|e| e.get("linked_node"))
                .and_then(|l| l.get(0))
                .map(value_text)
                .map(|id| {
                    let class = class_in(prompt, &id).unwrap_or_default();
                    format!(" of {} (node {id})", title_in(prompt, &id, &class))
                })
                .unwrap_or_default();
            format!("{name} expects {wanted} but is connected to a {got} output{from}")
        }
        "bad_linked_input" => format!(
            "{name} has a malformed link {} (a link is [node id, output index])",
            received.map(Value::to_string).unwrap_or_default()
        ),
        "custom_validation_failed" => {
            let what = input
                .as_deref()
                .and_then(|i| details.strip_prefix(&format!("{i} - ")))
                .unwrap_or(&details)
                .to_string();
            match what.strip_prefix("Invalid image file: ") {
                Some(file) => {
                    format!("image file {file} is not in ComfyUI's input folder (upload it first)")
                }
                None if what.is_empty() => format!("{name} failed the node's own check"),
                None => format!("{name}: {what}"),
            }
        }
        "exception_during_validation" | "exception_during_inner_validation" => {
            let why = if details.is_empty() {
                &message
            } else {
                &details
            };
            format!("could not be validated: {why}")
        }
        _ => match (message.is_empty(), details.is_empty()) {
            (false, false) => format!("{message}: {details}"),
            (false, true) => message,
            (true, false) => details,
            (true, true) => format!("ComfyUI reported an error of type {kind}"),
        },
    };
    (input, sentence)
}

/// Turns ComfyUI's answer to a refused prompt (the body of a `400` from `POST /prompt`, or a
/// `200` that still lists `node_errors`) into sentences. `prompt` is the prompt that was
/// sent (the API object); node titles are taken from its `_meta`.
pub fn explain_prompt_error(body: &Value, prompt: Option<&Value>) -> PromptRejection {
    let (kind, message, details, extra) = match body.get("error") {
        Some(Value::Object(e)) => (
            e.get("type")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            e.get("message")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            e.get("details")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            e.get("extra_info").cloned(),
        ),
        Some(Value::String(s)) => (String::new(), s.clone(), String::new(), None),
        _ => (String::new(), String::new(), String::new(), None),
    };

    let mut nodes = Vec::new();
    if let Some(node_errors) = body.get("node_errors").and_then(Value::as_object) {
        let mut ids: Vec<&String> = node_errors.keys().collect();
        ids.sort_by(|a, b| id_order(a, b));
        for id in ids {
            let entry = &node_errors[id];
            let class_type = entry
                .get("class_type")
                .and_then(Value::as_str)
                .map(str::to_string)
                .or_else(|| class_in(prompt, id))
                .unwrap_or_default();
            let title = title_in(prompt, id, &class_type);
            let errors = entry
                .get("errors")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for err in &errors {
                let (input, sentence) = error_sentence(err, &class_type, prompt);
                nodes.push(NodeProblem {
                    node_id: id.clone(),
                    class_type: class_type.clone(),
                    title: title.clone(),
                    input,
                    message: sentence,
                    preset_hint: None,
                });
            }
        }
    }

    // Errors about the prompt as a whole that still concern one node.
    let extra_text = |key: &str| {
        extra
            .as_ref()
            .and_then(|e| e.get(key))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    if kind == "invalid_prompt" || kind == "missing_node_type" {
        let id = extra_text("node_id").or_else(|| node_id_in(&details));
        if let Some(id) = id {
            let missing_class = message.contains("missing the class_type");
            let class_type = extra_text("class_type")
                .or_else(|| {
                    let rest = message.strip_prefix("Cannot execute because node ")?;
                    Some(rest.strip_suffix(" does not exist.")?.to_string())
                })
                .or_else(|| class_in(prompt, &id))
                .unwrap_or_default();
            let title =
                extra_text("node_title").unwrap_or_else(|| title_in(prompt, &id, &class_type));
            let sentence = if missing_class {
                "the node has no class_type".to_string()
            } else if !class_type.is_empty() {
                format!(
                    "node type {class_type} is not installed in ComfyUI (a custom node is missing)"
                )
            } else {
                message.clone()
            };
            nodes.push(NodeProblem {
                node_id: id,
                class_type,
                title,
                input: None,
                message: sentence,
                preset_hint: None,
            });
        }
    }

    let listed = nodes
        .iter()
        .map(NodeProblem::sentence)
        .collect::<Vec<_>>()
        .join("; ");
    let message = match kind.as_str() {
        "prompt_no_outputs" => "The workflow has no output node (such as Save Image or Preview \
                                Image), so ComfyUI has nothing to run."
            .to_string(),
        "no_prompt" => "The request sent to ComfyUI contained no prompt.".to_string(),
        "" if !nodes.is_empty() => format!(
            "ComfyUI queued the workflow but skips the outputs that depend on these nodes: {listed}."
        ),
        "" if message.is_empty() => "ComfyUI refused the prompt without saying why.".to_string(),
        "" => format!("ComfyUI refused the prompt: {message}"),
        _ if !nodes.is_empty() => format!("ComfyUI rejected the workflow: {listed}."),
        _ => {
            let mut m = format!("ComfyUI rejected the workflow: {message}");
            if !details.is_empty() {
                m.push_str(&format!(" ({details})"));
            }
            m
        }
    };
    PromptRejection { message, nodes }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_like_numbers() {
        let mut ids = vec!["10:12", "3", "10", "10:3", "2"];
        ids.sort_by(|a, b| id_order(a, b));
        assert_eq!(ids, vec!["2", "3", "10", "10:3", "10:12"]);
    }

    #[test]
    fn model_folders() {
        assert_eq!(
            model_folder("CheckpointLoaderSimple", "ckpt_name"),
            Some("checkpoints")
        );
        assert_eq!(
            model_folder("CLIPVisionLoader", "clip_name"),
            Some("clip_vision")
        );
        assert_eq!(
            model_folder("CLIPLoader", "clip_name"),
            Some("text_encoders")
        );
        assert_eq!(
            model_folder("UpscaleModelLoader", "model_name"),
            Some("upscale_models")
        );
        assert_eq!(model_folder("KSampler", "sampler_name"), None);
        assert_eq!(model_folder("SomeLoader", "model_name"), None);
    }

    #[test]
    fn node_ids_in_details() {
        assert_eq!(node_id_in("Node ID '#1'"), Some("1".into()));
        assert_eq!(node_id_in("Node ID '#10:6'"), Some("10:6".into()));
        assert_eq!(node_id_in("nothing"), None);
    }
}
