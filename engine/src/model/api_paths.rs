//! The server's own routes that URLs are built for, each written once: the router mounts these
//! patterns, and the builders below (used by the server and the browser) fill them in.

use super::{encode_component, encode_path};

/// `GET`: a file from ComfyUI's output, input or temp folder (`filename`, `subfolder` and
/// `type` in the query).
pub const COMFY_VIEW_ROUTE: &str = "/api/comfy/view";
/// `GET`: the newest preview image of a running prompt.
pub const COMFY_PREVIEW_ROUTE: &str = "/api/comfy/preview/{prompt_id}";
/// `GET`: a gallery output, the original file.
pub const GALLERY_FILE_ROUTE: &str = "/api/gallery/file/{*path}";
/// `GET`: a gallery output's thumbnail.
pub const GALLERY_THUMB_ROUTE: &str = "/api/gallery/thumb/{*path}";

/// The URL of a file ComfyUI holds; `kind` is `output`, `input` or `temp`.
pub fn comfy_view_url(filename: &str, subfolder: &str, kind: &str) -> String {
    format!(
        "{COMFY_VIEW_ROUTE}?filename={}&subfolder={}&type={}",
        encode_component(filename),
        encode_component(subfolder),
        encode_component(kind)
    )
}

/// The URL of a prompt's newest preview (`n` changes with each one, so browsers fetch the new
/// image).
pub fn comfy_preview_url(prompt_id: &str, seq: u64) -> String {
    format!(
        "{}?n={seq}",
        fill_route(COMFY_PREVIEW_ROUTE, &encode_component(prompt_id))
    )
}

/// Where a gallery original is served; `path` is relative to the output folder.
pub fn gallery_file_url(path: &str) -> String {
    fill_route(GALLERY_FILE_ROUTE, &encode_path(path))
}

/// Where a gallery thumbnail is served; the modification time in the URL lets browsers cache
/// it for good and still see a changed file.
pub fn gallery_thumb_url(path: &str, modified_ms: i64) -> String {
    format!(
        "{}?v={modified_ms}",
        fill_route(GALLERY_THUMB_ROUTE, &encode_path(path))
    )
}

/// `route` with its one `{capture}` replaced by `encoded`.
fn fill_route(route: &str, encoded: &str) -> String {
    match route.split_once('{') {
        Some((head, rest)) => {
            let tail = rest.split_once('}').map_or("", |(_, tail)| tail);
            format!("{head}{encoded}{tail}")
        }
        None => route.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_encoded() {
        assert_eq!(
            comfy_view_url("a b.png", "x/y", "output"),
            "/api/comfy/view?filename=a%20b.png&subfolder=x%2Fy&type=output"
        );
        assert_eq!(comfy_preview_url("p-1", 3), "/api/comfy/preview/p-1?n=3");
    }

    #[test]
    fn captures_are_filled_and_the_rest_of_the_route_kept() {
        assert_eq!(fill_route("/a/{id}/b", "x%20y"), "/a/x%20y/b");
        assert_eq!(fill_route("/a/{*path}", "d/e.png"), "/a/d/e.png");
        assert_eq!(fill_route("/a", "ignored"), "/a");
        assert_eq!(comfy_preview_url("a/b", 0), "/api/comfy/preview/a%2Fb?n=0");
        assert_eq!(
            gallery_file_url("run 1/é.png"),
            "/api/gallery/file/run%201/%C3%A9.png"
        );
        assert_eq!(
            gallery_thumb_url("run 1/a.png", 17),
            "/api/gallery/thumb/run%201/a.png?v=17"
        );
    }
}
