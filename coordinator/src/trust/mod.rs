//! The coordinator side of agent trust (`ferry.agent.v1.Trust`): what an
//! agent serves and refuses ([`TrustClient`]), pushing the revocation list
//! (`push.rs`; after `ferry delete`, `agent install|upgrade|uninstall`,
//! `rotate-certs`) and rotating certificates (`rotate.rs`).

pub mod push;
pub mod rotate;

use std::time::Duration;

use ferry_proto::pb;
use ferry_proto::pb::trust_client::TrustClient as PbClient;
use ferry_shared::pki::{CertInfo, Issued, RevokedList};

use crate::client::AgentClient;

/// How long one Trust call may take.
pub const TRUST_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error(
        "agent at {endpoint} refused {rpc}: {status}{hint}",
        hint = if *.unimplemented { "; the agent predates certificate rotation: run `ferry agent upgrade`" } else { "" }
    )]
    Rpc {
        endpoint: String,
        rpc: &'static str,
        status: String,
        unimplemented: bool,
    },
    #[error(
        "agent at {endpoint} did not answer {rpc} within {timeout:?}; check it with `ferry agent status`"
    )]
    Timeout {
        endpoint: String,
        rpc: &'static str,
        timeout: Duration,
    },
    #[error("agent at {endpoint} reported an unreadable certificate: {source}")]
    Cert {
        endpoint: String,
        source: ferry_shared::pki::CertInfoError,
    },
}

/// What an agent serves: its certificate, CA bundle and revocation state.
#[derive(Debug, Clone)]
pub struct AgentTrust {
    pub cert: CertInfo,
    pub cas: Vec<CertInfo>,
    pub revoked_generation: u64,
    pub revoked_count: u32,
}

/// Trust calls on a connected agent.
pub struct TrustClient {
    endpoint: String,
    inner: PbClient<tonic::transport::Channel>,
}

impl TrustClient {
    pub fn new(agent: &AgentClient) -> Self {
        Self {
            endpoint: agent.endpoint().to_string(),
            inner: PbClient::new(agent.channel()),
        }
    }

    async fn call(
        &self,
        rpc: &'static str,
        f: impl Future<Output = Result<tonic::Response<pb::TrustStatus>, tonic::Status>>,
    ) -> Result<AgentTrust, TrustError> {
        let st = match tokio::time::timeout(TRUST_TIMEOUT, f).await {
            Err(_) => {
                return Err(TrustError::Timeout {
                    endpoint: self.endpoint.clone(),
                    rpc,
                    timeout: TRUST_TIMEOUT,
                });
            }
            Ok(Err(s)) => {
                return Err(TrustError::Rpc {
                    endpoint: self.endpoint.clone(),
                    rpc,
                    status: format!("{:?}: {}", s.code(), s.message()),
                    unimplemented: s.code() == tonic::Code::Unimplemented,
                });
            }
            Ok(Ok(r)) => r.into_inner(),
        };
        let cert_err = |source| TrustError::Cert {
            endpoint: self.endpoint.clone(),
            source,
        };
        Ok(AgentTrust {
            cert: CertInfo::from_pem(&st.cert_pem, "the agent certificate").map_err(cert_err)?,
            cas: CertInfo::all_from_pem(&st.ca_pem, "the agent's CA bundle").map_err(cert_err)?,
            revoked_generation: st.revoked_generation,
            revoked_count: st.revoked_count,
        })
    }

    pub async fn get(&self) -> Result<AgentTrust, TrustError> {
        let mut c = self.inner.clone();
        self.call("GetTrust", c.get_trust(pb::GetTrustRequest {}))
            .await
    }

    pub async fn set_revoked(&self, list: &RevokedList) -> Result<AgentTrust, TrustError> {
        let mut c = self.inner.clone();
        let req = pb::SetRevokedRequest {
            generation: list.generation,
            serials: list.serials(),
        };
        self.call("SetRevoked", c.set_revoked(req)).await
    }

    /// Installs `ca_pem` and, when given, `leaf` as the agent's identity.
    pub async fn install_tls(
        &self,
        ca_pem: &str,
        leaf: Option<&Issued>,
    ) -> Result<AgentTrust, TrustError> {
        let mut c = self.inner.clone();
        let req = pb::InstallTlsRequest {
            ca_pem: ca_pem.to_string(),
            cert_pem: leaf.map(|l| l.cert_pem.clone()).unwrap_or_default(),
            key_pem: leaf
                .map(|l| l.key_pem.expose().as_bytes().to_vec())
                .unwrap_or_default(),
        };
        self.call("InstallTls", c.install_tls(req)).await
    }
}
