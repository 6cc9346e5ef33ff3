#!/usr/bin/env python3
"""A sampling profile of our kernel under load, taken from outside: where its CPU time goes.

  scripts/guest_profile.py [--load echo|echo32|http] [--seconds 6] [--rate 300] [--top 25]

Boots kernel/build/ringside.elf on the bench's QEMU line with a QMP socket, drives a load from the
host (echo: 64-byte UDP, one outstanding; echo32: 32 outstanding; http: wrk, a new connection per
request on GET /hello), and meanwhile asks QEMU for the vCPU's instruction pointer (HMP `info
registers` through QMP) `--rate` times a second. Each RIP is mapped to the function holding it in
kernel/build/ringside.debug.elf (`nm -n`, names demangled by swift-demangle), and the functions are
listed by their share of the samples. Under TCG the vCPU answers at the end of a translated block
or at an I/O access, so samples lean towards where the guest does I/O (MMIO writes to the LAPIC
and the virtio notify register, `hlt`): read it as "where the vCPU stops", beside the TSC-based
busy time and the counters of scripts/bench_vs_linux.py, not as an exact per-function share.
Asking costs QEMU's main loop a little; the profile is of where the guest is, not of QEMU.
"""
import argparse, bisect, collections, json, os, shutil, socket, subprocess, sys, tempfile, threading, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from bench_vs_linux import echo_window, free_port, ours_line, wait_for_http  # noqa: E402  (the bench's QEMU line and load)


class QMP:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX)
        self.s.settimeout(10)
        self.s.connect(path)
        self.f = self.s.makefile("rb")
        json.loads(self.f.readline())
        self.call("qmp_capabilities")

    def call(self, cmd, **args):
        self.s.sendall(json.dumps({"execute": cmd, "arguments": args} if args else {"execute": cmd}).encode() + b"\n")
        while True:
            msg = json.loads(self.f.readline())
            if "return" in msg or "error" in msg:
                return msg


def symbols(elf):
    out = subprocess.run(["nm", "-n", "--defined-only", elf], capture_output=True, text=True).stdout
    addrs, names = [], []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] in "tTwW":
            addrs.append(int(parts[0], 16))
            names.append(parts[2])
    demangler = shutil.which("swift-demangle") or "/opt/swift/usr/bin/swift-demangle"
    if os.path.exists(demangler):
        d = subprocess.run([demangler, "--simplified", "--compact"], input="\n".join(names), capture_output=True, text=True).stdout
        dn = d.splitlines()
        if len(dn) == len(names):
            names = dn
    return addrs, names


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--load", choices=["echo", "echo32", "http"], default="echo")
    ap.add_argument("--seconds", type=float, default=6)
    ap.add_argument("--rate", type=float, default=300)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--kernel", default=os.path.join(ROOT, "kernel", "build", "ringside.elf"))
    args = ap.parse_args()
    debug_elf = args.kernel.replace("ringside.elf", "ringside.debug.elf")
    addrs, names = symbols(debug_elf if os.path.exists(debug_elf) else args.kernel)
    if not addrs:
        sys.exit(f"guest_profile: no symbols in {debug_elf}")
    run = tempfile.mkdtemp(prefix="rs-prof-")
    udp, http = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_STREAM)
    qmp_path = os.path.join(run, "qmp.sock")
    line = ours_line(args.kernel, "", udp, http, os.path.join(run, "serial.log")) + ["-qmp", f"unix:{qmp_path},server=on,wait=off"]
    qemu = subprocess.Popen(line, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_http(http)
        qmp = QMP(qmp_path)
        result = {}
        if args.load == "http":
            wrk = subprocess.Popen(["wrk", "-t1", "-c8", f"-d{max(1, round(args.seconds))}s", "-H", "Connection: close",
                                    f"http://127.0.0.1:{http}/hello"], stdout=subprocess.PIPE, text=True)
        else:
            window = 1 if args.load == "echo" else 32
            t = threading.Thread(target=lambda: result.setdefault("rate", echo_window(udp, 64, args.seconds, window)["rate"]))
            t.start()
        time.sleep(0.3)
        counts, samples, period = collections.Counter(), 0, 1.0 / args.rate
        end = time.perf_counter() + args.seconds - 0.6
        nxt = time.perf_counter()
        while time.perf_counter() < end:
            reply = qmp.call("human-monitor-command", **{"command-line": "info registers"})
            text = reply.get("return", "")
            i = text.find("RIP=")
            if i >= 0:
                rip = int(text[i + 4:i + 20], 16)
                k = bisect.bisect_right(addrs, rip) - 1
                counts[names[k] if k >= 0 else f"?{rip:#x}"] += 1
                samples += 1
            nxt += period
            time.sleep(max(0, nxt - time.perf_counter()))
        if args.load == "http":
            out = wrk.communicate()[0]
            load = next((l.strip() for l in out.splitlines() if l.startswith("Requests/sec")), "")
        else:
            t.join()
            load = f"{result.get('rate', 0):.0f} echoes/s"
        print(f"guest_profile: load {args.load} ({load}), {samples} samples at {args.rate:g} Hz")
        for name, c in counts.most_common(args.top):
            print(f"{100 * c / samples:6.1f} %  {name[:150]}")
    finally:
        qemu.terminate()
        qemu.wait()
        shutil.rmtree(run, ignore_errors=True)


if __name__ == "__main__":
    main()
