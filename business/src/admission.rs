//! Concurrency caps: how many requests may be in flight at once on a route (`max_concurrent`)
//! and to an upstream (`max_requests`), counted over the whole node, not per worker.
//!
//! Each capped route or upstream has one shared atomic counter. A request takes a place with
//! one compare-and-swap when the pipeline has picked its route and upstream, and gives it back
//! with one `fetch_sub` when its exchange ends, however it ends. That is one contended cache
//! line per capped resource: a few tens of nanoseconds per request on a busy upstream, paid
//! only where a cap is configured (uncapped resources have no counter and cost nothing), and
//! exact — per-core shares would refuse requests on a busy core while another core's share
//! sits unused, which for small caps (a backend that takes 8 requests at a time) is most of
//! the time. A full counter answers 503 `overloaded` at once: nothing queues.
//!
//! Counters live across config versions: a new snapshot takes over the counter of a route or
//! upstream with the same id, so requests still running on the old version keep counting
//! against the new cap and give their place back to the same counter.

use conf::Config;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// One capped route or upstream.
#[derive(Debug)]
struct Gauge {
    id: String,
    max: u32,
    count: Arc<AtomicU32>,
}

impl Gauge {
    /// Takes a place unless the cap is reached; never goes over it, even for a moment.
    fn take(&self) -> bool {
        let mut cur = self.count.load(Ordering::Relaxed);
        loop {
            if cur >= self.max {
                return false;
            }
            // Relaxed: the counter orders nothing else; it only has to be exact.
            match self.count.compare_exchange_weak(
                cur,
                cur + 1,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(now) => cur = now,
            }
        }
    }

    fn give(&self) {
        self.count.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Which cap refused a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Full {
    Route,
    Upstream,
}

/// The places one request holds, to give back when it ends. `Copy` and allocation-free, so
/// it sits in the per-request exchange.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Held {
    route: Option<u32>,
    upstream: Option<u32>,
}

impl Held {
    /// Holds nothing.
    pub const NONE: Held = Held {
        route: None,
        upstream: None,
    };

    pub fn is_empty(&self) -> bool {
        self.route.is_none() && self.upstream.is_none()
    }
}

/// The counters of one config version, by route and upstream index.
#[derive(Debug, Default)]
pub struct Admission {
    routes: Vec<Option<Gauge>>,
    upstreams: Vec<Option<Gauge>>,
}

impl Admission {
    /// Counters for `config`, taking over those of `prev` by id.
    pub fn build(config: &Config, prev: Option<&Admission>) -> Admission {
        let carry = |list: Option<&Vec<Option<Gauge>>>, id: &str, max: Option<u32>| {
            let max = max?;
            let count = list
                .into_iter()
                .flatten()
                .flatten()
                .find(|g| g.id == id)
                .map_or_else(|| Arc::new(AtomicU32::new(0)), |g| g.count.clone());
            Some(Gauge {
                id: id.to_string(),
                max,
                count,
            })
        };
        Admission {
            routes: config
                .routes
                .iter()
                .map(|r| carry(prev.map(|p| &p.routes), &r.id, r.max_concurrent))
                .collect(),
            upstreams: config
                .upstreams
                .iter()
                .map(|u| carry(prev.map(|p| &p.upstreams), &u.id, u.max_requests))
                .collect(),
        }
    }

    /// Takes a place on route `route` and upstream `upstream` (indexes of this version), or
    /// says which cap is full (holding nothing then).
    pub fn acquire(&self, route: usize, upstream: usize) -> Result<Held, Full> {
        let mut held = Held::NONE;
        if let Some(Some(g)) = self.routes.get(route) {
            if !g.take() {
                return Err(Full::Route);
            }
            held.route = Some(route as u32);
        }
        if let Some(Some(g)) = self.upstreams.get(upstream) {
            if !g.take() {
                self.release(held);
                return Err(Full::Upstream);
            }
            held.upstream = Some(upstream as u32);
        }
        Ok(held)
    }

    /// Gives back the places `held` took on this version.
    pub fn release(&self, held: Held) {
        for (list, i) in [(&self.routes, held.route), (&self.upstreams, held.upstream)] {
            if let Some(Some(g)) = i.and_then(|i| list.get(i as usize)) {
                g.give();
            }
        }
    }

    /// Requests in flight on route `route` (0 when it has no cap).
    pub fn route_in_flight(&self, route: usize) -> u32 {
        match self.routes.get(route) {
            Some(Some(g)) => g.count.load(Ordering::Relaxed),
            _ => 0,
        }
    }

    /// Requests in flight to upstream `upstream` (0 when it has no cap).
    pub fn upstream_in_flight(&self, upstream: usize) -> u32 {
        match self.upstreams.get(upstream) {
            Some(Some(g)) => g.count.load(Ordering::Relaxed),
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(route_cap: Option<u32>, upstream_cap: Option<u32>) -> Config {
        let mut c = Config::default();
        c.upstreams.push(conf::model::Upstream {
            id: "u".into(),
            max_requests: upstream_cap,
            ..Default::default()
        });
        c.routes.push(conf::model::Route {
            id: "r".into(),
            upstream: "u".into(),
            max_concurrent: route_cap,
            ..Default::default()
        });
        c
    }

    #[test]
    fn caps_hold_and_places_come_back() {
        let a = Admission::build(&config(Some(2), Some(3)), None);
        let h1 = a.acquire(0, 0).unwrap();
        let h2 = a.acquire(0, 0).unwrap();
        assert_eq!(a.acquire(0, 0), Err(Full::Route));
        // A refused request holds nothing.
        assert_eq!((a.route_in_flight(0), a.upstream_in_flight(0)), (2, 2));
        a.release(h1);
        let h3 = a.acquire(0, 0).unwrap();
        a.release(h2);
        a.release(h3);
        assert_eq!((a.route_in_flight(0), a.upstream_in_flight(0)), (0, 0));
    }

    #[test]
    fn upstream_cap_refuses_and_gives_the_route_place_back() {
        let a = Admission::build(&config(Some(5), Some(1)), None);
        let h = a.acquire(0, 0).unwrap();
        assert_eq!(a.acquire(0, 0), Err(Full::Upstream));
        assert_eq!(a.route_in_flight(0), 1);
        a.release(h);
        assert_eq!(a.route_in_flight(0), 0);
    }

    #[test]
    fn uncapped_resources_hold_nothing_and_out_of_range_is_harmless() {
        let a = Admission::build(&config(None, None), None);
        let h = a.acquire(0, 0).unwrap();
        assert!(h.is_empty());
        assert!(a.acquire(7, 9).unwrap().is_empty());
        a.release(Held::NONE);
    }

    #[test]
    fn a_new_version_takes_over_the_counters_by_id() {
        let old = Admission::build(&config(Some(1), None), None);
        let h = old.acquire(0, 0).unwrap();
        let new = Admission::build(&config(Some(1), Some(4)), Some(&old));
        // The request still running on the old version fills the route on the new one.
        assert_eq!(new.acquire(0, 0), Err(Full::Route));
        old.release(h);
        let h2 = new.acquire(0, 0).unwrap();
        assert_eq!(new.upstream_in_flight(0), 1);
        new.release(h2);
    }

    #[test]
    fn many_threads_never_pass_the_cap() {
        let a = Arc::new(Admission::build(&config(None, Some(4)), None));
        let peak = Arc::new(AtomicU32::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (a, peak) = (a.clone(), peak.clone());
                std::thread::spawn(move || {
                    for _ in 0..20_000 {
                        if let Ok(h) = a.acquire(0, 0) {
                            peak.fetch_max(a.upstream_in_flight(0), Ordering::Relaxed);
                            a.release(h);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(peak.load(Ordering::Relaxed) <= 4);
        assert_eq!(a.upstream_in_flight(0), 0);
    }
}
