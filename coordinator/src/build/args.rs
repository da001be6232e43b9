//! `ferry build` flags (sealos/buildah names where they exist).

use std::path::PathBuf;

use clap::Args;

use super::layer::Compression;

#[derive(Debug, Clone, Args)]
pub struct BuildArgs {
    /// Name (and tag) of the built image; repeatable.
    #[arg(short = 't', long = "tag")]
    pub tags: Vec<String>,
    /// The Kubefile (default: Sealfile, Kubefile, Dockerfile or Containerfile in CONTEXT).
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
    /// ARG value, `KEY=VALUE`; repeatable.
    #[arg(long = "build-arg")]
    pub build_args: Vec<String>,
    /// Layer compression.
    #[arg(long, value_enum, default_value = "gzip")]
    pub compression: Compression,
    /// Target platform `os/arch[/variant]` (default: FROM --platform, the base image's, or the bastion's).
    #[arg(long)]
    pub platform: Option<String>,
    /// Registries spoken to over plain HTTP (base and registry images); repeatable.
    #[arg(long = "insecure-registry")]
    pub insecure_registries: Vec<String>,
    /// Images pulled at once while collecting (sealos `--max-pull-procs`).
    #[arg(long, default_value_t = 5)]
    pub max_pull_procs: usize,
    /// Collect images/shim, manifests, charts and tar.txt images into
    /// CONTEXT/registry first (sealos `--save-image`; `=false` to skip).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub save_image: bool,
    /// The build context directory.
    #[arg(default_value = ".")]
    pub context: PathBuf,
}
