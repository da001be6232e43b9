#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Rendering a mounted image's templates beside themselves.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};

use ferry_coordinator::image::render::{RenderError, render_image_templates};
use ferry_shared::template::TemplateData;

fn data() -> TemplateData {
    let env: BTreeMap<String, String> =
        [("registryDomain", "sealos.hub"), ("registryPort", "5000")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
    TemplateData::from_env(env)
}

#[test]
fn renders_etc_scripts_manifests_only() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for d in ["etc/sub", "scripts", "manifests", "charts"] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    fs::write(
        root.join("etc/hosts.toml.tmpl"),
        "server = \"http://{{ .registryDomain }}:{{ .registryPort }}\"\n",
    )
    .unwrap();
    fs::write(root.join("etc/sub/a.conf.tpl"), "{{ .registryPort }}").unwrap();
    fs::write(root.join("scripts/init.sh.tmpl"), "echo {{ .missing }}\n").unwrap();
    fs::set_permissions(
        root.join("scripts/init.sh.tmpl"),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    fs::write(root.join("manifests/plain.yaml"), "{{ not rendered }}").unwrap();
    fs::write(root.join("charts/values.yaml.tmpl"), "{{ .registryPort }}").unwrap();
    let written = render_image_templates(root, &data()).unwrap();
    assert_eq!(written.len(), 3);
    assert_eq!(
        fs::read_to_string(root.join("etc/hosts.toml")).unwrap(),
        "server = \"http://sealos.hub:5000\"\n"
    );
    assert_eq!(
        fs::read_to_string(root.join("etc/sub/a.conf")).unwrap(),
        "5000"
    );
    assert_eq!(
        fs::read_to_string(root.join("scripts/init.sh")).unwrap(),
        "echo <no value>\n"
    );
    let mode = fs::metadata(root.join("scripts/init.sh"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755);
    assert!(!root.join("charts/values.yaml").exists());
    assert!(
        root.join("etc/hosts.toml.tmpl").exists(),
        "templates are kept"
    );
}

#[test]
fn never_follows_symlinks() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("image");
    let outside = dir.path().join("outside");
    fs::create_dir_all(root.join("etc")).unwrap();
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("x.tmpl"), "{{ .registryPort }}").unwrap();
    fs::write(outside.join("victim"), "keep").unwrap();
    symlink(&outside, root.join("scripts")).unwrap();
    symlink(outside.join("x.tmpl"), root.join("etc/linked.tmpl")).unwrap();
    fs::write(root.join("etc/victim.tmpl"), "{{ .registryPort }}").unwrap();
    symlink(outside.join("victim"), root.join("etc/victim")).unwrap();
    render_image_templates(&root, &data()).unwrap();
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 2);
    assert_eq!(fs::read_to_string(outside.join("victim")).unwrap(), "keep");
    assert!(
        !fs::symlink_metadata(root.join("etc/victim"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(fs::read_to_string(root.join("etc/victim")).unwrap(), "5000");
    assert!(!root.join("etc/linked").exists());
}

#[test]
fn template_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("etc")).unwrap();
    fs::write(dir.path().join("etc/bad.tmpl"), "{{ if }}").unwrap();
    let err = render_image_templates(dir.path(), &data()).unwrap_err();
    assert!(matches!(err, RenderError::Template { .. }));
    assert!(err.to_string().contains("etc/bad.tmpl"), "{err}");
}
