//! The gallery of outputs.

use serde::{Deserialize, Serialize};

use super::named::named_enum;
use super::{gallery_file_url, gallery_thumb_url};

named_enum! {
    /// What an output file is, by its extension.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum MediaKind {
        Image = "image",
        Video = "video",
        Audio = "audio",
    }
}

impl MediaKind {
    /// The kind of a file name, or `None` when the gallery does not show such files.
    pub fn of_file_name(name: &str) -> Option<MediaKind> {
        let ext = name.rsplit_once('.')?.1.to_ascii_lowercase();
        match ext.as_str() {
            "png" | "jpg" | "jpeg" | "webp" | "gif" | "bmp" | "avif" => Some(MediaKind::Image),
            "mp4" | "webm" | "mov" | "mkv" | "avi" | "m4v" => Some(MediaKind::Video),
            "mp3" | "wav" | "flac" | "ogg" | "m4a" | "opus" | "aac" => Some(MediaKind::Audio),
            _ => None,
        }
    }
}

/// One indexed output file, as the grid shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GalleryItem {
    pub id: i64,
    /// Relative to the output folder, `/`-separated (`sub/ComfyUI_00001_.png`).
    pub path: String,
    pub kind: MediaKind,
    pub size_bytes: u64,
    pub modified_ms: i64,
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// The positive prompt text, when the file (or its generation record) says.
    pub positive: Option<String>,
    pub seed: Option<i64>,
    pub model: Option<String>,
    /// Whether the file carries a workflow or an API prompt (then "Open in Generate" works).
    pub has_workflow: bool,
    /// The ComfyUI prompt that made it, when comfydeck saw the run finish.
    pub prompt_id: Option<String>,
    /// Whose it is: who ran the prompt that made it; the administrator's (1) when no run of
    /// comfydeck did.
    #[serde(default)]
    pub user_id: i64,
    /// The owner's username (`None` when the account is gone).
    #[serde(default)]
    pub owner: Option<String>,
}

impl GalleryItem {
    /// The file name without its folders.
    pub fn name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or(&self.path)
    }

    /// Where the original is served (behind the login).
    pub fn file_url(&self) -> String {
        gallery_file_url(&self.path)
    }

    /// Where its thumbnail is served; the modification time in the URL lets browsers cache it
    /// for good and still see a changed file.
    pub fn thumb_url(&self) -> String {
        gallery_thumb_url(&self.path, self.modified_ms)
    }
}

/// What a gallery listing asks for. Every filter is optional; results are newest first.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GalleryQuery {
    pub kind: Option<MediaKind>,
    /// Modified at or after this time (Unix ms).
    pub from_ms: Option<i64>,
    /// Modified before this time (Unix ms).
    pub to_ms: Option<i64>,
    /// Words searched in file names, prompts and model names (case-insensitive, all must match).
    pub text: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Items per page (1–500; 100 when absent).
    pub limit: Option<u32>,
    /// One person's outputs only (a username; administrators only: a user sees their own).
    #[serde(default)]
    pub owner: Option<String>,
}

/// One page of the gallery.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GalleryPage {
    pub items: Vec<GalleryItem>,
    /// How many items match the filters, all pages together.
    pub total: u64,
    /// Pass back as `cursor` for the next (older) page; `None` on the last page.
    pub next_cursor: Option<String>,
    /// True while the start-up scan of the output folder is still running.
    pub indexing: bool,
    /// The output folder these come from.
    #[serde(default)]
    pub folder: String,
}

/// What is known about how an output was made: read from the PNG's text chunks (ComfyUI's
/// `workflow` and `prompt`, or A1111-style `parameters`). Every field is optional: files
/// without metadata still open.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GalleryMeta {
    /// The UI-format workflow (ComfyUI's `workflow` chunk).
    pub workflow: Option<serde_json::Value>,
    /// The API-format prompt that ran (ComfyUI's `prompt` chunk).
    pub prompt: Option<serde_json::Value>,
    pub positive: Option<String>,
    pub negative: Option<String>,
    pub seed: Option<i64>,
    pub steps: Option<u32>,
    pub cfg: Option<f64>,
    pub sampler: Option<String>,
    pub scheduler: Option<String>,
    pub model: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// Why some metadata could not be read (a damaged chunk, a file that is not a PNG).
    pub note: Option<String>,
}

/// One output with everything the viewer shows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GalleryItemDetail {
    pub item: GalleryItem,
    pub meta: GalleryMeta,
}

/// The gallery changed: files appeared or went. Viewers reload their first page and drop
/// the removed ids.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GalleryChange {
    pub added: u32,
    pub removed_ids: Vec<i64>,
    /// Whose files changed, when one person's did (a run's output, a delete); `None` for a
    /// scan of the folder. Live viewers get only the changes they may see.
    #[serde(default)]
    pub user_id: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_come_from_extensions() {
        assert_eq!(MediaKind::of_file_name("a/B.PNG"), Some(MediaKind::Image));
        assert_eq!(MediaKind::of_file_name("clip.webm"), Some(MediaKind::Video));
        assert_eq!(MediaKind::of_file_name("x.flac"), Some(MediaKind::Audio));
        assert_eq!(MediaKind::of_file_name("notes.txt"), None);
        assert_eq!(MediaKind::of_file_name("png"), None);
    }
}
