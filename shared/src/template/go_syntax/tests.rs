#![allow(clippy::unwrap_used)]

use super::*;

fn rw(text: &str) -> String {
    rewrite(text).unwrap()
}

#[test]
fn constants_are_rewritten() {
    assert_eq!(rw("a{{ `x\\n` }}b"), "a{{  \"x\\\\n\" }}b");
    assert_eq!(rw(r#"{{ "x\\" }}"#), r#"{{  "x\x5c" }}"#);
    assert_eq!(
        rw("{{ 'a' 0x10 1.0 }}"),
        r#"{{  97  16  (_ferry_float "1.0") }}"#
    );
    assert_eq!(
        rw("{{ 18446744073709551615 }}"),
        r#"{{  (_ferry_fail "18446744073709551615 overflows int") }}"#
    );
}

#[test]
fn text_comments_and_trim_markers_are_kept() {
    let t = "x {{- /* \"a\\q\" */ -}} y {{- .a -}} z {{-3}}";
    assert_eq!(rw(t), "x {{- /* \"a\\q\" */ -}} y {{- .a -}} z {{ -3}}");
}

#[test]
fn else_with_becomes_nested_with() {
    assert_eq!(
        rw("{{with .a}}A{{else with .b}}B{{else with .c}}C{{else}}D{{- end -}}"),
        "{{with .a}}A{{else }}{{with .b}}B{{else }}{{with .c}}C{{else}}D{{- end}}{{end}}{{end -}}"
    );
    // Only inside a with, as Go reads it; elsewhere gtmpl-ng reports it.
    assert_eq!(
        rw("{{if .a}}{{else with .b}}{{end}}"),
        "{{if .a}}{{else with .b}}{{end}}"
    );
}

#[test]
fn errors_name_the_line() {
    let err = rewrite("a\n{{ \"\\'\" }}").unwrap_err();
    assert_eq!(err.line, 2);
    assert!(matches!(err.error, SyntaxError::InvalidString(_)));
    for bad in [
        "{{ \"abc }}",
        "{{ `abc }}",
        "{{ 'a }}",
        "{{ 1x }}",
        "{{ 1i }}",
        "{{/* x }}",
        "{{/* x */ 1}}",
        "{{ 1",
    ] {
        assert!(rewrite(bad).is_err(), "{bad}");
    }
}

#[test]
fn constants_as_commands_fail_like_go() {
    // gtmpl-ng would ignore the argument given to a parenthesized float.
    assert_eq!(
        rw("{{ 1.5 2 }}"),
        r#"{{  (_ferry_fail "can't give argument to non-function 1.5")  2 }}"#
    );
    assert_eq!(
        rw(r#"{{ printf "%v" 1.5 2 }}"#),
        r#"{{ printf  "%v"  (_ferry_float "1.5")  2 }}"#
    );
    for bad in [
        r#"{{ "x" | 1.5 }}"#,
        r#"{{ "x" | "y" }}"#,
        "{{ print 'a''b' }}",
        "{{ 1.5.x }}",
    ] {
        assert!(rewrite(bad).is_err(), "{bad}");
    }
}
