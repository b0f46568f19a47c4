//! Configuration: what the engine is started with, every default written once, and the
//! parsing helpers the command line shares. Paths on the volume come from
//! [`WorkspaceLayout`]; this module depends on no service.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::secret::Secret;
use crate::workspace::WorkspaceLayout;

/// The dashboard's port when `DASHBOARD_PORT` is not set.
pub const DEFAULT_PORT: u16 = 8082;
/// The dashboard listens on loopback unless `DASHBOARD_HOST` says otherwise.
pub const DEFAULT_HOST: &str = "127.0.0.1";

/// ComfyUI's port, as one literal for both constants below.
macro_rules! default_comfyui_port {
    () => {
        3000
    };
}
/// Where an attached ComfyUI is reached when `COMFYUI_URL` is not set.
pub const DEFAULT_COMFYUI_URL: &str = concat!("http://127.0.0.1:", default_comfyui_port!());
/// Where a supervised ComfyUI listens when `COMFYUI_PORT` is not set.
pub const DEFAULT_COMFYUI_PORT: u16 = default_comfyui_port!();

pub const DEFAULT_HF_BASE_URL: &str = "https://huggingface.co";

/// Days an abandoned partial download is kept when `RECOVERY_RETENTION_DAYS` is not set.
pub const DEFAULT_RECOVERY_RETENTION_DAYS: u32 = 7;
/// Files downloading at once when `CONCURRENT_DOWNLOADS` is not set.
pub const DEFAULT_CONCURRENT_DOWNLOADS: usize = 3;
/// Connections per large file when `DOWNLOAD_CONNECTIONS` is not set.
pub const DEFAULT_DOWNLOAD_CONNECTIONS: usize = 4;
/// Files above this many bytes use several connections.
pub const DEFAULT_SEGMENT_THRESHOLD_BYTES: u64 = 256 * 1024 * 1024;
/// GB (binary) the download preflight keeps free when `DOWNLOAD_DISK_RESERVE_GB` is not set.
pub const DEFAULT_DISK_RESERVE_GB: u64 = 1;
pub const DEFAULT_DISK_RESERVE_BYTES: u64 = DEFAULT_DISK_RESERVE_GB * 1024 * 1024 * 1024;

/// ComfyUI-Manager's published node map: the default `NODE_MAP_URL`.
pub const DEFAULT_NODE_MAP_URL: &str =
    "https://raw.githubusercontent.com/ltdrdata/ComfyUI-Manager/main/extension-node-map.json";
/// How long ComfyUI may take to answer after a custom-node pack change restarted it.
pub const DEFAULT_NODE_READY_TIMEOUT: Duration = Duration::from_secs(300);

/// How long "enhance" waits for the LLM before using the static style.
pub const DEFAULT_LLM_TIMEOUT: Duration = Duration::from_secs(20);

/// Everything the engine needs to start, already validated by the binary's CLI layer.
#[derive(Clone, Debug)]
pub struct Config {
    pub workspace_root: PathBuf,
    pub host: IpAddr,
    pub port: u16,
    /// ComfyUI's base URL without a trailing slash.
    pub comfyui_url: String,
    pub access_password: Option<Secret>,
    /// Hugging Face API base URL without a trailing slash (tests point it at a local server).
    pub hf_base_url: String,
    /// `HF_ENDPOINT`: Hugging Face's own mirror variable. Hugging Face download links are
    /// fetched from this host first (huggingface.co stays the next source); it is treated as
    /// the Hub, so the Hugging Face token may go to it. Without a trailing slash.
    pub hf_endpoint: Option<String>,
    /// `RECOVERY_RETENTION_DAYS`: partial downloads nobody will finish are deleted after this
    /// many days without a write.
    pub recovery_retention_days: u32,
    /// Retry, stall and circuit-breaker timings of every download (tests shrink them).
    pub fetch_tuning: crate::download::fetch::FetchTuning,
    /// `RUNPOD_VOLUME_GB` in bytes, when the pod says how large its volume is.
    pub volume_quota_bytes: Option<u64>,
    /// Files downloading at once (`CONCURRENT_DOWNLOADS`).
    pub concurrent_downloads: usize,
    /// Connections per large file (`DOWNLOAD_CONNECTIONS`).
    pub download_connections: usize,
    /// Files above this many bytes use several connections.
    pub segment_threshold_bytes: u64,
    /// Bytes the download preflight keeps free (`DOWNLOAD_DISK_RESERVE_GB`).
    pub disk_reserve_bytes: u64,
    /// `PRESET_REGISTRY_URL`: a remote catalog synced on demand.
    pub preset_registry_url: Option<String>,
    /// Preset ids (either format) to install at start-up (`PRESET_DOWNLOAD` and friends).
    pub startup_presets: Vec<String>,
    /// `COMFYUI_DIR`: when set, comfydeck runs ComfyUI itself from this folder.
    pub comfyui_dir: Option<PathBuf>,
    /// `COMFYUI_PORT`: where a supervised ComfyUI listens (on 127.0.0.1).
    pub comfyui_port: u16,
    /// `COMFYUI_PYTHON`: the interpreter for a supervised ComfyUI.
    pub comfyui_python: Option<PathBuf>,
    /// `COMFYUI_ARGS`, already split: extra flags for a supervised ComfyUI.
    pub comfyui_args: Vec<String>,
    /// `LLM_BASE_URL`: an OpenAI-compatible chat API (without a trailing slash) that
    /// "enhance" asks, together with `llm_model`.
    pub llm_base_url: Option<String>,
    /// `LLM_MODEL`.
    pub llm_model: Option<String>,
    /// `LLM_API_KEY`: sent to `llm_base_url` only.
    pub llm_api_key: Option<Secret>,
    /// How long "enhance" waits for the LLM before using the static style.
    pub llm_timeout: Duration,
    /// `COMFYUI_OUTPUT_DIR`: where ComfyUI writes its outputs when that is not
    /// `<workspace>/output` (an attached ComfyUI with its own folder). The gallery indexes it
    /// and a supervised ComfyUI is given it as `--output-directory`.
    pub comfyui_output_dir: Option<PathBuf>,
    /// `QUEUE_URL` (`redis://HOST:PORT/DB`): the job queue lives in Redis, shared with other
    /// decks; without it, in the deck's SQLite file.
    pub queue_url: Option<String>,
    /// Per-person limits and the claim lease of the job queue.
    pub job_limits: crate::jobs::JobLimits,
    /// `NODE_MAP_URL`: the node map (ComfyUI-Manager's `extension-node-map.json` format) that
    /// resolves a missing node class to its pack; `None` turns syncing off.
    pub node_map_url: Option<String>,
    /// `NODE_PROTECTED_PACKAGES`: Python packages a custom-node pack may never change, beyond
    /// the defaults (`torch`, `torchvision`, `torchaudio`, `xformers`, `numpy`).
    pub node_protected_packages: Vec<String>,
    /// `NODE_PIP_ARGS`, already split: appended to every `pip install` of a pack (e.g.
    /// `--no-index --find-links /wheels`); pip's own `PIP_*` variables work too.
    pub node_pip_args: Vec<String>,
    /// How long ComfyUI may take to answer again after a pack change restarted it.
    pub node_ready_timeout: Duration,
    /// The wait before a pack's clone or fetch that failed on the network is tried again
    /// (twice that before the last try).
    pub node_network_retry: Duration,
}

impl Config {
    /// A configuration with every default, for the given workspace.
    pub fn with_workspace(workspace_root: impl Into<PathBuf>) -> Self {
        Config {
            workspace_root: workspace_root.into(),
            host: DEFAULT_HOST.parse().expect("default host is an IP address"),
            port: DEFAULT_PORT,
            comfyui_url: DEFAULT_COMFYUI_URL.to_string(),
            access_password: None,
            hf_base_url: DEFAULT_HF_BASE_URL.to_string(),
            hf_endpoint: None,
            recovery_retention_days: DEFAULT_RECOVERY_RETENTION_DAYS,
            fetch_tuning: crate::download::fetch::FetchTuning::default(),
            volume_quota_bytes: None,
            concurrent_downloads: DEFAULT_CONCURRENT_DOWNLOADS,
            download_connections: DEFAULT_DOWNLOAD_CONNECTIONS,
            segment_threshold_bytes: DEFAULT_SEGMENT_THRESHOLD_BYTES,
            disk_reserve_bytes: DEFAULT_DISK_RESERVE_BYTES,
            preset_registry_url: None,
            startup_presets: Vec::new(),
            comfyui_dir: None,
            comfyui_port: DEFAULT_COMFYUI_PORT,
            comfyui_python: None,
            comfyui_args: Vec::new(),
            llm_base_url: None,
            llm_model: None,
            llm_api_key: None,
            llm_timeout: DEFAULT_LLM_TIMEOUT,
            comfyui_output_dir: None,
            queue_url: None,
            job_limits: crate::jobs::JobLimits::default(),
            node_map_url: Some(DEFAULT_NODE_MAP_URL.to_string()),
            node_protected_packages: Vec::new(),
            node_pip_args: Vec::new(),
            node_ready_timeout: DEFAULT_NODE_READY_TIMEOUT,
            node_network_retry: Duration::from_secs(5),
        }
    }

    /// The folder ComfyUI writes its outputs to: `COMFYUI_OUTPUT_DIR`, else the workspace's.
    pub fn output_dir(&self) -> PathBuf {
        self.comfyui_output_dir
            .clone()
            .unwrap_or_else(|| self.layout().output())
    }

    /// The LLM "enhance" asks, when both `LLM_BASE_URL` and `LLM_MODEL` are set.
    pub fn llm(&self) -> Option<LlmConfig> {
        Some(LlmConfig {
            base_url: self.llm_base_url.clone()?,
            model: self.llm_model.clone().filter(|m| !m.trim().is_empty())?,
            api_key: self.llm_api_key.clone(),
            timeout: self.llm_timeout,
        })
    }

    pub fn layout(&self) -> WorkspaceLayout {
        WorkspaceLayout::new(&self.workspace_root)
    }

    /// The hosts a Hugging Face token may go to: huggingface.co, hf.co, and the configured
    /// API host (a mirror, or a local stand-in in tests).
    pub fn hf_token_hosts(&self) -> Vec<String> {
        let mut hosts = vec!["huggingface.co".to_string(), "hf.co".to_string()];
        let configured =
            std::iter::once(self.hf_base_url.as_str()).chain(self.hf_endpoint.as_deref());
        for base in configured {
            let Ok(url) = url::Url::parse(base) else {
                continue;
            };
            if let Some(host) = url.host_str() {
                let with_port = match url.port() {
                    Some(port) => format!("{host}:{port}"),
                    None => host.to_string(),
                };
                if !hosts.contains(&with_port) {
                    hosts.push(with_port);
                }
            }
        }
        hosts
    }

    /// Only loopback listeners may run without a login.
    pub fn listens_on_loopback(&self) -> bool {
        self.host.is_loopback()
    }
}

/// An OpenAI-compatible chat endpoint (`LLM_BASE_URL`, `LLM_MODEL`, `LLM_API_KEY`).
#[derive(Clone, Debug)]
pub struct LlmConfig {
    /// Without a trailing slash; `/chat/completions` is appended.
    pub base_url: String,
    pub model: String,
    /// Sent as a bearer token to `base_url` only (redirects are not followed).
    pub api_key: Option<Secret>,
    pub timeout: Duration,
}

/// Splits `PRESET_DOWNLOAD`-style lists: comma- or space-separated ids, empty items ignored.
pub fn parse_preset_list(value: &str) -> Vec<String> {
    value
        .split(|c: char| c == ',' || c.is_whitespace())
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .map(str::to_string)
        .collect()
}

/// `/workspace` on a pod; `./workspace` where there is none (a laptop).
pub fn default_workspace_root() -> PathBuf {
    let pod_volume = Path::new("/workspace");
    if pod_volume.is_dir() {
        pod_volume.to_path_buf()
    } else {
        PathBuf::from("workspace")
    }
}

/// Parses `RUNPOD_VOLUME_GB` ("50", "50.5") into bytes (decimal GB, as RunPod sells them).
pub fn parse_volume_gb(value: &str) -> Result<u64, String> {
    let gb: f64 = value
        .trim()
        .parse()
        .map_err(|_| format!("RUNPOD_VOLUME_GB must be a number of GB, got {value:?}"))?;
    if !gb.is_finite() || gb <= 0.0 {
        return Err(format!("RUNPOD_VOLUME_GB must be positive, got {value:?}"));
    }
    Ok((gb * 1e9) as u64)
}

/// Normalises a base URL: must be http(s), no trailing slash.
pub fn normalize_base_url(name: &str, value: &str) -> Result<String, String> {
    let trimmed = value.trim().trim_end_matches('/');
    if !(trimmed.starts_with("http://") || trimmed.starts_with("https://")) {
        return Err(format!(
            "{name} must start with http:// or https://, got {value:?}"
        ));
    }
    if trimmed.len() <= "https://".len() {
        return Err(format!("{name} has no host: {value:?}"));
    }
    Ok(trimmed.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_debug_hides_secrets() {
        let config = Config {
            access_password: Some(Secret::new("hunter2-very-secret")),
            ..Config::with_workspace("/tmp/x")
        };
        assert!(!format!("{config:?}").contains("hunter2"));
    }

    #[test]
    fn volume_gb_is_decimal() {
        assert_eq!(parse_volume_gb("50").unwrap(), 50_000_000_000);
        assert_eq!(parse_volume_gb(" 0.5 ").unwrap(), 500_000_000);
        assert!(parse_volume_gb("fifty").unwrap_err().contains("fifty"));
        assert!(parse_volume_gb("-1").is_err());
    }

    #[test]
    fn base_urls_are_checked_and_trimmed() {
        assert_eq!(
            normalize_base_url("COMFYUI_URL", "http://127.0.0.1:3000/").unwrap(),
            "http://127.0.0.1:3000"
        );
        assert!(normalize_base_url("COMFYUI_URL", "127.0.0.1:3000")
            .unwrap_err()
            .contains("COMFYUI_URL"));
    }
}
