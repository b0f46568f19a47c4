//! Command line: `comfydeck serve` (the default). Every flag has an environment variable.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use engine::config::{self, Config, Secret};

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

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the dashboard (the default).
    Serve(ServeArgs),
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// The workspace volume [default: /workspace if it exists, else ./workspace]
    #[arg(long, env = "WORKSPACE_ROOT", value_name = "DIR")]
    pub workspace: Option<PathBuf>,
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
    /// Log level (error, warn, info, debug, trace) or a full filter such as `info,sqlx=debug`
    #[arg(long, env = "LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// Hugging Face API base URL (token checks)
    #[arg(long, env = "HF_BASE_URL", default_value = config::DEFAULT_HF_BASE_URL, value_name = "URL")]
    pub hf_base_url: String,
    /// Size of the pod's network volume in GB, shown as the volume's quota
    #[arg(long, env = "RUNPOD_VOLUME_GB", value_name = "GB")]
    pub runpod_volume_gb: Option<String>,
}

impl ServeArgs {
    /// Validates the flags into the engine's configuration; errors name the flag.
    pub fn to_config(&self) -> Result<Config, String> {
        let workspace_root = self
            .workspace
            .clone()
            .unwrap_or_else(config::default_workspace_root);
        let access_password = match self.access_password.as_deref() {
            None | Some("") => None,
            Some(p) if p.chars().count() < 8 => {
                return Err("ACCESS_PASSWORD must be at least 8 characters".to_string())
            }
            Some(p) => Some(Secret::new(p)),
        };
        Ok(Config {
            workspace_root,
            host: self.host,
            port: self.port,
            comfyui_url: config::normalize_base_url(
                "--comfyui-url / COMFYUI_URL",
                &self.comfyui_url,
            )?,
            access_password,
            hf_base_url: config::normalize_base_url(
                "--hf-base-url / HF_BASE_URL",
                &self.hf_base_url,
            )?,
            volume_quota_bytes: self
                .runpod_volume_gb
                .as_deref()
                .filter(|v| !v.trim().is_empty())
                .map(config::parse_volume_gb)
                .transpose()?,
        })
    }
}

impl Cli {
    pub fn serve_args(&self) -> &ServeArgs {
        match &self.command {
            Some(Command::Serve(args)) => args,
            None => &self.serve,
        }
    }
}
