//! Which container images a cluster image must carry in its `registry/`
//! (what `sealos build` collects before building):
//! - `images/shim/*`: one image per line; blank lines and `#` comments
//!   skipped;
//! - `manifests/*.yaml|*.yml`: every string `image:` value in any document;
//! - `images/skopeo/tar.txt`: `docker-archive:<file>@<name>` or
//!   `oci-archive:<file>@<name>` lines (archives relative to the context);
//! - `charts/<chart>/values.yaml` (no helm rendering): string `image:`
//!   values and `{registry?, repository, tag?}` maps (a missing tag is the
//!   chart's `appVersion`, else the map is skipped).
//!
//! The results are deduplicated and kept in first-seen order.

/// One archive line of `images/skopeo/tar.txt`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveSource {
    pub transport: ArchiveTransport,
    pub file: String,
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveTransport {
    DockerArchive,
    OciArchive,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CollectError {
    #[error(
        "{file} line {line}: `{text}`: expected docker-archive:<file.tar>@<image> or oci-archive:<file.tar>@<image>"
    )]
    BadArchiveLine {
        file: String,
        line: usize,
        text: String,
    },
    #[error("{file}: not valid YAML: {reason}")]
    Yaml { file: String, reason: String },
}

/// Adds `name` to `out` unless present.
pub fn push_unique(out: &mut Vec<String>, name: &str) {
    if !out.iter().any(|x| x == name) {
        out.push(name.to_string());
    }
}

/// Images of an `images/shim/*` list.
pub fn shim_list(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if !line.is_empty() && !line.starts_with('#') {
            push_unique(&mut out, line);
        }
    }
    out
}

/// `image:` string values anywhere in a (multi-document) YAML manifest.
pub fn manifest_images(file: &str, text: &str) -> Result<Vec<String>, CollectError> {
    let mut out = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(text) {
        let value =
            <serde_yaml_ng::Value as serde::Deserialize>::deserialize(doc).map_err(|e| {
                CollectError::Yaml {
                    file: file.to_string(),
                    reason: e.to_string(),
                }
            })?;
        walk(&value, &mut out, 0);
    }
    Ok(out)
}

fn walk(v: &serde_yaml_ng::Value, out: &mut Vec<String>, depth: usize) {
    if depth > 64 {
        return;
    }
    match v {
        serde_yaml_ng::Value::Mapping(m) => {
            for (k, val) in m {
                if k.as_str() == Some("image")
                    && let Some(s) = val.as_str()
                {
                    let s = s.trim();
                    if !s.is_empty() {
                        push_unique(out, s);
                    }
                }
                walk(val, out, depth + 1);
            }
        }
        serde_yaml_ng::Value::Sequence(s) => s.iter().for_each(|x| walk(x, out, depth + 1)),
        serde_yaml_ng::Value::Tagged(t) => walk(&t.value, out, depth + 1),
        _ => {}
    }
}

/// Images named by a chart's `values.yaml`; `app_version` is
/// `Chart.yaml`'s `appVersion`.
pub fn chart_values_images(
    file: &str,
    values: &str,
    app_version: Option<&str>,
) -> Result<Vec<String>, CollectError> {
    let value: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(values).map_err(|e| CollectError::Yaml {
            file: file.to_string(),
            reason: e.to_string(),
        })?;
    let mut out = Vec::new();
    walk_values(&value, app_version, &mut out, 0);
    Ok(out)
}

fn scalar(v: Option<&serde_yaml_ng::Value>) -> Option<String> {
    match v? {
        serde_yaml_ng::Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        serde_yaml_ng::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn walk_values(
    v: &serde_yaml_ng::Value,
    app_version: Option<&str>,
    out: &mut Vec<String>,
    depth: usize,
) {
    if depth > 64 {
        return;
    }
    match v {
        serde_yaml_ng::Value::Mapping(m) => {
            if let Some(repo) = scalar(m.get("repository")) {
                let tag = scalar(m.get("tag")).or_else(|| app_version.map(str::to_string));
                if let Some(tag) = tag {
                    let name = match scalar(m.get("registry")) {
                        Some(r) => format!("{r}/{repo}:{tag}"),
                        None => format!("{repo}:{tag}"),
                    };
                    push_unique(out, &name);
                }
            }
            for (k, val) in m {
                if k.as_str() == Some("image")
                    && let Some(s) = scalar(Some(val))
                {
                    push_unique(out, &s);
                }
                walk_values(val, app_version, out, depth + 1);
            }
        }
        serde_yaml_ng::Value::Sequence(s) => {
            s.iter()
                .for_each(|x| walk_values(x, app_version, out, depth + 1));
        }
        serde_yaml_ng::Value::Tagged(t) => walk_values(&t.value, app_version, out, depth + 1),
        _ => {}
    }
}

/// `appVersion` of a `Chart.yaml`.
pub fn chart_app_version(chart_yaml: &str) -> Option<String> {
    let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(chart_yaml).ok()?;
    scalar(v.get("appVersion"))
}

/// Lines of `images/skopeo/tar.txt`.
pub fn archive_list(file: &str, text: &str) -> Result<Vec<ArchiveSource>, CollectError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = || CollectError::BadArchiveLine {
            file: file.to_string(),
            line: i + 1,
            text: line.to_string(),
        };
        let (transport, rest) = if let Some(r) = line.strip_prefix("docker-archive:") {
            (ArchiveTransport::DockerArchive, r)
        } else if let Some(r) = line.strip_prefix("oci-archive:") {
            (ArchiveTransport::OciArchive, r)
        } else {
            return Err(bad());
        };
        let (path, name) = rest.split_once('@').ok_or_else(bad)?;
        if path.is_empty() || name.is_empty() {
            return Err(bad());
        }
        out.push(ArchiveSource {
            transport,
            file: path.to_string(),
            name: name.to_string(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shim_lists() {
        assert_eq!(
            shim_list("# c\nnginx:1\n\n  registry.k8s.io/pause:3.9 \nnginx:1\n"),
            ["nginx:1", "registry.k8s.io/pause:3.9"]
        );
    }

    #[test]
    fn images_from_manifests() {
        let y = "kind: Deployment\nspec:\n  template:\n    spec:\n      containers:\n      - name: a\n        image: nginx:1\n      initContainers:\n      - image: busybox\n---\nimage: {repository: x}\nitems: [{image: nginx:1}]\n";
        assert_eq!(
            manifest_images("m.yaml", y).unwrap(),
            ["nginx:1", "busybox"]
        );
        assert!(manifest_images("m.yaml", "a: [").is_err());
    }

    #[test]
    fn chart_values() {
        let v = "image:\n  registry: docker.io\n  repository: calico/node\nsidecar:\n  repository: busybox\n  tag: 1.36\nplain:\n  image: nginx:1\nnoTag:\n  repository: x/y\n";
        assert_eq!(
            chart_values_images("values.yaml", v, Some("v3.26.1")).unwrap(),
            [
                "docker.io/calico/node:v3.26.1",
                "busybox:1.36",
                "nginx:1",
                "x/y:v3.26.1"
            ]
        );
        assert_eq!(
            chart_values_images("values.yaml", "a:\n  repository: x/y\n", None).unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(
            chart_app_version("name: c\nappVersion: \"v1.2\"\n").as_deref(),
            Some("v1.2")
        );
        assert!(chart_values_images("values.yaml", "a: [", None).is_err());
    }

    #[test]
    fn archive_lines() {
        let l = archive_list(
            "tar.txt",
            "docker-archive:a.tar@nginx:1\noci-archive:b/c.tar@x/y:2\n",
        )
        .unwrap();
        assert_eq!(l[0].transport, ArchiveTransport::DockerArchive);
        assert_eq!(l[1].file, "b/c.tar");
        assert_eq!(l[1].name, "x/y:2");
        assert!(archive_list("t", "http://x").is_err());
        assert!(archive_list("t", "docker-archive:a.tar").is_err());
    }
}
