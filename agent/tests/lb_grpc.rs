//! The `ferry.lb.v1.LoadBalancer` service over the agent's mTLS endpoint,
//! without root: status of an unconfigured node, invalid specs refused at
//! the edge, the IPVS backend refused with a clear reason on this kernel.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::start_agent;
use ferry_proto::lb_pb as pb;
use ferry_proto::lb_pb::load_balancer_client::LoadBalancerClient;
use tonic::Code;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

async fn client(agent: &common::TestAgent) -> LoadBalancerClient<Channel> {
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(agent.pki.ca.cert_pem()))
        .identity(Identity::from_pem(
            &agent.pki.client.cert_pem,
            agent.pki.client.key_pem.expose(),
        ))
        .domain_name("127.0.0.1");
    let channel = Endpoint::from_shared(format!("https://{}", agent.addr))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .unwrap();
    LoadBalancerClient::new(channel)
}

fn spec(backend: &str, rs: &[&str]) -> pb::SetLoadBalancerRequest {
    pb::SetLoadBalancerRequest {
        spec: Some(pb::LoadBalancerSpec {
            vip: "10.103.97.2:6443".into(),
            real_servers: rs
                .iter()
                .map(|a| pb::RealServer {
                    addr: (*a).into(),
                    weight: 1,
                })
                .collect(),
            scheduler: "rr".into(),
            health: Some(pb::HealthCheck {
                path: "/healthz".into(),
                interval_ms: 1000,
                timeout_ms: 500,
                healthy_threshold: 1,
                unhealthy_threshold: 1,
                ok_statuses: vec![],
            }),
            backend: backend.into(),
            version: 1,
        }),
        operation_id: "op".into(),
    }
}

#[tokio::test]
async fn unconfigured_status_invalid_specs_and_ipvs_refusal() {
    let dir = tempfile::tempdir().unwrap();
    let lb_dir = dir.path().join("lb");
    let agent = start_agent(|c| c.lb_dir = Some(lb_dir.clone())).await;
    let mut c = client(&agent).await;

    let st = c
        .get_load_balancer(pb::GetLoadBalancerRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(!st.configured);

    let e = c.set_load_balancer(spec("auto", &[])).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e}");
    let e = c
        .set_load_balancer(spec("auto", &["10.0.0.2:6443", "10.0.0.2:6443"]))
        .await
        .unwrap_err();
    assert!(e.message().contains("listed twice"), "{e}");
    let e = c
        .set_load_balancer(spec("fastest", &["10.0.0.2:6443"]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e}");
    let e = c
        .set_load_balancer(pb::SetLoadBalancerRequest::default())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e}");

    // Without IP_VS in the kernel, `ipvs` is refused before anything is
    // persisted (where IPVS exists, the VM test covers it).
    if ferry_agent::lb::ipvs::IpvsBackend::detect().is_ok() {
        eprintln!("IPVS present on this kernel: refusal not checked here");
        return;
    }
    let e = c
        .set_load_balancer(spec("ipvs", &["10.0.0.2:6443"]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e}");
    assert!(e.message().contains("IPVS"), "{e}");
    assert!(!lb_dir.join("state.json").exists(), "nothing persisted");
}
