//! Facts over mTLS, and clients the agent must refuse: a certificate from
//! a foreign CA, no certificate, plaintext.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::IpAddr;
use std::time::Duration;

use common::{connect, pki, start_agent};
use ferry_proto::pb;
use ferry_proto::pb::agent_client::AgentClient;
use tonic::transport::Endpoint;

/// sha256 of this test binary by an independent implementation.
fn sha256_of_this_exe() -> String {
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new("sha256sum")
        .arg(exe)
        .output()
        .unwrap();
    let s = String::from_utf8(out.stdout).unwrap();
    s.split_whitespace().next().unwrap().to_string()
}

#[tokio::test]
async fn facts_describe_this_host_and_agent() {
    let agent = start_agent(|c| c.supervisor = "daemon".into()).await;
    let mut c = agent.client().await;
    let f = c.facts(pb::FactsRequest {}).await.unwrap().into_inner();
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(f.hostname, hostname.trim());
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert_eq!(f.kernel, release.trim());
    assert_eq!(
        f.arch,
        ferry_shared::facts::kube_arch(std::env::consts::ARCH)
    );
    assert_eq!(f.node_name, "test-node");
    assert_eq!(f.supervisor, "daemon");
    assert_eq!(f.agent_version, env!("CARGO_PKG_VERSION"));
    assert_eq!(f.agent_pid, std::process::id());
    // The server runs in this test process: its executable is ours.
    assert_eq!(f.agent_sha256.len(), 64);
    assert_eq!(f.agent_sha256, sha256_of_this_exe());
    assert!(f.cpus >= 1);
    assert!(f.memory_bytes > 64 << 20, "{}", f.memory_bytes);
    let now = ferry_agent::events::unix_ms();
    assert!((now - f.unix_time_ms).abs() < 60_000);
    assert!(f.agent_uptime_ms < 600_000);
    for ip in &f.ip_addresses {
        let parsed: IpAddr = ip.parse().unwrap();
        assert!(!parsed.is_loopback(), "{ip}");
    }
    if std::path::Path::new("/etc/os-release").exists() {
        assert!(!f.os_id.is_empty());
    }
}

/// Either the handshake fails or the first RPC does; nothing succeeds.
async fn assert_refused(
    client: Result<AgentClient<tonic::transport::Channel>, tonic::transport::Error>,
) {
    let Ok(mut c) = client else {
        return;
    };
    let r = tokio::time::timeout(Duration::from_secs(10), c.facts(pb::FactsRequest {}))
        .await
        .expect("refused client hung");
    assert!(r.is_err(), "a client without a valid certificate got facts");
}

#[tokio::test]
async fn client_certificates_from_a_foreign_ca_are_refused() {
    let agent = start_agent(|_| {}).await;
    let foreign = pki();
    // Trusts the agent properly, but presents a certificate of another CA.
    let client = connect(
        agent.addr,
        agent.pki.ca.cert_pem(),
        Some((&foreign.client.cert_pem, &foreign.client.key_pem)),
    )
    .await;
    assert_refused(client).await;
    // The agent still serves legitimate clients.
    let mut ok = agent.client().await;
    assert!(ok.facts(pb::FactsRequest {}).await.is_ok());
}

#[tokio::test]
async fn clients_without_a_certificate_are_refused() {
    let agent = start_agent(|_| {}).await;
    let client = connect(agent.addr, agent.pki.ca.cert_pem(), None).await;
    assert_refused(client).await;
}

#[tokio::test]
async fn plaintext_is_never_served() {
    let agent = start_agent(|_| {}).await;
    let channel = Endpoint::from_shared(format!("http://{}", agent.addr))
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await;
    assert_refused(channel.map(AgentClient::new)).await;
}

#[tokio::test]
async fn bad_tls_material_fails_before_serving() {
    let p = pki();
    let e = ferry_agent::TlsMaterial::from_pem(
        p.ca.cert_pem(),
        "not a certificate",
        p.agent.key_pem.clone(),
        "/etc/ferry/tls",
    )
    .unwrap_err();
    assert!(e.to_string().contains("/etc/ferry/tls/agent.crt"), "{e}");
}
