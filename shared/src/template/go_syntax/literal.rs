//! Go's `strconv.Unquote` and `strconv.UnquoteChar`, as `text/template`'s
//! parser applies them to string and character constants.

use super::SyntaxError;

/// One decoded character: its value and whether it is a rune to write as
/// UTF-8 (`multibyte`) or a single byte (`\x..`, octal, ASCII).
struct Unquoted {
    value: u32,
    multibyte: bool,
    len: usize,
}

/// `strconv.UnquoteChar` on the start of `s`, inside a literal quoted with
/// `quote`; `None` is Go's `ErrSyntax`.
fn unquote_char(s: &str, quote: u8) -> Option<Unquoted> {
    let bytes = s.as_bytes();
    let first = *bytes.first()?;
    if first == quote {
        return None;
    }
    if first >= 0x80 {
        let c = s.chars().next()?;
        return Some(Unquoted {
            value: u32::from(c),
            multibyte: true,
            len: c.len_utf8(),
        });
    }
    if first != b'\\' {
        return Some(Unquoted {
            value: u32::from(first),
            multibyte: false,
            len: 1,
        });
    }
    let escape = *bytes.get(1)?;
    let simple = |value: u8| {
        Some(Unquoted {
            value: u32::from(value),
            multibyte: false,
            len: 2,
        })
    };
    match escape {
        b'a' => simple(0x07),
        b'b' => simple(0x08),
        b'f' => simple(0x0c),
        b'n' => simple(b'\n'),
        b'r' => simple(b'\r'),
        b't' => simple(b'\t'),
        b'v' => simple(0x0b),
        b'\\' => simple(b'\\'),
        b'\'' | b'"' if escape == quote => simple(escape),
        b'x' | b'u' | b'U' => {
            let digits = match escape {
                b'x' => 2,
                b'u' => 4,
                _ => 8,
            };
            let hex = bytes.get(2..2 + digits)?;
            let mut value: u32 = 0;
            for b in hex {
                value = (value << 4) | char::from(*b).to_digit(16)?;
            }
            let multibyte = escape != b'x';
            if multibyte && char::from_u32(value).is_none() {
                return None;
            }
            Some(Unquoted {
                value,
                multibyte,
                len: 2 + digits,
            })
        }
        b'0'..=b'7' => {
            let mut value = u32::from(escape - b'0');
            for b in bytes.get(2..4)? {
                value = (value << 3) | char::from(*b).to_digit(8)?;
            }
            (value <= 255).then_some(Unquoted {
                value,
                multibyte: false,
                len: 4,
            })
        }
        _ => None,
    }
}

/// The bytes of a string constant token: `"..."` (escapes decoded) or
/// `` `...` `` (verbatim, carriage returns dropped).
pub(super) fn unquote_string(token: &str) -> Result<Vec<u8>, SyntaxError> {
    let invalid = || SyntaxError::InvalidString(token.to_owned());
    if let Some(raw) = token.strip_prefix('`') {
        let raw = raw.strip_suffix('`').ok_or_else(invalid)?;
        return Ok(raw.bytes().filter(|b| *b != b'\r').collect());
    }
    let mut rest = token
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .ok_or_else(invalid)?;
    let mut out = Vec::with_capacity(rest.len());
    while !rest.is_empty() {
        if rest.starts_with('\n') {
            return Err(invalid());
        }
        let c = unquote_char(rest, b'"').ok_or_else(invalid)?;
        match (c.multibyte, u8::try_from(c.value)) {
            (false, Ok(byte)) => out.push(byte),
            _ => {
                let c = char::from_u32(c.value).ok_or_else(invalid)?;
                out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
            }
        }
        rest = rest.get(c.len..).ok_or_else(invalid)?;
    }
    Ok(out)
}

/// The value of a character constant token (`'a'`, `'\n'`, `'\xff'`).
pub(super) fn unquote_char_constant(token: &str) -> Result<u32, SyntaxError> {
    let body = token
        .strip_prefix('\'')
        .ok_or_else(|| SyntaxError::InvalidString(token.to_owned()))?;
    let c =
        unquote_char(body, b'\'').ok_or_else(|| SyntaxError::InvalidString(token.to_owned()))?;
    if body.get(c.len..) != Some("'") {
        return Err(SyntaxError::MalformedChar(token.to_owned()));
    }
    Ok(c.value)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn interpreted_strings_follow_strconv() {
        let s = |t: &str| unquote_string(t).ok();
        assert_eq!(s(r#""x\\""#).unwrap(), b"x\\");
        assert_eq!(
            s(r#""\a\v\101\x41\u0041\U00000041""#).unwrap(),
            b"\x07\x0bAAAA"
        );
        assert_eq!(s(r#""\xff\377""#).unwrap(), b"\xff\xff");
        assert_eq!(s(r#""\u00e9""#).unwrap(), "é".as_bytes());
        for bad in [
            r#""\'""#,
            r#""\q""#,
            r#""\400""#,
            r#""\x4""#,
            r#""\uD800""#,
            r#""\""#,
        ] {
            assert_eq!(s(bad), None, "{bad}");
        }
    }

    #[test]
    fn raw_strings_are_verbatim() {
        assert_eq!(unquote_string("`a\\nb\\`").unwrap(), b"a\\nb\\");
        assert_eq!(unquote_string("`a\r\nb`").unwrap(), b"a\nb");
    }

    #[test]
    fn char_constants() {
        let c = |t: &str| unquote_char_constant(t).ok();
        assert_eq!(c("'a'"), Some(97));
        assert_eq!(c(r"'\''"), Some(39));
        assert_eq!(c("'\"'"), Some(34));
        assert_eq!(c(r"'\xff'"), Some(255));
        assert_eq!(c("'é'"), Some(233));
        assert_eq!(c(r"'\u00e9'"), Some(233));
        assert_eq!(c(r#"'\"'"#), None);
        assert_eq!(c("''"), None);
        assert_eq!(c("'ab'"), None);
    }
}
