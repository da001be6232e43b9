//! Rendering of sealos `*.tmpl` / `*.tpl` files with Go `text/template`
//! semantics (engine: `gtmpl-ng`) plus the sprig functions sealos templates use.
//!
//! Pure: callers hand in the template text and the data, and get the rendered
//! text back. Writing the output beside the template (suffix removed) is the
//! caller's job.
//!
//! # Data
//! The data (`.`) is a map from string to string, as sealos passes it: the
//! merged env (image ENV < Clusterfile `spec.env` < CLI `-e`, host env per
//! host) plus the `SEALOS_SYS_*` built-ins when given. [`TemplateData`] can
//! also carry sealctl's `.Values` (a nested value) and `.Env` (the env map
//! again), which `sealctl render` adds on the nodes.
//!
//! # Missing keys
//! sealos parses every template through one `text/template` created with
//! `Option("missingkey=default")` and the sprig `TxtFuncMap` plus its own
//! extras (`pkg/template/template.go` and `funcmap.go`; `sealctl render` in
//! `cmd/sealctl/cmd/render.go` uses the same package). So missing keys behave
//! exactly as Go's default, and ferry does the same:
//! - `{{ .missing }}` prints `<no value>`;
//! - a missing key passed to a function whose parameter is an interface
//!   (`default`, `empty`, `quote`, `list`, `dict`, `toYaml`, ...) arrives as
//!   nil, so `{{ .missing | default "x" }}` is `x` and `{{ quote .missing }}`
//!   is empty;
//! - a missing key passed to a function that takes a string (`upper`, `trim`,
//!   `semverCompare`, ...) is an execution error, as Go reports
//!   `invalid value; expected string`;
//! - `{{ if .missing }}` is false.
//!
//! Note: values are strings, so `{{ if .disableApparmor }}` is true for the
//! string `"false"`; templates compare with `eq .x "true"`.
//!
//! # Functions
//! Go built-ins come with the engine (`eq`, `ne`, `lt`, `and`, `or`, `not`,
//! `len`, `index`, `printf`, `print`, `println`, ...). Registered here with
//! sprig's argument order and semantics:
//! - logic and lists: `default`, `empty`, `coalesce`, `ternary`, `list`,
//!   `dict`, `hasKey`, `join`, `split`, `splitList`, `cat`;
//! - strings: `quote`, `squote`, `upper`, `lower`, `trim`, `trimAll`,
//!   `trimPrefix`, `trimSuffix`, `contains`, `hasPrefix`, `hasSuffix`,
//!   `replace`, `repeat`, `toString`, `b64enc`, `b64dec`, `indent`,
//!   `nindent`;
//! - encoding (helm's versions, which sealos copies): `toYaml`, `fromYaml`,
//!   `fromYamlArray`, `toJson`, `toRawJson`, `toPrettyJson`, `mustToJson`,
//!   `mustToRawJson`, `mustToPrettyJson`, `fromJson`, `fromJsonArray`,
//!   `toToml`;
//! - versions: sealos' lenient `semverCompare` (an empty or invalid version
//!   is `false`, an invalid constraint an error) and `semver`;
//! - sealos: `ipNet`, `ipAt`.
//!
//! Encoding follows Go: `toJson` is `encoding/json` (keys sorted, `<`, `>`,
//! `&` escaped as `\u003c` etc.; `toRawJson` does not escape; `toPrettyJson`
//! indents two spaces); `toJson`/`toYaml` swallow errors into `""`, the
//! `must` forms fail. `fromYaml`/`fromJson` never fail: a bad document gives
//! `{"Error": message}` (`fromYamlArray`/`fromJsonArray`: `[message]`), and
//! every number they read is a float64, as in helm (`1000000` prints
//! `1e+06`). `toToml` is BurntSushi/toml's encoder (plain keys before
//! tables, both sorted; sub-tables indented two spaces); an encoder error is
//! returned as the text.
//!
//! Known differences from Go: `toYaml` follows go-yaml v2 (key order,
//! quoting, literal blocks) but does not fold plain strings longer than 80
//! columns as go-yaml does. `fromYaml` parses YAML 1.2 (`yes`/`on` stay
//! strings, go-yaml v2 reads booleans), and the text of syntax errors in the
//! `Error` key is not Go's (type-mismatch and empty-input messages are).
//! `semver` returns a map with Masterminds' accessors (`.Major`, `.Minor`,
//! `.Patch`, `.Prerelease`, `.Metadata`, `.Original`), so printing the whole
//! value does not give Go's `String()`. `semverCompare` maps Masterminds
//! constraints onto the `semver` crate (`^`, `~`, comparisons, `,`/space
//! AND, `||` OR; a leading `v` and missing minor/patch are accepted;
//! pre-release versions match only comparators that carry a pre-release, by
//! precedence, as Masterminds does); hyphen ranges are not supported.

mod funcs;

use std::collections::{BTreeMap, HashMap};

use gtmpl_ng::{Context, Template, Value};

/// Why a template could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("template {name}: parse error: {message}")]
    Parse { name: String, message: String },
    #[error("template {name}: execution error: {message}")]
    Exec { name: String, message: String },
}

/// The data a template sees as `.`.
#[derive(Debug, Clone, Default)]
pub struct TemplateData {
    env: BTreeMap<String, String>,
    values: Option<serde_json::Value>,
    with_env_key: bool,
}

impl TemplateData {
    /// Data made of the env map only (what the coordinator renders with).
    pub fn from_env(env: BTreeMap<String, String>) -> Self {
        Self {
            env,
            values: None,
            with_env_key: false,
        }
    }

    /// Adds sealctl's `.Values` (and `.Env`, a copy of the env map).
    pub fn with_values(mut self, values: serde_json::Value) -> Self {
        self.values = Some(values);
        self.with_env_key = true;
        self
    }

    fn to_value(&self) -> Value {
        let env: HashMap<String, Value> = self
            .env
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        let mut top = env.clone();
        if self.with_env_key {
            top.insert("Env".to_owned(), Value::Map(env));
        }
        if let Some(values) = &self.values {
            top.insert("Values".to_owned(), funcs::json_to_value(values));
        }
        Value::Map(top)
    }
}

/// Renders `text` (named `name` in errors) with `data`.
pub fn render(name: &str, text: &str, data: &TemplateData) -> Result<String, TemplateError> {
    let mut tmpl = Template::with_name(name);
    tmpl.add_funcs(funcs::FUNCS);
    tmpl.parse(text).map_err(|e| TemplateError::Parse {
        name: name.to_owned(),
        message: e.to_string(),
    })?;
    tmpl.render(&Context::from(data.to_value()))
        .map_err(|e| TemplateError::Exec {
            name: name.to_owned(),
            message: e.to_string(),
        })
}

/// Whether a file name is a template sealos renders (`*.tmpl`, `*.tpl`), and
/// the output name (suffix removed).
pub fn output_name(file_name: &str) -> Option<&str> {
    file_name
        .strip_suffix(".tmpl")
        .or_else(|| file_name.strip_suffix(".tpl"))
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests;
