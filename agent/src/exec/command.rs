//! Turns an [`ExecSpec`] into a command: argv as is, script files through
//! bash (sh where bash is missing), in the requested directory, as the
//! leader of a new process group, with a `HOME` where the agent has none
//! (`crate::home`).

use std::io;
use std::path::Path;
use std::process::Stdio;

use ferry_shared::{ExecSpec, Program};
use tokio::process::Command;

use super::ExecError;

/// How a command shows up in logs, events and errors: the program and the
/// number of arguments, never the arguments themselves (they may carry
/// tokens or passwords).
pub(super) fn describe(spec: &ExecSpec) -> String {
    let (program, n) = match &spec.program {
        Program::Argv(a) => (
            a.first().map(String::as_str).unwrap_or_default(),
            a.len().saturating_sub(1),
        ),
        Program::Script { path, args } => (path.as_str(), args.len()),
    };
    match n {
        0 => program.to_string(),
        1 => format!("{program} (+1 arg)"),
        n => format!("{program} (+{n} args)"),
    }
}

fn bash_or_sh() -> &'static str {
    if Path::new("/bin/bash").exists() {
        "/bin/bash"
    } else {
        "/bin/sh"
    }
}

pub(super) fn command(spec: &ExecSpec) -> Result<Command, ExecError> {
    let cwd = spec.cwd.as_deref().unwrap_or("/");
    match std::fs::metadata(cwd) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(ExecError::Cwd {
                cwd: cwd.to_string(),
                reason: "not a directory".to_string(),
            });
        }
        Err(e) => {
            return Err(ExecError::Cwd {
                cwd: cwd.to_string(),
                reason: e.to_string(),
            });
        }
    }
    let mut cmd = match &spec.program {
        Program::Argv(args) => {
            let Some((prog, rest)) = args.split_first() else {
                return Err(ExecError::Spawn {
                    command: String::new(),
                    cwd: cwd.to_string(),
                    source: io::Error::new(io::ErrorKind::InvalidInput, "empty argv"),
                });
            };
            let mut c = Command::new(prog);
            c.args(rest);
            c
        }
        Program::Script { path, args } => {
            match std::fs::metadata(path) {
                Ok(m) if m.is_file() => {}
                Ok(_) => {
                    return Err(ExecError::Script {
                        path: path.clone(),
                        reason: "not a regular file".to_string(),
                    });
                }
                Err(e) => {
                    return Err(ExecError::Script {
                        path: path.clone(),
                        reason: e.to_string(),
                    });
                }
            }
            let mut c = Command::new(bash_or_sh());
            c.arg(path).args(args);
            c
        }
    };
    if let Some(home) = crate::home::child_home() {
        // Before the spec's env, so a request's own HOME still wins.
        cmd.env("HOME", home);
    }
    cmd.current_dir(cwd)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(if spec.stdin.is_empty() {
            Stdio::null()
        } else {
            Stdio::piped()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(false);
    Ok(cmd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_never_show_arguments() {
        let s = ExecSpec::argv(
            vec!["kubeadm".into(), "join".into(), "--token=s3cret".into()],
            "op",
        );
        assert_eq!(describe(&s), "kubeadm (+2 args)");
        let s = ExecSpec::argv(vec!["true".into()], "op");
        assert_eq!(describe(&s), "true");
    }
}
