//! The HTTP side of logins: the middleware that guards every route, the login and logout
//! handlers, and the session cookie. Decisions (passwords, sessions, tokens, rate limits) are
//! the engine's.

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use engine::auth::LoginError;
use engine::model::{self, encode_path, Caller, ErrorKind};
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};

use crate::error::AppError;
use crate::{assets, AppState};

pub const SESSION_COOKIE: &str = "comfydeck_session";

/// Paths anyone may fetch: the login page and its form target, the health check, and the
/// static files the login page itself needs.
pub fn is_public(path: &str) -> bool {
    matches!(path, "/login" | "/health" | LOGIN_PATH)
        || path.starts_with("/pkg/")
        // Workers prove themselves with their own token, checked by each handler.
        || path.starts_with(crate::workers::PREFIX)
        || assets::exists(path)
}

pub const LOGIN_PATH: &str = "/api/auth/login";
pub const LOGOUT_PATH: &str = "/api/auth/logout";

/// Lets a request through when logins are off, the path is public, or it carries a live
/// session cookie or API token; the [`Caller`] it resolved to goes into the request's
/// extensions, where every handler and server function finds who is asking. Otherwise pages
/// redirect to `/login` and everything else gets 401 with a JSON message.
pub async fn require_auth(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_string();
    if !state.engine.auth().mode().requires_login() {
        if path == "/login" {
            return Redirect::to("/").into_response();
        }
        // Static files need no caller (and no database read).
        if !is_public(&path) {
            let caller = state.engine.auth().open_caller_now().await;
            request.extensions_mut().insert(caller);
        }
        return next.run(request).await;
    }
    if path == "/login" {
        // A logged-in visitor has no business on the login page.
        if authenticated_caller(&state, request.headers())
            .await
            .is_some()
        {
            return Redirect::to("/").into_response();
        }
        // The form fills in `admin` when it is the only account.
        let only_admin = state
            .engine
            .auth()
            .users()
            .only_admin_exists()
            .await
            .unwrap_or(false);
        request
            .extensions_mut()
            .insert(app::pages::login::LoginHint { only_admin });
        return next.run(request).await;
    }
    // Public paths first: static files must not cost a credentials lookup.
    if is_public(&path) {
        return next.run(request).await;
    }
    match authenticated_caller(&state, request.headers()).await {
        Some(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        None => deny(&request),
    }
}

/// Who the request's API token or session cookie belongs to, when either is live.
pub(crate) async fn authenticated_caller(state: &AppState, headers: &HeaderMap) -> Option<Caller> {
    let result = if let Some(token) = bearer_token(headers) {
        state.engine.auth().api_token_caller(token).await
    } else if let Some(token) = session_cookie(headers) {
        state.engine.auth().session_caller(token).await
    } else {
        return None;
    };
    result.unwrap_or_else(|e| {
        tracing::error!(error = %e, "could not check credentials");
        None
    })
}

/// The caller the auth layer put on a request (handlers behind [`require_auth`] always have
/// one).
pub fn caller_of(request_extensions: &axum::http::Extensions) -> Result<Caller, AppError> {
    request_extensions
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| AppError::login_required("Login required"))
}

fn deny(request: &Request) -> Response {
    let wants_page = request.method() == Method::GET
        && request
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|accept| accept.contains("text/html"));
    if wants_page {
        let target = request
            .uri()
            .path_and_query()
            .map(|pq| pq.as_str())
            .unwrap_or("/");
        return Redirect::to(&format!("/login?next={}", encode_path(target))).into_response();
    }
    let mut response = AppError::login_required(
        "Login required: log in at /login or send an API token as \"Authorization: Bearer <token>\"",
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

pub fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value)
        .filter(|v| !v.is_empty())
}

#[derive(Deserialize)]
struct LoginForm {
    /// Absent means `admin`: scripts written for the one-password deck keep working.
    #[serde(default)]
    username: Option<String>,
    password: String,
    #[serde(default)]
    next: Option<String>,
}

/// `POST /api/auth/login` with a form (`password`, `next`) or JSON (`{"password": …}`).
/// Forms are answered with redirects (the login page works without JavaScript); JSON callers
/// get JSON and status codes.
pub async fn login(State(state): State<AppState>, request: Request) -> Response {
    let headers = request.headers().clone();
    let client = client_address(&request);
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    let body = match axum::body::to_bytes(request.into_body(), 16 * 1024).await {
        Ok(b) => b,
        Err(_) => {
            return json_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "the login request is too large",
            )
        }
    };
    let form = match parse_login(&body, is_json) {
        Ok(f) => f,
        Err(message) => return json_error(StatusCode::BAD_REQUEST, &message),
    };
    let next = safe_next(form.next.as_deref());
    if !state.engine.auth().mode().requires_login() {
        return if is_json {
            StatusCode::NO_CONTENT.into_response()
        } else {
            Redirect::to(&next).into_response()
        };
    }
    let username = form
        .username
        .as_deref()
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .unwrap_or(model::ADMIN_USERNAME);
    match state
        .engine
        .auth()
        .login(username, &form.password, &client)
        .await
    {
        Ok((token, _)) => {
            let cookie = session_cookie_header(&token, &headers, false);
            let mut response = if is_json {
                StatusCode::NO_CONTENT.into_response()
            } else {
                Redirect::to(&next).into_response()
            };
            response.headers_mut().insert(header::SET_COOKIE, cookie);
            response
        }
        Err(LoginError::WrongPassword) if is_json => {
            json_error(StatusCode::UNAUTHORIZED, "wrong username or password")
        }
        Err(LoginError::WrongPassword) => Redirect::to(&format!(
            "/login?error=wrong&user={}&next={}",
            encode_path(username),
            encode_path(&next)
        ))
        .into_response(),
        Err(LoginError::RateLimited(wait)) => {
            let secs = wait.as_secs().max(1);
            let mut response = if is_json {
                json_error(
                    StatusCode::TOO_MANY_REQUESTS,
                    &format!("too many failed attempts; try again in {secs} s"),
                )
            } else {
                Redirect::to(&format!(
                    "/login?error=limited&wait={secs}&user={}&next={}",
                    encode_path(username),
                    encode_path(&next)
                ))
                .into_response()
            };
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
            response
        }
        Err(LoginError::Failed(e)) => {
            tracing::error!(error = %e, "login failed");
            AppError::new(
                ErrorKind::Internal,
                "login failed on the server; see the log",
            )
            .into_response()
        }
    }
}

/// `POST /api/auth/logout`: ends the session and clears the cookie.
pub async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(token) = session_cookie(&headers) {
        if let Err(e) = state.engine.auth().logout(token).await {
            tracing::error!(error = %e, "logout failed");
        }
    }
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        session_cookie_header("", &headers, true),
    );
    response
}

fn parse_login(body: &Bytes, is_json: bool) -> Result<LoginForm, String> {
    if is_json {
        serde_json::from_slice(body)
            .map_err(|e| format!("expected JSON {{\"username\": \"…\", \"password\": \"…\"}}: {e}"))
    } else {
        serde_urlencoded::from_bytes(body)
            .map_err(|e| format!("expected a form with a password field: {e}"))
    }
}

/// Only same-site paths: an attacker's `next=https://evil.example` must not redirect there.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.starts_with("/\\") => {
            n.to_string()
        }
        _ => "/".to_string(),
    }
}

fn session_cookie_header(token: &str, request_headers: &HeaderMap, expire: bool) -> HeaderValue {
    // Behind the pod's HTTPS proxy the browser talks https, though we see plain http.
    let secure = request_headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.eq_ignore_ascii_case("https"));
    let max_age = if expire {
        0
    } else {
        engine::auth::SESSION_IDLE_LIFETIME.as_secs()
    };
    let value = format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{}",
        if secure { "; Secure" } else { "" }
    );
    HeaderValue::from_str(&value).expect("session tokens are URL-safe base64")
}

/// The client's address for rate limiting. Behind the pod's proxy every connection comes from
/// the proxy, so the right-most `X-Forwarded-For` entry (added by that proxy, which a client
/// cannot forge) names the client. The header is trusted only when the peer itself is a proxy
/// on a loopback or private address: exposed directly, a client could otherwise send a new
/// value with every guess and never be limited.
fn client_address(request: &Request<Body>) -> String {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ci| ci.0.ip());
    let forwarded = request
        .headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .map(str::trim)
        .filter(|v| !v.is_empty());
    match (peer, forwarded) {
        (Some(peer), Some(client)) if is_proxy_address(peer) => client.to_string(),
        (Some(peer), _) => peer.to_string(),
        // No socket (in-process calls): only the header can tell clients apart.
        (None, Some(client)) => client.to_string(),
        (None, None) => "unknown".to_string(),
    }
}

fn is_proxy_address(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            // RFC 1918, loopback, link-local and the carrier-grade NAT range pod proxies use.
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => v6.is_loopback() || (v6.segments()[0] & 0xfe00) == 0xfc00,
    }
}

fn json_error(status: StatusCode, message: &str) -> Response {
    match status {
        StatusCode::BAD_REQUEST => AppError::new(ErrorKind::Invalid, message),
        _ => AppError::protocol(status, message),
    }
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_is_same_site_only() {
        assert_eq!(safe_next(Some("/settings?x=1")), "/settings?x=1");
        assert_eq!(safe_next(Some("//evil.example/")), "/");
        assert_eq!(safe_next(Some("https://evil.example/")), "/");
        assert_eq!(safe_next(Some("/\\evil.example")), "/");
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn cookies_and_bearer_are_parsed() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; comfydeck_session=tok123; b=2"),
        );
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer cd_abc"),
        );
        assert_eq!(session_cookie(&headers), Some("tok123"));
        assert_eq!(bearer_token(&headers), Some("cd_abc"));
    }

    #[test]
    fn forwarded_for_is_trusted_only_from_proxies() {
        let request = |peer: &str, xff: Option<&str>| {
            let mut builder = Request::builder().uri("/api/auth/login");
            if let Some(xff) = xff {
                builder = builder.header("x-forwarded-for", xff);
            }
            let mut request = builder.body(Body::empty()).unwrap();
            request
                .extensions_mut()
                .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
            client_address(&request)
        };
        // Behind a proxy on a private address: the proxy-added (right-most) entry.
        assert_eq!(
            request("10.1.2.3:5000", Some("6.6.6.6, 203.0.113.9")),
            "203.0.113.9"
        );
        assert_eq!(
            request("100.65.0.1:5000", Some("203.0.113.9")),
            "203.0.113.9"
        );
        // Reached directly from the internet: the header is ignored.
        assert_eq!(
            request("198.51.100.7:5000", Some("203.0.113.9")),
            "198.51.100.7"
        );
        assert_eq!(request("127.0.0.1:5000", None), "127.0.0.1");
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(encode_path("/a b?c=d&e"), "/a%20b%3Fc%3Dd%26e");
    }
}
