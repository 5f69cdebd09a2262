#!/usr/bin/env python3
"""Records and summary of `perf/run.sh slowloris` (python3 stdlib only; shares parsing and
arithmetic with harness.py).

For each proxy and round: req/s of a wrk run alone, then of the same run while
slowloris_hold keeps SLOW_CONNS slowloris connections open (re-opening each one the proxy
closes). Each round gives a ratio with/without; the verdict is the median of those ratios:
Gatehouse must keep at least 0.9 of its own figure.

Subcommands:
  record RUNS key=value...      one proxy's pair of runs -> JSON line + table row
  summary RUNS OUT key=value... the table, the ratios and the verdict, JSON summary
  selftest                      checks the arithmetic
"""

import json
import os
import statistics
import sys

import harness
from harness import fmt, ratio

# Gatehouse's requests/s with slowloris connections held, as a share of its own without.
FLOOR = 0.9


def record(runs_path, fields):
    with open(fields["wrk"]) as f:
        w = harness.parse_wrk(f.read())
    with open(fields["base_wrk"]) as f:
        base = harness.parse_wrk(f.read())
    rec = {
        "proxy": fields["proxy"],
        "round": int(fields.get("round") or 1),
        "measured": fields.get("measured", ""),
        "slow_conns": int(fields["slow_conns"]),
        "reopened": int(fields.get("reopened") or 0),
        "still_open": int(fields.get("still_open") or 0),
        "rps": w["rps"],
        "p99_ms": w["p99_us"] / 1e3,
        "rps_without": base["rps"],
        "p99_ms_without": base["p99_us"] / 1e3,
        "socket_errors": w["socket_errors"] + base["socket_errors"],
        "non2xx": w["non2xx"] + base["non2xx"],
        "others_on_proxy_cpu_pct": harness.noise_pct(fields),
        "others_on_proxy_cpu_pct_without": harness.noise_pct(fields, "base_"),
    }
    rec["with_over_without"] = ratio(rec["rps"], rec["rps_without"])
    with open(runs_path, "a") as f:
        f.write(json.dumps(rec) + "\n")
    print(f"{rec['proxy']}: {rec['rps_without']:.0f} req/s alone, {rec['rps']:.0f} req/s with "
          f"{rec['slow_conns']} slowloris connections (x{fmt(rec['with_over_without'], '.3f')}); "
          f"the proxy closed {rec['reopened']} of them meanwhile", flush=True)


def per_proxy(runs):
    """Medians over rounds, per proxy, in first-seen order."""
    out = {}
    for r in runs:
        out.setdefault(r["proxy"], []).append(r)
    agg = []
    for proxy, rs in out.items():
        med = lambda k: statistics.median([x[k] for x in rs if x[k] is not None]) \
            if any(x[k] is not None for x in rs) else None
        agg.append({
            "proxy": proxy, "rounds": len(rs),
            "rps_without": med("rps_without"), "rps": med("rps"),
            "with_over_without": med("with_over_without"), "p99_ms": med("p99_ms"),
            "reopened": sum(x["reopened"] for x in rs), "still_open": min(x["still_open"] for x in rs),
            "socket_errors": sum(x["socket_errors"] for x in rs), "non2xx": sum(x["non2xx"] for x in rs),
            "noise": max(max(x["others_on_proxy_cpu_pct"] or 0, x["others_on_proxy_cpu_pct_without"] or 0)
                         for x in rs),
            "ratios": [x["with_over_without"] for x in rs],
        })
    return agg


def table(runs, meta):
    print(f"\nSlowloris: {meta.get('slow_conns', '?')} connections held (partial head, a byte "
          f"every second, re-opened when closed), header timeout {meta.get('slow_timeout_s', '?')} s; "
          f"wrk -t1 -c{meta.get('conns', '?')} -d{meta.get('duration', '?')}s /100")
    row = "{:<10} {:>11} {:>11} {:>9} {:>11} {:>9} {:>9} {:>7}  {}"
    print(row.format("proxy", "req/s alone", "req/s slow", "slow/alone", "p99 ms slow",
                     "reopened", "open end", "noise%", "notes"))
    print("(medians over rounds; slow/alone is the median of each round's paired ratio)")
    out = {"proxies": {}, "verdict": {}}
    for r in per_proxy(runs):
        out["proxies"][r["proxy"]] = r
        notes = [f"ratios {', '.join(fmt(x, '.3f') for x in r['ratios'])}"]
        if r["socket_errors"]:
            notes.append(f"{r['socket_errors']} socket errors")
        if r["non2xx"]:
            notes.append(f"{r['non2xx']} non-2xx")
        noise = r["noise"]
        print(row.format(r["proxy"], fmt(r["rps_without"], ".0f"), fmt(r["rps"], ".0f"),
                         fmt(r["with_over_without"], ".3f"), fmt(r["p99_ms"], ".3f"),
                         r["reopened"], r["still_open"], fmt(noise, ".1f"), "; ".join(notes)))
        if r["proxy"] == "gatehouse":
            x = r["with_over_without"]
            out["verdict"] = {"gatehouse_with_over_without": x, "floor": FLOOR,
                              "pass": x is not None and x >= FLOOR}
            print(f"gatehouse keeps x{fmt(x, '.3f')} of its req/s under slowloris "
                  f"(floor {FLOOR}): {'PASS' if out['verdict']['pass'] else 'FAIL'}")
    return out


def summary(runs_path, out_path, meta):
    with open(runs_path) as f:
        runs = [json.loads(line) for line in f if line.strip()]
    if not runs:
        raise SystemExit("no runs recorded")
    doc = {"meta": meta, "runs": runs, **table(runs, meta)}
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    with open(out_path, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    print(f"\nsummary written to {out_path}")


def selftest():
    rec = {"proxy": "gatehouse", "rps": 90.0, "rps_without": 100.0, "with_over_without": 0.9,
           "p99_ms": 1.0, "reopened": 3, "still_open": 10, "socket_errors": 0, "non2xx": 0,
           "others_on_proxy_cpu_pct": 1.0, "others_on_proxy_cpu_pct_without": 2.0}
    runs = [dict(rec, round=i, with_over_without=x) for i, x in enumerate([0.95, 0.5, 0.9])]
    out = table(runs, {})
    assert out["verdict"]["pass"] is True, out  # median 0.9
    assert out["proxies"]["gatehouse"]["reopened"] == 9
    runs[0]["with_over_without"] = 0.89
    assert table(runs, {})["verdict"]["pass"] is False
    print("slowloris selftest: 2 passed, 0 failed")


def main(argv):
    if not argv:
        raise SystemExit(__doc__)
    cmd, args = argv[0], argv[1:]
    if cmd == "record":
        record(args[0], harness.kv(args[1:]))
    elif cmd == "summary":
        summary(args[0], args[1], harness.kv(args[2:]))
    elif cmd == "selftest":
        selftest()
    else:
        raise SystemExit(f"unknown subcommand {cmd}\n{__doc__}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
