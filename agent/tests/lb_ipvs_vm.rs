//! The IPVS backend on a real IPVS kernel: a Debian cloud-kernel VM (qemu,
//! software emulation) runs this build's static agent; the test drives its
//! `ferry.lb.v1` service over mTLS like the coordinator does, and checks
//! the kernel through `ipvsadm -Ln` inside the VM and with traffic to the
//! VIP (members are TLS health endpoints on the host, reached via 10.0.2.2):
//! add, idempotent re-sync, update (scheduler, weights, removed member),
//! health-driven weight-0 draining and recovery, state restored after the
//! agent is killed, clean deletion (service, route, state file), and
//! uninstall's `ferry-agent lb-reset` with the agent stopped.
//! Skipped with a SKIP line where qemu, busybox-static, ipvsadm or the
//! kernel package are unavailable. Prints `VM-MEASURE ...` figures.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod vm;

use std::collections::BTreeMap;
use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use ferry_proto::lb_pb as pb;
use ferry_proto::lb_pb::load_balancer_client::LoadBalancerClient;
use ferry_proto::pb::agent_client::AgentClient;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

const VIP: &str = "10.103.97.2:6443";
const BOOT_LIMIT: Duration = Duration::from_secs(120);
const CHANGE_LIMIT: Duration = Duration::from_secs(30);

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
                timeout_ms: 2000,
                healthy_threshold: 1,
                unhealthy_threshold: 1,
                ok_statuses: vec![],
            }),
            backend: "ipvs".into(),
            version,
        }),
        operation_id: format!("vm-{version}"),
    }
}

async fn sh(c: &mut Clients, script: &str) -> String {
    let out = common::run(&mut c.agent, common::argv(&["sh", "-c", script])).await;
    format!("{}{}", out.stdout(), out.stderr())
}

/// `ipvsadm -Ln` as (scheduler of the VIP's service, member → weight).
async fn ipvs(c: &mut Clients) -> Option<(String, BTreeMap<SocketAddrV4, u32>)> {
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

/// `n` connections to the VIP from inside the VM; answers per member.
async fn traffic(c: &mut Clients, n: usize) -> BTreeMap<String, usize> {
    let (ip, port) = VIP.split_once(':').unwrap();
    let out = sh(
        c,
        &format!("for i in $(seq {n}); do echo hi | nc -w 3 {ip} {port} || echo FAIL; done"),
    )
    .await;
    let mut m = BTreeMap::new();
    for l in out.lines().filter(|l| !l.trim().is_empty()) {
        *m.entry(l.trim().to_string()).or_default() += 1;
    }
    m
}

/// Polls `ipvsadm -Ln` until `pred` holds for the members.
async fn poll_ipvs(
    c: &mut Clients,
    what: &str,
    pred: impl Fn(&BTreeMap<SocketAddrV4, u32>) -> bool,
) -> Duration {
    let t0 = Instant::now();
    loop {
        if ipvs(c).await.is_some_and(|(_, w)| pred(&w)) {
            return t0.elapsed();
        }
        assert!(t0.elapsed() < CHANGE_LIMIT, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipvs_backend_in_a_vm() {
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
    let (mut c, boot) = vm::until(BOOT_LIMIT, "the agent in the VM", || connect(&vm, &pki)).await;
    println!("VM-MEASURE boot_to_agent_ms={}", boot.as_millis());
    let guest = vm.console();
    let ready = guest
        .lines()
        .find_map(|l| l.find("FERRY-VM-READY").map(|i| &l[i..]));
    println!("VM-MEASURE guest {}", ready.unwrap_or("no ready line"));

    // Add: three members, rr.
    let all: Vec<_> = m.iter().map(|x| (x.addr(), 1)).collect();
    let r =
        c.lb.set_load_balancer(spec(&all, "rr", 1))
            .await
            .unwrap()
            .into_inner();
    assert!(r.changed);
    assert_eq!(r.backend, "ipvs");
    let (sched, members) = ipvs(&mut c).await.expect("the VIP service in ipvsadm -Ln");
    assert_eq!(sched, "rr");
    assert_eq!(members, all.iter().copied().collect());
    let route = sh(&mut c, "ip route show 10.103.97.2/32").await;
    assert!(
        route.contains("dev eth0") && route.contains("src 10.0.2.15"),
        "{route}"
    );
    let counts = traffic(&mut c, 9).await;
    println!("VM-MEASURE rr traffic {counts:?}");
    for x in &m {
        assert_eq!(
            counts.get(&x.name),
            Some(&3),
            "rr spreads evenly: {counts:?}"
        );
    }

    // Idempotent re-sync: a newer version of the same state changes nothing.
    let r =
        c.lb.set_load_balancer(spec(&all, "rr", 2))
            .await
            .unwrap()
            .into_inner();
    assert!(!r.changed);
    assert_eq!(ipvs(&mut c).await.unwrap().1, all.iter().copied().collect());

    // Update: wrr 3:1, m3 leaves.
    let two = [(m[0].addr(), 3), (m[1].addr(), 1)];
    let t = Instant::now();
    c.lb.set_load_balancer(spec(&two, "wrr", 3)).await.unwrap();
    let (sched, members) = ipvs(&mut c).await.unwrap();
    println!("VM-MEASURE update_ms={}", t.elapsed().as_millis());
    assert_eq!(sched, "wrr");
    assert_eq!(members, two.iter().copied().collect());
    let counts = traffic(&mut c, 8).await;
    assert_eq!(
        (counts.get("m1"), counts.get("m2")),
        (Some(&6), Some(&2)),
        "{counts:?}"
    );

    // m2 fails its health check: weight 0 (draining), then removed;
    // healthy again: back with its weight.
    m[1].status.store(503, std::sync::atomic::Ordering::SeqCst);
    let m2 = m[1].addr();
    let drained = poll_ipvs(&mut c, "m2 drained", |w| {
        w.get(&m2).copied().unwrap_or(0) == 0
    })
    .await;
    println!("VM-MEASURE unhealthy_to_drained_ms={}", drained.as_millis());
    let before = m[1].traffic.load(std::sync::atomic::Ordering::SeqCst);
    let counts = traffic(&mut c, 4).await;
    assert_eq!(counts.get("m1"), Some(&4), "{counts:?}");
    assert_eq!(
        m[1].traffic.load(std::sync::atomic::Ordering::SeqCst),
        before
    );
    m[1].status.store(200, std::sync::atomic::Ordering::SeqCst);
    let want: BTreeMap<_, _> = two.iter().copied().collect();
    poll_ipvs(&mut c, "m2 back", |w| *w == want).await;

    // The agent dies (SIGKILL): the rules stay; the restarted agent
    // restores the persisted state.
    let pid = sh(&mut c, "pidof ferry-agent").await;
    let kill = format!(
        "setsid sh -c 'sleep 0.3; kill -9 {}' </dev/null >/dev/null 2>&1 &",
        pid.trim()
    );
    sh(&mut c, &kill).await;
    let (mut c, restart) = vm::until(BOOT_LIMIT, "the restarted agent", || async {
        let mut c = connect(&vm, &pki).await?;
        let facts = c
            .agent
            .facts(ferry_proto::pb::FactsRequest::default())
            .await
            .ok()?;
        if facts.into_inner().agent_pid.to_string() == pid.trim() {
            return None;
        }
        let st =
            c.lb.get_load_balancer(pb::GetLoadBalancerRequest {})
                .await
                .ok()?;
        let st = st.into_inner();
        (st.configured && st.version == 3).then_some(c)
    })
    .await;
    println!(
        "VM-MEASURE agent_restart_restored_ms={}",
        restart.as_millis()
    );
    assert_eq!(ipvs(&mut c).await.unwrap().1, two.iter().copied().collect());
    assert!(
        sh(&mut c, "ls /var/lib/ferry/agent/lb")
            .await
            .contains("state.json")
    );

    // Delete: service, route and state gone.
    let r =
        c.lb.delete_load_balancer(pb::DeleteLoadBalancerRequest {
            operation_id: "del".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(r.deleted);
    assert_eq!(ipvs(&mut c).await, None);
    assert_eq!(sh(&mut c, "ip route show 10.103.97.2/32").await.trim(), "");
    assert!(
        !sh(&mut c, "ls /var/lib/ferry/agent/lb")
            .await
            .contains("state.json")
    );

    // Uninstall's `ferry-agent lb-reset`, run with the agent stopped,
    // removes the IPVS service, route and state; the restarted agent has
    // nothing to restore.
    c.lb.set_load_balancer(spec(&two, "wrr", 4)).await.unwrap();
    assert!(ipvs(&mut c).await.is_some());
    let pid = sh(&mut c, "pidof ferry-agent").await;
    let pid = pid.trim();
    let reset = format!(
        "setsid sh -c 'sleep 0.5; kill -STOP {pid}; /ferry-agent lb-reset >/tmp/reset.log 2>&1; \
         kill -9 {pid}' </dev/null >/dev/null 2>&1 &"
    );
    sh(&mut c, &reset).await;
    let (mut c, _) = vm::until(BOOT_LIMIT, "the agent after lb-reset", || async {
        let mut c = connect(&vm, &pki).await?;
        let facts = c
            .agent
            .facts(ferry_proto::pb::FactsRequest::default())
            .await
            .ok()?;
        (facts.into_inner().agent_pid.to_string() != pid).then_some(c)
    })
    .await;
    let log = sh(&mut c, "cat /tmp/reset.log").await;
    assert!(
        log.contains("removed IPVS service 10.103.97.2:6443"),
        "{log}"
    );
    assert!(log.contains("state.json"), "{log}");
    let st =
        c.lb.get_load_balancer(pb::GetLoadBalancerRequest {})
            .await
            .unwrap();
    assert!(!st.into_inner().configured);
    assert_eq!(ipvs(&mut c).await, None);
    assert_eq!(sh(&mut c, "ip route show 10.103.97.2/32").await.trim(), "");
    println!("VM-MEASURE total_ms={}", t0.elapsed().as_millis());
}
