//! Helpers for the unpack tests: layers built with the `tar` crate (raw
//! headers for hostile names) and a sandbox with a canary directory.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use ferry_coordinator::image::unpack::{
    LayerId, UnpackError, UnpackOptions, UnpackStats, unpack_layer,
};
use tar::{EntryType, Header};

#[derive(Clone)]
struct RawEntry {
    name: String,
    kind: EntryType,
    mode: u32,
    data: Vec<u8>,
    link: Option<String>,
}

#[derive(Clone, Default)]
pub struct Layer {
    entries: Vec<RawEntry>,
}

impl Layer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Any entry; the name is written into the header bytes as is.
    pub fn raw(
        mut self,
        name: &str,
        kind: EntryType,
        mode: u32,
        data: &[u8],
        link: Option<&str>,
    ) -> Self {
        self.entries.push(RawEntry {
            name: name.to_owned(),
            kind,
            mode,
            data: data.to_vec(),
            link: link.map(str::to_owned),
        });
        self
    }

    pub fn file(self, name: &str, data: &[u8]) -> Self {
        self.raw(name, EntryType::Regular, 0o644, data, None)
    }

    pub fn dir(self, name: &str) -> Self {
        self.raw(name, EntryType::Directory, 0o755, b"", None)
    }

    pub fn symlink(self, name: &str, target: &str) -> Self {
        self.raw(name, EntryType::Symlink, 0o777, b"", Some(target))
    }

    pub fn hardlink(self, name: &str, target: &str) -> Self {
        self.raw(name, EntryType::Link, 0o644, b"", Some(target))
    }

    /// The uncompressed tar bytes. Long names go through GNU long-name
    /// records (the builder's), short ones straight into the header.
    pub fn tar(&self) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for RawEntry {
            name,
            kind,
            mode,
            data,
            link,
        } in &self.entries
        {
            let mut header = Header::new_gnu();
            header.set_entry_type(*kind);
            header.set_mode(*mode);
            header.set_size(data.len() as u64);
            header.set_mtime(1_700_000_000);
            if let Some(link) = link {
                let field = &mut header.as_old_mut().linkname;
                field[..link.len()].copy_from_slice(link.as_bytes());
            }
            if name.len() < 100 {
                header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
                header.set_cksum();
                builder.append(&header, data.as_slice()).unwrap();
            } else {
                builder
                    .append_data(&mut header, name, data.as_slice())
                    .unwrap();
            }
        }
        builder.into_inner().unwrap()
    }

    pub fn gzip(&self) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&self.tar()).unwrap();
        enc.finish().unwrap()
    }

    pub fn zstd(&self) -> Vec<u8> {
        zstd::encode_all(self.tar().as_slice(), 1).unwrap()
    }
}

pub struct Sandbox {
    _dir: tempfile::TempDir,
    pub target: PathBuf,
    pub canary: PathBuf,
    pub outside_file: PathBuf,
    canary_mode: u32,
}

impl Sandbox {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        let canary = dir.path().join("canary");
        fs::create_dir(&target).unwrap();
        fs::create_dir(&canary).unwrap();
        fs::set_permissions(&canary, fs::Permissions::from_mode(0o750)).unwrap();
        let outside_file = dir.path().join("outside.txt");
        fs::write(&outside_file, "keep").unwrap();
        Self {
            _dir: dir,
            target,
            canary,
            outside_file,
            canary_mode: 0o750,
        }
    }

    pub fn unpack_all(
        &self,
        layers: &[Layer],
        opts: &UnpackOptions,
    ) -> Result<Vec<UnpackStats>, UnpackError> {
        layers
            .iter()
            .enumerate()
            .map(|(index, l)| {
                let id = LayerId {
                    index,
                    digest: "sha256:test".to_owned(),
                };
                unpack_layer(l.tar().as_slice(), &self.target, &id, opts)
            })
            .collect()
    }

    /// The canary dir next to the target is still empty (or holds only what
    /// the test put there) with its mode unchanged, and the outside file is
    /// intact.
    pub fn assert_canary_untouched(&self) {
        let names: Vec<String> = fs::read_dir(&self.canary)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != "keep")
            .collect();
        assert!(names.is_empty(), "written outside the target: {names:?}");
        let mode = fs::metadata(&self.canary).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, self.canary_mode, "canary mode changed");
        assert_eq!(fs::read_to_string(&self.outside_file).unwrap(), "keep");
    }
}
