//! TCP connect, SSH handshake with host-key check, and user authentication.

use std::borrow::Cow;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ferry_shared::Secret;
use russh::MethodKind;
use russh::client::{self, AuthResult, Handle, KeyboardInteractiveAuthResponse};
use russh::keys::{HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use tokio::net::TcpStream;

use super::hostkey::HostKeyCheck;
use super::{SshAuth, SshError, SshOptions, SshTarget};

/// The russh handler: its only job is the host-key check.
pub(crate) struct Client {
    check: HostKeyCheck,
}

/// The handler's error: russh's own, or our host-key verdict carried
/// through russh's session task unchanged.
#[derive(Debug)]
pub(crate) enum ClientError {
    Russh(russh::Error),
    HostKey(Box<SshError>),
}

impl From<russh::Error> for ClientError {
    fn from(e: russh::Error) -> Self {
        ClientError::Russh(e)
    }
}

impl client::Handler for Client {
    type Error = ClientError;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        match key {
            PublicKeyOrCertificate::PublicKey { key, .. } => {
                self.check
                    .verify(key)
                    .map_err(|e| ClientError::HostKey(Box::new(e)))?;
                Ok(true)
            }
            // Not advertised (Preferred::host_key_certificates is empty).
            PublicKeyOrCertificate::Certificate(_) => Ok(false),
        }
    }
}

/// Keepalives find a dead node within about 90 s during long commands.
const KEEPALIVE: Duration = Duration::from_secs(30);

/// Connects and authenticates.
pub(crate) async fn open(
    target: &SshTarget,
    opts: &SshOptions,
) -> Result<Handle<Client>, SshError> {
    let host = target.addr.to_string();
    // A bad key file fails before any network traffic.
    let key = match &target.auth {
        SshAuth::Key { path, passphrase } => Some(load_key(path, passphrase.as_ref())?),
        SshAuth::Password(_) => None,
    };
    let check = HostKeyCheck {
        addr: target.addr,
        policy: opts.policy,
        known_hosts: opts.known_hosts.clone(),
    };
    let mut config = client::Config {
        keepalive_interval: Some(KEEPALIVE),
        keepalive_max: 3,
        ..Default::default()
    };
    config.preferred.key = Cow::Owned(check.preferred_algorithms(&config.preferred.key));
    let config = Arc::new(config);

    let timeout = |h: &str| SshError::ConnectTimeout {
        host: h.to_string(),
        after: opts.connect_timeout,
    };
    let handshake = async {
        let tcp = TcpStream::connect(target.addr.socket_addr())
            .await
            .map_err(|source| SshError::Unreachable {
                host: host.clone(),
                source,
            })?;
        // Small request/response packets: Nagle would add delayed-ACK stalls.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(host = %host, "set_nodelay failed: {e}");
        }
        client::connect_stream(config, tcp, Client { check })
            .await
            .map_err(|e| match e {
                ClientError::HostKey(e) => *e,
                ClientError::Russh(source) => SshError::Protocol {
                    host: host.clone(),
                    source,
                },
            })
    };
    let mut handle = tokio::time::timeout(opts.connect_timeout, handshake)
        .await
        .map_err(|_| timeout(&host))??;
    tokio::time::timeout(
        opts.connect_timeout,
        authenticate(&mut handle, target, key, &host),
    )
    .await
    .map_err(|_| timeout(&host))??;
    Ok(handle)
}

fn load_key(path: &Path, passphrase: Option<&Secret>) -> Result<PrivateKey, SshError> {
    russh::keys::load_secret_key(path, passphrase.map(Secret::expose)).map_err(|e| {
        use russh::keys::Error as E;
        let reason = match e {
            E::IO(io) if io.kind() == std::io::ErrorKind::NotFound => {
                "the file does not exist".to_string()
            }
            E::IO(io) => format!("cannot read it: {io}"),
            E::KeyIsEncrypted => "the key is encrypted and no passphrase was given".to_string(),
            other if passphrase.is_some() => {
                format!("wrong passphrase, or not a usable private key ({other})")
            }
            other => format!("not a usable private key ({other})"),
        };
        SshError::KeyFile {
            path: path.to_path_buf(),
            reason,
        }
    })
}

async fn authenticate(
    handle: &mut Handle<Client>,
    target: &SshTarget,
    key: Option<PrivateKey>,
    host: &str,
) -> Result<(), SshError> {
    let protocol = |source| SshError::Protocol {
        host: host.to_string(),
        source,
    };
    let user = target.user.as_str();
    let (method, result) = match &target.auth {
        SshAuth::Key { path, .. } => {
            let key = key.ok_or_else(|| SshError::KeyFile {
                path: path.clone(),
                reason: "the key was not loaded".into(),
            })?;
            let hash = if key.algorithm().is_rsa() {
                // None: the server did not say; modern servers take SHA-256.
                handle
                    .best_supported_rsa_hash()
                    .await
                    .map_err(protocol)?
                    .unwrap_or(Some(HashAlg::Sha256))
            } else {
                None
            };
            let key = PrivateKeyWithHashAlg::new(Arc::new(key), hash);
            let r = handle
                .authenticate_publickey(user, key)
                .await
                .map_err(protocol)?;
            (format!("public key ({})", path.display()), r)
        }
        SshAuth::Password(pw) => {
            let r = handle
                .authenticate_password(user, pw.expose())
                .await
                .map_err(protocol)?;
            if let AuthResult::Failure {
                remaining_methods, ..
            } = &r
                && remaining_methods.contains(&MethodKind::KeyboardInteractive)
                && keyboard_interactive(handle, user, pw)
                    .await
                    .map_err(protocol)?
            {
                return Ok(());
            }
            ("password".to_string(), r)
        }
    };
    match result {
        AuthResult::Success => Ok(()),
        AuthResult::Failure {
            remaining_methods, ..
        } => {
            let offered: Vec<&str> = remaining_methods.iter().map(<&str>::from).collect();
            Err(SshError::AuthFailed {
                host: host.to_string(),
                user: user.to_string(),
                method,
                hint: if offered.is_empty() {
                    String::new()
                } else {
                    format!(" (the node accepts: {})", offered.join(", "))
                },
            })
        }
    }
}

/// Password logins on servers that only offer keyboard-interactive (PAM):
/// each hidden prompt gets the password. Returns whether it succeeded.
async fn keyboard_interactive(
    handle: &mut Handle<Client>,
    user: &str,
    pw: &Secret,
) -> Result<bool, russh::Error> {
    let mut resp = handle
        .authenticate_keyboard_interactive_start(user, None::<String>)
        .await?;
    for _ in 0..4 {
        match resp {
            KeyboardInteractiveAuthResponse::Success => return Ok(true),
            KeyboardInteractiveAuthResponse::Failure { .. } => return Ok(false),
            KeyboardInteractiveAuthResponse::InfoRequest { prompts, .. } => {
                let answers = prompts
                    .iter()
                    .map(|p| {
                        if p.echo {
                            String::new()
                        } else {
                            pw.expose().to_string()
                        }
                    })
                    .collect();
                resp = handle
                    .authenticate_keyboard_interactive_respond(answers)
                    .await?;
            }
        }
    }
    Ok(false)
}
