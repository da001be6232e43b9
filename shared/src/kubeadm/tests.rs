use super::*;
use serde::Deserialize;
use serde_yaml_ng::Value;

fn facts(version: &str) -> ClusterFacts {
    ClusterFacts {
        kube_version: version.into(),
        master0: "10.0.0.2".parse().unwrap(),
        masters: vec!["10.0.0.2".parse().unwrap(), "10.0.0.3".parse().unwrap()],
        vip: "10.103.97.2".parse().unwrap(),
        token: BootstrapToken::parse("abcdef.0123456789abcdef").unwrap(),
        certificate_key: "ab".repeat(32),
    }
}

fn docs(yaml: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(yaml)
        .map(|d| Value::deserialize(d).unwrap())
        .collect()
}

fn by_kind<'a>(d: &'a [Value], kind: &str) -> &'a Value {
    d.iter().find(|v| v["kind"] == kind).unwrap()
}

#[test]
fn v1beta3_below_1_31_with_sealos_facts() {
    let k = KubeadmDocs::new(facts("v1.27.7"), &[]).unwrap();
    let d = docs(&k.init_yaml().unwrap());
    assert_eq!(d.len(), 4);
    let init = by_kind(&d, "InitConfiguration");
    assert_eq!(init["apiVersion"], "kubeadm.k8s.io/v1beta3");
    assert_eq!(init["localAPIEndpoint"]["advertiseAddress"], "10.0.0.2");
    assert_eq!(
        init["nodeRegistration"]["kubeletExtraArgs"]["node-ip"],
        "10.0.0.2"
    );
    assert_eq!(
        init["bootstrapTokens"][0]["token"],
        "abcdef.0123456789abcdef"
    );
    let cc = by_kind(&d, "ClusterConfiguration");
    assert_eq!(cc["controlPlaneEndpoint"], "apiserver.cluster.local:6443");
    assert_eq!(cc["kubernetesVersion"], "v1.27.7");
    let sans: Vec<&str> = cc["apiServer"]["certSANs"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        sans,
        [
            "127.0.0.1",
            "apiserver.cluster.local",
            "10.103.97.2",
            "10.0.0.2",
            "10.0.0.3"
        ]
    );
    assert_eq!(
        cc["controllerManager"]["extraArgs"]["cluster-signing-duration"],
        "876000h"
    );
    assert_eq!(cc["networking"]["podSubnet"], "100.64.0.0/10");
    let kp = by_kind(&d, "KubeProxyConfiguration");
    assert_eq!(kp["mode"], "ipvs");
    assert_eq!(kp["ipvs"]["excludeCIDRs"][0], "10.103.97.2/32");
}

#[test]
fn v1beta4_from_1_31() {
    let k = KubeadmDocs::new(facts("v1.31.2"), &[]).unwrap();
    let d = docs(&k.init_yaml().unwrap());
    let cc = by_kind(&d, "ClusterConfiguration");
    assert_eq!(cc["apiVersion"], "kubeadm.k8s.io/v1beta4");
    assert_eq!(cc["certificateValidityPeriod"], "876000h");
    assert_eq!(cc["caCertificateValidityPeriod"], "876000h");
    let args = cc["controllerManager"]["extraArgs"].as_sequence().unwrap();
    assert!(
        args.iter()
            .any(|a| a["name"] == "cluster-signing-duration" && a["value"] == "876000h")
    );
    let init = by_kind(&d, "InitConfiguration");
    assert_eq!(
        init["nodeRegistration"]["kubeletExtraArgs"][0]["name"],
        "node-ip"
    );
    // Non-kubeadm documents keep their own API versions.
    assert_eq!(
        by_kind(&d, "KubeletConfiguration")["apiVersion"],
        "kubelet.config.k8s.io/v1beta1"
    );
    let join = docs(
        &k.join_yaml(
            &JoinRole::Worker {
                ip: "10.0.0.9".parse().unwrap(),
            },
            "sha256:00",
        )
        .unwrap(),
    );
    assert_eq!(join[0]["timeouts"]["discovery"], "5m0s");
    assert!(join[0]["discovery"].get("timeout").is_none());
}

#[test]
fn clusterfile_documents_override_defaults() {
    let overlay = docs(
        "apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\nnetworking: {podSubnet: 10.160.0.0/12, serviceSubnet: 10.96.0.0/22}\napiServer: {certSANs: [k8s.example.com]}\n---\napiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nmaxPods: 200\n",
    );
    let k = KubeadmDocs::new(facts("v1.27.7"), &overlay).unwrap();
    assert_eq!(k.pod_subnet(), "10.160.0.0/12");
    let d = docs(&k.init_yaml().unwrap());
    let cc = by_kind(&d, "ClusterConfiguration");
    assert_eq!(cc["apiVersion"], "kubeadm.k8s.io/v1beta3");
    assert!(
        cc["apiServer"]["certSANs"]
            .as_sequence()
            .unwrap()
            .iter()
            .any(|s| s == "k8s.example.com")
    );
    assert_eq!(
        cc["apiServer"]["extraArgs"]["audit-log-format"], "json",
        "defaults kept"
    );
    assert_eq!(by_kind(&d, "KubeletConfiguration")["maxPods"], 200);
    let bad = docs("apiVersion: v1\nkind: ConfigMap\n");
    assert!(matches!(
        KubeadmDocs::new(facts("v1.27.7"), &bad),
        Err(KubeadmError::BadDocument { .. })
    ));
}

#[test]
fn vip_inside_a_cidr_is_refused() {
    let mut f = facts("v1.27.7");
    f.vip = "10.96.0.10".parse().unwrap();
    let e = KubeadmDocs::new(f, &[]).unwrap_err().to_string();
    assert!(e.contains("service CIDR 10.96.0.0/22"), "{e}");
    assert!(matches!(
        KubeadmDocs::new(facts("1.27"), &[]),
        Err(KubeadmError::BadVersion(_))
    ));
}

#[test]
fn joins_for_masters_and_workers() {
    let k = KubeadmDocs::new(facts("v1.27.7"), &[]).unwrap();
    let w = docs(
        &k.join_yaml(
            &JoinRole::Worker {
                ip: "10.0.0.9".parse().unwrap(),
            },
            "sha256:ab",
        )
        .unwrap(),
    );
    assert_eq!(
        w[0]["discovery"]["bootstrapToken"]["apiServerEndpoint"],
        "10.103.97.2:6443"
    );
    assert_eq!(
        w[0]["discovery"]["bootstrapToken"]["caCertHashes"][0],
        "sha256:ab"
    );
    assert_eq!(
        w[0]["nodeRegistration"]["kubeletExtraArgs"]["node-ip"],
        "10.0.0.9"
    );
    assert!(w[0].get("controlPlane").is_none());
    let m = docs(
        &k.join_yaml(
            &JoinRole::Master {
                ip: "10.0.0.3".parse().unwrap(),
            },
            "sha256:ab",
        )
        .unwrap(),
    );
    assert_eq!(
        m[0]["discovery"]["bootstrapToken"]["apiServerEndpoint"],
        "10.0.0.2:6443"
    );
    assert_eq!(
        m[0]["controlPlane"]["localAPIEndpoint"]["advertiseAddress"],
        "10.0.0.3"
    );
    assert_eq!(
        m[0]["controlPlane"]["certificateKey"],
        "ab".repeat(32).as_str()
    );
}

#[test]
fn cidr_membership() {
    let ip = |s: &str| s.parse().unwrap();
    assert!(cidr_contains("10.96.0.0/22", ip("10.96.3.255")).unwrap());
    assert!(!cidr_contains("10.96.0.0/22", ip("10.96.4.0")).unwrap());
    assert!(cidr_contains("100.64.0.0/10,fd00::/8", ip("fd00::1")).unwrap());
    assert!(cidr_contains("nope", ip("10.0.0.1")).is_err());
}

#[test]
fn ca_hash_matches_openssl() {
    let ca = crate::pki::AgentCa::generate(
        "x",
        time::OffsetDateTime::now_utc(),
        time::Duration::days(1),
    )
    .unwrap();
    let ours = ca_cert_hash(ca.cert_pem()).unwrap();
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("ca.crt");
    std::fs::write(&p, ca.cert_pem()).unwrap();
    let sh = format!(
        "openssl x509 -pubkey -noout -in {} | openssl pkey -pubin -outform der | sha256sum",
        p.display()
    );
    let out = std::process::Command::new("sh")
        .args(["-c", &sh])
        .output()
        .unwrap();
    let theirs = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    assert_eq!(ours, format!("sha256:{theirs}"));
}

#[test]
fn cert_sans_of_image_and_clusterfile_add_up() {
    let image = docs(
        "apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\napiServer: {certSANs: [image.example.com, 10.0.0.9]}\n",
    );
    let cf = docs(
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\napiServer: {certSANs: [10.0.0.9, added.example.com]}\n",
    );
    let overlays: Vec<Value> = image.into_iter().chain(cf).collect();
    let k = KubeadmDocs::new(facts("v1.27.7"), &overlays).unwrap();
    let d = docs(&k.init_yaml().unwrap());
    let sans: Vec<&str> = by_kind(&d, "ClusterConfiguration")["apiServer"]["certSANs"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for want in [
        "image.example.com",
        "10.0.0.9",
        "added.example.com",
        "10.0.0.3",
    ] {
        assert_eq!(
            sans.iter().filter(|s| **s == want).count(),
            1,
            "{want} once in {sans:?}"
        );
    }
}

#[test]
fn a_single_host_master_is_not_tainted() {
    // Several hosts: kubeadm's default (the control-plane taint) stays.
    let k = KubeadmDocs::new(facts("v1.27.7"), &[])
        .unwrap()
        .single_host(false);
    let d = docs(&k.init_yaml().unwrap());
    assert!(
        by_kind(&d, "InitConfiguration")["nodeRegistration"]
            .get("taints")
            .is_none()
    );
    // One host: an explicit empty list, in v1beta3 and v1beta4.
    for v in ["v1.27.7", "v1.31.1"] {
        let k = KubeadmDocs::new(facts(v), &[]).unwrap().single_host(true);
        let d = docs(&k.init_yaml().unwrap());
        let taints = &by_kind(&d, "InitConfiguration")["nodeRegistration"]["taints"];
        assert_eq!(
            taints.as_sequence().map(Vec::len),
            Some(0),
            "{v}: {taints:?}"
        );
        assert!(k.init_yaml().unwrap().contains("taints: []"));
    }
    // Taints the user set are kept.
    let own = docs(
        "apiVersion: kubeadm.k8s.io/v1beta3\nkind: InitConfiguration\nnodeRegistration: {taints: [{key: dedicated, value: x, effect: NoSchedule}]}\n",
    );
    let k = KubeadmDocs::new(facts("v1.27.7"), &own)
        .unwrap()
        .single_host(true);
    let d = docs(&k.init_yaml().unwrap());
    assert_eq!(
        by_kind(&d, "InitConfiguration")["nodeRegistration"]["taints"][0]["key"],
        "dedicated"
    );
}

#[test]
fn images_pulled_if_not_present_on_init_and_join() {
    for v in ["v1.27.7", "v1.31.2"] {
        let k = KubeadmDocs::new(facts(v), &[]).unwrap();
        let d = docs(&k.init_yaml().unwrap());
        let init = by_kind(&d, "InitConfiguration");
        assert_eq!(init["nodeRegistration"]["imagePullPolicy"], "IfNotPresent");
        for role in [
            JoinRole::Master {
                ip: "10.0.0.3".parse().unwrap(),
            },
            JoinRole::Worker {
                ip: "10.0.0.4".parse().unwrap(),
            },
        ] {
            let j = docs(
                &k.join_yaml(&role, &format!("sha256:{}", "a".repeat(64)))
                    .unwrap(),
            );
            let join = by_kind(&j, "JoinConfiguration");
            assert_eq!(join["nodeRegistration"]["imagePullPolicy"], "IfNotPresent");
        }
    }
}

#[test]
fn audit_policy_file_is_the_one_ferry_writes_and_is_mounted() {
    let k = KubeadmDocs::new(facts("v1.27.7"), &[]).unwrap();
    let d = docs(&k.init_yaml().unwrap());
    let api = &by_kind(&d, "ClusterConfiguration")["apiServer"];
    assert_eq!(api["extraArgs"]["audit-policy-file"], AUDIT_POLICY_PATH);
    let mounted = api["extraVolumes"].as_sequence().unwrap().iter().any(|v| {
        let m = v["mountPath"].as_str().unwrap();
        AUDIT_POLICY_PATH.starts_with(&format!("{m}/")) && v["hostPath"] == v["mountPath"]
    });
    assert!(mounted, "{api:?}");
    let policy: Value = serde_yaml_ng::from_str(AUDIT_POLICY).unwrap();
    assert_eq!(policy["apiVersion"], "audit.k8s.io/v1");
    assert_eq!(policy["kind"], "Policy");
    let rules = policy["rules"].as_sequence().unwrap();
    assert_eq!(rules.last().unwrap()["level"], "Metadata", "catch-all");
    assert!(rules.iter().any(|r| {
        r["level"] == "None"
            && r["nonResourceURLs"]
                .as_sequence()
                .is_some_and(|u| u.contains(&"/healthz*".into()))
    }));
}

#[test]
fn images_yaml_has_no_secrets_and_join_secrets_are_replaced() {
    let k = KubeadmDocs::new(facts("v1.27.7"), &[]).unwrap();
    let y = k.images_yaml().unwrap();
    assert_eq!(docs(&y).len(), 1);
    assert!(y.contains("kind: ClusterConfiguration"));
    assert!(!y.contains("0123456789abcdef") && !y.contains(&"ab".repeat(32)));
    let fresh = BootstrapToken::parse("zzzzzz.aaaaaaaaaaaaaaaa").unwrap();
    let k2 = k.with_join_secrets(fresh, Some("cd".repeat(32)));
    let role = JoinRole::Master {
        ip: "10.0.0.3".parse().unwrap(),
    };
    let j = k2
        .join_yaml(&role, &format!("sha256:{}", "a".repeat(64)))
        .unwrap();
    assert!(j.contains("zzzzzz.aaaaaaaaaaaaaaaa") && j.contains(&"cd".repeat(32)));
    assert!(!j.contains("0123456789abcdef"));
}
