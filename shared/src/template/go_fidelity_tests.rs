//! Regression tests for the places gtmpl-ng read templates differently from
//! Go's `text/template` (expected values from Go 1.26; the oracle test in
//! `shared/tests/template_go_oracle.rs` checks the same against Go itself).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use super::*;

fn data(env: &[(&str, &str)]) -> TemplateData {
    TemplateData::from_env(
        env.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<BTreeMap<_, _>>(),
    )
}

fn r(text: &str) -> Result<String, TemplateError> {
    render("t", text, &data(&[("k", "v")]))
}

#[test]
fn raw_strings_keep_backslashes() {
    assert_eq!(r(r"{{ `a\nb` }}|{{ `C:\dir\` }}").unwrap(), r"a\nb|C:\dir\");
    assert_eq!(r("{{ `a\r\nb` | len }}").unwrap(), "3");
}

#[test]
fn string_ending_in_escaped_backslash() {
    assert_eq!(r(r#"{{ "x\\" }}|{{ "\\\"" }}"#).unwrap(), r#"x\|\""#);
}

#[test]
fn all_strconv_escapes() {
    assert_eq!(
        r(r#"{{ "\a\v\101\x41\u0041\U00000041" | printf "%q" }}"#).unwrap(),
        r#""\a\vAAAA""#
    );
    assert_eq!(r(r#"{{ "\u00e9\303\251" }}"#).unwrap(), "éé");
}

#[test]
fn escaped_single_quote_in_double_quotes_is_a_parse_error() {
    for bad in [
        r#"{{ "\'" }}"#,
        r#"{{ "\q" }}"#,
        r#"{{ "\400" }}"#,
        r#"{{ '\"' }}"#,
    ] {
        assert!(matches!(r(bad), Err(TemplateError::Parse { .. })), "{bad}");
    }
}

#[test]
fn float_constants_are_float64() {
    assert_eq!(
        r(r#"{{ 1.0 }} {{ printf "%T" 1.0 }} {{ 1e3 }} {{ printf "%v" 1.5 }} {{ -0.0 }} {{ 0x1p4 }}"#)
            .unwrap(),
        "1 float64 1000 1.5 -0 16"
    );
    assert_eq!(
        r(r#"{{ 'a' }} {{ 0x1F }} {{ 1_000 }} {{ printf "%T" 'a' }}"#).unwrap(),
        "97 31 1000 int"
    );
    assert!(matches!(
        r("{{ eq 1.0 1 }}"),
        Err(TemplateError::Exec { .. })
    ));
}

#[test]
fn numbers_go_cannot_represent_are_errors() {
    assert!(matches!(
        r("{{ 18446744073709551615 }}"),
        Err(TemplateError::Exec { .. })
    ));
    assert!(matches!(r("{{ 08 }}"), Err(TemplateError::Parse { .. })));
    let complex = r("{{ 1i }}").unwrap_err().to_string();
    assert!(
        complex.contains("complex constant 1i is not supported"),
        "{complex}"
    );
}

#[test]
fn slice_cuts_bytes_like_go() {
    let d = data(&[]);
    assert_eq!(
        render_bytes("t", r#"{{ slice "héllo" 0 2 }}"#, &d).unwrap(),
        b"h\xc3"
    );
    assert_eq!(
        render_bytes("t", r#"[{{ "\xff" }}]"#, &d).unwrap(),
        b"[\xff]"
    );
    assert!(matches!(
        render("t", r#"{{ slice "héllo" 0 2 }}"#, &d),
        Err(TemplateError::NotUtf8 { .. })
    ));
    assert_eq!(
        render(
            "t",
            r#"{{ len (slice "héllo" 0 2) }} {{ slice "héllo" 0 2 | printf "%q" }}"#,
            &d
        )
        .unwrap(),
        r#"2 "h\xc3""#
    );
    // Two halves printed together are the character again.
    assert_eq!(
        render("t", r#"{{ slice "é" 0 1 }}{{ slice "é" 1 }}"#, &d).unwrap(),
        "é"
    );
}

#[test]
fn escapers_print_a_missing_value_as_no_value() {
    assert_eq!(
        r("{{ html .nope }}|{{ js .nope }}|{{ urlquery .nope }}").unwrap(),
        r"&lt;no value&gt;|\u003Cno value\u003E|%3Cno+value%3E"
    );
}

#[test]
fn index_of_a_missing_env_key_is_empty() {
    assert_eq!(
        r(r#"[{{ index . "nope" }}][{{ index . "k" }}]"#).unwrap(),
        "[][v]"
    );
    let with_values = data(&[]).with_values(serde_json::json!({"a": "b"}));
    assert_eq!(
        render(
            "t",
            r#"{{ index .Values "nope" }}|{{ index .Env "nope" }}|"#,
            &with_values
        )
        .unwrap(),
        "<no value>||"
    );
}

#[test]
fn else_with_chains() {
    assert_eq!(
        r("{{ with .nope }}a{{ else with .k }}{{ . }}{{ else }}c{{ end }}").unwrap(),
        "v"
    );
}

#[test]
fn reserved_code_points_are_refused() {
    assert!(matches!(
        r("\u{10FFAA}"),
        Err(TemplateError::Reserved { .. })
    ));
    let d = data(&[("k", "\u{10FF80}")]);
    assert!(matches!(
        render("t", "{{ .k }}", &d),
        Err(TemplateError::Reserved { .. })
    ));
}
