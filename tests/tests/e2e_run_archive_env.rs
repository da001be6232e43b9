//! Installs from archives and Clusterfiles, `-e` persisted, `add` with its
//! own SSH, on one 3-node testbed with the fixture cluster image (built
//! with `ferry build`, saved with `ferry save`, the store then left
//! behind: every run starts from an archive file):
//! - `run k8s.tar` (oci-archive) on node1 with `-e defaultVIP=10.103.97.9
//!   -e MARK=one`: ClusterSuccess, the stored spec.image is the name the
//!   archive carries and spec.env holds both values;
//! - `run app.tar` (docker-archive, no hosts: the running cluster) appends
//!   the app and its CMD runs on master0;
//! - node2's sshd gets `PermitRootLogin no`; `add --nodes node2 -u alice -p
//!   PW` joins it (the cluster's root login would be refused): the stored
//!   group has `ssh.user: alice`, and node2 sees the env of the first run
//!   (a template of the image rendering MARK and defaultVIP, the kubeadm
//!   join endpoint on the VIP); then `reset` reaches node2 as alice to
//!   remove its agent;
//! - cluster `second` on node3: `run -f Clusterfile k8s-docker.tar` (a
//!   docker-archive into an empty store) runs the Clusterfile's
//!   spec.command on the host.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

mod common;

use std::path::Path;
use std::process::Output;
use std::time::Instant;

use common::{Bastion, close_root_login, json_lines, stage_fixture_image, stderr, stdout};
use ferry_shared::clusterfile::Clusterfile;
use ferry_tests::testbed::{Testbed, TestbedConfig};

const K8S: &str = "localhost/ferry-fixture/kubernetes:v1.27.7";
const APP: &str = "localhost/ferry-test/app:v1";
const DATA: &str = "/var/lib/ferry/data";
const VIP: &str = "10.103.97.9";

fn ok(b: &Bastion, store: &Path, args: &[&str]) -> Output {
    let out = b.ferry_store(store, args);
    assert!(out.status.success(), "ferry {args:?}: {}", stderr(&out));
    out
}

fn timings(out: &Output) -> String {
    common::timings(&json_lines(&out.stdout))
}

fn stored(b: &Bastion, cluster: &str) -> Clusterfile {
    let p = b.home().join(".ferry").join(cluster).join("Clusterfile");
    let text = std::fs::read_to_string(p).unwrap();
    assert!(text.contains("phase: ClusterSuccess"), "{text}");
    Clusterfile::parse(&text).unwrap()
}

fn cat(tb: &Testbed, i: usize, path: &str) -> String {
    tb.exec_ok(i, &["sh", "-c", &format!("cat {path} 2>/dev/null; true")])
        .unwrap()
}

/// The fixture image plus a template rendering the env the tests follow,
/// and an application image whose CMD leaves a mark; both built into
/// `store` and saved as archives under `dir`.
fn build_archives(b: &Bastion, store: &Path, dir: &Path) {
    let tree = stage_fixture_image(dir);
    std::fs::write(
        tree.join("etc/ferry-env-mark.tmpl"),
        "mark={{ .MARK }} vip={{ .defaultVIP }}\n",
    )
    .unwrap();
    let app = dir.join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(app.join("app.txt"), "app\n").unwrap();
    std::fs::write(
        app.join("Kubefile"),
        "FROM scratch\nLABEL sealos.io.type=\"application\"\nCOPY app.txt .\nCMD [\"touch /var/tmp/ferry-app-ran\"]\n",
    )
    .unwrap();
    let t = Instant::now();
    ok(b, store, &["build", "-t", K8S, tree.to_str().unwrap()]);
    ok(b, store, &["build", "-t", APP, app.to_str().unwrap()]);
    for (format, file, name) in [
        ("oci-archive", "k8s.tar", K8S),
        ("docker-archive", "k8s-docker.tar", K8S),
        ("docker-archive", "app.tar", APP),
    ] {
        let f = dir.join(file);
        ok(
            b,
            store,
            &["save", "-m", format, "-f", f.to_str().unwrap(), name],
        );
    }
    println!(
        "RUN-MEASURE archive-env build+save_ms={}",
        t.elapsed().as_millis()
    );
}

#[test]
fn run_archives_clusterfile_env_and_add_as_alice() {
    let tb = Testbed::up(TestbedConfig::nodes(3)).expect("testbed up");
    let b = Bastion::new(&tb);
    let ip: Vec<String> = tb.nodes().iter().map(|n| n.ip.to_string()).collect();
    let root_pw = tb.password("root").unwrap();
    let alice_pw = tb.password("alice").unwrap();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    build_archives(&b, &b.home().join("build-store"), dir);
    let k8s_oci = dir.join("k8s.tar");
    let k8s_docker = dir.join("k8s-docker.tar");
    let app = dir.join("app.tar");
    let store = b.home().join("store");

    // run from an oci-archive, -e persisted.
    let out = ok(
        &b,
        &store,
        &[
            "--output",
            "json",
            "run",
            k8s_oci.to_str().unwrap(),
            "--masters",
            &ip[0],
            "-p",
            root_pw,
            "-e",
            &format!("defaultVIP={VIP}"),
            "-e",
            "MARK=one",
        ],
    );
    println!(
        "RUN-MEASURE archive-env run-oci-archive 1 {}",
        timings(&out)
    );
    let cf = stored(&b, "default");
    assert_eq!(cf.cluster.spec.image, [K8S]);
    assert_eq!(
        cf.cluster.spec.env,
        [format!("defaultVIP={VIP}"), "MARK=one".into()]
    );
    let mark = format!("mark=one vip={VIP}\n");
    let rendered = format!("{DATA}/default/rootfs/etc/ferry-env-mark");
    assert_eq!(cat(&tb, 0, &rendered), mark);

    // An app from a docker-archive onto the running cluster.
    let out = ok(
        &b,
        &store,
        &["--output", "json", "run", app.to_str().unwrap()],
    );
    println!("RUN-MEASURE archive-env run-app-archive {}", timings(&out));
    assert_eq!(stored(&b, "default").cluster.spec.image, [K8S, APP]);
    tb.exec_ok(0, &["test", "-f", "/var/tmp/ferry-app-ran"])
        .expect("the app's CMD ran on master0");

    // add as alice onto a node whose root login is closed; no -e given:
    // the stored env is what node2 gets.
    close_root_login(&tb, 1);
    let out = ok(
        &b,
        &store,
        &[
            "--output", "json", "add", "--nodes", &ip[1], "-u", "alice", "-p", alice_pw,
        ],
    );
    println!("RUN-MEASURE archive-env add-as-alice {}", timings(&out));
    assert!(!stdout(&out).contains(alice_pw) && !stderr(&out).contains(alice_pw));
    let cf = stored(&b, "default");
    let group = cf
        .cluster
        .spec
        .hosts
        .iter()
        .find(|g| g.ips.contains(&ip[1]))
        .unwrap();
    let ssh = group.ssh.as_ref().expect("node2's group records its ssh");
    assert_eq!(ssh.user, "alice");
    assert_eq!(ssh.passwd.expose(), alice_pw);
    assert_eq!(cf.cluster.spec.ssh.user, "root");
    assert_eq!(
        cat(&tb, 1, &rendered),
        mark,
        "node2 sees the first run's -e"
    );
    let join = cat(&tb, 1, &format!("{DATA}/default/kubeadm/kubeadm-join.yaml"));
    assert!(join.contains(&format!("{VIP}:6443")), "{join}");

    // reset reaches node2 over SSH as alice (root would be refused).
    let out = ok(&b, &store, &["reset"]);
    assert!(stdout(&out).contains("reset: done"), "{}", stdout(&out));
    let left = tb
        .exec_ok(
            1,
            &["sh", "-c", "ls /var/lib/ferry/agent 2>/dev/null | wc -l"],
        )
        .unwrap();
    assert_eq!(left.trim(), "0", "node2's agent removed");

    // Cluster `second`: run -f with spec.command, the image from a
    // docker-archive loaded into an empty store.
    let file = dir.join("Clusterfile");
    std::fs::write(
        &file,
        format!(
            "apiVersion: apps.sealos.io/v1beta1\nkind: Cluster\nmetadata: {{name: second}}\nspec:\n  hosts:\n  - ips: [{}]\n    roles: [master]\n  ssh: {{user: root, passwd: {root_pw}}}\n  command: [\"touch /var/tmp/ferry-clusterfile-command\"]\n",
            ip[2]
        ),
    )
    .unwrap();
    let store2 = b.home().join("store2");
    let out = ok(
        &b,
        &store2,
        &[
            "--output",
            "json",
            "-c",
            "second",
            "run",
            "-f",
            file.to_str().unwrap(),
            k8s_docker.to_str().unwrap(),
        ],
    );
    println!(
        "RUN-MEASURE archive-env run-f-docker-archive 1 {}",
        timings(&out)
    );
    let cf = stored(&b, "second");
    assert_eq!(cf.cluster.spec.image, [K8S]);
    assert_eq!(
        cf.cluster.spec.command,
        ["touch /var/tmp/ferry-clusterfile-command"]
    );
    tb.exec_ok(2, &["test", "-f", "/var/tmp/ferry-clusterfile-command"])
        .expect("spec.command ran on node3");
}
