//! `HOME` for the agent's children. systemd gives a unit without `User=` no
//! `HOME`, and a supervisor started with a bare environment has none either;
//! guest commands (kubectl, helm) then find no `~/.kube/config`. Where the
//! agent's own environment has no `HOME`, children get the running user's
//! home from its passwd entry (`/root` for uid 0 when there is none).

use std::ffi::OsStr;

const PASSWD: &str = "/etc/passwd";

/// The home directory of `uid` in passwd(5) text.
pub fn passwd_home(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        (f.len() >= 7 && f[2].parse::<u32>().ok() == Some(uid) && !f[5].is_empty())
            .then(|| f[5].to_string())
    })
}

/// The `HOME` to give children: `None` when `own` (the agent's `HOME`) is
/// set and not empty (children inherit it); else `uid`'s passwd home, else
/// `/root` for root.
pub fn home_for(own: Option<&OsStr>, uid: u32, passwd: &str) -> Option<String> {
    if own.is_some_and(|h| !h.is_empty()) {
        return None;
    }
    passwd_home(passwd, uid).or_else(|| (uid == 0).then(|| "/root".to_string()))
}

/// [`home_for`] for this process.
pub fn child_home() -> Option<String> {
    let own = std::env::var_os("HOME");
    let uid = rustix::process::getuid().as_raw();
    let passwd = std::fs::read_to_string(PASSWD).unwrap_or_default();
    home_for(own.as_deref(), uid, &passwd)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PW: &str = "root:x:0:0:root:/root:/bin/bash\n\
                      daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
                      odd:x:1000:1000::/home/odd:/bin/sh\n\
                      broken:x:1001\n";

    #[test]
    fn an_inherited_home_is_kept() {
        assert_eq!(home_for(Some(OsStr::new("/srv")), 0, PW), None);
    }

    #[test]
    fn a_missing_or_empty_home_comes_from_passwd() {
        assert_eq!(home_for(None, 0, PW).as_deref(), Some("/root"));
        assert_eq!(
            home_for(Some(OsStr::new("")), 1000, PW).as_deref(),
            Some("/home/odd")
        );
        assert_eq!(home_for(None, 1, PW).as_deref(), Some("/usr/sbin"));
    }

    #[test]
    fn root_defaults_to_slash_root_without_an_entry() {
        assert_eq!(home_for(None, 0, "").as_deref(), Some("/root"));
        assert_eq!(home_for(None, 1001, PW), None);
        assert_eq!(home_for(None, 4242, PW), None);
    }
}
