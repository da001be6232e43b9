//! The VIP load balancer end to end on the testbed (nftables backend):
//! 3 masters serve TLS `/healthz` on :6443 (`openssl s_server -HTTP`, each
//! answering with its hostname), workers get `ferry lb sync`, and traffic
//! from a worker to the VIP proves balancing, health-driven failover and
//! recovery, idempotent re-sync, restore after an agent restart, a changed
//! master set, and clean deletion. Prints the measured figures
//! (`LB-MEASURE ...`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{Bastion, find, stderr};
use ferry_tests::testbed::{Testbed, TestbedConfig};
use serde_json::Value;

const VIP: &str = "10.103.97.2:6443";
const MASTERS: usize = 3;

fn start_endpoint(tb: &Testbed, i: usize) {
    let host = &tb.nodes()[i].hostname;
    let script = format!(
        "mkdir -p /root/lbweb && cd /root/lbweb && \
         [ -f c.pem ] || openssl req -x509 -newkey rsa:2048 -nodes -keyout k.pem -out c.pem -days 1 -subj /CN={host} 2>/dev/null && \
         printf 'HTTP/1.0 200 ok\\r\\nContent-Type: text/plain\\r\\n\\r\\n{host}\\n' > healthz && \
         (openssl s_server -accept 6443 -cert c.pem -key k.pem -HTTP -quiet </dev/null >/dev/null 2>&1 & echo $! > pid)"
    );
    let out = tb.exec(i, &["sh", "-c", &script]).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Ready once it answers locally.
    wait(Duration::from_secs(15), "endpoint up", || {
        curl(tb, i, &format!("{}:6443", tb.nodes()[i].ip), 1).first() == Some(&Some(host.clone()))
    });
}

fn stop_endpoint(tb: &Testbed, i: usize) {
    tb.exec_ok(i, &["sh", "-c", "kill $(cat /root/lbweb/pid)"])
        .unwrap();
}

/// `n` sequential HTTPS GETs from node `i`; each answer's hostname or None.
fn curl(tb: &Testbed, i: usize, target: &str, n: usize) -> Vec<Option<String>> {
    let script = format!(
        "for i in $(seq {n}); do curl -sk --max-time 2 https://{target}/healthz || echo FAIL; done"
    );
    let out = tb.exec(i, &["sh", "-c", &script]).unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| (l != "FAIL").then(|| l.trim().to_string()))
        .collect()
}

fn wait(limit: Duration, what: &str, mut f: impl FnMut() -> bool) -> Duration {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < limit, "timed out waiting for {what}");
    }
    t0.elapsed()
}

fn counts(answers: &[Option<String>]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for a in answers {
        *m.entry(a.clone().unwrap_or_else(|| "FAIL".into()))
            .or_default() += 1;
    }
    m
}

fn nft_table(tb: &Testbed, i: usize) -> Option<String> {
    let out = tb
        .exec(i, &["nft", "list", "table", "ip", "ferry_lb"])
        .unwrap();
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn sync(b: &Bastion, masters: &str) -> Vec<Value> {
    let (out, ev) = b.ferry_json(&[
        "lb",
        "sync",
        "--vip",
        VIP,
        // Explicit: `auto` would pick IPVS on a kernel that has it.
        "--lb-backend",
        "nftables",
        "--masters",
        masters,
        "--health-interval-ms",
        "1000",
        "--health-timeout-ms",
        "800",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    ev
}

fn summary(ev: &[Value]) -> &Value {
    find(ev, "", "load-balancer", "finished")[0]
}

fn lb_events(b: &Bastion, node: &str) -> Vec<Value> {
    let (_, ev) = b.ferry_json(&["agent", "events", "--ips", node, "--duration", "1"]);
    ev.into_iter()
        .filter(|e| e["phase"] == "load-balancer" && e["source"] == "agent")
        .collect()
}

#[test]
fn nftables_vip_balances_fails_over_recovers_restores_and_deletes() {
    let tb = Testbed::up(TestbedConfig {
        nodes: MASTERS + 2,
        ..Default::default()
    })
    .expect("testbed up");
    let b = Bastion::new(&tb);
    let ip: Vec<String> = tb.nodes().iter().map(|n| n.ip.to_string()).collect();
    let host: Vec<String> = tb.nodes().iter().map(|n| n.hostname.clone()).collect();
    let (w0, w1) = (MASTERS, MASTERS + 1);
    let out = b.ferry(&[
        "agent",
        "install",
        "--masters",
        &ip[..MASTERS].join(","),
        "--nodes",
        &format!("{},{}", ip[w0], ip[w1]),
        "-p",
        tb.password("root").unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    for m in 0..MASTERS {
        start_endpoint(&tb, m);
    }

    // Sync to the workers (the default `node` role).
    let masters = ip[..MASTERS].join(",");
    let ev = sync(&b, &masters);
    let first_sync_ms = summary(&ev)["counters"]["duration_ms"].as_u64().unwrap();
    for w in [w0, w1] {
        let f = find(&ev, &ip[w], "load-balancer", "finished");
        assert_eq!(f[0]["counters"]["changed"], 1, "{w}");
        assert!(nft_table(&tb, w).unwrap().contains("dnat"));
    }
    assert!(
        find(&ev, &ip[0], "load-balancer", "finished").is_empty(),
        "masters untouched"
    );

    // Balancing: rr over 3 live masters.
    let c = counts(&curl(&tb, w0, VIP, 30));
    for h in &host[..MASTERS] {
        assert!(
            c.get(h).copied().unwrap_or(0) >= 5,
            "{h} underserved: {c:?}"
        );
    }
    assert!(!c.contains_key("FAIL"), "{c:?}");
    // The worker's own route to the VIP (lvscare route mode).
    let route = tb
        .exec_ok(w0, &["ip", "route", "show", "10.103.97.2/32"])
        .unwrap();
    assert!(route.contains("src"), "{route}");

    // Failover: master 0's endpoint dies; time until no new connection
    // reaches it (12 consecutive successes over the other two).
    stop_endpoint(&tb, 0);
    let t_kill = Instant::now();
    let mut streak = 0;
    let mut streak_start = Instant::now();
    wait(Duration::from_secs(20), "failover", || {
        for a in curl(&tb, w0, VIP, 1) {
            if a.is_some() {
                if streak == 0 {
                    streak_start = Instant::now();
                }
                streak += 1;
            } else {
                streak = 0;
            }
        }
        streak >= 12
    });
    let failover = streak_start.duration_since(t_kill);
    let c = counts(&curl(&tb, w0, VIP, 20));
    assert!(
        !c.contains_key(&host[0]) && !c.contains_key("FAIL"),
        "{c:?}"
    );
    // The event stream names the member and the health-check result.
    let wait_removed = || {
        let ev = lb_events(&b, &ip[w0]);
        ev.iter().any(|e| {
            let m = e["message"].as_str().unwrap_or_default();
            m.contains(&format!("{}:6443 removed", ip[0]))
        })
    };
    wait(Duration::from_secs(20), "removed event", wait_removed);
    let ev = lb_events(&b, &ip[w0]);
    let drained = ev
        .iter()
        .find(|e| {
            e["message"]
                .as_str()
                .unwrap_or_default()
                .contains(&format!("{}:6443 drained", ip[0]))
        })
        .expect("drain event");
    assert_eq!(drained["kind"], "progress");
    assert!(
        drained["message"]
            .as_str()
            .unwrap()
            .contains("health check unhealthy: connect"),
        "{drained}"
    );
    let (_, st) = b.ferry_json(&["lb", "status", "--ips", &ip[w0]]);
    let s: Value = serde_json::from_str(
        find(&st, &ip[w0], "load-balancer", "finished")[0]["message"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(s["backend"], "nftables");
    assert_eq!(s["members"][0]["state"], "removed", "{s}");

    // Recovery: it comes back.
    start_endpoint(&tb, 0);
    let t_back = Instant::now();
    wait(Duration::from_secs(20), "re-added", || {
        curl(&tb, w0, VIP, 3)
            .iter()
            .any(|a| a.as_deref() == Some(host[0].as_str()))
    });
    let readd = t_back.elapsed();

    // Same state again: a no-op everywhere.
    let ev = sync(&b, &masters);
    for w in [w0, w1] {
        assert_eq!(
            find(&ev, &ip[w], "load-balancer", "finished")[0]["counters"]["changed"],
            0
        );
    }

    // Agent restart: kill `serve` (the supervisor restarts it) and flush the
    // rules meanwhile; the persisted state comes back.
    let sup = tb
        .exec_ok(w0, &["cat", "/var/lib/ferry/agent/agent.pid"])
        .unwrap();
    let sup = sup.split_whitespace().next().unwrap().to_string();
    let serve = tb
        .exec_ok(w0, &["pgrep", "-P", &sup])
        .unwrap()
        .trim()
        .to_string();
    tb.exec_ok(w0, &["kill", "-9", &serve]).unwrap();
    let _ = tb.exec(w0, &["nft", "delete", "table", "ip", "ferry_lb"]);
    wait(Duration::from_secs(30), "rules restored", || {
        nft_table(&tb, w0).is_some_and(|t| t.contains(&ip[0]) && t.contains(&ip[2]))
    });
    let c = counts(&curl(&tb, w0, VIP, 15));
    assert_eq!(c.len(), MASTERS, "{c:?}");
    let mode = tb
        .exec_ok(
            w0,
            &["stat", "-c", "%a", "/var/lib/ferry/agent/lb/state.json"],
        )
        .unwrap();
    assert_eq!(mode.trim(), "600");

    // A changed master set reaches every worker.
    let two = format!("{},{}", ip[1], ip[2]);
    let ev = sync(&b, &two);
    let change_ms = summary(&ev)["counters"]["duration_ms"].as_u64().unwrap();
    for w in [w0, w1] {
        assert!(
            !nft_table(&tb, w)
                .unwrap()
                .contains(&format!("{} . 6443", ip[0]))
        );
    }
    let c = counts(&curl(&tb, w1, VIP, 10));
    assert!(
        !c.contains_key(&host[0]) && !c.contains_key("FAIL"),
        "{c:?}"
    );

    // Delete: table and route gone.
    let (out, _) = b.ferry_json(&["lb", "delete"]);
    assert!(out.status.success());
    for w in [w0, w1] {
        assert!(nft_table(&tb, w).is_none());
        let route = tb
            .exec_ok(w, &["ip", "route", "show", "10.103.97.2/32"])
            .unwrap();
        assert_eq!(route.trim(), "");
    }

    // Uninstalling the agents (without `lb delete`) leaves no rules, route
    // or state behind.
    sync(&b, &masters);
    assert!(nft_table(&tb, w0).is_some());
    let out = b.ferry(&[
        "agent",
        "uninstall",
        "--ips",
        &format!("{},{}", ip[w0], ip[w1]),
        "-p",
        tb.password("root").unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    for w in [w0, w1] {
        assert!(nft_table(&tb, w).is_none(), "table left on {w}");
        let route = tb
            .exec_ok(w, &["ip", "route", "show", "10.103.97.2/32"])
            .unwrap();
        assert_eq!(route.trim(), "");
        let o = tb.exec(w, &["ls", "/var/lib/ferry/agent"]).unwrap();
        assert!(!o.status.success(), "agent dir left on {w}");
    }
    eprintln!(
        "LB-MEASURE failover_ms={} readd_ms={} first_sync_ms={first_sync_ms} change_sync_ms={change_ms} (interval 1000 ms, 2 workers)",
        failover.as_millis(),
        readd.as_millis()
    );
    assert!(
        failover <= Duration::from_millis(2_500),
        "failover took {failover:?}"
    );
}

/// Issue 5's target: changing the master set on 8 workers through the
/// coordinator completes in < 2 s.
#[test]
fn a_changed_master_set_reaches_8_workers_fast() {
    let tb = Testbed::up(TestbedConfig {
        nodes: 8,
        ..Default::default()
    })
    .expect("testbed up");
    let b = Bastion::new(&tb);
    let ip: Vec<String> = tb.nodes().iter().map(|n| n.ip.to_string()).collect();
    let out = b.ferry(&[
        "agent",
        "install",
        "--nodes",
        &ip.join(","),
        "-p",
        tb.password("root").unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Masters need not answer for the rules to be programmed.
    sync(&b, "10.77.9.1,10.77.9.2,10.77.9.3");
    let t0 = Instant::now();
    let ev = sync(&b, "10.77.9.2,10.77.9.3,10.77.9.4");
    let wall = t0.elapsed();
    let sync_ms = summary(&ev)["counters"]["duration_ms"].as_u64().unwrap();
    for i in 0..ip.len() {
        let t = nft_table(&tb, i).unwrap();
        assert!(
            t.contains("10.77.9.4 . 6443") && !t.contains("10.77.9.1 . 6443"),
            "{t}"
        );
    }
    eprintln!(
        "LB-MEASURE change_sync_8_workers_ms={sync_ms} (ferry wall clock incl. process start {} ms)",
        wall.as_millis()
    );
    assert!(sync_ms < 2_000, "sync took {sync_ms} ms");
}
