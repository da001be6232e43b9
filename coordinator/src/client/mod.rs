//! mTLS gRPC client for agents. Agents are verified through the cluster's
//! agent CA and addressed by IP (the IP is a SAN of every agent cert).
//! Invariant: there is no plaintext code path.

pub mod convert;

use std::net::IpAddr;
use std::time::Duration;

use ferry_proto::pb;
use ferry_proto::pb::agent_client::AgentClient as PbClient;
use ferry_shared::{ExecSpec, Facts};
use futures::{Stream, StreamExt};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

pub use convert::ExecItem;

use crate::state::AgentPki;

/// How long an exec/events stream may stay silent (agents send heartbeats
/// every few seconds) before the coordinator declares the agent gone.
pub const DEFAULT_STREAM_IDLE: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("agent at {endpoint}: invalid endpoint: {source}")]
    Endpoint {
        endpoint: String,
        source: tonic::transport::Error,
    },
    #[error(
        "cannot reach the agent at {endpoint} over mTLS ({detail}); check that it runs (`ferry agent status`) or reinstall it (`ferry agent install`)"
    )]
    Connect { endpoint: String, detail: String },
    #[error("agent at {endpoint} refused {rpc}: {status}")]
    Rpc {
        endpoint: String,
        rpc: &'static str,
        status: String,
    },
    #[error("agent at {endpoint} went silent for {idle:?} during {rpc}; the node may be down")]
    Idle {
        endpoint: String,
        rpc: &'static str,
        idle: Duration,
    },
    #[error("agent at {endpoint}: {source}")]
    Convert {
        endpoint: String,
        source: convert::ConvertError,
    },
}

/// TLS material to reach agents.
#[derive(Clone)]
pub struct ClientTls {
    ca: Certificate,
    identity: Identity,
}

impl ClientTls {
    /// The coordinator's identity; agents verified against the trust
    /// bundle (both CAs during a CA rotation).
    pub fn from_pki(pki: &AgentPki) -> Self {
        Self {
            ca: Certificate::from_pem(pki.trust_bundle()),
            identity: Identity::from_pem(&pki.client.cert_pem, pki.client.key_pem.expose()),
        }
    }

    pub fn from_pem(ca: &str, cert: &str, key: &str) -> Self {
        Self {
            ca: Certificate::from_pem(ca),
            identity: Identity::from_pem(cert, key),
        }
    }
}

fn detail(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// A connected agent.
#[derive(Clone)]
pub struct AgentClient {
    endpoint: String,
    channel: Channel,
    inner: PbClient<Channel>,
    idle: Duration,
}

impl AgentClient {
    pub async fn connect(
        ip: IpAddr,
        port: u16,
        tls: &ClientTls,
        timeout: Duration,
    ) -> Result<Self, ClientError> {
        let endpoint = match ip {
            IpAddr::V4(v4) => format!("{v4}:{port}"),
            IpAddr::V6(v6) => format!("[{v6}]:{port}"),
        };
        let tls_cfg = ClientTlsConfig::new()
            .ca_certificate(tls.ca.clone())
            .identity(tls.identity.clone())
            .domain_name(ip.to_string());
        let ep = Endpoint::from_shared(format!("https://{endpoint}"))
            .and_then(|e| e.tls_config(tls_cfg))
            .map_err(|source| ClientError::Endpoint {
                endpoint: endpoint.clone(),
                source,
            })?
            .connect_timeout(timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(20))
            .keep_alive_while_idle(true);
        let channel = tokio::time::timeout(timeout, ep.connect())
            .await
            .map_err(|_| ClientError::Connect {
                endpoint: endpoint.clone(),
                detail: format!("timed out after {timeout:?}"),
            })?
            .map_err(|e| ClientError::Connect {
                endpoint: endpoint.clone(),
                detail: detail(&e),
            })?;
        Ok(Self {
            endpoint,
            channel: channel.clone(),
            inner: PbClient::new(channel).max_decoding_message_size(8 << 20),
            idle: DEFAULT_STREAM_IDLE,
        })
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The mTLS channel, for the agent's other services (transfer).
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    pub fn with_stream_idle(mut self, idle: Duration) -> Self {
        self.idle = idle;
        self
    }

    fn rpc_err(&self, rpc: &'static str, s: tonic::Status) -> ClientError {
        let status = if s.message().is_empty() {
            format!("{:?}", s.code())
        } else {
            format!("{:?}: {}", s.code(), s.message())
        };
        ClientError::Rpc {
            endpoint: self.endpoint.clone(),
            rpc,
            status,
        }
    }

    pub async fn facts(&self) -> Result<Facts, ClientError> {
        let mut c = self.inner.clone();
        let r = tokio::time::timeout(self.idle, c.facts(pb::FactsRequest {}))
            .await
            .map_err(|_| ClientError::Idle {
                endpoint: self.endpoint.clone(),
                rpc: "Facts",
                idle: self.idle,
            })?
            .map_err(|s| self.rpc_err("Facts", s))?;
        Ok(convert::facts(r.into_inner()))
    }

    /// Starts `spec` and returns its items. Heartbeats are passed through so
    /// callers can show liveness; a stream silent for longer than the idle
    /// limit yields [`ClientError::Idle`] and ends. Dropping the stream
    /// cancels the RPC, which makes the agent kill the process group.
    pub async fn exec(
        &self,
        spec: &ExecSpec,
    ) -> Result<impl Stream<Item = Result<ExecItem, ClientError>> + Send + use<>, ClientError> {
        let mut c = self.inner.clone();
        let resp = c
            .exec(convert::exec_request(spec))
            .await
            .map_err(|s| self.rpc_err("Exec", s))?;
        let me = self.clone();
        let stream = tokio_stream::StreamExt::timeout(resp.into_inner(), self.idle);
        Ok(Box::pin(stream).map(move |item| match item {
            Err(_) => Err(ClientError::Idle {
                endpoint: me.endpoint.clone(),
                rpc: "Exec",
                idle: me.idle,
            }),
            Ok(Err(s)) => Err(me.rpc_err("Exec", s)),
            Ok(Ok(frame)) => convert::exec_item(frame).map_err(|source| ClientError::Convert {
                endpoint: me.endpoint.clone(),
                source,
            }),
        }))
    }

    /// The agent's event stream from `since_seq` on (heartbeats filtered).
    pub async fn events(
        &self,
        since_seq: u64,
    ) -> Result<
        impl Stream<Item = Result<ferry_shared::Event, ClientError>> + Send + use<>,
        ClientError,
    > {
        let mut c = self.inner.clone();
        let resp = c
            .events(pb::EventsRequest { since_seq })
            .await
            .map_err(|s| self.rpc_err("Events", s))?;
        let me = self.clone();
        let stream = tokio_stream::StreamExt::timeout(resp.into_inner(), self.idle);
        Ok(Box::pin(stream).filter_map(move |item| {
            let me = me.clone();
            async move {
                match item {
                    Err(_) => Some(Err(ClientError::Idle {
                        endpoint: me.endpoint.clone(),
                        rpc: "Events",
                        idle: me.idle,
                    })),
                    Ok(Err(s)) => Some(Err(me.rpc_err("Events", s))),
                    Ok(Ok(pb::EventFrame {
                        frame: Some(pb::event_frame::Frame::Event(e)),
                    })) => Some(convert::event(e).map_err(|source| ClientError::Convert {
                        endpoint: me.endpoint.clone(),
                        source,
                    })),
                    Ok(Ok(_)) => None,
                }
            }
        }))
    }
}
