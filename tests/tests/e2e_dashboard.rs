//! `ferry dashboard` in a real browser: the dashboard runs on 127.0.0.1 in
//! the bastion namespace, headless Chromium (through chromedriver's W3C
//! WebDriver API) opens its page before a `ferry run` of the fixture image
//! (1 master + 1 worker) starts in another process. The page shows both
//! hosts live and then every step done, with role, agent version and
//! health, transfer bars at 100 % and the run succeeded; the worker's LB
//! member is healthy; `/metrics` counted the bytes and the agents' execs
//! (from their own Events streams). Then `ferry add` of a node whose
//! registry data path is a file fails its bootstrap (the fixture check.sh
//! refuses it), and the page shows that failure with its host, step and
//! `next:` advice. A screenshot is saved under target/test-artifacts/.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::webdriver::{Browser, browser, enter_netns, http};
use common::{Bastion, stage_fixture_image, stderr};
use ferry_tests::testbed::{Testbed, TestbedConfig};
use serde_json::Value;

/// What the test reads from the page: only stable ids and data-* attributes.
const READ_DOM: &str = r#"
const d = e => Object.assign({}, e.dataset);
return {
  conn: document.getElementById('conn').dataset.state,
  hosts: [...document.querySelectorAll('tr.host')].map(d),
  steps: [...document.querySelectorAll('.step[data-host]')].map(d),
  transfers: [...document.querySelectorAll('.transfer')].map(d),
  runs: [...document.querySelectorAll('.run')].map(d),
  lb: [...document.querySelectorAll('tr.lb-member')].map(d),
  failures: [...document.querySelectorAll('.failure')].map(f => Object.assign(d(f),
    { advice: (f.querySelector('.advice') || { dataset: {} }).dataset.advice || '' })),
};"#;

struct Dashboard {
    child: Child,
    port: u16,
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `ferry dashboard --listen 127.0.0.1:0`; the port from its stderr.
fn start_dashboard(b: &Bastion) -> Dashboard {
    let mut child = b
        .command(&["dashboard", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    eprintln!("{first}");
    std::thread::spawn(move || lines.map_while(Result::ok).for_each(|l| eprintln!("{l}")));
    let port = first
        .split("http://127.0.0.1:")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no listening address in: {first}"));
    Dashboard { child, port }
}

fn wait_dom(b: &Browser, what: &str, within: Duration, ok: impl Fn(&Value) -> bool) -> Value {
    let end = Instant::now() + within;
    loop {
        let dom = b.eval(READ_DOM);
        if ok(&dom) {
            return dom;
        }
        assert!(Instant::now() < end, "page never showed {what}: {dom:#}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn of<'a>(list: &'a Value, key: &str, val: &str) -> Vec<&'a Value> {
    list.as_array()
        .unwrap()
        .iter()
        .filter(|x| x[key] == val)
        .collect()
}

#[test]
fn dashboard_shows_a_live_run_and_a_host_failure_in_a_browser() {
    let (chromium, chromedriver) = browser();
    let tb = Testbed::up(TestbedConfig::nodes(3)).expect("testbed up");
    let b = Bastion::new(&tb);
    // This thread (and what it spawns: chromedriver, Chromium) shares the
    // bastion's loopback with the dashboard.
    // Dropped before `tb`: the teardown runs outside the namespace.
    let _netns = enter_netns(tb.bastion_netns());
    let ip: Vec<String> = tb.nodes().iter().map(|n| n.ip.to_string()).collect();
    let pw = tb.password("root").unwrap();
    let work = tempfile::tempdir().unwrap();
    let image = stage_fixture_image(work.path());
    let image = image.to_str().unwrap();

    let dash = start_dashboard(&b);
    let browser = Browser::start(&chromium, &chromedriver);
    let base = format!("http://127.0.0.1:{}", dash.port);
    browser.goto(&format!("{base}/?cluster=default"));

    // (The staged image's temporary path has no spaces.)
    let run_line = format!("run {image} --masters {} --nodes {} -p {pw}", ip[0], ip[1]);
    let run_args: Vec<&str> = run_line.split(' ').collect();
    let run = b
        .command(&run_args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = std::thread::spawn(move || run.wait_with_output().unwrap());
    // While the run is alive: each host appears in the page with a step
    // not yet done (the page is live, not a replay afterwards).
    let mut live: BTreeSet<String> = BTreeSet::new();
    while !out.is_finished() {
        let dom = browser.eval(READ_DOM);
        for s in dom["steps"].as_array().unwrap() {
            if s["state"] == "running" {
                live.insert(s["host"].as_str().unwrap().to_string());
            }
        }
        std::thread::sleep(Duration::from_millis(150));
    }
    let out = out.join().unwrap();
    assert!(out.status.success(), "run failed: {}", stderr(&out));
    for h in &ip[..2] {
        assert!(
            live.contains(h),
            "{h} never showed a running step while the run ran ({live:?})"
        );
    }

    let per_host = [
        (
            &ip[0],
            "master",
            vec!["distribute", "bootstrap", "pki", "init-master", "backup"],
        ),
        (
            &ip[1],
            "node",
            vec!["distribute", "bootstrap", "lb-sync", "join-worker"],
        ),
    ];
    let dom = wait_dom(
        &browser,
        "the run done on every host",
        Duration::from_secs(60),
        |d| {
            of(&d["runs"], "outcome", "succeeded").len() == 1
                && per_host.iter().all(|(h, role, steps)| {
                    let row = of(&d["hosts"], "host", h);
                    let chips = of(&d["steps"], "host", h);
                    row.len() == 1
                        && row[0]["role"].as_str().unwrap_or("").contains(role)
                        && row[0]["health"] == "up"
                        && !row[0]["agentVersion"].as_str().unwrap_or("").is_empty()
                        && row[0]["state"] == "done"
                        && steps.iter().all(|s| chips.iter().any(|c| c["step"] == *s))
                        && chips.iter().all(|c| c["state"] == "done")
                })
        },
    );
    for (h, _, _) in &per_host {
        for c in of(&dom["steps"], "host", h) {
            assert!(c["seen"].as_str().unwrap().ends_with("done"), "{h}: {c}");
        }
        // One bar per tree sent to the host, all complete, the rootfs not empty.
        let bars = of(&dom["transfers"], "host", h);
        assert!(!bars.is_empty(), "{h}: no transfer bar: {dom:#}");
        for t in &bars {
            assert!(t["state"] == "done" && t["sent"] == t["total"], "{h}: {t}");
        }
        let rootfs = bars.iter().find(|t| t["label"] == "distribute: rootfs");
        assert!(
            rootfs.is_some_and(|t| t["sent"] != "0"),
            "{h}: rootfs bar: {bars:?}"
        );
    }
    // The worker's VIP load balancer routes to the master, healthy.
    let member = format!("{}:6443", ip[0]);
    wait_dom(
        &browser,
        "the worker's LB member",
        Duration::from_secs(30),
        |d| {
            of(&d["lb"], "node", &ip[1])
                .iter()
                .any(|m| m["member"] == member.as_str() && m["health"] == "healthy")
        },
    );
    let (status, metrics) = http(dash.port, "GET", "/metrics", None);
    assert_eq!(status, 200);
    // A sample of /metrics above zero: `name{...label...} value`.
    let positive = |name: &str, label: &str| {
        metrics.lines().any(|l| {
            l.starts_with(&format!("{name}{{"))
                && l.contains(label)
                && l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) > Some(0.0)
        })
    };
    let worker = format!("node=\"{}\"", ip[1]);
    // Transfer bytes from the run's events; exec counts, agent up and the
    // agents' own events from their Events streams.
    for (name, label) in [
        ("ferry_transfer_bytes_total", worker.as_str()),
        ("ferry_exec_total", worker.as_str()),
        ("ferry_agent_up", worker.as_str()),
        ("ferry_dashboard_events_total", "source=\"agent\""),
    ] {
        assert!(
            positive(name, label),
            "{name} {label} in /metrics:\n{metrics}"
        );
    }

    // An injected failure: the fixture's check.sh refuses a registry data
    // path that is a file, so node 3's bootstrap fails.
    tb.exec_ok(
        2,
        &["sh", "-c", "mkdir -p /var/lib && touch /var/lib/registry"],
    )
    .unwrap();
    let add = b.ferry(&["add", "--nodes", &ip[2], "-p", pw]);
    assert!(!add.status.success(), "add onto a broken node succeeded");
    let dom = wait_dom(
        &browser,
        "the failure of node 3",
        Duration::from_secs(60),
        |d| {
            let f = of(&d["failures"], "host", &ip[2]);
            f.iter().any(|f| {
                f["step"] == "bootstrap"
                    && f["advice"].as_str().unwrap_or("").contains("fix the cause")
            }) && of(&d["runs"], "outcome", "failed").len() == 1
                && of(&d["hosts"], "host", &ip[2])
                    .first()
                    .is_some_and(|r| r["state"] == "failed")
        },
    );
    let chip = of(&dom["steps"], "host", &ip[2])
        .into_iter()
        .find(|c| c["step"] == "bootstrap")
        .cloned()
        .unwrap();
    assert_eq!(chip["state"], "failed", "{chip}");
    // Once: the run's own failed event restates the host's failure.
    let failures = dom["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 1, "one failure shown: {failures:?}");

    let target = std::env::current_exe()
        .unwrap()
        .ancestors()
        .nth(3)
        .unwrap()
        .to_path_buf();
    let dir = target.join("test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    let png = dir.join("e2e_dashboard.png");
    browser.screenshot(&png);
    println!("DASHBOARD-SCREENSHOT {}", png.display());
}
