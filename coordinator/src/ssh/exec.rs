//! Running one command on its own channel: stdin is fed while output is
//! read, so neither side can stall the other.

use std::time::Duration;

use russh::client::Msg;
use russh::{Channel, ChannelMsg};
use russh::{ChannelReadHalf, ChannelWriteHalf};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use super::{CommandOutput, SshError, SshSession};

/// Size of the pieces a local file is read and sent in.
const CHUNK: usize = 64 * 1024;

/// What goes to the command's stdin (always followed by EOF).
pub(crate) enum Input<'a> {
    None,
    Bytes(&'a [u8]),
    /// Streamed in [`CHUNK`]s and hashed on the way.
    File(&'a mut tokio::fs::File),
}

/// What was sent on stdin.
#[derive(Debug, Default)]
pub(crate) struct Fed {
    pub bytes: u64,
    /// Hex SHA-256 of the bytes sent.
    pub sha256: String,
    /// All input was sent and EOF delivered before the command finished.
    pub complete: bool,
}

impl SshSession {
    /// Runs `line` (already quoted) with `input`, under the command timeout.
    /// `shown` is the command as error messages name it.
    pub(crate) async fn exec(
        &self,
        shown: &str,
        line: &str,
        input: Input<'_>,
    ) -> Result<(CommandOutput, Fed), SshError> {
        // Never fails: the semaphore is not closed.
        let _permit = self.channels.acquire().await.ok();
        let channel = self.open_channel().await?;
        channel
            .exec(true, line)
            .await
            .map_err(|e| self.protocol(e))?;
        let (mut rx, tx) = channel.split();
        let run = drive(&mut rx, &tx, input);
        match tokio::time::timeout(self.command_timeout, run).await {
            Ok(Ok(done)) => Ok(done),
            Ok(Err(e)) => {
                let _ = tx.close().await;
                Err(SshError::Transfer {
                    host: self.host.clone(),
                    path: shown.to_string(),
                    reason: format!("reading the local input failed: {e}"),
                })
            }
            Err(_) => {
                let _ = tx.close().await;
                Err(SshError::CommandTimeout {
                    host: self.host.clone(),
                    command: shown.to_string(),
                    after: self.command_timeout,
                })
            }
        }
    }
}

impl SshSession {
    /// Opens a session channel. sshd frees a finished session's slot a
    /// little after its close, so a busy connection can briefly hit
    /// `MaxSessions`: such refusals are retried with a short backoff.
    async fn open_channel(&self) -> Result<Channel<Msg>, SshError> {
        let mut attempt = 0u32;
        loop {
            match self.handle.channel_open_session().await {
                Ok(c) => return Ok(c),
                Err(russh::Error::ChannelOpenFailure(reason)) if attempt < OPEN_RETRIES => {
                    attempt += 1;
                    tracing::debug!(host = %self.host, ?reason, attempt, "channel open refused; retrying");
                    tokio::time::sleep(Duration::from_millis(10 * u64::from(attempt.min(10))))
                        .await;
                }
                Err(e) => return Err(self.protocol(e)),
            }
        }
    }
}

/// About 5 s of retries before a refused channel open is an error.
const OPEN_RETRIES: u32 = 54;

/// Feeds stdin and collects output concurrently; ends when the channel
/// closes. A local read error ends it at once.
async fn drive(
    rx: &mut ChannelReadHalf,
    tx: &ChannelWriteHalf<Msg>,
    input: Input<'_>,
) -> std::io::Result<(CommandOutput, Fed)> {
    let writer = feed(tx, input);
    let reader = collect(rx);
    tokio::pin!(writer, reader);
    let mut fed: Option<Fed> = None;
    loop {
        tokio::select! {
            // Writer first: its completion (EOF sent) is always seen before
            // the command's end, which can only follow it.
            biased;
            r = &mut writer, if fed.is_none() => fed = Some(r?),
            (out, refused) = &mut reader => {
                if refused {
                    let _ = tx.close().await;
                }
                // The command ended; input still in flight was not consumed.
                return Ok((out, fed.unwrap_or_default()));
            }
        }
    }
}

async fn feed(tx: &ChannelWriteHalf<Msg>, input: Input<'_>) -> std::io::Result<Fed> {
    let mut hasher = Sha256::new();
    let mut bytes = 0u64;
    let mut sent_all = true;
    match input {
        Input::None => {}
        Input::Bytes(data) => {
            hasher.update(data);
            bytes = data.len() as u64;
            sent_all = data.is_empty() || tx.data_bytes(data.to_vec()).await.is_ok();
        }
        Input::File(file) => {
            let mut buf = vec![0u8; CHUNK];
            loop {
                let n = file.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                let piece = buf.get(..n).unwrap_or_default();
                hasher.update(piece);
                if tx.data_bytes(piece.to_vec()).await.is_err() {
                    // The channel is gone: the command exited or failed;
                    // its status tells the rest.
                    sent_all = false;
                    break;
                }
                bytes += n as u64;
            }
        }
    }
    let complete = sent_all && tx.eof().await.is_ok();
    Ok(Fed {
        bytes,
        sha256: hex::encode(hasher.finalize()),
        complete,
    })
}

/// The output, and whether the server refused the exec request (the
/// channel then stays open and must be closed by us).
async fn collect(rx: &mut ChannelReadHalf) -> (CommandOutput, bool) {
    let mut out = CommandOutput::default();
    while let Some(msg) = rx.wait().await {
        match msg {
            ChannelMsg::Data { data } => out.stdout.extend_from_slice(&data),
            ChannelMsg::ExtendedData { data, ext: 1 } => out.stderr.extend_from_slice(&data),
            ChannelMsg::ExitStatus { exit_status } => out.code = Some(exit_status),
            ChannelMsg::ExitSignal {
                signal_name,
                error_message,
                ..
            } => {
                let note = format!(
                    "\n(remote command killed by signal {signal_name:?}) {error_message}\n"
                );
                out.stderr.extend_from_slice(note.as_bytes());
            }
            ChannelMsg::Failure => {
                out.stderr
                    .extend_from_slice(b"\n(the SSH server refused to run the command)\n");
                return (out, true);
            }
            _ => {}
        }
    }
    (out, false)
}
