//! The backend trait: whatever programs the kernel. Both backends are
//! idempotent: `apply` the same rules twice is a no-op for traffic.

use std::sync::Arc;

use ferry_shared::lb::{BackendKind, LbRules};

use super::LbError;
use super::ipvs::IpvsBackend;
use super::nft::NftBackend;
use super::vip::VipMode;

#[tonic::async_trait]
pub trait Backend: Send + Sync {
    /// The backend's name as reported in status ("nftables", "ipvs").
    fn name(&self) -> &'static str;
    /// Programs exactly `rules` (replacing whatever this backend had) and
    /// makes the VIP routable from the node itself.
    async fn apply(&self, rules: &LbRules) -> Result<(), LbError>;
    /// The rules in the kernel now (None: nothing programmed).
    async fn read(&self) -> Result<Option<LbRules>, LbError>;
    /// Removes the rules and the VIP route.
    async fn clear(&self) -> Result<(), LbError>;
}

/// Builds the backend for a desired [`BackendKind`].
pub trait BackendFactory: Send + Sync {
    fn backend(&self, kind: BackendKind) -> Result<Arc<dyn Backend>, LbError>;
}

/// The real backends. `prefix` is prepended to every command (tests run
/// them in a network namespace with `ip netns exec NAME`); `vip_mode` is
/// how the IPVS backend makes the VIP reachable (nftables always routes).
#[derive(Debug, Clone, Default)]
pub struct SystemBackends {
    pub prefix: Vec<String>,
    pub vip_mode: VipMode,
}

impl BackendFactory for SystemBackends {
    fn backend(&self, kind: BackendKind) -> Result<Arc<dyn Backend>, LbError> {
        let ipvs = || -> Arc<dyn Backend> {
            Arc::new(IpvsBackend::new(self.prefix.clone(), self.vip_mode))
        };
        match kind {
            BackendKind::Nftables => Ok(Arc::new(NftBackend::new(self.prefix.clone()))),
            BackendKind::Ipvs => IpvsBackend::detect().map(|()| ipvs()),
            // IPVS where the kernel has it (as lvscare), else nftables.
            BackendKind::Auto => Ok(match IpvsBackend::detect() {
                Ok(()) => ipvs(),
                Err(_) => Arc::new(NftBackend::new(self.prefix.clone())),
            }),
        }
    }
}
