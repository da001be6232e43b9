//! The guest phase as sealos defines it (`lifecycle/pkg/guest`): what each
//! image runs, where, and with which env.
//!
//! - Each image sees its own env: its ENV under the cluster's layers
//!   (`spec.env`, CLI `-e`, the host's `env`, the `SEALOS_SYS_*`
//!   built-ins), never another image's ENV ([`super::EnvLayers::for_image`]).
//! - Its commands are the ENTRYPOINT items, then the CMD items (or, for the
//!   first image, the override: `spec.command` / `--cmd`), each expanded
//!   with that env ([`super::expand`]) and prefixed `cd <workdir> && `; the
//!   items are joined with `; ` into one shell line run with that env.
//!   Like sealos, the line's status is its last item's.
//! - rootfs and patch images run on every host with the rootfs dir as
//!   workdir; application images run once, on master0, in their own
//!   `applications/<name>/workdir`.

use std::collections::BTreeMap;

use super::expand::expand;
use super::labels::ImageType;

/// Where an image's commands run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestTarget {
    /// Every host of the run (rootfs and patch images).
    AllHosts,
    /// master0 only (application images).
    Master0,
}

impl GuestTarget {
    pub fn of(t: ImageType) -> Self {
        match t {
            ImageType::Rootfs | ImageType::Patch => GuestTarget::AllHosts,
            ImageType::Application => GuestTarget::Master0,
        }
    }
}

/// One image's commands before expansion.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuestImage {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// Replaces `cmd` when non-empty (`spec.command` for the first image).
    pub cmd_override: Vec<String>,
}

impl GuestImage {
    /// The items in run order: ENTRYPOINT, then CMD (or its override).
    pub fn items(&self) -> impl Iterator<Item = &String> {
        let cmd = if self.cmd_override.is_empty() {
            &self.cmd
        } else {
            &self.cmd_override
        };
        self.entrypoint.iter().chain(cmd.iter())
    }

    /// The expanded `cd <workdir> && <item>` lines; empty items are
    /// dropped (sealos formats them as nothing).
    pub fn lines(&self, workdir: &str, env: &BTreeMap<String, String>) -> Vec<String> {
        self.items()
            .filter(|c| !c.is_empty())
            .map(|c| format!("cd {workdir} && {}", expand(c, env)))
            .collect()
    }
}

/// The one shell line sealos runs for an image (`; `-joined), or None when
/// the image has no commands.
pub fn shell_line(lines: &[String]) -> Option<String> {
    (!lines.is_empty()).then(|| lines.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn entrypoint_then_cmd_each_in_the_workdir() {
        let img = GuestImage {
            entrypoint: strings(&["echo $(NAME)"]),
            cmd: strings(&["helm upgrade -i $(NAME) $(CHARTS)", ""]),
            cmd_override: Vec::new(),
        };
        let env = map(&[("NAME", "a"), ("CHARTS", "charts/a")]);
        let lines = img.lines("/w", &env);
        assert_eq!(
            lines,
            strings(&["cd /w && echo a", "cd /w && helm upgrade -i a charts/a"])
        );
        assert_eq!(
            shell_line(&lines).as_deref(),
            Some("cd /w && echo a; cd /w && helm upgrade -i a charts/a")
        );
    }

    #[test]
    fn the_override_replaces_cmd_not_entrypoint() {
        let img = GuestImage {
            entrypoint: strings(&["ep"]),
            cmd: strings(&["cmd"]),
            cmd_override: strings(&["other $(X)"]),
        };
        assert_eq!(
            img.lines("/r", &map(&[("X", "1")])),
            strings(&["cd /r && ep", "cd /r && other 1"])
        );
    }

    #[test]
    fn no_commands_no_line() {
        assert_eq!(
            shell_line(&GuestImage::default().lines("/w", &map(&[]))),
            None
        );
    }

    #[test]
    fn apps_run_on_master0_rootfs_and_patches_everywhere() {
        assert_eq!(GuestTarget::of(ImageType::Rootfs), GuestTarget::AllHosts);
        assert_eq!(GuestTarget::of(ImageType::Patch), GuestTarget::AllHosts);
        assert_eq!(
            GuestTarget::of(ImageType::Application),
            GuestTarget::Master0
        );
    }
}
