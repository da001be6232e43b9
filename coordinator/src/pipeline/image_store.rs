//! Images from the local OCI store, the way sealos resolves `sealos run
//! IMAGE`: an existing directory is used as is ([`DirImages`]); any other
//! argument is an image reference looked up in the store the image commands
//! use (`FERRY_DATA_ROOT` or `<ferry home>/images`), pulled from its
//! registry first when absent ([`StoreImages::pull_missing`], with the
//! credentials of `ferry login`; registries listed in
//! `FERRY_INSECURE_REGISTRIES`, comma separated, or every registry with
//! `--insecure` on run/apply/add, are talked to like `ferry pull
//! --insecure`), then unpacked once per manifest digest into
//! `<ferry home>/.image-cache/<hex>/` (outside every cluster's state
//! directory, which is backed up to the masters; shared by the clusters) with the store's hostile-entry checks.
//! Labels, env, cmd and entrypoint come from the image config.
//! [`StoreImages::inspect`] is the dry runs' view (plan, gen, apply
//! --dry-run): config and size from the store, never a pull or an unpack.
//!
//! Invariant: a cache directory `<hex>` only exists once fully unpacked
//! (unpack into a temp sibling, then rename), so it is reused as is and the
//! tree digest of a re-run is unchanged.

use std::path::{Path, PathBuf};

use ferry_shared::image::ImageConfig;

use super::PipelineError;
use super::images::{DirImages, ImageSource};
use crate::image::unpack::UnpackOptions;
use crate::oci::Reference;
use crate::oci::registry::{self, AuthStore, Connection, PullOptions};
use crate::oci::store::Store;

/// Env var: registries pulled from over plain HTTP / without TLS checks.
pub const INSECURE_ENV: &str = "FERRY_INSECURE_REGISTRIES";

/// Directories as [`DirImages`], everything else from the OCI store.
pub struct StoreImages {
    /// The ferry home (`--home`), for the store root and registry logins.
    home: PathBuf,
    /// Where unpacked images are cached (`<ferry home>/.image-cache`; cluster
    /// names cannot start with a dot).
    cache: PathBuf,
    /// `--insecure`: every registry pulled from is plain HTTP.
    insecure: bool,
    /// `--insecure-registry`: these registries (as the references name
    /// them) are plain HTTP.
    insecure_registries: Vec<String>,
}

/// What a dry run knows of an image without pulling or unpacking it.
#[derive(Debug, Clone)]
pub struct ImageInfo {
    pub config: ImageConfig,
    /// Tree bytes (directory or already unpacked), else the layers' bytes.
    pub bytes: u64,
}

fn bad(image: &str, detail: impl std::fmt::Display) -> PipelineError {
    PipelineError::Image {
        image: image.to_string(),
        detail: detail.to_string(),
    }
}

fn is_dir_image(name: &str) -> bool {
    Path::new(name).is_dir()
}

impl StoreImages {
    pub fn new(home: &Path) -> Self {
        Self {
            home: home.to_path_buf(),
            cache: home.join(".image-cache"),
            insecure: false,
            insecure_registries: Vec::new(),
        }
    }

    /// `--insecure`: pull over plain HTTP from every registry (as `ferry
    /// pull --insecure`), on top of `FERRY_INSECURE_REGISTRIES`.
    pub fn insecure(mut self, yes: bool) -> Self {
        self.insecure = yes;
        self
    }

    /// `--insecure-registry`: plain HTTP to these registries only.
    pub fn insecure_registries(mut self, registries: &[String]) -> Self {
        self.insecure_registries = registries.to_vec();
        self
    }

    /// Whether `registry` is spoken to over plain HTTP: `--insecure`, a
    /// `--insecure-registry` naming it, or `FERRY_INSECURE_REGISTRIES`.
    fn plain_http(&self, registry: &str, env: &[String]) -> bool {
        self.insecure
            || self.insecure_registries.iter().any(|r| r == registry)
            || env.iter().any(|r| r == registry)
    }

    /// Config and size of `name` for a dry run: a directory as it is, a
    /// reference only from the local store (which is not even created);
    /// absent means "pull it first", never a pull.
    pub fn inspect(&self, name: &str) -> Result<ImageInfo, PipelineError> {
        if is_dir_image(name) {
            let (config, root) = DirImages.open(name)?;
            let (_, bytes) = super::images::tree_digest(&root)?;
            return Ok(ImageInfo { config, bytes });
        }
        let root = Store::root_in(&self.home);
        let absent = || {
            bad(
                name,
                format!(
                    "not in the local store at {}; `ferry pull {name}` it first (or run without --dry-run, which pulls it)",
                    root.display()
                ),
            )
        };
        if !root.join("index.json").is_file() {
            return Err(absent());
        }
        let store = self.store(name)?;
        let found = store
            .find(name)
            .map_err(|e| bad(name, format!("looking it up in the image store: {e}")))?;
        if found.is_empty() {
            return Err(absent());
        }
        let r = store
            .resolve(name, None)
            .map_err(|e| bad(name, format!("image store: {e}")))?;
        let cached = self.cache.join(r.manifest_descriptor.digest.hex());
        let bytes = if cached.is_dir() {
            super::images::tree_digest(&cached)?.1
        } else {
            r.manifest.layers.iter().map(|l| l.size).sum()
        };
        let mut config = r.config.to_domain(&r.name);
        config.name = name.to_string();
        Ok(ImageInfo { config, bytes })
    }

    fn store(&self, image: &str) -> Result<Store, PipelineError> {
        let root = Store::root_in(&self.home);
        Store::open(&root).map_err(|e| bad(image, format!("opening the image store: {e}")))
    }

    /// Pulls every non-directory image of `names` that the store lacks.
    pub async fn pull_missing(&self, names: &[String]) -> Result<(), PipelineError> {
        let insecure: Vec<String> = std::env::var(INSECURE_ENV)
            .unwrap_or_default()
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        for name in names.iter().filter(|n| !is_dir_image(n)) {
            let store = self.store(name)?;
            let found = store
                .find(name)
                .map_err(|e| bad(name, format!("looking it up in the image store: {e}")))?;
            if !found.is_empty() {
                continue;
            }
            let reference: Reference = name.parse().map_err(|e| {
                bad(
                    name,
                    format!("not a directory and not an image reference: {e}"),
                )
            })?;
            let conn = Connection {
                registry: reference.registry.clone(),
                insecure: self.plain_http(&reference.registry, &insecure),
                credentials: AuthStore::new(&self.home)
                    .get(&reference.registry)
                    .map_err(|e| bad(name, format!("reading registry credentials: {e}")))?,
            };
            registry::pull(&store, &conn, &reference, &PullOptions::default(), &|_| {})
                .await
                .map_err(|e| {
                    bad(
                        name,
                        format!(
                            "not in the image store at {} and pulling it failed: {e}; next: check the reference, `ferry login {}` if the registry needs credentials, or give an image directory",
                            store.root().display(),
                            reference.registry
                        ),
                    )
                })?;
        }
        Ok(())
    }

    /// Unpacks `name` into the cache (once per manifest digest).
    fn mounted(&self, store: &Store, name: &str) -> Result<PathBuf, PipelineError> {
        let resolved = store
            .resolve(name, None)
            .map_err(|e| bad(name, format!("image store: {e}")))?;
        let hex = resolved.manifest_descriptor.digest.hex().to_string();
        let dest = self.cache.join(&hex);
        if dest.is_dir() {
            return Ok(dest);
        }
        let tmp = self
            .cache
            .join(format!(".{hex}.partial-{}", std::process::id()));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(PipelineError::io("clearing", &tmp))?;
        }
        std::fs::create_dir_all(&tmp).map_err(PipelineError::io("creating", &tmp))?;
        if let Err(e) = store.mount(name, &tmp, &UnpackOptions::default()) {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(bad(name, format!("unpacking into {}: {e}", tmp.display())));
        }
        match std::fs::rename(&tmp, &dest) {
            Ok(()) => Ok(dest),
            // Another run unpacked the same digest meanwhile.
            Err(_) if dest.is_dir() => {
                let _ = std::fs::remove_dir_all(&tmp);
                Ok(dest)
            }
            Err(e) => Err(PipelineError::io("renaming", &tmp)(e)),
        }
    }
}

impl ImageSource for StoreImages {
    fn arch(&self, name: &str) -> Option<String> {
        if is_dir_image(name) {
            return DirImages.arch(name);
        }
        let r = self.store(name).ok()?.resolve(name, None).ok()?;
        let a = r.config.architecture;
        (!a.is_empty()).then(|| ferry_shared::facts::kube_arch(&a).to_string())
    }

    fn open(&self, name: &str) -> Result<(ImageConfig, PathBuf), PipelineError> {
        if is_dir_image(name) {
            return DirImages.open(name);
        }
        let store = self.store(name)?;
        let root = self.mounted(&store, name)?;
        let mut config = store
            .image_config(name)
            .map_err(|e| bad(name, format!("image store: {e}")))?;
        // Named as the user wrote it, like directory images (Config docs
        // and the Clusterfile refer to it that way).
        config.name = name.to_string();
        Ok((config, root))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_where_asked() {
        let home = std::path::Path::new("/nonexistent");
        let none = StoreImages::new(home);
        assert!(!none.plain_http("r.example:5000", &[]));
        let env = ["env.example".to_string()];
        assert!(none.plain_http("env.example", &env));
        let scoped = StoreImages::new(home).insecure_registries(&["10.0.0.2:5000".into()]);
        assert!(scoped.plain_http("10.0.0.2:5000", &[]));
        assert!(!scoped.plain_http("10.0.0.2", &[]));
        assert!(!scoped.plain_http("docker.io", &[]));
        let all = StoreImages::new(home).insecure(true);
        assert!(all.plain_http("docker.io", &[]));
    }
}
