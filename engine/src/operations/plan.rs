//! What "make runnable" does for one workflow, decided before anything changes: a step per
//! missing pack, per missing model file (from the best source) and per small mistake, then a
//! last check. Pure: the service gathers the facts and runs the steps.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::{MissingNodeClass, RequiredModel, StepKind, StepState};
use crate::workflows::fixes::Finding;
use crate::workflows::links::ModelLink;

/// What a step does, stored as JSON with the step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "do", rename_all = "snake_case")]
pub enum Action {
    /// Clone a pack (at `version` when the workflow pins one) and restart ComfyUI.
    InstallPack {
        repo: String,
        version: Option<String>,
        classes: Vec<String>,
    },
    /// No pack is known for these classes.
    UnknownClass { class_type: String },
    InstallPreset {
        preset_id: String,
        folder: String,
        file: String,
    },
    /// A file from a link (the workflow's own, or one the user gave).
    Download {
        url: String,
        /// Other URLs of the same file (the workflow entry's `mirrors`), tried in order.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        mirrors: Vec<String>,
        folder: String,
        file: String,
        sha256: Option<String>,
    },
    /// No source is known: a question answered with a link.
    NeedsLink { folder: String, file: String },
    /// The same file is in another folder of `models/` (`found`): a question — link it here,
    /// or get it from `otherwise` (a preset or a link) when there is one.
    UseFileElsewhere {
        found: String,
        folder: String,
        file: String,
        otherwise: Option<Box<Action>>,
    },
    /// Link `models/<found>` as `models/<folder>/<file>` (a hard link: no copy, no space).
    LinkFile {
        found: String,
        folder: String,
        file: String,
    },
    /// Change an input on the copy.
    Fix {
        node_id: String,
        input: String,
        from: Value,
        to: Value,
    },
    /// The user picks the value of an input.
    Choose {
        node_id: String,
        input: String,
        value: Value,
        choices: Vec<String>,
    },
    /// Apply the fixes to a copy, save it, and look at it again.
    Check,
}

/// A step before it is stored.
#[derive(Clone, Debug, PartialEq)]
pub struct PlannedStep {
    pub kind: StepKind,
    pub key: String,
    pub title: String,
    pub state: StepState,
    pub detail: Option<String>,
    pub action: Action,
}

impl PlannedStep {
    fn new(kind: StepKind, key: String, title: String, action: Action) -> Self {
        PlannedStep {
            kind,
            key,
            title,
            state: StepState::Pending,
            detail: None,
            action,
        }
    }

    fn asking(mut self, detail: String) -> Self {
        self.state = StepState::Question;
        self.detail = Some(detail);
        self
    }
}

/// The step that closes every plan.
pub fn check_step() -> PlannedStep {
    PlannedStep::new(
        StepKind::Check,
        "check".into(),
        "Save a runnable copy and check it".into(),
        Action::Check,
    )
}

/// The facts a plan is made from.
pub struct Facts<'a> {
    pub missing_classes: &'a [MissingNodeClass],
    pub required_models: &'a [RequiredModel],
    pub links: &'a [ModelLink],
    pub findings: &'a [Finding],
    /// `("<folder>/<file>", path in models/)`: a missing file found in another folder.
    pub elsewhere: &'a [(String, String)],
}

/// The answer that links a file found in another folder.
pub fn use_found_choice(found: &str) -> String {
    format!("Use models/{found}")
}

/// The answer that takes the other source instead.
pub const DOWNLOAD_INSTEAD: &str = "Download it instead";

/// What a step in the question state asks: its choices, and whether a link answers it.
pub fn asks(action: &Action) -> (Vec<String>, bool) {
    match action {
        Action::Choose { choices, .. } => (choices.clone(), false),
        Action::NeedsLink { .. } => (Vec::new(), true),
        Action::UseFileElsewhere {
            found, otherwise, ..
        } => {
            let mut choices = vec![use_found_choice(found)];
            if otherwise.is_some() {
                choices.push(DOWNLOAD_INSTEAD.to_string());
            }
            (choices, false)
        }
        _ => (Vec::new(), false),
    }
}

/// The title of a model step that gets its file from `action`.
pub fn model_title(action: &Action) -> String {
    match action {
        Action::InstallPreset {
            preset_id, file, ..
        } => format!("Install {file} (preset {preset_id})"),
        Action::Download { folder, file, .. } => {
            format!("Download {file} into {folder} (the workflow's own link)")
        }
        Action::LinkFile {
            found,
            folder,
            file,
        } => format!("Link models/{found} as {folder}/{file}"),
        Action::NeedsLink { folder, file } => format!("Find {file} ({folder})"),
        Action::UseFileElsewhere {
            found,
            folder,
            file,
            ..
        } => format!("Use models/{found} for {folder}/{file}?"),
        _ => String::new(),
    }
}

/// The steps for `facts`, packs first (their restart may add choices), then model files, then
/// fixes; without the closing check.
pub fn plan(facts: &Facts<'_>) -> Vec<PlannedStep> {
    let mut steps: Vec<PlannedStep> = Vec::new();
    let mut push = |step: PlannedStep| {
        if !steps.iter().any(|s| s.key == step.key) {
            steps.push(step);
        }
    };
    for missing in facts.missing_classes {
        match &missing.pack {
            Some(pack) => {
                let classes: Vec<String> = facts
                    .missing_classes
                    .iter()
                    .filter(|m| {
                        m.pack
                            .as_ref()
                            .is_some_and(|p| p.repository == pack.repository)
                    })
                    .map(|m| m.class_type.clone())
                    .collect();
                let name = pack.title.clone().unwrap_or_else(|| pack.id.clone());
                let at = pack
                    .version
                    .as_deref()
                    .map(|v| format!(" at {v}"))
                    .unwrap_or_default();
                push(PlannedStep::new(
                    StepKind::Pack,
                    format!("pack:{}", pack.repository),
                    format!("Install pack {name}{at} (for {})", classes.join(", ")),
                    Action::InstallPack {
                        repo: pack.repository.clone(),
                        version: pack.version.clone(),
                        classes,
                    },
                ));
            }
            None => {
                let mut step = PlannedStep::new(
                    StepKind::Pack,
                    format!("class:{}", missing.class_type),
                    format!("Node type {}", missing.class_type),
                    Action::UnknownClass {
                        class_type: missing.class_type.clone(),
                    },
                );
                step.state = StepState::Failed;
                step.detail = Some(format!(
                    "no known pack provides {}: install its pack from its repository \
                     (POST /api/nodes/install or `comfydeck nodes install URL`)",
                    missing.class_type
                ));
                push(step);
            }
        }
    }
    let fixed = |m: &RequiredModel| {
        facts
            .findings
            .iter()
            .any(|f| f.key() == (m.node_id.as_str(), m.input.as_str()))
    };
    for model in facts.required_models.iter().filter(|m| !m.installed) {
        // A file with the same name elsewhere is a fix (or a question), below.
        if fixed(model) {
            continue;
        }
        let path = format!("{}/{}", model.folder, model.file);
        let key = format!("model:{path}");
        let source = if let Some(preset_id) = &model.preset_id {
            Some(Action::InstallPreset {
                preset_id: preset_id.clone(),
                folder: model.folder.clone(),
                file: model.file.clone(),
            })
        } else {
            link_for(facts.links, model).map(|link| Action::Download {
                url: link.url.clone(),
                mirrors: link.mirrors.clone(),
                folder: model.folder.clone(),
                file: model.file.clone(),
                sha256: link.checksum.as_ref().map(|c| c.value.clone()),
            })
        };
        let found = facts
            .elsewhere
            .iter()
            .find(|(wanted, _)| *wanted == path)
            .map(|(_, found)| found.clone());
        let step = match (found, source) {
            // An installed file comes first: offered, since it sits in another folder.
            (Some(found), otherwise) => {
                let action = Action::UseFileElsewhere {
                    found: found.clone(),
                    folder: model.folder.clone(),
                    file: model.file.clone(),
                    otherwise: otherwise.map(Box::new),
                };
                PlannedStep::new(StepKind::Model, key, model_title(&action), action).asking(
                    format!(
                        "the same file is in models/{found}, but ComfyUI looks for it in {}: a                          link there takes no space",
                        model.folder
                    ),
                )
            }
            (None, Some(action)) => {
                PlannedStep::new(StepKind::Model, key, model_title(&action), action)
            }
            (None, None) => {
                let action = Action::NeedsLink {
                    folder: model.folder.clone(),
                    file: model.file.clone(),
                };
                PlannedStep::new(StepKind::Model, key, model_title(&action), action).asking(
                    "no download link known: paste a Hugging Face or CivitAI link to it".into(),
                )
            }
        };
        push(step);
    }
    for finding in facts.findings {
        push(finding_step(finding));
    }
    steps
}

/// The step of one finding: a fix to apply, or a question.
pub fn finding_step(finding: &Finding) -> PlannedStep {
    let (node, input) = finding.key();
    let key = format!("input:{node}:{input}");
    match finding {
        Finding::Fix(fix) => PlannedStep::new(
            StepKind::Fix,
            key,
            fix.sentence.clone(),
            Action::Fix {
                node_id: fix.node_id.clone(),
                input: fix.input.clone(),
                from: fix.from.clone(),
                to: fix.to.clone(),
            },
        ),
        Finding::Question(q) => PlannedStep::new(
            StepKind::Fix,
            key,
            q.sentence.clone(),
            Action::Choose {
                node_id: q.node_id.clone(),
                input: q.input.clone(),
                value: q.value.clone(),
                choices: q.choices.clone(),
            },
        )
        .asking("pick the value to use".into()),
    }
}

/// The workflow's link for a missing file: same folder and name, else the same name alone
/// (workflows often name a file without its sub-folder, or the other way round).
fn link_for<'a>(links: &'a [ModelLink], model: &RequiredModel) -> Option<&'a ModelLink> {
    let base = |p: &str| p.rsplit('/').next().unwrap_or(p).to_string();
    links
        .iter()
        .find(|l| l.directory == model.folder && l.name == model.file)
        .or_else(|| {
            links
                .iter()
                .find(|l| l.directory == model.folder && base(&l.name) == base(&model.file))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{PackSource, ResolvedPack};
    use crate::workflows::fixes::{Fix, Question};
    use serde_json::json;

    fn required(folder: &str, file: &str, node: &str, preset: Option<&str>) -> RequiredModel {
        RequiredModel {
            folder: folder.into(),
            file: file.into(),
            node_id: node.into(),
            class_type: "Loader".into(),
            input: "name".into(),
            installed: false,
            preset_id: preset.map(str::to_string),
        }
    }

    #[test]
    fn each_missing_thing_gets_one_step_from_its_best_source() {
        let pack = |class: &str, repo: &str| MissingNodeClass {
            class_type: class.into(),
            pack: Some(ResolvedPack {
                class_type: class.into(),
                repository: repo.into(),
                id: "fancy".into(),
                title: Some("Fancy".into()),
                version: Some("abc123".into()),
                source: PackSource::NodeProperties,
            }),
        };
        let missing = [
            pack("A", "https://h/fancy"),
            pack("B", "https://h/fancy"),
            MissingNodeClass {
                class_type: "Lost".into(),
                pack: None,
            },
        ];
        let mut installed = required("vae", "ok.pt", "9", None);
        installed.installed = true;
        let models = [
            required("checkpoints", "p.safetensors", "1", Some("P")),
            required("loras", "linked.safetensors", "2", None),
            required("loras", "none.safetensors", "3", None),
            required("loras", "moved.safetensors", "4", None),
            installed,
        ];
        let links = crate::workflows::links::model_links(&json!({"models": [
            {"name": "sub/linked.safetensors", "url": "https://h/l", "directory": "loras",
             "hash": "a".repeat(64), "hash_type": "sha256"},
            {"name": "p.safetensors", "url": "https://h/p", "directory": "checkpoints"}
        ]}));
        let findings = [
            Finding::Fix(Fix {
                node_id: "4".into(),
                input: "name".into(),
                from: json!("moved.safetensors"),
                to: json!("x/moved.safetensors"),
                sentence: "moved".into(),
            }),
            Finding::Question(Question {
                node_id: "5".into(),
                input: "sampler_name".into(),
                value: json!("heun"),
                choices: vec!["euler".into()],
                sentence: "pick".into(),
            }),
        ];
        let elsewhere = [(
            "loras/none.safetensors".to_string(),
            "checkpoints/none.safetensors".to_string(),
        )];
        let steps = plan(&Facts {
            missing_classes: &missing,
            required_models: &models,
            links: &links,
            findings: &findings,
            elsewhere: &elsewhere[..0],
        });
        let keys: Vec<&str> = steps.iter().map(|s| s.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "pack:https://h/fancy",
                "class:Lost",
                "model:checkpoints/p.safetensors",
                "model:loras/linked.safetensors",
                "model:loras/none.safetensors",
                "input:4:name",
                "input:5:sampler_name",
            ]
        );
        assert_eq!(steps[0].title, "Install pack Fancy at abc123 (for A, B)");
        assert_eq!(steps[1].state, StepState::Failed);
        // A preset comes before the workflow's own link.
        assert!(matches!(steps[2].action, Action::InstallPreset { .. }));
        assert_eq!(
            steps[3].action,
            Action::Download {
                url: "https://h/l".into(),
                mirrors: Vec::new(),
                folder: "loras".into(),
                file: "linked.safetensors".into(),
                sha256: Some("a".repeat(64)),
            }
        );
        assert_eq!(steps[4].state, StepState::Question);
        assert!(matches!(steps[4].action, Action::NeedsLink { .. }));
        assert_eq!(steps[5].state, StepState::Pending);
        assert_eq!(steps[6].state, StepState::Question);

        // The same file in another folder is offered first, with the other source as the
        // second answer.
        let with_preset = required("loras", "none.safetensors", "3", Some("P"));
        let steps = plan(&Facts {
            missing_classes: &[],
            required_models: &[with_preset],
            links: &[],
            findings: &[],
            elsewhere: &elsewhere,
        });
        assert_eq!(steps.len(), 1);
        assert_eq!(steps[0].state, StepState::Question);
        assert_eq!(
            steps[0].title,
            "Use models/checkpoints/none.safetensors for loras/none.safetensors?"
        );
        assert_eq!(
            asks(&steps[0].action).0,
            ["Use models/checkpoints/none.safetensors", DOWNLOAD_INSTEAD]
        );
    }
}
