//! The gallery on a real temporary workspace: a real SQLite file, real image files, the real
//! file-system watcher. Metadata from ComfyUI's recorded PNG, paging over 10,000 files,
//! filters, thumbnails (cold, cached, stale), deletes, live indexing and path escapes.

use crate::common;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use engine::events::EventBus;
use engine::gallery::{Gallery, GalleryError, THUMB_SIZE};
use engine::model::{
    Event, GalleryPage, GalleryQuery, MediaKind, RunEvent, RunEventKind, RunOutput,
};
use engine::store::Store;
use engine::workspace::UnsafePath;
use serde_json::Value;

struct Setup {
    _dir: tempfile::TempDir,
    root: PathBuf,
    thumbs: PathBuf,
    store: Store,
    events: EventBus,
    gallery: Arc<Gallery>,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("output");
    let thumbs = dir.path().join("data/thumbs");
    fs::create_dir_all(&root).unwrap();
    fs::create_dir_all(dir.path().join("data")).unwrap();
    let store = Store::open(&dir.path().join("data/comfydeck.db"))
        .await
        .unwrap();
    let events = EventBus::new();
    let gallery = Gallery::new(store.clone(), events.clone(), root.clone(), thumbs.clone());
    Setup {
        _dir: dir,
        root,
        thumbs,
        store,
        events,
        gallery,
    }
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for &b in bytes {
        c ^= b as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    c ^ 0xFFFF_FFFF
}

/// A real PNG of `w`×`h` (a gradient, so thumbnails have something to scale) with the given
/// `tEXt` chunks inserted after IHDR, as ComfyUI's SaveImage writes them.
fn png_with_text(w: u32, h: u32, text: &[(&str, &str)]) -> Vec<u8> {
    let image = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 90])
    });
    let mut bytes = Vec::new();
    image
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .unwrap();
    // Signature (8) + IHDR chunk (4 + 4 + 13 + 4).
    let after_ihdr = 8 + 25;
    let mut out = bytes[..after_ihdr].to_vec();
    for (keyword, value) in text {
        let mut data = keyword.as_bytes().to_vec();
        data.push(0);
        data.extend_from_slice(value.as_bytes());
        out.extend((data.len() as u32).to_be_bytes());
        let mut typed = b"tEXt".to_vec();
        typed.extend(&data);
        out.extend(&typed);
        out.extend(crc32(&typed).to_be_bytes());
    }
    out.extend_from_slice(&bytes[after_ihdr..]);
    out
}

fn write(path: &Path, bytes: &[u8]) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, bytes).unwrap();
}

fn set_mtime(path: &Path, ms: i64) {
    let file = fs::File::options().write(true).open(path).unwrap();
    file.set_modified(UNIX_EPOCH + Duration::from_millis(ms as u64))
        .unwrap();
}

fn default_api_prompt() -> Value {
    let path = common::fixture_dir().join("ui_to_api_default_workflow.json");
    let recorded: Value = serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap();
    recorded["api_prompt"].clone()
}

async fn page(gallery: &Gallery, query: GalleryQuery) -> GalleryPage {
    gallery.page(&query).await.unwrap()
}

fn paths(page: &GalleryPage) -> Vec<&str> {
    page.items.iter().map(|i| i.path.as_str()).collect()
}

#[tokio::test]
async fn metadata_is_read_from_comfyuis_recorded_png() {
    let s = setup().await;
    let bytes = fs::read(common::fixture_dir().join("view_output.png")).unwrap();
    write(&s.root.join("fixtures/fixture_invert_00001_.png"), &bytes);
    let report = s.gallery.scan().await.unwrap();
    assert_eq!((report.seen, report.added), (1, 1));

    let listed = page(&s.gallery, GalleryQuery::default()).await;
    assert_eq!(listed.total, 1);
    let item = &listed.items[0];
    assert_eq!(item.path, "fixtures/fixture_invert_00001_.png");
    assert_eq!(item.name(), "fixture_invert_00001_.png");
    assert_eq!(item.kind, MediaKind::Image);
    assert_eq!((item.width, item.height), (Some(64), Some(48)));
    assert_eq!(item.size_bytes, bytes.len() as u64);
    assert!(item.has_workflow);

    let detail = s.gallery.detail(item.id).await.unwrap();
    let workflow = detail.meta.workflow.expect("the workflow chunk");
    assert_eq!(workflow["id"], "6f0e3a0e-1f5b-4a55-9f0f-2b8c1c7a9d11");
    assert_eq!(workflow["nodes"].as_array().unwrap().len(), 3);
    let prompt = detail.meta.prompt.expect("the prompt chunk");
    assert_eq!(prompt["3"]["class_type"], "SaveImage");
    assert_eq!(prompt["3"]["inputs"]["filename_prefix"], "fixture_invert");
    // An EmptyImage → Invert → Save graph has no sampler, text or model.
    assert_eq!(detail.meta.positive, None);
    assert_eq!(detail.meta.seed, None);
    assert_eq!(detail.meta.note, None);
    assert_eq!(
        (detail.meta.width, detail.meta.height),
        (Some(64), Some(48))
    );
}

#[tokio::test]
async fn prompt_seed_and_model_are_indexed_and_searchable() {
    let s = setup().await;
    let prompt = default_api_prompt().to_string();
    write(
        &s.root.join("ComfyUI_00001_.png"),
        &png_with_text(96, 64, &[("prompt", &prompt)]),
    );
    write(
        &s.root.join("clip_00001.mp4"),
        b"not really a video, but named like one",
    );
    write(&s.root.join("voice.flac"), b"fLaC");
    write(&s.root.join("notes.txt"), b"not media: not indexed");
    write(&s.root.join(".hidden/x.png"), &png_with_text(4, 4, &[]));
    set_mtime(&s.root.join("ComfyUI_00001_.png"), 1_700_000_300_000);
    set_mtime(&s.root.join("clip_00001.mp4"), 1_700_000_200_000);
    set_mtime(&s.root.join("voice.flac"), 1_700_000_100_000);
    s.gallery.scan().await.unwrap();

    let all = page(&s.gallery, GalleryQuery::default()).await;
    assert_eq!(
        paths(&all),
        ["ComfyUI_00001_.png", "clip_00001.mp4", "voice.flac"],
        "newest first; text files and hidden folders left out"
    );
    let image = &all.items[0];
    assert_eq!(
        image.positive.as_deref(),
        Some("beautiful scenery nature glass bottle landscape, , purple galaxy bottle,")
    );
    assert_eq!(image.seed, Some(156680208700286));
    assert_eq!(
        image.model.as_deref(),
        Some("placeholder_model.safetensors")
    );
    let detail = s.gallery.detail(image.id).await.unwrap();
    assert_eq!(detail.meta.negative.as_deref(), Some("text, watermark"));
    assert_eq!(detail.meta.steps, Some(20));
    assert_eq!(detail.meta.sampler.as_deref(), Some("euler"));
    assert!(detail.meta.workflow.is_none());
    assert_eq!(detail.meta.prompt.unwrap()["3"]["class_type"], "KSampler");

    let search = |text: &str| GalleryQuery {
        text: Some(text.into()),
        ..GalleryQuery::default()
    };
    assert_eq!(
        paths(&page(&s.gallery, search("GALAXY  bottle")).await),
        ["ComfyUI_00001_.png"]
    );
    assert_eq!(
        paths(&page(&s.gallery, search("watermark")).await),
        ["ComfyUI_00001_.png"]
    );
    assert_eq!(
        paths(&page(&s.gallery, search("placeholder_model")).await),
        ["ComfyUI_00001_.png"]
    );
    assert_eq!(
        paths(&page(&s.gallery, search("clip_0")).await),
        ["clip_00001.mp4"]
    );
    assert!(page(&s.gallery, search("galaxy zebra"))
        .await
        .items
        .is_empty());

    let kind = |kind| GalleryQuery {
        kind: Some(kind),
        ..GalleryQuery::default()
    };
    assert_eq!(
        paths(&page(&s.gallery, kind(MediaKind::Video)).await),
        ["clip_00001.mp4"]
    );
    assert_eq!(
        paths(&page(&s.gallery, kind(MediaKind::Audio)).await),
        ["voice.flac"]
    );

    let dated = page(
        &s.gallery,
        GalleryQuery {
            from_ms: Some(1_700_000_100_001),
            to_ms: Some(1_700_000_300_000),
            ..GalleryQuery::default()
        },
    )
    .await;
    assert_eq!(
        paths(&dated),
        ["clip_00001.mp4"],
        "from is inclusive, to exclusive"
    );

    let err = s
        .gallery
        .page(&GalleryQuery {
            limit: Some(0),
            ..GalleryQuery::default()
        })
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("limit must be between 1 and 500"),
        "{err}"
    );
    let err = s
        .gallery
        .page(&GalleryQuery {
            cursor: Some("yesterday".into()),
            ..GalleryQuery::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(err, GalleryError::Invalid(_)), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_outputs_page_newest_first_and_rescan_reads_nothing() {
    let s = setup().await;
    let tiny = png_with_text(2, 2, &[]);
    let base = 1_700_000_000_000i64;
    for i in 0..10_000i64 {
        let path = s.root.join(format!("batch_{:02}/img_{i:05}.png", i % 20));
        write(&path, &tiny);
        // Pairs share an mtime: the id must break ties so no item is skipped or repeated.
        set_mtime(&path, base + (i / 2) * 1000);
    }
    let report = s.gallery.scan().await.unwrap();
    assert_eq!(
        (report.seen, report.added, report.removed),
        (10_000, 10_000, 0)
    );

    let mut cursor = None;
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let p = page(
            &s.gallery,
            GalleryQuery {
                cursor: cursor.clone(),
                limit: Some(100),
                ..GalleryQuery::default()
            },
        )
        .await;
        assert_eq!(p.total, 10_000);
        pages += 1;
        seen.extend(
            p.items
                .iter()
                .map(|i| (i.modified_ms, i.id, i.path.clone())),
        );
        match p.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(pages, 100);
    assert_eq!(seen.len(), 10_000);
    assert!(
        seen.windows(2).all(|w| (w[0].0, w[0].1) > (w[1].0, w[1].1)),
        "strictly newest first across pages"
    );
    let mut unique: Vec<_> = seen.iter().map(|s| &s.2).collect();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 10_000);
    assert!(seen[0].2.ends_with("img_09999.png") || seen[0].2.ends_with("img_09998.png"));

    // Nothing changed: the second scan compares size and mtime and reads no file.
    let again = s.gallery.scan().await.unwrap();
    assert_eq!(
        (again.seen, again.added, again.updated, again.removed),
        (10_000, 0, 0, 0)
    );

    // One folder goes: its 500 rows go with it.
    fs::remove_dir_all(s.root.join("batch_07")).unwrap();
    let after = s.gallery.scan().await.unwrap();
    assert_eq!(after.removed, 500);
    assert_eq!(page(&s.gallery, GalleryQuery::default()).await.total, 9_500);
}

#[tokio::test]
async fn thumbnails_are_made_once_cached_and_replaced_when_the_file_changes() {
    let s = setup().await;
    let path = s.root.join("wide.png");
    write(&path, &png_with_text(1024, 512, &[]));
    set_mtime(&path, 1_700_000_000_000);
    write(&s.root.join("clip.webm"), b"webm bytes");
    write(&s.root.join("broken.png"), b"\x89PNG\r\n\x1a\nnot really");
    s.gallery.scan().await.unwrap();

    let cold = s.gallery.thumbnail("wide.png").await.unwrap();
    assert!(
        cold.starts_with(&s.thumbs),
        "cached under data/thumbs: {}",
        cold.display()
    );
    let thumb = image::open(&cold).unwrap();
    assert_eq!(
        (thumb.width(), thumb.height()),
        (THUMB_SIZE, THUMB_SIZE / 2)
    );
    assert_eq!(
        image::ImageFormat::from_path(&cold).unwrap(),
        image::ImageFormat::Jpeg
    );
    assert!(fs::metadata(&cold).unwrap().len() < 30_000, "a small JPEG");
    let written = fs::metadata(&cold).unwrap().modified().unwrap();

    std::thread::sleep(Duration::from_millis(20));
    let cached = s.gallery.thumbnail("wide.png").await.unwrap();
    assert_eq!(cached, cold);
    assert_eq!(
        fs::metadata(&cached).unwrap().modified().unwrap(),
        written,
        "not remade"
    );

    // The file changes: a new thumbnail under a new name, the old one removed.
    write(&path, &png_with_text(300, 600, &[]));
    set_mtime(&path, 1_700_000_500_000);
    s.gallery.index_path("wide.png", None).await.unwrap();
    let fresh = s.gallery.thumbnail("wide.png").await.unwrap();
    assert_ne!(fresh, cold);
    assert!(!cold.exists(), "the stale thumbnail is removed");
    let thumb = image::open(&fresh).unwrap();
    assert_eq!(
        (thumb.width(), thumb.height()),
        (THUMB_SIZE / 2, THUMB_SIZE)
    );

    // Animated GIFs (ComfyUI's animation savers) and BMPs: the first frame, as a JPEG.
    let mut gif = Vec::new();
    {
        let mut encoder = image::codecs::gif::GifEncoder::new(&mut gif);
        for shade in [40u8, 200] {
            let frame = image::RgbaImage::from_pixel(64, 32, image::Rgba([shade, 0, 0, 255]));
            encoder.encode_frame(image::Frame::new(frame)).unwrap();
        }
    }
    write(&s.root.join("loop.gif"), &gif);
    let mut bmp = std::io::Cursor::new(Vec::new());
    image::RgbImage::from_pixel(20, 40, image::Rgb([0, 90, 0]))
        .write_to(&mut bmp, image::ImageFormat::Bmp)
        .unwrap();
    write(&s.root.join("old.bmp"), bmp.get_ref());
    s.gallery.scan().await.unwrap();
    let thumb = image::open(s.gallery.thumbnail("loop.gif").await.unwrap()).unwrap();
    assert_eq!((thumb.width(), thumb.height()), (64, 32), "never enlarged");
    let first = thumb.to_rgb8().get_pixel(32, 16).0;
    assert!(first[0] < 90, "the first frame, not the last: {first:?}");
    let thumb = image::open(s.gallery.thumbnail("old.bmp").await.unwrap()).unwrap();
    assert_eq!((thumb.width(), thumb.height()), (20, 40));

    let err = s.gallery.thumbnail("clip.webm").await.unwrap_err();
    assert!(matches!(err, GalleryError::NoThumbnail(_)), "{err}");
    assert!(err.to_string().contains("video"), "{err}");
    let err = s.gallery.thumbnail("broken.png").await.unwrap_err();
    assert!(
        matches!(err, GalleryError::Thumbnail { .. }) && err.to_string().contains("broken.png"),
        "{err}"
    );
    let err = s.gallery.thumbnail("missing.png").await.unwrap_err();
    assert!(matches!(err, GalleryError::NotFound(_)), "{err}");
}

#[tokio::test]
async fn delete_removes_the_file_the_thumbnail_and_the_row_and_says_so() {
    let s = setup().await;
    write(&s.root.join("keep.png"), &png_with_text(8, 8, &[]));
    write(&s.root.join("sub/gone.png"), &png_with_text(300, 300, &[]));
    s.gallery.scan().await.unwrap();
    let listed = page(&s.gallery, GalleryQuery::default()).await;
    let gone = listed
        .items
        .iter()
        .find(|i| i.path == "sub/gone.png")
        .unwrap()
        .clone();
    let thumb = s.gallery.thumbnail("sub/gone.png").await.unwrap();
    assert!(thumb.exists());

    let mut rx = s.events.subscribe();
    let deleted = s.gallery.delete(gone.id).await.unwrap();
    assert_eq!(deleted.path, "sub/gone.png");
    assert!(!s.root.join("sub/gone.png").exists());
    assert!(!thumb.exists());
    assert!(s.root.join("keep.png").exists());
    assert_eq!(
        paths(&page(&s.gallery, GalleryQuery::default()).await),
        ["keep.png"]
    );

    let mut saw_change = false;
    let mut saw_activity = false;
    while let Ok(Ok(event)) = tokio::time::timeout(Duration::from_millis(200), rx.recv()).await {
        match event {
            Event::Gallery(change) => saw_change |= change.removed_ids == vec![gone.id],
            Event::Activity(entry) => {
                saw_activity |= entry.message == "Deleted output sub/gone.png"
            }
            _ => {}
        }
    }
    assert!(saw_change && saw_activity);
    let activity = s.store.activity_page(None, None, 1, 10).await.unwrap();
    assert!(activity
        .entries
        .iter()
        .any(|e| e.message == "Deleted output sub/gone.png"));

    let err = s.gallery.delete(gone.id).await.unwrap_err();
    assert!(matches!(err, GalleryError::NotFound(_)), "{err}");
}

#[tokio::test]
async fn paths_that_leave_the_output_folder_are_refused() {
    let s = setup().await;
    let outside = s.root.parent().unwrap().join("secret.png");
    write(&outside, &png_with_text(4, 4, &[]));
    write(&s.root.join("ok.png"), &png_with_text(4, 4, &[]));
    std::os::unix::fs::symlink(&outside, s.root.join("link.png")).unwrap();
    std::os::unix::fs::symlink(s.root.parent().unwrap(), s.root.join("up")).unwrap();
    s.gallery.scan().await.unwrap();
    assert_eq!(
        paths(&page(&s.gallery, GalleryQuery::default()).await),
        ["ok.png"],
        "symlinks are never indexed"
    );

    for (rel, expected) in [
        ("../secret.png", "Traversal"),
        ("sub/../../secret.png", "Traversal"),
        ("./ok.png", "Traversal"),
        ("/etc/passwd", "Absolute"),
        (outside.to_str().unwrap(), "Absolute"),
        ("a\\..\\secret.png", "BadCharacter"),
        ("", "Empty"),
        ("link.png", "SymlinkEscape"),
        ("up/secret.png", "SymlinkEscape"),
    ] {
        for result in [
            s.gallery.original(rel).await,
            s.gallery.thumbnail(rel).await,
        ] {
            let err = result.expect_err(rel);
            let GalleryError::UnsafePath(why) = &err else {
                panic!("{rel}: expected an unsafe-path error, got {err}");
            };
            let name = match why {
                UnsafePath::Empty(_) => "Empty",
                UnsafePath::Absolute(_) => "Absolute",
                UnsafePath::Traversal(_) => "Traversal",
                UnsafePath::BadCharacter(_) => "BadCharacter",
                UnsafePath::SymlinkEscape(_) => "SymlinkEscape",
            };
            assert_eq!(name, expected, "{rel}");
        }
    }
    assert!(s.gallery.index_path("../secret.png", None).await.is_err());
    assert_eq!(
        s.gallery.original("ok.png").await.unwrap(),
        s.root.join("ok.png")
    );
    let err = s.gallery.original("notes.txt").await.unwrap_err();
    assert!(matches!(err, GalleryError::NotFound(_)), "{err}");
}

async fn wait_for<F: Fn(&GalleryPage) -> bool>(
    gallery: &Gallery,
    what: &str,
    ok: F,
) -> GalleryPage {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let p = page(gallery, GalleryQuery::default()).await;
        if ok(&p) {
            return p;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}: {:?}",
            paths(&p)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_files_and_finished_runs_are_indexed_while_running() {
    let s = setup().await;
    write(&s.root.join("before.png"), &png_with_text(4, 4, &[]));
    let mut rx = s.events.subscribe();
    s.gallery.start();
    wait_for(&s.gallery, "the start-up scan", |p| {
        p.total == 1 && !p.indexing
    })
    .await;

    // A file written into a new sub-folder (ComfyUI's `filename_prefix` may hold folders).
    write(&s.root.join("day1/fresh.png"), &png_with_text(4, 4, &[]));
    wait_for(&s.gallery, "the new file", |p| {
        paths(p).contains(&"day1/fresh.png")
    })
    .await;
    let change = loop {
        match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
            Ok(Ok(Event::Gallery(change))) if change.added > 0 => break change,
            Ok(Ok(_)) => continue,
            other => panic!("no gallery event: {other:?}"),
        }
    };
    assert!(change.added >= 1);

    // Removed behind the deck's back: the row goes.
    fs::remove_file(s.root.join("before.png")).unwrap();
    wait_for(&s.gallery, "the removal", |p| {
        !paths(p).contains(&"before.png")
    })
    .await;

    // A run reports its output: indexed with the prompt that made it.
    write(
        &s.root.join("run/out_00001_.png"),
        &png_with_text(4, 4, &[]),
    );
    s.events.publish(Event::Run(RunEvent {
        prompt_id: "ade058c9-217c-46cd-b240-bbe4f499132b".into(),
        event: RunEventKind::Output {
            node: "9".into(),
            files: vec![RunOutput {
                node: "9".into(),
                filename: "out_00001_.png".into(),
                subfolder: "run".into(),
                kind: "output".into(),
                media: "images".into(),
                url: "/api/comfy/view?filename=out_00001_.png&subfolder=run&type=output".into(),
            }],
        },
    }));
    let p = wait_for(&s.gallery, "the run's output with its prompt id", |p| {
        p.items
            .iter()
            .any(|i| i.path == "run/out_00001_.png" && i.prompt_id.is_some())
    })
    .await;
    let item = p
        .items
        .iter()
        .find(|i| i.path == "run/out_00001_.png")
        .unwrap();
    assert_eq!(
        item.prompt_id.as_deref(),
        Some("ade058c9-217c-46cd-b240-bbe4f499132b")
    );
    s.gallery.stop();
}

#[tokio::test]
async fn the_gallery_indexes_the_configured_output_folder() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = dir.path().join("comfy-out");
    fs::create_dir_all(&elsewhere).unwrap();
    write(&elsewhere.join("a.png"), &png_with_text(4, 4, &[]));
    let mut config = common::test_config(&dir.path().join("ws"));
    config.comfyui_output_dir = Some(elsewhere.clone());
    let (engine, _) = engine::Engine::start(config).await.unwrap();
    assert_eq!(engine.gallery().root(), elsewhere.as_path());
    engine.gallery().current().scan().await.unwrap();
    let listed = engine
        .gallery()
        .page(&engine.auth().open_caller(), &GalleryQuery::default())
        .await
        .unwrap();
    assert_eq!(paths(&listed), ["a.png"]);
}

/// An attached ComfyUI that writes to its own `output` (a pod image's `ComfyUI/output`, not
/// the workspace's): the gallery follows the folder ComfyUI reports, indexes what lands there,
/// and starts there next time. A configured folder is never second-guessed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gallery_follows_the_output_folder_an_attached_comfyui_reports() {
    use comfy_standin::{ComfyStandin, StandinConfig};
    let dir = tempfile::tempdir().unwrap();
    let comfy_base = dir.path().join("ComfyUI");
    let comfy_output = comfy_base.join("output");
    write(&comfy_output.join("earlier.png"), &png_with_text(4, 4, &[]));
    let standin = ComfyStandin::start(StandinConfig {
        base_dir: Some(comfy_base.clone()),
        output_dir: Some(comfy_output.clone()),
        time_scale: 0.0,
        ..StandinConfig::new(common::fixture_dir())
    })
    .await
    .unwrap();
    let workspace = dir.path().join("ws");
    let config = engine::config::Config {
        comfyui_url: standin.url(),
        hf_base_url: common::closed_port_url(),
        ..engine::config::Config::with_workspace(&workspace)
    };
    let (engine, _) = engine::Engine::start(config.clone()).await.unwrap();
    assert_eq!(engine.gallery().root(), workspace.join("output"));
    let mut rx = engine.events().subscribe();
    engine.spawn_background_jobs();

    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while engine.gallery().root() != comfy_output {
        assert!(
            std::time::Instant::now() < deadline,
            "the gallery still indexes {}",
            engine.gallery().root().display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let listed = wait_for(
        &engine.gallery().current(),
        "the reported folder's file",
        |p| paths(p) == ["earlier.png"] && !p.indexing,
    )
    .await;
    assert_eq!(listed.folder, comfy_output.display().to_string());
    // The move is recorded once the new folder is remembered, which can trail the listing.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let activity = engine
            .activity()
            .page(&engine.auth().open_caller(), None, 1, 50)
            .await
            .unwrap()
            .entries
            .into_iter()
            .map(|a| a.message)
            .collect::<Vec<_>>();
        if activity.iter().any(|m| {
            m.contains("now shows ComfyUI's output folder")
                && m.contains(&comfy_output.display().to_string())
        }) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{activity:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A run's output lands in ComfyUI's folder and shows up with the prompt that made it.
    let workflow = standin.fixtures().prompt_of("post_prompt_ok");
    let submitted = engine
        .workflows()
        .run(&engine.auth().open_caller(), &workflow, &[])
        .await
        .unwrap();
    let prompt_id = submitted.prompt_id.expect("submitted");
    common::run_events(&mut rx, &prompt_id, Duration::from_secs(20)).await;
    wait_for(&engine.gallery().current(), "the run's output", |p| {
        p.items
            .iter()
            .any(|i| i.prompt_id.as_deref() == Some(prompt_id.as_str()))
    })
    .await;
    engine.shutdown().await;
    drop(engine);

    // The next start begins on the remembered folder, before ComfyUI is even asked.
    let engine = start_after_shutdown(engine::config::Config {
        comfyui_url: common::closed_port_url(),
        ..config.clone()
    })
    .await;
    assert_eq!(engine.gallery().root(), comfy_output);
    engine.shutdown().await;
    drop(engine);

    // COMFYUI_OUTPUT_DIR set by hand wins over anything remembered or reported.
    let chosen = dir.path().join("chosen");
    fs::create_dir_all(&chosen).unwrap();
    let engine = start_after_shutdown(engine::config::Config {
        comfyui_output_dir: Some(chosen.clone()),
        ..config
    })
    .await;
    engine.spawn_background_jobs();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(engine.gallery().root(), chosen);
    assert_eq!(engine.gallery().adopt_reported_output_dir().await, None);
    assert_eq!(engine.gallery().root(), chosen);
    engine.shutdown().await;

    // The workspace reached through a symlink, ComfyUI reporting the real path: the same
    // folder, so nothing moves and nothing is recorded.
    let real = dir.path().join("volume");
    fs::create_dir_all(real.join("output")).unwrap();
    let linked = dir.path().join("workspace-link");
    std::os::unix::fs::symlink(&real, &linked).unwrap();
    let same_place = ComfyStandin::start(StandinConfig {
        base_dir: Some(real.clone()),
        ..StandinConfig::new(common::fixture_dir())
    })
    .await
    .unwrap();
    let (engine, _) = engine::Engine::start(engine::config::Config {
        comfyui_url: same_place.url(),
        hf_base_url: common::closed_port_url(),
        ..engine::config::Config::with_workspace(&linked)
    })
    .await
    .unwrap();
    assert_eq!(engine.gallery().adopt_reported_output_dir().await, None);
    assert_eq!(engine.gallery().root(), linked.join("output"));
    engine.shutdown().await;
}

/// Starts an engine on a workspace whose previous engine was just shut down: its background
/// jobs drop their handles (and the workspace lock) within moments.
async fn start_after_shutdown(config: engine::config::Config) -> Arc<engine::Engine> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match engine::Engine::start(config.clone()).await {
            Ok((engine, _)) => return engine,
            Err(engine::EngineError::Workspace(_)) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("restart failed: {e}"),
        }
    }
}

#[tokio::test]
async fn outputs_belong_to_whoever_ran_the_prompt_and_unclaimed_files_to_admin() {
    let s = setup().await;
    // Alice owns a prompt; the users table names her for the listing.
    let users = engine::auth::UsersService::new(
        s.store.clone(),
        engine::activity::ActivityLog::new(s.store.clone(), s.events.clone()),
        false,
        engine::workflows::WorkflowLibrary::new(&engine::workspace::WorkspaceLayout::new(
            s.root.parent().unwrap(),
        )),
    );
    let admin = engine::model::Caller {
        user_id: 1,
        username: "admin".into(),
        role: engine::model::Role::Admin,
        theme: None,
    };
    let alice = users
        .add(
            &admin,
            "alice",
            engine::model::Role::User,
            Some("password-123".into()),
        )
        .await
        .unwrap()
        .user
        .id;
    assert_eq!(alice, 2);
    s.store.set_prompt_owner("p-alice", 2, 1).await.unwrap();
    write(&s.root.join("found.png"), &png_with_text(4, 4, &[]));
    write(&s.root.join("hers.png"), &png_with_text(4, 4, &[]));
    // Seen by the watcher first (no prompt known yet), then reported by her run.
    s.gallery.index_path("hers.png", None).await.unwrap();
    let early = s.gallery.item_by_path("hers.png").await.unwrap().unwrap();
    assert_eq!(early.user_id, 1, "no run claimed it yet");
    s.gallery
        .index_path("hers.png", Some("p-alice"))
        .await
        .unwrap();
    s.gallery.index_path("found.png", None).await.unwrap();

    let hers = s.gallery.item_by_path("hers.png").await.unwrap().unwrap();
    assert_eq!(hers.user_id, 2);
    assert_eq!(hers.owner.as_deref(), Some("alice"));
    let found = s.gallery.item_by_path("found.png").await.unwrap().unwrap();
    assert_eq!(
        found.user_id, 1,
        "a file no run made is the administrator's"
    );
    assert_eq!(found.owner.as_deref(), Some("admin"));

    // A rescan (no prompt ids) keeps the owner.
    s.gallery.scan().await.unwrap();
    let hers = s.gallery.item_by_path("hers.png").await.unwrap().unwrap();
    assert_eq!(hers.user_id, 2);

    // One person's page.
    let gallery = &s.gallery;
    let only = |owner| async move {
        gallery
            .page_of(&GalleryQuery::default(), owner)
            .await
            .unwrap()
    };
    assert_eq!(paths(&only(Some(2)).await), ["hers.png"]);
    assert_eq!(paths(&only(Some(1)).await), ["found.png"]);
    assert_eq!(only(None).await.total, 2);
    assert_eq!(only(Some(3)).await.total, 0);

    // Live changes say whose file changed.
    let mut rx = s.events.subscribe();
    s.gallery.delete(hers.id).await.unwrap();
    loop {
        match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
            Ok(Ok(Event::Gallery(change))) => {
                assert_eq!(change.user_id, Some(2), "{change:?}");
                assert_eq!(change.removed_ids, [hers.id]);
                break;
            }
            Ok(Ok(_)) => continue,
            other => panic!("no gallery event: {other:?}"),
        }
    }
}
