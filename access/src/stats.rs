//! Per-core counters for `/metrics`, summed at scrape time.
//!
//! Each worker owns its [`WorkerStats`] and is the only writer of its counters: an increment
//! is a relaxed load and store to a line no other core writes (no locked instruction, no
//! shared write on the request path). The admin thread reads every worker's counters when
//! scraped and adds them up. Per-route counters live in a [`RouteTable`] built for each
//! config version (labels come from configured routes, never from request data); when a
//! worker adopts a new version it builds the new table off the request path, carrying the
//! counts of routes that kept their id, and publishes it for the scraper under a lock only
//! the swap and the scrape take.

use business::release::{ReleaseCounters, Side, Totals};
use business::{Context, Snapshot};
use parking_lot::Mutex;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};

/// Upper bounds (µs) of the latency histogram buckets; a last bucket takes the rest.
pub const LATENCY_BUCKETS_US: [u64; 14] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 5_000_000,
];

/// The `error.code`s of the gateway's own answers (protocols::error), in label order.
pub const CODES: [&str; 17] = [
    "bad_request",
    "bad_parameter",
    "auth_failed",
    "forbidden",
    "no_route",
    "client_timeout",
    "body_too_large",
    "uri_too_long",
    "headers_too_large",
    "rate_limited",
    "unknown_transfer_coding",
    "upstream_failed",
    "no_healthy_upstream",
    "circuit_open",
    "overloaded",
    "upstream_timeout",
    "internal",
];

/// A counter with one writer.
#[derive(Default)]
pub struct Counter(AtomicU64);

impl Counter {
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.store(self.0.load(Relaxed).wrapping_add(n), Relaxed);
    }

    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }

    pub fn set(&self, v: u64) {
        self.0.store(v, Relaxed);
    }
}

/// A latency histogram in µs.
#[derive(Default)]
pub struct Histogram {
    buckets: [Counter; LATENCY_BUCKETS_US.len() + 1],
    sum_us: Counter,
}

impl Histogram {
    #[inline]
    pub fn observe(&self, us: u64) {
        let i = LATENCY_BUCKETS_US
            .iter()
            .position(|&b| us <= b)
            .unwrap_or(LATENCY_BUCKETS_US.len());
        self.buckets[i].inc();
        self.sum_us.add(us);
    }

    fn carry(&self, from: &Histogram) {
        for (a, b) in self.buckets.iter().zip(&from.buckets) {
            a.set(b.get());
        }
        self.sum_us.set(from.sum_us.get());
    }
}

/// Counters of one route on one worker.
#[derive(Default)]
pub struct RouteStats {
    pub route: String,
    pub upstream: String,
    /// Answers by status class 1xx..5xx.
    pub classes: [Counter; 5],
    /// Request head complete to answer relayed.
    pub latency: Histogram,
    /// Request sent upstream to the answer's head.
    pub upstream_latency: Histogram,
}

impl RouteStats {
    #[inline]
    pub fn count(&self, status: u16) {
        let class = (status / 100).clamp(1, 5) as usize - 1;
        self.classes[class].inc();
    }

    fn carry(&self, from: &RouteStats) {
        for (a, b) in self.classes.iter().zip(&from.classes) {
            a.set(b.get());
        }
        self.latency.carry(&from.latency);
        self.upstream_latency.carry(&from.upstream_latency);
    }
}

/// The per-route counters of one config version on one worker.
pub struct RouteTable {
    pub version: u64,
    /// By route index in that version's config.
    pub routes: Vec<RouteStats>,
    /// By release index in that version's pipeline: each side's answers (docs/releases.md).
    pub releases: Vec<ReleaseCounters>,
}

impl RouteTable {
    fn build(snap: &Snapshot, old: Option<&RouteTable>) -> RouteTable {
        let routes: Vec<RouteStats> = snap
            .config
            .routes
            .iter()
            .map(|r| {
                let s = RouteStats {
                    route: r.id.clone(),
                    upstream: r.upstream.clone(),
                    ..Default::default()
                };
                if let Some(prev) = old.and_then(|o| o.routes.iter().find(|p| p.route == r.id)) {
                    s.carry(prev);
                }
                s
            })
            .collect();
        let releases = snap
            .pipeline
            .releases
            .iter()
            .map(|r| {
                let c = ReleaseCounters::new(&r.id, r.since);
                if let Some(prev) = old.and_then(|o| {
                    o.releases
                        .iter()
                        .find(|p| p.id == r.id && p.since == r.since)
                }) {
                    c.carry(prev);
                }
                c
            })
            .collect();
        RouteTable {
            version: snap.version,
            routes,
            releases,
        }
    }

    /// Counts an answer on the release side that served it, if the request went through a
    /// release and ran on this table's version.
    #[inline]
    pub fn count_release(&self, ctx: &Context, version: u64, status: u16, latency_us: u64) {
        if version != self.version {
            return;
        }
        if let Some(m) = ctx.release {
            if let Some(r) = self.releases.get(usize::from(m.index)) {
                r.count(m.side, status, latency_us);
            }
        }
    }
}

/// Counts the answer of an exchange on the release side that served it (see
/// [`RouteTable::count_release`]); `version` is the version the request ran on.
#[inline]
pub(crate) fn count_release(
    env: &crate::http::Env,
    ex: &crate::session::Exchange,
    version: u64,
    status: u16,
) {
    let us = env.now_us.saturating_sub(ex.started_us);
    env.routes.count_release(&ex.ctx, version, status, us);
}

/// Answers of requests under gray releases, by release, side and status class, summed over
/// the workers' tables (docs/releases.md).
fn render_releases(o: &mut String, tables: &[Arc<RouteTable>]) {
    let mut releases: Vec<(&str, u64)> = Vec::new();
    for r in tables.iter().flat_map(|t| t.releases.iter()) {
        if !releases.contains(&(r.id.as_str(), r.since)) {
            releases.push((r.id.as_str(), r.since));
        }
    }
    let _ = writeln!(
        o,
        "# HELP gatehouse_release_requests_total Answers of requests under a gray release, by \
         release, side and status class."
    );
    let _ = writeln!(o, "# TYPE gatehouse_release_requests_total counter");
    for (id, since) in releases {
        let mut t = Totals::default();
        for r in tables
            .iter()
            .flat_map(|t| t.releases.iter())
            .filter(|r| r.id == id && r.since == since)
        {
            r.add_to(&mut t);
        }
        for side in [Side::Stable, Side::Candidate] {
            for (c, class) in ["1xx", "2xx", "3xx", "4xx", "5xx"].iter().enumerate() {
                let _ = writeln!(
                    o,
                    "gatehouse_release_requests_total{{release=\"{}\",side=\"{}\",class=\"{class}\"}} {}",
                    escape(id),
                    side.name(),
                    t.side(side).classes[c]
                );
            }
        }
    }
}

/// Every worker's counts of release `id` (as started at version `since`), summed.
pub fn release_totals(id: &str, since: u64) -> Totals {
    let workers: Vec<Arc<WorkerStats>> = registry().workers.lock().clone();
    let mut t = Totals::default();
    for w in &workers {
        let table = w.table.lock().clone();
        for r in table
            .releases
            .iter()
            .filter(|r| r.id == id && r.since == since)
        {
            r.add_to(&mut t);
        }
    }
    t
}

/// Everything one worker counts.
pub struct WorkerStats {
    pub worker: usize,
    pub accepted: Counter,
    /// Open client connections (a gauge written by the worker).
    pub sessions: Counter,
    /// The gateway's own answers, by [`CODES`].
    pub answers: [Counter; CODES.len()],
    pub pool_idle: Counter,
    pub pool_busy: Counter,
    pub pool_connects: Counter,
    pub config_version: Counter,
    /// Access-log lines dropped because the log queue was full.
    pub log_dropped: Counter,
    /// WebSocket tunnels open now (a gauge) and opened in all.
    pub ws_open: Counter,
    pub ws_opened: Counter,
    /// Frames and bytes through tunnels: [client to upstream, upstream to client].
    pub ws_frames: [Counter; 2],
    pub ws_bytes: [Counter; 2],
    /// 1 while the memory guard sheds load on this worker (docs/overload.md).
    pub shedding: Counter,
    table: Mutex<Arc<RouteTable>>,
}

impl WorkerStats {
    /// Registers a worker's counters and returns them with its first route table.
    pub fn register(worker: usize, snap: &Snapshot) -> (Arc<WorkerStats>, Arc<RouteTable>) {
        let table = Arc::new(RouteTable::build(snap, None));
        let ws = Arc::new(WorkerStats {
            worker,
            accepted: Counter::default(),
            sessions: Counter::default(),
            answers: Default::default(),
            pool_idle: Counter::default(),
            pool_busy: Counter::default(),
            pool_connects: Counter::default(),
            config_version: Counter::default(),
            log_dropped: Counter::default(),
            ws_open: Counter::default(),
            ws_opened: Counter::default(),
            ws_frames: Default::default(),
            ws_bytes: Default::default(),
            shedding: Counter::default(),
            table: Mutex::new(table.clone()),
        });
        ws.config_version.set(snap.version);
        registry().workers.lock().push(ws.clone());
        (ws, table)
    }

    /// A new config version: builds its table carrying the counts of routes that kept their
    /// id, and publishes it for the scraper.
    pub fn swap(&self, snap: &Snapshot, old: &RouteTable) -> Arc<RouteTable> {
        let table = Arc::new(RouteTable::build(snap, Some(old)));
        *self.table.lock() = table.clone();
        self.config_version.set(snap.version);
        table
    }

    /// Counts a gateway answer by its code.
    #[inline]
    pub fn answered(&self, code: &str) {
        if let Some(i) = CODES.iter().position(|c| *c == code) {
            self.answers[i].inc();
        }
    }

    /// The worker leaves (stopped): its counters stop being scraped.
    pub fn unregister(self: &Arc<Self>) {
        registry().workers.lock().retain(|w| !Arc::ptr_eq(w, self));
    }
}

/// Every worker's counters.
#[derive(Default)]
pub struct Registry {
    workers: Mutex<Vec<Arc<WorkerStats>>>,
}

/// The process's registry.
pub fn registry() -> &'static Registry {
    static R: OnceLock<Registry> = OnceLock::new();
    R.get_or_init(Registry::default)
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The Prometheus text exposition (format 0.0.4) of every worker's counters, summed.
pub fn render() -> String {
    let workers: Vec<Arc<WorkerStats>> = registry().workers.lock().clone();
    let tables: Vec<Arc<RouteTable>> = workers.iter().map(|w| w.table.lock().clone()).collect();
    let mut o = String::with_capacity(4096);
    let sum = |f: &dyn Fn(&WorkerStats) -> u64| workers.iter().map(|w| f(w)).sum::<u64>();

    let _ = writeln!(
        o,
        "# HELP gatehouse_config_version Config version served (lowest across workers)."
    );
    let _ = writeln!(o, "# TYPE gatehouse_config_version gauge");
    let v = workers
        .iter()
        .map(|w| w.config_version.get())
        .min()
        .unwrap_or(0);
    let _ = writeln!(o, "gatehouse_config_version {v}");

    let _ = writeln!(
        o,
        "# HELP gatehouse_connections_accepted_total Client connections accepted, per worker."
    );
    let _ = writeln!(o, "# TYPE gatehouse_connections_accepted_total counter");
    for w in &workers {
        let _ = writeln!(
            o,
            "gatehouse_connections_accepted_total{{worker=\"{}\"}} {}",
            w.worker,
            w.accepted.get()
        );
    }
    let _ = writeln!(
        o,
        "# HELP gatehouse_connections_open Open client connections, per worker."
    );
    let _ = writeln!(o, "# TYPE gatehouse_connections_open gauge");
    for w in &workers {
        let _ = writeln!(
            o,
            "gatehouse_connections_open{{worker=\"{}\"}} {}",
            w.worker,
            w.sessions.get()
        );
    }

    let _ = writeln!(
        o,
        "# HELP gatehouse_memory_shedding 1 while the worker sheds load over server.max_memory_mb."
    );
    let _ = writeln!(o, "# TYPE gatehouse_memory_shedding gauge");
    for w in &workers {
        let _ = writeln!(
            o,
            "gatehouse_memory_shedding{{worker=\"{}\"}} {}",
            w.worker,
            w.shedding.get()
        );
    }

    // Requests by route, status class and upstream, summed over workers by route id.
    let mut routes: Vec<(&str, &str)> = Vec::new();
    for t in &tables {
        for r in &t.routes {
            if !routes.iter().any(|(id, _)| *id == r.route) {
                routes.push((&r.route, &r.upstream));
            }
        }
    }
    let find =
        |t: &RouteTable, id: &str| -> Option<usize> { t.routes.iter().position(|r| r.route == id) };
    let _ = writeln!(
        o,
        "# HELP gatehouse_requests_total Requests answered, by route, status class and upstream."
    );
    let _ = writeln!(o, "# TYPE gatehouse_requests_total counter");
    for (id, up) in &routes {
        for (c, class) in ["1xx", "2xx", "3xx", "4xx", "5xx"].iter().enumerate() {
            let n: u64 = tables
                .iter()
                .filter_map(|t| find(t, id).map(|i| t.routes[i].classes[c].get()))
                .sum();
            let _ = writeln!(
                o,
                "gatehouse_requests_total{{route=\"{}\",upstream=\"{}\",class=\"{class}\"}} {n}",
                escape(id),
                escape(up)
            );
        }
    }
    for (name, help, pick) in [
        (
            "gatehouse_request_duration_seconds",
            "Gateway time: request head complete to answer relayed.",
            (|r: &RouteStats| &r.latency) as fn(&RouteStats) -> &Histogram,
        ),
        (
            "gatehouse_upstream_duration_seconds",
            "Upstream time: request sent to answer head received.",
            |r: &RouteStats| &r.upstream_latency,
        ),
    ] {
        let _ = writeln!(o, "# HELP {name} {help}");
        let _ = writeln!(o, "# TYPE {name} histogram");
        for (id, _) in &routes {
            let mut cum = 0u64;
            let hs: Vec<&Histogram> = tables
                .iter()
                .filter_map(|t| find(t, id).map(|i| pick(&t.routes[i])))
                .collect();
            for (b, le) in LATENCY_BUCKETS_US
                .iter()
                .map(|u| *u as f64 / 1e6)
                .chain([f64::INFINITY])
                .enumerate()
            {
                cum += hs.iter().map(|h| h.buckets[b].get()).sum::<u64>();
                let le = if le.is_infinite() {
                    "+Inf".to_string()
                } else {
                    format!("{le}")
                };
                let _ = writeln!(
                    o,
                    "{name}_bucket{{route=\"{}\",le=\"{le}\"}} {cum}",
                    escape(id)
                );
            }
            let sum_s = hs.iter().map(|h| h.sum_us.get()).sum::<u64>() as f64 / 1e6;
            let _ = writeln!(o, "{name}_sum{{route=\"{}\"}} {sum_s}", escape(id));
            let _ = writeln!(o, "{name}_count{{route=\"{}\"}} {cum}", escape(id));
        }
    }

    render_releases(&mut o, &tables);

    let _ = writeln!(o, "# HELP gatehouse_gateway_answers_total Answers the gateway made itself, by error code (module denials, limits, upstream failures).");
    let _ = writeln!(o, "# TYPE gatehouse_gateway_answers_total counter");
    for (i, code) in CODES.iter().enumerate() {
        let _ = writeln!(
            o,
            "gatehouse_gateway_answers_total{{code=\"{code}\"}} {}",
            sum(&|w| w.answers[i].get())
        );
    }
    for (name, help, kind, pick) in [
        (
            "gatehouse_pool_idle_connections",
            "Idle upstream connections, per worker.",
            "gauge",
            (|w: &WorkerStats| w.pool_idle.get()) as fn(&WorkerStats) -> u64,
        ),
        (
            "gatehouse_pool_busy_connections",
            "Upstream connections carrying a request, per worker.",
            "gauge",
            |w: &WorkerStats| w.pool_busy.get(),
        ),
        (
            "gatehouse_pool_connects_total",
            "Upstream connections opened, per worker.",
            "counter",
            |w: &WorkerStats| w.pool_connects.get(),
        ),
        (
            "gatehouse_access_log_dropped_total",
            "Access-log lines dropped because the log writer fell behind, per worker.",
            "counter",
            |w: &WorkerStats| w.log_dropped.get(),
        ),
    ] {
        let _ = writeln!(o, "# HELP {name} {help}");
        let _ = writeln!(o, "# TYPE {name} {kind}");
        for w in &workers {
            let _ = writeln!(o, "{name}{{worker=\"{}\"}} {}", w.worker, pick(w));
        }
    }
    render_websocket(&mut o, &workers);
    o
}

/// Tunnel counters, summed over workers (docs/websocket.md).
fn render_websocket(o: &mut String, workers: &[Arc<WorkerStats>]) {
    let sum = |f: &dyn Fn(&WorkerStats) -> u64| workers.iter().map(|w| f(w)).sum::<u64>();
    let _ = writeln!(
        o,
        "# HELP gatehouse_websocket_tunnels_open WebSocket tunnels open now."
    );
    let _ = writeln!(o, "# TYPE gatehouse_websocket_tunnels_open gauge");
    let _ = writeln!(
        o,
        "gatehouse_websocket_tunnels_open {}",
        sum(&|w| w.ws_open.get())
    );
    let _ = writeln!(
        o,
        "# HELP gatehouse_websocket_tunnels_total WebSocket tunnels opened (upstream accepted the upgrade)."
    );
    let _ = writeln!(o, "# TYPE gatehouse_websocket_tunnels_total counter");
    let _ = writeln!(
        o,
        "gatehouse_websocket_tunnels_total {}",
        sum(&|w| w.ws_opened.get())
    );
    for (name, help, pick) in [
        (
            "gatehouse_websocket_frames_total",
            "WebSocket frames relayed, by direction.",
            (|w: &WorkerStats, d: usize| w.ws_frames[d].get()) as fn(&WorkerStats, usize) -> u64,
        ),
        (
            "gatehouse_websocket_bytes_total",
            "WebSocket bytes relayed (frame headers and payload), by direction.",
            |w: &WorkerStats, d: usize| w.ws_bytes[d].get(),
        ),
    ] {
        let _ = writeln!(o, "# HELP {name} {help}");
        let _ = writeln!(o, "# TYPE {name} counter");
        for (d, dir) in ["client_to_upstream", "upstream_to_client"]
            .iter()
            .enumerate()
        {
            let _ = writeln!(o, "{name}{{direction=\"{dir}\"}} {}", sum(&|w| pick(w, d)));
        }
    }
}
