//! The file tree a build adds on top of its base: every `COPY`/`ADD` of the
//! Kubefile resolved against the build context and merged into one sorted
//! map of image paths (later copies win, as later layers would).
//!
//! Sources are resolved inside the context: symlinks on the way are
//! followed by hand and a source that ends up outside the context (`..`,
//! an absolute symlink target) is refused. Inside a copied directory
//! symlinks are kept as symlinks and never followed. Entries excluded by
//! `.dockerignore`/`.sealignore` are skipped; naming an excluded source
//! directly is an error, as in Docker. Only directories, regular files and
//! symlinks can be copied.
//!
//! Invariant: nothing is read outside the context, nothing is written.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use ferry_shared::kubefile::ignore::has_magic;
use ferry_shared::kubefile::{CopyStep, Glob, IgnoreRules};

const MAX_HOPS: usize = 40;

/// Modes kept in layers: permissions and sticky; setuid/setgid are dropped
/// (ferry's own unpacker refuses them).
const MODE_MASK: u32 = 0o1777;

#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    #[error(
        "line {line}: COPY source `{source_path}` leaves the build context {context} (through `{via}`); copy the real files into the context"
    )]
    Escapes {
        line: usize,
        source_path: String,
        via: String,
        context: PathBuf,
    },
    #[error(
        "line {line}: COPY source `{source_path}` not found in the build context {context} (or excluded by .dockerignore/.sealignore)"
    )]
    NotFound {
        line: usize,
        source_path: String,
        context: PathBuf,
    },
    #[error("line {line}: COPY source `{source_path}`: {reason}")]
    Source {
        line: usize,
        source_path: String,
        reason: String,
    },
    #[error(
        "line {line}: COPY to `{path}` needs `{parent}` to be a directory, but an earlier COPY put a non-directory there"
    )]
    NotADirectory {
        line: usize,
        path: String,
        parent: String,
    },
    #[error("{path}: {op}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> TreeError {
    let path = path.to_owned();
    move |source| TreeError::Io { op, path, source }
}

/// What one image path holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    Dir,
    /// A regular file read from `source` when the layer is written.
    File {
        source: PathBuf,
    },
    Symlink {
        target: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub kind: EntryKind,
    pub mode: u32,
}

/// Image paths (relative, no leading `/`) → entries, sorted.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tree {
    pub entries: BTreeMap<String, Entry>,
}

impl Tree {
    /// Resolves all copies of a Kubefile against `context`.
    pub fn from_copies(
        context: &Path,
        copies: &[CopyStep],
        ignore: &IgnoreRules,
    ) -> Result<Tree, TreeError> {
        let mut tree = Tree::default();
        for step in copies {
            let mut walker = Walker {
                context,
                ignore,
                step,
                tree: &mut tree,
            };
            walker.copy_step()?;
        }
        Ok(tree)
    }

    /// Inserts `entry` at `path`, replacing what was there; a non-directory
    /// replaces a whole directory subtree. Missing parents become 0755
    /// directories.
    fn insert(&mut self, line: usize, path: String, entry: Entry) -> Result<(), TreeError> {
        if path.is_empty() {
            return Ok(());
        }
        let mut parent = String::new();
        for part in path.split('/').take(path.split('/').count() - 1) {
            if !parent.is_empty() {
                parent.push('/');
            }
            parent.push_str(part);
            match self.entries.get(&parent) {
                Some(Entry {
                    kind: EntryKind::Dir,
                    ..
                }) => {}
                Some(_) => {
                    return Err(TreeError::NotADirectory { line, path, parent });
                }
                None => {
                    self.entries.insert(
                        parent.clone(),
                        Entry {
                            kind: EntryKind::Dir,
                            mode: 0o755,
                        },
                    );
                }
            }
        }
        if entry.kind == EntryKind::Dir {
            if let Some(old) = self.entries.get(&path)
                && old.kind != EntryKind::Dir
            {
                return Err(TreeError::NotADirectory {
                    line,
                    parent: path.clone(),
                    path,
                });
            }
        } else {
            let prefix = format!("{path}/");
            let below: Vec<String> = self
                .entries
                .range(prefix.clone()..)
                .take_while(|(k, _)| k.starts_with(&prefix))
                .map(|(k, _)| k.clone())
                .collect();
            for k in below {
                self.entries.remove(&k);
            }
        }
        self.entries.insert(path, entry);
        Ok(())
    }
}

fn join_image(dest: &str, rel: &str) -> String {
    let dest = dest.trim_start_matches('/');
    match (dest.is_empty(), rel.is_empty()) {
        (true, _) => rel.to_string(),
        (false, true) => dest.to_string(),
        (false, false) => format!("{dest}/{rel}"),
    }
}

struct Walker<'a> {
    context: &'a Path,
    ignore: &'a IgnoreRules,
    step: &'a CopyStep,
    tree: &'a mut Tree,
}

impl Walker<'_> {
    fn copy_step(&mut self) -> Result<(), TreeError> {
        let mut sources = Vec::new();
        for src in &self.step.sources {
            if has_magic(src) {
                let found = self.glob(src)?;
                if found.is_empty() {
                    return Err(self.not_found(src));
                }
                sources.extend(found);
            } else {
                sources.push(src.clone());
            }
        }
        if sources.len() > 1 && !self.step.dest_is_dir {
            return Err(TreeError::Source {
                line: self.step.line,
                source_path: self.step.sources.join(" "),
                reason: format!(
                    "matches {} paths, so the destination must be a directory ending in `/`",
                    sources.len()
                ),
            });
        }
        for src in sources {
            self.copy_source(&src)?;
        }
        Ok(())
    }

    fn not_found(&self, src: &str) -> TreeError {
        TreeError::NotFound {
            line: self.step.line,
            source_path: src.to_string(),
            context: self.context.to_owned(),
        }
    }

    fn escapes(&self, src: &str, via: String) -> TreeError {
        TreeError::Escapes {
            line: self.step.line,
            source_path: src.to_string(),
            via,
            context: self.context.to_owned(),
        }
    }

    /// Resolves `rel` (context-relative, cleaned) following symlinks inside
    /// the context; returns the real context-relative components.
    fn resolve(&self, src: &str, rel: &str) -> Result<Vec<String>, TreeError> {
        let mut resolved: Vec<String> = Vec::new();
        let mut pending: Vec<String> = rel
            .split('/')
            .filter(|p| !p.is_empty() && *p != ".")
            .rev()
            .map(str::to_string)
            .collect();
        let mut hops = 0;
        while let Some(part) = pending.pop() {
            if part == ".." {
                if resolved.pop().is_none() {
                    return Err(self.escapes(src, resolved.join("/")));
                }
                continue;
            }
            let mut candidate = self.context.to_path_buf();
            candidate.extend(resolved.iter());
            candidate.push(&part);
            let meta = match fs::symlink_metadata(&candidate) {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(self.not_found(src));
                }
                Err(e) => return Err(io("lstat", &candidate)(e)),
            };
            if !meta.file_type().is_symlink() {
                resolved.push(part);
                continue;
            }
            hops += 1;
            let target = fs::read_link(&candidate).map_err(io("readlink", &candidate))?;
            let target = target.to_string_lossy().to_string();
            if hops > MAX_HOPS || target.starts_with('/') {
                let mut via = resolved.clone();
                via.push(part);
                return Err(self.escapes(src, format!("{} -> {target}", via.join("/"))));
            }
            pending.extend(
                target
                    .split('/')
                    .filter(|p| !p.is_empty() && *p != ".")
                    .rev()
                    .map(str::to_string),
            );
        }
        Ok(resolved)
    }

    /// Expands a source with glob characters, segment by segment.
    fn glob(&self, src: &str) -> Result<Vec<String>, TreeError> {
        let mut found = vec![String::new()];
        for seg in src.split('/') {
            let mut next = Vec::new();
            for base in found {
                if !has_magic(seg) {
                    next.push(join_image(&base, seg));
                    continue;
                }
                let g = Glob::new(seg).map_err(|e| TreeError::Source {
                    line: self.step.line,
                    source_path: src.to_string(),
                    reason: e.to_string(),
                })?;
                let real = self.resolve(src, &base)?;
                let mut dir = self.context.to_path_buf();
                dir.extend(real.iter());
                let Ok(rd) = fs::read_dir(&dir) else { continue };
                let mut names: Vec<String> = rd
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().to_string())
                    .filter(|n| g.matches(n))
                    .collect();
                names.sort();
                next.extend(names.into_iter().map(|n| join_image(&base, &n)));
            }
            found = next;
        }
        Ok(found
            .into_iter()
            .filter(|p| !self.ignore.is_excluded(p))
            .collect())
    }

    fn mode(&self, meta: &fs::Metadata) -> u32 {
        self.step
            .chmod
            .unwrap_or(meta.permissions().mode() & MODE_MASK)
    }

    fn copy_source(&mut self, src: &str) -> Result<(), TreeError> {
        let real = self.resolve(src, src)?;
        let real_rel = real.join("/");
        if self.ignore.is_excluded(&real_rel) && !self.ignore.has_exceptions() {
            return Err(self.not_found(src));
        }
        let mut path = self.context.to_path_buf();
        path.extend(real.iter());
        let meta = fs::metadata(&path).map_err(io("stat", &path))?;
        let line = self.step.line;
        if meta.is_dir() {
            let dest = join_image(&self.step.dest, "");
            if !dest.is_empty() {
                let mode = self.mode(&meta);
                self.tree.insert(
                    line,
                    dest.clone(),
                    Entry {
                        kind: EntryKind::Dir,
                        mode,
                    },
                )?;
            }
            return self.walk_dir(&path, &real_rel, &dest);
        }
        if !meta.is_file() {
            return Err(TreeError::Source {
                line,
                source_path: src.to_string(),
                reason: "not a regular file or directory".to_string(),
            });
        }
        let dest = if self.step.dest_is_dir {
            let name = src.rsplit('/').next().unwrap_or(src);
            join_image(&self.step.dest, name)
        } else {
            join_image(&self.step.dest, "")
        };
        let mode = self.mode(&meta);
        self.tree.insert(
            line,
            dest,
            Entry {
                kind: EntryKind::File { source: path },
                mode,
            },
        )
    }

    /// Copies the contents of directory `dir` (context-relative `rel`) to
    /// image path `dest`, without following symlinks.
    fn walk_dir(&mut self, dir: &Path, rel: &str, dest: &str) -> Result<(), TreeError> {
        let mut names: Vec<std::ffi::OsString> = fs::read_dir(dir)
            .map_err(io("read dir", dir))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(io("read dir", dir))?;
        names.sort();
        for name in names {
            let name_s = name.to_string_lossy().to_string();
            let child_rel = join_image(rel, &name_s);
            let child = dir.join(&name);
            let child_dest = join_image(dest, &name_s);
            let meta = fs::symlink_metadata(&child).map_err(io("lstat", &child))?;
            let excluded = self.ignore.is_excluded(&child_rel);
            let ft = meta.file_type();
            if ft.is_dir() {
                if excluded && !self.ignore.has_exceptions() {
                    continue;
                }
                if !excluded {
                    let mode = self.mode(&meta);
                    self.tree.insert(
                        self.step.line,
                        child_dest.clone(),
                        Entry {
                            kind: EntryKind::Dir,
                            mode,
                        },
                    )?;
                }
                self.walk_dir(&child, &child_rel, &child_dest)?;
                continue;
            }
            if excluded {
                continue;
            }
            let entry = if ft.is_symlink() {
                let target = fs::read_link(&child).map_err(io("readlink", &child))?;
                Entry {
                    kind: EntryKind::Symlink {
                        target: target.to_string_lossy().to_string(),
                    },
                    mode: 0o777,
                }
            } else if ft.is_file() {
                Entry {
                    kind: EntryKind::File { source: child },
                    mode: self.mode(&meta),
                }
            } else {
                return Err(TreeError::Source {
                    line: self.step.line,
                    source_path: child_rel,
                    reason: "sockets, FIFOs and devices cannot be copied into an image".to_string(),
                });
            };
            self.tree.insert(self.step.line, child_dest, entry)?;
        }
        Ok(())
    }
}
