//! Who may call what: the one place the agent decides it, from the verified
//! client certificate of the connection (`accept.rs`), per RPC.
//!
//! Identities (see `ferry_shared::pki::agent_ca`):
//! - the coordinator: a certificate carrying the coordinator EKU;
//! - an agent of the cluster: any other certificate the CA bundle verified.
//!
//! A revoked serial (the Trust service's list, pushed by the coordinator) is
//! refused on every RPC, whatever its identity, from the next call on (also
//! on connections opened before the revocation).
//!
//! Invariant: every RPC is for the coordinator only, except Transfer/Push,
//! which an agent may call as a relay; the Push handler then accepts only a
//! transfer the coordinator planned on this node (`transfer/service.rs`).

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::task::{Context, Poll};

use futures::future::Either;
use tonic::Status;
use tonic::body::Body;
use tonic::codegen::Service;
use tonic::codegen::http;

use crate::accept::PeerInfo;
use crate::trust::Revocations;

/// Which identities may call an RPC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allowed {
    Coordinator,
    /// The coordinator, or an agent relaying chunks of a transfer the
    /// coordinator planned on this node.
    CoordinatorOrRelay,
}

/// Transfer/Push, the one RPC an agent may call.
pub const PUSH: &str = "/ferry.transfer.v1.Transfer/Push";

/// Every RPC the agent serves. A path not listed is the coordinator's only.
pub const TABLE: &[(&str, Allowed)] = &[
    ("/ferry.agent.v1.Agent/Facts", Allowed::Coordinator),
    ("/ferry.agent.v1.Agent/Exec", Allowed::Coordinator),
    ("/ferry.agent.v1.Agent/Events", Allowed::Coordinator),
    ("/ferry.agent.v1.Trust/GetTrust", Allowed::Coordinator),
    ("/ferry.agent.v1.Trust/SetRevoked", Allowed::Coordinator),
    ("/ferry.agent.v1.Trust/InstallTls", Allowed::Coordinator),
    (
        "/ferry.lb.v1.LoadBalancer/SetLoadBalancer",
        Allowed::Coordinator,
    ),
    (
        "/ferry.lb.v1.LoadBalancer/GetLoadBalancer",
        Allowed::Coordinator,
    ),
    (
        "/ferry.lb.v1.LoadBalancer/DeleteLoadBalancer",
        Allowed::Coordinator,
    ),
    ("/ferry.transfer.v1.Transfer/Plan", Allowed::Coordinator),
    (PUSH, Allowed::CoordinatorOrRelay),
    ("/ferry.transfer.v1.Transfer/Commit", Allowed::Coordinator),
];

pub fn allowed(path: &str) -> Allowed {
    TABLE
        .iter()
        .find(|(p, _)| *p == path)
        .map_or(Allowed::Coordinator, |(_, a)| *a)
}

/// The authenticated caller, put into the request's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Coordinator { serial: String },
    Agent { serial: String, name: String },
}

impl Caller {
    pub fn is_coordinator(&self) -> bool {
        matches!(self, Caller::Coordinator { .. })
    }
}

/// Decides one call to `path` by `peer`.
pub fn decide(
    path: &str,
    peer: Option<&PeerInfo>,
    revoked: &Revocations,
) -> Result<Caller, Status> {
    let cert = peer
        .and_then(|p| p.cert.as_ref())
        .ok_or_else(|| Status::permission_denied("no verified client certificate"))?;
    let c = &cert.info;
    if revoked.is_revoked(&c.serial) {
        return Err(Status::permission_denied(format!(
            "the client certificate `{}` (serial {}) is revoked by the ferry coordinator",
            c.common_name, c.serial
        )));
    }
    if c.coordinator {
        return Ok(Caller::Coordinator {
            serial: c.serial.clone(),
        });
    }
    match allowed(path) {
        Allowed::CoordinatorOrRelay => Ok(Caller::Agent {
            serial: c.serial.clone(),
            name: c.common_name.clone(),
        }),
        Allowed::Coordinator => Err(Status::permission_denied(format!(
            "{path} is for the ferry coordinator only; the client certificate `{}` (serial {}) is not the coordinator's",
            c.common_name, c.serial
        ))),
    }
}

/// The tower layer applying [`decide`] to every request.
#[derive(Clone)]
pub struct AuthzLayer {
    revoked: Revocations,
}

impl AuthzLayer {
    pub fn new(revoked: Revocations) -> Self {
        Self { revoked }
    }
}

impl<S> tower::Layer<S> for AuthzLayer {
    type Service = Authz<S>;

    fn layer(&self, inner: S) -> Authz<S> {
        Authz {
            inner,
            revoked: self.revoked.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Authz<S> {
    inner: S,
    revoked: Revocations,
}

impl<S, B> Service<http::Request<B>> for Authz<S>
where
    S: Service<http::Request<B>, Response = http::Response<Body>, Error = Infallible>,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Either<S::Future, Ready<Result<http::Response<Body>, Infallible>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let peer = req.extensions().get::<PeerInfo>();
        match decide(req.uri().path(), peer, &self.revoked) {
            Ok(caller) => {
                req.extensions_mut().insert(caller);
                Either::Left(self.inner.call(req))
            }
            Err(status) => {
                tracing::warn!(
                    remote = ?peer.and_then(|p| p.remote),
                    rpc = req.uri().path(),
                    reason = status.message(),
                    "call refused"
                );
                Either::Right(ready(Ok(status.into_http())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_push_is_open_to_agents_and_unknown_paths_are_the_coordinators() {
        let open: Vec<&str> = TABLE
            .iter()
            .filter(|(_, a)| *a != Allowed::Coordinator)
            .map(|(p, _)| *p)
            .collect();
        assert_eq!(open, [PUSH]);
        assert_eq!(allowed("/ferry.agent.v1.Agent/Nope"), Allowed::Coordinator);
        assert_eq!(allowed(""), Allowed::Coordinator);
    }
}
