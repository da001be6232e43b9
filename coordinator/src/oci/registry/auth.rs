//! Registry credentials: `ferry login` stores them in `<ferry home>/auth.json`
//! (docker `config.json` format, mode 0600); docker's own
//! `$DOCKER_CONFIG/config.json` or `~/.docker/config.json` is honoured
//! too (its `auths` entries; credential helpers are not run). ferry's file
//! wins over docker's.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ferry_shared::Secret;
use serde::{Deserialize, Serialize};

use super::RegistryError;

/// A user name and password for one registry.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub username: String,
    pub password: Secret,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct ConfigFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(flatten)]
    other: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct AuthEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    auth: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    password: Option<Secret>,
}

impl AuthEntry {
    fn credentials(&self) -> Option<Credentials> {
        if let Some(auth) = &self.auth {
            let decoded = STANDARD.decode(auth.expose().trim()).ok()?;
            let text = String::from_utf8(decoded).ok()?;
            let (user, pass) = text.split_once(':')?;
            return Some(Credentials {
                username: user.to_string(),
                password: Secret::new(pass),
            });
        }
        Some(Credentials {
            username: self.username.clone()?,
            password: self.password.clone()?,
        })
    }
}

/// The keys a registry may be stored under (docker hub has legacy names).
fn keys_for(registry: &str) -> Vec<String> {
    let mut keys = vec![
        registry.to_string(),
        format!("https://{registry}"),
        format!("http://{registry}"),
    ];
    if registry == "docker.io" {
        keys.push("https://index.docker.io/v1/".to_string());
        keys.push("index.docker.io".to_string());
        keys.push("registry-1.docker.io".to_string());
    }
    keys
}

/// Where credentials are read from and `ferry login` writes to.
#[derive(Debug, Clone)]
pub struct AuthStore {
    ferry_file: PathBuf,
    docker_file: Option<PathBuf>,
}

impl AuthStore {
    /// `<ferry_home>/auth.json`, plus docker's config when present.
    pub fn new(ferry_home: &Path) -> Self {
        let docker_file = std::env::var_os("DOCKER_CONFIG")
            .filter(|v| !v.is_empty())
            .map(|d| PathBuf::from(d).join("config.json"))
            .or_else(|| {
                std::env::var_os("HOME")
                    .filter(|v| !v.is_empty())
                    .map(|h| PathBuf::from(h).join(".docker/config.json"))
            });
        Self {
            ferry_file: ferry_home.join("auth.json"),
            docker_file,
        }
    }

    pub fn path(&self) -> &Path {
        &self.ferry_file
    }

    /// Credentials for `registry` (host[:port]), ferry's file first.
    pub fn get(&self, registry: &str) -> Result<Option<Credentials>, RegistryError> {
        let mut files = vec![self.ferry_file.clone()];
        files.extend(self.docker_file.clone());
        for file in files {
            let Some(cfg) = read_config(&file)? else {
                continue;
            };
            for key in keys_for(registry) {
                if let Some(c) = cfg.auths.get(&key).and_then(AuthEntry::credentials) {
                    return Ok(Some(c));
                }
            }
        }
        Ok(None)
    }

    /// Records credentials for `registry` in ferry's file (0600, atomic).
    pub fn set(&self, registry: &str, creds: &Credentials) -> Result<(), RegistryError> {
        let mut cfg = read_config(&self.ferry_file)?.unwrap_or_default();
        let token = STANDARD.encode(format!("{}:{}", creds.username, creds.password.expose()));
        cfg.auths.insert(
            registry.to_string(),
            AuthEntry {
                auth: Some(Secret::new(token)),
                ..AuthEntry::default()
            },
        );
        self.write(&cfg)
    }

    /// Forgets `registry`; false when it was not recorded.
    pub fn remove(&self, registry: &str) -> Result<bool, RegistryError> {
        let Some(mut cfg) = read_config(&self.ferry_file)? else {
            return Ok(false);
        };
        let mut removed = false;
        for key in keys_for(registry) {
            removed |= cfg.auths.remove(&key).is_some();
        }
        if removed {
            self.write(&cfg)?;
        }
        Ok(removed)
    }

    fn write(&self, cfg: &ConfigFile) -> Result<(), RegistryError> {
        let err = |reason: String| RegistryError::AuthFile {
            path: self.ferry_file.clone(),
            reason,
        };
        if let Some(dir) = self.ferry_file.parent() {
            fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
        }
        let bytes = serde_json::to_vec_pretty(cfg).map_err(|e| err(e.to_string()))?;
        crate::image::atomic::write_atomic(&self.ferry_file, &bytes, 0o600)
            .map_err(|e| err(e.to_string()))
    }
}

fn read_config(path: &Path) -> Result<Option<ConfigFile>, RegistryError> {
    match fs::read(path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| RegistryError::AuthFile {
                    path: path.to_owned(),
                    reason: format!("not valid JSON ({e}); fix or remove it"),
                })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(RegistryError::AuthFile {
            path: path.to_owned(),
            reason: e.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn login_file_is_private_and_docker_format() {
        let dir = tempfile::tempdir().unwrap();
        let store = AuthStore {
            ferry_file: dir.path().join("auth.json"),
            docker_file: Some(dir.path().join("docker.json")),
        };
        std::fs::write(
            dir.path().join("docker.json"),
            r#"{"auths":{"https://index.docker.io/v1/":{"auth":"ZDpkcA=="}},"credsStore":"x"}"#,
        )
        .unwrap();
        let hub = store.get("docker.io").unwrap().unwrap();
        assert_eq!((hub.username.as_str(), hub.password.expose()), ("d", "dp"));
        store
            .set(
                "127.0.0.1:5000",
                &Credentials {
                    username: "u".into(),
                    password: Secret::new("p:w"),
                },
            )
            .unwrap();
        let mode = std::fs::metadata(store.path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let text = std::fs::read_to_string(store.path()).unwrap();
        assert!(text.contains(r#""auth": "dTpwOnc=""#), "{text}");
        let c = store.get("127.0.0.1:5000").unwrap().unwrap();
        assert_eq!(c.password.expose(), "p:w");
        assert!(store.remove("127.0.0.1:5000").unwrap());
        assert!(store.get("127.0.0.1:5000").unwrap().is_none());
    }
}
