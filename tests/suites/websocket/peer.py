"""Real WebSocket peers for tests/suites/websocket.rs, built on the `websockets` library.

    peer.py server          echo server on a free loopback port; prints the port, serves
                            until killed. A message starting with "frag:" is echoed as a
                            fragmented message. When a connection ends it prints
                            {"server_closed": code} (the close code it received, or null).
    peer.py client URL      connects through the gateway, prints {"open": true}, then runs
                            commands from stdin, one per line, printing one JSON line each:
                              echo N   N messages of every shape, each checked -> {"echoed": N}
                              sleep S  sleeps S seconds (pings are answered meanwhile)
                              wait     until the connection closes -> {"closed": code}

A last argument `deflate` makes either side offer/accept permessage-deflate (RSV1 frames).
"""

import json
import os
import sys
import time

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect
from websockets.sync.server import serve


def say(obj):
    print(json.dumps(obj), flush=True)


def compression():
    return "deflate" if sys.argv[-1] == "deflate" else None


def server():
    def handler(ws):
        try:
            for msg in ws:
                if isinstance(msg, str) and msg.startswith("frag:"):
                    n = max(1, len(msg) // 3)
                    ws.send(iter([msg[:n], msg[n : 2 * n], msg[2 * n :]]))
                else:
                    ws.send(msg)
        except ConnectionClosed:
            pass
        rcvd = ws.protocol.close_rcvd
        say({"server_closed": rcvd.code if rcvd else None})

    with serve(handler, "127.0.0.1", 0, max_size=None, compression=compression()) as srv:
        say(srv.socket.getsockname()[1])
        srv.serve_forever()


def message(i):
    """Message i of a varied sequence: small text and binary, 64 KiB+ text and binary,
    and fragmented text (sent in three frames, echoed in three frames)."""
    k = i % 10
    if k == 3:
        return os.urandom(65536 + i)
    if k == 7:
        return ("x%d" % i) * (70000 // len("x%d" % i) + 1)
    if k == 5:
        return ["frag:", "part %d " % i * 50, "end"]
    if k % 2 == 0:
        return "text message %d" % i
    return bytes([i % 256]) * (1 + i % 300)


def echo(ws, n):
    for i in range(n):
        m = message(i)
        ws.send(iter(m) if isinstance(m, list) else m)
        want = "".join(m) if isinstance(m, list) else m
        got = ws.recv(timeout=10)
        if got != want:
            say({"error": "message %d came back different (%d vs %d)" % (i, len(got), len(want))})
            sys.exit(1)


def client(url):
    ws = connect(url, max_size=None, compression=compression(), ping_interval=None, open_timeout=10)
    say({"open": True, "extensions": ws.response.headers.get("Sec-WebSocket-Extensions")})
    for line in sys.stdin:
        cmd = line.split()
        if not cmd:
            continue
        if cmd[0] == "echo":
            try:
                echo(ws, int(cmd[1]))
                say({"echoed": int(cmd[1])})
            except ConnectionClosed as e:
                say({"closed": e.rcvd.code if e.rcvd else None})
        elif cmd[0] == "sleep":
            time.sleep(float(cmd[1]))
            say({"slept": True})
        elif cmd[0] == "wait":
            try:
                while True:
                    ws.recv()
            except ConnectionClosed as e:
                say({"closed": e.rcvd.code if e.rcvd else None})
    ws.close()


if __name__ == "__main__":
    if sys.argv[1] == "server":
        server()
    else:
        client(sys.argv[2])
