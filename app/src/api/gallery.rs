//! The gallery's server functions: pages of outputs, one output with its metadata, deletes.
//! The files themselves (originals and thumbnails) are plain routes in the server crate:
//! `GET /api/gallery/file/<path>` and `GET /api/gallery/thumb/<path>`.

use engine::model::*;
use leptos::prelude::*;
use leptos::server_fn::codec::{GetUrl, Json};

use super::ApiError;

/// A page of outputs, newest first. Every filter is optional:
/// `GET /api/gallery?kind=image&text=fox&from_ms=…&to_ms=…&limit=100&cursor=…&owner=alice`
/// (`cursor` is the `next_cursor` of the previous page; `owner`, a username, is for
/// administrators: a user's listing is always their own outputs).
#[server(endpoint = "gallery", prefix = "/api", input = GetUrl)]
pub async fn list_gallery(
    kind: Option<MediaKind>,
    from_ms: Option<i64>,
    to_ms: Option<i64>,
    text: Option<String>,
    cursor: Option<String>,
    limit: Option<u32>,
    owner: Option<String>,
) -> Result<GalleryPage, ApiError> {
    let (engine, caller) = super::server::engine_and_caller()?;
    let query = GalleryQuery {
        kind,
        from_ms,
        to_ms,
        text: text.filter(|t| !t.trim().is_empty()),
        cursor: cursor.filter(|c| !c.is_empty()),
        limit,
        owner: owner.filter(|o| !o.trim().is_empty()),
    };
    engine
        .gallery()
        .page(&caller, &query)
        .await
        .map_err(super::server::fail)
}

/// One output and how it was made: `GET /api/gallery/item?id=42`.
///
/// This is the contract "Open in Generate" relies on: the Generate page, opened as
/// `/generate?from_output=<id>`, calls this and fills its form from `meta`:
/// `meta.workflow` (UI-format workflow JSON, when the PNG has one), `meta.prompt` (the
/// API-format prompt that ran, when the PNG has one), `meta.positive` / `meta.negative`
/// (prompt texts), `meta.seed`, `meta.steps`, `meta.cfg`, `meta.sampler`, `meta.scheduler`,
/// `meta.model` (checkpoint or UNet file name) and `meta.width` / `meta.height` (the file's
/// pixel size). Every field may be absent (videos, audio, images from other tools); `item`
/// is the grid entry (path, kind, size, `prompt_id` when comfydeck saw the run).
#[server(endpoint = "gallery/item", prefix = "/api", input = GetUrl)]
pub async fn get_gallery_item(id: i64) -> Result<GalleryItemDetail, ApiError> {
    let (engine, caller) = super::server::engine_and_caller()?;
    engine
        .gallery()
        .detail(&caller, id)
        .await
        .map_err(super::server::fail)
}

/// Deletes an output file with its thumbnail and index entry: `POST /api/gallery/delete`
/// with `{"id": 42}`.
#[server(endpoint = "gallery/delete", prefix = "/api", input = Json)]
pub async fn delete_gallery_item(id: i64) -> Result<GalleryItem, ApiError> {
    let (engine, caller) = super::server::engine_and_caller()?;
    engine
        .gallery()
        .delete(&caller, id)
        .await
        .map_err(super::server::fail)
}
