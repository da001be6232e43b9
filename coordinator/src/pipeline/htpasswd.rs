//! `etc/registry_htpasswd` in the mounted rootfs, as sealos writes it on
//! the bastion before distribution: one `user:bcrypt` line from the cluster
//! env's `registryUsername` / `registryPassword`. labring's init-registry.sh
//! copies it into the registry's config dir and its registry config always
//! enables htpasswd auth.
//!
//! Invariant: the password never reaches an error, event or log; only its
//! bcrypt hash is written. A file from an earlier mount whose hash still
//! matches is kept byte for byte, so an unchanged password does not change
//! the rootfs (bcrypt salts are random).

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use ferry_shared::pipeline::Step;

use super::PipelineError;

/// Relative to the rootfs (labring: `../etc/registry_htpasswd` from scripts/).
pub const HTPASSWD: &str = "etc/registry_htpasswd";
pub const USER_KEY: &str = "registryUsername";
pub const PASSWORD_KEY: &str = "registryPassword";
/// Go's `bcrypt.DefaultCost`, what sealos hashes with.
const COST: u32 = 10;

/// The htpasswd line for the env's credentials, reusing `previous` (an
/// earlier file's text) when it is for the same user and password.
/// `Ok(None)`: the env names no user or no password (the image's own file,
/// if any, stays).
pub fn line(
    env: &BTreeMap<String, String>,
    previous: Option<&str>,
) -> Result<Option<String>, PipelineError> {
    let user = env.get(USER_KEY).map(String::as_str).unwrap_or_default();
    let password = env
        .get(PASSWORD_KEY)
        .map(String::as_str)
        .unwrap_or_default();
    if user.is_empty() || password.is_empty() {
        return Ok(None);
    }
    if user.contains([':', '\n', '\r']) {
        return Err(PipelineError::cluster(
            Step::Images,
            format!(
                "{USER_KEY} `{user}` contains `:` or a line break, which htpasswd cannot hold; next: set another -e {USER_KEY}=..."
            ),
        ));
    }
    let kept = previous
        .and_then(|p| p.lines().next())
        .and_then(|l| l.split_once(':'))
        .filter(|(u, hash)| *u == user && bcrypt::verify(password, hash).unwrap_or(false));
    if let Some((u, hash)) = kept {
        return Ok(Some(format!("{u}:{hash}\n")));
    }
    let hash = bcrypt::hash(password, COST).map_err(|e| {
        // bcrypt's errors name the cost or the length, never the input.
        PipelineError::cluster(
            Step::Images,
            format!("hashing {PASSWORD_KEY} for {HTPASSWD}: {e}; next: set another -e {PASSWORD_KEY}=... (at most 72 bytes)"),
        )
    })?;
    Ok(Some(format!("{user}:{hash}\n")))
}

/// Writes `rootfs/etc/registry_htpasswd` (0600) for the env's credentials;
/// `previous` as in [`line`]. Returns whether a file was written.
pub fn write(
    rootfs: &Path,
    env: &BTreeMap<String, String>,
    previous: Option<&str>,
) -> Result<bool, PipelineError> {
    let Some(text) = line(env, previous)? else {
        return Ok(false);
    };
    let path = rootfs.join(HTPASSWD);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(PipelineError::io("creating", dir))?;
    }
    if std::fs::symlink_metadata(&path).is_ok() {
        std::fs::remove_file(&path).map_err(PipelineError::io("replacing", &path))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(PipelineError::io("creating", &path))?;
    f.write_all(text.as_bytes())
        .map_err(PipelineError::io("writing", &path))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn env(user: &str, pw: &str) -> BTreeMap<String, String> {
        [(USER_KEY, user), (PASSWORD_KEY, pw)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn writes_a_bcrypt_line_the_password_verifies_against() {
        let dir = tempfile::tempdir().unwrap();
        assert!(write(dir.path(), &env("admin", "passw0rd"), None).unwrap());
        let path = dir.path().join(HTPASSWD);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("passw0rd"), "{text}");
        let (user, hash) = text.trim_end().split_once(':').unwrap();
        assert_eq!(user, "admin");
        assert!(hash.starts_with("$2"), "bcrypt: {hash}");
        assert!(bcrypt::verify("passw0rd", hash).unwrap());
        assert!(!bcrypt::verify("other", hash).unwrap());
        let mode = std::fs::metadata(&path).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
            0o600
        );
    }

    #[test]
    fn an_unchanged_password_keeps_the_previous_file_and_a_new_one_does_not() {
        let first = line(&env("admin", "passw0rd"), None).unwrap().unwrap();
        let again = line(&env("admin", "passw0rd"), Some(&first)).unwrap();
        assert_eq!(again.as_deref(), Some(first.as_str()));
        let changed = line(&env("admin", "n3w"), Some(&first)).unwrap().unwrap();
        assert_ne!(changed, first);
        let (_, hash) = changed.trim_end().split_once(':').unwrap();
        assert!(bcrypt::verify("n3w", hash).unwrap());
        let renamed = line(&env("root", "passw0rd"), Some(&first))
            .unwrap()
            .unwrap();
        assert!(renamed.starts_with("root:$2"), "{renamed}");
    }

    #[test]
    fn no_credentials_write_nothing_and_a_bad_user_is_refused_without_the_password() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!write(dir.path(), &env("admin", ""), None).unwrap());
        assert!(!write(dir.path(), &BTreeMap::new(), None).unwrap());
        assert!(!dir.path().join(HTPASSWD).exists());
        let err = line(&env("ad:min", "s3cret-pw"), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains(USER_KEY) && err.contains("next:"), "{err}");
        assert!(!err.contains("s3cret-pw"), "{err}");
    }
}
