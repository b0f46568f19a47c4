//! How an output was made, read from the file: ComfyUI's `workflow` / `prompt` PNG text
//! chunks (or A1111-style `parameters`), and the size from the image header. Blocking I/O;
//! reads only headers and text chunks, never the pixels.

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::Path;

use serde_json::{Map, Value};

use crate::model::{GalleryMeta, MediaKind};
use crate::workflows::png;

/// How far links are followed from a sampler to the text of its prompt.
const MAX_LINK_DEPTH: usize = 8;

/// Reads what the file says about itself. Problems with the metadata land in `note`; only
/// an unreadable file is an error.
pub(crate) fn read_meta(path: &Path, kind: MediaKind) -> std::io::Result<GalleryMeta> {
    if kind != MediaKind::Image {
        return Ok(GalleryMeta::default());
    }
    read_meta_from(BufReader::new(File::open(path)?), kind)
}

/// [`read_meta`] on an open file (or any seekable reader: the fuzz target feeds bytes).
pub(crate) fn read_meta_from(
    mut reader: impl BufRead + Seek,
    kind: MediaKind,
) -> std::io::Result<GalleryMeta> {
    let mut meta = GalleryMeta::default();
    if kind != MediaKind::Image {
        return Ok(meta);
    }
    match png::read_head(&mut reader)? {
        Some(head) => {
            meta.width = Some(head.width).filter(|w| *w > 0);
            meta.height = Some(head.height).filter(|h| *h > 0);
            let mut notes = Vec::new();
            for chunk in &head.text.chunks {
                let text = match &chunk.text {
                    Ok(text) => text,
                    Err(why) => {
                        notes.push(format!(
                            "the `{}` text chunk is unreadable: {why}",
                            chunk.keyword
                        ));
                        continue;
                    }
                };
                match chunk.keyword.as_str() {
                    "workflow" | "prompt" => match serde_json::from_str::<Value>(text) {
                        Ok(value) if chunk.keyword == "workflow" => meta.workflow = Some(value),
                        Ok(value) => meta.prompt = Some(value),
                        Err(e) => notes.push(format!(
                            "the `{}` text chunk is not valid JSON: {e}",
                            chunk.keyword
                        )),
                    },
                    "parameters" => apply_a1111_parameters(text, &mut meta),
                    _ => {}
                }
            }
            if let Some(prompt) = meta.prompt.clone() {
                apply_api_prompt(&prompt, &mut meta);
            }
            if let Some(damage) = head.text.damage {
                notes.push(format!("the PNG is damaged: {damage}"));
            }
            meta.note = (!notes.is_empty()).then(|| notes.join("; "));
        }
        None => {
            // JPEG, WebP, GIF: the header gives the size; they carry no ComfyUI workflow.
            reader.seek(SeekFrom::Start(0))?;
            let dimensions = image::ImageReader::new(reader)
                .with_guessed_format()
                .map_err(|e| e.to_string())
                .and_then(|r| r.into_dimensions().map_err(|e| e.to_string()));
            match dimensions {
                Ok((w, h)) => {
                    meta.width = Some(w);
                    meta.height = Some(h);
                }
                Err(e) => meta.note = Some(format!("the image header cannot be read: {e}")),
            }
        }
    }
    Ok(meta)
}

/// Fills seed, sampler settings, prompt texts and model from an API-format prompt: the
/// sampler is found first, then its `positive` / `negative` links are followed to the node
/// that holds the text (through combiners and primitive nodes).
pub(crate) fn apply_api_prompt(prompt: &Value, meta: &mut GalleryMeta) {
    let Some(nodes) = prompt.as_object() else {
        return;
    };
    let mut ids: Vec<&String> = nodes.keys().collect();
    // Numeric ids in numeric order, so the first sampler is the one a person would call first.
    ids.sort_by_key(|id| (id.parse::<u64>().unwrap_or(u64::MAX), id.as_str()));
    let inputs_of = |id: &str| {
        nodes
            .get(id)
            .and_then(|n| n.get("inputs"))
            .and_then(Value::as_object)
    };
    let class_of = |id: &str| {
        nodes
            .get(id)
            .and_then(|n| n.get("class_type"))
            .and_then(Value::as_str)
            .unwrap_or("")
    };

    let sampler = ids
        .iter()
        .copied()
        .filter(|id| class_of(id).contains("Sampler"))
        .find(|id| {
            inputs_of(id).is_some_and(|i| {
                ["positive", "guider", "seed", "noise_seed"]
                    .iter()
                    .any(|k| i.contains_key(*k))
            })
        });
    if let Some(id) = sampler {
        let inputs = inputs_of(id).expect("found by its inputs");
        meta.seed = meta.seed.or_else(|| {
            // `noise`: custom samplers take the seed from a RandomNoise node.
            ["seed", "noise_seed", "noise"]
                .iter()
                .find_map(|k| inputs.get(*k))
                .and_then(|v| number_through_links(v, nodes, 0))
                .map(|n| n as i64)
        });
        meta.steps = meta.steps.or_else(|| {
            inputs
                .get("steps")
                .and_then(|v| number_through_links(v, nodes, 0))
                .map(|n| n as u32)
        });
        meta.cfg = meta.cfg.or_else(|| {
            inputs
                .get("cfg")
                .and_then(|v| number_through_links(v, nodes, 0))
        });
        meta.sampler = meta.sampler.clone().or_else(|| {
            inputs
                .get("sampler_name")
                .and_then(Value::as_str)
                .map(str::to_string)
        });
        meta.scheduler = meta.scheduler.clone().or_else(|| {
            inputs
                .get("scheduler")
                .and_then(Value::as_str)
                .map(str::to_string)
        });
        // Custom samplers take their conditioning through a guider node.
        let conditioning_holder = inputs
            .get("guider")
            .and_then(link_target)
            .and_then(&inputs_of)
            .unwrap_or(inputs);
        if meta.positive.is_none() {
            meta.positive = ["positive", "conditioning"]
                .iter()
                .find_map(|k| conditioning_holder.get(*k))
                .and_then(|v| text_through_links(v, nodes, 0));
        }
        if meta.negative.is_none() {
            meta.negative = conditioning_holder
                .get("negative")
                .and_then(|v| text_through_links(v, nodes, 0));
        }
    }
    if meta.positive.is_none() {
        // No sampler links to follow: the first text encoder not titled as negative.
        meta.positive = ids
            .iter()
            .filter(|id| class_of(id).starts_with("CLIPTextEncode"))
            .filter(|id| {
                !nodes[id.as_str()]
                    .pointer("/_meta/title")
                    .and_then(Value::as_str)
                    .is_some_and(|t| t.to_ascii_lowercase().contains("negative"))
            })
            .find_map(|id| text_of_node(id, nodes, 0));
    }
    if meta.model.is_none() {
        meta.model = ids.iter().find_map(|id| {
            let inputs = inputs_of(id)?;
            ["ckpt_name", "unet_name", "model_name"]
                .iter()
                .find_map(|k| inputs.get(*k).and_then(Value::as_str))
                .filter(|_| class_of(id).contains("Loader"))
                .map(str::to_string)
        });
    }
}

/// `["4", 0]`: the node a link points at.
fn link_target(value: &Value) -> Option<&str> {
    match value.as_array()?.as_slice() {
        [Value::String(node), Value::Number(_)] => Some(node),
        _ => None,
    }
}

fn number_through_links(value: &Value, nodes: &Map<String, Value>, depth: usize) -> Option<f64> {
    if let Some(n) = value.as_f64() {
        return Some(n);
    }
    let target = link_target(value)?;
    if depth >= MAX_LINK_DEPTH {
        return None;
    }
    let inputs = nodes.get(target)?.get("inputs")?.as_object()?;
    [
        "seed",
        "noise_seed",
        "value",
        "int",
        "number",
        "steps",
        "cfg",
    ]
    .iter()
    .find_map(|k| inputs.get(*k))
    .and_then(|v| number_through_links(v, nodes, depth + 1))
}

fn text_through_links(value: &Value, nodes: &Map<String, Value>, depth: usize) -> Option<String> {
    if let Some(s) = value.as_str() {
        return Some(s.to_string());
    }
    let target = link_target(value)?;
    text_of_node(target, nodes, depth + 1)
}

/// The prompt text a node holds or leads to: text encoders hold it; combiners and
/// conditioning tweaks lead to it through their first conditioning input.
fn text_of_node(id: &str, nodes: &Map<String, Value>, depth: usize) -> Option<String> {
    if depth > MAX_LINK_DEPTH {
        return None;
    }
    let inputs = nodes.get(id)?.get("inputs")?.as_object()?;
    for key in [
        "text", "text_g", "string", "prompt", "value", "text_l", "clip_l", "t5xxl",
    ] {
        if let Some(text) = inputs
            .get(key)
            .and_then(|v| text_through_links(v, nodes, depth))
        {
            return Some(text);
        }
    }
    for key in [
        "conditioning",
        "conditioning_1",
        "conditioning_to",
        "positive",
    ] {
        if let Some(text) = inputs
            .get(key)
            .and_then(|v| text_through_links(v, nodes, depth))
        {
            return Some(text);
        }
    }
    None
}

/// A1111 / Forge `parameters`: the positive prompt, `Negative prompt: …`, then one line of
/// `Key: value, …` settings.
pub(crate) fn apply_a1111_parameters(text: &str, meta: &mut GalleryMeta) {
    let (prompts, settings) = match text.rfind("\nSteps: ") {
        Some(at) => (&text[..at], &text[at + 1..]),
        None => (text, ""),
    };
    let (positive, negative) = match prompts.find("\nNegative prompt:") {
        Some(at) => (
            &prompts[..at],
            Some(prompts[at + "\nNegative prompt:".len()..].trim()),
        ),
        None => (prompts, None),
    };
    let positive = positive.trim();
    if !positive.is_empty() {
        meta.positive.get_or_insert_with(|| positive.to_string());
    }
    if let Some(negative) = negative.filter(|n| !n.is_empty()) {
        meta.negative.get_or_insert_with(|| negative.to_string());
    }
    for pair in settings.split(", ") {
        let Some((key, value)) = pair.split_once(": ") else {
            continue;
        };
        let value = value.trim();
        match key.trim() {
            "Seed" => meta.seed = meta.seed.or(value.parse().ok()),
            "Steps" => meta.steps = meta.steps.or(value.parse().ok()),
            "CFG scale" => meta.cfg = meta.cfg.or(value.parse().ok()),
            "Sampler" => {
                meta.sampler.get_or_insert_with(|| value.to_string());
            }
            "Schedule type" => {
                meta.scheduler.get_or_insert_with(|| value.to_string());
            }
            "Model" => {
                meta.model.get_or_insert_with(|| value.to_string());
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sampler_links_lead_to_prompts_seed_and_model() {
        let prompt = json!({
            "3": {"class_type": "KSampler", "inputs": {
                "seed": 156680208700286u64, "steps": 20, "cfg": 8.0, "sampler_name": "euler",
                "scheduler": "normal", "model": ["4", 0], "positive": ["6", 0],
                "negative": ["7", 0], "latent_image": ["5", 0]}},
            "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sdxl.safetensors"}},
            "6": {"class_type": "CLIPTextEncode", "inputs": {"text": ["10", 0], "clip": ["4", 1]}},
            "10": {"class_type": "PrimitiveString", "inputs": {"value": "a red fox"}},
            "7": {"class_type": "ConditioningCombine", "inputs": {
                "conditioning_1": ["8", 0], "conditioning_2": ["9", 0]}},
            "8": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["4", 1]}},
            "9": {"class_type": "CLIPTextEncode", "inputs": {"text": "ugly", "clip": ["4", 1]}}
        });
        let mut meta = GalleryMeta::default();
        apply_api_prompt(&prompt, &mut meta);
        assert_eq!(meta.positive.as_deref(), Some("a red fox"));
        assert_eq!(meta.negative.as_deref(), Some("blurry"));
        assert_eq!(meta.seed, Some(156680208700286));
        assert_eq!(meta.steps, Some(20));
        assert_eq!(meta.cfg, Some(8.0));
        assert_eq!(meta.sampler.as_deref(), Some("euler"));
        assert_eq!(meta.model.as_deref(), Some("sdxl.safetensors"));
    }

    #[test]
    fn custom_sampler_guider_and_noise_seed_are_followed() {
        let prompt = json!({
            "13": {"class_type": "SamplerCustomAdvanced", "inputs": {
                "noise": ["25", 0], "guider": ["22", 0]}},
            "25": {"class_type": "RandomNoise", "inputs": {"noise_seed": 42}},
            "22": {"class_type": "BasicGuider", "inputs": {"model": ["12", 0], "conditioning": ["6", 0]}},
            "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat"}},
            "12": {"class_type": "UNETLoader", "inputs": {"unet_name": "flux1-dev.safetensors"}}
        });
        let mut meta = GalleryMeta::default();
        apply_api_prompt(&prompt, &mut meta);
        assert_eq!(meta.positive.as_deref(), Some("a cat"));
        assert_eq!(meta.model.as_deref(), Some("flux1-dev.safetensors"));
        assert_eq!(meta.seed, Some(42));
    }

    #[test]
    fn a1111_parameters_are_split() {
        let mut meta = GalleryMeta::default();
        apply_a1111_parameters(
            "a house by the sea\nNegative prompt: fog, rain\nSteps: 30, Sampler: DPM++ 2M, CFG scale: 6.5, Seed: 1234, Model: dreamshaper",
            &mut meta,
        );
        assert_eq!(meta.positive.as_deref(), Some("a house by the sea"));
        assert_eq!(meta.negative.as_deref(), Some("fog, rain"));
        assert_eq!(meta.steps, Some(30));
        assert_eq!(meta.cfg, Some(6.5));
        assert_eq!(meta.seed, Some(1234));
        assert_eq!(meta.sampler.as_deref(), Some("DPM++ 2M"));
        assert_eq!(meta.model.as_deref(), Some("dreamshaper"));
    }
}
