//! Connecting and authenticating against a real sshd on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use ferry_coordinator::ssh::{HostKeyPolicy, SshAuth, SshError, SshSession, SshTarget};
use ferry_shared::{Phase, Secret};
use support::sshd::*;

#[tokio::test]
async fn password_login_as_root() {
    let d = Sshd::start();
    let started = Instant::now();
    let s = SshSession::connect(
        &d.password_target("root", ROOT_PASSWORD),
        &d.opts(HostKeyPolicy::AcceptNew),
    )
    .await
    .unwrap();
    eprintln!(
        "timing: connect+auth (password, accept-new, incl. `id -u`) {:?}",
        started.elapsed()
    );
    assert!(s.is_root());
    assert_eq!(
        s.run_ok(&["id", "-un"], None).await.unwrap().stdout_str(),
        "root"
    );
    s.check_sudo().await.unwrap();
    s.close().await;
}

#[tokio::test]
async fn key_login_unencrypted() {
    let d = Sshd::start();
    let started = Instant::now();
    let s = SshSession::connect(
        &d.key_target(NOPW_USER, None),
        &d.opts(HostKeyPolicy::AcceptNew),
    )
    .await
    .unwrap();
    eprintln!("timing: connect+auth (ed25519 key) {:?}", started.elapsed());
    assert!(!s.is_root());
    assert_eq!(
        s.run_ok(&["id", "-un"], None).await.unwrap().stdout_str(),
        NOPW_USER
    );
    s.close().await;
}

fn enc_target(d: &Sshd, passphrase: Option<&str>) -> SshTarget {
    SshTarget {
        auth: SshAuth::Key {
            path: d.key_encrypted.clone(),
            passphrase: passphrase.map(Secret::new),
        },
        ..d.key_target(PW_USER, None)
    }
}

#[tokio::test]
async fn encrypted_key_with_passphrase() {
    let d = Sshd::start();
    let opts = d.opts(HostKeyPolicy::AcceptNew);
    let s = SshSession::connect(&enc_target(&d, Some(KEY_PASSPHRASE)), &opts)
        .await
        .unwrap();
    assert_eq!(
        s.run_ok(&["id", "-un"], None).await.unwrap().stdout_str(),
        PW_USER
    );
    s.close().await;

    for (pass, want) in [
        (Some("wrong-passphrase"), "wrong passphrase"),
        (None, "encrypted"),
    ] {
        let err = SshSession::connect(&enc_target(&d, pass), &opts)
            .await
            .unwrap_err();
        eprintln!("error: {err}");
        assert!(matches!(err, SshError::KeyFile { .. }), "{err:?}");
        assert_eq!(err.phase(), Phase::Authenticate);
        let msg = err.to_string();
        assert!(msg.contains(want) && msg.contains("id_enc"), "{msg}");
        assert!(
            !msg.contains("wrong-passphrase") && !format!("{err:?}").contains("wrong-passphrase")
        );
    }

    let mut t = enc_target(&d, None);
    t.auth = SshAuth::Key {
        path: d.dir.path().join("no-such-key"),
        passphrase: None,
    };
    let err = SshSession::connect(&t, &opts).await.unwrap_err();
    eprintln!("error: {err}");
    assert!(err.to_string().contains("does not exist"), "{err}");
}

#[tokio::test]
async fn wrong_password_is_auth_failed_without_the_password() {
    let d = Sshd::start();
    let secret = "Wr0ng-Pa55word-xyzzy";
    let err = SshSession::connect(
        &d.password_target(PW_USER, secret),
        &d.opts(HostKeyPolicy::AcceptNew),
    )
    .await
    .unwrap_err();
    eprintln!("error: {err}");
    assert!(
        matches!(&err, SshError::AuthFailed { user, .. } if user == PW_USER),
        "{err:?}"
    );
    assert_eq!(err.phase(), Phase::Authenticate);
    let (msg, dbg) = (err.to_string(), format!("{err:?}"));
    assert!(
        msg.contains("password") && msg.contains(PW_USER) && msg.contains("next:"),
        "{msg}"
    );
    assert!(
        !msg.contains(secret) && !dbg.contains(secret),
        "{msg} / {dbg}"
    );
    // The wrong password for a key-only user names what the server offers.
    assert!(msg.contains("publickey"), "{msg}");
}

#[tokio::test]
async fn closed_port_is_unreachable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let d = Sshd::start();
    let mut t = d.password_target("root", ROOT_PASSWORD);
    t.addr = format!("127.0.0.1:{port}").parse().unwrap();
    let err = SshSession::connect(&t, &d.opts(HostKeyPolicy::AcceptNew))
        .await
        .unwrap_err();
    eprintln!("error: {err}");
    assert!(matches!(err, SshError::Unreachable { .. }), "{err:?}");
    assert_eq!(err.phase(), Phase::Connect);
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
}

#[tokio::test]
async fn silent_listener_times_out() {
    // Accepts and never speaks: the loopback stand-in for a blackholed host.
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = l.accept().await {
            held.push(sock);
        }
    });
    let d = Sshd::start();
    let mut t = d.password_target("root", ROOT_PASSWORD);
    t.addr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut opts = d.opts(HostKeyPolicy::AcceptNew);
    opts.connect_timeout = Duration::from_millis(700);
    let started = Instant::now();
    let err = SshSession::connect(&t, &opts).await.unwrap_err();
    eprintln!("error: {err}");
    assert!(matches!(err, SshError::ConnectTimeout { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(err.phase(), Phase::Connect);
    hold.abort();
}

#[tokio::test]
async fn accept_new_records_key_then_strict_accepts_it() {
    let d = Sshd::start();
    let t = d.password_target("root", ROOT_PASSWORD);
    assert!(!d.known_hosts().exists());
    let s = SshSession::connect(&t, &d.opts(HostKeyPolicy::AcceptNew))
        .await
        .unwrap();
    s.close().await;
    let kh = std::fs::read_to_string(d.known_hosts()).unwrap();
    let host_pub = std::fs::read_to_string(d.dir.path().join("host_ed25519.pub")).unwrap();
    let key_b64 = host_pub.split_whitespace().nth(1).unwrap();
    assert_eq!(kh.lines().count(), 1, "{kh}");
    assert!(
        kh.starts_with(&format!("[127.0.0.1]:{} ssh-ed25519 {key_b64}", d.port)),
        "{kh}"
    );
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&d.known_hosts()), 0o600);
    assert_eq!(mode(d.known_hosts().parent().unwrap()), 0o700);

    // Second connect with accept-new: known, nothing appended.
    SshSession::connect(&t, &d.opts(HostKeyPolicy::AcceptNew))
        .await
        .unwrap()
        .close()
        .await;
    // Strict accepts a recorded key.
    SshSession::connect(&t, &d.opts(HostKeyPolicy::Strict))
        .await
        .unwrap()
        .close()
        .await;
    assert_eq!(std::fs::read_to_string(d.known_hosts()).unwrap(), kh);
}

#[tokio::test]
async fn changed_host_key_is_refused() {
    let mut d = Sshd::start();
    let t = d.password_target("root", ROOT_PASSWORD);
    SshSession::connect(&t, &d.opts(HostKeyPolicy::AcceptNew))
        .await
        .unwrap()
        .close()
        .await;
    d.restart_with_new_host_key();
    for policy in [HostKeyPolicy::AcceptNew, HostKeyPolicy::Strict] {
        let err = SshSession::connect(&t, &d.opts(policy)).await.unwrap_err();
        eprintln!("error: {err}");
        let SshError::HostKeyChanged {
            line, fingerprint, ..
        } = &err
        else {
            panic!("{err:?}");
        };
        assert_eq!(*line, 1);
        assert!(fingerprint.starts_with("SHA256:"));
        assert_eq!(err.phase(), Phase::Connect);
        let msg = err.to_string();
        assert!(
            msg.contains(&d.known_hosts().display().to_string()),
            "{msg}"
        );
        assert!(
            msg.contains(&format!("[127.0.0.1]:{}", d.port)) && msg.contains("line 1"),
            "{msg}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(d.known_hosts())
            .unwrap()
            .lines()
            .count(),
        1
    );
    // Off skips the check entirely.
    SshSession::connect(&t, &d.opts(HostKeyPolicy::Off))
        .await
        .unwrap()
        .close()
        .await;
}

#[tokio::test]
async fn strict_with_empty_known_hosts_is_unknown() {
    let d = Sshd::start();
    std::fs::create_dir_all(d.known_hosts().parent().unwrap()).unwrap();
    std::fs::write(d.known_hosts(), "").unwrap();
    let err = SshSession::connect(
        &d.password_target("root", ROOT_PASSWORD),
        &d.opts(HostKeyPolicy::Strict),
    )
    .await
    .unwrap_err();
    eprintln!("error: {err}");
    let SshError::HostKeyUnknown { fingerprint, .. } = &err else {
        panic!("{err:?}");
    };
    let want = std::process::Command::new("ssh-keygen")
        .args(["-l", "-E", "sha256", "-f"])
        .arg(d.dir.path().join("host_ed25519.pub"))
        .output()
        .unwrap();
    let want = String::from_utf8(want.stdout).unwrap();
    assert_eq!(want.split_whitespace().nth(1), Some(fingerprint.as_str()));
    let msg = err.to_string();
    assert!(
        msg.contains("accept-new") && msg.contains(&d.known_hosts().display().to_string()),
        "{msg}"
    );
    assert_eq!(std::fs::read_to_string(d.known_hosts()).unwrap(), "");
}
