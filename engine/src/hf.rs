//! Hugging Face: who does a token belong to (`/api/whoami-v2`).

use std::time::Duration;

use serde::Deserialize;

use crate::model::HfTokenCheck;

#[derive(Deserialize)]
struct WhoAmI {
    name: String,
    #[serde(default)]
    auth: Option<WhoAmIAuth>,
}

#[derive(Deserialize)]
struct WhoAmIAuth {
    #[serde(rename = "accessToken")]
    access_token: Option<AccessToken>,
}

#[derive(Deserialize)]
struct AccessToken {
    #[serde(rename = "displayName")]
    display_name: Option<String>,
    role: Option<String>,
}

/// Checks `token` against `{base_url}/api/whoami-v2`. The token goes only to that URL.
pub async fn check_token(base_url: &str, token: &str) -> HfTokenCheck {
    let fail = |message: String| HfTokenCheck {
        valid: false,
        user: None,
        message,
    };
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(c) => c,
        Err(e) => return fail(format!("cannot build an HTTP client: {e}")),
    };
    let url = format!("{}/api/whoami-v2", base_url.trim_end_matches('/'));
    let response = match client.get(&url).bearer_auth(token).send().await {
        Ok(r) => r,
        Err(e) if e.is_timeout() => {
            return fail("Hugging Face did not answer in 10 s; try again".into())
        }
        Err(_) => return fail(format!("cannot reach Hugging Face at {base_url}")),
    };
    match response.status().as_u16() {
        200 => match response.json::<WhoAmI>().await {
            Ok(who) => {
                let detail = who
                    .auth
                    .and_then(|a| a.access_token)
                    .map(|t| {
                        let name = t.display_name.unwrap_or_default();
                        let role = t.role.map(|r| format!("{r} access")).unwrap_or_default();
                        match (name.is_empty(), role.is_empty()) {
                            (false, false) => format!(" (token \u{201c}{name}\u{201d}, {role})"),
                            (false, true) => format!(" (token \u{201c}{name}\u{201d})"),
                            (true, false) => format!(" ({role})"),
                            (true, true) => String::new(),
                        }
                    })
                    .unwrap_or_default();
                HfTokenCheck {
                    valid: true,
                    message: format!("Valid: this token belongs to {}{detail}", who.name),
                    user: Some(who.name),
                }
            }
            Err(e) => fail(format!("Hugging Face answered, but not with an account ({e})")),
        },
        401 => fail("Hugging Face rejected this token: it is invalid, expired or revoked. Create a new one at https://huggingface.co/settings/tokens".into()),
        429 => fail("Hugging Face is rate-limiting requests; try again in a minute".into()),
        status => fail(format!("Hugging Face answered HTTP {status}; try again later")),
    }
}
