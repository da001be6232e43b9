//! The gRPC server: mTLS only, keepalives on, graceful shutdown that ends
//! every stream and kills every running process group.

use std::future::Future;
use std::time::{Duration, Instant};

use ferry_proto::lb_pb::load_balancer_server::LoadBalancerServer;
use ferry_proto::pb::agent_server::AgentServer;
use ferry_shared::{EventKind, Phase};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::codec::CompressionEncoding;
use tonic::transport::Server;

use crate::accept::TlsState;
use crate::authz::AuthzLayer;
use crate::events::EventBus;
use crate::exec::Executor;
use crate::facts::{FactsSource, hash_self_in_background};
use crate::process_group::GroupRegistry;
use crate::service::AgentService;
use crate::tls::TlsMaterial;
use crate::trust::{Revocations, TlsDir, TrustService};
use crate::{AgentError, VERSION};

/// Heartbeat interval of idle streams.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(5);
/// Concurrent execs before new ones are refused with `ResourceExhausted`.
pub const DEFAULT_EXEC_LIMIT: usize = 64;
/// HTTP/2 streams (RPCs) one connection may have open at once; a client
/// past it waits for a stream to end (the coordinator runs at most
/// [`DEFAULT_EXEC_LIMIT`] commands per node, plus transfers and watchers).
pub const DEFAULT_STREAMS_PER_CONNECTION: u32 = 256;
/// How long shutdown waits for connections to close before giving up.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

const HTTP2_KEEPALIVE: Duration = Duration::from_secs(20);

#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The name the coordinator gave this node (reported in facts/events).
    pub node_name: String,
    pub tls: TlsMaterial,
    /// Where `tls` came from: the Trust service persists revocations and new
    /// TLS material there (None: kept in memory only).
    pub tls_dir: Option<std::path::PathBuf>,
    /// `systemd`, `daemon` or `foreground`.
    pub supervisor: String,
    pub heartbeat: Duration,
    pub exec_limit: usize,
    /// HTTP/2 streams per connection (SETTINGS_MAX_CONCURRENT_STREAMS, and
    /// requests in flight per connection).
    pub streams_per_connection: u32,
    pub shutdown_grace: Duration,
    /// Where the load balancer's desired state is persisted (None: not
    /// persisted).
    pub lb_dir: Option<std::path::PathBuf>,
    /// How the IPVS backend makes the VIP reachable (route | link).
    pub lb_vip_mode: crate::lb::vip::VipMode,
    /// Where running execs' process groups are recorded, so the next agent
    /// kills what this one leaves behind if it dies (None: not recorded).
    pub exec_records: Option<std::path::PathBuf>,
    /// Chunk cache of the transfer service.
    pub transfer: crate::transfer::TransferConfig,
}

impl ServeConfig {
    /// Defaults: foreground supervisor, 5 s heartbeat, 64 execs, 10 s grace.
    pub fn new(node_name: impl Into<String>, tls: TlsMaterial) -> Self {
        Self {
            node_name: node_name.into(),
            tls,
            tls_dir: None,
            supervisor: "foreground".to_string(),
            heartbeat: DEFAULT_HEARTBEAT,
            exec_limit: DEFAULT_EXEC_LIMIT,
            streams_per_connection: DEFAULT_STREAMS_PER_CONNECTION,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            lb_dir: None,
            lb_vip_mode: crate::lb::vip::VipMode::Route,
            exec_records: None,
            transfer: crate::transfer::TransferConfig::default(),
        }
    }
}

/// Serves the agent on `listener` until `shutdown` completes. Then it stops
/// accepting, kills every running exec's process group (their streams end
/// with an exit frame), ends event streams, and waits up to
/// `shutdown_grace` for connections to close.
pub async fn serve(
    config: ServeConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AgentError> {
    let started = Instant::now();
    let addr = listener.local_addr().map_err(AgentError::LocalAddr)?;
    let sha = hash_self_in_background();
    let stop = CancellationToken::new();
    let events = EventBus::new(config.node_name.clone());
    let groups = match &config.exec_records {
        Some(dir) => GroupRegistry::with_records(dir.clone()),
        None => GroupRegistry::new(),
    };
    let reaped = groups.reap_leftovers();
    if !reaped.is_empty() {
        tracing::warn!(groups = ?reaped, "killed commands a previous agent left running");
    }
    let exec = Executor::new(
        config.exec_limit,
        config.heartbeat,
        stop.clone(),
        groups.clone(),
        events.clone(),
    );
    let facts = FactsSource {
        node_name: config.node_name.clone(),
        supervisor: config.supervisor.clone(),
        started,
    };
    let svc = AgentService::new(
        facts,
        sha.clone(),
        exec,
        events.clone(),
        config.heartbeat,
        stop.clone(),
    );
    let lb = crate::lb::LbController::new(
        events.clone(),
        std::sync::Arc::new(crate::lb::SystemBackends {
            prefix: Vec::new(),
            vip_mode: config.lb_vip_mode,
        }),
        config.lb_dir.clone().map(crate::lb::store::Store::new),
        stop.clone(),
    )
    .map_err(|e| AgentError::Task(e.to_string()))?;
    let lb_svc = LoadBalancerServer::new(crate::lb::LbService::new(lb.clone()))
        .accept_compressed(CompressionEncoding::Zstd)
        .send_compressed(CompressionEncoding::Zstd);
    let svc = AgentServer::new(svc)
        .accept_compressed(CompressionEncoding::Zstd)
        .send_compressed(CompressionEncoding::Zstd);
    let transport = |source| AgentError::Transport {
        addr: addr.to_string(),
        source,
    };
    let tls = TlsState::new(config.tls.clone())?;
    let tls_dir = config.tls_dir.clone().map(TlsDir::new);
    let revoked = Revocations::load(tls_dir.as_ref().map(TlsDir::revoked_file))
        .map_err(|e| AgentError::Task(e.to_string()))?;
    let trust = TrustService::new(tls.clone(), revoked.clone(), tls_dir);
    let router = Server::builder()
        .layer(AuthzLayer::new(revoked))
        .http2_keepalive_interval(Some(HTTP2_KEEPALIVE))
        .http2_keepalive_timeout(Some(HTTP2_KEEPALIVE))
        .max_concurrent_streams(Some(config.streams_per_connection))
        .concurrency_limit_per_connection(config.streams_per_connection as usize)
        .add_service(svc)
        .add_service(lb_svc)
        .add_service(ferry_proto::pb::trust_server::TrustServer::new(trust))
        .add_service(
            ferry_proto::transfer_pb::transfer_server::TransferServer::new(
                crate::transfer::TransferService::new(&config.transfer, events.clone())
                    .with_relay_tls(tls.clone()),
            )
            .max_decoding_message_size(crate::transfer::service::MAX_MESSAGE),
        );
    let incoming = crate::accept::incoming(listener, tls);

    tracing::info!(%addr, node = %config.node_name, version = VERSION, supervisor = %config.supervisor, "ferry-agent serving (mTLS)");
    tokio::spawn(async move {
        match sha.await {
            Ok(sha) => tracing::info!(sha256 = %sha, "agent executable hashed"),
            Err(e) => tracing::error!("{e}"),
        }
    });
    events.publish(
        events
            .event("", Phase::Agent, EventKind::Started)
            .message(format!(
                "ferry-agent {VERSION} listening on {addr} (supervisor {})",
                config.supervisor
            )),
    );

    tokio::spawn(async move { lb.restore().await });

    let signal = {
        let stop = stop.clone();
        let events = events.clone();
        async move {
            tokio::select! {
                () = shutdown => {}
                () = stop.cancelled() => {}
            }
            tracing::info!("shutting down: no new connections; killing running commands");
            events.publish(
                events
                    .event("", Phase::Agent, EventKind::Finished)
                    .message("ferry-agent shutting down"),
            );
            stop.cancel();
        }
    };
    let serving = router.serve_with_incoming_shutdown(incoming, signal);
    tokio::pin!(serving);
    let grace = config.shutdown_grace;
    let result = tokio::select! {
        r = &mut serving => r.map_err(transport),
        () = async { stop.cancelled().await; tokio::time::sleep(grace).await } => {
            tracing::warn!(?grace, "connections still open after the shutdown grace period; closing them");
            Ok(())
        }
    };
    stop.cancel();
    let killed = groups.kill_all();
    if killed > 0 {
        tracing::warn!(killed, "killed process groups still running at exit");
    }
    tracing::info!("ferry-agent stopped");
    result
}
