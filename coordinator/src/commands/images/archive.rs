//! `ferry save | load`.

use std::path::Path;
use std::time::Instant;

use ferry_shared::{EventKind, Phase};

use super::{ImageError, open_store};
use crate::cli::{LoadArgs, SaveArgs};
use crate::commands::Exit;
use crate::oci::Store;
use crate::oci::archive;
use crate::output::Reporter;
use crate::state::FerryHome;

pub(super) async fn save(
    home: &FerryHome,
    reporter: &Reporter,
    args: SaveArgs,
    started: Instant,
) -> Result<Exit, ImageError> {
    let store = open_store(home)?;
    let bytes = archive::save(&store, &args.images, &args.file, args.format)?;
    let msg = format!(
        "saved {} to {} ({bytes} bytes)",
        args.images.join(", "),
        args.file.display()
    );
    reporter.emit(
        reporter
            .event("", Phase::Image, EventKind::Finished)
            .counter("bytes", bytes)
            .counter("duration_ms", started.elapsed().as_millis() as u64)
            .message(msg.clone()),
    );
    reporter.text(&msg);
    Ok(Exit::Ok)
}

pub(super) async fn load(
    home: &FerryHome,
    reporter: &Reporter,
    args: LoadArgs,
    started: Instant,
) -> Result<Exit, ImageError> {
    load_into_store(home.path(), reporter, &args.input, started)?;
    Ok(Exit::Ok)
}

/// Loads the archive at `input` into the store of the ferry home `home`
/// (`FERRY_DATA_ROOT` or `<home>/images`), printing each name it gave and
/// one event: `ferry load -i`, and `ferry run ARCHIVE`.
pub(crate) fn load_into_store(
    home: &Path,
    reporter: &Reporter,
    input: &Path,
    started: Instant,
) -> Result<archive::LoadReport, ImageError> {
    let store = Store::open(&Store::root_in(home))?;
    let report = archive::load(&store, input)?;
    for name in &report.names {
        reporter.text(&format!("Loaded image: {name}"));
    }
    reporter.emit(
        reporter
            .event("", Phase::Image, EventKind::Finished)
            .counter("blobs", report.blobs)
            .counter("bytes", report.bytes)
            .counter("duration_ms", started.elapsed().as_millis() as u64)
            .message(format!("loaded {}", report.names.join(", "))),
    );
    Ok(report)
}
