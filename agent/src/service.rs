//! The `ferry.agent.v1.Agent` gRPC service: thin glue between tonic, the
//! protocol edge ([`crate::convert`]) and the agent's parts.

use std::pin::Pin;
use std::time::Duration;

use ferry_proto::pb;
use ferry_shared::EventKind;
use futures::{Stream, StreamExt};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::convert;
use crate::events::EventBus;
use crate::exec::Executor;
use crate::facts::{FactsSource, SelfSha};

type FrameStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

pub struct AgentService {
    facts: FactsSource,
    sha: SelfSha,
    exec: Executor,
    events: EventBus,
    heartbeat: Duration,
    shutdown: CancellationToken,
}

impl AgentService {
    pub fn new(
        facts: FactsSource,
        sha: SelfSha,
        exec: Executor,
        events: EventBus,
        heartbeat: Duration,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            facts,
            sha,
            exec,
            events,
            heartbeat,
            shutdown,
        }
    }
}

#[tonic::async_trait]
impl pb::agent_server::Agent for AgentService {
    async fn facts(
        &self,
        _req: Request<pb::FactsRequest>,
    ) -> Result<Response<pb::FactsReply>, Status> {
        let sha = self.sha.clone().await.map_err(Status::internal)?;
        let src = self.facts.clone();
        let facts = tokio::task::spawn_blocking(move || src.collect(sha))
            .await
            .map_err(|e| Status::internal(format!("collecting facts failed: {e}")))?;
        Ok(Response::new(convert::facts(facts)))
    }

    type ExecStream = FrameStream<pb::ExecFrame>;

    async fn exec(
        &self,
        req: Request<pb::ExecRequest>,
    ) -> Result<Response<Self::ExecStream>, Status> {
        let spec = convert::exec_spec(req.into_inner())?;
        let (op, phase) = (spec.operation_id.clone(), spec.phase);
        let rx = self.exec.start(spec).map_err(|e| {
            tracing::warn!(op = %op, error = %e, "exec refused");
            self.events.publish(
                self.events
                    .event(&op, phase, EventKind::Failed)
                    .message(e.to_string()),
            );
            convert::exec_error(&e)
        })?;
        let stream = ReceiverStream::new(rx).map(|o| Ok(convert::exec_frame(o)));
        Ok(Response::new(Box::pin(stream)))
    }

    type EventsStream = FrameStream<pb::EventFrame>;

    async fn events(
        &self,
        req: Request<pb::EventsRequest>,
    ) -> Result<Response<Self::EventsStream>, Status> {
        let since = req.into_inner().since_seq;
        let rx = self
            .events
            .stream(since, self.heartbeat, self.shutdown.clone());
        let stream = ReceiverStream::new(rx).map(|i| Ok(convert::event_frame(i)));
        Ok(Response::new(Box::pin(stream)))
    }
}
