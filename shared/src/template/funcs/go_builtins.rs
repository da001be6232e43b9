//! Go's built-in template functions where gtmpl-ng's differ from Go:
//! `len`, `index` and `slice` work on a string's bytes, `html`, `js` and
//! `urlquery` print a missing value as `<no value>` (Go's `evalArgs`),
//! `index` of a missing key gives the map's zero value, and `printf` refuses
//! what it cannot print byte for byte. Also the two functions constants are
//! rewritten to ([`crate::template::go_syntax`]).

use std::cell::RefCell;
use std::collections::HashMap;

use gtmpl_ng::{FuncError, Number, NumberKind, Value, funcs as gtmpl_funcs};

use super::{generic, type_name};
use crate::template::go_bytes;

thread_local! {
    /// The maps rendered as Go `map[string]string` (the env), for the
    /// template being rendered on this thread.
    static STRING_MAPS: RefCell<Vec<HashMap<String, Value>>> = const { RefCell::new(Vec::new()) };
}

/// While alive, `index` of a missing key in a map equal to this one gives
/// `""`, the zero value of Go's `map[string]string`, not nil.
pub(crate) struct StringMapScope(());

impl StringMapScope {
    pub(crate) fn enter(map: HashMap<String, Value>) -> Self {
        STRING_MAPS.with(|maps| maps.borrow_mut().push(map));
        Self(())
    }
}

impl Drop for StringMapScope {
    fn drop(&mut self) {
        STRING_MAPS.with(|maps| maps.borrow_mut().pop());
    }
}

fn is_string_map(map: &HashMap<String, Value>) -> bool {
    STRING_MAPS.with(|maps| maps.borrow().iter().any(|m| m == map))
}

fn is_nil(v: &Value) -> bool {
    matches!(v, Value::NoValue | Value::Nil)
}

/// Go's `indexArg`: an integer in `0..=cap`.
fn index_arg(v: &Value, cap: usize) -> Result<usize, FuncError> {
    let x = match v {
        Value::Number(n) => match n.kind() {
            NumberKind::Signed(i) => i128::from(i),
            NumberKind::Unsigned(u) => i128::from(u),
            NumberKind::Float(_) => {
                return Err(generic("cannot index slice/array with type float64"));
            }
        },
        Value::NoValue | Value::Nil => return Err(generic("cannot index slice/array with nil")),
        other => {
            return Err(generic(format!(
                "cannot index slice/array with type {}",
                type_name(other)
            )));
        }
    };
    usize::try_from(x)
        .ok()
        .filter(|x| *x <= cap)
        .ok_or_else(|| generic(format!("index out of range: {x}")))
}

pub(super) fn len(args: &[Value]) -> Result<Value, FuncError> {
    match args {
        [Value::String(s)] => Ok(Value::from(go_bytes::byte_len(s) as u64)),
        _ => gtmpl_funcs::len(args),
    }
}

/// The item `index` or `slice` (`name`) works on, and the rest.
fn item_and_rest<'a>(name: &str, args: &'a [Value]) -> Result<(&'a Value, &'a [Value]), FuncError> {
    match args.split_first() {
        None => Err(generic(format!(
            "wrong number of args for {name}: want at least 1 got 0"
        ))),
        Some((item, _)) if is_nil(item) => Err(generic(format!("{name} of untyped nil"))),
        Some(split) => Ok(split),
    }
}

pub(super) fn index(args: &[Value]) -> Result<Value, FuncError> {
    let (item, keys) = item_and_rest("index", args)?;
    let mut item = item.clone();
    for key in keys {
        item = match &item {
            Value::String(s) => {
                let bytes = go_bytes::to_bytes(s);
                let byte = bytes.get(index_arg(key, bytes.len())?);
                Value::from(u64::from(
                    *byte.ok_or_else(|| generic("reflect: string index out of range"))?,
                ))
            }
            Value::Array(a) => a
                .get(index_arg(key, a.len())?)
                .cloned()
                .ok_or_else(|| generic("reflect: slice index out of range"))?,
            Value::Map(m) | Value::Object(m) => match key {
                Value::String(k) => match m.get(k) {
                    Some(v) => v.clone(),
                    None if is_string_map(m) => Value::String(String::new()),
                    None => Value::NoValue,
                },
                v if is_nil(v) => return Err(generic("value is nil; should be of type string")),
                v => {
                    return Err(generic(format!(
                        "value has type {}; should be string",
                        type_name(v)
                    )));
                }
            },
            v if is_nil(v) => return Err(generic("index of nil pointer")),
            other => {
                return Err(generic(format!(
                    "can't index item of type {}",
                    type_name(other)
                )));
            }
        };
    }
    Ok(item)
}

pub(super) fn slice(args: &[Value]) -> Result<Value, FuncError> {
    let (item, indexes) = item_and_rest("slice", args)?;
    if indexes.len() > 3 {
        return Err(generic(format!(
            "too many slice indexes: {}",
            indexes.len()
        )));
    }
    let len = match item {
        Value::String(_) if indexes.len() == 3 => {
            return Err(generic("cannot 3-index slice a string"));
        }
        Value::String(s) => go_bytes::byte_len(s),
        Value::Array(a) => a.len(),
        other => {
            return Err(generic(format!(
                "can't slice item of type {}",
                type_name(other)
            )));
        }
    };
    let mut bounds = [0, len, len];
    for (bound, index) in bounds.iter_mut().zip(indexes) {
        *bound = index_arg(index, len)?;
    }
    for pair in bounds[..indexes.len().max(2)].windows(2) {
        if pair[0] > pair[1] {
            return Err(generic(format!(
                "invalid slice index: {} > {}",
                pair[0], pair[1]
            )));
        }
    }
    let (start, end) = (bounds[0], bounds[1]);
    Ok(match item {
        Value::String(s) => Value::String(go_bytes::from_bytes(&go_bytes::to_bytes(s)[start..end])),
        Value::Array(a) => Value::Array(a[start..end].to_vec()),
        _ => return Err(generic("slice: unreachable item")),
    })
}

/// Go's `evalArgs` then `escape`: the arguments joined like `print`, nil as
/// `<no value>`; runs of text go through gtmpl-ng's escaper, bytes that are
/// not UTF-8 through `byte`.
fn escape(
    args: &[Value],
    escape_text: fn(&[Value]) -> Result<Value, FuncError>,
    byte: fn(u8, &mut String),
) -> Result<Value, FuncError> {
    let printable: Vec<Value> = args
        .iter()
        .map(|v| match v {
            Value::NoValue | Value::Nil => Value::String("<no value>".to_owned()),
            v => v.clone(),
        })
        .collect();
    let joined = gtmpl_funcs::print(&printable)?.to_string();
    if !go_bytes::has_bytes(&joined) {
        return escape_text(&[Value::String(joined)]);
    }
    let joined = go_bytes::from_bytes(&go_bytes::to_bytes(&joined));
    let mut out = String::with_capacity(joined.len());
    let mut run = String::new();
    for c in joined.chars() {
        match go_bytes::as_byte(c) {
            Some(b) => {
                if !run.is_empty() {
                    out.push_str(
                        &escape_text(&[Value::String(std::mem::take(&mut run))])?.to_string(),
                    );
                }
                byte(b, &mut out);
            }
            None => run.push(c),
        }
    }
    if !run.is_empty() {
        out.push_str(&escape_text(&[Value::String(run)])?.to_string());
    }
    Ok(Value::String(out))
}

/// A byte that is not UTF-8 passes `html` and `js` unchanged, as in Go.
fn keep_byte(b: u8, out: &mut String) {
    out.push_str(&go_bytes::from_bytes(&[b]));
}

fn percent_byte(b: u8, out: &mut String) {
    out.push_str(&format!("%{b:02X}"));
}

pub(super) fn html(args: &[Value]) -> Result<Value, FuncError> {
    escape(args, gtmpl_funcs::html, keep_byte)
}

pub(super) fn js(args: &[Value]) -> Result<Value, FuncError> {
    escape(args, gtmpl_funcs::js, keep_byte)
}

pub(super) fn urlquery(args: &[Value]) -> Result<Value, FuncError> {
    escape(args, gtmpl_funcs::urlquery, percent_byte)
}

fn holds_bytes(v: &Value) -> bool {
    match v {
        Value::String(s) => go_bytes::has_bytes(s),
        Value::Array(a) => a.iter().any(holds_bytes),
        Value::Map(m) | Value::Object(m) => m
            .iter()
            .any(|(k, v)| go_bytes::has_bytes(k) || holds_bytes(v)),
        _ => false,
    }
}

/// gtmpl-ng's `printf`, with Go's bytes for values that hold bytes that are
/// not UTF-8: a plain `%s` or `%v` copies them, a plain `%q`, `%x` or `%X` of
/// such a string is formatted here; any other verb, flag, width or
/// precision meeting such a value is refused, not printed wrong.
pub(super) fn printf(args: &[Value]) -> Result<Value, FuncError> {
    match args.split_first() {
        Some((Value::String(format), values)) if values.iter().any(holds_bytes) => {
            let mut call = vec![Value::Nil];
            let format = bytes_as_text(format, values, &mut call)?;
            call[0] = Value::String(format);
            gtmpl_funcs::printf(&call)
        }
        _ => gtmpl_funcs::printf(args),
    }
}

/// The format for gtmpl-ng, pushing the values (some formatted here) after
/// `call[0]`.
fn bytes_as_text(
    format: &str,
    values: &[Value],
    call: &mut Vec<Value>,
) -> Result<String, FuncError> {
    let refuse = |spec: &str| {
        generic(format!(
            "printf {spec} of a value with bytes that are not UTF-8 is not supported \
             (a plain %s, %v, %q, %x or %X is)"
        ))
    };
    let mut out = String::with_capacity(format.len());
    let mut rest = format;
    let mut values = values.iter();
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        // Flags, width and precision, then the verb: any other character.
        let body = &rest[at + 1..];
        let Some(verb_at) = body.find(|c: char| !"+-# 0123456789.*[]".contains(c)) else {
            out.push_str(&rest[at..]);
            rest = "";
            break;
        };
        let verb_len = body[verb_at..].chars().next().map_or(1, char::len_utf8);
        let spec_len = 1 + verb_at + verb_len;
        let spec = &rest[at..at + spec_len];
        rest = &rest[at + spec_len..];
        if spec.contains(['*', '[']) {
            return Err(refuse(spec));
        }
        if spec.ends_with('%') {
            out.push_str(spec);
            continue;
        }
        let Some(value) = values.next() else {
            out.push_str(spec);
            continue;
        };
        match (spec, value) {
            (_, v) if !holds_bytes(v) => {
                out.push_str(spec);
                call.push(v.clone());
            }
            ("%s" | "%v", v) => {
                out.push_str(spec);
                call.push(v.clone());
            }
            ("%q" | "%x" | "%X", Value::String(s)) => {
                out.push_str("%s");
                call.push(Value::String(match spec {
                    "%q" => go_quote(s)?,
                    "%x" => hex::encode(go_bytes::to_bytes(s)),
                    _ => hex::encode_upper(go_bytes::to_bytes(s)),
                }));
            }
            _ => return Err(refuse(spec)),
        }
    }
    out.push_str(rest);
    call.extend(values.cloned());
    Ok(out)
}

/// Go's `strconv.Quote` of a string holding bytes that are not UTF-8: text
/// as gtmpl-ng's `%q` writes it, each such byte as `\xHH`.
fn go_quote(s: &str) -> Result<String, FuncError> {
    let quote_text = |text: &str| -> Result<String, FuncError> {
        let quoted = gtmpl_funcs::printf(&[Value::from("%q"), Value::from(text)])?.to_string();
        quoted
            .strip_prefix('"')
            .and_then(|q| q.strip_suffix('"'))
            .map(str::to_owned)
            .ok_or_else(|| generic(format!("printf %q gave {quoted}")))
    };
    let canonical = go_bytes::from_bytes(&go_bytes::to_bytes(s));
    let mut out = String::from("\"");
    let mut run = String::new();
    for c in canonical.chars() {
        match go_bytes::as_byte(c) {
            Some(b) => {
                if !run.is_empty() {
                    out.push_str(&quote_text(&std::mem::take(&mut run))?);
                }
                out.push_str(&format!("\\x{b:02x}"));
            }
            None => run.push(c),
        }
    }
    if !run.is_empty() {
        out.push_str(&quote_text(&run)?);
    }
    out.push('"');
    Ok(out)
}

/// Go's `not`: the negation of Go's truth (a float zero is false).
pub(super) fn not(args: &[Value]) -> Result<Value, FuncError> {
    match args {
        [Value::Number(n)] => Ok(Value::Bool(match n.kind() {
            NumberKind::Float(f) => f == 0.0,
            NumberKind::Signed(i) => i == 0,
            NumberKind::Unsigned(u) => u == 0,
        })),
        _ => gtmpl_funcs::not(args),
    }
}

/// A float constant (rewritten `1.0`, `1e3`, ...): always a float64.
pub(super) fn float_constant(args: &[Value]) -> Result<Value, FuncError> {
    match args {
        [Value::String(text)] => text
            .parse::<f64>()
            .map(|f| Value::Number(Number::float(f)))
            .map_err(|e| generic(format!("float constant {text}: {e}"))),
        _ => Err(generic("float constant: want one string")),
    }
}

/// A constant Go fails on when evaluating it: fails with the message.
pub(super) fn fail(args: &[Value]) -> Result<Value, FuncError> {
    let message = args.first().map(Value::to_string).unwrap_or_default();
    Err(generic(message))
}
