//! Prompt enhancement: static style templates, and an OpenAI-compatible chat endpoint when one
//! is configured, falling back to the template on any failure (and saying why).

use std::time::Duration;

use serde_json::{json, Value};

use crate::config::LlmConfig;
use crate::model::{EnhancedPrompt, PromptStyle};

/// Longest prompt accepted from the user or the LLM.
pub const MAX_PROMPT_CHARS: usize = 4000;

/// Words added in front of / after the prompt, and to the negative prompt.
struct Template {
    before: &'static str,
    after: &'static str,
    negative: &'static [&'static str],
}

fn template(style: PromptStyle) -> Template {
    match style {
        PromptStyle::Detailed => Template {
            before: "",
            after: "highly detailed, intricate details, sharp focus, high resolution, \
                    professional quality",
            negative: &["blurry", "low detail", "lowres", "jpeg artifacts"],
        },
        PromptStyle::Cinematic => Template {
            before: "cinematic film still of ",
            after: "dramatic lighting, shallow depth of field, anamorphic lens, film grain, \
                    color graded",
            negative: &[
                "flat lighting",
                "amateur snapshot",
                "overexposed",
                "cartoon",
            ],
        },
        PromptStyle::Artistic => Template {
            before: "",
            after: "fine art, expressive brushstrokes, rich color palette, painterly, \
                    masterpiece",
            negative: &["photo", "dull colors", "plain", "lowres"],
        },
        PromptStyle::Minimal => Template {
            before: "",
            after: "minimalist, clean composition, negative space, simple background, \
                    soft light",
            negative: &["clutter", "busy background", "text", "watermark"],
        },
    }
}

/// The brief an LLM gets for a style.
fn brief(style: PromptStyle) -> &'static str {
    match style {
        PromptStyle::Detailed => {
            "rich in concrete visual detail: subject, materials, textures, lighting"
        }
        PromptStyle::Cinematic => {
            "like a film still: camera, lens, lighting, mood and colour grade"
        }
        PromptStyle::Artistic => {
            "as a work of fine art: medium, technique, palette and composition"
        }
        PromptStyle::Minimal => "minimalist: one clear subject, clean composition, few words",
    }
}

/// The static style applied to a prompt pair.
pub fn apply_style(positive: &str, negative: &str, style: PromptStyle) -> (String, String) {
    let t = template(style);
    let subject = positive.trim().trim_end_matches([',', '.', ' ']);
    let positive = match subject.is_empty() {
        true => t.after.to_string(),
        false => format!("{}{subject}, {}", t.before, t.after),
    };
    (positive, add_negative_terms(negative, t.negative))
}

/// `negative` with the terms it does not already contain appended.
fn add_negative_terms(negative: &str, terms: &[&str]) -> String {
    let lower = negative.to_lowercase();
    let mut out = negative.trim().trim_end_matches(',').to_string();
    for term in terms {
        if !lower.contains(term) {
            if !out.is_empty() {
                out.push_str(", ");
            }
            out.push_str(term);
        }
    }
    out
}

/// Enhances a prompt: with the LLM when one is configured (falling back to the static style on
/// any failure, with the reason), else with the static style.
pub async fn enhance(
    llm: Option<&LlmConfig>,
    positive: &str,
    negative: &str,
    style: PromptStyle,
) -> EnhancedPrompt {
    let (styled, negative_styled) = apply_style(positive, negative, style);
    let fallback = |reason: Option<String>| EnhancedPrompt {
        positive: styled.clone(),
        negative: negative_styled.clone(),
        style,
        by_llm: false,
        fallback_reason: reason,
    };
    let Some(llm) = llm else {
        return fallback(None);
    };
    match ask_llm(llm, positive, style).await {
        Ok(text) => EnhancedPrompt {
            positive: text,
            negative: negative_styled.clone(),
            style,
            by_llm: true,
            fallback_reason: None,
        },
        Err(reason) => {
            tracing::warn!(%reason, "prompt enhancement fell back to the static style");
            fallback(Some(format!(
                "The LLM could not help ({reason}); the {} style was applied instead.",
                style.as_str()
            )))
        }
    }
}

async fn ask_llm(llm: &LlmConfig, positive: &str, style: PromptStyle) -> Result<String, String> {
    let http = reqwest::Client::builder()
        .timeout(llm.timeout)
        .connect_timeout(llm.timeout.min(Duration::from_secs(5)))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
    let url = format!("{}/chat/completions", llm.base_url);
    let body = json!({
        "model": llm.model,
        "stream": false,
        "temperature": 0.7,
        "messages": [
            {
                "role": "system",
                "content": format!(
                    "You rewrite prompts for an image and video diffusion model. Rewrite the \
                     user's prompt {}. Keep the user's subject and intent. Answer with the \
                     prompt only: one paragraph, no quotes, no explanations, under 120 words.",
                    brief(style)
                ),
            },
            { "role": "user", "content": positive.trim() },
        ],
    });
    let mut request = http.post(&url).json(&body);
    if let Some(key) = &llm.api_key {
        request = request.bearer_auth(key.expose());
    }
    let response = request.send().await.map_err(|e| {
        if e.is_timeout() {
            format!("no answer within {} s", llm.timeout.as_secs_f64())
        } else if e.is_connect() {
            format!("cannot connect to {}", llm.base_url)
        } else {
            format!("request failed: {e}")
        }
    })?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("it answered HTTP {}", status.as_u16()));
    }
    let answer: Value = response.json().await.map_err(|e| {
        if e.is_timeout() {
            format!("no answer within {} s", llm.timeout.as_secs_f64())
        } else {
            "its answer is not JSON".to_string()
        }
    })?;
    let text = answer
        .pointer("/choices/0/message/content")
        .and_then(Value::as_str)
        .ok_or("its answer is not a chat completion")?;
    let text = clean_answer(text);
    if text.is_empty() {
        return Err("it answered with an empty prompt".into());
    }
    if text.chars().count() > MAX_PROMPT_CHARS {
        return Err(format!(
            "its answer is longer than {MAX_PROMPT_CHARS} characters"
        ));
    }
    Ok(text)
}

/// Strips what chat models like to add: surrounding quotes, a `Prompt:` label, a reasoning
/// block (`<think>…</think>`).
fn clean_answer(text: &str) -> String {
    let mut text = text.trim();
    if let Some(end) = text.find("</think>") {
        text = text[end + "</think>".len()..].trim();
    }
    for label in ["Prompt:", "prompt:", "PROMPT:"] {
        if let Some(rest) = text.strip_prefix(label) {
            text = rest.trim();
        }
    }
    text.trim_matches(|c| c == '"' || c == '“' || c == '”')
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn styles_wrap_the_subject_and_extend_the_negative_without_repeats() {
        let (p, n) = apply_style("a red fox, ", "blurry, text", PromptStyle::Detailed);
        assert!(p.starts_with("a red fox, highly detailed"), "{p}");
        assert_eq!(n, "blurry, text, low detail, lowres, jpeg artifacts");
        let (p, _) = apply_style("a red fox", "", PromptStyle::Cinematic);
        assert!(p.starts_with("cinematic film still of a red fox, "), "{p}");
        // Every style changes the prompt and adds negative terms.
        for style in PromptStyle::ALL {
            let (p, n) = apply_style("x", "", style);
            assert_ne!(p, "x");
            assert!(!n.is_empty());
        }
    }

    #[test]
    fn answers_are_cleaned() {
        assert_eq!(clean_answer("  \"a fox\"  "), "a fox");
        assert_eq!(clean_answer("<think>hmm</think>\nPrompt: a fox"), "a fox");
        assert_eq!(clean_answer("a fox"), "a fox");
    }
}
