//! Talking to OCI registries with `oci-client`: pull into the local store
//! (`pull`), push from it (`push`), credentials (`auth`) and login checks.
//!
//! - Every byte is verified: manifests against the digest asked for (or the
//!   one the tag resolved to), blobs while streaming into the store, whose
//!   ingest refuses content that does not hash to its digest.
//! - Pulls are resumable at blob granularity: blobs already in the store are
//!   not fetched again; the image is tagged only once all its blobs are in.
//! - `insecure` registries (local mirrors) are spoken to over plain HTTP;
//!   nothing else is (token servers keep verified HTTPS).

mod auth;
mod error;
mod pull;
mod push;

use std::time::Duration;

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;

pub use auth::{AuthStore, Credentials};
pub use error::RegistryError;
pub use pull::{PullOptions, PullReport, pull};
pub use push::{PushReport, push};

use crate::oci::Reference;

/// Layers downloaded or uploaded at once.
pub const DEFAULT_CONCURRENCY: usize = 3;

/// One step of a pull or push, for progress events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// A blob is about to move (`total` bytes).
    BlobStarted { digest: String, total: u64 },
    /// Bytes moved so far for a blob (throttled).
    BlobProgress {
        digest: String,
        done: u64,
        total: u64,
    },
    /// A blob is done; `skipped` when it was already there.
    BlobDone {
        digest: String,
        bytes: u64,
        skipped: bool,
    },
}

/// How to reach one registry.
#[derive(Debug, Clone)]
pub struct Connection {
    pub registry: String,
    pub insecure: bool,
    pub credentials: Option<Credentials>,
}

impl Connection {
    pub(crate) fn client(&self) -> oci_client::Client {
        let protocol = if self.insecure {
            ClientProtocol::HttpsExcept(vec![self.registry.clone()])
        } else {
            ClientProtocol::Https
        };
        // `insecure` is plain HTTP to this registry alone: TLS is never
        // unverified, so a token server (another host) keeps HTTPS with
        // its certificate checked.
        oci_client::Client::new(ClientConfig {
            protocol,
            accept_invalid_certificates: false,
            connect_timeout: Some(Duration::from_secs(15)),
            read_timeout: Some(Duration::from_secs(120)),
            max_concurrent_download: DEFAULT_CONCURRENCY,
            max_concurrent_upload: DEFAULT_CONCURRENCY,
            ..ClientConfig::default()
        })
    }

    pub(crate) fn auth(&self) -> RegistryAuth {
        match &self.credentials {
            Some(c) => RegistryAuth::Basic(c.username.clone(), c.password.expose().to_string()),
            None => RegistryAuth::Anonymous,
        }
    }

    /// Maps an `oci-client` error to ours, naming registry and reference.
    pub(crate) fn map_err(
        &self,
        op: &'static str,
        reference: &str,
        e: OciDistributionError,
    ) -> RegistryError {
        let unauthorized = match &e {
            OciDistributionError::UnauthorizedError { .. }
            | OciDistributionError::AuthenticationFailure(_) => true,
            OciDistributionError::ServerError { code, .. } => *code == 401 || *code == 403,
            OciDistributionError::RequestError(r) => r
                .status()
                .is_some_and(|s| s.as_u16() == 401 || s.as_u16() == 403),
            OciDistributionError::RegistryError { envelope, .. } => envelope
                .errors
                .iter()
                .any(|x| format!("{:?}", x.code).contains("Unauthorized")),
            _ => false,
        };
        if unauthorized {
            return match &self.credentials {
                Some(c) => RegistryError::BadCredentials {
                    registry: self.registry.clone(),
                    user: c.username.clone(),
                },
                None => RegistryError::AuthRequired {
                    registry: self.registry.clone(),
                    reference: reference.to_string(),
                },
            };
        }
        let unknown = match &e {
            OciDistributionError::ImageManifestNotFoundError(_) => {
                Some("manifest unknown".to_string())
            }
            OciDistributionError::RegistryError { envelope, .. } => envelope
                .errors
                .iter()
                .map(|x| format!("{:?}", x.code))
                .find(|c| c.ends_with("Unknown"))
                .map(|c| format!("{c} error")),
            _ => None,
        };
        if let Some(what) = unknown {
            return RegistryError::NotFound {
                registry: self.registry.clone(),
                reference: reference.to_string(),
                what,
            };
        }
        let connect_failed =
            matches!(&e, OciDistributionError::RequestError(r) if r.is_connect() || r.is_request());
        let mut message = e.to_string();
        if connect_failed && !self.insecure {
            message.push_str(" (a plain-HTTP registry or mirror needs --insecure)");
        }
        if let Some(c) = &self.credentials {
            // Belt and braces: never echo a password a server reflected.
            let secret = c.password.expose();
            if !secret.is_empty() {
                message = message.replace(secret, "<redacted>");
            }
        }
        RegistryError::Request {
            registry: self.registry.clone(),
            op,
            reference: reference.to_string(),
            message,
        }
    }
}

/// `oci-client`'s reference for ours.
pub(crate) fn oci_ref(r: &Reference) -> oci_client::Reference {
    match (&r.tag, &r.digest) {
        (Some(t), Some(d)) => oci_client::Reference::with_tag_and_digest(
            r.registry.clone(),
            r.repository.clone(),
            t.clone(),
            d.to_string(),
        ),
        (None, Some(d)) => oci_client::Reference::with_digest(
            r.registry.clone(),
            r.repository.clone(),
            d.to_string(),
        ),
        (Some(t), None) => {
            oci_client::Reference::with_tag(r.registry.clone(), r.repository.clone(), t.clone())
        }
        (None, None) => oci_client::Reference::with_tag(
            r.registry.clone(),
            r.repository.clone(),
            "latest".to_string(),
        ),
    }
}

/// Checks credentials against `conn.registry` the way `docker login` does:
/// an authenticated request must not be refused.
pub async fn check_login(conn: &Connection) -> Result<(), RegistryError> {
    let client = conn.client();
    let probe = oci_client::Reference::with_tag(
        conn.registry.clone(),
        "ferry/login-check".to_string(),
        "latest".to_string(),
    );
    let auth = conn.auth();
    let reference = probe.whole();
    client
        .auth(&probe, &auth, oci_client::RegistryOperation::Pull)
        .await
        .map_err(|e| conn.map_err("log in to", &reference, e))?;
    // A basic-auth registry only checks credentials on a real request; an
    // unknown repository (404) still proves the credentials were accepted.
    match client.list_tags(&probe, &auth, Some(1), None).await {
        Ok(_) => Ok(()),
        Err(e @ OciDistributionError::RequestError(_)) => {
            Err(conn.map_err("log in to", &reference, e))
        }
        Err(e) => match conn.map_err("log in to", &reference, e) {
            err @ (RegistryError::BadCredentials { .. } | RegistryError::AuthRequired { .. }) => {
                Err(err)
            }
            _ => Ok(()),
        },
    }
}
