//! helm's `fromYaml`, `fromYamlArray`, `fromJson`, `fromJsonArray`.
//!
//! As in Go, YAML goes through JSON (`sigs.k8s.io/yaml`) and JSON is read
//! with `encoding/json` into `interface{}`, so every number becomes a
//! float64 (`{{ (fromYaml "a: 1000000").a }}` prints `1e+06`, as in helm).
//! They never fail: a document that does not parse, or is not a map (an
//! array), gives a map `{"Error": message}` (an array `[message]`). Only the
//! first YAML document is read; `null` or an empty document gives an empty
//! map (array).

use std::collections::HashMap;

use gtmpl_ng::{FuncError, Number, Value};

use super::{exactly, str_arg};

#[derive(Clone, Copy, PartialEq)]
enum Want {
    Map,
    Array,
}

impl Want {
    fn go_type(self) -> &'static str {
        match self {
            Want::Map => "map[string]interface {}",
            Want::Array => "[]interface {}",
        }
    }
}

fn json_to_go(v: serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Bool(b),
        serde_json::Value::Number(n) => {
            Value::Number(Number::float(n.as_f64().unwrap_or_default()))
        }
        serde_json::Value::String(s) => Value::String(s),
        serde_json::Value::Array(a) => Value::Array(a.into_iter().map(json_to_go).collect()),
        serde_json::Value::Object(m) => Value::Map(
            m.into_iter()
                .map(|(k, v)| (k, json_to_go(v)))
                .collect::<HashMap<_, _>>(),
        ),
    }
}

fn yaml_key(k: serde_yaml_ng::Value) -> String {
    match k {
        serde_yaml_ng::Value::String(s) => s,
        serde_yaml_ng::Value::Null => "null".to_owned(),
        serde_yaml_ng::Value::Bool(b) => b.to_string(),
        serde_yaml_ng::Value::Number(n) => n.to_string(),
        serde_yaml_ng::Value::Tagged(t) => yaml_key(t.value),
        other => serde_yaml_ng::to_string(&other)
            .unwrap_or_default()
            .trim_end()
            .to_owned(),
    }
}

fn yaml_to_go(v: serde_yaml_ng::Value) -> Value {
    match v {
        serde_yaml_ng::Value::Null => Value::Nil,
        serde_yaml_ng::Value::Bool(b) => Value::Bool(b),
        serde_yaml_ng::Value::Number(n) => {
            Value::Number(Number::float(n.as_f64().unwrap_or_default()))
        }
        serde_yaml_ng::Value::String(s) => Value::String(s),
        serde_yaml_ng::Value::Sequence(a) => Value::Array(a.into_iter().map(yaml_to_go).collect()),
        serde_yaml_ng::Value::Mapping(m) => Value::Map(
            m.into_iter()
                .map(|(k, v)| (yaml_key(k), yaml_to_go(v)))
                .collect::<HashMap<_, _>>(),
        ),
        serde_yaml_ng::Value::Tagged(t) => yaml_to_go(t.value),
    }
}

/// Checks the decoded document's kind like `json.Unmarshal` into `want`.
fn shape(v: Value, want: Want) -> Result<Value, String> {
    let got = match (&v, want) {
        (Value::Nil, Want::Map) => return Ok(Value::Map(HashMap::new())),
        (Value::Nil, Want::Array) => return Ok(Value::Array(Vec::new())),
        (Value::Map(_), Want::Map) | (Value::Array(_), Want::Array) => return Ok(v),
        (Value::Map(_), _) => "object",
        (Value::Array(_), _) => "array",
        (Value::String(_), _) => "string",
        (Value::Bool(_), _) => "bool",
        _ => "number",
    };
    Err(format!(
        "json: cannot unmarshal {got} into Go value of type {}",
        want.go_type()
    ))
}

fn decode_json(text: &str, want: Want) -> Result<Value, String> {
    if text.trim().is_empty() {
        return Err("unexpected end of JSON input".to_owned());
    }
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    shape(json_to_go(v), want)
}

fn decode_yaml(text: &str, want: Want) -> Result<Value, String> {
    use serde::Deserialize as _;
    let first = serde_yaml_ng::Deserializer::from_str(text).next();
    let v = match first {
        None => serde_yaml_ng::Value::Null,
        Some(doc) => serde_yaml_ng::Value::deserialize(doc)
            .map_err(|e| format!("error converting YAML to JSON: yaml: {e}"))?,
    };
    shape(yaml_to_go(v), want)
        .map_err(|e| format!("error unmarshaling JSON: while decoding JSON: {e}"))
}

fn wrap(result: Result<Value, String>, want: Want) -> Value {
    match (result, want) {
        (Ok(v), _) => v,
        (Err(e), Want::Map) => Value::Map(HashMap::from([("Error".to_owned(), Value::String(e))])),
        (Err(e), Want::Array) => Value::Array(vec![Value::String(e)]),
    }
}

pub(super) fn from_yaml(args: &[Value]) -> Result<Value, FuncError> {
    exactly("fromYaml", args, 1)?;
    let text = str_arg("fromYaml", args, 0)?;
    Ok(wrap(decode_yaml(text, Want::Map), Want::Map))
}

pub(super) fn from_yaml_array(args: &[Value]) -> Result<Value, FuncError> {
    exactly("fromYamlArray", args, 1)?;
    let text = str_arg("fromYamlArray", args, 0)?;
    Ok(wrap(decode_yaml(text, Want::Array), Want::Array))
}

pub(super) fn from_json(args: &[Value]) -> Result<Value, FuncError> {
    exactly("fromJson", args, 1)?;
    let text = str_arg("fromJson", args, 0)?;
    Ok(wrap(decode_json(text, Want::Map), Want::Map))
}

pub(super) fn from_json_array(args: &[Value]) -> Result<Value, FuncError> {
    exactly("fromJsonArray", args, 1)?;
    let text = str_arg("fromJsonArray", args, 0)?;
    Ok(wrap(decode_json(text, Want::Array), Want::Array))
}
