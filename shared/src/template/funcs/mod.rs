//! The sprig/sealos functions registered on every template, with sprig's
//! argument order (the piped value comes last).

mod compare;
mod decode;
mod encode;
mod go_builtins;
mod json_go;
mod lists;
mod net;
mod semver_cmp;
mod strings;
mod toml_go;
mod yaml_emit;
mod yaml_resolve;

use gtmpl_ng::{Func, FuncError, Number, NumberKind, Value};

pub(super) use encode::json_to_value;
pub(super) use go_builtins::StringMapScope;

/// Go's built-ins where gtmpl-ng's differ from Go (they replace gtmpl-ng's),
/// and the functions constants are rewritten to.
pub(super) static GO_BUILTINS: &[(&str, Func)] = &[
    ("eq", compare::eq as Func),
    ("ne", compare::ne),
    ("lt", compare::lt),
    ("le", compare::le),
    ("gt", compare::gt),
    ("ge", compare::ge),
    ("len", go_builtins::len),
    ("index", go_builtins::index),
    ("slice", go_builtins::slice),
    ("html", go_builtins::html),
    ("js", go_builtins::js),
    ("urlquery", go_builtins::urlquery),
    ("printf", go_builtins::printf),
    ("not", go_builtins::not),
    (super::go_syntax::FLOAT_FUNC, go_builtins::float_constant),
    (super::go_syntax::FAIL_FUNC, go_builtins::fail),
];

pub(super) static FUNCS: &[(&str, Func)] = &[
    ("default", lists::default as Func),
    ("empty", lists::empty),
    ("coalesce", lists::coalesce),
    ("ternary", lists::ternary),
    ("list", lists::list),
    ("dict", lists::dict),
    ("hasKey", lists::has_key),
    ("join", lists::join),
    ("split", lists::split),
    ("splitList", lists::split_list),
    ("cat", lists::cat),
    ("quote", strings::quote),
    ("squote", strings::squote),
    ("upper", strings::upper),
    ("lower", strings::lower),
    ("trim", strings::trim),
    ("trimAll", strings::trim_all),
    ("trimPrefix", strings::trim_prefix),
    ("trimSuffix", strings::trim_suffix),
    ("contains", strings::contains),
    ("hasPrefix", strings::has_prefix),
    ("hasSuffix", strings::has_suffix),
    ("replace", strings::replace),
    ("repeat", strings::repeat),
    ("toString", strings::to_string),
    ("b64enc", strings::b64enc),
    ("b64dec", strings::b64dec),
    ("indent", strings::indent),
    ("nindent", strings::nindent),
    ("toYaml", encode::to_yaml),
    ("toJson", json_go::to_json),
    ("toRawJson", json_go::to_raw_json),
    ("toPrettyJson", json_go::to_pretty_json),
    ("mustToJson", json_go::must_to_json),
    ("mustToRawJson", json_go::must_to_raw_json),
    ("mustToPrettyJson", json_go::must_to_pretty_json),
    ("toToml", toml_go::to_toml),
    ("fromYaml", decode::from_yaml),
    ("fromYamlArray", decode::from_yaml_array),
    ("fromJson", decode::from_json),
    ("fromJsonArray", decode::from_json_array),
    ("semverCompare", semver_cmp::semver_compare),
    ("semver", semver_cmp::semver),
    ("ipNet", net::ip_net),
    ("ipAt", net::ip_at),
];

fn generic(msg: impl Into<String>) -> FuncError {
    FuncError::Generic(msg.into())
}

fn exactly(name: &str, args: &[Value], n: usize) -> Result<(), FuncError> {
    if args.len() == n {
        Ok(())
    } else {
        Err(generic(format!(
            "wrong number of args for {name}: want {n} got {}",
            args.len()
        )))
    }
}

/// A string parameter, as Go's reflection-based call checks it: a missing
/// value is `invalid value; expected string`, another type is a type error.
fn str_arg<'a>(name: &str, args: &'a [Value], i: usize) -> Result<&'a str, FuncError> {
    match args.get(i) {
        Some(Value::String(s)) => Ok(s),
        Some(Value::NoValue) | Some(Value::Nil) | None => Err(generic(format!(
            "error calling {name}: invalid value; expected string"
        ))),
        Some(other) => Err(generic(format!(
            "error calling {name}: wrong type for value; expected string; got {}",
            type_name(other)
        ))),
    }
}

fn int_arg(name: &str, args: &[Value], i: usize) -> Result<i64, FuncError> {
    match args.get(i) {
        Some(Value::Number(n)) => n
            .as_i64()
            .ok_or_else(|| generic(format!("error calling {name}: expected int"))),
        _ => Err(generic(format!(
            "error calling {name}: invalid value; expected int"
        ))),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::NoValue | Value::Nil => "<nil>",
        Value::Bool(_) => "bool",
        Value::String(_) => "string",
        Value::Object(_) | Value::Map(_) => "map[string]interface {}",
        Value::Array(_) => "[]interface {}",
        Value::Function(_) => "func",
        Value::Number(n) => match n.kind() {
            NumberKind::Float(_) => "float64",
            NumberKind::Signed(_) | NumberKind::Unsigned(_) => "int",
        },
    }
}

/// sprig's `strval`: strings as is, nil as empty, others as `%v`.
fn strval(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::NoValue | Value::Nil => String::new(),
        other => other.to_string(),
    }
}

/// sprig's `empty`: nil, "", false, 0, and empty collections.
fn is_empty(v: &Value) -> bool {
    match v {
        Value::NoValue | Value::Nil => true,
        Value::Bool(b) => !b,
        Value::String(s) => s.is_empty(),
        Value::Object(m) | Value::Map(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Function(_) => false,
        Value::Number(n) => number_is_zero(n),
    }
}

fn number_is_zero(n: &Number) -> bool {
    n.as_f64().is_some_and(|f| f == 0.0)
}
