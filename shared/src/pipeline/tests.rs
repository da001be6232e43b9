use super::*;
use crate::clusterfile::Clusterfile;

#[test]
fn steps_round_trip() {
    for s in Step::ALL {
        assert_eq!(s.as_str().parse::<Step>().unwrap(), s);
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            format!("\"{}\"", s.as_str())
        );
    }
}

#[test]
fn host_steps() {
    let m0 = Step::for_host(true, true);
    assert!(m0.contains(&Step::InitMaster) && !m0.contains(&Step::JoinWorker));
    let w = Step::for_host(false, false);
    let lb = w.iter().position(|s| *s == Step::LbSync).unwrap();
    let join = w.iter().position(|s| *s == Step::JoinWorker).unwrap();
    assert!(lb < join, "the VIP comes before the worker join");
}

#[test]
fn journal_skips_only_same_digest_done() {
    let rec = |host: &str, d: &str, o: Outcome| JournalRecord {
        ts_ms: 1,
        op: "op".into(),
        step: Step::Bootstrap,
        host: host.into(),
        digest: d.into(),
        outcome: o,
        message: String::new(),
    };
    let lines = [
        serde_json::to_string(&rec("a", "d1", Outcome::Done)).unwrap(),
        serde_json::to_string(&rec("b", "d1", Outcome::Failed)).unwrap(),
        "{\"torn".to_string(),
    ]
    .join("\n");
    let (j, bad) = Journal::from_lines(&lines);
    assert_eq!(bad.len(), 1);
    assert!(j.is_done(Step::Bootstrap, "a", "d1"));
    assert!(!j.is_done(Step::Bootstrap, "a", "d2"));
    assert!(!j.is_done(Step::Bootstrap, "b", "d1"));
    let mut j = j;
    j.record(rec("a", "d1", Outcome::Undone));
    assert!(!j.ever_done(Step::Bootstrap, "a"));
}

#[test]
fn digests_are_unambiguous() {
    assert_ne!(digest(&["ab", "c"]), digest(&["a", "bc"]));
    assert_eq!(digest(&["x"]), digest(&["x"]));
}

const OLD: &str = "apiVersion: apps.sealos.io/v1beta1\nkind: Cluster\nmetadata: {name: default}\nspec:\n  hosts:\n  - ips: [10.0.0.2:22]\n    roles: [master]\n  - ips: [10.0.0.3:22, 10.0.0.4:22]\n    roles: [node]\n";
const NEW: &str = "apiVersion: apps.sealos.io/v1beta1\nkind: Cluster\nmetadata: {name: default}\nspec:\n  hosts:\n  - ips: [10.0.0.2:22]\n    roles: [master]\n  - ips: [10.0.0.3:22, 10.0.0.5:22]\n    roles: [node]\n";

#[test]
fn diff_adds_and_removes_in_one_go() {
    let old = Clusterfile::parse(OLD).unwrap().cluster;
    let new = Clusterfile::parse(NEW).unwrap().cluster;
    let d = host_diff(
        &old.resolved_hosts().unwrap(),
        &new.resolved_hosts().unwrap(),
    );
    let got: Vec<(String, HostChange)> =
        d.iter().map(|(h, c)| (h.addr.ip.to_string(), *c)).collect();
    assert_eq!(
        got,
        [
            ("10.0.0.2".to_string(), HostChange::Keep),
            ("10.0.0.3".to_string(), HostChange::Keep),
            ("10.0.0.5".to_string(), HostChange::Add),
            ("10.0.0.4".to_string(), HostChange::Remove),
        ]
    );
    let m0 = new.master0().unwrap();
    let p = HostPlan::new(&d[0].0, d[0].1, &m0, 10, 5).unwrap();
    assert_eq!(p.bytes, 15);
    assert!(p.steps.contains(&"init-master".to_string()));
    let p = HostPlan::new(&d[3].0, d[3].1, &m0, 10, 5).unwrap();
    assert_eq!(p.bytes, 0);
}

#[test]
fn parts_of_a_host_are_journaled_alone_and_undone_with_it() {
    let rec = |key: &str, o: Outcome| JournalRecord {
        ts_ms: 1,
        op: "op".into(),
        step: Step::Guest,
        host: key.into(),
        digest: "d".into(),
        outcome: o,
        message: String::new(),
    };
    assert_eq!(part_key("10.0.0.1:22", ""), "10.0.0.1:22");
    let k = part_key("10.0.0.1:22", "guest:app");
    assert_eq!(k, "10.0.0.1:22#guest:app");
    assert_eq!(key_host(&k), "10.0.0.1:22");
    assert_eq!(key_host("10.0.0.1:22"), "10.0.0.1:22");
    let mut j = Journal::default();
    j.record(rec(&k, Outcome::Done));
    j.record(rec(&part_key("10.0.0.1:22", "guest:b"), Outcome::Failed));
    j.record(rec(&part_key("10.0.0.10:22", "guest:app"), Outcome::Done));
    j.record(rec(&part_key("10.0.0.1:22", "guest:gone"), Outcome::Undone));
    assert!(j.is_done(Step::Guest, &k, "d"));
    assert!(
        !j.is_done(Step::Guest, "10.0.0.1:22", "d"),
        "the host itself"
    );
    let mut live = j.live_keys(Step::Guest, "10.0.0.1:22");
    live.sort();
    assert_eq!(
        live,
        vec!["10.0.0.1:22#guest:app", "10.0.0.1:22#guest:b"],
        "not another host sharing the prefix, not an undone part"
    );
}
