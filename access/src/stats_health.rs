//! The upstream health part of `/metrics`: each node's state, ejections, and each upstream's
//! retries and retry-budget refusals. Read from the served snapshot's shared health tables
//! (atomics every core writes), so nothing is summed over workers here.

use business::Snapshot;
use components::health::clock_ms;
use std::fmt::Write;

pub fn render(o: &mut String, snap: &Snapshot) {
    let now = clock_ms();
    let ups = &snap.upstreams;
    let _ = writeln!(
        o,
        "# HELP gatehouse_upstream_node_healthy 1 when the node takes traffic, else 0 (state says why)."
    );
    let _ = writeln!(o, "# TYPE gatehouse_upstream_node_healthy gauge");
    for u in ups {
        for (i, a) in u.addrs.iter().enumerate() {
            let st = u.res.health.state(i, now);
            let up = u8::from(st == components::health::NodeState::Healthy);
            let _ = writeln!(
                o,
                "gatehouse_upstream_node_healthy{{upstream=\"{}\",node=\"{a}\",state=\"{}\"}} {up}",
                u.id,
                st.as_str()
            );
        }
    }
    let _ = writeln!(
        o,
        "# HELP gatehouse_upstream_node_ejections_total Outlier ejections of the node."
    );
    let _ = writeln!(o, "# TYPE gatehouse_upstream_node_ejections_total counter");
    for u in ups {
        for (i, a) in u.addrs.iter().enumerate() {
            let _ = writeln!(
                o,
                "gatehouse_upstream_node_ejections_total{{upstream=\"{}\",node=\"{a}\"}} {}",
                u.id,
                u.res.health.ejections(i)
            );
        }
    }
    for (name, help, get) in [
        (
            "gatehouse_upstream_retries_total",
            "Retries of failed tries on another node.",
            (|h: &components::health::UpstreamHealth| h.retries()) as fn(&_) -> u64,
        ),
        (
            "gatehouse_upstream_retry_budget_exhausted_total",
            "Retries refused because the upstream's retry budget was spent.",
            |h: &components::health::UpstreamHealth| h.budget_exhausted(),
        ),
    ] {
        let _ = writeln!(o, "# HELP {name} {help}");
        let _ = writeln!(o, "# TYPE {name} counter");
        for u in ups {
            let _ = writeln!(o, "{name}{{upstream=\"{}\"}} {}", u.id, get(&u.res.health));
        }
    }
}
