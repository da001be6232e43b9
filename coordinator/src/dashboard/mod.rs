//! `ferry dashboard`: a read-only HTTP server on the bastion showing every
//! cluster under the state directory live — hosts (role, agent version and
//! health, current step), transfer progress, the runs' phase timeline, LB
//! members and failures with their advice — from the clusters'
//! `events.jsonl` and their agents' own event streams. SSE feed, JSON API
//! and Prometheus `/metrics` (docs/dashboard.md).
//!
//! Invariant: read-only — the dashboard never writes the state directory
//! and calls agents only for Facts, LB status, Events and (on request)
//! certificate reads.
//! Invariant: every queue is bounded; a slow client never slows a
//! producer (it gets a `lag` notice and is caught up from the ring or the
//! file).

mod agents;
pub mod api;
mod assets;
mod auth;
mod certs;
pub mod clusters;
pub mod error;
pub mod event_id;
pub mod hub;
pub mod listen;
pub mod metrics;
pub mod server;
pub mod sse;
pub mod tail;
pub mod view;

#[cfg(test)]
mod tests;

use std::path::Path;
use std::sync::Arc;

pub use error::DashboardError;
pub use listen::{DEFAULT_LISTEN, Listen, ListenArgs};

/// Serves the dashboard for the clusters under `home` until Ctrl-C.
pub async fn run(home: &Path, args: &ListenArgs) -> Result<(), DashboardError> {
    let listen = Listen::resolve(args)?;
    let reg = Arc::new(clusters::Registry::new(home, true, tail::POLL_EVERY));
    reg.scan();
    let listener = tokio::net::TcpListener::bind(listen.addr)
        .await
        .map_err(|source| DashboardError::Bind {
            addr: listen.addr,
            source,
        })?;
    let addr = listener
        .local_addr()
        .map_err(|source| DashboardError::Bind {
            addr: listen.addr,
            source,
        })?;
    let scheme = if listen.tls.is_some() {
        "https"
    } else {
        "http"
    };
    eprintln!(
        "ferry dashboard: listening on {scheme}://{addr}/ (state {}, clusters: {})",
        home.display(),
        match reg.names() {
            n if n.is_empty() => "none yet".to_string(),
            n => n.join(", "),
        }
    );
    if let Some(t) = &listen.tls {
        eprintln!(
            "ferry dashboard: TLS certificate{} SHA-256 fingerprint {}",
            if t.self_signed {
                " (self-signed, generated)"
            } else {
                ""
            },
            t.fingerprint
        );
    }
    match (&listen.token, listen.token_generated) {
        // Printed once, here; never logged or put in an event.
        (Some(t), true) => eprintln!(
            "ferry dashboard: generated token (shown once): {}\nferry dashboard: open {scheme}://{addr}/?token={}",
            t.expose(),
            t.expose()
        ),
        (Some(_), false) => eprintln!("ferry dashboard: token required (from --token-file)"),
        (None, _) => eprintln!("ferry dashboard: no token (loopback only)"),
    }
    tokio::spawn(clusters::keep_scanning(reg.clone()));
    let token = listen.token.map(Arc::new);
    let app = api::router(reg, token);
    let tls = listen.tls.map(|t| t.config);
    server::serve(listener, app, tls, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await;
    Ok(())
}
