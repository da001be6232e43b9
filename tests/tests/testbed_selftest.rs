//! Self-test of the testbed: real namespaces, real sshd, real ssh client.
//! Needs root (CI runs as root); each test builds its own testbed.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use ferry_tests::{Testbed, TestbedConfig, TestbedError, wait_until};

fn up(nodes: usize) -> Testbed {
    Testbed::up(TestbedConfig::nodes(nodes)).unwrap_or_else(|e| panic!("testbed up: {e}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).trim().to_owned()
}

fn ok(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {:?}\n{}",
        out.status,
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Runs `remote` over ssh as `user`, requires success, returns trimmed stdout.
fn ssh_ok(tb: &Testbed, node: usize, user: &str, remote: &str) -> String {
    ok(
        &tb.ssh(node, user, remote).unwrap(),
        &format!("ssh {user}@{node} {remote}"),
    )
}

fn ssh_fails(tb: &Testbed, node: usize, user: &str, remote: &str) -> bool {
    !tb.ssh(node, user, remote).unwrap().status.success()
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| !stat.rsplit(") ").next().unwrap_or("").starts_with('Z'))
}

fn netns_list() -> String {
    text(
        &Command::new("ip")
            .args(["netns", "list"])
            .output()
            .unwrap()
            .stdout,
    )
}

fn qdiscs(netns: &str, dev: &str) -> String {
    let mut tc = Command::new("ip");
    tc.args(["netns", "exec", netns, "tc", "qdisc", "show", "dev", dev]);
    text(&tc.output().unwrap().stdout)
}

fn script() -> Command {
    let mut cmd = Command::new("bash");
    cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("testbed/testbed.sh"));
    cmd
}

#[test]
fn ssh_with_keys_and_passwords_reaches_every_node() {
    let tb = up(3);
    assert_eq!(tb.nodes().len(), 3);
    assert_eq!(tb.bastion_ip().to_string(), "10.77.0.2");
    assert_eq!(tb.password("root"), Some(ferry_tests::ROOT_PASSWORD));
    for (i, node) in tb.nodes().iter().enumerate() {
        assert_eq!(node.hostname, format!("node{}", i + 1));
        assert_eq!(ssh_ok(&tb, i, "root", "hostname"), node.hostname);
        for user in ["alice", "bob", "carol"] {
            assert_eq!(ssh_ok(&tb, i, user, "id -un"), user);
        }
    }

    // The encrypted key needs its passphrase and is authorized.
    let keygen = |pass: &str| {
        let mut cmd = Command::new("ssh-keygen");
        cmd.args(["-y", "-P", pass, "-f"])
            .arg(tb.encrypted_key_path());
        cmd.output().unwrap()
    };
    assert!(!keygen("").status.success(), "opened without passphrase");
    let public = ok(&keygen(tb.key_passphrase()), "ssh-keygen -y");
    let authorized = ssh_ok(&tb, 1, "carol", "cat ~/.ssh/authorized_keys");
    assert!(authorized.contains(public.split(' ').nth(1).unwrap()));

    // Password logins and the encrypted key, answering prompts via SSH_ASKPASS.
    let login = |user: &str, secret: &str, key: Option<&Path>| {
        let mut cmd = tb.ssh_secret_command(2, user, secret, key).unwrap();
        cmd.arg("hostname").stdin(Stdio::null()).output().unwrap()
    };
    for user in ["root", "carol"] {
        let out = login(user, tb.password(user).unwrap(), None);
        assert_eq!(ok(&out, &format!("{user} password login")), "node3");
    }
    assert!(!login("carol", "wrong-password", None).status.success());
    let out = login("bob", tb.key_passphrase(), Some(tb.encrypted_key_path()));
    assert_eq!(ok(&out, "encrypted key login"), "node3");
}

#[test]
fn nodes_are_isolated_from_host_and_each_other() {
    let tb = up(2);
    let marker = format!("/etc/ferry-selftest-{}", tb.name());
    ssh_ok(&tb, 0, "root", &format!("echo hello > {marker}"));
    assert_eq!(tb.exec_ok(0, &["cat", &marker]).unwrap().trim(), "hello");
    assert!(!Path::new(&marker).exists(), "node file leaked to the host");
    let upper = &tb.node(0).unwrap().upper;
    assert!(upper.join(marker.trim_start_matches('/')).exists());
    let other = tb.exec(1, &["cat", &marker]).unwrap();
    assert!(!other.status.success(), "node1's file visible on node2");
    assert_eq!(tb.exec_ok(1, &["hostname"]).unwrap().trim(), "node2");

    // Own PID namespace: PID 1 is the node's init, no host processes.
    let init = tb.exec_ok(0, &["cat", "/proc/1/cmdline"]).unwrap();
    assert!(init.starts_with("ferry-init"), "{init:?}");
    let procs = tb.exec_ok(0, &["ps", "-eo", "args="]).unwrap();
    assert!(procs.lines().count() < 20, "{procs}");
    let me = std::env::current_exe().unwrap();
    let me = me.file_name().unwrap().to_str().unwrap();
    assert!(!procs.contains(me), "host process visible in node: {procs}");

    // Daemonized orphans are reaped by the node's PID 1.
    let orphans = "for i in 1 2 3 4 5; do setsid sh -c 'true & exit 0'; done";
    tb.exec_ok(0, &["sh", "-c", orphans]).unwrap();
    wait_until("zombies reaped in node1", Duration::from_secs(10), || {
        let stats = tb.exec_ok(0, &["ps", "-eo", "stat="]).unwrap();
        !stats.lines().any(|s| s.starts_with('Z'))
    })
    .unwrap();
}

#[test]
fn killed_node_is_unreachable_and_restarts_with_its_files() {
    let mut tb = up(2);
    ssh_ok(&tb, 0, "root", "echo survives > /root/marker");
    let old_pid = tb.node(0).unwrap().pid.unwrap();
    tb.kill_node(0).unwrap();
    assert_eq!(tb.node(0).unwrap().pid, None);
    assert!(!alive(old_pid));
    assert!(ssh_fails(&tb, 0, "root", "true"), "ssh to a killed node");
    assert!(matches!(
        tb.exec(0, &["true"]),
        Err(TestbedError::NodeDown { .. })
    ));
    assert_eq!(ssh_ok(&tb, 1, "root", "hostname"), "node2");

    tb.start_node(0).unwrap();
    assert_ne!(tb.node(0).unwrap().pid, Some(old_pid));
    let back = ssh_ok(&tb, 0, "root", "cat /root/marker; hostname");
    assert_eq!(back, "survives\nnode1");
}

#[test]
fn unplugged_node_is_unreachable_until_replugged() {
    let tb = up(1);
    tb.set_link(0, false).unwrap();
    let start = Instant::now();
    assert!(
        ssh_fails(&tb, 0, "root", "true"),
        "ssh through an unplugged cable"
    );
    assert!(
        start.elapsed() >= Duration::from_secs(1),
        "failed fast, not a timeout"
    );
    assert!(
        tb.exec(0, &["true"]).unwrap().status.success(),
        "node keeps running"
    );
    tb.set_link(0, true).unwrap();
    assert_eq!(ssh_ok(&tb, 0, "root", "hostname"), "node1");
}

#[test]
fn rekey_changes_only_that_nodes_host_key() {
    let tb = up(2);
    let (before0, before1) = (tb.host_key(0).unwrap(), tb.host_key(1).unwrap());
    assert!(before0.starts_with("ssh-ed25519 "), "{before0}");
    assert_ne!(before0, before1, "nodes share a host key");
    tb.rekey_node(0).unwrap();
    assert_ne!(tb.host_key(0).unwrap(), before0);
    assert_eq!(tb.host_key(1).unwrap(), before1);
    assert_eq!(ssh_ok(&tb, 0, "root", "hostname"), "node1");
}

#[test]
fn sudo_rights_per_user() {
    let tb = up(1);
    assert_eq!(ssh_ok(&tb, 0, "alice", "sudo -n id -un"), "root");
    assert!(ssh_fails(&tb, 0, "bob", "sudo -n true"), "bob sudo -n");
    let bob = ssh_ok(&tb, 0, "bob", "echo ferry-bob-pw | sudo -S -p '' id -un");
    assert_eq!(bob, "root");
    assert!(ssh_fails(&tb, 0, "bob", "echo wrong | sudo -S -p '' true"));
    assert!(ssh_fails(&tb, 0, "carol", "sudo -n true"));
    assert!(ssh_fails(
        &tb,
        0,
        "carol",
        "echo ferry-carol-pw | sudo -S -p '' true"
    ));
}

#[test]
fn shaping_limits_bandwidth_both_ways() {
    let tb = up(1);
    let (hub, node_ns) = (tb.hub_netns(), tb.node(0).unwrap().netns.clone());
    tb.shape(0, 4).unwrap();
    assert!(qdiscs(hub, "n1").contains("tbf"), "{}", qdiscs(hub, "n1"));
    assert!(qdiscs(&node_ns, "eth0").contains("tbf"));
    // 1 MB = 8 Mbit: at least 2 s at 4 Mbit/s, each way.
    let start = Instant::now();
    let pulled = tb.ssh(0, "root", "head -c 1000000 /dev/urandom").unwrap();
    assert_eq!(pulled.stdout.len(), 1_000_000);
    let pull = start.elapsed();
    let start = Instant::now();
    let mut push = tb.ssh_command(0, "root").unwrap();
    push.arg("wc -c")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let mut child = push.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&pulled.stdout)
        .unwrap();
    assert_eq!(ok(&child.wait_with_output().unwrap(), "push"), "1000000");
    let push = start.elapsed();
    assert!(pull >= Duration::from_millis(1600), "pull took {pull:?}");
    assert!(push >= Duration::from_millis(1600), "push took {push:?}");

    tb.shape(0, 0).unwrap();
    assert!(!qdiscs(hub, "n1").contains("tbf"));
    assert!(!qdiscs(&node_ns, "eth0").contains("tbf"));
    tb.shape_bastion(100).unwrap();
    assert!(qdiscs(hub, "b0").contains("tbf"));
    tb.shape_bastion(0).unwrap();
    assert!(!qdiscs(hub, "b0").contains("tbf"));
}

#[test]
fn teardown_leaves_nothing_behind() {
    let tb = up(2);
    let name = tb.name().to_owned();
    let state = tb.state_dir().to_owned();
    let pids: Vec<u32> = tb.nodes().iter().filter_map(|n| n.pid).collect();
    assert_eq!(pids.len(), 2);
    assert!(netns_list().contains(&format!("{name}-n1")));
    drop(tb);
    let prefix = format!("{name}-");
    assert!(
        !netns_list().lines().any(|l| l.starts_with(&prefix)),
        "{}",
        netns_list()
    );
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    assert!(!mounts.contains(state.to_str().unwrap()), "{mounts}");
    assert!(!state.exists());
    for pid in pids {
        assert!(!alive(pid), "node pid {pid} survived");
    }
    let again = script().args(["down", "--name", &name]).output().unwrap();
    ok(&again, "second down");
}

#[test]
fn two_testbeds_coexist() {
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| up(2));
        let b = s.spawn(|| up(2));
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_ne!(a.name(), b.name());
    assert_eq!(
        a.node(0).unwrap().ip,
        b.node(0).unwrap().ip,
        "separate networks"
    );
    ssh_ok(&a, 0, "root", "echo a > /root/which");
    ssh_ok(&b, 0, "root", "echo b > /root/which");
    assert_eq!(ssh_ok(&a, 0, "root", "cat /root/which"), "a");
    assert_eq!(ssh_ok(&b, 0, "root", "cat /root/which"), "b");
    a.down().unwrap();
    assert_eq!(ssh_ok(&b, 1, "root", "hostname"), "node2");
    assert_eq!(ssh_ok(&b, 0, "root", "cat /root/which"), "b");
}

#[test]
fn testbeds_of_dead_owners_are_collected() {
    let mut owner = Command::new("sleep").arg("600").spawn().unwrap();
    let stale = format!("ftgc{}", std::process::id());
    let owner_pid = owner.id().to_string();
    let out = script()
        .args(["up", "1", "--name", &stale, "--owner", &owner_pid])
        .output()
        .unwrap();
    ok(&out, "up of the soon-stale testbed");
    let state = Path::new("/run/ferry-testbed").join(&stale);
    assert!(state.join("testbed.json").exists());
    owner.kill().unwrap();
    owner.wait().unwrap();
    // Any new testbed first removes testbeds whose owner process is gone.
    let tb = up(1);
    assert!(!state.exists(), "stale testbed {stale} survived gc");
    assert!(!netns_list().contains(&format!("{stale}-")));
    assert_eq!(ssh_ok(&tb, 0, "root", "hostname"), "node1");
}
