//! Image commands (sealos names): `pull push login logout` talk to
//! registries (`registry.rs`), `images rmi inspect tag` work on the local
//! store (`local.rs`), `save load` on archives (`archive.rs`).

mod archive;
mod local;
mod registry;

pub(crate) use archive::load_into_store;

use std::time::Instant;

use ferry_shared::{EventKind, Phase};

use super::{CliError, Exit};
use crate::cli::Command;
use crate::oci::Store;
use crate::oci::archive::ArchiveError;
use crate::oci::reference::ReferenceError;
use crate::oci::registry::RegistryError;
use crate::oci::store::StoreError;
use crate::output::Reporter;
use crate::state::FerryHome;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(transparent)]
    Registry(Box<RegistryError>),
    #[error(transparent)]
    Store(Box<StoreError>),
    #[error(transparent)]
    Archive(Box<ArchiveError>),
    #[error(transparent)]
    Reference(Box<ReferenceError>),
    #[error("{0}")]
    Usage(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl From<RegistryError> for ImageError {
    fn from(e: RegistryError) -> Self {
        Self::Registry(Box::new(e))
    }
}

impl From<StoreError> for ImageError {
    fn from(e: StoreError) -> Self {
        Self::Store(Box::new(e))
    }
}

impl From<ArchiveError> for ImageError {
    fn from(e: ArchiveError) -> Self {
        Self::Archive(Box::new(e))
    }
}

impl From<ReferenceError> for ImageError {
    fn from(e: ReferenceError) -> Self {
        Self::Reference(Box::new(e))
    }
}

/// The store: `FERRY_DATA_ROOT`, else `<ferry home>/images`.
fn open_store(home: &FerryHome) -> Result<Store, ImageError> {
    Ok(Store::open(&Store::root_in(home.path()))?)
}

pub async fn run(
    home: &FerryHome,
    reporter: &Reporter,
    command: Command,
) -> Result<Exit, CliError> {
    let started = Instant::now();
    let result = match command {
        Command::Pull(a) => registry::pull(home, reporter, a).await,
        Command::Push(a) => registry::push(home, reporter, a).await,
        Command::Login(a) => registry::login(home, reporter, a).await,
        Command::Logout(a) => registry::logout(home, reporter, a),
        Command::Images(a) => local::images(home, reporter, a),
        Command::Rmi(a) => local::rmi(home, reporter, a),
        Command::Inspect(a) => local::inspect(home, reporter, a),
        Command::Tag(a) => local::tag(home, reporter, a),
        Command::Save(a) => archive::save(home, reporter, a, started).await,
        Command::Load(a) => archive::load(home, reporter, a, started).await,
        _ => Err(ImageError::Usage("not an image command".to_string())),
    };
    result.map_err(|e| {
        let phase = match &e {
            ImageError::Registry(_) => Phase::Pull,
            _ => Phase::Image,
        };
        if reporter.is_json() {
            reporter.emit(
                reporter
                    .event("", phase, EventKind::Failed)
                    .message(e.to_string()),
            );
        }
        CliError::from(e)
    })
}

impl From<ImageError> for CliError {
    fn from(e: ImageError) -> Self {
        match e {
            ImageError::Usage(m) => CliError::Usage(m),
            other => CliError::Image(Box::new(other)),
        }
    }
}
