//! Field paths (`presets.FLUX_DEV.files[2].size`) and a best-effort search for the line a
//! field sits on in block-style YAML, so semantic errors can name a line too (serde_yaml's
//! `Value` keeps no positions).

use std::fmt;

/// One step of a field path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

/// A path to a field inside a document, printed as `presets.FLUX_DEV.files[2].size`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct FieldPath(pub(crate) Vec<Seg>);

impl FieldPath {
    pub(crate) fn root() -> Self {
        Self(Vec::new())
    }

    pub(crate) fn key(&self, key: &str) -> Self {
        let mut segs = self.0.clone();
        segs.push(Seg::Key(key.to_string()));
        Self(segs)
    }

    pub(crate) fn index(&self, index: usize) -> Self {
        let mut segs = self.0.clone();
        segs.push(Seg::Index(index));
        Self(segs)
    }

    pub(crate) fn is_root(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) if i == 0 => write!(f, "{k}")?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// A significant (non-blank, non-comment) line.
struct Line<'a> {
    /// 1-based.
    number: usize,
    indent: usize,
    body: &'a str,
}

/// The 1-based line of the deepest prefix of `path` that can be found in `text`, or `None`
/// when not even the first step is found (flow-style YAML, JSON).
pub(crate) fn locate(text: &str, path: &FieldPath) -> Option<usize> {
    let lines: Vec<Line<'_>> = text
        .lines()
        .enumerate()
        .filter_map(|(i, raw)| {
            let body = raw.trim_start_matches(' ');
            if body.trim().is_empty() || body.starts_with('#') || body.starts_with("---") {
                return None;
            }
            Some(Line {
                number: i + 1,
                indent: raw.len() - body.len(),
                body: body.trim_end(),
            })
        })
        .collect();

    // The scope being searched: lines[start..end], where the first line may be the inside of a
    // sequence item (`- path: x` seen as `path: x` two columns further right).
    let mut start = 0;
    let mut end = lines.len();
    let mut first_override: Option<(usize, &str)> = None;
    let mut found: Option<usize> = None;

    for seg in &path.0 {
        if start >= end {
            break;
        }
        let (child_indent, _) = view(&lines, start, start, first_override);
        match seg {
            Seg::Key(key) => {
                let hit = (start..end).find(|&i| {
                    let (indent, body) = view(&lines, i, start, first_override);
                    indent == child_indent && key_matches(body, key)
                });
                let Some(i) = hit else { break };
                found = Some(lines[i].number);
                let (key_indent, _) = view(&lines, i, start, first_override);
                let next_end = (i + 1..end)
                    .find(|&j| {
                        let l = &lines[j];
                        l.indent < key_indent || (l.indent == key_indent && !is_item(l.body))
                    })
                    .unwrap_or(end);
                start = i + 1;
                end = next_end;
                first_override = None;
            }
            Seg::Index(n) => {
                let items: Vec<usize> = (start..end)
                    .filter(|&i| {
                        let (indent, body) = view(&lines, i, start, first_override);
                        indent == child_indent && is_item(body)
                    })
                    .collect();
                let Some(&i) = items.get(*n) else { break };
                found = Some(lines[i].number);
                let seq_indent = child_indent;
                let next_end = (i + 1..end)
                    .find(|&j| lines[j].indent <= seq_indent)
                    .unwrap_or(end);
                let body = lines[i].body;
                let rest = body[1..].trim_start_matches(' ');
                if rest.is_empty() {
                    start = i + 1;
                    first_override = None;
                } else {
                    start = i;
                    first_override = Some((seq_indent + (body.len() - rest.len()), rest));
                }
                end = next_end;
            }
        }
    }
    found
}

/// Line `i` as the search sees it: the first line of an item scope is its inside.
fn view<'t>(
    lines: &[Line<'t>],
    i: usize,
    start: usize,
    first_override: Option<(usize, &'t str)>,
) -> (usize, &'t str) {
    match first_override {
        Some((indent, body)) if i == start => (indent, body),
        _ => (lines[i].indent, lines[i].body),
    }
}

fn is_item(body: &str) -> bool {
    body == "-" || body.starts_with("- ")
}

fn key_matches(body: &str, key: &str) -> bool {
    let rest = if let Some(r) = body.strip_prefix(key) {
        r
    } else if let Some(r) = body
        .strip_prefix('\'')
        .and_then(|b| b.strip_prefix(key))
        .and_then(|b| b.strip_prefix('\''))
    {
        r
    } else if let Some(r) = body
        .strip_prefix('"')
        .and_then(|b| b.strip_prefix(key))
        .and_then(|b| b.strip_prefix('"'))
    {
        r
    } else {
        return false;
    };
    let rest = rest.trim_start_matches(' ');
    rest == ":" || rest.starts_with(": ")
}
