#!/usr/bin/env python3
"""End-to-end checks of the kernel's HTTP server through QEMU user networking.

Boots kernel/build/ringside.elf under QEMU (TCG) with port 80 forwarded to a free host
port, unless --port points at a kernel that is already running, then checks:
  GET / (HTML status page), GET /metrics (Prometheus text that parses), 404, 405, HEAD,
  pipelining, 200 sequential connections, 16 concurrent keep-alive clients x 25 requests,
  a 200 KB POST (413 or a closed connection), garbage (400/431 or a closed connection),
  abrupt disconnects (RST and FIN mid-request) leaving no connection behind,
  and that the kernel still serves afterwards.
Exits 0 when every check passed, 1 otherwise.
"""
import argparse
import http.client
import os
import random
import re
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
failures = []


def check(condition, what):
    print(("ok   " if condition else "FAIL ") + what, flush=True)
    if not condition:
        failures.append(what)
    return condition


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(kernel, port, log):
    qemu = ["qemu-system-x86_64", "-machine", "pc", "-m", "16", "-nodefaults", "-display", "none",
            "-no-reboot", "-kernel", kernel, "-serial", "file:" + log,
            "-netdev", f"user,id=n0,hostfwd=tcp:127.0.0.1:{port}-:80",
            "-device", "virtio-net-pci,netdev=n0,id=net0,disable-legacy=on"]
    process = subprocess.Popen(qemu, stdin=subprocess.DEVNULL)
    deadline = time.time() + 20
    while time.time() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"QEMU exited early ({process.returncode}); log: {log}")
        try:
            if get(port, "/")[0] == 200:
                return process
        except OSError:
            pass
        time.sleep(0.2)
    process.kill()
    raise SystemExit("the kernel did not answer HTTP within 20 s")


def get(port, path, method="GET", headers=None, body=None, timeout=10):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def read_response(sock):
    """Reads one HTTP response from a raw socket; returns (status, body) or None on close."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return status, rest[:length], rest[length:]


METRIC_LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*"(,[a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*")*)?\})? (-?[0-9.eE+]+|NaN|[+-]Inf)$')


def parse_prometheus(text):
    """Strict-enough parse of the text format: returns {(name, labels): value} or raises."""
    samples, helps, types = {}, set(), {}
    for line in text.splitlines():
        if not line:
            continue
        if line.startswith("# HELP "):
            helps.add(line.split(" ")[2])
            continue
        if line.startswith("# TYPE "):
            parts = line.split(" ")
            if parts[3] not in ("counter", "gauge", "histogram", "summary", "untyped"):
                raise ValueError("bad TYPE line: " + line)
            types[parts[2]] = parts[3]
            continue
        if line.startswith("#"):
            continue
        match = METRIC_LINE.match(line)
        if not match:
            raise ValueError("bad sample line: " + line)
        name = match.group(1)
        if name not in types or name not in helps:
            raise ValueError("sample without HELP/TYPE: " + line)
        samples[(name, match.group(3) or "")] = float(match.group(7))
    return samples


def metric(port, name, labels=""):
    status, _, body = get(port, "/metrics")
    return parse_prometheus(body.decode()).get((name, labels))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, help="test a kernel already listening here (no QEMU launch)")
    parser.add_argument("--kernel", default=os.path.join(ROOT, "kernel/build/ringside.elf"))
    args = parser.parse_args()

    process = None
    port = args.port
    log = None
    if port is None:
        port = free_port()
        log = os.path.join(tempfile.mkdtemp(prefix="http-check-"), "serial.log")
        process = launch(args.kernel, port, log)
        print(f"QEMU pid {process.pid}, port {port}, serial log {log}", flush=True)
    try:
        run_checks(port)
    finally:
        if process:
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
    if log and os.path.exists(log):
        text = open(log, errors="replace").read()
        check("fault" not in text.lower() and "panic" not in text.lower(), "serial log shows no fault")
    print(f"{len(failures)} failure(s)" if failures else "all checks passed")
    return 1 if failures else 0


def run_checks(port):
    status, headers, body = get(port, "/")
    check(status == 200 and headers.get("Content-Type", "").startswith("text/html") and b"ringside" in body,
          "GET / is an HTML status page")
    check(b"net0.rx" in body and b"net0.tx" in body, "status page lists the queues")

    status, headers, body = get(port, "/metrics")
    try:
        samples = parse_prometheus(body.decode())
        parsed = True
    except ValueError as error:
        print("   ", error)
        samples, parsed = {}, False
    check(status == 200 and parsed, "GET /metrics parses as Prometheus text")
    check(('ringside_queue_packets_total', 'queue="net0.rx"') in samples, "per-queue labelled counters present")
    check(('ringside_tcp_active_connections', '') in samples, "tcp counters present")

    check(get(port, "/nope")[0] == 404, "unknown path is 404")
    status, headers, _ = get(port, "/", method="DELETE")
    check(status == 405 and "GET" in headers.get("Allow", ""), "DELETE / is 405 with Allow")
    status, headers, body = get(port, "/", method="HEAD")
    check(status == 200 and body == b"" and int(headers.get("Content-Length", "0")) > 0, "HEAD / has a length, no body")
    check(get(port, "/?x=1")[0] == 200, "query string ignored for routing")

    # Pipelining: three requests in one write, three responses in order.
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
                     b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        statuses = []
        leftover = b""
        sock_data = sock

        class Buffered:
            def __init__(self, sock):
                self.sock, self.pending = sock, b""

            def recv(self, n):
                if self.pending:
                    data, self.pending = self.pending, b""
                    return data
                return self.sock.recv(n)
        reader = Buffered(sock_data)
        for _ in range(3):
            response = read_response(reader)
            if response is None:
                break
            statuses.append(response[0])
            reader.pending = response[2]
        closed = reader.recv(1) == b""
    check(statuses == [200, 404, 200] and closed, f"pipelined requests answered in order, then closed ({statuses})")

    # 200 sequential connections.
    ok = 0
    started = time.time()
    for _ in range(200):
        try:
            if get(port, "/")[0] == 200:
                ok += 1
        except OSError as error:
            print("   ", error)
    check(ok == 200, f"200 sequential connections: {ok} ok in {time.time() - started:.1f} s")

    # 16 concurrent keep-alive clients x 25 requests.
    accepted_before = metric(port, "ringside_tcp_connections_accepted_total")
    results = []

    def client():
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
        good = 0
        try:
            for index in range(25):
                connection.request("GET", "/metrics" if index % 2 else "/")
                response = connection.getresponse()
                response.read()
                if response.status == 200:
                    good += 1
        except OSError as error:
            print("   ", error)
        finally:
            connection.close()
        results.append(good)
    threads = [threading.Thread(target=client) for _ in range(16)]
    started = time.time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    accepted_after = metric(port, "ringside_tcp_connections_accepted_total")
    check(sum(results) == 400, f"16 keep-alive clients x 25 requests: {sum(results)}/400 ok in {time.time() - started:.1f} s")
    # 16 clients + this metrics request's own connection.
    check(accepted_after - accepted_before == 17, f"keep-alive reused connections ({accepted_after - accepted_before - 1:.0f} new)")

    # A 200 KB POST: 413 or a closed connection, and the kernel keeps serving.
    outcome = "?"
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 204800\r\n\r\n")
            try:
                sock.sendall(b"x" * 204800)
            except OSError:
                pass
            response = read_response(sock)
            outcome = "closed" if response is None else str(response[0])
    except (ConnectionResetError, BrokenPipeError):
        outcome = "reset"
    check(outcome in ("413", "closed", "reset"), f"200 KB POST refused ({outcome})")
    check(get(port, "/")[0] == 200, "still serving after the big POST")

    # Garbage: binary noise with line ends, and a long line without one.
    rng = random.Random(1234)
    outcomes = []
    for size in (100, 3000, 20000):
        noise = bytes(rng.randrange(256) for _ in range(size))
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(noise + b"\r\n\r\n")
                response = read_response(sock)
                outcomes.append("closed" if response is None else str(response[0]))
        except (ConnectionResetError, BrokenPipeError):
            outcomes.append("reset")
    check(all(o in ("400", "431", "413", "501", "505", "closed", "reset") for o in outcomes),
          f"garbage refused ({', '.join(outcomes)})")
    check(get(port, "/")[0] == 200, "still serving after garbage")

    # 70 connections open at once (each with a request answered), all still usable.
    held, answered = [], 0
    try:
        for _ in range(70):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            held.append(sock)
            if read_response(sock) is not None:
                answered += 1
        open_now = metric(port, "ringside_tcp_active_connections")
        for sock in held:
            sock.sendall(b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n")
            response = read_response(sock)
            if response is not None and response[0] == 404:
                answered += 1
    except OSError as error:
        print("   ", error)
        open_now = None
    finally:
        for sock in held:
            sock.close()
    check(answered == 140 and open_now == 71, f"70 connections at once: {answered}/140 answered, {open_now} open incl. the probe")

    # Abrupt disconnects: resets and plain closes in the middle of requests.
    for index in range(20):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n" if index % 2 else b"GET /metr")
        if index % 4 < 2:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST on close
        sock.close()
    # Half a response read, then a reset.
    for _ in range(5):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.recv(100)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    active = None
    deadline = time.time() + 15
    while time.time() < deadline:
        # The request asking counts itself: one active connection means no other is left.
        active = metric(port, "ringside_tcp_active_connections")
        if active == 1:
            break
        time.sleep(0.5)
    check(active == 1, f"abrupt disconnects leave no connection behind (active {active} incl. the probe)")
    status, _, _ = get(port, "/")
    check(status == 200, "still serving at the end")


if __name__ == "__main__":
    sys.exit(main())
