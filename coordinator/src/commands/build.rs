//! `ferry build`: see `crate::build`. Events (phase `image`): one
//! `progress` per step (pulling, loading, collecting), then one `finished`
//! whose message is, with `--output json`, the result as JSON (`digest`,
//! `size`, `tags`, `layer`, `registry_images`); `failed` with the error.
//! Human mode prints the tags and the digest (stdout) after the events.

use std::time::Instant;

use ferry_shared::{EventKind, Phase};

use crate::build::args::BuildArgs;
use crate::build::run;
use crate::commands::{CliError, Exit};
use crate::oci::Store;
use crate::output::Reporter;
use crate::state::FerryHome;

impl From<run::BuildError> for CliError {
    fn from(e: run::BuildError) -> Self {
        CliError::Build(Box::new(e))
    }
}

pub async fn build(home: &FerryHome, reporter: &Reporter, a: BuildArgs) -> Result<Exit, CliError> {
    let started = Instant::now();
    let result = build_inner(home, reporter, a, started).await;
    if let Err(e) = &result
        && reporter.is_json()
    {
        reporter.emit(
            reporter
                .event("", Phase::Image, EventKind::Failed)
                .message(e.to_string()),
        );
    }
    result.map_err(CliError::from)
}

async fn build_inner(
    home: &FerryHome,
    reporter: &Reporter,
    a: BuildArgs,
    started: Instant,
) -> Result<Exit, run::BuildError> {
    let store = Store::open(&Store::root_in(home.path()))?;
    let progress = reporter.clone();
    let log = move |line: String| {
        progress.emit(
            progress
                .event("", Phase::Image, EventKind::Progress)
                .message(line),
        );
    };
    let out = run::build(&a, home.path(), &store, &log).await?;
    for w in &out.warnings {
        reporter.emit(
            reporter
                .event("", Phase::Image, EventKind::Log)
                .message(format!("warning: {w}")),
        );
    }
    let digest = out.built.manifest.digest.to_string();
    let result = serde_json::json!({
        "digest": digest,
        "size": out.built.manifest.size,
        "tags": out.tags,
        "layer": out.built.layer.as_ref().map(|l| serde_json::json!({
            "digest": l.digest, "diff_id": l.diff_id, "size": l.size,
        })),
        "registry_images": out.registry_images,
    });
    reporter.emit(
        reporter
            .event("", Phase::Image, EventKind::Finished)
            .counter(
                "layer_bytes",
                out.built.layer.as_ref().map_or(0, |l| l.size),
            )
            .counter("registry_images", out.registry_images.len() as u64)
            .counter("duration_ms", started.elapsed().as_millis() as u64)
            .message(if reporter.is_json() {
                result.to_string()
            } else {
                format!("built {digest} ({} tag(s))", out.tags.len())
            }),
    );
    for t in &out.tags {
        reporter.text(&format!("tagged {t}"));
    }
    reporter.text(&digest);
    Ok(Exit::Ok)
}
