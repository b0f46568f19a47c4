//! Terminal drawing for the commands that download: one progress line per file, redrawn in
//! place on a terminal.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use engine::model::{format_bytes, format_duration_secs, TransferFigures};

/// One file's line: a bar, percent and bytes, then speed and ETA, or `note` instead.
pub(super) fn progress_line(name: &str, figures: &TransferFigures, note: &str) -> String {
    const WIDTH: usize = 24;
    let percent = figures
        .total_bytes
        .filter(|t| *t > 0)
        .map(|t| (figures.bytes_done as f64 / t as f64).min(1.0));
    let filled = percent.map(|p| (p * WIDTH as f64) as usize).unwrap_or(0);
    let bar: String = "#".repeat(filled) + &".".repeat(WIDTH - filled);
    let total = figures
        .total_bytes
        .map(format_bytes)
        .unwrap_or_else(|| "?".into());
    let eta = figures
        .eta_secs
        .map(|s| format!(" ETA {}", format_duration_secs(s)))
        .unwrap_or_default();
    let tail = if note.is_empty() {
        format!("{}/s{eta}", format_bytes(figures.speed_bps))
    } else {
        note.to_string()
    };
    format!(
        "[{bar}] {:>3}% {}/{} {tail}  {name}",
        percent.map(|p| (p * 100.0) as u32).unwrap_or(0),
        format_bytes(figures.bytes_done),
        total
    )
}

/// Progress lines: redrawn in place on a terminal; elsewhere (CI logs, `| tee`) one block
/// every 10 s, so logs stay readable.
pub(super) struct Bars {
    tty: bool,
    drawn: usize,
    last_plain: Option<Instant>,
}

impl Bars {
    pub(super) fn new() -> Bars {
        Bars {
            tty: std::io::stderr().is_terminal(),
            drawn: 0,
            last_plain: None,
        }
    }

    pub(super) fn draw(&mut self, lines: &[String]) {
        let mut err = std::io::stderr().lock();
        if self.tty {
            if self.drawn > 0 {
                let _ = write!(err, "\x1b[{}A", self.drawn);
            }
            for line in lines {
                let _ = writeln!(err, "\x1b[2K{line}");
            }
            // Clear lines left over from a longer previous frame.
            for _ in lines.len()..self.drawn {
                let _ = writeln!(err, "\x1b[2K");
            }
            self.drawn = self.drawn.max(lines.len());
        } else if self
            .last_plain
            .is_none_or(|at| at.elapsed() >= Duration::from_secs(10))
        {
            self.last_plain = Some(Instant::now());
            for line in lines {
                let _ = writeln!(err, "{line}");
            }
        }
        let _ = err.flush();
    }

    pub(super) fn finish(&mut self) {
        self.drawn = 0;
    }
}
