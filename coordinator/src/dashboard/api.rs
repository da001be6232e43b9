//! The routes: the page and its assets, the read-only JSON API, the SSE
//! feed and `/metrics` (docs/dashboard.md). Every route is behind the
//! token check when a token is configured.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use ferry_shared::Secret;
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;

use super::assets;
use super::auth::{query_param, require_token};
use super::clusters::Registry;
use super::event_id::EventId;
use super::sse;

fn json<T: Serialize>(v: &T) -> Response {
    match serde_json::to_vec(v) {
        Ok(b) => ([(header::CONTENT_TYPE, "application/json")], b).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

fn not_found(name: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        format!("no cluster `{name}` in the state directory\n"),
    )
        .into_response()
}

#[derive(Serialize)]
struct ClusterSummary {
    name: String,
    hosts: usize,
    runs: usize,
    last_run: Option<LastRun>,
    event_id: String,
}

#[derive(Serialize)]
struct LastRun {
    op: String,
    outcome: &'static str,
    started_ms: i64,
    ended_ms: Option<i64>,
}

async fn clusters(State(reg): State<Arc<Registry>>) -> Response {
    reg.scan();
    let list: Vec<ClusterSummary> = reg
        .names()
        .iter()
        .filter_map(|n| reg.get(n))
        .map(|c| {
            let view = c.hub.view();
            ClusterSummary {
                name: c.name.clone(),
                hosts: c.inventory().nodes.len(),
                runs: view.runs.len(),
                last_run: view.runs.back().map(|r| LastRun {
                    op: r.op.clone(),
                    outcome: r.outcome,
                    started_ms: r.started_ms,
                    ended_ms: r.ended_ms,
                }),
                event_id: c.hub.cursor().to_string(),
            }
        })
        .collect();
    json(&list)
}

#[derive(Serialize)]
struct HostInfo {
    host: String,
    roles: Vec<String>,
    hostname: String,
    agent_port: u16,
    /// The version `agent install` recorded.
    installed_version: String,
    health: super::agents::AgentHealth,
    current: Option<super::view::HostNow>,
}

async fn hosts(State(reg): State<Arc<Registry>>, Path(name): Path<String>) -> Response {
    let Some(c) = reg.get(&name) else {
        return not_found(&name);
    };
    let view = c.hub.view();
    let health = c.health.lock().map(|g| g.clone()).unwrap_or_default();
    let mut list: Vec<HostInfo> = c
        .inventory()
        .nodes
        .into_iter()
        .map(|n| {
            let host = n.addr.to_string();
            HostInfo {
                health: health
                    .get(&host)
                    .cloned()
                    .unwrap_or(super::agents::AgentHealth {
                        state: "unknown",
                        ..Default::default()
                    }),
                current: view.hosts.get(&host).cloned(),
                roles: n.roles,
                hostname: n.hostname,
                agent_port: n.agent_port,
                installed_version: n.agent_version,
                host,
            }
        })
        .collect();
    // Hosts the events name that the inventory does not (yet) list.
    for (host, now) in &view.hosts {
        if !list.iter().any(|h| &h.host == host) {
            list.push(HostInfo {
                host: host.clone(),
                roles: Vec::new(),
                hostname: String::new(),
                agent_port: 0,
                installed_version: String::new(),
                health: super::agents::AgentHealth {
                    state: "unknown",
                    ..Default::default()
                },
                current: Some(now.clone()),
            });
        }
    }
    json(&list)
}

async fn runs(State(reg): State<Arc<Registry>>, Path(name): Path<String>) -> Response {
    match reg.get(&name) {
        Some(c) => json(&c.hub.view().runs),
        None => not_found(&name),
    }
}

async fn certs(State(reg): State<Arc<Registry>>, Path(name): Path<String>) -> Response {
    match reg.get(&name) {
        Some(c) => json(&super::certs::check(&c.dir, &c.inventory()).await),
        None => not_found(&name),
    }
}

async fn events(
    State(reg): State<Arc<Registry>>,
    Path(name): Path<String>,
    req: Request,
) -> Response {
    let Some(c) = reg.get(&name) else {
        return not_found(&name);
    };
    let given = req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| query_param(req.uri().query(), "last_event_id"))
        .filter(|s| !s.is_empty());
    let resume = match given.map(|s| s.parse::<EventId>()).transpose() {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    };
    sse::response(c.hub.clone(), resume).into_response()
}

async fn metrics(State(reg): State<Arc<Registry>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        reg.metrics.render(),
    )
        .into_response()
}

/// No caching, no sniffing, no referrer (the token may be in the URL),
/// nothing loaded from elsewhere.
async fn hardening(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
        ),
    );
    res
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], Body::from(body)).into_response()
}

pub fn router(reg: Arc<Registry>, token: Option<Arc<Secret>>) -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", assets::INDEX_HTML) }),
        )
        .route(
            "/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", assets::APP_JS) }),
        )
        .route(
            "/style.css",
            get(|| async { asset("text/css; charset=utf-8", assets::STYLE_CSS) }),
        )
        .route("/metrics", get(metrics))
        .route("/api/clusters", get(clusters))
        .route("/api/clusters/{name}/hosts", get(hosts))
        .route("/api/clusters/{name}/runs", get(runs))
        .route("/api/clusters/{name}/certs", get(certs))
        .route("/api/clusters/{name}/events", get(events))
        .layer(middleware::from_fn_with_state(token, require_token))
        .layer(middleware::from_fn(hardening))
        .with_state(reg)
}
