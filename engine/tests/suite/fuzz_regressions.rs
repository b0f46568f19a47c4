//! The fuzz targets' inputs on the stable toolchain, without libFuzzer (see `fuzz/README.md`):
//! every file of the committed corpora (`fuzz/corpus/<target>/`) and of the found crashes
//! (`fuzz/regressions/<target>/`) goes once through the same `engine::fuzzing` entry point
//! that the target calls. A panic here is a bug the fuzzer found (or would find again).

use std::fs;
use std::path::{Path, PathBuf};

use engine::fuzzing;
use engine::workflows::{WorkflowContext, WorkflowLibrary};
use engine::workspace::WorkspaceLayout;
use serde_json::json;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// The files of `fuzz/corpus/<target>/` and `fuzz/regressions/<target>/`, sorted.
fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    for kind in ["corpus", "regressions"] {
        let Ok(dir) = fs::read_dir(fuzz_dir().join(kind).join(target)) else {
            continue;
        };
        for entry in dir {
            let path = entry.unwrap().path();
            if path.is_file() {
                files.push(path);
            }
        }
    }
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let bytes = fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect()
}

/// Runs every input; on a panic, names the file that caused it.
fn replay(target: &str, min_corpus: usize, run: impl Fn(&[u8]) + std::panic::RefUnwindSafe) {
    let inputs = inputs(target);
    assert!(
        inputs.len() >= min_corpus,
        "fuzz/corpus/{target}/ has {} files; expected the committed corpus",
        inputs.len()
    );
    for (path, bytes) in &inputs {
        if std::panic::catch_unwind(|| run(bytes)).is_err() {
            panic!("{} panics in engine::fuzzing::{target}", path.display());
        }
    }
}

#[test]
fn convert_corpus_replays() {
    let info = fuzzing::recorded_object_info();
    replay("convert", 20, |b| fuzzing::convert(b, info));
}

#[test]
fn presets_corpus_replays() {
    replay("presets", 10, fuzzing::presets);
}

#[test]
fn png_meta_corpus_replays() {
    replay("png_meta", 5, fuzzing::png_meta);
}

#[test]
fn import_corpus_replays() {
    let info = fuzzing::recorded_object_info();
    replay("import", 10, |b| fuzzing::import(b, info));
}

/// Found by the `import` target (`regressions/import/crash-c851…`): a name whose fifth byte
/// from the end is inside a multi-byte character made the `.json` suffix check slice off a
/// character boundary and panic. Reachable by saving or renaming a workflow under such a name
/// and by any such workflow id in a URL.
#[test]
fn names_ending_inside_a_multibyte_character_are_names_not_panics() {
    fuzzing::import(
        b"\xffty\x1b\0tet =a workflow",
        fuzzing::recorded_object_info(),
    );

    let dir = tempfile::tempdir().unwrap();
    let layout = WorkspaceLayout::new(dir.path());
    engine::workspace::create_tree(&layout).unwrap();
    let library = WorkflowLibrary::new(&layout);
    let ctx = WorkflowContext::new();
    let prompt = json!({"1": {"class_type": "KSampler", "inputs": {}}});
    for (typed, stem) in [
        ("€json", "€json"),
        ("x€json", "x€json"),
        ("été.JSON", "été"),
    ] {
        let saved = library.save(typed, &prompt, &ctx).unwrap();
        assert_eq!(saved.name, stem, "saved as {typed:?}");
        let (loaded, _) = library.load(&saved.id, &ctx).unwrap();
        assert_eq!(loaded.id, saved.id);
        let renamed = library
            .rename(&saved.id, &format!("ß{typed}"), &ctx)
            .unwrap();
        assert_eq!(renamed.name, format!("ß{stem}"));
    }
    assert!(library.load("user/ab€", &ctx).is_err());
}

/// Found by the `import` target (`regressions/import/crash-8ec7…`): node ids were ordered
/// numbers by value but a number and a word by text, so `9` < `10` < `1a` < `9`, and sorting
/// them panicked (Rust's sort checks for a total order) — in the analysis of an import and in
/// the checks made before a prompt is queued.
#[test]
fn node_ids_of_mixed_kinds_sort_without_panicking() {
    let info = fuzzing::recorded_object_info();
    let mut prompt = serde_json::Map::new();
    for id in [
        "9", "10", "1a", "b", "10:x", "10:2", "+3", "03", "-1", "", "a:1",
    ] {
        prompt.insert(id.into(), json!({"class_type": "KSampler", "inputs": {}}));
    }
    let bytes = serde_json::to_vec(&prompt).unwrap();
    fuzzing::import(&bytes, info);
    fuzzing::convert(&bytes, info);
    let prompt = engine::comfy::convert::ApiPrompt::from_value(prompt.into()).unwrap();
    let _ = engine::comfy::convert::check_prompt(&prompt, info, &|_, _| None);
}
