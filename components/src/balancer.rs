//! Picking a node of an upstream: which nodes may be picked (health, backups, fail-open, the
//! nodes a retry already tried), then how one is chosen among them.
//!
//! - Smooth weighted round-robin (the nginx algorithm): every pick raises each node's current
//!   weight by its weight and takes the highest, then lowers the winner by the total. Picks
//!   spread evenly (weights 5,1,1 give a,a,b,a,c,a,a rather than a,a,a,a,a,b,c).
//! - Least request: two random candidates, the one with fewer requests in flight per weight
//!   wins (power of two choices: nearly as good as the global minimum, without a scan or a
//!   herd on one node).
//! - Consistent hash: see [`crate::balancer_hash`].
//!
//! The round-robin positions and the random state are per core; the health table and the
//! ring are shared read-only. A pick costs a pass over the nodes at most, with no allocation.

use crate::balancer_hash::Ring;
use crate::health::UpstreamHealth;

/// The balancing algorithm of an upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Kind {
    #[default]
    RoundRobin,
    LeastRequest,
    ConsistentHash,
}

/// Everything a pick looks at besides the per-core state.
pub struct Choice<'a> {
    pub kind: Kind,
    pub health: &'a UpstreamHealth,
    /// The ring of a consistent-hash upstream.
    pub ring: Option<&'a Ring>,
    /// The request's hash key; a consistent-hash request without one goes round-robin.
    pub key: Option<u64>,
    /// When no node is up: pick among all of them instead of none.
    pub fail_open: bool,
    /// Nodes this request already tried (bit i = node i; nodes past 63 are not tracked).
    pub tried: u64,
    /// `crate::health::clock_ms`.
    pub now: u64,
}

/// Picks a node: up primaries first, then up backups, then (fail-open) any node; never one
/// the request already tried. `None` when nothing is left.
pub fn pick(wrr: &mut Wrr, rng: &mut u64, c: &Choice) -> Option<usize> {
    let untried = |i: usize| i >= 64 || c.tried & (1 << i) == 0;
    let h = c.health;
    let primary = |i: usize| untried(i) && !h.is_backup(i) && h.is_up(i, c.now);
    if let Some(n) = pick_among(wrr, rng, c, primary) {
        return Some(n);
    }
    let backup = |i: usize| untried(i) && h.is_backup(i) && h.is_up(i, c.now);
    if let Some(n) = pick_among(wrr, rng, c, backup) {
        return Some(n);
    }
    if c.fail_open {
        let primary_any = |i: usize| untried(i) && !h.is_backup(i);
        return pick_among(wrr, rng, c, primary_any).or_else(|| pick_among(wrr, rng, c, untried));
    }
    None
}

fn pick_among(
    wrr: &mut Wrr,
    rng: &mut u64,
    c: &Choice,
    usable: impl Fn(usize) -> bool,
) -> Option<usize> {
    match (c.kind, c.ring, c.key) {
        (Kind::ConsistentHash, Some(ring), Some(key)) => ring.pick_where(key, usable),
        (Kind::LeastRequest, _, _) => least_request(wrr, rng, c.health, usable),
        _ => wrr.pick_where(usable),
    }
}

fn least_request(
    wrr: &Wrr,
    rng: &mut u64,
    h: &UpstreamHealth,
    usable: impl Fn(usize) -> bool,
) -> Option<usize> {
    let n = wrr.len();
    let mut random_usable = |other: Option<usize>| {
        let start = (next_random(rng) % n.max(1) as u64) as usize;
        (0..n)
            .map(|k| (start + k) % n)
            .find(|&i| Some(i) != other && usable(i))
    };
    // Two distinct candidates when there are two.
    let a = random_usable(None)?;
    let b = random_usable(Some(a)).unwrap_or(a);
    // Fewer in flight per unit of weight wins: a_load / a_w < b_load / b_w.
    let (la, lb) = (h.in_flight(a) as u64, h.in_flight(b) as u64);
    let (wa, wb) = (wrr.weight(a).max(1) as u64, wrr.weight(b).max(1) as u64);
    Some(if lb * wa < la * wb { b } else { a })
}

/// xorshift64*: a cheap per-core generator (state never 0).
pub fn next_random(state: &mut u64) -> u64 {
    let mut x = if *state == 0 {
        0x9e37_79b9_7f4a_7c15
    } else {
        *state
    };
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    x.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

/// Per-core balancer state of one upstream.
#[derive(Clone, Debug, Default)]
pub struct Wrr {
    weights: Vec<i64>,
    current: Vec<i64>,
    total: i64,
}

impl Wrr {
    pub fn new(weights: &[u32]) -> Wrr {
        let weights: Vec<i64> = weights.iter().map(|&w| w.max(1) as i64).collect();
        let total = weights.iter().sum();
        Wrr {
            current: vec![0; weights.len()],
            weights,
            total,
        }
    }

    pub fn len(&self) -> usize {
        self.weights.len()
    }

    /// Node `i`'s weight (1 for a node out of range).
    pub fn weight(&self, i: usize) -> i64 {
        self.weights.get(i).copied().unwrap_or(1)
    }

    pub fn is_empty(&self) -> bool {
        self.weights.is_empty()
    }

    /// The next node, or None for an upstream without nodes.
    pub fn pick(&mut self) -> Option<usize> {
        self.pick_where(|_| true)
    }

    /// The next node among those `usable` accepts (health, or one already tried).
    pub fn pick_where(&mut self, usable: impl Fn(usize) -> bool) -> Option<usize> {
        let mut best: Option<usize> = None;
        let mut total = 0;
        for i in 0..self.weights.len() {
            if !usable(i) {
                continue;
            }
            self.current[i] += self.weights[i];
            total += self.weights[i];
            if best.is_none_or(|b| self.current[i] > self.current[b]) {
                best = Some(i);
            }
        }
        let b = best?;
        self.current[b] -= total;
        Some(b)
    }

    /// The sum of the weights.
    pub fn total(&self) -> i64 {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smooth_sequence() {
        let mut w = Wrr::new(&[5, 1, 1]);
        let seq: Vec<usize> = (0..7).map(|_| w.pick().unwrap()).collect();
        assert_eq!(seq, vec![0, 0, 1, 0, 2, 0, 0]);
    }

    #[test]
    fn proportions_hold() {
        let mut w = Wrr::new(&[3, 2, 1]);
        let mut counts = [0; 3];
        for _ in 0..6000 {
            counts[w.pick().unwrap()] += 1;
        }
        assert_eq!(counts, [3000, 2000, 1000]);
    }

    fn choice(h: &UpstreamHealth) -> Choice<'_> {
        Choice {
            kind: Kind::RoundRobin,
            health: h,
            ring: None,
            key: None,
            fail_open: false,
            tried: 0,
            now: 10,
        }
    }

    #[test]
    fn backups_only_when_every_primary_is_down_then_fail_open() {
        let h = UpstreamHealth::new(&[false, false, true]);
        let (mut w, mut rng) = (Wrr::new(&[1, 1, 1]), 1);
        let c = choice(&h);
        for _ in 0..10 {
            assert_ne!(pick(&mut w, &mut rng, &c), Some(2));
        }
        h.set_check_down(0, true);
        h.set_check_down(1, true);
        assert_eq!(pick(&mut w, &mut rng, &c), Some(2));
        h.set_check_down(2, true);
        assert_eq!(pick(&mut w, &mut rng, &c), None);
        let open = Choice {
            fail_open: true,
            ..choice(&h)
        };
        assert!(matches!(pick(&mut w, &mut rng, &open), Some(0 | 1)));
        // A retry never goes back to a tried node, even failing open.
        let retry = Choice {
            tried: 0b011,
            ..open
        };
        assert_eq!(pick(&mut w, &mut rng, &retry), Some(2));
        let done = Choice {
            tried: 0b111,
            ..choice(&h)
        };
        assert_eq!(pick(&mut w, &mut rng, &done), None);
    }

    #[test]
    fn least_request_prefers_the_less_busy_node() {
        let h = UpstreamHealth::new(&[false, false]);
        let (mut w, mut rng) = (Wrr::new(&[1, 1]), 7);
        let c = Choice {
            kind: Kind::LeastRequest,
            ..choice(&h)
        };
        for _ in 0..5 {
            h.begin(0);
        }
        let mut counts = [0; 2];
        for _ in 0..1000 {
            counts[pick(&mut w, &mut rng, &c).unwrap_or(0)] += 1;
        }
        // Two nodes: both are always the candidates, and the idle one wins.
        assert_eq!(counts, [0, 1000]);
    }

    #[test]
    fn consistent_hash_keeps_a_key_and_skips_down_nodes() {
        let addrs: Vec<std::net::SocketAddr> = (1..=3)
            .map(|i| std::net::SocketAddr::from(([127, 0, 0, i], 80)))
            .collect();
        let ring = Ring::new(&addrs, &[1, 1, 1]);
        let h = UpstreamHealth::new(&[false; 3]);
        let (mut w, mut rng) = (Wrr::new(&[1, 1, 1]), 1);
        let c = Choice {
            kind: Kind::ConsistentHash,
            ring: Some(&ring),
            key: Some(crate::balancer_hash::hash_bytes(b"alice")),
            ..choice(&h)
        };
        let first = pick(&mut w, &mut rng, &c);
        for _ in 0..10 {
            assert_eq!(pick(&mut w, &mut rng, &c), first);
        }
        let node = first.unwrap_or(0);
        h.set_check_down(node, true);
        let other = pick(&mut w, &mut rng, &c);
        assert!(other.is_some() && other != first);
    }

    #[test]
    fn skips_unusable_nodes() {
        let mut w = Wrr::new(&[1, 1, 1]);
        for _ in 0..10 {
            assert_ne!(w.pick_where(|i| i != 1), Some(1));
        }
        assert_eq!(w.pick_where(|_| false), None);
        assert_eq!(Wrr::new(&[]).pick(), None);
    }
}
