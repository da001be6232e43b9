//! Becoming root through sudo against a real sshd + sudo.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use ferry_coordinator::ssh::{HostKeyPolicy, SshError, SshSession, SshTarget};
use ferry_shared::{Phase, Secret};
use support::sshd::*;

async fn connect(d: &Sshd, t: &SshTarget) -> SshSession {
    SshSession::connect(t, &d.opts(HostKeyPolicy::AcceptNew))
        .await
        .unwrap()
}

async fn uid_as_root(s: &SshSession) -> String {
    s.run_privileged_ok(&["id", "-u"])
        .await
        .unwrap()
        .stdout_str()
}

#[tokio::test]
async fn root_runs_privileged_directly() {
    let d = Sshd::start();
    let s = connect(&d, &d.password_target("root", ROOT_PASSWORD)).await;
    s.check_sudo().await.unwrap();
    assert_eq!(uid_as_root(&s).await, "0");
}

#[tokio::test]
async fn nopasswd_user_becomes_root() {
    let d = Sshd::start();
    let s = connect(&d, &d.key_target(NOPW_USER, None)).await;
    assert!(!s.is_root());
    s.check_sudo().await.unwrap();
    assert_eq!(uid_as_root(&s).await, "0");
    let err = s
        .run_privileged_ok(&["sh", "-c", "echo nope >&2; exit 4"])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SshError::Command { code: Some(4), command, .. } if command.starts_with("sudo -- sh -c")),
        "{err:?}"
    );
}

#[tokio::test]
async fn password_sudo_user_becomes_root_with_the_password() {
    let d = Sshd::start();
    // Key login, sudo password given separately (sealos: -i key -p password).
    let s = connect(&d, &d.key_target(PW_USER, Some(USER_PASSWORD))).await;
    s.check_sudo().await.unwrap();
    assert_eq!(uid_as_root(&s).await, "0");
    // The password line is eaten by sudo, never by the command.
    let out = s.run_privileged_ok(&["cat"]).await.unwrap();
    assert_eq!(
        out.stdout, b"",
        "the command must not see the sudo password"
    );
    // Many privileged commands in parallel on the one connection.
    let runs = (0..8).map(|_| uid_as_root(&s));
    assert!(
        futures::future::join_all(runs)
            .await
            .iter()
            .all(|u| u == "0")
    );
    // A failing command is a Command error that does not leak the password.
    let err = s
        .run_privileged_ok(&["sh", "-c", "cat /nonexistent"])
        .await
        .unwrap_err();
    assert!(
        matches!(err, SshError::Command { code: Some(1), .. }),
        "{err:?}"
    );
    assert!(!err.to_string().contains(USER_PASSWORD));
}

fn assert_refused(err: &SshError, user: &str, reason_has: &str, secret: Option<&str>) {
    let SshError::SudoRefused {
        user: u, reason, ..
    } = err
    else {
        panic!("{err:?}");
    };
    assert_eq!(u, user);
    assert!(reason.contains(reason_has), "{reason}");
    assert_eq!(err.phase(), Phase::Sudo);
    let msg = err.to_string();
    eprintln!("refusal: {msg}");
    assert!(
        msg.contains("-p/--passwd") && msg.contains("NOPASSWD"),
        "{msg}"
    );
    if let Some(secret) = secret {
        assert!(
            !msg.contains(secret) && !format!("{err:?}").contains(secret),
            "{msg}"
        );
    }
}

#[tokio::test]
async fn wrong_sudo_password_is_refused() {
    let d = Sshd::start();
    let secret = "not-the-Sudo-pw-42";
    let t = d.key_target(PW_USER, Some(secret));
    let s = connect(&d, &t).await;
    let err = s.check_sudo().await.unwrap_err();
    assert_refused(&err, PW_USER, "password was rejected", Some(secret));
    // run_privileged reports the same, cached refusal: no second attempt
    // (each costs sudo's failure delay and counts toward account lockout).
    let started = std::time::Instant::now();
    let err = s.run_privileged(&["id", "-u"]).await.unwrap_err();
    assert!(started.elapsed() < std::time::Duration::from_millis(500));
    assert_refused(&err, PW_USER, "password was rejected", Some(secret));
    // And the debug form of the target never shows it either.
    assert!(!format!("{t:?}").contains(secret));
}

#[tokio::test]
async fn password_sudo_user_without_password_is_refused() {
    let d = Sshd::start();
    let s = connect(&d, &d.key_target(PW_USER, None)).await;
    let err = s.check_sudo().await.unwrap_err();
    assert_refused(&err, PW_USER, "none was given", None);
    // An empty password counts as none.
    let mut t = d.key_target(PW_USER, None);
    t.sudo_password = Some(Secret::new(""));
    let s = connect(&d, &t).await;
    assert_refused(
        &s.check_sudo().await.unwrap_err(),
        PW_USER,
        "none was given",
        None,
    );
}

#[tokio::test]
async fn user_without_sudo_rights_is_refused() {
    let d = Sshd::start();
    let s = connect(&d, &d.password_target(NOSUDO_USER, USER_PASSWORD)).await;
    let err = s.check_sudo().await.unwrap_err();
    assert_refused(
        &err,
        NOSUDO_USER,
        "not in the sudoers file",
        Some(USER_PASSWORD),
    );
    let s = connect(&d, &d.key_target(NOSUDO_USER, None)).await;
    assert!(matches!(
        s.check_sudo().await.unwrap_err(),
        SshError::SudoRefused { .. }
    ));
}
