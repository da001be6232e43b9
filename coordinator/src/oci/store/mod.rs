//! The local image store on the bastion: an OCI image layout
//! (`oci-layout`, `index.json`, `blobs/sha256/<hex>`) under
//! `FERRY_DATA_ROOT` or `~/.ferry/images`, shared by every image (blobs are
//! content-addressed, so layers common to several images are kept once).
//!
//! ```text
//! <root>/oci-layout          {"imageLayoutVersion":"1.0.0"}
//! <root>/index.json          one descriptor per name, annotated with
//!                            org.opencontainers.image.ref.name = the full
//!                            normalised reference (docker.io/labring/x:v1)
//! <root>/blobs/sha256/<hex>  content, read-only files, verified on ingest
//! <root>/tmp/                ingest temp files (never visible as blobs)
//! <root>/locks/index.lock    flock: exclusive while index.json changes
//! <root>/locks/use.lock      flock: shared by every open Store, exclusive for gc
//! ```
//!
//! Usage (what `ferry pull`, `ferry build` and `ferry load` do):
//! 1. write every blob with [`Store::blob_writer`] / [`Store::put_blob_from_reader`]
//!    / [`Store::put_json_blob`] (temp file, sha256 while streaming, fsync,
//!    rename: a blob is visible only once complete and verified);
//! 2. write the manifest last, then [`Store::tag`] it. An image is listed
//!    only once tagged, so an interrupted pull or build leaves no image, just
//!    blobs that a re-pull reuses and [`Store::gc`] may remove.
//!
//! Reading: [`Store::list`], [`Store::resolve`] (manifest + config of a
//! name, digest or id prefix), [`Store::image_config`] (labels, env, cmd,
//! entrypoint as `ferry_shared::image::ImageConfig`), [`Store::mount`]
//! (unpack all layers into a directory with `crate::image::unpack`).
//!
//! Invariant: a file under `blobs/sha256/` always holds exactly the content
//! its name is the sha256 of (writes go through temp + verify + rename).
//! Invariant: `index.json` is only replaced atomically, under the exclusive
//! index lock, so concurrent `ferry` processes never lose or tear it.
//! Invariant: gc runs only when no other `Store` is open (exclusive use lock;
//! otherwise it is skipped and reported), so it never removes blobs of an
//! image being pulled or built.

mod blobs;
mod error;
mod gc;
mod index;
mod resolve;

use std::fs::{self, File};
use std::path::{Path, PathBuf};

pub use blobs::BlobWriter;
pub use error::StoreError;
pub use gc::GcReport;
pub use index::{ImageEntry, store_name};
pub use resolve::{ResolvedImage, platforms_of, select_platform};

/// Largest manifest, index or config read into memory.
pub const MAX_JSON_BLOB: u64 = 8 << 20;

/// An open image store. Cheap to open; each instance holds a shared lock
/// on `locks/use.lock` for its lifetime (see the module invariants).
#[derive(Debug)]
pub struct Store {
    root: PathBuf,
    use_lock: File,
}

impl Store {
    /// `FERRY_DATA_ROOT` if set, else `~/.ferry/images`.
    pub fn default_root() -> Result<PathBuf, StoreError> {
        if let Some(root) = std::env::var_os("FERRY_DATA_ROOT").filter(|v| !v.is_empty()) {
            return Ok(PathBuf::from(root));
        }
        let home = std::env::var_os("HOME")
            .filter(|v| !v.is_empty())
            .ok_or(StoreError::NoHome)?;
        Ok(PathBuf::from(home).join(".ferry").join("images"))
    }

    /// `FERRY_DATA_ROOT` if set, else `<ferry_home>/images` (what the image
    /// commands use, so `--home`/`FERRY_HOME` moves the store too).
    pub fn root_in(ferry_home: &Path) -> PathBuf {
        match std::env::var_os("FERRY_DATA_ROOT").filter(|v| !v.is_empty()) {
            Some(root) => PathBuf::from(root),
            None => ferry_home.join("images"),
        }
    }

    /// Opens (creating if needed) the store at `root`.
    pub fn open(root: &Path) -> Result<Self, StoreError> {
        for dir in ["blobs/sha256", "tmp", "locks"] {
            let p = root.join(dir);
            fs::create_dir_all(&p).map_err(StoreError::io("create", &p))?;
        }
        let layout = root.join("oci-layout");
        if !layout.exists() {
            crate::image::atomic::write_atomic(
                &layout,
                br#"{"imageLayoutVersion":"1.0.0"}"#,
                0o644,
            )
            .map_err(StoreError::io("write", &layout))?;
        }
        let use_lock = open_lock(&root.join("locks/use.lock"))?;
        use_lock
            .lock_shared()
            .map_err(StoreError::io("lock", root.join("locks/use.lock")))?;
        let store = Self {
            root: root.to_owned(),
            use_lock,
        };
        if !store.index_path().exists() {
            store.update_index(|_| Ok(()))?;
        }
        store.remove_stale_temps();
        Ok(store)
    }

    /// Opens the store at [`Store::default_root`].
    pub fn open_default() -> Result<Self, StoreError> {
        Self::open(&Self::default_root()?)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Removes ingest temp files left by ferry processes that no longer run
    /// (killed pulls); files of live processes are theirs to finish.
    fn remove_stale_temps(&self) {
        let Ok(entries) = fs::read_dir(self.tmp_dir()) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let pid = name
                .strip_prefix("ingest-")
                .and_then(|r| r.split('-').next())
                .and_then(|p| p.parse::<u32>().ok());
            if let Some(pid) = pid
                && pid != std::process::id()
                && !Path::new(&format!("/proc/{pid}")).exists()
            {
                let _ = fs::remove_file(entry.path());
            }
        }
    }

    fn index_path(&self) -> PathBuf {
        self.root.join("index.json")
    }

    fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }
}

fn open_lock(path: &Path) -> Result<File, StoreError> {
    fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .map_err(StoreError::io("open lock", path))
}

#[cfg(test)]
mod tests;
