#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use super::*;

fn r(text: &str, env: &[(&str, &str)]) -> Result<String, TemplateError> {
    let env: BTreeMap<String, String> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    render("t", text, &TemplateData::from_env(env))
}

#[test]
fn missing_key_prints_no_value() {
    assert_eq!(r("a={{ .nope }}", &[]).unwrap(), "a=<no value>");
}

#[test]
fn missing_key_into_string_function_is_an_error() {
    let err = r("{{ .nope | upper }}", &[]).unwrap_err();
    assert!(
        err.to_string().contains("invalid value; expected string"),
        "{err}"
    );
}

#[test]
fn missing_key_with_default_and_quote() {
    assert_eq!(
        r("{{ .nope | default \"x\" }}|{{ quote .nope }}|", &[]).unwrap(),
        "x||"
    );
}

#[test]
fn string_false_is_truthy() {
    assert_eq!(
        r("{{ if .a }}yes{{ end }}", &[("a", "false")]).unwrap(),
        "yes"
    );
}

#[test]
fn parse_error_names_template() {
    let err = r("{{ if }}", &[]).unwrap_err();
    assert!(matches!(err, TemplateError::Parse { .. }));
}

#[test]
fn values_and_env_keys() {
    let mut env = BTreeMap::new();
    env.insert("k".to_owned(), "v".to_owned());
    let data = TemplateData::from_env(env).with_values(serde_json::json!({"a": {"b": 3}}));
    let out = render("t", "{{ .Values.a.b }} {{ .Env.k }} {{ .k }}", &data).unwrap();
    assert_eq!(out, "3 v v");
}

#[test]
fn output_names() {
    assert_eq!(output_name("config.toml.tmpl"), Some("config.toml"));
    assert_eq!(output_name("a.tpl"), Some("a"));
    assert_eq!(output_name("a.yaml"), None);
    assert_eq!(output_name(".tmpl"), None);
}

#[test]
fn decode_functions_reject_missing_input_like_go() {
    for f in ["fromYaml", "fromYamlArray", "fromJson", "fromJsonArray"] {
        let err = r(&format!("{{{{ {f} .nope }}}}"), &[]).unwrap_err();
        assert!(
            err.to_string().contains(&format!(
                "error calling {f}: invalid value; expected string"
            )),
            "{err}"
        );
    }
}

#[test]
fn from_yaml_syntax_error_lands_in_error_key() {
    let out = r("{{ (fromYaml \"a: [\").Error }}", &[]).unwrap();
    assert!(
        out.starts_with("error converting YAML to JSON: yaml: "),
        "{out}"
    );
    let out = r("{{ index (fromJsonArray \"[1,\") 0 }}", &[]).unwrap();
    assert!(!out.is_empty(), "{out}");
}

#[test]
fn has_key_on_a_string_is_a_type_error() {
    let err = r("{{ hasKey \"x\" \"a\" }}", &[]).unwrap_err();
    assert!(
        err.to_string().contains(
            "error calling hasKey: wrong type for value; expected map[string]interface {}; got string"
        ),
        "{err}"
    );
}

#[test]
fn semver_of_garbage_is_an_error() {
    let err = r("{{ (semver \"x.y\").Major }}", &[]).unwrap_err();
    assert!(
        err.to_string()
            .contains("error calling semver: Invalid Semantic Version"),
        "{err}"
    );
}

#[test]
fn to_toml_reports_encoder_errors_as_text() {
    assert_eq!(
        r("{{ toToml (dict \"a\" (list 1 .nope)) }}", &[]).unwrap(),
        "toml: cannot encode array with nil element"
    );
    assert_eq!(r("{{ toToml \"s\" }}", &[]).unwrap(), "\"s\"");
}

#[test]
fn to_json_swallows_and_must_to_json_reports() {
    assert_eq!(r("{{ toJson .nope }}", &[]).unwrap(), "null");
    let err = r("{{ mustToJson }}", &[]).unwrap_err();
    assert!(
        err.to_string()
            .contains("wrong number of args for mustToJson: want 1 got 0"),
        "{err}"
    );
}
