//! The IPVS backend (generic netlink, no `ipvsadm`). Not implemented yet:
//! this kernel has no IP_VS, so only detection exists; `auto` picks
//! nftables. The netlink implementation (e.g. `nlrs`) and its VM test are
//! follow-up work.

use std::path::Path;

use super::LbError;

pub struct IpvsBackend;

impl IpvsBackend {
    /// Fails with [`LbError::IpvsUnavailable`] when the kernel has no IP_VS
    /// (the `ip_vs` module creates `/proc/net/ip_vs`).
    pub fn detect() -> Result<(), LbError> {
        Self::detect_at(Path::new("/proc/net/ip_vs"))
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_proc_file_is_a_clear_error() {
        let e = IpvsBackend::detect_at(Path::new("/nonexistent/ip_vs")).unwrap_err();
        assert!(e.to_string().contains("IPVS not available"), "{e}");
    }
}
