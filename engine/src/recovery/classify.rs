//! A failure's message → its class, a sentence anyone understands, where to go, and the actions
//! that fit. The messages are comfydeck's own (the fetcher's, the node service's, the job
//! queue's, the supervisor's) and ComfyUI's error texts, so the patterns below are theirs.

use crate::model::{FailureClass, FailureSource, RecoveryAction};

/// What a failure is, for a person.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Classified {
    pub class: FailureClass,
    pub sentence: String,
    pub link: Option<String>,
    pub actions: Vec<RecoveryAction>,
}

fn has(text: &str, needles: &[&str]) -> bool {
    needles.iter().any(|n| text.contains(n))
}

/// The first `http(s)://…` after `marker` in `message`.
fn url_after(message: &str, marker: &str) -> Option<String> {
    let start = message.find(marker)? + marker.len();
    let rest = &message[start..];
    let begin = rest.find("http")?;
    let url: String = rest[begin..]
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != ',' && *c != ';' && *c != ')')
        .collect();
    Some(url.trim_end_matches('.').to_string())
}

/// An HTTP status the message names: comfydeck's `HTTP 404`, or git's (curl's) "The requested
/// URL returned error: 503".
fn http_status(message: &str) -> Option<u16> {
    ["HTTP ", "returned error: "].iter().find_map(|marker| {
        let at = message.find(marker)? + marker.len();
        message[at..].get(..3)?.parse().ok()
    })
}

pub fn classify(source: FailureSource, message: &str) -> Classified {
    use FailureClass as C;
    use RecoveryAction as A;
    let lower = message.to_lowercase();
    let status = http_status(message);
    let (class, sentence, link) = if has(&lower, &["gated repository", "accept the licence"]) {
        (
            C::Licence,
            "This model's licence must be accepted first: open the link, accept it with your \
             Hugging Face account, make sure your token is saved in Settings, then retry."
                .to_string(),
            url_after(message, "licence at"),
        )
    } else if has(
        &lower,
        &[
            "refused the token",
            "requires a token",
            "access denied by",
            "authentication failed",
        ],
    ) || matches!(status, Some(401 | 403))
    {
        (
            C::Auth,
            "The server wants a token, or refused the one saved: save a valid Hugging Face or \
             CivitAI token in Settings, then retry."
                .to_string(),
            Some("/settings".to_string()),
        )
    } else if has(
        &lower,
        &[
            "out of memory",
            "outofmemoryerror",
            "allocation on device",
            "cuda oom",
        ],
    ) {
        (
            C::OutOfMemory,
            "The GPU ran out of memory: try a smaller size or batch, or a lighter model or preset, then \
             run it again."
                .to_string(),
            None,
        )
    } else if has(&lower, &["disk full", "no space left", "is free (keeping"]) {
        (
            C::DiskFull,
            "The disk is full: remove models you do not need or partial downloads on the Models \
             page, then retry."
                .to_string(),
            Some("/models".to_string()),
        )
    } else if has(&lower, &["checksum mismatch", "size mismatch"]) {
        (
            C::Integrity,
            "The downloaded file was not the one expected, so it was deleted. Retry; if it \
             happens again, the file at the source has changed."
                .to_string(),
            None,
        )
    } else if status == Some(429) || has(&lower, &["rate limit", "too many requests"]) {
        (
            C::RateLimited,
            "The server asked to slow down; comfydeck waits and tries again by itself.".to_string(),
            None,
        )
    } else if has(
        &lower,
        &["the file is gone", "no known pack provides", "not found"],
    ) || matches!(status, Some(404 | 410))
    {
        (
            C::NotFound,
            "What the link points to is not there (any more): use another link or source."
                .to_string(),
            None,
        )
    } else if has(
        &lower,
        &[
            "protected packages",
            "could not import",
            "cannot import",
            "pip install",
        ],
    ) {
        (
            C::Dependency,
            "A custom-node pack could not be installed without breaking the pod, so everything \
             was put back as it was. Its details say which package or import failed."
                .to_string(),
            None,
        )
    } else if source == FailureSource::Comfyui
        || has(
            &lower,
            &["comfyui exited", "comfyui crashed", "killed by signal"],
        )
    {
        (
            C::ComfyuiCrashed,
            "ComfyUI stopped by itself and does not stay up: its last lines say why (often a \
             custom node). Restart it once the cause is fixed."
                .to_string(),
            Some("/".to_string()),
        )
    } else if has(
        &lower,
        &[
            "not one of the allowed values",
            "is not installed in comfyui",
            "prompt_outputs_failed_validation",
            "value_not_in_list",
            "refused the prompt",
            "is above the maximum",
            "is below the minimum",
        ],
    ) {
        (
            C::Validation,
            "ComfyUI refused the workflow as it is: its details name the node and input. \
             \"Make runnable\" on the workflow fixes the usual causes."
                .to_string(),
            Some("/workflows".to_string()),
        )
    } else if has(
        &lower,
        &[
            "network",
            "not answering",
            "timed out",
            "timeout",
            "connection",
            "dns",
            "reset",
            "tls",
            "does not answer",
            "without an answer",
            // git's (and curl's) own words
            "could not resolve host",
            "failed to connect",
            "couldn't connect",
            "early eof",
            "hung up unexpectedly",
            "rpc failed",
        ],
    ) || status.is_some_and(|s| s >= 500)
    {
        (
            C::Network,
            "The connection kept failing (the network or the server). comfydeck retries by \
             itself; retry now if it is back."
                .to_string(),
            None,
        )
    } else {
        (
            C::Unknown,
            "It failed for a reason comfydeck does not know; the details say what was reported."
                .to_string(),
            None,
        )
    };
    let mut actions = match class {
        C::Licence => vec![A::AcceptLicence, A::Retry],
        C::Auth => vec![A::AddToken, A::Retry],
        // A download that filled the disk is paused with its bytes: it goes on, not again.
        C::DiskFull if source == FailureSource::Download => vec![A::FreeSpace, A::Resume],
        C::DiskFull => vec![A::FreeSpace, A::Retry],
        C::ComfyuiCrashed => vec![A::RestartComfyui],
        C::Dependency | C::NotFound | C::Validation => vec![],
        _ => vec![A::Retry],
    };
    // A job is retried as a new run of the same workflow and values; ComfyUI is restarted.
    if matches!(class, C::Validation | C::NotFound) && source == FailureSource::Job {
        actions.push(A::Retry);
    }
    if source == FailureSource::Comfyui && !actions.contains(&A::RestartComfyui) {
        actions = vec![A::RestartComfyui];
    }
    actions.push(A::Dismiss);
    // The file may be back (re-uploaded, the host repaired): Retry stays at hand, after
    // Dismiss, so "retry all" leaves it to a person.
    if class == C::NotFound && source != FailureSource::Job {
        actions.push(A::Retry);
    }
    // What a half-done install or "make runnable" added can be taken away again.
    if matches!(source, FailureSource::Preset | FailureSource::Operation) {
        let at = actions
            .iter()
            .position(|a| *a == A::Dismiss)
            .unwrap_or(actions.len());
        actions.insert(at, A::RollBack);
    }
    // A file that is not there, or whose host keeps failing, may be had elsewhere.
    if matches!(source, FailureSource::Download | FailureSource::Preset) {
        match class {
            C::NotFound => actions.insert(0, A::UseSource),
            C::Network => actions.insert(1, A::UseSource),
            _ => {}
        }
    }
    Classified {
        class,
        sentence,
        link,
        actions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::download::fetch::FetchError;
    use FailureClass as C;

    fn class_of(source: FailureSource, message: &str) -> FailureClass {
        classify(source, message).class
    }

    #[test]
    fn the_fetchers_own_errors_are_classified() {
        let d = FailureSource::Download;
        let gated = FetchError::Gated {
            repo: "black-forest-labs/FLUX.1-dev".into(),
        }
        .to_string();
        let licence = classify(d, &gated);
        assert_eq!(licence.class, C::Licence);
        assert_eq!(
            licence.link.as_deref(),
            Some("https://huggingface.co/black-forest-labs/FLUX.1-dev")
        );
        assert_eq!(licence.actions[0], RecoveryAction::AcceptLicence);
        let token = FetchError::TokenRequired {
            host: "civitai.com".into(),
            status: 401,
        };
        assert_eq!(class_of(d, &token.to_string()), C::Auth);
        let bad = FetchError::BadToken {
            host: "huggingface.co".into(),
            status: 403,
        };
        assert_eq!(class_of(d, &bad.to_string()), C::Auth);
        let gone = FetchError::Gone {
            url: "https://h/x".into(),
            status: 404,
        };
        assert_eq!(class_of(d, &gone.to_string()), C::NotFound);
        assert_eq!(class_of(d, "HTTP 404 from https://h/x"), C::NotFound);
        let sum = FetchError::ChecksumMismatch {
            file: "x".into(),
            expected: "a".into(),
            actual: "b".into(),
        };
        assert_eq!(class_of(d, &sum.to_string()), C::Integrity);
        let full = FetchError::NoSpace { file: "x".into() };
        let disk = classify(d, &full.to_string());
        assert_eq!(disk.class, C::DiskFull);
        assert_eq!(
            disk.actions,
            [
                RecoveryAction::FreeSpace,
                RecoveryAction::Resume,
                RecoveryAction::Dismiss
            ]
        );
        // A preset refused before it started, for want of space, is tried again.
        let refused = classify(
            FailureSource::Preset,
            "FLUX needs 20 GB more, but only 3 GB is free (keeping 2 GB in reserve)",
        );
        assert_eq!(refused.class, C::DiskFull);
        assert!(refused.actions.contains(&RecoveryAction::Retry));
        assert_eq!(disk.link.as_deref(), Some("/models"));
        let net = FetchError::Network {
            attempts: 5,
            message: "connection reset by peer".into(),
        };
        assert_eq!(class_of(d, &net.to_string()), C::Network);
        assert_eq!(class_of(d, "HTTP 503 from https://h/x"), C::Network);
        assert_eq!(class_of(d, "HTTP 429 from https://h/x"), C::RateLimited);
        assert_eq!(class_of(d, "something odd"), C::Unknown);
    }

    #[test]
    fn runs_packs_and_comfyui_are_classified_with_their_actions() {
        let job = classify(
            FailureSource::Job,
            "torch.OutOfMemoryError: Allocation on device 0 would exceed allowed memory",
        );
        assert_eq!(job.class, C::OutOfMemory);
        assert!(job.actions.contains(&RecoveryAction::Retry));
        let refused = classify(
            FailureSource::Job,
            "KSampler (node 3): sampler_name 'Euler' is not one of the allowed values",
        );
        assert_eq!(refused.class, C::Validation);
        assert_eq!(
            refused.actions,
            [RecoveryAction::Retry, RecoveryAction::Dismiss]
        );
        let pack = classify(
            FailureSource::Operation,
            "refused to install x: its requirements would change protected packages: torch",
        );
        assert_eq!(pack.class, C::Dependency);
        // What the operation did before it stopped can be rolled back.
        assert_eq!(
            pack.actions,
            [RecoveryAction::RollBack, RecoveryAction::Dismiss]
        );
        let crash = classify(FailureSource::Comfyui, "exited with status 1");
        assert_eq!(crash.class, C::ComfyuiCrashed);
        assert_eq!(
            crash.actions,
            [RecoveryAction::RestartComfyui, RecoveryAction::Dismiss]
        );
    }

    /// git says what went wrong in curl's words; these are what a clone or fetch prints.
    #[test]
    fn gits_network_and_http_errors_are_classified() {
        let pack = FailureSource::Pack;
        for passing in [
            "git clone https://github.com/a/b failed (exit code 128): fatal: unable to access \
             'https://github.com/a/b/': Could not resolve host: github.com",
            "git clone … failed (exit code 128): fatal: unable to access 'https://github.com/a/b/': \
             Failed to connect to github.com port 443 after 3 ms: Couldn't connect to server",
            "git clone … failed (exit code 128): error: RPC failed; curl 56 GnuTLS recv error \
             (-9)\nfatal: early EOF",
            "git clone http://127.0.0.1:9/a.git failed (exit code 128): fatal: unable to access \
             'http://127.0.0.1:9/a.git/': The requested URL returned error: 503",
            "git fetch: gave up after 600 s without an answer",
        ] {
            assert_eq!(class_of(pack, passing), C::Network, "{passing}");
        }
        let limited = "fatal: unable to access 'https://x/': The requested URL returned error: 429";
        assert_eq!(class_of(pack, limited), C::RateLimited);
        let missing = "fatal: unable to access 'https://x/': The requested URL returned error: 404";
        assert_eq!(class_of(pack, missing), C::NotFound);
        let private = "fatal: Authentication failed for 'https://github.com/a/private/'";
        assert_eq!(class_of(pack, private), C::Auth);
    }
}
