//! Build arguments and substitution applied to a parsed [`Kubefile`]:
//! the [`Plan`] a builder executes, and how it changes an image config.
//!
//! Scopes follow Docker: `ARG`s before `FROM` are visible to `FROM` only; an
//! `ARG name` after `FROM` takes `--build-arg`, else its default, else the
//! value of the global `ARG` of that name. `ENV` (the base image's and the
//! Kubefile's) wins over `ARG` in substitution. Build args nobody declares
//! are reported in [`Plan::unused_build_args`].

use std::collections::{BTreeMap, BTreeSet};

use super::shell::{self, Vars};
use super::{ArgDecl, Kubefile, KubefileError, Op};

/// `--build-arg` values.
pub type BuildArgs = BTreeMap<String, String>;

/// What the image starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Base {
    Scratch,
    Image(String),
}

/// One `COPY`/`ADD`: sources relative to the context root (cleaned, never
/// escaping it; `.` is the root; glob characters kept), destination
/// absolute and cleaned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyStep {
    pub line: usize,
    pub add: bool,
    pub sources: Vec<String>,
    pub dest: String,
    /// The destination names a directory (`/`, trailing `/`, `.`).
    pub dest_is_dir: bool,
    pub chmod: Option<u32>,
}

/// Everything a builder needs, with all substitution done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub base: Base,
    pub platform: Option<String>,
    pub copies: Vec<CopyStep>,
    /// ENV in order (later wins).
    pub env: Vec<(String, String)>,
    pub labels: Vec<(String, String)>,
    pub cmd: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    pub author: Option<String>,
    pub unused_build_args: Vec<String>,
}

/// The runtime part of an OCI image config that a Kubefile can change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// `KEY=VALUE` entries.
    pub env: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub cmd: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    pub author: Option<String>,
}

impl Plan {
    /// Applies the Kubefile on top of the base image's config: env entries
    /// replaced in place or appended, labels merged, CMD/ENTRYPOINT replaced
    /// (a new ENTRYPOINT without CMD clears the inherited CMD, as Docker).
    pub fn apply(&self, mut base: RuntimeConfig) -> RuntimeConfig {
        for (k, v) in &self.env {
            let entry = format!("{k}={v}");
            let prefix = format!("{k}=");
            match base.env.iter_mut().find(|e| e.starts_with(&prefix)) {
                Some(e) => *e = entry,
                None => base.env.push(entry),
            }
        }
        for (k, v) in &self.labels {
            base.labels.insert(k.clone(), v.clone());
        }
        if let Some(ep) = &self.entrypoint {
            base.entrypoint = Some(ep.clone());
            if self.cmd.is_none() {
                base.cmd = None;
            }
        }
        if let Some(cmd) = &self.cmd {
            base.cmd = Some(cmd.clone());
        }
        if let Some(a) = &self.author {
            base.author = Some(a.clone());
        }
        base
    }
}

fn env_vars(entries: &[String]) -> Vec<(String, String)> {
    entries
        .iter()
        .map(|e| match e.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (e.clone(), String::new()),
        })
        .collect()
}

fn is_remote(s: &str) -> bool {
    s.contains("://") || s.starts_with("git@")
}

fn is_archive(s: &str) -> bool {
    let s = s.to_ascii_lowercase();
    [
        ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".tar.zst",
    ]
    .iter()
    .any(|ext| s.ends_with(ext))
}

/// Cleans a source path relative to the context; `None` if it climbs out.
fn clean_source(s: &str) -> Option<String> {
    let mut out: Vec<&str> = Vec::new();
    for part in s.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                out.pop()?;
            }
            p => out.push(p),
        }
    }
    Some(if out.is_empty() {
        ".".to_string()
    } else {
        out.join("/")
    })
}

/// Cleans a destination to an absolute path (`..` stops at `/`).
fn clean_dest(s: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for part in s.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            p => out.push(p),
        }
    }
    format!("/{}", out.join("/"))
}

/// Variables while resolving: ARG values, ENV values (which win), the
/// global ARGs (fallback for a bare `ARG name`), names declared so far.
struct Scope<'a> {
    build_args: &'a BuildArgs,
    globals: Vars,
    args: Vars,
    env: Vars,
    declared: BTreeSet<String>,
}

impl Scope<'_> {
    fn vars(&self) -> Vars {
        let mut v = self.args.clone();
        v.extend(self.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        v
    }

    fn declare(
        &mut self,
        decls: &[ArgDecl],
        line: usize,
        escape: char,
    ) -> Result<(), KubefileError> {
        for d in decls {
            self.declared.insert(d.name.clone());
            let value = if let Some(v) = self.build_args.get(&d.name) {
                Some(v.clone())
            } else if let Some(raw) = &d.default {
                Some(shell::word(raw, &self.vars(), escape).map_err(|source| {
                    KubefileError::Shell {
                        line,
                        instruction: "ARG",
                        source,
                    }
                })?)
            } else {
                self.globals.get(&d.name).cloned()
            };
            if let Some(v) = value {
                self.args.insert(d.name.clone(), v);
            }
        }
        Ok(())
    }
}

impl Kubefile {
    /// Resolves the Kubefile with `build_args` over a base image whose
    /// config has `base_env` (`KEY=VALUE` entries; empty for scratch).
    pub fn resolve(
        &self,
        build_args: &BuildArgs,
        base_env: &[String],
    ) -> Result<Plan, KubefileError> {
        let mut scope = Scope {
            build_args,
            globals: Vars::new(),
            args: Vars::new(),
            env: Vars::new(),
            declared: BTreeSet::new(),
        };
        scope.declare(&self.global_args, self.from.line, self.escape)?;
        let globals = std::mem::take(&mut scope.args);
        let from_err = |source| KubefileError::Shell {
            line: self.from.line,
            instruction: "FROM",
            source,
        };
        let image = shell::word(&self.from.image, &globals, self.escape).map_err(from_err)?;
        let platform = match &self.from.platform {
            Some(p) => Some(shell::word(p, &globals, self.escape).map_err(from_err)?),
            None => None,
        };
        let base = if image.eq_ignore_ascii_case("scratch") {
            Base::Scratch
        } else {
            Base::Image(image)
        };
        let mut plan = Plan {
            base,
            platform,
            copies: Vec::new(),
            env: Vec::new(),
            labels: Vec::new(),
            cmd: None,
            entrypoint: None,
            author: None,
            unused_build_args: Vec::new(),
        };
        scope.globals = globals;
        scope.env = env_vars(base_env).into_iter().collect();
        for step in &self.steps {
            let line = step.line;
            let word = |s: &str, instruction: &'static str, vars: &Vars| {
                shell::word(s, vars, self.escape).map_err(|source| KubefileError::Shell {
                    line,
                    instruction,
                    source,
                })
            };
            match &step.op {
                Op::Arg(decls) => scope.declare(decls, line, self.escape)?,
                Op::Env(pairs) => {
                    for (k, v) in pairs {
                        let cur = scope.vars();
                        let k = word(k, "ENV", &cur)?;
                        let v = word(v, "ENV", &cur)?;
                        scope.env.insert(k.clone(), v.clone());
                        plan.env.push((k, v));
                    }
                }
                Op::Label(pairs) => {
                    let cur = scope.vars();
                    for (k, v) in pairs {
                        plan.labels
                            .push((word(k, "LABEL", &cur)?, word(v, "LABEL", &cur)?));
                    }
                }
                Op::Cmd(c) => plan.cmd = Some(c.clone()),
                Op::Entrypoint(c) => plan.entrypoint = Some(c.clone()),
                Op::Maintainer(m) => plan.author = Some(m.clone()),
                Op::Copy {
                    add,
                    chmod,
                    args: raw,
                } => {
                    let instruction = if *add { "ADD" } else { "COPY" };
                    let cur = scope.vars();
                    let mut words = raw
                        .iter()
                        .map(|w| word(w, instruction, &cur))
                        .collect::<Result<Vec<_>, _>>()?;
                    let dest_raw = words.pop().unwrap_or_default();
                    let mut sources = Vec::new();
                    for src in words {
                        if is_remote(&src) {
                            return Err(KubefileError::RemoteAdd { line, url: src });
                        }
                        if *add && is_archive(&src) {
                            return Err(KubefileError::AddArchive { line, path: src });
                        }
                        let cleaned =
                            clean_source(&src).ok_or_else(|| KubefileError::OutsideContext {
                                line,
                                instruction,
                                path: src.clone(),
                            })?;
                        sources.push(cleaned);
                    }
                    let dest = clean_dest(&dest_raw);
                    let dest_is_dir = dest == "/"
                        || dest_raw.ends_with('/')
                        || dest_raw == "."
                        || dest_raw.ends_with("/.");
                    if sources.len() > 1 && !dest_is_dir {
                        return Err(KubefileError::Syntax {
                            line,
                            instruction,
                            message: format!(
                                "with more than one source the destination must be a directory ending in `/` (got `{dest_raw}`)"
                            ),
                        });
                    }
                    plan.copies.push(super::CopyStep {
                        line,
                        add: *add,
                        sources,
                        dest,
                        dest_is_dir,
                        chmod: *chmod,
                    });
                }
            }
        }
        plan.unused_build_args = build_args
            .keys()
            .filter(|k| !scope.declared.contains(*k))
            .cloned()
            .collect();
        Ok(plan)
    }
}
