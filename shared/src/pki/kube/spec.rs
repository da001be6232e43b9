//! What the PKI is generated for.

use std::net::IpAddr;

use time::{Duration, OffsetDateTime};

use super::KubePkiError;

/// sealos issues every certificate for 100 years.
pub const SEALOS_VALIDITY_YEARS: i64 = 100;

#[derive(Debug, Clone)]
pub struct KubePkiSpec {
    /// The master's node name (hostname) and address.
    pub node_name: String,
    pub node_ip: IpAddr,
    /// `controlPlaneEndpoint` host (sealos: `apiserver.cluster.local`).
    pub control_plane_host: String,
    pub control_plane_port: u16,
    /// Extra apiserver SANs (IPs or DNS names): sealos adds 127.0.0.1, the
    /// endpoint name, the VIP and every master IP.
    pub cert_sans: Vec<String>,
    /// Service CIDRs (comma-separated dual-stack allowed); the first IP of
    /// each is an apiserver SAN.
    pub service_cidr: String,
    pub dns_domain: String,
    pub validity_years: i64,
    /// Kubernetes minor version: from 1.29 admin.conf uses the
    /// `kubeadm:cluster-admins` group and super-admin.conf is added.
    pub kube_minor: u32,
}

impl KubePkiSpec {
    pub fn validity(&self) -> Duration {
        Duration::days(365 * self.validity_years + self.validity_years / 4)
    }

    pub fn not_after(&self, now: OffsetDateTime) -> OffsetDateTime {
        now + self.validity()
    }

    pub fn server_url(&self) -> String {
        format!(
            "https://{}:{}",
            self.control_plane_host, self.control_plane_port
        )
    }

    /// The first usable address of each service CIDR (10.96.0.0/22 -> 10.96.0.1).
    pub fn service_ips(&self) -> Result<Vec<IpAddr>, KubePkiError> {
        self.service_cidr
            .split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(first_ip)
            .collect()
    }
}

fn first_ip(cidr: &str) -> Result<IpAddr, KubePkiError> {
    let bad = || KubePkiError::BadCidr(cidr.to_string());
    let (net, len) = cidr.split_once('/').ok_or_else(bad)?;
    let net: IpAddr = net.parse().map_err(|_| bad())?;
    let len: u32 = len.parse().map_err(|_| bad())?;
    match net {
        IpAddr::V4(v4) if len <= 30 => {
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            Ok(IpAddr::V4(std::net::Ipv4Addr::from(
                (u32::from(v4) & mask) + 1,
            )))
        }
        IpAddr::V6(v6) if len <= 126 => {
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            Ok(IpAddr::V6(std::net::Ipv6Addr::from(
                (u128::from(v6) & mask) + 1,
            )))
        }
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_service_ip() {
        assert_eq!(first_ip("10.96.0.0/22").unwrap().to_string(), "10.96.0.1");
        assert_eq!(first_ip("10.96.3.7/22").unwrap().to_string(), "10.96.0.1");
        assert_eq!(
            first_ip("fd00:10:96::/112").unwrap().to_string(),
            "fd00:10:96::1"
        );
        assert!(first_ip("10.96.0.0").is_err());
        assert!(first_ip("10.96.0.0/32").is_err());
    }
}
