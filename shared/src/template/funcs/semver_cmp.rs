//! sealos' `semverCompare` (Masterminds semver constraints): an invalid
//! constraint is an error; an empty or invalid version is simply `false`.

use gtmpl_ng::{FuncError, Value};
use semver::{Version, VersionReq};

use super::{exactly, generic, str_arg};

/// Parses a version leniently like Masterminds `NewVersion`: optional `v`,
/// missing minor/patch filled with 0.
fn coerce_version(raw: &str) -> Option<Version> {
    let raw = raw.trim();
    let raw = raw.strip_prefix('v').unwrap_or(raw);
    if let Ok(v) = Version::parse(raw) {
        return Some(v);
    }
    let split_at = raw.find(['-', '+']).unwrap_or(raw.len());
    let (core, rest) = raw.split_at(split_at);
    let parts: Vec<&str> = core.split('.').collect();
    if parts.is_empty() || parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
        return None;
    }
    let mut filled = parts.clone();
    while filled.len() < 3 {
        filled.push("0");
    }
    Version::parse(&format!("{}{rest}", filled.join("."))).ok()
}

/// A Masterminds constraint: `||`-separated alternatives of `,`/space-joined
/// comparisons.
fn parse_constraint(raw: &str) -> Option<Vec<VersionReq>> {
    raw.split("||")
        .map(|alt| {
            let mut comparators: Vec<String> = Vec::new();
            let mut pending_op = String::new();
            for tok in alt.split([',', ' ']).filter(|t| !t.is_empty()) {
                if tok.chars().all(|c| "<>=!~^".contains(c)) {
                    pending_op.push_str(tok);
                    continue;
                }
                let joined = format!("{pending_op}{tok}");
                pending_op.clear();
                let (op, ver) =
                    joined.split_at(joined.find(|c: char| c.is_ascii_alphanumeric() || c == '*')?);
                let ver = ver.strip_prefix('v').unwrap_or(ver);
                comparators.push(format!("{op}{ver}"));
            }
            if !pending_op.is_empty() || comparators.is_empty() {
                return None;
            }
            VersionReq::parse(&comparators.join(", ")).ok()
        })
        .collect()
}

pub(super) fn semver_compare(args: &[Value]) -> Result<Value, FuncError> {
    exactly("semverCompare", args, 2)?;
    let constraint = str_arg("semverCompare", args, 0)?;
    let version = str_arg("semverCompare", args, 1)?;
    let reqs = parse_constraint(constraint).ok_or_else(|| {
        generic(format!(
            "error calling semverCompare: improper constraint: {constraint}"
        ))
    })?;
    let Some(version) = coerce_version(version) else {
        return Ok(Value::Bool(false));
    };
    Ok(Value::Bool(reqs.iter().any(|r| r.matches(&version))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmp(c: &str, v: &str) -> bool {
        let args = [Value::from(c), Value::from(v)];
        matches!(semver_compare(&args), Ok(Value::Bool(true)))
    }

    #[test]
    fn constraints() {
        assert!(cmp("^1.27.0", "v1.27.7"));
        assert!(!cmp("^1.27.0", "v1.26.9"));
        assert!(cmp(">=1.26", "1.28"));
        assert!(cmp(">= 1.26, < 1.29", "v1.28.2"));
        assert!(!cmp(">= 1.26, < 1.29", "v1.29.0"));
        assert!(cmp("<1.25 || >=1.30", "v1.31.1"));
        assert!(cmp("~1.27.0", "v1.27.3"));
        assert!(!cmp("~1.27.0", "v1.28.0"));
        assert!(!cmp("^1.27.0", ""));
        assert!(!cmp("^1.27.0", "not-a-version"));
        assert!(semver_compare(&[Value::from("^^"), Value::from("1.2.3")]).is_err());
    }
}
