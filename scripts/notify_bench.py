#!/usr/bin/env python3
"""Notifications per echo, VIRTIO_F_RING_EVENT_IDX on vs off, in one run.

  notify_bench.py --launch-on "QEMU ..." --launch-off "QEMU ... virtio.event_idx=off" \
                  --udp-on P --http-on H --udp-off P2 --http-off H2 [--duration 5] [--rounds 2]

Boots both guests side by side (same kernel; the second with EVENT_IDX turned off on its command
line), then alternates phases between them (on, off, on, off, ...: drift on a shared machine hits
both modes alike) and, per phase, reads the kernel's /metrics before and after:
  serial   64-byte UDP echoes, exactly one outstanding, for --duration seconds;
  burst    bursts of 32 datagrams sent back to back, each burst fully echoed before the next.
For each mode it reports echoes/s and, per echoed datagram, kicks sent, kicks suppressed and
interrupts taken on net0.rx and net0.tx (sums over the mode's phases), and the EVENT_IDX gauge the
kernel exports (so a run that did not negotiate what it claims is visible). Prints one JSON object."""
import argparse, json, os, shlex, socket, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from echo_bench import first_echo  # noqa: E402

QUEUES = ("net0.rx", "net0.tx")
COUNTERS = ("kicks_total", "kicks_suppressed_total", "interrupts_total", "packets_total", "event_idx")


def metrics(http_port):
    """The per-queue counters of QUEUES from GET /metrics."""
    s = socket.create_connection(("127.0.0.1", http_port), timeout=5)
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    out = {q: {} for q in QUEUES}
    for line in data.decode("ascii", "replace").splitlines():
        if not line.startswith("ringside_queue_"):
            continue
        try:
            name, value = line.rsplit(" ", 1)
        except ValueError:
            continue
        for q in QUEUES:
            if 'queue="%s"' % q in name:
                for c in COUNTERS:
                    if name.startswith("ringside_queue_" + c + "{"):
                        out[q][c] = int(value)
    return out


def serial(port, duration):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect(("127.0.0.1", port))
    s.settimeout(0.25)
    payload = b"n" * 64
    echoes = 0
    end = time.perf_counter() + duration
    while time.perf_counter() < end:
        s.send(payload)
        try:
            if s.recv(2048) == payload:
                echoes += 1
        except socket.timeout:
            pass
    s.close()
    return echoes


def burst(port, duration, size=32):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect(("127.0.0.1", port))
    s.settimeout(0.25)
    echoes = 0
    end = time.perf_counter() + duration
    while time.perf_counter() < end:
        for k in range(size):
            s.send(b"b%05d" % k + b"x" * 58)
        got = 0
        while got < size:
            try:
                s.recv(2048)
                got += 1
            except socket.timeout:
                break
        echoes += got
    s.close()
    return echoes


def delta(after, before):
    return {q: {c: after[q].get(c, 0) - before[q].get(c, 0) for c in COUNTERS if c != "event_idx"} for q in QUEUES}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--launch-on", required=True)
    ap.add_argument("--launch-off", required=True)
    ap.add_argument("--udp-on", type=int, required=True)
    ap.add_argument("--http-on", type=int, required=True)
    ap.add_argument("--udp-off", type=int, required=True)
    ap.add_argument("--http-off", type=int, required=True)
    ap.add_argument("--duration", type=float, default=5)
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    modes = {"on": (a.launch_on, a.udp_on, a.http_on), "off": (a.launch_off, a.udp_off, a.http_off)}
    procs = {}
    try:
        for m, (cmd, udp, _) in modes.items():
            procs[m] = subprocess.Popen(shlex.split(cmd), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for m, (_, udp, _) in modes.items():
            if first_echo(udp, time.perf_counter(), 60, procs[m]) is None:
                sys.exit("notify_bench: no echo from the EVENT_IDX %s guest" % m)
        totals = {m: {kind: {"echoes": 0, "seconds": 0.0, "counters": {q: {c: 0 for c in COUNTERS if c != "event_idx"} for q in QUEUES}}
                         for kind in ("serial", "burst")} for m in modes}
        gauges = {}
        for _ in range(a.rounds):
            for kind, fn in (("serial", serial), ("burst", burst)):
                for m, (_, udp, http) in modes.items():
                    before = metrics(http)
                    t0 = time.perf_counter()
                    n = fn(udp, a.duration)
                    dt = time.perf_counter() - t0
                    after = metrics(http)
                    gauges[m] = {q: after[q].get("event_idx") for q in QUEUES}
                    t = totals[m][kind]
                    t["echoes"] += n
                    t["seconds"] += dt
                    d = delta(after, before)
                    for q in QUEUES:
                        for c in d[q]:
                            t["counters"][q][c] += d[q][c]
        report = {"duration_per_phase_s": a.duration, "rounds": a.rounds, "modes": {}}
        for m in modes:
            report["modes"][m] = {"event_idx_gauge": gauges.get(m)}
            for kind in ("serial", "burst"):
                t = totals[m][kind]
                e = max(1, t["echoes"])
                per = {q: {c.replace("_total", "") + "_per_echo": round(t["counters"][q][c] / e, 4) for c in t["counters"][q]
                           if c != "packets_total"} for q in QUEUES}
                report["modes"][m][kind] = {"echoes": t["echoes"], "echoes_per_s": round(t["echoes"] / t["seconds"], 1), **per}
        for kind in ("serial", "burst"):
            on, off = report["modes"]["on"][kind]["echoes_per_s"], report["modes"]["off"][kind]["echoes_per_s"]
            report[kind + "_echo_rate_ratio_on_over_off"] = round(on / off, 3) if off else None
        print(json.dumps(report, indent=1))
    finally:
        for p in procs.values():
            p.terminate()
        for p in procs.values():
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__":
    main()
