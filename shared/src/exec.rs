//! What to run on a node and how it ended. Commands are argv vectors; a shell
//! is only involved when running a script file by design.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::phase::Phase;

/// Largest stdin payload an exec request may carry.
pub const MAX_STDIN_BYTES: usize = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Program {
    /// `args[0]` is looked up in PATH when it has no slash.
    Argv(Vec<String>),
    /// An absolute path to a script on the node, run with bash (or sh).
    Script { path: String, args: Vec<String> },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecSpec {
    pub program: Program,
    pub env: Vec<(String, String)>,
    /// Working directory on the node; `None` = `/`.
    pub cwd: Option<String>,
    pub timeout: Option<Duration>,
    pub operation_id: String,
    pub phase: Phase,
    pub stdin: Vec<u8>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ExecSpecError {
    #[error("empty command: give at least a program name")]
    EmptyArgv,
    #[error("argument {index} contains a NUL byte")]
    NulInArg { index: usize },
    #[error("script path `{0}` must be absolute")]
    RelativeScript(String),
    #[error("working directory `{0}` must be absolute")]
    RelativeCwd(String),
    #[error("environment variable name `{0}` is empty or contains `=` or NUL")]
    BadEnvName(String),
    #[error("environment variable `{0}` has a value containing NUL")]
    NulInEnvValue(String),
    #[error("stdin of {0} bytes exceeds the limit of {MAX_STDIN_BYTES}")]
    StdinTooLarge(usize),
}

impl ExecSpec {
    pub fn argv(args: Vec<String>, operation_id: impl Into<String>) -> Self {
        Self {
            program: Program::Argv(args),
            env: Vec::new(),
            cwd: None,
            timeout: None,
            operation_id: operation_id.into(),
            phase: Phase::Exec,
            stdin: Vec::new(),
        }
    }

    /// Checks everything the node would otherwise trip over.
    pub fn validate(&self) -> Result<(), ExecSpecError> {
        let args = match &self.program {
            Program::Argv(a) => {
                if a.first().is_none_or(|p| p.is_empty()) {
                    return Err(ExecSpecError::EmptyArgv);
                }
                a
            }
            Program::Script { path, args } => {
                if !path.starts_with('/') {
                    return Err(ExecSpecError::RelativeScript(path.clone()));
                }
                if path.contains('\0') {
                    return Err(ExecSpecError::NulInArg { index: 0 });
                }
                args
            }
        };
        if let Some(i) = args.iter().position(|a| a.contains('\0')) {
            return Err(ExecSpecError::NulInArg { index: i });
        }
        if let Some(cwd) = &self.cwd
            && (!cwd.starts_with('/') || cwd.contains('\0'))
        {
            return Err(ExecSpecError::RelativeCwd(cwd.clone()));
        }
        for (k, v) in &self.env {
            if k.is_empty() || k.contains('=') || k.contains('\0') {
                return Err(ExecSpecError::BadEnvName(k.clone()));
            }
            if v.contains('\0') {
                return Err(ExecSpecError::NulInEnvValue(k.clone()));
            }
        }
        if self.stdin.len() > MAX_STDIN_BYTES {
            return Err(ExecSpecError::StdinTooLarge(self.stdin.len()));
        }
        Ok(())
    }

    /// Human rendering for messages (not for execution).
    pub fn display_command(&self) -> String {
        match &self.program {
            Program::Argv(a) => a.join(" "),
            Program::Script { path, args } => {
                let mut s = path.clone();
                for a in args {
                    s.push(' ');
                    s.push_str(a);
                }
                s
            }
        }
    }
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitOutcome {
    /// Exit code if it exited normally.
    pub code: Option<i32>,
    /// Signal number if it was killed.
    pub signal: Option<i32>,
    pub timed_out: bool,
    pub duration: Duration,
    /// Output bytes dropped because the reader could not keep up.
    pub dropped_bytes: u64,
}

impl ExitOutcome {
    pub fn success(&self) -> bool {
        self.code == Some(0) && !self.timed_out
    }

    pub fn describe(&self) -> String {
        match (self.timed_out, self.code, self.signal) {
            (true, _, _) => format!("timed out after {:.1}s", self.duration.as_secs_f64()),
            (false, Some(c), _) => format!("exit code {c}"),
            (false, None, Some(s)) => format!("killed by signal {s}"),
            (false, None, None) => "ended without a status".to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_problem() {
        let ok = ExecSpec::argv(vec!["true".into()], "op");
        assert!(ok.validate().is_ok());
        assert_eq!(
            ExecSpec::argv(vec![], "op").validate(),
            Err(ExecSpecError::EmptyArgv)
        );
        let mut s = ok.clone();
        s.cwd = Some("tmp".into());
        assert!(matches!(s.validate(), Err(ExecSpecError::RelativeCwd(_))));
        let mut s = ok.clone();
        s.env.push(("A=B".into(), "x".into()));
        assert!(matches!(s.validate(), Err(ExecSpecError::BadEnvName(_))));
        let mut s = ok.clone();
        s.program = Program::Script {
            path: "x.sh".into(),
            args: vec![],
        };
        assert!(matches!(
            s.validate(),
            Err(ExecSpecError::RelativeScript(_))
        ));
        let mut s = ok;
        s.program = Program::Argv(vec!["echo".into(), "a\0b".into()]);
        assert_eq!(s.validate(), Err(ExecSpecError::NulInArg { index: 1 }));
    }

    #[test]
    fn outcome_description() {
        let mut o = ExitOutcome {
            code: Some(0),
            signal: None,
            timed_out: false,
            duration: Duration::from_millis(5),
            dropped_bytes: 0,
        };
        assert!(o.success());
        o.code = Some(3);
        assert_eq!(o.describe(), "exit code 3");
        o.code = None;
        o.signal = Some(9);
        assert_eq!(o.describe(), "killed by signal 9");
        assert!(!o.success());
    }
}
