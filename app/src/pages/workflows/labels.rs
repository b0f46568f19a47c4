//! How a workflow is described: its source, format, node count, size and date.

use engine::model::*;

use crate::components::Tone;

pub(super) fn source_label(source: WorkflowSource) -> &'static str {
    match source {
        WorkflowSource::Template => "Template",
        WorkflowSource::User => "Mine",
        WorkflowSource::ComfyUi => "ComfyUI",
    }
}

pub(super) fn source_tone(source: WorkflowSource) -> Tone {
    match source {
        WorkflowSource::Template => Tone::Muted,
        WorkflowSource::User => Tone::Accent,
        WorkflowSource::ComfyUi => Tone::Plain,
    }
}

pub(super) fn format_label(format: WorkflowFileFormat) -> &'static str {
    match format {
        WorkflowFileFormat::Ui => "UI format",
        WorkflowFileFormat::Api => "API format",
        WorkflowFileFormat::Unknown => "unknown format",
    }
}

/// `UI format · 12 nodes · 48.0 kB`.
pub(super) fn describe(w: &WorkflowSummary) -> String {
    let mut parts = vec![format_label(w.format).to_string()];
    if w.format != WorkflowFileFormat::Unknown || w.node_count > 0 {
        parts.push(format!(
            "{} node{}",
            w.node_count,
            if w.node_count == 1 { "" } else { "s" }
        ));
    }
    if w.size_bytes > 0 {
        parts.push(format_bytes(w.size_bytes));
    }
    parts.join(" · ")
}

/// `2026-11-23 01:45 UTC` (minutes are enough for a file date).
pub(super) fn format_date(ms: u64) -> String {
    let full = format_utc(ms as i64);
    match full.get(..16) {
        Some(minutes) => format!("{minutes} UTC"),
        None => full,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_stop_at_minutes() {
        assert_eq!(format_date(0), "1970-01-01 00:00 UTC");
    }
}
