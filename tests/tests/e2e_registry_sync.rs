//! End to end on the testbed: `ferry scp --registry-sync` brings a
//! docker-distribution v2 tree to the nodes by blob digest: a copy, a
//! no-op re-run, a damaged blob detected and repaired, and a sync cut off
//! mid-blob that never exposes the new tag and resumes without re-sending
//! what landed. Blobs already on a node (other images) are kept. A source
//! blob whose content does not match its digest refuses the sync before
//! anything reaches a node.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::agents::cached_chunks;
use common::transfer::{counter, finished, noise};
use common::{Bastion, stderr};
use ferry_tests::testbed::{Testbed, TestbedConfig};

const DST: &str = "/var/lib/ferry-registry-test";
const MIB: u64 = 1 << 20;

/// Writes a blob into the registry root; returns its hex digest.
fn blob(root: &Path, data: &[u8]) -> String {
    let tmp = root.with_extension("tmp");
    std::fs::write(&tmp, data).unwrap();
    let out = std::process::Command::new("sha256sum")
        .arg(&tmp)
        .output()
        .unwrap();
    let hex = String::from_utf8(out.stdout).unwrap()[..64].to_string();
    let dir = root.join(format!(
        "docker/registry/v2/blobs/sha256/{}/{hex}",
        &hex[..2]
    ));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("data"), data).unwrap();
    hex
}

fn link(root: &Path, rel: &str, digest: &str) {
    let p = root.join("docker/registry/v2/repositories").join(rel);
    std::fs::create_dir_all(&p).unwrap();
    std::fs::write(p.join("link"), format!("sha256:{digest}")).unwrap();
}

/// An image: layers, a manifest blob, the repository's links and a tag.
fn image(root: &Path, name: &str, tag: &str, layers: &[Vec<u8>]) -> Vec<String> {
    let mut digests: Vec<String> = layers.iter().map(|l| blob(root, l)).collect();
    let manifest = format!("{{\"layers\":{digests:?}}}");
    let m = blob(root, manifest.as_bytes());
    for d in &digests {
        link(root, &format!("{name}/_layers/sha256/{d}"), d);
    }
    link(root, &format!("{name}/_manifests/revisions/sha256/{m}"), &m);
    link(root, &format!("{name}/_manifests/tags/{tag}/current"), &m);
    link(
        root,
        &format!("{name}/_manifests/tags/{tag}/index/sha256/{m}"),
        &m,
    );
    digests.push(m);
    digests
}

/// Every blob's `data` on node `i` hashes to its directory name.
fn blobs_verified(tb: &Testbed, i: usize) -> usize {
    let script = format!(
        r#"n=0; for d in {DST}/docker/registry/v2/blobs/sha256/*/*/; do h=$(basename "$d"); s=$(sha256sum "$d/data" | cut -d' ' -f1); [ "$h" = "$s" ] || {{ echo "BAD $h"; exit 1; }}; n=$((n+1)); done; echo $n"#
    );
    tb.exec_ok(i, &["bash", "-c", &script])
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn registry_sync_copies_by_digest_repairs_and_resumes() {
    let tb = Testbed::up(TestbedConfig {
        nodes: 2,
        ..Default::default()
    })
    .expect("testbed up");
    let b = Bastion::new(&tb);
    let ip: Vec<String> = tb.nodes().iter().map(|n| n.ip.to_string()).collect();
    let pw = tb.password("root").unwrap().to_string();
    let out = b.ferry(&["agent", "install", "--masters", &ip.join(","), "-p", &pw]);
    assert!(out.status.success(), "install: {}", stderr(&out));

    let reg_dir = tempfile::tempdir().unwrap();
    let reg = reg_dir.path().join("registry");
    let layers: Vec<Vec<u8>> = (0..3).map(|i| noise(2 * MIB as usize, 2 * i + 1)).collect();
    let app = image(&reg, "library/app", "v1", &layers);
    let reg_s = reg.to_string_lossy().into_owned();
    // A blob of another image already on node 1: kept (no pruning).
    let blobs = format!("{DST}/docker/registry/v2/blobs/sha256");
    tb.exec_ok(
        1,
        &[
            "bash",
            "-c",
            &format!(
                "d=$(echo other | sha256sum | cut -c1-64); mkdir -p {blobs}/${{d:0:2}}/$d && echo other > {blobs}/${{d:0:2}}/$d/data"
            ),
        ],
    )
    .unwrap();

    let sync = |extra: &[&str]| {
        let mut args = vec!["scp", "--registry-sync"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[&reg_s, DST]);
        let (out, ev) = b.ferry_json(&args);
        assert!(out.status.success(), "{}", stderr(&out));
        ev
    };

    // A tampered source blob: refused before any node is contacted.
    let bad = reg_dir.path().join("tampered");
    let bad_digests = image(&bad, "library/bad", "v1", &layers[..1]);
    let bad_blob = bad.join(format!(
        "docker/registry/v2/blobs/sha256/{}/{}/data",
        &bad_digests[0][..2],
        bad_digests[0]
    ));
    let mut tampered = layers[0].clone();
    tampered[MIB as usize + 3] ^= 0x5a;
    std::fs::write(&bad_blob, &tampered).unwrap();
    let actual = {
        use std::io::Write;
        let mut child = std::process::Command::new("sha256sum")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&tampered).unwrap();
        String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap()[..64].to_string()
    };
    let bad_dst = "/var/lib/ferry-registry-tampered";
    let (out, ev) = b.ferry_json(&["scp", "--registry-sync", &bad.to_string_lossy(), bad_dst]);
    assert!(!out.status.success(), "a tampered blob was accepted");
    let err = stderr(&out);
    for want in [
        bad_blob.to_string_lossy().into_owned(),
        format!("sha256:{}", bad_digests[0]),
        format!("sha256:{actual}"),
        "re-pull the image".to_string(),
    ] {
        assert!(err.contains(&want), "missing `{want}` in: {err}");
    }
    assert!(
        !ev.iter().any(|e| e["node"] != ""),
        "no node was contacted: {ev:?}"
    );
    for i in 0..2 {
        assert!(
            tb.exec(i, &["test", "-e", bad_dst]).unwrap().status.code() != Some(0),
            "something was written to node {i}"
        );
        assert_eq!(cached_chunks(&tb, i), 0, "chunks reached node {i}");
    }

    // Copy.
    let ev = sync(&[]);
    let content = counter(finished(&ev, &ip[0]), "content_bytes_sent");
    assert!((6 * MIB..6 * MIB + 65536).contains(&content), "{content}");
    assert_eq!(
        counter(finished(&ev, &ip[1]), "content_bytes_sent"),
        content
    );
    let summary = ev
        .iter()
        .rev()
        .find(|e| e["node"] == "" && e["kind"] == "finished")
        .unwrap();
    assert_eq!(
        counter(&summary["counters"], "sender_content_bytes_sent"),
        content,
        "each blob left the bastion once"
    );
    assert_eq!(blobs_verified(&tb, 0), 4);
    assert_eq!(blobs_verified(&tb, 1), 5, "the other image's blob is kept");
    let tag = format!(
        "{DST}/docker/registry/v2/repositories/library/app/_manifests/tags/v1/current/link"
    );
    assert_eq!(
        tb.exec_ok(0, &["cat", &tag]).unwrap(),
        format!("sha256:{}", app[3])
    );

    // No-op.
    let ev = sync(&[]);
    for i in &ip {
        assert_eq!(counter(finished(&ev, i), "content_bytes_sent"), 0);
    }

    // A damaged blob on node 0 (and no cache to repair it from).
    let data = format!(
        "{DST}/docker/registry/v2/blobs/sha256/{}/{}/data",
        &app[1][..2],
        app[1]
    );
    tb.exec_ok(
        0,
        &[
            "bash",
            "-c",
            &format!(
                "rm -rf /var/lib/ferry/cache; printf XX | dd of={data} bs=1 seek=7 conv=notrunc"
            ),
        ],
    )
    .unwrap();
    assert!(
        tb.exec(
            0,
            &[
                "bash",
                "-c",
                &format!("sha256sum {data} | cut -c1-64 | grep -qx {}", app[1])
            ]
        )
        .unwrap()
        .status
        .code()
            != Some(0)
    );
    let ev = sync(&[]);
    assert_eq!(counter(finished(&ev, &ip[0]), "content_bytes_sent"), MIB);
    assert_eq!(counter(finished(&ev, &ip[1]), "content_bytes_sent"), 0);
    assert_eq!(blobs_verified(&tb, 0), 4);

    // A new image, cut off mid-blob: its tag never shows up before its
    // blobs; the re-run sends only what had not landed.
    let big = noise(16 * MIB as usize, 99);
    let v2 = image(&reg, "library/app", "v2", std::slice::from_ref(&big));
    let before = cached_chunks(&tb, 0);
    tb.shape(0, 40).unwrap();
    tb.shape(1, 40).unwrap();
    let mut child = b
        .command(&["--output", "json", "scp", "--registry-sync", &reg_s, DST])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(60);
    while cached_chunks(&tb, 0) < before + 4 {
        assert!(Instant::now() < end, "no chunk of the new blob landed");
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let landed = cached_chunks(&tb, 0) - before;
    assert!(landed < 16, "{landed} chunks landed: not interrupted");
    let tag2 = tag.replace("/v1/", "/v2/");
    assert!(
        tb.exec(0, &["test", "-e", &tag2]).unwrap().status.code() != Some(0),
        "the v2 tag appeared before its blobs"
    );
    tb.shape(0, 0).unwrap();
    tb.shape(1, 0).unwrap();
    let ev = sync(&["--topology", "tree"]);
    let sent = counter(finished(&ev, &ip[0]), "content_bytes_sent");
    assert!(
        sent <= (16 - landed) * MIB + MIB,
        "re-sent landed chunks: {sent}"
    );
    assert_eq!(
        tb.exec_ok(0, &["cat", &tag2]).unwrap(),
        format!("sha256:{}", v2[1])
    );
    for i in 0..2 {
        assert!(blobs_verified(&tb, i) >= 6);
    }
}
