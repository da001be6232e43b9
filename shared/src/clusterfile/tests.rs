use super::*;

/// The example Clusterfile of sealos' documentation (reference §2), unmodified.
const SEALOS_EXAMPLE: &str = r#"apiVersion: apps.sealos.io/v1beta1
kind: Cluster
metadata: {name: default}
spec:
  hosts:
  - ips: [192.168.0.2:22, 192.168.0.3:22, 192.168.0.4:22]
    roles: [master, amd64]
  - ips: [192.168.0.5:22, 192.168.0.6:2222]
    roles: [node, amd64]
    env: [criData=/data/containerd]
    ssh: {user: root, pk: /root/.ssh/node_key}
  image: [labring/kubernetes:v1.27.7, labring/helm:v3.9.4, labring/calico:v3.26.1]
  ssh: {user: root, passwd: "xxx", port: 22}
  env: [registryPassword=S3cret]
---
apiVersion: kubeadm.k8s.io/v1beta3
kind: ClusterConfiguration
networking: {podSubnet: 10.160.0.0/12, serviceSubnet: 10.96.0.0/22}
apiServer: {certSANs: [k8s.example.com]}
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
maxPods: 200
---
apiVersion: apps.sealos.io/v1beta1
kind: Config
metadata: {name: calico}
spec:
  match: labring/calico:v3.26.1
  path: charts/calico/values.yaml
  strategy: merge
  data: |
    installation: {calicoNetwork: {ipPools: [{cidr: 10.160.0.0/12}]}}
"#;

/// What sealos writes back after a run: status with mounts and conditions.
const SEALOS_WRITTEN_BACK: &str = r#"apiVersion: apps.sealos.io/v1beta1
kind: Cluster
metadata:
  creationTimestamp: "2024-05-01T10:00:00Z"
  name: default
spec:
  hosts:
  - ips:
    - 10.0.0.2:22
    roles:
    - master
    - amd64
  image:
  - labring/kubernetes:v1.27.7
  ssh:
    passwd: hunter2
    pk: /root/.ssh/id_rsa
    port: 22
    user: root
status:
  commandCondition:
  - images:
    - labring/kubernetes:v1.27.7
    lastHeartbeatTime: "2024-05-01T10:03:00Z"
    message: Applied to cluster successfully
    reason: Apply Command
    status: "True"
    type: ApplyCommandSuccess
  conditions:
  - lastHeartbeatTime: "2024-05-01T10:03:00Z"
    message: Applied to cluster successfully
    reason: Ready
    status: "True"
    type: ApplyClusterSuccess
  mounts:
  - cmd:
    - kubeadm config images list
    env:
      criData: /var/lib/containerd
      defaultVIP: 10.103.97.2
    imageName: labring/kubernetes:v1.27.7
    labels:
      check: check.sh $registryData
      sealos.io.type: rootfs
      version: v1.27.7
    mountPoint: /var/lib/containers/storage/overlay/abc/merged
    name: default-gvtw4hl8
    type: rootfs
  phase: ClusterSuccess
"#;

#[test]
fn sealos_doc_example_is_accepted() {
    let cf = Clusterfile::parse(SEALOS_EXAMPLE).unwrap();
    let c = &cf.cluster;
    assert_eq!(c.metadata.name, "default");
    assert_eq!(c.spec.image.len(), 3);
    assert_eq!(cf.kube_config_docs().count(), 2);
    assert_eq!(cf.config_docs().count(), 1);
    let hosts = c.resolved_hosts().unwrap();
    assert_eq!(hosts.len(), 5);
    assert_eq!(c.master0().unwrap().addr.to_string(), "192.168.0.2");
    assert_eq!(hosts[4].addr.port, 2222);
    // Host ssh block overrides only the fields it sets.
    assert_eq!(hosts[3].ssh.pk, "/root/.ssh/node_key");
    assert_eq!(hosts[3].ssh.passwd.expose(), "xxx");
    assert_eq!(hosts[3].env, ["criData=/data/containerd"]);
    assert_eq!(c.registry_hosts().unwrap()[0].addr, hosts[0].addr);
}

#[test]
fn written_back_status_round_trips() {
    let cf = Clusterfile::parse(SEALOS_WRITTEN_BACK).unwrap();
    let st = &cf.cluster.status;
    assert_eq!(st.phase, Some(ClusterPhase::ClusterSuccess));
    assert_eq!(st.mounts[0].kind, "rootfs");
    assert_eq!(
        st.command_conditions[0].images,
        ["labring/kubernetes:v1.27.7"]
    );
    let again = Clusterfile::parse(&cf.to_yaml(true).unwrap()).unwrap();
    assert_eq!(again, cf);
}

#[test]
fn write_back_drops_kubeadm_docs_and_keeps_config_docs() {
    let cf = Clusterfile::parse(SEALOS_EXAMPLE).unwrap();
    let back = Clusterfile::parse(&cf.to_yaml(false).unwrap()).unwrap();
    assert_eq!(back.kube_config_docs().count(), 0);
    assert_eq!(back.config_docs().count(), 1);
    assert_eq!(back.cluster, cf.cluster);
}

#[test]
fn unknown_fields_survive() {
    let text = SEALOS_EXAMPLE.replacen("  env: [registryPassword=S3cret]", "  env: [registryPassword=S3cret]\n  controlPlaneMode: static\n  routeController: {table: 7}", 1);
    let cf = Clusterfile::parse(&text).unwrap();
    let out = cf.to_yaml(true).unwrap();
    assert!(
        out.contains("controlPlaneMode: static") && out.contains("table: 7"),
        "{out}"
    );
}

#[test]
fn secrets_never_in_debug() {
    let cf = Clusterfile::parse(SEALOS_WRITTEN_BACK).unwrap();
    let dbg = format!("{cf:?}");
    assert!(!dbg.contains("hunter2"), "{dbg}");
    assert!(
        cf.to_yaml(false).unwrap().contains("hunter2"),
        "the file itself keeps it"
    );
}

#[test]
fn bad_clusterfiles_are_named() {
    let e = |t: &str| Clusterfile::parse(t).unwrap_err().to_string();
    assert!(e("kind: Config\napiVersion: apps.sealos.io/v1beta1\n").contains("no `kind: Cluster`"));
    assert!(e("apiVersion: v1\n").contains("no `kind`"));
    assert!(e("a: [").contains("invalid YAML"));
    let two = format!(
        "{SEALOS_EXAMPLE}---\n{}",
        SEALOS_EXAMPLE.split("---").next().unwrap()
    );
    assert!(e(&two).contains("more than one"));
    let v2 = SEALOS_EXAMPLE.replacen("apps.sealos.io/v1beta1", "apps.sealos.io/v2", 1);
    assert!(e(&v2).contains("expected `apps.sealos.io/v1beta1`"));
    let late = format!("apiVersion: v1\nkind: ConfigMap\n---\n{SEALOS_EXAMPLE}");
    assert!(e(&late).contains("must come first"));
}

#[test]
fn host_rules() {
    let base = |hosts: &str| {
        format!(
            "apiVersion: apps.sealos.io/v1beta1\nkind: Cluster\nmetadata: {{name: c}}\nspec:\n  ssh: {{port: 2200}}\n  hosts:\n{hosts}"
        )
    };
    let r = |h: &str| {
        Clusterfile::parse(&base(h))
            .unwrap()
            .cluster
            .resolved_hosts()
    };
    let ok = r("  - {ips: [10.0.0.2], roles: [master]}\n  - {ips: ['10.0.0.3:22'], roles: [node, registry]}\n").unwrap();
    assert_eq!(ok[0].addr.port, 2200, "global ssh port applies to bare IPs");
    assert_eq!(ok[1].addr.port, 22, "explicit port wins");
    let cf = Clusterfile::parse(&base("  - {ips: [10.0.0.2], roles: [master]}\n  - {ips: ['10.0.0.3'], roles: [node, registry]}\n")).unwrap();
    assert_eq!(
        cf.cluster.registry_hosts().unwrap()[0].addr.ip.to_string(),
        "10.0.0.3"
    );
    assert!(matches!(
        r("  - {ips: [10.0.0.2], roles: [node]}\n"),
        Err(ClusterfileError::NoMaster)
    ));
    assert!(matches!(
        r("  - {ips: [10.0.0.2, '10.0.0.2:23'], roles: [master]}\n"),
        Err(ClusterfileError::DuplicateHost { .. })
    ));
    assert!(matches!(
        r("  - {ips: [10.0.0.2], roles: [master, node]}\n"),
        Err(ClusterfileError::MasterAndNode { .. })
    ));
    assert!(matches!(
        r("  - {ips: [node-a], roles: [master]}\n"),
        Err(ClusterfileError::BadHost { .. })
    ));
}

proptest::proptest! {
    #[test]
    fn parse_never_panics(s in "(?s).{0,300}") {
        let _ = Clusterfile::parse(&s);
    }
}
