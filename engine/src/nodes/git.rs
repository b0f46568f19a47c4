//! The git commands a pack needs: clone, check out a revision, fetch, and read a checkout's
//! remote and commit.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::process::run;

/// How long a clone or fetch may take.
pub(crate) const NETWORK_TIMEOUT: Duration = Duration::from_secs(600);
/// How long a local git command may take.
const LOCAL_TIMEOUT: Duration = Duration::from_secs(60);

fn git() -> PathBuf {
    PathBuf::from("git")
}

/// The host (and port) a remote is fetched from, to keep its failures apart from other
/// hosts'; `None` for a local one (a path or `file://`).
pub(crate) fn git_host(url: &str) -> Option<String> {
    if let Ok(parsed) = url::Url::parse(url) {
        let host = parsed.host_str().filter(|h| !h.is_empty())?;
        return Some(match parsed.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_string(),
        });
    }
    // scp-like `user@host:path`
    let (before, _) = url.split_once(':')?;
    let host = before.rsplit('@').next()?;
    (!host.is_empty() && !host.contains('/')).then(|| host.to_string())
}

/// `git clone` `url` into `dest` (which must not exist).
pub(crate) async fn clone(url: &str, dest: &Path) -> Result<(), String> {
    let shown = super::redact_url(url);
    run(
        &format!("git clone {shown}"),
        &git(),
        [
            OsStr::new("clone"),
            OsStr::new("--quiet"),
            OsStr::new("--recurse-submodules"),
            OsStr::new("--"),
            OsStr::new(url),
            dest.as_os_str(),
        ],
        None,
        &[],
        NETWORK_TIMEOUT,
    )
    .await
    .map(|_| ())
}

/// Checks out `rev` (a commit, branch or tag; `v<rev>` is tried for a bare version number).
pub(crate) async fn checkout(dir: &Path, rev: &str) -> Result<String, String> {
    if rev.starts_with('-') {
        return Err(format!("{rev:?} is not a revision"));
    }
    let mut last = String::new();
    for candidate in [rev.to_string(), format!("v{rev}")] {
        match run(
            &format!("git checkout {candidate}"),
            &git(),
            [
                "-c",
                "advice.detachedHead=false",
                "checkout",
                "--quiet",
                &candidate,
                "--",
            ],
            Some(dir),
            &[],
            LOCAL_TIMEOUT,
        )
        .await
        {
            Ok(_) => {
                let _ = run(
                    "git submodule update",
                    &git(),
                    ["submodule", "update", "--init", "--recursive", "--quiet"],
                    Some(dir),
                    &[],
                    NETWORK_TIMEOUT,
                )
                .await;
                return head(dir)
                    .await
                    .ok_or_else(|| "git rev-parse HEAD failed".to_string());
            }
            Err(e) => last = e,
        }
    }
    Err(format!(
        "no commit, branch or tag {rev:?} in the pack: {last}"
    ))
}

/// Fetches the remote, then returns the commit of its default branch (`origin/HEAD`).
pub(crate) async fn fetch_newest(dir: &Path) -> Result<String, String> {
    run(
        "git fetch",
        &git(),
        ["fetch", "--quiet", "--tags", "origin"],
        Some(dir),
        &[],
        NETWORK_TIMEOUT,
    )
    .await?;
    // origin/HEAD is set by clone; a checkout without it falls back to the upstream branch.
    for rev in ["origin/HEAD", "@{upstream}"] {
        if let Ok(out) = run(
            "git rev-parse",
            &git(),
            [
                "rev-parse",
                "--verify",
                "--quiet",
                &format!("{rev}^{{commit}}"),
            ],
            Some(dir),
            &[],
            LOCAL_TIMEOUT,
        )
        .await
        {
            return Ok(out.stdout.trim().to_string());
        }
    }
    Err("the pack's checkout has no default branch to update to".into())
}

/// The checked-out commit, when `dir` is a git checkout.
pub(crate) async fn head(dir: &Path) -> Option<String> {
    if !dir.join(".git").exists() {
        return None;
    }
    run(
        "git rev-parse HEAD",
        &git(),
        ["rev-parse", "HEAD"],
        Some(dir),
        &[],
        LOCAL_TIMEOUT,
    )
    .await
    .ok()
    .map(|o| o.stdout.trim().to_string())
    .filter(|s| !s.is_empty())
}

/// The `origin` remote's URL, when there is one (credentials removed).
pub(crate) async fn origin(dir: &Path) -> Option<String> {
    if !dir.join(".git").exists() {
        return None;
    }
    run(
        "git remote get-url",
        &git(),
        ["remote", "get-url", "origin"],
        Some(dir),
        &[],
        LOCAL_TIMEOUT,
    )
    .await
    .ok()
    .map(|o| super::redact_url(o.stdout.trim()))
    .filter(|s| !s.is_empty())
}

/// Whether `git` can be run at all (for a clear message before anything changes).
pub(crate) async fn available() -> Result<(), String> {
    run(
        "git --version",
        &git(),
        ["--version"],
        None,
        &[],
        LOCAL_TIMEOUT,
    )
    .await
    .map(|_| ())
    .map_err(|e| format!("git is needed to install custom-node packs: {e}"))
}

#[cfg(test)]
mod tests {
    use super::git_host;

    #[test]
    fn a_remotes_host_is_found_and_a_local_one_has_none() {
        assert_eq!(
            git_host("https://github.com/a/b.git").as_deref(),
            Some("github.com")
        );
        assert_eq!(
            git_host("http://127.0.0.1:8080/a.git").as_deref(),
            Some("127.0.0.1:8080")
        );
        assert_eq!(
            git_host("git@github.com:a/b.git").as_deref(),
            Some("github.com")
        );
        assert_eq!(git_host("file:///tmp/repos/a"), None);
        assert_eq!(git_host("/tmp/repos/a"), None);
        assert_eq!(git_host(""), None);
    }
}
