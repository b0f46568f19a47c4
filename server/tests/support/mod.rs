//! What the binary's process tests share: a local file server, free ports, and the engine
//! suite's real `redis-server` and tree listing.
#![allow(dead_code)]

#[path = "../../../engine/tests/suite/common/redis.rs"]
pub mod redis;
#[path = "../../../engine/tests/suite/common/tree.rs"]
pub mod tree;

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use sha2::{Digest, Sha256};

/// Serves `/model.bin` (the given bytes, with a length and an ETag) until the test ends.
pub async fn file_server(body: Vec<u8>) -> String {
    let etag = format!("\"{}\"", &hex::encode(Sha256::digest(&body))[..16]);
    let app = Router::new().route(
        "/model.bin",
        get(move || {
            let body = body.clone();
            let etag = etag.clone();
            async move {
                let mut headers = HeaderMap::new();
                headers.insert(header::ETAG, etag.parse().unwrap());
                (StatusCode::OK, headers, body).into_response()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/model.bin")
}

/// A free loopback port (bound, read and released; the server binds it right after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
