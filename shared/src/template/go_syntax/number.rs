//! Number constants as `text/template` reads them: the parser's `newNumber`
//! (`strconv.ParseUint`/`ParseInt` with base 0, then `ParseFloat`) and the
//! executor's `idealConstant`, which decides the value a constant has where
//! nothing asks for a type: `int` unless the text looks like a float
//! (`.`, `e`, `p`; not hex integers nor character constants).

use super::SyntaxError;

/// The value of a number constant at execution.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Constant {
    /// An `int` (64-bit).
    Int(i64),
    /// A `float64`.
    Float(f64),
    /// A constant only a `uint64` holds: Go fails when it is evaluated
    /// ("overflows int").
    Overflow(String),
}

/// Reads a number token (as the lexer cut it) the way Go does.
pub(super) fn constant(text: &str) -> Result<Constant, SyntaxError> {
    if let Some(imaginary) = text.strip_suffix('i')
        && parse_float(imaginary).is_some()
    {
        return Err(SyntaxError::Complex(text.to_owned()));
    }
    let unsigned = parse_uint(text);
    let mut int = parse_int(text);
    let mut is_uint = unsigned.is_some() || int == Some(0);
    let float = match (int, unsigned) {
        (Some(i), _) => Some(i as f64),
        (None, Some(u)) => Some(u as f64),
        (None, None) => match parse_float(text) {
            Some(f) => {
                if !looks_like_float(text) {
                    return Err(SyntaxError::IntegerOverflow(text.to_owned()));
                }
                // -2^63 and 2^64 are exact in a float.
                if f.fract() == 0.0
                    && (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&f)
                {
                    int = Some(f as i64);
                }
                if f.fract() == 0.0 && (0.0..18_446_744_073_709_551_616.0).contains(&f) {
                    is_uint = true;
                }
                Some(f)
            }
            None => None,
        },
    };
    let hex_int = is_hex_int(text);
    match (float, int) {
        (Some(f), _) if !hex_int && !text.starts_with('\'') && looks_like_float(text) => {
            Ok(Constant::Float(f))
        }
        (_, Some(i)) => Ok(Constant::Int(i)),
        _ if is_uint => Ok(Constant::Overflow(text.to_owned())),
        _ => Err(SyntaxError::IllegalNumber(text.to_owned())),
    }
}

fn looks_like_float(text: &str) -> bool {
    text.contains(['.', 'e', 'E', 'p', 'P'])
}

fn is_hex_int(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() > 2 && b[0] == b'0' && (b[1] | 0x20) == b'x' && !text.contains(['p', 'P'])
}

/// Go's `underscoreOK`: `_` only between digits, or after a base prefix.
fn underscore_ok(text: &str) -> bool {
    let s = text.strip_prefix(['+', '-']).unwrap_or(text).as_bytes();
    // '^' start, '0' digit or prefix, '_' underscore, '!' other.
    let mut saw = b'^';
    let mut i = 0;
    let mut hex = false;
    if s.len() >= 2 && s[0] == b'0' && matches!(s[1] | 0x20, b'b' | b'o' | b'x') {
        i = 2;
        saw = b'0';
        hex = (s[1] | 0x20) == b'x';
    }
    for &c in &s[i..] {
        if c.is_ascii_digit() || (hex && c.is_ascii_hexdigit()) {
            saw = b'0';
        } else if c == b'_' {
            if saw != b'0' {
                return false;
            }
            saw = b'_';
        } else {
            if saw == b'_' {
                return false;
            }
            saw = b'!';
        }
    }
    saw != b'_'
}

/// `strconv.ParseUint(text, 0, 64)`.
fn parse_uint(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    if b.is_empty() {
        return None;
    }
    let (base, digits) = if b[0] == b'0' {
        match b.get(1).map(|c| c | 0x20) {
            Some(b'b') if b.len() >= 3 => (2, &b[2..]),
            Some(b'o') if b.len() >= 3 => (8, &b[2..]),
            Some(b'x') if b.len() >= 3 => (16, &b[2..]),
            _ => (8, &b[1..]),
        }
    } else {
        (10, b)
    };
    let mut n: u64 = 0;
    let mut underscores = false;
    for &c in digits {
        if c == b'_' {
            underscores = true;
            continue;
        }
        let d = char::from(c).to_digit(36).filter(|d| *d < base)?;
        n = n.checked_mul(u64::from(base))?.checked_add(u64::from(d))?;
    }
    (!underscores || underscore_ok(text)).then_some(n)
}

/// `strconv.ParseInt(text, 0, 64)`.
fn parse_int(text: &str) -> Option<i64> {
    let (negative, magnitude) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let n = i128::from(parse_uint(magnitude)?);
    i64::try_from(if negative { -n } else { n }).ok()
}

/// `strconv.ParseFloat(text, 64)` for what the lexer cuts as a number; `None`
/// for a syntax error or an overflow (Go's `ErrRange`).
fn parse_float(text: &str) -> Option<f64> {
    let (negative, body) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if text.contains('_') && !underscore_ok(text) {
        return None;
    }
    let body = body.replace('_', "");
    let magnitude = match body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        Some(hex) => hex_float(hex)?,
        None => {
            if !body
                .bytes()
                .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-'))
            {
                return None;
            }
            body.parse::<f64>().ok()?
        }
    };
    magnitude
        .is_finite()
        .then_some(if negative { -magnitude } else { magnitude })
}

/// A hexadecimal float body (after `0x`): hex digits with an optional point,
/// then a required binary exponent `p±N`; correctly rounded.
fn hex_float(body: &str) -> Option<f64> {
    let (mantissa, exponent) = body.split_once(['p', 'P'])?;
    let exponent = exponent.strip_prefix('+').unwrap_or(exponent);
    let (exp_negative, exp_digits) = match exponent.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, exponent),
    };
    if exp_digits.is_empty() || !exp_digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    // Past a few thousand the value is 0 or infinite either way.
    let exp_value: i64 = exp_digits.parse::<i64>().unwrap_or(i64::MAX).min(100_000);
    let mut exp2: i64 = if exp_negative { -exp_value } else { exp_value };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    let mut m: u128 = 0;
    let mut sticky = false;
    for (i, c) in int_part.chars().chain(frac_part.chars()).enumerate() {
        let d = c.to_digit(16)?;
        let fraction = i >= int_part.len();
        if m >> 120 == 0 {
            m = (m << 4) | u128::from(d);
            if fraction {
                exp2 -= 4;
            }
        } else {
            sticky |= d != 0;
            if !fraction {
                exp2 += 4;
            }
        }
    }
    Some(round_to_f64(m, sticky, exp2))
}

/// `m * 2^exp2` (plus less than one unit of `m` when `sticky`), rounded to
/// the nearest float64, ties to even; infinite on overflow.
fn round_to_f64(m: u128, sticky: bool, exp2: i64) -> f64 {
    if m == 0 {
        return 0.0;
    }
    let bits = i64::from(128 - m.leading_zeros());
    // Exponent of the last kept bit: 53 significant bits, or fewer when
    // the result is subnormal (its last bit is 2^-1074).
    let lsb = (bits + exp2 - 53).max(-1074);
    let shift = lsb - exp2;
    let mut kept: u128 = if shift <= 0 {
        m << (-shift)
    } else if shift >= 128 {
        0
    } else {
        let kept = m >> shift;
        let rest = m & ((1u128 << shift) - 1);
        let half = 1u128 << (shift - 1);
        let round_up = rest > half || (rest == half && (sticky || kept & 1 == 1));
        kept + u128::from(round_up)
    };
    let mut lsb = lsb;
    if kept >> 53 != 0 {
        kept >>= 1;
        lsb += 1;
    }
    if lsb + i64::from(128 - kept.leading_zeros()) > 1024 {
        return f64::INFINITY;
    }
    // `kept` < 2^53 is exact; scaling by powers of two is exact here.
    let mut value = kept as f64;
    let mut e = lsb;
    while e != 0 {
        let step = e.clamp(-1000, 1000);
        value *= f64::powi(2.0, step as i32);
        e -= step;
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(text: &str) -> Result<Constant, SyntaxError> {
        constant(text)
    }

    #[test]
    fn ints_and_floats_as_go_types_them() {
        assert_eq!(c("1.0").ok(), Some(Constant::Float(1.0)));
        assert_eq!(c("1e3").ok(), Some(Constant::Float(1000.0)));
        assert_eq!(c("0x1E").ok(), Some(Constant::Int(30)));
        assert_eq!(c("0x1p4").ok(), Some(Constant::Float(16.0)));
        assert_eq!(c("0x1.8p1").ok(), Some(Constant::Float(3.0)));
        assert_eq!(c("017").ok(), Some(Constant::Int(15)));
        assert_eq!(c("0o17").ok(), Some(Constant::Int(15)));
        assert_eq!(c("0b101").ok(), Some(Constant::Int(5)));
        assert_eq!(c("1_000").ok(), Some(Constant::Int(1000)));
        assert_eq!(c("-0").ok(), Some(Constant::Int(0)));
        assert_eq!(c(".5").ok(), Some(Constant::Float(0.5)));
        assert_eq!(
            c("-9223372036854775808").ok(),
            Some(Constant::Int(i64::MIN))
        );
        assert_eq!(
            c("18446744073709551615").ok(),
            Some(Constant::Overflow("18446744073709551615".into()))
        );
    }

    #[test]
    fn refused_like_go() {
        for bad in [
            "08",
            "1__0",
            "0x1.8",
            "1e400",
            "18446744073709551616",
            "1_",
            "-",
            "0x",
        ] {
            assert!(c(bad).is_err(), "{bad}");
        }
        assert!(matches!(c("1i"), Err(SyntaxError::Complex(_))));
    }

    #[test]
    fn hex_floats_round_correctly() {
        assert_eq!(hex_float("1p-1074"), Some(f64::from_bits(1)));
        assert_eq!(hex_float("1p-1075"), Some(0.0));
        assert_eq!(hex_float("1.8p-1074"), Some(f64::from_bits(2)));
        assert_eq!(hex_float("1.fffffffffffff8p0"), Some(2.0));
        assert_eq!(hex_float("1.fffffffffffffp1023"), Some(f64::MAX));
        assert_eq!(hex_float("1p1024"), Some(f64::INFINITY));
        assert_eq!(hex_float("0.1p4"), Some(1.0));
        assert_eq!(
            hex_float("1.0000000000000800000000000000001p0"),
            Some(1.0 + f64::EPSILON)
        );
    }
}
