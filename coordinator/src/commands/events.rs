//! `ferry agent events`: the agents' own event streams (exec started,
//! finished, failed, agent lifecycle), merged, as they happen.

use std::time::Duration;

use futures::StreamExt;
use tokio_stream::StreamMap;

use super::{CliError, Exit, select};
use crate::cli::EventsArgs;
use crate::client::{AgentClient, ClientTls};
use crate::output::Reporter;
use crate::state::ClusterState;

pub async fn events(cluster: &ClusterState, r: &Reporter, a: EventsArgs) -> Result<Exit, CliError> {
    let nodes = select(cluster, &a.select)?;
    let tls = ClientTls::from_pki(&cluster.agent_pki()?);
    let mut streams = StreamMap::new();
    let mut failed = 0;
    for n in &nodes {
        let host = n.addr.to_string();
        let res = match AgentClient::connect(n.addr.ip, n.agent_port, &tls, Duration::from_secs(5))
            .await
        {
            Ok(c) => c.events(0).await,
            Err(e) => Err(e),
        };
        match res {
            Ok(s) => {
                streams.insert(host, Box::pin(s));
            }
            Err(e) => {
                failed += 1;
                r.emit(
                    r.event(
                        &host,
                        ferry_shared::Phase::Agent,
                        ferry_shared::EventKind::Failed,
                    )
                    .message(e.to_string()),
                );
            }
        }
    }
    let follow = async {
        while let Some((host, item)) = streams.next().await {
            match item {
                Ok(ev) if a.op.as_deref().is_none_or(|op| op == ev.op) => r.emit(ev),
                Ok(_) => {}
                Err(e) => {
                    failed += 1;
                    r.emit(
                        r.event(
                            &host,
                            ferry_shared::Phase::Agent,
                            ferry_shared::EventKind::Failed,
                        )
                        .message(e.to_string()),
                    );
                }
            }
        }
    };
    let limit = (a.duration > 0).then(|| Duration::from_secs(a.duration));
    tokio::select! {
        _ = follow => {}
        _ = async { match limit { Some(d) => tokio::time::sleep(d).await, None => std::future::pending().await } } => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(Exit::from_failures(failed))
}
