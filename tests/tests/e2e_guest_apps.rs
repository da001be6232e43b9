//! The guest phase on the testbed (fixture cluster image, 1 master + 1
//! worker) with application images as labring ships them:
//!
//! - two apps with the same ENV keys (NAME, NAMESPACE) each see their own
//!   values in their ENTRYPOINT + CMD (`$(VAR)`, `${VAR}`, `$VAR`) and in
//!   their templates; they run on master0 only, in their own workdir;
//! - a plain re-run runs no command and sends no byte;
//! - an app added to the running cluster (`ferry run APP`, no hosts) moves
//!   to master0 alone and runs alone: no hook, no rootfs tree, no other CMD;
//!   `ferry plan` said so before;
//! - `--cmd` replaces the given image's CMD on a running cluster, and stays;
//! - a failing app command names image, host and command, keeps the
//!   cluster ClusterSuccess with an ApplyCommandError command condition,
//!   exits non-zero; once fixed, a re-run retries that command only.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

mod common;

use std::path::Path;

use common::{Bastion, stage_fixture_image, stderr};
use ferry_shared::clusterfile::Clusterfile;
use ferry_tests::testbed::{Testbed, TestbedConfig};
use serde_json::{Value, json};

const LOG: &str = "/var/log/ferry-guest.log";

/// An application image directory (config.json + rootfs/).
fn app_image(dir: &Path, env: &[&str], entrypoint: &[&str], cmd: &[&str], files: &[(&str, &str)]) {
    let config = json!({"config": {
        "Labels": {"sealos.io.type": "application", "sealos.io.version": "v1beta1"},
        "Env": env, "Entrypoint": entrypoint, "Cmd": cmd,
    }});
    std::fs::create_dir_all(dir.join("rootfs")).unwrap();
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    for (rel, text) in files {
        let p = dir.join("rootfs").join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
}

fn chart_like(dir: &Path, name: &str, ns: &str) {
    app_image(
        dir,
        &[
            &format!("NAME={name}"),
            &format!("NAMESPACE={ns}"),
            "HELM_OPTS=--wait",
        ],
        &[&format!("echo entrypoint $(NAME) >> {LOG}")],
        &[&format!(
            "echo cmd $(NAME) ${{NAMESPACE}} $NAME $(HELM_OPTS) in $(pwd) >> {LOG}"
        )],
        &[(
            "manifests/app.yaml.tmpl",
            "name: {{ .NAME }}\nnamespace: {{ .NAMESPACE }}\n",
        )],
    );
}

/// (node, message) of the events of `kind` whose message starts with `prefix`.
fn events<'e>(ev: &'e [Value], kind: &str, prefix: &str) -> Vec<(&'e str, &'e str)> {
    ev.iter()
        .filter(|e| e["phase"] == "run" && e["kind"] == kind)
        .filter_map(|e| {
            let m = e["message"].as_str()?;
            m.starts_with(prefix)
                .then(|| (e["node"].as_str().unwrap_or(""), m))
        })
        .collect()
}

fn content_bytes(ev: &[Value]) -> u64 {
    ev.iter()
        .filter(|e| e["phase"] == "run" && e["kind"] == "finished")
        .filter_map(|e| e["counters"]["content_bytes_sent"].as_u64())
        .sum()
}

fn log(tb: &Testbed, i: usize) -> String {
    tb.exec_ok(i, &["sh", "-c", &format!("cat {LOG} 2>/dev/null; true")])
        .unwrap()
}

#[test]
fn apps_run_with_their_own_env_once_and_alone() {
    let tb = Testbed::up(TestbedConfig::nodes(2)).expect("testbed up");
    let b = Bastion::new(&tb);
    let ip: Vec<String> = tb.nodes().iter().map(|n| n.ip.to_string()).collect();
    let work = tempfile::tempdir().unwrap();
    let k8s = stage_fixture_image(work.path());
    let (a, bb, c, d, e) = (
        work.path().join("app-a"),
        work.path().join("app-b"),
        work.path().join("app-c"),
        work.path().join("app-d"),
        work.path().join("app-e"),
    );
    chart_like(&a, "alpha", "ns-a");
    chart_like(&bb, "beta", "ns-b");
    app_image(
        &c,
        &["NAME=gamma"],
        &[],
        &[&format!("echo cmd $(NAME) >> {LOG}")],
        &[],
    );
    app_image(
        &d,
        &[],
        &[],
        &[&format!(
            "echo try-d >> {LOG}; test -f /tmp/app-d-ok || {{ echo app-d: /tmp/app-d-ok is missing >&2; exit 3; }}"
        )],
        &[],
    );
    app_image(
        &e,
        &["NAME=epsilon"],
        &[],
        &[&format!("echo image-cmd >> {LOG}")],
        &[],
    );
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let (k8s, a, bb, c, d, e) = (s(&k8s), s(&a), s(&bb), s(&c), s(&d), s(&e));
    let pw = tb.password("root").unwrap();

    // One command: the rootfs and two apps sharing ENV keys.
    let (out, ev) = b.ferry_json(&[
        "run",
        &k8s,
        &a,
        &bb,
        "--masters",
        &ip[0],
        "--nodes",
        &ip[1],
        "-p",
        pw,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let m0 = log(&tb, 0);
    let lines: Vec<&str> = m0.lines().collect();
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("entrypoint") || l.starts_with("cmd"))
            .count(),
        4,
        "{m0}"
    );
    let pos = |want: &str| {
        lines
            .iter()
            .position(|l| l.starts_with(want))
            .unwrap_or_else(|| panic!("`{want}` missing on master0:\n{m0}"))
    };
    // ENTRYPOINT then CMD, image by image in spec order.
    assert!(
        pos("entrypoint alpha") < pos("cmd alpha") && pos("cmd alpha") < pos("entrypoint beta")
    );
    assert!(pos("entrypoint beta") < pos("cmd beta"));
    for (name, ns) in [("alpha", "ns-a"), ("beta", "ns-b")] {
        let l = lines[pos(&format!("cmd {name}"))];
        let want =
            format!("cmd {name} {ns} {name} --wait in /var/lib/ferry/data/default/applications/");
        assert!(l.starts_with(&want) && l.ends_with("/workdir"), "{l}");
        let wd = l.rsplit(' ').next().unwrap();
        let rendered = tb
            .exec_ok(0, &["cat", &format!("{wd}/manifests/app.yaml")])
            .unwrap();
        assert_eq!(rendered, format!("name: {name}\nnamespace: {ns}\n"), "{wd}");
    }
    assert!(
        log(&tb, 1).is_empty(),
        "apps ran on the worker: {}",
        log(&tb, 1)
    );
    let app_runs: Vec<&str> = events(&ev, "started", "guest")
        .into_iter()
        .filter(|(_, m)| m.ends_with(&a) || m.ends_with(&bb))
        .map(|(n, _)| n)
        .collect();
    assert_eq!(app_runs, vec![ip[0].as_str(); 2], "once each, on master0");

    // A plain re-run: no command, no byte.
    let again = [
        "run",
        &k8s,
        &a,
        &bb,
        "--masters",
        &ip[0],
        "--nodes",
        &ip[1],
        "-p",
        pw,
    ];
    let (out, ev) = b.ferry_json(&again);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        events(&ev, "started", "guest").is_empty(),
        "{:?}",
        events(&ev, "started", "guest")
    );
    assert_eq!(content_bytes(&ev), 0);
    assert_eq!(log(&tb, 0), m0, "no command ran again");

    // The plan of adding app C names only C's tree and CMD, on master0.
    let cf_path = b.home().join(".ferry/default/Clusterfile");
    let mut cf = Clusterfile::parse(&std::fs::read_to_string(&cf_path).unwrap()).unwrap();
    cf.cluster.spec.image.push(c.clone());
    let plan_file = work.path().join("Clusterfile.plan");
    std::fs::write(&plan_file, cf.to_yaml(true).unwrap()).unwrap();
    let out = b.ferry(&["plan", "-f", plan_file.to_str().unwrap()]);
    let plan = common::stdout(&out);
    assert!(out.status.success(), "{plan}{}", stderr(&out));
    let row = |host: &str| {
        plan.lines()
            .find(|l| l.trim_start().starts_with(&format!("{host} ")))
            .unwrap_or("")
            .to_string()
    };
    assert!(
        row(&ip[0]).contains(&format!("distribute app:{c} → guest {c}")),
        "{plan}"
    );
    assert!(row(&ip[1]).contains("nothing to do"), "{plan}");

    // Add app C to the running cluster: it alone moves and runs.
    let (out, ev) = b.ferry_json(&["run", &c, "-p", pw]);
    assert!(out.status.success(), "{}", stderr(&out));
    let started: Vec<(&str, &str)> = events(&ev, "started", "")
        .into_iter()
        .filter(|(node, m)| !node.is_empty() && !m.starts_with("backup"))
        .collect();
    let want_guest = format!("guest: {c}");
    let want_dist = format!("distribute: app:{c}");
    for (node, m) in &started {
        assert!(
            *m == want_guest || *m == want_dist,
            "only C's tree and CMD may start, on master0; got `{m}` on {node}"
        );
        assert_eq!(*node, ip[0]);
    }
    assert_eq!(started.len(), 2, "{started:?}");
    assert!(log(&tb, 0).ends_with("cmd gamma\n"), "{}", log(&tb, 0));
    assert_eq!(log(&tb, 0).lines().count(), m0.lines().count() + 1);
    let cf = std::fs::read_to_string(&cf_path).unwrap();
    assert!(
        cf.contains(&format!("- {c}")),
        "C recorded in spec.image:\n{cf}"
    );

    // `--cmd` on a running cluster replaces the given image's CMD, and is
    // kept: a later run without it does not run the image again.
    let (out, _) = b.ferry_json(&[
        "run",
        &e,
        "--cmd",
        &format!("echo override $(NAME) >> {LOG}"),
        "-p",
        pw,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        log(&tb, 0).ends_with("override epsilon\n"),
        "{}",
        log(&tb, 0)
    );
    let (out, ev) = b.ferry_json(&["run", &e, "-p", pw]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        events(&ev, "started", "guest").is_empty(),
        "{:?}",
        events(&ev, "started", "guest")
    );
    assert!(!log(&tb, 0).contains("image-cmd"), "{}", log(&tb, 0));

    // A failing app: reported with image, host and command; the cluster
    // stays ClusterSuccess with a failed command condition.
    let (out, ev) = b.ferry_json(&["run", &d, "-p", pw]);
    assert!(
        !out.status.success(),
        "a failed app command must fail the run"
    );
    let failed = events(&ev, "failed", "guest");
    assert_eq!(failed.len(), 1, "{failed:?}");
    let (node, msg) = failed[0];
    assert_eq!(node, ip[0]);
    assert!(
        msg.contains(&d)
            && msg.contains("test -f /tmp/app-d-ok")
            && msg.contains("app-d: /tmp/app-d-ok is missing"),
        "{msg}"
    );
    let cf = std::fs::read_to_string(&cf_path).unwrap();
    let status = cf.split("\nstatus:").nth(1).unwrap_or("");
    assert!(status.contains("phase: ClusterSuccess"), "{cf}");
    assert!(status.contains("type: ApplyCommandError"), "{cf}");
    assert!(
        status.contains(&format!("- {d}")),
        "the condition names the image:\n{cf}"
    );

    // Fixed on the node: a re-run retries D's command and nothing else.
    tb.exec_ok(0, &["touch", "/tmp/app-d-ok"]).unwrap();
    let before = log(&tb, 0);
    let (out, ev) = b.ferry_json(&["run", &d, "-p", pw]);
    assert!(out.status.success(), "{}", stderr(&out));
    let guests = events(&ev, "started", "guest");
    assert_eq!(
        guests,
        vec![(ip[0].as_str(), format!("guest: {d}").as_str())]
    );
    assert_eq!(log(&tb, 0), format!("{before}try-d\n"));
    let cf = std::fs::read_to_string(&cf_path).unwrap();
    assert!(cf.contains("type: ApplyCommandSuccess"), "{cf}");
}
