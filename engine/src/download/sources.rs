//! The URLs one file may come from, in the order they are tried: the file's own URL, then its
//! mirrors — with `HF_ENDPOINT`, a Hugging Face link is tried on that endpoint before
//! huggingface.co itself.

use url::Url;

/// Whether `url` is on the Hugging Face Hub's own hosts.
fn is_hub(url: &Url) -> bool {
    matches!(
        url.host_str(),
        Some("huggingface.co" | "www.huggingface.co" | "hf.co")
    )
}

/// `url` on `endpoint` (`https://hf-mirror.com`, or one with a path prefix), when `url` is a
/// Hub link; the path and query are kept.
fn on_endpoint(url: &str, endpoint: &str) -> Option<String> {
    let parsed = Url::parse(url).ok().filter(is_hub)?;
    let base = endpoint.trim_end_matches('/');
    Url::parse(base).ok()?;
    let mut moved = format!("{base}{}", parsed.path());
    if let Some(query) = parsed.query() {
        moved.push('?');
        moved.push_str(query);
    }
    Some(moved)
}

/// `url` then `mirrors`, each Hub link preceded by its `hf_endpoint` twin; no URL twice.
pub fn ordered(url: &str, mirrors: &[String], hf_endpoint: Option<&str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(1 + mirrors.len());
    for source in std::iter::once(url).chain(mirrors.iter().map(String::as_str)) {
        let twin = hf_endpoint.and_then(|e| on_endpoint(source, e));
        for candidate in twin.into_iter().chain(std::iter::once(source.to_string())) {
            if !out.contains(&candidate) {
                out.push(candidate);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const HUB: &str = "https://huggingface.co/org/repo/resolve/main/model.safetensors";

    #[test]
    fn without_an_endpoint_the_url_comes_first_then_its_mirrors() {
        let mirrors = vec!["https://m1/x".to_string(), HUB.to_string()];
        assert_eq!(
            ordered(HUB, &mirrors, None),
            vec![HUB.to_string(), "https://m1/x".to_string()]
        );
    }

    #[test]
    fn hf_endpoint_goes_before_each_hub_link_and_keeps_path_and_query() {
        let url = format!("{HUB}?download=true");
        let got = ordered(
            &url,
            &["https://cdn.example/model.safetensors".to_string()],
            Some("https://hf-mirror.com/"),
        );
        assert_eq!(
            got,
            vec![
                "https://hf-mirror.com/org/repo/resolve/main/model.safetensors?download=true"
                    .to_string(),
                url.clone(),
                "https://cdn.example/model.safetensors".to_string(),
            ]
        );
        // Other hosts are left alone; a bad endpoint is ignored.
        assert_eq!(
            ordered(
                "https://civitai.com/api/download/models/1",
                &[],
                Some("https://m")
            ),
            vec!["https://civitai.com/api/download/models/1".to_string()]
        );
        assert_eq!(ordered(HUB, &[], Some("not a url")), vec![HUB.to_string()]);
    }
}
