//! Garbage collection: remove blobs no named image reaches, and stale
//! ingest temp files. Runs only while no other `Store` is open.

use std::collections::HashSet;
use std::fs;

use super::{Store, StoreError};
use crate::oci::types::{Digest, Index, Manifest, is_index_media_type, is_manifest_media_type};

/// What a gc run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// False when another ferry process had the store open: nothing removed.
    pub ran: bool,
    pub blobs_removed: u64,
    pub bytes_freed: u64,
    pub temp_files_removed: u64,
}

impl Store {
    /// Removes unreferenced blobs. If another `Store` is open (in this or
    /// another process) gc is skipped (`ran: false`): a pull or build in
    /// progress may own blobs not named yet.
    pub fn gc(&self) -> Result<GcReport, StoreError> {
        let lock_path = self.root.join("locks/use.lock");
        let got = match self.use_lock.try_lock() {
            Ok(()) => true,
            Err(std::fs::TryLockError::WouldBlock) => false,
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(StoreError::io("lock", &lock_path)(e));
            }
        };
        let result = if got {
            self.sweep()
        } else {
            Ok(GcReport::default())
        };
        // Back to the shared lock every open Store holds.
        self.use_lock
            .lock_shared()
            .map_err(StoreError::io("lock", &lock_path))?;
        result
    }

    fn sweep(&self) -> Result<GcReport, StoreError> {
        let live = self.reachable()?;
        let mut report = GcReport {
            ran: true,
            ..GcReport::default()
        };
        let blobs = self.blobs_dir();
        for entry in fs::read_dir(&blobs).map_err(StoreError::io("list", &blobs))? {
            let entry = entry.map_err(StoreError::io("list", &blobs))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let keep = format!("sha256:{name}")
                .parse::<Digest>()
                .is_ok_and(|d| live.contains(&d));
            if !keep {
                let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
                let path = entry.path();
                fs::remove_file(&path).map_err(StoreError::io("remove", &path))?;
                report.blobs_removed += 1;
                report.bytes_freed += size;
            }
        }
        let tmp = self.tmp_dir();
        for entry in fs::read_dir(&tmp).map_err(StoreError::io("list", &tmp))? {
            let entry = entry.map_err(StoreError::io("list", &tmp))?;
            let path = entry.path();
            fs::remove_file(&path).map_err(StoreError::io("remove", &path))?;
            report.temp_files_removed += 1;
        }
        Ok(report)
    }

    /// Every blob reachable from `index.json` (missing blobs are skipped).
    fn reachable(&self) -> Result<HashSet<Digest>, StoreError> {
        let mut live = HashSet::new();
        let mut todo: Vec<(String, crate::oci::types::Descriptor)> = self
            .list()?
            .into_iter()
            .map(|e| (e.name, e.descriptor))
            .collect();
        while let Some((name, d)) = todo.pop() {
            if !live.insert(d.digest.clone()) || !self.has_blob(&d.digest) {
                continue;
            }
            if is_index_media_type(&d.media_type) {
                let index: Index = self.read_json(&d.digest, "index", &name)?;
                todo.extend(index.manifests.into_iter().map(|m| (name.clone(), m)));
            } else if is_manifest_media_type(&d.media_type) {
                let m: Manifest = self.read_json(&d.digest, "manifest", &name)?;
                live.insert(m.config.digest);
                live.extend(m.layers.into_iter().map(|l| l.digest));
            }
        }
        Ok(live)
    }
}
