//! A run and what its events say: the phase of a run this page started, folded from the live
//! run events (and, without a live connection, from ComfyUI's queue), and the state line.

use engine::model::*;
use leptos::prelude::*;

use crate::components::Tone;
use crate::live::Live;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RunPhase {
    Queued,
    Running,
    Succeeded,
    Failed,
    Interrupted,
    /// Removed from the queue before it started.
    Cancelled,
    /// Gone from ComfyUI's queue, outcome unknown (followed without a live connection).
    Finished,
}

impl RunPhase {
    pub(crate) fn is_over(self) -> bool {
        !matches!(self, RunPhase::Queued | RunPhase::Running)
    }

    /// For `data-state` (tests read it).
    pub(crate) fn key(self) -> &'static str {
        match self {
            RunPhase::Queued => "queued",
            RunPhase::Running => "running",
            RunPhase::Succeeded => "succeeded",
            RunPhase::Failed => "failed",
            RunPhase::Interrupted => "interrupted",
            RunPhase::Cancelled => "cancelled",
            RunPhase::Finished => "finished",
        }
    }

    pub(crate) fn short_label(self) -> &'static str {
        match self {
            RunPhase::Queued => "Queued",
            RunPhase::Running => "Running",
            RunPhase::Succeeded => "Done",
            RunPhase::Failed => "Failed",
            RunPhase::Interrupted => "Stopped",
            RunPhase::Cancelled => "Cancelled",
            RunPhase::Finished => "Finished",
        }
    }

    pub(crate) fn tone(self) -> Tone {
        match self {
            RunPhase::Queued | RunPhase::Finished => Tone::Muted,
            RunPhase::Running => Tone::Accent,
            RunPhase::Succeeded => Tone::Ok,
            RunPhase::Failed => Tone::Bad,
            RunPhase::Interrupted | RunPhase::Cancelled => Tone::Warn,
        }
    }

    /// The progress bar's colour.
    pub(crate) fn bar(self) -> &'static str {
        match self {
            RunPhase::Queued | RunPhase::Finished => "bg-muted",
            RunPhase::Running => "bg-accent",
            RunPhase::Succeeded => "bg-ok",
            RunPhase::Failed => "bg-bad",
            RunPhase::Interrupted | RunPhase::Cancelled => "bg-warn",
        }
    }
}

/// The latest run a workflow was given from this page.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct TrackedRun {
    pub prompt_id: String,
    /// Cancelled here while it was still waiting.
    pub cancelled: bool,
    /// Where ComfyUI's queue put it when last read (only read without a live connection).
    pub polled: Option<RunPhase>,
}

impl TrackedRun {
    pub(crate) fn new(prompt_id: String) -> TrackedRun {
        TrackedRun {
            prompt_id,
            cancelled: false,
            polled: None,
        }
    }

    /// The phase, from the live events and what polling found (tracked).
    pub(crate) fn phase(&self, live: Live) -> RunPhase {
        live.runs
            .with(|events| self.combine(&fold(&self.prompt_id, events)))
    }

    /// Whether polling could still tell something new (untracked).
    pub(crate) fn needs_polling(&self, live: Live) -> bool {
        let over = live
            .runs
            .try_with_untracked(|events| self.combine(&fold(&self.prompt_id, events)).is_over())
            .unwrap_or(true);
        !over
    }

    pub(crate) fn combine(&self, progress: &RunProgress) -> RunPhase {
        match progress.phase {
            Some(p) if p.is_over() => p,
            _ if self.polled == Some(RunPhase::Finished) => RunPhase::Finished,
            Some(RunPhase::Running) => RunPhase::Running,
            _ if self.cancelled => RunPhase::Cancelled,
            _ if self.polled == Some(RunPhase::Running) => RunPhase::Running,
            _ => RunPhase::Queued,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct NodeRef {
    id: String,
    label: String,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Failure {
    node: Option<String>,
    node_type: Option<String>,
    pub(super) message: String,
}

/// A prompt's run events folded into what the panel shows.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct RunProgress {
    /// The phase the events tell (`None` before the first one).
    pub(super) phase: Option<RunPhase>,
    /// The node running now (or last).
    pub(super) node: Option<NodeRef>,
    /// `(value, max)` of the current node.
    pub(super) step: Option<(f64, f64)>,
    pub(super) preview: Option<String>,
    pub(super) text: Option<String>,
    pub(super) outputs: Vec<RunOutput>,
    /// Nodes ComfyUI took from its cache.
    pub(super) cached: usize,
    pub(super) failure: Option<Failure>,
    /// Overall progress across the prompt's nodes: (done, total, fraction 0–1).
    pub(super) nodes: Option<(usize, usize, f64)>,
}

impl RunProgress {
    /// A running job's card in one line: how far (the nodes done, else the node's steps) and
    /// what is happening (the node and its step, else what the worker says, such as the
    /// models it is installing first).
    pub(crate) fn card_line(&self) -> (Option<f32>, Option<String>) {
        let percent = self
            .nodes
            .map(|(_, _, fraction)| (fraction * 100.0) as f32)
            .or_else(|| {
                self.step
                    .filter(|(_, max)| *max > 0.0)
                    .map(|(value, max)| (value / max * 100.0) as f32)
            });
        let mut parts: Vec<String> = self.node.iter().map(|n| n.label.clone()).collect();
        match (self.step, &self.text) {
            (Some((value, max)), _) => parts.push(format!(
                "step {} of {}",
                super::fields::format_number(value),
                super::fields::format_number(max)
            )),
            (None, Some(text)) => parts.push(text.clone()),
            (None, None) => {}
        }
        (percent, (!parts.is_empty()).then(|| parts.join(" · ")))
    }
}

pub(crate) fn fold(prompt_id: &str, events: &[RunEvent]) -> RunProgress {
    let mut p = RunProgress::default();
    let running = |p: &mut RunProgress| {
        if !p.phase.is_some_and(RunPhase::is_over) {
            p.phase = Some(RunPhase::Running);
        }
    };
    for event in events.iter().filter(|e| e.prompt_id == prompt_id) {
        match &event.event {
            // The deck's own "queued" may come after ComfyUI's first events.
            RunEventKind::Queued => {
                if p.phase.is_none() {
                    p.phase = Some(RunPhase::Queued);
                }
            }
            RunEventKind::Started => running(&mut p),
            RunEventKind::Cached { nodes } => {
                p.cached = nodes.len();
                running(&mut p);
            }
            RunEventKind::Executing {
                node,
                title,
                class_type,
            } => {
                p.node = Some(NodeRef {
                    id: node.clone(),
                    label: title
                        .clone()
                        .filter(|t| !t.is_empty())
                        .or_else(|| class_type.clone())
                        .unwrap_or_else(|| format!("node {node}")),
                });
                p.step = None;
                p.text = None;
                running(&mut p);
            }
            RunEventKind::Progress { value, max, .. } => {
                p.step = Some((*value, *max));
                running(&mut p);
            }
            RunEventKind::Preview { url, .. } => p.preview = Some(url.clone()),
            RunEventKind::ProgressText { text, .. } => p.text = Some(text.clone()),
            RunEventKind::Output { files, .. } => {
                for file in files {
                    if !p.outputs.iter().any(|o| o.url == file.url) {
                        p.outputs.push(file.clone());
                    }
                }
            }
            RunEventKind::Nodes {
                done,
                total,
                fraction,
            } => {
                p.nodes = Some((*done, *total, *fraction));
                running(&mut p);
            }
            RunEventKind::Succeeded => p.phase = Some(RunPhase::Succeeded),
            RunEventKind::Failed {
                node,
                node_type,
                message,
            } => {
                p.phase = Some(RunPhase::Failed);
                p.failure = Some(Failure {
                    node: node.clone(),
                    node_type: node_type.clone(),
                    message: message.clone(),
                });
            }
            RunEventKind::Interrupted { node } => {
                p.phase = Some(RunPhase::Interrupted);
                if let Some(node) = node {
                    if p.node.as_ref().is_none_or(|n| &n.id != node) {
                        p.node = Some(NodeRef {
                            id: node.clone(),
                            label: format!("node {node}"),
                        });
                    }
                }
            }
        }
    }
    p
}

/// The state line.
pub(super) fn state_text(phase: RunPhase, p: &RunProgress) -> String {
    let at = |n: &NodeRef| format!("“{}” (node {})", n.label, n.id);
    match phase {
        RunPhase::Queued => "Queued — waiting for ComfyUI".to_string(),
        RunPhase::Running => match &p.node {
            Some(n) => format!("Running {}", at(n)),
            None => "Running".to_string(),
        },
        RunPhase::Succeeded => match p.outputs.len() {
            0 if p.cached > 0 => {
                "Done — ComfyUI had every result cached, so nothing new was made".to_string()
            }
            0 => "Done — the workflow saved no files".to_string(),
            1 => "Done — 1 output".to_string(),
            n => format!("Done — {n} outputs"),
        },
        RunPhase::Failed => match &p.failure {
            Some(Failure {
                node: Some(node),
                node_type,
                ..
            }) => format!(
                "Failed in {} (node {node})",
                node_type.as_deref().unwrap_or("a node")
            ),
            _ => "Failed".to_string(),
        },
        RunPhase::Interrupted => match &p.node {
            Some(n) => format!("Stopped at {}", at(n)),
            None => "Stopped".to_string(),
        },
        RunPhase::Cancelled => "Cancelled before it started".to_string(),
        RunPhase::Finished => {
            "Finished — without a live connection the outcome is not known here; ComfyUI shows it"
                .to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: RunEventKind) -> RunEvent {
        RunEvent {
            prompt_id: "p".into(),
            event: kind,
        }
    }

    #[test]
    fn a_job_card_line_says_how_far_and_what_runs() {
        assert_eq!(fold("p", &[]).card_line(), (None, None));
        let installing = fold(
            "p",
            &[ev(RunEventKind::ProgressText {
                node: String::new(),
                text: "Installing FLUX Dev on the worker: 1 GB of 2 GB".into(),
            })],
        );
        assert_eq!(
            installing.card_line(),
            (
                None,
                Some("Installing FLUX Dev on the worker: 1 GB of 2 GB".into())
            )
        );
        let stepping = fold(
            "p",
            &[
                ev(RunEventKind::Executing {
                    node: "3".into(),
                    title: None,
                    class_type: Some("KSampler".into()),
                }),
                ev(RunEventKind::Progress {
                    node: Some("3".into()),
                    value: 5.0,
                    max: 20.0,
                }),
            ],
        );
        assert_eq!(
            stepping.card_line(),
            (Some(25.0), Some("KSampler · step 5 of 20".into()))
        );
        let with_nodes = fold(
            "p",
            &[ev(RunEventKind::Nodes {
                done: 1,
                total: 2,
                fraction: 0.5,
            })],
        );
        assert_eq!(with_nodes.card_line().0, Some(50.0));
    }

    #[test]
    fn overall_progress_folds_to_the_newest_and_means_running() {
        let nodes = |done, fraction| {
            ev(RunEventKind::Nodes {
                done,
                total: 3,
                fraction,
            })
        };
        let p = fold(
            "p",
            &[ev(RunEventKind::Queued), nodes(1, 0.4), nodes(2, 0.8)],
        );
        assert_eq!(p.nodes, Some((2, 3, 0.8)));
        assert_eq!(p.phase, Some(RunPhase::Running));
        let p = fold("p", &[nodes(3, 1.0), ev(RunEventKind::Succeeded)]);
        assert_eq!(p.phase, Some(RunPhase::Succeeded));
    }

    #[test]
    fn events_fold_into_the_latest_state() {
        let events = vec![
            ev(RunEventKind::Started),
            // The deck's own "queued" may arrive late; it must not go back.
            ev(RunEventKind::Queued),
            ev(RunEventKind::Executing {
                node: "2".into(),
                title: Some("Invert Image".into()),
                class_type: Some("ImageInvert".into()),
            }),
            ev(RunEventKind::Progress {
                node: Some("2".into()),
                value: 2.0,
                max: 3.0,
            }),
            RunEvent {
                prompt_id: "other".into(),
                event: RunEventKind::Succeeded,
            },
        ];
        let p = fold("p", &events);
        assert_eq!(p.phase, Some(RunPhase::Running));
        assert_eq!(p.step, Some((2.0, 3.0)));
        assert_eq!(
            state_text(RunPhase::Running, &p),
            "Running “Invert Image” (node 2)"
        );

        let mut more = events.clone();
        more.push(ev(RunEventKind::Output {
            node: "3".into(),
            files: vec![RunOutput {
                node: "3".into(),
                filename: "a.png".into(),
                subfolder: String::new(),
                kind: "output".into(),
                media: "images".into(),
                url: "/api/comfy/view?filename=a.png&subfolder=&type=output".into(),
            }],
        }));
        more.push(ev(RunEventKind::Succeeded));
        let p = fold("p", &more);
        assert_eq!(p.phase, Some(RunPhase::Succeeded));
        assert_eq!(p.outputs.len(), 1);
        assert_eq!(state_text(RunPhase::Succeeded, &p), "Done — 1 output");
    }

    #[test]
    fn cancelling_and_polling_only_count_without_events_that_say_more() {
        let mut run = TrackedRun::new("p".into());
        let none = RunProgress::default();
        assert_eq!(run.combine(&none), RunPhase::Queued);
        run.polled = Some(RunPhase::Running);
        assert_eq!(run.combine(&none), RunPhase::Running);
        run.polled = Some(RunPhase::Finished);
        assert_eq!(run.combine(&none), RunPhase::Finished);
        let done = fold("p", &[ev(RunEventKind::Succeeded)]);
        assert_eq!(run.combine(&done), RunPhase::Succeeded);
        let mut cancelled = TrackedRun::new("p".into());
        cancelled.cancelled = true;
        assert_eq!(cancelled.combine(&none), RunPhase::Cancelled);
        let running = fold("p", &[ev(RunEventKind::Started)]);
        assert_eq!(cancelled.combine(&running), RunPhase::Running);
    }
}
