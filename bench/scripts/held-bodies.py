#!/usr/bin/env python3
"""Resident memory of a wagate server while clients announce large bodies and stall.

    python3 bench/scripts/held-bodies.py [WAGATE_BIN]      (default target/release/wagate)

Environment: HELD_ARGS, more arguments for `wagate serve` (e.g. `--http.max_body_bytes_held
67108864`); HELD_KINDS, the kinds to run by their number (e.g. `3,5`; all by default).

For each kind, starts a fresh server on the example config (its own data directory and ports,
loopback only; `http.max_body_bytes_held` at its default, 256 MiB) and opens many connections
that announce large bodies, send part of them (or none), and stall: single sends with a bad token
and with the demo tenant's, unsigned webhooks, bulk uploads. The server's resident memory
(VmRSS) is read before and 2 s after the clients have sent what they send, with the number of
requests refused for the bound (`wagate_request_bodies_refused_total`). Every connection is
closed and the server stopped at the end (bounded: it never waits past 60 s).
"""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

BIN = sys.argv[1] if len(sys.argv) > 1 else "target/release/wagate"
HTTP = ("127.0.0.1", 18190)


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def hold(count, head, sent):
    """Opens `count` connections, each sending `head` and `sent` bytes of its body."""
    held = []
    body = b" " * sent
    for _ in range(count):
        client = socket.create_connection(HTTP, timeout=5)
        try:
            client.sendall(head + b"{" + body)
        except OSError:
            pass  # refused and closed by the server: its bytes were never read
        held.append(client)
    return held


def refused():
    with urllib.request.urlopen(f"http://{HTTP[0]}:{HTTP[1]}/metrics", timeout=10) as answer:
        for line in answer.read().decode().splitlines():
            if line.startswith("wagate_request_bodies_refused_total "):
                return int(line.split()[1])
    return 0


SEND = (b"POST /v23.0/106540352242922/messages HTTP/1.1\r\nHost: w\r\n"
        b"Authorization: Bearer %s\r\n"
        b"Content-Type: application/json\r\nContent-Length: 1000000\r\n\r\n")
KINDS = [
    ("1,000 single sends, bad token, 1 MB announced, none sent", 1000,
     SEND % b"not-a-token-at-all-000", 0),
    ("1,000 single sends, demo tenant, 1 MB announced, 900 KB sent", 1000,
     SEND % b"demo-tenant-token-0001", 900_000),
    ("1,000 unsigned webhooks, 1 MB announced, 900 KB sent", 1000,
     b"POST /webhooks/meta HTTP/1.1\r\nHost: w\r\n"
     b"Content-Type: application/json\r\nContent-Length: 1000000\r\n\r\n", 900_000),
    ("40 bulk uploads, demo tenant, 64 MB announced, none sent", 40,
     b"POST /wagate/v1/bulk HTTP/1.1\r\nHost: w\r\n"
     b"Authorization: Bearer demo-tenant-token-0001\r\n"
     b"Content-Type: application/x-ndjson\r\nContent-Length: 64000000\r\n\r\n", 0),
    ("40 bulk uploads, demo tenant, 64 MB announced, 60 MB sent", 40,
     b"POST /wagate/v1/bulk HTTP/1.1\r\nHost: w\r\n"
     b"Authorization: Bearer demo-tenant-token-0001\r\n"
     b"Content-Type: application/x-ndjson\r\nContent-Length: 64000000\r\n\r\n", 60_000_000),
]


def main():
    # A fresh server for each kind, so one's memory is not the other's baseline.
    only = os.environ.get("HELD_KINDS")
    chosen = [int(k) for k in only.split(",")] if only else range(1, len(KINDS) + 1)
    extra = os.environ.get("HELD_ARGS", "").split()
    for number in chosen:
        name, count, head, sent = KINDS[number - 1]
        data = tempfile.mkdtemp(prefix="wagate-held-")
        server = subprocess.Popen(
            [BIN, "serve", "--config", "engine/wagate.example.toml",
             "--storage.data_dir", data, "--http.listen", f"{HTTP[0]}:{HTTP[1]}",
             "--grpc.listen", "127.0.0.1:18191", *extra],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        try:
            server.stdout.readline()
            server.stdout.readline()
            before = rss_kib(server.pid)
            held = hold(count, head, sent)
            time.sleep(2)
            during = rss_kib(server.pid)
            print(f"{name}: resident {before // 1024} MiB before, {during // 1024} MiB held "
                  f"(+{(during - before) // 1024} MiB), {refused()} refused for the bound")
            for client in held:
                client.close()
        finally:
            server.terminate()
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                server.kill()
            shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
