//! The input side of `ferry run | apply | add`, without nodes: every host
//! is `127.0.0.1:1` (nothing listens: agent install fails at once, the
//! Clusterfile is still written, as after every run).
//! - `run ARCHIVE...` loads oci-archives and docker-archives into the store
//!   and runs them by the names they carry, in argument order; a file
//!   naming no image runs as `localhost/<stem>:latest`;
//! - a hostile or corrupt archive stops `run` before any state is written;
//! - `-e` lands in the stored spec.env (new cluster, existing cluster,
//!   apply), replacing a key's value in place, appending new keys;
//! - `run -f Clusterfile` keeps spec.command, appends IMAGE arguments,
//!   refuses --masters and hosts it would drop;
//! - `add -u alice -p PW` records exactly those flags as the new group's
//!   `ssh:`, and never prints the password; `add` without SSH flags adds
//!   no `ssh:` block.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod oci_support;

use std::path::Path;
use std::process::{Command, Output};

use ferry_coordinator::oci::Store;
use ferry_shared::clusterfile::Clusterfile;
use oci_support::images::{Comp, put_image};

const K8S: &str = "example.com/ferry/kubernetes:v1.29.0";
const APP: &str = "example.com/ferry/app:v1";
const APP2: &str = "example.com/ferry/app2:v2";
const NOHOST: &str = "127.0.0.1:1";

/// ferry with a private home and store; the agent is any ELF file (it is
/// never uploaded: no host answers).
fn ferry(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .env("FERRY_HOME", home.join(".ferry"))
        .env("FERRY_DATA_ROOT", home.join("store"))
        .env("HOME", home)
        .env("FERRY_AGENT_BIN", env!("CARGO_BIN_EXE_ferry"))
        .env_remove("FERRY_SSH_PASSWD")
        .env_remove("FERRY_SSH_PK_PASSWD")
        .env_remove("FERRY_CLUSTER")
        .args(args)
        .output()
        .unwrap()
}

/// A pipeline command (`run`, `apply`, `add`) that gets as far as the
/// hosts: exit 1, every host unreachable; its Clusterfile is written.
fn reaches_hosts(home: &Path, args: &[&str]) -> Output {
    let mut all = args.to_vec();
    all.extend(["--connect-timeout", "1"]);
    let out = ferry(home, &all);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {}", text(&out));
    out
}

/// `run ARCHIVE... --masters NOHOST -p pw EXTRA...`.
fn run_new(home: &Path, archives: &[&Path], extra: &[&str]) -> Output {
    let mut args = vec!["run"];
    args.extend(archives.iter().map(|a| a.to_str().unwrap()));
    args.extend(["--masters", NOHOST, "-p", "pw"]);
    args.extend_from_slice(extra);
    reaches_hosts(home, &args)
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Writes `name` (a rootfs image when `rootfs`) into a scratch store and
/// saves it as `format` to `out`.
fn archive(home: &Path, name: &str, rootfs: bool, format: &str, out: &Path) {
    let src = home.join(format!(
        "src-{}",
        out.file_stem().unwrap().to_string_lossy()
    ));
    let s = Store::open(&src).unwrap();
    let labels: &[(&str, &str)] = if rootfs {
        &[("sealos.io.type", "rootfs"), ("version", "v1.29.0")]
    } else {
        &[("sealos.io.type", "application")]
    };
    let d = put_image(
        &s,
        "amd64",
        Comp::Gzip,
        &[vec![("etc/marker", name.as_bytes().to_vec())]],
        labels,
    );
    s.tag(&name.parse().unwrap(), &d).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .env("FERRY_HOME", home.join(".ferry-src"))
        .env("FERRY_DATA_ROOT", &src)
        .args(["save", "-m", format, "-f", out.to_str().unwrap(), name])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
}

fn stored(home: &Path) -> Clusterfile {
    let p = home.join(".ferry/default/Clusterfile");
    Clusterfile::parse(&std::fs::read_to_string(&p).unwrap()).unwrap()
}

/// The host group of `cf` listing exactly `ip`.
fn group<'c>(cf: &'c Clusterfile, ip: &str) -> &'c ferry_shared::clusterfile::Host {
    let hosts = &cf.cluster.spec.hosts;
    hosts.iter().find(|g| g.ips == [ip]).unwrap()
}

fn store_names(home: &Path) -> Vec<String> {
    let root = home.join("store");
    if !root.join("index.json").exists() {
        return Vec::new();
    }
    Store::open(&root)
        .unwrap()
        .list()
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect()
}

#[test]
fn run_loads_archives_and_persists_env() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let k8s = h.join("k8s.tar");
    let app = h.join("app.tar");
    archive(h, K8S, true, "oci-archive", &k8s);
    archive(h, APP, false, "docker-archive", &app);

    let env = ["-e", "defaultVIP=10.103.97.9", "-e", "MARK=one"];
    let out = run_new(h, &[&k8s, &app], &env);
    let t = text(&out);
    assert!(t.contains(&format!("Loaded image: {K8S}")), "{t}");
    assert!(t.contains(&format!("Loaded image: {APP}")), "{t}");
    let mut names = store_names(h);
    names.sort();
    assert_eq!(names, [APP, K8S]);
    let cf = stored(h);
    assert_eq!(cf.cluster.spec.image, [K8S, APP]);
    assert_eq!(cf.cluster.spec.env, ["defaultVIP=10.103.97.9", "MARK=one"]);

    // The running-cluster branch (no hosts): the archive's image is
    // appended, -e changes MARK in place and appends NEW.
    let app2 = h.join("app2.tar");
    archive(h, APP2, false, "oci-archive", &app2);
    let app2 = app2.to_str().unwrap();
    reaches_hosts(h, &["run", app2, "-e", "MARK=two", "-e", "NEW=1"]);
    let cf = stored(h);
    assert_eq!(cf.cluster.spec.image, [K8S, APP, APP2]);
    let want = ["defaultVIP=10.103.97.9", "MARK=two", "NEW=1"];
    assert_eq!(cf.cluster.spec.env, want);

    // apply -e: into the applied file's spec.env, stored.
    let file = h.join("Clusterfile");
    std::fs::write(&file, cf.to_yaml(false).unwrap()).unwrap();
    let f = file.to_str().unwrap();
    reaches_hosts(h, &["apply", "-f", f, "-e", "MARK=three"]);
    let want = ["defaultVIP=10.103.97.9", "MARK=three", "NEW=1"];
    assert_eq!(stored(h).cluster.spec.env, want);

    // gen shows -e in spec.env, as sealos gen does.
    let out = ferry(h, &["gen", K8S, "--masters", "127.0.0.1", "-e", "A=1"]);
    assert!(out.status.success(), "{}", text(&out));
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    let gen_cf = Clusterfile::parse(&printed).unwrap();
    assert_eq!(gen_cf.cluster.spec.env, ["A=1"], "{printed}");
}

#[test]
fn nameless_archives_are_named_after_the_file() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let named = h.join("named.tar");
    archive(h, K8S, true, "oci-archive", &named);
    // An oci-archive whose index names nothing (no ref.name annotation).
    let bare = h.join("My_Rootfs.tar");
    let ref_name = format!("\"org.opencontainers.image.ref.name\":\"{K8S}\"");
    rewrite_tar(&named, &bare, |path, text| match path {
        "index.json" => Some(text.replace(&ref_name, "\"x\":\"y\"")),
        _ => Some(text.to_string()),
    });
    run_new(h, &[&bare], &[]);
    let want = "localhost/my-rootfs:latest";
    assert_eq!(store_names(h), [want]);
    assert_eq!(stored(h).cluster.spec.image, [want]);

    // A docker archive without RepoTags (`docker save IMAGE_ID`; no
    // index.json, as older docker writes them), through `ferry load`.
    let docker = h.join("docker.tar");
    archive(h, APP, false, "docker-archive", &docker);
    let bare = h.join("bare-app.tar");
    let tags = format!("[\"{APP}\"]");
    rewrite_tar(&docker, &bare, |path, text| match path {
        "index.json" => None,
        "manifest.json" => Some(text.replace(&tags, "null")),
        _ => Some(text.to_string()),
    });
    let out = ferry(h, &["load", "-i", bare.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(store_names(h).contains(&"localhost/bare-app:latest".to_string()));
}

/// Copies the tar `src` to `dst`, the JSON entries (`index.json`,
/// `manifest.json`) through `f` (`None` drops the entry).
fn rewrite_tar(src: &Path, dst: &Path, f: impl Fn(&str, &str) -> Option<String>) {
    let mut out = tar::Builder::new(Vec::new());
    let mut a = tar::Archive::new(std::fs::File::open(src).unwrap());
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).unwrap();
        if path.ends_with(".json") && !path.starts_with("blobs/") {
            let before = String::from_utf8(data).unwrap();
            let Some(after) = f(&path, &before) else {
                continue;
            };
            data = after.into_bytes();
        }
        let mut hd = tar::Header::new_gnu();
        hd.set_size(data.len() as u64);
        hd.set_mode(0o644);
        out.append_data(&mut hd, &path, data.as_slice()).unwrap();
    }
    std::fs::write(dst, out.into_inner().unwrap()).unwrap();
}

#[test]
fn hostile_or_corrupt_archive_stops_run_before_any_state() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let good = h.join("good.tar");
    archive(h, K8S, true, "oci-archive", &good);
    // A symlink entry, and a blob whose bytes are not its name's digest.
    let link = h.join("link.tar");
    let mut b = tar::Builder::new(Vec::new());
    let mut hd = tar::Header::new_gnu();
    hd.set_entry_type(tar::EntryType::Symlink);
    hd.set_size(0);
    b.append_link(&mut hd, "index.json", "/etc/passwd").unwrap();
    std::fs::write(&link, b.into_inner().unwrap()).unwrap();
    let corrupt = h.join("corrupt.tar");
    let mut b = tar::Builder::new(Vec::new());
    let mut hd = tar::Header::new_gnu();
    hd.set_size(8);
    hd.set_mode(0o644);
    b.append_data(
        &mut hd,
        format!("blobs/sha256/{}", "0".repeat(64)),
        &b"not zero"[..],
    )
    .unwrap();
    std::fs::write(&corrupt, b.into_inner().unwrap()).unwrap();

    for (bad, needle) in [(&link, "regular files"), (&corrupt, "mismatch")] {
        // The good archive first: the bad one still stops everything.
        let (good, bad) = (good.to_str().unwrap(), bad.to_str().unwrap());
        let out = ferry(h, &["run", good, bad, "--masters", NOHOST, "-p", "pw"]);
        assert!(!out.status.success());
        let t = text(&out);
        assert!(t.contains(needle) && t.contains("nothing was"), "{t}");
        let state = h.join(".ferry/default");
        for f in ["Clusterfile", "agents.json", "pki", "journal.jsonl"] {
            assert!(!state.join(f).exists(), "{f} written: {t}");
        }
        // The good archive before it was loaded (as `ferry load` would);
        // the bad one named nothing.
        assert_eq!(store_names(h), [K8S]);
    }
}

#[test]
fn run_f_clusterfile_keeps_its_command_and_never_drops_hosts() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let k8s = h.join("k8s.tar");
    archive(h, K8S, true, "oci-archive", &k8s);
    let app = h.join("app.tar");
    archive(h, APP, false, "docker-archive", &app);
    let file = h.join("Clusterfile");
    std::fs::write(
        &file,
        format!(
            "apiVersion: apps.sealos.io/v1beta1\nkind: Cluster\nmetadata: {{name: default}}\nspec:\n  hosts:\n  - ips: [\"{NOHOST}\"]\n    roles: [master]\n  image: [\"{K8S}\"]\n  ssh: {{user: root, passwd: pw}}\n  env: [MARK=file]\n  command: [\"touch /tmp/from-clusterfile\"]\n"
        ),
    )
    .unwrap();
    let f = file.to_str().unwrap();

    // -f with host flags is a usage error, before anything is loaded.
    let out = ferry(h, &["run", "-f", f, "--masters", "127.0.0.2"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));

    // IMAGE arguments (archives too) are appended; -e over the file's env.
    let (k8s, app) = (k8s.to_str().unwrap(), app.to_str().unwrap());
    reaches_hosts(h, &["run", "-f", f, k8s, app, "-e", "MARK=cli"]);
    let cf = stored(h);
    assert_eq!(cf.cluster.spec.image, [K8S, APP]);
    assert_eq!(cf.cluster.spec.command, ["touch /tmp/from-clusterfile"]);
    assert_eq!(cf.cluster.spec.env, ["MARK=cli"]);

    // A stored cluster with a host the file lacks: refused, pointing at apply.
    let mut bigger = cf.clone();
    bigger.cluster.spec.hosts[0].ips.push("127.0.0.3:1".into());
    std::fs::write(
        h.join(".ferry/default/Clusterfile"),
        bigger.to_yaml(true).unwrap(),
    )
    .unwrap();
    let out = ferry(h, &["run", "-f", f]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let t = text(&out);
    assert!(
        t.contains("127.0.0.3:1") && t.contains("ferry apply -f"),
        "{t}"
    );
}

#[test]
fn add_records_the_ssh_flags_given_and_hides_the_password() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let k8s = h.join("k8s.tar");
    archive(h, K8S, true, "oci-archive", &k8s);
    run_new(h, &[&k8s], &[]);

    let secret = "alice-Secret-9f3";
    let alice = ["-u", "alice", "-p", secret];
    let mut args = vec!["--output", "json", "add", "--nodes", "127.0.0.2:1"];
    args.extend(alice);
    let out = reaches_hosts(h, &args);
    assert!(!text(&out).contains(secret), "password printed");
    let events = std::fs::read_to_string(h.join(".ferry/default/events.jsonl")).unwrap();
    assert!(!events.contains(secret), "password in events.jsonl");
    let cf = stored(h);
    let g = group(&cf, "127.0.0.2:1");
    let ssh = g.ssh.as_ref().expect("the added group has an ssh block");
    assert_eq!(ssh.user, "alice");
    assert_eq!(ssh.passwd.expose(), secret);
    assert_eq!(ssh.port, 0, "--port not given");
    assert!(ssh.pk.is_empty());
    // The cluster's own SSH is untouched.
    assert_eq!(cf.cluster.spec.ssh.user, "root");
    assert_eq!(cf.cluster.spec.ssh.passwd.expose(), "pw");
    let hosts = cf.cluster.resolved_hosts().unwrap();
    let alice = hosts.iter().find(|x| x.addr.to_string() == "127.0.0.2:1");
    assert_eq!(alice.unwrap().ssh.user, "alice");

    // No SSH flag: no ssh block, the cluster's SSH applies.
    reaches_hosts(h, &["add", "--nodes", "127.0.0.4:1"]);
    let cf = stored(h);
    let g = group(&cf, "127.0.0.4:1");
    assert!(g.ssh.is_none(), "{:?}", g.ssh);
}
