#!/usr/bin/env python3
"""Admin API churn and keep-alive probe for `perf/run.sh reconfig` (python3 stdlib only).

While wrk loads the gateway, this process:
  - holds ONE keep-alive client connection to the gateway, opened before the load starts, and
    sends `GET /100` on it every second (raw socket, never reconnected: http.client would
    silently reopen a closed connection and hide exactly what is being checked);
  - with --changes on, makes one admin change every --interval-ms, cycling through
      1. PUT    /admin/v1/routes/perf-extra      (a second route, using the extra module)
      2. PUT    /admin/v1/upstreams/up           (the same node; connect_timeout_ms toggles
                                                  between 3001 and 3000, so every PUT is a
                                                  real change: an identical PUT is a no-op)
      3. PUT    /admin/v1/modules/perf-extra-mod (a rate_limit whose rate toggles the same way)
      4. PUT    /admin/v1/releases/perf-rel     (a gray release of the extra route: a
                                                  candidate without its module, 10% by header)
      5. POST   /admin/v1/releases/perf-rel/rollback
      6. DELETE /admin/v1/routes/perf-extra
    and records each answer's status and time.
With --changes off only the probe runs, so the baseline run carries the same probe traffic.

A sampler thread sends a request every --sample-ms on a second connection and records each
latency, split into the 100 ms after each change (or, without changes, after each moment a
change would have been made) and the rest: a stall that changes cause shows up in the first
group only, the machine's noise in both.

It prints `ready` once the probe connection answered and the extra module exists, runs until
its standard input closes (the harness closes it when wrk ends) or --max-s passes, sends one
last probe request, and writes a JSON result to --out.

Usage: churn.py --admin H:P --proxy H:P --upstream H:P --changes on|off --out FILE
                [--interval-ms 250] [--probe-s 1] [--max-s 600] [--sample-ms 20]
                [--upstream-max-idle 64]   (the upstream's max_idle, kept in every PUT)
"""

import bisect
import http.client
import json
import os
import select
import socket
import statistics
import sys
import threading
import time


class Probe:
    """One raw keep-alive HTTP/1.1 connection; counts answers and notices a close."""

    def __init__(self, host, port):
        self.sock = socket.create_connection((host, port), timeout=5)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sent = self.ok = 0
        self.errors = []
        self.closed = False

    def request(self):
        """Sends one GET and reads the answer; returns its latency in ms (None if it failed)."""
        if self.closed:
            return None
        self.sent += 1
        t0 = time.monotonic()
        try:
            self.sock.sendall(b"GET /100 HTTP/1.1\r\nHost: probe\r\nUser-Agent: churn-probe\r\n\r\n")
            status = self._read_answer()
        except OSError as e:
            self.closed = True
            self.errors.append(f"request {self.sent}: {e}")
            return None
        if status == 200:
            self.ok += 1
        else:
            self.errors.append(f"request {self.sent}: status {status}")
        return (time.monotonic() - t0) * 1e3

    def _read_answer(self):
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise OSError("connection closed by the gateway")
            buf += chunk
            if len(buf) > 1 << 20:
                raise OSError("answer head too large")
        head, _, rest = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
            if name.strip().lower() == "connection" and value.strip().lower() == "close":
                self.closed = True
        while len(rest) < length:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise OSError("connection closed mid-answer")
            rest += chunk
        return status


class Admin:
    """Admin API client (keep-alive; reconnecting is fine here: it is not what is probed)."""

    def __init__(self, host, port):
        self.host, self.port = host, port
        self.conn = http.client.HTTPConnection(host, port, timeout=30)

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else {}
        t0 = time.monotonic()
        try:
            self.conn.request(method, path, body=data, headers=headers)
            resp = self.conn.getresponse()
            text = resp.read()
            status = resp.status
            version = resp.getheader("X-Gatehouse-Version")
        except (OSError, http.client.HTTPException) as e:
            self.conn.close()
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
            return 0, (time.monotonic() - t0) * 1e3, None, str(e)
        return status, (time.monotonic() - t0) * 1e3, version, text[:300].decode("utf-8", "replace")


def change(admin, step, cycle, upstream, max_idle):
    """The step-th change of the cycle; returns (label, status, ms, version, text)."""
    if step == 0:
        r = admin.call("PUT", "/admin/v1/routes/perf-extra",
                       {"paths": ["/perf-extra/*"], "upstream": "up", "modules": ["perf-extra-mod"]})
        return ("PUT route",) + r
    if step == 1:
        r = admin.call("PUT", "/admin/v1/upstreams/up",
                       {"nodes": [{"addr": upstream}], "max_idle": max_idle,
                        "connect_timeout_ms": 3001 - cycle % 2})
        return ("PUT upstream",) + r
    if step == 2:
        r = admin.call("PUT", "/admin/v1/modules/perf-extra-mod",
                       {"kind": "rate_limit", "rate": 1000001 - cycle % 2, "burst": 1000})
        return ("PUT module",) + r
    if step == 3:
        r = admin.call("PUT", "/admin/v1/releases/perf-rel",
                       {"target": "routes/perf-extra",
                        "candidate": {"id": "perf-extra", "paths": ["/perf-extra/*"],
                                      "upstream": "up", "modules": []},
                        "split": {"percent": 10, "by": "header", "name": "X-User"}})
        return ("PUT release",) + r
    if step == 4:
        r = admin.call("POST", "/admin/v1/releases/perf-rel/rollback")
        return ("rollback release",) + r
    r = admin.call("DELETE", "/admin/v1/routes/perf-extra")
    return ("DELETE route",) + r


STEPS = 6


class Sampler(threading.Thread):
    """A second connection sending a request every `every` s from its own thread (the admin
    calls block the main loop), recording (start time, latency): so latency right after each
    change can be set against the rest of the run, i.e. a stall caused by changes is told
    apart from the machine's noise."""

    def __init__(self, host, port, every):
        super().__init__(daemon=True)
        self.probe = Probe(host, port)
        self.every = every
        self.samples = []
        self.stop = threading.Event()

    def run(self):
        nxt = time.monotonic()
        while not self.stop.is_set() and not self.probe.closed:
            t = time.monotonic()
            ms = self.probe.request()
            if ms is not None:
                self.samples.append((t, ms))
            nxt += self.every
            self.stop.wait(max(0.0, nxt - time.monotonic()))


def pct(vals, q):
    """The q-quantile (0..1) by nearest rank, or None."""
    if not vals:
        return None
    vals = sorted(vals)
    return vals[min(len(vals) - 1, int(q * len(vals)))]


def split_samples(samples, marks, window):
    """Latency of samples that started within `window` s after one of `marks` (the changes'
    start times, or the schedule's when no change is made), against the others."""
    near, far = [], []
    marks = sorted(marks)
    for t, ms in samples:
        i = bisect.bisect_right(marks, t)
        (near if i and t - marks[i - 1] < window else far).append(ms)
    out = {}
    for name, vals in (("after_change", near), ("between_changes", far)):
        out[name] = {"samples": len(vals), "p50_ms": pct(vals, 0.5), "p99_ms": pct(vals, 0.99),
                     "max_ms": max(vals) if vals else None}
    return out


def hostport(text):
    host, _, port = text.rpartition(":")
    return host, int(port)


def main(argv):
    opts = {"--interval-ms": "250", "--probe-s": "1", "--max-s": "600", "--sample-ms": "20",
            "--upstream-max-idle": "64"}
    it = iter(argv)
    for a in it:
        if not a.startswith("--"):
            raise SystemExit(__doc__)
        opts[a] = next(it)
    for need in ("--admin", "--proxy", "--upstream", "--changes", "--out"):
        if need not in opts:
            raise SystemExit(f"churn.py: {need} is required\n{__doc__}")
    changes_on = opts["--changes"] == "on"
    interval = float(opts["--interval-ms"]) / 1e3
    probe_every = float(opts["--probe-s"])
    max_s = float(opts["--max-s"])
    admin = Admin(*hostport(opts["--admin"]))
    # The module the extra route uses must exist before the first PUT route; it is made here,
    # before the load, in every run, so all start from the same config.
    st, _, _, text = admin.call("PUT", "/admin/v1/modules/perf-extra-mod",
                                {"kind": "rate_limit", "rate": 1000000, "burst": 1000})
    if st not in (200, 201):
        raise SystemExit(f"churn.py: setting up the extra module failed: {st} {text}")
    # The upstream back to its start value, so the first upstream PUT of the cycle is a real
    # change even after an earlier churn.py left the other value.
    st, _, _, text = admin.call("PUT", "/admin/v1/upstreams/up",
                                {"nodes": [{"addr": opts["--upstream"]}], "connect_timeout_ms": 3000,
                                 "max_idle": int(opts["--upstream-max-idle"])})
    if st not in (200, 201):
        raise SystemExit(f"churn.py: resetting the upstream failed: {st} {text}")
    st, _, _, text = admin.call("DELETE", "/admin/v1/routes/perf-extra")
    if st not in (204, 404):
        raise SystemExit(f"churn.py: removing a leftover extra route failed: {st} {text}")
    probe = Probe(*hostport(opts["--proxy"]))
    probe.request()
    if probe.ok != 1:
        raise SystemExit(f"churn.py: the probe's first request failed: {probe.errors}")
    sampler = Sampler(*hostport(opts["--proxy"]), float(opts["--sample-ms"]) / 1e3)
    print("ready", flush=True)

    log = []
    start = time.monotonic()
    sampler.start()
    next_change = start + interval
    next_probe = start + probe_every
    n = 0
    stdin_open = True
    while stdin_open and time.monotonic() - start < max_s:  # bounded by --max-s
        now = time.monotonic()
        if changes_on and now >= next_change:
            label, status, ms, version, text = change(admin, n % STEPS, n // STEPS, opts["--upstream"],
                                                      int(opts["--upstream-max-idle"]))
            log.append({"t_s": now - start, "change": label, "status": status,
                        "ms": round(ms, 2), "version": version,
                        **({"body": text} if not 200 <= status < 300 else {})})
            n += 1
            # Fixed schedule; if a change took longer than the interval, do not pile up.
            next_change = max(next_change + interval, time.monotonic())
        if now >= next_probe:
            probe.request()
            next_probe += probe_every
        wait = min(next_probe, next_change if changes_on else next_probe) - time.monotonic()
        ready, _, _ = select.select([sys.stdin], [], [], max(0.0, wait))
        if ready and not os.read(sys.stdin.fileno(), 4096):
            stdin_open = False
    sampler.stop.set()
    sampler.join(timeout=10)
    probe.request()  # the last one, after the load ended: is the very same connection alive?
    if changes_on:
        marks = [start + e["t_s"] for e in log]
    else:
        marks = [start + k * interval for k in range(1, int((time.monotonic() - start) / interval) + 1)]
    versions = [int(e["version"]) for e in log if e.get("version")]
    ms = [e["ms"] for e in log]
    result = {
        "changes_on": changes_on,
        "seconds": round(time.monotonic() - start, 2),
        "changes": len(log),
        "changes_ok": sum(1 for e in log if 200 <= e["status"] < 300),
        "versions_produced": (max(versions) - min(versions) + 1) if versions else 0,
        "change_ms": ms,
        "change_ms_p50": statistics.median(ms) if ms else None,
        "change_ms_max": max(ms) if ms else None,
        "by_change": {lbl: sum(1 for e in log if e["change"] == lbl) for lbl in
                      dict.fromkeys(e["change"] for e in log)},
        "failures": [e for e in log if not 200 <= e["status"] < 300][:20],
        "probe_sent": probe.sent,
        "probe_ok": probe.ok,
        "probe_conn_open_at_end": not probe.closed and probe.ok == probe.sent,
        "probe_errors": probe.errors[:20],
        # 'after_change' = samples that started in the 100 ms after a change was sent.
        "sampler_every_ms": float(opts["--sample-ms"]),
        "sampler": split_samples(sampler.samples, marks, 0.1),
        "sampler_errors": sampler.probe.errors[:5],
    }
    with open(opts["--out"], "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    return 0


if __name__ == "__main__":
    import signal
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    sys.exit(main(sys.argv[1:]))
