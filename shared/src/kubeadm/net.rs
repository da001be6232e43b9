//! CIDR membership (IPv4 and IPv6), for the VIP-outside-CIDRs check.

use std::net::IpAddr;

use super::KubeadmError;

/// Whether `ip` is inside any network of a comma-separated CIDR list.
pub fn cidr_contains(cidrs: &str, ip: IpAddr) -> Result<bool, KubeadmError> {
    for cidr in cidrs.split(',').map(str::trim).filter(|c| !c.is_empty()) {
        let bad = || KubeadmError::BadCidr(cidr.to_string());
        let (net, len) = cidr.split_once('/').ok_or_else(bad)?;
        let net: IpAddr = net.parse().map_err(|_| bad())?;
        let len: u32 = len.parse().map_err(|_| bad())?;
        let inside = match (net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) if len <= 32 => {
                let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) if len <= 128 => {
                let mask = if len == 0 {
                    0
                } else {
                    u128::MAX << (128 - len)
                };
                u128::from(n) & mask == u128::from(a) & mask
            }
            (IpAddr::V4(_), _) | (IpAddr::V6(_), _) if len > 128 => return Err(bad()),
            _ => false,
        };
        if inside {
            return Ok(true);
        }
    }
    Ok(false)
}
