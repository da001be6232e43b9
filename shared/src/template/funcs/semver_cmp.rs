//! sealos' `semverCompare` (Masterminds semver constraints): an invalid
//! constraint is an error; an empty or invalid version is simply `false`.

use gtmpl_ng::{FuncError, Number, Value};
use semver::{BuildMetadata, Op, Version, VersionReq};

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
    Ok(Value::Bool(reqs.iter().any(|r| matches(r, &version))))
}

/// Masterminds' matching: a pre-release version never satisfies a
/// comparator without a pre-release, and otherwise compares by precedence
/// (the `semver` crate would only let pre-releases of the same
/// `major.minor.patch` through).
fn matches(req: &VersionReq, version: &Version) -> bool {
    if version.pre.is_empty() {
        return req.matches(version);
    }
    req.comparators.iter().all(|c| {
        if c.pre.is_empty() {
            return false;
        }
        let bound = Version {
            major: c.major,
            minor: c.minor.unwrap_or(0),
            patch: c.patch.unwrap_or(0),
            pre: c.pre.clone(),
            build: BuildMetadata::EMPTY,
        };
        let mut plain = version.clone();
        plain.build = BuildMetadata::EMPTY;
        match c.op {
            Op::Exact => plain == bound,
            Op::Greater => plain > bound,
            Op::GreaterEq => plain >= bound,
            Op::Less => plain < bound,
            Op::LessEq => plain <= bound,
            _ => c.matches(version),
        }
    })
}

/// sprig's `semver`: the parsed version as a map with Masterminds'
/// accessors (`.Major`, `.Minor`, `.Patch` as numbers, `.Prerelease`,
/// `.Metadata`, `.Original` as strings). Printing the whole value shows the
/// map, not Go's `String()`; templates read the fields.
pub(super) fn semver(args: &[Value]) -> Result<Value, FuncError> {
    exactly("semver", args, 1)?;
    let raw = str_arg("semver", args, 0)?;
    let v = coerce_version(raw)
        .ok_or_else(|| generic("error calling semver: Invalid Semantic Version"))?;
    let fields = [
        ("Major", Value::Number(Number::unsigned(v.major))),
        ("Minor", Value::Number(Number::unsigned(v.minor))),
        ("Patch", Value::Number(Number::unsigned(v.patch))),
        ("Prerelease", Value::String(v.pre.to_string())),
        ("Metadata", Value::String(v.build.to_string())),
        ("Original", Value::String(raw.to_owned())),
    ];
    Ok(Value::Map(
        fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
    ))
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
        assert!(cmp(">=1.27.0-0", "v1.28.3-rc.1"));
        assert!(!cmp(">=1.27.0", "v1.28.3-rc.1"));
        assert!(cmp("<1.28.0-rc.2", "1.28.0-rc.1"));
        assert!(semver_compare(&[Value::from("^^"), Value::from("1.2.3")]).is_err());
    }
}
