//! The `ferry.agent.v1.Trust` service (coordinator only, `authz.rs`):
//! report, revoke, and replace this agent's TLS identity and CA bundle.

use ferry_proto::pb;
use ferry_shared::Secret;
use ferry_shared::pki::CertInfo;
use ferry_shared::pki::cert_info::normalize_serial;
use tonic::{Request, Response, Status};

use super::{Revocations, TlsDir};
use crate::accept::{PeerInfo, TlsState};
use crate::tls::TlsMaterial;

/// Serials a revocation list may hold.
const MAX_REVOKED: usize = 100_000;

pub struct TrustService {
    tls: TlsState,
    revoked: Revocations,
    /// Where changes persist (None: in memory only).
    dir: Option<TlsDir>,
    /// One change at a time.
    lock: tokio::sync::Mutex<()>,
}

impl TrustService {
    pub fn new(tls: TlsState, revoked: Revocations, dir: Option<TlsDir>) -> Self {
        Self {
            tls,
            revoked,
            dir,
            lock: tokio::sync::Mutex::new(()),
        }
    }

    fn status(&self) -> pb::TrustStatus {
        let m = self.tls.material();
        let (generation, count) = self.revoked.status();
        pb::TrustStatus {
            cert_pem: m.cert_pem().to_string(),
            ca_pem: m.ca_pem().to_string(),
            revoked_generation: generation,
            revoked_count: u32::try_from(count).unwrap_or(u32::MAX),
        }
    }
}

fn caller<T>(req: &Request<T>) -> Result<std::sync::Arc<crate::accept::PeerCert>, Status> {
    req.extensions()
        .get::<PeerInfo>()
        .and_then(|p| p.cert.clone())
        .ok_or_else(|| Status::permission_denied("no verified client certificate"))
}

/// The new material: `req`'s CA bundle with `req`'s certificate and key, or
/// the current ones when it carries none.
fn new_material(req: pb::InstallTlsRequest, current: &TlsMaterial) -> Result<TlsMaterial, Status> {
    let (cert, key) = if req.cert_pem.is_empty() {
        (current.cert_pem().to_string(), current.key_pem().clone())
    } else {
        let key = String::from_utf8(req.key_pem)
            .map_err(|_| Status::invalid_argument("the agent key is not PEM text"))?;
        (req.cert_pem, Secret::new(key))
    };
    let m = TlsMaterial::from_pem(req.ca_pem, cert, key, "InstallTls")
        .map_err(|e| Status::invalid_argument(e.to_string()))?;
    let bad = |e: ferry_shared::pki::CertInfoError| Status::invalid_argument(e.to_string());
    let leaf = CertInfo::from_pem(m.cert_pem(), "the agent certificate").map_err(bad)?;
    let cas = CertInfo::all_from_pem(m.ca_pem(), "the CA bundle").map_err(bad)?;
    if leaf.coordinator {
        return Err(Status::invalid_argument(
            "refusing a coordinator certificate as this agent's identity",
        ));
    }
    if !cas.iter().any(|ca| leaf.issued_by(ca)) {
        return Err(Status::invalid_argument(
            "the agent certificate was not issued by a CA of the new bundle",
        ));
    }
    Ok(m)
}

#[tonic::async_trait]
impl pb::trust_server::Trust for TrustService {
    async fn get_trust(
        &self,
        _req: Request<pb::GetTrustRequest>,
    ) -> Result<Response<pb::TrustStatus>, Status> {
        Ok(Response::new(self.status()))
    }

    async fn set_revoked(
        &self,
        req: Request<pb::SetRevokedRequest>,
    ) -> Result<Response<pb::TrustStatus>, Status> {
        let me = caller(&req)?;
        let req = req.into_inner();
        if req.serials.len() > MAX_REVOKED {
            return Err(Status::invalid_argument("too many revoked serials"));
        }
        let serials = req
            .serials
            .iter()
            .map(|s| normalize_serial(s))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        if serials.contains(&me.info.serial) {
            return Err(Status::failed_precondition(
                "the list revokes the certificate making this call; the coordinator would lock itself out",
            ));
        }
        let _guard = self.lock.lock().await;
        let revoked = self.revoked.clone();
        let generation = req.generation;
        let applied = tokio::task::spawn_blocking(move || revoked.replace(generation, serials))
            .await
            .map_err(|e| Status::internal(format!("revocation task failed: {e}")))?
            .map_err(|e| Status::internal(e.to_string()))?;
        if applied {
            tracing::info!(generation, "revocation list replaced");
        } else {
            return Err(Status::failed_precondition(format!(
                "this agent holds revocation generation {}, newer than {generation} (the coordinator's state is older: a restored bastion?); enrol this agent again over SSH with `ferry agent install --force`, which replaces its list",
                self.revoked.status().0
            )));
        }
        Ok(Response::new(self.status()))
    }

    async fn install_tls(
        &self,
        req: Request<pb::InstallTlsRequest>,
    ) -> Result<Response<pb::TrustStatus>, Status> {
        let me = caller(&req)?;
        let _guard = self.lock.lock().await;
        let m = new_material(req.into_inner(), &self.tls.material())?;
        m.accepts_client(&me.chain).map_err(|e| {
            Status::failed_precondition(format!(
                "the new CA bundle would refuse the certificate making this call ({e}); the coordinator would lock itself out"
            ))
        })?;
        if let Some(dir) = self.dir.clone() {
            let staged = m.clone();
            tokio::task::spawn_blocking(move || dir.install(&staged))
                .await
                .map_err(|e| Status::internal(format!("TLS install task failed: {e}")))?
                .map_err(|e| Status::internal(e.to_string()))?;
        }
        self.tls
            .install(m)
            .map_err(|e| Status::internal(e.to_string()))?;
        tracing::info!("TLS identity and CA bundle replaced");
        Ok(Response::new(self.status()))
    }
}
