//! The coordinator side of the agents' VIP load balancer
//! (`ferry.lb.v1.LoadBalancer`): building the desired state from flags,
//! the client calls, and the status shape `ferry lb status` prints.

pub mod convert;

use std::time::Duration;

use ferry_proto::lb_pb as pb;
use ferry_proto::lb_pb::load_balancer_client::LoadBalancerClient;
use ferry_shared::lb::LbSpec;
use serde::Serialize;

use crate::client::AgentClient;

#[derive(Debug, thiserror::Error)]
pub enum LbClientError {
    #[error("agent at {endpoint} refused {rpc}: {status}")]
    Rpc {
        endpoint: String,
        rpc: &'static str,
        status: String,
    },
    #[error("agent at {endpoint} did not answer {rpc} within {timeout:?}")]
    Timeout {
        endpoint: String,
        rpc: &'static str,
        timeout: Duration,
    },
}

/// What one agent reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeLbStatus {
    pub configured: bool,
    pub backend: String,
    pub vip: String,
    pub scheduler: String,
    pub version: u64,
    pub members: Vec<MemberStatus>,
    pub last_error: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberStatus {
    pub addr: String,
    pub weight: u32,
    pub state: String,
    /// Weight in the kernel rules; None = not in the rules.
    pub rule_weight: Option<u32>,
    pub last_check: String,
    pub consecutive_successes: u32,
    pub consecutive_failures: u32,
}

/// The result of a `SetLoadBalancer`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetReply {
    pub changed: bool,
    pub version: u64,
    pub backend: String,
}

/// Load-balancer calls on a connected agent.
pub struct LbClient {
    endpoint: String,
    inner: LoadBalancerClient<tonic::transport::Channel>,
    timeout: Duration,
}

impl LbClient {
    pub fn new(agent: &AgentClient, timeout: Duration) -> Self {
        Self {
            endpoint: agent.endpoint().to_string(),
            inner: LoadBalancerClient::new(agent.channel()),
            timeout,
        }
    }

    async fn call<T>(
        &self,
        rpc: &'static str,
        f: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, LbClientError> {
        match tokio::time::timeout(self.timeout, f).await {
            Err(_) => Err(LbClientError::Timeout {
                endpoint: self.endpoint.clone(),
                rpc,
                timeout: self.timeout,
            }),
            Ok(Err(s)) => Err(LbClientError::Rpc {
                endpoint: self.endpoint.clone(),
                rpc,
                status: format!("{:?}: {}", s.code(), s.message()),
            }),
            Ok(Ok(r)) => Ok(r.into_inner()),
        }
    }

    pub async fn set(&self, spec: &LbSpec, op: &str) -> Result<SetReply, LbClientError> {
        let mut c = self.inner.clone();
        let req = pb::SetLoadBalancerRequest {
            spec: Some(convert::spec(spec)),
            operation_id: op.to_string(),
        };
        let r = self
            .call("SetLoadBalancer", c.set_load_balancer(req))
            .await?;
        Ok(SetReply {
            changed: r.changed,
            version: r.version,
            backend: r.backend,
        })
    }

    pub async fn get(&self) -> Result<NodeLbStatus, LbClientError> {
        let mut c = self.inner.clone();
        let r = self
            .call(
                "GetLoadBalancer",
                c.get_load_balancer(pb::GetLoadBalancerRequest {}),
            )
            .await?;
        Ok(convert::status(r))
    }

    pub async fn delete(&self, op: &str) -> Result<bool, LbClientError> {
        let mut c = self.inner.clone();
        let req = pb::DeleteLoadBalancerRequest {
            operation_id: op.to_string(),
        };
        let r = self
            .call("DeleteLoadBalancer", c.delete_load_balancer(req))
            .await?;
        Ok(r.deleted)
    }
}
