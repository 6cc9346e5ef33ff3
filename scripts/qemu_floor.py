#!/usr/bin/env python3
"""QEMU's own start: from the process's start to the guest's first instruction.

  scripts/qemu_floor.py --serial FILE [--runs 9] -- QEMU LINE...

The line boots kernel/build/empty-pvh.elf (kernel/boot/empty-pvh.S: its first instruction writes
one byte to COM1) with the serial port on FILE; the time until FILE holds that byte is QEMU's
start alone: process start, machine and device set-up, firmware/loader, with nothing of ours. It
is the floor under any kernel's "QEMU start -> first echo" on that line, which scripts/bench.sh
prints beside our kernel's. Prints one line: min and median over the runs, in ms.
"""
import argparse, os, statistics, subprocess, sys, time

from bench_vs_linux import stop  # noqa: E402  (ends a QEMU: SIGTERM, then SIGKILL)


def first_byte_ms(line, serial, limit=10.0):
    if os.path.exists(serial):
        os.unlink(serial)
    t0 = time.perf_counter()
    proc = subprocess.Popen(line, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while time.perf_counter() - t0 < limit:
            if os.path.exists(serial) and os.path.getsize(serial) > 0:
                return (time.perf_counter() - t0) * 1000
            if proc.poll() is not None:
                return None
            time.sleep(0.0002)
        return None
    finally:
        stop(proc)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--serial", required=True, help="the file the line's serial port writes")
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("line", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    line = args.line[1:] if args.line[:1] == ["--"] else args.line
    times = [t for t in (first_byte_ms(line, args.serial) for _ in range(args.runs)) if t is not None]
    if not times:
        sys.exit("qemu_floor: the empty kernel never wrote to the serial port")
    print(f"min {min(times):.1f} ms, median {statistics.median(times):.1f} ms over {len(times)} runs")


if __name__ == "__main__":
    main()
