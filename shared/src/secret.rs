//! A string that never shows up in logs, events or error text, and the
//! redaction of env values that look secret from lines that are shown.

use std::collections::BTreeMap;
use std::fmt;

/// Env names whose values are never shown (case-insensitive substrings):
/// `registryPassword`, `TOKEN`, `AWS_SECRET_ACCESS_KEY`, `pkPasswd`...
const SECRET_NAMES: [&str; 5] = ["password", "passwd", "secret", "token", "key"];
/// Values shorter than this are not redacted (they would mangle text).
const MIN_SECRET_LEN: usize = 4;

/// `text` with the value of every secret-looking env variable replaced by
/// `<redacted>` (a hook line after `$VAR` substitution, say).
pub fn redact_env(text: &str, env: &BTreeMap<String, String>) -> String {
    let mut values: Vec<&str> = env
        .iter()
        .filter(|(k, v)| {
            let k = k.to_ascii_lowercase();
            v.len() >= MIN_SECRET_LEN && SECRET_NAMES.iter().any(|n| k.contains(n))
        })
        .map(|(_, v)| v.as_str())
        .collect();
    // Longest first, so a value containing another is replaced whole.
    values.sort_by_key(|v| std::cmp::Reverse(v.len()));
    let mut out = text.to_string();
    for v in values {
        out = out.replace(v, "<redacted>");
    }
    out
}

#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The only way to read the value. Call sites are easy to audit.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Serialized as the plain string: only for files that are themselves
/// secret (the Clusterfile is written 0600), never for events or logs.
impl serde::Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_printed() {
        let s = Secret::new("hunter2");
        assert!(!format!("{s:?} {s}").contains("hunter2"));
        assert_eq!(s.expose(), "hunter2");
    }
}

#[cfg(test)]
mod redact_tests {
    use super::*;

    #[test]
    fn secret_looking_values_are_redacted_and_others_kept() {
        let env: BTreeMap<String, String> = [
            ("registryPassword", "passw0rd-123"),
            ("registryUsername", "admin"),
            ("API_TOKEN", "tok-abc"),
            ("sshKey", "k"),
            ("registryPort", "5000"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let line = "init-registry.sh admin passw0rd-123 5000 tok-abc k";
        assert_eq!(
            redact_env(line, &env),
            "init-registry.sh admin <redacted> 5000 <redacted> k"
        );
    }
}
