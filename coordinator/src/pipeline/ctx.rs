//! Everything the steps share: the resolved cluster, agents, images, env.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use ferry_shared::clusterfile::{Clusterfile, ROLE_MASTER, ROLE_NODE, ResolvedHost};
use ferry_shared::image::{EnvLayers, ImageStack, ImageType, SysEnv, run_mode};
use ferry_shared::pipeline::digest;
use serde_yaml_ng::Value;

use super::images::{ImageSource, LoadedImage, Mounts};
use super::journal::Recorder;
use super::node::NodeRef;
use crate::client::ClientTls;
use crate::install::InstallCtx;
use crate::ssh::SshTarget;
use crate::state::ClusterState;

pub const DEFAULT_VIP: &str = ferry_shared::image::labels::DEFAULT_VIP_TEXT;

/// What a command hands the pipeline.
pub struct Inputs {
    pub cf: Clusterfile,
    pub cli_env: Vec<String>,
    pub concurrency: usize,
    /// How a Kubernetes upgrade treats nodes.
    pub upgrade: super::upgrade::UpgradeOpts,
    /// How the distribute step relays trees (`--topology`).
    pub topology: ferry_shared::transfer::Topology,
    pub install: Arc<InstallCtx>,
    /// SSH target of every host, or why it has none (used only for hosts
    /// whose agent does not answer).
    pub targets: BTreeMap<IpAddr, Result<SshTarget, String>>,
    pub images: Arc<dyn ImageSource>,
}

pub struct Ctx {
    pub rec: Recorder,
    pub tls: ClientTls,
    pub state: ClusterState,
    pub cf: Clusterfile,
    pub hosts: Vec<ResolvedHost>,
    pub master0: ResolvedHost,
    pub registry: Vec<ResolvedHost>,
    pub nodes: BTreeMap<IpAddr, NodeRef>,
    pub hostnames: BTreeMap<IpAddr, String>,
    /// Kubernetes arch name per host (agent Facts).
    pub arches: BTreeMap<IpAddr, String>,
    pub images: Vec<LoadedImage>,
    pub mounts: Mounts,
    pub mount_rootfs: PathBuf,
    pub labels: BTreeMap<String, String>,
    pub env: EnvLayers,
    pub kube_version: String,
    pub vip: IpAddr,
    pub kube_overlays: Vec<Value>,
    /// Init system and kernel features of the hosts (check step).
    pub host_traits: ferry_shared::kubeadm::HostTraits,
    /// `--cmd` / `spec.command` per image ([`super::guest::command_overrides`]).
    pub command_overrides: BTreeMap<String, Vec<String>>,
    /// Digest of the Config documents.
    pub configs_digest: String,
    /// This run upgrades Kubernetes (the rootfs' version is newer than the
    /// cluster's; `upgrade::detect`).
    pub upgrade: Option<ferry_shared::kubeadm::Upgrade>,
    pub upgrade_opts: super::upgrade::UpgradeOpts,
    pub data_dir: String,
    pub concurrency: usize,
    /// Digest of images + Config docs + cluster env.
    pub base_digest: String,
}

impl Ctx {
    pub fn masters(&self) -> Vec<&ResolvedHost> {
        self.hosts
            .iter()
            .filter(|h| h.has_role(ROLE_MASTER))
            .collect()
    }

    pub fn workers(&self) -> Vec<&ResolvedHost> {
        self.hosts
            .iter()
            .filter(|h| h.has_role(ROLE_NODE))
            .collect()
    }

    pub fn node(&self, h: &ResolvedHost) -> Option<&NodeRef> {
        self.nodes.get(&h.addr.ip)
    }

    pub fn hostname(&self, ip: IpAddr) -> String {
        self.hostnames
            .get(&ip)
            .cloned()
            .unwrap_or_else(|| ip.to_string())
    }

    pub fn rootfs_dir(&self) -> String {
        format!("{}/rootfs", self.data_dir)
    }

    pub fn app_dir(&self, image: &str) -> Option<String> {
        self.mounts
            .apps
            .iter()
            .position(|(n, _)| n == image)
            .map(|i| {
                let base = self.mounts.apps[i]
                    .1
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default();
                format!("{}/applications/{base}/workdir", self.data_dir)
            })
    }

    /// The rootfs env of one host (hooks, host templates): the rootfs and
    /// patch images' ENV under the cluster layers, the host's `env`, the
    /// SEALOS_SYS built-ins. Application images' ENV is not in it.
    pub fn host_env(&self, h: &ResolvedHost) -> BTreeMap<String, String> {
        let (mut env, _) = self.env.host_env(&h.addr.to_string(), &h.env);
        self.sys_env(h).apply(&mut env);
        env
    }

    /// One image's env on host `h`: its own ENV under the cluster layers,
    /// the host's `env` and the built-ins (never another image's ENV).
    pub fn image_env(&self, img: &LoadedImage, h: &ResolvedHost) -> BTreeMap<String, String> {
        let (mut env, _) = self
            .env
            .for_image(&img.config.env)
            .host_env(&h.addr.to_string(), &h.env);
        self.sys_env(h).apply(&mut env);
        env
    }

    fn sys_env(&self, h: &ResolvedHost) -> SysEnv {
        SysEnv {
            kube_version: Some(self.kube_version.clone()),
            sealos_version: Some(env!("CARGO_PKG_VERSION").to_string()),
            run_mode: Some(run_mode(
                &h.roles,
                self.arches.get(&h.addr.ip).map(String::as_str),
            )),
        }
    }

    /// Inputs of the rootfs tree as distributed: the rootfs and patch
    /// images, the Config documents and the cluster env it is rendered with.
    pub fn rootfs_job_digest(&self) -> String {
        let (env, _) = self.env.cluster_env();
        digest(&[
            "rootfs",
            &self.bootstrap_digest(),
            &self.configs_digest,
            &format!("{env:?}"),
        ])
    }

    /// Inputs of an application's tree: the image, the Config documents
    /// and the image's own env.
    pub fn app_job_digest(&self, img: &LoadedImage) -> String {
        let (env, _) = self.env.for_image(&img.config.env).cluster_env();
        digest(&[
            "app",
            &img.digest,
            &self.configs_digest,
            &format!("{env:?}"),
        ])
    }

    /// Inputs of the registry data: the digests of the images that carry
    /// a `registry/` (an app without one does not sync the registry).
    pub fn registry_job_digest(&self) -> String {
        let with: Vec<&str> = self
            .images
            .iter()
            .filter(|i| i.root.join("registry").is_dir())
            .map(|i| i.digest.as_str())
            .collect();
        digest(&["registry", &with.join(",")])
    }

    /// Digest of what a host's bootstrap depends on.
    pub fn host_digest(&self, h: &ResolvedHost, extra: &str) -> String {
        let env = format!("{:?}", self.host_env(h));
        let reg = self
            .registry
            .iter()
            .map(|r| r.addr.ip.to_string())
            .collect::<Vec<_>>()
            .join(",");
        digest(&[
            &self.base_digest,
            &env,
            &h.roles.join(","),
            &reg,
            &self.master0.addr.ip.to_string(),
            &self.vip.to_string(),
            extra,
        ])
    }

    /// Digest of what a host's bootstrap (check, init-registry, init-cri,
    /// init hooks) depends on: the rootfs only ([`rootfs_digest`]). Env,
    /// Config documents and application images do not re-run it on a live
    /// node, whose ports labring's check.sh refuses; new hosts and hosts
    /// torn down (journaled undone) have no matching record and run it.
    pub fn bootstrap_digest(&self) -> String {
        rootfs_digest(&self.images)
    }

    pub fn stack(images: &[LoadedImage]) -> Result<ImageStack, String> {
        ImageStack::new(images.iter().map(|i| i.config.clone()).collect())
            .map_err(|e| e.to_string())
    }
}

/// Digest of the rootfs and patch images (everything laid into the rootfs
/// mount), in the user's order; application images do not count.
pub fn rootfs_digest(images: &[LoadedImage]) -> String {
    let parts: Vec<&str> = images
        .iter()
        .filter(|i| i.config.image_type() != ImageType::Application)
        .map(|i| i.digest.as_str())
        .collect();
    digest(&["bootstrap", &parts.join(",")])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(kind: &str, digest: &str) -> LoadedImage {
        LoadedImage {
            config: ferry_shared::image::ImageConfig {
                name: format!("{kind}-image"),
                labels: [("sealos.io.type".to_string(), kind.to_string())].into(),
                ..Default::default()
            },
            root: PathBuf::from("/nonexistent"),
            digest: digest.to_string(),
            bytes: 0,
            arch: None,
        }
    }

    #[test]
    fn only_rootfs_and_patch_images_change_the_bootstrap_digest() {
        let base = rootfs_digest(&[image("rootfs", "sha256:r1")]);
        let with_app = rootfs_digest(&[
            image("rootfs", "sha256:r1"),
            image("application", "sha256:a"),
        ]);
        assert_eq!(base, with_app, "an added application image");
        let app_changed = rootfs_digest(&[
            image("rootfs", "sha256:r1"),
            image("application", "sha256:b"),
        ]);
        assert_eq!(base, app_changed, "a changed application image");
        assert_ne!(
            base,
            rootfs_digest(&[image("rootfs", "sha256:r2")]),
            "a new rootfs"
        );
        let patched = rootfs_digest(&[image("rootfs", "sha256:r1"), image("patch", "sha256:p")]);
        assert_ne!(base, patched, "a patch image changes the rootfs");
    }
}
