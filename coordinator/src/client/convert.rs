//! The coordinator's protocol edge: the only module that converts between
//! prost messages and ferry domain types. Invalid agent replies are rejected
//! here with a named error.

use std::collections::BTreeMap;
use std::time::Duration;

use ferry_proto::pb;
use ferry_shared::{Event, EventKind, ExecSpec, ExitOutcome, Facts, Phase, Program, Source};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConvertError {
    #[error("agent sent an exec frame with no content")]
    EmptyFrame,
    #[error("agent sent an event with {0}")]
    BadEvent(String),
}

pub fn exec_request(spec: &ExecSpec) -> pb::ExecRequest {
    let program = match &spec.program {
        Program::Argv(args) => pb::exec_request::Program::Argv(pb::Argv { args: args.clone() }),
        Program::Script { path, args } => pb::exec_request::Program::Script(pb::ScriptFile {
            path: path.clone(),
            args: args.clone(),
        }),
    };
    pb::ExecRequest {
        program: Some(program),
        env: spec
            .env
            .iter()
            .map(|(name, value)| pb::EnvVar {
                name: name.clone(),
                value: value.clone(),
            })
            .collect(),
        cwd: spec.cwd.clone().unwrap_or_default(),
        timeout_ms: spec.timeout.map(|t| t.as_millis() as u64).unwrap_or(0),
        operation_id: spec.operation_id.clone(),
        phase: spec.phase.as_str().to_string(),
        stdin: spec.stdin.clone(),
    }
}

/// One meaningful item of an exec stream (heartbeats are consumed below).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecItem {
    Started { pid: u32 },
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    Exit(ExitOutcome),
    Heartbeat,
}

pub fn exec_item(frame: pb::ExecFrame) -> Result<ExecItem, ConvertError> {
    use pb::exec_frame::Frame;
    Ok(match frame.frame.ok_or(ConvertError::EmptyFrame)? {
        Frame::Started(s) => ExecItem::Started { pid: s.pid },
        Frame::Stdout(c) => ExecItem::Stdout(c.data),
        Frame::Stderr(c) => ExecItem::Stderr(c.data),
        Frame::Heartbeat(_) => ExecItem::Heartbeat,
        Frame::Exit(e) => ExecItem::Exit(ExitOutcome {
            code: (e.signal == 0 && e.code >= 0).then_some(e.code),
            signal: (e.signal != 0).then_some(e.signal),
            timed_out: e.timed_out,
            duration: Duration::from_millis(e.duration_ms),
            dropped_bytes: e.dropped_bytes,
        }),
    })
}

pub fn facts(r: pb::FactsReply) -> Facts {
    Facts {
        node_name: r.node_name,
        hostname: r.hostname,
        os_id: r.os_id,
        os_version: r.os_version,
        os_pretty_name: r.os_pretty_name,
        kernel: r.kernel,
        arch: r.arch,
        cpus: r.cpus,
        memory_bytes: r.memory_bytes,
        unix_time_ms: r.unix_time_ms,
        agent_version: r.agent_version,
        agent_sha256: r.agent_sha256,
        ip_addresses: r.ip_addresses,
        agent_uptime_ms: r.agent_uptime_ms,
        agent_pid: r.agent_pid,
        supervisor: r.supervisor,
    }
}

pub fn event(e: pb::Event) -> Result<Event, ConvertError> {
    let phase: Phase = e
        .phase
        .parse()
        .map_err(|_| ConvertError::BadEvent(format!("unknown phase `{}`", e.phase)))?;
    let kind: EventKind = e
        .kind
        .parse()
        .map_err(|_| ConvertError::BadEvent(format!("unknown kind `{}`", e.kind)))?;
    let mut ev = Event::new(
        Source::Agent,
        e.unix_time_ms,
        e.node,
        e.operation_id,
        phase,
        kind,
    )
    .message(e.message);
    ev.seq = e.seq;
    ev.counters = e.counters.into_iter().collect::<BTreeMap<_, _>>();
    Ok(ev)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_frame_maps_code_and_signal() {
        let f = |code, signal| pb::ExecFrame {
            frame: Some(pb::exec_frame::Frame::Exit(pb::ExitStatus {
                code,
                signal,
                timed_out: false,
                duration_ms: 12,
                dropped_bytes: 0,
            })),
        };
        let ExecItem::Exit(o) = exec_item(f(3, 0)).unwrap() else {
            panic!()
        };
        assert_eq!((o.code, o.signal), (Some(3), None));
        let ExecItem::Exit(o) = exec_item(f(-1, 9)).unwrap() else {
            panic!()
        };
        assert_eq!((o.code, o.signal), (None, Some(9)));
        assert_eq!(
            exec_item(pb::ExecFrame { frame: None }),
            Err(ConvertError::EmptyFrame)
        );
    }

    #[test]
    fn events_with_unknown_phase_are_rejected() {
        let mut e = pb::Event {
            phase: "exec".into(),
            kind: "finished".into(),
            ..Default::default()
        };
        assert!(event(e.clone()).is_ok());
        e.phase = "warp".into();
        assert!(event(e).is_err());
    }

    #[test]
    fn request_carries_everything() {
        let mut s = ExecSpec::argv(vec!["ls".into(), "-l".into()], "op9");
        s.cwd = Some("/tmp".into());
        s.timeout = Some(Duration::from_secs(2));
        s.env.push(("A".into(), "1".into()));
        let r = exec_request(&s);
        assert_eq!(r.timeout_ms, 2000);
        assert_eq!(r.cwd, "/tmp");
        assert_eq!(r.phase, "exec");
        assert_eq!(r.env[0].name, "A");
    }
}
