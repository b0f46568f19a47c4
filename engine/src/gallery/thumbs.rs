//! Thumbnails: small JPEGs made from output images on first request and cached on the volume
//! (`data/thumbs/<bucket>/<id>-<mtime>.jpg`), so a changed file gets a new one and a restart
//! keeps the old ones. Blocking I/O and decoding; the caller runs it off the async workers.

use std::fs;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use image::codecs::jpeg::JpegEncoder;

/// Longest side of a thumbnail, in pixels (sharp on a 3-column phone grid at 2× density).
pub const THUMB_SIZE: u32 = 256;
const JPEG_QUALITY: u8 = 80;

/// Where the thumbnail of item `id` at modification time `mtime_ms` is cached. Items are
/// spread over 256 folders so no folder grows to tens of thousands of entries.
pub(crate) fn thumb_path(dir: &Path, id: i64, mtime_ms: i64) -> PathBuf {
    dir.join(bucket(id)).join(format!("{id}-{mtime_ms}.jpg"))
}

fn bucket(id: i64) -> String {
    format!("{:02x}", id & 0xff)
}

/// Decodes `source`, scales it to fit [`THUMB_SIZE`] and writes a JPEG to `dest` (through a
/// temporary file and a rename, so a reader never sees half of one).
pub(crate) fn make_thumbnail(source: &Path, dest: &Path) -> Result<(), String> {
    let image = image::ImageReader::open(source)
        .map_err(|e| e.to_string())?
        .with_guessed_format()
        .map_err(|e| e.to_string())?
        .decode()
        .map_err(|e| e.to_string())?;
    // `thumbnail` keeps the aspect ratio and averages pixels (no aliasing), and is fast.
    let small = if image.width() > THUMB_SIZE || image.height() > THUMB_SIZE {
        image.thumbnail(THUMB_SIZE, THUMB_SIZE)
    } else {
        image
    };
    // JPEG has no alpha: transparent pixels become black, as most viewers show them.
    let rgb = small.to_rgb8();
    let dir = dest.parent().ok_or("the thumbnail path has no folder")?;
    fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}-{:?}",
        dest.file_name().and_then(|n| n.to_str()).unwrap_or("thumb"),
        std::process::id(),
        std::thread::current().id()
    ));
    let written = (|| {
        let file = fs::File::create(&tmp).map_err(|e| e.to_string())?;
        let mut out = BufWriter::new(file);
        JpegEncoder::new_with_quality(&mut out, JPEG_QUALITY)
            .encode_image(&rgb)
            .map_err(|e| e.to_string())?;
        out.into_inner()
            .map_err(|e| e.to_string())?
            .sync_all()
            .map_err(|e| e.to_string())?;
        fs::rename(&tmp, dest).map_err(|e| e.to_string())
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

/// Removes every cached thumbnail of item `id` (any modification time).
pub(crate) fn remove_thumbnails(dir: &Path, id: i64) {
    let folder = dir.join(bucket(id));
    let prefix = format!("{id}-");
    let Ok(entries) = fs::read_dir(&folder) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            if let Err(e) = fs::remove_file(entry.path()) {
                tracing::warn!(path = %entry.path().display(), error = %e, "cannot remove a thumbnail");
            }
        }
    }
}
