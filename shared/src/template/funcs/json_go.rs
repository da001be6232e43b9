//! `toJson`, `toRawJson`, `toPrettyJson`, `mustToJson` and friends, written
//! like Go's `encoding/json`: map keys sorted, `<`, `>`, `&`, U+2028 and
//! U+2029 escaped as `\u003c` etc. (not in `toRawJson`), floats in Go's
//! shortest form (`1e+21` and `1e-7` outside `[1e-6, 1e21)`), and
//! `MarshalIndent(v, "", "  ")` layout for the pretty form.

use std::fmt::Write as _;

use gtmpl_ng::{FuncError, NumberKind, Value};

use super::{exactly, generic};

/// Why a value cannot be written as JSON (Go's `UnsupportedValueError`).
#[derive(Debug, thiserror::Error)]
#[error("json: unsupported value: {0}")]
pub(super) struct Unsupported(String);

/// Go's JSON float form (`encoding/json` `floatEncoder`).
pub(super) fn go_json_float(f: f64) -> Result<String, Unsupported> {
    if !f.is_finite() {
        let go = if f.is_nan() {
            "NaN"
        } else if f > 0.0 {
            "+Inf"
        } else {
            "-Inf"
        };
        return Err(Unsupported(go.to_owned()));
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let e = format!("{f:e}");
        Ok(match e.split_once('e') {
            Some((mant, exp)) if !exp.starts_with('-') => format!("{mant}e+{exp}"),
            _ => e,
        })
    } else {
        // Rust's `Display` is the shortest round-trip form without exponent,
        // like Go's `FormatFloat(f, 'f', -1, 64)`.
        Ok(format!("{f}"))
    }
}

fn write_string(out: &mut String, s: &str, escape_html: bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' if escape_html => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// JSON layout: compact, or Go's `MarshalIndent` with `indent` per level.
struct Writer<'a> {
    out: String,
    escape_html: bool,
    indent: Option<&'a str>,
}

impl Writer<'_> {
    fn newline(&mut self, depth: usize) {
        if let Some(ind) = self.indent {
            self.out.push('\n');
            for _ in 0..depth {
                self.out.push_str(ind);
            }
        }
    }

    fn value(&mut self, v: &Value, depth: usize) -> Result<(), Unsupported> {
        match v {
            Value::NoValue | Value::Nil => self.out.push_str("null"),
            Value::Function(_) => return Err(Unsupported("func".to_owned())),
            Value::Bool(b) => self.out.push_str(if *b { "true" } else { "false" }),
            Value::String(s) => write_string(&mut self.out, s, self.escape_html),
            Value::Number(n) => match n.kind() {
                NumberKind::Unsigned(u) => {
                    let _ = write!(self.out, "{u}");
                }
                NumberKind::Signed(i) => {
                    let _ = write!(self.out, "{i}");
                }
                NumberKind::Float(f) => self.out.push_str(&go_json_float(f)?),
            },
            Value::Array(items) => {
                if items.is_empty() {
                    self.out.push_str("[]");
                    return Ok(());
                }
                self.out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        self.out.push(',');
                    }
                    self.newline(depth + 1);
                    self.value(item, depth + 1)?;
                }
                self.newline(depth);
                self.out.push(']');
            }
            Value::Object(m) | Value::Map(m) => {
                if m.is_empty() {
                    self.out.push_str("{}");
                    return Ok(());
                }
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                self.out.push('{');
                for (i, key) in keys.into_iter().enumerate() {
                    if i > 0 {
                        self.out.push(',');
                    }
                    self.newline(depth + 1);
                    write_string(&mut self.out, key, self.escape_html);
                    self.out.push(':');
                    if self.indent.is_some() {
                        self.out.push(' ');
                    }
                    self.value(&m[key], depth + 1)?;
                }
                self.newline(depth);
                self.out.push('}');
            }
        }
        Ok(())
    }
}

/// Go's `json.Marshal` (`escape_html`) or `MarshalIndent(v, "", indent)`.
pub(super) fn marshal(
    v: &Value,
    escape_html: bool,
    indent: Option<&str>,
) -> Result<String, Unsupported> {
    let mut w = Writer {
        out: String::new(),
        escape_html,
        indent,
    };
    w.value(v, 0)?;
    Ok(w.out)
}

/// `toJson` (helm's): errors are swallowed into an empty string.
pub(super) fn to_json(args: &[Value]) -> Result<Value, FuncError> {
    exactly("toJson", args, 1)?;
    Ok(Value::String(
        marshal(&args[0], true, None).unwrap_or_default(),
    ))
}

pub(super) fn to_raw_json(args: &[Value]) -> Result<Value, FuncError> {
    exactly("toRawJson", args, 1)?;
    Ok(Value::String(
        marshal(&args[0], false, None).unwrap_or_default(),
    ))
}

pub(super) fn to_pretty_json(args: &[Value]) -> Result<Value, FuncError> {
    exactly("toPrettyJson", args, 1)?;
    Ok(Value::String(
        marshal(&args[0], true, Some("  ")).unwrap_or_default(),
    ))
}

fn must(name: &str, args: &[Value], html: bool, indent: Option<&str>) -> Result<Value, FuncError> {
    exactly(name, args, 1)?;
    marshal(&args[0], html, indent)
        .map(Value::String)
        .map_err(|e| generic(format!("error calling {name}: {e}")))
}

pub(super) fn must_to_json(args: &[Value]) -> Result<Value, FuncError> {
    must("mustToJson", args, true, None)
}

pub(super) fn must_to_raw_json(args: &[Value]) -> Result<Value, FuncError> {
    must("mustToRawJson", args, false, None)
}

pub(super) fn must_to_pretty_json(args: &[Value]) -> Result<Value, FuncError> {
    must("mustToPrettyJson", args, true, Some("  "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_like_go() {
        let f = |x: f64| go_json_float(x).unwrap_or_default();
        assert_eq!(f(1.0), "1");
        assert_eq!(f(0.5), "0.5");
        assert_eq!(f(1e20), "100000000000000000000");
        assert_eq!(f(1e21), "1e+21");
        assert_eq!(f(1.5e-7), "1.5e-7");
        assert_eq!(f(0.000001), "0.000001");
        assert!(go_json_float(f64::NAN).is_err());
    }

    #[test]
    fn must_to_json_fails_on_nan() {
        let v = Value::Number(gtmpl_ng::Number::float(f64::NAN));
        let err = must_to_json(std::slice::from_ref(&v))
            .err()
            .map(|e| e.to_string());
        assert!(err.unwrap_or_default().contains("unsupported value: NaN"));
        assert_eq!(
            to_json(&[v]).ok().map(|v| v.to_string()),
            Some(String::new())
        );
    }
}
