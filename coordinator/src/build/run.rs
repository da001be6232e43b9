//! The `ferry build` flow: read and check everything first (Kubefile,
//! ignore files, tags, build args, every COPY source), then pull what is
//! missing (base image, images to carry), fill `<context>/registry`, write
//! the layer, config and manifest into the store, tag last.

use std::fs;
use std::path::{Path, PathBuf};

use ferry_shared::kubefile::{Base, BuildArgs as ArgMap, IgnoreRules, Kubefile, KubefileError};
use futures::StreamExt;

use super::args::BuildArgs;
use super::collect::{self, CollectError};
use super::image::{AssembleError, Assembly, Built, assemble};
use super::registry_dir::RegistryDir;
use super::tree::{Tree, TreeError};
use crate::oci::archive::{self, ArchiveError};
use crate::oci::reference::{Reference, ReferenceError};
use crate::oci::registry::{self, AuthStore, Connection, PullOptions, RegistryError};
use crate::oci::store::ResolvedImage;
use crate::oci::types::Platform;
use crate::oci::{Store, StoreError};

/// Kubefile names looked up in the context, in sealos' order.
pub const KUBEFILE_NAMES: &[&str] = &["Sealfile", "Kubefile", "Dockerfile", "Containerfile"];
/// Largest Kubefile or ignore file read.
const MAX_TEXT: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("build context {path}: {reason}")]
    Context { path: PathBuf, reason: String },
    #[error(
        "no Kubefile in {context}: expected one of Sealfile, Kubefile, Dockerfile, Containerfile, or pass -f"
    )]
    NoKubefile { context: PathBuf },
    #[error("{path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{path}: {source}")]
    Kubefile {
        path: PathBuf,
        #[source]
        source: KubefileError,
    },
    #[error("{path}: {source}")]
    Ignore {
        path: PathBuf,
        #[source]
        source: ferry_shared::kubefile::IgnoreError,
    },
    #[error("--build-arg `{0}`: expected KEY=VALUE (or KEY to take it from the environment)")]
    BuildArg(String),
    #[error("--tag: {0}")]
    Tag(#[source] ReferenceError),
    #[error("FROM {image}: {source}")]
    Base {
        image: String,
        #[source]
        source: ReferenceError,
    },
    #[error("--platform: {0}")]
    Platform(String),
    #[error("{path}: {source}")]
    Tree {
        path: PathBuf,
        #[source]
        source: TreeError,
    },
    #[error(transparent)]
    Collect(#[from] CollectError),
    #[error("pulling {image}: {source}")]
    Pull {
        image: String,
        #[source]
        source: Box<RegistryError>,
    },
    #[error("loading {path:?}: {source}")]
    Load {
        path: PathBuf,
        #[source]
        source: Box<ArchiveError>,
    },
    #[error(transparent)]
    Store(Box<StoreError>),
    #[error(transparent)]
    Assemble(Box<AssembleError>),
}

impl From<StoreError> for BuildError {
    fn from(e: StoreError) -> Self {
        BuildError::Store(Box::new(e))
    }
}

impl From<AssembleError> for BuildError {
    fn from(e: AssembleError) -> Self {
        BuildError::Assemble(Box::new(e))
    }
}

/// What a build produced.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub built: Built,
    pub tags: Vec<String>,
    pub registry_images: Vec<String>,
    pub warnings: Vec<String>,
}

fn read_text(path: &Path) -> Result<Option<String>, BuildError> {
    let err = |reason: String| BuildError::Read {
        path: path.to_owned(),
        reason,
    };
    match fs::metadata(path) {
        Ok(m) if m.len() > MAX_TEXT => Err(err(format!("larger than {MAX_TEXT} bytes"))),
        Ok(_) => fs::read_to_string(path)
            .map(Some)
            .map_err(|e| err(e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(err(e.to_string())),
    }
}

fn build_args(list: &[String]) -> Result<ArgMap, BuildError> {
    let mut out = ArgMap::new();
    for a in list {
        match a.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                out.insert(k.to_string(), v.to_string());
            }
            Some(_) => return Err(BuildError::BuildArg(a.clone())),
            None if !a.is_empty() => {
                if let Ok(v) = std::env::var(a) {
                    out.insert(a.clone(), v);
                }
            }
            None => return Err(BuildError::BuildArg(a.clone())),
        }
    }
    Ok(out)
}

fn ignore_rules(context: &Path) -> Result<IgnoreRules, BuildError> {
    let mut rules = IgnoreRules::default();
    for name in [".dockerignore", ".sealignore"] {
        let path = context.join(name);
        if let Some(text) = read_text(&path)? {
            let parsed =
                IgnoreRules::parse(&text).map_err(|source| BuildError::Ignore { path, source })?;
            rules.extend(parsed);
        }
    }
    Ok(rules)
}

/// Whether a tree error is only about `registry/`, which collection has
/// not created yet at check time.
fn is_registry_not_found(e: &TreeError) -> bool {
    matches!(e, TreeError::NotFound { source_path, .. }
        if source_path == "registry" || source_path.starts_with("registry/"))
}

/// Connection for `reference`'s registry: credentials from ferry's or
/// docker's auth file; plain HTTP for `--insecure-registry` and loopback.
fn connection(
    a: &BuildArgs,
    ferry_home: &Path,
    reference: &Reference,
) -> Result<Connection, RegistryError> {
    let host = reference.registry.clone();
    let loopback = ["localhost", "127.0.0.1", "[::1]"]
        .iter()
        .any(|l| host == *l || host.starts_with(&format!("{l}:")));
    let insecure = loopback || a.insecure_registries.contains(&host);
    let credentials = AuthStore::new(ferry_home).get(&host)?;
    Ok(Connection {
        registry: host,
        insecure,
        credentials,
    })
}

/// Pulls `reference` into the store unless a name for it is there.
async fn ensure(
    store: &Store,
    a: &BuildArgs,
    ferry_home: &Path,
    reference: &Reference,
    platform: Option<&Platform>,
    log: &(dyn Fn(String) + Send + Sync),
) -> Result<(), BuildError> {
    let shown = reference.to_string();
    match store.lookup(&shown) {
        Ok(_) => return Ok(()),
        Err(StoreError::NotFound { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    log(format!("pulling {shown}"));
    let pull_err = |source| BuildError::Pull {
        image: shown.clone(),
        source: Box::new(source),
    };
    let conn = connection(a, ferry_home, reference).map_err(pull_err)?;
    let opts = PullOptions {
        platform: platform.cloned(),
        concurrency: 0,
    };
    registry::pull(store, &conn, reference, &opts, &|_| {})
        .await
        .map_err(pull_err)?;
    Ok(())
}

/// Runs a build. `log` receives one line per step.
pub async fn build(
    a: &BuildArgs,
    ferry_home: &Path,
    store: &Store,
    log: &(dyn Fn(String) + Send + Sync),
) -> Result<Outcome, BuildError> {
    // 1. Everything is read and checked before anything is written.
    let context = fs::canonicalize(&a.context).map_err(|e| BuildError::Context {
        path: a.context.clone(),
        reason: e.to_string(),
    })?;
    if !context.is_dir() {
        return Err(BuildError::Context {
            path: context,
            reason: "not a directory".to_string(),
        });
    }
    let kubefile_path = match &a.file {
        Some(f) => f.clone(),
        None => KUBEFILE_NAMES
            .iter()
            .map(|n| context.join(n))
            .find(|p| p.is_file())
            .ok_or_else(|| BuildError::NoKubefile {
                context: context.clone(),
            })?,
    };
    let text = read_text(&kubefile_path)?.ok_or_else(|| BuildError::Read {
        path: kubefile_path.clone(),
        reason: "not found".to_string(),
    })?;
    let kf_err = |source| BuildError::Kubefile {
        path: kubefile_path.clone(),
        source,
    };
    let kubefile = Kubefile::parse(&text).map_err(kf_err)?;
    let args = build_args(&a.build_args)?;
    let ignore = ignore_rules(&context)?;
    let tags = a
        .tags
        .iter()
        .map(|t| t.parse::<Reference>().map_err(BuildError::Tag))
        .collect::<Result<Vec<_>, _>>()?;
    let first = kubefile.resolve(&args, &[]).map_err(kf_err)?;
    let tree_err = |source| BuildError::Tree {
        path: kubefile_path.clone(),
        source,
    };
    match Tree::from_copies(&context, &first.copies, &ignore) {
        Err(e) if !is_registry_not_found(&e) => return Err(tree_err(e)),
        _ => {}
    }
    let platform = match a.platform.as_ref().or(first.platform.as_ref()) {
        Some(p) => Some(p.parse::<Platform>().map_err(BuildError::Platform)?),
        None => None,
    };
    let wanted = if a.save_image {
        collect::scan(&context, &ignore)?
    } else {
        Vec::new()
    };

    // 2. Base image (pulled if missing); the Kubefile resolved over its env.
    let base: Option<ResolvedImage> = match &first.base {
        Base::Scratch => None,
        Base::Image(image) => {
            let r: Reference = image.parse().map_err(|source| BuildError::Base {
                image: image.clone(),
                source,
            })?;
            ensure(store, a, ferry_home, &r, platform.as_ref(), log).await?;
            Some(store.resolve(&r.to_string(), platform.as_ref())?)
        }
    };
    let base_env = base
        .as_ref()
        .and_then(|b| b.config.config.env.clone())
        .unwrap_or_default();
    let plan = kubefile.resolve(&args, &base_env).map_err(kf_err)?;
    let platform = platform
        .or_else(|| base.as_ref().map(|b| b.config.platform()))
        .unwrap_or_else(Platform::host);

    // 3. Images the cluster image carries, into <context>/registry.
    // Registry images are pulled `--max-pull-procs` at a time; archives
    // are loaded one after the other.
    let pulls = wanted.iter().filter(|w| w.archive.is_none()).map(|w| {
        let platform = &platform;
        async move { ensure(store, a, ferry_home, &w.reference, Some(platform), log).await }
    });
    let results: Vec<Result<(), BuildError>> = futures::stream::iter(pulls)
        .buffer_unordered(a.max_pull_procs.max(1))
        .collect()
        .await;
    results.into_iter().collect::<Result<Vec<()>, _>>()?;
    let mut locals = Vec::with_capacity(wanted.len());
    for w in &wanted {
        match &w.archive {
            None => locals.push(w.reference.to_string()),
            Some(path) => {
                log(format!("loading {}", path.display()));
                let report = archive::load(store, path).map_err(|source| BuildError::Load {
                    path: path.clone(),
                    source: Box::new(source),
                })?;
                locals.push(collect::pick_loaded(w, path, &report.names)?);
            }
        }
    }
    if !wanted.is_empty() {
        log(format!(
            "collecting {} image(s) into {}/registry",
            wanted.len(),
            context.display()
        ));
        collect::write_registry(
            store,
            &RegistryDir::new(&context.join("registry")),
            &wanted,
            &locals,
            &platform,
        )?;
    }

    // 4. Layer, config, manifest; tags last.
    let tree = Tree::from_copies(&context, &plan.copies, &ignore).map_err(tree_err)?;
    let source_date_epoch = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok());
    let built = assemble(
        store,
        &Assembly {
            plan: &plan,
            base: base.as_ref(),
            tree: &tree,
            compression: a.compression,
            source_date_epoch,
            platform,
        },
    )?;
    let mut tag_names = Vec::new();
    for t in &tags {
        store.tag(t, &built.manifest)?;
        tag_names.push(t.to_string());
    }
    let warnings = plan
        .unused_build_args
        .iter()
        .map(|k| format!("build arg {k} was not consumed by any ARG"))
        .collect();
    Ok(Outcome {
        built,
        tags: tag_names,
        registry_images: wanted.iter().map(|w| w.reference.to_string()).collect(),
        warnings,
    })
}
