//! The agent's protocol edge: the only module that touches prost types.
//! Requests become validated domain types (or `InvalidArgument` naming the
//! problem); domain results become protocol messages.

use std::time::Duration;

use ferry_proto::pb;
use ferry_shared::{Event, ExecSpec, ExitOutcome, Facts, Phase, Program};
use tonic::Status;

use crate::events::EventItem;
use crate::exec::{ExecError, ExecOutput};

fn invalid(msg: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!("invalid exec request: {msg}"))
}

/// Validates an `ExecRequest` into an [`ExecSpec`].
pub fn exec_spec(req: pb::ExecRequest) -> Result<ExecSpec, Status> {
    let program = match req.program {
        Some(pb::exec_request::Program::Argv(a)) => Program::Argv(a.args),
        Some(pb::exec_request::Program::Script(s)) => Program::Script {
            path: s.path,
            args: s.args,
        },
        None => return Err(invalid("no program: set either argv or script")),
    };
    let phase = if req.phase.is_empty() {
        Phase::Exec
    } else {
        req.phase.parse::<Phase>().map_err(invalid)?
    };
    let spec = ExecSpec {
        program,
        env: req.env.into_iter().map(|e| (e.name, e.value)).collect(),
        cwd: (!req.cwd.is_empty()).then_some(req.cwd),
        timeout: (req.timeout_ms > 0).then(|| Duration::from_millis(req.timeout_ms)),
        operation_id: req.operation_id,
        phase,
        stdin: req.stdin,
    };
    spec.validate().map_err(invalid)?;
    Ok(spec)
}

/// Why an exec could not start, as a gRPC status.
pub fn exec_error(e: &ExecError) -> Status {
    let msg = e.to_string();
    match e {
        ExecError::TooMany { .. } => Status::resource_exhausted(msg),
        ExecError::ShuttingDown => Status::unavailable(msg),
        ExecError::Spawn { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            Status::not_found(msg)
        }
        ExecError::Spawn { source, .. }
            if source.kind() == std::io::ErrorKind::PermissionDenied =>
        {
            Status::permission_denied(msg)
        }
        ExecError::Cwd { .. } | ExecError::Script { .. } => Status::failed_precondition(msg),
        ExecError::Spawn { .. } | ExecError::Group(_) => Status::internal(msg),
    }
}

fn exit_status(o: &ExitOutcome) -> pb::ExitStatus {
    pb::ExitStatus {
        code: o.code.unwrap_or(-1),
        signal: o.signal.unwrap_or(0),
        timed_out: o.timed_out,
        duration_ms: u64::try_from(o.duration.as_millis()).unwrap_or(u64::MAX),
        dropped_bytes: o.dropped_bytes,
    }
}

pub fn exec_frame(out: ExecOutput) -> pb::ExecFrame {
    use pb::exec_frame::Frame;
    let frame = match out {
        ExecOutput::Started { pid } => Frame::Started(pb::ExecStarted { pid }),
        ExecOutput::Stdout(data) => Frame::Stdout(pb::OutputChunk { data }),
        ExecOutput::Stderr(data) => Frame::Stderr(pb::OutputChunk { data }),
        ExecOutput::Heartbeat { unix_ms } => Frame::Heartbeat(pb::Heartbeat {
            unix_time_ms: unix_ms,
        }),
        ExecOutput::Exit(o) => Frame::Exit(exit_status(&o)),
    };
    pb::ExecFrame { frame: Some(frame) }
}

pub fn event(e: Event) -> pb::Event {
    pb::Event {
        seq: e.seq,
        unix_time_ms: e.ts_ms,
        node: e.node,
        operation_id: e.op,
        phase: e.phase.as_str().to_string(),
        kind: e.kind.as_str().to_string(),
        counters: e.counters.into_iter().collect(),
        message: e.message,
    }
}

pub fn event_frame(item: EventItem) -> pb::EventFrame {
    use pb::event_frame::Frame;
    let frame = match item {
        EventItem::Event(e) => Frame::Event(event(e)),
        EventItem::Heartbeat { unix_ms } => Frame::Heartbeat(pb::Heartbeat {
            unix_time_ms: unix_ms,
        }),
    };
    pb::EventFrame { frame: Some(frame) }
}

pub fn facts(f: Facts) -> pb::FactsReply {
    pb::FactsReply {
        hostname: f.hostname,
        os_id: f.os_id,
        os_version: f.os_version,
        os_pretty_name: f.os_pretty_name,
        kernel: f.kernel,
        arch: f.arch,
        cpus: f.cpus,
        memory_bytes: f.memory_bytes,
        unix_time_ms: f.unix_time_ms,
        agent_version: f.agent_version,
        agent_sha256: f.agent_sha256,
        ip_addresses: f.ip_addresses,
        agent_uptime_ms: f.agent_uptime_ms,
        node_name: f.node_name,
        agent_pid: f.agent_pid,
        supervisor: f.supervisor,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_shared::EventKind;

    fn argv(args: &[&str]) -> pb::ExecRequest {
        pb::ExecRequest {
            program: Some(pb::exec_request::Program::Argv(pb::Argv {
                args: args.iter().map(|s| s.to_string()).collect(),
            })),
            ..Default::default()
        }
    }

    #[test]
    fn defaults_map_to_none() {
        let s = exec_spec(argv(&["true"])).unwrap();
        assert_eq!(s.cwd, None);
        assert_eq!(s.timeout, None);
        assert_eq!(s.phase, Phase::Exec);
        let mut r = argv(&["true"]);
        r.timeout_ms = 1500;
        r.cwd = "/tmp".into();
        r.phase = "upload".into();
        r.env.push(pb::EnvVar {
            name: "A".into(),
            value: "1".into(),
        });
        let s = exec_spec(r).unwrap();
        assert_eq!(s.timeout, Some(Duration::from_millis(1500)));
        assert_eq!(s.cwd.as_deref(), Some("/tmp"));
        assert_eq!(s.phase, Phase::Upload);
        assert_eq!(s.env, vec![("A".to_string(), "1".to_string())]);
    }

    #[test]
    fn invalid_requests_name_the_problem() {
        let e = exec_spec(argv(&[])).unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(e.message().contains("empty command"), "{}", e.message());
        let mut r = argv(&["ls"]);
        r.cwd = "tmp".into();
        let e = exec_spec(r).unwrap_err();
        assert!(
            e.message().contains("`tmp` must be absolute"),
            "{}",
            e.message()
        );
        let e = exec_spec(pb::ExecRequest::default()).unwrap_err();
        assert!(e.message().contains("no program"), "{}", e.message());
        let mut r = argv(&["ls"]);
        r.phase = "warp".into();
        assert!(exec_spec(r).unwrap_err().message().contains("warp"));
    }

    #[test]
    fn exit_frames_encode_code_and_signal() {
        let o = ExitOutcome {
            code: None,
            signal: Some(9),
            timed_out: true,
            duration: Duration::from_millis(1234),
            dropped_bytes: 0,
        };
        let f = exec_frame(ExecOutput::Exit(o));
        let Some(pb::exec_frame::Frame::Exit(x)) = f.frame else {
            panic!("not an exit frame")
        };
        assert_eq!(
            (x.code, x.signal, x.timed_out, x.duration_ms),
            (-1, 9, true, 1234)
        );
    }

    #[test]
    fn events_keep_phase_and_kind_names() {
        let e = Event::new(
            ferry_shared::Source::Agent,
            5,
            "n",
            "op",
            Phase::Exec,
            EventKind::Finished,
        )
        .counter("exit_code", 0);
        let p = event(e);
        assert_eq!((p.phase.as_str(), p.kind.as_str()), ("exec", "finished"));
        assert_eq!(p.counters.get("exit_code"), Some(&0));
    }
}
