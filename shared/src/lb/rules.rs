//! What a backend programs: the VIP, the scheduler and every member in the
//! rules with its weight (0 = draining: kept, but no new connections).

use std::collections::BTreeMap;
use std::net::SocketAddrV4;

use serde::{Deserialize, Serialize};

use super::spec::Scheduler;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LbRules {
    pub vip: SocketAddrV4,
    pub scheduler: Scheduler,
    pub members: BTreeMap<SocketAddrV4, u32>,
}

impl LbRules {
    /// Members that take new connections, with the weight a scheduler uses
    /// (`rr` ignores weights, like IPVS).
    pub fn serving(&self) -> Vec<(SocketAddrV4, u32)> {
        self.members
            .iter()
            .filter(|(_, w)| **w > 0)
            .map(|(a, w)| match self.scheduler {
                Scheduler::Rr | Scheduler::Lc | Scheduler::Sh | Scheduler::Dh => (*a, 1),
                Scheduler::Wrr | Scheduler::Wlc => (*a, *w),
            })
            .collect()
    }

    /// The rules as traffic sees them: weights as the scheduler uses them
    /// (see [`LbRules::serving`]), draining members with 0. Backends read
    /// back effective rules.
    pub fn effective(&self) -> LbRules {
        let mut members: BTreeMap<SocketAddrV4, u32> =
            self.draining().into_iter().map(|a| (a, 0)).collect();
        members.extend(self.serving());
        LbRules {
            members,
            ..self.clone()
        }
    }

    /// Members kept with weight 0.
    pub fn draining(&self) -> Vec<SocketAddrV4> {
        self.members
            .iter()
            .filter(|(_, w)| **w == 0)
            .map(|(a, _)| *a)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rr_ignores_weights_and_weight_zero_does_not_serve() {
        let a: SocketAddrV4 = "10.0.0.2:6443".parse().unwrap();
        let b: SocketAddrV4 = "10.0.0.3:6443".parse().unwrap();
        let c: SocketAddrV4 = "10.0.0.4:6443".parse().unwrap();
        let mut r = LbRules {
            vip: super::super::DEFAULT_VIP,
            scheduler: Scheduler::Rr,
            members: [(a, 3), (b, 0), (c, 1)].into_iter().collect(),
        };
        assert_eq!(r.serving(), vec![(a, 1), (c, 1)]);
        assert_eq!(r.draining(), vec![b]);
        assert_eq!(
            r.effective().members.into_iter().collect::<Vec<_>>(),
            vec![(a, 1), (b, 0), (c, 1)]
        );
        r.scheduler = Scheduler::Wrr;
        assert_eq!(r.serving(), vec![(a, 3), (c, 1)]);
        assert_eq!(r.effective(), r);
    }
}
