//! One HTTP exchange: manual redirects with per-hop tokens, the circuit breaker, and the
//! header parsing the transfer needs. Nothing here logs a token or a query string.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::{
    HeaderMap, HeaderValue, ACCEPT_ENCODING, AUTHORIZATION, IF_RANGE, LOCATION, RANGE,
};
use reqwest::{Method, Response};
use tokio_util::sync::CancellationToken;
use url::Url;

use super::Inner;
use crate::model::days_from_civil;
use crate::secret::Secret;

/// What to send, and where the chain starts.
pub(super) struct Request<'a> {
    pub method: Method,
    pub start: &'a Url,
    /// The chain that led to `start` already left the original origin: no token at all.
    pub crossed: bool,
    pub original: &'a Url,
    pub range: Option<String>,
    pub if_range: Option<&'a str>,
    pub redirects: Redirects,
}

/// Which redirects `send` follows.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Redirects {
    All,
    /// Only within the original origin (Hugging Face's renamed-repo redirects), so that the
    /// answer that leaves for a CDN (with `X-Linked-ETag`) is the one returned.
    SameOrigin,
}

/// The response of the last hop.
pub(super) struct Sent {
    pub response: Response,
    /// The URL that gave `response`.
    pub url: Url,
    /// Some hop left the original origin (so no token was sent from there on).
    pub crossed: bool,
    /// A token went with the last hop.
    pub token_sent: bool,
    /// Hugging Face's `X-Linked-ETag` (as a sha256) and `X-Linked-Size`, from any hop.
    pub linked_sha256: Option<String>,
    pub linked_size: Option<u64>,
}

pub(super) enum SendError {
    Stopped,
    HostUnavailable {
        host: String,
        retry_in: Duration,
    },
    /// Connect error, timeout, reset: worth retrying.
    Network(String),
    /// Too many redirects, a bad `Location`, an unusable token.
    Invalid(String),
}

impl Inner {
    /// Sends `r`, following redirects by hand (at most `max_redirects`) so that each hop gets
    /// the token only when its origin is the token's and no earlier hop left the original.
    pub(super) async fn send(
        &self,
        r: &Request<'_>,
        stop: &CancellationToken,
    ) -> Result<Sent, SendError> {
        let mut url = r.start.clone();
        let mut crossed = r.crossed;
        let mut linked_sha256 = None;
        let mut linked_size = None;
        for _hop in 0..=self.tuning.max_redirects {
            crossed |= origin(&url) != origin(r.original);
            let host = authority(&url);
            let permit =
                self.breaker
                    .acquire(&host)
                    .map_err(|retry_in| SendError::HostUnavailable {
                        host: display_host(&url),
                        retry_in,
                    })?;
            let token = if crossed { None } else { self.token_for(&url) };
            let mut builder = self
                .client
                .request(r.method.clone(), url.clone())
                .header(ACCEPT_ENCODING, "identity");
            if let Some(range) = &r.range {
                builder = builder.header(RANGE, range.as_str());
            }
            if let Some(v) = r.if_range {
                builder = builder.header(IF_RANGE, v);
            }
            let token_sent = token.is_some();
            if let Some(token) = token {
                let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
                    .map_err(|_| {
                        SendError::Invalid(format!(
                            "the token for {} contains characters not allowed in HTTP headers",
                            display_host(&url)
                        ))
                    })?;
                value.set_sensitive(true);
                builder = builder.header(AUTHORIZATION, value);
            }
            let stall = self.tuning.stall_timeout;
            let sent = tokio::select! {
                biased;
                _ = stop.cancelled() => return Err(SendError::Stopped),
                sent = tokio::time::timeout(stall, builder.send()) => sent,
            };
            let response = match sent {
                Err(_) => {
                    permit.failure();
                    return Err(SendError::Network(format!(
                        "{} did not answer within {} s",
                        display_host(&url),
                        stall.as_secs_f32()
                    )));
                }
                Ok(Err(e)) => {
                    permit.failure();
                    return Err(SendError::Network(describe(e)));
                }
                Ok(Ok(response)) => response,
            };
            let status = response.status();
            if status.as_u16() == 429 || status.is_server_error() {
                permit.failure();
            } else {
                permit.success();
            }
            let headers = response.headers();
            if linked_sha256.is_none() {
                linked_sha256 = header_str(headers, "x-linked-etag").and_then(linked_sha256_of);
            }
            if linked_size.is_none() {
                linked_size = header_str(headers, "x-linked-size").and_then(|v| v.parse().ok());
            }
            if status.is_redirection() && status.as_u16() != 304 {
                if let Some(location) = headers.get(LOCATION) {
                    let next = location
                        .to_str()
                        .ok()
                        .and_then(|l| url.join(l).ok())
                        .filter(|u| matches!(u.scheme(), "http" | "https"))
                        .ok_or_else(|| {
                            SendError::Invalid(format!(
                                "{} redirected to an unusable location",
                                redact(&url)
                            ))
                        })?;
                    if r.redirects == Redirects::SameOrigin
                        && (crossed || origin(&next) != origin(r.original))
                    {
                        return Ok(Sent {
                            response,
                            url,
                            crossed,
                            token_sent,
                            linked_sha256,
                            linked_size,
                        });
                    }
                    tracing::debug!(from = %redact(&url), to = %redact(&next), status = status.as_u16(), "redirect");
                    url = next;
                    continue;
                }
            }
            return Ok(Sent {
                response,
                url,
                crossed,
                token_sent,
                linked_sha256,
                linked_size,
            });
        }
        Err(SendError::Invalid(format!(
            "more than {} redirects from {}",
            self.tuning.max_redirects,
            redact(r.original)
        )))
    }

    /// The token whose hosts list this URL's `host` or `host:port`.
    fn token_for(&self, url: &Url) -> Option<Secret> {
        let host = url.host_str()?.to_ascii_lowercase();
        let with_port = authority(url);
        let credentials = self.credentials.read().unwrap_or_else(|e| e.into_inner());
        credentials
            .tokens
            .iter()
            .find(|t| {
                t.hosts.iter().any(|h| {
                    let h = h.trim().to_ascii_lowercase();
                    h == host || h == with_port
                })
            })
            .map(|t| t.token.clone())
    }
}

/// `host:port` with the scheme's default port filled in, lower-case.
pub(super) fn authority(url: &Url) -> String {
    format!(
        "{}:{}",
        url.host_str().unwrap_or("").to_ascii_lowercase(),
        url.port_or_known_default().unwrap_or(0)
    )
}

/// Scheme, host and port: a token never follows a change of any of them.
fn origin(url: &Url) -> (String, String) {
    (url.scheme().to_string(), authority(url))
}

/// `host` or `host:port` as the URL spells it, for messages.
pub(super) fn display_host(url: &Url) -> String {
    match url.port() {
        Some(p) => format!("{}:{p}", url.host_str().unwrap_or("")),
        None => url.host_str().unwrap_or("").to_string(),
    }
}

/// The URL without credentials, query or fragment (signed URLs and `?token=` stay out of logs).
pub(super) fn redact(url: &Url) -> String {
    format!("{}://{}{}", url.scheme(), display_host(url), url.path())
}

/// A reqwest error in words, without its URL.
pub(super) fn describe(e: reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "the connection broke"
    } else {
        "request failed"
    };
    let e = e.without_url();
    let mut message = what.to_string();
    let mut source = std::error::Error::source(&e);
    let mut last = String::new();
    while let Some(s) = source {
        let text = s.to_string();
        if text != last {
            message.push_str(": ");
            message.push_str(&text);
        }
        last = text;
        source = s.source();
    }
    message
}

pub(super) fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// The sha256 in an `X-Linked-ETag` (`"<hex>"`, maybe `W/`); other etags (git sha1) are None.
pub(super) fn linked_sha256_of(value: &str) -> Option<String> {
    let v = value.trim();
    let v = v.strip_prefix("W/").unwrap_or(v);
    let v = v.trim_matches('"').to_ascii_lowercase();
    (v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit())).then_some(v)
}

/// `Content-Range: bytes a-b/t` → `(a, b, t)`; `bytes */t` → `None` (see [`unsatisfied_total`]).
pub(super) fn content_range(headers: &HeaderMap) -> Option<(u64, u64, Option<u64>)> {
    let v = header_str(headers, "content-range")?;
    let rest = v.strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let (a, b) = range.trim().split_once('-')?;
    let (a, b) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    if b < a {
        return None;
    }
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    Some((a, b, total))
}

/// The total of a 416's `Content-Range: bytes */t`.
pub(super) fn unsatisfied_total(headers: &HeaderMap) -> Option<u64> {
    let v = header_str(headers, "content-range")?;
    v.strip_prefix("bytes")?
        .trim_start()
        .strip_prefix("*/")?
        .trim()
        .parse()
        .ok()
}

pub(super) fn content_length(headers: &HeaderMap) -> Option<u64> {
    header_str(headers, "content-length").and_then(|v| v.parse().ok())
}

/// `Retry-After` as a delay: delta-seconds or an HTTP-date (a date in the past is zero).
pub(super) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let v = header_str(headers, "retry-after")?;
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = parse_http_date(v)?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the form HTTP/1.1 servers must send.
pub(super) fn parse_http_date(s: &str) -> Option<SystemTime> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    let [_weekday, day, month, year, time, zone] = parts.as_slice() else {
        return None;
    };
    if !zone.eq_ignore_ascii_case("GMT") && *zone != "UTC" {
        return None;
    }
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let month = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(month))? as i64 + 1;
    let day: i64 = day.parse().ok()?;
    let year: i64 = year.parse().ok()?;
    let mut hms = time.split(':').map(|p| p.parse::<i64>().ok());
    let (h, m, sec) = (hms.next()??, hms.next()??, hms.next()??);
    if !(1..=31).contains(&day) || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    let secs = days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + sec;
    let secs = u64::try_from(secs).ok()?;
    Some(UNIX_EPOCH + Duration::from_secs(secs))
}

/// The Hugging Face repository a URL points into: everything before `/resolve/`
/// (`org/name`, `datasets/org/name`).
pub(super) fn hf_repo(url: &Url) -> Option<String> {
    let segments: Vec<&str> = url.path_segments()?.collect();
    let at = segments.iter().position(|s| *s == "resolve")?;
    (at > 0).then(|| segments[..at].join("/"))
}

/// The repository named in HF's `X-Error-Message` ("Access to model org/name is restricted…").
pub(super) fn hf_repo_in_message(message: &str) -> Option<String> {
    let mut words = message.split_whitespace();
    while let Some(w) = words.next() {
        if matches!(w, "model" | "dataset" | "space") {
            let name = words.next()?.trim_end_matches(['.', ',', ':']);
            if name.contains('/') {
                return Some(match w {
                    "dataset" => format!("datasets/{name}"),
                    "space" => format!("spaces/{name}"),
                    _ => name.to_string(),
                });
            }
        }
    }
    None
}

/// An `ETag` usable in `If-Range` (only strong ones are).
pub(super) fn is_strong_etag(etag: &str) -> bool {
    !etag.trim_start().starts_with("W/")
}

/// Weak comparison of two entity tags (`W/"x"` equals `"x"`).
pub(super) fn etags_match(a: &str, b: &str) -> bool {
    fn bare(s: &str) -> &str {
        let s = s.trim();
        s.strip_prefix("W/").unwrap_or(s)
    }
    bare(a) == bare(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(
            retry_after(&headers(&[("retry-after", "7")]), now),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            retry_after(
                &headers(&[("retry-after", "Sun, 06 Nov 1994 08:49:47 GMT")]),
                now
            ),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            retry_after(
                &headers(&[("retry-after", "Sun, 06 Nov 1994 08:49:00 GMT")]),
                now
            ),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after(&headers(&[("retry-after", "soon")]), now), None);
        assert_eq!(
            parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"),
            Some(UNIX_EPOCH)
        );
        assert_eq!(
            parse_http_date("Tue, 29 Feb 2000 12:00:00 GMT"),
            Some(UNIX_EPOCH + Duration::from_secs(951_825_600))
        );
    }

    #[test]
    fn content_ranges() {
        assert_eq!(
            content_range(&headers(&[("content-range", "bytes 10-19/100")])),
            Some((10, 19, Some(100)))
        );
        assert_eq!(
            content_range(&headers(&[("content-range", "bytes 0-0/*")])),
            Some((0, 0, None))
        );
        assert_eq!(
            unsatisfied_total(&headers(&[("content-range", "bytes */42")])),
            Some(42)
        );
        assert_eq!(
            content_range(&headers(&[("content-range", "bytes 9-3/42")])),
            None
        );
    }

    #[test]
    fn linked_etags() {
        let sha = "a".repeat(64);
        assert_eq!(linked_sha256_of(&format!("\"{sha}\"")), Some(sha.clone()));
        assert_eq!(
            linked_sha256_of(&format!("W/\"{}\"", sha.to_uppercase())),
            Some(sha)
        );
        assert_eq!(
            linked_sha256_of("\"0123456789abcdef0123456789abcdef01234567\""),
            None
        );
    }

    #[test]
    fn repos_from_urls_and_messages() {
        let u = Url::parse("https://huggingface.co/org/name/resolve/main/a/b.bin").unwrap();
        assert_eq!(hf_repo(&u).as_deref(), Some("org/name"));
        let u = Url::parse("https://huggingface.co/datasets/org/set/resolve/main/x").unwrap();
        assert_eq!(hf_repo(&u).as_deref(), Some("datasets/org/set"));
        assert_eq!(
            hf_repo_in_message(
                "Access to model org/name is restricted. You must be authenticated."
            )
            .as_deref(),
            Some("org/name")
        );
        assert_eq!(hf_repo_in_message("nothing here"), None);
    }

    #[test]
    fn redaction_drops_query_and_credentials() {
        let u = Url::parse("https://user:pw@cdn.example:8443/a/b?sig=secret&token=t#f").unwrap();
        assert_eq!(redact(&u), "https://cdn.example:8443/a/b");
    }

    #[test]
    fn etag_helpers() {
        assert!(is_strong_etag("\"x\""));
        assert!(!is_strong_etag("W/\"x\""));
        assert!(etags_match("W/\"x\"", "\"x\""));
        assert!(!etags_match("\"x\"", "\"y\""));
    }
}
