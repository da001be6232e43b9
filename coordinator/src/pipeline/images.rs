//! The images step: each IMAGE is loaded through an [`ImageSource`] (an
//! unpacked directory `IMAGE/config.json` + `IMAGE/rootfs/` or a staged
//! build context here; references from the OCI store in `image_store.rs`),
//! rootfs and patch images are laid into one mount (later images over
//! earlier ones, like the overlay sealos mounts), each image's `registry/` into one registry tree, applications
//! into their own mounts; then `Config` documents are applied and templates
//! rendered with the cluster env, and `etc/registry_htpasswd` is written
//! from `registryUsername`/`registryPassword` (`htpasswd.rs`).
//!
//! Invariant: the user's image directories are never modified; all edits
//! happen in `~/.ferry/<cluster>/mounts/`.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ferry_shared::config_doc::ConfigDoc;
use ferry_shared::image::{EnvLayers, ImageConfig, ImageType};
use ferry_shared::kubefile::{Base, BuildArgs, Kubefile, RuntimeConfig};
use ferry_shared::pipeline::digest;
use ferry_shared::template::TemplateData;
use sha2::{Digest, Sha256};

use super::{PipelineError, htpasswd};
use crate::image::config_apply::apply_configs;
use crate::image::render::render_image_templates;

/// Where images come from.
pub trait ImageSource: Send + Sync {
    /// The image's config (labels, env, cmd) and its root directory.
    fn open(&self, name: &str) -> Result<(ImageConfig, PathBuf), PipelineError>;

    /// The architecture the image was built or pulled for (Kubernetes
    /// names), when its config says.
    fn arch(&self, _name: &str) -> Option<String> {
        None
    }
}

/// `IMAGE` is a directory holding `config.json` (an OCI image config, or
/// just its `config` object) and `rootfs/`.
pub struct DirImages;

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct OciConfig {
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    env: Option<Vec<String>>,
    #[serde(default)]
    cmd: Option<Vec<String>>,
    #[serde(default)]
    entrypoint: Option<Vec<String>>,
}

#[derive(serde::Deserialize)]
struct OciImage {
    config: OciConfig,
    #[serde(default)]
    architecture: Option<String>,
}

impl ImageSource for DirImages {
    fn arch(&self, name: &str) -> Option<String> {
        let text = std::fs::read_to_string(Path::new(name).join("config.json")).ok()?;
        let img: OciImage = serde_json::from_str(&text).ok()?;
        img.architecture
            .filter(|a| !a.is_empty())
            .map(|a| ferry_shared::facts::kube_arch(&a).to_string())
    }

    fn open(&self, name: &str) -> Result<(ImageConfig, PathBuf), PipelineError> {
        let dir = Path::new(name);
        let bad = |detail: String| PipelineError::Image {
            image: name.to_string(),
            detail,
        };
        if !dir.join("config.json").exists() && dir.join("Kubefile").is_file() {
            return staged(name, dir);
        }
        let cfg_path = dir.join("config.json");
        let text = std::fs::read_to_string(&cfg_path).map_err(|e| {
            bad(format!(
                "{}: {e}; an image is a directory with config.json and rootfs/ (OCI references need the image store)",
                cfg_path.display()
            ))
        })?;
        let c: OciConfig = match serde_json::from_str::<OciImage>(&text) {
            Ok(i) => i.config,
            Err(_) => serde_json::from_str(&text)
                .map_err(|e| bad(format!("{}: {e}", cfg_path.display())))?,
        };
        let root = dir.join("rootfs");
        if !root.is_dir() {
            return Err(bad(format!("{} is not a directory", root.display())));
        }
        Ok((
            ImageConfig {
                name: name.to_string(),
                labels: c.labels.unwrap_or_default(),
                env: c.env.unwrap_or_default(),
                cmd: c.cmd.unwrap_or_default(),
                entrypoint: c.entrypoint.unwrap_or_default(),
            },
            root,
        ))
    }
}

/// A staged build context (`Kubefile` + tree, `FROM scratch`, `COPY . .`):
/// the config comes from the Kubefile, the tree is the directory itself.
fn staged(name: &str, dir: &Path) -> Result<(ImageConfig, PathBuf), PipelineError> {
    let bad = |detail: String| PipelineError::Image {
        image: name.to_string(),
        detail,
    };
    let path = dir.join("Kubefile");
    let text =
        std::fs::read_to_string(&path).map_err(|e| bad(format!("{}: {e}", path.display())))?;
    let kf = Kubefile::parse(&text).map_err(|e| bad(format!("{}: {e}", path.display())))?;
    let plan = kf
        .resolve(&BuildArgs::new(), &[])
        .map_err(|e| bad(format!("{}: {e}", path.display())))?;
    if plan.base != Base::Scratch {
        return Err(bad(
            "a staged tree must be `FROM scratch` (build it with `ferry build` to stack images)"
                .into(),
        ));
    }
    let cfg = plan.apply(RuntimeConfig::default());
    Ok((
        ImageConfig {
            name: name.to_string(),
            labels: cfg.labels,
            env: cfg.env,
            cmd: cfg.cmd.unwrap_or_default(),
            entrypoint: cfg.entrypoint.unwrap_or_default(),
        },
        dir.to_path_buf(),
    ))
}

/// One loaded image.
#[derive(Debug, Clone)]
pub struct LoadedImage {
    pub config: ImageConfig,
    pub root: PathBuf,
    /// Digest of the source tree (paths, modes, sizes, mtimes) and config.
    pub digest: String,
    pub bytes: u64,
    /// Architecture from the image config, when known.
    pub arch: Option<String>,
}

/// The mounted stack on the bastion.
#[derive(Debug, Clone)]
pub struct Mounts {
    /// rootfs + patches merged.
    pub rootfs: PathBuf,
    /// Merged `registry/` trees, if any image has one.
    pub registry: Option<PathBuf>,
    /// (image name, mount) of application images.
    pub apps: Vec<(String, PathBuf)>,
}

/// Walks a tree; digest over metadata (cheap; content is hashed by the
/// transfer engine) and total file bytes.
pub fn tree_digest(root: &Path) -> Result<(String, u64), PipelineError> {
    let mut h = Sha256::new();
    let mut bytes = 0u64;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&dir)
            .map_err(PipelineError::io("reading", &dir))?
            .filter_map(Result::ok)
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path();
            let md = std::fs::symlink_metadata(&p).map_err(PipelineError::io("stat", &p))?;
            let rel = p
                .strip_prefix(root)
                .unwrap_or(&p)
                .to_string_lossy()
                .into_owned();
            h.update(
                format!(
                    "{rel}\0{:o}\0{}\0{}\n",
                    md.mode(),
                    md.size(),
                    ferry_shared::transfer::mtime_ns(md.mtime(), md.mtime_nsec())
                )
                .as_bytes(),
            );
            if md.is_dir() {
                stack.push(p);
            } else if md.is_file() {
                bytes += md.size();
            }
        }
    }
    Ok((format!("sha256:{}", hex::encode(h.finalize())), bytes))
}

pub fn load(src: &dyn ImageSource, names: &[String]) -> Result<Vec<LoadedImage>, PipelineError> {
    names
        .iter()
        .map(|n| {
            let (config, root) = src.open(n)?;
            let (tree, bytes) = tree_digest(&root)?;
            let cfg = format!(
                "{:?}{:?}{:?}{:?}",
                config.labels, config.env, config.cmd, config.entrypoint
            );
            Ok(LoadedImage {
                config,
                root,
                digest: digest(&[&tree, &cfg]),
                bytes,
                arch: src.arch(n),
            })
        })
        .collect()
}

/// Copies `src` into `dst` (merging over what is there), skipping a
/// top-level `skip` entry. Files, dirs and symlinks; modes kept.
pub fn copy_tree(src: &Path, dst: &Path, skip: Option<&str>) -> Result<(), PipelineError> {
    std::fs::create_dir_all(dst).map_err(PipelineError::io("creating", dst))?;
    for e in std::fs::read_dir(src).map_err(PipelineError::io("reading", src))? {
        let e = e.map_err(PipelineError::io("reading", src))?;
        let name = e.file_name();
        if skip.is_some_and(|s| name == s) {
            continue;
        }
        let (from, to) = (e.path(), dst.join(&name));
        let md = std::fs::symlink_metadata(&from).map_err(PipelineError::io("stat", &from))?;
        if md.is_dir() {
            if std::fs::symlink_metadata(&to).is_ok_and(|m| !m.is_dir()) {
                std::fs::remove_file(&to).map_err(PipelineError::io("replacing", &to))?;
            }
            copy_tree(&from, &to, None)?;
            std::fs::set_permissions(&to, std::fs::Permissions::from_mode(md.mode() & 0o7777))
                .map_err(PipelineError::io("chmod", &to))?;
        } else {
            if let Ok(m) = std::fs::symlink_metadata(&to) {
                if m.is_dir() {
                    std::fs::remove_dir_all(&to)
                } else {
                    std::fs::remove_file(&to)
                }
                .map_err(PipelineError::io("replacing", &to))?;
            }
            if md.file_type().is_symlink() {
                let target =
                    std::fs::read_link(&from).map_err(PipelineError::io("readlink", &from))?;
                std::os::unix::fs::symlink(&target, &to)
                    .map_err(PipelineError::io("symlink", &to))?;
            } else if md.is_file() {
                std::fs::copy(&from, &to).map_err(PipelineError::io("copying", &from))?;
            }
        }
    }
    Ok(())
}

fn slug(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    s.trim_matches(['-', '.']).chars().take(60).collect()
}

/// Builds the mounts under `dir` from scratch.
pub fn mount(
    dir: &Path,
    images: &[LoadedImage],
    configs: &[ConfigDoc],
    layers: &EnvLayers,
) -> Result<Mounts, PipelineError> {
    let (env, _) = layers.cluster_env();
    let env = &env;
    let rootfs = dir.join("rootfs");
    let previous_htpasswd = std::fs::read_to_string(rootfs.join(htpasswd::HTPASSWD)).ok();
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(PipelineError::io("clearing", dir))?;
    }
    let registry = dir.join("registry");
    std::fs::create_dir_all(&rootfs).map_err(PipelineError::io("creating", &rootfs))?;
    let mut has_registry = false;
    let mut apps = Vec::new();
    let rootfs_data = TemplateData::from_env(env.clone());
    let mut ordered: Vec<&LoadedImage> = images.iter().collect();
    ordered.sort_by_key(|i| i.config.image_type());
    for (i, img) in ordered.iter().enumerate() {
        let name = &img.config.name;
        let target = match img.config.image_type() {
            ImageType::Rootfs | ImageType::Patch => rootfs.clone(),
            ImageType::Application => {
                let p = dir.join("apps").join(format!("{i}-{}", slug(name)));
                apps.push((name.clone(), p.clone()));
                p
            }
        };
        copy_tree(&img.root, &target, Some("registry"))?;
        let reg = img.root.join("registry");
        if reg.is_dir() {
            copy_tree(&reg, &registry, None)?;
            has_registry = true;
        }
        let bad = |detail: String| PipelineError::Image {
            image: name.clone(),
            detail,
        };
        apply_configs(&target, name, configs).map_err(|e| bad(e.to_string()))?;
        // Each application renders with its own ENV (sealos' per-mount
        // env), the rootfs tree with the rootfs and patch images' ENV.
        let app_data;
        let data = match img.config.image_type() {
            ImageType::Application => {
                app_data =
                    TemplateData::from_env(layers.for_image(&img.config.env).cluster_env().0);
                &app_data
            }
            _ => &rootfs_data,
        };
        render_image_templates(&target, data).map_err(|e| bad(e.to_string()))?;
    }
    htpasswd::write(&rootfs, env, previous_htpasswd.as_deref())?;
    Ok(Mounts {
        rootfs,
        registry: has_registry.then_some(registry),
        apps,
    })
}
