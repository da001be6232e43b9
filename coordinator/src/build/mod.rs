//! `ferry build`: cluster images from a Kubefile without a container
//! runtime (what `sealos build` does with buildah for `FROM scratch` and
//! `FROM <cluster image>` Kubefiles).
//!
//! - `tree` — the Kubefile's COPY/ADD steps resolved against the build
//!   context (ignore files applied, symlinks kept, nothing outside the
//!   context) into one sorted tree.
//! - `layer` — that tree as a reproducible tar layer (fixed mtime, 0:0,
//!   sorted), gzip or zstd, digests computed while streaming.
//! - `registry_dir` — docker-distribution v2 storage layout writer.
//! - `collect` — images named by `images/shim/*`, `manifests/`,
//!   `images/skopeo/tar.txt`, copied from the store into `registry/`.
//! - `image` — layer + OCI config + manifest into the local store.
//! - `run` — the whole flow (checks first, pulls, collection, assembly,
//!   tags); `args` — the CLI flags.
//!
//! Invariant: the same context, Kubefile and build args give the same
//! image digest (no timestamps unless `SOURCE_DATE_EPOCH` is set).
//! Invariant: a hostile Kubefile or context (RUN, remote ADD, sources
//! outside the context, escaping symlinks) is refused before anything is
//! written.

pub mod args;
pub mod collect;
pub mod image;
pub mod layer;
pub mod registry_dir;
pub mod run;
pub mod tree;

#[cfg(test)]
mod tests;
