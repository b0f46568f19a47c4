//! Download links that ComfyUI's frontend stores in a workflow: a `models` list
//! (`name`, `url`, `directory`, optional `hash` + `hash_type`) at the top level and in each
//! node's `properties.models` (sub-graph nodes included). Also the links a user pastes, made
//! into direct download URLs.

use serde_json::Value;

use crate::catalog::{Checksum, ChecksumAlgorithm};

/// One model file a workflow says where to download.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelLink {
    /// The file name as the loader picks it (may hold `/` for a sub-folder).
    pub name: String,
    pub url: String,
    /// Other URLs of the same file, tried in order after `url` (comfydeck's `mirrors` list in
    /// the entry; ComfyUI ignores it).
    pub mirrors: Vec<String>,
    /// ComfyUI's folder name (`checkpoints`, `loras`, …).
    pub directory: String,
    /// The file's hash, when the workflow gives a SHA-256 one.
    pub checksum: Option<Checksum>,
}

/// Every link of `workflow`, first mention first, one per `(directory, name)`. Entries without
/// a name, an http(s) URL or a directory are left out.
pub fn model_links(workflow: &Value) -> Vec<ModelLink> {
    let mut links: Vec<ModelLink> = Vec::new();
    let mut add = |list: Option<&Value>| {
        for entry in list.and_then(Value::as_array).into_iter().flatten() {
            let Some(link) = parse_entry(entry) else {
                continue;
            };
            if !links
                .iter()
                .any(|l| l.directory == link.directory && l.name == link.name)
            {
                links.push(link);
            }
        }
    };
    add(workflow.get("models"));
    let subgraphs = workflow
        .pointer("/definitions/subgraphs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|g| g.get("nodes"));
    for nodes in std::iter::once(workflow.get("nodes")).chain(subgraphs.map(Some)) {
        for node in nodes.and_then(Value::as_array).into_iter().flatten() {
            add(node.pointer("/properties/models"));
        }
    }
    links
}

fn parse_entry(entry: &Value) -> Option<ModelLink> {
    let text = |key: &str| {
        entry
            .get(key)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    let name = text("name")?.replace('\\', "/");
    let url = text("url").filter(|u| is_http(u))?.to_string();
    let directory = text("directory")?.trim_matches('/').to_string();
    let checksum = match (text("hash"), text("hash_type").map(str::to_ascii_lowercase)) {
        (Some(hash), Some(kind)) if kind == "sha256" && is_sha256(hash) => Some(Checksum {
            algorithm: ChecksumAlgorithm::Sha256,
            value: hash.to_ascii_lowercase(),
        }),
        _ => None,
    };
    let mirrors = entry
        .get("mirrors")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::trim)
        .filter(|u| is_http(u) && *u != url)
        .map(str::to_string)
        .collect();
    Some(ModelLink {
        name,
        url,
        mirrors,
        directory,
        checksum,
    })
}

fn is_http(url: &str) -> bool {
    url.starts_with("https://") || url.starts_with("http://")
}

fn is_sha256(hash: &str) -> bool {
    hash.len() == 64 && hash.chars().all(|c| c.is_ascii_hexdigit())
}

/// A link a user pasted for a missing file, as a direct download URL: a Hugging Face page
/// (`…/blob/main/x.safetensors`) becomes its `resolve` URL, a CivitAI model page with
/// `?modelVersionId=N` becomes `…/api/download/models/N`. Any other http(s) URL is taken as
/// it is; anything else is refused with the reason.
pub fn download_url_of(pasted: &str) -> Result<String, String> {
    let url = pasted.trim();
    let parsed = url::Url::parse(url)
        .map_err(|_| format!("{url:?} is not a link: paste a Hugging Face or CivitAI URL"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!(
            "{url:?} is not an http(s) link: paste a Hugging Face or CivitAI URL"
        ));
    }
    let host = parsed.host_str().unwrap_or_default().to_ascii_lowercase();
    if host == "huggingface.co" || host.ends_with(".huggingface.co") {
        if let Some((repo, file)) = parsed.path().split_once("/blob/") {
            return Ok(format!("https://huggingface.co{repo}/resolve/{file}"));
        }
    }
    if (host == "civitai.com" || host.ends_with(".civitai.com"))
        && parsed.path().starts_with("/models/")
    {
        {
            let version = parsed
                .query_pairs()
                .find(|(k, _)| k == "modelVersionId")
                .map(|(_, v)| v.to_string())
                .filter(|v| !v.is_empty() && v.chars().all(|c| c.is_ascii_digit()));
            return match version {
                Some(v) => Ok(format!("https://civitai.com/api/download/models/{v}")),
                None => Err(
                    "this CivitAI page names no version: open the version you want and copy \
                     its link (it has ?modelVersionId=…), or its download link"
                        .into(),
                ),
            };
        }
    }
    Ok(parsed.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn links_are_read_from_the_top_level_nodes_and_subgraphs_once_each() {
        let hash = "AB".repeat(32);
        let workflow = json!({
            "models": [
                {"name": "a.safetensors", "url": "https://huggingface.co/x/y/resolve/main/a.safetensors", "directory": "checkpoints", "hash": hash, "hash_type": "SHA256"},
                {"name": "no-url.safetensors", "directory": "loras"},
                {"name": "ftp.safetensors", "url": "ftp://host/ftp.safetensors", "directory": "loras"}
            ],
            "nodes": [
                {"id": 1, "properties": {"models": [
                    {"name": "a.safetensors", "url": "https://elsewhere/a", "directory": "checkpoints"},
                    {"name": "sub\\b.safetensors", "url": "https://h/b", "directory": "/loras/",
                     "mirrors": ["https://m/b", "ftp://m/b", "https://h/b", 3]}
                ]}}
            ],
            "definitions": {"subgraphs": [{"nodes": [
                {"id": 2, "properties": {"models": [{"name": "c.pt", "url": "http://h/c", "directory": "vae", "hash": "short", "hash_type": "sha256"}]}}
            ]}]}
        });
        let links = model_links(&workflow);
        let names: Vec<_> = links
            .iter()
            .map(|l| format!("{}/{}", l.directory, l.name))
            .collect();
        assert_eq!(
            names,
            [
                "checkpoints/a.safetensors",
                "loras/sub/b.safetensors",
                "vae/c.pt"
            ]
        );
        assert_eq!(
            links[0].url,
            "https://huggingface.co/x/y/resolve/main/a.safetensors"
        );
        assert_eq!(links[0].checksum.as_ref().unwrap().value, "ab".repeat(32));
        assert!(links[0].mirrors.is_empty());
        // Only other http(s) URLs are mirrors.
        assert_eq!(links[1].mirrors, ["https://m/b"]);
        // A hash that is not a SHA-256 is not a check.
        assert_eq!(links[2].checksum, None);
    }

    #[test]
    fn pasted_links_become_download_urls_or_say_why_not() {
        assert_eq!(
            download_url_of(" https://huggingface.co/org/repo/blob/main/sub/x.safetensors ")
                .unwrap(),
            "https://huggingface.co/org/repo/resolve/main/sub/x.safetensors"
        );
        assert_eq!(
            download_url_of("https://civitai.com/models/123/name?modelVersionId=456").unwrap(),
            "https://civitai.com/api/download/models/456"
        );
        assert!(download_url_of("https://civitai.com/models/123")
            .unwrap_err()
            .contains("modelVersionId"));
        assert_eq!(
            download_url_of("https://civitai.com/api/download/models/9").unwrap(),
            "https://civitai.com/api/download/models/9"
        );
        assert!(download_url_of("file:///etc/passwd")
            .unwrap_err()
            .contains("not an http(s) link"));
        assert!(download_url_of("x.safetensors")
            .unwrap_err()
            .contains("not a link"));
    }
}
