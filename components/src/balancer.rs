//! Smooth weighted round-robin (the nginx algorithm): every pick raises each node's current
//! weight by its weight and takes the highest, then lowers the winner by the total. Picks
//! spread evenly (weights 5,1,1 give a,a,b,a,c,a,a rather than a,a,a,a,a,b,c), and a pick
//! costs one pass over the nodes with no allocation.

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
