//! Parsing `kind: Config` documents out of multi-document YAML.

use serde::Deserialize;
use serde_yaml_ng::Value;

use super::ConfigDocError;
use super::path::{ConfigPath, validate_path};

pub const API_VERSION: &str = "apps.sealos.io/v1beta1";
pub const KIND: &str = "Config";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    Override,
    Merge,
    Insert,
    Append,
}

/// One `Config` document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigDoc {
    pub name: String,
    /// `spec.match`: the image name this applies to (all images when absent).
    pub match_image: Option<String>,
    pub path: ConfigPath,
    pub strategy: Strategy,
    pub data: String,
}

#[derive(Deserialize, Default)]
struct RawMeta {
    #[serde(default)]
    name: String,
}

#[derive(Deserialize)]
struct RawSpec {
    #[serde(default)]
    path: String,
    #[serde(default)]
    data: String,
    #[serde(default, rename = "match")]
    match_image: String,
    #[serde(default)]
    strategy: String,
}

#[derive(Deserialize)]
struct RawConfig {
    #[serde(default)]
    metadata: RawMeta,
    spec: Option<RawSpec>,
}

fn is_config(doc: &Value) -> bool {
    doc.get("apiVersion").and_then(Value::as_str) == Some(API_VERSION)
        && doc.get("kind").and_then(Value::as_str) == Some(KIND)
}

/// Returns the `Config` documents of a multi-document YAML text (a
/// Clusterfile or an image's `config.yml`); other kinds are skipped.
pub fn parse_config_docs(text: &str) -> Result<Vec<ConfigDoc>, ConfigDocError> {
    let mut out = Vec::new();
    for (index, de) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let doc = Value::deserialize(de).map_err(|e| ConfigDocError::Yaml {
            index,
            message: e.to_string(),
        })?;
        if !is_config(&doc) {
            continue;
        }
        let raw: RawConfig =
            serde_yaml_ng::from_value(doc).map_err(|e| ConfigDocError::Invalid {
                name: format!("#{index}"),
                message: e.to_string(),
            })?;
        let name = raw.metadata.name;
        let invalid = |message: &str| ConfigDocError::Invalid {
            name: name.clone(),
            message: message.to_owned(),
        };
        let spec = raw.spec.ok_or_else(|| invalid("missing spec"))?;
        if spec.path.is_empty() {
            return Err(invalid("missing spec.path"));
        }
        let strategy = match spec.strategy.as_str() {
            "" | "override" => Strategy::Override,
            "merge" => Strategy::Merge,
            "insert" => Strategy::Insert,
            "append" => Strategy::Append,
            other => {
                return Err(ConfigDocError::Strategy {
                    name,
                    strategy: other.to_owned(),
                });
            }
        };
        out.push(ConfigDoc {
            path: validate_path(&spec.path)?,
            match_image: Some(spec.match_image).filter(|m| !m.is_empty()),
            strategy,
            data: spec.data,
            name,
        });
    }
    Ok(out)
}
