//! The bearer token check in front of every route when a token is
//! configured: `Authorization: Bearer <token>`, or `?token=<token>` (the
//! page and EventSource, which cannot set headers). 401 otherwise.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ferry_shared::Secret;
use http::{StatusCode, header};

/// Constant-time comparison (the length is not secret).
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The value of `key` in a query string (percent-decoded).
pub fn query_param(query: Option<&str>, key: &str) -> Option<String> {
    form_urlencoded_parse(query?)
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

fn form_urlencoded_parse(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn hex_val(c: u8) -> Option<u8> {
    (c as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let pair =
            (b.get(i + 1).copied().and_then(hex_val)).zip(b.get(i + 2).copied().and_then(hex_val));
        match (b[i], pair) {
            (b'+', _) => out.push(b' '),
            (b'%', Some((h, l))) => {
                out.push(h << 4 | l);
                i += 2;
            }
            (c, _) => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn authorized(req: &Request, token: &Secret) -> bool {
    let want = token.expose().as_bytes();
    let header_ok = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| same(t.trim().as_bytes(), want));
    header_ok || query_param(req.uri().query(), "token").is_some_and(|t| same(t.as_bytes(), want))
}

pub async fn require_token(
    State(token): State<Option<Arc<Secret>>>,
    req: Request,
    next: Next,
) -> Response {
    match token {
        Some(t) if !authorized(&req, &t) => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer realm=\"ferry dashboard\"")],
            Body::from("401: a bearer token is required (Authorization: Bearer <token>, or ?token=<token>)\n"),
        )
            .into_response(),
        _ => next.run(req).await,
    }
}
