#!/usr/bin/env python3
"""Two builds of our kernel side by side, in one run: is B cheaper than A?

  scripts/bench_ab.py --a BASE.elf --b NEW.elf [--rounds 5] [--duration 3] [--append ARGS] [--json FILE]

Both kernels boot on the QEMU line of scripts/bench_vs_linux.py (`ours_line`), one at a time, in
rounds whose order alternates (A first, then B first, ...), so a drift of the shared host shows in
both. Each figure is the median over the rounds; the ratio is B/A (for rates higher is better, for
latencies and costs lower is better).

Measured per kernel and round, on a freshly booted QEMU (the pieces of bench_vs_linux.py):
  echo64    64-byte UDP echo, one datagram outstanding: rate, p50, p99, and the guest's busy time
            per echo (uptime - halted, from /metrics: the kernel's TSC)
  udp32     64-byte UDP with 32 datagrams outstanding: echoed datagrams/s, guest busy per echo
  http8     HTTP GET /hello, a new connection per request, 8 clients (wrk): requests/s, p99,
            guest busy per request
  http1     the same with one client: requests/s, p50, p99, guest busy per request

Guest busy is the steadiest figure on a quiet host; on a loaded host time the host takes the vCPU
away while it is not halted counts as busy, so read it beside the load average printed at the end.

--icount adds `-icount shift=0,sleep=on` to both QEMU lines: the guest's clock (and so its TSC)
then advances 1 ns per guest instruction while it runs, so "guest busy" becomes guest instructions
(1 us = 1,000 instructions), independent of host load; within 1-2 % from run to run. Rates and
latencies under --icount are not the bench's (TCG runs slower with it): compare them only A to B.
"""
import argparse, json, os, shutil, socket, statistics, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from bench_vs_linux import (Breakdown, echo_one_outstanding, echo_window, first_echo,  # noqa: E402
                            free_port, ours_line, stop, wait_for_http, warm_up, wrk)

# (key, label, unit, higher is better)
ROWS = [
    ("echo64_rate", "64 B echo, 1 outstanding", "/s", True),
    ("echo64_p50_us", "  p50", "us", False),
    ("echo64_p99_us", "  p99", "us", False),
    ("echo64_busy_us", "  guest busy per echo", "us", False),
    ("echo64_poll_us", "    of it polling before hlt", "us", False),
    ("echo64_qemu_us", "  QEMU host CPU per echo", "us", False),
    ("udp32_rate", "UDP 64 B, 32 outstanding", "/s", True),
    ("udp32_busy_us", "  guest busy per echo", "us", False),
    ("http8_rps", "HTTP new conn., 8 clients", "req/s", True),
    ("http8_p99_ms", "  p99", "ms", False),
    ("http8_busy_us", "  guest busy per request", "us", False),
    ("http1_rps", "HTTP new conn., 1 client", "req/s", True),
    ("http1_p50_ms", "  p50", "ms", False),
    ("http1_p99_ms", "  p99", "ms", False),
    ("http1_busy_us", "  guest busy per request", "us", False),
]


ICOUNT = ["-icount", "shift=0,sleep=on"]


def measure(kernel, append, duration, serial, extra=()):
    """One freshly booted QEMU with `kernel` (and `extra` QEMU arguments): every figure of ROWS."""
    udp, http = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_STREAM)
    line = ours_line(kernel, append, udp, http, serial) + list(extra)
    t0 = time.perf_counter()
    proc = subprocess.Popen(line, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if first_echo(udp, t0, 60.0, proc) is None:
            raise SystemExit(f"bench_ab: {kernel} never echoed (QEMU line: {' '.join(line)})")
        wait_for_http(http)
        warm_up(udp, http, 1.0)  # as bench_vs_linux.py measures
        r = {}
        b = Breakdown(proc.pid, http, True)
        e = echo_one_outstanding(udp, 64, duration)
        cost = b.finish(e["rate"] * duration)
        r.update({"echo64_rate": e["rate"], "echo64_p50_us": e["p50_us"], "echo64_p99_us": e["p99_us"],
                  "echo64_busy_us": cost.get("guest_busy_us_per_echo"),
                  "echo64_poll_us": cost.get("guest_poll_us_per_echo"), "echo64_qemu_us": cost.get("qemu_cpu_us_per_echo")})
        b = Breakdown(proc.pid, http, True)
        w = echo_window(udp, 64, duration)
        r.update({"udp32_rate": w["rate"], "udp32_busy_us": b.finish(w["rate"] * duration).get("guest_busy_us_per_echo")})
        for key, clients in (("http8", 8), ("http1", 1)):
            b = Breakdown(proc.pid, http, True)
            h = wrk(http, duration, close=True, connections=clients)
            if not h or not h["rps"]:
                continue
            r.update({f"{key}_rps": h["rps"], f"{key}_p50_ms": h["p50_ms"], f"{key}_p99_ms": h["p99_ms"],
                      f"{key}_busy_us": b.finish(h["rps"] * duration).get("guest_busy_us_per_echo")})
            if h["errors"]:
                r[f"{key}_errors"] = h["errors"].strip()
        return r
    finally:
        stop(proc)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", required=True, help="kernel ELF A (the baseline)")
    ap.add_argument("--b", required=True, help="kernel ELF B (the change)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--duration", type=float, default=3.0, help="seconds per measurement")
    ap.add_argument("--append", default="", help="both kernels' command line")
    ap.add_argument("--json", default=None, help="write every round and the medians here")
    ap.add_argument("--icount", action="store_true", help="guest busy in guest instructions (see above)")
    args = ap.parse_args()
    kernels = {"A": args.a, "B": args.b}
    for name, path in kernels.items():
        if not os.path.exists(path):
            raise SystemExit(f"bench_ab: kernel {name} {path} does not exist")
    run_dir = tempfile.mkdtemp(prefix="rs-ab-")
    load0 = os.getloadavg()
    print(f"bench_ab: {args.rounds} rounds, {args.duration:g} s per figure; A {args.a} ({os.path.getsize(args.a)} bytes), "
          f"B {args.b} ({os.path.getsize(args.b)} bytes); load average {load0[0]:.2f}"
          + ("; -icount: guest busy 1 us = 1,000 guest instructions" if args.icount else ""), flush=True)
    results = {"A": [], "B": []}
    for rnd in range(args.rounds):
        for who in (("A", "B") if rnd % 2 == 0 else ("B", "A")):
            r = measure(kernels[who], args.append, args.duration, os.path.join(run_dir, f"{who}-{rnd}.log"),
                        ICOUNT if args.icount else ())
            results[who].append(r)
            print(f"round {rnd + 1} {who}: " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                                       for k, v in r.items()), flush=True)
    med = {}
    for who, runs in results.items():
        med[who] = {}
        for key, *_ in ROWS:
            vals = [r[key] for r in runs if r.get(key) is not None]
            med[who][key] = statistics.median(vals) if vals else None
    print()
    print(f"{'figure (medians)':30s} {'A':>12s} {'B':>12s} {'B/A':>7s}  better")
    ratios = {}
    for key, label, unit, higher in ROWS:
        a, b = med["A"][key], med["B"][key]
        ratio = b / a if a and b is not None else None
        ratios[key] = ratio
        better = "" if ratio is None or ratio == 1 else ("B" if (ratio > 1) == higher else "A")
        fmt = lambda v: "-" if v is None else (f"{v:,.0f} {unit}" if v >= 100 else f"{v:.3g} {unit}")
        print(f"{label:30s} {fmt(a):>12s} {fmt(b):>12s} {('-' if ratio is None else f'{ratio:.3f}'):>7s}  {better}")
    load1 = os.getloadavg()
    print(f"\nload average at the start {load0[0]:.2f}, at the end {load1[0]:.2f} (2 cores: above ~1 the busy figures inflate)")
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump({"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "a": args.a, "b": args.b, "rounds": args.rounds, "icount": args.icount,
                       "duration_s": args.duration, "load": [load0[0], load1[0]], "runs": results, "median": med,
                       "ratio_b_over_a": ratios}, f, indent=1)
    shutil.rmtree(run_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
