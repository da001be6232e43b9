//! The Clusterfile parser and what is read from a parsed one: hosts (with
//! their sealos `ips` lists), master0, registry hosts, config documents.
#![no_main]

use ferry_shared::clusterfile::Clusterfile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(cf) = Clusterfile::parse(text) else {
        return;
    };
    let _ = cf.cluster.resolved_hosts();
    let _ = cf.cluster.master0();
    let _ = cf.cluster.registry_hosts();
    let _ = cf.config_docs().count();
    let _ = cf.kube_config_docs().count();
});
