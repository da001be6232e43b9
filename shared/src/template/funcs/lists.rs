//! Logic, list and dict functions (sprig `defaults.go`, `list.go`, `dict.go`).

use std::collections::HashMap;

use gtmpl_ng::{FuncError, Value};

use super::{exactly, generic, is_empty, str_arg, strval};

/// `default DEFAULT GIVEN`: GIVEN unless it is empty (missing keys are empty).
pub(super) fn default(args: &[Value]) -> Result<Value, FuncError> {
    let Some((fallback, given)) = args.split_first() else {
        return Err(generic(
            "wrong number of args for default: want at least 1 got 0",
        ));
    };
    match given.first() {
        Some(v) if !is_empty(v) => Ok(v.clone()),
        _ => Ok(fallback.clone()),
    }
}

pub(super) fn empty(args: &[Value]) -> Result<Value, FuncError> {
    exactly("empty", args, 1)?;
    Ok(Value::Bool(args.first().is_none_or(is_empty)))
}

pub(super) fn coalesce(args: &[Value]) -> Result<Value, FuncError> {
    Ok(args
        .iter()
        .find(|v| !is_empty(v))
        .cloned()
        .unwrap_or(Value::Nil))
}

pub(super) fn ternary(args: &[Value]) -> Result<Value, FuncError> {
    exactly("ternary", args, 3)?;
    match args.get(2) {
        Some(Value::Bool(true)) => Ok(args[0].clone()),
        Some(Value::Bool(false)) => Ok(args[1].clone()),
        _ => Err(generic("error calling ternary: expected bool")),
    }
}

pub(super) fn list(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::Array(args.to_vec()))
}

pub(super) fn dict(args: &[Value]) -> Result<Value, FuncError> {
    let mut map = HashMap::new();
    for pair in args.chunks(2) {
        let key = strval(&pair[0]);
        let value = pair.get(1).cloned().unwrap_or(Value::String(String::new()));
        map.insert(key, value);
    }
    Ok(Value::Map(map))
}

/// sprig's `strslice`: a list's items (nil items dropped), else one item.
fn strslice(v: &Value) -> Vec<String> {
    match v {
        Value::Array(items) => items
            .iter()
            .filter(|i| !matches!(i, Value::NoValue | Value::Nil))
            .map(strval)
            .collect(),
        Value::NoValue | Value::Nil => Vec::new(),
        other => vec![strval(other)],
    }
}

pub(super) fn join(args: &[Value]) -> Result<Value, FuncError> {
    exactly("join", args, 2)?;
    let sep = str_arg("join", args, 0)?;
    Ok(Value::String(strslice(&args[1]).join(sep)))
}

fn go_split<'a>(input: &'a str, sep: &str) -> Vec<&'a str> {
    if sep.is_empty() {
        input
            .char_indices()
            .map(|(i, c)| &input[i..i + c.len_utf8()])
            .collect()
    } else {
        input.split(sep).collect()
    }
}

pub(super) fn split(args: &[Value]) -> Result<Value, FuncError> {
    exactly("split", args, 2)?;
    let sep = str_arg("split", args, 0)?;
    let input = str_arg("split", args, 1)?;
    let map = go_split(input, sep)
        .into_iter()
        .enumerate()
        .map(|(i, part)| (format!("_{i}"), Value::String(part.to_owned())))
        .collect();
    Ok(Value::Map(map))
}

pub(super) fn split_list(args: &[Value]) -> Result<Value, FuncError> {
    exactly("splitList", args, 2)?;
    let sep = str_arg("splitList", args, 0)?;
    let input = str_arg("splitList", args, 1)?;
    Ok(Value::Array(
        go_split(input, sep)
            .into_iter()
            .map(|p| Value::String(p.to_owned()))
            .collect(),
    ))
}

pub(super) fn cat(args: &[Value]) -> Result<Value, FuncError> {
    let parts: Vec<String> = args
        .iter()
        .filter(|a| !matches!(a, Value::NoValue | Value::Nil))
        .map(strval)
        .collect();
    Ok(Value::String(parts.join(" ")))
}

/// `hasKey MAP KEY`; a missing map is Go's nil map (false).
pub(super) fn has_key(args: &[Value]) -> Result<Value, FuncError> {
    exactly("hasKey", args, 2)?;
    let key = str_arg("hasKey", args, 1)?;
    match &args[0] {
        Value::Map(m) | Value::Object(m) => Ok(Value::Bool(m.contains_key(key))),
        Value::NoValue | Value::Nil => Ok(Value::Bool(false)),
        other => Err(generic(format!(
            "error calling hasKey: wrong type for value; expected map[string]interface {{}}; got {}",
            super::type_name(other)
        ))),
    }
}
