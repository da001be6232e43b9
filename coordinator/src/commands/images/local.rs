//! `ferry images | rmi | inspect | tag`: the local store only.

use ferry_shared::{EventKind, Phase};

use super::{ImageError, open_store};
use crate::cli::{ImagesArgs, InspectArgs, RmiArgs, TagArgs};
use crate::commands::Exit;
use crate::oci::Reference;
use crate::oci::types::Platform;
use crate::output::Reporter;
use crate::state::FerryHome;

fn human_size(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

pub(super) fn images(
    home: &FerryHome,
    reporter: &Reporter,
    args: ImagesArgs,
) -> Result<Exit, ImageError> {
    let store = open_store(home)?;
    let mut rows = vec![format!(
        "{:<50} {:<20} {:<14} {:>10}",
        "REPOSITORY", "TAG", "IMAGE ID", "SIZE"
    )];
    for entry in store.list()? {
        let id = entry.descriptor.digest.hex()[..12].to_string();
        let size = store
            .resolve_descriptor(&entry.name, &entry.descriptor, None)
            .map(|r| r.size())
            .unwrap_or(entry.descriptor.size);
        let (repo, tag) = match entry
            .name
            .rsplit_once(':')
            .filter(|(r, _)| !r.contains('@'))
        {
            Some((r, t)) if !t.contains('/') => (r.to_string(), t.to_string()),
            _ => (entry.name.clone(), "<none>".to_string()),
        };
        // The table is the human form; the JSON message is for --output json.
        if reporter.is_json() {
            reporter.emit(
                reporter
                    .event("", Phase::Image, EventKind::Finished)
                    .counter("size", size)
                    .message(
                        serde_json::json!({
                            "name": entry.name,
                            "digest": entry.descriptor.digest.as_str(),
                            "media_type": entry.descriptor.media_type,
                            "size": size,
                        })
                        .to_string(),
                    ),
            );
        }
        rows.push(if args.quiet {
            id
        } else {
            format!("{repo:<50} {tag:<20} {id:<14} {:>10}", human_size(size))
        });
    }
    if args.quiet {
        rows.remove(0);
    }
    reporter.text(&rows.join("\n"));
    Ok(Exit::Ok)
}

pub(super) fn rmi(
    home: &FerryHome,
    reporter: &Reporter,
    args: RmiArgs,
) -> Result<Exit, ImageError> {
    let store = open_store(home)?;
    let inputs: Vec<String> = if args.all {
        store.list()?.into_iter().map(|e| e.name).collect()
    } else {
        args.images.clone()
    };
    let force = args.force || args.all;
    for input in &inputs {
        let found = store.find(input)?;
        let Some(first) = found.first() else {
            return Err(crate::oci::StoreError::NotFound {
                reference: input.clone(),
                root: store.root().to_owned(),
            }
            .into());
        };
        // A name removes that name; an id removes every name (with -f when several).
        let by_name = input
            .parse::<Reference>()
            .map(|r| crate::oci::store::store_name(&r) == first.name)
            .unwrap_or(false);
        let names: Vec<String> = if by_name {
            vec![first.name.clone()]
        } else {
            if found.len() > 1 && !force {
                return Err(ImageError::Usage(format!(
                    "`{input}` names {} images ({}); pass -f to remove them all",
                    found.len(),
                    found
                        .iter()
                        .map(|e| e.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            found.iter().map(|e| e.name.clone()).collect()
        };
        for name in names {
            store.untag(&name)?;
            reporter.emit(
                reporter
                    .event("", Phase::Image, EventKind::Finished)
                    .message(format!("untagged {name}")),
            );
            reporter.text(&format!("Untagged: {name}"));
        }
    }
    let gc = store.gc()?;
    let msg = if gc.ran {
        format!(
            "removed {} unused blobs ({} bytes)",
            gc.blobs_removed, gc.bytes_freed
        )
    } else {
        "blobs not collected: another ferry process has the store open".to_string()
    };
    reporter.emit(
        reporter
            .event("", Phase::Image, EventKind::Finished)
            .counter("blobs_removed", gc.blobs_removed)
            .counter("bytes_freed", gc.bytes_freed)
            .message(msg.clone()),
    );
    reporter.text(&msg);
    Ok(Exit::Ok)
}

pub(super) fn inspect(
    home: &FerryHome,
    reporter: &Reporter,
    args: InspectArgs,
) -> Result<Exit, ImageError> {
    let store = open_store(home)?;
    let platform = args
        .platform
        .as_deref()
        .map(str::parse::<Platform>)
        .transpose()
        .map_err(ImageError::Usage)?;
    let r = store.resolve(&args.image, platform.as_ref())?;
    let domain = r.config.to_domain(&r.name);
    let doc = serde_json::json!({
        "name": r.name,
        "digest": r.top.digest.as_str(),
        "manifest_digest": r.manifest_descriptor.digest.as_str(),
        "config_digest": r.manifest.config.digest.as_str(),
        "id": &r.top.digest.hex()[..12],
        "type": domain.image_type().as_str(),
        "platform": r.config.platform().to_string(),
        "created": r.config.created,
        "labels": domain.labels,
        "env": domain.env,
        "cmd": domain.cmd,
        "entrypoint": domain.entrypoint,
        "size": r.size(),
        "layers": r.manifest.layers.iter().map(|l| serde_json::json!({
            "digest": l.digest.as_str(), "size": l.size, "media_type": l.media_type,
        })).collect::<Vec<_>>(),
    });
    if reporter.is_json() {
        reporter.emit(
            reporter
                .event("", Phase::Image, EventKind::Finished)
                .counter("size", r.size())
                .message(doc.to_string()),
        );
    }
    reporter.text(&serde_json::to_string_pretty(&doc).unwrap_or_default());
    Ok(Exit::Ok)
}

pub(super) fn tag(
    home: &FerryHome,
    reporter: &Reporter,
    args: TagArgs,
) -> Result<Exit, ImageError> {
    let store = open_store(home)?;
    let source = store.lookup(&args.source)?;
    for t in &args.targets {
        let reference: Reference = t.parse()?;
        store.tag(&reference, &source.descriptor)?;
        let name = crate::oci::store::store_name(&reference);
        reporter.emit(
            reporter
                .event("", Phase::Image, EventKind::Finished)
                .message(format!("tagged {} as {name}", source.name)),
        );
    }
    Ok(Exit::Ok)
}
