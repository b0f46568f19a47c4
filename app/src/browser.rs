//! What the pages need from the browser itself: going to the login page or another page,
//! applying a theme, the page's origin,
//! the chosen file's bytes, random seeds, scrolling the run panel into view, copying to the
//! clipboard, and base64 for uploads. On the server these do nothing (events only happen in
//! the browser). Imports no app module, so every other module may use it.

use leptos::web_sys::EventTarget;

/// Sends the browser to the login page, coming back here afterwards.
pub fn go_to_login() {
    #[cfg(feature = "hydrate")]
    if let Some(window) = web_sys::window() {
        let location = window.location();
        let here = location.pathname().unwrap_or_else(|_| "/".into());
        let _ = location.set_href(&format!("/login?next={}", here));
    }
}

/// Loads `href` as a new page (the server renders it afresh, cookies and all).
pub fn go_to(href: &str) {
    #[cfg(feature = "hydrate")]
    if let Some(window) = web_sys::window() {
        let _ = window.location().set_href(href);
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = href;
}

/// The page's origin (`https://host:port`), as the browser reaches this deck; empty on the
/// server.
pub fn page_origin() -> String {
    #[cfg(feature = "hydrate")]
    if let Some(origin) = web_sys::window().and_then(|w| w.location().origin().ok()) {
        return origin;
    }
    String::new()
}

/// Applies a theme to the page at once (the server renders it on the next load).
pub fn apply_theme(theme: engine::model::Theme) {
    #[cfg(feature = "hydrate")]
    if let Some(root) = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.document_element())
    {
        let _ = root.set_attribute("data-theme", theme.as_str());
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = theme;
}

/// The name and bytes of the file chosen in a file `<input>` (the event's target), which is
/// then emptied so that choosing the same file again fires `change` again. `Ok(None)` when no
/// file was chosen.
#[cfg(feature = "hydrate")]
pub async fn take_chosen_file(input: EventTarget) -> Result<Option<(String, Vec<u8>)>, String> {
    use wasm_bindgen::{JsCast, JsValue};
    use wasm_bindgen_futures::js_sys::{Function, Promise, Reflect, Uint8Array};
    use wasm_bindgen_futures::JsFuture;

    let input = JsValue::from(input);
    let get = |target: &JsValue, key: JsValue| {
        Reflect::get(target, &key).map_err(|_| "the browser did not hand over the file".to_string())
    };
    let files = get(&input, "files".into())?;
    let file = if files.is_object() {
        get(&files, 0u32.into())?
    } else {
        JsValue::UNDEFINED
    };
    // The same file chosen again must fire `change` again.
    let _ = Reflect::set(&input, &"value".into(), &"".into());
    if !file.is_object() {
        return Ok(None);
    }
    let name = get(&file, "name".into())?
        .as_string()
        .unwrap_or_else(|| "workflow.json".to_string());
    let read: Function = get(&file, "arrayBuffer".into())?
        .dyn_into()
        .map_err(|_| "this browser cannot read files".to_string())?;
    let promise: Promise = read
        .call0(&file)
        .and_then(|p| p.dyn_into())
        .map_err(|_| format!("{name} cannot be read"))?;
    let buffer = JsFuture::from(promise)
        .await
        .map_err(|_| format!("{name} cannot be read"))?;
    Ok(Some((name, Uint8Array::new(&buffer).to_vec())))
}

#[cfg(not(feature = "hydrate"))]
pub async fn take_chosen_file(_input: EventTarget) -> Result<Option<(String, Vec<u8>)>, String> {
    Ok(None)
}

/// A seed in `[min, max]`, at most 2^50 so that it survives JavaScript numbers (ComfyUI's own
/// editor reads seeds as such).
pub fn random_seed(min: Option<f64>, max: Option<f64>) -> u64 {
    const CAP: u64 = 1 << 50;
    let min = min.filter(|m| *m > 0.0).map(|m| m as u64).unwrap_or(0);
    let max = max
        .filter(|m| *m >= 0.0)
        .map(|m| (m as u64).min(CAP))
        .unwrap_or(CAP);
    if max <= min {
        return min;
    }
    min + (random_fraction() * (max - min) as f64) as u64
}

/// A number in [0, 1).
#[cfg(feature = "hydrate")]
fn random_fraction() -> f64 {
    wasm_bindgen_futures::js_sys::Math::random()
}

#[cfg(not(feature = "hydrate"))]
fn random_fraction() -> f64 {
    0.5
}

/// On narrow screens, brings the run panel into view once it is rendered.
pub fn reveal_run_panel() {
    #[cfg(feature = "hydrate")]
    leptos::prelude::set_timeout(
        || {
            let Some(window) = web_sys::window() else {
                return;
            };
            let narrow = window
                .inner_width()
                .ok()
                .and_then(|w| w.as_f64())
                .is_some_and(|w| w < 1024.0);
            if let (true, Some(panel)) = (
                narrow,
                window
                    .document()
                    .and_then(|d| d.get_element_by_id("run-panel")),
            ) {
                panel.scroll_into_view();
            }
        },
        std::time::Duration::from_millis(60),
    );
}

/// Brings the element `id` into view when the page's address ends in `#id`: the router does
/// not scroll to an anchor that a page renders only once its data came (Settings' tokens).
pub fn reveal_anchor(id: &'static str) {
    #[cfg(feature = "hydrate")]
    leptos::prelude::request_animation_frame(move || {
        let Some(window) = web_sys::window() else {
            return;
        };
        let wanted = window
            .location()
            .hash()
            .is_ok_and(|hash| hash.strip_prefix('#') == Some(id));
        if let (true, Some(element)) = (
            wanted,
            window.document().and_then(|d| d.get_element_by_id(id)),
        ) {
            element.scroll_into_view();
        }
    });
    #[cfg(not(feature = "hydrate"))]
    let _ = id;
}

/// Puts `text` on the clipboard. The browser allows it only on a secure page (https or
/// localhost); elsewhere the error says to copy by hand.
pub async fn copy_text(text: &str) -> Result<(), String> {
    #[cfg(feature = "hydrate")]
    {
        use wasm_bindgen::{JsCast, JsValue};
        use wasm_bindgen_futures::js_sys::{Function, Promise, Reflect};
        let by_hand = || {
            "The browser did not allow copying here; select the text and copy it by hand."
                .to_string()
        };
        let navigator = web_sys::window()
            .and_then(|w| Reflect::get(&w, &JsValue::from_str("navigator")).ok())
            .ok_or_else(by_hand)?;
        let clipboard = Reflect::get(&navigator, &JsValue::from_str("clipboard"))
            .ok()
            .filter(|c| !c.is_undefined() && !c.is_null())
            .ok_or_else(by_hand)?;
        let write = Reflect::get(&clipboard, &JsValue::from_str("writeText"))
            .ok()
            .and_then(|f| f.dyn_into::<Function>().ok())
            .ok_or_else(by_hand)?;
        let promise = write
            .call1(&clipboard, &JsValue::from_str(text))
            .ok()
            .and_then(|p| p.dyn_into::<Promise>().ok())
            .ok_or_else(by_hand)?;
        wasm_bindgen_futures::JsFuture::from(promise)
            .await
            .map(|_| ())
            .map_err(|_| by_hand())
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = text;
        Ok(())
    }
}

/// Standard base64 with padding (RFC 4648), as the import API expects.
pub fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> shift) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_encode(plain.as_bytes()), encoded, "{plain:?}");
        }
        assert_eq!(base64_encode(&[0xff, 0xfe, 0x00]), "//4A");
    }

    #[test]
    fn random_seeds_stay_in_range() {
        assert_eq!(random_seed(Some(5.0), Some(5.0)), 5);
        let seed = random_seed(Some(0.0), Some(u64::MAX as f64));
        assert!(seed < (1 << 50));
        let seed = random_seed(Some(10.0), Some(20.0));
        assert!((10..=20).contains(&seed));
    }
}
