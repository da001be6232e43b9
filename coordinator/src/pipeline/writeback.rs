//! The Clusterfile in the state directory (0600: it may hold SSH secrets),
//! written after every run with `status.phase` and a condition, success or
//! failure; the backup to the masters is `backup.rs`.

use ferry_shared::clusterfile::{ClusterPhase, Clusterfile, Condition, MountImage};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub use super::backup::backup;
use super::{Ctx, PipelineError};
use crate::state::{ClusterState, write_atomic};

pub const CLUSTERFILE: &str = "Clusterfile";
/// Conditions kept in the status (oldest dropped).
const MAX_CONDITIONS: usize = 20;

pub fn load_clusterfile(state: &ClusterState) -> Result<Option<Clusterfile>, PipelineError> {
    let p = state.dir().join(CLUSTERFILE);
    match std::fs::read_to_string(&p) {
        Ok(t) => Ok(Some(Clusterfile::parse(&t)?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(PipelineError::io("reading", &p)(e)),
    }
}

pub fn save_clusterfile(state: &ClusterState, cf: &Clusterfile) -> Result<(), PipelineError> {
    let text = cf.to_yaml(true)?;
    write_atomic(&state.dir().join(CLUSTERFILE), text.as_bytes(), 0o600)?;
    Ok(())
}

fn now() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default()
}

pub fn write_status(
    state: &ClusterState,
    cf: &mut Clusterfile,
    res: &Result<(), PipelineError>,
) -> Result<(), PipelineError> {
    let st = &mut cf.cluster.status;
    // A failed image command leaves the cluster up (sealos: ClusterSuccess
    // plus a failed command condition, written by the guest step).
    let cond = match res {
        Ok(()) | Err(PipelineError::Guest { .. }) => {
            st.phase = Some(ClusterPhase::ClusterSuccess);
            if cf.cluster.metadata.creation_timestamp.is_none() {
                cf.cluster.metadata.creation_timestamp = Some(now());
            }
            Condition {
                kind: "ApplyClusterSuccess".into(),
                status: "True".into(),
                last_heartbeat_time: Some(now()),
                reason: "Ready".into(),
                message: "Applied to cluster successfully".into(),
                ..Condition::default()
            }
        }
        Err(e) => {
            st.phase = Some(ClusterPhase::ClusterFailed);
            Condition {
                kind: "ApplyClusterError".into(),
                status: "False".into(),
                last_heartbeat_time: Some(now()),
                reason: "Apply Cluster".into(),
                message: e.to_string(),
                ..Condition::default()
            }
        }
    };
    let st = &mut cf.cluster.status;
    st.conditions.push(cond);
    if st.conditions.len() > MAX_CONDITIONS {
        let drop = st.conditions.len() - MAX_CONDITIONS;
        st.conditions.drain(..drop);
    }
    save_clusterfile(state, cf)
}

/// The command condition of the guest step (sealos' `commandCondition`):
/// `ApplyCommandError` naming the failed image when its commands failed,
/// `ApplyCommandSuccess` naming the images whose commands ran; nothing when
/// none ran. Only the newest [`MAX_CONDITIONS`] are kept.
pub fn command_condition(cf: &mut Clusterfile, res: &Result<Vec<String>, PipelineError>) {
    let cond = match res {
        Ok(ran) if ran.is_empty() => return,
        Ok(ran) => Condition {
            kind: "ApplyCommandSuccess".into(),
            status: "True".into(),
            last_heartbeat_time: Some(now()),
            images: ran.clone(),
            reason: "Apply Command".into(),
            message: "Applied commands successfully".into(),
        },
        Err(e) => Condition {
            kind: "ApplyCommandError".into(),
            status: "False".into(),
            last_heartbeat_time: Some(now()),
            images: match e {
                PipelineError::Guest { image, .. } => vec![image.clone()],
                _ => Vec::new(),
            },
            reason: "Apply Command".into(),
            message: e.to_string(),
        },
    };
    let list = &mut cf.cluster.status.command_conditions;
    list.push(cond);
    if list.len() > MAX_CONDITIONS {
        let drop = list.len() - MAX_CONDITIONS;
        list.drain(..drop);
    }
}

/// `status.mounts` from the loaded images.
pub fn set_mounts(cf: &mut Clusterfile, ctx: &Ctx) {
    cf.cluster.status.mounts = ctx
        .images
        .iter()
        .map(|i| {
            let (env, _) = ferry_shared::image::parse_env_list(&i.config.env);
            MountImage {
                name: i
                    .config
                    .name
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .to_string(),
                kind: i.config.image_type().as_str().to_string(),
                image_name: i.config.name.clone(),
                mount_point: i.root.display().to_string(),
                env,
                labels: i.config.labels.clone(),
                cmd: i.config.cmd.clone(),
                entrypoint: i.config.entrypoint.clone(),
            }
        })
        .collect();
}
