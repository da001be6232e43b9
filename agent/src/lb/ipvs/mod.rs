//! The IPVS backend, programmed over generic netlink ([`genl`], [`msg`];
//! no `ipvsadm` at runtime). One TCP virtual service per VIP with NAT
//! destinations; `apply` dumps what the kernel holds, diffs it with the
//! desired rules ([`plan`]) and sends only the changes, so re-applying the
//! same rules sends nothing and established connections are never cut.
//! Draining members keep weight 0 (IPVS sends them no new connections).
//! The VIP is made reachable with [`super::vip`] (route or link mode).

pub mod genl;
pub mod msg;
pub mod plan;

use std::net::SocketAddrV4;
use std::path::Path;
use std::sync::Mutex;

use ferry_shared::lb::{LbRules, Scheduler};

use super::LbError;
use super::backend::Backend;
use super::vip::{self, VipMode};
use genl::{Genl, GenlError, NLM_F_ACK, NLM_F_DUMP};
use msg::Dest;
pub use plan::{KernelService, Op, plan};

const PROC_FILE: &str = "/proc/net/ip_vs";

pub struct IpvsBackend {
    prefix: Vec<String>,
    mode: VipMode,
    /// The VIP this backend programs (so a new VIP replaces the old one and
    /// `clear` knows what to remove).
    owned: Mutex<Option<SocketAddrV4>>,
}

/// An open netlink socket with the IPVS family resolved.
struct Ipvs {
    nl: Genl,
    family: u16,
}

impl Ipvs {
    fn open() -> Result<Self, GenlError> {
        let mut nl = Genl::open()?;
        let family = nl.resolve(msg::FAMILY)?;
        Ok(Self { nl, family })
    }

    fn call(&mut self, cmd: u8, attrs: &genl::Attrs, what: &str) -> Result<(), GenlError> {
        self.nl
            .request(self.family, NLM_F_ACK, cmd, msg::VERSION, attrs, what)
            .map(drop)
    }

    /// The service at `vip` with its destinations, if the kernel has it.
    fn service(&mut self, vip: SocketAddrV4) -> Result<Option<KernelService>, GenlError> {
        // A targeted GET_SERVICE (not a dump of every service: nodes with
        // kube-proxy in IPVS mode hold thousands); ESRCH = not there.
        let services = match self.nl.request(
            self.family,
            NLM_F_ACK,
            msg::CMD_GET_SERVICE,
            msg::VERSION,
            &msg::service_only(vip),
            "the IPVS service lookup",
        ) {
            Err(GenlError::Kernel { source, .. })
                if source.raw_os_error() == Some(rustix::io::Errno::SRCH.raw_os_error()) =>
            {
                return Ok(None);
            }
            r => r?,
        };
        let mut found = None;
        for (_, body) in &services {
            if let Some(s) = msg::parse_service(body)?.filter(|s| s.vip == vip) {
                found = Some(s);
            }
        }
        let Some(service) = found else {
            return Ok(None);
        };
        let dests = self.nl.request(
            self.family,
            NLM_F_DUMP,
            msg::CMD_GET_DEST,
            msg::VERSION,
            &msg::service_only(vip),
            "the IPVS destination dump",
        )?;
        let mut out: Vec<Dest> = Vec::new();
        for (_, body) in &dests {
            out.extend(msg::parse_dest(body)?);
        }
        Ok(Some(KernelService {
            service,
            dests: out,
        }))
    }

    fn execute(&mut self, op: &Op) -> Result<(), GenlError> {
        let what = op.to_string();
        match *op {
            Op::NewService { vip, scheduler } => self.call(
                msg::CMD_NEW_SERVICE,
                &msg::service_full(vip, scheduler),
                &what,
            ),
            Op::SetService { vip, scheduler } => self.call(
                msg::CMD_SET_SERVICE,
                &msg::service_full(vip, scheduler),
                &what,
            ),
            Op::DelService { vip } => {
                self.call(msg::CMD_DEL_SERVICE, &msg::service_only(vip), &what)
            }
            Op::NewDest { vip, addr, weight } => {
                self.call(msg::CMD_NEW_DEST, &msg::dest(vip, addr, weight), &what)
            }
            Op::SetDest { vip, addr, weight } => {
                self.call(msg::CMD_SET_DEST, &msg::dest(vip, addr, weight), &what)
            }
            Op::DelDest { vip, addr } => {
                self.call(msg::CMD_DEL_DEST, &msg::dest(vip, addr, 0), &what)
            }
        }
    }
}

/// Runs blocking netlink work off the async runtime.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce(&mut Ipvs) -> Result<T, GenlError> + Send + 'static,
) -> Result<T, LbError> {
    tokio::task::spawn_blocking(move || {
        let mut ipvs = Ipvs::open()?;
        f(&mut ipvs)
    })
    .await
    .map_err(|e| LbError::Ipvs(GenlError::Malformed(format!("netlink task failed: {e}"))))?
    .map_err(LbError::Ipvs)
}

impl IpvsBackend {
    pub fn new(prefix: Vec<String>, mode: VipMode) -> Self {
        Self {
            prefix,
            mode,
            owned: Mutex::new(None),
        }
    }

    fn owned(&self) -> std::sync::MutexGuard<'_, Option<SocketAddrV4>> {
        self.owned.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether this kernel has IPVS: the generic netlink family resolves,
    /// or the `ip_vs` module's `/proc/net/ip_vs` exists.
    pub fn detect() -> Result<(), LbError> {
        match Ipvs::open() {
            Ok(_) => Ok(()),
            Err(e) => Self::detect_at(Path::new(PROC_FILE)).map_err(|_| {
                LbError::IpvsUnavailable(format!(
                    "{e}; {PROC_FILE} is missing too: load the ip_vs module (`modprobe ip_vs`)"
                ))
            }),
        }
    }

    fn detect_at(proc_file: &Path) -> Result<(), LbError> {
        if proc_file.exists() {
            Ok(())
        } else {
            Err(LbError::IpvsUnavailable(format!(
                "{} is missing: the ip_vs module is not loaded or not built",
                proc_file.display()
            )))
        }
    }

    /// Removes the service at `vip` and the VIP's route/link (nothing
    /// there is fine). Used by `clear` and by `ferry-agent lb-reset`.
    /// Returns whether the service existed.
    pub async fn remove(prefix: &[String], vip: SocketAddrV4) -> Result<bool, LbError> {
        let existed = blocking(move |k| match k.service(vip)? {
            Some(_) => k.execute(&Op::DelService { vip }).map(|()| true),
            None => Ok(false),
        })
        .await?;
        vip::remove(prefix, *vip.ip()).await?;
        Ok(existed)
    }
}

#[tonic::async_trait]
impl Backend for IpvsBackend {
    fn name(&self) -> &'static str {
        "ipvs"
    }

    async fn apply(&self, rules: &LbRules) -> Result<(), LbError> {
        let want = rules.effective();
        let previous = *self.owned();
        if let Some(old) = previous.filter(|old| *old != want.vip) {
            Self::remove(&self.prefix, old).await?;
            *self.owned() = None;
        }
        let target = want.clone();
        blocking(move |k| {
            let current = k.service(target.vip)?;
            for op in plan(current.as_ref(), &target) {
                k.execute(&op)?;
            }
            Ok(())
        })
        .await?;
        *self.owned() = Some(want.vip);
        if let Some(first) = want.members.keys().next() {
            vip::ensure(&self.prefix, self.mode, *want.vip.ip(), *first.ip()).await?;
        }
        Ok(())
    }

    async fn read(&self) -> Result<Option<LbRules>, LbError> {
        let Some(vip) = *self.owned() else {
            return Ok(None);
        };
        let Some(cur) = blocking(move |k| k.service(vip)).await? else {
            return Ok(None);
        };
        let scheduler: Scheduler = cur.service.scheduler.parse().map_err(|e| LbError::Parse {
            argv: format!("IPVS service {vip}"),
            detail: format!("{e}"),
        })?;
        Ok(Some(LbRules {
            vip,
            scheduler,
            members: cur.dests.iter().map(|d| (d.addr, d.weight)).collect(),
        }))
    }

    async fn clear(&self) -> Result<(), LbError> {
        let owned = *self.owned();
        if let Some(vip) = owned {
            Self::remove(&self.prefix, vip).await?;
        }
        *self.owned() = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
