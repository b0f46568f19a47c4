//! `comfydeck workflow to-api`: a workflow's API-format prompt, converted with ComfyUI's
//! `/object_info` from a file or a running ComfyUI. Needs no workspace and no server.

use anyhow::{bail, Context};
use engine::comfy::convert::{self, ObjectInfo};

use super::ExitCode;
use crate::cli::WorkflowAction;

pub async fn workflow(action: WorkflowAction) -> anyhow::Result<ExitCode> {
    match action {
        WorkflowAction::ToApi {
            object_info,
            workflow,
        } => {
            let text = if workflow == "-" {
                let mut text = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                    .context("cannot read the workflow from standard input")?;
                text
            } else {
                std::fs::read_to_string(&workflow)
                    .with_context(|| format!("cannot read the workflow {workflow}"))?
            };
            let value: serde_json::Value =
                serde_json::from_str(&text).with_context(|| format!("{workflow} is not JSON"))?;
            let info = load_object_info(&object_info).await?;
            let info =
                ObjectInfo::from_json(info).map_err(|e| anyhow::anyhow!("{object_info}: {e}"))?;
            let name = if workflow == "-" {
                "the workflow"
            } else {
                workflow.as_str()
            };
            let prompt = convert::to_api(&value, &info)
                .map_err(|e| anyhow::anyhow!("{name} cannot be converted: {e}"))?;
            out!("{}", serde_json::to_string_pretty(&prompt.to_value())?);
            Ok(0)
        }
    }
}

/// A saved `/object_info` JSON file, or fetched from a ComfyUI URL (its base or the
/// `/object_info` URL itself).
async fn load_object_info(source: &str) -> anyhow::Result<serde_json::Value> {
    if source.starts_with("http://") || source.starts_with("https://") {
        let url = if source.trim_end_matches('/').ends_with("/object_info") {
            source.to_string()
        } else {
            format!("{}/object_info", source.trim_end_matches('/'))
        };
        let response = reqwest::get(&url)
            .await
            .with_context(|| format!("cannot reach {url}"))?;
        if !response.status().is_success() {
            bail!("{url} answered HTTP {}", response.status());
        }
        return response
            .json()
            .await
            .with_context(|| format!("{url} did not return JSON"));
    }
    let text = std::fs::read_to_string(source)
        .with_context(|| format!("cannot read --object-info {source}"))?;
    serde_json::from_str(&text).with_context(|| format!("--object-info {source} is not JSON"))
}
