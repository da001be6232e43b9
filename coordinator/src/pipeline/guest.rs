//! The guest step: every image's ENTRYPOINT + CMD, as sealos' guest phase
//! runs them ([`ferry_shared::image::guest`]), journaled per image and host
//! (`<host>#<image>` of the guest step):
//!
//! - images in `spec.image` order; rootfs/patch images on every host (in
//!   parallel, bounded), applications once on master0; a failing image
//!   stops the images after it (they may need it: helm before its charts);
//! - an image runs again only when its inputs changed: the image content,
//!   the expanded command line (env, `--cmd`), or for an application its
//!   rendered tree. A plain re-run runs nothing; a new image runs alone;
//!   a failed one is retried alone;
//! - a failure is the image's, not the cluster's: the Clusterfile keeps
//!   `ClusterSuccess` and records an `ApplyCommandError` command condition
//!   (sealos' rule), and the run exits non-zero.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ferry_shared::clusterfile::{Clusterfile, ResolvedHost};
use ferry_shared::image::{GuestImage, GuestTarget, shell_line};
use ferry_shared::pipeline::{Step, digest};
use serde_yaml_ng::Value;

use super::images::LoadedImage;
use super::node::{self, Cmd, NodeRef};
use super::steps::{Unit, per_host_part};
use super::{Ctx, PipelineError};

/// How long one image's command line may run (helm --wait included).
const GUEST_TIMEOUT: Duration = Duration::from_secs(1800);
/// `metadata.annotations` key of the `--cmd` overrides given to images
/// installed onto a running cluster (JSON object: image → commands).
pub const CMD_ANNOTATION: &str = "ferry.dev/image-commands";

/// The journal part of an image's commands: the image name.
pub fn part(img: &LoadedImage) -> String {
    img.config.name.clone()
}

/// The `--cmd` overrides per image: `spec.command` for the first image,
/// then those recorded for images added later.
pub fn command_overrides(cf: &Clusterfile) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = cf
        .cluster
        .metadata
        .extra
        .get("annotations")
        .and_then(|a| a.get(CMD_ANNOTATION))
        .and_then(Value::as_str)
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default();
    if let Some(first) = cf.cluster.spec.image.first()
        && !cf.cluster.spec.command.is_empty()
    {
        out.insert(first.clone(), cf.cluster.spec.command.clone());
    }
    out
}

/// Records `--cmd` for `image` (installed onto a running cluster): later
/// runs compute the same command line, so they do not run it again.
pub fn set_command_override(cf: &mut Clusterfile, image: &str, cmd: &[String]) {
    let meta = &mut cf.cluster.metadata.extra;
    let mut all: BTreeMap<String, Vec<String>> = meta
        .get("annotations")
        .and_then(|a| a.get(CMD_ANNOTATION))
        .and_then(Value::as_str)
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default();
    all.insert(image.to_string(), cmd.to_vec());
    let text = serde_json::to_string(&all).unwrap_or_default();
    let ann = meta
        .entry("annotations".to_string())
        .or_insert_with(|| Value::Mapping(Default::default()));
    if !ann.is_mapping() {
        *ann = Value::Mapping(Default::default());
    }
    if let Value::Mapping(m) = ann {
        m.insert(Value::from(CMD_ANNOTATION), Value::from(text));
    }
}

/// The image's command line on host `h` (None: nothing to run there).
pub fn line(ctx: &Ctx, img: &LoadedImage, h: &ResolvedHost) -> Option<String> {
    let workdir = match GuestTarget::of(img.config.image_type()) {
        GuestTarget::AllHosts => ctx.rootfs_dir(),
        GuestTarget::Master0 if h.addr.ip == ctx.master0.addr.ip => {
            ctx.app_dir(&img.config.name)?
        }
        GuestTarget::Master0 => return None,
    };
    let g = GuestImage {
        entrypoint: img.config.entrypoint.clone(),
        cmd: img.config.cmd.clone(),
        cmd_override: ctx
            .command_overrides
            .get(&img.config.name)
            .cloned()
            .unwrap_or_default(),
    };
    shell_line(&g.lines(&workdir, &ctx.image_env(img, h)))
}

/// What makes an image's commands run again on a host.
fn inputs(ctx: &Ctx, img: &LoadedImage, line: &str) -> String {
    let tree = match GuestTarget::of(img.config.image_type()) {
        GuestTarget::Master0 => ctx.app_job_digest(img),
        GuestTarget::AllHosts => String::new(),
    };
    digest(&["guest", &img.digest, line, &tree])
}

/// Runs the images' commands in order; returns the images that ran.
pub async fn run_all(ctx: &Arc<Ctx>) -> Result<Vec<String>, PipelineError> {
    let mut ran = Vec::new();
    for img in &ctx.images {
        let hosts: Vec<ResolvedHost> = ctx
            .hosts
            .iter()
            .filter(|h| line(ctx, img, h).is_some())
            .cloned()
            .collect();
        if hosts.is_empty() {
            continue;
        }
        let p = part(img);
        let image = Arc::new(img.clone());
        let i2 = image.clone();
        let res = per_host_part(
            ctx,
            Unit {
                step: Step::Guest,
                part: &p,
                once: false,
            },
            hosts,
            move |c, h| {
                line(c, &i2, h)
                    .map(|l| inputs(c, &i2, &l))
                    .unwrap_or_default()
            },
            move |c, h, n| {
                let img = image.clone();
                async move { run_one(&c, &img, &h, &n).await }
            },
        )
        .await;
        match res {
            Ok(0) => {}
            Ok(_) => ran.push(img.config.name.clone()),
            Err(e) => {
                return Err(PipelineError::Guest {
                    image: img.config.name.clone(),
                    source: Box::new(e),
                });
            }
        }
    }
    Ok(ran)
}

async fn run_one(
    ctx: &Ctx,
    img: &LoadedImage,
    h: &ResolvedHost,
    n: &NodeRef,
) -> Result<(), PipelineError> {
    let Some(l) = line(ctx, img, h) else {
        return Ok(());
    };
    // The image's commands are shell text by definition (sealos runs them
    // through the login shell), with the image's env exported.
    let env = ctx.image_env(img, h);
    let shown = ferry_shared::redact_env(&l, &env);
    let mut cmd = Cmd::new(&["bash", "-c", &l])
        .env(env)
        .display(format!("{} CMD: {shown}", img.config.name));
    cmd.timeout = GUEST_TIMEOUT;
    node::run(n, &ctx.tls, &ctx.rec, Step::Guest, cmd)
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cf(spec_command: &[&str]) -> Clusterfile {
        let text = format!(
            "apiVersion: apps.sealos.io/v1beta1\nkind: Cluster\nmetadata: {{name: c}}\nspec:\n  image: [k8s, app]\n  command: {spec_command:?}\n"
        );
        Clusterfile::parse(&text).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn spec_command_overrides_the_first_image_only() {
        let o = command_overrides(&cf(&["echo hi"]));
        assert_eq!(o.get("k8s"), Some(&vec!["echo hi".to_string()]));
        assert_eq!(o.get("app"), None);
        assert!(command_overrides(&cf(&[])).is_empty());
    }

    #[test]
    fn overrides_of_later_images_survive_a_round_trip() {
        let mut c = cf(&[]);
        set_command_override(&mut c, "app", &["kubectl apply -f x.yaml".to_string()]);
        set_command_override(&mut c, "app2", &["true".to_string()]);
        let text = c.to_yaml(true).unwrap_or_else(|e| panic!("{e}"));
        let back = Clusterfile::parse(&text).unwrap_or_else(|e| panic!("{e}"));
        let o = command_overrides(&back);
        assert_eq!(
            o.get("app"),
            Some(&vec!["kubectl apply -f x.yaml".to_string()])
        );
        assert_eq!(o.get("app2"), Some(&vec!["true".to_string()]));
    }
}
