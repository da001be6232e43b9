//! Path validation for transfers: manifest paths are relative and may never
//! leave the destination; destinations are absolute, normalised and never
//! the filesystem root.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("path `{path}`: {reason}")]
    Relative { path: String, reason: &'static str },
    #[error("destination `{path}`: {reason}")]
    Destination { path: String, reason: &'static str },
}

fn check_parts(s: &str) -> Result<(), &'static str> {
    if s.contains('\0') {
        return Err("contains a NUL byte");
    }
    for part in s.split('/') {
        match part {
            "" => return Err("has an empty component (`//`, leading or trailing `/`)"),
            "." | ".." => return Err("has a `.` or `..` component"),
            _ => {}
        }
    }
    Ok(())
}

/// A relative, '/'-separated path with only normal components: it cannot
/// escape the directory it is joined to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RelPath(String);

impl RelPath {
    pub fn new(s: impl Into<String>) -> Result<Self, PathError> {
        let s = s.into();
        let err = |reason| PathError::Relative {
            path: s.clone(),
            reason,
        };
        if s.is_empty() {
            return Err(err("is empty"));
        }
        if s.starts_with('/') {
            return Err(err("is absolute"));
        }
        check_parts(&s).map_err(err)?;
        Ok(Self(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The parent path, `None` at the top level.
    pub fn parent(&self) -> Option<&str> {
        self.0.rsplit_once('/').map(|(p, _)| p)
    }

    /// Whether `self` is `other` or lies below it.
    pub fn is_within(&self, other: &str) -> bool {
        self.0 == other
            || (self.0.starts_with(other) && self.0.as_bytes().get(other.len()) == Some(&b'/'))
    }
}

impl fmt::Display for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An absolute, normalised directory on a node; never `/` itself.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DestRoot(String);

impl DestRoot {
    /// Accepts one trailing `/` (`/opt/x/` is `/opt/x`).
    pub fn new(s: impl Into<String>) -> Result<Self, PathError> {
        let raw = s.into();
        let err = |reason| PathError::Destination {
            path: raw.clone(),
            reason,
        };
        let Some(rest) = raw.strip_prefix('/') else {
            return Err(err("must be an absolute path on the node"));
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.is_empty() {
            return Err(err("must not be the filesystem root"));
        }
        check_parts(rest).map_err(err)?;
        Ok(Self(format!("/{rest}")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Top-level directories (`/etc`, `/usr`, `/opt`, ...) are never
    /// mirrored with pruning: that would remove everything not in the source.
    pub fn may_prune(&self) -> bool {
        self.0[1..].contains('/')
    }
}

impl fmt::Display for DestRoot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn relative_paths() {
        for ok in ["a", "a/b", "a.b/..c", ".hidden/x"] {
            assert!(RelPath::new(ok).is_ok(), "{ok}");
        }
        for bad in ["", "/a", "a/../b", "..", ".", "a//b", "a/", "a/./b", "a\0b"] {
            assert!(RelPath::new(bad).is_err(), "{bad:?}");
        }
        let p = RelPath::new("a/b/c").unwrap();
        assert_eq!(p.parent(), Some("a/b"));
        assert!(p.is_within("a/b") && p.is_within("a/b/c") && !p.is_within("a/b/"));
        assert!(!RelPath::new("a/bc").unwrap().is_within("a/b"));
    }

    #[test]
    fn destinations() {
        assert_eq!(DestRoot::new("/opt/x/").unwrap().as_str(), "/opt/x");
        assert!(DestRoot::new("/opt/x").unwrap().may_prune());
        assert!(!DestRoot::new("/etc/").unwrap().may_prune());
        for bad in ["/", "", "opt/x", "/opt/../etc", "//", "/a//b", "/a/./b"] {
            let e = DestRoot::new(bad).unwrap_err().to_string();
            assert!(e.contains("destination"), "{bad:?}: {e}");
        }
    }

    proptest! {
        #[test]
        fn accepted_paths_never_escape(parts in proptest::collection::vec("[a-z.]{0,3}", 1..5)) {
            let s = parts.join("/");
            if let Ok(p) = RelPath::new(s) {
                let mut depth: i32 = 0;
                for c in p.as_str().split('/') {
                    depth += if c == ".." { -1 } else { 1 };
                    prop_assert!(depth > 0 && c != "." && !c.is_empty());
                }
            }
        }
    }
}
