//! `ferry build` layer throughput (ignored benchmark; prints figures):
//! a generated context (one large incompressible file plus many small text
//! files) resolved into a tree and written as a gzip and a zstd layer.
//! Run: `cargo test --release -p ferry-coordinator --test bench_build -- --ignored --nocapture`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::io::Write;
use std::time::Instant;

use ferry_coordinator::build::layer::{Compression, write_layer};
use ferry_coordinator::build::tree::Tree;
use ferry_shared::kubefile::{BuildArgs, IgnoreRules, Kubefile};

/// Counts bytes, keeps none.
struct Count(u64);

impl Write for Count {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
#[ignore]
fn bench_build_layer() {
    let mb: usize = std::env::var("FERRY_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(128);
    let dir = tempfile::tempdir().unwrap();
    let ctx = dir.path();
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut big = fs::File::create(ctx.join("big.bin")).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    for _ in 0..mb {
        for chunk in buf.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
        }
        big.write_all(&buf).unwrap();
    }
    fs::create_dir(ctx.join("small")).unwrap();
    let text: String = (0..200)
        .map(|i| format!("line {i} of a config\n"))
        .collect();
    for i in 0..2000 {
        fs::write(ctx.join(format!("small/f{i:04}.conf")), &text).unwrap();
    }
    let plan = Kubefile::parse("FROM scratch\nCOPY . .\n")
        .unwrap()
        .resolve(&BuildArgs::new(), &[])
        .unwrap();
    let start = Instant::now();
    let tree = Tree::from_copies(ctx, &plan.copies, &IgnoreRules::default()).unwrap();
    println!(
        "bench_build_layer: tree of {} entries in {:?}",
        tree.entries.len(),
        start.elapsed()
    );
    for c in [Compression::Gzip, Compression::Zstd] {
        let start = Instant::now();
        let (out, d) = write_layer(&tree, Count(0), c, 0).unwrap();
        let secs = start.elapsed().as_secs_f64();
        println!(
            "bench_build_layer: {c:?}: {mb} MiB + 2000 small files -> {} bytes in {secs:.2} s ({:.1} MiB/s input)",
            out.0,
            mb as f64 / secs,
        );
        assert_eq!(out.0, d.size);
    }
}
