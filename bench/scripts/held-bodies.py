#!/usr/bin/env python3
"""Resident memory of a wagate server while clients announce large bodies and send none.

    python3 bench/scripts/held-bodies.py [WAGATE_BIN]      (default target/release/wagate)

For each kind, starts a fresh server on the example config (its own data directory and ports,
loopback only) and opens: 1,000 single sends with a bad token announcing 1 MB bodies, and 40
bulk uploads with the demo tenant's token announcing 64 MB. Each client sends its head and a
few bytes, then waits; the server's resident memory (VmRSS) is read before and 2 s after. Every
connection is closed and the server stopped at the end (bounded: it never waits past 60 s).
"""
import os
import socket
import subprocess
import sys
import tempfile
import time

BIN = sys.argv[1] if len(sys.argv) > 1 else "target/release/wagate"
HTTP = ("127.0.0.1", 18190)


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def hold(count, head):
    held = []
    for _ in range(count):
        client = socket.create_connection(HTTP, timeout=5)
        client.sendall(head + b"{")
        held.append(client)
    return held


KINDS = [
    ("1,000 single sends, bad token, 1 MB announced", 1000,
     b"POST /v23.0/106540352242922/messages HTTP/1.1\r\nHost: w\r\n"
     b"Authorization: Bearer not-a-token-at-all-000\r\n"
     b"Content-Type: application/json\r\nContent-Length: 1000000\r\n\r\n"),
    ("40 bulk uploads, demo tenant, 64 MB announced", 40,
     b"POST /wagate/v1/bulk HTTP/1.1\r\nHost: w\r\n"
     b"Authorization: Bearer demo-tenant-token-0001\r\n"
     b"Content-Type: application/x-ndjson\r\nContent-Length: 64000000\r\n\r\n"),
]


def main():
    # A fresh server for each kind, so one's memory is not the other's baseline.
    for name, count, head in KINDS:
        data = tempfile.mkdtemp(prefix="wagate-held-")
        server = subprocess.Popen(
            [BIN, "serve", "--config", "engine/wagate.example.toml",
             "--storage.data_dir", data, "--http.listen", f"{HTTP[0]}:{HTTP[1]}",
             "--grpc.listen", "127.0.0.1:18191"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        try:
            server.stdout.readline()
            server.stdout.readline()
            before = rss_kib(server.pid)
            held = hold(count, head)
            time.sleep(2)
            during = rss_kib(server.pid)
            print(f"{name}: resident {before // 1024} MiB before, {during // 1024} MiB held "
                  f"(+{(during - before) // 1024} MiB)")
            for client in held:
                client.close()
        finally:
            server.terminate()
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                server.kill()


if __name__ == "__main__":
    main()
