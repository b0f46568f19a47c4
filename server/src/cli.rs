//! Command line: `comfydeck serve` (the default), `comfydeck presets …`, `comfydeck download …`,
//! `comfydeck workflow to-api`, `comfydeck users …` and `comfydeck nodes …`. Every setting
//! ([`CommonArgs`], [`ServeArgs`]) also reads an
//! environment variable, and its default is the engine's (`engine::config`); options of one
//! command, such as `--to` or `--json`, are flags only.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use engine::config::{self, Config};
use engine::secret::Secret;

#[derive(Debug, Parser)]
#[command(
    name = "comfydeck",
    version,
    about = "The control deck of a ComfyUI GPU pod",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// `comfydeck` alone is `comfydeck serve`.
    #[command(flatten)]
    pub serve: ServeArgs,
}

// Parsed once at start-up: the size of the largest variant costs nothing worth a Box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the dashboard (the default).
    Serve(ServeArgs),
    /// List, install, inspect and remove model presets.
    Presets(PresetsArgs),
    /// Download one file into the models folder, resumable and verified.
    Download(DownloadArgs),
    /// Workflow tools that need no server.
    #[command(subcommand)]
    Workflow(WorkflowAction),
    /// Accounts: add, list, set passwords, disable, enable and remove people. Works while a
    /// server holds the workspace.
    Users(UsersArgs),
    /// Run jobs from a deck's queue on this machine's ComfyUI.
    Worker(WorkerArgs),
    /// Worker tokens: create (printed once), list, revoke. Works while a server runs.
    Workers(WorkersArgs),
    /// Custom-node packs of the supervised ComfyUI (COMFYUI_DIR): list, install, update,
    /// disable, enable, remove. Changes need the workspace (stop the deck, or use its API).
    Nodes(NodesArgs),
    /// What failed and waits for a person: list (works while a server runs), retry one, retry
    /// all that can be retried, roll back an install.
    Recovery(RecoveryArgs),
}

#[derive(Debug, Clone, Args)]
pub struct RecoveryArgs {
    #[command(subcommand)]
    pub action: RecoveryCommand,
}

#[derive(Debug, Clone, Subcommand)]
pub enum RecoveryCommand {
    /// Open failures, newest first, with their class, sentence and actions.
    List {
        /// One JSON document (open, recent, the week's figures) instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Retry one failure (its id from `list`); a download or a preset install is carried out
    /// now, with progress, and the exit status says whether it worked.
    Retry {
        #[arg(value_name = "ID")]
        id: i64,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Retry every open failure whose first action is Retry (not those waiting for a token,
    /// space or a licence first).
    RetryAll {
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Undo a preset install (its restore point's id, from `list`): remove what it added, put
    /// back what it replaced. Twice is harmless.
    Rollback {
        #[arg(value_name = "ID")]
        id: i64,
        #[command(flatten)]
        common: CommonArgs,
    },
}

impl RecoveryCommand {
    pub fn common(&self) -> &CommonArgs {
        match self {
            RecoveryCommand::List { common, .. }
            | RecoveryCommand::Retry { common, .. }
            | RecoveryCommand::RetryAll { common }
            | RecoveryCommand::Rollback { common, .. } => common,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    /// The deck whose queue this worker serves (e.g. its proxy URL)
    #[arg(long, env = "COORDINATOR_URL", value_name = "URL")]
    pub coordinator_url: String,
    /// A token from `comfydeck workers token create` (prefer the variable: flags show in `ps`)
    #[arg(
        long,
        env = "WORKER_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub worker_token: String,
    /// The ComfyUI this worker runs jobs on
    #[arg(long, env = "COMFYUI_URL", default_value = config::DEFAULT_COMFYUI_URL, value_name = "URL")]
    pub comfyui_url: String,
    /// Run ComfyUI from this folder (supervised, as `serve` does); then COMFYUI_URL is ignored
    #[arg(long, env = "COMFYUI_DIR", value_name = "DIR")]
    pub comfyui_dir: Option<PathBuf>,
    /// Port of the supervised ComfyUI (on 127.0.0.1)
    #[arg(long, env = "COMFYUI_PORT", default_value_t = config::DEFAULT_COMFYUI_PORT, value_name = "PORT")]
    pub comfyui_port: u16,
    /// Python for the supervised ComfyUI [default: its venv/ or .venv/ if present, else python3]
    #[arg(long, env = "COMFYUI_PYTHON", value_name = "PATH")]
    pub comfyui_python: Option<PathBuf>,
    /// How the worker is shown on the deck [default: the host name]
    #[arg(long, env = "WORKER_NAME", value_name = "NAME")]
    pub name: Option<String>,
    /// Take jobs whose model files this worker lacks when presets of its catalog provide them,
    /// and install those presets into the workspace's models folder first
    #[arg(long, env = "WORKER_INSTALL_MISSING")]
    pub install_missing: bool,
    /// Hugging Face token for --install-missing (sent only to Hugging Face)
    #[arg(long, env = "HF_TOKEN", hide_env_values = true, value_name = "TOKEN")]
    pub hf_token: Option<String>,
    /// Civitai token for --install-missing (sent only to civitai.com)
    #[arg(
        long,
        env = "CIVITAI_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub civitai_token: Option<String>,
    /// Where the worker keeps its state database, and (with --comfyui-dir or
    /// --install-missing) its ComfyUI's models, input and output
    #[arg(
        long,
        env = "WORKER_WORKSPACE",
        default_value = "comfydeck-worker",
        value_name = "DIR"
    )]
    pub workspace: PathBuf,
    /// Log level (error, warn, info, debug, trace)
    #[arg(long, env = "LOG_LEVEL", default_value = "info")]
    pub log_level: String,
}

#[derive(Debug, Clone, Args)]
pub struct WorkersArgs {
    #[command(subcommand)]
    pub action: WorkersAction,
}

#[derive(Debug, Clone, Subcommand)]
pub enum WorkersAction {
    #[command(subcommand)]
    Token(TokenAction),
}

#[derive(Debug, Clone, Subcommand)]
pub enum TokenAction {
    /// A new token for a worker named NAME, printed once.
    Create {
        #[arg(value_name = "NAME")]
        name: String,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Every token by name (never the secret), with its state.
    List {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// The token stops working at once (the worker's next call is refused).
    Revoke {
        #[arg(value_name = "NAME")]
        name: String,
        #[command(flatten)]
        common: CommonArgs,
    },
}

impl TokenAction {
    pub fn common(&self) -> &CommonArgs {
        match self {
            TokenAction::Create { common, .. }
            | TokenAction::List { common, .. }
            | TokenAction::Revoke { common, .. } => common,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct NodesArgs {
    #[command(subcommand)]
    pub action: NodesAction,
}

#[derive(Debug, Clone, Subcommand)]
pub enum NodesAction {
    /// Every pack: name, repository, commit, state (loaded, failed to import, disabled) and the
    /// classes it adds.
    List {
        /// One JSON document instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        options: NodesOptions,
    },
    /// Install a pack from its repository URL (or owner/repo), or by its id in the node map;
    /// restarts ComfyUI and checks that its classes load, else puts everything back.
    Install {
        #[arg(value_name = "URL|ID")]
        source: String,
        /// A commit, branch, tag or version to check out.
        #[arg(long, value_name = "REV")]
        version: Option<String>,
        #[command(flatten)]
        options: NodesOptions,
    },
    /// Update a pack to its repository's newest commit (or --version).
    Update {
        #[arg(value_name = "ID")]
        id: String,
        #[arg(long, value_name = "REV")]
        version: Option<String>,
        #[command(flatten)]
        options: NodesOptions,
    },
    /// Move a pack aside into custom_nodes/.disabled/ and restart ComfyUI.
    Disable {
        #[arg(value_name = "ID")]
        id: String,
        #[command(flatten)]
        options: NodesOptions,
    },
    /// Move a disabled pack back and restart ComfyUI.
    Enable {
        #[arg(value_name = "ID")]
        id: String,
        #[command(flatten)]
        options: NodesOptions,
    },
    /// Delete a pack's folder and restart ComfyUI (its Python packages stay).
    Remove {
        #[arg(value_name = "ID")]
        id: String,
        #[command(flatten)]
        options: NodesOptions,
    },
}

impl NodesAction {
    pub fn options(&self) -> &NodesOptions {
        match self {
            NodesAction::List { options, .. }
            | NodesAction::Install { options, .. }
            | NodesAction::Update { options, .. }
            | NodesAction::Disable { options, .. }
            | NodesAction::Enable { options, .. }
            | NodesAction::Remove { options, .. } => options,
        }
    }
}

/// What the `nodes` commands need: the workspace, the ComfyUI they manage, and the pack
/// settings `serve` also reads.
#[derive(Debug, Clone, Args)]
pub struct NodesOptions {
    #[command(flatten)]
    pub common: CommonArgs,
    /// The ComfyUI folder whose custom_nodes/ is managed (the deck's COMFYUI_DIR)
    #[arg(long, env = "COMFYUI_DIR", value_name = "DIR")]
    pub comfyui_dir: Option<PathBuf>,
    /// Port ComfyUI listens on while the command runs it
    #[arg(long, env = "COMFYUI_PORT", default_value_t = config::DEFAULT_COMFYUI_PORT, value_name = "PORT")]
    pub comfyui_port: u16,
    /// Python that runs ComfyUI and installs the packs' requirements [default: its venv/ or .venv/, else python3]
    #[arg(long, env = "COMFYUI_PYTHON", value_name = "PATH")]
    pub comfyui_python: Option<PathBuf>,
    /// Extra flags for ComfyUI, quoted like a shell
    #[arg(
        long,
        env = "COMFYUI_ARGS",
        value_name = "ARGS",
        allow_hyphen_values = true
    )]
    pub comfyui_args: Option<String>,
    #[command(flatten)]
    pub packs: NodePackArgs,
}

impl NodesOptions {
    pub fn to_config(&self) -> Result<Config, String> {
        let mut config = self.common.to_config()?;
        let dir = self
            .comfyui_dir
            .clone()
            .filter(|d| !d.as_os_str().is_empty())
            .ok_or(
                "COMFYUI_DIR (--comfyui-dir) must name the ComfyUI folder whose packs to manage",
            )?;
        config.comfyui_dir = Some(dir);
        config.comfyui_port = self.comfyui_port;
        config.comfyui_python = self
            .comfyui_python
            .clone()
            .filter(|p| !p.as_os_str().is_empty());
        config.comfyui_args =
            engine::comfy::supervisor::parse_args(self.comfyui_args.as_deref().unwrap_or(""))
                .map_err(|e| format!("COMFYUI_ARGS: {e}"))?;
        config.comfyui_url = format!("http://127.0.0.1:{}", config.comfyui_port);
        self.packs.apply(&mut config)?;
        Ok(config)
    }
}

/// Custom-node pack settings, shared by `serve` and `nodes`.
#[derive(Debug, Clone, Args)]
pub struct NodePackArgs {
    /// The node map (ComfyUI-Manager's extension-node-map.json format) that resolves missing node classes to packs; empty turns it off
    #[arg(long, env = "NODE_MAP_URL", default_value = config::DEFAULT_NODE_MAP_URL, value_name = "URL")]
    pub node_map_url: String,
    /// Python packages no pack may change, beyond torch, torchvision, torchaudio, xformers and numpy (comma-separated)
    #[arg(long, env = "NODE_PROTECTED_PACKAGES", value_name = "NAMES")]
    pub node_protected_packages: Option<String>,
    /// Extra flags for every pip install of a pack, quoted like a shell (e.g. "--no-index --find-links /wheels")
    #[arg(
        long,
        env = "NODE_PIP_ARGS",
        value_name = "ARGS",
        allow_hyphen_values = true
    )]
    pub node_pip_args: Option<String>,
}

impl NodePackArgs {
    pub fn apply(&self, config: &mut Config) -> Result<(), String> {
        config.node_map_url = match self.node_map_url.trim() {
            "" => None,
            url => Some(config::normalize_base_url(
                "--node-map-url / NODE_MAP_URL",
                url,
            )?),
        };
        config.node_protected_packages = self
            .node_protected_packages
            .as_deref()
            .map(config::parse_preset_list)
            .unwrap_or_default();
        config.node_pip_args =
            engine::comfy::supervisor::parse_args(self.node_pip_args.as_deref().unwrap_or(""))
                .map_err(|e| format!("NODE_PIP_ARGS: {e}"))?;
        Ok(())
    }
}

#[derive(Debug, Clone, Args)]
pub struct UsersArgs {
    #[command(subcommand)]
    pub action: UsersAction,
}

#[derive(Debug, Clone, Subcommand)]
pub enum UsersAction {
    /// Add a user; prints a generated password unless --password-stdin gives one.
    Add {
        #[arg(value_name = "NAME")]
        name: String,
        /// An administrator instead of a user.
        #[arg(long)]
        admin: bool,
        /// Read the password from the first line of standard input (8+ characters).
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Every account with its role, state and last login.
    List {
        /// One JSON document instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Set a new password (generated and printed unless --password-stdin); ends their
    /// sessions.
    Passwd {
        #[arg(value_name = "NAME")]
        name: String,
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Stop a user from logging in; ends their sessions, their API tokens stop working.
    Disable {
        #[arg(value_name = "NAME")]
        name: String,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Let a disabled user log in again.
    Enable {
        #[arg(value_name = "NAME")]
        name: String,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Remove a user: sessions end, API tokens are revoked, outputs pass to admin.
    Remove {
        #[arg(value_name = "NAME")]
        name: String,
        #[command(flatten)]
        common: CommonArgs,
    },
}

impl UsersAction {
    pub fn common(&self) -> &CommonArgs {
        match self {
            UsersAction::Add { common, .. }
            | UsersAction::List { common, .. }
            | UsersAction::Passwd { common, .. }
            | UsersAction::Disable { common, .. }
            | UsersAction::Enable { common, .. }
            | UsersAction::Remove { common, .. } => common,
        }
    }
}

#[derive(Debug, Clone, Subcommand)]
pub enum WorkflowAction {
    /// Print the API-format prompt of a workflow (UI format is converted like ComfyUI's
    /// frontend does; API format passes through), e.g. for serverless workers.
    ToApi {
        /// ComfyUI's `/object_info`: a saved JSON file, or a ComfyUI base URL / object_info URL.
        #[arg(long, value_name = "FILE_OR_URL")]
        object_info: String,
        /// The workflow JSON (`-` reads standard input).
        #[arg(value_name = "WORKFLOW")]
        workflow: String,
    },
}

#[derive(Debug, Clone, Args)]
pub struct PresetsArgs {
    #[command(subcommand)]
    pub action: PresetsAction,
}

#[derive(Debug, Clone, Subcommand)]
pub enum PresetsAction {
    /// The catalog with each preset's install state.
    List {
        /// One JSON document instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Queue presets (ids in either format); with --wait, download them now with progress.
    Install {
        #[arg(required = true, value_name = "ID")]
        ids: Vec<String>,
        /// Stay until every file is verified (exit 0) or a download fails (exit 1).
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Per-file state of one preset, or of every preset that is not "not installed".
    Status {
        #[arg(value_name = "ID")]
        id: Option<String>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Delete a preset's files that no other installed preset needs.
    Remove {
        #[arg(value_name = "ID")]
        id: String,
        #[command(flatten)]
        common: CommonArgs,
    },
}

#[derive(Debug, Clone, Args)]
pub struct DownloadArgs {
    /// http(s) URL of the file.
    #[arg(value_name = "URL")]
    pub url: String,
    /// Destination inside the models folder, as `<folder>/<file>` (e.g. `loras/style.safetensors`).
    #[arg(long, value_name = "FOLDER/FILE")]
    pub to: String,
    /// Expected SHA-256 (hex); without it, Hugging Face's own hash or the size is checked.
    #[arg(long, value_name = "HEX")]
    pub sha256: Option<String>,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// What every command that touches the workspace shares.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// The workspace volume [default: /workspace if it exists, else ./workspace]
    #[arg(long, env = "WORKSPACE_ROOT", value_name = "DIR")]
    pub workspace: Option<PathBuf>,
    /// Log level (error, warn, info, debug, trace) or a full filter such as `info,sqlx=debug`
    #[arg(long, env = "LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// Hugging Face base URL (token checks; a token is sent only to this host, huggingface.co and hf.co)
    #[arg(long, env = "HF_BASE_URL", default_value = config::DEFAULT_HF_BASE_URL, value_name = "URL")]
    pub hf_base_url: String,
    /// Hugging Face's mirror variable: Hugging Face links download from this endpoint first,
    /// huggingface.co next; the Hugging Face token is sent to it as to the Hub
    #[arg(long, env = "HF_ENDPOINT", value_name = "URL")]
    pub hf_endpoint: Option<String>,
    /// Days a partial download that no download will finish (failed, cancelled) is kept
    #[arg(long, env = "RECOVERY_RETENTION_DAYS", default_value_t = config::DEFAULT_RECOVERY_RETENTION_DAYS, value_name = "DAYS")]
    pub recovery_retention_days: u32,
    /// Size of the pod's network volume in GB, shown as the volume's quota
    #[arg(long, env = "RUNPOD_VOLUME_GB", value_name = "GB")]
    pub runpod_volume_gb: Option<String>,
    /// Files downloading at once
    #[arg(
        long,
        env = "CONCURRENT_DOWNLOADS",
        default_value_t = config::DEFAULT_CONCURRENT_DOWNLOADS,
        value_name = "N"
    )]
    pub concurrent_downloads: usize,
    /// Connections per large file (over 256 MiB, when the server supports ranges)
    #[arg(
        long,
        env = "DOWNLOAD_CONNECTIONS",
        default_value_t = config::DEFAULT_DOWNLOAD_CONNECTIONS,
        value_name = "N"
    )]
    pub connections: usize,
    /// Space in GB that downloads always leave free on the volume
    #[arg(
        long,
        env = "DOWNLOAD_DISK_RESERVE_GB",
        default_value_t = config::DEFAULT_DISK_RESERVE_GB.to_string(),
        value_name = "GB"
    )]
    pub disk_reserve_gb: String,
    /// A remote preset registry (JSON), synced on demand and cached in the workspace
    #[arg(long, env = "PRESET_REGISTRY_URL", value_name = "URL")]
    pub preset_registry_url: Option<String>,
    /// The job queue in Redis (redis://HOST:PORT/DB), shared by every deck that names it
    /// [default: the workspace's SQLite]
    #[arg(long, env = "QUEUE_URL", value_name = "URL", hide_env_values = true)]
    pub queue_url: Option<String>,
}

impl CommonArgs {
    /// The engine configuration for a command that does not listen: loopback, no password.
    pub fn to_config(&self) -> Result<Config, String> {
        let mut config = Config::with_workspace(
            self.workspace
                .clone()
                .unwrap_or_else(config::default_workspace_root),
        );
        config.hf_base_url =
            config::normalize_base_url("--hf-base-url / HF_BASE_URL", &self.hf_base_url)?;
        config.recovery_retention_days = self.recovery_retention_days;
        config.hf_endpoint = self
            .hf_endpoint
            .as_deref()
            .filter(|v| !v.trim().is_empty())
            .map(|v| config::normalize_base_url("--hf-endpoint / HF_ENDPOINT", v))
            .transpose()?;
        config.volume_quota_bytes = self
            .runpod_volume_gb
            .as_deref()
            .filter(|v| !v.trim().is_empty())
            .map(config::parse_volume_gb)
            .transpose()?;
        if !(1..=16).contains(&self.concurrent_downloads) {
            return Err(format!(
                "CONCURRENT_DOWNLOADS must be between 1 and 16, got {}",
                self.concurrent_downloads
            ));
        }
        config.concurrent_downloads = self.concurrent_downloads;
        if !(1..=16).contains(&self.connections) {
            return Err(format!(
                "--connections / DOWNLOAD_CONNECTIONS must be between 1 and 16, got {}",
                self.connections
            ));
        }
        config.download_connections = self.connections;
        let reserve: f64 = self.disk_reserve_gb.trim().parse().map_err(|_| {
            format!(
                "DOWNLOAD_DISK_RESERVE_GB must be a number of GB, got {:?}",
                self.disk_reserve_gb
            )
        })?;
        if !(0.0..=10_000.0).contains(&reserve) {
            return Err(format!(
                "DOWNLOAD_DISK_RESERVE_GB must be between 0 and 10000, got {reserve}"
            ));
        }
        config.disk_reserve_bytes = (reserve * 1024.0 * 1024.0 * 1024.0) as u64;
        config.queue_url = match self.queue_url.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(url) if url.starts_with("redis://") || url.starts_with("rediss://") => {
                Some(url.to_string())
            }
            Some(url) => {
                return Err(format!(
                    "--queue-url / QUEUE_URL must be a redis:// URL, got {:?}",
                    url.split('@').next_back().unwrap_or(url)
                ))
            }
        };
        config.preset_registry_url = match self.preset_registry_url.as_deref() {
            None | Some("") => None,
            Some(url) => Some(config::normalize_base_url(
                "--preset-registry-url / PRESET_REGISTRY_URL",
                url,
            )?),
        };
        Ok(config)
    }
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Address to listen on; anything but loopback requires a login
    #[arg(long, env = "DASHBOARD_HOST", default_value = config::DEFAULT_HOST)]
    pub host: IpAddr,
    #[arg(long, env = "DASHBOARD_PORT", default_value_t = config::DEFAULT_PORT)]
    pub port: u16,
    /// ComfyUI's base URL
    #[arg(long, env = "COMFYUI_URL", default_value = config::DEFAULT_COMFYUI_URL, value_name = "URL")]
    pub comfyui_url: String,
    /// Password for the dashboard (prefer the environment variable: flags are visible in `ps`)
    #[arg(
        long,
        env = "ACCESS_PASSWORD",
        hide_env_values = true,
        value_name = "PASSWORD"
    )]
    pub access_password: Option<String>,
    /// Run ComfyUI from this folder (supervised: restarted when it exits, stopped with comfydeck)
    #[arg(long, env = "COMFYUI_DIR", value_name = "DIR")]
    pub comfyui_dir: Option<PathBuf>,
    /// Port of the supervised ComfyUI (it listens on 127.0.0.1 only)
    #[arg(long, env = "COMFYUI_PORT", default_value_t = config::DEFAULT_COMFYUI_PORT, value_name = "PORT")]
    pub comfyui_port: u16,
    /// Python for the supervised ComfyUI [default: its venv/ or .venv/ if present, else python3]
    #[arg(long, env = "COMFYUI_PYTHON", value_name = "PATH")]
    pub comfyui_python: Option<PathBuf>,
    /// Extra flags for the supervised ComfyUI, quoted like a shell (e.g. "--preview-method auto")
    #[arg(
        long,
        env = "COMFYUI_ARGS",
        value_name = "ARGS",
        allow_hyphen_values = true
    )]
    pub comfyui_args: Option<String>,
    /// ComfyUI's output folder, when it is not <workspace>/output (the gallery indexes it)
    #[arg(long, env = "COMFYUI_OUTPUT_DIR", value_name = "DIR")]
    pub comfyui_output_dir: Option<PathBuf>,
    /// An OpenAI-compatible chat API for "enhance prompt" (e.g. http://127.0.0.1:11434/v1 for Ollama)
    #[arg(long, env = "LLM_BASE_URL", value_name = "URL")]
    pub llm_base_url: Option<String>,
    /// The model "enhance prompt" asks (needs LLM_BASE_URL)
    #[arg(long, env = "LLM_MODEL", value_name = "NAME")]
    pub llm_model: Option<String>,
    /// API key for LLM_BASE_URL, sent to that host only (prefer the variable)
    #[arg(long, env = "LLM_API_KEY", value_name = "KEY", hide_env_values = true)]
    pub llm_api_key: Option<String>,
    /// Presets to install at start-up (comma-separated ids, either format)
    #[arg(long, env = "PRESET_DOWNLOAD", value_name = "IDS")]
    pub preset_download: Option<String>,
    /// More start-up presets (kept apart for compatibility with pod templates)
    #[arg(long, env = "IMAGE_PRESET_DOWNLOAD", value_name = "IDS")]
    pub image_preset_download: Option<String>,
    #[arg(long, env = "AUDIO_PRESET_DOWNLOAD", value_name = "IDS")]
    pub audio_preset_download: Option<String>,
    /// Jobs one person may have waiting in the queue (more are answered 429)
    #[arg(
        long,
        env = "MAX_PENDING_PER_USER",
        default_value_t = 100,
        value_name = "N"
    )]
    pub max_pending_per_user: u64,
    /// Jobs one person may have running at once [default: no limit]
    #[arg(long, env = "MAX_RUNNING_PER_USER", value_name = "N")]
    pub max_running_per_user: Option<u64>,
    /// How long a worker's claim lasts without a heartbeat, in seconds
    #[arg(
        long,
        env = "JOB_LEASE_SECS",
        default_value_t = 60,
        value_name = "SECONDS"
    )]
    pub job_lease_secs: u64,
    /// The wait before a job is delivered again after a transient failure, in seconds;
    /// doubles with each delivery (0: at once)
    #[arg(
        long,
        env = "JOB_RETRY_SECS",
        default_value_t = 5,
        value_name = "SECONDS"
    )]
    pub job_retry_secs: u64,
    #[command(flatten)]
    pub packs: NodePackArgs,
}

impl ServeArgs {
    /// Validates the flags into the engine's configuration; errors name the flag.
    pub fn to_config(&self) -> Result<Config, String> {
        let mut config = self.common.to_config()?;
        let access_password = match self.access_password.as_deref() {
            None | Some("") => None,
            Some(p) if p.chars().count() < 8 => {
                return Err("ACCESS_PASSWORD must be at least 8 characters".to_string())
            }
            Some(p) => Some(Secret::new(p)),
        };
        if let Some(dir) = self
            .comfyui_dir
            .as_ref()
            .filter(|d| !d.as_os_str().is_empty())
        {
            config.comfyui_dir = Some(dir.clone());
            config.comfyui_port = self.comfyui_port;
            config.comfyui_python = self
                .comfyui_python
                .clone()
                .filter(|p| !p.as_os_str().is_empty());
            config.comfyui_args =
                engine::comfy::supervisor::parse_args(self.comfyui_args.as_deref().unwrap_or(""))
                    .map_err(|e| format!("COMFYUI_ARGS: {e}"))?;
        }
        config.comfyui_output_dir = self
            .comfyui_output_dir
            .clone()
            .filter(|d| !d.as_os_str().is_empty());
        config.llm_base_url = match self.llm_base_url.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(url) => Some(config::normalize_base_url(
                "--llm-base-url / LLM_BASE_URL",
                url,
            )?),
        };
        config.llm_model = self
            .llm_model
            .as_deref()
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .map(str::to_string);
        if config.llm_base_url.is_some() != config.llm_model.is_some() {
            return Err("LLM_BASE_URL and LLM_MODEL must be set together".to_string());
        }
        config.llm_api_key = self
            .llm_api_key
            .as_deref()
            .filter(|k| !k.is_empty())
            .map(Secret::new);
        config.host = self.host;
        config.port = self.port;
        // A supervised ComfyUI is where comfydeck started it; COMFYUI_URL is for attaching.
        config.comfyui_url = match &config.comfyui_dir {
            Some(_) => format!("http://127.0.0.1:{}", config.comfyui_port),
            None => config::normalize_base_url("--comfyui-url / COMFYUI_URL", &self.comfyui_url)?,
        };
        config.access_password = access_password;
        if self.max_pending_per_user == 0 {
            return Err("--max-pending-per-user must be at least 1".to_string());
        }
        if self.max_running_per_user == Some(0) {
            return Err("--max-running-per-user must be at least 1".to_string());
        }
        if !(2..=3600).contains(&self.job_lease_secs) {
            return Err(format!(
                "--job-lease-secs must be between 2 and 3600, got {}",
                self.job_lease_secs
            ));
        }
        if self.job_retry_secs > 600 {
            return Err(format!(
                "--job-retry-secs must be at most 600, got {}",
                self.job_retry_secs
            ));
        }
        config.job_limits = engine::jobs::JobLimits {
            max_pending_per_user: self.max_pending_per_user,
            max_running_per_user: self.max_running_per_user,
            lease: std::time::Duration::from_secs(self.job_lease_secs),
            retry_delay: std::time::Duration::from_secs(self.job_retry_secs),
        };
        self.packs.apply(&mut config)?;
        config.startup_presets = [
            &self.preset_download,
            &self.image_preset_download,
            &self.audio_preset_download,
        ]
        .into_iter()
        .flatten()
        .flat_map(|list| config::parse_preset_list(list))
        .collect();
        Ok(config)
    }
}

impl PresetsAction {
    pub fn common(&self) -> &CommonArgs {
        match self {
            PresetsAction::List { common, .. }
            | PresetsAction::Install { common, .. }
            | PresetsAction::Status { common, .. }
            | PresetsAction::Remove { common, .. } => common,
        }
    }
}

impl Cli {
    /// The serve arguments when the command is `serve` (or none).
    pub fn serve_args(&self) -> Option<&ServeArgs> {
        match &self.command {
            Some(Command::Serve(args)) => Some(args),
            None => Some(&self.serve),
            Some(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use engine::download::manager::DownloadConfig;

    use super::*;

    fn serve(args: &[&str]) -> Result<Config, String> {
        let cli = Cli::try_parse_from(std::iter::once("comfydeck").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        cli.serve.to_config()
    }

    #[test]
    fn flag_defaults_are_the_engines() {
        let flags = serve(&["--workspace", "/tmp/ws"]).unwrap();
        let engine = Config::with_workspace("/tmp/ws");
        assert_eq!(flags.concurrent_downloads, engine.concurrent_downloads);
        assert_eq!(flags.download_connections, engine.download_connections);
        assert_eq!(flags.disk_reserve_bytes, engine.disk_reserve_bytes);
        assert_eq!(
            flags.segment_threshold_bytes,
            engine.segment_threshold_bytes
        );
        assert_eq!(flags.comfyui_url, engine.comfyui_url);
        assert_eq!(flags.comfyui_port, engine.comfyui_port);
        assert_eq!(flags.hf_base_url, engine.hf_base_url);
        assert_eq!((flags.host, flags.port), (engine.host, engine.port));

        let from_flags = DownloadConfig::from_config(&flags);
        let default = DownloadConfig::default();
        assert_eq!(from_flags.concurrent, default.concurrent);
        assert_eq!(from_flags.connections, default.connections);
        assert_eq!(from_flags.segment_threshold, default.segment_threshold);
        assert_eq!(from_flags.disk_reserve, default.disk_reserve);
    }

    #[test]
    fn the_llm_needs_both_url_and_model() {
        let config = serve(&[
            "--llm-base-url",
            "http://127.0.0.1:11434/v1/",
            "--llm-model",
            "llama3.2",
            "--llm-api-key",
            "sk-1",
        ])
        .unwrap();
        let llm = config.llm().expect("configured");
        assert_eq!(llm.base_url, "http://127.0.0.1:11434/v1");
        assert_eq!(llm.model, "llama3.2");
        assert_eq!(llm.api_key.as_ref().map(Secret::expose), Some("sk-1"));

        let err = serve(&["--llm-base-url", "http://127.0.0.1:11434/v1"]).unwrap_err();
        assert!(err.contains("LLM_BASE_URL and LLM_MODEL"), "{err}");
        let err = serve(&["--llm-base-url", "ollama:11434", "--llm-model", "m"]).unwrap_err();
        assert!(err.contains("LLM_BASE_URL"), "{err}");
        // Empty values mean "not configured".
        assert!(serve(&["--llm-base-url", "", "--llm-model", ""])
            .unwrap()
            .llm()
            .is_none());
    }
}
