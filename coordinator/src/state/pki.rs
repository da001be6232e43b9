//! Persistence of the per-cluster agent CA and the coordinator's client cert.

use std::path::{Path, PathBuf};

use ferry_shared::Secret;
use ferry_shared::pki::{AgentCa, Issued, agent_ca::DEFAULT_VALIDITY};
use time::OffsetDateTime;

use super::files::{StateError, ensure_private_dir, read_to_string, write_atomic};

const CA_CERT: &str = "agent-ca.crt";
const CA_KEY: &str = "agent-ca.key";
const CLIENT_CERT: &str = "coordinator.crt";
const CLIENT_KEY: &str = "coordinator.key";

/// Everything the coordinator needs to talk to agents and to enrol new ones.
#[derive(Debug)]
pub struct AgentPki {
    pub ca: AgentCa,
    pub client: Issued,
    pub dir: PathBuf,
}

impl AgentPki {
    pub fn load_or_create(dir: &Path, cluster: &str) -> Result<Self, StateError> {
        ensure_private_dir(dir)?;
        let pki_err = |source| StateError::Pki {
            path: dir.to_path_buf(),
            source,
        };
        let now = OffsetDateTime::now_utc();
        let ca_cert = dir.join(CA_CERT);
        let ca = if ca_cert.exists() {
            let key = Secret::new(read_to_string(&dir.join(CA_KEY))?);
            AgentCa::from_pem(&read_to_string(&ca_cert)?, &key).map_err(pki_err)?
        } else {
            let ca = AgentCa::generate(cluster, now, DEFAULT_VALIDITY).map_err(pki_err)?;
            // Key first: a crash in between leaves no cert without its key.
            write_atomic(&dir.join(CA_KEY), ca.key_pem().expose().as_bytes(), 0o600)?;
            write_atomic(&ca_cert, ca.cert_pem().as_bytes(), 0o644)?;
            ca
        };
        let client_cert = dir.join(CLIENT_CERT);
        let client = if client_cert.exists() {
            Issued {
                cert_pem: read_to_string(&client_cert)?,
                key_pem: Secret::new(read_to_string(&dir.join(CLIENT_KEY))?),
            }
        } else {
            let c = ca
                .issue_coordinator(now, DEFAULT_VALIDITY)
                .map_err(pki_err)?;
            write_atomic(&dir.join(CLIENT_KEY), c.key_pem.expose().as_bytes(), 0o600)?;
            write_atomic(&client_cert, c.cert_pem.as_bytes(), 0o644)?;
            c
        };
        Ok(Self {
            ca,
            client,
            dir: dir.to_path_buf(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn created_once_then_reused_with_private_keys() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("pki");
        let a = AgentPki::load_or_create(&p, "c").unwrap();
        let b = AgentPki::load_or_create(&p, "c").unwrap();
        assert_eq!(a.ca.cert_pem(), b.ca.cert_pem());
        assert_eq!(a.client.cert_pem, b.client.cert_pem);
        for k in [CA_KEY, CLIENT_KEY] {
            let m = std::fs::metadata(p.join(k)).unwrap().permissions().mode() & 0o777;
            assert_eq!(m, 0o600, "{k}");
        }
        let m = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(m, 0o700);
    }
}
