//! `ferry-agent lb-reset`: removes everything the load balancer put on the
//! node, whichever backend put it there, without a running agent (used by
//! `ferry agent uninstall` after the agent is stopped): the nftables table,
//! the IPVS service of the persisted VIP, the VIP route and dummy link, and
//! the persisted state. Missing pieces are fine; running it twice is a no-op.

use std::path::Path;

use super::LbError;
use super::ipvs::IpvsBackend;
use super::nft::run;
use super::nft_rules::TABLE;
use super::store::Store;
use super::vip;

/// What `reset` removed, for the command's output.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reset {
    pub removed: Vec<String>,
}

/// Clears the kernel state of both backends and the state under `dir`.
/// `prefix` is prepended to commands (tests: `ip netns exec NAME`).
pub async fn reset(dir: &Path, prefix: &[String]) -> Result<Reset, LbError> {
    let mut out = Reset::default();
    let store = Store::new(dir);
    // A corrupt state file still gets removed; only its VIP is unknown.
    let spec = store.load().ok().flatten();

    match run(prefix, &["nft", "delete", "table", "ip", TABLE], "").await {
        Ok(r) if r.ok => out.removed.push(format!("nftables table ip {TABLE}")),
        Ok(r) if r.stderr.contains("No such file or directory") => {}
        Ok(r) => {
            r.require()?;
        }
        // No `nft` on this node: nothing of ours can be there.
        Err(LbError::Spawn { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    if let Some(spec) = &spec {
        if IpvsBackend::detect().is_ok() && IpvsBackend::remove(prefix, spec.vip).await? {
            out.removed.push(format!("IPVS service {}", spec.vip));
        }
        vip::remove(prefix, *spec.vip.ip()).await?;
        out.removed
            .push(format!("VIP route/link of {}", spec.vip.ip()));
    } else {
        vip::unlink(prefix).await?;
    }
    if store.path().exists() {
        store.remove()?;
        out.removed.push(store.path().display().to_string());
    }
    Ok(out)
}
