use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::transfer::manifest::tests::{dir, file, meta};
use crate::transfer::manifest::{Entry, MIN_CHUNK_SIZE};
use crate::transfer::path::RelPath;

const CS: u32 = MIN_CHUNK_SIZE;

fn observed(e: &Entry) -> Observed {
    let kind = match &e.kind {
        EntryKind::Dir => ObservedKind::Dir,
        EntryKind::File {
            size,
            chunks,
            mtime_ns,
        } => ObservedKind::File {
            size: *size,
            chunks: chunks.clone(),
            mtime_ns: *mtime_ns,
        },
        EntryKind::Symlink { target } => ObservedKind::Symlink {
            target: target.clone(),
        },
    };
    // Symlink modes mean nothing on Linux: only ownership is compared.
    let mut meta = e.meta;
    if matches!(kind, ObservedKind::Symlink { .. }) {
        meta.mode = 0o777;
    }
    Observed {
        path: e.path.to_string(),
        meta,
        kind,
    }
}

fn link(p: &str, t: &str) -> Entry {
    Entry {
        path: RelPath::new(p).unwrap(),
        meta: meta(),
        kind: EntryKind::Symlink { target: t.into() },
    }
}

#[test]
fn identical_tree_is_a_no_op() {
    let m = Manifest::new(
        CS,
        vec![dir("d"), file("d/f", b"hello", CS), link("l", "d/f")],
    )
    .unwrap();
    let obs: Vec<Observed> = m.entries().iter().map(observed).collect();
    let d = diff(&m, &obs, true);
    assert_eq!(d.unchanged_files, [1]);
    assert!(d.delete.is_empty() && d.write_files.is_empty() && d.write_symlinks.is_empty());
    assert!(d.create_dirs.is_empty() && d.fix_meta.is_empty());
    assert!(d.needed_chunks(&m).is_empty());
}

#[test]
fn changes_deletes_and_type_swaps() {
    let m = Manifest::new(
        CS,
        vec![
            dir("d"),
            file("d/f", b"new", CS),
            file("x", b"", CS),
            link("l", "b"),
            file("m", b"same", CS),
        ],
    )
    .unwrap();
    let mut mode_changed = file("m", b"same", CS);
    mode_changed.meta.mode = 0o600;
    let obs = vec![
        observed(&dir("d")),
        observed(&file("d/f", b"old", CS)),
        observed(&dir("x")),
        observed(&file("x/inner", b"", CS)),
        observed(&link("l", "a")),
        observed(&mode_changed),
        observed(&file("gone", b"", CS)),
    ];
    let d = diff(&m, &obs, true);
    assert_eq!(d.delete, ["gone", "x"]);
    assert_eq!(d.write_files, [1, 4]);
    assert_eq!(d.write_symlinks, [2]);
    assert_eq!(d.fix_meta, [3]);
    assert_eq!(d.unchanged_files, [3]);
    assert_eq!(d.needed_chunks(&m).len(), 1, "the empty file has no chunks");
    let d = diff(&m, &obs, false);
    assert_eq!(
        d.delete,
        ["x"],
        "type mismatch is replaced even without prune"
    );
}

fn apply(model: &mut BTreeMap<String, Observed>, m: &Manifest, d: &TreeDiff) {
    for p in &d.delete {
        model.retain(|k, _| !(k == p || k.starts_with(&format!("{p}/"))));
    }
    for &i in d
        .create_dirs
        .iter()
        .chain(&d.write_files)
        .chain(&d.write_symlinks)
        .chain(&d.fix_meta)
    {
        let e = &m.entries()[i];
        model.insert(e.path.to_string(), observed(e));
    }
}

fn arb_tree() -> impl Strategy<Value = Vec<Entry>> {
    // Paths over a tiny alphabet so trees overlap often; kinds vary.
    let item = ("[ab]{1}(/[ab]{1}){0,2}", 0u8..3, 0u8..3, 0u32..2);
    proptest::collection::vec(item, 0..12).prop_map(|items| {
        let mut by_path: BTreeMap<String, Entry> = BTreeMap::new();
        for (p, kind, content, mode) in items {
            let parts: Vec<&str> = p.split('/').collect();
            for k in 1..parts.len() {
                let parent = parts[..k].join("/");
                by_path.insert(parent.clone(), dir(&parent));
            }
            let mut e = match kind {
                0 => dir(&p),
                1 => file(&p, &[content; 3], CS),
                _ => link(&p, &format!("t{content}")),
            };
            e.meta.mode = 0o644 + mode;
            by_path.insert(p, e);
        }
        // A later child may have turned an earlier file into a parent.
        let paths: Vec<String> = by_path.keys().cloned().collect();
        for p in &paths {
            if paths.iter().any(|q| q.starts_with(&format!("{p}/"))) {
                by_path.insert(p.clone(), dir(p));
            }
        }
        by_path.into_values().collect()
    })
}

proptest! {
    #[test]
    fn applying_the_diff_yields_the_manifest(want in arb_tree(), have in arb_tree()) {
        let m = Manifest::new(CS, want).unwrap();
        let mut model: BTreeMap<String, Observed> =
            have.iter().map(|e| (e.path.to_string(), observed(e))).collect();
        let obs: Vec<Observed> = model.values().cloned().collect();
        let d = diff(&m, &obs, true);
        apply(&mut model, &m, &d);
        let expect: BTreeMap<String, Observed> =
            m.entries().iter().map(|e| (e.path.to_string(), observed(e))).collect();
        prop_assert_eq!(model, expect);
        // A second diff against the result is a no-op.
        let obs: Vec<Observed> = m.entries().iter().map(observed).collect();
        let again = diff(&m, &obs, true);
        prop_assert!(again.delete.is_empty() && again.write_files.is_empty());
        prop_assert!(again.fix_meta.is_empty() && again.create_dirs.is_empty());
    }
}
