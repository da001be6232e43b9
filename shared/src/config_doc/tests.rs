#![allow(clippy::unwrap_used)]

use super::*;

const CLUSTERFILE: &str = r#"apiVersion: apps.sealos.io/v1beta1
kind: Cluster
metadata: {name: default}
spec:
  image: [labring/kubernetes:v1.27.7]
---
apiVersion: kubeadm.k8s.io/v1beta3
kind: ClusterConfiguration
networking: {podSubnet: 10.160.0.0/12}
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
---
apiVersion: apps.sealos.io/v1beta1
kind: Config
metadata: {name: hosts}
spec:
  path: ./etc//hosts.toml
  data: "x = 1\n"
"#;

fn doc(strategy: Strategy, data: &str) -> ConfigDoc {
    ConfigDoc {
        name: "t".into(),
        match_image: None,
        path: validate_path("a.yaml").unwrap(),
        strategy,
        data: data.into(),
    }
}

#[test]
fn parses_only_config_docs() {
    let docs = parse_config_docs(CLUSTERFILE).unwrap();
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[0].name, "calico");
    assert_eq!(docs[0].strategy, Strategy::Merge);
    assert_eq!(docs[0].path.as_str(), "charts/calico/values.yaml");
    assert!(docs[0].matches("labring/calico:v3.26.1"));
    assert!(!docs[0].matches("labring/helm:v3.9.4"));
    assert_eq!(docs[1].strategy, Strategy::Override);
    assert_eq!(docs[1].path.as_str(), "etc/hosts.toml");
    assert!(docs[1].matches("anything"));
}

#[test]
fn rejects_bad_paths_and_strategies() {
    for (path, reason) in [
        ("/etc/passwd", "absolute"),
        ("../x", "`..`"),
        ("a/../../b", "`..`"),
        ("./", "empty"),
    ] {
        let text = format!(
            "apiVersion: apps.sealos.io/v1beta1\nkind: Config\nspec: {{path: {path:?}, data: x}}\n"
        );
        let err = parse_config_docs(&text).unwrap_err();
        assert!(matches!(err, ConfigDocError::Path { .. }), "{path}: {err}");
        assert!(err.to_string().contains(reason), "{path}: {err}");
    }
    let text =
        "apiVersion: apps.sealos.io/v1beta1\nkind: Config\nspec: {path: a, strategy: replace}\n";
    assert!(matches!(
        parse_config_docs(text),
        Err(ConfigDocError::Strategy { .. })
    ));
    let text = "apiVersion: apps.sealos.io/v1beta1\nkind: Config\nspec: {data: a}\n";
    assert!(matches!(
        parse_config_docs(text),
        Err(ConfigDocError::Invalid { .. })
    ));
}

#[test]
fn override_insert_append() {
    assert_eq!(
        doc(Strategy::Override, "new\n")
            .apply_to(Some("old\n"))
            .unwrap(),
        "new\n"
    );
    assert_eq!(
        doc(Strategy::Insert, "first")
            .apply_to(Some("old\n"))
            .unwrap(),
        "first\nold\n"
    );
    assert_eq!(
        doc(Strategy::Append, "last\n")
            .apply_to(Some("old"))
            .unwrap(),
        "old\nlast\n"
    );
    assert_eq!(
        doc(Strategy::Append, "last").apply_to(None).unwrap(),
        "\nlast"
    );
    assert_eq!(
        doc(Strategy::Insert, "first").apply_to(None).unwrap(),
        "first\n"
    );
}

#[test]
fn merge_into_every_document() {
    let existing =
        "apiVersion: v1\nkind: A\nspec:\n  keep: 1\n  list: [1, 2]\n---\napiVersion: v1\nkind: B\n";
    let data = "spec:\n  list: [3]\n  added: {x: y}\nextra: true\n";
    let out = doc(Strategy::Merge, data).apply_to(Some(existing)).unwrap();
    let docs: Vec<serde_yaml_ng::Value> = serde_yaml_ng::Deserializer::from_str(&out)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    assert_eq!(docs.len(), 2);
    let a: serde_yaml_ng::Value = serde_yaml_ng::from_str(
        "apiVersion: v1\nkind: A\nspec: {keep: 1, list: [3], added: {x: y}}\nextra: true\n",
    )
    .unwrap();
    let b: serde_yaml_ng::Value = serde_yaml_ng::from_str(
        "apiVersion: v1\nkind: B\nspec: {list: [3], added: {x: y}}\nextra: true\n",
    )
    .unwrap();
    assert_eq!(docs[0], a);
    assert_eq!(docs[1], b);
    assert!(
        out.starts_with("apiVersion: v1\nkind: A\n"),
        "key order kept: {out}"
    );
}

#[test]
fn merge_into_missing_file_and_errors() {
    let out = doc(Strategy::Merge, "a: {b: 1}\n").apply_to(None).unwrap();
    assert_eq!(out, "a:\n  b: 1\n");
    let err = doc(Strategy::Merge, "a: {b: 1}\n")
        .apply_to(Some("a: scalar\n"))
        .unwrap_err();
    assert!(
        err.to_string()
            .contains(".a: cannot merge a map into a non-map"),
        "{err}"
    );
    assert!(
        doc(Strategy::Merge, "- list\n")
            .apply_to(Some("a: 1\n"))
            .is_err()
    );
    assert!(
        doc(Strategy::Merge, "a: 1\n")
            .apply_to(Some("- 1\n"))
            .is_err()
    );
}

#[test]
fn merge_skips_leading_separator() {
    let out = doc(Strategy::Merge, "z: 1\n")
        .apply_to(Some("---\na: 1\n---\nb: 2\n---\n"))
        .unwrap();
    assert_eq!(out, "a: 1\nz: 1\n---\nb: 2\nz: 1\n");
}
