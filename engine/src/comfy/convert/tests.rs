//! Unit tests of the converter on small hand-made workflows (the recorded frontend pairs are
//! in `engine/tests/suite/convert.rs`).

use serde_json::{json, Value};

use super::*;

/// A few classes, shaped like `/object_info`.
fn info() -> ObjectInfo {
    ObjectInfo::from_json(json!({
        "Source": {
            "input": {"required": {}},
            "input_order": {"required": []},
            "output": ["IMAGE", "MASK"],
            "display_name": "Source"
        },
        "Filter": {
            "input": {"required": {
                "mask": ["MASK"],
                "image": ["IMAGE"],
                "strength": ["FLOAT", {"default": 1.0}]
            }},
            "input_order": {"required": ["mask", "image", "strength"]},
            "output": ["IMAGE"],
            "display_name": "Filter"
        },
        "Sink": {
            "input": {
                "required": {
                    "image": ["IMAGE"],
                    "seed": ["INT", {"default": 0}],
                    "prefix": ["STRING", {"default": "out"}]
                },
                "optional": {
                    "steps": ["INT", {"forceInput": true}],
                    "points": ["STRING", {"default": ""}]
                }
            },
            "input_order": {"required": ["image", "seed", "prefix"], "optional": ["steps", "points"]},
            "output": [],
            "output_node": true,
            "display_name": "Sink"
        }
    }))
    .unwrap()
}

fn convert(workflow: Value) -> Result<Value, ConvertError> {
    ui_to_api_seeded(&workflow, &info(), 1).map(|p| p.to_value())
}

fn node(id: i64, ty: &str, inputs: Value, outputs: Value, widgets: Value) -> Value {
    json!({"id": id, "type": ty, "mode": 0, "inputs": inputs, "outputs": outputs, "widgets_values": widgets})
}

#[test]
fn seed_by_name_gets_a_control_value_and_force_input_is_a_socket() {
    let wf = json!({
        "nodes": [
            node(1, "Source", json!([]), json!([{"name": "IMAGE", "type": "IMAGE", "links": [1]}]), json!([])),
            node(2, "Sink", json!([{"name": "image", "type": "IMAGE", "link": 1}]), json!([]),
                 json!([7, "fixed", "pre", "p"]))
        ],
        "links": [[1, 1, 0, 2, 0, "IMAGE"]]
    });
    let out = convert(wf).unwrap();
    assert_eq!(
        out["2"]["inputs"],
        json!({"image": ["1", 0], "seed": 7, "prefix": "pre", "points": "p"})
    );
    assert_eq!(out["2"]["_meta"]["title"], "Sink");
}

#[test]
fn old_values_of_force_input_sockets_are_skipped() {
    // Saved when `steps` still was a widget: seed, control, prefix, steps, points.
    let wf = json!({
        "nodes": [node(2, "Sink", json!([]), json!([]), json!([7, "fixed", "pre", 30, "p"]))],
        "links": []
    });
    let out = convert(wf).unwrap();
    assert_eq!(
        out["2"]["inputs"],
        json!({"seed": 7, "prefix": "pre", "points": "p"})
    );
}

#[test]
fn array_values_are_wrapped_and_missing_values_take_defaults() {
    let wf = json!({
        "nodes": [node(2, "Sink", json!([]), json!([]), json!([[1, 2], "fixed"]))],
        "links": []
    });
    let out = convert(wf).unwrap();
    assert_eq!(
        out["2"]["inputs"],
        json!({"seed": {"__value__": [1, 2]}, "prefix": "out", "points": ""})
    );
}

#[test]
fn bypass_takes_the_input_of_the_wanted_type() {
    // Filter's output 0 is IMAGE; its input 0 is a MASK, so the bypass uses `image` (slot 1).
    let wf = json!({
        "nodes": [
            node(1, "Source", json!([]), json!([{"name": "IMAGE", "type": "IMAGE", "links": [1]},
                                                {"name": "MASK", "type": "MASK", "links": [2]}]), json!([])),
            {"id": 2, "type": "Filter", "mode": 4,
             "inputs": [{"name": "mask", "type": "MASK", "link": 2}, {"name": "image", "type": "IMAGE", "link": 1}],
             "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [3]}], "widgets_values": [0.5]},
            node(3, "Sink", json!([{"name": "image", "type": "IMAGE", "link": 3}]), json!([]), json!([1, "fixed", "x", ""]))
        ],
        "links": [[1, 1, 0, 2, 1, "IMAGE"], [2, 1, 1, 2, 0, "MASK"], [3, 2, 0, 3, 0, "IMAGE"]]
    });
    let out = convert(wf).unwrap();
    assert!(out.get("2").is_none());
    assert_eq!(out["3"]["inputs"]["image"], json!(["1", 0]));
}

#[test]
fn reroute_chains_are_followed_and_loops_are_errors() {
    let reroute = |id: i64, link_in: i64, link_out: i64| {
        json!({"id": id, "type": "Reroute", "mode": 0,
               "inputs": [{"name": "", "type": "*", "link": link_in}],
               "outputs": [{"name": "", "type": "IMAGE", "links": [link_out]}]})
    };
    let wf = json!({
        "nodes": [
            node(1, "Source", json!([]), json!([{"name": "IMAGE", "type": "IMAGE", "links": [1]}]), json!([])),
            reroute(5, 1, 2),
            reroute(6, 2, 3),
            node(3, "Sink", json!([{"name": "image", "type": "IMAGE", "link": 3}]), json!([]), json!([1, "fixed", "x", ""]))
        ],
        "links": [[1, 1, 0, 5, 0, "*"], [2, 5, 0, 6, 0, "*"], [3, 6, 0, 3, 0, "IMAGE"]]
    });
    assert_eq!(
        convert(wf).unwrap()["3"]["inputs"]["image"],
        json!(["1", 0])
    );

    let looped = json!({
        "nodes": [
            reroute(5, 2, 1),
            reroute(6, 1, 2),
            node(3, "Sink", json!([{"name": "image", "type": "IMAGE", "link": 3}]), json!([]), json!([1, "fixed", "x", ""]))
        ],
        "links": [[1, 5, 0, 6, 0, "*"], [2, 6, 0, 5, 0, "*"], [3, 6, 0, 3, 0, "IMAGE"]]
    });
    let err = convert(looped).unwrap_err();
    assert!(matches!(err, ConvertError::Cycle { .. }), "{err}");
}

/// A subgraph around a Sink whose `prefix` widget is promoted onto the instance, and whose
/// image comes straight through from the instance's input.
fn subgraph_workflow(instance_mode: i64, promoted: Value) -> Value {
    json!({
        "nodes": [
            node(1, "Source", json!([]), json!([{"name": "IMAGE", "type": "IMAGE", "links": [1]}]), json!([])),
            {"id": 7, "type": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", "mode": instance_mode,
             "inputs": [{"name": "image", "type": "IMAGE", "link": 1},
                        {"name": "prefix", "type": "STRING", "link": null, "widget": {"name": "prefix"}}],
             "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [2]}],
             "widgets_values": promoted},
            node(3, "Sink", json!([{"name": "image", "type": "IMAGE", "link": 2}]), json!([]), json!([1, "fixed", "outer", ""]))
        ],
        "links": [[1, 1, 0, 7, 0, "IMAGE"], [2, 7, 0, 3, 0, "IMAGE"]],
        "definitions": {"subgraphs": [{
            "id": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
            "inputs": [{"name": "image", "type": "IMAGE", "linkIds": [10, 12]},
                       {"name": "prefix", "type": "STRING", "linkIds": [11]}],
            "outputs": [{"name": "IMAGE", "type": "IMAGE", "linkIds": [13]}],
            "nodes": [
                node(2, "Sink", json!([{"name": "image", "type": "IMAGE", "link": 10},
                                       {"name": "prefix", "type": "STRING", "link": 11, "widget": {"name": "prefix"}}]),
                     json!([]), json!([5, "fixed", "inner", ""]))
            ],
            "links": [
                {"id": 10, "origin_id": -10, "origin_slot": 0, "target_id": 2, "target_slot": 0, "type": "IMAGE"},
                // The slot of `prefix` among the Sink's inputs as the frontend lays them out
                // (sockets, then widget sockets): image, steps, seed, prefix, points.
                {"id": 11, "origin_id": -10, "origin_slot": 1, "target_id": 2, "target_slot": 3, "type": "STRING"},
                {"id": 13, "origin_id": -10, "origin_slot": 0, "target_id": -20, "target_slot": 0, "type": "IMAGE"}
            ]
        }]}
    })
}

#[test]
fn promoted_widget_value_of_the_instance_reaches_the_inner_node() {
    let out = convert(subgraph_workflow(0, json!(["promoted"]))).unwrap();
    assert_eq!(out["7:2"]["inputs"]["prefix"], json!("promoted"));
    assert_eq!(out["7:2"]["inputs"]["image"], json!(["1", 0]));
    assert_eq!(out["7:2"]["inputs"]["seed"], json!(5));
    // The output comes straight from the subgraph's input.
    assert_eq!(out["3"]["inputs"]["image"], json!(["1", 0]));
    assert!(out.get("7").is_none());

    // Without a stored value the inner widget keeps its own.
    let out = convert(subgraph_workflow(0, json!([]))).unwrap();
    assert_eq!(out["7:2"]["inputs"]["prefix"], json!("inner"));
}

#[test]
fn instance_mode_does_not_reach_the_nodes_inside() {
    // Bypassed: its consumers get the matching input passed through, and the nodes inside
    // keep their own mode (frontend 1.27.10; the editor sets it when bypassing).
    let out = convert(subgraph_workflow(4, json!(["promoted"]))).unwrap();
    assert_eq!(out["7:2"]["inputs"]["prefix"], json!("promoted"), "{out}");
    assert_eq!(out["3"]["inputs"]["image"], json!(["1", 0]));

    // Muted: the output is still resolved inside.
    let out = convert(subgraph_workflow(2, json!(["promoted"]))).unwrap();
    assert!(out.get("7:2").is_some(), "{out}");
    assert_eq!(out["3"]["inputs"]["image"], json!(["1", 0]), "{out}");

    // Inner nodes muted or bypassed on their own are left out.
    let mut wf = subgraph_workflow(4, json!(["promoted"]));
    wf["definitions"]["subgraphs"][0]["nodes"][0]["mode"] = json!(4);
    let out = convert(wf).unwrap();
    assert!(out.get("7:2").is_none(), "{out}");
}

#[test]
fn primitive_updates_widgets_and_is_not_sent() {
    let wf = json!({
        "nodes": [
            {"id": 4, "type": "PrimitiveNode", "mode": 0, "inputs": [],
             "outputs": [{"name": "STRING", "type": "STRING", "links": [9]}],
             "widgets_values": ["from primitive"]},
            node(3, "Sink", json!([{"name": "prefix", "type": "STRING", "link": 9, "widget": {"name": "prefix"}}]),
                 json!([]), json!([1, "fixed", "stale", ""]))
        ],
        "links": [[9, 4, 0, 3, 2, "STRING"]]
    });
    let out = convert(wf).unwrap();
    assert_eq!(out["3"]["inputs"]["prefix"], json!("from primitive"));
    assert_eq!(out.as_object().unwrap().len(), 1);
}

#[test]
fn group_nodes_are_refused_with_advice() {
    let wf = json!({"nodes": [node(1, "workflow>My group", json!([]), json!([]), json!([]))], "links": []});
    let err = convert(wf).unwrap_err();
    assert!(matches!(err, ConvertError::GroupNode { .. }), "{err}");
    assert!(err.to_string().contains("subgraph"), "{err}");
    assert_eq!(err.node().unwrap().id, "1");
}

#[test]
fn widgets_values_as_an_object_are_read_by_name() {
    let wf = json!({
        "nodes": [node(2, "Sink", json!([]), json!([]), json!({"prefix": "named", "seed": 3}))],
        "links": []
    });
    let out = convert(wf).unwrap();
    assert_eq!(
        out["2"]["inputs"],
        json!({"seed": 3, "prefix": "named", "points": ""})
    );
}

#[test]
fn api_prompt_round_trips_unknown_keys() {
    let v = json!({"1": {"class_type": "Sink", "inputs": {"seed": 1}, "is_changed": ["x"],
                         "_meta": {"title": "T", "color": "red"}}});
    let prompt = ApiPrompt::from_value(v.clone()).unwrap();
    assert_eq!(prompt.get("1").unwrap().title(), Some("T"));
    assert_eq!(prompt.to_value(), v);
}
