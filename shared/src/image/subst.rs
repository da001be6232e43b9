//! `$var`, `${var}` and `$(var)` substitution in label values.
//!
//! sealos replaces the three spellings of every env key with plain string
//! replacement. ferry scans instead: a `$` followed by `{name}`, `(name)` or
//! an identifier (`[A-Za-z0-9_]`, longest run) is replaced when `name` is in
//! the env; anything else (unknown names, a lone `$`) is kept verbatim. For
//! the label values images use (`check.sh $registryData`) the result is the
//! same, and it does not depend on map order.

use std::collections::BTreeMap;

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Substitutes env references in `value`.
pub fn substitute(value: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        let (name, consumed) = match after.chars().next() {
            Some(open @ ('{' | '(')) => {
                let close = if open == '{' { '}' } else { ')' };
                match after[1..].find(close) {
                    Some(end) => (&after[1..1 + end], end + 2),
                    None => ("", 0),
                }
            }
            _ => {
                let len = after.find(|c: char| !is_ident(c)).unwrap_or(after.len());
                (&after[..len], len)
            }
        };
        match env.get(name) {
            Some(v) if !name.is_empty() => {
                out.push_str(v);
                rest = &after[consumed..];
            }
            _ => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn env() -> BTreeMap<String, String> {
        [
            ("registryData", "/var/lib/registry"),
            ("a", "1"),
            ("reg", "R"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    #[test]
    fn three_spellings() {
        let e = env();
        assert_eq!(
            substitute("check.sh $registryData", &e),
            "check.sh /var/lib/registry"
        );
        assert_eq!(
            substitute("x ${registryData}/y", &e),
            "x /var/lib/registry/y"
        );
        assert_eq!(substitute("$(a)$(a)", &e), "11");
    }

    #[test]
    fn longest_identifier_and_unknowns() {
        let e = env();
        assert_eq!(substitute("$registryDataX $reg", &e), "$registryDataX R");
        assert_eq!(substitute("$ ${ $() ${nope} $", &e), "$ ${ $() ${nope} $");
        assert_eq!(substitute("a$a.b", &e), "a1.b");
    }

    proptest! {
        #[test]
        fn without_dollar_is_identity(s in "[^$]*") {
            prop_assert_eq!(substitute(&s, &env()), s);
        }

        #[test]
        fn braces_always_resolve(v in "[a-z/ ]{0,12}") {
            let mut e = BTreeMap::new();
            e.insert("k".to_owned(), v.clone());
            prop_assert_eq!(substitute("<${k}>", &e), format!("<{v}>"));
        }
    }
}
