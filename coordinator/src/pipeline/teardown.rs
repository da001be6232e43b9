//! Undoing a host (`delete`, `reset`): `kubeadm reset`, then (delete only:
//! the cluster lives on) its Node object through a remaining master
//! (`kube_nodes.rs`), the images' clean hooks, ferry's `/etc/hosts` lines,
//! the VIP load balancer, the on-node data. Every part is attempted; each
//! one that fails is reported (never silently skipped), and the host's
//! journal records are marked undone. `delete --drain` drains first and
//! tears nothing down when the drain fails.

use std::collections::BTreeMap;
use std::time::Duration;

use ferry_shared::EventKind;
use ferry_shared::clusterfile::{Clusterfile, ROLE_NODE, ResolvedHost};
use ferry_shared::image::{EnvLayers, Hook, ImageMeta};
use ferry_shared::pipeline::{Outcome, Step};

use super::bootstrap::REGISTRY_HOST;
use super::journal::Recorder;
use super::kube::API_HOST;
use super::kube_nodes::NodeApi;
use super::node::{self, Cmd, NodeRef};
use crate::client::ClientTls;
use crate::lb::LbClient;

/// What teardown needs of the stored cluster.
pub struct Teardown {
    pub rec: Recorder,
    pub tls: ClientTls,
    pub data_dir: String,
    pub labels: BTreeMap<String, String>,
    pub env: EnvLayers,
    pub registry_ips: Vec<std::net::IpAddr>,
    /// Also remove every ferry file on the node except the agent itself
    /// (chunk cache...): a reset that uninstalls the agents.
    pub purge: bool,
    /// `delete --drain`: drain each host first, with this timeout.
    pub drain: Option<Duration>,
}

impl Teardown {
    /// The VIP the cluster's run used (image `vip` label, `defaultVIP`
    /// env, sealos' default), so re-syncing workers keeps it.
    pub fn vip(&self) -> String {
        let (env, _) = self.env.cluster_env();
        ImageMeta::from_labels(&self.labels, &env).effective_vip(&env)
    }

    pub fn new(rec: Recorder, tls: ClientTls, cluster: &str, cf: &Clusterfile) -> Self {
        let mut labels = BTreeMap::new();
        let mut image_env = BTreeMap::new();
        for m in &cf.cluster.status.mounts {
            labels.extend(m.labels.clone());
            image_env.extend(m.env.clone());
        }
        let registry_ips = cf
            .cluster
            .registry_hosts()
            .map(|v| v.iter().map(|h| h.addr.ip).collect())
            .unwrap_or_default();
        Self {
            rec,
            tls,
            data_dir: super::data_dir(cluster),
            labels,
            env: EnvLayers {
                image: image_env,
                spec: cf.cluster.spec.env.clone(),
                cli: Vec::new(),
            },
            registry_ips,
            purge: false,
            drain: None,
        }
    }

    async fn attempt(&self, n: &NodeRef, what: &str, cmd: Cmd, problems: &mut Vec<String>) {
        let step = Step::Bootstrap;
        if let Err(e) = node::run(n, &self.tls, &self.rec, step, cmd).await {
            problems.push(format!("{what}: {e}"));
        }
    }

    /// Tears one host down (a whole-cluster reset: no Node API left);
    /// returns what could not be cleaned.
    pub async fn clean_host(&self, h: &ResolvedHost, n: &NodeRef) -> Vec<String> {
        self.remove_host(h, n, None).await
    }

    /// Tears one host down; with `api`, deletes its Node object after
    /// `kubeadm reset` (ignore-not-found). Returns what could not be cleaned.
    pub async fn remove_host(
        &self,
        h: &ResolvedHost,
        n: &NodeRef,
        api: Option<&NodeApi<'_>>,
    ) -> Vec<String> {
        let mut problems = Vec::new();
        let host = n.host.clone();
        // Learned before anything changes on the host.
        let node_name = match api {
            Some(a) => Some(a.node_name(n).await),
            None => None,
        };
        self.rec
            .step_event(Step::Bootstrap, &host, EventKind::Started, "teardown");
        const RESET: &str = "if command -v kubeadm >/dev/null 2>&1; then kubeadm reset -f; fi";
        self.attempt(
            n,
            "kubeadm reset",
            Cmd::script(RESET, &[]).display("kubeadm reset -f"),
            &mut problems,
        )
        .await;
        if let (Some(api), Some(name)) = (api, node_name) {
            let res = match name {
                Ok(name) => api.delete(n, &name).await.map(|_| ()),
                Err(e) => Err(e),
            };
            if let Err(e) = res {
                problems.push(format!("Node object: {e}"));
            }
        }
        let (env, _) = self.env.host_env(&host, &h.env);
        let scripts = format!("{}/rootfs/scripts", self.data_dir);
        let mut hooks = vec![Hook::Clean];
        if self.labels.contains_key(Hook::CleanCri.label()) {
            hooks.push(Hook::CleanCri);
        }
        if self.registry_ips.contains(&h.addr.ip) {
            hooks.push(Hook::CleanRegistry);
        }
        for hook in hooks {
            let line = hook.command(&self.labels, &env);
            const RUN: &str = r#"if [ -d "$1" ]; then cd "$1" && script="${2%% *}" && if [ -f "$script" ]; then bash -c "bash $2"; fi; fi"#;
            let mut cmd = Cmd::script(RUN, &[&scripts, &line])
                .env(env.clone())
                .display(format!("{} hook: bash {line}", hook.label()));
            cmd.timeout = Duration::from_secs(600);
            self.attempt(n, hook.label(), cmd, &mut problems).await;
        }
        for name in [REGISTRY_HOST, API_HOST] {
            if let Err(e) =
                node::hosts_entry(n, &self.tls, &self.rec, Step::Bootstrap, name, None).await
            {
                problems.push(format!("/etc/hosts {name}: {e}"));
            }
        }
        if h.has_role(ROLE_NODE) {
            match n.connect(&self.tls, Step::LbSync).await {
                Ok(c) => {
                    if let Err(e) = LbClient::new(&c, Duration::from_secs(30))
                        .delete(self.rec.reporter().op())
                        .await
                    {
                        problems.push(format!("load balancer: {e}"));
                    }
                }
                Err(e) => problems.push(format!("load balancer: {e}")),
            }
        }
        let data = env
            .get("registryData")
            .cloned()
            .unwrap_or_else(|| "/var/lib/registry".into());
        const RM: &str = r#"[ -L "$2" ] && rm -f "$2"; rm -rf "$1" /etc/kubernetes /root/.kube; rmdir /var/lib/ferry/data 2>/dev/null; true"#;
        self.attempt(
            n,
            "data",
            Cmd::script(RM, &[&self.data_dir, &data]).display(format!("rm -rf {}", self.data_dir)),
            &mut problems,
        )
        .await;
        if self.purge {
            const PURGE: &str = "[ -d /var/lib/ferry ] && find /var/lib/ferry -mindepth 1 -maxdepth 1 ! -name agent -exec rm -rf {} +; true";
            self.attempt(
                n,
                "ferry files",
                Cmd::script(PURGE, &[]).display("rm -rf /var/lib/ferry/* (but the agent)"),
                &mut problems,
            )
            .await;
        }
        for step in ferry_shared::pipeline::Step::ALL
            .into_iter()
            .filter(|s| s.per_host())
        {
            for key in self.rec.live_keys(step, &host) {
                if let Err(e) = self.rec.record(step, &key, "", Outcome::Undone, "teardown") {
                    problems.push(format!("journal: {e}"));
                }
            }
        }
        let kind = if problems.is_empty() {
            EventKind::Finished
        } else {
            EventKind::Failed
        };
        self.rec.step_event(
            Step::Bootstrap,
            &host,
            kind,
            &format!(
                "teardown: {}",
                if problems.is_empty() {
                    "clean".to_string()
                } else {
                    problems.join("; ")
                }
            ),
        );
        problems
    }
}
