//! A templated Clusterfile (`{{ .Values.x }}`, sprig, env) rendered with
//! `--values` files and `--set a.b=c`, as `sealos apply` does.

use std::path::PathBuf;

use ferry_shared::template::{TemplateData, render as render_tmpl};
use serde_json::Value;

use super::CliError;

fn merge(dst: &mut Value, src: Value) {
    match (dst, src) {
        (Value::Object(d), Value::Object(s)) => {
            for (k, v) in s {
                match d.get_mut(&k) {
                    Some(e) => merge(e, v),
                    None => {
                        d.insert(k, v);
                    }
                }
            }
        }
        (d, s) => *d = s,
    }
}

pub fn render(text: &str, files: &[PathBuf], set: &[String]) -> Result<String, CliError> {
    let mut values = Value::Object(Default::default());
    for f in files {
        let t = std::fs::read_to_string(f)
            .map_err(|e| CliError::Usage(format!("--values {}: {e}", f.display())))?;
        let v: Value = serde_yaml_ng::from_str(&t)
            .map_err(|e| CliError::Usage(format!("--values {}: {e}", f.display())))?;
        merge(&mut values, v);
    }
    for s in set {
        let (path, val) = s
            .split_once('=')
            .ok_or_else(|| CliError::Usage(format!("--set `{s}` must be key.path=value")))?;
        let mut v = Value::String(val.to_string());
        for key in path.rsplit('.') {
            let mut m = serde_json::Map::new();
            m.insert(key.to_string(), v);
            v = Value::Object(m);
        }
        merge(&mut values, v);
    }
    let env = std::env::vars().collect();
    let data = TemplateData::from_env(env).with_values(values);
    render_tmpl("Clusterfile", text, &data)
        .map_err(|e| CliError::Usage(format!("Clusterfile template: {e}")))
}
