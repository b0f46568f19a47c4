//! Unit tests of the catalog's parsing and normalisation (the real built-in data included).

use super::locate::{locate, FieldPath};
use super::*;

const GB: u64 = 1_000_000_000;
const GIB: u64 = 1 << 30;

#[test]
fn sizes_parse_to_bytes() {
    assert_eq!(parse_size("4.9GB"), Ok(4_900_000_000));
    assert_eq!(parse_size("246MB"), Ok(246_000_000));
    assert_eq!(parse_size("~23GB"), Ok(23 * GB));
    assert_eq!(parse_size("~15GB"), Ok(15 * GB));
    assert_eq!(parse_size("7.17GB"), Ok(7_170_000_000));
    assert_eq!(parse_size("1.5 GiB"), Ok(GIB + GIB / 2));
    assert_eq!(parse_size("512MiB"), Ok(512 << 20));
    assert_eq!(parse_size("800KB"), Ok(800_000));
    assert_eq!(parse_size("1234"), Ok(1234));
    assert_eq!(parse_size(" 12 B "), Ok(12));
    assert_eq!(parse_size("9.31GB (9536MB)"), Ok(9_310_000_000));
    assert_eq!(parse_size("15.27GB (15635MB)"), Ok(15_270_000_000));
    assert_eq!(parse_size("0.5gb"), Ok(500_000_000));
    assert_eq!(parse_size("1TB"), Ok(1_000 * GB));
}

#[test]
fn bad_sizes_are_errors_not_panics() {
    for bad in [
        "",
        "~",
        "GB",
        "abc",
        "4.9XB",
        "1.2.3GB",
        "-4GB",
        "4,9GB",
        ".",
        "99999999999999999999GB",
    ] {
        let err = parse_size(bad).expect_err(bad);
        assert!(!err.is_empty(), "{bad}");
    }
}

#[test]
fn blob_urls_are_rewritten_to_resolve() {
    let (url, rewritten) = normalise_url(
        "https://huggingface.co/Comfy-Org/stable-diffusion-v1-5-archive/blob/main/v1-5-pruned-emaonly-fp16.safetensors",
    )
    .unwrap();
    assert!(rewritten);
    assert_eq!(
        url,
        "https://huggingface.co/Comfy-Org/stable-diffusion-v1-5-archive/resolve/main/v1-5-pruned-emaonly-fp16.safetensors"
    );
    let (same, rewritten) =
        normalise_url("https://huggingface.co/a/b/resolve/main/blob/x.bin").unwrap();
    assert!(
        !rewritten,
        "only the /blob/ right after the repo is the page form"
    );
    assert_eq!(same, "https://huggingface.co/a/b/resolve/main/blob/x.bin");
    let (ds, rewritten) = normalise_url("https://hf.co/datasets/o/n/blob/main/f.bin").unwrap();
    assert!(rewritten);
    assert_eq!(ds, "https://hf.co/datasets/o/n/resolve/main/f.bin");
    assert!(normalise_url("ftp://example.com/x").is_err());
    assert!(normalise_url("not a url").is_err());
    assert!(normalise_url("file:///etc/passwd").is_err());
}

#[test]
fn sources_are_inferred_from_the_host() {
    assert_eq!(
        infer_source("https://huggingface.co/Lightricks/LTX-Video/resolve/main/x.safetensors"),
        FileSource::HuggingFace {
            repo: "Lightricks/LTX-Video".into(),
            revision: None
        }
    );
    let pinned = "0123456789abcdef0123456789abcdef01234567";
    assert_eq!(
        infer_source(&format!("https://hf.co/o/n/resolve/{pinned}/x.bin")),
        FileSource::HuggingFace {
            repo: "o/n".into(),
            revision: Some(pinned.into())
        }
    );
    assert_eq!(
        infer_source("https://civitai.com/api/download/models/1234"),
        FileSource::Civitai
    );
    assert_eq!(
        infer_source("https://example.com/model.safetensors"),
        FileSource::Direct
    );
}

#[test]
fn model_paths_are_validated() {
    assert!(validate_model_path("checkpoints/model.safetensors").is_ok());
    assert!(
        validate_model_path("text_encoders/PixArt/text_encoder/model-00001.safetensors").is_ok()
    );
    for bad in [
        "",
        "../../etc/passwd",
        "checkpoints/../x",
        "/etc/passwd",
        "checkpoints\\x.bin",
        "checkpoints//x.bin",
        "checkpoints/",
        "./x.bin",
        "C:/x.bin",
        "a/\u{0}b",
    ] {
        assert!(
            validate_model_path(bad).is_err(),
            "{bad:?} should be rejected"
        );
    }
}

#[test]
fn canonical_ids() {
    assert_eq!(canonical_id("LTX_VIDEO_T2V"), "ltx-video-t2v");
    assert_eq!(canonical_id("flux-dev-basic"), "flux-dev-basic");
}

#[test]
fn versions_compare_semver_ish() {
    assert!(version_newer("1.0.1", "1.0.0"));
    assert!(version_newer("1.10.0", "1.9.9"));
    assert!(version_newer("2", "1.9"));
    assert!(version_newer("v1.2.0", "1.1.9"));
    assert!(version_newer("1.0.0", "1.0.0-rc1"));
    assert!(version_newer("1.0.0-rc2", "1.0.0-rc1"));
    assert!(!version_newer("1.0.0", "1.0.0"));
    assert!(!version_newer("1.0", "1.0.0"));
    assert!(!version_newer("1.0.0+build5", "1.0.0"));
    assert!(!version_newer("0.9.0", "1.0.0"));
}

#[test]
fn vram_fit_cases() {
    let gpu24 = [24 * GIB];
    assert_eq!(vram_fit(Some(16.0), &gpu24), VramFit::Fits);
    assert_eq!(vram_fit(Some(20.4), &gpu24), VramFit::Fits); // exactly 85%
    assert_eq!(vram_fit(Some(22.0), &gpu24), VramFit::Tight);
    assert_eq!(vram_fit(Some(24.0), &gpu24), VramFit::Tight);
    assert_eq!(vram_fit(Some(24.5), &gpu24), VramFit::TooBig);
    assert_eq!(vram_fit(None, &gpu24), VramFit::Unknown);
    assert_eq!(vram_fit(Some(0.0), &gpu24), VramFit::Unknown);
    assert_eq!(vram_fit(Some(8.0), &[]), VramFit::Unknown);
    assert_eq!(vram_fit(Some(8.0), &[0]), VramFit::Unknown);
    // The largest GPU counts.
    assert_eq!(vram_fit(Some(40.0), &[8 * GIB, 80 * GIB]), VramFit::Fits);
    assert_eq!(
        serde_json::to_string(&VramFit::TooBig).unwrap(),
        "\"too_big\""
    );
}

#[test]
fn locate_finds_nested_fields() {
    let docker = "\
metadata:
  version: 1.5.0
presets:
  FIRST:
    name: First
    files:
    - path: a/b.bin
      url: https://example.com/b.bin
      size: 1GB
  SECOND:
    name: Second
    files:
    - path: a/c.bin
      size: 2GB
    - path: a/d.bin

      url: https://example.com/d.bin
      size: lots
";
    let at = |segs: FieldPath| locate(docker, &segs);
    let presets = FieldPath::root().key("presets");
    assert_eq!(at(presets.key("FIRST")), Some(4));
    assert_eq!(
        at(presets.key("FIRST").key("files").index(0).key("size")),
        Some(9)
    );
    assert_eq!(at(presets.key("SECOND").key("files").index(0)), Some(13));
    assert_eq!(
        at(presets.key("SECOND").key("files").index(1).key("size")),
        Some(18)
    );
    // A missing field points at its nearest parent that exists.
    assert_eq!(
        at(presets.key("SECOND").key("files").index(0).key("url")),
        Some(13)
    );
    assert_eq!(at(FieldPath::root().key("nothing")), None);

    let registry = "id: x\nversion: 1.0.0\nfiles:\n  - path: a.bin\n    size: 1GB\n  -\n    path: b.bin\n    size: 2GB\n";
    assert_eq!(
        locate(
            registry,
            &FieldPath::root().key("files").index(1).key("size")
        ),
        Some(8)
    );
    assert_eq!(
        locate(
            registry,
            &FieldPath::root().key("files").index(0).key("size")
        ),
        Some(5)
    );
}

#[test]
fn field_paths_print_like_the_documents() {
    let p = FieldPath::root()
        .key("presets")
        .key("FLUX_DEV")
        .key("files")
        .index(2)
        .key("size");
    assert_eq!(p.to_string(), "presets.FLUX_DEV.files[2].size");
}

const ONE_PRESET: &str = "\
id: my-preset
version: 1.2.0
name: Mine
category: Image Generation
type: image
files:
- path: checkpoints/mine.safetensors
  url: https://huggingface.co/me/mine/blob/main/mine.safetensors
  size: 2GB
  checksum:
    algorithm: SHA256
    value: ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789
- path: loras/extra.safetensors
  url: https://civitai.com/api/download/models/1
  size: 150MB
  optional: true
requirements:
  vram_gb: 12
  disk_gb: 2.15
";

#[test]
fn registry_preset_is_normalised() {
    let p =
        registry_format::parse_preset_yaml("x/preset.yaml", ONE_PRESET, CatalogLayer::Workspace)
            .unwrap();
    assert_eq!(p.id, "my-preset");
    assert_eq!(p.version.as_deref(), Some("1.2.0"));
    assert_eq!(
        p.download_bytes,
        Some(2 * GB + 150_000_000),
        "sum of file sizes when not declared"
    );
    assert_eq!(p.vram_gb, Some(12.0));
    assert_eq!(p.disk_bytes, Some(2_150_000_000));
    assert_eq!(
        p.files[0].url,
        "https://huggingface.co/me/mine/resolve/main/mine.safetensors"
    );
    assert_eq!(
        p.files[0].source,
        FileSource::HuggingFace {
            repo: "me/mine".into(),
            revision: None
        }
    );
    let checksum = p.files[0].checksum.as_ref().unwrap();
    assert_eq!(checksum.algorithm, ChecksumAlgorithm::Sha256);
    assert_eq!(
        checksum.value,
        "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789"
    );
    assert!(!p.files[0].optional);
    assert!(p.files[1].optional);
    assert_eq!(p.files[1].source, FileSource::Civitai);
    assert_eq!(p.layer, CatalogLayer::Workspace);
}

#[test]
fn bad_checksum_and_source_name_the_field_and_line() {
    let bad = ONE_PRESET.replace(
        "ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789",
        "abc",
    );
    let e = registry_format::parse_preset_yaml("x/preset.yaml", &bad, CatalogLayer::Builtin)
        .unwrap_err();
    assert_eq!(e.field.as_deref(), Some("files[0].checksum.value"));
    assert_eq!(e.line, Some(12));
    assert_eq!(e.file, "x/preset.yaml");

    let md5 = ONE_PRESET.replace("algorithm: SHA256", "algorithm: md5");
    let e = registry_format::parse_preset_yaml("x/preset.yaml", &md5, CatalogLayer::Builtin)
        .unwrap_err();
    assert!(e.message.contains("32 hex digits"), "{e}");

    let src = ONE_PRESET.replace(
        "  optional: true",
        "  optional: true\n  source:\n    type: ftp",
    );
    let e = registry_format::parse_preset_yaml("x/preset.yaml", &src, CatalogLayer::Builtin)
        .unwrap_err();
    assert_eq!(e.field.as_deref(), Some("files[1].source.type"));
    assert_eq!(e.line, Some(18));

    let no_version = ONE_PRESET.replace("version: 1.2.0\n", "");
    let e = registry_format::parse_preset_yaml("x/preset.yaml", &no_version, CatalogLayer::Builtin)
        .unwrap_err();
    assert_eq!(e.field.as_deref(), Some("version"));

    let bad_id = ONE_PRESET.replace("id: my-preset", "id: My_Preset");
    let e = registry_format::parse_preset_yaml("x/preset.yaml", &bad_id, CatalogLayer::Builtin)
        .unwrap_err();
    assert_eq!((e.field.as_deref(), e.line), (Some("id"), Some(1)));
}

#[test]
fn mirrors_are_normalised_and_a_bad_one_names_its_place() {
    let with = ONE_PRESET.replace(
        "  size: 150MB\n",
        "  size: 150MB\n  mirrors:\n  - https://huggingface.co/me/extra/blob/main/extra.safetensors\n  \
         - https://civitai.com/api/download/models/1\n  - https://mirror.example/extra.safetensors\n",
    );
    let p = registry_format::parse_preset_yaml("x/preset.yaml", &with, CatalogLayer::Workspace)
        .unwrap();
    assert!(p.files[0].mirrors.is_empty());
    assert_eq!(
        p.files[1].mirrors,
        [
            "https://huggingface.co/me/extra/resolve/main/extra.safetensors",
            "https://mirror.example/extra.safetensors"
        ],
        "normalised like `url`, the file's own URL left out"
    );

    let bad = with.replace("https://mirror.example/", "ftp://mirror.example/");
    let e = registry_format::parse_preset_yaml("x/preset.yaml", &bad, CatalogLayer::Workspace)
        .unwrap_err();
    assert_eq!(e.field.as_deref(), Some("files[1].mirrors[2]"));
    assert!(e.message.contains("not an http(s) URL"), "{e}");
}

#[test]
fn docker_semantic_errors_skip_only_the_bad_preset() {
    let text = "\
presets:
  GOOD_ONE:
    name: Good
    category: Image Generation
    type: image
    files:
    - path: checkpoints/good.safetensors
      url: https://example.com/good.safetensors
      size: 1GB
  BAD_SIZE:
    name: Bad
    category: Image Generation
    type: image
    files:
    - path: checkpoints/a.safetensors
      url: https://example.com/a.safetensors
      size: 1GB
    - path: checkpoints/b.safetensors
      url: https://example.com/b.safetensors
      size: huge
  BAD_PATH:
    name: Bad path
    category: Image Generation
    type: image
    files:
    - path: ../../etc/passwd
      url: https://example.com/x
";
    let parsed = docker_format::parse("ws/presets.yaml", text, CatalogLayer::Workspace);
    assert_eq!(parsed.presets.len(), 1);
    assert_eq!(parsed.presets[0].id, "good-one");
    assert_eq!(parsed.presets[0].aliases, vec!["GOOD_ONE".to_string()]);
    assert_eq!(parsed.problems.len(), 2);
    let size = &parsed.problems[0];
    assert_eq!(
        size.field.as_deref(),
        Some("presets.BAD_SIZE.files[1].size")
    );
    assert_eq!(size.line, Some(20));
    assert_eq!(size.file, "ws/presets.yaml");
    let path = &parsed.problems[1];
    assert_eq!(
        path.field.as_deref(),
        Some("presets.BAD_PATH.files[0].path")
    );
    assert_eq!(path.line, Some(26));
    assert_eq!(
        path.to_string(),
        format!(
            "ws/presets.yaml:26: presets.BAD_PATH.files[0].path: {}",
            path.message
        )
    );
}

#[test]
fn yaml_syntax_error_is_one_problem_with_the_line() {
    let text = "presets:\n  A:\n    name: [unclosed\n    type: image\n";
    let parsed = docker_format::parse("p.yaml", text, CatalogLayer::Workspace);
    assert!(parsed.presets.is_empty());
    assert_eq!(parsed.problems.len(), 1);
    assert!(parsed.problems[0].line.is_some());
    assert!(
        parsed.problems[0].message.contains("YAML"),
        "{}",
        parsed.problems[0]
    );
}

#[test]
fn builtin_catalog_loads_every_real_preset() {
    let catalog = Catalog::builtin();
    assert!(catalog.problems.is_empty(), "{:#?}", catalog.problems);
    assert_eq!(catalog.stats.len(), 1);
    let stats = &catalog.stats[0];
    assert_eq!(
        stats.registry_presets, 61,
        "comfyui-presets/presets/**/preset.yaml"
    );
    assert_eq!(stats.docker_presets, 56, "comfyui-docker/presets.yaml");
    assert_eq!(stats.merged, 56, "every docker id has a registry twin");
    assert_eq!(stats.index_only, 0);
    assert_eq!(catalog.presets.len(), 61);
    assert_eq!(catalog.registry.len(), 60, "registry.json entries");
    assert_eq!(catalog.model_index.len(), 80);
    assert!(catalog
        .presets
        .values()
        .all(|p| p.layer == CatalogLayer::Builtin && !p.files.is_empty()));
    assert!(catalog
        .presets
        .values()
        .all(|p| p.version.as_deref() == Some("1.0.0")));
    assert_eq!(
        catalog
            .presets
            .values()
            .map(|p| p.files.len())
            .sum::<usize>(),
        203
    );
    assert!(catalog
        .presets
        .values()
        .flat_map(|p| &p.files)
        .all(|f| f.size_bytes.is_some()));
    assert!(catalog
        .presets
        .values()
        .flat_map(|p| &p.files)
        .all(|f| !f.url.contains("/blob/") && matches!(f.source, FileSource::HuggingFace { .. })));
}

#[test]
fn builtin_merges_docker_ids_as_aliases() {
    let catalog = Catalog::builtin();
    let by_docker = catalog.get("LTX_VIDEO_T2V").expect("docker id");
    let by_registry = catalog.get("ltx-video-t2v").expect("registry id");
    assert_eq!(by_docker.id, "ltx-video-t2v");
    assert_eq!(by_docker, by_registry);
    assert_eq!(by_docker.aliases, vec!["LTX_VIDEO_T2V".to_string()]);
    assert!(
        by_docker
            .origin
            .ends_with("video/ltx-video-t2v/preset.yaml"),
        "the registry definition wins"
    );
    assert_eq!(
        catalog.get("ltx_video_t2v").map(|p| p.id.as_str()),
        Some("ltx-video-t2v")
    );
    assert_eq!(
        catalog.get("Ltx_Video_T2V").map(|p| p.id.as_str()),
        Some("ltx-video-t2v")
    );
    assert!(catalog.get("no-such-preset").is_none());
    // Registry-only presets have no docker alias.
    assert!(catalog.get("z-image-turbo").unwrap().aliases.is_empty());
}

#[test]
fn builtin_normalises_the_quirks_of_the_real_data() {
    let catalog = Catalog::builtin();
    let lora = catalog.get("SD1_5_LORA_BASIC").unwrap();
    assert!(
        lora.files[0].url.contains("/resolve/main/"),
        "{}",
        lora.files[0].url
    );
    // The YAML lacks vram_gb; registry.json has it.
    assert_eq!(
        catalog.get("qwen-image-complete").unwrap().vram_gb,
        Some(16.0)
    );
    // Neither states requirements: unknown, not 0.
    let nsfw = catalog.get("wainsfw-v140").unwrap();
    assert_eq!((nsfw.vram_gb, nsfw.disk_bytes), (None, None));
    assert_eq!(nsfw.download_bytes, Some(538_000_000));
    let optional: Vec<&str> = catalog
        .presets
        .values()
        .flat_map(|p| {
            p.files
                .iter()
                .filter(|f| f.optional)
                .map(move |_| p.id.as_str())
        })
        .collect();
    assert_eq!(
        optional,
        [
            "qwen-image-2512",
            "qwen-image-2512",
            "qwen-image-edit-2511",
            "qwen-image-edit-2511"
        ]
    );
    assert_eq!(
        catalog.get("ace-step-v1-3-5b").unwrap().download_bytes,
        Some(7_170_000_000)
    );
}

#[test]
fn models_map_back_to_presets() {
    let catalog = Catalog::builtin();
    assert_eq!(
        catalog.preset_for_model("checkpoints/ltx-video-2b-v0.9.5.safetensors"),
        Some("ltx-video-i2v")
    );
    // Not in model_index.json: found by scanning the presets' files.
    assert_eq!(
        catalog.preset_for_model("diffusion_models/qwen_image_edit_2509_fp8_e4m3fn.safetensors"),
        Some("qwen-image-complete")
    );
    assert_eq!(
        catalog.preset_for_model("checkpoints/unknown.safetensors"),
        None
    );
}

#[test]
fn registry_versions_drive_update_checks() {
    let mut catalog = Catalog::builtin();
    assert_eq!(
        catalog.registry_version("flux-dev-basic"),
        None,
        "the real registry.json has no per-preset version"
    );
    assert!(!catalog.update_available("flux-dev-basic", "1.0.0"));
    let remote =
        r#"{"presets": {"flux-dev-basic": {"version": "1.1.0", "update_available": true}}}"#;
    let doc = registry_format::parse_registry_json("remote", remote, CatalogLayer::Remote).unwrap();
    catalog.apply_layer(
        CatalogLayer::Remote,
        LayerInput {
            entries: doc.entries,
            ..LayerInput::default()
        },
    );
    assert_eq!(catalog.registry_version("FLUX_DEV_BASIC"), Some("1.1.0"));
    assert_eq!(catalog.latest_version("flux-dev-basic"), Some("1.1.0"));
    assert!(catalog.update_available("flux-dev-basic", "1.0.0"));
    assert!(!catalog.update_available("flux-dev-basic", "1.1.0"));
    // The definition itself is still the built-in one (the entry embeds no preset).
    assert_eq!(
        catalog.get("flux-dev-basic").unwrap().layer,
        CatalogLayer::Builtin
    );
}
