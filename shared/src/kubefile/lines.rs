//! Physical → logical lines, as Docker's parser does: parser directives at
//! the top (`# escape=` honoured, `# syntax=` and others ignored), comment
//! and blank lines skipped (also inside continuations), a line ending in the
//! escape character continued by the next one (joined without a separator).

/// One instruction's text and the 1-based line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogicalLine {
    pub line: usize,
    pub text: String,
}

/// Splits `input` into logical lines; returns them and the escape character.
pub fn logical_lines(input: &str) -> (Vec<LogicalLine>, char) {
    let input = input.strip_prefix('\u{feff}').unwrap_or(input);
    let mut escape = '\\';
    let mut in_directives = true;
    let mut out = Vec::new();
    let mut pending: Option<LogicalLine> = None;
    for (idx, raw) in input.lines().enumerate() {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if in_directives {
            match directive(raw) {
                Some((name, value)) => {
                    if name.eq_ignore_ascii_case("escape") && (value == "`" || value == "\\") {
                        escape = value.chars().next().unwrap_or('\\');
                    }
                    continue;
                }
                None => in_directives = false,
            }
        }
        let trimmed = raw.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        // Continuation lines keep their leading whitespace, as in Docker.
        let text = if pending.is_some() { raw } else { trimmed };
        let (body, continues) = match text.trim_end().strip_suffix(escape) {
            Some(b) => (b, true),
            None => (text, false),
        };
        let cur = pending.get_or_insert_with(|| LogicalLine {
            line: idx + 1,
            text: String::new(),
        });
        cur.text.push_str(body);
        if !continues && let Some(done) = pending.take() {
            out.push(done);
        }
    }
    if let Some(done) = pending.take() {
        out.push(done);
    }
    (out, escape)
}

/// `# name=value` at the top of the file.
fn directive(line: &str) -> Option<(&str, &str)> {
    let rest = line.trim_start().strip_prefix('#')?;
    let (name, value) = rest.split_once('=')?;
    let name = name.trim();
    let ok = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric());
    ok.then_some((name, value.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(s: &str) -> Vec<(usize, String)> {
        logical_lines(s)
            .0
            .into_iter()
            .map(|l| (l.line, l.text))
            .collect()
    }

    #[test]
    fn joins_continuations_and_skips_comments() {
        let got =
            texts("# syntax=x\nFROM scratch\n\n# c\nLABEL a=1 \\\n  # inner\n\n  b=2\r\nCMD x\\");
        assert_eq!(
            got,
            [
                (2, "FROM scratch".to_string()),
                (5, "LABEL a=1   b=2".to_string()),
                (9, "CMD x".to_string()),
            ]
        );
    }

    #[test]
    fn escape_directive_switches_to_backtick() {
        let (lines, esc) = logical_lines("# escape=`\nCOPY a `\n b c:\\x\\\n");
        assert_eq!(esc, '`');
        assert_eq!(lines[0].text, "COPY a  b c:\\x\\");
    }

    #[test]
    fn directives_only_at_the_top() {
        let (lines, esc) = logical_lines("FROM scratch\n# escape=`\nCOPY a \\\nb");
        assert_eq!(esc, '\\');
        assert_eq!(lines[1].text, "COPY a b");
    }
}
