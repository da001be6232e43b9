//! Bounds tar extension headers before the `tar` crate reads them. The
//! crate reads the data of a GNU long name/link (`L`/`K`) or PAX (`x`)
//! header whole into memory before handing out the entry it describes, so
//! a small compressed layer declaring a 1 GiB PAX header would exhaust the
//! bastion's memory before any of ferry's limits apply.
//!
//! [`HeaderGuard`] sits between the decompressor and `tar::Archive` and
//! follows the archive's block structure as it streams through: each
//! header block, the member data rounded up to 512 bytes, and the PAX
//! `size` record that overrides the next member's size (as the crate
//! applies it). An extension header (`L`, `K`, `x`, `g`) larger than the
//! limit fails the read at its header block, before any of its data is
//! read; the error is a [`HeaderTooLarge`] inside an `io::Error`.
//!
//! Anything the guard cannot follow (a bad checksum, a bad size, a GNU
//! sparse member, the end-of-archive block, a short read) switches it to
//! pass-through: the crate stops there with its own error, or (sparse) the
//! unpacker refuses that member.

use std::io::{self, Read};

const BLOCK: u64 = 512;

/// Default bound for one extension header's data.
pub const MAX_HEADER_SIZE: u64 = 1 << 20;

/// An extension header larger than the limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "tar {kind} header {name:?} of {size} bytes (at byte {offset}) exceeds the limit of {max} bytes"
)]
pub struct HeaderTooLarge {
    pub kind: &'static str,
    pub name: String,
    pub size: u64,
    pub max: u64,
    pub offset: u64,
}

/// The [`HeaderTooLarge`] inside `e`, if the guard raised it.
pub fn too_large(e: &io::Error) -> Option<&HeaderTooLarge> {
    e.get_ref()?.downcast_ref::<HeaderTooLarge>()
}

pub struct HeaderGuard<R> {
    inner: R,
    max: u64,
    /// Bytes handed to the reader so far.
    pos: u64,
    /// Offset of the next header block.
    next_header: u64,
    /// A header block being handed out: bytes, how many, how many given.
    block: [u8; BLOCK as usize],
    block_len: usize,
    block_off: usize,
    /// Data of a PAX `x` header being collected, and its end offset.
    pax: Option<(Vec<u8>, u64)>,
    /// The PAX `size` of the next member.
    size_override: Option<u64>,
    pass_through: bool,
}

impl<R: Read> HeaderGuard<R> {
    pub fn new(inner: R, max: u64) -> Self {
        Self {
            inner,
            max,
            pos: 0,
            next_header: 0,
            block: [0; BLOCK as usize],
            block_len: 0,
            block_off: 0,
            pax: None,
            size_override: None,
            pass_through: false,
        }
    }

    /// Reads the header block at `pos` and checks it.
    fn load_header(&mut self) -> io::Result<()> {
        let mut n = 0;
        while n < self.block.len() {
            match self.inner.read(&mut self.block[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.block_len = n;
        self.block_off = 0;
        if n < self.block.len() {
            self.pass_through = true;
            return Ok(());
        }
        self.inspect()
    }

    fn inspect(&mut self) -> io::Result<()> {
        let start = self.pos;
        let b = &self.block;
        if b.iter().all(|&x| x == 0) || !checksum_ok(b) {
            self.pass_through = true;
            return Ok(());
        }
        let header = tar::Header::from_byte_slice(b);
        let Ok(own) = header.entry_size() else {
            self.pass_through = true;
            return Ok(());
        };
        let recognized = header.as_ustar().is_some() || header.as_gnu().is_some();
        let kind = match b[156] {
            b'L' => Some("GNU long name"),
            b'K' => Some("GNU long link"),
            b'x' => Some("PAX"),
            b'g' => Some("PAX global"),
            _ => None,
        };
        if let Some(kind) = kind
            && own > self.max
        {
            let name = String::from_utf8_lossy(&header.path_bytes()).into_owned();
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                HeaderTooLarge {
                    kind,
                    name,
                    size: own,
                    max: self.max,
                    offset: start,
                },
            ));
        }
        // The crate's rules: L/K keep a pending PAX size, a recognised `x`
        // sets it, `g` or an unrecognised extension header consumes it, a
        // member uses it.
        let size = match (b[156], kind.is_some() && recognized) {
            (b'L' | b'K', true) => own,
            (b'x', true) => {
                self.pax = Some((Vec::with_capacity(own as usize), start + BLOCK + own));
                own
            }
            (_, _) if kind.is_some() => {
                self.size_override = None;
                own
            }
            (b'S', _) => {
                self.pass_through = true;
                return Ok(());
            }
            _ => self.size_override.take().unwrap_or(own),
        };
        match size
            .checked_add(BLOCK - 1)
            .map(|s| s & !(BLOCK - 1))
            .and_then(|s| (start + BLOCK).checked_add(s))
        {
            Some(next) => self.next_header = next,
            None => self.pass_through = true,
        }
        Ok(())
    }

    /// Keeps the bytes of a PAX header's data; parses it once complete.
    fn collect(&mut self, data: &[u8]) {
        let Some((buf, end)) = &mut self.pax else {
            return;
        };
        buf.extend_from_slice(data);
        if self.pos >= *end {
            self.size_override = pax_size(buf);
            self.pax = None;
        }
    }
}

impl<R: Read> Read for HeaderGuard<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        if self.block_off < self.block_len {
            let k = (self.block_len - self.block_off).min(out.len());
            out[..k].copy_from_slice(&self.block[self.block_off..self.block_off + k]);
            self.block_off += k;
            self.pos += k as u64;
            return Ok(k);
        }
        if self.pass_through {
            return self.inner.read(out);
        }
        if self.pos >= self.next_header {
            self.load_header()?;
            return self.read(out);
        }
        let want = (self.next_header - self.pos).min(out.len() as u64) as usize;
        let n = self.inner.read(&mut out[..want])?;
        self.pos += n as u64;
        if self.pax.is_some() {
            self.collect(&out[..n]);
        }
        Ok(n)
    }
}

fn checksum_ok(b: &[u8; BLOCK as usize]) -> bool {
    let sum: u32 = b[..148]
        .iter()
        .chain(&b[156..])
        .map(|&x| u32::from(x))
        .sum::<u32>()
        + 8 * 32;
    tar::Header::from_byte_slice(b)
        .cksum()
        .is_ok_and(|c| c == sum)
}

/// The PAX `size` record, parsed as the crate parses it.
fn pax_size(data: &[u8]) -> Option<u64> {
    for ext in tar::PaxExtensions::new(data) {
        let ext = ext.ok()?;
        if ext.key() != Ok("size") {
            continue;
        }
        return ext.value().ok()?.parse::<u64>().ok();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tar of `members` (path, data), with a PAX size record on `big`.
    fn archive(members: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, data) in members {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, path, data.as_slice()).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn read_all(tar: &[u8], max: u64) -> io::Result<Vec<(String, Vec<u8>)>> {
        let mut a = tar::Archive::new(HeaderGuard::new(tar, max));
        let mut out = Vec::new();
        for e in a.entries()? {
            let mut e = e?;
            let mut data = Vec::new();
            e.read_to_end(&mut data)?;
            out.push((String::from_utf8_lossy(&e.path_bytes()).into_owned(), data));
        }
        Ok(out)
    }

    #[test]
    fn long_names_and_pax_records_pass_within_the_limit() {
        let long = format!("{}/f", "d".repeat(300));
        let tar = archive(&[("a", b"one".to_vec()), (&long, vec![7; 5000])]);
        let got = read_all(&tar, MAX_HEADER_SIZE).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].0, long);
        assert_eq!(got[1].1, vec![7; 5000]);
        // The same long name with a limit below it: refused at its header.
        let e = read_all(&tar, 100).unwrap_err();
        let h = too_large(&e).unwrap();
        assert_eq!((h.kind, h.max), ("GNU long name", 100));
    }

    #[test]
    fn a_pax_size_record_moves_the_next_header() {
        // PAX `size` overrides the member's own (here: too small) size.
        let mut b = tar::Builder::new(Vec::new());
        let data = vec![9u8; 1300];
        let rec = "13 size=1300\n";
        let mut x = tar::Header::new_ustar();
        x.set_entry_type(tar::EntryType::XHeader);
        x.set_size(rec.len() as u64);
        x.set_cksum();
        b.append_data(&mut x, "PaxHeaders/f", rec.as_bytes())
            .unwrap();
        let mut h = tar::Header::new_ustar();
        h.set_size(0);
        h.set_mode(0o644);
        h.set_path("f").unwrap();
        h.set_cksum();
        b.append(&h, &[][..]).unwrap();
        let mut tar = b.into_inner().unwrap();
        // The member's data (1300 bytes, padded) follows its header.
        let at = tar.len() - 1024; // before the end-of-archive blocks
        let mut padded = data.clone();
        padded.resize(1536, 0);
        tar.splice(at..at, padded);
        let mut big = tar::Header::new_ustar();
        big.set_entry_type(tar::EntryType::XHeader);
        big.set_size(1 << 30);
        big.set_cksum();
        let at = tar.len() - 1024;
        tar.splice(at..at, big.as_bytes().iter().copied());
        // Without following the size record the guard would read the
        // bomb's header as data; it must find it.
        let e = read_all(&tar, MAX_HEADER_SIZE).unwrap_err();
        assert_eq!(too_large(&e).unwrap().size, 1 << 30);
    }
}
