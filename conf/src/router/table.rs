//! One host table: a segment trie of path patterns with per-method route lists at its nodes.
//!
//! Nodes live in one `Vec` and refer to each other by index, so a table is a few flat
//! allocations that workers only read. A node has static children (hash map keyed by the raw
//! segment bytes), at most one `{param}` child, and two endpoint lists: routes whose exact
//! pattern ends here, and routes whose prefix pattern ends here.

use super::RouteMatch;
use crate::pattern::{PathPattern, Segment, MAX_PARAMS};
use std::collections::HashMap;

/// What a matched pattern resolves to: the route and, per capture position, the index of the
/// param's name among the route's names.
#[derive(Debug, Clone, Copy)]
pub(super) struct Leaf {
    pub route: usize,
    pub names: [u16; MAX_PARAMS],
}

/// Routes ending at one node, by method. A linear scan: a path has a handful of methods, and
/// their number does not grow with the number of routes elsewhere.
#[derive(Debug, Default)]
struct Endpoints {
    by_method: Vec<(Box<[u8]>, Leaf)>,
    any: Option<Leaf>,
}

impl Endpoints {
    /// A route listing the method beats one accepting any method.
    fn pick(&self, method: &[u8]) -> Option<&Leaf> {
        self.by_method
            .iter()
            .find(|(m, _)| **m == *method)
            .map(|(_, leaf)| leaf)
            .or(self.any.as_ref())
    }

    /// First claim wins; validation reports any second one as a conflict.
    fn insert(&mut self, method: Option<&str>, leaf: Leaf) {
        match method {
            None => {
                self.any.get_or_insert(leaf);
            }
            Some(m) => {
                if !self.by_method.iter().any(|(x, _)| **x == *m.as_bytes()) {
                    self.by_method.push((m.as_bytes().into(), leaf));
                }
            }
        }
    }
}

#[derive(Debug, Default)]
struct Node {
    statics: HashMap<Box<[u8]>, usize>,
    param: Option<usize>,
    exact: Endpoints,
    prefix: Endpoints,
}

/// A segment trie; node 0 is the root (the position right after the path's leading '/').
#[derive(Debug)]
pub(super) struct Table {
    nodes: Vec<Node>,
}

impl Default for Table {
    fn default() -> Self {
        Table {
            nodes: vec![Node::default()],
        }
    }
}

/// Splits the segment starting at `pos`: (segment, offset of its end).
fn segment_at(path: &[u8], pos: usize) -> (&[u8], usize) {
    let rest = path.get(pos..).unwrap_or(&[]);
    let len = rest.iter().position(|&b| b == b'/').unwrap_or(rest.len());
    let (seg, _) = rest.split_at(len);
    (seg, pos + len)
}

impl Table {
    fn child(&mut self, at: usize, seg: &Segment) -> usize {
        let next = self.nodes.len();
        let Some(node) = self.nodes.get_mut(at) else {
            return 0;
        };
        let child = match seg {
            Segment::Static(s) => *node.statics.entry(s.as_bytes().into()).or_insert(next),
            Segment::Param(_) => *node.param.get_or_insert(next),
        };
        if child == next {
            self.nodes.push(Node::default());
        }
        child
    }

    pub(super) fn insert(&mut self, pattern: &PathPattern, method: Option<&str>, leaf: Leaf) {
        let mut at = 0;
        for seg in &pattern.segments {
            at = self.child(at, seg);
        }
        if let Some(node) = self.nodes.get_mut(at) {
            let endpoints = if pattern.prefix {
                &mut node.prefix
            } else {
                &mut node.exact
            };
            endpoints.insert(method, leaf);
        }
    }

    /// Exact patterns first, then the longest prefix. `path` starts with '/'.
    pub(super) fn find(
        &self,
        method: &[u8],
        path: &[u8],
        out: &mut RouteMatch,
        visits: &mut u32,
    ) -> bool {
        let mut caps = [(0u32, 0u32); MAX_PARAMS];
        let walk = Walk {
            table: self,
            method,
            path,
        };
        if let Some((leaf, n)) = walk.exact(0, 1, &mut caps, 0, visits) {
            out.route = leaf.route;
            out.n_params = n;
            out.prefix_len = 0;
            for ((slot, name), (start, len)) in
                out.params.iter_mut().zip(leaf.names).zip(caps).take(n)
            {
                *slot = (name, start, len);
            }
            return true;
        }
        if let Some((leaf, prefix_len)) = walk.prefix(visits) {
            out.route = leaf.route;
            out.n_params = 0;
            out.prefix_len = prefix_len;
            return true;
        }
        false
    }
}

/// One lookup in one table.
struct Walk<'a> {
    table: &'a Table,
    method: &'a [u8],
    path: &'a [u8],
}

impl<'a> Walk<'a> {
    /// Depth-first over the trie from `node`, the segment at `pos` next; static child before
    /// param child, backtracking when a branch has no route. Recursion depth is bounded by the
    /// deepest pattern (pattern::MAX_SEGMENTS), not by the request.
    fn exact(
        &self,
        node: usize,
        pos: usize,
        caps: &mut [(u32, u32); MAX_PARAMS],
        n: usize,
        visits: &mut u32,
    ) -> Option<(&'a Leaf, usize)> {
        *visits += 1;
        let here = self.table.nodes.get(node)?;
        let (seg, end) = segment_at(self.path, pos);
        if let Some(&child) = here.statics.get(seg) {
            if let Some(hit) = self.descend(child, end, caps, n, visits) {
                return Some(hit);
            }
        }
        if let (Some(child), false) = (here.param, seg.is_empty()) {
            if let Some(slot) = caps.get_mut(n) {
                // Both fit in u32: find() rejects longer paths.
                *slot = (pos as u32, seg.len() as u32);
                return self.descend(child, end, caps, n + 1, visits);
            }
        }
        None
    }

    /// Enters `child` after a segment ending at `end`: the match ends there if the path does.
    fn descend(
        &self,
        child: usize,
        end: usize,
        caps: &mut [(u32, u32); MAX_PARAMS],
        n: usize,
        visits: &mut u32,
    ) -> Option<(&'a Leaf, usize)> {
        if end < self.path.len() {
            return self.exact(child, end + 1, caps, n, visits);
        }
        *visits += 1;
        let leaf = self.table.nodes.get(child)?.exact.pick(self.method)?;
        Some((leaf, n))
    }

    /// Follows static children as far as the path goes, keeping the deepest node with a prefix
    /// route for the method: (leaf, bytes of the path the prefix covers).
    fn prefix(&self, visits: &mut u32) -> Option<(&'a Leaf, usize)> {
        let mut node = self.table.nodes.first()?;
        *visits += 1;
        let mut best = node.prefix.pick(self.method).map(|leaf| (leaf, 0));
        let mut pos = 1;
        loop {
            let (seg, end) = segment_at(self.path, pos);
            let Some(next) = node.statics.get(seg).and_then(|&c| self.table.nodes.get(c)) else {
                break;
            };
            *visits += 1;
            node = next;
            if let Some(leaf) = node.prefix.pick(self.method) {
                best = Some((leaf, end));
            }
            if end >= self.path.len() {
                break;
            }
            pos = end + 1;
        }
        best
    }
}
