//! The IPVS generic netlink family (`include/uapi/linux/ip_vs.h`): TCP
//! IPv4 virtual services and their NAT ("masquerading") destinations, as
//! lvscare programs them. Pure encoding/decoding.

use std::net::{Ipv4Addr, SocketAddrV4};

use ferry_shared::lb::Scheduler;

use super::genl::{Attr, Attrs, GenlError, parse_attrs};

pub const FAMILY: &str = "IPVS";
pub const VERSION: u8 = 1;

pub const CMD_NEW_SERVICE: u8 = 1;
pub const CMD_SET_SERVICE: u8 = 2;
pub const CMD_DEL_SERVICE: u8 = 3;
pub const CMD_GET_SERVICE: u8 = 4;
pub const CMD_NEW_DEST: u8 = 5;
pub const CMD_SET_DEST: u8 = 6;
pub const CMD_DEL_DEST: u8 = 7;
pub const CMD_GET_DEST: u8 = 8;

const CMD_ATTR_SERVICE: u16 = 1;
const CMD_ATTR_DEST: u16 = 2;

const SVC_AF: u16 = 1;
const SVC_PROTOCOL: u16 = 2;
const SVC_ADDR: u16 = 3;
const SVC_PORT: u16 = 4;
const SVC_SCHED_NAME: u16 = 6;
const SVC_FLAGS: u16 = 7;
const SVC_TIMEOUT: u16 = 8;
const SVC_NETMASK: u16 = 9;

const DEST_ADDR: u16 = 1;
const DEST_PORT: u16 = 2;
const DEST_FWD_METHOD: u16 = 3;
const DEST_WEIGHT: u16 = 4;
const DEST_U_THRESH: u16 = 5;
const DEST_L_THRESH: u16 = 6;
const DEST_ADDR_FAMILY: u16 = 11;

const AF_INET: u16 = 2;
const IPPROTO_TCP: u16 = 6;
/// `IP_VS_CONN_F_MASQ`: NAT, so a member's port may differ from the VIP's.
pub const FWD_MASQ: u32 = 0;
const FWD_MASK: u32 = 0x7;

/// `union nf_inet_addr`: 16 bytes, IPv4 in the first four.
fn inet_addr(ip: Ipv4Addr) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..4].copy_from_slice(&ip.octets());
    b
}

fn parse_ip(a: &Attr<'_>) -> Option<Ipv4Addr> {
    let o: [u8; 4] = a.payload.get(..4)?.try_into().ok()?;
    Some(Ipv4Addr::from(o))
}

/// What identifies a TCP/IPv4 virtual service.
fn service_key(vip: SocketAddrV4) -> Attrs {
    let mut a = Attrs::default();
    a.u16(SVC_AF, AF_INET)
        .u16(SVC_PROTOCOL, IPPROTO_TCP)
        .bytes(SVC_ADDR, &inet_addr(*vip.ip()))
        .be16(SVC_PORT, vip.port());
    a
}

/// Attributes of `IPVS_CMD_NEW_SERVICE`/`SET_SERVICE` (full entry: the
/// kernel wants scheduler, flags, timeout and netmask).
pub fn service_full(vip: SocketAddrV4, scheduler: Scheduler) -> Attrs {
    let mut svc = service_key(vip);
    let mut flags = [0u8; 8];
    flags[4..].copy_from_slice(&u32::MAX.to_ne_bytes());
    svc.string(SVC_SCHED_NAME, scheduler.as_str())
        .bytes(SVC_FLAGS, &flags)
        .u32(SVC_TIMEOUT, 0)
        .u32(SVC_NETMASK, u32::MAX);
    let mut top = Attrs::default();
    top.nested(CMD_ATTR_SERVICE, &svc);
    top
}

/// Attributes naming a service (`DEL_SERVICE`, `GET_DEST`).
pub fn service_only(vip: SocketAddrV4) -> Attrs {
    let mut top = Attrs::default();
    top.nested(CMD_ATTR_SERVICE, &service_key(vip));
    top
}

/// Attributes of `NEW_DEST`/`SET_DEST`/`DEL_DEST` for `member` of `vip`.
pub fn dest(vip: SocketAddrV4, member: SocketAddrV4, weight: u32) -> Attrs {
    let mut d = Attrs::default();
    d.bytes(DEST_ADDR, &inet_addr(*member.ip()))
        .be16(DEST_PORT, member.port())
        .u32(DEST_FWD_METHOD, FWD_MASQ)
        .u32(DEST_WEIGHT, weight)
        .u32(DEST_U_THRESH, 0)
        .u32(DEST_L_THRESH, 0)
        .u16(DEST_ADDR_FAMILY, AF_INET);
    let mut top = Attrs::default();
    top.nested(CMD_ATTR_SERVICE, &service_key(vip))
        .nested(CMD_ATTR_DEST, &d);
    top
}

/// A virtual service as dumped by `GET_SERVICE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub vip: SocketAddrV4,
    /// The scheduler name as the kernel reports it (may be one ferry
    /// does not use, for services that are not ours).
    pub scheduler: String,
}

/// A destination as dumped by `GET_DEST`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dest {
    pub addr: SocketAddrV4,
    pub weight: u32,
    /// Forwarding method (`FWD_MASQ` for ferry's).
    pub fwd: u32,
}

fn nested<'a>(body: &'a [u8], kind: u16) -> Result<Option<Vec<Attr<'a>>>, GenlError> {
    match parse_attrs(body)?.into_iter().find(|a| a.kind == kind) {
        Some(a) => Ok(Some(parse_attrs(a.payload)?)),
        None => Ok(None),
    }
}

fn find<'a>(attrs: &[Attr<'a>], kind: u16) -> Option<Attr<'a>> {
    attrs.iter().copied().find(|a| a.kind == kind)
}

/// A `GET_SERVICE` reply body; None for services ferry never programs
/// (IPv6, UDP/SCTP, firewall marks).
pub fn parse_service(body: &[u8]) -> Result<Option<Service>, GenlError> {
    let Some(svc) = nested(body, CMD_ATTR_SERVICE)? else {
        return Err(GenlError::Malformed(
            "service reply without a service".into(),
        ));
    };
    let af = find(&svc, SVC_AF).and_then(|a| a.u16());
    let proto = find(&svc, SVC_PROTOCOL).and_then(|a| a.u16());
    if af != Some(AF_INET) || proto != Some(IPPROTO_TCP) {
        return Ok(None);
    }
    let (Some(ip), Some(port)) = (
        find(&svc, SVC_ADDR).and_then(|a| parse_ip(&a)),
        find(&svc, SVC_PORT).and_then(|a| a.be16()),
    ) else {
        return Ok(None);
    };
    Ok(Some(Service {
        vip: SocketAddrV4::new(ip, port),
        scheduler: find(&svc, SVC_SCHED_NAME)
            .map(|a| a.string())
            .unwrap_or_default(),
    }))
}

/// A `GET_DEST` reply body; None for non-IPv4 destinations.
pub fn parse_dest(body: &[u8]) -> Result<Option<Dest>, GenlError> {
    let Some(d) = nested(body, CMD_ATTR_DEST)? else {
        return Err(GenlError::Malformed(
            "destination reply without a destination".into(),
        ));
    };
    if find(&d, DEST_ADDR_FAMILY)
        .and_then(|a| a.u16())
        .unwrap_or(AF_INET)
        != AF_INET
    {
        return Ok(None);
    }
    let (Some(ip), Some(port)) = (
        find(&d, DEST_ADDR).and_then(|a| parse_ip(&a)),
        find(&d, DEST_PORT).and_then(|a| a.be16()),
    ) else {
        return Err(GenlError::Malformed(
            "destination without address or port".into(),
        ));
    };
    Ok(Some(Dest {
        addr: SocketAddrV4::new(ip, port),
        weight: find(&d, DEST_WEIGHT).and_then(|a| a.u32()).unwrap_or(0),
        fwd: find(&d, DEST_FWD_METHOD)
            .and_then(|a| a.u32())
            .unwrap_or(FWD_MASQ)
            & FWD_MASK,
    }))
}
