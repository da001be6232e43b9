//! A real OpenSSH server on 127.0.0.1 for tests.
//!
//! sshd runs in a private mount namespace that bind-mounts temp copies of
//! /etc/passwd, /etc/shadow, /etc/group and /etc/sudoers.d (and a fresh
//! tmpfs on /run), so test users with known passwords exist for it and its
//! children (sudo included) without touching the host's real files.
//! Needs root, `unshare`, `/usr/sbin/sshd`, `ssh-keygen` and `openssl`.

use std::fs;
use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::{PermissionsExt, chown};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ferry_coordinator::ssh::{HostKeyPolicy, SshAuth, SshOptions, SshTarget};
use ferry_shared::{HostAddr, Secret};

pub const ROOT_PASSWORD: &str = "root-pw-Hunter2!";
/// NOPASSWD: ALL in sudoers.
pub const NOPW_USER: &str = "ferry-nopw";
/// ALL (password asked) in sudoers.
pub const PW_USER: &str = "ferry-pw";
/// Not in sudoers.
pub const NOSUDO_USER: &str = "ferry-nosudo";
/// The login (and sudo) password of every test user.
pub const USER_PASSWORD: &str = "user-pw-'quoted' $x";
pub const KEY_PASSPHRASE: &str = "key-passphrase-Zz9";

/// (name, uid) of the test users; each has a group of the same id.
pub const USERS: [(&str, u32); 3] = [(NOPW_USER, 42101), (PW_USER, 42102), (NOSUDO_USER, 42103)];

pub struct Sshd {
    pub dir: tempfile::TempDir,
    pub port: u16,
    /// Unencrypted ed25519 client key, authorized for every test user.
    pub key: PathBuf,
    /// ed25519 client key encrypted with [`KEY_PASSPHRASE`], also authorized.
    pub key_encrypted: PathBuf,
    child: Option<Child>,
    /// Extra sshd_config lines.
    extra_config: String,
}

fn sh(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn password_hash(pw: &str) -> String {
    let out = Command::new("openssl")
        .args(["passwd", "-6", "-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin
                .take()
                .unwrap()
                .write_all(format!("{pw}\n").as_bytes())?;
            c.wait_with_output()
        });
    let out = out.unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn keygen(path: &Path, passphrase: &str) {
    let _ = fs::remove_file(path);
    let _ = fs::remove_file(path.with_extension("pub"));
    sh(Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-C",
            "ferry-test",
            "-N",
            passphrase,
            "-f",
        ])
        .arg(path));
}

impl Sshd {
    pub fn start() -> Sshd {
        Sshd::start_with("")
    }

    /// Starts with extra sshd_config lines (e.g. `MaxSessions 2\n`).
    pub fn start_with(extra_config: &str) -> Sshd {
        let dir = tempfile::Builder::new()
            .prefix("ferry-sshd-")
            .tempdir()
            .unwrap();
        let t = dir.path().to_path_buf();
        fs::set_permissions(&t, fs::Permissions::from_mode(0o755)).unwrap();
        let client = t.join("client");
        fs::create_dir(&client).unwrap();
        fs::set_permissions(&client, fs::Permissions::from_mode(0o700)).unwrap();
        let key = client.join("id_plain");
        let key_encrypted = client.join("id_enc");
        keygen(&key, "");
        keygen(&key_encrypted, KEY_PASSPHRASE);
        keygen(&t.join("host_ed25519"), "");
        let authorized = [&key, &key_encrypted]
            .iter()
            .map(|k| fs::read_to_string(k.with_extension("pub")).unwrap())
            .collect::<String>();

        let user_hash = password_hash(USER_PASSWORD);
        // root gets a fresh home: the host's /root/.bashrc (which bash
        // sources for sshd commands) must not add noise or latency.
        let root_home = t.join("home/root");
        fs::create_dir_all(&root_home).unwrap();
        fs::set_permissions(&root_home, fs::Permissions::from_mode(0o700)).unwrap();
        let mut passwd = String::new();
        for line in fs::read_to_string("/etc/passwd").unwrap().lines() {
            let mut f: Vec<&str> = line.split(':').collect();
            let home = root_home.display().to_string();
            if f.first() == Some(&"root") && f.len() == 7 {
                f[5] = &home;
            }
            passwd.push_str(&f.join(":"));
            passwd.push('\n');
        }
        let mut group = fs::read_to_string("/etc/group").unwrap();
        let mut shadow = String::new();
        for line in fs::read_to_string("/etc/shadow").unwrap().lines() {
            match line.split_once(':') {
                Some(("root", _)) => shadow.push_str(&format!(
                    "root:{}:19000:0:99999:7:::\n",
                    password_hash(ROOT_PASSWORD)
                )),
                _ => shadow.push_str(&format!("{line}\n")),
            }
        }
        for (name, id) in USERS {
            let home = t.join("home").join(name);
            passwd.push_str(&format!("{name}:x:{id}:{id}::{}:/bin/sh\n", home.display()));
            group.push_str(&format!("{name}:x:{id}:\n"));
            shadow.push_str(&format!("{name}:{user_hash}:19000:0:99999:7:::\n"));
            fs::create_dir_all(home.join(".ssh")).unwrap();
            fs::write(home.join(".ssh/authorized_keys"), &authorized).unwrap();
            for p in [
                home.clone(),
                home.join(".ssh"),
                home.join(".ssh/authorized_keys"),
            ] {
                chown(&p, Some(id), Some(id)).unwrap();
            }
            fs::set_permissions(home.join(".ssh"), fs::Permissions::from_mode(0o700)).unwrap();
        }
        fs::write(t.join("passwd"), passwd).unwrap();
        fs::write(t.join("group"), group).unwrap();
        fs::write(t.join("shadow"), shadow).unwrap();
        fs::set_permissions(t.join("shadow"), fs::Permissions::from_mode(0o600)).unwrap();
        let sudoers = t.join("sudoers.d");
        fs::create_dir(&sudoers).unwrap();
        fs::write(
            sudoers.join("ferry-test"),
            format!("{NOPW_USER} ALL=(ALL:ALL) NOPASSWD: ALL\n{PW_USER} ALL=(ALL:ALL) ALL\n"),
        )
        .unwrap();
        fs::set_permissions(
            sudoers.join("ferry-test"),
            fs::Permissions::from_mode(0o440),
        )
        .unwrap();

        let mut s = Sshd {
            dir,
            port: 0,
            key,
            key_encrypted,
            child: None,
            extra_config: extra_config.to_string(),
        };
        s.launch();
        s
    }

    fn write_config(&self) -> PathBuf {
        let t = self.dir.path();
        let conf = t.join("sshd_config");
        fs::write(
            &conf,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {t}/host_ed25519\nPidFile {t}/sshd.pid\n\
                 UsePAM no\nPasswordAuthentication yes\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n\
                 PermitRootLogin yes\nAuthorizedKeysFile .ssh/authorized_keys\nStrictModes no\nUseDNS no\n\
                 MaxStartups 64\nPrintMotd no\nLogLevel VERBOSE\n",
                port = self.port,
                t = t.display()
            ) + &self.extra_config,
        )
        .unwrap();
        conf
    }

    /// Starts sshd on a free port (or the current one when restarting) and
    /// waits until it answers with an OpenSSH banner.
    fn launch(&mut self) {
        let fixed = self.port != 0;
        for _attempt in 0..5 {
            if !fixed {
                self.port = free_port();
            }
            let t = self.dir.path().display().to_string();
            let conf = self.write_config();
            let script = format!(
                "mount --bind {t}/shadow /etc/shadow && mount --bind {t}/passwd /etc/passwd && \
                 mount --bind {t}/group /etc/group && mount --bind {t}/sudoers.d /etc/sudoers.d && \
                 mount -t tmpfs -o mode=0755 ferry-test-run /run && mkdir -p /run/sshd && \
                 exec /usr/sbin/sshd -D -e -f {}",
                conf.display()
            );
            let log = fs::File::create(self.dir.path().join("sshd.log")).unwrap();
            let child = Command::new("unshare")
                .args(["--mount", "--propagation", "private", "sh", "-c", &script])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .process_group(0)
                .spawn()
                .unwrap();
            self.child = Some(child);
            if self.wait_ready() {
                return;
            }
            self.kill();
        }
        panic!("sshd did not start; log:\n{}", self.log());
    }

    /// Polls until the port speaks SSH. False when sshd exited (e.g. the
    /// port was taken meanwhile).
    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(15);
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        while Instant::now() < deadline {
            if let Some(c) = self.child.as_mut()
                && c.try_wait().unwrap().is_some()
            {
                return false;
            }
            if let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
                s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                let mut buf = [0u8; 64];
                if let Ok(n) = s.read(&mut buf)
                    && buf[..n].starts_with(b"SSH-2.0-OpenSSH")
                {
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("sshd not ready within 15s; log:\n{}", self.log());
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = rustix::process::kill_process_group(
                rustix::process::Pid::from_child(&c),
                rustix::process::Signal::KILL,
            );
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Restarts sshd on the same port with a freshly generated host key.
    pub fn restart_with_new_host_key(&mut self) {
        self.kill();
        keygen(&self.dir.path().join("host_ed25519"), "");
        self.launch();
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    pub fn addr(&self) -> HostAddr {
        format!("127.0.0.1:{}", self.port).parse().unwrap()
    }

    /// A known_hosts path inside the fixture dir (not created).
    pub fn known_hosts(&self) -> PathBuf {
        self.dir.path().join("client/kh/known_hosts")
    }

    pub fn home(&self, user: &str) -> PathBuf {
        self.dir.path().join("home").join(user)
    }

    pub fn opts(&self, policy: HostKeyPolicy) -> SshOptions {
        SshOptions {
            known_hosts: self.known_hosts(),
            policy,
            connect_timeout: Duration::from_secs(10),
            command_timeout: Duration::from_secs(60),
        }
    }

    pub fn password_target(&self, user: &str, password: &str) -> SshTarget {
        SshTarget {
            addr: self.addr(),
            user: user.to_string(),
            auth: SshAuth::Password(Secret::new(password)),
            sudo_password: Some(Secret::new(password)),
        }
    }

    pub fn key_target(&self, user: &str, sudo_password: Option<&str>) -> SshTarget {
        SshTarget {
            addr: self.addr(),
            user: user.to_string(),
            auth: SshAuth::Key {
                path: self.key.clone(),
                passphrase: None,
            },
            sudo_password: sudo_password.map(Secret::new),
        }
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.kill();
    }
}
