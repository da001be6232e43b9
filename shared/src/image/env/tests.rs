use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

fn v(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn precedence_image_spec_cli_host() {
    let layers = EnvLayers {
        image: parse_env_list(&v(&[
            "a=image",
            "b=image",
            "c=image",
            "d=image",
            "SEALOS_SYS_CRI_ENDPOINT=/run/c.sock",
        ]))
        .0,
        spec: v(&["b=spec", "c=spec", "d=spec"]),
        cli: v(&["c=cli", "d=cli"]),
    };
    let (env, warnings) = layers.host_env("10.0.0.5", &v(&["d=host"]));
    assert!(warnings.is_empty());
    assert_eq!(env["a"], "image");
    assert_eq!(env["b"], "spec");
    assert_eq!(env["c"], "cli");
    assert_eq!(env["d"], "host");
    assert_eq!(env["SEALOS_SYS_CRI_ENDPOINT"], "/run/c.sock");
}

#[test]
fn reserved_keys_from_users_are_dropped_with_warnings() {
    let layers = EnvLayers {
        image: BTreeMap::new(),
        spec: v(&["SEALOS_SYS_KUBE_VERSION=v9", "ok=1", "novalue"]),
        cli: v(&["SEALOS_SYSX=1"]),
    };
    let (env, warnings) = layers.host_env("h1", &v(&["SEALOS_SYS_RUN_MODE=x"]));
    assert_eq!(env.len(), 1);
    assert_eq!(warnings.len(), 4);
    assert_eq!(warnings[0].source, EnvSource::Clusterfile);
    assert_eq!(warnings[0].reason, "not KEY=VALUE");
    assert_eq!(
        warnings[1].reason,
        "keys starting with SEALOS_SYS are reserved"
    );
    assert_eq!(warnings[2].source, EnvSource::Cli);
    assert_eq!(warnings[3].source, EnvSource::Host("h1".to_owned()));
    assert!(warnings[3].to_string().contains("env of host h1"));
}

#[test]
fn values_keep_equals_and_later_wins() {
    let (m, bad) = parse_env_list(&v(&["a=b=c", "a=x=y", "=z"]));
    assert_eq!(m["a"], "x=y");
    assert_eq!(bad, v(&["=z"]));
}

#[test]
fn builtins_override() {
    let mut env = BTreeMap::new();
    env.insert(SYS_KUBE_VERSION.to_owned(), "old".to_owned());
    SysEnv {
        kube_version: Some("v1.27.7".to_owned()),
        sealos_version: None,
        run_mode: Some("master,amd64".to_owned()),
    }
    .apply(&mut env);
    assert_eq!(env[SYS_KUBE_VERSION], "v1.27.7");
    assert_eq!(env[SYS_RUN_MODE], "master,amd64");
    assert!(!env.contains_key(SYS_SEALOS_VERSION));
}

fn layer() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map("[a-d]|SEALOS_SYS_[A-B]", "[a-z]{0,3}", 0..5)
}

fn to_list(m: &BTreeMap<String, String>) -> Vec<String> {
    m.iter().map(|(k, v)| format!("{k}={v}")).collect()
}

proptest! {
    #[test]
    fn precedence_holds(image in layer(), spec in layer(), cli in layer(), host in layer()) {
        let layers = EnvLayers { image: image.clone(), spec: to_list(&spec), cli: to_list(&cli) };
        let (env, warnings) = layers.host_env("h", &to_list(&host));
        for (k, got) in &env {
            let user = [&host, &cli, &spec].into_iter().find_map(|l| l.get(k));
            let expected = if k.starts_with(RESERVED_PREFIX) { image.get(k) } else { user.or(image.get(k)) };
            prop_assert_eq!(Some(got), expected);
        }
        let reserved_user = [&spec, &cli, &host]
            .iter()
            .map(|l| l.keys().filter(|k| k.starts_with(RESERVED_PREFIX)).count())
            .sum::<usize>();
        prop_assert_eq!(warnings.len(), reserved_user);
    }
}

#[test]
fn run_mode_is_roles_plus_arch() {
    assert_eq!(run_mode(&v(&["master"]), Some("amd64")), "master,amd64");
    assert_eq!(
        run_mode(&v(&["node", "arm64"]), Some("amd64")),
        "node,arm64",
        "an arch role is kept as written"
    );
    assert_eq!(run_mode(&v(&["node", "registry"]), None), "node,registry");
}
