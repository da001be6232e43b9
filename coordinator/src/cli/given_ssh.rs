//! The SSH flags of `ferry add`, with which of them the user gave (on the
//! command line or through their env variable) as opposed to clap
//! defaults: sealos' `add` records exactly the changed flags as the new
//! hosts' `ssh:` block (`getSSHFromCommand`: `flagChanged` per flag), so
//! `-u alice` on add must not be mistaken for the default `root`, nor a
//! default `--port 22` override a cluster-wide port.

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, Command, FromArgMatches};
use ferry_shared::Secret;
use ferry_shared::clusterfile::Ssh;

use super::SshArgs;

/// [`SshArgs`] plus the Clusterfile `ssh:` block of the flags given.
#[derive(Debug, Clone)]
pub struct GivenSsh {
    pub args: SshArgs,
    /// The user's `-u/-p/-i/--pk-passwd/--port` only; `None` when none of
    /// them was given.
    pub given: Option<Ssh>,
}

/// Clap ids of the flags sealos records (the `SshArgs` field names).
const USER: &str = "user";
const PASSWD: &str = "passwd";
const PK: &str = "pk";
const PK_PASSWD: &str = "pk_passwd";
const PORT: &str = "port";

fn given(m: &ArgMatches, id: &str) -> bool {
    matches!(
        m.value_source(id),
        Some(ValueSource::CommandLine | ValueSource::EnvVariable)
    )
}

/// The `ssh:` block of the flags in `m` that the user gave.
fn given_block(m: &ArgMatches, a: &SshArgs) -> Option<Ssh> {
    let mut s = Ssh::default();
    let mut any = false;
    if given(m, USER) {
        s.user.clone_from(&a.user);
        any = true;
    }
    if given(m, PASSWD) {
        s.passwd = Secret::new(a.passwd.clone().unwrap_or_default());
        any = true;
    }
    if given(m, PK) {
        s.pk =
            a.pk.as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
        any = true;
    }
    if given(m, PK_PASSWD) {
        s.pk_passwd = Secret::new(a.pk_passwd.clone().unwrap_or_default());
        any = true;
    }
    if given(m, PORT) {
        s.port = a.port;
        any = true;
    }
    any.then_some(s)
}

impl FromArgMatches for GivenSsh {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        let args = SshArgs::from_arg_matches(m)?;
        let given = given_block(m, &args);
        Ok(Self { args, given })
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        self.args.update_from_arg_matches(m)?;
        self.given = given_block(m, &self.args);
        Ok(())
    }
}

impl Args for GivenSsh {
    fn augment_args(cmd: Command) -> Command {
        SshArgs::augment_args(cmd)
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        SshArgs::augment_args_for_update(cmd)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct T {
        #[command(flatten)]
        ssh: GivenSsh,
    }

    fn parse(argv: &[&str]) -> GivenSsh {
        let mut all = vec!["t"];
        all.extend_from_slice(argv);
        T::try_parse_from(all).unwrap().ssh
    }

    #[test]
    fn defaults_are_not_given() {
        let g = parse(&[]);
        assert_eq!(g.args.user, "root");
        assert_eq!(g.args.port, 22);
        // FERRY_SSH_PASSWD may be set by whoever runs the tests.
        if std::env::var_os("FERRY_SSH_PASSWD").is_none()
            && std::env::var_os("FERRY_SSH_PK_PASSWD").is_none()
        {
            assert!(g.given.is_none(), "{:?}", g.given);
        }
    }

    #[test]
    fn only_the_flags_given_are_recorded() {
        let g = parse(&["-u", "alice", "-p", "pw"]);
        let s = g.given.unwrap();
        assert_eq!(s.user, "alice");
        assert_eq!(s.passwd.expose(), "pw");
        assert_eq!(s.port, 0, "--port not given: the cluster's port stays");
        assert!(s.pk.is_empty());
        // Even a value equal to the default counts when given.
        let s = parse(&["--user", "root", "--port", "22"]).given.unwrap();
        assert_eq!((s.user.as_str(), s.port), ("root", 22));
        let s = parse(&["-i", "/k/id", "--port", "2222"]).given.unwrap();
        assert_eq!((s.pk.as_str(), s.port), ("/k/id", 2222));
        assert!(s.user.is_empty());
    }

    #[test]
    fn secrets_stay_redacted_in_debug() {
        let g = parse(&["-p", "hunter2-secret"]);
        let shown = format!("{:?}", g.given);
        assert!(!shown.contains("hunter2-secret"), "{shown}");
    }
}

/// Secret flags given on the command line itself (visible to every user
/// in `ps`), as `(flag, safer way)`: `-p/--passwd`, `--pk-passwd` and
/// login's `-p/--password`, wherever they sit in the subcommands of `m`.
pub fn secrets_in_argv(m: &ArgMatches) -> Vec<(&'static str, &'static str)> {
    const SECRETS: [(&str, &str, &str); 3] = [
        (PASSWD, "-p/--passwd", "FERRY_SSH_PASSWD"),
        (PK_PASSWD, "--pk-passwd", "FERRY_SSH_PK_PASSWD"),
        (
            "password",
            "-p/--password",
            "--password-stdin or FERRY_REGISTRY_PASSWD",
        ),
    ];
    let mut out = Vec::new();
    let mut cur = Some(m);
    while let Some(m) = cur {
        for (id, flag, instead) in SECRETS {
            let on_argv = m.try_get_raw(id).is_ok_and(|v| v.is_some())
                && m.value_source(id) == Some(ValueSource::CommandLine);
            if on_argv && !out.iter().any(|(f, _)| *f == flag) {
                out.push((flag, instead));
            }
        }
        cur = m.subcommand().map(|(_, s)| s);
    }
    out
}

#[cfg(test)]
mod argv_tests {
    use clap::CommandFactory;

    use super::*;
    use crate::cli::Cli;

    fn secrets(args: &[&str]) -> Vec<&'static str> {
        let m = Cli::command().try_get_matches_from(args).unwrap();
        secrets_in_argv(&m).into_iter().map(|(f, _)| f).collect()
    }

    #[test]
    fn passwords_on_the_command_line_are_found_in_any_subcommand() {
        assert_eq!(
            secrets(&["ferry", "run", "img", "-p", "pw"]),
            ["-p/--passwd"]
        );
        assert_eq!(
            secrets(&[
                "ferry",
                "agent",
                "install",
                "--masters",
                "10.0.0.2",
                "--passwd=pw"
            ]),
            ["-p/--passwd"]
        );
        assert_eq!(
            secrets(&["ferry", "login", "r.example", "-u", "a", "-p", "x"]),
            ["-p/--password"]
        );
        assert!(secrets(&["ferry", "run", "img"]).is_empty());
        assert!(secrets(&["ferry", "images"]).is_empty());
    }
}
