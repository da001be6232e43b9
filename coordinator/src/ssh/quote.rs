//! POSIX shell quoting for the SSH exec string.
//!
//! SSH sends one command string that the node's login shell parses, so each
//! argv element is quoted: left bare when it only has characters no POSIX
//! shell treats specially, otherwise wrapped in single quotes with every `'`
//! written as `'\''`.

use std::borrow::Cow;

/// Characters that never need quoting anywhere in a word. `=` is excluded
/// (a leading `a=b` word is an assignment), as are `~` and `#`.
fn is_plain(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'_' | b'.' | b'/' | b':' | b',' | b'+' | b'@' | b'%'
        )
}

/// Quotes one argument for a POSIX shell.
pub fn quote(arg: &str) -> Cow<'_, str> {
    if !arg.is_empty() && arg.bytes().all(is_plain) {
        return Cow::Borrowed(arg);
    }
    let mut out = String::with_capacity(arg.len() + 2);
    out.push('\'');
    for c in arg.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    Cow::Owned(out)
}

/// Quotes and joins argv into one command line. `None` when an argument
/// holds a NUL byte, which no shell word can carry.
pub fn command_line(argv: &[&str]) -> Option<String> {
    if argv.iter().any(|a| a.contains('\0')) {
        return None;
    }
    Some(argv.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::process::Command;

    /// Runs `printf '%s\0' <quoted args>` under /bin/sh and splits the output.
    fn round_trip(args: &[String]) -> Vec<String> {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let script = format!("printf '%s\\0' {}", command_line(&refs).unwrap());
        let out = Command::new("/bin/sh")
            .arg("-c")
            .arg(&script)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut parts: Vec<String> = out
            .stdout
            .split(|b| *b == 0)
            .map(|p| String::from_utf8(p.to_vec()).unwrap())
            .collect();
        assert_eq!(parts.pop().as_deref(), Some(""));
        parts
    }

    #[test]
    fn known_cases() {
        assert_eq!(quote("abc"), "abc");
        assert_eq!(quote("/usr/bin/x-y_z.1"), "/usr/bin/x-y_z.1");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), "'it'\\''s'");
        assert_eq!(quote("a=b"), "'a=b'");
        assert_eq!(quote("~"), "'~'");
        assert_eq!(quote("$HOME"), "'$HOME'");
        assert_eq!(
            command_line(&["sudo", "-p", "", "--", "id"]).unwrap(),
            "sudo -p '' -- id"
        );
        assert_eq!(command_line(&["a\0b"]), None);
    }

    #[test]
    fn nasty_round_trips() {
        let args: Vec<String> = [
            "",
            " ",
            "'",
            "''",
            "\"",
            "\\",
            "$(id)",
            "`id`",
            "a\nb",
            "*",
            "?",
            "[a]",
            "~root",
            "#x",
            "!",
            "a=b",
            ";",
            "&&",
            "|",
            "<",
            ">",
            "{a,b}",
            "\t",
            "é ü 中",
            "'\\''",
            "--",
            "-n",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(round_trip(&args), args);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn arbitrary_args_round_trip(args in proptest::collection::vec("[^\u{0}]{0,24}", 1..6)) {
            prop_assert_eq!(round_trip(&args), args);
        }

        #[test]
        fn ascii_heavy_args_round_trip(args in proptest::collection::vec("[ -~\t\n]{0,16}", 1..8)) {
            prop_assert_eq!(round_trip(&args), args);
        }
    }
}
