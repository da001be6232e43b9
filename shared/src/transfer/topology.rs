//! Relay topologies: how the sender arranges the nodes of a transfer so
//! that each chunk crosses the sender's uplink once. Positions are in
//! pre-order, so a node's subtree is the contiguous range
//! `position..subtree_end`, and a chunk's needs travel as a bitmap of
//! positions ([`Needs`]).

use std::ops::Range;

/// How chunks reach the nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topology {
    /// The sender feeds every node itself.
    Star,
    /// Sender → node 0 → node 1 → …: each node forwards while receiving.
    Chain,
    /// A tree in which every node forwards to at most `degree` children.
    Tree { degree: u32 },
}

impl Topology {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Star => "star",
            Self::Chain => "chain",
            Self::Tree { .. } => "tree",
        }
    }

    /// Children per node (0 for a star, where the sender feeds everyone).
    pub fn degree(&self) -> u32 {
        match self {
            Self::Star => 0,
            Self::Chain => 1,
            Self::Tree { degree } => (*degree).max(1),
        }
    }
}

/// One node of a relay tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeNode {
    pub position: u32,
    pub parent: Option<u32>,
    pub children: Vec<u32>,
    /// One past the last position of this node's subtree.
    pub subtree_end: u32,
}

impl TreeNode {
    pub fn subtree(&self) -> Range<u32> {
        self.position..self.subtree_end
    }
}

/// Hops from the sender to the deepest node of `tree` (laid out by
/// [`layout`]: parents before children): 1 for a single node, n for a chain.
pub fn depth(tree: &[TreeNode]) -> usize {
    let mut d = vec![0usize; tree.len()];
    for (i, t) in tree.iter().enumerate() {
        d[i] = t
            .parent
            .and_then(|p| d.get(p as usize))
            .map_or(1, |p| p + 1);
    }
    d.into_iter().max().unwrap_or(0)
}

/// Lays `n` nodes out as a tree of at most `degree` children per node
/// (1 = a chain), balanced, positions in pre-order. Index = position.
pub fn layout(n: u32, degree: u32) -> Vec<TreeNode> {
    let mut out = Vec::with_capacity(n as usize);
    if n > 0 {
        place(&mut out, 0, n, None, degree.max(1));
    }
    out.sort_by_key(|t| t.position);
    out
}

/// Places a subtree of `count` nodes rooted at `start`.
fn place(out: &mut Vec<TreeNode>, start: u32, count: u32, parent: Option<u32>, degree: u32) {
    let rest = count - 1;
    let k = degree.min(rest);
    let mut children = Vec::new();
    let mut next = start + 1;
    for i in 0..k {
        // Split the rest into k nearly equal contiguous ranges.
        let size = rest / k + u32::from(i < rest % k);
        children.push((next, size));
        next += size;
    }
    out.push(TreeNode {
        position: start,
        parent,
        children: children.iter().map(|c| c.0).collect(),
        subtree_end: start + count,
    });
    for (c, size) in children {
        place(out, c, size, Some(start), degree);
    }
}

/// Which tree positions need a chunk: bit `i % 8` of byte `i / 8`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Needs(pub Vec<u8>);

impl Needs {
    pub fn with_capacity(n: u32) -> Self {
        Self(vec![0; n.div_ceil(8) as usize])
    }

    pub fn set(&mut self, i: u32) {
        let byte = (i / 8) as usize;
        if self.0.len() <= byte {
            self.0.resize(byte + 1, 0);
        }
        self.0[byte] |= 1 << (i % 8);
    }

    pub fn get(&self, i: u32) -> bool {
        self.0
            .get((i / 8) as usize)
            .is_some_and(|b| b & (1 << (i % 8)) != 0)
    }

    /// Whether any position in `r` needs the chunk.
    pub fn any_in(&self, r: Range<u32>) -> bool {
        r.into_iter().any(|i| self.get(i))
    }

    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|b| *b == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_counts_hops_from_the_sender() {
        assert_eq!(depth(&layout(0, 1)), 0);
        assert_eq!(depth(&layout(1, 1)), 1);
        assert_eq!(depth(&layout(16, 1)), 16);
        // Degree 2, 7 nodes: a full binary tree of 3 levels.
        assert_eq!(depth(&layout(7, 2)), 3);
        assert_eq!(depth(&layout(16, 16)), 2);
    }

    #[test]
    fn a_chain_is_a_tree_of_degree_one() {
        let t = layout(4, 1);
        assert_eq!(t.len(), 4);
        for (i, n) in t.iter().enumerate() {
            let i = i as u32;
            assert_eq!(n.position, i);
            assert_eq!(n.parent, i.checked_sub(1));
            assert_eq!(n.subtree(), i..4);
            let want: Vec<u32> = if i < 3 { vec![i + 1] } else { vec![] };
            assert_eq!(n.children, want);
        }
    }

    #[test]
    fn trees_are_balanced_preorder_with_bounded_degree() {
        for n in 1..40u32 {
            for d in 1..5u32 {
                let t = layout(n, d);
                assert_eq!(t.len() as u32, n);
                assert_eq!(t[0].subtree(), 0..n);
                for node in &t {
                    assert!(node.children.len() as u32 <= d);
                    // Children's subtrees tile the parent's subtree.
                    let mut next = node.position + 1;
                    for c in &node.children {
                        let c = &t[*c as usize];
                        assert_eq!(c.position, next);
                        assert_eq!(c.parent, Some(node.position));
                        next = c.subtree_end;
                    }
                    assert_eq!(next, node.subtree_end);
                }
            }
        }
        // 16 nodes in a binary tree: depth at most 4 hops below the root.
        let t = layout(16, 2);
        let depth = |mut p: u32| {
            let mut d = 0;
            while let Some(q) = t[p as usize].parent {
                p = q;
                d += 1;
            }
            d
        };
        assert!((0..16).map(depth).max().unwrap() <= 4);
    }

    #[test]
    fn needs_bitmap() {
        let mut n = Needs::with_capacity(10);
        assert!(n.is_empty());
        n.set(9);
        n.set(17);
        assert!(n.get(9) && n.get(17) && !n.get(8) && !n.get(100));
        assert!(n.any_in(5..10) && !n.any_in(10..17) && n.any_in(10..18));
    }
}
