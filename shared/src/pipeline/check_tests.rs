use proptest::prelude::*;

use super::*;
use crate::clusterfile::{Clusterfile, ClusterfileError};

fn roles(r: &[&str]) -> Vec<String> {
    r.iter().map(|s| (*s).to_string()).collect()
}

#[test]
fn skew_uses_the_midpoint_of_the_round_trip() {
    // Sent at 1000, answer at 1400: the host read its clock around 1200.
    assert_eq!(clock_skew_ms(1_000, 1_400, 1_200), 0);
    assert_eq!(clock_skew_ms(1_000, 1_400, 7_200), 6_000);
    assert_eq!(clock_skew_ms(10_000, 10_000, 4_000), -6_000);
    assert!(skew_too_large(5_000));
    assert!(skew_too_large(-5_000));
    assert!(!skew_too_large(4_999));
    assert!(!skew_too_large(-4_999));
}

proptest! {
    #[test]
    fn skew_error_is_at_most_half_the_round_trip(
        sent in 0i64..1_000_000_000, rtt in 0i64..60_000, at in 0.0f64..=1.0, offset in -100_000i64..100_000,
    ) {
        // The host read its clock at some instant within the round trip.
        let read_at = sent + (rtt as f64 * at) as i64;
        let skew = clock_skew_ms(sent, sent + rtt, read_at + offset);
        prop_assert!((skew - offset).abs() <= rtt / 2 + 1);
    }
}

const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5341 1 0000000000000000 100 0 0 10 0
   1: 0100007F:0CEA 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 77 1 0000000000000000 100 0 0 10 0
   2: 0A00000A:D2F4 0A000014:1F90 01 00000000:00000000 00:00000000 00000000     0        0 99 1 0000000000000000 20 4 30 10 -1
";

const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:1A0B 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0
   1: 0000000000000000FFFF00000A00000A:2382 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4243 1 0000000000000000 100 0 0 10 0
garbage line
";

#[test]
fn listeners_from_proc_net_tcp_and_tcp6() {
    let l = parse_listeners(&format!("{TCP}{TCP6}"));
    let got: Vec<(String, u16, u64)> = l
        .iter()
        .map(|l| (l.addr.to_string(), l.port, l.inode))
        .collect();
    assert_eq!(
        got,
        vec![
            ("0.0.0.0".into(), 8080, 5341),
            ("127.0.0.1".into(), 3306, 77),
            ("::1".into(), 6667, 4242),
            ("::ffff:10.0.0.10".into(), 9090, 4243),
        ],
        "the ESTABLISHED socket (st 01) and junk are skipped"
    );
    assert!(parse_listeners("").is_empty());
}

#[test]
fn needed_ports_per_role() {
    let p = |r: &[&str]| -> Vec<u16> {
        needed_ports(&roles(r), 5000)
            .iter()
            .map(|p| p.port)
            .collect()
    };
    assert_eq!(p(&["master"]), vec![2379, 2380, 6443, 10250, 10257, 10259]);
    assert_eq!(p(&["node", "amd64"]), vec![10250]);
    assert_eq!(p(&["node", "registry"]), vec![5000, 10250]);
    assert_eq!(needed_ports(&roles(&["registry"]), 5443)[0].port, 5443);
    assert!(p(&["amd64"]).is_empty());
}

#[test]
fn busy_ports_any_address_conflicts_agent_port_excluded() {
    let listening = parse_listeners(
        "0: 0100007F:192B 00000000:0000 0A 0:0 0:0 0 0 0 11 1\n\
         1: 00000000:280A 00000000:0000 0A 0:0 0:0 0 0 0 12 1\n\
         2: 00000000:1D13 00000000:0000 0A 0:0 0:0 0 0 0 13 1\n",
    );
    assert_eq!(listening.len(), 3);
    let needed = needed_ports(&roles(&["master"]), 5000);
    let busy = busy_ports(&needed, &listening, 7443);
    let got: Vec<(u16, &str, u64)> = busy
        .iter()
        .map(|b| (b.needed.port, b.needed.user, b.listener.inode))
        .collect();
    assert_eq!(
        got,
        vec![(6443, "kube-apiserver", 11), (10250, "kubelet", 12)]
    );
    // 7443 (0x1D13) is the agent's own port: never a conflict.
    let own = [NeededPort {
        port: 7443,
        user: "x",
    }];
    assert!(busy_ports(&own, &listening, 7443).is_empty());
}

#[test]
fn arch_mismatches() {
    let (m, n) = (roles(&["master"]), roles(&["node", "arm64"]));
    let hosts = [
        HostArch {
            host: "10.0.0.2",
            roles: &m,
            arch: "amd64",
        },
        HostArch {
            host: "10.0.0.3",
            roles: &n,
            arch: "amd64",
        },
    ];
    let p = arch_problems(Some("amd64"), &hosts);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].contains("10.0.0.3") && p[0].contains("`arm64`"),
        "{p:?}"
    );
    let p = arch_problems(Some("arm64"), &hosts[..1]);
    assert_eq!(p.len(), 1);
    assert!(
        p[0].contains("built for arm64") && p[0].contains("10.0.0.2 (amd64)"),
        "{p:?}"
    );
    let none = roles(&["node"]);
    let mixed = [
        hosts[0].clone(),
        HostArch {
            host: "10.0.0.4",
            roles: &none,
            arch: "arm64",
        },
    ];
    let p = arch_problems(None, &mixed);
    assert_eq!(p.len(), 1);
    assert!(p[0].contains("different architectures"), "{p:?}");
    assert!(arch_problems(None, &mixed[..1]).is_empty());
    assert!(arch_problems(Some("amd64"), &mixed[..1]).is_empty());
}

#[test]
fn vip_against_pod_and_service_cidrs() {
    let vip = IpAddr::V4(Ipv4Addr::new(10, 103, 97, 2));
    assert!(vip_problems(vip, "100.64.0.0/10", "10.96.0.0/22").is_empty());
    let p = vip_problems(vip, "10.96.0.0/12", "10.96.0.0/22");
    assert_eq!(p.len(), 1);
    assert!(
        p[0].contains("pod subnet 10.96.0.0/12") && p[0].contains("defaultVIP"),
        "{p:?}"
    );
    let p = vip_problems(vip, "100.64.0.0/10,fd00::/64", "10.103.0.0/16");
    assert!(p[0].contains("service subnet 10.103.0.0/16"), "{p:?}");
    let p = vip_problems(vip, "10.0.0.0", "");
    assert!(p[0].contains("podSubnet"), "{p:?}");
}

fn cluster(hosts: &str) -> Result<Vec<crate::clusterfile::ResolvedHost>, ClusterfileError> {
    let text = format!(
        "apiVersion: apps.sealos.io/v1beta1\nkind: Cluster\nmetadata: {{name: c}}\nspec:\n  hosts:\n{hosts}"
    );
    Clusterfile::parse(&text)
        .map_err(|e| panic!("{e}"))
        .and_then(|cf| cf.cluster.resolved_hosts())
}

#[test]
fn masters_and_nodes_are_disjoint() {
    assert!(matches!(
        cluster("  - {ips: [10.0.0.2], roles: [master, node]}\n"),
        Err(ClusterfileError::MasterAndNode { .. })
    ));
    // The same IP in a master group and a node group.
    let e = cluster(
        "  - {ips: [10.0.0.2], roles: [master]}\n  - {ips: ['10.0.0.2:22'], roles: [node]}\n",
    );
    assert!(
        matches!(&e, Err(ClusterfileError::MasterAndNode { addr }) if addr.starts_with("10.0.0.2")),
        "{e:?}"
    );
    assert!(
        cluster("  - {ips: [10.0.0.2], roles: [master]}\n  - {ips: [10.0.0.3], roles: [node]}\n")
            .is_ok()
    );
}
