//! `.dockerignore` / `.sealignore` matching with Docker's semantics
//! (`moby/patternmatcher`): one pattern per line, `#` comments, patterns
//! trimmed and cleaned, a leading `/` dropped, paths matched from the context
//! root (`*.md` matches only top-level files). `*` matches within one path
//! segment, `?` one character, `[a-z]`/`[!a]` classes, `\` escapes, and `**`
//! any number of segments (also none). A pattern that matches a directory
//! matches everything below it. `!pattern` re-includes; the last matching
//! pattern wins.

/// A pattern that cannot be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IgnoreError {
    #[error("ignore pattern `{pattern}`: {reason}")]
    BadPattern {
        pattern: String,
        reason: &'static str,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Lit(char),
    Star,
    One,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

/// One path segment's glob (`*`, `?`, classes, escapes; no `/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob(Vec<Tok>);

/// True when `s` holds glob metacharacters.
pub fn has_magic(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

impl Glob {
    pub fn new(segment: &str) -> Result<Glob, IgnoreError> {
        let bad = |reason| IgnoreError::BadPattern {
            pattern: segment.to_string(),
            reason,
        };
        let mut toks = Vec::new();
        let mut chars = segment.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '*' => toks.push(Tok::Star),
                '?' => toks.push(Tok::One),
                '\\' => match chars.next() {
                    Some(n) => toks.push(Tok::Lit(n)),
                    None => return Err(bad("trailing escape")),
                },
                '[' => {
                    let negated = matches!(chars.peek(), Some('!' | '^'));
                    if negated {
                        chars.next();
                    }
                    let mut ranges = Vec::new();
                    let mut closed = false;
                    while let Some(c) = chars.next() {
                        let lo = match c {
                            ']' if !ranges.is_empty() => {
                                closed = true;
                                break;
                            }
                            '\\' => chars.next().ok_or_else(|| bad("trailing escape"))?,
                            c => c,
                        };
                        let hi = if chars.peek() == Some(&'-') {
                            chars.next();
                            match chars.next() {
                                Some('\\') => chars.next().ok_or_else(|| bad("trailing escape"))?,
                                Some(h) => h,
                                None => return Err(bad("unterminated character class")),
                            }
                        } else {
                            lo
                        };
                        if hi < lo {
                            return Err(bad("character range out of order"));
                        }
                        ranges.push((lo, hi));
                    }
                    if !closed {
                        return Err(bad("unterminated character class"));
                    }
                    toks.push(Tok::Class { negated, ranges });
                }
                c => toks.push(Tok::Lit(c)),
            }
        }
        Ok(Glob(toks))
    }

    /// Whether `name` (one segment) matches.
    pub fn matches(&self, name: &str) -> bool {
        let name: Vec<char> = name.chars().collect();
        glob_match(&self.0, &name)
    }
}

fn glob_match(toks: &[Tok], name: &[char]) -> bool {
    // Iterative matcher with one backtrack point for the last `*`.
    let (mut t, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        let step = match toks.get(t) {
            Some(Tok::Star) => {
                star = Some((t, n));
                t += 1;
                continue;
            }
            Some(Tok::Lit(c)) => *c == name[n],
            Some(Tok::One) => true,
            Some(Tok::Class { negated, ranges }) => {
                let inside = ranges
                    .iter()
                    .any(|&(lo, hi)| lo <= name[n] && name[n] <= hi);
                inside != *negated
            }
            None => false,
        };
        if step {
            t += 1;
            n += 1;
        } else if let Some((st, sn)) = star {
            t = st + 1;
            n = sn + 1;
            star = Some((st, sn + 1));
        } else {
            return false;
        }
    }
    toks[t.min(toks.len())..].iter().all(|x| *x == Tok::Star)
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    AnyDirs,
    Glob(Glob),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    exclusion: bool,
    segs: Vec<Seg>,
}

impl Pattern {
    fn matches(&self, path: &[&str]) -> bool {
        seg_match(&self.segs, path)
    }
}

/// Whether `segs` matches all of `path`: dynamic programming over
/// (pattern position, path position), so `**` never backtracks
/// exponentially.
fn seg_match(segs: &[Seg], path: &[&str]) -> bool {
    let n = path.len();
    // row[j] = segs[i+1..] matches path[j..]; computed bottom-up.
    let mut next = vec![false; n + 1];
    next[n] = true;
    for seg in segs.iter().rev() {
        let mut row = vec![false; n + 1];
        for j in (0..=n).rev() {
            row[j] = match seg {
                Seg::AnyDirs => next[j] || (j < n && row[j + 1]),
                Seg::Glob(g) => j < n && next[j + 1] && g.matches(path[j]),
            };
        }
        next = row;
    }
    next[0]
}

/// Compiled ignore rules, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IgnoreRules {
    patterns: Vec<Pattern>,
}

impl IgnoreRules {
    /// Parses the text of an ignore file.
    pub fn parse(text: &str) -> Result<IgnoreRules, IgnoreError> {
        let mut rules = IgnoreRules::default();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (exclusion, pat) = match line.strip_prefix('!') {
                Some(p) => (true, p.trim()),
                None => (false, line),
            };
            if pat.is_empty() {
                return Err(IgnoreError::BadPattern {
                    pattern: line.to_string(),
                    reason: "exclusion without a pattern",
                });
            }
            let segs = clean(pat)
                .into_iter()
                .map(|s| {
                    if s == "**" {
                        Ok(vec![Seg::AnyDirs])
                    } else if let Some(rest) = s.strip_prefix("**") {
                        Ok(vec![Seg::AnyDirs, Seg::Glob(Glob::new(rest)?)])
                    } else {
                        Ok(vec![Seg::Glob(Glob::new(&s)?)])
                    }
                })
                .collect::<Result<Vec<_>, IgnoreError>>()?
                .into_iter()
                .flatten()
                .collect::<Vec<_>>();
            // `**/**` is `**`.
            let mut segs = segs;
            segs.dedup_by(|a, b| *a == Seg::AnyDirs && *b == Seg::AnyDirs);
            rules.patterns.push(Pattern { exclusion, segs });
        }
        Ok(rules)
    }

    /// Appends another file's rules (they win over ours).
    pub fn extend(&mut self, other: IgnoreRules) {
        self.patterns.extend(other.patterns);
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether some `!` pattern exists, so an excluded directory may still
    /// hold included entries and must be walked.
    pub fn has_exceptions(&self) -> bool {
        self.patterns.iter().any(|p| p.exclusion)
    }

    /// Whether `rel` (slash-separated, relative to the context root) is
    /// excluded.
    pub fn is_excluded(&self, rel: &str) -> bool {
        let parts: Vec<&str> = rel
            .split('/')
            .filter(|s| !s.is_empty() && *s != ".")
            .collect();
        if parts.is_empty() {
            return false;
        }
        let mut excluded = false;
        for p in &self.patterns {
            // Only a pattern that could flip the current state matters.
            if p.exclusion != excluded {
                continue;
            }
            if (1..=parts.len()).any(|n| p.matches(&parts[..n])) {
                excluded = !p.exclusion;
            }
        }
        excluded
    }
}

/// `filepath.Clean` plus dropping a leading `/`: segments without `.`, empty
/// ones and resolvable `..`.
fn clean(pat: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in pat.split('/') {
        match s {
            "" | "." => {}
            ".." if out.last().is_some_and(|l| l != "..") => {
                out.pop();
            }
            s => out.push(s.to_string()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(s: &str) -> IgnoreRules {
        IgnoreRules::parse(s).unwrap()
    }

    #[test]
    fn docker_semantics() {
        let r = rules("# comment\n*.md\n!README.md\n/tmp\nbuild/\n**/*.bak\ndocs/**/x?.txt\n");
        assert!(r.is_excluded("a.md"));
        assert!(!r.is_excluded("README.md"));
        assert!(!r.is_excluded("sub/a.md"), "*.md is anchored at the root");
        assert!(r.is_excluded("tmp"));
        assert!(
            r.is_excluded("tmp/deep/file"),
            "a matched dir excludes its contents"
        );
        assert!(r.is_excluded("build/out.bin"));
        assert!(r.is_excluded("x.bak"));
        assert!(r.is_excluded("a/b/c.bak"));
        assert!(r.is_excluded("docs/x1.txt"));
        assert!(r.is_excluded("docs/a/b/xy.txt"));
        assert!(!r.is_excluded("docs/a/b/xyz.txt"));
        assert!(!r.is_excluded("src/main.rs"));
        assert!(!r.is_excluded(""));
    }

    #[test]
    fn last_match_wins_and_exceptions_reinclude_below_excluded_dirs() {
        let r = rules("registry\n!registry/keep\nregistry/keep/drop\n");
        assert!(r.is_excluded("registry/a"));
        assert!(!r.is_excluded("registry/keep/b"));
        assert!(r.is_excluded("registry/keep/drop/c"));
        assert!(r.has_exceptions());
        let r = rules("!a\na");
        assert!(r.is_excluded("a"));
    }

    #[test]
    fn classes_escapes_and_star_star() {
        let r = rules("[a-c]?.log\n[!x]z\n\\*lit\n**\n!keep/**\n");
        assert!(r.is_excluded("any/thing"), "** matches everything");
        assert!(!r.is_excluded("keep/x/y"));
        let r = rules("[a-c]?.log\n[!x]z\n\\*lit\n");
        assert!(r.is_excluded("b1.log"));
        assert!(!r.is_excluded("d1.log"));
        assert!(r.is_excluded("yz"));
        assert!(!r.is_excluded("xz"));
        assert!(r.is_excluded("*lit"));
        assert!(!r.is_excluded("alit"));
        let r = rules("a/**\n");
        assert!(r.is_excluded("a/b"));
        assert!(r.is_excluded("a"), "** also matches zero segments");
    }

    #[test]
    fn cleaned_patterns() {
        let r = rules("  ./x/../y/  \n/abs/path\n");
        assert!(r.is_excluded("y/z"));
        assert!(r.is_excluded("abs/path"));
        assert!(!r.is_excluded("x"));
    }

    #[test]
    fn repeated_star_star_stays_fast() {
        let r = rules(&format!("{}x\n{}y\n", "**/".repeat(40), "**/d/".repeat(30)));
        let deep = vec!["d"; 60].join("/");
        assert!(!r.is_excluded(&deep));
        assert!(r.is_excluded(&format!("{deep}/x")));
        assert!(r.is_excluded(&format!("{deep}/y")));
    }

    #[test]
    fn bad_patterns_are_errors() {
        assert!(IgnoreRules::parse("[abc").is_err());
        assert!(IgnoreRules::parse("!").is_err());
        assert!(IgnoreRules::parse("a\\").is_err());
        assert!(IgnoreRules::parse("[z-a]").is_err());
    }

    #[test]
    fn glob_segments() {
        let g = Glob::new("*.tar*").unwrap();
        assert!(g.matches("a.tar.gz"));
        assert!(g.matches(".tar"));
        assert!(!g.matches("a.tgz"));
        assert!(Glob::new("a*b*c").unwrap().matches("aXbYbZc"));
        assert!(!Glob::new("a*b*c").unwrap().matches("aXbYbZ"));
        assert!(has_magic("a*") && !has_magic("plain"));
    }
}
