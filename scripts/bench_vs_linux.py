#!/usr/bin/env python3
"""Our kernel and the Linux reference guest side by side: the serving figures, measured in one run.

  scripts/bench_vs_linux.py [--rounds 3] [--duration 4] [--warmup 1] [--json FILE] [--kernel ELF] [--append ARGS]

Both guests run on the same QEMU line (pc, TCG, user networking, virtio-net-pci modern, firmware
qboot when installed; Linux through its PVH entry as our kernel boots, -m 128 for Linux, -m 16 for
ours) one at a time, in rounds whose order alternates (ours first, then Linux first, ...), so a
drift of the shared host shows in both. Every figure is the median over the rounds; the ratio is
ours over Linux's (for latencies lower is better, so the goal is a ratio of at most 0.5).

Measured per guest and round, on a freshly booted QEMU, after --warmup seconds of echo and of HTTP
(the same for both guests: first use of a path after a boot costs TCG translation, and the first
burst of connections overflows the forwarding socket's backlog; the boot figure comes before it):
  boot      QEMU start -> first UDP echo (probe every 5 ms)
  echo64    64-byte UDP echo, one datagram outstanding: rate, p50, p99
  udp32     UDP with 32 datagrams outstanding, 64 and 1400 bytes: echoed datagrams/s
  http      HTTP GET /hello (a fixed ~20-byte body on both) with a new connection per request (wrk -H 'Connection: close', 8
            connections): requests/s, p50, p99
            and, from the host's /proc/net/netstat over the same seconds, the SYNs QEMU's
            forwarding socket dropped (its listen backlog is 1) and the SYNs clients sent again
  http1     the same with one client (no waits in QEMU's listen backlog of 1)
  http-ka   keep-alive HTTP (ours alone: the Linux peer's server speaks HTTP/1.0 and closes)

The results go to --json (default bench-results/vs-linux.json); when that file already holds a
previous run, the table shows the change of each of our figures against it.
"""
import argparse, json, os, select, shutil, socket, statistics, struct, subprocess, sys, tempfile, time, urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from echo_bench import first_echo  # noqa: E402  (QEMU start -> first echo, probing every 5 ms)


def free_port(kind):
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def pct(values, p):
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, max(0, int(round(p / 100.0 * len(v) + 0.5)) - 1))]


QBOOT = "/usr/share/qemu/qboot.rom"


def firmware_args():
    return ["-bios", QBOOT] if os.path.exists(QBOOT) else []


def ours_line(kernel, append, udp, http, serial):
    line = ["qemu-system-x86_64", "-machine", "pc", "-m", "16", "-nodefaults", "-no-user-config",
            "-display", "none", "-accel", "tcg"] + firmware_args() + ["-kernel", kernel]
    if append:
        line += ["-append", append]
    return line + ["-serial", f"file:{serial}",
                   "-netdev", f"user,id=n0,ipv6=off,hostfwd=udp:127.0.0.1:{udp}-:7,hostfwd=tcp:127.0.0.1:{http}-:80",
                   "-device", "virtio-net-pci,netdev=n0,id=net0,disable-legacy=on"]


def linux_line(udp, http, serial):
    peer = os.path.join(ROOT, "..", "shared", "bench", "linux-peer.sh")
    return [peer, "run", "--udp-port", str(udp), "--http-port", str(http), "--accel", "tcg", "--boot", "pvh",
            "--serial", serial, "--"] + firmware_args()


def echo_one_outstanding(port, size, duration):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect(("127.0.0.1", port))
    s.settimeout(0.25)
    body = bytes((i * 7 + 3) & 0xFF for i in range(size))
    rtts, lost, seq = [], 0, 0
    t_start = time.perf_counter()
    while time.perf_counter() - t_start < duration:
        seq += 1
        msg = struct.pack("<Q", seq) + body[8:]
        t = time.perf_counter_ns()
        s.send(msg)
        while True:
            try:
                r = s.recv(65536)
            except (socket.timeout, ConnectionRefusedError):
                lost += 1
                break
            if r[:8] != msg[:8]:
                continue  # a late echo of an earlier, timed-out request
            if r == msg:
                rtts.append(time.perf_counter_ns() - t)
            break
    elapsed = time.perf_counter() - t_start
    s.close()
    return {"rate": len(rtts) / elapsed, "p50_us": pct(rtts, 50) / 1e3 if rtts else None,
            "p99_us": pct(rtts, 99) / 1e3 if rtts else None, "lost": lost}


def echo_window(port, size, duration, window=32):
    """Keeps `window` datagrams outstanding; a datagram not echoed within 50 ms is given up (counted
    lost) and replaced. Returns echoed datagrams per second."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect(("127.0.0.1", port))
    s.setblocking(False)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    pad = bytes(max(0, size - 8))
    outstanding = {}  # seq -> send time
    seq, echoed, lost = 0, 0, 0
    t_start = time.perf_counter()
    end = t_start + duration
    while True:
        now = time.perf_counter()
        if now >= end:
            break
        for k in [k for k, t in outstanding.items() if now - t > 0.05]:
            del outstanding[k]
            lost += 1
        while len(outstanding) < window:
            seq += 1
            try:
                s.send(struct.pack("<Q", seq) + pad)
            except (BlockingIOError, ConnectionRefusedError):
                break
            outstanding[seq] = time.perf_counter()
        select.select([s], [], [], 0.01)
        while True:
            try:
                r = s.recv(65536)
            except (BlockingIOError, ConnectionRefusedError):
                break
            k = struct.unpack("<Q", r[:8])[0]
            if outstanding.pop(k, None) is not None and len(r) == size:
                echoed += 1
    elapsed = time.perf_counter() - t_start
    s.close()
    return {"rate": echoed / elapsed, "lost": lost}


def wrk(port, duration, close, connections=8):
    if not shutil.which("wrk"):
        return None
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", "--latency", "--timeout", "2s"]
    if close:
        cmd += ["-H", "Connection: close"]
    # /hello: a fixed 20-byte body from our kernel; the Linux peer answers every path with its
    # fixed 22-byte body. The same work on both sides (GET / is our status page, built per request).
    out = subprocess.run(cmd + [f"http://127.0.0.1:{port}/hello"], capture_output=True, text=True, timeout=duration + 30).stdout

    def ms(text):
        for unit, f in (("us", 1e-3), ("ms", 1.0), ("s", 1e3)):
            if text.endswith(unit):
                return float(text[: -len(unit)]) * f
        return None
    res = {"rps": None, "p50_ms": None, "p99_ms": None, "errors": ""}
    for line in out.splitlines():
        parts = line.split()
        if line.startswith("Requests/sec:"):
            res["rps"] = float(parts[1])
        elif len(parts) == 2 and parts[0] == "50%":
            res["p50_ms"] = ms(parts[1])
        elif len(parts) == 2 and parts[0] == "99%":
            res["p99_ms"] = ms(parts[1])
        elif "Socket errors" in line or "Non-2xx" in line:
            res["errors"] += line.strip() + " "
    return res


def wait_for_http(port, seconds=10.0):
    """Until a TCP connection to the forwarded HTTP port is accepted (or `seconds` pass)."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def qemu_cpu_s(pid):
    """Seconds the host scheduler has run QEMU (every thread: vCPU, main loop with slirp, I/O)."""
    total = 0
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                total += int(open(f"/proc/{pid}/task/{tid}/schedstat").read().split()[0])
            except (OSError, ValueError):
                pass
    except OSError:
        return None
    return total / 1e9


def host_tcpext():
    """The host's TcpExt counters (/proc/net/netstat) that say when QEMU's forwarding socket lost
    connections: ListenOverflows (a SYN dropped, its listen queue full) and TCPSynRetrans (a
    client sent its SYN again, 1 s later)."""
    out = {}
    try:
        lines = open("/proc/net/netstat").read().splitlines()
    except OSError:
        return out
    for names, values in zip(lines[::2], lines[1::2]):
        if names.startswith("TcpExt:") and values.startswith("TcpExt:"):
            table = dict(zip(names.split()[1:], values.split()[1:]))
            for key in ("ListenOverflows", "TCPSynRetrans"):
                if key in table:
                    out[key] = int(table[key])
    return out


def kernel_metrics(http):
    """Our kernel's /metrics as {name or name{labels}: value}; {} when it cannot be read."""
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{http}/metrics", timeout=5).read().decode()
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            try:
                out[key] = float(value)
            except ValueError:
                pass
    return out


class Breakdown:
    """Where the time of one figure went, per echoed datagram: QEMU's host CPU (all threads) and,
    for our kernel, its busy time (uptime - halted, from its TSC), kicks and interrupts."""

    def __init__(self, pid, http, ours):
        self.pid, self.http, self.ours = pid, http, ours
        self.cpu0, self.t0 = qemu_cpu_s(pid), time.perf_counter()
        self.m0 = kernel_metrics(http) if ours else {}

    def finish(self, echoes):
        if not echoes:
            return {}
        cpu1, t1 = qemu_cpu_s(self.pid), time.perf_counter()
        out = {}
        if self.cpu0 is not None and cpu1 is not None:
            out["qemu_cpu_us_per_echo"] = (cpu1 - self.cpu0) / echoes * 1e6
            out["qemu_cores"] = (cpu1 - self.cpu0) / (t1 - self.t0)
        if self.ours:
            m1 = kernel_metrics(self.http)
            d = lambda k: m1.get(k, 0) - self.m0.get(k, 0)
            busy = d("ringside_uptime_seconds") - d("ringside_cpu_idle_seconds_total")
            out["guest_busy_us_per_echo"] = busy / echoes * 1e6
            # Of the busy time, polling for work before halting (MainLoop.pollForWork).
            out["guest_poll_us_per_echo"] = d("ringside_cpu_poll_seconds_total") / echoes * 1e6
            out["kicks_per_echo"] = sum(d(f'ringside_queue_kicks_total{{queue="{q}"}}') for q in ("net0.rx", "net0.tx")) / echoes
            out["irqs_per_echo"] = sum(d(f'ringside_queue_interrupts_total{{queue="{q}"}}') for q in ("net0.rx", "net0.tx")) / echoes
        return out


def stop(proc):
    """Ends a QEMU started with Popen: SIGTERM, then SIGKILL after 5 s."""
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def warm_up(udp, http, seconds):
    """Echo and HTTP for `seconds` each, the same for every guest measured: the first use of each
    path after a boot costs translation under TCG, and the first burst of connections overflows
    the backlog of QEMU's forwarding socket (wrk's first run after a boot: p99 171 ms; the next:
    1.7 ms)."""
    if seconds > 0:
        echo_one_outstanding(udp, 64, seconds)
        wrk(http, seconds, close=True)


def measure(name, line, udp, http, duration, warmup=1.0):
    t0 = time.perf_counter()
    proc = subprocess.Popen(line, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        boot = first_echo(udp, t0, 60.0, proc)
        if boot is None:
            raise SystemExit(f"bench_vs_linux: {name} never echoed (QEMU line: {' '.join(line)})")
        wait_for_http(http)  # Linux starts its server after the echo
        r = {"boot_s": boot}
        warm_up(udp, http, warmup)
        ours = name == "ours"
        b = Breakdown(proc.pid, http, ours)
        e = echo_one_outstanding(udp, 64, duration)
        r.update({"echo64_rate": e["rate"], "echo64_p50_us": e["p50_us"], "echo64_p99_us": e["p99_us"]})
        r.update({"echo64_" + k: v for k, v in b.finish(e["rate"] * duration).items()})
        b = Breakdown(proc.pid, http, ours)
        w = echo_window(udp, 64, duration)
        r["udp32_64_rate"] = w["rate"]
        r.update({"udp32_64_" + k: v for k, v in b.finish(w["rate"] * duration).items()})
        r["udp32_1400_rate"] = echo_window(udp, 1400, duration)["rate"]
        b = Breakdown(proc.pid, http, ours)
        n0 = host_tcpext()
        h = wrk(http, duration, close=True)
        n1 = host_tcpext()
        if "ListenOverflows" in n0 and "ListenOverflows" in n1:
            r["http_close_listen_overflows"] = n1["ListenOverflows"] - n0["ListenOverflows"]
            r["http_close_syn_retrans"] = n1.get("TCPSynRetrans", 0) - n0.get("TCPSynRetrans", 0)
        if h and h["rps"]:
            r.update({"http_close_" + k: v for k, v in b.finish(h["rps"] * duration).items()})
        if h:
            r.update({"http_close_rps": h["rps"], "http_close_p50_ms": h["p50_ms"], "http_close_p99_ms": h["p99_ms"]})
            if h["errors"]:
                r["http_close_errors"] = h["errors"].strip()
        # One client: no connect waits in the backlog of QEMU's forwarding socket (see ROWS).
        h1 = wrk(http, duration, close=True, connections=1)
        if h1:
            r.update({"http_close1_rps": h1["rps"], "http_close1_p50_ms": h1["p50_ms"], "http_close1_p99_ms": h1["p99_ms"]})
        if name == "ours":
            k = wrk(http, duration, close=False)
            if k:
                r.update({"http_ka_rps": k["rps"], "http_ka_p50_ms": k["p50_ms"], "http_ka_p99_ms": k["p99_ms"]})
        return r
    finally:
        stop(proc)


# (key, label, unit, higher is better, goal on ours/linux or None)
ROWS = [
    ("boot_s", "QEMU start -> first echo", "s", False, None),
    ("echo64_rate", "64 B echo, 1 outstanding", "/s", True, 2.0),
    ("echo64_p50_us", "  p50", "us", False, None),
    ("echo64_p99_us", "  p99", "us", False, 0.5),
    ("udp32_64_rate", "UDP 64 B, 32 outstanding", "/s", True, 2.0),
    ("udp32_1400_rate", "UDP 1400 B, 32 outstanding", "/s", True, 2.0),
    ("http_close_rps", "HTTP, new connection/request", "req/s", True, 2.0),
    ("http_close_p50_ms", "  p50", "ms", False, None),
    ("http_close_p99_ms", "  p99", "ms", False, 0.5),
    # The host's side of that p99: SYNs its listen queue dropped, and SYNs sent again (1 s each).
    ("http_close_listen_overflows", "  host: SYNs dropped", "", False, None),
    ("http_close_syn_retrans", "  host: SYNs sent again", "", False, None),
    # QEMU's user networking listens on the forwarded port with a backlog of 1 (`ss -ltn`): with 8
    # clients connecting at once the host drops SYNs (TcpExtListenOverflows) and the client resends
    # them after its 1 s timeout, for either guest. So the 8-client p99 is mostly the host's; one
    # client at a time shows the guest's own latency.
    ("http_close1_rps", "HTTP, new connection, 1 client", "req/s", True, 2.0),
    ("http_close1_p50_ms", "  p50", "ms", False, None),
    ("http_close1_p99_ms", "  p99", "ms", False, 0.5),
    ("http_ka_rps", "HTTP keep-alive (ours only)", "req/s", True, None),
    ("http_ka_p99_ms", "  p99", "ms", False, None),
]
# Where the time goes, per echoed 64-byte datagram (one outstanding, then 32 outstanding).
BREAKDOWN = [
    ("qemu_cpu_us_per_echo", "QEMU host CPU per echo", "us"),
    ("qemu_cores", "QEMU cores busy", ""),
    ("guest_busy_us_per_echo", "guest busy (TSC) per echo", "us"),
    ("guest_poll_us_per_echo", "  of it polling before hlt", "us"),
    ("kicks_per_echo", "kicks per echo", ""),
    ("irqs_per_echo", "interrupts per echo", ""),
]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=4.0, help="seconds per measurement")
    ap.add_argument("--warmup", type=float, default=1.0,
                    help="seconds of echo and of HTTP on each fresh guest before measuring (0: none)")
    ap.add_argument("--kernel", default=os.path.join(ROOT, "kernel", "build", "ringside.elf"))
    ap.add_argument("--append", default="", help="our kernel's command line")
    ap.add_argument("--json", default=os.path.join(ROOT, "bench-results", "vs-linux.json"))
    args = ap.parse_args()
    run_dir = tempfile.mkdtemp(prefix="rs-vslinux-")
    previous = None
    if os.path.exists(args.json):
        try:
            previous = json.load(open(args.json))
        except (OSError, ValueError):
            previous = None
    results = {"ours": [], "linux": []}
    print(f"bench_vs_linux: {args.rounds} rounds, {args.duration:g} s per figure, TCG, "
          f"firmware {'qboot' if firmware_args() else 'seabios'}, kernel {args.kernel} ({os.path.getsize(args.kernel)} bytes)",
          flush=True)
    for rnd in range(args.rounds):
        order = ["ours", "linux"] if rnd % 2 == 0 else ["linux", "ours"]
        for who in order:
            udp, http = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_STREAM)
            serial = os.path.join(run_dir, f"{who}-{rnd}.log")
            line = ours_line(args.kernel, args.append, udp, http, serial) if who == "ours" else linux_line(udp, http, serial)
            r = measure(who, line, udp, http, args.duration, args.warmup)
            results[who].append(r)
            print(f"round {rnd + 1} {who:5s}: " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                                           for k, v in r.items()), flush=True)
    med = {who: {} for who in results}
    for who, runs in results.items():
        keys = [k for k, *_ in ROWS] + [p + k for p in ("echo64_", "udp32_64_", "http_close_") for k, *_ in BREAKDOWN]
        for key in keys:
            vals = [r[key] for r in runs if r.get(key) is not None]
            med[who][key] = statistics.median(vals) if vals else None
    print()
    print(f"{'figure':32s} {'ours':>12s} {'Linux':>12s} {'ours/Linux':>11s} {'goal':>7s}  {'vs last run':>11s}")
    summary = {}
    for key, label, unit, higher, goal in ROWS:
        o, l = med["ours"].get(key), med["linux"].get(key)
        ratio = o / l if o is not None and l else None
        met = ""
        if goal is not None and ratio is not None:
            met = ("≥" if higher else "≤") + f"{goal:g}x " + ("ok" if (ratio >= goal if higher else ratio <= goal) else "MISS")
        last = ""
        if previous and o is not None:
            p = previous.get("median", {}).get("ours", {}).get(key)
            if p:
                last = f"{(o / p - 1) * 100:+.1f} %"
        fmt = lambda v: "-" if v is None else (f"{v:,.0f} {unit}" if v >= 100 else f"{v:.3g} {unit}")
        print(f"{label:32s} {fmt(o):>12s} {fmt(l):>12s} {('-' if ratio is None else f'{ratio:.2f}x'):>11s} {met:>7s}  {last:>11s}")
        summary[key] = ratio
    print()
    print("where the time goes, per echo (64 B, 1 and 32 outstanding) and per HTTP request (new connection)")
    print(f"{'':32s} {'ours 1 out':>11s} {'Linux 1 out':>11s} {'ours 32 out':>11s} {'Linux 32 out':>12s} {'ours HTTP':>10s} {'Linux HTTP':>10s}")
    for key, label, unit in BREAKDOWN:
        cells = []
        for prefix in ("echo64_", "udp32_64_", "http_close_"):
            for who in ("ours", "linux"):
                v = med[who].get(prefix + key)
                cells.append("-" if v is None else f"{v:.3g} {unit}".strip())
        print(f"{label.replace(' per echo', ''):32s} {cells[0]:>11s} {cells[1]:>11s} {cells[2]:>11s} {cells[3]:>12s} {cells[4]:>10s} {cells[5]:>10s}")
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump({"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "rounds": args.rounds, "duration_s": args.duration,
                   "kernel_bytes": os.path.getsize(args.kernel), "runs": results, "median": med, "ratio": summary}, f, indent=1)
    print(f"\nresults: {args.json}" + (" (compared with the previous run it held)" if previous else ""))
    shutil.rmtree(run_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
