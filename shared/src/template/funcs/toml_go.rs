//! helm's `toToml`: `BurntSushi/toml`'s encoder (v1) on a template value.
//!
//! Layout as the Go encoder writes it: in every table the plain keys first,
//! then sub-tables and arrays of tables, each group sorted by key; nil values
//! skipped; bare keys where `[A-Za-z0-9_-]+` allows, else double-quoted;
//! sub-tables as `[a.b]` headers indented two spaces per level below the top,
//! a blank line before each top-level table and each `[[array]]` entry;
//! maps inside plain arrays as inline tables; floats in Go's `'f'` form with
//! `.0` added when whole. An encoder error gives its message as the result,
//! as helm does.

use std::fmt::Write as _;

use gtmpl_ng::{FuncError, NumberKind, Value};

use super::exactly;

const INDENT: &str = "  ";

fn is_nil(v: &Value) -> bool {
    matches!(v, Value::NoValue | Value::Nil)
}

fn is_table(v: &Value) -> bool {
    matches!(v, Value::Map(_) | Value::Object(_))
}

/// `isTableArray`: a non-empty array whose items are all tables.
fn is_table_array(v: &Value) -> Result<bool, String> {
    let Value::Array(items) = v else {
        return Ok(false);
    };
    if items.iter().any(is_nil) {
        return Err("toml: cannot encode array with nil element".to_owned());
    }
    Ok(!items.is_empty() && items.iter().all(is_table))
}

fn quote(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if u32::from(c) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn key_part(k: &str) -> String {
    if !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        k.to_owned()
    } else {
        let mut s = String::new();
        quote(&mut s, k);
        s
    }
}

fn key_path(key: &[&str]) -> String {
    key.iter()
        .map(|k| key_part(k))
        .collect::<Vec<_>>()
        .join(".")
}

struct Encoder {
    out: String,
}

impl Encoder {
    fn newline(&mut self) {
        if !self.out.is_empty() {
            self.out.push('\n');
        }
    }

    fn indent(&mut self, key: &[&str]) {
        for _ in 1..key.len() {
            self.out.push_str(INDENT);
        }
    }

    fn element(&mut self, v: &Value) -> Result<(), String> {
        match v {
            Value::NoValue | Value::Nil => {
                return Err("toml: cannot encode a nil value".to_owned());
            }
            Value::Function(_) => return Err("toml: unsupported type: func".to_owned()),
            Value::Bool(b) => self.out.push_str(if *b { "true" } else { "false" }),
            Value::String(s) => quote(&mut self.out, s),
            Value::Number(n) => match n.kind() {
                NumberKind::Unsigned(u) => {
                    let _ = write!(self.out, "{u}");
                }
                NumberKind::Signed(i) => {
                    let _ = write!(self.out, "{i}");
                }
                NumberKind::Float(f) if f.is_nan() => self.out.push_str("nan"),
                NumberKind::Float(f) if f.is_infinite() => {
                    self.out.push_str(if f > 0.0 { "inf" } else { "-inf" });
                }
                NumberKind::Float(f) => {
                    let s = format!("{f}");
                    self.out.push_str(&s);
                    if !s.contains('.') {
                        self.out.push_str(".0");
                    }
                }
            },
            Value::Array(items) => {
                self.out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        self.out.push_str(", ");
                    }
                    self.element(item)?;
                }
                self.out.push(']');
            }
            Value::Map(m) | Value::Object(m) => {
                let (direct, sub) = split_keys(m)?;
                self.out.push('{');
                let all: Vec<&String> = direct.iter().chain(sub.iter()).copied().collect();
                let live: Vec<&String> = all.into_iter().filter(|k| !is_nil(&m[*k])).collect();
                for (i, k) in live.iter().enumerate() {
                    if i > 0 {
                        self.out.push_str(", ");
                    }
                    self.out.push_str(&key_part(k));
                    self.out.push_str(" = ");
                    self.element(&m[*k])?;
                }
                self.out.push('}');
            }
        }
        Ok(())
    }

    fn encode(&mut self, key: &[&str], v: &Value) -> Result<(), String> {
        match v {
            Value::NoValue | Value::Nil => Ok(()),
            Value::Map(_) | Value::Object(_) => self.table(key, v),
            _ if is_table_array(v)? => self.table_array(key, v),
            _ => {
                if key.is_empty() {
                    return self.element(v);
                }
                self.indent(key);
                let last = key.last().copied().unwrap_or_default();
                self.out.push_str(&key_part(last));
                self.out.push_str(" = ");
                self.element(v)?;
                self.newline();
                Ok(())
            }
        }
    }

    fn table(&mut self, key: &[&str], v: &Value) -> Result<(), String> {
        if key.len() == 1 {
            self.newline();
        }
        if !key.is_empty() {
            self.indent(key);
            let _ = write!(self.out, "[{}]", key_path(key));
            self.newline();
        }
        self.body(key, v)
    }

    fn table_array(&mut self, key: &[&str], v: &Value) -> Result<(), String> {
        let Value::Array(items) = v else {
            return Ok(());
        };
        for item in items {
            self.newline();
            self.indent(key);
            let _ = write!(self.out, "[[{}]]", key_path(key));
            self.newline();
            self.body(key, item)?;
        }
        Ok(())
    }

    fn body(&mut self, key: &[&str], v: &Value) -> Result<(), String> {
        let (Value::Map(m) | Value::Object(m)) = v else {
            return Ok(());
        };
        let (direct, sub) = split_keys(m)?;
        for k in direct.into_iter().chain(sub) {
            let mut path = key.to_vec();
            path.push(k);
            self.encode(&path, &m[k])?;
        }
        Ok(())
    }
}

type Keys<'a> = (Vec<&'a String>, Vec<&'a String>);

/// Plain keys and table keys, each sorted.
fn split_keys(m: &std::collections::HashMap<String, Value>) -> Result<Keys<'_>, String> {
    let mut direct = Vec::new();
    let mut sub = Vec::new();
    for (k, v) in m {
        if is_table(v) || is_table_array(v)? {
            sub.push(k);
        } else {
            direct.push(k);
        }
    }
    direct.sort();
    sub.sort();
    Ok((direct, sub))
}

/// Encodes like `toml.NewEncoder(buf).Encode(v)`.
pub(super) fn encode(v: &Value) -> Result<String, String> {
    let mut enc = Encoder { out: String::new() };
    enc.encode(&[], v)?;
    Ok(enc.out)
}

pub(super) fn to_toml(args: &[Value]) -> Result<Value, FuncError> {
    exactly("toToml", args, 1)?;
    Ok(Value::String(encode(&args[0]).unwrap_or_else(|e| e)))
}
