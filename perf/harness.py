#!/usr/bin/env python3
"""Parsing and printing helpers for perf/run.sh (python3 stdlib only).

run.sh owns the processes (start, pin, stop); this file owns everything that is easier to get
right in Python than in bash: free ports, reading /proc, parsing wrk's text output, turning
per-run records into medians and gatehouse/nginx ratios, and writing the JSON summary.

Every subcommand is small and prints plain text for bash to read:
  ports N                      N distinct free loopback TCP ports, one per line
  children PID                 PIDs whose parent is PID
  ticks PID...                 utime+stime of the processes, in clock ticks, summed
  mem PID FIELD                a /proc/PID/status field in KiB (VmRSS, VmHWM)
  cpustat CPU                  busy and total ticks of one CPU from /proc/stat ("busy total")
  wait-http URL SECONDS [PID]  polls URL until it answers 200 (bounded), exit 1 on timeout
                               or as soon as PID (the server) has exited
  check URL LEN [--post N]     one request; exit 1 unless 200 with a LEN-byte body
  boosted NICE SLICE_US CMD... sets its own nice, scheduler slice and autogroup nice, then
                               execs CMD (so CMD's threads and children inherit them)
  record RUNS key=value...     turns one wrk run into a JSON line, prints a table row
  summary RUNS OUT key=value   medians + ratios table on stdout, JSON summary to OUT
  selftest                     checks the parsers and the arithmetic on fixed inputs
"""

import json
import os
import socket
import statistics
import sys
import time
import urllib.error
import urllib.request

CLK_TCK = os.sysconf("SC_CLK_TCK")
# Loopback only: never route the readiness checks through an http_proxy from the environment.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
UNITS = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6, "h": 3600e6}


def free_ports(n):
    """Binds n sockets to port 0 at once (so the ports differ), then frees them."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def children(pid):
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # After the ")" that closes comm: state, ppid, ...
        if fields[1] == str(pid):
            out.append(int(entry))
    return sorted(out)


def ticks(pid):
    """utime + stime of the whole process (all threads), in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return int(fields[11]) + int(fields[12])


def cpustat(cpu):
    """Busy and total clock ticks of one CPU since boot. Busy is user + nice + system + steal:
    task time and what the hypervisor took. irq and softirq are left out, because the softirq
    time of loopback TCP is mostly the proxy's own traffic, which its /proc/PID/stat does not
    include (IRQ time accounting), so counting it would pass the proxy's own work as noise."""
    with open("/proc/stat") as f:
        for line in f:
            parts = line.split()
            if parts[0] == f"cpu{cpu}":
                vals = [int(v) for v in parts[1:]]
                total = sum(vals[:8])  # guest time is already inside user/nice
                return vals[0] + vals[1] + vals[2] + vals[7], total
    raise SystemExit(f"cpu{cpu} not in /proc/stat")


def status_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise SystemExit(f"{field} not in /proc/{pid}/status")


def boosted_exec(nice, slice_us, cmd):
    """Makes the calling process (already its own session, via setsid) win the CPU against
    other sessions' builds, then execs cmd. Three knobs, because each alone falls short here:
    - autogroup nice: with autogroup scheduling, plain nice only ranks tasks inside one session;
    - nice of the task itself (set through sched_setattr together with the slice);
    - a short scheduler slice (Linux 6.12+): an EEVDF task that wakes with a shorter slice may
      preempt the running one at once, instead of waiting up to a whole default slice (~1.4 ms
      here) behind a compiler - which, on a request ping-pong across two CPUs, is what throttles
      throughput far below what CPU shares alone would give.
    Every failure is reported and ignored: the run goes on unboosted."""
    import ctypes
    import struct
    if nice or slice_us:
        try:
            with open("/proc/self/autogroup", "w") as f:
                f.write(str(nice))
        except OSError as e:
            print(f"boost: autogroup nice {nice}: {e}", file=sys.stderr)
        libc = ctypes.CDLL(None, use_errno=True)
        sys_sched_setattr = 314 if os.uname().machine == "x86_64" else 274
        # struct sched_attr (48 bytes): size, policy (0 = SCHED_OTHER), flags, nice, priority,
        # runtime (the slice, in ns), deadline, period.
        attr = struct.pack("IIQiIQQQ", 48, 0, 0, nice, 0, slice_us * 1000, 0, 0)
        buf = ctypes.create_string_buffer(attr, len(attr))
        if libc.syscall(sys_sched_setattr, 0, buf, 0) != 0:
            err = ctypes.get_errno()
            print(f"boost: sched_setattr(nice {nice}, slice {slice_us} µs): {os.strerror(err)}",
                  file=sys.stderr)
            try:
                os.setpriority(os.PRIO_PROCESS, 0, nice)
            except OSError as e2:
                print(f"boost: setpriority {nice}: {e2}", file=sys.stderr)
    os.execvp(cmd[0], cmd)


def to_us(text):
    for unit in sorted(UNITS, key=len, reverse=True):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * UNITS[unit]
    raise ValueError(f"unknown time unit in {text!r}")


def parse_wrk(text):
    """Pulls req/s, request count, p50/p99 (µs) and error counts out of wrk --latency output."""
    r = {"requests": None, "rps": None, "p50_us": None, "p99_us": None,
         "socket_errors": 0, "non2xx": 0}
    in_dist = False
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("Latency Distribution"):
            in_dist = True
            continue
        if in_dist and line.endswith(tuple(UNITS)) and "%" in line:
            pct, value = line.split()
            if pct == "50%":
                r["p50_us"] = to_us(value)
            elif pct == "99%":
                r["p99_us"] = to_us(value)
            continue
        in_dist = False
        if " requests in " in line:
            r["requests"] = int(line.split()[0])
        elif line.startswith("Requests/sec:"):
            r["rps"] = float(line.split()[1])
        elif line.startswith("Socket errors:"):
            r["socket_errors"] = sum(int(p.split()[-1]) for p in line.split(":", 1)[1].split(","))
        elif line.startswith("Non-2xx or 3xx responses:"):
            r["non2xx"] = int(line.split()[-1])
    missing = [k for k, v in r.items() if v is None]
    if missing:
        raise SystemExit(f"wrk output lacks {missing}:\n{text}")
    return r


def kv(args):
    out = {}
    for a in args:
        k, _, v = a.partition("=")
        out[k] = v
    return out


def alive(pid):
    """True while PID exists and is not a zombie waiting for its parent."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_http(url, seconds, pid=None):
    deadline = time.monotonic() + float(seconds)
    while time.monotonic() < deadline:  # bounded by the deadline
        if pid is not None and not alive(pid):
            print(f"server PID {pid} exited before {url} answered", file=sys.stderr)
            return 1
        try:
            with OPENER.open(url, timeout=1) as resp:
                if resp.status == 200:
                    resp.read()
                    return 0
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.1)
    print(f"no 200 from {url} within {seconds}s", file=sys.stderr)
    return 1


def check(url, length, post):
    data = b"x" * post if post else None
    try:
        with OPENER.open(url, data=data, timeout=5) as resp:
            body = resp.read()
            status = resp.status
    except (OSError, urllib.error.URLError) as e:
        print(f"check {url}: {e}", file=sys.stderr)
        return 1
    if status != 200 or len(body) != length:
        print(f"check {url}: status {status}, body {len(body)} bytes, want 200 and {length}",
              file=sys.stderr)
        return 1
    return 0


ROW = "{:<9} {:<10} {:>5} {:>10} {:>9} {:>9} {:>9} {:>9}  {}"


def row_header():
    return ROW.format("scenario", "proxy", "round", "req/s", "p50 ms", "p99 ms",
                      "cpu µs/r", "rss KiB", "notes")


def noise_pct(fields, prefix=""):
    """Share (%) of the proxy's CPU that other processes took during a run: its busy ticks
    minus the proxy's own, over the elapsed ticks. The machine is shared; this says how much."""
    f = {k[len(prefix):]: v for k, v in fields.items() if k.startswith(prefix)}
    busy = int(f["busy1"]) - int(f["busy0"])
    total = int(f["tot1"]) - int(f["tot0"])
    proxy_ticks = int(f["t1"]) - int(f["t0"])
    return max(0.0, (busy - proxy_ticks) / total * 100) if total else None


def record(runs_path, fields):
    """One wrk run → a JSON line in RUNS, and a printed table row."""
    with open(fields["wrk"]) as f:
        w = parse_wrk(f.read())
    cpu_s = (int(fields["t1"]) - int(fields["t0"])) / CLK_TCK
    rec = {
        "scenario": fields["scenario"],
        "proxy": fields["proxy"],
        "round": int(fields["round"]),
        "measured": fields.get("measured", ""),
        "rps": w["rps"],
        "requests": w["requests"],
        "p50_ms": w["p50_us"] / 1e3,
        "p99_ms": w["p99_us"] / 1e3,
        "cpu_s": cpu_s,
        "cpu_us_per_req": cpu_s / w["requests"] * 1e6 if w["requests"] else None,
        "peak_rss_kib": int(fields["hwm"]),
        "socket_errors": w["socket_errors"],
        "non2xx": w["non2xx"],
    }
    rec["others_on_proxy_cpu_pct"] = noise_pct(fields)
    notes = []
    if w["socket_errors"]:
        notes.append(f"{w['socket_errors']} socket errors")
    if w["non2xx"]:
        notes.append(f"{w['non2xx']} non-2xx")
    rec["valid"] = not notes
    if rec["others_on_proxy_cpu_pct"] is not None and rec["others_on_proxy_cpu_pct"] >= 5:
        notes.append(f"noisy: others used {rec['others_on_proxy_cpu_pct']:.0f}% of the proxy CPU")
    with open(runs_path, "a") as f:
        f.write(json.dumps(rec) + "\n")
    cpu = rec["cpu_us_per_req"]
    print(ROW.format(rec["scenario"], rec["proxy"], rec["round"], f"{rec['rps']:.0f}",
                     f"{rec['p50_ms']:.3f}", f"{rec['p99_ms']:.3f}",
                     f"{cpu:.2f}" if cpu is not None else "-", rec["peak_rss_kib"],
                     "; ".join(notes)), flush=True)


def median_of(recs, key):
    vals = [r[key] for r in recs if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def ratio(a, b):
    return a / b if a is not None and b else None


def paired_ratio(runs, scenario, proxy, base, key):
    """Median over rounds of (proxy's value / base's value in the same round)."""
    by_round = {}
    for r in runs:
        if r["scenario"] == scenario and r["proxy"] in (proxy, base) and r.get(key) is not None:
            by_round.setdefault(r["round"], {})[r["proxy"]] = r[key]
    vals = [ratio(v[proxy], v[base]) for v in by_round.values() if proxy in v and base in v]
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def fmt(v, spec):
    return format(v, spec) if v is not None else "-"


def summary_bench(runs, meta):
    metrics = ["rps", "p50_ms", "p99_ms", "cpu_us_per_req", "peak_rss_kib",
               "others_on_proxy_cpu_pct"]
    scenarios = list(dict.fromkeys(r["scenario"] for r in runs))
    proxies = list(dict.fromkeys(r["proxy"] for r in runs))
    out = {"scenarios": {}}
    print(f"\nMedians over rounds ({meta.get('rounds', '?')} rounds, wrk -t1 -c{meta.get('conns', '?')} "
          f"-d{meta.get('duration', '?')}s; CPU = {meta.get('cpu_note', '')})")
    print("{:<9} {:<10} {:>10} {:>9} {:>9} {:>9} {:>9} {:>7} {:>5}".format(
        "scenario", "proxy", "req/s", "p50 ms", "p99 ms", "cpu µs/r", "rss KiB", "noise%", "runs"))
    for sc in scenarios:
        out["scenarios"][sc] = {"median": {}, "ratios_vs_nginx": {}}
        for px in proxies:
            recs = [r for r in runs if r["scenario"] == sc and r["proxy"] == px]
            if not recs:
                continue
            med = {m: median_of(recs, m) for m in metrics}
            med["runs"] = len(recs)
            med["invalid_runs"] = sum(1 for r in recs if not r["valid"])
            out["scenarios"][sc]["median"][px] = med
            print("{:<9} {:<10} {:>10} {:>9} {:>9} {:>9} {:>9} {:>7} {:>5}{}".format(
                sc, px, fmt(med["rps"], ".0f"), fmt(med["p50_ms"], ".3f"),
                fmt(med["p99_ms"], ".3f"), fmt(med["cpu_us_per_req"], ".2f"),
                fmt(med["peak_rss_kib"], ".0f"), fmt(med["others_on_proxy_cpu_pct"], ".1f"),
                len(recs),
                f"  ({med['invalid_runs']} with errors)" if med["invalid_runs"] else ""))
    base = "nginx"
    others = [p for p in proxies if p != base]
    if base in proxies and others:
        print(f"\nRatios <proxy>/{base} of the medians (req/s: higher is better; "
              "p99 and CPU/req: lower is better); 'paired' = median over rounds of the\n"
              "ratio within each round, which cancels drift slower than a round")
        print("{:<9} {:<10} {:>10} {:>10} {:>12}   {:>12} {:>12}".format(
            "scenario", "proxy", "req/s x", "p99 x", "cpu/req x", "paired rps", "paired cpu"))
        for sc in scenarios:
            meds = out["scenarios"][sc]["median"]
            if base not in meds:
                continue
            for px in others:
                if px not in meds:
                    continue
                r = {
                    "rps": ratio(meds[px]["rps"], meds[base]["rps"]),
                    "p99": ratio(meds[px]["p99_ms"], meds[base]["p99_ms"]),
                    "cpu_per_req": ratio(meds[px]["cpu_us_per_req"], meds[base]["cpu_us_per_req"]),
                }
                r["paired_rps"] = paired_ratio(runs, sc, px, base, "rps")
                r["paired_cpu_per_req"] = paired_ratio(runs, sc, px, base, "cpu_us_per_req")
                out["scenarios"][sc]["ratios_vs_nginx"][px] = r
                print("{:<9} {:<10} {:>10} {:>10} {:>12}   {:>12} {:>12}".format(
                    sc, px, fmt(r["rps"], ".3f"), fmt(r["p99"], ".3f"),
                    fmt(r["cpu_per_req"], ".3f"), fmt(r["paired_rps"], ".3f"),
                    fmt(r["paired_cpu_per_req"], ".3f")))
    return out


def summary_idle(runs, meta):
    print(f"\nIdle keep-alive connections: {meta.get('idle_conns', '?')} held per proxy, "
          f"then wrk -t1 -c{meta.get('conns', '?')} -d{meta.get('duration', '?')}s while held")
    print("{:<10} {:>10} {:>10} {:>9} {:>10} {:>8} {:>10} {:>8} {:>7} {:>11}  {}".format(
        "proxy", "rss before", "rss held", "KiB/conn", "req/s held", "p99 ms",
        "req/s none", "held/none", "noise%", "still open", "notes"))
    out = {"proxies": {}}
    base = None
    for r in runs:
        out["proxies"][r["proxy"]] = r
        notes = []
        if r.get("socket_errors"):
            notes.append(f"{r['socket_errors']} socket errors")
        if r.get("non2xx"):
            notes.append(f"{r['non2xx']} non-2xx")
        if r["still_open"] < r["idle_conns"]:
            notes.append("the proxy closed idle connections: KiB/conn is not comparable")
        noise = max(r["others_on_proxy_cpu_pct"] or 0, r["others_on_proxy_cpu_pct_without_idle"] or 0)
        print("{:<10} {:>10} {:>10} {:>9} {:>10} {:>8} {:>10} {:>8} {:>7} {:>11}  {}".format(
            r["proxy"], r["rss_before_kib"], r["rss_held_kib"], fmt(r["kib_per_conn"], ".3f"),
            fmt(r["rps"], ".0f"), fmt(r["p99_ms"], ".3f"), fmt(r["rps_without_idle"], ".0f"),
            fmt(r["rps_held_over_without"], ".3f"), fmt(noise, ".1f"),
            f"{r['still_open']}/{r['idle_conns']}", "; ".join(notes)))
        if r["proxy"] == "nginx":
            base = r
    if base:
        out["ratios_vs_nginx"] = {}
        for r in runs:
            if r["proxy"] == "nginx":
                continue
            out["ratios_vs_nginx"][r["proxy"]] = {
                "kib_per_conn": ratio(r["kib_per_conn"], base["kib_per_conn"]),
                "rps": ratio(r["rps"], base["rps"]),
            }
            x = out["ratios_vs_nginx"][r["proxy"]]
            print(f"{r['proxy']}/nginx: KiB per idle conn x{fmt(x['kib_per_conn'], '.3f')}, "
                  f"req/s while held x{fmt(x['rps'], '.3f')}")
    return out


def idle_record(runs_path, fields):
    """One idle-hold measurement → a JSON line; the summary prints it."""
    with open(fields["wrk"]) as f:
        w = parse_wrk(f.read())
    with open(fields["base_wrk"]) as f:
        base = parse_wrk(f.read())
    n = int(fields["idle_conns"])
    before, held = int(fields["rss_before"]), int(fields["rss_held"])
    rec = {
        "proxy": fields["proxy"],
        "measured": fields.get("measured", ""),
        "idle_conns": n,
        "still_open": int(fields["still_open"]),
        "rss_before_kib": before,
        "rss_held_kib": held,
        "kib_per_conn": (held - before) / n if n else None,
        "rps": w["rps"],
        "p99_ms": w["p99_us"] / 1e3,
        "socket_errors": w["socket_errors"] + base["socket_errors"],
        "non2xx": w["non2xx"] + base["non2xx"],
        "others_on_proxy_cpu_pct": noise_pct(fields),
        "rps_without_idle": base["rps"],
        "p99_ms_without_idle": base["p99_us"] / 1e3,
        "others_on_proxy_cpu_pct_without_idle": noise_pct(fields, "base_"),
    }
    rec["rps_held_over_without"] = ratio(rec["rps"], rec["rps_without_idle"])
    with open(runs_path, "a") as f:
        f.write(json.dumps(rec) + "\n")
    print(f"{rec['proxy']}: {n} idle held, RSS {before} -> {held} KiB "
          f"({rec['kib_per_conn']:.3f} KiB/conn), {rec['rps']:.0f} req/s while held, "
          f"{rec['still_open']} still open at the end", flush=True)


def summary(runs_path, out_path, meta):
    with open(runs_path) as f:
        runs = [json.loads(line) for line in f if line.strip()]
    if not runs:
        raise SystemExit("no runs recorded")
    body = summary_idle(runs, meta) if meta.get("mode") == "idle" else summary_bench(runs, meta)
    doc = {"meta": meta, "runs": runs, **body}
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    with open(out_path, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    print(f"\nsummary written to {out_path}")


WRK_SAMPLE = """Running 10s test @ http://127.0.0.1:1/100
  1 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   595.45us  100.00us   10.00ms   90.00%
  Latency Distribution
     50%  567.00us
     75%  600.00us
     90%  700.00us
     99%    1.20ms
  844000 requests in 10.00s, 123.45MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 12
Requests/sec:  84400.00
Transfer/sec:     12.34MB
"""


def selftest():
    w = parse_wrk(WRK_SAMPLE)
    assert w == {"requests": 844000, "rps": 84400.0, "p50_us": 567.0, "p99_us": 1200.0,
                 "socket_errors": 3, "non2xx": 12}, w
    assert to_us("2.5s") == 2.5e6 and to_us("3.00ms") == 3000.0 and to_us("7us") == 7.0
    try:
        parse_wrk("Requests/sec: 1\n")
        raise AssertionError("incomplete wrk output must be refused")
    except SystemExit:
        pass
    # 100 busy ticks of which the proxy used 60, over 200 elapsed: others took 20%.
    f = {"busy0": "0", "busy1": "100", "tot0": "0", "tot1": "200", "t0": "5", "t1": "65"}
    assert noise_pct(f) == 20.0
    assert noise_pct({"base_" + k: v for k, v in f.items()}, "base_") == 20.0
    runs = [{"scenario": "s", "proxy": p, "round": r, "rps": v}
            for p, r, v in [("nginx", 1, 100), ("gh", 1, 50), ("nginx", 2, 10), ("gh", 2, 20),
                            ("nginx", 3, 40), ("gh", 3, 40)]]
    assert paired_ratio(runs, "s", "gh", "nginx", "rps") == 1.0  # median of 0.5, 2.0, 1.0
    assert ratio(1, 0) is None and ratio(None, 2) is None and ratio(3, 2) == 1.5
    assert len(set(free_ports(4))) == 4
    assert ticks(os.getpid()) >= 0 and status_kib(os.getpid(), "VmRSS") > 0
    print("harness selftest: 9 passed, 0 failed")


def main(argv):
    if not argv:
        raise SystemExit(__doc__)
    cmd, args = argv[0], argv[1:]
    if cmd == "ports":
        print("\n".join(map(str, free_ports(int(args[0])))))
    elif cmd == "children":
        print("\n".join(map(str, children(int(args[0])))))
    elif cmd == "ticks":
        print(sum(ticks(int(p)) for p in args))
    elif cmd == "cpustat":
        print(*cpustat(int(args[0])))
    elif cmd == "mem":
        print(status_kib(int(args[0]), args[1]))
    elif cmd == "wait-http":
        return wait_http(args[0], args[1], int(args[2]) if len(args) > 2 else None)
    elif cmd == "check":
        post = int(args[3]) if len(args) > 3 and args[2] == "--post" else 0
        return check(args[0], int(args[1]), post)
    elif cmd == "parse-wrk":
        with open(args[0]) as f:
            print(json.dumps(parse_wrk(f.read())))
    elif cmd == "boosted":
        boosted_exec(int(args[0]), int(args[1]), args[2:])
    elif cmd == "record":
        record(args[0], kv(args[1:]))
    elif cmd == "idle-record":
        idle_record(args[0], kv(args[1:]))
    elif cmd == "row-header":
        print(row_header())
    elif cmd == "selftest":
        selftest()
    elif cmd == "summary":
        summary(args[0], args[1], kv(args[2:]))
    else:
        raise SystemExit(f"unknown subcommand {cmd}\n{__doc__}")
    return 0


if __name__ == "__main__":
    # Ctrl-C reaches these helpers too; run.sh does the cleanup, so die quietly.
    import signal
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    sys.exit(main(sys.argv[1:]))
