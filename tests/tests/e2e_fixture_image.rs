//! The fixture cluster image's hook scripts on a testbed node, run the way
//! sealos runs hooks (cwd = `<rootfs>/scripts`, `bash <script> <args>`):
//! the staged tree copied with `ferry scp`, hooks run with `ferry exec`;
//! the REAL registry answers `/v2/` with 200 after init-registry (also on a
//! re-run), init-cri finds it as sealos.hub:5000, init installs and starts
//! the kubelet fixture, and the clean hooks leave no process, port or
//! binary behind.

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
}

fn http_code(tb: &Testbed, url: &str) -> String {
    let out = tb
        .exec(
            0,
            &[
                "curl",
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--max-time",
                "3",
                url,
            ],
        )
        .unwrap();
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

    // The real registry, started by init-registry.sh, answers /v2/.
    for run in ["first", "re-run"] {
        let out = hook(&["init-registry.sh", "/var/lib/registry", "/etc/registry"]);
        assert!(
            out.status.success(),
            "init-registry ({run}): {}",
            stderr(&out)
        );
        assert_eq!(http_code(&tb, "http://127.0.0.1:5000/v2/"), "200", "{run}");
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
