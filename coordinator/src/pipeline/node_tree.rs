//! Small trees of files written on a node through exec stdin (the PKI, the
//! backup), durable and whole: unpacked into a private stage beside the
//! destination, synced (syncfs), each file renamed over its destination,
//! synced again. A kill leaves every file old or new, never truncated, and
//! the caller journals its step only after this returns.
//!
//! An exec's stdin is bounded ([`MAX_STDIN_BYTES`]): a tree larger than one
//! exec goes in several, into the same stage, and a file larger than one
//! exec (a long-lived cluster's journal) in parts joined on the node.

use std::sync::atomic::{AtomicU64, Ordering};

use ferry_shared::exec::MAX_STDIN_BYTES;
use ferry_shared::pipeline::Step;

use super::PipelineError;
use super::journal::Recorder;
use super::node::{Cmd, NodeRef, run};
use crate::client::ClientTls;

/// Bytes per exec, tar headers counted: half the stdin limit.
const BATCH: usize = MAX_STDIN_BYTES / 2;
/// What a member costs besides its data: its header and padding.
const HEADER: usize = 1024;

/// One tar member: path in the stage, bytes, mode.
type Member = (String, Vec<u8>, u32);

/// The tree as batches of members costing at most `batch` bytes each,
/// and the files sent in parts (path, number of parts: members
/// `<path>.ferry-part-<k>`).
fn batches(files: &[Member], batch: usize) -> (Vec<Vec<Member>>, Vec<(String, usize)>) {
    let mut out: Vec<Vec<Member>> = vec![Vec::new()];
    let mut size = 0;
    let mut split = Vec::new();
    let mut push = |m: Member, out: &mut Vec<Vec<Member>>| {
        let cost = m.1.len() + HEADER;
        if size + cost > batch && !out.last().is_some_and(Vec::is_empty) {
            out.push(Vec::new());
            size = 0;
        }
        size += cost;
        if let Some(b) = out.last_mut() {
            b.push(m);
        }
    };
    for (path, data, mode) in files {
        if data.len() + HEADER <= batch {
            push((path.clone(), data.clone(), *mode), &mut out);
            continue;
        }
        let parts: Vec<&[u8]> = data.chunks(batch - HEADER).collect();
        split.push((path.clone(), parts.len()));
        for (k, p) in parts.into_iter().enumerate() {
            push(
                (format!("{path}.ferry-part-{k}"), p.to_vec(), *mode),
                &mut out,
            );
        }
    }
    (out, split)
}

/// Joins split files, syncs, renames every file of stage `$2` into `$1`.
const COMMIT: &str = r#"set -e; d=$1; s=$2; shift 2; trap 'rm -rf "$s"' EXIT
for spec; do f=${spec%:*}; n=${spec##*:}; i=0; j="$s/$f.ferry-join"; : > "$j"; chmod --reference="$s/$f.ferry-part-0" "$j"
  while [ "$i" -lt "$n" ]; do cat "$s/$f.ferry-part-$i" >> "$j"; rm -f "$s/$f.ferry-part-$i"; i=$((i+1)); done; mv -fT "$j" "$s/$f"; done
sync -f "$s"; cd "$s"; find . -type f -exec sh -c 'for f; do mkdir -p "$0/$(dirname "$f")"; mv -fT "$f" "$0/$f"; done' "$d" {} +; cd /; sync -f "$d""#;
/// Unpacks stdin into the stage `$1` (made private if new).
const UNPACK: &str =
    r#"set -e; mkdir -p "$(dirname "$1")"; mkdir -p -m 0700 "$1"; tar -x --no-same-owner -C "$1""#;

static STAGE: AtomicU64 = AtomicU64::new(0);

/// Writes `files` (`(path, bytes, mode)`) under `dir` on the node.
pub async fn write_tree(
    node: &NodeRef,
    tls: &ClientTls,
    rec: &Recorder,
    step: Step,
    dir: &str,
    files: &[Member],
) -> Result<(), PipelineError> {
    let (batches, split) = batches(files, BATCH);
    let stage = format!(
        "{dir}/.ferry-stage-{}-{}-{}",
        rec.reporter().op(),
        std::process::id(),
        STAGE.fetch_add(1, Ordering::Relaxed)
    );
    let n = batches.len();
    for (i, b) in batches.iter().enumerate() {
        let tar = crate::tarball::pack(b).map_err(|e| PipelineError::host(&node.host, step, e))?;
        let shown = if n == 1 {
            format!("write {} files under {dir}", files.len())
        } else {
            format!("write {} files under {dir} ({}/{n})", files.len(), i + 1)
        };
        let cmd = Cmd::script(UNPACK, &[&stage]).stdin(tar).display(shown);
        run(node, tls, rec, step, cmd).await?;
    }
    let specs: Vec<String> = split.iter().map(|(p, k)| format!("{p}:{k}")).collect();
    let mut args = vec![dir, stage.as_str()];
    args.extend(specs.iter().map(String::as_str));
    let cmd =
        Cmd::script(COMMIT, &args).display(format!("commit {} files under {dir}", files.len()));
    run(node, tls, rec, step, cmd).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_trees_go_in_one_batch_and_big_files_in_parts() {
        let f = |p: &str, n: usize| (p.to_string(), vec![b'x'; n], 0o600);
        let (b, split) = batches(&[f("a", 10), f("b", 20)], 3000);
        assert_eq!(b.len(), 1);
        assert!(split.is_empty());

        // Members cost 1024 + data: a batch of 1124 holds 100 data bytes.
        let (b, split) = batches(&[f("a", 60), f("b", 60), f("big", 250), f("c", 1)], 1124);
        let names: Vec<Vec<&str>> = b
            .iter()
            .map(|m| m.iter().map(|(p, _, _)| p.as_str()).collect())
            .collect();
        assert_eq!(
            names,
            [
                vec!["a"],
                vec!["b"],
                vec!["big.ferry-part-0"],
                vec!["big.ferry-part-1"],
                vec!["big.ferry-part-2"],
                vec!["c"],
            ]
        );
        assert_eq!(split, [("big".to_string(), 3)]);
        assert!(
            b.iter()
                .all(|m| m.iter().map(|x| x.1.len()).sum::<usize>() <= 100)
        );
        let joined: usize = b
            .iter()
            .flatten()
            .filter(|m| m.0.starts_with("big"))
            .map(|m| m.1.len())
            .sum();
        assert_eq!(joined, 250);
    }
}
