//! Exec over real mTLS: output streaming, exit codes, env/cwd/stdin, script
//! files, timeouts, cancellation, heartbeats, validation and limits.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{alive, argv, collect, poll_until, run, start_agent};
use ferry_proto::pb;
use futures::StreamExt;

#[tokio::test]
async fn echo_streams_stdout_and_exits_zero() {
    let agent = start_agent(|_| {}).await;
    let mut c = agent.client().await;
    let out = run(&mut c, argv(&["echo", "hi"])).await;
    assert!(out.pid.is_some_and(|p| p > 1), "{out:?}");
    assert_eq!(out.stdout(), "hi\n");
    assert_eq!(out.stderr(), "");
    let exit = out.exit();
    assert_eq!((exit.code, exit.signal, exit.timed_out), (0, 0, false));
    assert_eq!(out.frames_after_exit, 0);
}

#[tokio::test]
async fn stderr_is_separate_and_exit_code_is_reported() {
    let agent = start_agent(|_| {}).await;
    let mut c = agent.client().await;
    let out = run(
        &mut c,
        argv(&["sh", "-c", "echo out; echo err >&2; exit 3"]),
    )
    .await;
    assert_eq!(out.stdout(), "out\n");
    assert_eq!(out.stderr(), "err\n");
    assert_eq!((out.exit().code, out.exit().signal), (3, 0));
}

#[tokio::test]
async fn env_cwd_and_stdin_are_honoured() {
    let agent = start_agent(|_| {}).await;
    let mut c = agent.client().await;
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path().canonicalize().unwrap();
    let mut req = argv(&["sh", "-c", "echo \"$FERRY_T\"; pwd; cat"]);
    req.env.push(pb::EnvVar {
        name: "FERRY_T".into(),
        value: "value with spaces".into(),
    });
    req.cwd = cwd.to_string_lossy().into_owned();
    req.stdin = b"from stdin".to_vec();
    let out = run(&mut c, req).await;
    assert_eq!(
        out.stdout(),
        format!("value with spaces\n{}\nfrom stdin", cwd.display())
    );
    assert_eq!(out.exit().code, 0);
}

#[tokio::test]
async fn script_files_run_with_a_shell_and_get_their_args() {
    let agent = start_agent(|_| {}).await;
    let mut c = agent.client().await;
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("s.sh");
    // Not executable on purpose: the agent runs it with bash/sh.
    std::fs::write(&script, "echo \"args: $1 $2\"\necho oops >&2\nexit 7\n").unwrap();
    let req = pb::ExecRequest {
        program: Some(pb::exec_request::Program::Script(pb::ScriptFile {
            path: script.to_string_lossy().into_owned(),
            args: vec!["a".into(), "b c".into()],
        })),
        ..Default::default()
    };
    let out = run(&mut c, req).await;
    assert_eq!(out.stdout(), "args: a b c\n");
    assert_eq!(out.stderr(), "oops\n");
    assert_eq!(out.exit().code, 7);
}

#[tokio::test]
async fn timeout_kills_the_group_and_reports_timed_out() {
    let agent = start_agent(|_| {}).await;
    let mut c = agent.client().await;
    let mut req = argv(&["sh", "-c", "sleep 300 & echo $!; wait"]);
    req.timeout_ms = 300;
    let out = run(&mut c, req).await;
    let exit = out.exit();
    assert!(exit.timed_out, "{exit:?}");
    assert_eq!((exit.code, exit.signal), (-1, 9));
    assert!(
        exit.duration_ms >= 300 && exit.duration_ms < 10_000,
        "{exit:?}"
    );
    let grandchild: u32 = out.stdout().trim().parse().unwrap();
    assert!(
        poll_until(Duration::from_secs(10), || !alive(grandchild)).await,
        "background child {grandchild} survived the timeout"
    );
}

#[tokio::test]
async fn dropping_the_stream_kills_the_process_group() {
    let agent = start_agent(|_| {}).await;
    let mut c = agent.client().await;
    let mut stream = c
        .exec(argv(&["sh", "-c", "sleep 300 & echo $!; wait"]))
        .await
        .unwrap()
        .into_inner();
    let mut stdout = String::new();
    let mut leader = None;
    let read = async {
        while !stdout.contains('\n') {
            match stream.next().await.unwrap().unwrap().frame.unwrap() {
                pb::exec_frame::Frame::Started(s) => leader = Some(s.pid),
                pb::exec_frame::Frame::Stdout(o) => {
                    stdout.push_str(&String::from_utf8_lossy(&o.data))
                }
                _ => {}
            }
        }
    };
    tokio::time::timeout(common::DEADLINE, read).await.unwrap();
    let grandchild: u32 = stdout.trim().parse().unwrap();
    let leader = leader.unwrap();
    assert!(alive(grandchild) && alive(leader));
    drop(stream);
    assert!(
        poll_until(Duration::from_secs(10), || !alive(grandchild)
            && !alive(leader))
        .await,
        "process group survived the client going away"
    );
}

#[tokio::test]
async fn heartbeats_arrive_while_the_command_is_silent() {
    let agent = start_agent(|c| c.heartbeat = Duration::from_millis(50)).await;
    let mut c = agent.client().await;
    let out = run(&mut c, argv(&["sleep", "0.6"])).await;
    assert!(out.heartbeats >= 3, "only {} heartbeats", out.heartbeats);
    assert_eq!(out.exit().code, 0);
}

#[tokio::test]
async fn invalid_requests_are_rejected_with_a_clear_message() {
    let agent = start_agent(|_| {}).await;
    let mut c = agent.client().await;
    let e = c.exec(argv(&[])).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().contains("empty command"), "{}", e.message());
    let mut req = argv(&["ls"]);
    req.cwd = "relative/dir".into();
    let e = c.exec(req).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(
        e.message().contains("`relative/dir` must be absolute"),
        "{}",
        e.message()
    );
    let mut req = argv(&["ls"]);
    req.env.push(pb::EnvVar {
        name: "A=B".into(),
        value: String::new(),
    });
    let e = c.exec(req).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
}

#[tokio::test]
async fn unstartable_commands_name_the_problem() {
    let agent = start_agent(|_| {}).await;
    let mut c = agent.client().await;
    let e = c
        .exec(argv(&["ferry-no-such-program-42"]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
    assert!(
        e.message().contains("ferry-no-such-program-42"),
        "{}",
        e.message()
    );
    let mut req = argv(&["true"]);
    req.cwd = "/nonexistent/ferry".into();
    let e = c.exec(req).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition);
    assert!(
        e.message().contains("/nonexistent/ferry"),
        "{}",
        e.message()
    );
}

#[tokio::test]
async fn concurrent_execs_are_bounded() {
    let agent = start_agent(|c| c.exec_limit = 1).await;
    let mut c = agent.client().await;
    let mut first = c.exec(argv(&["sleep", "300"])).await.unwrap().into_inner();
    // Wait until it runs.
    assert!(matches!(
        first.next().await.unwrap().unwrap().frame,
        Some(pb::exec_frame::Frame::Started(_))
    ));
    let e = c.exec(argv(&["true"])).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");
    drop(first);
    // The slot frees once the first exec is torn down.
    let ok = async {
        loop {
            match c.exec(argv(&["true"])).await {
                Ok(s) => return collect(s.into_inner()).await,
                Err(e) => assert_eq!(e.code(), tonic::Code::ResourceExhausted),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let out = tokio::time::timeout(common::DEADLINE, ok).await.unwrap();
    assert_eq!(out.exit().code, 0);
}

#[tokio::test]
async fn large_output_arrives_complete_in_bounded_chunks() {
    let agent = start_agent(|_| {}).await;
    let mut c = agent.client().await;
    let out = run(&mut c, argv(&["head", "-c", "5000000", "/dev/zero"])).await;
    assert_eq!(out.stdout.len(), 5_000_000);
    assert!(out.max_chunk <= 32 * 1024, "chunk of {}", out.max_chunk);
    assert_eq!((out.exit().code, out.exit().dropped_bytes), (0, 0));
}

#[tokio::test]
async fn background_processes_holding_the_output_do_not_hang_the_stream() {
    let agent = start_agent(|_| {}).await;
    let mut c = agent.client().await;
    let started = std::time::Instant::now();
    let out = run(
        &mut c,
        argv(&["sh", "-c", "sleep 120 & echo $!; echo done"]),
    )
    .await;
    assert_eq!(out.exit().code, 0);
    assert!(started.elapsed() < Duration::from_secs(15));
    let mut lines = out.stdout.split(|b| *b == b'\n');
    let bg: u32 = String::from_utf8_lossy(lines.next().unwrap())
        .parse()
        .unwrap();
    assert_eq!(lines.next(), Some(&b"done"[..]));
    // Left alone after a normal exit (it may be a daemon the command
    // started); clean it up here.
    assert!(alive(bg));
    let _ = rustix::process::kill_process(
        rustix::process::Pid::from_raw(bg as i32).unwrap(),
        rustix::process::Signal::KILL,
    );
}
