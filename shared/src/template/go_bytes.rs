//! Go strings are byte strings; ferry's template values are Rust `String`s.
//!
//! Go can hold bytes that are not UTF-8 in a string: `"\xff"`, `"\377"`, or
//! `slice "é" 0 1` (which cuts the character in two). ferry keeps such a byte
//! as one *byte char*: the code point `U+10FF00 + byte` (bytes `0x80..=0xFF`,
//! so `U+10FF80..=U+10FFFF`, private use and noncharacters that no template
//! has a reason to contain). Valid UTF-8 stays as it is. The functions that
//! look at bytes (`len`, `index`, `slice`, the comparisons, `urlquery`, `js`)
//! read a byte char as its byte, and the rendered output writes it as the
//! byte, so the output bytes are Go's.
//!
//! A template or data value that contains one of these code points itself is
//! refused (see [`find_reserved`]): it would be written as a raw byte.

use std::borrow::Cow;

const BASE: u32 = 0x10_FF00;

/// The byte char standing for `byte` (`0x80..=0xFF`).
fn byte_char(byte: u8) -> char {
    char::from_u32(BASE + u32::from(byte)).unwrap_or(char::REPLACEMENT_CHARACTER)
}

/// The byte a char stands for, if it is a byte char.
pub(crate) fn as_byte(c: char) -> Option<u8> {
    let code = u32::from(c);
    if (BASE + 0x80..=BASE + 0xFF).contains(&code) {
        u8::try_from(code - BASE).ok()
    } else {
        None
    }
}

/// Whether `s` holds any byte char.
pub(crate) fn has_bytes(s: &str) -> bool {
    s.chars().any(|c| as_byte(c).is_some())
}

/// The first reserved code point in `s`, for the error that refuses it.
pub(crate) fn find_reserved(s: &str) -> Option<char> {
    s.chars().find(|c| as_byte(*c).is_some())
}

/// A Go byte string as a ferry string: valid UTF-8 as is, every other byte
/// as its byte char.
pub(crate) fn from_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        out.extend(chunk.invalid().iter().map(|b| byte_char(*b)));
    }
    out
}

/// The Go bytes of a ferry string.
pub(crate) fn to_bytes(s: &str) -> Cow<'_, [u8]> {
    if !has_bytes(s) {
        return Cow::Borrowed(s.as_bytes());
    }
    let mut out = Vec::with_capacity(s.len());
    for c in s.chars() {
        match as_byte(c) {
            Some(b) => out.push(b),
            None => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
        }
    }
    Cow::Owned(out)
}

/// Go's `len` of a string: its bytes.
pub(crate) fn byte_len(s: &str) -> usize {
    to_bytes(s).len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_invalid_utf8() {
        let bytes = b"a\xff\xc3\xa9\xe2\x82!";
        let s = from_bytes(bytes);
        assert_eq!(s.chars().count(), 6);
        assert_eq!(&*to_bytes(&s), bytes);
        assert_eq!(byte_len(&s), bytes.len());
    }

    #[test]
    fn valid_utf8_is_unchanged() {
        assert_eq!(from_bytes("héllo".as_bytes()), "héllo");
        assert!(matches!(to_bytes("héllo"), Cow::Borrowed(_)));
        assert_eq!(find_reserved("héllo"), None);
        assert_eq!(find_reserved("a\u{10FFAA}"), Some('\u{10FFAA}'));
    }
}
