//! Config paths: relative to the image root, never escaping it.

use super::ConfigDocError;

/// A validated relative path: non-empty normal components only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigPath {
    text: String,
    components: Vec<String>,
}

impl ConfigPath {
    /// The normalized path (`a/b/c`).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn components(&self) -> &[String] {
        &self.components
    }
}

/// Rejects absolute paths, `..`, NUL bytes and empty paths; drops `.` and
/// empty components.
pub fn validate_path(raw: &str) -> Result<ConfigPath, ConfigDocError> {
    let err = |reason| ConfigDocError::Path {
        path: raw.to_owned(),
        reason,
    };
    if raw.starts_with('/') || raw.starts_with('\\') {
        return Err(err(
            "absolute paths are not allowed; give a path relative to the image root",
        ));
    }
    if raw.contains('\0') {
        return Err(err("contains a NUL byte"));
    }
    let mut components = Vec::new();
    for part in raw.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(err("`..` is not allowed")),
            p => components.push(p.to_owned()),
        }
    }
    if components.is_empty() {
        return Err(err("empty path"));
    }
    Ok(ConfigPath {
        text: components.join("/"),
        components,
    })
}
