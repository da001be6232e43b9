//! The runs view: steps, advice, timings, per-host state and failures;
//! the page knows every step name.

use ferry_shared::pipeline::Step;
use ferry_shared::{Event, EventKind, Phase, Source};

use super::super::assets::APP_JS;
use super::super::view::{ClusterView, advice_of, parse_timings, step_of};

fn run(node: &str, kind: EventKind, msg: &str) -> Event {
    Event::new(Source::Coordinator, 10, node, "op1", Phase::Run, kind).message(msg)
}

#[test]
fn messages_name_their_step_and_advice() {
    assert_eq!(step_of("distribute: rootfs: 1 MiB"), Some(Step::Distribute));
    assert_eq!(step_of("join-worker"), Some(Step::JoinWorker));
    assert_eq!(step_of("guest img:v1"), Some(Step::Guest));
    assert_eq!(step_of("10.0.0.2: bootstrap"), None);
    assert_eq!(step_of("checks"), None);
    assert_eq!(
        advice_of("x failed\nnext: fix it, then re-run"),
        "fix it, then re-run"
    );
    assert_eq!(
        parse_timings("timings: check 0.10s, images 1.25s"),
        vec![("check".into(), 0.1), ("images".into(), 1.25)]
    );
}

#[test]
fn a_run_folds_into_hosts_steps_and_failures() {
    let mut v = ClusterView::default();
    v.apply(&run("10.0.0.2", EventKind::Started, "bootstrap"));
    v.apply(&run("10.0.0.2", EventKind::Log, "check: ok"));
    v.apply(&run("10.0.0.3", EventKind::Started, "bootstrap"));
    v.apply(&run("10.0.0.2", EventKind::Finished, "bootstrap").counter("duration_ms", 5));
    v.apply(&run(
        "10.0.0.3",
        EventKind::Failed,
        "bootstrap: 10.0.0.3: bootstrap: `check hook` exited 1\nnext: fix the cause on the node, then re-run",
    ));
    let mut end = run(
        "",
        EventKind::Failed,
        "timings: check 0.10s, bootstrap 2.00s",
    );
    end.counters.insert("duration_ms".into(), 2100);
    v.apply(&end);
    let r = &v.runs[0];
    assert_eq!((r.outcome, r.duration_ms), ("failed", Some(2100)));
    assert_eq!(r.hosts["10.0.0.2"]["bootstrap"].state, "done");
    assert_eq!(r.hosts["10.0.0.3"]["bootstrap"].state, "failed");
    assert_eq!(r.failures.len(), 1);
    let f = &r.failures[0];
    assert_eq!(
        (f.host.as_str(), f.step.as_str()),
        ("10.0.0.3", "bootstrap")
    );
    assert_eq!(f.advice, "fix the cause on the node, then re-run");
    assert_eq!(v.hosts["10.0.0.3"].state, "failed");
    assert_eq!(r.timings.len(), 2);
}

#[test]
fn the_page_knows_every_step() {
    for s in Step::ALL {
        assert!(
            APP_JS.contains(&format!("\"{}\"", s.as_str())),
            "{s} missing in app.js"
        );
    }
}

#[tokio::test]
async fn certs_without_an_agent_are_the_labelled_bastion_copy() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki/kubernetes/10.77.0.11/pki");
    std::fs::create_dir_all(&pki).unwrap();
    let ca = rcgen::generate_simple_self_signed(vec!["kubernetes".into()]).unwrap();
    std::fs::write(pki.join("ca.crt"), ca.cert.pem()).unwrap();
    let got = super::super::certs::check(dir.path(), &Default::default()).await;
    assert_eq!(got.len(), 1);
    let m = &got[0];
    assert_eq!(
        (m.master.as_str(), m.source),
        ("10.77.0.11", "bastion-copy")
    );
    assert!(m.note.contains("no agent"), "{}", m.note);
    let row = m.certs.iter().find(|c| c.name == "ca").expect("the ca row");
    assert!(row.not_after.is_some() && !row.expired && row.residual_days > Some(300));
}
