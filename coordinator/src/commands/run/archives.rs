//! `ferry run ./k8s.tar ./app.tar ...`: sealos' `PreloadIfTarFile`. An
//! image argument that is a file is an oci-archive or docker-archive; it
//! is loaded into the local store with `ferry load`'s code (every entry
//! checked and every blob verified before anything is named) and replaced
//! by the first name it carries: docker's RepoTags, the OCI
//! `org.opencontainers.image.ref.name` annotation (a bare tag becomes
//! `localhost/<file stem>:<tag>`), `localhost/<file stem>:latest` for an
//! image the archive does not name (sealos keeps those by image ID).
//! Directories stay image directories; everything else is a reference.

use std::path::Path;
use std::time::Instant;

use super::{CliError, usage};
use crate::commands::images::load_into_store;
use crate::output::Reporter;

/// `images` with every archive file loaded into the store of the ferry
/// home `home` and replaced by its image name. A failing archive stops
/// here, before any host or state file is touched.
pub fn resolve(home: &Path, r: &Reporter, images: &[String]) -> Result<Vec<String>, CliError> {
    let mut out = Vec::with_capacity(images.len());
    for image in images {
        let path = Path::new(image);
        if !path.is_file() {
            out.push(image.clone());
            continue;
        }
        let report = load_into_store(home, r, path, Instant::now())?;
        let name = report.names.into_iter().next().ok_or_else(|| {
            usage(format!(
                "{image}: the archive holds no image; save one with `ferry save -m oci-archive|docker-archive -f FILE NAME`"
            ))
        })?;
        if !out.contains(&name) {
            out.push(name);
        }
    }
    Ok(out)
}
