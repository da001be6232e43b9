//! `ferry pull | push | login | logout`.

use std::io::Read;
use std::time::Instant;

use ferry_shared::{EventKind, Phase, Secret};

use super::{ImageError, open_store};
use crate::cli::{LoginArgs, LogoutArgs, PullArgs, PushArgs};
use crate::commands::Exit;
use crate::oci::Reference;
use crate::oci::registry::{self, AuthStore, Connection, Credentials, Progress, PullOptions};
use crate::oci::types::Platform;
use crate::output::Reporter;
use crate::state::FerryHome;

fn connection(home: &FerryHome, registry: &str, insecure: bool) -> Result<Connection, ImageError> {
    Ok(Connection {
        registry: registry.to_string(),
        insecure,
        credentials: AuthStore::new(home.path()).get(registry)?,
    })
}

fn short(digest: &str) -> &str {
    digest.get(7..19).unwrap_or(digest)
}

/// Progress of blobs as events of `phase` (`image` names what they belong to).
fn progress_events<'a>(
    reporter: &'a Reporter,
    phase: Phase,
    image: &'a str,
) -> impl Fn(Progress) + Send + Sync + 'a {
    move |p| {
        let ev = match p {
            Progress::BlobStarted { digest, total } => reporter
                .event("", phase, EventKind::Started)
                .counter("bytes_total", total)
                .message(format!("{image}: blob {}", short(&digest))),
            Progress::BlobProgress {
                digest,
                done,
                total,
            } => reporter
                .event("", phase, EventKind::Progress)
                .counter("bytes_done", done)
                .counter("bytes_total", total)
                .message(format!("{image}: blob {}", short(&digest))),
            Progress::BlobDone {
                digest,
                bytes,
                skipped,
            } => reporter
                .event("", phase, EventKind::Finished)
                .counter("bytes", bytes)
                .counter("skipped", u64::from(skipped))
                .message(format!(
                    "{image}: blob {}{}",
                    short(&digest),
                    if skipped { " already present" } else { "" }
                )),
        };
        reporter.emit(ev);
    }
}

pub(super) async fn pull(
    home: &FerryHome,
    reporter: &Reporter,
    args: PullArgs,
) -> Result<Exit, ImageError> {
    let store = open_store(home)?;
    let platform = args
        .platform
        .as_deref()
        .map(str::parse::<Platform>)
        .transpose()
        .map_err(ImageError::Usage)?;
    let opts = PullOptions {
        platform,
        concurrency: args.concurrency,
    };
    for image in &args.images {
        let started = Instant::now();
        let reference: Reference = image.parse()?;
        let conn = connection(home, &reference.registry, args.registry.insecure)?;
        let shown = reference.to_string();
        let progress = progress_events(reporter, Phase::Pull, &shown);
        let report = registry::pull(&store, &conn, &reference, &opts, &progress).await?;
        reporter.emit(
            reporter
                .event("", Phase::Pull, EventKind::Finished)
                .counter("blobs_fetched", report.blobs_fetched)
                .counter("blobs_skipped", report.blobs_skipped)
                .counter("bytes_fetched", report.bytes_fetched)
                .counter("image_size", report.image_size)
                .counter("duration_ms", started.elapsed().as_millis() as u64)
                .message(format!(
                    "pulled {} ({})",
                    report.name, report.manifest.digest
                )),
        );
        reporter.text(&format!("{} {}", report.manifest.digest, report.name));
    }
    Ok(Exit::Ok)
}

pub(super) async fn push(
    home: &FerryHome,
    reporter: &Reporter,
    args: PushArgs,
) -> Result<Exit, ImageError> {
    let started = Instant::now();
    let store = open_store(home)?;
    let target = match &args.destination {
        Some(d) => d.clone(),
        None => store.lookup(&args.image)?.name,
    };
    let target: Reference = target.parse()?;
    let conn = connection(home, &target.registry, args.registry.insecure)?;
    let shown = target.to_string();
    let progress = progress_events(reporter, Phase::Push, &shown);
    let report = registry::push(&store, &conn, &args.image, &target, &progress).await?;
    reporter.emit(
        reporter
            .event("", Phase::Push, EventKind::Finished)
            .counter("blobs_pushed", report.blobs_pushed)
            .counter("blobs_skipped", report.blobs_skipped)
            .counter("bytes_pushed", report.bytes_pushed)
            .counter("duration_ms", started.elapsed().as_millis() as u64)
            .message(format!("pushed {shown} ({})", report.manifest.digest)),
    );
    reporter.text(&format!("{} {shown}", report.manifest.digest));
    Ok(Exit::Ok)
}

pub(super) async fn login(
    home: &FerryHome,
    reporter: &Reporter,
    args: LoginArgs,
) -> Result<Exit, ImageError> {
    let password = match (&args.password, args.password_stdin) {
        (_, true) => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .map_err(|source| ImageError::Io {
                    what: "reading the password from stdin".to_string(),
                    source,
                })?;
            Secret::new(s.trim_end_matches(['\r', '\n']))
        }
        (Some(p), false) => Secret::new(p.clone()),
        (None, false) => {
            return Err(ImageError::Usage(
                "login needs a password: -p, FERRY_REGISTRY_PASSWD or --password-stdin".to_string(),
            ));
        }
    };
    let creds = Credentials {
        username: args.username.clone(),
        password,
    };
    let conn = Connection {
        registry: args.registry.clone(),
        insecure: args.registry_flags.insecure,
        credentials: Some(creds.clone()),
    };
    registry::check_login(&conn).await?;
    let store = AuthStore::new(home.path());
    store.set(&args.registry, &creds)?;
    reporter.emit(
        reporter
            .event("", Phase::Image, EventKind::Finished)
            .message(format!(
                "logged in to {} as {}",
                args.registry, args.username
            )),
    );
    reporter.text(&format!("Login Succeeded ({})", store.path().display()));
    Ok(Exit::Ok)
}

pub(super) fn logout(
    home: &FerryHome,
    reporter: &Reporter,
    args: LogoutArgs,
) -> Result<Exit, ImageError> {
    let removed = AuthStore::new(home.path()).remove(&args.registry)?;
    let msg = if removed {
        format!("removed the credentials of {}", args.registry)
    } else {
        format!("no credentials stored for {}", args.registry)
    };
    reporter.emit(
        reporter
            .event("", Phase::Image, EventKind::Finished)
            .message(msg.clone()),
    );
    reporter.text(&msg);
    Ok(Exit::Ok)
}
