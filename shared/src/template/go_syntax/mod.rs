//! Go `text/template`'s lexer, run over a template before gtmpl-ng parses
//! it, so constants mean what they mean in Go.
//!
//! gtmpl-ng reads some constants differently from Go (raw strings with
//! escapes, `"x\\"` not at all, `\a`/`\v`/octal refused, `"\'"` accepted,
//! `1.0` as an integer, ...). This pass cuts every action into Go's tokens
//! (`text/template/parse/lex.go`) and rewrites each constant into a form
//! gtmpl-ng reads as the value Go gives it:
//! - string constants (interpreted and raw) are decoded with Go's
//!   `strconv.Unquote` and re-quoted with escapes gtmpl-ng reads exactly;
//!   bytes that are not UTF-8 become byte chars ([`super::go_bytes`]);
//! - character constants and integers become decimal integers;
//! - floats become `(_ferry_float "…")`, a float64 even when whole (gtmpl-ng
//!   would make `1.0` an integer); an integer only `uint64` holds, and such a
//!   constant given arguments, become `(_ferry_fail "…")`, an execution
//!   error as in Go (gtmpl-ng ignores arguments to a parenthesized value);
//! - `{{else with …}}` (Go 1.23) becomes `{{else}}{{with …}}` plus one more
//!   `{{end}}`, as Go's parser reads it.
//!
//! Text outside actions and comments are kept as they are. Errors are Go's
//! parse errors for the token (bad escapes, bad numbers, unterminated
//! constants); anything else is left to gtmpl-ng's parser. Complex
//! constants (`1i`) are refused: ferry has no complex values.

mod literal;
mod number;

use number::Constant;

use super::go_bytes;

/// The function a float constant is rewritten to.
pub(super) const FLOAT_FUNC: &str = "_ferry_float";
/// The function a constant Go fails on when evaluating it (beyond `int`, or
/// given arguments) is rewritten to; it fails with its argument.
pub(super) const FAIL_FUNC: &str = "_ferry_fail";

/// Why a template is not valid Go template syntax.
#[derive(Debug, thiserror::Error)]
pub(super) enum SyntaxError {
    #[error("unclosed comment")]
    UnclosedComment,
    #[error("comment ends before closing delimiter")]
    CommentNotClosed,
    #[error("unclosed action")]
    UnclosedAction,
    #[error("unterminated quoted string")]
    UnterminatedString,
    #[error("unterminated raw quoted string")]
    UnterminatedRaw,
    #[error("unterminated character constant")]
    UnterminatedChar,
    #[error("invalid syntax: {0}")]
    InvalidString(String),
    #[error("malformed character constant: {0}")]
    MalformedChar(String),
    #[error("bad number syntax: {0:?}")]
    BadNumber(String),
    #[error("illegal number syntax: {0:?}")]
    IllegalNumber(String),
    #[error("integer overflow: {0:?}")]
    IntegerOverflow(String),
    #[error("complex constant {0} is not supported: ferry has no complex values")]
    Complex(String),
    #[error("unexpected {0} in operand")]
    Adjacent(String),
    #[error("non executable command in pipeline: {0}")]
    NotExecutable(String),
}

/// A syntax error and the line (from 1) it is on.
#[derive(Debug)]
pub(super) struct Located {
    pub(super) line: usize,
    pub(super) error: SyntaxError,
}

enum Token<'a> {
    Space(&'a str),
    Word(&'a str),
    Other(&'a str),
    Str(Vec<u8>),
    Number(Constant),
}

/// An open `if`/`with`/`range`/`block`/`define`.
struct Block {
    with: bool,
    /// Opened by `{{else with}}`: closed by its parent's `{{end}}`.
    implicit: bool,
}

struct Action<'a> {
    tokens: Vec<Token<'a>>,
    /// Where the right delimiter (with its trim marker) starts.
    delim_start: usize,
    end: usize,
}

/// Rewrites `text` for gtmpl-ng (see the module docs).
pub(super) fn rewrite(text: &str) -> Result<String, Located> {
    let located = |at: usize, error| Located {
        line: text[..at].matches('\n').count() + 1,
        error,
    };
    let mut out = String::with_capacity(text.len() + 16);
    let mut blocks = Vec::new();
    let mut pos = 0;
    while let Some(found) = text[pos..].find("{{") {
        let start = pos + found;
        out.push_str(&text[pos..start]);
        let mut inner = start + 2;
        if has_left_trim(&text[inner..]) {
            inner += 2;
        }
        if text[inner..].starts_with("/*") {
            let close = text[inner + 2..]
                .find("*/")
                .map(|i| inner + 2 + i + 2)
                .ok_or_else(|| located(start, SyntaxError::UnclosedComment))?;
            let delim = right_delim_len(&text[close..])
                .ok_or_else(|| located(start, SyntaxError::CommentNotClosed))?;
            out.push_str(&text[start..close + delim]);
            pos = close + delim;
            continue;
        }
        let action = lex_action(text, inner).map_err(|(at, e)| located(at, e))?;
        let right = &text[action.delim_start..action.end];
        emit(
            &mut out,
            &text[start..inner],
            &action.tokens,
            right,
            &mut blocks,
        );
        pos = action.end;
    }
    out.push_str(&text[pos..]);
    Ok(out)
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_alnum(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

fn has_left_trim(s: &str) -> bool {
    s.strip_prefix('-').is_some_and(|r| r.starts_with(is_space))
}

/// The length of the right delimiter at the start of `s`: `}}`, or a space
/// and `-}}`.
fn right_delim_len(s: &str) -> Option<usize> {
    if s.starts_with(is_space) && s[1..].starts_with("-}}") {
        Some(4)
    } else {
        s.starts_with("}}").then_some(2)
    }
}

type LexResult<T> = Result<T, (usize, SyntaxError)>;

/// Cuts the action starting at `p` (after `{{` and any trim marker).
fn lex_action(text: &str, mut p: usize) -> LexResult<Action<'_>> {
    let mut tokens = Vec::new();
    let mut starts = Vec::new();
    loop {
        let rest = &text[p..];
        if let Some(len) = right_delim_len(rest) {
            // Go's checkPipeline: a constant cannot take a piped value.
            for (i, token) in tokens.iter().enumerate() {
                if is_constant(token)
                    && matches!(
                        before(&tokens, i).map(|j| &tokens[j]),
                        Some(Token::Other("|"))
                    )
                {
                    let at = starts[i];
                    let end = starts.get(i + 1).copied().unwrap_or(p);
                    return Err((at, SyntaxError::NotExecutable(text[at..end].to_owned())));
                }
            }
            return Ok(Action {
                tokens,
                delim_start: p,
                end: p + len,
            });
        }
        let Some(c) = rest.chars().next() else {
            return Err((p, SyntaxError::UnclosedAction));
        };
        let starts_number = c.is_ascii_digit()
            || c == '+'
            || c == '-'
            || (c == '.' && rest[1..].starts_with(|n: char| n.is_ascii_digit()));
        let (token, len) = match c {
            c if is_space(c) => {
                let len = rest
                    .char_indices()
                    .find(|&(i, ch)| {
                        !is_space(ch) || (i > 0 && right_delim_len(&rest[i..]).is_some())
                    })
                    .map_or(rest.len(), |(i, _)| i);
                (Token::Space(&rest[..len]), len)
            }
            '"' => {
                let len = quoted_len(rest, '"').ok_or((p, SyntaxError::UnterminatedString))?;
                let bytes = literal::unquote_string(&rest[..len]).map_err(|e| (p, e))?;
                (Token::Str(bytes), len)
            }
            '`' => {
                let len = rest[1..]
                    .find('`')
                    .map(|i| i + 2)
                    .ok_or((p, SyntaxError::UnterminatedRaw))?;
                let bytes = literal::unquote_string(&rest[..len]).map_err(|e| (p, e))?;
                (Token::Str(bytes), len)
            }
            '\'' => {
                let len = quoted_len(rest, '\'').ok_or((p, SyntaxError::UnterminatedChar))?;
                let value = literal::unquote_char_constant(&rest[..len]).map_err(|e| (p, e))?;
                (Token::Number(Constant::Int(i64::from(value))), len)
            }
            _ if starts_number => {
                let (constant, len) = lex_number(rest).map_err(|e| (p, e))?;
                (Token::Number(constant), len)
            }
            '.' | '$' => {
                let len = 1 + alnum_len(&rest[1..]);
                (Token::Other(&rest[..len]), len)
            }
            c if is_alnum(c) => {
                let len = alnum_len(rest);
                (Token::Word(&rest[..len]), len)
            }
            c => (Token::Other(&rest[..c.len_utf8()]), c.len_utf8()),
        };
        if let Some(prev) = tokens.last()
            && ((is_constant(&token) && ends_operand(prev))
                || (is_constant(prev) && !may_follow_operand(&token)))
        {
            return Err((p, SyntaxError::Adjacent(rest[..len].to_owned())));
        }
        tokens.push(token);
        starts.push(p);
        p += len;
    }
}

// Go's parser wants a space, `)`, `|` or the delimiter after an operand;
// checked here around the constants rewritten (with a space before them).

fn is_constant(token: &Token<'_>) -> bool {
    matches!(token, Token::Str(_) | Token::Number(_))
}

fn ends_operand(token: &Token<'_>) -> bool {
    match token {
        Token::Str(_) | Token::Number(_) | Token::Word(_) => true,
        Token::Other(s) => s.starts_with(['.', '$']) || *s == ")",
        Token::Space(_) => false,
    }
}

fn may_follow_operand(token: &Token<'_>) -> bool {
    matches!(token, Token::Space(_) | Token::Other(")" | "|"))
}

/// The nearest token before `i` that is not a space.
fn before(tokens: &[Token<'_>], i: usize) -> Option<usize> {
    (0..i)
        .rev()
        .find(|&j| !matches!(tokens[j], Token::Space(_)))
}

/// Whether the operand at `i` is a command given arguments (`{{ 1.5 2 }}`):
/// it starts a command (first in the action, after `(`, `|`, `:=`/`=`, a
/// control keyword, or `template`/`block` and the name) and more operands
/// follow.
fn given_arguments(tokens: &[Token<'_>], i: usize) -> bool {
    let starts = match before(tokens, i).map(|j| (j, &tokens[j])) {
        None | Some((_, Token::Other("(" | "|" | "=") | Token::Word("if" | "with" | "range"))) => {
            true
        }
        Some((j, Token::Str(_))) => matches!(
            before(tokens, j).map(|k| &tokens[k]),
            Some(Token::Word("template" | "block"))
        ),
        _ => false,
    };
    let next = (i + 1..tokens.len()).find(|&j| !matches!(tokens[j], Token::Space(_)));
    starts
        && !matches!(
            next.map(|j| &tokens[j]),
            None | Some(Token::Other(")" | "|"))
        )
}

fn alnum_len(s: &str) -> usize {
    s.find(|c: char| !is_alnum(c)).unwrap_or(s.len())
}

/// The length of a `"…"` or `'…'` token at the start of `s` (Go's lexQuote
/// and lexChar: a backslash escapes any character but a newline).
fn quoted_len(s: &str, quote: char) -> Option<usize> {
    let mut chars = s.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, '\n')) | None => return None,
                Some(_) => {}
            },
            '\n' => return None,
            c if c == quote => return Some(i + 1),
            _ => {}
        }
    }
    None
}

/// Go's lexNumber on the start of `s`: the constant and the token length.
fn lex_number(s: &str) -> Result<(Constant, usize), SyntaxError> {
    let len = scan_number(s).map_err(|end| SyntaxError::BadNumber(s[..end].to_owned()))?;
    if s[len..].starts_with(['+', '-']) {
        // Go's complex constant, `1+2i`.
        return Err(match scan_number(&s[len..]) {
            Ok(more) if s[..len + more].ends_with('i') => {
                SyntaxError::Complex(s[..len + more].to_owned())
            }
            Ok(more) | Err(more) => SyntaxError::BadNumber(s[..len + more].to_owned()),
        });
    }
    Ok((number::constant(&s[..len])?, len))
}

/// Go's scanNumber: the length of the number at the start of `s`, or
/// (`Err`) the length up to the character that makes it bad.
fn scan_number(s: &str) -> Result<usize, usize> {
    let b = s.as_bytes();
    let mut q = 0;
    let accept = |q: &mut usize, set: &[u8]| {
        let hit = b.get(*q).is_some_and(|c| set.contains(c));
        *q += usize::from(hit);
        hit
    };
    let accept_run = |q: &mut usize, set: &[u8]| while accept(q, set) {};
    const DECIMAL: &[u8] = b"0123456789_";
    accept(&mut q, b"+-");
    let mut digits = DECIMAL;
    if accept(&mut q, b"0") {
        if accept(&mut q, b"xX") {
            digits = b"0123456789abcdefABCDEF_";
        } else if accept(&mut q, b"oO") {
            digits = b"01234567_";
        } else if accept(&mut q, b"bB") {
            digits = b"01_";
        }
    }
    accept_run(&mut q, digits);
    if accept(&mut q, b".") {
        accept_run(&mut q, digits);
    }
    if digits == DECIMAL && accept(&mut q, b"eE") {
        accept(&mut q, b"+-");
        accept_run(&mut q, DECIMAL);
    }
    if digits.len() == 23 && accept(&mut q, b"pP") {
        accept(&mut q, b"+-");
        accept_run(&mut q, DECIMAL);
    }
    accept(&mut q, b"i");
    match s[q..].chars().next() {
        Some(c) if is_alnum(c) => Err(q + c.len_utf8()),
        _ => Ok(q),
    }
}

/// Writes one action, rewritten, and tracks the open blocks.
fn emit(out: &mut String, left: &str, tokens: &[Token<'_>], right: &str, blocks: &mut Vec<Block>) {
    let mut words = tokens
        .iter()
        .enumerate()
        .filter(|(_, t)| !matches!(t, Token::Space(_)));
    let first = words.next().and_then(|(_, t)| match t {
        Token::Word(w) => Some(*w),
        _ => None,
    });
    match first {
        Some("if" | "range" | "block" | "define") => blocks.push(Block {
            with: false,
            implicit: false,
        }),
        Some("with") => blocks.push(Block {
            with: true,
            implicit: false,
        }),
        Some("end") => {
            let mut ends = 1;
            while let Some(block) = blocks.pop() {
                if !block.implicit {
                    break;
                }
                ends += 1;
            }
            out.push_str(left);
            write_tokens(out, tokens);
            for _ in 1..ends {
                out.push_str("}}{{end");
            }
            out.push_str(right);
            return;
        }
        Some("else") => {
            if let Some((at, Token::Word("with"))) = words.next()
                && blocks.last().is_some_and(|b| b.with)
            {
                blocks.push(Block {
                    with: true,
                    implicit: true,
                });
                out.push_str(left);
                write_tokens(out, &tokens[..at]);
                out.push_str("}}{{");
                write_tokens(out, &tokens[at..]);
                out.push_str(right);
                return;
            }
        }
        _ => {}
    }
    out.push_str(left);
    write_tokens(out, tokens);
    out.push_str(right);
}

fn write_tokens(out: &mut String, tokens: &[Token<'_>]) {
    for (i, token) in tokens.iter().enumerate() {
        match token {
            Token::Space(s) | Token::Word(s) | Token::Other(s) => out.push_str(s),
            Token::Str(bytes) => {
                out.push(' ');
                quote_for_gtmpl(out, &go_bytes::from_bytes(bytes));
            }
            Token::Number(Constant::Int(i)) => {
                out.push(' ');
                out.push_str(&i.to_string());
            }
            Token::Number(Constant::Float(f)) if !given_arguments(tokens, i) => {
                out.push_str(&format!(" ({FLOAT_FUNC} \"{f:?}\")"));
            }
            Token::Number(Constant::Float(f)) => {
                fail(out, &format!("can't give argument to non-function {f:?}"));
            }
            Token::Number(Constant::Overflow(text)) if given_arguments(tokens, i) => {
                fail(out, &format!("can't give argument to non-function {text}"));
            }
            Token::Number(Constant::Overflow(text)) => fail(out, &format!("{text} overflows int")),
        }
    }
}

/// Writes a call that fails with `message` when evaluated.
fn fail(out: &mut String, message: &str) {
    out.push_str(&format!(" ({FAIL_FUNC} \"{message}\")"));
}

/// Quotes `s` so that gtmpl-ng's lexer and unquoting give `s` back: only
/// `"`, newline and backslash are escaped, and a backslash that ends the
/// string is written `\x5c` (gtmpl-ng misreads `"…\\"`).
fn quote_for_gtmpl(out: &mut String, s: &str) {
    out.push('"');
    for (i, c) in s.char_indices() {
        match c {
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\\' if i + 1 == s.len() => out.push_str("\\x5c"),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests;
