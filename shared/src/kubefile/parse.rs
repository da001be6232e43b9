//! Logical lines → [`Kubefile`]: instruction dispatch, flags, `KEY=VALUE`
//! lists (and the legacy `ENV key value`), JSON vs shell form.

use super::lines::logical_lines;
use super::{ArgDecl, From, Kubefile, KubefileError, Op, Step};

impl Kubefile {
    /// Parses Kubefile text. Fails on the first refused or malformed line.
    pub fn parse(text: &str) -> Result<Kubefile, KubefileError> {
        let (lines, escape) = logical_lines(text);
        let mut global_args = Vec::new();
        let mut from: Option<From> = None;
        let mut steps = Vec::new();
        for l in lines {
            let (word, rest) = match l.text.split_once(char::is_whitespace) {
                Some((w, r)) => (w, r.trim()),
                None => (l.text.as_str(), ""),
            };
            let upper = word.to_ascii_uppercase();
            let line = l.line;
            let syntax = |instruction: &'static str, message: &str| KubefileError::Syntax {
                line,
                instruction,
                message: message.to_string(),
            };
            if upper != "FROM" && upper != "ARG" && from.is_none() && is_known(&upper) {
                return Err(KubefileError::BeforeFrom {
                    line,
                    instruction: upper,
                });
            }
            let op = match upper.as_str() {
                "FROM" => {
                    if let Some(f) = &from {
                        return Err(KubefileError::MultipleFrom {
                            line,
                            first: f.line,
                        });
                    }
                    from = Some(parse_from(line, rest, escape)?);
                    continue;
                }
                "ARG" => {
                    let decls = parse_args(line, rest, escape)?;
                    if from.is_none() {
                        global_args.extend(decls);
                        continue;
                    }
                    Op::Arg(decls)
                }
                "COPY" | "ADD" => parse_copy(line, upper == "ADD", rest, escape)?,
                "ENV" => Op::Env(name_values(line, "ENV", rest, escape)?),
                "LABEL" => Op::Label(name_values(line, "LABEL", rest, escape)?),
                "CMD" => Op::Cmd(command(rest).ok_or_else(|| syntax("CMD", "needs a command"))?),
                "ENTRYPOINT" => Op::Entrypoint(
                    command(rest).ok_or_else(|| syntax("ENTRYPOINT", "needs a command"))?,
                ),
                "MAINTAINER" => {
                    if rest.is_empty() {
                        return Err(syntax("MAINTAINER", "needs a name"));
                    }
                    Op::Maintainer(rest.to_string())
                }
                "RUN" => return Err(KubefileError::Run { line }),
                _ => {
                    return Err(KubefileError::Unsupported {
                        line,
                        instruction: word.to_string(),
                    });
                }
            };
            steps.push(Step { line, op });
        }
        let from = from.ok_or(KubefileError::NoFrom)?;
        Ok(Kubefile {
            escape,
            global_args,
            from,
            steps,
        })
    }
}

fn is_known(upper: &str) -> bool {
    matches!(
        upper,
        "COPY" | "ADD" | "ENV" | "LABEL" | "CMD" | "ENTRYPOINT" | "MAINTAINER"
    )
}

/// Splits on unquoted whitespace, keeping quotes and escapes in the words
/// (Docker's `parseWords`); the shell lexer removes them later.
pub(super) fn raw_words(s: &str, escape: char) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == escape {
            cur.push(c);
            if let Some(n) = chars.next() {
                cur.push(n);
            }
            in_word = true;
            continue;
        }
        match quote {
            Some(q) if c == q => quote = None,
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
                continue;
            }
            _ => {}
        }
        cur.push(c);
        in_word = true;
    }
    if in_word {
        words.push(cur);
    }
    words
}

/// Leading `--name=value` flags, then the remaining words.
fn flags(words: Vec<String>) -> (Vec<(String, String)>, Vec<String>) {
    let mut flags = Vec::new();
    let mut rest = Vec::new();
    let mut in_flags = true;
    for w in words {
        if in_flags && let Some(f) = w.strip_prefix("--") {
            let (k, v) = f.split_once('=').unwrap_or((f, ""));
            flags.push((k.to_string(), v.to_string()));
            continue;
        }
        in_flags = false;
        rest.push(w);
    }
    (flags, rest)
}

fn parse_from(line: usize, rest: &str, escape: char) -> Result<From, KubefileError> {
    let (fl, words) = flags(raw_words(rest, escape));
    let syntax = |message: String| KubefileError::Syntax {
        line,
        instruction: "FROM",
        message,
    };
    let mut platform = None;
    for (k, v) in fl {
        match k.as_str() {
            "platform" => platform = Some(v),
            _ => return Err(syntax(format!("unknown flag --{k}"))),
        }
    }
    if words.is_empty() {
        return Err(syntax("needs an image (or `scratch`)".to_string()));
    }
    let aliased = words.len() == 3 && words[1].eq_ignore_ascii_case("as");
    if words.len() != 1 && !aliased {
        return Err(syntax(
            "expected `FROM [--platform=..] IMAGE [AS NAME]`".to_string(),
        ));
    }
    let image = words.into_iter().next().unwrap_or_default();
    Ok(From {
        line,
        image,
        platform,
    })
}

fn parse_args(line: usize, rest: &str, escape: char) -> Result<Vec<ArgDecl>, KubefileError> {
    let words = raw_words(rest, escape);
    if words.is_empty() {
        return Err(KubefileError::Syntax {
            line,
            instruction: "ARG",
            message: "needs a name".to_string(),
        });
    }
    words
        .into_iter()
        .map(|w| {
            let (name, default) = match w.split_once('=') {
                Some((n, d)) => (n.to_string(), Some(d.to_string())),
                None => (w, None),
            };
            if !valid_name(&name) {
                return Err(KubefileError::Syntax {
                    line,
                    instruction: "ARG",
                    message: format!("invalid name `{name}`"),
                });
            }
            Ok(ArgDecl { name, default })
        })
        .collect()
}

fn valid_name(n: &str) -> bool {
    !n.is_empty() && !n.contains(['$', '"', '\'', '=']) && !n.chars().any(char::is_whitespace)
}

/// `KEY=VALUE ...` or the legacy `KEY VALUE` (value = rest of the line).
fn name_values(
    line: usize,
    instruction: &'static str,
    rest: &str,
    escape: char,
) -> Result<Vec<(String, String)>, KubefileError> {
    let syntax = |message: String| KubefileError::Syntax {
        line,
        instruction,
        message,
    };
    let words = raw_words(rest, escape);
    let Some(first) = words.first() else {
        return Err(syntax("needs KEY=VALUE arguments".to_string()));
    };
    if !first.contains('=') {
        let value = rest[first.len()..].trim();
        if value.is_empty() {
            return Err(syntax(format!("`{first}` needs a value (KEY=VALUE)")));
        }
        return Ok(vec![(first.clone(), value.to_string())]);
    }
    words
        .iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            Some(_) => Err(syntax(format!("empty key in `{w}`"))),
            None => Err(syntax(format!(
                "can't find = in `{w}`: every argument must be KEY=VALUE"
            ))),
        })
        .collect()
}

fn parse_copy(line: usize, add: bool, rest: &str, escape: char) -> Result<Op, KubefileError> {
    let instruction = if add { "ADD" } else { "COPY" };
    let syntax = |message: String| KubefileError::Syntax {
        line,
        instruction,
        message,
    };
    let (fl, words) = flags(raw_words(rest, escape));
    let mut chmod = None;
    for (k, v) in fl {
        match k.as_str() {
            "chmod" => {
                let mode = u32::from_str_radix(&v, 8)
                    .ok()
                    .filter(|m| *m <= 0o7777)
                    .ok_or_else(|| syntax(format!("--chmod={v}: expected an octal mode")))?;
                chmod = Some(mode);
            }
            "chown" if matches!(v.as_str(), "0" | "0:0" | "root" | "root:root") => {}
            "chown" => {
                return Err(syntax(format!(
                    "--chown={v}: layer entries are always owned by 0:0; only --chown=0:0 is accepted"
                )));
            }
            "from" => {
                return Err(syntax(
                    "--from: multi-stage builds are not supported".to_string(),
                ));
            }
            "link" => {}
            _ => return Err(syntax(format!("unknown flag --{k}"))),
        }
    }
    let joined = words.join(" ");
    let args = match json_list(&joined) {
        Some(list) => list,
        None => words,
    };
    if args.len() < 2 {
        return Err(syntax(
            "needs at least one source and a destination".to_string(),
        ));
    }
    Ok(Op::Copy { add, chmod, args })
}

fn json_list(s: &str) -> Option<Vec<String>> {
    if !s.trim_start().starts_with('[') {
        return None;
    }
    serde_json::from_str::<Vec<String>>(s).ok()
}

/// Exec form (a JSON list of strings) or shell form.
fn command(rest: &str) -> Option<Vec<String>> {
    if rest.is_empty() {
        return None;
    }
    Some(
        json_list(rest)
            .unwrap_or_else(|| vec!["/bin/sh".to_string(), "-c".to_string(), rest.to_string()]),
    )
}
