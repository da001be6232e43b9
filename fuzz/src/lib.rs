//! Helpers shared by the fuzz targets.

/// A fresh directory for one input, on tmpfs where there is one (targets
/// that unpack, load or store write a tree per input).
pub fn scratch_dir() -> Option<tempfile::TempDir> {
    let shm = std::path::Path::new("/dev/shm");
    let base = if shm.is_dir() {
        shm.to_owned()
    } else {
        std::env::temp_dir()
    };
    tempfile::Builder::new()
        .prefix("ferry-fuzz-")
        .tempdir_in(base)
        .ok()
}
