//! Small in-memory tars of `(path, bytes, mode)`, sent on an exec's stdin
//! to be unpacked on a node (mtime 0; ownership left to the extractor).

/// The files as one tar archive.
pub fn pack(files: &[(String, Vec<u8>, u32)]) -> Result<Vec<u8>, String> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data, mode) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(*mode);
        h.set_mtime(0);
        h.set_cksum();
        b.append_data(&mut h, path, data.as_slice())
            .map_err(|e| format!("packing {path}: {e}"))?;
    }
    b.into_inner().map_err(|e| format!("packing files: {e}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn tar_holds_paths_and_modes() {
        let tar = pack(&[
            ("pki/a.key".into(), b"k".to_vec(), 0o600),
            ("admin.conf".into(), b"c".to_vec(), 0o600),
            ("pki/a.crt".into(), b"x".to_vec(), 0o644),
        ])
        .unwrap();
        let mut a = tar::Archive::new(tar.as_slice());
        let got: Vec<(String, u32)> = a
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    e.header().mode().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("pki/a.key".to_string(), 0o600),
                ("admin.conf".to_string(), 0o600),
                ("pki/a.crt".to_string(), 0o644)
            ]
        );
    }
}
