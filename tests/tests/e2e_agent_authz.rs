//! Agent authorization on the testbed (issue 15, done-means 2). A gRPC
//! client holding only a given set of TLS files calls the agents from the
//! bastion (this test binary, run in the bastion's network namespace), the
//! way someone with stolen files would. After `ferry run` 1 master + 2
//! workers:
//! - node2's TLS files copied to the bastion cannot call Exec (nor Facts,
//!   Plan, Commit, LB Set, Trust) on master0, while the coordinator's can;
//! - after `ferry delete` of node3 (node2's agent down meanwhile: named
//!   with what to do; a later `apply` through its agent gives it the list),
//!   node3's certificate is refused as
//!   revoked by master0 and node2 (before, its Push only lacked a planned
//!   transfer), also by node2 enrolled again over SSH (`agent install
//!   --force` uploads the list with its TLS files);
//! - after `ferry agent rotate-certs`, the old coordinator certificate is
//!   refused as revoked by every agent and ferry keeps working (the removed
//!   node3 gets no new certificate); after `rotate-certs --ca`, a
//!   certificate of the old CA no longer connects and the nodes hold only
//!   the new CA.
//! - In between, installing node3's agent again (`ferry add` does; the
//!   binary is current, nothing is uploaded) gives it a new certificate
//!   over mTLS: a member's again.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

mod common;

use std::path::{Path, PathBuf};

use common::{Bastion, stderr, stdout};
use ferry_tests::testbed::{Testbed, TestbedConfig};

const TLS: &str = "/var/lib/ferry/agent/tls";
const AGENT: &str = "/var/lib/ferry/agent/ferry-agent";
const PIDFILE: &str = "/var/lib/ferry/agent/agent.pid";
const LOGFILE: &str = "/var/lib/ferry/agent/agent.log";

/// CA bundle, certificate and key of a client.
struct Creds {
    dir: tempfile::TempDir,
}

impl Creds {
    fn new(ca: &str, cert: &str, key: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in [("ca.crt", ca), ("cert.pem", cert), ("key.pem", key)] {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap()
    }

    /// A node's own TLS files, as root on that node could copy them.
    fn of_node(tb: &Testbed, i: usize) -> Self {
        let cat = |f: &str| tb.exec_ok(i, &["cat", &format!("{TLS}/{f}")]).unwrap();
        Self::new(&cat("ca.crt"), &cat("agent.crt"), &cat("agent.key"))
    }

    /// The bastion's coordinator files (a copy: rotation replaces them).
    fn of_coordinator(b: &Bastion) -> Self {
        let pki = b.home().join(".ferry/default/pki");
        let read = |f: &str| std::fs::read_to_string(pki.join(f)).unwrap();
        Self::new(
            &read("agent-ca.crt"),
            &read("coordinator.crt"),
            &read("coordinator.key"),
        )
    }

    /// The same identity, verifying agents with `other`'s CA bundle.
    fn trusting(&self, other: &Creds) -> Self {
        Self::new(
            &other.read("ca.crt"),
            &self.read("cert.pem"),
            &self.read("key.pem"),
        )
    }
}

/// What a call answered: the gRPC status code and message, or why no call
/// was made (a refused handshake).
type Answer = Result<(i32, String), String>;

/// Calls `rpc` on the agent at `ip` as `creds` from the bastion's network
/// namespace: this test binary runs its `probe_child` there.
fn probe(tb: &Testbed, ip: &str, creds: &Creds, rpc: &str) -> Answer {
    let out = tb
        .bastion_command(std::env::current_exe().unwrap())
        .args(["--exact", "probe_child", "--nocapture", "--test-threads=1"])
        .env(
            "FERRY_PROBE",
            format!("{ip} {rpc} {}", creds.dir.path().display()),
        )
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = text
        .lines()
        .find_map(|l| l.split_once("PROBE-RESULT ").map(|(_, r)| r))
        .ok_or_else(|| format!("no result: {text}{}", String::from_utf8_lossy(&out.stderr)))?;
    let (code, msg) = line.split_once(' ').unwrap_or((line, ""));
    match code {
        "connect" => Err(format!("connect: {msg}")),
        c => Ok((c.parse().unwrap(), msg.to_string())),
    }
}

/// The client the probe runs; does nothing unless `FERRY_PROBE` names a
/// call (`<ip> <rpc> <creds dir>`).
#[test]
fn probe_child() {
    let Ok(spec) = std::env::var("FERRY_PROBE") else {
        return;
    };
    let parts: Vec<&str> = spec.splitn(3, ' ').collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let line = rt.block_on(call(parts[0], parts[1], Path::new(parts[2])));
    println!("\nPROBE-RESULT {}", line.replace('\n', " "));
}

async fn call(ip: &str, rpc: &str, dir: &Path) -> String {
    use ferry_proto::{lb_pb, pb, transfer_pb as tpb};
    use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read("ca.crt")))
        .identity(Identity::from_pem(read("cert.pem"), read("key.pem")))
        .domain_name(ip);
    let ep = Endpoint::from_shared(format!("https://{ip}:7443"))
        .unwrap()
        .tls_config(tls)
        .unwrap();
    let ch = match ep.connect().await {
        Ok(ch) => ch,
        Err(e) => return format!("connect {e:?}"),
    };
    let mut agent = pb::agent_client::AgentClient::new(ch.clone());
    let mut transfer = tpb::transfer_client::TransferClient::new(ch.clone());
    let res: Result<(), tonic::Status> = match rpc {
        "facts" => agent.facts(pb::FactsRequest {}).await.map(drop),
        "exec" => {
            let req = pb::ExecRequest {
                program: Some(pb::exec_request::Program::Argv(pb::Argv {
                    args: vec!["id".into()],
                })),
                phase: "exec".into(),
                ..Default::default()
            };
            match agent.exec(req).await {
                Ok(r) => r.into_inner().message().await.map(drop),
                Err(s) => Err(s),
            }
        }
        "plan" => transfer
            .plan(futures::stream::iter(Vec::<tpb::PlanRequest>::new()))
            .await
            .map(drop),
        "commit" => transfer
            .commit(tpb::CommitRequest::default())
            .await
            .map(drop),
        "push" => {
            let frame = tpb::PushFrame {
                frame: Some(tpb::push_frame::Frame::TransferId("x".into())),
            };
            match transfer.push(futures::stream::iter(vec![frame])).await {
                Ok(r) => r.into_inner().message().await.map(drop),
                Err(s) => Err(s),
            }
        }
        "lb-set" => lb_pb::load_balancer_client::LoadBalancerClient::new(ch)
            .set_load_balancer(lb_pb::SetLoadBalancerRequest::default())
            .await
            .map(drop),
        "set-revoked" => pb::trust_client::TrustClient::new(ch)
            .set_revoked(pb::SetRevokedRequest::default())
            .await
            .map(drop),
        other => panic!("unknown probe {other}"),
    };
    match res {
        Ok(()) => "0".to_string(),
        Err(s) => format!("{} {}", s.code() as i32, s.message()),
    }
}

fn assert_refused(a: Answer, want: &str, what: &str) {
    let (code, msg) = a.unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(
        code, 7,
        "{what}: PermissionDenied expected, got {code} {msg}"
    );
    assert!(msg.contains(want), "{what}: `{want}` not in `{msg}`");
}

fn assert_ok(a: Answer, what: &str) {
    assert_eq!(a, Ok((0, String::new())), "{what}");
}

#[test]
fn stolen_removed_and_rotated_certificates_are_refused() {
    let tb = Testbed::up(TestbedConfig::nodes(3)).expect("testbed up");
    let b = Bastion::new(&tb);
    let work = tempfile::tempdir().unwrap();
    let ip = common::run_fixture_cluster(&tb, &b, work.path());
    let pw = tb.password("root").unwrap();

    // The coordinator's own files work through the probe.
    let coord = Creds::of_coordinator(&b);
    assert_ok(probe(&tb, &ip[0], &coord, "facts"), "coordinator Facts");

    // 1. node2's TLS files on the bastion: no coordinator RPC on master0.
    let node2 = Creds::of_node(&tb, 1);
    let only = "for the ferry coordinator only";
    for rpc in ["exec", "facts", "plan", "commit", "lb-set", "set-revoked"] {
        assert_refused(probe(&tb, &ip[0], &node2, rpc), only, rpc);
    }
    // A relay push is the one call open to it, into planned transfers only.
    let planned = "planned on this node";
    assert_refused(probe(&tb, &ip[0], &node2, "push"), planned, "push");

    // 2. ferry delete node3 while node2's agent is down: master0 refuses
    // node3's certificate at once; node2 is named with what to do, and
    // gets the list as soon as a later command reaches its agent.
    let node3 = Creds::of_node(&tb, 2);
    assert_refused(probe(&tb, &ip[0], &node3, "push"), planned, "push");
    tb.exec_ok(1, &[AGENT, "stop", "--pidfile", PIDFILE])
        .unwrap();
    let out = b.ferry(&["delete", "--nodes", &ip[2]]);
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains(&format!("{}: the revocation list", ip[1])) && text.contains("next:"),
        "{text}"
    );
    for rpc in ["push", "facts"] {
        let what = format!("node3's {rpc} to {}", ip[0]);
        assert_refused(probe(&tb, &ip[0], &node3, rpc), "revoked", &what);
    }
    // node2's agent comes back as its supervisor would start it: it still
    // trusts node3, until a plain apply reaches it through the agent.
    let restart = format!(
        "{AGENT} daemon --pidfile {PIDFILE} --log-file {LOGFILE} -- serve --listen 0.0.0.0:7443 --tls-dir {TLS} --node-name {} --supervisor daemon",
        ip[1]
    );
    let argv: Vec<&str> = restart.split_whitespace().collect();
    tb.exec_ok(1, &argv).unwrap();
    let end = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while probe(&tb, &ip[1], &coord, "facts") != Ok((0, String::new())) {
        assert!(
            std::time::Instant::now() < end,
            "node2's agent did not come back"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let stale = "node3 to node2 before the list reached it";
    assert_refused(probe(&tb, &ip[1], &node3, "push"), planned, stale);
    let cf = work.path().join("Clusterfile");
    std::fs::copy(b.home().join(".ferry/default/Clusterfile"), &cf).unwrap();
    let (out, ev) = b.ferry_json(&["apply", "-f", cf.to_str().unwrap()]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let reached = ev
        .iter()
        .find(|e| e["node"] == ip[1].as_str() && e["phase"] == "connect" && e["kind"] == "finished")
        .expect("node2 reached");
    assert_eq!(
        reached["counters"]["ssh"], 0,
        "through its agent: {reached}"
    );
    for rpc in ["push", "facts"] {
        let what = format!("node3's {rpc} to {} after apply", ip[1]);
        assert_refused(probe(&tb, &ip[1], &node3, rpc), "revoked", &what);
    }
    // An agent enrolled again over SSH gets the list with its TLS files:
    // it refuses node3 from its first handshake on.
    let out = b.ferry(&["agent", "install", "--force", "--nodes", &ip[1], "-p", pw]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let list = tb
        .exec_ok(1, &["cat", &format!("{TLS}/revoked.json")])
        .unwrap();
    let serial = |pem: &str| {
        ferry_shared::pki::CertInfo::from_pem(pem, "c")
            .unwrap()
            .serial
    };
    assert!(list.contains(&serial(&node3.read("cert.pem"))), "{list}");
    let what = "node3 to a re-enrolled node2";
    assert_refused(probe(&tb, &ip[1], &node3, "push"), "revoked", what);

    // 3. rotate-certs: the old coordinator certificate is refused everywhere.
    let t = std::time::Instant::now();
    let out = b.ferry(&["agent", "rotate-certs"]);
    println!("figure: rotate-certs, 2 members: {:?}", t.elapsed());
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    for i in [0, 1] {
        let what = format!("old coordinator on {}", ip[i]);
        assert_refused(probe(&tb, &ip[i], &coord, "facts"), "revoked", &what);
    }
    let new = Creds::of_coordinator(&b);
    assert_ok(probe(&tb, &ip[1], &new, "facts"), "new coordinator");
    // The removed node was not given a new certificate.
    assert!(stdout(&out).contains("skipped: its certificate is revoked"));
    let still = Creds::of_node(&tb, 2);
    assert_refused(
        probe(&tb, &ip[0], &still, "push"),
        "revoked",
        "node3 after rotation",
    );
    let out = b.ferry(&["exec", "--ips", &ip[0], "--", "true"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));

    // 4. Installing node3's agent again (as `ferry add` does first) makes
    // it a member again, with a new certificate.
    let (out, ev) = b.ferry_json(&["agent", "install", "--nodes", &ip[2], "-p", pw]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let up = common::find(&ev, &ip[2], "upload", "finished");
    assert_eq!(up[0]["counters"]["uploaded_bytes"], 0, "over mTLS, not SSH");
    let back = Creds::of_node(&tb, 2);
    assert_ne!(back.read("cert.pem"), still.read("cert.pem"));
    assert_refused(probe(&tb, &ip[0], &back, "push"), planned, "node3 re-added");

    // 5. rotate-certs --ca: the old CA's certificates no longer connect.
    let t = std::time::Instant::now();
    let out = b.ferry(&["agent", "rotate-certs", "--ca"]);
    println!("figure: rotate-certs --ca, 3 members: {:?}", t.elapsed());
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let newest = Creds::of_coordinator(&b);
    // TLS 1.3: the client may finish its side of the handshake before the
    // agent refuses its certificate; then the first call dies with the
    // connection (cancelled, unknown or unavailable: no answer of the agent).
    match probe(&tb, &ip[0], &new.trusting(&newest), "facts") {
        Err(e) => assert!(e.starts_with("connect"), "{e}"),
        Ok((code, msg)) => assert!([1, 2, 14].contains(&code), "{code} {msg}"),
    }
    assert_ok(
        probe(&tb, &ip[0], &newest, "facts"),
        "coordinator of the new CA",
    );
    let ca_on_node = tb.exec_ok(1, &["cat", &format!("{TLS}/ca.crt")]).unwrap();
    assert_eq!(
        ca_on_node,
        newest.read("ca.crt"),
        "node2 trusts only the new CA"
    );
    let out = b.ferry(&["exec", "--", "true"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
}
