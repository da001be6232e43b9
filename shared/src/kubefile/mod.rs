//! Kubefile / Sealfile / Dockerfile subset that cluster images use (pure).
//!
//! - [`lines`]: logical lines (continuations, comments, `# escape=`).
//! - [`shell`]: Docker's word processing: quotes, escapes, `$VAR`/`${VAR}`.
//! - [`parse`](Kubefile::parse): `FROM`, `COPY`, `ADD` (local files only),
//!   `ENV`, `LABEL`, `CMD`, `ENTRYPOINT`, `ARG`, `MAINTAINER`. One `FROM`
//!   only (no multi-stage); `RUN` and every other instruction are refused
//!   with the line number, because a cluster image is assembled from files
//!   without a container runtime.
//! - [`resolve`](Kubefile::resolve): `--build-arg` over `ARG` defaults,
//!   substitution in `FROM`/`COPY`/`ENV`/`LABEL`/`ARG`, COPY sources checked
//!   to stay inside the context, a [`Plan`] to build from.
//! - [`ignore`]: `.dockerignore` / `.sealignore` matching.
//! - [`collect`]: images a cluster image carries (`images/shim/*`,
//!   `manifests/*.yaml`, `images/skopeo/tar.txt`).

pub mod collect;
pub mod ignore;
pub mod lines;
mod parse;
mod resolve;
pub mod shell;
#[cfg(test)]
mod tests;

pub use ignore::{Glob, IgnoreError, IgnoreRules};
pub use resolve::{Base, BuildArgs, CopyStep, Plan, RuntimeConfig};

/// A parsed Kubefile (arguments still raw: quotes and `$VAR` unprocessed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kubefile {
    pub escape: char,
    /// `ARG`s before `FROM` (visible to `FROM` only, like Docker).
    pub global_args: Vec<ArgDecl>,
    pub from: From,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct From {
    pub line: usize,
    pub image: String,
    pub platform: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgDecl {
    pub name: String,
    pub default: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub line: usize,
    pub op: Op,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `COPY`/`ADD`: raw sources then destination.
    Copy {
        add: bool,
        chmod: Option<u32>,
        args: Vec<String>,
    },
    Env(Vec<(String, String)>),
    Label(Vec<(String, String)>),
    /// Exec form as given, shell form as `["/bin/sh", "-c", text]`.
    Cmd(Vec<String>),
    Entrypoint(Vec<String>),
    Arg(Vec<ArgDecl>),
    Maintainer(String),
}

/// Why a Kubefile is refused. Every variant names the line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KubefileError {
    #[error("Kubefile is empty: it needs `FROM scratch` or `FROM <cluster image>`")]
    NoFrom,
    #[error(
        "line {line}: RUN is not possible in a cluster image: ferry build assembles files without a container runtime (like sealos build with FROM scratch); move the command into the CMD script that runs on the nodes, or prepare the files in the build context"
    )]
    Run { line: usize },
    #[error(
        "line {line}: `{instruction}` is not supported in a Kubefile (supported: FROM, COPY, ADD, ENV, LABEL, CMD, ENTRYPOINT, ARG, MAINTAINER)"
    )]
    Unsupported { line: usize, instruction: String },
    #[error(
        "line {line}: a second FROM (first on line {first}): multi-stage builds are not supported; build each image separately"
    )]
    MultipleFrom { line: usize, first: usize },
    #[error("line {line}: {instruction} before FROM (only ARG may come before FROM)")]
    BeforeFrom { line: usize, instruction: String },
    #[error("line {line}: {instruction}: {message}")]
    Syntax {
        line: usize,
        instruction: &'static str,
        message: String,
    },
    #[error(
        "line {line}: ADD {url}: remote sources are not supported; download the file into the build context and COPY it"
    )]
    RemoteAdd { line: usize, url: String },
    #[error(
        "line {line}: ADD {path}: ferry does not auto-extract archives; extract it into the build context and COPY the result, or COPY the archive as a file"
    )]
    AddArchive { line: usize, path: String },
    #[error(
        "line {line}: {instruction} source `{path}` is outside the build context; move it into the context directory"
    )]
    OutsideContext {
        line: usize,
        instruction: &'static str,
        path: String,
    },
    #[error("line {line}: {instruction}: {source}")]
    Shell {
        line: usize,
        instruction: &'static str,
        #[source]
        source: shell::ShellError,
    },
}
