//! The bootstrap step on one host: `/etc/hosts` entries, the image's hooks
//! run as sealos runs them (`cd <rootfs>/scripts && bash <label value>`
//! with the host's env) and the registry on registry hosts. The host's
//! templates are rendered before it (at the tail of distribute, per host); the image commands
//! are the guest step (`guest`).

use std::collections::BTreeMap;
use std::time::Duration;

use ferry_shared::clusterfile::{ROLE_MASTER, ResolvedHost};
use ferry_shared::image::Hook;
use ferry_shared::pipeline::Step;

use super::node::{self, Cmd, NodeRef};
use super::{Ctx, PipelineError};

pub const REGISTRY_HOST: &str = "sealos.hub";
/// How long init-registry may take to open the registry port (sealos: 120 s).
const REGISTRY_WAIT_SECS: u32 = 120;

/// The hook's command line, or None when the image neither labels it nor
/// ships the default script (optional hooks run only when labelled).
pub fn hook_command(ctx: &Ctx, hook: Hook, env: &BTreeMap<String, String>) -> Option<String> {
    let labelled = ctx
        .labels
        .get(hook.label())
        .is_some_and(|v| !v.trim().is_empty());
    if !labelled {
        let optional = matches!(hook, Hook::InitCri | Hook::CleanCri);
        let exists = ctx
            .mount_rootfs
            .join("scripts")
            .join(hook.default_script())
            .is_file();
        if optional || !exists {
            return None;
        }
    }
    Some(hook.command(&ctx.labels, env))
}

/// Runs one hook on the node (cwd = `<rootfs>/scripts`).
pub async fn run_hook(
    ctx: &Ctx,
    n: &NodeRef,
    step: Step,
    hook: Hook,
    env: &BTreeMap<String, String>,
) -> Result<(), PipelineError> {
    let Some(line) = hook_command(ctx, hook, env) else {
        return Ok(());
    };
    // What is shown never carries a secret-looking env value.
    let shown = ferry_shared::redact_env(&line, env);
    ctx.rec.step_event(
        step,
        &n.host,
        ferry_shared::EventKind::Progress,
        &format!("hook {}: {shown}", hook.label()),
    );
    // The label value is a shell command line by definition (sealos runs
    // `bash <value>`), so it goes through bash -c.
    let mut cmd = Cmd::new(&["bash", "-c", &format!("bash {line}")])
        .cwd(&format!("{}/scripts", ctx.rootfs_dir()))
        .env(env.clone())
        .display(format!("{} hook: bash {shown}", hook.label()));
    cmd.timeout = Duration::from_secs(900);
    node::run(n, &ctx.tls, &ctx.rec, step, cmd)
        .await
        .map(|_| ())
}

pub async fn bootstrap(ctx: &Ctx, h: &ResolvedHost, n: &NodeRef) -> Result<(), PipelineError> {
    let step = Step::Bootstrap;
    let env = ctx.host_env(h);
    let registry_ip = ctx.registry[0].addr.ip;
    node::hosts_entry(
        n,
        &ctx.tls,
        &ctx.rec,
        step,
        REGISTRY_HOST,
        Some(registry_ip),
    )
    .await?;
    run_hook(ctx, n, step, Hook::Check, &env).await?;
    if ctx.registry.iter().any(|r| r.addr.ip == h.addr.ip) {
        let data = env
            .get("registryData")
            .cloned()
            .unwrap_or_else(|| "/var/lib/registry".into());
        // sealos links the registry data path to the distributed registry tree.
        const LINK: &str = r#"set -e; if [ -L "$2" ] || [ ! -e "$2" ]; then mkdir -p "$1" "$(dirname "$2")"; ln -sfn "$1" "$2"; fi"#;
        let reg_dir = format!("{}/registry", ctx.data_dir);
        node::run(
            n,
            &ctx.tls,
            &ctx.rec,
            step,
            Cmd::script(LINK, &[&reg_dir, &data]),
        )
        .await?;
        run_hook(ctx, n, step, Hook::InitRegistry, &env).await?;
        let port = env
            .get("registryPort")
            .cloned()
            .unwrap_or_else(|| "5000".into());
        const WAIT: &str = r#"i=0; while [ "$i" -lt "$2" ]; do if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then exit 0; fi; i=$((i+1)); sleep 1; done; echo "registry port $1 not open after $2 s" >&2; exit 1"#;
        let wait = Cmd::new(&[
            "bash",
            "-c",
            WAIT,
            "wait",
            &port,
            &REGISTRY_WAIT_SECS.to_string(),
        ])
        .display(format!("wait for the registry on :{port}"));
        node::run(n, &ctx.tls, &ctx.rec, step, wait).await?;
    }
    run_hook(ctx, n, step, Hook::InitCri, &env).await?;
    let api_ip = if h.has_role(ROLE_MASTER) {
        ctx.master0.addr.ip
    } else {
        ctx.vip
    };
    node::hosts_entry(
        n,
        &ctx.tls,
        &ctx.rec,
        step,
        super::kube::API_HOST,
        Some(api_ip),
    )
    .await?;
    run_hook(ctx, n, step, Hook::Init, &env).await
}
