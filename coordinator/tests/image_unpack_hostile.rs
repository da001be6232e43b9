#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Hostile layers: one test per attack. Each asserts the error (rule, layer,
//! entry) and that the canary directory next to the target stays untouched.

mod unpack_support;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use ferry_coordinator::image::unpack::{Rule, UnpackError, UnpackOptions};
use tar::EntryType;
use unpack_support::{Layer, Sandbox};

fn rejected(err: UnpackError) -> (String, Rule) {
    match err {
        UnpackError::Rejected { layer, path, rule } => {
            assert_eq!(layer.digest, "sha256:test", "layer named in the error");
            (path, rule)
        }
        other => panic!("expected a rejection, got {other}"),
    }
}

fn expect_rule(
    sb: &Sandbox,
    layers: &[Layer],
    opts: &UnpackOptions,
    check: impl Fn(&str, &Rule) -> bool,
) {
    let err = sb
        .unpack_all(layers, opts)
        .expect_err("hostile layer accepted");
    let text = err.to_string();
    assert!(text.contains("sha256:test"), "{text}");
    let (path, rule) = rejected(err);
    assert!(check(&path, &rule), "unexpected rejection: {path}: {rule}");
    sb.assert_canary_untouched();
}

#[test]
fn absolute_path() {
    let sb = Sandbox::new();
    let name = format!("{}/evil", sb.canary.display());
    let layer = Layer::new().raw(&name, EntryType::Regular, 0o644, b"x", None);
    expect_rule(&sb, &[layer], &UnpackOptions::default(), |_, r| {
        *r == Rule::AbsolutePath
    });
}

#[test]
fn parent_dir_component() {
    let sb = Sandbox::new();
    let layer = Layer::new().raw("../canary/evil", EntryType::Regular, 0o644, b"x", None);
    expect_rule(&sb, &[layer], &UnpackOptions::default(), |p, r| {
        *r == Rule::ParentDir && p == "../canary/evil"
    });
}

#[test]
fn parent_dir_in_the_middle() {
    let sb = Sandbox::new();
    let layer =
        Layer::new()
            .dir("a")
            .raw("a/../../canary/evil", EntryType::Regular, 0o644, b"x", None);
    expect_rule(&sb, &[layer], &UnpackOptions::default(), |_, r| {
        *r == Rule::ParentDir
    });
}

#[test]
fn write_through_absolute_symlink() {
    let sb = Sandbox::new();
    let layer = Layer::new()
        .symlink("link", &sb.canary.display().to_string())
        .file("link/evil", b"x");
    expect_rule(
        &sb,
        &[layer],
        &UnpackOptions::default(),
        |_, r| matches!(r, Rule::ThroughSymlink { at } if at == "link"),
    );
}

#[test]
fn write_through_symlink_from_an_earlier_layer() {
    let sb = Sandbox::new();
    let lower = Layer::new().symlink("etc", &sb.canary.display().to_string());
    let upper = Layer::new().file("etc/passwd", b"root::0:0::/:/bin/sh\n");
    expect_rule(&sb, &[lower, upper], &UnpackOptions::default(), |p, r| {
        p == "etc/passwd" && matches!(r, Rule::ThroughSymlink { .. })
    });
}

#[test]
fn directory_swapped_for_symlink() {
    let sb = Sandbox::new();
    let layer = Layer::new()
        .dir("d")
        .symlink("d", &sb.canary.display().to_string())
        .file("d/evil", b"x");
    expect_rule(&sb, &[layer], &UnpackOptions::default(), |_, r| {
        matches!(r, Rule::ThroughSymlink { .. })
    });
}

#[test]
fn relative_symlink_climbing_out() {
    let sb = Sandbox::new();
    let layer = Layer::new().dir("a").symlink("a/up", "../../canary");
    expect_rule(&sb, &[layer], &UnpackOptions::default(), |_, r| {
        matches!(r, Rule::SymlinkEscape { .. })
    });
}

#[test]
fn hardlink_to_absolute_outside_file() {
    let sb = Sandbox::new();
    let target = sb.outside_file.display().to_string();
    let layer = Layer::new().raw("h", EntryType::Link, 0o644, b"", Some(&target));
    expect_rule(&sb, &[layer], &UnpackOptions::default(), |_, r| {
        matches!(r, Rule::HardlinkTarget { .. })
    });
    assert_eq!(fs::metadata(&sb.outside_file).unwrap().len(), 4);
}

#[test]
fn hardlink_with_parent_dir() {
    let sb = Sandbox::new();
    let layer = Layer::new().raw("h", EntryType::Link, 0o644, b"", Some("../outside.txt"));
    expect_rule(
        &sb,
        &[layer],
        &UnpackOptions::default(),
        |_, r| matches!(r, Rule::HardlinkTarget { reason, .. } if reason.contains("relative path inside")),
    );
}

#[test]
fn hardlink_to_unknown_target() {
    let sb = Sandbox::new();
    let layer = Layer::new().raw("h", EntryType::Link, 0o644, b"", Some("nope"));
    expect_rule(
        &sb,
        &[layer],
        &UnpackOptions::default(),
        |_, r| matches!(r, Rule::HardlinkTarget { reason, .. } if reason.contains("does not exist")),
    );
}

#[test]
fn hardlink_through_symlink() {
    let sb = Sandbox::new();
    let outside_dir = sb.outside_file.parent().unwrap().display().to_string();
    let layer = Layer::new().symlink("s", &outside_dir).raw(
        "h",
        EntryType::Link,
        0o644,
        b"",
        Some("s/outside.txt"),
    );
    expect_rule(
        &sb,
        &[layer],
        &UnpackOptions::default(),
        |_, r| matches!(r, Rule::HardlinkTarget { reason, .. } if reason.contains("symlink")),
    );
    assert_eq!(fs::metadata(&sb.outside_file).unwrap().len(), 4);
}

#[test]
fn character_device() {
    let sb = Sandbox::new();
    let layer = Layer::new().raw("dev/null", EntryType::Char, 0o666, b"", None);
    expect_rule(&sb, &[layer], &UnpackOptions::default(), |_, r| {
        *r == Rule::SpecialFile {
            kind: "character device",
        }
    });
}

#[test]
fn block_device() {
    let sb = Sandbox::new();
    let layer = Layer::new().raw("sda", EntryType::Block, 0o660, b"", None);
    expect_rule(&sb, &[layer], &UnpackOptions::default(), |_, r| {
        *r == Rule::SpecialFile {
            kind: "block device",
        }
    });
}

#[test]
fn fifo() {
    let sb = Sandbox::new();
    let layer = Layer::new().raw("pipe", EntryType::Fifo, 0o644, b"", None);
    expect_rule(&sb, &[layer], &UnpackOptions::default(), |_, r| {
        *r == Rule::SpecialFile { kind: "FIFO" }
    });
}

#[test]
fn setuid_binary() {
    let sb = Sandbox::new();
    let layer = Layer::new().raw("bin/su", EntryType::Regular, 0o4755, b"elf", None);
    expect_rule(
        &sb,
        std::slice::from_ref(&layer),
        &UnpackOptions::default(),
        |_, r| *r == Rule::Setuid { mode: 0o4755 },
    );
    assert!(!sb.target.join("bin/su").exists());
    let allow = UnpackOptions {
        allow_setuid: true,
        ..UnpackOptions::default()
    };
    sb.unpack_all(&[layer], &allow).unwrap();
    let mode = fs::metadata(sb.target.join("bin/su"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o4755);
}

#[test]
fn setgid_directory() {
    let sb = Sandbox::new();
    let layer = Layer::new().raw("shared", EntryType::Directory, 0o2775, b"", None);
    expect_rule(&sb, &[layer], &UnpackOptions::default(), |_, r| {
        matches!(r, Rule::Setuid { .. })
    });
}

#[test]
fn oversized_entry() {
    let sb = Sandbox::new();
    let opts = UnpackOptions {
        max_entry_size: 10,
        ..UnpackOptions::default()
    };
    let layer = Layer::new().file("big", &[0u8; 11]);
    expect_rule(&sb, &[layer], &opts, |_, r| {
        *r == Rule::EntryTooLarge { size: 11, max: 10 }
    });
    assert!(
        !sb.target.join("big").exists(),
        "nothing written for a rejected entry"
    );
}

#[test]
fn total_size_limit() {
    let sb = Sandbox::new();
    let opts = UnpackOptions {
        max_total_size: 15,
        ..UnpackOptions::default()
    };
    let layer = Layer::new().file("a", &[1u8; 8]).file("b", &[2u8; 8]);
    expect_rule(&sb, &[layer], &opts, |p, r| {
        p == "b" && *r == Rule::TotalTooLarge { max: 15 }
    });
}

#[test]
fn too_many_entries() {
    let sb = Sandbox::new();
    let opts = UnpackOptions {
        max_entries: 3,
        ..UnpackOptions::default()
    };
    let mut layer = Layer::new();
    for i in 0..5 {
        layer = layer.file(&format!("f{i}"), b"x");
    }
    expect_rule(&sb, &[layer], &opts, |_, r| {
        *r == Rule::TooManyEntries { max: 3 }
    });
}

#[test]
fn path_too_long() {
    let sb = Sandbox::new();
    let opts = UnpackOptions {
        max_path_len: 64,
        ..UnpackOptions::default()
    };
    let long = format!("{}/f", "d".repeat(80));
    let layer = Layer::new().file(&long, b"x");
    expect_rule(&sb, &[layer], &opts, |_, r| {
        matches!(r, Rule::PathTooLong { max: 64, .. })
    });
}

#[test]
fn bad_whiteout_name() {
    let sb = Sandbox::new();
    let layer = Layer::new().raw(".wh..", EntryType::Regular, 0o644, b"", None);
    expect_rule(&sb, &[layer], &UnpackOptions::default(), |_, r| {
        matches!(r, Rule::Whiteout(_))
    });
}

#[test]
fn whiteout_through_symlink() {
    let sb = Sandbox::new();
    fs::write(sb.canary.join("keep"), "k").unwrap();
    let layer = Layer::new()
        .symlink("s", &sb.canary.display().to_string())
        .raw("s/.wh.keep", EntryType::Regular, 0o644, b"", None);
    let err = sb
        .unpack_all(&[layer], &UnpackOptions::default())
        .unwrap_err();
    assert!(matches!(rejected(err).1, Rule::ThroughSymlink { .. }));
    assert!(
        sb.canary.join("keep").exists(),
        "whiteout did not reach outside"
    );
}

#[test]
fn directory_mode_not_applied_through_a_later_symlink() {
    let sb = Sandbox::new();
    let before = fs::metadata(&sb.canary).unwrap().permissions().mode();
    let layer = Layer::new()
        .raw("d", EntryType::Directory, 0o777, b"", None)
        .symlink("d", &sb.canary.display().to_string());
    sb.unpack_all(&[layer], &UnpackOptions::default()).unwrap();
    assert_eq!(
        fs::metadata(&sb.canary).unwrap().permissions().mode(),
        before
    );
    sb.assert_canary_untouched();
}

fn pax_record(key: &str, value: &str) -> Vec<u8> {
    let body = format!(" {key}={value}\n");
    let mut len = body.len() + 2;
    if format!("{len}").len() + body.len() != len {
        len += 1;
    }
    format!("{len}{body}").into_bytes()
}

#[test]
fn pax_path_with_parent_dir() {
    let sb = Sandbox::new();
    let record = pax_record("path", "../canary/evil");
    let layer = Layer::new()
        .raw(
            "PaxHeaders/innocent",
            EntryType::XHeader,
            0o644,
            &record,
            None,
        )
        .file("innocent", b"x");
    expect_rule(&sb, &[layer], &UnpackOptions::default(), |p, r| {
        p == "../canary/evil" && *r == Rule::ParentDir
    });
}

#[test]
fn gnu_long_name_absolute() {
    let sb = Sandbox::new();
    let mut long = format!("{}/{}/evil", sb.canary.display(), "d".repeat(120)).into_bytes();
    long.push(0);
    let layer = Layer::new()
        .raw("././@LongLink", EntryType::GNULongName, 0o644, &long, None)
        .file("short", b"x");
    expect_rule(&sb, &[layer], &UnpackOptions::default(), |_, r| {
        *r == Rule::AbsolutePath
    });
}

/// Counts the bytes read through it.
struct Counting<R> {
    inner: R,
    read: std::rc::Rc<std::cell::Cell<u64>>,
}

impl<R: std::io::Read> std::io::Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.set(self.read.get() + n as u64);
        Ok(n)
    }
}

#[test]
fn a_1_gib_pax_header_is_refused_before_it_is_read() {
    use std::io::Read;
    let sb = Sandbox::new();
    for (kind, entry_type) in [
        ("PAX", EntryType::XHeader),
        ("GNU long name", EntryType::GNULongName),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(entry_type);
        h.set_path("././@LongLink").unwrap();
        h.set_size(1 << 30);
        h.set_cksum();
        // 1 GiB of header data, never materialised by the test either.
        let body = std::io::repeat(b'a').take(1 << 30);
        let read = std::rc::Rc::new(std::cell::Cell::new(0));
        let src = Counting {
            inner: h.as_bytes().chain(body),
            read: read.clone(),
        };
        let id = ferry_coordinator::image::unpack::LayerId {
            index: 0,
            digest: "sha256:test".to_owned(),
        };
        let err = ferry_coordinator::image::unpack::unpack_layer(
            src,
            &sb.target,
            &id,
            &UnpackOptions::default(),
        )
        .expect_err("a 1 GiB header accepted");
        let text = err.to_string();
        assert!(
            text.contains("sha256:test") && text.contains("exceeds the limit"),
            "{text}"
        );
        let (_, rule) = rejected(err);
        assert_eq!(
            rule,
            Rule::HeaderTooLarge {
                kind,
                size: 1 << 30,
                max: 1 << 20
            }
        );
        assert!(read.get() < 1 << 20, "{kind}: read {} bytes", read.get());
        assert_eq!(
            fs::read_dir(&sb.target).unwrap().count(),
            0,
            "nothing written"
        );
        sb.assert_canary_untouched();
    }
}
