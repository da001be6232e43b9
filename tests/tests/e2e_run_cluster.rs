//! `ferry run` end to end on the testbed: 1 master + 2 workers with a
//! fixture cluster image (a rootfs with hooks, a `kubeadm` fixture that
//! verifies the PKI it is given with openssl, serves TLS on :6443 on
//! masters and joins workers through the VIP, and a fixture registry on
//! master0). Then: the Clusterfile says ClusterSuccess, every fixture
//! check passed, `sealos.hub:5000` answers from every node, a re-run is a
//! no-op per the journal, and `reset` leaves no ferry files, hosts entries
//! or listening ports. Prints the wall time per phase (`RUN-MEASURE`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{Bastion, stderr};
use ferry_tests::testbed::{Testbed, TestbedConfig};
use serde_json::Value;

/// FIXTURE standing in for kubeadm (which cannot run on the testbed).
const KUBEADM_FIXTURE: &str = r#"#!/bin/bash
# FIXTURE kubeadm: checks the PKI with openssl, serves TLS /healthz on :6443
# on masters, connects to the join endpoint (workers: the VIP).
set -eu
log=/var/log/ferry-fixture.log
st=/var/lib/kubeadm-fixture
cmd=$1; shift
sub="${1:-} ${2:-}"
cfg=""
while [ $# -gt 0 ]; do case $1 in --config) cfg=$2; shift 2;; *) shift;; esac; done
serve() {
  mkdir -p $st && cd $st
  printf 'HTTP/1.0 200 ok\r\nContent-Type: text/plain\r\n\r\nok\n' > healthz
  nohup openssl s_server -accept 6443 -cert /etc/kubernetes/pki/apiserver.crt -key /etc/kubernetes/pki/apiserver.key -HTTP -quiet </dev/null >/dev/null 2>&1 &
  echo $! > $st/apiserver.pid
  for i in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/6443) 2>/dev/null && return 0; sleep 0.1; done
  echo "apiserver fixture did not start" >&2; exit 1
}
case $cmd in
  init)
    grep -q "kind: InitConfiguration" "$cfg"
    openssl verify -CAfile /etc/kubernetes/pki/ca.crt /etc/kubernetes/pki/apiserver.crt
    openssl verify -CAfile /etc/kubernetes/pki/etcd/ca.crt /etc/kubernetes/pki/etcd/server.crt
    serve
    echo "check: init ok" >> $log ;;
  join)
    grep -q "kind: JoinConfiguration" "$cfg"
    ep=$(awk '/apiServerEndpoint:/ {print $2}' "$cfg")
    ok=""
    for i in $(seq 100); do
      if openssl s_client -connect "$ep" </dev/null 2>/dev/null | grep -q "BEGIN CERTIFICATE"; then ok=1; break; fi
      sleep 0.2
    done
    [ -n "$ok" ] || { echo "cannot reach $ep over TLS" >&2; exit 1; }
    if grep -q "certificateKey:" "$cfg"; then
      openssl verify -CAfile /etc/kubernetes/pki/ca.crt /etc/kubernetes/pki/apiserver.crt
      serve
    fi
    echo "check: join ok via $ep" >> $log ;;
  reset)
    [ -f $st/apiserver.pid ] && kill "$(cat $st/apiserver.pid)" 2>/dev/null || true
    rm -rf $st ;;
  config)
    # `config images list`: this image ships no container images (no
    # crictl either), so there is nothing to pre-pull.
    [ "$sub" = "images list" ] || { echo "fixture kubeadm: unknown config command" >&2; exit 1; } ;;
  token)
    # `token create <token> ...` on master0 before a join batch: the
    # fixture's joins do not check tokens (the ferry-kube-fixtures do).
    [ "${sub%% *}" = create ] || { echo "fixture kubeadm: unknown token command" >&2; exit 1; }
    echo "check: token created" >> $log ;;
  *) echo "fixture kubeadm: unknown command $cmd" >&2; exit 1 ;;
esac
"#;

fn write(root: &Path, rel: &str, data: &str, mode: u32) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, data).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The fixture image: `config.json` + `rootfs/`.
fn fixture_image(dir: &Path) {
    let config = serde_json::json!({"config": {
        "Labels": {
            "sealos.io.type": "rootfs", "sealos.io.version": "v1beta1", "version": "v1.27.7",
            "check": "check.sh $registryData", "init": "init.sh",
            "init-registry": "init-registry.sh $registryData $registryPort",
            "clean": "clean.sh", "clean-registry": "clean-registry.sh", "vip": "$defaultVIP"
        },
        "Env": ["registryData=/var/lib/registry", "registryPort=5000", "registryDomain=sealos.hub", "defaultVIP=10.103.97.2"],
        "Cmd": ["echo guest $SEALOS_SYS_RUN_MODE >> /var/log/ferry-fixture.log"]
    }});
    write(dir, "config.json", &config.to_string(), 0o644);
    let r = dir.join("rootfs");
    write(&r, "bin/kubeadm", KUBEADM_FIXTURE, 0o755);
    write(
        &r,
        "etc/fixture.conf.tmpl",
        "domain={{ .registryDomain }}\n",
        0o644,
    );
    write(
        &r,
        "scripts/check.sh",
        "#!/bin/bash\nset -e\n[ ! -f \"$1\" ]\necho \"check: hook check $1\" >> /var/log/ferry-fixture.log\n",
        0o755,
    );
    write(
        &r,
        "scripts/init.sh",
        "#!/bin/bash\nset -e\ngrep -q domain=sealos.hub ../etc/fixture.conf\ninstall -m 0755 ../bin/kubeadm /usr/local/bin/kubeadm\necho \"check: hook init\" >> /var/log/ferry-fixture.log\n",
        0o755,
    );
    write(
        &r,
        "scripts/init-registry.sh",
        "#!/bin/bash\nset -e\ncd \"$1\"\nnohup busybox httpd -f -p \"$2\" -h \"$1\" </dev/null >/dev/null 2>&1 &\necho $! > /var/run/fixture-registry.pid\necho \"check: hook init-registry\" >> /var/log/ferry-fixture.log\n",
        0o755,
    );
    write(
        &r,
        "scripts/clean.sh",
        "#!/bin/bash\nrm -f /usr/local/bin/kubeadm /var/log/ferry-fixture.log\n",
        0o755,
    );
    write(
        &r,
        "scripts/clean-registry.sh",
        "#!/bin/bash\n[ -f /var/run/fixture-registry.pid ] && kill \"$(cat /var/run/fixture-registry.pid)\"\nrm -f /var/run/fixture-registry.pid\n",
        0o755,
    );
    write(dir, "rootfs/registry/v2/index.html", "{}\n", 0o644);
}

fn run_events(ev: &[Value]) -> Vec<&Value> {
    ev.iter().filter(|e| e["phase"] == "run").collect()
}

/// The backup on master0: root-only (0700 dir, 0600 files), what a
/// recovery needs (Clusterfile, Kubernetes PKI), and no SSH password, agent
/// CA, coordinator key or bootstrap token file.
fn backup_holds_no_secret_of_the_bastion(tb: &Testbed, pw: &str) {
    let dir = "/var/lib/ferry/data/default/backup";
    let find = r#"stat -c '%a %u:%g' "$1"; cd "$1" && find . -mindepth 1 -printf '%P %m %U:%G\n' | LC_ALL=C sort"#;
    let listing = tb.exec_ok(0, &["sh", "-c", find, "sh", dir]).unwrap();
    let mut lines = listing.lines();
    assert_eq!(lines.next(), Some("700 0:0"), "{listing}");
    for line in lines {
        assert!(
            line.ends_with(" 600 0:0") || line.ends_with(" 700 0:0"),
            "{line}"
        );
        for gone in [
            "agent-ca",
            "coordinator.",
            "kubeadm-token",
            "events",
            "lock",
        ] {
            assert!(!line.contains(gone), "{gone} backed up: {line}");
        }
    }
    for kept in [
        "Clusterfile 600",
        "agents.json 600",
        "journal.jsonl 600",
        "pki/kubernetes/",
    ] {
        assert!(listing.contains(kept), "{kept} missing:\n{listing}");
    }
    let grep = r#"grep -rlF -e "$1" "$2"; true"#;
    let hits = tb.exec_ok(0, &["sh", "-c", grep, "sh", pw, dir]).unwrap();
    assert!(hits.trim().is_empty(), "the SSH password is in {hits}");
    let cf = tb
        .exec_ok(0, &["cat", &format!("{dir}/Clusterfile")])
        .unwrap();
    assert!(!cf.contains("passwd") && cf.contains("hosts:"), "{cf}");
}

#[test]
fn run_one_master_two_nodes_rerun_noop_and_reset() {
    let tb = Testbed::up(TestbedConfig::nodes(3)).expect("testbed up");
    let b = Bastion::new(&tb);
    let ip: Vec<String> = tb.nodes().iter().map(|n| n.ip.to_string()).collect();
    let img = tempfile::tempdir().unwrap();
    fixture_image(img.path());
    let image = img.path().to_str().unwrap();
    let pw = tb.password("root").unwrap();
    let args = [
        "run",
        image,
        "--masters",
        &ip[0],
        "--nodes",
        &format!("{},{}", ip[1], ip[2]),
        "-p",
        pw,
    ];

    let (out, ev) = b.ferry_json(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let done = run_events(&ev)
        .into_iter()
        .rev()
        .find(|e| e["node"] == "" && e["message"].as_str().unwrap_or("").starts_with("timings"))
        .unwrap()
        .clone();
    println!(
        "RUN-MEASURE 1+2 total_ms={} {}",
        done["counters"]["duration_ms"], done["message"]
    );

    let state = b.home().join(".ferry/default");
    let cf = std::fs::read_to_string(state.join("Clusterfile")).unwrap();
    assert!(cf.contains("phase: ClusterSuccess"), "{cf}");
    let mode = std::fs::metadata(state.join("Clusterfile"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    assert!(!cf.contains(pw) || mode == 0o600);
    assert!(state.join("etc/admin.conf").is_file());
    assert!(state.join("journal.jsonl").is_file() && state.join("events.jsonl").is_file());

    for (i, _) in ip.iter().enumerate() {
        let log = tb
            .exec_ok(i, &["cat", "/var/log/ferry-fixture.log"])
            .unwrap();
        for want in ["check: hook check /var/lib/registry", "check: hook init"] {
            assert!(log.contains(want), "node {i}: `{want}` missing:\n{log}");
        }
        if i == 0 {
            assert!(
                log.contains("check: init ok") && log.contains("hook init-registry"),
                "{log}"
            );
            assert!(log.contains("guest master"), "{log}");
        } else {
            assert!(
                log.contains("check: join ok via 10.103.97.2:6443"),
                "worker {i} did not join through the VIP:\n{log}"
            );
            assert!(log.contains("guest node"), "{log}");
        }
        let hosts = tb.exec_ok(i, &["cat", "/etc/hosts"]).unwrap();
        assert!(
            hosts.contains(&format!("{} sealos.hub # ferry", ip[0])),
            "{hosts}"
        );
        let reg = tb
            .exec_ok(i, &["curl", "-sf", "http://sealos.hub:5000/v2/"])
            .unwrap();
        assert_eq!(
            reg.trim(),
            "{}",
            "registry via sealos.hub:5000 from node {i}"
        );
    }
    let kubecfg = tb.exec_ok(0, &["cat", "/root/.kube/config"]).unwrap();
    assert!(kubecfg.contains("https://apiserver.cluster.local:6443"));
    backup_holds_no_secret_of_the_bastion(&tb, pw);

    // A long-lived cluster's journal outgrows one exec's stdin (1 MiB): the
    // last record repeated (what many re-runs leave) to 3 MiB.
    let jpath = state.join("journal.jsonl");
    let mut big = std::fs::read_to_string(&jpath).unwrap();
    let last = big.lines().last().unwrap().to_string();
    while big.len() < 3 << 20 {
        big.push_str(&last);
        big.push('\n');
    }
    std::fs::write(&jpath, &big).unwrap();

    // Re-run: every per-host step is skipped per the journal.
    let (out, ev) = b.ferry_json(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    // ... and the backup carries that journal whole.
    let on_node = tb
        .exec_ok(
            0,
            &[
                "sha256sum",
                "/var/lib/ferry/data/default/backup/journal.jsonl",
            ],
        )
        .unwrap();
    let here = std::process::Command::new("sha256sum")
        .arg(&jpath)
        .output()
        .unwrap();
    let here = String::from_utf8_lossy(&here.stdout);
    let sum = |s: &str| s.split_whitespace().next().unwrap_or("").to_string();
    assert_eq!(sum(&on_node), sum(&here), "the backup's journal differs");
    let started: Vec<&Value> = run_events(&ev)
        .into_iter()
        .filter(|e| e["node"] != "" && e["kind"] == "started")
        .filter(|e| !e["message"].as_str().unwrap().starts_with("backup"))
        .collect();
    assert!(started.is_empty(), "re-run redid steps: {started:?}");
    let skipped = run_events(&ev)
        .into_iter()
        .filter(|e| e["counters"]["skipped"] == 1)
        .count();
    assert!(skipped >= 3 * 4, "{skipped} skips");

    // A truncated CA key on the bastion (a torn write) stops the run before
    // any host changes, naming the file and what to do; it is left as is.
    let ca_key = state.join(format!("pki/kubernetes/{}/pki/ca.key", ip[0]));
    let good_key = std::fs::read(&ca_key).unwrap();
    std::fs::write(&ca_key, &good_key[..good_key.len() / 2]).unwrap();
    let journal_before = std::fs::read_to_string(state.join("journal.jsonl")).unwrap();
    let (out, ev) = b.ferry_json(&args);
    assert!(!out.status.success(), "a damaged PKI was used");
    let failed: Vec<&str> = run_events(&ev)
        .into_iter()
        .filter(|e| e["kind"] == "failed")
        .filter_map(|e| e["message"].as_str())
        .collect();
    let msg = failed
        .iter()
        .find(|m| m.contains("PKI"))
        .unwrap_or_else(|| panic!("no PKI error in {failed:?}"));
    assert!(
        msg.contains(&ca_key.display().to_string()) && msg.contains("next:"),
        "{msg}"
    );
    let started: Vec<&Value> = run_events(&ev)
        .into_iter()
        .filter(|e| e["node"] != "" && e["kind"] == "started")
        .collect();
    assert!(started.is_empty(), "hosts touched: {started:?}");
    assert_eq!(
        std::fs::read(&ca_key).unwrap(),
        &good_key[..good_key.len() / 2]
    );
    let journal_after = std::fs::read_to_string(state.join("journal.jsonl")).unwrap();
    assert_eq!(journal_before, journal_after, "the refused run journaled");
    std::fs::write(&ca_key, &good_key).unwrap();

    // Reset: nothing of ours left on the nodes.
    let out = b.ferry(&["reset", "-p", pw]);
    assert!(out.status.success(), "{}", common::stdout(&out));
    for (i, _) in ip.iter().enumerate() {
        let left = tb.exec_ok(i, &["sh", "-c", "ls -d /var/lib/ferry /usr/local/bin/kubeadm /var/log/ferry-fixture.log /etc/kubernetes 2>/dev/null; grep '# ferry' /etc/hosts; true"]).unwrap();
        assert!(left.trim().is_empty(), "node {i} keeps: {left}");
        let ports = tb
            .exec_ok(i, &["sh", "-c", "ss -Hltn | awk '{print $4}'"])
            .unwrap();
        for p in [":5000", ":6443", ":7443"] {
            assert!(
                !ports.lines().any(|l| l.ends_with(p)),
                "node {i} still listens on {p}: {ports}"
            );
        }
    }
    assert!(!state.join("Clusterfile").exists());
}
