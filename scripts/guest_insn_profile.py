#!/usr/bin/env python3
"""Exactly how many guest instructions one echo or one HTTP request costs, and in which functions.

  scripts/guest_insn_profile.py [--kernel ELF] [--debug-elf ELF] [--load echo|http] [--count 300] [--top 40]

Boots the kernel on the bench's QEMU line (scripts/bench_vs_linux.py `ours_line`) with QEMU's own
execution log on (`-d exec,in_asm,nochain`: every translated block once with its instructions, and
every block executed, unchained so none is skipped). After a warm-up it switches the log to a fresh
file over QMP (HMP `logfile`), drives `--count` 64-byte UDP echoes (one outstanding) or HTTP GETs of
/hello on a new connection each, and switches the log away again. Every block executed in that
window adds its instruction count to the function holding its first address (`nm` of the debug ELF;
a block never spans a call). So the figures are exact counts, not samples: independent of host load,
and of TCG's timing. What they leave out is time that is not guest instructions: the MMIO exits
(the TX doorbell above all) and QEMU's own work.

Also lists who calls the runtime's allocation and reference-counting entry points, per echo or
request (the block executed just before each entry). The run is slow (logging every block): a few
hundred echoes take some seconds. Logs go to a temporary directory, removed at the end.
"""
import argparse, bisect, collections, os, re, shutil, socket, subprocess, sys, tempfile, time, urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from bench_vs_linux import first_echo, free_port, ours_line, stop  # noqa: E402
from guest_profile import QMP  # noqa: E402

RUNTIME = ("swift_retain", "swift_release", "swift_allocObject", "malloc", "free", "posix_memalign",
           "memset", "memcpy", "memmove")
TB_EXEC = re.compile(rb"Trace \d+: \S+ \[[0-9a-f]+/([0-9a-f]+)/")
TB_INSN = re.compile(rb"^0x([0-9a-f]{8,16}):")


def symbols(debug_elf):
    """(start addresses, names) of the text symbols, sorted."""
    out = subprocess.run(["nm", "-n", debug_elf], capture_output=True, text=True, check=True).stdout
    table = []
    for line in out.splitlines():
        parts = line.split(" ", 2)
        if len(parts) == 3 and parts[1] in "tTwW":
            table.append((int(parts[0], 16), parts[2]))
    names = [n for _, n in table]
    demangler = shutil.which("swift-demangle") or "/opt/swift/usr/bin/swift-demangle"
    if os.path.exists(demangler):
        res = subprocess.run([demangler, "--simplified", "--compact"], input="\n".join(names),
                             capture_output=True, text=True)
        if res.returncode == 0 and len(res.stdout.splitlines()) == len(names):
            names = res.stdout.splitlines()
    return [a for a, _ in table], names


def block_sizes(*logs):
    """Instructions of every translated block, by its first guest address (`in_asm` entries)."""
    sizes = {}
    for path in logs:
        start = None
        with open(path, "rb") as f:
            for line in f:
                m = TB_INSN.match(line)
                if m:
                    pc = int(m.group(1), 16)
                    if start is None:
                        start = pc
                        sizes[start] = 0
                    sizes[start] += 1
                elif line.startswith(b"IN:") or not line.strip():
                    start = None
    return sizes


def drive(load, udp, http, count):
    """`count` echoes or HTTP requests; returns how many were answered."""
    answered = 0
    if load == "echo":
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.connect(("127.0.0.1", udp))
        s.settimeout(1.0)
        body = bytes(range(64))
        for _ in range(count):
            s.send(body)
            try:
                if s.recv(256) == body:
                    answered += 1
            except socket.timeout:
                pass
        s.close()
        return answered
    for _ in range(count):
        # urllib sends `Connection: close`: a new connection per request, as the bench's wrk.
        with urllib.request.urlopen(f"http://127.0.0.1:{http}/hello", timeout=5) as reply:
            if reply.status == 200 and reply.read():
                answered += 1
    return answered


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kernel", default=os.path.join(ROOT, "kernel", "build", "ringside.elf"))
    ap.add_argument("--debug-elf", default=os.path.join(ROOT, "kernel", "build", "ringside.debug.elf"))
    ap.add_argument("--load", choices=["echo", "http"], default="echo")
    ap.add_argument("--count", type=int, default=300)
    ap.add_argument("--top", type=int, default=40)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="rs-insn-")
    boot_log, window_log, after_log = (os.path.join(work, n) for n in ("boot.log", "window.log", "after.log"))
    qmp_path = os.path.join(work, "qmp.sock")
    udp, http = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_STREAM)
    line = ours_line(args.kernel, "", udp, http, os.path.join(work, "serial.log")) + [
        "-d", "exec,in_asm,nochain", "-D", boot_log, "-qmp", f"unix:{qmp_path},server=on,wait=off"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(line, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if first_echo(udp, t0, 120.0, proc) is None:
            raise SystemExit("guest_insn_profile: the kernel never echoed")
        drive(args.load, udp, http, 20)  # warm-up: every block of the path translated
        time.sleep(0.3)
        qmp = QMP(qmp_path)
        hmp = lambda text: qmp.call("human-monitor-command", **{"command-line": text})
        hmp(f"logfile {window_log}")
        answered = drive(args.load, udp, http, args.count)
        time.sleep(0.05)
        hmp(f"logfile {after_log}")
    finally:
        stop(proc)
    try:
        addresses, names = symbols(args.debug_elf)

        def function(pc):
            i = bisect.bisect_right(addresses, pc) - 1
            return names[i] if i >= 0 else "?"

        sizes = block_sizes(boot_log, window_log)
        per_function = collections.Counter()
        callers = collections.Counter()
        runtime = {a: n for a, n in zip(addresses, names) if n in RUNTIME}
        total, previous = 0, None
        with open(window_log, "rb") as f:
            for m in TB_EXEC.finditer(f.read()):
                pc = int(m.group(1), 16)
                n = sizes.get(pc, 0)
                per_function[function(pc)] += n
                total += n
                if pc in runtime and previous is not None:
                    callers[(runtime[pc], function(previous))] += 1
                previous = pc
    finally:
        shutil.rmtree(work, ignore_errors=True)
    unit, units = ("echo", "echoes") if args.load == "echo" else ("request", "requests")
    per = max(answered, 1)
    print(f"guest_insn_profile: {answered}/{args.count} {units} answered; {total:,} guest instructions, "
          f"{total / per:,.0f} per {unit}")
    print(f"{'per ' + unit:>10s} {'share':>6s}  function")
    for name, n in per_function.most_common(args.top):
        print(f"{n / per:10.0f} {100 * n / max(total, 1):5.1f}%  {name[:140]}")
    print(f"\nruntime calls per {unit} (callee <- caller):")
    for (callee, caller), n in callers.most_common(args.top // 2):
        print(f"{n / per:8.2f}  {callee} <- {caller[:120]}")


if __name__ == "__main__":
    main()
