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
//!
//! # Go fidelity
//! Checked byte for byte against Go's own `text/template` by
//! `shared/tests/template_go_oracle.rs` (a standard-library Go program over
//! the corpus in `shared/tests/go-oracle/corpus/`). Before gtmpl-ng parses a
//! template, `go_syntax` runs Go's lexer over its actions and rewrites the
//! constants to what Go makes of them: raw strings verbatim, interpreted
//! strings by `strconv.Unquote` (every escape Go accepts, `"\'"` refused),
//! character constants and integers (`0x1F`, `0o17`, `017`, `0b1`, `1_000`)
//! as `int`, floats (`1.0`, `1e3`, `.5`, `0x1p4`) as `float64` even when whole,
//! an integer beyond `int` an execution error, and `{{else with}}` (Go 1.23).
//! Go's built-ins that gtmpl-ng differs on are replaced: `eq`/`ne`/`lt`/
//! `le`/`gt`/`ge` with Go's kinds (an `int` and a `float64`, or a string and
//! a number, are an error), `not` (a float zero is false), `len`/`index`/
//! `slice` on a string's bytes, `index` of a missing key giving the map's
//! zero value (`""` for the env, Go's `map[string]string`), and `html`/`js`/
//! `urlquery` printing a missing value as `<no value>`.
//!
//! Go strings may hold bytes that are not UTF-8 (`"\xff"`, `slice` through a
//! character). ferry keeps each such byte as a reserved code point
//! (`U+10FF80 + byte - 0x80`; a template or data containing one is refused)
//! and writes it as the byte: [`render_bytes`] returns Go's exact bytes,
//! [`render`] fails with [`TemplateError::NotUtf8`] when the output is not
//! UTF-8. `printf` of such a value supports a plain `%s`, `%v`, `%q`, `%x`,
//! `%X` and refuses flags, width and precision.
//!
//! Known differences from Go's `text/template` (each pinned by a `known-*`
//! oracle case): a float zero is true in `if`/`with`/`and`/`or` (gtmpl-ng's
//! truth; only constants and `fromYaml`/`fromJson` numbers are floats); a
//! byte from `index` is an `int` for `%T` (Go: `uint8`); complex constants
//! (`1i`) are refused; `printf` with flags, width or precision on bytes that
//! are not UTF-8 is refused. Positions in gtmpl-ng's parse errors refer to
//! the rewritten text.

mod funcs;
mod go_bytes;
mod go_syntax;

use std::collections::{BTreeMap, HashMap};

use gtmpl_ng::{Context, Template, Value};

/// Why a template could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("template {name}: parse error: {message}")]
    Parse { name: String, message: String },
    #[error("template {name}: execution error: {message}")]
    Exec { name: String, message: String },
    #[error(
        "template {name}: {what} contains U+{code:X}, a code point ferry reserves for \
         bytes that are not UTF-8"
    )]
    Reserved {
        name: String,
        what: &'static str,
        code: u32,
    },
    #[error(
        "template {name}: the output is not valid UTF-8 (Go writes such bytes as they are; \
         render_bytes returns them)"
    )]
    NotUtf8 { name: String },
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

    /// The env as a value (Go's `map[string]string`), and the whole data.
    fn to_values(&self) -> (HashMap<String, Value>, Value) {
        let env: HashMap<String, Value> = self
            .env
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        let mut top = env.clone();
        if self.with_env_key {
            top.insert("Env".to_owned(), Value::Map(env.clone()));
        }
        if let Some(values) = &self.values {
            top.insert("Values".to_owned(), funcs::json_to_value(values));
        }
        (env, Value::Map(top))
    }

    /// The first reserved code point (see [`go_bytes`]) in the data.
    fn find_reserved(&self) -> Option<char> {
        fn in_json(v: &serde_json::Value) -> Option<char> {
            match v {
                serde_json::Value::String(s) => go_bytes::find_reserved(s),
                serde_json::Value::Array(a) => a.iter().find_map(in_json),
                serde_json::Value::Object(m) => m
                    .iter()
                    .find_map(|(k, v)| go_bytes::find_reserved(k).or_else(|| in_json(v))),
                _ => None,
            }
        }
        self.env
            .iter()
            .find_map(|(k, v)| go_bytes::find_reserved(k).or_else(|| go_bytes::find_reserved(v)))
            .or_else(|| self.values.as_ref().and_then(in_json))
    }
}

/// Renders `text` (named `name` in errors) with `data`.
///
/// Fails with [`TemplateError::NotUtf8`] where Go would write bytes that
/// are not UTF-8 (`{{ "\xff" }}`, `slice` through a character); use
/// [`render_bytes`] for those.
pub fn render(name: &str, text: &str, data: &TemplateData) -> Result<String, TemplateError> {
    let out = render_go_string(name, text, data)?;
    if !go_bytes::has_bytes(&out) {
        return Ok(out);
    }
    String::from_utf8(go_bytes::to_bytes(&out).into_owned()).map_err(|_| TemplateError::NotUtf8 {
        name: name.to_owned(),
    })
}

/// Renders `text` like [`render`], as the bytes Go's `text/template` writes.
pub fn render_bytes(name: &str, text: &str, data: &TemplateData) -> Result<Vec<u8>, TemplateError> {
    let out = render_go_string(name, text, data)?;
    Ok(go_bytes::to_bytes(&out).into_owned())
}

/// The rendered text, bytes that are not UTF-8 as byte chars.
fn render_go_string(name: &str, text: &str, data: &TemplateData) -> Result<String, TemplateError> {
    let reserved = |what, c: char| TemplateError::Reserved {
        name: name.to_owned(),
        what,
        code: u32::from(c),
    };
    if let Some(c) = go_bytes::find_reserved(text) {
        return Err(reserved("the template", c));
    }
    if let Some(c) = data.find_reserved() {
        return Err(reserved("the data", c));
    }
    let rewritten = go_syntax::rewrite(text).map_err(|e| TemplateError::Parse {
        name: name.to_owned(),
        message: format!("line {}: {}", e.line, e.error),
    })?;
    let mut tmpl = Template::with_name(name);
    tmpl.add_funcs(funcs::FUNCS);
    tmpl.add_funcs(funcs::GO_BUILTINS);
    tmpl.parse(rewritten).map_err(|e| TemplateError::Parse {
        name: name.to_owned(),
        message: e.to_string(),
    })?;
    let (env, value) = data.to_values();
    let _string_map = funcs::StringMapScope::enter(env);
    tmpl.render(&Context::from(value))
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
mod go_fidelity_tests;
#[cfg(test)]
mod tests;
