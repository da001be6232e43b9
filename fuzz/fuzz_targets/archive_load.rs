//! `ferry load`: an oci-archive or docker-archive tar loaded into a fresh
//! image store.
#![no_main]

use ferry_coordinator::oci::archive::load;
use ferry_coordinator::oci::store::Store;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(dir) = ferry_fuzz::scratch_dir() else {
        return;
    };
    let archive = dir.path().join("in.tar");
    if std::fs::write(&archive, data).is_err() {
        return;
    }
    let Ok(store) = Store::open(&dir.path().join("store")) else {
        return;
    };
    let _ = load(&store, &archive);
});
