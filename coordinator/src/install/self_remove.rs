//! Removing the agent through the agent itself (no SSH): a detached script,
//! outside the agent's process group (and outside its systemd unit), stops
//! the agent, resets the load balancer's kernel state and removes the
//! agent's files; the coordinator then waits until the agent no longer
//! answers. The same steps as the SSH path (`uninstall.rs`).

use std::net::IpAddr;
use std::time::{Duration, Instant};

use ferry_shared::{EventKind, ExecSpec, Phase};
use futures::StreamExt;

use super::layout;
use crate::client::{AgentClient, ClientTls, ExecItem};
use crate::lb::LbClient;
use crate::output::Reporter;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the agent may keep answering after the removal started.
const GONE_WITHIN: Duration = Duration::from_secs(30);

/// The removal script. Its first line drops the exec's pipes, so the
/// exec that started it ends at once; the pause lets the reply out. The
/// agent's directory is first moved out of sight and the cache removed,
/// so once the agent stops answering nothing of it is left where it lived
/// (what follows runs from the moved directory: stop, LB leftovers, rm).
fn script() -> String {
    let moved = |argv: Vec<String>| argv.join(" ").replace(layout::AGENT_DIR, "$T");
    format!(
        "exec </dev/null >/dev/null 2>&1\nsleep 1\n\
         T=/var/lib/.ferry-agent-removed.$$\n\
         mv {dir} \"$T\"\n\
         rm -rf {cache}\n\
         rmdir --ignore-fail-on-non-empty /var/lib/ferry\n\
         if [ -f {unit_path} ]; then systemctl disable {unit}; rm -f {unit_path}; systemctl stop {unit}; systemctl daemon-reload; fi\n\
         if [ -x \"$T/ferry-agent\" ]; then {stop}; {reset}; fi\n\
         rm -rf \"$T\"\n",
        unit_path = layout::UNIT_PATH,
        unit = layout::UNIT_NAME,
        dir = layout::AGENT_DIR,
        cache = layout::CACHE_DIR,
        stop = moved(layout::stop_daemon_command()),
        reset = moved(layout::lb_reset_command()),
    )
}

/// The argv that starts [`script`] detached: a transient systemd unit
/// where systemd runs the agent (stopping the agent's unit must not kill
/// it), else a new session.
fn detached(supervisor: &str) -> Vec<String> {
    let mut argv: Vec<String> = if supervisor == "systemd" {
        [
            "systemd-run",
            "--collect",
            "--no-block",
            "--quiet",
            "--unit",
            "ferry-agent-remove",
        ]
        .map(String::from)
        .to_vec()
    } else {
        vec!["setsid".into(), "-f".into()]
    };
    argv.extend(["sh".into(), "-c".into(), script()]);
    argv
}

/// Removes the agent at `ip` through itself. `Err` (with why) when the
/// agent does not answer or the removal did not take.
pub async fn remove_via_agent(
    host: &str,
    ip: IpAddr,
    port: u16,
    tls: &ClientTls,
    r: &Reporter,
) -> Result<(), String> {
    let c = AgentClient::connect(ip, port, tls, CONNECT_TIMEOUT)
        .await
        .map_err(|e| format!("agent not answering: {e}"))?;
    let facts = c.facts().await.map_err(|e| e.to_string())?;
    // The agent takes its VIP rules and route down itself first: after it
    // stops nothing would, before it stops it would put them back.
    LbClient::new(&c, CONNECT_TIMEOUT)
        .delete(r.op())
        .await
        .map_err(|e| format!("removing the load balancer: {e}"))?;
    r.emit(
        r.event(host, Phase::Uninstall, EventKind::Started)
            .message("through the agent (no SSH)")
            .counter("ssh", 0),
    );
    let spec = ExecSpec::argv(detached(&facts.supervisor), r.op());
    let mut stream = c.exec(&spec).await.map_err(|e| e.to_string())?;
    let mut ok = false;
    while let Some(item) = stream.next().await {
        if let ExecItem::Exit(o) = item.map_err(|e| e.to_string())? {
            ok = o.success();
            break;
        }
    }
    if !ok {
        return Err("the agent could not start its removal".into());
    }
    drop(c);
    let start = Instant::now();
    loop {
        let answers = match AgentClient::connect(ip, port, tls, Duration::from_secs(2)).await {
            Ok(c) => c.facts().await.is_ok(),
            Err(_) => false,
        };
        if !answers {
            break;
        }
        if start.elapsed() > GONE_WITHIN {
            return Err(format!(
                "the agent still answers {}s after its removal started; next: `ferry agent uninstall` over SSH",
                GONE_WITHIN.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    r.emit(
        r.event(host, Phase::Uninstall, EventKind::Finished)
            .message(format!(
                "removed {} and {} through the agent (no SSH)",
                layout::AGENT_DIR,
                layout::CACHE_DIR
            ))
            .counter("ssh", 0),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removal_is_detached_and_drops_the_exec_pipes() {
        let d = detached("daemon");
        assert_eq!(&d[..4], ["setsid", "-f", "sh", "-c"]);
        assert!(d[4].starts_with("exec </dev/null >/dev/null 2>&1\n"));
        assert!(d[4].contains("$T/ferry-agent stop --pidfile $T/agent.pid"));
        assert!(d[4].contains("$T/ferry-agent lb-reset --lb-dir $T/lb"));
        // The agent's directory leaves its place before the agent stops.
        let mv = d[4].find(&format!("mv {}", layout::AGENT_DIR)).unwrap();
        assert!(mv < d[4].find("stop --pidfile").unwrap());
        let s = detached("systemd");
        assert_eq!(s[0], "systemd-run");
        assert!(s.contains(&"--collect".to_string()));
    }
}
