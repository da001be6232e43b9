//! String functions (sprig `strings.go`).

use base64::Engine as _;
use gtmpl_ng::{FuncError, Value};

use super::{exactly, generic, int_arg, str_arg, strval};

fn s(v: String) -> Result<Value, FuncError> {
    Ok(Value::String(v))
}

/// Go's `strconv.Quote` (what `%q` does with a string).
pub(super) fn go_quote(input: &str) -> String {
    let mut out = String::with_capacity(input.len() + 2);
    out.push('"');
    for c in input.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

pub(super) fn quote(args: &[Value]) -> Result<Value, FuncError> {
    let parts: Vec<String> = args
        .iter()
        .filter(|a| !matches!(a, Value::NoValue | Value::Nil))
        .map(|a| go_quote(&strval(a)))
        .collect();
    s(parts.join(" "))
}

pub(super) fn squote(args: &[Value]) -> Result<Value, FuncError> {
    let parts: Vec<String> = args
        .iter()
        .filter(|a| !matches!(a, Value::NoValue | Value::Nil))
        .map(|a| format!("'{}'", strval(a)))
        .collect();
    s(parts.join(" "))
}

pub(super) fn upper(args: &[Value]) -> Result<Value, FuncError> {
    exactly("upper", args, 1)?;
    s(str_arg("upper", args, 0)?.to_uppercase())
}

pub(super) fn lower(args: &[Value]) -> Result<Value, FuncError> {
    exactly("lower", args, 1)?;
    s(str_arg("lower", args, 0)?.to_lowercase())
}

pub(super) fn trim(args: &[Value]) -> Result<Value, FuncError> {
    exactly("trim", args, 1)?;
    s(str_arg("trim", args, 0)?.trim().to_owned())
}

pub(super) fn trim_all(args: &[Value]) -> Result<Value, FuncError> {
    exactly("trimAll", args, 2)?;
    let cutset: Vec<char> = str_arg("trimAll", args, 0)?.chars().collect();
    let input = str_arg("trimAll", args, 1)?;
    s(input.trim_matches(|c| cutset.contains(&c)).to_owned())
}

pub(super) fn trim_prefix(args: &[Value]) -> Result<Value, FuncError> {
    exactly("trimPrefix", args, 2)?;
    let prefix = str_arg("trimPrefix", args, 0)?;
    let input = str_arg("trimPrefix", args, 1)?;
    s(input.strip_prefix(prefix).unwrap_or(input).to_owned())
}

pub(super) fn trim_suffix(args: &[Value]) -> Result<Value, FuncError> {
    exactly("trimSuffix", args, 2)?;
    let suffix = str_arg("trimSuffix", args, 0)?;
    let input = str_arg("trimSuffix", args, 1)?;
    s(input.strip_suffix(suffix).unwrap_or(input).to_owned())
}

pub(super) fn contains(args: &[Value]) -> Result<Value, FuncError> {
    exactly("contains", args, 2)?;
    let needle = str_arg("contains", args, 0)?;
    Ok(Value::Bool(str_arg("contains", args, 1)?.contains(needle)))
}

pub(super) fn has_prefix(args: &[Value]) -> Result<Value, FuncError> {
    exactly("hasPrefix", args, 2)?;
    let prefix = str_arg("hasPrefix", args, 0)?;
    Ok(Value::Bool(
        str_arg("hasPrefix", args, 1)?.starts_with(prefix),
    ))
}

pub(super) fn has_suffix(args: &[Value]) -> Result<Value, FuncError> {
    exactly("hasSuffix", args, 2)?;
    let suffix = str_arg("hasSuffix", args, 0)?;
    Ok(Value::Bool(
        str_arg("hasSuffix", args, 1)?.ends_with(suffix),
    ))
}

pub(super) fn replace(args: &[Value]) -> Result<Value, FuncError> {
    exactly("replace", args, 3)?;
    let old = str_arg("replace", args, 0)?;
    let new = str_arg("replace", args, 1)?;
    let input = str_arg("replace", args, 2)?;
    if old.is_empty() {
        return Err(generic("replace: empty search string is not supported"));
    }
    s(input.replace(old, new))
}

pub(super) fn repeat(args: &[Value]) -> Result<Value, FuncError> {
    exactly("repeat", args, 2)?;
    let count = usize::try_from(int_arg("repeat", args, 0)?)
        .map_err(|_| generic("repeat: negative count"))?;
    let input = str_arg("repeat", args, 1)?;
    if count.saturating_mul(input.len()) > 1 << 20 {
        return Err(generic("repeat: result too large"));
    }
    s(input.repeat(count))
}

pub(super) fn to_string(args: &[Value]) -> Result<Value, FuncError> {
    exactly("toString", args, 1)?;
    s(args.first().map(strval).unwrap_or_default())
}

pub(super) fn b64enc(args: &[Value]) -> Result<Value, FuncError> {
    exactly("b64enc", args, 1)?;
    let input = str_arg("b64enc", args, 0)?;
    s(base64::engine::general_purpose::STANDARD.encode(input))
}

pub(super) fn b64dec(args: &[Value]) -> Result<Value, FuncError> {
    exactly("b64dec", args, 1)?;
    let input = str_arg("b64dec", args, 0)?;
    match base64::engine::general_purpose::STANDARD.decode(input) {
        Ok(bytes) => s(String::from_utf8_lossy(&bytes).into_owned()),
        Err(e) => s(e.to_string()),
    }
}

fn indent_by(name: &str, args: &[Value]) -> Result<String, FuncError> {
    exactly(name, args, 2)?;
    let n = usize::try_from(int_arg(name, args, 0)?)
        .map_err(|_| generic(format!("{name}: negative count")))?;
    let pad = " ".repeat(n.min(1024));
    let input = str_arg(name, args, 1)?;
    Ok(format!("{pad}{}", input.replace('\n', &format!("\n{pad}"))))
}

pub(super) fn indent(args: &[Value]) -> Result<Value, FuncError> {
    s(indent_by("indent", args)?)
}

pub(super) fn nindent(args: &[Value]) -> Result<Value, FuncError> {
    s(format!("\n{}", indent_by("nindent", args)?))
}
