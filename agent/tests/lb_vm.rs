//! Both load balancer backends on a kernel that has IPVS: a Debian
//! cloud-kernel VM (qemu, software emulation) runs this build's static
//! agent; the test drives its `ferry.lb.v1` service over mTLS like the
//! coordinator does and runs one conformance scenario per backend (IPVS,
//! then nftables), checking the kernel with the backend's own tool
//! (`ipvsadm -Ln`, `nft -j list table`) and with traffic to the VIP from
//! inside the VM (members are TLS health endpoints on the host, reached via
//! 10.0.2.2): add, idempotent re-sync, update (scheduler, weights, a member
//! leaves), health-driven weight-0 draining and recovery, state restored
//! after the agent is killed, deletion (rules, route, state), uninstall's
//! `ferry-agent lb-reset` with the agent stopped; then IPVS link mode.
//! Skipped with a SKIP line where qemu, busybox-static, ipvsadm or the
//! kernel package are unavailable. Prints `VM-MEASURE ...` figures.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod vm;

use std::collections::BTreeMap;
use std::net::SocketAddrV4;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use ferry_proto::lb_pb as pb;
use ferry_proto::lb_pb::load_balancer_client::LoadBalancerClient;
use ferry_proto::pb::agent_client::AgentClient;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

const VIP: &str = "10.103.97.2:6443";
const BOOT_LIMIT: Duration = Duration::from_secs(120);
const CHANGE_LIMIT: Duration = Duration::from_secs(30);

/// The backend under test; both run the same scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ipvs,
    Nftables,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Ipvs => "ipvs",
            Kind::Nftables => "nftables",
        }
    }
}

struct Clients {
    lb: LoadBalancerClient<Channel>,
    agent: AgentClient<Channel>,
}

async fn connect(vm: &vm::Vm, pki: &common::Pki) -> Option<Clients> {
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(pki.ca.cert_pem()))
        .identity(Identity::from_pem(
            &pki.client.cert_pem,
            pki.client.key_pem.expose(),
        ))
        .domain_name("127.0.0.1");
    let channel = Endpoint::from_shared(format!("https://{}", vm.agent))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(20))
        .connect()
        .await
        .ok()?;
    let mut agent = AgentClient::new(channel.clone());
    agent
        .facts(ferry_proto::pb::FactsRequest::default())
        .await
        .ok()?;
    Some(Clients {
        lb: LoadBalancerClient::new(channel),
        agent,
    })
}

fn spec(
    kind: Kind,
    members: &[(SocketAddrV4, u32)],
    scheduler: &str,
    version: u64,
) -> pb::SetLoadBalancerRequest {
    pb::SetLoadBalancerRequest {
        spec: Some(pb::LoadBalancerSpec {
            vip: VIP.into(),
            real_servers: members
                .iter()
                .map(|(a, w)| pb::RealServer {
                    addr: a.to_string(),
                    weight: *w,
                })
                .collect(),
            scheduler: scheduler.into(),
            health: Some(pb::HealthCheck {
                path: "/healthz".into(),
                interval_ms: 500,
                timeout_ms: 5000,
                healthy_threshold: 1,
                unhealthy_threshold: 1,
                ok_statuses: vec![],
            }),
            backend: kind.name().into(),
            version,
        }),
        operation_id: format!("vm-{version}"),
    }
}

async fn sh(c: &mut Clients, script: &str) -> String {
    let out = common::run(&mut c.agent, common::argv(&["sh", "-c", script])).await;
    format!("{}{}", out.stdout(), out.stderr())
}

async fn stdout(c: &mut Clients, script: &str) -> String {
    common::run(&mut c.agent, common::argv(&["sh", "-c", script]))
        .await
        .stdout()
}

type Members = BTreeMap<SocketAddrV4, u32>;

/// What the kernel holds for the VIP, read with the backend's own tool:
/// `ipvsadm -Ln`, or `nft -j list table ip ferry_lb` (parsed by the nft
/// backend's reader): (scheduler, member → effective weight).
async fn kernel(c: &mut Clients, kind: Kind) -> Option<(String, Members)> {
    match kind {
        Kind::Ipvs => {
            let out = sh(c, "ipvsadm -Ln").await;
            let mut sched = None;
            let mut members = BTreeMap::new();
            for l in out.lines() {
                let f: Vec<&str> = l.split_whitespace().collect();
                match f.as_slice() {
                    ["TCP", vip, s, ..] if *vip == VIP => sched = Some(s.to_string()),
                    ["->", addr, "Masq", w, ..] => {
                        members.insert(addr.parse().unwrap(), w.parse().unwrap());
                    }
                    _ => {}
                }
            }
            sched.map(|s| (s, members))
        }
        Kind::Nftables => {
            let out = stdout(c, "nft -j list table ip ferry_lb 2>/dev/null").await;
            if out.trim().is_empty() {
                return None;
            }
            let r = ferry_agent::lb::nft_rules::parse(&out).unwrap()?;
            assert_eq!(r.vip.to_string(), VIP);
            Some((r.scheduler.as_str().to_string(), r.members))
        }
    }
}

/// Polls the kernel until `pred` holds for the members.
async fn poll_kernel(
    c: &mut Clients,
    kind: Kind,
    what: &str,
    pred: impl Fn(&Members) -> bool,
) -> Duration {
    let t0 = Instant::now();
    loop {
        if kernel(c, kind).await.is_some_and(|(_, w)| pred(&w)) {
            return t0.elapsed();
        }
        assert!(
            t0.elapsed() < CHANGE_LIMIT,
            "{kind:?}: timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `n` connections to the VIP from inside the VM; answers per member.
async fn traffic(c: &mut Clients, n: usize) -> BTreeMap<String, usize> {
    let (ip, port) = VIP.split_once(':').unwrap();
    // The guest is software-emulated and CI runs other tests beside it: a
    // connection can take seconds there, so the timeout is generous (it is
    // a deadline, never a measure; the assertions count answers per member).
    let script =
        format!("for i in $(seq {n}); do echo hi | nc -w 10 {ip} {port} || echo FAIL; done");
    let mut m = BTreeMap::new();
    for l in sh(c, &script)
        .await
        .lines()
        .filter(|l| !l.trim().is_empty())
    {
        *m.entry(l.trim().to_string()).or_default() += 1;
    }
    m
}

/// Runs `script` detached (`setsid`, after the exec's reply is out) with
/// `PID` replaced by the agent's pid, then waits for the supervisor loop's
/// next agent and returns clients to it once its load balancer is
/// `configured` (restored) or not.
async fn detached_then_new_agent(
    c: &mut Clients,
    vm: &vm::Vm,
    pki: &common::Pki,
    script: &str,
    configured: bool,
) -> (Clients, Duration) {
    let pid = sh(c, "pidof ferry-agent").await.trim().to_string();
    let script = script.replace("PID", &pid);
    sh(
        c,
        &format!("setsid sh -c 'sleep 0.5; {script}' </dev/null >/dev/null 2>&1 &"),
    )
    .await;
    vm::until(BOOT_LIMIT, "the next agent", || async {
        let mut c = connect(vm, pki).await?;
        let facts = c
            .agent
            .facts(ferry_proto::pb::FactsRequest::default())
            .await
            .ok()?;
        if facts.into_inner().agent_pid.to_string() == pid {
            return None;
        }
        let st =
            c.lb.get_load_balancer(pb::GetLoadBalancerRequest {})
                .await
                .ok()?;
        // The restarted agent restores asynchronously: wait for it.
        (st.into_inner().configured == configured).then_some(c)
    })
    .await
}

fn route_is_ours(route: &str) -> bool {
    route.contains("dev eth0") && route.contains("src 10.0.2.15")
}

/// The conformance scenario, the same for both backends. Starts and ends
/// with an unconfigured agent; returns the clients of the last agent.
async fn conformance(
    kind: Kind,
    mut c: Clients,
    vm: &vm::Vm,
    pki: &common::Pki,
    m: &[vm::Member; 3],
) -> Clients {
    let k = kind.name();
    // Add: three members, rr.
    let all: Vec<_> = m.iter().map(|x| (x.addr(), 1)).collect();
    let r =
        c.lb.set_load_balancer(spec(kind, &all, "rr", 1))
            .await
            .unwrap()
            .into_inner();
    assert!(r.changed);
    assert_eq!(r.backend, k);
    let (sched, members) = kernel(&mut c, kind).await.expect("rules in the kernel");
    assert_eq!(sched, "rr");
    assert_eq!(members, all.iter().copied().collect());
    let route = sh(&mut c, "ip route show 10.103.97.2/32").await;
    assert!(route_is_ours(&route), "{route}");
    let counts = traffic(&mut c, 9).await;
    println!("VM-MEASURE {k} rr traffic {counts:?}");
    for x in m {
        assert_eq!(
            counts.get(&x.name),
            Some(&3),
            "{k}: rr spreads evenly: {counts:?}"
        );
    }

    // Idempotent re-sync: a newer version of the same state changes nothing.
    let r =
        c.lb.set_load_balancer(spec(kind, &all, "rr", 2))
            .await
            .unwrap()
            .into_inner();
    assert!(!r.changed);
    assert_eq!(
        kernel(&mut c, kind).await.unwrap().1,
        all.iter().copied().collect()
    );

    // Update: wrr 3:1, m3 leaves.
    let two = [(m[0].addr(), 3), (m[1].addr(), 1)];
    let want: Members = two.iter().copied().collect();
    let t = Instant::now();
    c.lb.set_load_balancer(spec(kind, &two, "wrr", 3))
        .await
        .unwrap();
    println!("VM-MEASURE {k} update_ms={}", t.elapsed().as_millis());
    assert_eq!(
        kernel(&mut c, kind).await.unwrap(),
        ("wrr".to_string(), want.clone())
    );
    let counts = traffic(&mut c, 8).await;
    assert_eq!(
        (counts.get("m1"), counts.get("m2")),
        (Some(&6), Some(&2)),
        "{k}: {counts:?}"
    );

    // m2 fails its health check: weight 0 (draining, then removed), no new
    // connection reaches it; healthy again: back with its weight.
    m[1].status.store(503, Ordering::SeqCst);
    let m2 = m[1].addr();
    let drained = poll_kernel(&mut c, kind, "m2 drained", |w| {
        w.get(&m2).copied().unwrap_or(0) == 0
    })
    .await;
    println!(
        "VM-MEASURE {k} unhealthy_to_drained_ms={} (interval 500 ms)",
        drained.as_millis()
    );
    let before = m[1].traffic.load(Ordering::SeqCst);
    let counts = traffic(&mut c, 4).await;
    assert_eq!(counts.get("m1"), Some(&4), "{k}: {counts:?}");
    assert_eq!(m[1].traffic.load(Ordering::SeqCst), before);
    m[1].status.store(200, Ordering::SeqCst);
    poll_kernel(&mut c, kind, "m2 back", |w| *w == want).await;

    // The agent dies (SIGKILL): the rules stay; the restarted agent
    // restores the persisted state.
    let (mut c, restart) = detached_then_new_agent(&mut c, vm, pki, "kill -9 PID", true).await;
    println!(
        "VM-MEASURE {k} agent_restart_restored_ms={}",
        restart.as_millis()
    );
    let st =
        c.lb.get_load_balancer(pb::GetLoadBalancerRequest {})
            .await
            .unwrap()
            .into_inner();
    assert!(st.configured && st.version == 3, "{st:?}");
    assert_eq!(st.backend, k);
    assert_eq!(kernel(&mut c, kind).await.unwrap().1, want);
    assert!(
        sh(&mut c, "ls /var/lib/ferry/agent/lb")
            .await
            .contains("state.json")
    );

    // Delete: rules, route and state gone.
    let del = pb::DeleteLoadBalancerRequest {
        operation_id: "del".into(),
    };
    assert!(
        c.lb.delete_load_balancer(del)
            .await
            .unwrap()
            .into_inner()
            .deleted
    );
    assert_eq!(kernel(&mut c, kind).await, None);
    assert_eq!(sh(&mut c, "ip route show 10.103.97.2/32").await.trim(), "");
    assert!(
        !sh(&mut c, "ls /var/lib/ferry/agent/lb")
            .await
            .contains("state.json")
    );

    // Uninstall's `ferry-agent lb-reset`, run with the agent stopped,
    // removes rules, route and state; the next agent has nothing to restore.
    c.lb.set_load_balancer(spec(kind, &two, "wrr", 4))
        .await
        .unwrap();
    assert!(kernel(&mut c, kind).await.is_some());
    let (mut c, _) = detached_then_new_agent(
        &mut c,
        vm,
        pki,
        "kill -STOP PID; /ferry-agent lb-reset >/tmp/reset.log 2>&1; kill -9 PID",
        false,
    )
    .await;
    let log = sh(&mut c, "cat /tmp/reset.log").await;
    let removed = match kind {
        Kind::Ipvs => "removed IPVS service 10.103.97.2:6443",
        Kind::Nftables => "removed nftables table ip ferry_lb",
    };
    assert!(log.contains(removed) && log.contains("state.json"), "{log}");
    let st =
        c.lb.get_load_balancer(pb::GetLoadBalancerRequest {})
            .await
            .unwrap();
    assert!(!st.into_inner().configured);
    assert_eq!(kernel(&mut c, kind).await, None);
    assert_eq!(sh(&mut c, "ip route show 10.103.97.2/32").await.trim(), "");
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lb_backends_conformance_in_a_vm() {
    let Some(agent_bin) = vm::agent_bin() else {
        eprintln!("SKIP: no static agent (run packaging/build-agent.sh or set FERRY_AGENT_BIN)");
        return;
    };
    let (vmlinuz, base) = match vm::prepare() {
        Ok(p) => p,
        Err(why) => {
            eprintln!("{why}");
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let pki = common::pki();
    let initrd = vm::initrd(&base, &agent_bin, &pki, "", dir.path());
    let m = [
        vm::member("m1").await,
        vm::member("m2").await,
        vm::member("m3").await,
    ];
    let t0 = Instant::now();
    let vm = vm::Vm::boot(&vmlinuz, &initrd, dir.path());
    let (c, boot) = vm::until(BOOT_LIMIT, "the agent in the VM", || connect(&vm, &pki)).await;
    println!("VM-MEASURE boot_to_agent_ms={}", boot.as_millis());
    let guest = vm.console();
    let ready = guest
        .lines()
        .find_map(|l| l.find("FERRY-VM-READY").map(|i| &l[i..]));
    println!("VM-MEASURE guest {}", ready.unwrap_or("no ready line"));

    let c = conformance(Kind::Ipvs, c, &vm, &pki, &m).await;
    let mut c = conformance(Kind::Nftables, c, &vm, &pki, &m).await;

    // lvscare's link mode (IPVS): the VIP is an address on the dummy
    // interface `ferry-lb`, which delete removes.
    sh(&mut c, "echo --lb-vip-mode link > /etc/ferry-agent.args").await;
    let (mut c, _) = detached_then_new_agent(&mut c, &vm, &pki, "kill PID", false).await;
    let all: Vec<_> = m.iter().map(|x| (x.addr(), 1)).collect();
    c.lb.set_load_balancer(spec(Kind::Ipvs, &all, "rr", 1))
        .await
        .unwrap();
    assert_eq!(
        kernel(&mut c, Kind::Ipvs).await.unwrap().1,
        all.iter().copied().collect()
    );
    let link = sh(&mut c, "ip -o addr show dev ferry-lb").await;
    assert!(link.contains("10.103.97.2/32"), "{link}");
    let del = pb::DeleteLoadBalancerRequest {
        operation_id: "del".into(),
    };
    assert!(
        c.lb.delete_load_balancer(del)
            .await
            .unwrap()
            .into_inner()
            .deleted
    );
    assert_eq!(kernel(&mut c, Kind::Ipvs).await, None);
    let gone = sh(&mut c, "ip link show ferry-lb").await;
    // iproute2 or busybox wording.
    assert!(
        gone.contains("does not exist") || gone.contains("can't find device"),
        "{gone}"
    );
    println!("VM-MEASURE total_ms={}", t0.elapsed().as_millis());
}
