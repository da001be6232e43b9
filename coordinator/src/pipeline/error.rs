//! What can go wrong in the pipeline, with the host, step and what to do next.

use std::path::PathBuf;

use ferry_shared::pipeline::Step;

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(
        "{host}: {step}: agent unreachable: {detail}; next: `ferry agent status`, then re-run (finished steps are skipped)"
    )]
    Agent {
        host: String,
        step: Step,
        detail: String,
    },
    #[error(
        "{host}: {step}: `{command}` {outcome}; output tail:\n{tail}\nnext: fix the cause on the node, then re-run (finished steps are skipped)"
    )]
    Command {
        host: String,
        step: Step,
        command: String,
        outcome: String,
        tail: String,
    },
    #[error(
        "{host}: {step}: `{command}` interrupted, the agent connection broke ({detail}); it may have run partly; next: re-run the same command (it restarts the agent where it is down, skips finished steps and runs this one again); if that fails too, `ferry agent status`"
    )]
    Interrupted {
        host: String,
        step: Step,
        command: String,
        detail: String,
    },
    #[error("{host}: {step}: {detail}")]
    Host {
        host: String,
        step: Step,
        detail: String,
    },
    #[error("{step}: {detail}")]
    Cluster { step: Step, detail: String },
    /// Refused before any host changed; the stored Clusterfile is kept.
    #[error("{step}: {detail}")]
    Refused { step: Step, detail: String },
    #[error("image {image}: {detail}")]
    Image { image: String, detail: String },
    /// An image's commands failed; the cluster itself is up.
    #[error(
        "image {image}: its commands failed (the cluster itself is up: ClusterSuccess, with an ApplyCommandError command condition): {source}; a re-run runs only the commands not yet done, from this image on"
    )]
    Guest {
        image: String,
        source: Box<PipelineError>,
    },
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Clusterfile(#[from] ferry_shared::clusterfile::ClusterfileError),
    #[error(transparent)]
    State(#[from] crate::state::StateError),
}

impl PipelineError {
    pub fn io(what: &'static str, path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.to_path_buf();
        move |source| Self::Io { what, path, source }
    }

    pub fn cluster(step: Step, detail: impl std::fmt::Display) -> Self {
        Self::Cluster {
            step,
            detail: detail.to_string(),
        }
    }

    pub fn host(host: &str, step: Step, detail: impl std::fmt::Display) -> Self {
        Self::Host {
            host: host.to_string(),
            step,
            detail: detail.to_string(),
        }
    }
}
