//! Shared helpers: a fresh cluster PKI per test, the agent served
//! in-process on 127.0.0.1:0 with real mTLS, and clients with or without
//! the right certificates.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use ferry_agent::{AgentError, ServeConfig, TlsMaterial};
use ferry_proto::pb;
use ferry_proto::pb::agent_client::AgentClient;
use ferry_shared::Secret;
use ferry_shared::pki::{AgentCa, Issued};
use futures::StreamExt;
use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// Upper bound for anything a test waits for.
pub const DEADLINE: Duration = Duration::from_secs(30);

pub struct Pki {
    pub ca: AgentCa,
    pub agent: Issued,
    pub client: Issued,
}

pub fn pki() -> Pki {
    let now = OffsetDateTime::now_utc();
    let validity = time::Duration::days(1);
    let ca = AgentCa::generate("test", now, validity).unwrap();
    let agent = ca
        .issue_agent(
            "127.0.0.1",
            &["127.0.0.1".parse().unwrap()],
            &["localhost".to_string()],
            now,
            validity,
        )
        .unwrap();
    let client = ca.issue_coordinator(now, validity).unwrap();
    Pki { ca, agent, client }
}

impl Pki {
    /// The same CA and certificates (for a restarted agent).
    pub fn again(&self) -> Pki {
        Pki {
            ca: AgentCa::from_pem(self.ca.cert_pem(), &self.ca.key_pem()).unwrap(),
            agent: self.agent.clone(),
            client: self.client.clone(),
        }
    }

    /// Another node's certificate from the same CA.
    pub fn other_agent(&self, ip: &str) -> Issued {
        let now = OffsetDateTime::now_utc();
        self.ca
            .issue_agent(
                ip,
                &[ip.parse().unwrap()],
                &[],
                now,
                time::Duration::days(1),
            )
            .unwrap()
    }

    pub fn tls(&self) -> TlsMaterial {
        TlsMaterial::from_pem(
            self.ca.cert_pem(),
            self.agent.cert_pem.clone(),
            self.agent.key_pem.clone(),
            "test",
        )
        .unwrap()
    }

    /// Writes ca.crt, agent.crt, agent.key into `dir`.
    pub fn write_tls_dir(&self, dir: &Path) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("ca.crt"), self.ca.cert_pem()).unwrap();
        std::fs::write(dir.join("agent.crt"), &self.agent.cert_pem).unwrap();
        std::fs::write(dir.join("agent.key"), self.agent.key_pem.expose()).unwrap();
    }
}

pub struct TestAgent {
    pub addr: SocketAddr,
    pub pki: Pki,
    stop: Option<oneshot::Sender<()>>,
    pub task: Option<JoinHandle<Result<(), AgentError>>>,
}

/// Serves an agent in-process; `tweak` adjusts the config.
pub async fn start_agent(tweak: impl FnOnce(&mut ServeConfig)) -> TestAgent {
    start_agent_with(pki(), tweak).await
}

/// Serves an agent of `pki` in-process.
pub async fn start_agent_with(pki: Pki, tweak: impl FnOnce(&mut ServeConfig)) -> TestAgent {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = ServeConfig::new("test-node", pki.tls());
    config.heartbeat = Duration::from_millis(100);
    config.shutdown_grace = Duration::from_secs(5);
    tweak(&mut config);
    let (stop, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(ferry_agent::serve(config, listener, async {
        let _ = rx.await;
    }));
    TestAgent {
        addr,
        pki,
        stop: Some(stop),
        task: Some(task),
    }
}

/// A client for `addr` trusting `ca_pem`, presenting `identity` if given.
pub async fn connect(
    addr: SocketAddr,
    ca_pem: &str,
    identity: Option<(&str, &Secret)>,
) -> Result<AgentClient<Channel>, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca_pem))
        .domain_name("127.0.0.1");
    if let Some((cert, key)) = identity {
        tls = tls.identity(Identity::from_pem(cert, key.expose()));
    }
    let channel = Endpoint::from_shared(format!("https://{addr}"))?
        .tls_config(tls)?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await?;
    Ok(AgentClient::new(channel))
}

impl TestAgent {
    /// A client with the coordinator's certificate.
    pub async fn client(&self) -> AgentClient<Channel> {
        connect(
            self.addr,
            self.pki.ca.cert_pem(),
            Some((&self.pki.client.cert_pem, &self.pki.client.key_pem)),
        )
        .await
        .unwrap()
    }

    /// Fires the shutdown future; `serve` should then return.
    pub fn trigger_shutdown(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }

    pub async fn shutdown(mut self) -> Result<(), AgentError> {
        self.trigger_shutdown();
        let task = self.task.take().unwrap();
        tokio::time::timeout(DEADLINE, task)
            .await
            .expect("serve did not return after shutdown")
            .unwrap()
    }
}

pub fn argv(args: &[&str]) -> pb::ExecRequest {
    pb::ExecRequest {
        program: Some(pb::exec_request::Program::Argv(pb::Argv {
            args: args.iter().map(|s| s.to_string()).collect(),
        })),
        operation_id: "op-test".to_string(),
        phase: "exec".to_string(),
        ..Default::default()
    }
}

#[derive(Debug, Default)]
pub struct Collected {
    pub pid: Option<u32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub heartbeats: usize,
    pub max_chunk: usize,
    pub exit: Option<pb::ExitStatus>,
    pub frames_after_exit: usize,
}

impl Collected {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    pub fn exit(&self) -> &pb::ExitStatus {
        self.exit.as_ref().expect("no exit frame")
    }
}

/// Runs `req` and collects the whole stream.
pub async fn run(client: &mut AgentClient<Channel>, req: pb::ExecRequest) -> Collected {
    let stream = client.exec(req).await.unwrap().into_inner();
    collect(stream).await
}

pub async fn collect(mut stream: tonic::Streaming<pb::ExecFrame>) -> Collected {
    use pb::exec_frame::Frame;
    let mut c = Collected::default();
    let fut = async {
        while let Some(frame) = stream.next().await {
            let frame = frame.unwrap().frame.expect("empty frame");
            if c.exit.is_some() {
                c.frames_after_exit += 1;
            }
            match frame {
                Frame::Started(s) => c.pid = Some(s.pid),
                Frame::Stdout(o) => {
                    c.max_chunk = c.max_chunk.max(o.data.len());
                    c.stdout.extend(o.data);
                }
                Frame::Stderr(o) => {
                    c.max_chunk = c.max_chunk.max(o.data.len());
                    c.stderr.extend(o.data);
                }
                Frame::Heartbeat(_) => c.heartbeats += 1,
                Frame::Exit(e) => c.exit = Some(e),
            }
        }
    };
    tokio::time::timeout(DEADLINE, fut)
        .await
        .expect("exec stream did not end");
    c
}

/// Whether `pid` still runs (zombies count as gone).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => false,
    }
}

/// Polls `cond` every 20 ms until it holds or `deadline` passes.
pub async fn poll_until(deadline: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + deadline;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A channel to `addr` trusting `ca_pem`, presenting `id`.
pub async fn channel(
    addr: SocketAddr,
    ca_pem: &str,
    id: &Issued,
) -> Result<Channel, tonic::transport::Error> {
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca_pem))
        .identity(Identity::from_pem(&id.cert_pem, id.key_pem.expose()))
        .domain_name("127.0.0.1");
    Endpoint::from_shared(format!("https://{addr}"))?
        .tls_config(tls)?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
}

/// A `ferry.transfer.v1` client of `a` with the coordinator's identity.
pub async fn transfer_client(
    a: &TestAgent,
) -> ferry_proto::transfer_pb::transfer_client::TransferClient<Channel> {
    let ch = channel(a.addr, a.pki.ca.cert_pem(), &a.pki.client)
        .await
        .unwrap();
    ferry_proto::transfer_pb::transfer_client::TransferClient::new(ch)
}

/// Plans transfer `id` on the agent at `addr` as `pki`'s coordinator (an
/// empty tree into `dest`), so relay predecessors may push into it.
pub async fn open_transfer(addr: SocketAddr, pki: &Pki, id: &str, dest: &Path) {
    use ferry_proto::transfer_pb as tpb;
    let header = tpb::PlanHeader {
        transfer_id: id.into(),
        destination: dest.display().to_string(),
        chunk_size: 4096,
        operation_id: "op".into(),
        ..Default::default()
    };
    let msgs = vec![tpb::PlanRequest {
        msg: Some(tpb::plan_request::Msg::Header(header)),
    }];
    let ch = channel(addr, pki.ca.cert_pem(), &pki.client).await.unwrap();
    ferry_proto::transfer_pb::transfer_client::TransferClient::new(ch)
        .plan(futures::stream::iter(msgs))
        .await
        .unwrap();
}
