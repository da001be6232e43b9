//! A headless Chromium driven through chromedriver's W3C WebDriver HTTP
//! API (plain JSON over HTTP/1.1 on loopback; no client library), and
//! moving the test thread into a network namespace so the browser,
//! chromedriver and the page's server share one loopback.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Both binaries, or a failing test that says how to get them (CI
/// installs them with packaging/setup.sh).
pub fn browser() -> (PathBuf, PathBuf) {
    let (c, d) = (Path::new(CHROMIUM), Path::new(CHROMEDRIVER));
    assert!(
        c.is_file() && d.is_file(),
        "headless Chromium is required for this test: {CHROMIUM} and {CHROMEDRIVER} not found; \
         run `bash packaging/setup.sh` as root (apt-get install chromium chromium-driver)"
    );
    (c.to_path_buf(), d.to_path_buf())
}

/// Moves the calling thread (and the processes it spawns later) into the
/// named network namespace (`ip netns` name) until the guard is dropped:
/// the testbed's teardown must not run inside a namespace it deletes.
pub fn enter_netns(name: &str) -> NetnsGuard {
    let own = std::fs::File::open("/proc/thread-self/ns/net").unwrap();
    let f = std::fs::File::open(format!("/run/netns/{name}")).unwrap();
    rustix::thread::move_into_link_name_space(
        std::os::fd::AsFd::as_fd(&f),
        Some(rustix::thread::LinkNameSpaceType::Network),
    )
    .unwrap_or_else(|e| panic!("setns into {name}: {e}"));
    NetnsGuard(own)
}

/// Moves the thread back into the namespace it came from.
pub struct NetnsGuard(std::fs::File);

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        let _ = rustix::thread::move_into_link_name_space(
            std::os::fd::AsFd::as_fd(&self.0),
            Some(rustix::thread::LinkNameSpaceType::Network),
        );
    }
}

/// One HTTP/1.1 request on loopback; returns (status, body). The body is
/// read by its Content-Length (or chunks): chromedriver keeps the
/// connection open whatever `Connection: close` says.
pub fn http(port: u16, method: &str, path: &str, body: Option<&Value>) -> (u16, String) {
    use std::io::BufRead;
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let data = body.map(|b| b.to_string()).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{data}",
        data.len()
    )
    .unwrap();
    let mut r = std::io::BufReader::new(s);
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
            break;
        }
        head.push(line.trim_end().to_ascii_lowercase());
    }
    let status = head
        .first()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let header = |name: &str| {
        head.iter()
            .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
    };
    let mut out = Vec::new();
    if let Some(n) = header("content-length:").and_then(|v| v.parse::<usize>().ok()) {
        out.resize(n, 0);
        r.read_exact(&mut out).unwrap();
    } else if header("transfer-encoding:").is_some_and(|v| v.contains("chunked")) {
        loop {
            let mut size = String::new();
            r.read_line(&mut size).unwrap();
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 {
                break;
            }
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk).unwrap();
            out.extend_from_slice(&chunk[..n]);
        }
    } else {
        r.read_to_end(&mut out).unwrap();
    }
    (status, String::from_utf8_lossy(&out).into_owned())
}

pub struct Browser {
    port: u16,
    session: String,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// chromedriver on a free loopback port, then a headless session.
    pub fn start(chromium: &Path, chromedriver: &Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // Its own process group: the browser it starts is killed with it.
        let driver = Command::new(chromedriver)
            .process_group(0)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let profile = tempfile::tempdir().unwrap();
        let end = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < end,
                "chromedriver did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium.to_string_lossy(),
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                    "--window-size=1400,1600",
                    format!("--user-data-dir={}", profile.path().display())]
            }
        }}});
        let mut me = Self {
            port,
            session: String::new(),
            driver,
            _profile: profile,
        };
        let v = me.call("POST", "/session", Some(&caps));
        me.session = v["sessionId"].as_str().unwrap().to_string();
        me
    }

    /// A WebDriver command; its `value`, failing the test on an error.
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let (status, text) = http(self.port, method, path, body);
        let v: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("webdriver {method} {path}: HTTP {status}, {e}: {text}"));
        assert!(
            status == 200 && v["value"].get("error").is_none(),
            "webdriver {method} {path}: HTTP {status}: {text}"
        );
        v["value"].clone()
    }

    pub fn goto(&self, url: &str) {
        let p = format!("/session/{}/url", self.session);
        self.call("POST", &p, Some(&json!({ "url": url })));
    }

    /// Runs `body` (a function body with `return`) in the page.
    pub fn eval(&self, body: &str) -> Value {
        let p = format!("/session/{}/execute/sync", self.session);
        self.call("POST", &p, Some(&json!({ "script": body, "args": [] })))
    }

    /// Saves a PNG of the viewport to `path`.
    pub fn screenshot(&self, path: &Path) {
        let v = self.call(
            "GET",
            &format!("/session/{}/screenshot", self.session),
            None,
        );
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        std::fs::write(path, png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = http(
                self.port,
                "DELETE",
                &format!("/session/{}", self.session),
                None,
            );
        }
        if let Some(pgid) = rustix::process::Pid::from_raw(self.driver.id() as i32) {
            let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
        }
        let _ = self.driver.wait();
    }
}
