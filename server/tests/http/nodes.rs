//! The custom-node routes through the router: a deck that does not run ComfyUI answers every
//! one of them 400 with the reason (the packs themselves are tested in the engine's suite and
//! through the CLI against the fake ComfyUI).

use axum::body::Body;
use axum::http::{header, StatusCode};
use serde_json::json;

use crate::common::harness;
use crate::router::{self, post_json, send};

#[tokio::test(flavor = "multi_thread")]
async fn without_comfyui_dir_the_node_routes_say_why() {
    let h = harness(None).await;
    let list = router::get("/api/nodes")
        .header(header::ACCEPT, "application/json")
        .body(Body::empty())
        .unwrap();
    let requests = vec![
        list,
        post_json(
            "/api/nodes/install",
            &json!({"repo": "https://github.com/a/b"}),
        ),
        post_json("/api/nodes/update", &json!({"id": "b"})),
        post_json("/api/nodes/disable", &json!({"id": "b"})),
        post_json("/api/nodes/enable", &json!({"id": "b"})),
        post_json("/api/nodes/remove", &json!({"id": "b"})),
    ];
    for request in requests {
        let what = format!("{} {}", request.method(), request.uri());
        let reply = send(&h.app, request).await;

        let body = reply.json();
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{what}: {body}");
        assert_eq!(body["kind"], json!("invalid"), "{what}");
        assert!(
            body["message"].as_str().unwrap().contains("COMFYUI_DIR"),
            "{what}: {body}"
        );
    }
}
