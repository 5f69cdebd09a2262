#!/usr/bin/env python3
"""Records and summary of `perf/run.sh slowloris` (python3 stdlib only; shares parsing and
arithmetic with harness.py).

For each proxy: req/s of a wrk run alone, then of the same run while slowloris_hold keeps
SLOW_CONNS slowloris connections open (re-opening each one the proxy closes). The verdict is
the ratio with/without per proxy; Gatehouse must keep at least 0.9 of its own figure.

Subcommands:
  record RUNS key=value...      one proxy's pair of runs -> JSON line + table row
  summary RUNS OUT key=value... the table, the ratios and the verdict, JSON summary
  selftest                      checks the arithmetic
"""

import json
import os
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


def table(runs, meta):
    print(f"\nSlowloris: {meta.get('slow_conns', '?')} connections held (partial head, a byte "
          f"every second, re-opened when closed), header timeout {meta.get('slow_timeout_s', '?')} s; "
          f"wrk -t1 -c{meta.get('conns', '?')} -d{meta.get('duration', '?')}s /100")
    row = "{:<10} {:>11} {:>11} {:>9} {:>11} {:>9} {:>9} {:>7}  {}"
    print(row.format("proxy", "req/s alone", "req/s slow", "slow/alone", "p99 ms slow",
                     "reopened", "open end", "noise%", "notes"))
    out = {"proxies": {}, "verdict": {}}
    for r in runs:
        out["proxies"][r["proxy"]] = r
        notes = []
        if r["socket_errors"]:
            notes.append(f"{r['socket_errors']} socket errors")
        if r["non2xx"]:
            notes.append(f"{r['non2xx']} non-2xx")
        noise = max(r["others_on_proxy_cpu_pct"] or 0, r["others_on_proxy_cpu_pct_without"] or 0)
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
    out = table([rec], {})
    assert out["verdict"]["pass"] is True, out
    rec["with_over_without"] = 0.89
    assert table([rec], {})["verdict"]["pass"] is False
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
