//! `toYaml` (sealos' funcmap: YAML through JSON like
//! `sigs.k8s.io/yaml`, emitted the go-yaml v2 way, trailing newline trimmed).

use std::collections::HashMap;

use gtmpl_ng::{FuncError, Value};

use super::exactly;

/// Converts a template value to JSON: maps sorted by key, missing → null.
fn value_to_json(v: &Value) -> serde_json::Value {
    match v {
        Value::NoValue | Value::Nil | Value::Function(_) => serde_json::Value::Null,
        Value::Bool(b) => serde_json::Value::Bool(*b),
        Value::String(s) => serde_json::Value::String(s.clone()),
        Value::Object(m) | Value::Map(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            serde_json::Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), value_to_json(&m[k])))
                    .collect(),
            )
        }
        Value::Array(a) => serde_json::Value::Array(a.iter().map(value_to_json).collect()),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                serde_json::Value::from(i)
            } else if let Some(u) = n.as_u64() {
                serde_json::Value::from(u)
            } else {
                // Go goes through JSON text and back: a whole float64
                // (`fromYaml`'s numbers) is written `1000000` and read back
                // as an int.
                match n.as_f64() {
                    Some(f) if f.fract() == 0.0 && f.abs() < 9.0e18 => {
                        serde_json::Value::from(f as i64)
                    }
                    f => f
                        .and_then(serde_json::Number::from_f64)
                        .map_or(serde_json::Value::Null, serde_json::Value::Number),
                }
            }
        }
    }
}

/// Converts JSON (e.g. sealctl `.Values`) into a template value.
pub(crate) fn json_to_value(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => n
            .as_i64()
            .map(Value::from)
            .or_else(|| n.as_u64().map(Value::from))
            .or_else(|| n.as_f64().map(Value::from))
            .unwrap_or(Value::Nil),
        serde_json::Value::String(s) => Value::String(s.clone()),
        serde_json::Value::Array(a) => Value::Array(a.iter().map(json_to_value).collect()),
        serde_json::Value::Object(m) => Value::Map(
            m.iter()
                .map(|(k, v)| (k.clone(), json_to_value(v)))
                .collect::<HashMap<_, _>>(),
        ),
    }
}

pub(super) fn to_yaml(args: &[Value]) -> Result<Value, FuncError> {
    exactly("toYaml", args, 1)?;
    let json = value_to_json(&args[0]);
    let text = super::yaml_emit::emit(&json);
    Ok(Value::String(
        text.strip_suffix('\n').unwrap_or(&text).to_owned(),
    ))
}
