//! Flags of the image commands (`pull push login logout images rmi inspect
//! tag save load`), named like sealos' (buildah's) where they can be.

use std::path::PathBuf;

use clap::Args;

use crate::oci::archive::ArchiveFormat;

#[derive(Debug, Clone, Args)]
pub struct RegistryFlags {
    /// Talk plain HTTP to the registry (local mirrors); its token server, if
    /// any, keeps verified HTTPS.
    #[arg(long)]
    pub insecure: bool,
}

#[derive(Debug, Args)]
pub struct PullArgs {
    /// Images to pull (`registry/repo:tag` or `...@sha256:...`).
    #[arg(required = true)]
    pub images: Vec<String>,
    /// Platform to pick from a multi-arch image (os/arch[/variant]; default: this machine's).
    #[arg(long)]
    pub platform: Option<String>,
    /// Layers downloaded at once.
    #[arg(long, default_value_t = crate::oci::registry::DEFAULT_CONCURRENCY)]
    pub concurrency: usize,
    #[command(flatten)]
    pub registry: RegistryFlags,
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// Local image (name or id).
    pub image: String,
    /// Where to push (default: the image's own name).
    pub destination: Option<String>,
    #[command(flatten)]
    pub registry: RegistryFlags,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Registry host[:port].
    pub registry: String,
    #[arg(short = 'u', long)]
    pub username: String,
    /// Password (prefer --password-stdin or FERRY_REGISTRY_PASSWD).
    #[arg(
        short = 'p',
        long,
        env = "FERRY_REGISTRY_PASSWD",
        hide_env_values = true
    )]
    pub password: Option<String>,
    /// Read the password from stdin.
    #[arg(long)]
    pub password_stdin: bool,
    #[command(flatten)]
    pub registry_flags: RegistryFlags,
}

#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// Registry host[:port].
    pub registry: String,
}

#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// Only image ids.
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct RmiArgs {
    #[arg(required_unless_present_any = ["all", "prune"])]
    pub images: Vec<String>,
    /// Remove every name of an image given by id.
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Remove every image.
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Only collect blobs no image uses (and stale temp files).
    #[arg(short = 'p', long)]
    pub prune: bool,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    pub image: String,
    /// Platform of a multi-arch image (default: this machine's).
    #[arg(long)]
    pub platform: Option<String>,
}

#[derive(Debug, Args)]
pub struct TagArgs {
    /// Existing image (name or id).
    pub source: String,
    /// New names.
    #[arg(required = true)]
    pub targets: Vec<String>,
}

#[derive(Debug, Args)]
pub struct SaveArgs {
    #[arg(required = true)]
    pub images: Vec<String>,
    /// Archive file to write (sealos: -o; -o is ferry's global --output here).
    #[arg(short = 'f', long = "file")]
    pub file: PathBuf,
    /// Archive format.
    #[arg(short = 'm', long, value_enum, default_value = "oci-archive")]
    pub format: ArchiveFormat,
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Archive to load (oci-archive or docker-archive). An image named
    /// only by a bare tag is loaded as `localhost/<file stem>:<tag>`, one
    /// named not at all as `localhost/<file stem>:latest`.
    #[arg(short = 'i', long)]
    pub input: PathBuf,
}
