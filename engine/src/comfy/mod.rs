//! Talking to ComfyUI: the one [`ComfyClient`] (its status probe, from `/system_stats` and
//! `/prompt`, is here; the rest of its HTTP API is in [`http`]), its WebSocket, the UI→API
//! conversion and the process supervisor.
//!
//! Requests are made server-side and never carry a browser `Origin` header: ComfyUI rejects
//! requests whose Origin does not match its Host.

use std::time::Duration;

/// UI-format workflows → API prompts (the frontend's `graphToPrompt` rules), and checks
/// before submitting.
pub mod convert;
/// ComfyUI's HTTP API: prompts, queue, history, outputs, object_info, userdata.
pub mod http;
/// ComfyUI's WebSocket messages (text and binary) as typed events.
pub mod protocol;
/// The one persistent WebSocket to ComfyUI, with reconnects.
pub mod socket;
/// The ComfyUI process, when comfydeck starts it itself.
pub mod supervisor;

use serde::Deserialize;

use crate::model::ComfyStatus;

#[derive(Clone, Debug)]
pub struct ComfyClient {
    base_url: String,
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct SystemStatsBody {
    system: SystemInfo,
}

#[derive(Deserialize)]
struct SystemInfo {
    comfyui_version: Option<String>,
}

#[derive(Deserialize)]
struct PromptInfoBody {
    exec_info: ExecInfo,
}

#[derive(Deserialize)]
struct ExecInfo {
    queue_remaining: u64,
}

impl ComfyClient {
    pub fn new(base_url: &str) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(4))
            .build()
            .expect("a client with timeouts only always builds");
        ComfyClient {
            base_url: base_url.trim_end_matches('/').to_string(),
            http,
        }
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Asks ComfyUI how it is. Never fails: an unreachable ComfyUI is a status, not an error.
    pub async fn status(&self, now_ms: i64) -> ComfyStatus {
        let stats = self.get_json::<SystemStatsBody>("/system_stats");
        let prompt = self.get_json::<PromptInfoBody>("/prompt");
        let (stats, prompt) = tokio::join!(stats, prompt);
        match stats {
            Ok(stats) => ComfyStatus {
                url: self.base_url.clone(),
                reachable: true,
                version: stats.system.comfyui_version,
                queue_remaining: prompt.ok().map(|p| p.exec_info.queue_remaining),
                error: None,
                checked_at_ms: now_ms,
            },
            Err(error) => ComfyStatus {
                url: self.base_url.clone(),
                reachable: false,
                version: None,
                queue_remaining: None,
                error: Some(error),
                checked_at_ms: now_ms,
            },
        }
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, String> {
        let url = format!("{}{}", self.base_url, path);
        let response = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| describe_request_error(&e))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("{path} answered HTTP {status}"));
        }
        response
            .json::<T>()
            .await
            .map_err(|e| format!("{path} answered something that is not ComfyUI's JSON ({e})"))
    }
}

/// A short sentence for the cause of a failed request.
pub fn describe_request_error(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "no answer (timed out)".to_string()
    } else if e.is_connect() {
        "connection refused or host unreachable: is ComfyUI running?".to_string()
    } else {
        format!("request failed: {e}")
    }
}
