//! Percent-encoding for the URLs both sides build (RFC 3986): every byte but the unreserved
//! `A-Z a-z 0-9 - _ . ~` is written `%XX`, UTF-8 byte by byte. A space is `%20`, never `+`, so
//! the text means the same in a path and in a query (axum's `Path` and `Query` decode both).

/// Encodes one URL component: a path segment, or a query key or value. `/` becomes `%2F`.
pub fn encode_component(s: &str) -> String {
    encode_keeping(s, |_| false)
}

/// Encodes each segment of a `/`-separated path, keeping the `/` between them: a relative
/// file path after a route's `{*path}`, or a same-site path passed as a query value
/// (`/login?next=/gallery`), where readable slashes are allowed and clearer.
pub fn encode_path(path: &str) -> String {
    encode_keeping(path, |b| b == b'/')
}

fn encode_keeping(s: &str, keep: impl Fn(u8) -> bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') || keep(b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_encoded_per_segment() {
        assert_eq!(encode_path("sub dir/a#1%.png"), "sub%20dir/a%231%25.png");
        assert_eq!(encode_path("é.png"), "%C3%A9.png");
    }

    #[test]
    fn unreserved_characters_stay_and_everything_else_is_encoded() {
        let unreserved = "AZaz09-_.~";
        assert_eq!(encode_component(unreserved), unreserved);
        assert_eq!(encode_path(unreserved), unreserved);
        assert_eq!(
            encode_component(":/?#[]@!$&'()*+,;=%"),
            "%3A%2F%3F%23%5B%5D%40%21%24%26%27%28%29%2A%2B%2C%3B%3D%25"
        );
    }

    #[test]
    fn spaces_are_percent_20_never_plus() {
        assert_eq!(encode_component("a b+c"), "a%20b%2Bc");
        assert_eq!(encode_path("a b+c/d e"), "a%20b%2Bc/d%20e");
    }

    #[test]
    fn unicode_is_encoded_as_utf8_bytes() {
        assert_eq!(encode_component("é"), "%C3%A9");
        assert_eq!(encode_component("猫.png"), "%E7%8C%AB.png");
        assert_eq!(encode_component("🙂"), "%F0%9F%99%82");
    }

    #[test]
    fn only_the_path_keeps_its_slashes() {
        assert_eq!(
            encode_component("user:my flow/a.json"),
            "user%3Amy%20flow%2Fa.json"
        );
        assert_eq!(encode_path("/a b?c=d&e"), "/a%20b%3Fc%3Dd%26e");
        assert_eq!(encode_component(""), "");
        assert_eq!(encode_path(""), "");
    }
}
