//! The frontend's dynamic prompts: what a `STRING` widget flagged `dynamicPrompts` sends.

/// Resolves a dynamic prompt the way the frontend does when it queues: C-style comments
/// (`/* … */`, `// …` to the end of the line) are removed, then every `{a|b|c}` group is
/// replaced by one of its options (groups nest; `\{`, `\}`, `\|` are literal characters).
///
/// `pick(n)` chooses an option among `n` (it must return a value below `n`).
pub fn process_dynamic_prompt(text: &str, pick: &mut dyn FnMut(usize) -> usize) -> String {
    let chars: Vec<char> = strip_comments(text).chars().collect();
    let mut i = 0;
    let mut out = String::new();
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '\\' => {
                out.push('\\');
                if let Some(&next) = chars.get(i) {
                    out.push(next);
                    i += 1;
                }
            }
            '{' => out.push_str(&choice(&chars, &mut i, pick)),
            c => out.push(c),
        }
    }
    unescape(&out)
}

/// Reads one `{…}` group (the `{` already consumed) and returns the chosen option, resolved.
fn choice(chars: &[char], i: &mut usize, pick: &mut dyn FnMut(usize) -> usize) -> String {
    let mut options = Vec::new();
    let mut current = String::new();
    let mut depth = 0usize;
    while *i < chars.len() {
        let c = chars[*i];
        *i += 1;
        match c {
            '\\' => {
                current.push('\\');
                if let Some(&next) = chars.get(*i) {
                    current.push(next);
                    *i += 1;
                }
                continue;
            }
            '{' => depth += 1,
            '}' => {
                if depth == 0 {
                    break;
                }
                depth -= 1;
            }
            '|' if depth == 0 => {
                options.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    options.push(current);
    let chosen = pick(options.len()).min(options.len() - 1);
    process_dynamic_prompt(&options[chosen], pick)
}

/// Removes `/* … */` (shortest) and `// …` (to the end of the line, the newline kept).
fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("/*") {
            if let Some(end) = after.find("*/") {
                rest = &after[end + 2..];
                continue;
            }
        }
        if rest.starts_with("//") {
            rest = rest.find('\n').map_or("", |nl| &rest[nl..]);
            continue;
        }
        let c = rest.chars().next().unwrap_or_default();
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// `\{`, `\}`, `\|` → the character.
fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(&next @ ('{' | '}' | '|')) = chars.peek() {
                out.push(next);
                chars.next();
                continue;
            }
        }
        out.push(c);
    }
    out
}

/// A small deterministic generator (splitmix64) for the choices.
pub(crate) struct Picker(u64);

impl Picker {
    pub(crate) fn new(seed: u64) -> Self {
        Picker(seed)
    }

    /// A seed that differs between calls.
    pub(crate) fn random_seed() -> u64 {
        use std::collections::hash_map::RandomState;
        use std::hash::{BuildHasher, Hasher};
        let mut h = RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default(),
        );
        h.finish()
    }

    pub(crate) fn pick(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        if n == 0 {
            0
        } else {
            (z % n as u64) as usize
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first(text: &str) -> String {
        process_dynamic_prompt(text, &mut |_| 0)
    }

    fn last(text: &str) -> String {
        process_dynamic_prompt(text, &mut |n| n - 1)
    }

    #[test]
    fn plain_text_is_unchanged() {
        let t = "beautiful scenery nature glass bottle landscape, , purple galaxy bottle,";
        assert_eq!(first(t), t);
    }

    #[test]
    fn choices_nest_and_escape() {
        assert_eq!(first("a {red|blue} car"), "a red car");
        assert_eq!(last("a {red|blue} car"), "a blue car");
        assert_eq!(last("{x|{y|z}}"), "z");
        assert_eq!(first("{x|{y|z}}"), "x");
        assert_eq!(first(r"literal \{a|b\} here"), "literal {a|b} here");
        assert_eq!(last("{a|}"), "");
    }

    #[test]
    fn comments_are_removed() {
        assert_eq!(first("cat /* not this */dog"), "cat dog");
        assert_eq!(first("line one // gone\nline two"), "line one \nline two");
        assert_eq!(first("open /* never closed"), "open /* never closed");
    }

    #[test]
    fn picker_stays_in_range() {
        let mut p = Picker::new(7);
        for n in 1..20 {
            assert!(p.pick(n) < n);
        }
    }
}
