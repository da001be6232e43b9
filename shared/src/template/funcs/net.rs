//! sealos' `ipNet` and `ipAt` (IPv4 CIDR helpers from its funcmap).

use std::net::Ipv4Addr;

use gtmpl_ng::{FuncError, Value};

use super::{exactly, int_arg, str_arg};

fn parse_cidr(s: &str) -> Result<(u32, u32), String> {
    let err = || format!("invalid cidr: invalid CIDR address: {s}");
    let (ip, bits) = s.split_once('/').ok_or_else(err)?;
    let ip: Ipv4Addr = ip.parse().map_err(|_| err())?;
    let bits: u32 = bits.parse().map_err(|_| err())?;
    if bits > 32 {
        return Err(err());
    }
    let mask = if bits == 0 {
        0
    } else {
        u32::MAX << (32 - bits)
    };
    Ok((u32::from(ip) & mask, mask))
}

pub(super) fn ip_net(args: &[Value]) -> Result<Value, FuncError> {
    exactly("ipNet", args, 1)?;
    let out = match parse_cidr(str_arg("ipNet", args, 0)?) {
        Ok((net, mask)) => format!("{}/{}", Ipv4Addr::from(net), mask.count_ones()),
        Err(e) => e,
    };
    Ok(Value::String(out))
}

pub(super) fn ip_at(args: &[Value]) -> Result<Value, FuncError> {
    exactly("ipAt", args, 2)?;
    let cidr = str_arg("ipAt", args, 0)?;
    let idx = u32::try_from(int_arg("ipAt", args, 1)?).unwrap_or(u32::MAX);
    let out = match parse_cidr(cidr) {
        Ok((net, mask)) => {
            let last = net | !mask;
            match net.checked_add(idx) {
                Some(ip) if ip <= last => Ipv4Addr::from(ip).to_string(),
                _ => "out of ip address range".to_owned(),
            }
        }
        Err(e) => e,
    };
    Ok(Value::String(out))
}
