//! A typed view of ComfyUI's `GET /object_info`.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::ConvertError;

/// The node classes a ComfyUI knows, from its `GET /object_info` body.
#[derive(Clone, Debug, Default)]
pub struct ObjectInfo {
    classes: BTreeMap<String, NodeClass>,
}

/// One node class.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeClass {
    /// The class name (`KSampler`): the `class_type` of a prompt node.
    pub name: String,
    /// What the editor shows (`Load Checkpoint`); the default node title.
    pub display_name: Option<String>,
    /// The menu category.
    pub category: Option<String>,
    /// Whether the node is an output (a prompt needs at least one).
    pub output_node: bool,
    /// Required then optional inputs, each group in `input_order` (hidden inputs left out).
    pub inputs: Vec<InputSpec>,
    /// Names of the hidden inputs (`prompt`, `extra_pnginfo`, …).
    pub hidden: Vec<String>,
    /// Output types, by slot.
    pub outputs: Vec<String>,
    /// Output names, by slot.
    pub output_names: Vec<String>,
}

/// One input of a node class.
#[derive(Clone, Debug, PartialEq)]
pub struct InputSpec {
    /// The input name.
    pub name: String,
    /// Declared under `optional`.
    pub optional: bool,
    /// `INT`, `FLOAT`, `STRING`, `BOOLEAN`, `COMBO` (a list of choices), or a socket type such
    /// as `MODEL` (also `*` and comma-separated lists).
    pub type_name: String,
    /// The allowed values of a `COMBO`.
    pub combo: Option<Vec<Value>>,
    /// The spec's options object (`default`, `min`, `max`, `control_after_generate`, …).
    pub options: Map<String, Value>,
}

impl InputSpec {
    fn parse(name: &str, optional: bool, spec: &Value) -> InputSpec {
        let (first, options) = match spec {
            Value::Array(parts) => (
                parts.first().cloned().unwrap_or(Value::Null),
                parts
                    .get(1)
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default(),
            ),
            other => (other.clone(), Map::new()),
        };
        let (type_name, combo) = match first {
            Value::Array(values) => ("COMBO".to_string(), Some(values)),
            Value::String(t) if t == "COMBO" => {
                let values = options
                    .get("options")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                (t, Some(values))
            }
            Value::String(t) => (t, None),
            _ => ("*".to_string(), None),
        };
        InputSpec {
            name: name.to_string(),
            optional,
            type_name,
            combo,
            options,
        }
    }

    /// Whether the value is a choice from a list.
    pub fn is_combo(&self) -> bool {
        self.combo.is_some()
    }

    /// An option that is a boolean (`forceInput`, `image_upload`, …); `None` when absent.
    pub fn flag(&self, key: &str) -> Option<bool> {
        self.options.get(key).and_then(Value::as_bool)
    }

    /// Declared with `forceInput`: a socket even though its type is a widget type.
    pub fn force_input(&self) -> bool {
        self.flag("forceInput") == Some(true)
    }

    /// The `default` option.
    pub fn default_value(&self) -> Option<&Value> {
        self.options.get("default")
    }

    /// The `min` option.
    pub fn min(&self) -> Option<f64> {
        self.options.get("min").and_then(Value::as_f64)
    }

    /// The `max` option.
    pub fn max(&self) -> Option<f64> {
        self.options.get("max").and_then(Value::as_f64)
    }

    /// Whether the frontend draws a widget for it (rather than only a socket): the primitive
    /// widget types. A frontend also has a few custom widget types; see the converter.
    pub fn is_primitive_widget(&self) -> bool {
        matches!(
            self.type_name.as_str(),
            "INT" | "FLOAT" | "STRING" | "BOOLEAN" | "COMBO"
        )
    }
}

impl NodeClass {
    fn parse(name: &str, info: &Value) -> NodeClass {
        let input = info.get("input");
        let order = info.get("input_order");
        let mut inputs = Vec::new();
        for (section, optional) in [("required", false), ("optional", true)] {
            let Some(specs) = input
                .and_then(|i| i.get(section))
                .and_then(Value::as_object)
            else {
                continue;
            };
            for name in ordered_names(specs, order.and_then(|o| o.get(section))) {
                inputs.push(InputSpec::parse(&name, optional, &specs[&name]));
            }
        }
        let hidden = input
            .and_then(|i| i.get("hidden"))
            .and_then(Value::as_object)
            .map(|h| ordered_names(h, order.and_then(|o| o.get("hidden"))))
            .unwrap_or_default();
        let strings = |key: &str| -> Vec<String> {
            info.get(key)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .map(|v| match v {
                            Value::String(s) => s.clone(),
                            // A combo output is declared as its list of choices.
                            Value::Array(_) => "COMBO".to_string(),
                            other => other.to_string(),
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        NodeClass {
            name: name.to_string(),
            display_name: info
                .get("display_name")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            category: info
                .get("category")
                .and_then(Value::as_str)
                .map(str::to_string),
            output_node: info
                .get("output_node")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            inputs,
            hidden,
            outputs: strings("output"),
            output_names: strings("output_name"),
        }
    }

    /// The title a new node of this class gets: its display name, else its name.
    pub fn title(&self) -> &str {
        self.display_name.as_deref().unwrap_or(&self.name)
    }

    /// The input with this name.
    pub fn input(&self, name: &str) -> Option<&InputSpec> {
        self.inputs.iter().find(|i| i.name == name)
    }
}

/// `input_order` first (names that exist), then any other name (in map order).
fn ordered_names(specs: &Map<String, Value>, order: Option<&Value>) -> Vec<String> {
    let mut names: Vec<String> = order
        .and_then(Value::as_array)
        .map(|o| {
            o.iter()
                .filter_map(Value::as_str)
                .filter(|n| specs.contains_key(*n))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    for name in specs.keys() {
        if !names.iter().any(|n| n == name) {
            names.push(name.clone());
        }
    }
    names
}

impl ObjectInfo {
    /// Reads a `GET /object_info` body (class name → class info).
    pub fn from_json(value: Value) -> Result<Self, ConvertError> {
        let Value::Object(classes) = value else {
            return Err(ConvertError::Malformed(
                "/object_info must be a JSON object of class name → class".into(),
            ));
        };
        Ok(ObjectInfo {
            classes: classes
                .iter()
                .filter(|(_, info)| info.is_object())
                .map(|(name, info)| (name.clone(), NodeClass::parse(name, info)))
                .collect(),
        })
    }

    /// The class with this name.
    pub fn class(&self, name: &str) -> Option<&NodeClass> {
        self.classes.get(name)
    }

    /// Whether this ComfyUI has the class.
    pub fn contains(&self, name: &str) -> bool {
        self.classes.contains_key(name)
    }

    /// All class names.
    pub fn class_names(&self) -> impl Iterator<Item = &str> {
        self.classes.keys().map(String::as_str)
    }

    /// How many classes.
    pub fn len(&self) -> usize {
        self.classes.len()
    }

    /// Whether there is no class at all.
    pub fn is_empty(&self) -> bool {
        self.classes.is_empty()
    }

    /// A class's input names: required then optional, in `input_order`.
    pub fn input_order(&self, class: &str) -> Option<Vec<&str>> {
        Some(
            self.class(class)?
                .inputs
                .iter()
                .map(|i| i.name.as_str())
                .collect(),
        )
    }

    /// One input's spec.
    pub fn input_spec(&self, class: &str, input: &str) -> Option<&InputSpec> {
        self.class(class)?.input(input)
    }

    /// A class's output types, by slot.
    pub fn output_types(&self, class: &str) -> Option<&[String]> {
        Some(&self.class(class)?.outputs)
    }

    /// The allowed values of a combo input (model lists are the files ComfyUI found).
    pub fn combo_values(&self, class: &str, input: &str) -> Option<&[Value]> {
        self.input_spec(class, input)?.combo.as_deref()
    }

    /// A class's display name.
    pub fn display_name(&self, class: &str) -> Option<&str> {
        self.class(class)?.display_name.as_deref()
    }
}
