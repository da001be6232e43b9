//! `ferry save | load`.

use std::time::Instant;

use ferry_shared::{EventKind, Phase};

use super::{ImageError, open_store};
use crate::cli::{LoadArgs, SaveArgs};
use crate::commands::Exit;
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
    let store = open_store(home)?;
    let report = archive::load(&store, &args.input)?;
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
    Ok(Exit::Ok)
}
