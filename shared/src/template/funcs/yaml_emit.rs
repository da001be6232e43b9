//! A YAML emitter for `toYaml` that follows Go's `sigs.k8s.io/yaml`
//! (go-yaml v2) on JSON-shaped values: block style, indent 2, sequences
//! not indented under their key, map keys in go-yaml's natural order,
//! strings that would read back as another type double-quoted, strings
//! plain YAML cannot carry single-quoted, multi-line strings as literal
//! blocks, floats in Go's `%g` shortest form. Not reproduced: go-yaml's
//! folding of plain strings past column 80.

use std::fmt::Write as _;

use serde_json::Value;

pub(super) fn emit(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(m) if !m.is_empty() => map(&mut out, m, 0),
        Value::Array(a) if !a.is_empty() => seq(&mut out, a, 0),
        other => {
            out.push_str(&scalar(other, 2));
            out.push('\n');
        }
    }
    out
}

fn pad(out: &mut String, indent: usize) {
    out.extend(std::iter::repeat_n(' ', indent));
}

fn map(out: &mut String, m: &serde_json::Map<String, Value>, indent: usize) {
    let mut keys: Vec<&String> = m.keys().collect();
    keys.sort_by(|a, b| super::yaml_resolve::natural_order(a, b));
    for (i, key) in keys.into_iter().enumerate() {
        if i > 0 {
            pad(out, indent);
        }
        out.push_str(&string(key, indent, true));
        out.push(':');
        child(out, &m[key.as_str()], indent, true);
    }
}

fn seq(out: &mut String, items: &[Value], indent: usize) {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            pad(out, indent);
        }
        out.push('-');
        child(out, item, indent, false);
    }
}

/// Writes a value after `key:` or `-`.
fn child(out: &mut String, value: &Value, indent: usize, in_map: bool) {
    match value {
        Value::Object(m) if !m.is_empty() => {
            if in_map {
                out.push('\n');
                pad(out, indent + 2);
            } else {
                out.push(' ');
            }
            map(out, m, indent + 2);
        }
        Value::Array(a) if !a.is_empty() => {
            let inner = if in_map { indent } else { indent + 2 };
            if in_map {
                out.push('\n');
                pad(out, inner);
            } else {
                out.push(' ');
            }
            seq(out, a, inner);
        }
        other => {
            out.push(' ');
            out.push_str(&scalar(other, indent + 2));
            out.push('\n');
        }
    }
}

fn scalar(value: &Value, indent: usize) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (_, Some(u), _) => u.to_string(),
            (_, _, Some(f)) => go_float(f),
            _ => n.to_string(),
        },
        Value::String(s) => string(s, indent, false),
        Value::Object(_) => "{}".to_owned(),
        Value::Array(_) => "[]".to_owned(),
    }
}

/// Go's `strconv.FormatFloat(f, 'g', -1, 64)`.
fn go_float(f: f64) -> String {
    if f.is_nan() {
        return ".nan".to_owned();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+.inf" } else { "-.inf" }.to_owned();
    }
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..6).contains(&exp) {
        return format!("{f}");
    }
    format!(
        "{mantissa}e{}{:02}",
        if exp < 0 { '-' } else { '+' },
        exp.abs()
    )
}

fn string(s: &str, indent: usize, key: bool) -> String {
    if s.contains('\n') {
        return if !key && block_allowed(s) {
            literal(s, indent)
        } else {
            double_quoted(s)
        };
    }
    if special(s) || super::yaml_resolve::resolves_to_non_string(s) {
        return double_quoted(s);
    }
    if plain_allowed(s) {
        return s.to_owned();
    }
    format!("'{}'", s.replace('\'', "''"))
}

fn printable(c: char) -> bool {
    matches!(c, '\n' | '\u{20}'..='\u{7e}' | '\u{85}' | '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..)
        && c != '\u{feff}'
}

fn special(s: &str) -> bool {
    s.chars().any(|c| !printable(c))
}

/// libyaml: no block scalar with a space before a break, a trailing space
/// or special characters.
fn block_allowed(s: &str) -> bool {
    !special(s) && !s.contains(" \n") && !s.ends_with(' ')
}

fn literal(s: &str, indent: usize) -> String {
    let chomp = if !s.ends_with('\n') {
        "-"
    } else if s.len() == 1 || s[..s.len() - 1].ends_with('\n') {
        "+"
    } else {
        ""
    };
    let hint = if s.starts_with(' ') { "2" } else { "" };
    let body = s.strip_suffix('\n').unwrap_or(s);
    let mut out = format!("|{hint}{chomp}");
    for line in body.split('\n') {
        out.push('\n');
        if !line.is_empty() {
            out.extend(std::iter::repeat_n(' ', indent));
            out.push_str(line);
        }
    }
    out
}

/// libyaml's analysis for plain scalars in block context.
fn plain_allowed(s: &str) -> bool {
    if s.is_empty() || s.starts_with("---") || s.starts_with("...") {
        return false;
    }
    if s.starts_with([' ', '\t']) || s.ends_with([' ', '\t']) {
        return false;
    }
    let chars: Vec<char> = s.chars().collect();
    let blank_at = |i: usize| chars.get(i).is_none_or(|c| matches!(c, ' ' | '\t' | '\n'));
    for (i, c) in chars.iter().enumerate() {
        let followed_by_blank = blank_at(i + 1);
        let indicator = if i == 0 {
            match c {
                '#' | ',' | '[' | ']' | '{' | '}' | '&' | '*' | '!' | '|' | '>' | '\'' | '"'
                | '%' | '@' | '`' => true,
                '?' | ':' | '-' => followed_by_blank,
                _ => false,
            }
        } else {
            match c {
                ':' => followed_by_blank,
                '#' => matches!(chars[i - 1], ' ' | '\t'),
                _ => false,
            }
        };
        if indicator {
            return false;
        }
    }
    true
}

fn double_quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{b}' => out.push_str("\\v"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            '\u{1b}' => out.push_str("\\e"),
            '\u{85}' => out.push_str("\\N"),
            '\u{a0}' => out.push_str("\\_"),
            '\u{2028}' => out.push_str("\\L"),
            '\u{2029}' => out.push_str("\\P"),
            c if !printable(c) => {
                let n = c as u32;
                let _ = if n <= 0xff {
                    write!(out, "\\x{n:02X}")
                } else if n <= 0xffff {
                    write!(out, "\\u{n:04X}")
                } else {
                    write!(out, "\\U{n:08X}")
                };
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn go_yaml_layout_and_quoting() {
        let v = json!({
            "port": "5000", "b": "", "t": "true", "colon": "a: b", "host": "sealos.hub:5000",
            "hash": "#x", "list": ["a", {"k": "v", "j": 1}, ["x"]], "empty": {}, "none": null,
            "multi": "l1\nl2\n", "strip": "l1\nl2", "f": 1.5, "big": 1e6, "nested": {"in": {"deep": "x"}},
            "dash": "-x", "tab": "a\tb"
        });
        let expected = "b: \"\"\nbig: 1e+06\ncolon: 'a: b'\ndash: -x\nempty: {}\nf: 1.5\nhash: '#x'\nhost: sealos.hub:5000\nlist:\n- a\n- j: 1\n  k: v\n- - x\nmulti: |\n  l1\n  l2\nnested:\n  in:\n    deep: x\nnone: null\nport: \"5000\"\nstrip: |-\n  l1\n  l2\nt: \"true\"\ntab: \"a\\tb\"\n";
        assert_eq!(emit(&v), expected);
    }

    #[test]
    fn top_level_values() {
        assert_eq!(emit(&json!("x")), "x\n");
        assert_eq!(emit(&json!([])), "[]\n");
        assert_eq!(emit(&json!(["a", "b"])), "- a\n- b\n");
        assert_eq!(emit(&json!("a\nb")), "|-\n  a\n  b\n");
        assert_eq!(emit(&json!({"k": "a\n\n"})), "k: |+\n  a\n\n");
    }
}
