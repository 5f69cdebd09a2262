#!/usr/bin/env python3
"""A black-holed upstream node for perf/modes/blackhole.sh: accepts TCP connections and never
answers or reads (the peer sees a silent server, as with a hung process), holding every socket
until it is killed. Usage: blackhole.py HOST PORT."""

import socket
import sys


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    l = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind((host, port))
    l.listen(4096)
    print("ready", flush=True)
    held = []
    while True:
        c, _ = l.accept()
        held.append(c)


if __name__ == "__main__":
    main()
