//! Image references as docker/sealos write them:
//! `[registry[:port]/]repository[:tag][@sha256:...]`.
//!
//! Normalisation follows docker: no registry ⇒ `docker.io`, a one-part
//! repository on `docker.io` gets `library/`, no tag and no digest ⇒
//! `latest`. The first path part is a registry when it contains `.` or `:`
//! or is `localhost`.

use std::fmt;
use std::str::FromStr;

use super::types::Digest;

pub const DEFAULT_REGISTRY: &str = "docker.io";

/// A parsed, normalised image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid image reference `{input}`: {reason}")]
pub struct ReferenceError {
    pub input: String,
    pub reason: String,
}

impl Reference {
    /// The canonical name without tag or digest: `registry/repository`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The tag, or the digest when pulled by digest only (what a registry
    /// `manifests/<reference>` URL needs).
    pub fn tag_or_digest(&self) -> String {
        match (&self.tag, &self.digest) {
            (_, Some(d)) => d.to_string(),
            (Some(t), None) => t.clone(),
            (None, None) => "latest".to_string(),
        }
    }

    /// The same repository with another tag and no digest.
    pub fn with_tag(&self, tag: &str) -> Self {
        Self {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.clone()
        }
    }

    /// Short form for display: `docker.io/library/` and `docker.io/` dropped.
    pub fn short(&self) -> String {
        let full = self.to_string();
        full.strip_prefix("docker.io/library/")
            .or_else(|| full.strip_prefix("docker.io/"))
            .map(str::to_string)
            .unwrap_or(full)
    }
}

fn err(input: &str, reason: impl Into<String>) -> ReferenceError {
    ReferenceError {
        input: input.chars().take(200).collect(),
        reason: reason.into(),
    }
}

fn valid_path_component(c: &str) -> bool {
    // [a-z0-9]+ separated by `.`, `_`, `__` or `-`+
    let b = c.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|&x| x.is_ascii_lowercase() || x.is_ascii_digit() || b"._-".contains(&x))
        && !c.contains("..")
}

fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|&x| x.is_ascii_alphanumeric() || b"_.-".contains(&x))
}

fn valid_registry(r: &str) -> bool {
    !r.is_empty()
        && r.len() <= 255
        && r.bytes()
            .all(|x| x.is_ascii_alphanumeric() || b".-:[]".contains(&x))
}

impl FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        if input.is_empty() || input.len() > 4096 {
            return Err(err(input, "empty or too long"));
        }
        let (rest, digest) = match input.split_once('@') {
            Some((r, d)) => (
                r,
                Some(d.parse::<Digest>().map_err(|e| err(input, e.to_string()))?),
            ),
            None => (input, None),
        };
        let (registry, path) = match rest.split_once('/') {
            Some((first, path))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), path)
            }
            _ => (DEFAULT_REGISTRY.to_string(), rest),
        };
        if !valid_registry(&registry) {
            return Err(err(input, format!("bad registry host `{registry}`")));
        }
        let registry = if registry == "index.docker.io" || registry == "registry-1.docker.io" {
            DEFAULT_REGISTRY.to_string()
        } else {
            registry
        };
        // A tag is after the last `:` of the last path component.
        let last_slash = path.rfind('/').map_or(0, |i| i + 1);
        let (repository, tag) = match path[last_slash..].rfind(':') {
            Some(i) => {
                let at = last_slash + i;
                (&path[..at], Some(path[at + 1..].to_string()))
            }
            None => (path, None),
        };
        if let Some(t) = tag.as_ref().filter(|t| !valid_tag(t)) {
            return Err(err(input, format!("bad tag `{t}`")));
        }
        if repository.is_empty() || !repository.split('/').all(valid_path_component) {
            return Err(err(
                input,
                "repository must be lowercase path components ([a-z0-9] with . _ - separators)",
            ));
        }
        let repository = if registry == DEFAULT_REGISTRY && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository.to_string()
        };
        let tag = if tag.is_none() && digest.is_none() {
            Some("latest".to_string())
        } else {
            tag
        };
        Ok(Self {
            registry,
            repository,
            tag,
            digest,
        })
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> String {
        s.parse::<Reference>().unwrap().to_string()
    }

    #[test]
    fn normalises_like_docker() {
        assert_eq!(r("nginx"), "docker.io/library/nginx:latest");
        assert_eq!(
            r("labring/kubernetes:v1.29.0"),
            "docker.io/labring/kubernetes:v1.29.0"
        );
        assert_eq!(r("localhost:5000/a/b:1"), "localhost:5000/a/b:1");
        assert_eq!(r("127.0.0.1:5000/a"), "127.0.0.1:5000/a:latest");
        assert_eq!(r("sealos.hub:5000/pause:3.9"), "sealos.hub:5000/pause:3.9");
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(r(&format!("x/y@{d}")), format!("docker.io/x/y@{d}"));
        assert_eq!(
            "nginx".parse::<Reference>().unwrap().short(),
            "nginx:latest"
        );
    }

    #[test]
    fn rejects_bad_input() {
        for bad in [
            "",
            "UPPER/x",
            "a/../b",
            "x:",
            "x@sha256:zz",
            "a//b",
            "x/Y:1",
        ] {
            assert!(bad.parse::<Reference>().is_err(), "{bad}");
        }
    }
}
