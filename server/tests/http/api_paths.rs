//! The URLs `engine::model` builds for the server's own routes reach those routes, with every
//! value decoded back to what was encoded.

use crate::common::harness;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use engine::model::{comfy_preview_url, comfy_view_url, GalleryQuery};
use http_body_util::BodyExt;
use tower::ServiceExt;

/// A 1×1 PNG: enough for the gallery to index it and make a thumbnail.
const ONE_PIXEL_PNG: &[u8] = &[
    0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x02, 0x00, 0x00, 0x00, 0x90, 0x77, 0x53,
    0xDE, 0x00, 0x00, 0x00, 0x0C, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9C, 0x63, 0xF8, 0xDF, 0xC0, 0x00,
    0x00, 0x04, 0x01, 0x01, 0x80, 0xC5, 0x2A, 0x18, 0x5D, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4E,
    0x44, 0xAE, 0x42, 0x60, 0x82,
];

/// GETs `url` on an open (loopback, passwordless) server: status, content type, body.
async fn fetch(app: &axum::Router, url: &str) -> (StatusCode, String, Vec<u8>) {
    let request = Request::get(url).body(Body::empty()).unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let bytes = body.collect().await.unwrap().to_bytes().to_vec();
    (parts.status, content_type, bytes)
}

#[tokio::test(flavor = "multi_thread")]
async fn gallery_urls_reach_the_file_and_its_thumbnail() {
    let h = harness(None).await;
    let path = "run 1/é + #1.png";
    let output = h.engine.gallery().root().join(path);
    std::fs::create_dir_all(output.parent().unwrap()).unwrap();
    std::fs::write(&output, ONE_PIXEL_PNG).unwrap();
    h.engine.gallery().current().scan().await.unwrap();
    let page = h
        .engine
        .gallery()
        .page(&h.engine.auth().open_caller(), &GalleryQuery::default())
        .await
        .unwrap();
    let item = page
        .items
        .iter()
        .find(|i| i.path == path)
        .unwrap_or_else(|| panic!("{page:?}"));

    let (status, content_type, body) = fetch(&h.app, &item.file_url()).await;
    assert_eq!(status, StatusCode::OK, "{}", item.file_url());
    assert_eq!(content_type, "image/png");
    assert_eq!(body, ONE_PIXEL_PNG);

    let (status, content_type, body) = fetch(&h.app, &item.thumb_url()).await;
    assert_eq!(status, StatusCode::OK, "{}", item.thumb_url());
    assert_eq!(content_type, "image/jpeg");
    assert_eq!(&body[..2], &[0xFF, 0xD8], "JPEG magic");
}

#[tokio::test(flavor = "multi_thread")]
async fn comfy_urls_reach_their_handlers_with_the_values_decoded() {
    let h = harness(None).await;

    // The preview handler names the prompt it has nothing for: the id came back whole,
    // its `/` and space included.
    let id = "p 1/é";
    let (status, _, body) = fetch(&h.app, &comfy_preview_url(id, 3)).await;
    let body = String::from_utf8(body).unwrap();
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(body.contains("no preview for prompt p 1/é yet"), "{body}");

    // The view handler checks each query value before asking ComfyUI.
    let (status, _, body) = fetch(&h.app, &comfy_view_url("a.png", "", "out put&type=x")).await;
    let body = String::from_utf8(body).unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("out put&type=x"), "{body}");
    let (status, _, body) = fetch(&h.app, &comfy_view_url("sub/a b.png", "", "output")).await;
    let body = String::from_utf8(body).unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("no folders here"), "{body}");
}
