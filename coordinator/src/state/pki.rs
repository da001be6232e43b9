//! Persistence of the per-cluster agent PKI: the agent CA (and, during a CA
//! rotation, the previous CA, still trusted), the coordinator's client
//! certificate, and the revocation list the agents enforce. Related files
//! change together through `file_set` (crash-safe).

use std::path::{Path, PathBuf};

use ferry_shared::Secret;
use ferry_shared::pki::agent_ca::{CA_VALIDITY, LEAF_VALIDITY};
use ferry_shared::pki::{AgentCa, CertInfo, Issued, Revoked, RevokedList};
use time::OffsetDateTime;

use super::file_set;
use super::files::{StateError, ensure_private_dir, read_to_string};

const CA_CERT: &str = "agent-ca.crt";
const CA_KEY: &str = "agent-ca.key";
/// The previous CA during `rotate-certs --ca` (certificate only).
const PREV_CA_CERT: &str = "agent-ca.prev.crt";
const CLIENT_CERT: &str = "coordinator.crt";
const CLIENT_KEY: &str = "coordinator.key";
const REVOKED: &str = "revoked.json";

/// Everything the coordinator needs to talk to agents and to enrol new ones.
#[derive(Debug)]
pub struct AgentPki {
    /// The CA that issues new certificates.
    pub ca: AgentCa,
    /// The CA being replaced, trusted until every agent moved (PEM).
    pub prev_ca: Option<String>,
    pub client: Issued,
    pub revoked: RevokedList,
    pub dir: PathBuf,
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// Whether a certificate expiring at `not_after` (Unix s) is in the last
/// third of a leaf's lifetime (or past it).
pub fn renewal_due(not_after: i64) -> bool {
    not_after - now().unix_timestamp() < LEAF_VALIDITY.whole_seconds() / 3
}

/// The coordinator's TLS material as it is on disk (trust bundle,
/// certificate, key), read without creating, recovering or renewing
/// anything; None while the cluster has no coordinator certificate.
/// For readers that must not write the state directory (the dashboard).
pub fn read_client_tls(dir: &Path) -> Result<Option<(String, String, Secret)>, StateError> {
    let (ca, cert, key) = (
        dir.join(CA_CERT),
        dir.join(CLIENT_CERT),
        dir.join(CLIENT_KEY),
    );
    if !(ca.exists() && cert.exists() && key.exists()) {
        return Ok(None);
    }
    let mut bundle = read_to_string(&ca)?;
    let prev = dir.join(PREV_CA_CERT);
    if prev.exists() {
        bundle.push_str(&read_to_string(&prev)?);
    }
    Ok(Some((
        bundle,
        read_to_string(&cert)?,
        Secret::new(read_to_string(&key)?),
    )))
}

impl AgentPki {
    pub fn load_or_create(dir: &Path, cluster: &str) -> Result<Self, StateError> {
        ensure_private_dir(dir)?;
        file_set::recover(dir)?;
        let pki_err = |source| StateError::Pki {
            path: dir.to_path_buf(),
            source,
        };
        let ca_cert = dir.join(CA_CERT);
        let ca = if ca_cert.exists() {
            let key = Secret::new(read_to_string(&dir.join(CA_KEY))?);
            AgentCa::from_pem(&read_to_string(&ca_cert)?, &key).map_err(pki_err)?
        } else {
            let ca = AgentCa::generate(cluster, now(), CA_VALIDITY).map_err(pki_err)?;
            let key = ca.key_pem();
            file_set::commit(
                dir,
                &[
                    (CA_KEY, key.expose().as_bytes(), 0o600),
                    (CA_CERT, ca.cert_pem().as_bytes(), 0o644),
                ],
                &[],
            )?;
            ca
        };
        let prev = dir.join(PREV_CA_CERT);
        let prev_ca = prev.exists().then(|| read_to_string(&prev)).transpose()?;
        let revoked_path = dir.join(REVOKED);
        let revoked = if revoked_path.exists() {
            serde_json::from_str(&read_to_string(&revoked_path)?).map_err(|e| {
                StateError::Corrupt {
                    path: revoked_path.clone(),
                    reason: e.to_string(),
                }
            })?
        } else {
            RevokedList::default()
        };
        let client_cert = dir.join(CLIENT_CERT);
        let client = client_cert
            .exists()
            .then(|| -> Result<Issued, StateError> {
                Ok(Issued {
                    cert_pem: read_to_string(&client_cert)?,
                    key_pem: Secret::new(read_to_string(&dir.join(CLIENT_KEY))?),
                })
            })
            .transpose()?;
        let mut pki = Self {
            client: client.clone().unwrap_or(Issued {
                cert_pem: String::new(),
                key_pem: Secret::new(String::new()),
            }),
            ca,
            prev_ca,
            revoked,
            dir: dir.to_path_buf(),
        };
        match client {
            None => pki.renew_client()?,
            Some(_) => {
                let info = pki.client_info()?;
                // Issued before the coordinator EKU existed (agents would
                // take it for an agent's), or near its end: replaced, the
                // old one revoked (outside a CA rotation, whose client must
                // stay the old CA's until every agent trusts the new one).
                if pki.prev_ca.is_none() && (!info.coordinator || renewal_due(info.not_after)) {
                    pki.renew_client()?;
                }
            }
        }
        Ok(pki)
    }

    fn cert_err(&self, name: &str) -> impl FnOnce(ferry_shared::pki::CertInfoError) -> StateError {
        let path = self.dir.join(name);
        move |source| StateError::Cert { path, source }
    }

    pub fn client_info(&self) -> Result<CertInfo, StateError> {
        CertInfo::from_pem(&self.client.cert_pem, CLIENT_CERT).map_err(self.cert_err(CLIENT_CERT))
    }

    /// The CAs agents and the coordinator trust: the current one, then the
    /// previous one during a CA rotation.
    pub fn trust_bundle(&self) -> String {
        let mut b = self.ca.cert_pem().to_string();
        if let Some(p) = &self.prev_ca {
            b.push_str(p);
        }
        b
    }

    fn revoked_bytes(&self) -> Result<Vec<u8>, StateError> {
        serde_json::to_vec_pretty(&self.revoked).map_err(|e| StateError::Corrupt {
            path: self.dir.join(REVOKED),
            reason: e.to_string(),
        })
    }

    /// Adds `entries` to the revocation list (expired ones pruned) and saves
    /// it; returns whether anything was new.
    pub fn revoke(
        &mut self,
        entries: impl IntoIterator<Item = Revoked>,
    ) -> Result<bool, StateError> {
        let before = self.revoked.generation;
        self.revoked.prune(now().unix_timestamp());
        let mut added = false;
        for e in entries {
            added |= self.revoked.add(e);
        }
        if self.revoked.generation != before {
            let bytes = self.revoked_bytes()?;
            file_set::commit(&self.dir, &[(REVOKED, &bytes, 0o600)], &[])?;
        }
        Ok(added)
    }

    /// Issues a new coordinator certificate from the current CA; the
    /// previous one (if any) is revoked in the same commit.
    pub fn renew_client(&mut self) -> Result<(), StateError> {
        let issued = self
            .ca
            .issue_coordinator(now(), LEAF_VALIDITY)
            .map_err(|source| StateError::Pki {
                path: self.dir.clone(),
                source,
            })?;
        if !self.client.cert_pem.is_empty() {
            let old = self.client_info()?;
            self.revoked.prune(now().unix_timestamp());
            self.revoked.add(Revoked {
                serial: old.serial,
                what: "replaced coordinator certificate".into(),
                not_after: old.not_after,
            });
        }
        self.client = issued;
        let bytes = self.revoked_bytes()?;
        let key = self.client.key_pem.clone();
        file_set::commit(
            &self.dir,
            &[
                (CLIENT_KEY, key.expose().as_bytes(), 0o600),
                (CLIENT_CERT, self.client.cert_pem.as_bytes(), 0o644),
                (REVOKED, &bytes, 0o600),
            ],
            &[],
        )?;
        Ok(())
    }

    /// Ends a CA rotation: the previous CA is trusted no more.
    pub fn finish_ca_rotation(&mut self) -> Result<(), StateError> {
        file_set::commit(&self.dir, &[], &[PREV_CA_CERT])?;
        self.prev_ca = None;
        Ok(())
    }

    /// Starts a CA rotation: a new CA issues from now on, the current one
    /// stays trusted ([`Self::prev_ca`]) and the client certificate stays
    /// until [`Self::renew_client`] ends the rotation.
    pub fn begin_ca_rotation(&mut self, cluster: &str) -> Result<(), StateError> {
        if self.prev_ca.is_some() {
            return Ok(());
        }
        let ca =
            AgentCa::generate(cluster, now(), CA_VALIDITY).map_err(|source| StateError::Pki {
                path: self.dir.clone(),
                source,
            })?;
        let key = ca.key_pem();
        let old = self.ca.cert_pem().to_string();
        file_set::commit(
            &self.dir,
            &[
                (PREV_CA_CERT, old.as_bytes(), 0o644),
                (CA_KEY, key.expose().as_bytes(), 0o600),
                (CA_CERT, ca.cert_pem().as_bytes(), 0o644),
            ],
            &[],
        )?;
        self.ca = ca;
        self.prev_ca = Some(old);
        Ok(())
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
        assert!(b.client_info().unwrap().coordinator);
        for k in [CA_KEY, CLIENT_KEY] {
            let m = std::fs::metadata(p.join(k)).unwrap().permissions().mode() & 0o777;
            assert_eq!(m, 0o600, "{k}");
        }
        let m = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(m, 0o700);
    }

    #[test]
    fn a_coordinator_certificate_without_the_eku_is_replaced_and_revoked() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("pki");
        let a = AgentPki::load_or_create(&p, "c").unwrap();
        // What ferry wrote before the coordinator EKU: an agent-like leaf.
        let old =
            a.ca.issue_agent(
                "x",
                &["10.0.0.9".parse().unwrap()],
                &[],
                now(),
                LEAF_VALIDITY,
            )
            .unwrap();
        std::fs::write(p.join(CLIENT_CERT), &old.cert_pem).unwrap();
        std::fs::write(p.join(CLIENT_KEY), old.key_pem.expose()).unwrap();
        let b = AgentPki::load_or_create(&p, "c").unwrap();
        assert!(b.client_info().unwrap().coordinator);
        let old_serial = CertInfo::from_pem(&old.cert_pem, "old").unwrap().serial;
        assert!(b.revoked.contains(&old_serial));
        let c = AgentPki::load_or_create(&p, "c").unwrap();
        assert_eq!(c.client.cert_pem, b.client.cert_pem, "renewed once");
        assert!(c.revoked.contains(&old_serial), "revocation persisted");
    }

    #[test]
    fn a_ca_rotation_trusts_both_until_the_client_is_renewed() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("pki");
        let mut a = AgentPki::load_or_create(&p, "c").unwrap();
        let (ca1, c1) = (a.ca.cert_pem().to_string(), a.client.cert_pem.clone());
        a.begin_ca_rotation("c").unwrap();
        let b = AgentPki::load_or_create(&p, "c").unwrap();
        assert_ne!(b.ca.cert_pem(), ca1);
        assert_eq!(b.prev_ca.as_deref(), Some(ca1.as_str()));
        assert_eq!(
            b.client.cert_pem, c1,
            "the old CA's client until the switch"
        );
        assert_eq!(b.trust_bundle(), format!("{}{ca1}", b.ca.cert_pem()));
        let mut b = b;
        b.renew_client().unwrap();
        let c = AgentPki::load_or_create(&p, "c").unwrap();
        assert!(c.prev_ca.is_some(), "both trusted until the agents moved");
        let mut c = c;
        c.finish_ca_rotation().unwrap();
        let c = AgentPki::load_or_create(&p, "c").unwrap();
        assert!(c.prev_ca.is_none());
        let ci = c.client_info().unwrap();
        let cai = CertInfo::from_pem(c.ca.cert_pem(), "ca").unwrap();
        assert!(ci.issued_by(&cai));
        assert!(
            c.revoked
                .contains(&CertInfo::from_pem(&c1, "c1").unwrap().serial)
        );
    }
}
