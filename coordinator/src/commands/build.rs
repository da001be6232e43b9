//! `ferry build`: see `crate::build`. Progress lines go to stderr; the
//! result (manifest digest, tags) to stdout, as JSON with `--output json`.

use crate::build::args::BuildArgs;
use crate::build::run;
use crate::commands::{CliError, Exit};
use crate::oci::Store;
use crate::output::OutputMode;
use crate::state::FerryHome;

impl From<run::BuildError> for CliError {
    fn from(e: run::BuildError) -> Self {
        CliError::Build(Box::new(e))
    }
}

pub async fn build(home: &FerryHome, mode: OutputMode, a: BuildArgs) -> Result<Exit, CliError> {
    let store = Store::open_default().map_err(run::BuildError::from)?;
    let log = |line: String| eprintln!("{line}");
    let out = run::build(&a, home.path(), &store, &log).await?;
    for w in &out.warnings {
        eprintln!("warning: {w}");
    }
    let digest = out.built.manifest.digest.to_string();
    match mode {
        OutputMode::Json => {
            let v = serde_json::json!({
                "digest": digest,
                "size": out.built.manifest.size,
                "tags": out.tags,
                "layer": out.built.layer.as_ref().map(|l| serde_json::json!({
                    "digest": l.digest, "diff_id": l.diff_id, "size": l.size,
                })),
                "registry_images": out.registry_images,
            });
            println!("{v}");
        }
        OutputMode::Human => {
            for t in &out.tags {
                eprintln!("tagged {t}");
            }
            println!("{digest}");
        }
    }
    Ok(Exit::Ok)
}
