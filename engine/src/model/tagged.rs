//! Internally tagged enums read from flat fields.
//!
//! serde decodes an internally tagged enum (`#[serde(tag = "…")]`) by buffering the whole
//! object first, and that buffered decoder is large in the browser's first wasm module. The
//! enums the live connection reads are instead decoded as one flat struct of every variant's
//! fields (`#[serde(try_from = "…Fields")]`) and then checked per variant; they are still
//! written with serde's derived, tagged `Serialize`, so the JSON is the same.

/// A field the variant needs, or the error serde would have given for it.
pub(super) fn required<T>(value: Option<T>, variant: &str, field: &str) -> Result<T, String> {
    value.ok_or_else(|| format!("missing field `{field}` of `{variant}`"))
}

/// The error for a tag that names no variant.
pub(super) fn unknown_variant(tag: &str, expected: &[&str]) -> String {
    format!(
        "unknown variant `{tag}`, expected one of {}",
        expected.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use serde::de::DeserializeOwned;
    use serde::Serialize;

    use crate::model::*;

    fn round_trips<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(values: Vec<T>) {
        for value in values {
            let json = serde_json::to_string(&value).unwrap();
            let back: T = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{json}: {e}"));
            assert_eq!(back, value, "{json}");
        }
    }

    #[test]
    fn every_run_event_kind_reads_back_what_it_wrote() {
        let output = RunOutput {
            node: "9".into(),
            filename: "a.png".into(),
            subfolder: String::new(),
            kind: "output".into(),
            media: "images".into(),
            url: "/comfy/view?filename=a.png".into(),
        };
        round_trips(vec![
            RunEventKind::Queued,
            RunEventKind::Started,
            RunEventKind::Cached {
                nodes: vec!["1".into(), "2".into()],
            },
            RunEventKind::Executing {
                node: "3".into(),
                title: Some("Sampler".into()),
                class_type: None,
            },
            RunEventKind::Progress {
                node: None,
                value: 3.0,
                max: 20.0,
            },
            RunEventKind::Preview {
                node: Some("3".into()),
                url: "/p?1".into(),
            },
            RunEventKind::ProgressText {
                node: "4".into(),
                text: "loading".into(),
            },
            RunEventKind::Output {
                node: "9".into(),
                files: vec![output],
            },
            RunEventKind::Succeeded,
            RunEventKind::Failed {
                node: Some("3".into()),
                node_type: Some("KSampler".into()),
                message: "OOM".into(),
            },
            RunEventKind::Interrupted { node: None },
            RunEventKind::Nodes {
                done: 2,
                total: 7,
                fraction: 0.4,
            },
        ]);
    }

    #[test]
    fn every_gpu_report_and_process_state_reads_back_what_it_wrote() {
        round_trips(vec![
            GpuReport::Available {
                gpus: vec![GpuStats {
                    index: 0,
                    name: "H100".into(),
                    utilization_percent: Some(50),
                    memory_used_bytes: 1,
                    memory_total_bytes: 2,
                    temperature_c: None,
                    power_watts: None,
                    power_limit_watts: None,
                }],
            },
            GpuReport::Unavailable {
                reason: "no NVML".into(),
            },
        ]);
        let exit = ComfyExit {
            code: Some(1),
            signal: None,
        };
        round_trips(vec![
            ComfyProcessState::Starting { pid: 7 },
            ComfyProcessState::Ready {
                pid: 7,
                since_ms: 5,
            },
            ComfyProcessState::Crashed {
                exit,
                last_lines: vec!["Traceback".into()],
            },
            ComfyProcessState::Restarting {
                delay_ms: 1000,
                at_ms: 9,
                attempt: 2,
                last_exit: exit,
            },
            ComfyProcessState::Failed {
                error: "no main.py".into(),
            },
            ComfyProcessState::Stopped,
            ComfyProcessState::External { reachable: true },
        ]);
    }

    #[test]
    fn a_missing_field_or_an_unknown_tag_is_named() {
        let missing = serde_json::from_str::<RunEventKind>(r#"{"kind":"progress","value":1}"#)
            .unwrap_err()
            .to_string();
        assert!(
            missing.contains("missing field `max` of `progress`"),
            "{missing}"
        );
        let unknown = serde_json::from_str::<ComfyProcessState>(r#"{"state":"asleep"}"#)
            .unwrap_err()
            .to_string();
        assert!(unknown.contains("unknown variant `asleep`"), "{unknown}");
        // Fields of other variants, and unknown ones, are ignored as before.
        let extra: GpuReport =
            serde_json::from_str(r#"{"state":"unavailable","reason":"r","gpus":[],"x":1}"#)
                .unwrap();
        assert_eq!(extra, GpuReport::Unavailable { reason: "r".into() });
    }
}
