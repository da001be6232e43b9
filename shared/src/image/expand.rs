//! Expansion of `$(VAR)`, `${VAR}` and `$VAR` in image CMD/ENTRYPOINT
//! items, as sealos' guest phase does it before running them (its fork of
//! the Kubernetes container-command expansion,
//! `lifecycle/fork/golang/expansion`):
//!
//! - `$(name)` and `${name}` are replaced by the env value of `name`;
//! - `$name` (a run of letters, digits and `_`) likewise;
//! - `$$` is an escaped `$`;
//! - an unknown name is written back as `$(name)` whatever its spelling
//!   (so `${X}` and `$X` of an unknown X become `$(X)`, which the shell
//!   then runs as a command substitution — sealos' behaviour, kept);
//! - an unterminated `$(` or `${` is written as `$(` and scanning goes on
//!   after the opener (sealos writes `$(` for both);
//! - any other `$` is kept with the byte after it; a `$` at the end stays.
//!
//! Values are inserted verbatim (not expanded again). One divergence from
//! sealos: a name is read from ASCII letters, digits and `_` only; sealos
//! reads single bytes as Latin-1 letters and mangles UTF-8 after a `$`.

use std::collections::BTreeMap;

fn name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn lookup(out: &mut String, name: &str, env: &BTreeMap<String, String>) {
    match env.get(name) {
        Some(v) => out.push_str(v),
        None => {
            out.push_str("$(");
            out.push_str(name);
            out.push(')');
        }
    }
}

/// Expands env references in one CMD/ENTRYPOINT item.
pub fn expand(input: &str, env: &BTreeMap<String, String>) -> String {
    let b = input.as_bytes();
    let mut out = String::with_capacity(input.len());
    // Start of the not yet copied text; always on a char boundary because
    // every cut below is next to an ASCII byte.
    let mut copied = 0;
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'$' || i + 1 >= b.len() {
            i += 1;
            continue;
        }
        out.push_str(&input[copied..i]);
        let rest = &input[i + 1..];
        let consumed = match b[i + 1] {
            b'$' => {
                out.push('$');
                1
            }
            open @ (b'(' | b'{') => {
                let close = if open == b'(' { ')' } else { '}' };
                match rest[1..].find(close) {
                    Some(end) => {
                        lookup(&mut out, &rest[1..1 + end], env);
                        end + 2
                    }
                    None => {
                        out.push_str("$(");
                        1
                    }
                }
            }
            _ => {
                let len = rest.bytes().take_while(|c| name_byte(*c)).count();
                if len > 0 {
                    lookup(&mut out, &rest[..len], env);
                    len
                } else {
                    // `$` and the (whole) character after it, verbatim.
                    let ch = rest.chars().next().map_or(1, char::len_utf8);
                    out.push('$');
                    out.push_str(&rest[..ch]);
                    ch
                }
            }
        };
        i += 1 + consumed;
        copied = i;
    }
    out.push_str(&input[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn env() -> BTreeMap<String, String> {
        [
            ("NAME", "nginx"),
            ("NAMESPACE", "web"),
            ("CHARTS", "./charts/nginx"),
            ("HELM_OPTS", "--set a=1"),
            ("empty", ""),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn the_canonical_helm_cmd_of_labring_app_images() {
        let cmd =
            "helm upgrade -i $(NAME) $(CHARTS) -n $(NAMESPACE) --create-namespace $(HELM_OPTS)";
        assert_eq!(
            expand(cmd, &env()),
            "helm upgrade -i nginx ./charts/nginx -n web --create-namespace --set a=1"
        );
    }

    #[test]
    fn three_spellings_and_escapes() {
        let e = env();
        assert_eq!(expand("${NAME}-$NAME-$(NAME)", &e), "nginx-nginx-nginx");
        assert_eq!(expand("$$NAME $$(NAME)", &e), "$NAME $(NAME)");
        assert_eq!(expand("[$empty]", &e), "[]");
        assert_eq!(expand("$NAME.yaml", &e), "nginx.yaml");
        assert_eq!(expand("$NAMES", &e), "$(NAMES)", "longest name, unknown");
    }

    #[test]
    fn unknown_names_become_paren_references_as_in_sealos() {
        let e = env();
        assert_eq!(expand("$HOME", &e), "$(HOME)");
        assert_eq!(expand("${HOME}", &e), "$(HOME)");
        assert_eq!(expand("$(HOME)", &e), "$(HOME)");
    }

    #[test]
    fn operators_that_start_nothing() {
        let e = env();
        assert_eq!(expand("a $ b", &e), "a $ b");
        assert_eq!(expand("end$", &e), "end$");
        assert_eq!(expand("$-x $? $1", &e), "$-x $? $(1)");
        assert_eq!(expand("$(NAME", &e), "$(NAME");
        assert_eq!(expand("${NAME", &e), "$(NAME", "sealos writes `$(` here");
        assert_eq!(expand("$é$NAME", &e), "$énginx");
        assert_eq!(expand("é$(NAME)ü", &e), "énginxü");
    }

    #[test]
    fn values_are_not_expanded_again() {
        let e: BTreeMap<String, String> = [("A", "$(B)"), ("B", "b")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(expand("$(A)", &e), "$(B)");
    }

    proptest! {
        #[test]
        fn text_without_dollar_is_unchanged(s in "[^$]{0,64}") {
            prop_assert_eq!(expand(&s, &env()), s);
        }

        #[test]
        fn never_panics_and_keeps_dollar_free_parts(s in "\\PC{0,64}") {
            let _ = expand(&s, &env());
        }
    }
}
