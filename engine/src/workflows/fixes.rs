//! The small mistakes of a workflow made on another machine, found against this ComfyUI's
//! `/object_info`: a model file in another sub-folder or in another case, a choice this
//! ComfyUI names slightly differently, a number outside its widget's range. Each is either one
//! obvious [`Fix`] or a [`Question`] — never a guess — and fixes are applied to a copy.

use serde_json::Value;

use crate::comfy::convert::{
    detect_format, model_folder, set_widget_value, ApiPrompt, InputSpec, ObjectInfo, WorkflowFormat,
};

/// One input to change, with why.
#[derive(Clone, Debug, PartialEq)]
pub struct Fix {
    pub node_id: String,
    pub input: String,
    pub from: Value,
    pub to: Value,
    /// `KSampler (node 3) · sampler_name: "Euler" → "euler" (the same choice, named as here)`.
    pub sentence: String,
}

/// An input with more than one plausible answer, or none: the user picks.
#[derive(Clone, Debug, PartialEq)]
pub struct Question {
    pub node_id: String,
    pub input: String,
    pub value: Value,
    pub choices: Vec<String>,
    pub sentence: String,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Finding {
    Fix(Fix),
    Question(Question),
}

impl Finding {
    /// As a problem of the workflow, before anything is changed.
    pub fn problem(&self) -> String {
        match self {
            Finding::Fix(f) => format!("{} — \"Make runnable\" changes this on a copy", f.sentence),
            Finding::Question(q) => q.sentence.clone(),
        }
    }

    /// `(node, input)`: what it is about.
    pub fn key(&self) -> (&str, &str) {
        match self {
            Finding::Fix(f) => (&f.node_id, &f.input),
            Finding::Question(q) => (&q.node_id, &q.input),
        }
    }
}

/// Choices shown for a question whose value matches none (the list can be long).
const MAX_CHOICES: usize = 30;

/// `Euler a`, `euler_a` and `EULER-A` all read `eulera`.
fn normalised(choice: &str) -> String {
    choice
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

fn base_name(path: &str) -> &str {
    path.rsplit(['/', '\\']).next().unwrap_or(path)
}

fn title_of(prompt: &ApiPrompt, object_info: &ObjectInfo, id: &str, class_type: &str) -> String {
    prompt
        .get(id)
        .and_then(|n| n.title())
        .or_else(|| object_info.class(class_type).map(|c| c.title()))
        .filter(|t| !t.is_empty())
        .unwrap_or(class_type)
        .to_string()
}

/// The findings of `prompt`, node by node. Model files with no match at all are left to the
/// caller (they are missing, not misnamed); so are inputs fed by links and nodes of classes
/// this ComfyUI lacks.
pub fn find(prompt: &ApiPrompt, object_info: &ObjectInfo) -> Vec<Finding> {
    let mut ids: Vec<&String> = prompt.nodes.keys().collect();
    ids.sort_by(|a, b| crate::comfy::convert::id_order(a, b));
    let mut findings = Vec::new();
    for id in ids {
        let node = &prompt.nodes[id];
        let Some(class) = object_info.class(&node.class_type) else {
            continue;
        };
        let title = title_of(prompt, object_info, id, &node.class_type);
        for (name, value) in &node.inputs {
            if value.is_array() {
                continue;
            }
            let Some(spec) = class.input(name) else {
                continue;
            };
            let at = format!("{title} (node {id}) · {name}");
            let found = match &spec.combo {
                Some(choices) => combo_finding(&node.class_type, name, value, choices, &at),
                None => range_finding(spec, value, &at),
            };
            if let Some(mut finding) = found {
                match &mut finding {
                    Finding::Fix(f) => (f.node_id, f.input) = (id.clone(), name.clone()),
                    Finding::Question(q) => (q.node_id, q.input) = (id.clone(), name.clone()),
                }
                findings.push(finding);
            }
        }
    }
    findings
}

fn combo_finding(
    class_type: &str,
    input: &str,
    value: &Value,
    choices: &[Value],
    at: &str,
) -> Option<Finding> {
    let wanted = value.as_str()?;
    let choices: Vec<&str> = choices.iter().filter_map(Value::as_str).collect();
    if choices.is_empty()
        || choices
            .iter()
            .any(|c| c.replace('\\', "/") == wanted.replace('\\', "/"))
    {
        return None;
    }
    let fix = |to: &str, why: &str| {
        Finding::Fix(Fix {
            node_id: String::new(),
            input: String::new(),
            from: value.clone(),
            to: Value::String(to.to_string()),
            sentence: format!("{at}: {wanted:?} → {to:?} ({why})"),
        })
    };
    let question = |choices: Vec<&str>, what: &str| {
        Finding::Question(Question {
            node_id: String::new(),
            input: String::new(),
            value: value.clone(),
            choices: choices.iter().map(|c| c.to_string()).collect(),
            sentence: format!("{at}: {wanted:?} {what}"),
        })
    };
    if model_folder(class_type, input).is_some() {
        let same_case: Vec<&str> = choices
            .iter()
            .copied()
            .filter(|c| c.eq_ignore_ascii_case(wanted))
            .collect();
        if let [one] = same_case[..] {
            return Some(fix(one, "the same file, in another case"));
        }
        let name = base_name(wanted);
        let same_name: Vec<&str> = choices
            .iter()
            .copied()
            .filter(|c| base_name(c).eq_ignore_ascii_case(name))
            .collect();
        return match same_name[..] {
            [] => None,
            [one] => Some(fix(one, "the same file, in another sub-folder")),
            _ => Some(question(
                same_name,
                "is in several sub-folders here: which one is meant?",
            )),
        };
    }
    let key = normalised(wanted);
    let matching: Vec<&str> = choices
        .iter()
        .copied()
        .filter(|c| normalised(c) == key)
        .collect();
    match matching[..] {
        [one] => Some(fix(one, "the same choice, named as this ComfyUI names it")),
        [] => Some(question(
            choices.into_iter().take(MAX_CHOICES).collect(),
            "is not a choice of this ComfyUI: pick one",
        )),
        _ => Some(question(matching, "matches several choices here: pick one")),
    }
}

fn range_finding(spec: &InputSpec, value: &Value, at: &str) -> Option<Finding> {
    if !matches!(spec.type_name.as_str(), "INT" | "FLOAT") {
        return None;
    }
    let number = value.as_f64()?;
    let (bound, word) = match (spec.min(), spec.max()) {
        (Some(min), _) if number < min => (min, "minimum"),
        (_, Some(max)) if number > max => (max, "maximum"),
        _ => return None,
    };
    let to = if spec.type_name == "INT" {
        Value::from(bound as i64)
    } else {
        serde_json::Number::from_f64(bound).map(Value::Number)?
    };
    Some(Finding::Fix(Fix {
        node_id: String::new(),
        input: String::new(),
        from: value.clone(),
        sentence: format!("{at}: {value} → {to} (clamped to the {word})"),
        to,
    }))
}

/// Applies `fix` to a workflow in either format. `Err` says why it cannot be applied here
/// (a node inside a sub-graph, a value a primitive node feeds).
pub fn apply(workflow: &mut Value, object_info: &ObjectInfo, fix: &Fix) -> Result<(), String> {
    match detect_format(workflow) {
        WorkflowFormat::Api => {
            let inputs = workflow
                .get_mut(&fix.node_id)
                .and_then(|n| n.get_mut("inputs"))
                .and_then(Value::as_object_mut)
                .ok_or_else(|| format!("the workflow has no node {}", fix.node_id))?;
            inputs.insert(fix.input.clone(), fix.to.clone());
            Ok(())
        }
        WorkflowFormat::Ui => {
            if fix.node_id.contains(':') {
                return Err(format!(
                    "node {} is inside a sub-graph: change {} there in ComfyUI's editor",
                    fix.node_id, fix.input
                ));
            }
            let node = workflow
                .get_mut("nodes")
                .and_then(Value::as_array_mut)
                .and_then(|nodes| {
                    nodes.iter_mut().find(|n| {
                        n.get("id").is_some_and(|id| match id {
                            Value::String(s) => *s == fix.node_id,
                            other => {
                                other.as_u64().is_some()
                                    && fix.node_id.parse::<u64>().ok() == other.as_u64()
                            }
                        })
                    })
                })
                .ok_or_else(|| format!("the workflow has no node {}", fix.node_id))?;
            let class_type = node
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let class = object_info
                .class(&class_type)
                .ok_or_else(|| format!("ComfyUI has no node type {class_type}"))?;
            if set_widget_value(node, class, &fix.input, fix.to.clone()) {
                Ok(())
            } else {
                Err(format!(
                    "node {} keeps no value for {} (another node feeds it): change it in \
                     ComfyUI's editor",
                    fix.node_id, fix.input
                ))
            }
        }
        WorkflowFormat::Unknown => Err("this is not a workflow".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn info() -> ObjectInfo {
        ObjectInfo::from_json(json!({
            "CheckpointLoaderSimple": {
                "input": {"required": {"ckpt_name": [["sd15/Model.safetensors", "flux/a.safetensors", "b/a.safetensors", "Case.safetensors"], {}]}},
                "input_order": {"required": ["ckpt_name"]},
                "output": ["MODEL", "CLIP", "VAE"], "output_name": ["MODEL", "CLIP", "VAE"],
                "name": "CheckpointLoaderSimple", "display_name": "Load Checkpoint"
            },
            "KSampler": {
                "input": {"required": {
                    "model": ["MODEL"],
                    "seed": ["INT", {"default": 0, "min": 0, "max": 18446744073709551615u64, "control_after_generate": true}],
                    "steps": ["INT", {"default": 20, "min": 1, "max": 100}],
                    "cfg": ["FLOAT", {"default": 8.0, "min": 0.0, "max": 30.0}],
                    "sampler_name": [["euler", "euler_ancestral", "dpmpp_2m"], {}],
                    "scheduler": [["normal", "karras", "Karras_"], {}]
                }},
                "input_order": {"required": ["model", "seed", "steps", "cfg", "sampler_name", "scheduler"]},
                "output": ["LATENT"], "output_name": ["LATENT"],
                "name": "KSampler", "display_name": "KSampler"
            }
        }))
        .unwrap()
    }

    fn prompt(ckpt: &str, sampler: &str, scheduler: &str, steps: i64, cfg: f64) -> Value {
        json!({
            "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
            "3": {"class_type": "KSampler", "_meta": {"title": "Sampler"}, "inputs": {
                "model": ["4", 0], "seed": 5, "steps": steps, "cfg": cfg,
                "sampler_name": sampler, "scheduler": scheduler
            }}
        })
    }

    fn findings(workflow: &Value) -> Vec<Finding> {
        find(&ApiPrompt::from_value(workflow.clone()).unwrap(), &info())
    }

    fn fix_to(f: &Finding) -> (&str, &str, &Value) {
        match f {
            Finding::Fix(f) => (&f.node_id, &f.input, &f.to),
            Finding::Question(q) => panic!("a question, not a fix: {}", q.sentence),
        }
    }

    #[test]
    fn one_obvious_answer_is_a_fix_and_says_what_changed() {
        let found = findings(&prompt(
            "Model.safetensors",
            "Euler Ancestral",
            "normal",
            500,
            -2.0,
        ));
        assert_eq!(found.len(), 4, "{found:?}");
        assert_eq!(found[0].key(), ("3", "cfg"));
        assert_eq!(fix_to(&found[0]).2, &json!(0.0));
        assert_eq!(
            fix_to(&found[1]),
            ("3", "sampler_name", &json!("euler_ancestral"))
        );
        assert_eq!(fix_to(&found[2]), ("3", "steps", &json!(100)));
        assert_eq!(
            fix_to(&found[3]),
            ("4", "ckpt_name", &json!("sd15/Model.safetensors"))
        );
        let Finding::Fix(steps) = &found[2] else {
            unreachable!()
        };
        assert_eq!(
            steps.sentence,
            "Sampler (node 3) · steps: 500 → 100 (clamped to the maximum)"
        );
        let Finding::Fix(ckpt) = &found[3] else {
            unreachable!()
        };
        assert!(
            ckpt.sentence.contains("another sub-folder"),
            "{}",
            ckpt.sentence
        );
        // Another case of the same path.
        let found = findings(&prompt("case.SAFETENSORS", "euler", "normal", 20, 8.0));
        assert_eq!(fix_to(&found[0]).2, &json!("Case.safetensors"));
    }

    #[test]
    fn several_or_no_answers_are_questions_and_missing_files_are_left_alone() {
        let found = findings(&prompt("a.safetensors", "heun", "KARRAS", 20, 8.0));
        let questions: Vec<&Question> = found
            .iter()
            .map(|f| match f {
                Finding::Question(q) => q,
                Finding::Fix(f) => panic!("a guess: {}", f.sentence),
            })
            .collect();
        assert_eq!(questions.len(), 3, "{found:?}");
        assert_eq!(questions[0].input, "sampler_name");
        assert_eq!(
            questions[0].choices,
            ["euler", "euler_ancestral", "dpmpp_2m"]
        );
        assert!(questions[0].sentence.contains("not a choice"));
        assert_eq!(questions[1].choices, ["karras", "Karras_"]);
        assert_eq!(
            questions[2].choices,
            ["flux/a.safetensors", "b/a.safetensors"]
        );
        // A file with no match anywhere is missing, not misnamed; links are not inputs.
        assert!(findings(&prompt("nowhere.safetensors", "euler", "normal", 20, 8.0)).is_empty());
    }

    #[test]
    fn fixes_apply_to_both_formats_and_leave_other_values_alone() {
        let info = info();
        let fix = |node: &str, input: &str, to: Value| Fix {
            node_id: node.into(),
            input: input.into(),
            from: Value::Null,
            to,
            sentence: String::new(),
        };
        let mut api = prompt("x", "Euler", "normal", 500, 8.0);
        apply(&mut api, &info, &fix("3", "steps", json!(100))).unwrap();
        assert_eq!(api["3"]["inputs"]["steps"], 100);
        assert_eq!(api["3"]["inputs"]["sampler_name"], "Euler");

        // UI format: KSampler's widgets are seed, control_after_generate, steps, cfg, …
        let mut ui = json!({
            "nodes": [
                {"id": 3, "type": "KSampler", "widgets_values": [5, "fixed", 500, 8, "Euler", "normal"]},
                {"id": 4, "type": "CheckpointLoaderSimple", "widgets_values": ["Model.safetensors"]}
            ],
            "links": []
        });
        apply(&mut ui, &info, &fix("3", "steps", json!(100))).unwrap();
        apply(&mut ui, &info, &fix("3", "sampler_name", json!("euler"))).unwrap();
        apply(
            &mut ui,
            &info,
            &fix("4", "ckpt_name", json!("sd15/Model.safetensors")),
        )
        .unwrap();
        assert_eq!(
            ui["nodes"][0]["widgets_values"],
            json!([5, "fixed", 100, 8, "euler", "normal"])
        );
        assert_eq!(
            ui["nodes"][1]["widgets_values"],
            json!(["sd15/Model.safetensors"])
        );
        let inside = apply(&mut ui, &info, &fix("10:3", "steps", json!(1))).unwrap_err();
        assert!(inside.contains("sub-graph"), "{inside}");
        assert!(apply(&mut ui, &info, &fix("9", "steps", json!(1)))
            .unwrap_err()
            .contains("no node 9"));
    }
}
