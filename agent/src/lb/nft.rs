//! The nftables backend: the table `ip ferry_lb` ([`super::nft_rules`]),
//! applied with `nft -f -` in one atomic transaction, read back with
//! `nft -j`, plus lvscare's route mode ([`super::vip`]) so the VIP is
//! routable from the node (the output-hook DNAT then picks the member).

use std::net::Ipv4Addr;
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use ferry_shared::lb::LbRules;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use super::LbError;
use super::backend::Backend;
use super::nft_rules::{self, TABLE};
use super::vip::{self, VipMode};

/// Longest time one `nft`/`ip` invocation may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

pub struct NftBackend {
    prefix: Vec<String>,
    /// The VIP routed last, so `clear` can remove its route.
    routed: Mutex<Option<Ipv4Addr>>,
}

pub(crate) struct Ran {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
    pub argv: String,
    pub status: String,
}

impl Ran {
    pub(crate) fn require(self) -> Result<String, LbError> {
        if self.ok {
            Ok(self.stdout)
        } else {
            Err(LbError::Command {
                argv: self.argv,
                status: self.status,
                stderr: self.stderr.trim().to_string(),
            })
        }
    }
}

/// Runs `prefix + argv` with `stdin`, bounded by [`COMMAND_TIMEOUT`].
pub(crate) async fn run(prefix: &[String], argv: &[&str], stdin: &str) -> Result<Ran, LbError> {
    let full: Vec<&str> = prefix
        .iter()
        .map(String::as_str)
        .chain(argv.iter().copied())
        .collect();
    let shown = argv.join(" ");
    let spawn_err = |source| LbError::Spawn {
        argv: shown.clone(),
        source,
    };
    let (program, args) = full.split_first().ok_or_else(|| {
        spawn_err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "empty argv",
        ))
    })?;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(spawn_err)?;
    if let Some(mut i) = child.stdin.take() {
        i.write_all(stdin.as_bytes()).await.map_err(spawn_err)?;
    }
    let out = tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| {
            spawn_err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no exit within {COMMAND_TIMEOUT:?}"),
            ))
        })?
        .map_err(spawn_err)?;
    Ok(Ran {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        argv: shown,
        status: out.status.to_string(),
    })
}

impl NftBackend {
    pub fn new(prefix: Vec<String>) -> Self {
        Self {
            prefix,
            routed: Mutex::new(None),
        }
    }

    fn routed(&self) -> std::sync::MutexGuard<'_, Option<Ipv4Addr>> {
        self.routed.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn unroute(&self, vip: Ipv4Addr) -> Result<(), LbError> {
        vip::unroute(&self.prefix, vip).await?;
        *self.routed() = None;
        Ok(())
    }
}

#[tonic::async_trait]
impl Backend for NftBackend {
    fn name(&self) -> &'static str {
        "nftables"
    }

    async fn apply(&self, rules: &LbRules) -> Result<(), LbError> {
        let text = nft_rules::render(rules);
        run(&self.prefix, &["nft", "-f", "-"], &text)
            .await?
            .require()?;
        let vip = *rules.vip.ip();
        let previous = *self.routed();
        if let Some(old) = previous.filter(|old| *old != vip) {
            self.unroute(old).await?;
        }
        if let Some(first) = rules.members.keys().next() {
            vip::ensure(&self.prefix, VipMode::Route, vip, *first.ip()).await?;
            *self.routed() = Some(vip);
        }
        Ok(())
    }

    async fn read(&self) -> Result<Option<LbRules>, LbError> {
        let ran = run(
            &self.prefix,
            &["nft", "-j", "list", "table", "ip", TABLE],
            "",
        )
        .await?;
        if !ran.ok && ran.stderr.contains("No such file or directory") {
            return Ok(None);
        }
        let argv = ran.argv.clone();
        let out = ran.require()?;
        nft_rules::parse(&out).map_err(|detail| LbError::Parse { argv, detail })
    }

    async fn clear(&self) -> Result<(), LbError> {
        let vip = match self.read().await? {
            Some(r) => Some(*r.vip.ip()),
            None => *self.routed(),
        };
        let ran = run(&self.prefix, &["nft", "delete", "table", "ip", TABLE], "").await?;
        if !ran.ok && !ran.stderr.contains("No such file or directory") {
            ran.require()?;
        }
        if let Some(vip) = vip {
            self.unroute(vip).await?;
        }
        Ok(())
    }
}
