//! YAML deep merge of a Config's `data` into every document of a file.

use serde::Deserialize;
use serde_yaml_ng::{Mapping, Value};

/// Deep-merges `src` into `dst`: maps key by key, anything else replaced.
fn merge_mapping(dst: &mut Mapping, src: &Mapping, trail: &str) -> Result<(), String> {
    for (key, value) in src {
        let here = format!("{trail}.{}", key.as_str().unwrap_or("?"));
        match (dst.get_mut(key), value) {
            (Some(Value::Mapping(d)), Value::Mapping(s)) => merge_mapping(d, s, &here)?,
            (Some(Value::Mapping(_)), other) if !other.is_null() => {
                return Err(format!("{here}: cannot merge a non-map into a map"));
            }
            (Some(existing), Value::Mapping(_)) if !existing.is_null() => {
                return Err(format!("{here}: cannot merge a map into a non-map"));
            }
            _ => {
                dst.insert(key.clone(), value.clone());
            }
        }
    }
    Ok(())
}

fn as_mapping(doc: Value, what: &str) -> Result<Mapping, String> {
    match doc {
        Value::Null => Ok(Mapping::new()),
        Value::Mapping(m) => Ok(m),
        _ => Err(format!("{what} is not a YAML mapping")),
    }
}

/// Merges `data` into each document of `existing` (split on `---\n` like
/// sealos) and joins the results with `---\n`.
pub fn merge_into_documents(existing: &str, data: &str) -> Result<String, String> {
    let patch: Value = serde_yaml_ng::from_str(data).map_err(|e| format!("data: {e}"))?;
    let patch = as_mapping(patch, "data")?;
    let mut docs = Vec::new();
    for (i, raw) in split_documents(existing).into_iter().enumerate() {
        let value = if raw.trim().is_empty() {
            Value::Null
        } else {
            Value::deserialize(serde_yaml_ng::Deserializer::from_str(raw))
                .map_err(|e| format!("document {i}: {e}"))?
        };
        let mut doc = as_mapping(value, &format!("document {i}"))?;
        merge_mapping(&mut doc, &patch, "")?;
        docs.push(serde_yaml_ng::to_string(&doc).map_err(|e| e.to_string())?);
    }
    Ok(docs.join("---\n"))
}

/// Splits on `---` separator lines; a leading separator does not make an
/// empty first document.
fn split_documents(text: &str) -> Vec<&str> {
    let mut parts: Vec<&str> = Vec::new();
    let mut start = 0;
    let mut line_start = 0;
    for line in text.split_inclusive('\n') {
        if line.trim_end() == "---" {
            parts.push(&text[start..line_start]);
            start = line_start + line.len();
        }
        line_start += line.len();
    }
    parts.push(&text[start..]);
    if parts.len() > 1 && parts[0].trim().is_empty() {
        parts.remove(0);
    }
    if parts.len() > 1 && parts.last().is_some_and(|p| p.trim().is_empty()) {
        parts.pop();
    }
    parts
}
