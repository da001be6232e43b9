//! Making the VIP reachable from the node itself, lvscare's two modes:
//! `route` (sealos's default: a host route `VIP/32` the way the node
//! reaches the first member, with the node's own source address) and
//! `link` (the VIP as a /32 address on the dummy interface [`LINK`], as
//! kube-proxy's `kube-ipvs0`). Done with `ip` argv vectors.

use std::net::Ipv4Addr;
use std::str::FromStr;

use super::LbError;
use super::nft::run;

/// The dummy interface of link mode.
pub const LINK: &str = "ferry-lb";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VipMode {
    #[default]
    Route,
    Link,
}

impl VipMode {
    pub const fn as_str(self) -> &'static str {
        match self {
            VipMode::Route => "route",
            VipMode::Link => "link",
        }
    }
}

impl FromStr for VipMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "route" => Ok(VipMode::Route),
            "link" => Ok(VipMode::Link),
            _ => Err(format!("unknown VIP mode `{s}` (route | link)")),
        }
    }
}

/// Makes `vip` local (link) or routed towards `member` (route).
pub async fn ensure(
    prefix: &[String],
    mode: VipMode,
    vip: Ipv4Addr,
    member: Ipv4Addr,
) -> Result<(), LbError> {
    match mode {
        VipMode::Route => route(prefix, vip, member).await,
        VipMode::Link => link(prefix, vip).await,
    }
}

/// Undoes [`ensure`] for `vip` in both modes; missing pieces are fine.
pub async fn remove(prefix: &[String], vip: Ipv4Addr) -> Result<(), LbError> {
    unroute(prefix, vip).await?;
    unlink(prefix).await
}

async fn route(prefix: &[String], vip: Ipv4Addr, member: Ipv4Addr) -> Result<(), LbError> {
    let m = member.to_string();
    let out = run(prefix, &["ip", "-j", "route", "get", &m], "")
        .await?
        .require()?;
    let parse_err = |detail: &str| LbError::Parse {
        argv: format!("ip -j route get {m}"),
        detail: detail.to_string(),
    };
    let v: serde_json::Value = serde_json::from_str(&out).map_err(|e| parse_err(&e.to_string()))?;
    let r = &v[0];
    let dev = r["dev"].as_str().ok_or_else(|| parse_err("no dev"))?;
    let dst = format!("{vip}/32");
    let mut argv = vec!["ip", "route", "replace", &dst];
    if let Some(gw) = r["gateway"].as_str() {
        argv.extend(["via", gw]);
    }
    argv.extend(["dev", dev]);
    if let Some(src) = r["prefsrc"].as_str() {
        argv.extend(["src", src]);
    }
    run(prefix, &argv, "").await?.require().map(drop)
}

/// Removes the host route to `vip` (only a `/32` route, never others).
pub async fn unroute(prefix: &[String], vip: Ipv4Addr) -> Result<(), LbError> {
    let dst = format!("{vip}/32");
    let ran = run(prefix, &["ip", "route", "del", &dst], "").await?;
    // "No such process": the route is already gone.
    if ran.ok || ran.stderr.contains("No such process") {
        Ok(())
    } else {
        ran.require().map(drop)
    }
}

async fn link(prefix: &[String], vip: Ipv4Addr) -> Result<(), LbError> {
    let ran = run(prefix, &["ip", "link", "add", LINK, "type", "dummy"], "").await?;
    if !ran.ok && !ran.stderr.contains("File exists") {
        ran.require()?;
    }
    let addr = format!("{vip}/32");
    // Exactly one address: the current VIP.
    run(prefix, &["ip", "addr", "flush", "dev", LINK], "")
        .await?
        .require()?;
    run(prefix, &["ip", "addr", "add", &addr, "dev", LINK], "")
        .await?
        .require()?;
    run(prefix, &["ip", "link", "set", LINK, "up"], "")
        .await?
        .require()
        .map(drop)
}

/// Deletes the dummy interface (and with it the VIP address).
pub async fn unlink(prefix: &[String]) -> Result<(), LbError> {
    let ran = run(prefix, &["ip", "link", "del", LINK], "").await?;
    if ran.ok || ran.stderr.contains("Cannot find device") {
        Ok(())
    } else {
        ran.require().map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_print() {
        for m in [VipMode::Route, VipMode::Link] {
            assert_eq!(m.as_str().parse::<VipMode>(), Ok(m));
        }
        assert_eq!(VipMode::default(), VipMode::Route);
        assert!(
            "bridge"
                .parse::<VipMode>()
                .unwrap_err()
                .contains("route | link")
        );
    }
}
