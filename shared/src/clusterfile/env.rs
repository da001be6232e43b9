//! CLI `-e KEY=VALUE` persisted into `spec.env`, so every later command
//! (`add`, `delete`, `gen`, `plan`, a re-run) sees the values the cluster
//! was created or changed with. sealos `gen` appends `-e` to `spec.env`
//! ("will be used in all run commands later"); ferry does that for `run`
//! and `apply` too, without piling up duplicates: a key already in
//! `spec.env` gets the new value in place, new keys are appended in the
//! order given, everything else keeps its order.

use super::ClusterSpec;
use crate::image::env::{RESERVED_PREFIX, parse_env_list};

impl ClusterSpec {
    /// Writes the `KEY=VALUE` entries of `cli` into `spec.env` (see the
    /// module doc). Entries that are not `KEY=VALUE` or whose key is
    /// reserved (`SEALOS_SYS*`) are not persisted and returned; the env
    /// layering warns about them on every run they are given to.
    pub fn set_env(&mut self, cli: &[String]) -> Vec<String> {
        let mut skipped = Vec::new();
        for item in cli {
            let (map, bad) = parse_env_list(std::slice::from_ref(item));
            skipped.extend(bad);
            for (key, value) in map {
                if key.starts_with(RESERVED_PREFIX) {
                    skipped.push(item.clone());
                    continue;
                }
                let entry = format!("{key}={value}");
                let mut found = false;
                for e in &mut self.env {
                    if e.split_once('=').is_some_and(|(k, _)| k.trim() == key) {
                        e.clone_from(&entry);
                        found = true;
                    }
                }
                if !found {
                    self.env.push(entry);
                }
            }
        }
        skipped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(env: &[&str]) -> ClusterSpec {
        ClusterSpec {
            env: env.iter().map(|s| s.to_string()).collect(),
            ..ClusterSpec::default()
        }
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn existing_keys_change_in_place_new_keys_append_in_order() {
        let mut s = spec(&["a=1", "defaultVIP=10.103.97.2", "b=2"]);
        let skipped = s.set_env(&strings(&["defaultVIP=10.103.97.9", "z=last", "c=x=y"]));
        assert!(skipped.is_empty());
        assert_eq!(
            s.env,
            ["a=1", "defaultVIP=10.103.97.9", "b=2", "z=last", "c=x=y"]
        );
    }

    #[test]
    fn a_key_given_twice_keeps_the_last_value_once() {
        let mut s = spec(&[]);
        s.set_env(&strings(&["k=1", "k=2"]));
        assert_eq!(s.env, ["k=2"]);
        // Duplicates an edited file already had all take the new value.
        let mut s = spec(&["k=1", "o=0", "k=3"]);
        s.set_env(&strings(&["k=9"]));
        assert_eq!(s.env, ["k=9", "o=0", "k=9"]);
    }

    #[test]
    fn malformed_and_reserved_entries_are_not_persisted() {
        let mut s = spec(&["a=1"]);
        let skipped = s.set_env(&strings(&[
            "novalue",
            "=x",
            "SEALOS_SYS_KUBE_VERSION=v1",
            "b=",
        ]));
        assert_eq!(skipped, ["novalue", "=x", "SEALOS_SYS_KUBE_VERSION=v1"]);
        // An empty value is a value.
        assert_eq!(s.env, ["a=1", "b="]);
    }

    #[test]
    fn keys_are_matched_trimmed_and_whole() {
        let mut s = spec(&[" key =old", "keyx=1"]);
        s.set_env(&strings(&["key=new"]));
        assert_eq!(s.env, ["key=new", "keyx=1"]);
    }
}
