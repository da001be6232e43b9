use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

fn plan(text: &str) -> Plan {
    Kubefile::parse(text)
        .unwrap()
        .resolve(&BuildArgs::new(), &[])
        .unwrap()
}

fn args(kv: &[(&str, &str)]) -> BuildArgs {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

const LABRING: &str = r#"# syntax=docker/dockerfile:1
FROM scratch
MAINTAINER labring
LABEL sealos.io.type="rootfs" \
      sealos.io.version="v1beta1" \
      init="init-cri.sh \$registryDomain \$registryPort && bash init.sh" \
      version="v1.27.7"
ENV criData=/var/lib/containerd \
    registryDomain=sealos.hub \
    registryPort=5000 \
    defaultVIP=10.103.97.2
COPY . .
CMD ["bash init.sh"]
"#;

#[test]
fn labring_kubefile() {
    let p = plan(LABRING);
    assert_eq!(p.base, Base::Scratch);
    assert_eq!(p.author.as_deref(), Some("labring"));
    let labels: BTreeMap<_, _> = p.labels.iter().cloned().collect();
    assert_eq!(labels["sealos.io.type"], "rootfs");
    assert_eq!(
        labels["init"],
        "init-cri.sh $registryDomain $registryPort && bash init.sh"
    );
    assert_eq!(p.env[0], ("criData".into(), "/var/lib/containerd".into()));
    assert_eq!(p.env.len(), 4);
    assert_eq!(p.cmd, Some(vec!["bash init.sh".to_string()]));
    assert_eq!(p.copies.len(), 1);
    assert_eq!(p.copies[0].sources, ["."]);
    assert_eq!(p.copies[0].dest, "/");
    assert!(p.copies[0].dest_is_dir);
}

#[test]
fn env_forms_and_substitution() {
    let p = plan(
        "FROM scratch\nENV A=1 B=\"v 2\" C='$A'\nENV LEG a legacy value\nENV D=${A}x E=$B\nLABEL l=\"$D\" m=${UNSET:-dflt}\nCOPY $D/f /opt/$A/\n",
    );
    assert_eq!(
        p.env,
        [
            ("A".into(), "1".into()),
            ("B".into(), "v 2".into()),
            ("C".into(), "$A".into()),
            ("LEG".into(), "a legacy value".into()),
            ("D".into(), "1x".into()),
            ("E".into(), "v 2".into()),
        ]
    );
    assert_eq!(
        p.labels,
        [("l".into(), "1x".into()), ("m".into(), "dflt".into())]
    );
    assert_eq!(p.copies[0].sources, ["1x/f"]);
    assert_eq!(p.copies[0].dest, "/opt/1");
    assert!(p.copies[0].dest_is_dir);
}

#[test]
fn arg_scopes_and_build_args() {
    let text = "ARG TAG=v1\nARG REPO\nFROM ${REPO:-labring}/kubernetes:$TAG\nARG TAG\nARG OTHER=o\nARG REPO\nLABEL t=$TAG o=$OTHER r=$REPO\n";
    let k = Kubefile::parse(text).unwrap();
    let p = k.resolve(&BuildArgs::new(), &[]).unwrap();
    assert_eq!(p.base, Base::Image("labring/kubernetes:v1".into()));
    assert_eq!(
        p.labels,
        [
            ("t".into(), "v1".into()),
            ("o".into(), "o".into()),
            ("r".into(), "".into())
        ]
    );
    let p = k
        .resolve(&args(&[("TAG", "v2"), ("OTHER", "x"), ("NOPE", "1")]), &[])
        .unwrap();
    assert_eq!(p.base, Base::Image("labring/kubernetes:v2".into()));
    assert_eq!(p.labels[0].1, "v2");
    assert_eq!(p.labels[1].1, "x");
    assert_eq!(p.unused_build_args, ["NOPE"]);
}

#[test]
fn env_wins_over_arg_and_base_env_is_visible() {
    let k = Kubefile::parse("FROM base\nARG X=arg\nLABEL a=$X b=$BASE\nENV X=env\nLABEL c=$X\n")
        .unwrap();
    let p = k.resolve(&BuildArgs::new(), &["BASE=b".into()]).unwrap();
    assert_eq!(p.labels[0].1, "arg");
    assert_eq!(p.labels[1].1, "b");
    assert_eq!(p.labels[2].1, "env");
}

#[test]
fn cmd_and_entrypoint_forms() {
    let p = plan("FROM scratch\nENTRYPOINT [\"/bin/x\", \"a b\"]\nCMD bash init.sh $X\n");
    assert_eq!(p.entrypoint, Some(vec!["/bin/x".into(), "a b".into()]));
    assert_eq!(
        p.cmd,
        Some(vec![
            "/bin/sh".into(),
            "-c".into(),
            "bash init.sh $X".into()
        ])
    );
    let p = plan("FROM scratch\nCMD [not json\n");
    assert_eq!(p.cmd.unwrap()[2], "[not json");
}

#[test]
fn config_application() {
    let base = RuntimeConfig {
        env: vec!["A=1".into(), "B=2".into()],
        labels: [("x".to_string(), "1".to_string())].into(),
        cmd: Some(vec!["old".into()]),
        entrypoint: None,
        author: None,
    };
    let p = plan("FROM scratch\nENV B=3 C=4\nLABEL y=2\nENTRYPOINT [\"e\"]\n");
    let c = p.apply(base.clone());
    assert_eq!(c.env, ["A=1", "B=3", "C=4"]);
    assert_eq!(c.labels.len(), 2);
    assert_eq!(c.cmd, None, "a new ENTRYPOINT clears the inherited CMD");
    let c = plan("FROM scratch\nLABEL x=9\n").apply(base);
    assert_eq!(c.cmd, Some(vec!["old".into()]));
    assert_eq!(c.labels["x"], "9");
}

#[test]
fn copy_forms() {
    let p = plan(
        "FROM scratch\nCOPY --chmod=0755 a b dir/\nCOPY [\"with space\", \"/x y\"]\nADD local.txt ./etc/\nCOPY --chown=0:0 /abs/../f g\nCOPY sub/./x/.. ../../up\n",
    );
    assert_eq!(p.copies[0].chmod, Some(0o755));
    assert_eq!(p.copies[0].sources, ["a", "b"]);
    assert_eq!(p.copies[0].dest, "/dir");
    assert_eq!(p.copies[1].sources, ["with space"]);
    assert_eq!(p.copies[1].dest, "/x y");
    assert!(!p.copies[1].dest_is_dir);
    assert!(p.copies[2].add);
    assert_eq!(p.copies[2].dest, "/etc");
    assert_eq!(p.copies[3].sources, ["f"]);
    assert_eq!(p.copies[3].dest, "/g");
    assert_eq!(p.copies[4].sources, ["sub"]);
    assert_eq!(p.copies[4].dest, "/up");
}

fn err(text: &str) -> KubefileError {
    match Kubefile::parse(text) {
        Err(e) => e,
        Ok(k) => k.resolve(&BuildArgs::new(), &[]).unwrap_err(),
    }
}

#[test]
fn refusals_name_the_line() {
    let e = err("FROM scratch\n\nRUN apt-get install x\n");
    assert_eq!(e, KubefileError::Run { line: 3 });
    assert!(e.to_string().contains("line 3") && e.to_string().contains("RUN"));
    assert!(matches!(
        err("FROM a\nFROM b\n"),
        KubefileError::MultipleFrom { line: 2, first: 1 }
    ));
    assert!(matches!(
        err("FROM a\nWORKDIR /x\n"),
        KubefileError::Unsupported { line: 2, .. }
    ));
    assert!(matches!(
        err("FROM a\nFROBNICATE\n"),
        KubefileError::Unsupported { line: 2, .. }
    ));
    assert!(matches!(
        err("COPY a b\nFROM a\n"),
        KubefileError::BeforeFrom { line: 1, .. }
    ));
    assert_eq!(err("# only a comment\n"), KubefileError::NoFrom);
    assert!(matches!(
        err("FROM scratch\nADD http://example.com/x.tgz /x\n"),
        KubefileError::RemoteAdd { line: 2, .. }
    ));
    assert!(matches!(
        err("FROM scratch\nADD rootfs.tar.gz /\n"),
        KubefileError::AddArchive { line: 2, .. }
    ));
    assert!(matches!(
        err("FROM scratch\nCOPY ../x /x\n"),
        KubefileError::OutsideContext { line: 2, .. }
    ));
    assert!(matches!(
        err("FROM scratch\nARG P=../..\nCOPY $P/etc /x\n"),
        KubefileError::OutsideContext { line: 3, .. }
    ));
    assert!(matches!(
        err("FROM scratch\nCOPY a b c\n"),
        KubefileError::Syntax { line: 2, .. }
    ));
    assert!(matches!(
        err("FROM scratch\nCOPY --from=x a b\n"),
        KubefileError::Syntax { .. }
    ));
    assert!(matches!(
        err("FROM scratch\nCOPY --chmod=999 a b\n"),
        KubefileError::Syntax { .. }
    ));
    assert!(matches!(
        err("FROM scratch\nCOPY --chown=1000 a b\n"),
        KubefileError::Syntax { .. }
    ));
    assert!(matches!(
        err("FROM scratch\nENV A=1 B\n"),
        KubefileError::Syntax { .. }
    ));
    assert!(matches!(
        err("FROM scratch\nENV A\n"),
        KubefileError::Syntax { .. }
    ));
    assert!(matches!(
        err("FROM scratch\nLABEL a=\"open\n"),
        KubefileError::Shell { line: 2, .. }
    ));
    assert!(matches!(err("FROM\n"), KubefileError::Syntax { .. }));
    assert!(matches!(err("FROM a b\n"), KubefileError::Syntax { .. }));
}

#[test]
fn from_forms() {
    let k = Kubefile::parse("from --platform=linux/arm64 labring/kubernetes:v1.27.7 AS base\n")
        .unwrap();
    assert_eq!(k.from.platform.as_deref(), Some("linux/arm64"));
    assert_eq!(k.from.image, "labring/kubernetes:v1.27.7");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parse_never_panics(text in "(?s).{0,300}") {
        if let Ok(k) = Kubefile::parse(&text) {
            let _ = k.resolve(&BuildArgs::new(), &["A=1".to_string()]);
        }
    }

    #[test]
    fn parse_never_panics_on_instruction_soup(
        lines in proptest::collection::vec(
            (
                prop::sample::select(vec!["FROM", "COPY", "ADD", "ENV", "LABEL", "CMD", "ENTRYPOINT", "ARG", "MAINTAINER", "# ", "RUN", ""]),
                "[ a-zA-Z0-9=\"'$\\\\{}:+?\\-\\[\\]./*`#\t]{0,40}",
            ),
            0..12,
        )
    ) {
        let text: String = lines.iter().map(|(i, a)| format!("{i} {a}\n")).collect();
        if let Ok(k) = Kubefile::parse(&text)
            && let Ok(p) = k.resolve(&args(&[("A", "x")]), &[])
        {
                for c in &p.copies {
                    prop_assert!(c.dest.starts_with('/'));
                    for s in &c.sources {
                        prop_assert!(!s.starts_with('/') && !s.split('/').any(|x| x == ".."));
                    }
                }
        }
    }

    #[test]
    fn ignore_rules_never_panic(pats in "(?s).{0,120}", path in "[a-z/.*?]{0,30}") {
        if let Ok(r) = IgnoreRules::parse(&pats) {
            let _ = r.is_excluded(&path);
        }
    }
}
