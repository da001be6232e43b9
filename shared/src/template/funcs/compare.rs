//! Go's comparison functions (`eq`, `ne`, `lt`, `le`, `gt`, `ge`), with Go's
//! kinds: integers compare with integers whatever their sign, floats with
//! floats, strings (by bytes) with strings, bools only for equality; mixing
//! kinds is an error, except that a missing value (nil) is only unequal to
//! the rest.

use std::cmp::Ordering;

use gtmpl_ng::{FuncError, NumberKind, Value};

use super::{generic, type_name};
use crate::template::go_bytes;

/// A value as Go's `basicKind` sees it.
enum Basic<'a> {
    /// No value (a missing key, nil).
    Invalid,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(&'a str),
    /// Maps, lists, functions: not comparable.
    Other,
}

fn basic(v: &Value) -> Basic<'_> {
    match v {
        Value::NoValue | Value::Nil => Basic::Invalid,
        Value::Bool(b) => Basic::Bool(*b),
        Value::String(s) => Basic::Str(s),
        Value::Number(n) => match n.kind() {
            NumberKind::Signed(i) => Basic::Int(i128::from(i)),
            NumberKind::Unsigned(u) => Basic::Int(i128::from(u)),
            NumberKind::Float(f) => Basic::Float(f),
        },
        Value::Map(_) | Value::Object(_) | Value::Array(_) | Value::Function(_) => Basic::Other,
    }
}

fn incompatible(a: &Value, b: &Value) -> FuncError {
    generic(format!(
        "incompatible types for comparison: {} and {}",
        type_name(a),
        type_name(b)
    ))
}

fn str_cmp(a: &str, b: &str) -> Ordering {
    go_bytes::to_bytes(a).cmp(&go_bytes::to_bytes(b))
}

/// `a == b` as Go's `eq` decides it for one pair.
fn equal(a: &Value, b: &Value) -> Result<bool, FuncError> {
    Ok(match (basic(a), basic(b)) {
        (Basic::Bool(x), Basic::Bool(y)) => x == y,
        (Basic::Int(x), Basic::Int(y)) => x == y,
        (Basic::Float(x), Basic::Float(y)) => x == y,
        (Basic::Str(x), Basic::Str(y)) => str_cmp(x, y) == Ordering::Equal,
        (Basic::Invalid, Basic::Invalid) => true,
        (Basic::Invalid, _) | (_, Basic::Invalid) => false,
        (Basic::Other, Basic::Other) => {
            return Err(generic(format!("non-comparable type {}", type_name(b))));
        }
        _ => return Err(incompatible(a, b)),
    })
}

/// `a < b` as Go's `lt` decides it.
fn less(a: &Value, b: &Value) -> Result<bool, FuncError> {
    Ok(match (basic(a), basic(b)) {
        (Basic::Int(x), Basic::Int(y)) => x < y,
        (Basic::Float(x), Basic::Float(y)) => x < y,
        (Basic::Str(x), Basic::Str(y)) => str_cmp(x, y) == Ordering::Less,
        (Basic::Invalid | Basic::Other, _) | (_, Basic::Invalid | Basic::Other) => {
            return Err(generic("invalid type for comparison"));
        }
        (Basic::Bool(_), Basic::Bool(_)) => return Err(generic("invalid type for comparison")),
        _ => return Err(incompatible(a, b)),
    })
}

fn two<'a>(name: &str, args: &'a [Value]) -> Result<(&'a Value, &'a Value), FuncError> {
    match args {
        [a, b] => Ok((a, b)),
        _ => Err(generic(format!(
            "wrong number of args for {name}: want 2 got {}",
            args.len()
        ))),
    }
}

pub(super) fn eq(args: &[Value]) -> Result<Value, FuncError> {
    let (first, rest) = args
        .split_first()
        .ok_or_else(|| generic("wrong number of args for eq: want at least 1 got 0"))?;
    if rest.is_empty() {
        return Err(generic("missing argument for comparison"));
    }
    for other in rest {
        if equal(first, other)? {
            return Ok(Value::Bool(true));
        }
    }
    Ok(Value::Bool(false))
}

pub(super) fn ne(args: &[Value]) -> Result<Value, FuncError> {
    let (a, b) = two("ne", args)?;
    Ok(Value::Bool(!equal(a, b)?))
}

pub(super) fn lt(args: &[Value]) -> Result<Value, FuncError> {
    let (a, b) = two("lt", args)?;
    Ok(Value::Bool(less(a, b)?))
}

fn less_or_equal(a: &Value, b: &Value) -> Result<bool, FuncError> {
    Ok(less(a, b)? || equal(a, b)?)
}

pub(super) fn le(args: &[Value]) -> Result<Value, FuncError> {
    let (a, b) = two("le", args)?;
    Ok(Value::Bool(less_or_equal(a, b)?))
}

pub(super) fn gt(args: &[Value]) -> Result<Value, FuncError> {
    let (a, b) = two("gt", args)?;
    Ok(Value::Bool(!less_or_equal(a, b)?))
}

pub(super) fn ge(args: &[Value]) -> Result<Value, FuncError> {
    let (a, b) = two("ge", args)?;
    Ok(Value::Bool(!less(a, b)?))
}
