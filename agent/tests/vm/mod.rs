//! The IPVS test VM: Debian's cloud kernel under `qemu-system-x86_64 -accel
//! tcg` with the initramfs from `tests/vm/prepare.sh` plus an appended
//! archive holding this build's static agent and a fresh TLS identity. The
//! agent's :7443 is forwarded to 127.0.0.1:<port>; inside, the host is
//! 10.0.2.2 (so the members' health endpoints below run on the host).

#![allow(dead_code)]

use std::io::Write;
use std::net::{SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::common::Pki;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The static agent (`FERRY_AGENT_BIN`, else the `build-agent.sh` output).
pub fn agent_bin() -> Option<PathBuf> {
    std::env::var_os("FERRY_AGENT_BIN")
        .map(PathBuf::from)
        .or_else(|| Some(workspace().join("target/x86_64-unknown-linux-musl/agent/ferry-agent")))
        .filter(|p| p.is_file())
}

/// Kernel and base initramfs, or why the VM cannot run here.
pub fn prepare() -> Result<(PathBuf, PathBuf), String> {
    let out = Command::new("bash")
        .arg(workspace().join("tests/vm/prepare.sh"))
        .arg(workspace().join("target/vm-cache"))
        .output()
        .map_err(|e| format!("cannot run tests/vm/prepare.sh: {e}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if out.status.code() == Some(3) {
        return Err(stderr.trim().to_string());
    }
    assert!(out.status.success(), "tests/vm/prepare.sh failed: {stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let get = |k: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .map(PathBuf::from)
            .unwrap_or_else(|| panic!("prepare.sh printed no {k}: {stdout}"))
    };
    Ok((get("vmlinuz="), get("initrd=")))
}

/// Appends one newc entry (`data` None: a directory).
fn cpio_entry(out: &mut Vec<u8>, ino: u32, name: &str, mode: u32, data: Option<&[u8]>) {
    let body = data.unwrap_or_default();
    let kind = if data.is_some() { 0o100000 } else { 0o040000 };
    let fields = [
        ino,
        kind | mode,
        0,
        0,
        1,
        0,
        body.len() as u32,
        0,
        0,
        0,
        0,
        name.len() as u32 + 1,
        0,
    ];
    out.extend_from_slice(b"070701");
    for f in fields {
        out.extend_from_slice(format!("{f:08x}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    out.resize(out.len().div_ceil(4) * 4, 0);
    out.extend_from_slice(body);
    out.resize(out.len().div_ceil(4) * 4, 0);
}

/// The base initramfs + an archive with the agent, its TLS files and
/// extra `ferry-agent serve` arguments.
pub fn initrd(base: &Path, agent: &Path, pki: &Pki, args: &str, dir: &Path) -> PathBuf {
    let mut img = std::fs::read(base).unwrap();
    img.resize(img.len().div_ceil(512) * 512, 0);
    let mut c = Vec::new();
    let tls = "var/lib/ferry/agent/tls";
    cpio_entry(&mut c, 1, tls, 0o700, None);
    let files: Vec<(String, u32, Vec<u8>)> = vec![
        ("ferry-agent".into(), 0o755, std::fs::read(agent).unwrap()),
        (
            "etc/ferry-agent.args".into(),
            0o644,
            args.as_bytes().to_vec(),
        ),
        (
            format!("{tls}/ca.crt"),
            0o644,
            pki.ca.cert_pem().as_bytes().to_vec(),
        ),
        (
            format!("{tls}/agent.crt"),
            0o644,
            pki.agent.cert_pem.as_bytes().to_vec(),
        ),
        (
            format!("{tls}/agent.key"),
            0o600,
            pki.agent.key_pem.expose().as_bytes().to_vec(),
        ),
    ];
    for (i, (name, mode, data)) in files.iter().enumerate() {
        cpio_entry(&mut c, i as u32 + 2, name, *mode, Some(data));
    }
    cpio_entry(&mut c, 0, "TRAILER!!!", 0, Some(&[]));
    img.extend(c);
    let path = dir.join("initrd.img");
    std::fs::File::create(&path)
        .unwrap()
        .write_all(&img)
        .unwrap();
    path
}

/// A running VM, killed on drop. Its serial console goes to `log`.
pub struct Vm {
    child: Child,
    pub agent: SocketAddr,
    pub log: PathBuf,
}

impl Vm {
    pub fn boot(vmlinuz: &Path, initrd: &Path, dir: &Path) -> Vm {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = dir.join("console.log");
        let child = Command::new("qemu-system-x86_64")
            .args([
                "-accel",
                "tcg",
                "-m",
                "512",
                "-smp",
                "1",
                "-nographic",
                "-no-reboot",
            ])
            .arg("-kernel")
            .arg(vmlinuz)
            .arg("-initrd")
            .arg(initrd)
            .args(["-append", "console=ttyS0 panic=-1 quiet", "-nic"])
            .arg(format!(
                "user,model=virtio-net-pci,hostfwd=tcp:127.0.0.1:{port}-:7443"
            ))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("qemu-system-x86_64 starts");
        Vm {
            child,
            agent: SocketAddr::from(([127, 0, 0, 1], port)),
            log,
        }
    }

    pub fn console(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A member on the host: TLS `/healthz` answering `status`, and plain
/// TCP "traffic" (a first byte that is not a TLS handshake) answered with
/// its name and counted.
pub struct Member {
    pub name: String,
    pub port: u16,
    pub status: Arc<AtomicU16>,
    pub traffic: Arc<AtomicUsize>,
}

impl Member {
    /// The address the VM reaches it at.
    pub fn addr(&self) -> SocketAddrV4 {
        SocketAddrV4::new([10, 0, 2, 2].into(), self.port)
    }
}

pub async fn member(name: &str) -> Member {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec![name.to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![cert.der().clone()],
        rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
    )
    .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let m = Member {
        name: name.to_string(),
        port,
        status: Arc::new(AtomicU16::new(200)),
        traffic: Arc::new(AtomicUsize::new(0)),
    };
    let (status, traffic, answer) = (m.status.clone(), m.traffic.clone(), format!("{name}\n"));
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = l.accept().await {
            let (acceptor, status, traffic) = (acceptor.clone(), status.clone(), traffic.clone());
            let answer = answer.clone();
            tokio::spawn(async move {
                let mut first = [0u8; 1];
                if tcp.peek(&mut first).await.unwrap_or(0) == 0 {
                    return;
                }
                if first[0] != 0x16 {
                    traffic.fetch_add(1, Ordering::SeqCst);
                    let _ = tcp.write_all(answer.as_bytes()).await;
                    let _ = tcp.shutdown().await;
                    return;
                }
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = [0u8; 1024];
                let _ = tls.read(&mut buf).await;
                let code = status.load(Ordering::SeqCst);
                let reply = format!("HTTP/1.1 {code} X\r\nContent-Length: 0\r\n\r\n");
                let _ = tls.write_all(reply.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    m
}

/// Polls `f` every 200 ms until it returns Some, or panics after `limit`.
pub async fn until<T, F: Future<Output = Option<T>>>(
    limit: Duration,
    what: &str,
    mut f: impl FnMut() -> F,
) -> (T, Duration) {
    let t0 = Instant::now();
    loop {
        if let Some(v) = f().await {
            return (v, t0.elapsed());
        }
        assert!(
            t0.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
