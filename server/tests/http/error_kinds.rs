//! One error answer everywhere: for every kind of failure a real route that fails that way,
//! answering the kind's status and the same JSON body (`message`, `kind`), from server
//! functions and hand-written routes alike.

use crate::common::harness;
use crate::router::{self, post_json, send};

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use base64::Engine as _;
use engine::model::ErrorKind;
use serde_json::{json, Value};

/// The status and the JSON body of a request's answer.
async fn call(app: &Router, request: Request<Body>) -> (StatusCode, Value) {
    let reply = send(app, request).await;
    (reply.status, reply.json())
}

fn get(path: &str) -> Request<Body> {
    router::get(path)
        .header(header::ACCEPT, "application/json")
        .body(Body::empty())
        .unwrap()
}

fn import(name: &str) -> Request<Body> {
    let content = base64::engine::general_purpose::STANDARD.encode(
        json!({"1": {"class_type": "SaveImage", "inputs": {"filename_prefix": "x"}}}).to_string(),
    );
    post_json(
        "/api/workflows/import",
        &json!({"file_name": name, "content_base64": content}),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn every_error_kind_has_its_status_and_the_same_body() {
    let h = harness(None).await;
    let (status, _) = call(&h.app, import("taken.json")).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "importing the workflow the conflict needs"
    );
    let (status, _) = call(&h.app, import("renamed.json")).await;
    assert_eq!(status, StatusCode::OK);

    // (what fails, the request, its kind); ComfyUI's URL is a closed port.
    let table: Vec<(&str, Request<Body>, ErrorKind)> = vec![
        (
            "an unknown activity kind",
            get("/api/activity?kind=bogus"),
            ErrorKind::Invalid,
        ),
        (
            "a template deleted",
            post_json("/api/workflows/delete", &json!({"id": "template:x.json"})),
            ErrorKind::Forbidden,
        ),
        (
            "a token that does not exist",
            post_json("/api/tokens/revoke", &json!({"id": 424242})),
            ErrorKind::NotFound,
        ),
        (
            "a gallery file that does not exist (hand-written)",
            get("/api/gallery/file/missing.png"),
            ErrorKind::NotFound,
        ),
        (
            "a preview of no prompt (hand-written)",
            get("/api/comfy/preview/nope"),
            ErrorKind::NotFound,
        ),
        (
            "a rename onto a taken name",
            post_json(
                "/api/workflows/rename",
                &json!({"id": "user:renamed.json", "name": "taken"}),
            ),
            ErrorKind::Conflict,
        ),
        (
            "ComfyUI's queue while ComfyUI is away",
            get("/api/comfy/queue"),
            ErrorKind::Unavailable,
        ),
        (
            "a ComfyUI output while ComfyUI is away (hand-written)",
            get("/api/comfy/view?filename=a.png"),
            ErrorKind::Unavailable,
        ),
    ];
    for (what, request, kind) in table {
        let (status, body) = call(&h.app, request).await;
        assert_eq!(status.as_u16(), kind.http_status(), "{what}: {body}");
        assert_eq!(body["kind"], json!(kind), "{what}: {body}");
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{what}: {body}"
        );
    }

    // Our own fault: the user's workflow folder is a file, so nothing can be written there.
    let user = h.engine.layout().workflow_user();
    std::fs::remove_dir_all(&user).unwrap();
    std::fs::write(&user, b"not a folder").unwrap();
    let (status, body) = call(&h.app, import("broken.json")).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert_eq!(body["kind"], json!(ErrorKind::Internal), "{body}");
    // It is also recorded where people look.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let page = h
            .engine
            .activity()
            .page(
                &h.engine.auth().open_caller(),
                Some(engine::model::ActivityKind::Error),
                1,
                10,
            )
            .await
            .unwrap();
        if page
            .entries
            .iter()
            .any(|e| e.message.starts_with("Request failed"))
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no activity line: {page:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_login_is_the_same_body_with_login_required() {
    let h = harness(Some(crate::common::PASSWORD)).await;
    let (status, body) = call(&h.app, get("/api/settings")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["login_required"], json!(true), "{body}");
    assert!(body["message"]
        .as_str()
        .is_some_and(|m| m.contains("Login required")));
}
