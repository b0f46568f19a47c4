//! The job queue's API through the router, as three people: alice's job is hers (bob gets 404
//! from every by-id route and an empty list), only the administrator reorders, and a posted
//! workflow that holds nothing is refused with a message.

use crate::common::{harness, PASSWORD};
use crate::router::{get, log_in_as, post_json, send};

use axum::body::Body;
use axum::http::{header, StatusCode};
use serde_json::json;

const ALICE_PW: &str = "alice-password-1";
const BOB_PW: &str = "bob-password-12";

fn with_cookie(path: &str, cookie: &str) -> axum::http::Request<Body> {
    get(path)
        .header(header::COOKIE, cookie)
        .body(Body::empty())
        .unwrap()
}

fn post_as(path: &str, body: serde_json::Value, cookie: &str) -> axum::http::Request<Body> {
    let mut request = post_json(path, &body);
    request
        .headers_mut()
        .insert(header::COOKIE, cookie.parse().unwrap());
    request
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_is_its_owner_s_and_only_administrators_reorder() {
    let h = harness(Some(PASSWORD)).await;
    let open = h.engine.auth().open_caller();
    for (name, password) in [("alice", ALICE_PW), ("bob", BOB_PW)] {
        h.engine
            .auth()
            .users()
            .add(
                &open,
                name,
                engine::model::Role::User,
                Some(password.into()),
            )
            .await
            .unwrap();
    }
    let admin = log_in_as(&h.app, "admin", PASSWORD, "198.51.100.1").await;
    let alice = log_in_as(&h.app, "alice", ALICE_PW, "198.51.100.2").await;
    let bob = log_in_as(&h.app, "bob", BOB_PW, "198.51.100.3").await;
    let workflow = json!({
        "1": {"class_type": "PrimitiveString", "inputs": {"value": "hi"}},
        "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}
    });

    let reply = send(
        &h.app,
        post_as(
            "/api/jobs/submit",
            json!({"workflow": workflow, "name": "alice's"}),
            &alice,
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let id = reply.json()["job_id"].as_i64().unwrap();
    assert_eq!(reply.json()["position"], 1);

    let mine = send(
        &h.app,
        with_cookie(&format!("/api/jobs/get?id={id}"), &alice),
    )
    .await;
    assert_eq!(mine.status, StatusCode::OK);
    assert_eq!(mine.json()["state"], "pending");
    assert_eq!(mine.json()["username"], "alice");

    // Bob: not found, never forbidden (ids do not leak), and his list is empty.
    let theirs = send(&h.app, with_cookie(&format!("/api/jobs/get?id={id}"), &bob)).await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND, "{:?}", theirs.body);
    let cancel = send(&h.app, post_as("/api/jobs/cancel", json!({"id": id}), &bob)).await;
    assert_eq!(cancel.status, StatusCode::NOT_FOUND);
    let again = send(&h.app, post_as("/api/jobs/rerun", json!({"id": id}), &bob)).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    let list = send(&h.app, with_cookie("/api/jobs", &bob)).await;
    assert_eq!(list.json()["jobs"], json!([]));
    let status = send(&h.app, with_cookie("/api/queue/status", &bob)).await;
    assert_eq!(status.json()["pending"], 1, "the figures count everyone's");
    assert_eq!(status.json()["per_user"], json!([]), "but name nobody else");

    // Reordering is the administrator's; so is the workers list.
    let move_up = json!({"id": id, "priority": 5});
    let refused = send(
        &h.app,
        post_as("/api/jobs/priority", move_up.clone(), &alice),
    )
    .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let moved = send(&h.app, post_as("/api/jobs/priority", move_up, &admin)).await;
    assert_eq!(moved.status, StatusCode::OK, "{:?}", moved.body);
    assert_eq!(moved.json()["priority"], 5);
    let all = send(&h.app, with_cookie("/api/jobs?state=pending", &admin)).await;
    assert_eq!(all.json()["jobs"][0]["id"], id);
    let bad_state = send(&h.app, with_cookie("/api/jobs?state=lost", &admin)).await;
    assert_eq!(bad_state.status, StatusCode::BAD_REQUEST);
    assert!(bad_state.body.contains("state"), "{:?}", bad_state.body);

    // Alice cancels her waiting job; "run again" queues a new one.
    let cancelled = send(
        &h.app,
        post_as("/api/jobs/cancel", json!({"id": id}), &alice),
    )
    .await;
    assert_eq!(cancelled.json()["state"], "cancelled");
    let rerun = send(
        &h.app,
        post_as("/api/jobs/rerun", json!({"id": id}), &alice),
    )
    .await;
    assert_eq!(rerun.status, StatusCode::OK, "{:?}", rerun.body);
    assert_ne!(rerun.json()["job_id"], id);

    // Neither a workflow nor an id: a clear 400.
    let empty = send(&h.app, post_as("/api/jobs/submit", json!({}), &alice)).await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST);
    assert!(
        empty.body.contains("workflow_id or workflow"),
        "{:?}",
        empty.body
    );
}
