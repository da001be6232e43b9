//! Per-host rendering, sealos' `sealctl render` on each host: after the
//! rootfs was rendered once with the cluster env and distributed, every
//! template is rendered again with the host's env (cluster env < the
//! Clusterfile host's `env` < `SEALOS_SYS_*` built-ins such as the run
//! mode); the outputs that differ from the distributed ones are written on
//! that host, each atomically (staged beside, then renamed over) with the
//! template's mode. Runs at the start of bootstrap (hooks read rendered
//! files); idempotent: the same env writes the same bytes.

use std::path::Path;

use ferry_shared::EventKind;
use ferry_shared::clusterfile::ResolvedHost;
use ferry_shared::pipeline::Step;
use ferry_shared::template::TemplateData;

use super::node::{self, Cmd, NodeRef};
use super::{Ctx, PipelineError};
use crate::image::render::{RenderError, Template, find_templates};

/// One file whose host rendering differs from the cluster rendering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFile {
    /// Relative to the rootfs (`etc/a.conf`).
    pub path: String,
    pub data: Vec<u8>,
    pub mode: u32,
}

/// What sealctl renders on a host with: the env, plus `.Env` and `.Values`.
pub fn host_data(env: std::collections::BTreeMap<String, String>) -> TemplateData {
    TemplateData::from_env(env).with_values(serde_json::Value::Object(Default::default()))
}

/// Renders every template with `data` and keeps the outputs that differ
/// from what `cluster_output` (the cluster-rendered tree) holds.
pub fn differing(
    templates: &[Template],
    data: &TemplateData,
    cluster_output: impl Fn(&str) -> Option<Vec<u8>>,
) -> Result<Vec<HostFile>, RenderError> {
    let mut out = Vec::new();
    for t in templates {
        let rendered = t.render(data)?.into_bytes();
        if cluster_output(&t.out).as_deref() != Some(rendered.as_slice()) {
            out.push(HostFile {
                path: t.out.clone(),
                data: rendered,
                mode: t.mode,
            });
        }
    }
    Ok(out)
}

/// The host's files that differ, from the mounted rootfs on the bastion.
pub fn host_files(root: &Path, data: &TemplateData) -> Result<Vec<HostFile>, RenderError> {
    let templates = find_templates(root)?;
    differing(&templates, data, |rel| std::fs::read(root.join(rel)).ok())
}

fn pack(files: &[HostFile]) -> std::io::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    for f in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(f.data.len() as u64);
        h.set_mode(f.mode);
        h.set_mtime(0);
        h.set_cksum();
        b.append_data(&mut h, &f.path, f.data.as_slice())?;
    }
    b.into_inner()
}

/// Renders the rootfs templates for `h` and writes the differing outputs
/// under the host's rootfs dir. Returns how many files were written.
pub async fn apply(ctx: &Ctx, h: &ResolvedHost, n: &NodeRef) -> Result<usize, PipelineError> {
    let step = Step::Distribute;
    let (root, data) = (ctx.mounts.rootfs.clone(), host_data(ctx.host_env(h)));
    let files = tokio::task::spawn_blocking(move || host_files(&root, &data))
        .await
        .map_err(|e| PipelineError::host(&n.host, step, e))?
        .map_err(|e| {
            PipelineError::host(
                &n.host,
                step,
                format!("rendering templates with this host's env: {e}; next: fix the template or the host's env in the Clusterfile"),
            )
        })?;
    if files.is_empty() {
        return Ok(0);
    }
    let tar = pack(&files)
        .map_err(|e| PipelineError::host(&n.host, step, format!("packing rendered files: {e}")))?;
    // Extract into a stage inside the rootfs (same filesystem), then rename
    // each file over its destination: readers see the old or the new file.
    const SCRIPT: &str = r#"set -e; root=$1; stage="$root/.ferry-render"; rm -rf "$stage"; mkdir -p "$stage"; tar -x --no-same-owner -C "$stage"; cd "$stage"; find . -type f -exec sh -c 'for f; do mkdir -p "$0/$(dirname "$f")"; mv -fT "$f" "$0/$f"; done' "$root" {} +; cd /; rm -rf "$stage""#;
    let names: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
    let cmd = Cmd::script(SCRIPT, &[&ctx.rootfs_dir()])
        .stdin(tar)
        .display(format!("write {} host-rendered files", files.len()));
    node::run(n, &ctx.tls, &ctx.rec, step, cmd).await?;
    ctx.rec.step_event(
        step,
        &n.host,
        EventKind::Progress,
        &format!("rendered for this host: {}", names.join(", ")),
    );
    Ok(files.len())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn t(name: &str, text: &str, mode: u32) -> Template {
        Template {
            name: format!("{name}.tmpl"),
            out: name.to_string(),
            text: text.to_string(),
            mode,
        }
    }

    fn env(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    #[test]
    fn only_outputs_that_differ_from_the_cluster_tree() {
        let templates = [
            t("etc/same.conf", "domain={{ .registryDomain }}\n", 0o644),
            t("etc/zone.conf", "zone={{ .zone }}\n", 0o600),
            t(
                "scripts/mode.sh",
                "echo {{ .SEALOS_SYS_RUN_MODE }}\n",
                0o755,
            ),
            t("etc/missing.conf", "x\n", 0o644),
        ];
        let cluster: BTreeMap<&str, &str> = [
            ("etc/same.conf", "domain=sealos.hub\n"),
            ("etc/zone.conf", "zone=a\n"),
            ("scripts/mode.sh", "echo <no value>\n"),
        ]
        .into();
        let data = host_data(env(&[
            ("registryDomain", "sealos.hub"),
            ("zone", "b"),
            ("SEALOS_SYS_RUN_MODE", "node,amd64"),
        ]));
        let got = differing(&templates, &data, |p| {
            cluster.get(p).map(|s| s.as_bytes().to_vec())
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let got: Vec<(&str, String, u32)> = got
            .iter()
            .map(|f| {
                (
                    f.path.as_str(),
                    String::from_utf8_lossy(&f.data).into_owned(),
                    f.mode,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("etc/zone.conf", "zone=b\n".to_string(), 0o600),
                ("scripts/mode.sh", "echo node,amd64\n".to_string(), 0o755),
                ("etc/missing.conf", "x\n".to_string(), 0o644),
            ]
        );
        // The cluster env itself changes nothing.
        let same = host_data(env(&[("registryDomain", "sealos.hub")]));
        let got = differing(&templates[..1], &same, |p| {
            cluster.get(p).map(|s| s.as_bytes().to_vec())
        })
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(got.is_empty());
    }

    #[test]
    fn host_files_reads_the_mounted_tree_and_packs_modes() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let root = dir.path();
        std::fs::create_dir_all(root.join("etc/sub")).unwrap_or_else(|e| panic!("{e}"));
        let tmpl = root.join("etc/sub/a.conf.tmpl");
        std::fs::write(&tmpl, "a={{ .a }}\n").unwrap_or_else(|e| panic!("{e}"));
        std::fs::set_permissions(&tmpl, std::os::unix::fs::PermissionsExt::from_mode(0o640))
            .unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(root.join("etc/sub/a.conf"), "a=cluster\n")
            .unwrap_or_else(|e| panic!("{e}"));
        let files =
            host_files(root, &host_data(env(&[("a", "host")]))).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].path, "etc/sub/a.conf");
        assert_eq!(files[0].data, b"a=host\n");
        let none = host_files(root, &host_data(env(&[("a", "cluster")])))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(none.is_empty());
        let tar = pack(&files).unwrap_or_else(|e| panic!("{e}"));
        let mut a = tar::Archive::new(tar.as_slice());
        let entries: Vec<(String, u32)> = a
            .entries()
            .unwrap_or_else(|e| panic!("{e}"))
            .map(|e| {
                let e = e.unwrap_or_else(|e| panic!("{e}"));
                (
                    e.path()
                        .unwrap_or_else(|e| panic!("{e}"))
                        .to_string_lossy()
                        .into_owned(),
                    e.header().mode().unwrap_or_else(|e| panic!("{e}")),
                )
            })
            .collect();
        assert_eq!(entries, vec![("etc/sub/a.conf".to_string(), 0o640)]);
    }
}
