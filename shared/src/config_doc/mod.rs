//! sealos `Config` documents (`apps.sealos.io/v1beta1`, `kind: Config`):
//! parsing, path validation, and applying one to a file's content (pure; the
//! coordinator reads and writes the files).
//!
//! ```yaml
//! apiVersion: apps.sealos.io/v1beta1
//! kind: Config
//! metadata: {name: calico}
//! spec:
//!   match: labring/calico:v3.26.1   # optional: only this image
//!   path: charts/calico/values.yaml # relative to the image root
//!   strategy: merge                 # "" / override | merge | insert | append
//!   data: |
//!     installation: {calicoNetwork: {ipPools: [{cidr: 10.160.0.0/12}]}}
//! ```
//!
//! Strategies, as sealos' `Dumper.WriteFiles` applies them:
//! - override (or empty): the file becomes `data`;
//! - insert: `data + "\n" + old` (a missing file counts as empty);
//! - append: `old + "\n" + data`;
//! - merge: `data` (a YAML mapping) is deep-merged into **every** document
//!   of the existing file (documents split on `---\n`; maps merge key by
//!   key, anything else is replaced by `data`'s value; a map and a non-map
//!   under one key is an error, like mergo's type check). A missing or empty
//!   file gives `data` alone. ferry keeps the existing key order and joins
//!   documents with `---\n`; sealos re-marshals with sorted keys and joins
//!   with `\n---\n`, so bytes differ but the YAML is the same.

mod merge;
mod parse;
mod path;

pub use merge::merge_into_documents;
pub use parse::{ConfigDoc, Strategy, parse_config_docs};
pub use path::{ConfigPath, validate_path};

/// Why a Config document could not be parsed or applied.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigDocError {
    #[error("document {index}: invalid YAML: {message}")]
    Yaml { index: usize, message: String },
    #[error("Config {name:?}: {message}")]
    Invalid { name: String, message: String },
    #[error("Config {name:?}: unknown strategy {strategy:?} (override, merge, insert, append)")]
    Strategy { name: String, strategy: String },
    #[error("Config path {path:?}: {reason}")]
    Path { path: String, reason: &'static str },
    #[error("merge into {path}: {message}")]
    Merge { path: String, message: String },
}

impl ConfigDoc {
    /// Whether this document applies to the image `image_name`.
    pub fn matches(&self, image_name: &str) -> bool {
        self.match_image.as_deref().is_none_or(|m| m == image_name)
    }

    /// The new content of the target file, given its current content
    /// (`None` when it does not exist).
    pub fn apply_to(&self, existing: Option<&str>) -> Result<String, ConfigDocError> {
        let old = existing.unwrap_or("");
        match self.strategy {
            Strategy::Override => Ok(self.data.clone()),
            Strategy::Insert => Ok(format!("{}\n{old}", self.data)),
            Strategy::Append => Ok(format!("{old}\n{}", self.data)),
            Strategy::Merge => {
                merge_into_documents(old, &self.data).map_err(|message| ConfigDocError::Merge {
                    path: self.path.as_str().to_owned(),
                    message,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests;
