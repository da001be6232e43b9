//! A run whose agent dies during bootstrap resumes with a plain re-run.
//!
//! 1 master + 2 workers. The staged fixture image's `init.sh` gets a gate
//! after it installed the binaries: where `/run/ferry-test-hold` is a FIFO it
//! blocks reading it (only worker 1 has one). When worker 1's hook reports
//! that it is held, the test SIGKILLs inside that node either the agent's
//! supervisor, its `serve` process and the hook's process group (the agent
//! died and took the half-done hook with it, as systemd does to a unit's
//! cgroup; nothing restarts it) or `serve` alone (its supervisor restarts
//! it, and the new agent kills the hook the dead one left orphaned), or
//! unplugs the node's cable (the coordinator must give up within its stream
//! idle limit; the agent must cancel the exec once it sees the client is
//! gone). The first run must fail naming worker 1, the bootstrap step and what
//! to do next, with every other host's finished steps journaled; the same
//! command again must (re)start the agent where it is down (over SSH), skip
//! every step run 1 finished, redo worker 1's bootstrap and end with
//! ClusterSuccess. Prints `RESUME-AGENT-MEASURE` lines.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{Bastion, fixture_log, stage_fixture_image, stderr};
use ferry_tests::poll::poll_until;
use ferry_tests::testbed::{Testbed, TestbedConfig};
use serde_json::Value;

const HOLD: &str = "/run/ferry-test-hold";
const HELD: &str = "ferry-test: init.sh held";
const AGENT_BIN: &str = "/var/lib/ferry/agent/ferry-agent";
/// Run 1 from start to the hold, and from the kill to its exit.
const RUN_DEADLINE: Duration = Duration::from_secs(300);
const EXIT_DEADLINE: Duration = Duration::from_secs(60);

/// Inserts the gate into the staged `scripts/init.sh`, right after the
/// loop that installs kubeadm/kubelet (the hook is half done when held).
fn gate_init_script(image: &Path) {
    let path = image.join("scripts/init.sh");
    let text = std::fs::read_to_string(&path).unwrap();
    let gate = format!("done\nif [ -p {HOLD} ]; then echo \"{HELD}\"; cat {HOLD} >/dev/null; fi\n");
    assert!(text.contains("\ndone\n"), "init.sh changed shape:\n{text}");
    std::fs::write(&path, text.replacen("\ndone\n", &format!("\n{gate}"), 1)).unwrap();
}

/// Whether an event's `node` is the host at `ip` (`ip` or `ip:port`).
fn is_host(node: &Value, ip: &str) -> bool {
    let n = node.as_str().unwrap_or("");
    n == ip || n.strip_prefix(ip).is_some_and(|r| r.starts_with(':'))
}

/// `(host, step)` of per-host `run` events of `kind`; `skipped` selects
/// the journal skips (true), the real runs (false) or both (None).
fn steps(ev: &[Value], kind: &str, skipped: Option<bool>) -> BTreeSet<(String, String)> {
    ev.iter()
        .filter(|e| e["phase"] == "run" && e["kind"] == kind && e["node"] != "")
        .filter(|e| {
            let was_skipped = !e["counters"]["skipped"].is_null();
            skipped.is_none_or(|s| s == was_skipped)
        })
        .filter_map(|e| {
            let step = e["message"].as_str()?.split(':').next()?.to_string();
            Some((e["node"].as_str()?.to_string(), step))
        })
        .collect()
}

/// The last journal record of every (host, step): outcome.
fn journal(state: &Path) -> std::collections::BTreeMap<(String, String), String> {
    let text = std::fs::read_to_string(state.join("journal.jsonl")).unwrap();
    // The last record of each journal key (a host or one of its parts,
    // `<host>#rootfs`), then per (host, step): done only when every part is.
    let last: std::collections::BTreeMap<(String, String), String> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|r| {
            let key = (
                r["host"].as_str().unwrap().to_string(),
                r["step"].as_str().unwrap().to_string(),
            );
            (key, r["outcome"].as_str().unwrap().to_string())
        })
        .collect();
    let mut out = std::collections::BTreeMap::new();
    for ((key, step), outcome) in last {
        let host = key.split('#').next().unwrap().to_string();
        let e = out.entry((host, step)).or_insert_with(|| outcome.clone());
        if outcome != "done" {
            *e = outcome;
        }
    }
    out
}

/// How the agent dies on worker 1 while its `init.sh` is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Death {
    /// Supervisor, `serve` and the hook's process group at once (the unit's
    /// cgroup killed, or the node's agent gone): nothing restarts it, the
    /// re-run's check step must start it over SSH.
    AgentAndHook,
    /// `serve` alone (OOM killer, crash): the supervisor restarts it; the
    /// hook, in its own process group, is orphaned.
    ServeOnly,
    /// Not dead but unreachable: worker 1's cable unplugged (no FIN, no
    /// RST); the coordinator must give up within its stream idle limit.
    /// Plugged back after run 1 ended.
    Partition,
}

/// Processes of node `i`: (pid, pgid, args).
fn processes(tb: &Testbed, i: usize) -> Vec<(String, String, String)> {
    let ps = tb.exec_ok(i, &["ps", "-eo", "pid=,pgid=,args="]).unwrap();
    ps.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 3).then(|| (f[0].to_string(), f[1].to_string(), f[2..].join(" ")))
        })
        .collect()
}

/// The process group of the `cat` that holds init.sh on node `i`, if any.
fn held_group(tb: &Testbed, i: usize) -> Option<String> {
    processes(tb, i)
        .into_iter()
        .find(|(_, _, a)| *a == format!("cat {HOLD}"))
        .map(|(_, g, _)| g)
}

/// The held hook's process group on node `i`, waiting for it: the hook
/// prints HELD just before it execs the blocking `cat`.
fn wait_held_group(tb: &Testbed, i: usize) -> String {
    let mut group = None;
    poll_until(Instant::now() + Duration::from_secs(10), || {
        group = held_group(tb, i);
        group.is_some()
    });
    group.unwrap_or_else(|| {
        panic!(
            "no held hook on node {i} within 10 s: {:?}",
            processes(tb, i)
        )
    })
}

/// SIGKILLs (in one `kill`) what `death` names inside node `i`; returns
/// what was killed, for the log.
fn kill(tb: &Testbed, i: usize, death: Death) -> String {
    if death == Death::Partition {
        wait_held_group(tb, i);
        tb.set_link(i, false).unwrap();
        return "Partition: cable unplugged".into();
    }
    let procs = processes(tb, i);
    let serve = format!("{AGENT_BIN} serve");
    let mut targets: Vec<String> = procs
        .iter()
        .filter(|(_, _, a)| match death {
            Death::AgentAndHook => a.starts_with(AGENT_BIN),
            Death::ServeOnly | Death::Partition => a.starts_with(&serve),
        })
        .map(|(p, _, _)| p.clone())
        .collect();
    let want = if death == Death::AgentAndHook { 2 } else { 1 };
    assert_eq!(
        targets.len(),
        want,
        "agent processes on node {i}: {procs:?}"
    );
    let group = wait_held_group(tb, i);
    if death == Death::AgentAndHook {
        targets.push(format!("-{group}"));
    }
    let mut argv = vec!["kill", "-9", "--"];
    argv.extend(targets.iter().map(String::as_str));
    let out = tb.exec(i, &argv).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    format!("{death:?}: killed {targets:?}")
}

#[test]
fn agent_and_hook_killed_during_bootstrap_resume_with_plain_rerun() {
    scenario(Death::AgentAndHook);
}

#[test]
fn serve_killed_during_bootstrap_resumes_with_plain_rerun() {
    scenario(Death::ServeOnly);
}

#[test]
fn node_partitioned_during_bootstrap_fails_in_bounded_time_and_resumes() {
    scenario(Death::Partition);
}

fn scenario(death: Death) {
    let tb = Testbed::up(TestbedConfig::nodes(3)).expect("testbed up");
    let b = Bastion::new(&tb);
    let ip: Vec<String> = tb.nodes().iter().map(|n| n.ip.to_string()).collect();
    let work = tempfile::tempdir().unwrap();
    let image = stage_fixture_image(work.path());
    gate_init_script(&image);
    let pw = tb.password("root").unwrap();
    let nodes = format!("{},{}", ip[1], ip[2]);
    let args = [
        "--output",
        "json",
        "run",
        image.to_str().unwrap(),
        "--masters",
        &ip[0],
        "--nodes",
        &nodes,
        "-p",
        pw,
    ];
    tb.exec_ok(1, &["mkfifo", HOLD]).unwrap();

    // Run 1: events read on a thread, so every wait below has a deadline.
    let t1 = Instant::now();
    let mut child = b
        .command(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::sync_channel::<Value>(1024);
    let out = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let e: Value = serde_json::from_str(&line.unwrap()).unwrap();
            if tx.send(e).is_err() {
                break;
            }
        }
    });
    let mut err_pipe = child.stderr.take().unwrap();
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err_pipe.read_to_string(&mut s);
        s
    });
    let mut first = Vec::new();
    let mut killed_at = None;
    loop {
        let limit = match killed_at {
            None => RUN_DEADLINE.saturating_sub(t1.elapsed()),
            Some(k) => EXIT_DEADLINE.saturating_sub(Instant::elapsed(&k)),
        };
        let e = match rx.recv_timeout(limit) {
            Ok(e) => e,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                panic!(
                    "run 1 {}; events so far:\n{}",
                    if killed_at.is_some() {
                        "did not exit after the agent was killed (hang)"
                    } else {
                        "never reached the held init.sh on worker 1"
                    },
                    first
                        .iter()
                        .map(Value::to_string)
                        .collect::<Vec<_>>()
                        .join("\n")
                );
            }
        };
        let held = killed_at.is_none()
            && e["kind"] == "log"
            && is_host(&e["node"], &ip[1])
            && e["message"] == HELD;
        first.push(e);
        if held {
            let what = kill(&tb, 1, death);
            println!(
                "RESUME-AGENT-MEASURE killed on worker 1 after {:?}: {what}",
                t1.elapsed()
            );
            killed_at = Some(Instant::now());
        }
    }
    let status = child.wait().unwrap();
    reader.join().unwrap();
    let err1 = err_reader.join().unwrap();
    let run1 = t1.elapsed();
    let killed_at = killed_at.expect("worker 1 never reported the held init.sh");
    let kill_to_exit = killed_at.elapsed();
    assert!(
        !status.success(),
        "run 1 succeeded although worker 1's agent died"
    );

    // The failure names the host, the step and the next action.
    let victim = first
        .iter()
        .find(|e| e["phase"] == "run" && e["kind"] == "failed" && e["node"] != "")
        .unwrap_or_else(|| panic!("no per-host failure event; stderr:\n{err1}"));
    let host1 = victim["node"].as_str().unwrap().to_string();
    assert!(is_host(&victim["node"], &ip[1]), "{victim}");
    let msg = victim["message"].as_str().unwrap();
    println!("RESUME-AGENT-MEASURE {death:?} run 1 failed on {host1}: {msg}");
    assert!(msg.starts_with("bootstrap:"), "{msg}");
    assert!(msg.contains("re-run"), "no next action in: {msg}");
    let summary = first
        .iter()
        .chain(std::iter::once(&Value::String(err1.clone())))
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        summary.contains(&format!("{host1}: bootstrap:")),
        "the run's failure does not name {host1} and bootstrap:\n{summary}"
    );

    // Finished steps of the other hosts are journaled; worker 1's is not done.
    let state = b.home().join(".ferry/default");
    let j = journal(&state);
    let done_before = steps(&first, "finished", Some(false));
    for (host, step) in &done_before {
        assert_eq!(
            j.get(&(host.clone(), step.clone())).map(String::as_str),
            Some("done"),
            "{host} {step}"
        );
    }
    let did = |ip: &str, step: &str| {
        done_before
            .iter()
            .any(|(h, s)| is_host(&Value::from(h.as_str()), ip) && s == step)
    };
    assert!(
        did(&ip[0], "bootstrap") && did(&ip[2], "bootstrap"),
        "{done_before:?}"
    );
    assert!(ip.iter().all(|i| did(i, "distribute")), "{done_before:?}");
    assert_eq!(
        j.get(&(host1.clone(), "bootstrap".into()))
            .map(String::as_str),
        Some("failed")
    );

    if death == Death::Partition {
        tb.set_link(1, true).unwrap();
    }
    // The hook must not outlive its agent: where only `serve` died, the
    // restarted agent kills the group its predecessor left orphaned; after a
    // partition, the agent cancels the exec whose client went away.
    let t = Instant::now();
    assert!(
        poll_until(t + EXIT_DEADLINE, || held_group(&tb, 1).is_none()),
        "run 1's init.sh still runs on worker 1: {:?}",
        processes(&tb, 1)
    );
    println!(
        "RESUME-AGENT-MEASURE {death:?} orphaned hook gone {:.2}s after run 1 ended",
        t.elapsed().as_secs_f64()
    );

    // Run 2: the same command.
    tb.exec_ok(1, &["rm", "-f", HOLD]).unwrap();
    let t2 = Instant::now();
    let (out, ev) = b.ferry_json(&args[2..]);
    let run2 = t2.elapsed();
    assert!(out.status.success(), "{}", stderr(&out));
    let cf = std::fs::read_to_string(state.join("Clusterfile")).unwrap();
    assert!(cf.contains("phase: ClusterSuccess"), "{cf}");

    let started = steps(&ev, "started", None);
    let skipped = steps(&ev, "finished", Some(true));
    let redone: Vec<_> = done_before.intersection(&started).collect();
    assert!(redone.is_empty(), "re-run redid finished steps: {redone:?}");
    let not_skipped: Vec<_> = done_before.difference(&skipped).collect();
    assert!(
        not_skipped.is_empty(),
        "not reported skipped: {not_skipped:?}"
    );
    let rerun = steps(&ev, "finished", Some(false));
    assert!(
        rerun.contains(&(host1.clone(), "bootstrap".into())),
        "worker 1's bootstrap did not run again: {rerun:?}"
    );
    assert!(
        !ev.iter().any(|e| e["message"] == HELD),
        "the FIFO is gone: nothing may be held in run 2"
    );
    // Where the agent was down, the check step started it again over SSH
    // without re-sending the binary (it was intact on the node).
    let phase = |p: &str| {
        ev.iter()
            .find(|e| e["phase"] == p && e["kind"] == "finished" && is_host(&e["node"], &ip[1]))
    };
    if death == Death::AgentAndHook {
        assert!(
            phase("start").is_some() && phase("ready").is_some(),
            "agent not restarted"
        );
        let up = phase("upload").map(|e| e["counters"]["uploaded_bytes"].as_u64().unwrap_or(0));
        assert!(
            up.unwrap_or(0) < 1 << 20,
            "the agent binary was uploaded again: {up:?}"
        );
        println!("RESUME-AGENT-MEASURE {death:?} agent restart uploaded {up:?} bytes");
    }
    // The agent is back under its supervisor and worker 1 joined.
    let ps = tb.exec_ok(1, &["ps", "-eo", "args="]).unwrap();
    assert!(
        ps.lines()
            .any(|l| l.starts_with(&format!("{AGENT_BIN} supervise"))),
        "{ps}"
    );
    let log = fixture_log(&tb, 1);
    assert!(
        log.iter()
            .any(|l| l["command"].as_str().unwrap_or("").starts_with("join") && l["ok"] == true),
        "worker 1 did not join: {log:?}"
    );

    let names = |s: &BTreeSet<(String, String)>| {
        s.iter()
            .map(|(h, st)| format!("{h}/{st}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!(
        "RESUME-AGENT-MEASURE {death:?} run1_until_failure={:.2}s kill_to_exit={:.2}s run2={:.2}s",
        run1.as_secs_f64(),
        kill_to_exit.as_secs_f64(),
        run2.as_secs_f64()
    );
    println!(
        "RESUME-AGENT-MEASURE {death:?} skipped in run 2: {}",
        names(&skipped)
    );
    println!(
        "RESUME-AGENT-MEASURE {death:?} ran in run 2: {}",
        names(&rerun)
    );

    let out = b.ferry(&["reset", "-p", pw]);
    assert!(out.status.success());
}
