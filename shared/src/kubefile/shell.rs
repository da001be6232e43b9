//! Docker's shell-word processing for Kubefile arguments: quotes, the escape
//! character and `$VAR` / `${VAR}` substitution (with `:-`, `-`, `:+`, `+`,
//! `:?`, `?` modifiers), as `moby/buildkit`'s `shell.Lex` does it.
//!
//! - `'...'` is literal; `"..."` substitutes and lets the escape character
//!   escape `"`, `$` and itself; outside quotes the escape character makes the
//!   next character literal.
//! - Unset variables expand to the empty string.
//! - [`words`] also splits on unquoted whitespace; text produced by a `$`
//!   expansion outside quotes is split too, quoted text never.

use std::collections::BTreeMap;

/// Why a word could not be processed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShellError {
    #[error("unterminated {0} quote")]
    UnterminatedQuote(char),
    #[error("unterminated `${{`")]
    UnterminatedBrace,
    #[error("bad substitution `${{{0}`")]
    BadSubstitution(String),
    #[error("{name}: {message}")]
    Required { name: String, message: String },
    #[error("`${{...}}` nested more than {MAX_NESTING} deep")]
    TooDeep,
}

/// Deepest `${a:-${b:-...}}` nesting accepted.
pub const MAX_NESTING: usize = 32;

/// Variables visible to substitution (ENV over ARG, already merged).
pub type Vars = BTreeMap<String, String>;

/// Processes `input` as one word: quotes removed, variables substituted.
pub fn word(input: &str, vars: &Vars, escape: char) -> Result<String, ShellError> {
    let mut lex = Lexer::new(input, vars, escape);
    let (s, _) = lex.process(None)?;
    Ok(s)
}

/// Processes `input` into whitespace-separated words (quotes removed,
/// variables substituted).
pub fn words(input: &str, vars: &Vars, escape: char) -> Result<Vec<String>, ShellError> {
    let mut lex = Lexer::new(input, vars, escape);
    let (_, w) = lex.process(None)?;
    Ok(w)
}

/// Word accumulator: `in_word` distinguishes an empty quoted word (`""`)
/// from no word at all.
#[derive(Default)]
struct Words {
    done: Vec<String>,
    cur: String,
    in_word: bool,
}

impl Words {
    fn push_char(&mut self, c: char) {
        if c.is_whitespace() {
            self.end();
        } else {
            self.cur.push(c);
            self.in_word = true;
        }
    }
    fn push_raw_char(&mut self, c: char) {
        self.cur.push(c);
        self.in_word = true;
    }
    fn push_str(&mut self, s: &str) {
        for c in s.chars() {
            self.push_char(c);
        }
    }
    fn push_raw_str(&mut self, s: &str) {
        self.cur.push_str(s);
        self.in_word = true;
    }
    fn end(&mut self) {
        if self.in_word {
            self.done.push(std::mem::take(&mut self.cur));
            self.in_word = false;
        }
    }
    fn finish(mut self) -> Vec<String> {
        self.end();
        self.done
    }
}

struct Lexer<'a> {
    chars: Vec<char>,
    pos: usize,
    depth: usize,
    vars: &'a Vars,
    escape: char,
}

impl<'a> Lexer<'a> {
    fn new(input: &str, vars: &'a Vars, escape: char) -> Self {
        Lexer {
            chars: input.chars().collect(),
            pos: 0,
            depth: 0,
            vars,
            escape,
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    /// Processes until `stop` (consumed) or the end; returns the joined
    /// result and the words.
    fn process(&mut self, stop: Option<char>) -> Result<(String, Vec<String>), ShellError> {
        let mut result = String::new();
        let mut words = Words::default();
        loop {
            let Some(c) = self.peek() else {
                if stop.is_some() {
                    return Err(ShellError::UnterminatedBrace);
                }
                break;
            };
            if Some(c) == stop {
                self.pos += 1;
                break;
            }
            match c {
                '\'' => {
                    let s = self.single_quote()?;
                    result.push_str(&s);
                    words.push_raw_str(&s);
                }
                '"' => {
                    let s = self.double_quote()?;
                    result.push_str(&s);
                    words.push_raw_str(&s);
                }
                '$' => {
                    let s = self.dollar()?;
                    result.push_str(&s);
                    words.push_str(&s);
                }
                _ => {
                    self.pos += 1;
                    if c == self.escape {
                        match self.next() {
                            Some(n) => {
                                result.push(n);
                                words.push_raw_char(n);
                            }
                            None => break,
                        }
                    } else {
                        result.push(c);
                        words.push_char(c);
                    }
                }
            }
        }
        Ok((result, words.finish()))
    }

    fn single_quote(&mut self) -> Result<String, ShellError> {
        self.pos += 1;
        let mut s = String::new();
        loop {
            match self.next() {
                None => return Err(ShellError::UnterminatedQuote('\'')),
                Some('\'') => return Ok(s),
                Some(c) => s.push(c),
            }
        }
    }

    fn double_quote(&mut self) -> Result<String, ShellError> {
        self.pos += 1;
        let mut s = String::new();
        loop {
            match self.peek() {
                None => return Err(ShellError::UnterminatedQuote('"')),
                Some('"') => {
                    self.pos += 1;
                    return Ok(s);
                }
                Some('$') => s.push_str(&self.dollar()?),
                Some(c) => {
                    self.pos += 1;
                    if c == self.escape {
                        match self.next() {
                            None => return Err(ShellError::UnterminatedQuote('"')),
                            Some(n) if n == '"' || n == '$' || n == self.escape => s.push(n),
                            Some(n) => {
                                s.push(c);
                                s.push(n);
                            }
                        }
                    } else {
                        s.push(c);
                    }
                }
            }
        }
    }

    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || c == '_' {
                name.push(c);
                self.pos += 1;
            } else {
                break;
            }
        }
        name
    }

    fn dollar(&mut self) -> Result<String, ShellError> {
        self.pos += 1;
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".to_string());
            }
            return Ok(self.vars.get(&name).cloned().unwrap_or_default());
        }
        self.pos += 1;
        let name = self.name();
        if name.is_empty() {
            return Err(ShellError::BadSubstitution(self.rest_of_brace()));
        }
        let value = self.vars.get(&name);
        match self.next() {
            None => Err(ShellError::UnterminatedBrace),
            Some('}') => Ok(value.cloned().unwrap_or_default()),
            Some(m) => {
                let colon = m == ':';
                let op = if colon { self.next() } else { Some(m) };
                let Some(op @ ('-' | '+' | '?')) = op else {
                    return Err(ShellError::BadSubstitution(format!(
                        "{name}{m}{}",
                        self.rest_of_brace()
                    )));
                };
                if self.depth >= MAX_NESTING {
                    return Err(ShellError::TooDeep);
                }
                self.depth += 1;
                let word = self.process(Some('}'));
                self.depth -= 1;
                let (word, _) = word?;
                // With a colon, an empty value counts as unset.
                let set = match value {
                    Some(v) => !(colon && v.is_empty()),
                    None => false,
                };
                match op {
                    '-' if set => Ok(value.cloned().unwrap_or_default()),
                    '-' => Ok(word),
                    '+' if set => Ok(word),
                    '+' => Ok(String::new()),
                    _ if set => Ok(value.cloned().unwrap_or_default()),
                    _ => Err(ShellError::Required {
                        name,
                        message: if word.is_empty() {
                            "is not set".to_string()
                        } else {
                            word
                        },
                    }),
                }
            }
        }
    }

    fn rest_of_brace(&mut self) -> String {
        let mut s = String::new();
        while let Some(c) = self.next() {
            if c == '}' {
                break;
            }
            s.push(c);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars {
        [("A", "1"), ("SP", "x y"), ("E", "")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn substitutes_like_docker() {
        let v = vars();
        let w = |s: &str| word(s, &v, '\\').unwrap();
        assert_eq!(w("$A"), "1");
        assert_eq!(w("${A}b"), "1b");
        assert_eq!(w("$Ab"), "");
        assert_eq!(w("'$A'"), "$A");
        assert_eq!(w("\"$A\""), "1");
        assert_eq!(w("\\$A"), "$A");
        assert_eq!(w("\"\\$A\""), "$A");
        assert_eq!(w("${U:-d}"), "d");
        assert_eq!(w("${E:-d}"), "d");
        assert_eq!(w("${E-d}"), "");
        assert_eq!(w("${A:+set}"), "set");
        assert_eq!(w("${U:+set}"), "");
        assert_eq!(w("${U:-${A}x}"), "1x");
        assert_eq!(w("a$"), "a$");
        assert_eq!(w("\"a\\b\""), "a\\b");
        assert!(matches!(
            word("${U:?need it}", &v, '\\'),
            Err(ShellError::Required { .. })
        ));
        assert!(word("${A", &v, '\\').is_err());
        assert!(word("\"x", &v, '\\').is_err());
        assert!(word("${!x}", &v, '\\').is_err());
        assert_eq!(word("`$A", &v, '`').unwrap(), "$A");
        let deep = format!("{}x{}", "${U:-".repeat(10_000), "}".repeat(10_000));
        assert_eq!(word(&deep, &v, '\\'), Err(ShellError::TooDeep));
    }

    #[test]
    fn splits_words_outside_quotes_and_expansions() {
        let v = vars();
        let ws = |s: &str| words(s, &v, '\\').unwrap();
        assert_eq!(ws("a  b\tc"), ["a", "b", "c"]);
        assert_eq!(ws("\"a b\" c"), ["a b", "c"]);
        assert_eq!(ws("$SP z"), ["x", "y", "z"]);
        assert_eq!(ws("\"$SP\" z"), ["x y", "z"]);
        assert_eq!(ws("a\\ b"), ["a b"]);
        assert_eq!(ws("\"\" x"), ["", "x"]);
        assert!(ws("   ").is_empty());
    }
}
