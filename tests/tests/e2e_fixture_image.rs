//! The fixture cluster image's hook scripts on a testbed node, run the way
//! sealos runs hooks (cwd = `<rootfs>/scripts`, `bash <script> <args>`):
//! the staged tree copied with `ferry scp`, hooks run with `ferry exec`;
//! init-registry refuses to start without `etc/registry_htpasswd`; the REAL
//! registry answers `/v2/` with 401 without and 200 with the htpasswd's
//! credentials (also on a re-run), init-cri finds it as sealos.hub:5000
//! (authenticating when the env has the credentials), init installs and
//! starts the kubelet fixture, and the clean hooks leave no process, port or binary behind.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Bastion, ferry_bin, stderr};
use ferry_tests::poll_until;
use ferry_tests::testbed::{Testbed, TestbedConfig};

const ROOTFS: &str = "/var/lib/ferry/data/fixture/rootfs";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

/// `{{ .key }}` → value for the image's three templates (the pipeline
/// renders them with the full Go template engine; these use plain keys).
fn render_templates(root: &Path, env: &BTreeMap<&str, String>) {
    for t in ["registry_config.yml", "registry.yml", "kubelet.env"] {
        let src = root.join("etc").join(format!("{t}.tmpl"));
        let mut text = std::fs::read_to_string(&src).unwrap();
        for (k, v) in env {
            text = text.replace(&format!("{{{{ .{k} }}}}"), v);
        }
        assert!(!text.contains("{{"), "unrendered key in {t}: {text}");
        std::fs::write(root.join("etc").join(t), text).unwrap();
    }
}

fn stage(out: &Path) {
    let bins = ferry_bin().parent().unwrap().to_path_buf();
    let st = Command::new("bash")
        .arg(repo().join("packaging/fixtures/build-kubernetes.sh"))
        .arg(out)
        .env("KUBE_FIXTURE_BIN_DIR", &bins)
        .status()
        .unwrap();
    assert!(st.success(), "build-kubernetes.sh");
    let env: BTreeMap<&str, String> = [
        ("registryData", "/var/lib/registry"),
        ("registryConfig", "/etc/registry"),
        ("registryDomain", "sealos.hub"),
        ("registryPort", "5000"),
        ("registryUsername", "admin"),
        ("registryPassword", "passw0rd"),
        (
            "SEALOS_SYS_CRI_ENDPOINT",
            "/var/run/containerd/containerd.sock",
        ),
        ("SEALOS_SYS_IMAGE_ENDPOINT", "/var/run/image-cri-shim.sock"),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.to_string()))
    .collect();
    render_templates(out, &env);
    // What the pipeline writes on the bastion from registryUsername and
    // registryPassword (sealos: htpasswd, bcrypt).
    let hash = bcrypt::hash("passw0rd", 10).unwrap();
    std::fs::write(out.join("etc/registry_htpasswd"), format!("admin:{hash}\n")).unwrap();
}

/// The HTTP status of `url` from node 0, with curl's `extra` arguments.
fn http_code(tb: &Testbed, url: &str, extra: &[&str]) -> String {
    let mut argv = vec![
        "curl",
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--max-time",
        "3",
    ];
    argv.extend_from_slice(extra);
    argv.push(url);
    let out = tb.exec(0, &argv).unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn port_closed(tb: &Testbed, port: u16) -> bool {
    let probe = format!("exec 3<>/dev/tcp/127.0.0.1/{port}");
    !tb.exec(0, &["bash", "-c", &probe])
        .unwrap()
        .status
        .success()
}

#[test]
fn fixture_image_hooks_run_on_a_testbed_node() {
    let tb = Testbed::up(TestbedConfig::nodes(1)).expect("testbed up");
    let b = Bastion::new(&tb);
    let ip = tb.nodes()[0].ip.to_string();
    let pw = tb.password("root").unwrap().to_string();
    let out = b.ferry(&["agent", "install", "--masters", &ip, "-p", &pw]);
    assert!(out.status.success(), "install: {}", stderr(&out));

    let dir = tempfile::tempdir().unwrap();
    let staged = dir.path().join("kubernetes");
    stage(&staged);
    let out = b.ferry(&["scp", staged.to_str().unwrap(), ROOTFS]);
    assert!(out.status.success(), "scp: {}", stderr(&out));

    let scripts = format!("{ROOTFS}/scripts");
    let hook = |args: &[&str]| {
        let mut all = vec![
            "exec",
            "--timeout",
            "120",
            "--cwd",
            &scripts,
            "-e",
            "registryPort=5000",
            "--",
            "bash",
        ];
        all.extend_from_slice(args);
        b.ferry(&all)
    };
    let out = hook(&["check.sh", "/var/lib/registry"]);
    assert!(out.status.success(), "check: {}", stderr(&out));

    // As labring's: no etc/registry_htpasswd, no registry.
    let htpasswd = format!("{ROOTFS}/etc/registry_htpasswd");
    tb.exec_ok(0, &["mv", &htpasswd, "/tmp/registry_htpasswd"])
        .unwrap();
    let out = hook(&["init-registry.sh", "/var/lib/registry", "/etc/registry"]);
    assert!(!out.status.success(), "init-registry without htpasswd");
    let err = format!("{}{}", common::stdout(&out), stderr(&out));
    assert!(err.contains("registry_htpasswd is missing"), "{err}");
    tb.exec_ok(0, &["mv", "/tmp/registry_htpasswd", &htpasswd])
        .unwrap();

    // The real registry, started by init-registry.sh, answers /v2/ with
    // 401 without credentials and 200 with the htpasswd's.
    let v2 = "http://127.0.0.1:5000/v2/";
    for run in ["first", "re-run"] {
        let out = hook(&["init-registry.sh", "/var/lib/registry", "/etc/registry"]);
        assert!(
            out.status.success(),
            "init-registry ({run}): {}",
            stderr(&out)
        );
        assert_eq!(http_code(&tb, v2, &[]), "401", "{run}");
        assert_eq!(
            http_code(&tb, v2, &["-u", "admin:passw0rd"]),
            "200",
            "{run}"
        );
        assert_eq!(http_code(&tb, v2, &["-u", "admin:wrong"]), "401", "{run}");
    }
    let procs = tb
        .exec_ok(0, &["pgrep", "-c", "-f", "^/usr/bin/registry serve"])
        .unwrap();
    assert_eq!(procs.trim(), "1", "one registry after a re-run");

    // init-cri validates that sealos.hub resolves and serves the registry.
    let out = hook(&["init-cri.sh", "sealos.hub", "5000"]);
    assert!(!out.status.success(), "sealos.hub does not resolve yet");
    tb.exec_ok(
        0,
        &[
            "bash",
            "-c",
            &format!("echo '{ip} sealos.hub' >> /etc/hosts"),
        ],
    )
    .unwrap();
    let out = hook(&["init-cri.sh", "sealos.hub", "5000"]);
    assert!(out.status.success(), "init-cri: {}", stderr(&out));
    // With the registry credentials in the env it authenticates: 200, and
    // credentials the registry refuses fail at once.
    let cri_as = |user: &str, password: &str| {
        let (u, p) = (
            format!("registryUsername={user}"),
            format!("registryPassword={password}"),
        );
        b.ferry(&[
            "exec",
            "--timeout",
            "60",
            "--cwd",
            &scripts,
            "-e",
            &u,
            "-e",
            &p,
            "--",
            "bash",
            "init-cri.sh",
            "sealos.hub",
            "5000",
        ])
    };
    let out = cri_as("admin", "passw0rd");
    assert!(
        out.status.success(),
        "init-cri with credentials: {}",
        stderr(&out)
    );
    let out = cri_as("admin", "wrong-pw");
    assert!(!out.status.success(), "init-cri with a wrong password");
    let err = format!("{}{}", common::stdout(&out), stderr(&out));
    assert!(err.contains("refused registryUsername 'admin'"), "{err}");
    assert!(!err.contains("wrong-pw"), "password in the output: {err}");
    tb.exec_ok(
        0,
        &[
            "test",
            "-f",
            "/etc/containerd/certs.d/sealos.hub:5000/hosts.toml",
        ],
    )
    .unwrap();

    // init.sh installs the fixtures and starts the kubelet fixture.
    for _ in 0..2 {
        let out = hook(&["init.sh"]);
        assert!(out.status.success(), "init: {}", stderr(&out));
    }
    let v = tb.exec_ok(0, &["kubeadm", "--version"]).unwrap();
    assert!(v.contains("FIXTURE"), "{v}");

    tb.exec_ok(
        0,
        &[
            "bash",
            "-c",
            "kill -0 \"$(cat /var/lib/kubelet-fixture/kubelet.pid)\"",
        ],
    )
    .unwrap();

    // The clean hooks undo everything.
    for args in [
        &["clean.sh"][..],
        &["clean-cri.sh", "/var/lib/containerd"],
        &["clean-registry.sh", "/var/lib/registry", "/etc/registry"],
    ] {
        let out = hook(args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    }
    assert!(
        poll_until(Instant::now() + Duration::from_secs(10), || port_closed(
            &tb, 5000
        )),
        "registry port closed after clean-registry"
    );
    for gone in [
        "/usr/bin/registry",
        "/usr/bin/kubeadm",
        "/usr/bin/kubelet",
        "/etc/registry",
        "/etc/containerd",
        "/var/lib/kubelet-fixture",
        "/run/ferry-fixture/registry.pid",
    ] {
        let st = tb.exec(0, &["test", "-e", gone]).unwrap();
        assert!(!st.status.success(), "{gone} left behind");
    }
    let left = tb
        .exec(0, &["pgrep", "-f", "^/usr/bin/(registry|kubelet)"])
        .unwrap();
    assert!(
        !left.status.success(),
        "no fixture process left: {}",
        String::from_utf8_lossy(&left.stdout)
    );
}

/// Writes `(relative path, contents)` under a fresh local dir.
fn local_tree(files: &[(String, String)]) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for (rel, text) in files {
        let p = d.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
    }
    d
}

/// The kubeadm fixture on two testbed nodes, driven through the agents as
/// the pipeline does: `kubeadm init` on node1 with ferry's PKI and config
/// (its apiserver daemon outlives the exec), a worker `kubeadm join` on
/// node2 across the network with the CA pin, then clean.sh stops it all.
#[test]
fn kubeadm_fixture_init_and_join_across_testbed_nodes() {
    use ferry_shared::kubeadm::{
        BootstrapToken, ClusterFacts, JoinRole, KubeadmDocs, ca_cert_hash,
    };
    use ferry_shared::pki::kube::{KubePkiSpec, SEALOS_VALIDITY_YEARS, generate_all};

    let tb = Testbed::up(TestbedConfig::nodes(2)).expect("testbed up");
    let b = Bastion::new(&tb);
    let ip: Vec<String> = tb.nodes().iter().map(|n| n.ip.to_string()).collect();
    let pw = tb.password("root").unwrap().to_string();
    let out = b.ferry(&[
        "agent",
        "install",
        "--masters",
        &ip[0],
        "--nodes",
        &ip[1],
        "-p",
        &pw,
    ]);
    assert!(out.status.success(), "install: {}", stderr(&out));
    let dir = tempfile::tempdir().unwrap();
    let staged = dir.path().join("kubernetes");
    stage(&staged);
    assert!(
        b.ferry(&["scp", staged.to_str().unwrap(), ROOTFS])
            .status
            .success()
    );
    for i in 0..2 {
        let hosts = format!(
            "echo '{0} sealos.hub' >> /etc/hosts; echo '{0} apiserver.cluster.local' >> /etc/hosts",
            ip[0]
        );
        tb.exec_ok(i, &["bash", "-c", &hosts]).unwrap();
    }
    let scripts = format!("{ROOTFS}/scripts");
    let on = |ips: &str, args: &[&str]| {
        let mut all = vec![
            "exec",
            "--ips",
            ips,
            "--timeout",
            "120",
            "--cwd",
            &scripts,
            "-e",
            "registryPort=5000",
            "--",
        ];
        all.extend_from_slice(args);
        b.ferry(&all)
    };
    let all = ip.join(",");
    assert!(
        on(
            &ip[0],
            &[
                "bash",
                "init-registry.sh",
                "/var/lib/registry",
                "/etc/registry"
            ]
        )
        .status
        .success()
    );
    for args in [
        &["bash", "init-cri.sh", "sealos.hub", "5000"][..],
        &["bash", "init.sh"],
    ] {
        let out = on(&all, args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    }

    // ferry's PKI and kubeadm config for master0 = node1.
    let spec = KubePkiSpec {
        node_name: "node1".into(),
        node_ip: ip[0].parse().unwrap(),
        control_plane_host: "apiserver.cluster.local".into(),
        control_plane_port: 6443,
        cert_sans: vec![
            "127.0.0.1".into(),
            "apiserver.cluster.local".into(),
            "10.103.97.2".into(),
            ip[0].clone(),
        ],
        service_cidr: "10.96.0.0/22".into(),
        dns_domain: "cluster.local".into(),
        validity_years: SEALOS_VALIDITY_YEARS,
        kube_minor: 27,
    };
    let mut files: Vec<(String, String)> = generate_all(&spec, time::OffsetDateTime::now_utc())
        .unwrap()
        .into_iter()
        .map(|f| (f.path, f.contents))
        .collect();
    // The pki step also places the audit policy the apiserver is pointed at.
    files.push((
        ferry_shared::kubeadm::AUDIT_POLICY_PATH
            .trim_start_matches("/etc/kubernetes/")
            .to_string(),
        ferry_shared::kubeadm::AUDIT_POLICY.to_string(),
    ));
    let ca = files
        .iter()
        .find(|(p, _)| p == "pki/ca.crt")
        .unwrap()
        .1
        .clone();
    let docs = KubeadmDocs::new(
        ClusterFacts {
            kube_version: "v1.27.7".into(),
            master0: ip[0].parse().unwrap(),
            masters: vec![ip[0].parse().unwrap()],
            vip: "10.103.97.2".parse().unwrap(),
            token: BootstrapToken::parse("abcdef.0123456789abcdef").unwrap(),
            certificate_key: "ab".repeat(32),
        },
        &[],
    )
    .unwrap();
    let pki = local_tree(&files);
    assert!(
        b.ferry(&[
            "scp",
            "--ips",
            &ip[0],
            pki.path().to_str().unwrap(),
            "/etc/kubernetes"
        ])
        .status
        .success()
    );
    let kdir = "/var/lib/ferry/data/fixture/kubeadm";
    let init = local_tree(&[("kubeadm-init.yaml".into(), docs.init_yaml().unwrap())]);
    assert!(
        b.ferry(&["scp", "--ips", &ip[0], init.path().to_str().unwrap(), kdir])
            .status
            .success()
    );
    let out = b.ferry(&[
        "exec",
        "--ips",
        &ip[0],
        "--timeout",
        "120",
        "--",
        "kubeadm",
        "init",
        "--config",
        &format!("{kdir}/kubeadm-init.yaml"),
        "--upload-certs",
        "--skip-token-print",
        "--skip-certificate-key-print",
        "--ignore-preflight-errors=SystemVerification",
    ]);
    assert!(out.status.success(), "kubeadm init: {}", stderr(&out));

    // The apiserver daemon outlived the exec and answers node2.
    let health = tb
        .exec_ok(
            1,
            &[
                "curl",
                "-sk",
                "--max-time",
                "5",
                &format!("https://{}:6443/healthz", ip[0]),
            ],
        )
        .unwrap();
    assert_eq!(health, "ok");

    // Worker join (no load balancer here: straight to master0).
    let join = docs
        .join_yaml(
            &JoinRole::Worker {
                ip: ip[1].parse().unwrap(),
            },
            &ca_cert_hash(&ca).unwrap(),
        )
        .unwrap()
        .replace("10.103.97.2:6443", &format!("{}:6443", ip[0]));
    let jt = local_tree(&[("kubeadm-join.yaml".into(), join)]);
    assert!(
        b.ferry(&["scp", "--ips", &ip[1], jt.path().to_str().unwrap(), kdir])
            .status
            .success()
    );
    let out = b.ferry(&[
        "exec",
        "--ips",
        &ip[1],
        "--timeout",
        "120",
        "--",
        "kubeadm",
        "join",
        "--config",
        &format!("{kdir}/kubeadm-join.yaml"),
        "--ignore-preflight-errors=SystemVerification",
    ]);
    assert!(out.status.success(), "kubeadm join: {}", stderr(&out));
    let log = tb
        .exec_ok(1, &["cat", "/var/log/kubeadm-fixture.log"])
        .unwrap();
    let join_rec: serde_json::Value = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .rfind(|r| r["command"] == "join")
        .unwrap();
    assert_eq!(join_rec["ok"], true, "{log}");
    assert_eq!(join_rec["endpoint"], format!("{}:6443", ip[0]));
    tb.exec_ok(
        1,
        &["bash", "-c", "curl -sf http://127.0.0.1:10248/healthz"],
    )
    .unwrap();

    for (ips, args) in [
        (&all, &["bash", "clean.sh"][..]),
        (
            &ip[0],
            &[
                "bash",
                "clean-registry.sh",
                "/var/lib/registry",
                "/etc/registry",
            ],
        ),
    ] {
        let out = on(ips, args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    }
    assert!(
        poll_until(Instant::now() + Duration::from_secs(10), || port_closed(
            &tb, 6443
        )),
        "apiserver fixture stopped by clean.sh"
    );
    let left = tb
        .exec(
            0,
            &["pgrep", "-f", "kubeadm serve-apiserver|/usr/bin/kubelet"],
        )
        .unwrap();
    assert!(
        !left.status.success(),
        "{}",
        String::from_utf8_lossy(&left.stdout)
    );
}
