//! The IPVS diff: what the kernel holds for one VIP against the desired
//! (effective) rules, as the minimal list of netlink operations. Pure.

use std::fmt;
use std::net::SocketAddrV4;

use ferry_shared::lb::{LbRules, Scheduler};

use super::msg::{Dest, FWD_MASQ, Service};

/// One virtual service as dumped from the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelService {
    pub service: Service,
    pub dests: Vec<Dest>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    NewService {
        vip: SocketAddrV4,
        scheduler: Scheduler,
    },
    SetService {
        vip: SocketAddrV4,
        scheduler: Scheduler,
    },
    DelService {
        vip: SocketAddrV4,
    },
    NewDest {
        vip: SocketAddrV4,
        addr: SocketAddrV4,
        weight: u32,
    },
    SetDest {
        vip: SocketAddrV4,
        addr: SocketAddrV4,
        weight: u32,
    },
    DelDest {
        vip: SocketAddrV4,
        addr: SocketAddrV4,
    },
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::NewService { vip, scheduler } => {
                write!(f, "adding IPVS service {vip} ({scheduler})")
            }
            Op::SetService { vip, scheduler } => {
                write!(f, "setting IPVS service {vip} to scheduler {scheduler}")
            }
            Op::DelService { vip } => write!(f, "deleting IPVS service {vip}"),
            Op::NewDest { vip, addr, weight } => {
                write!(f, "adding {addr} (weight {weight}) to IPVS service {vip}")
            }
            Op::SetDest { vip, addr, weight } => {
                write!(f, "setting {addr} of IPVS service {vip} to weight {weight}")
            }
            Op::DelDest { vip, addr } => write!(f, "removing {addr} from IPVS service {vip}"),
        }
    }
}

/// The operations turning `current` into `want` (whose weights are taken
/// as they are: pass [`LbRules::effective`]). Removals come first, so a
/// member never serves under two identities; nothing when they agree.
pub fn plan(current: Option<&KernelService>, want: &LbRules) -> Vec<Op> {
    let vip = want.vip;
    let mut ops = Vec::new();
    let Some(cur) = current else {
        ops.push(Op::NewService {
            vip,
            scheduler: want.scheduler,
        });
        ops.extend(want.members.iter().map(|(addr, weight)| Op::NewDest {
            vip,
            addr: *addr,
            weight: *weight,
        }));
        return ops;
    };
    if cur.service.scheduler != want.scheduler.as_str() {
        ops.push(Op::SetService {
            vip,
            scheduler: want.scheduler,
        });
    }
    for d in &cur.dests {
        if !want.members.contains_key(&d.addr) {
            ops.push(Op::DelDest { vip, addr: d.addr });
        }
    }
    for (addr, weight) in &want.members {
        match cur.dests.iter().find(|d| d.addr == *addr) {
            None => ops.push(Op::NewDest {
                vip,
                addr: *addr,
                weight: *weight,
            }),
            Some(d) if d.weight != *weight || d.fwd != FWD_MASQ => ops.push(Op::SetDest {
                vip,
                addr: *addr,
                weight: *weight,
            }),
            Some(_) => {}
        }
    }
    ops
}
