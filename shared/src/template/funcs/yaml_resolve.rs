//! go-yaml v2's view of plain strings: which ones resolve to another type
//! (and so are double-quoted), and its natural order of map keys.

use std::cmp::Ordering;

const NON_STRINGS: &[&str] = &[
    "", "~", "null", "Null", "NULL", "y", "Y", "yes", "Yes", "YES", "on", "On", "ON", "true",
    "True", "TRUE", "n", "N", "no", "No", "NO", "off", "Off", "OFF", "false", "False", "FALSE",
    ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf", "-.INF", ".nan", ".NaN",
    ".NAN", "<<",
];

/// Whether go-yaml v2 would read the plain string `s` as a non-string
/// (null, bool, int, float, timestamp, base-60 float, merge key).
pub(super) fn resolves_to_non_string(s: &str) -> bool {
    if NON_STRINGS.contains(&s) {
        return true;
    }
    if !s.starts_with(|c: char| c.is_ascii_digit() || matches!(c, '+' | '-' | '.')) {
        return false;
    }
    let plain: String = s.chars().filter(|c| *c != '_').collect();
    is_go_int(&plain) || is_yaml_float(&plain) || is_base60(s) || is_timestamp(s)
}

fn digits_in(s: &str, radix: u32) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_digit(radix))
}

/// `strconv.ParseInt(s, 0, 64)` / `ParseUint` acceptance (range ignored
/// beyond 128 bits).
fn is_go_int(s: &str) -> bool {
    let unsigned = s.strip_prefix(['+', '-']).unwrap_or(s);
    let lower = unsigned.to_ascii_lowercase();
    let ok = if let Some(h) = lower.strip_prefix("0x") {
        digits_in(h, 16)
    } else if let Some(o) = lower.strip_prefix("0o") {
        digits_in(o, 8)
    } else if let Some(b) = lower.strip_prefix("0b") {
        digits_in(b, 2)
    } else if lower.len() > 1 && lower.starts_with('0') {
        digits_in(&lower[1..], 8)
    } else {
        digits_in(&lower, 10)
    };
    ok && unsigned.len() <= 40
}

/// `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`
fn is_yaml_float(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (num, exp) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let num_ok = match num.split_once('.') {
        Some(("", frac)) => digits_in(frac, 10),
        Some((int, frac)) => digits_in(int, 10) && (frac.is_empty() || digits_in(frac, 10)),
        None => digits_in(num, 10),
    };
    let exp_ok = exp.is_none_or(|e| digits_in(e.strip_prefix(['+', '-']).unwrap_or(e), 10));
    num_ok && exp_ok
}

/// `^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$`
fn is_base60(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (main, frac) = match s.split_once('.') {
        Some((m, f)) => (m, Some(f)),
        None => (s, None),
    };
    if frac.is_some_and(|f| !f.chars().all(|c| c.is_ascii_digit() || c == '_')) {
        return false;
    }
    let mut parts = main.split(':');
    let head = parts.next().unwrap_or("");
    let head_ok = head.starts_with(|c: char| c.is_ascii_digit())
        && head.chars().all(|c| c.is_ascii_digit() || c == '_');
    let rest: Vec<&str> = parts.collect();
    head_ok
        && !rest.is_empty()
        && rest.iter().all(|p| {
            let b = p.as_bytes();
            match b.len() {
                1 => b[0].is_ascii_digit(),
                2 => (b'0'..=b'5').contains(&b[0]) && b[1].is_ascii_digit(),
                _ => false,
            }
        })
}

/// Dates `YYYY-M-D`, optionally followed by a `T`/`t`/space and a time.
fn is_timestamp(s: &str) -> bool {
    let date_len = s.find(['T', 't', ' ']).unwrap_or(s.len());
    let mut parts = s[..date_len].split('-');
    let (Some(y), Some(m), Some(d), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let date_ok = y.len() == 4
        && digits_in(y, 10)
        && (1..=2).contains(&m.len())
        && digits_in(m, 10)
        && (1..=2).contains(&d.len())
        && digits_in(d, 10);
    date_ok && (date_len == s.len() || s[date_len + 1..].contains(':'))
}

/// go-yaml v2's `keyList.Less` for string keys: letters after non-letters,
/// digit runs compared as numbers.
pub(super) fn natural_order(a: &str, b: &str) -> Ordering {
    let ar: Vec<char> = a.chars().collect();
    let br: Vec<char> = b.chars().collect();
    let less = |x: &[char], y: &[char]| -> bool {
        for i in 0..x.len().min(y.len()) {
            if x[i] == y[i] {
                continue;
            }
            let (xl, yl) = (x[i].is_alphabetic(), y[i].is_alphabetic());
            if xl && yl {
                return x[i] < y[i];
            }
            if xl || yl {
                return yl;
            }
            let (mut xn, mut yn) = (0u128, 0u128);
            if x[i] == '0' || y[i] == '0' {
                let mut j = i;
                while j > 0 && x[j - 1].is_ascii_digit() {
                    j -= 1;
                    if x[j] != '0' {
                        xn = 1;
                        yn = 1;
                        break;
                    }
                }
            }
            let mut xi = i;
            while xi < x.len() && x[xi].is_ascii_digit() {
                xn = xn
                    .saturating_mul(10)
                    .saturating_add(u128::from(x[xi] as u8 - b'0'));
                xi += 1;
            }
            let mut yi = i;
            while yi < y.len() && y[yi].is_ascii_digit() {
                yn = yn
                    .saturating_mul(10)
                    .saturating_add(u128::from(y[yi] as u8 - b'0'));
                yi += 1;
            }
            if xn != yn {
                return xn < yn;
            }
            if xi != yi {
                return xi < yi;
            }
            return x[i] < y[i];
        }
        x.len() < y.len()
    };
    if less(&ar, &br) {
        Ordering::Less
    } else if less(&br, &ar) {
        Ordering::Greater
    } else {
        Ordering::Equal
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_strings() {
        for s in [
            "",
            "5000",
            "true",
            "yes",
            "off",
            "~",
            "1.5",
            ".5",
            "1e3",
            "0x1f",
            "0o17",
            "017",
            "1_000",
            "1:20",
            "2024-01-02",
            "+.inf",
            "-1",
            "08",
        ] {
            assert!(resolves_to_non_string(s), "{s}");
        }
        for s in [
            "sealos.hub",
            "v1.27.7",
            "1.2.3",
            "10.0.0.2",
            "abc",
            "1a",
            "0x",
            "80:80:80a",
            "a: b",
            "2024-01",
        ] {
            assert!(!resolves_to_non_string(s), "{s}");
        }
    }

    #[test]
    fn key_order() {
        let mut keys = vec!["b", "a10", "a2", "a_b", "ab", "B", "a"];
        keys.sort_by(|a, b| natural_order(a, b));
        assert_eq!(keys, ["B", "a", "a_b", "a2", "a10", "ab", "b"]);
    }
}
