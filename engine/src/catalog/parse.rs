//! What both formats share: reading fields out of a YAML value with precise error paths, and
//! turning one preset mapping into a normalised [`Preset`].

use serde_yaml::{Mapping, Value};

use super::locate::{locate, FieldPath};
use super::size::{gb_to_bytes, parse_size};
use super::{
    CatalogError, CatalogLayer, Checksum, ChecksumAlgorithm, FileSource, Preset, PresetFile,
};

/// The document being read: its label for messages and its text for line numbers.
pub(crate) struct Doc<'a> {
    pub file: &'a str,
    /// `None` for documents that are not block YAML (JSON); no line numbers then.
    pub text: Option<&'a str>,
}

impl Doc<'_> {
    /// An error at `path`, with the line of the deepest part of the path found in the text.
    pub(crate) fn err(&self, path: &FieldPath, message: impl Into<String>) -> CatalogError {
        CatalogError {
            file: self.file.to_string(),
            line: self.text.and_then(|t| locate(t, path)),
            field: (!path.is_root()).then(|| path.to_string()),
            message: message.into(),
        }
    }

    /// A whole-file parse error, with the parser's line.
    pub(crate) fn yaml_err(&self, e: &serde_yaml::Error) -> CatalogError {
        CatalogError {
            file: self.file.to_string(),
            line: e.location().map(|l| l.line()),
            field: None,
            message: format!("YAML syntax error: {e}"),
        }
    }
}

/// Which format a preset mapping is in; decides the required fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    /// comfyui-docker `presets.yaml` entry (id is the key, no version).
    Docker,
    /// comfyui-presets `preset.yaml` (own `id` and `version`).
    Registry,
}

/// Lower-case, `_` → `-`: `FLUX_DEV_BASIC` → `flux-dev-basic`.
pub fn canonical_id(raw: &str) -> String {
    raw.trim().to_ascii_lowercase().replace('_', "-")
}

fn is_null(v: Option<&Value>) -> bool {
    matches!(v, None | Some(Value::Null))
}

fn scalar_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Tagged(t) => scalar_string(&t.value),
        _ => None,
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

/// Field readers bound to one document.
pub(crate) struct Reader<'d, 'a> {
    pub doc: &'d Doc<'a>,
}

impl Reader<'_, '_> {
    pub(crate) fn opt_str(
        &self,
        map: &Mapping,
        path: &FieldPath,
        key: &str,
    ) -> Result<Option<String>, CatalogError> {
        let v = map.get(key);
        if is_null(v) {
            return Ok(None);
        }
        let v = v.expect("checked");
        scalar_string(v)
            .map(|s| Some(s.trim().to_string()))
            .ok_or_else(|| {
                self.doc.err(
                    &path.key(key),
                    format!("expected text, found {}", type_name(v)),
                )
            })
    }

    pub(crate) fn req_str(
        &self,
        map: &Mapping,
        path: &FieldPath,
        key: &str,
    ) -> Result<String, CatalogError> {
        match self.opt_str(map, path, key)? {
            Some(s) if !s.is_empty() => Ok(s),
            Some(_) => Err(self.doc.err(&path.key(key), "must not be empty")),
            None => Err(self.doc.err(&path.key(key), "required field is missing")),
        }
    }

    pub(crate) fn opt_bool(
        &self,
        map: &Mapping,
        path: &FieldPath,
        key: &str,
    ) -> Result<Option<bool>, CatalogError> {
        match map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(self.doc.err(
                &path.key(key),
                format!("expected true or false, found {}", type_name(v)),
            )),
        }
    }

    pub(crate) fn opt_number(
        &self,
        map: &Mapping,
        path: &FieldPath,
        key: &str,
    ) -> Result<Option<f64>, CatalogError> {
        let v = match map.get(key) {
            None | Some(Value::Null) => return Ok(None),
            Some(v) => v,
        };
        let n = match v {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse::<f64>().ok(),
            _ => None,
        };
        match n {
            Some(n) if n.is_finite() && n >= 0.0 => Ok(Some(n)),
            _ => Err(self.doc.err(
                &path.key(key),
                format!("expected a number ≥ 0, found {}", describe(v)),
            )),
        }
    }

    /// A size: a string like "4.9GB" or a plain number of bytes.
    pub(crate) fn opt_size(
        &self,
        map: &Mapping,
        path: &FieldPath,
        key: &str,
    ) -> Result<Option<u64>, CatalogError> {
        let v = match map.get(key) {
            None | Some(Value::Null) => return Ok(None),
            Some(v) => v,
        };
        match v {
            Value::Number(n) => n
                .as_u64()
                .or_else(|| {
                    n.as_f64()
                        .filter(|f| f.is_finite() && *f >= 0.0)
                        .map(|f| f.round() as u64)
                })
                .map(Some)
                .ok_or_else(|| self.doc.err(&path.key(key), format!("`{n}` is not a size"))),
            Value::String(s) => parse_size(s)
                .map(Some)
                .map_err(|m| self.doc.err(&path.key(key), m)),
            other => Err(self.doc.err(
                &path.key(key),
                format!("expected a size like 4.9GB, found {}", type_name(other)),
            )),
        }
    }

    pub(crate) fn str_list(
        &self,
        map: &Mapping,
        path: &FieldPath,
        key: &str,
    ) -> Result<Vec<String>, CatalogError> {
        match map.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Sequence(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    scalar_string(v).ok_or_else(|| {
                        self.doc.err(
                            &path.key(key).index(i),
                            format!("expected text, found {}", type_name(v)),
                        )
                    })
                })
                .collect(),
            Some(v) => Err(self.doc.err(
                &path.key(key),
                format!("expected a list, found {}", type_name(v)),
            )),
        }
    }

    pub(crate) fn opt_map<'v>(
        &self,
        map: &'v Mapping,
        path: &FieldPath,
        key: &str,
    ) -> Result<Option<&'v Mapping>, CatalogError> {
        match map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Mapping(m)) => Ok(Some(m)),
            Some(v) => Err(self.doc.err(
                &path.key(key),
                format!("expected a mapping, found {}", type_name(v)),
            )),
        }
    }
}

fn describe(v: &Value) -> String {
    scalar_string(v)
        .map(|s| format!("`{s}`"))
        .unwrap_or_else(|| type_name(v).to_string())
}

/// A value as a mapping, or an error naming what it is instead.
pub(crate) fn as_mapping<'v>(
    doc: &Doc<'_>,
    path: &FieldPath,
    v: &'v Value,
) -> Result<&'v Mapping, CatalogError> {
    match v {
        Value::Mapping(m) => Ok(m),
        other => Err(doc.err(
            path,
            format!("expected a mapping, found {}", type_name(other)),
        )),
    }
}

/// Checks a model path: relative, `/`-separated, no `..`, `.` or empty components.
pub fn validate_model_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("the path is empty".into());
    }
    if path.contains('\\') {
        return Err(format!("`{path}` contains a backslash; use `/`"));
    }
    if path.starts_with('/') {
        return Err(format!(
            "`{path}` is absolute; paths are relative to the models folder"
        ));
    }
    if path.len() >= 2 && path.as_bytes()[1] == b':' && path.as_bytes()[0].is_ascii_alphabetic() {
        return Err(format!("`{path}` looks like a Windows drive path"));
    }
    if path.chars().any(char::is_control) {
        return Err(format!(
            "`{}` contains control characters",
            path.escape_debug()
        ));
    }
    for component in path.split('/') {
        match component {
            "" => return Err(format!("`{path}` has an empty component")),
            "." | ".." => return Err(format!("`{path}` may not contain `{component}`")),
            _ => {}
        }
    }
    Ok(())
}

thread_local! {
    /// Hugging Face `/blob/` URLs rewritten on this thread since the last [`take_rewritten`].
    /// A layer is read and applied on one thread, without awaiting, so the count is that layer's.
    static REWRITTEN: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// How many URLs were rewritten on this thread since the last call; resets the count.
pub(crate) fn take_rewritten() -> usize {
    REWRITTEN.with(|n| n.replace(0))
}

/// Checks an URL and rewrites Hugging Face `/blob/` page links to `/resolve/` file links.
/// Returns the URL to use and whether it was rewritten.
pub fn normalise_url(raw: &str) -> Result<(String, bool), String> {
    let raw = raw.trim();
    let mut url = url::Url::parse(raw).map_err(|e| format!("`{raw}` is not a valid URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("`{raw}` is not an http(s) URL"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("`{raw}` has no host"));
    }
    if is_hf_host(&url) {
        let segments: Vec<String> = url
            .path_segments()
            .map(|s| s.map(str::to_string).collect())
            .unwrap_or_default();
        let offset = usize::from(matches!(
            segments.first().map(String::as_str),
            Some("datasets" | "spaces")
        ));
        if segments.get(offset + 2).map(String::as_str) == Some("blob") {
            let mut rewritten = segments.clone();
            rewritten[offset + 2] = "resolve".to_string();
            url.set_path(&rewritten.join("/"));
            return Ok((url.to_string(), true));
        }
    }
    Ok((raw.to_string(), false))
}

fn is_hf_host(url: &url::Url) -> bool {
    matches!(
        url.host_str(),
        Some("huggingface.co" | "www.huggingface.co" | "hf.co")
    )
}

/// The Hugging Face repository (`owner/name`, `datasets/owner/name`) and pinned commit (only a
/// 40-hex revision counts as a pin) of a `/resolve/` URL.
fn hf_repo_of(url: &str) -> Option<(String, Option<String>)> {
    let url = url::Url::parse(url).ok()?;
    if !is_hf_host(&url) {
        return None;
    }
    let segments: Vec<&str> = url.path_segments()?.collect();
    let (prefix, rest) = match segments.first() {
        Some(&kind @ ("datasets" | "spaces")) => (Some(kind), &segments[1..]),
        _ => (None, &segments[..]),
    };
    if rest.len() < 2 || rest[0].is_empty() || rest[1].is_empty() {
        return None;
    }
    let repo = match prefix {
        Some(p) => format!("{p}/{}/{}", rest[0], rest[1]),
        None => format!("{}/{}", rest[0], rest[1]),
    };
    let revision = match (rest.get(2), rest.get(3)) {
        (Some(&("resolve" | "blob")), Some(rev))
            if rev.len() == 40 && rev.chars().all(|c| c.is_ascii_hexdigit()) =>
        {
            Some(rev.to_ascii_lowercase())
        }
        _ => None,
    };
    Some((repo, revision))
}

/// The host of a file decides its source when the preset does not say.
pub fn infer_source(url: &str) -> FileSource {
    if let Some((repo, revision)) = hf_repo_of(url) {
        return FileSource::HuggingFace { repo, revision };
    }
    let host = url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase));
    match host.as_deref() {
        Some("civitai.com" | "www.civitai.com") => FileSource::Civitai,
        _ => FileSource::Direct,
    }
}

/// Reads one preset mapping (a `presets.<ID>` entry or a whole `preset.yaml`) into a [`Preset`].
pub(crate) fn build_preset(
    doc: &Doc<'_>,
    base: &FieldPath,
    map: &Mapping,
    id: String,
    aliases: Vec<String>,
    format: Format,
    layer: CatalogLayer,
) -> Result<Preset, CatalogError> {
    let r = Reader { doc };
    let name = r.req_str(map, base, "name")?;
    let category = r.req_str(map, base, "category")?;
    let kind = r.req_str(map, base, "type")?;
    let description = r.opt_str(map, base, "description")?.unwrap_or_default();
    let use_case = r.opt_str(map, base, "use_case")?.filter(|s| !s.is_empty());
    let tags = r.str_list(map, base, "tags")?;
    let version = match format {
        Format::Registry => Some(r.req_str(map, base, "version")?),
        Format::Docker => r.opt_str(map, base, "version")?,
    };
    let declared_download = r.opt_size(map, base, "download_size")?;

    let (mut vram_gb, mut disk_bytes) = (None, None);
    if let Some(req) = r.opt_map(map, base, "requirements")? {
        let path = base.key("requirements");
        // 0 means "not stated" in this data (the registry writes 0 for unknown VRAM).
        vram_gb = r
            .opt_number(req, &path, "vram_gb")?
            .filter(|v| *v > 0.0)
            .map(|v| v as f32);
        disk_bytes = r
            .opt_number(req, &path, "disk_gb")?
            .filter(|v| *v > 0.0)
            .and_then(gb_to_bytes);
    }

    let files_path = base.key("files");
    let files_value = match map.get("files") {
        None | Some(Value::Null) => return Err(doc.err(&files_path, "required field is missing")),
        Some(Value::Sequence(items)) if items.is_empty() => {
            return Err(doc.err(&files_path, "a preset needs at least one file"))
        }
        Some(Value::Sequence(items)) => items,
        Some(v) => {
            return Err(doc.err(
                &files_path,
                format!("expected a list, found {}", type_name(v)),
            ))
        }
    };
    let mut files = Vec::with_capacity(files_value.len());
    for (i, item) in files_value.iter().enumerate() {
        let path = files_path.index(i);
        let fmap = as_mapping(doc, &path, item)?;
        files.push(build_file(&r, &path, fmap, &id)?);
    }

    let download_bytes =
        declared_download.or_else(|| files.iter().map(|f| f.size_bytes).sum::<Option<u64>>());
    Ok(Preset {
        id,
        aliases,
        name,
        category,
        kind,
        description,
        use_case,
        tags,
        version,
        files,
        download_bytes,
        vram_gb,
        disk_bytes,
        layer,
        origin: doc.file.to_string(),
    })
}

fn build_file(
    r: &Reader<'_, '_>,
    base: &FieldPath,
    map: &Mapping,
    preset_id: &str,
) -> Result<PresetFile, CatalogError> {
    let doc = r.doc;
    let path = r.req_str(map, base, "path")?;
    validate_model_path(&path).map_err(|m| doc.err(&base.key("path"), m))?;
    let raw_url = r.req_str(map, base, "url")?;
    let (url, rewritten) = normalise_url(&raw_url).map_err(|m| doc.err(&base.key("url"), m))?;
    if rewritten {
        // One line per file at debug; the layer logs how many at info (see `take_rewritten`).
        tracing::debug!(preset = %preset_id, file = %path, from = %raw_url, to = %url, "Hugging Face /blob/ URL rewritten to /resolve/");
        REWRITTEN.with(|n| n.set(n.get() + 1));
    }
    let mut mirrors: Vec<String> = Vec::new();
    for (i, raw) in r.str_list(map, base, "mirrors")?.iter().enumerate() {
        let (mirror, _) =
            normalise_url(raw).map_err(|m| doc.err(&base.key("mirrors").index(i), m))?;
        if mirror != url && !mirrors.contains(&mirror) {
            mirrors.push(mirror);
        }
    }
    let size_bytes = r.opt_size(map, base, "size")?;
    let optional = r.opt_bool(map, base, "optional")?.unwrap_or(false);

    let source = match r.opt_map(map, base, "source")? {
        None => infer_source(&url),
        Some(src) => {
            let sp = base.key("source");
            let kind = r.opt_str(src, &sp, "type")?.map(|s| s.to_ascii_lowercase());
            let repo = r.opt_str(src, &sp, "repo")?.filter(|s| !s.is_empty());
            let revision = r.opt_str(src, &sp, "revision")?.filter(|s| !s.is_empty());
            match kind.as_deref() {
                None => match infer_source(&url) {
                    FileSource::HuggingFace {
                        repo: inferred,
                        revision: pinned,
                    } => FileSource::HuggingFace {
                        repo: repo.unwrap_or(inferred),
                        revision: revision.or(pinned),
                    },
                    other => other,
                },
                Some("huggingface" | "hf") => {
                    let inferred = hf_repo_of(&url);
                    let repo = repo
                        .or_else(|| inferred.as_ref().map(|(r, _)| r.clone()))
                        .ok_or_else(|| {
                            doc.err(
                                &sp.key("repo"),
                                "a huggingface source needs `repo` (the URL does not name one)",
                            )
                        })?;
                    FileSource::HuggingFace {
                        repo,
                        revision: revision.or_else(|| inferred.and_then(|(_, rev)| rev)),
                    }
                }
                Some("civitai") => FileSource::Civitai,
                Some("direct") => FileSource::Direct,
                Some(other) => {
                    return Err(doc.err(
                        &sp.key("type"),
                        format!(
                        "unknown source type `{other}` (expected huggingface, civitai or direct)"
                    ),
                    ))
                }
            }
        }
    };

    let checksum = match r.opt_map(map, base, "checksum")? {
        None => None,
        Some(c) => {
            let cp = base.key("checksum");
            let algorithm = match r
                .req_str(c, &cp, "algorithm")?
                .to_ascii_lowercase()
                .as_str()
            {
                "sha256" => ChecksumAlgorithm::Sha256,
                "md5" => ChecksumAlgorithm::Md5,
                other => {
                    return Err(doc.err(
                        &cp.key("algorithm"),
                        format!("unknown algorithm `{other}` (expected sha256 or md5)"),
                    ))
                }
            };
            let value = r.req_str(c, &cp, "value")?.to_ascii_lowercase();
            let want = match algorithm {
                ChecksumAlgorithm::Sha256 => 64,
                ChecksumAlgorithm::Md5 => 32,
            };
            if value.len() != want || !value.chars().all(|ch| ch.is_ascii_hexdigit()) {
                return Err(doc.err(
                    &cp.key("value"),
                    format!(
                        "expected {want} hex digits, found `{value}` ({} characters)",
                        value.chars().count()
                    ),
                ));
            }
            Some(Checksum { algorithm, value })
        }
    };

    Ok(PresetFile {
        path,
        url,
        mirrors,
        size_bytes,
        optional,
        checksum,
        source,
    })
}
