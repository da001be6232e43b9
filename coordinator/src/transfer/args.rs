//! `--topology` / `--relay-degree`: the clap surface of the relay choice,
//! shared by every command that distributes trees.

use ferry_shared::transfer::Topology;

/// How chunks reach the nodes (`ferry scp --topology`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TopologyArg {
    /// The bastion feeds every node itself.
    Star,
    /// bastion → node1 → node2 → …: each node forwards while receiving.
    Chain,
    /// A tree of `--relay-degree` children per node.
    Tree,
}

/// `--topology` and `--relay-degree` (scp, run, apply, add).
#[derive(Debug, Clone, clap::Args)]
pub struct TopologyArgs {
    /// How chunks reach the nodes: `chain` sends each chunk once from the
    /// bastion and lets every node forward it to the next.
    #[arg(long, value_enum, default_value_t = TopologyArg::Chain)]
    pub topology: TopologyArg,
    /// Children per node with `--topology tree`.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub relay_degree: u32,
}

impl TopologyArgs {
    pub fn topology(&self) -> Topology {
        match self.topology {
            TopologyArg::Star => Topology::Star,
            TopologyArg::Chain => Topology::Chain,
            TopologyArg::Tree => Topology::Tree {
                degree: self.relay_degree,
            },
        }
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct RelayArgs {
    #[command(flatten)]
    pub route: TopologyArgs,
    /// Leave this path (relative to SRC and DST, e.g. `registry`) out of the
    /// copy; on the nodes it is neither written nor removed. Repeatable.
    #[arg(long, value_name = "REL_PATH")]
    pub exclude: Vec<String>,
    /// SRC is a docker-distribution registry root (`docker/registry/v2`):
    /// sync it to DST by blob digest, blobs before repositories (tags,
    /// links), never removing what the nodes already hold.
    #[arg(long)]
    pub registry_sync: bool,
}

impl RelayArgs {
    pub fn topology(&self) -> Topology {
        self.route.topology()
    }
}
