#!/usr/bin/env python3
"""What watching costs: UDP echo round trips/s with telemetry off / read at 10 Hz / read at 60 Hz.

  telemetry_bench.py --port P --console SOCK --launch "QEMU ..." [--duration 5] [--size 64]

Starts the guest (CMD split like a shell would, no shell run), waits for the first echo, then, each
for --duration seconds with exactly one datagram outstanding:
  off     nobody connected to the console socket (QEMU discards what the kernel sends)
  10 Hz   a client connected, reading everything, after a `hello` (the default snapshot rate)
  60 Hz   the same client after `setSnapshotRate 60`
repeated --rounds times (alternating, so drift on a shared machine hits every mode alike; the
figures are means), and the telemetry bytes/s the client read, under that load and at idle (no traffic).

The client is a separate process (so it does not compete for this one's GIL); it speaks the wire
format directly (docs/protocol.md: COBS, CRC-32C, command frames) and just counts bytes, so what is
measured is the guest's cost of producing telemetry, not the host's cost of rendering it.
Prints one JSON object."""
import argparse, json, os, shlex, socket, struct, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from echo_bench import first_echo, round_trips, stop_group  # noqa: E402


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def cobs(data):
    out, block = bytearray(), bytearray()
    for b in data:
        if b == 0:
            out += bytes([len(block) + 1]) + block
            block = bytearray()
        else:
            block.append(b)
            if len(block) == 254:
                out += b"\xff" + block
                block = bytearray()
    out += bytes([len(block) + 1]) + block
    return bytes(out)


def command(seq, kind, payload=b""):
    body = bytes([1, 0x81]) + struct.pack("<I", seq) + bytes([kind]) + payload
    body += struct.pack("<I", crc32c(body))
    return b"\x00" + cobs(body) + b"\x00"


HELLO, SET_RATE = 1, 6


def reader(sock_path, ctl_path, out_path):
    """Child process: connect, say hello, then obey lines on ctl_path's fifo: 'rate N', 'mark', 'quit'."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sock_path)
    seq = 1
    s.sendall(command(seq, HELLO))
    ctl = os.open(ctl_path, os.O_RDONLY | os.O_NONBLOCK)
    total, marks, pending = 0, [], b""
    s.setblocking(False)
    import select
    while True:
        r, _, _ = select.select([s, ctl], [], [], 1.0)
        if s in r:
            try:
                data = s.recv(1 << 20)
            except BlockingIOError:
                data = None
            if data == b"":
                break
            if data:
                total += len(data)
        if ctl in r:
            chunk = os.read(ctl, 4096)
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                words = line.decode().split()
                if not words:
                    continue
                if words[0] == "rate":
                    seq += 1
                    s.setblocking(True)
                    s.sendall(command(seq, SET_RATE, struct.pack("<H", int(words[1]))))
                    s.setblocking(False)
                elif words[0] == "mark":
                    marks.append((time.perf_counter(), total))
                    with open(out_path, "w") as f:
                        json.dump(marks, f)
                elif words[0] == "quit":
                    return


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--console", required=True)
    ap.add_argument("--launch", required=True)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=2, help="off/10 Hz/60 Hz rounds (default 2)")
    ap.add_argument("--summary", action="store_true", help="after the JSON, a few human-readable lines")
    ap.add_argument("--reader", nargs=3, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.reader:
        reader(*a.reader)
        return 0

    proc = subprocess.Popen(shlex.split(a.launch), stdin=subprocess.DEVNULL, start_new_session=True)
    tmp = os.path.dirname(a.console)
    fifo, marks_file = os.path.join(tmp, "bench.ctl"), os.path.join(tmp, "bench.marks")
    child = None
    result = {}
    try:
        if first_echo(a.port, time.perf_counter(), 60, proc) is None:
            print("no echo came back", file=sys.stderr)
            return 1
        round_trips(a.port, a.size, 1.0)  # warm-up
        os.mkfifo(fifo)
        runs = {"off": [], "hz10": [], "hz60": []}
        load_bytes = {"hz10": [], "hz60": []}

        def start_client():
            c = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--port", "0", "--console", a.console,
                                  "--launch", "-", "--reader", a.console, fifo, marks_file])
            return c, os.open(fifo, os.O_WRONLY)

        def send(fd, line):
            os.write(fd, (line + "\n").encode())

        def mark(fd):
            send(fd, "mark")
            time.sleep(0.2)
            with open(marks_file) as f:
                return json.load(f)[-1]

        def measured(fd, key):
            m0 = mark(fd)
            r = round_trips(a.port, a.size, a.duration)
            m1 = mark(fd)
            runs[key].append(r)
            load_bytes[key].append((m1[1] - m0[1]) / (m1[0] - m0[0]))

        # Alternate the modes so drift on a shared machine hits all of them alike.
        for _ in range(a.rounds):
            runs["off"].append(round_trips(a.port, a.size, a.duration))
            child, ctl = start_client()
            time.sleep(1.0)  # hello, full snapshot, settle
            measured(ctl, "hz10")
            send(ctl, "rate 60")
            time.sleep(0.5)
            measured(ctl, "hz60")
            send(ctl, "rate 10")
            send(ctl, "quit")
            child.wait(5)
            os.close(ctl)
            child = None
            time.sleep(0.5)
        # Idle: no traffic.
        child, ctl = start_client()
        time.sleep(1.0)
        for hz in (10, 60):
            send(ctl, f"rate {hz}")
            time.sleep(0.5)
            m0 = mark(ctl)
            time.sleep(a.duration)
            m1 = mark(ctl)
            result[f"idle_hz{hz}_telemetry_bytes_per_s"] = round((m1[1] - m0[1]) / (m1[0] - m0[0]))
        send(ctl, "rate 10")
        send(ctl, "quit")
        child.wait(5)
        child = None

        mean = lambda xs: sum(xs) / len(xs)
        for key, rs in runs.items():
            result[key] = {"round_trips_per_s": round(mean([r["round_trips_per_s"] for r in rs]), 1),
                           "runs": [r["round_trips_per_s"] for r in rs],
                           "p50_us": round(mean([r["p50_us"] or 0 for r in rs]), 1),
                           "p99_us": round(mean([r["p99_us"] or 0 for r in rs]), 1),
                           "lost": sum(r["lost"] for r in rs)}
            if key in load_bytes:
                result[key]["telemetry_bytes_per_s"] = round(mean(load_bytes[key]))
        off = result["off"]["round_trips_per_s"]
        result["ratio_hz10_vs_off"] = round(result["hz10"]["round_trips_per_s"] / off, 3) if off else None
        result["ratio_hz60_vs_off"] = round(result["hz60"]["round_trips_per_s"] / off, 3) if off else None
        print(json.dumps(result))
        if a.summary:
            r = result
            print(f"telemetry off:   {off:8.0f} round trips/s  p50 {r['off']['p50_us']} us  p99 {r['off']['p99_us']} us  runs {r['off']['runs']}")
            for k, name in (("hz10", "10 Hz"), ("hz60", "60 Hz")):
                x = r[k]
                print(f"reading at {name}: {x['round_trips_per_s']:8.0f} round trips/s  ratio {r['ratio_' + k + '_vs_off']:.3f}"
                      f"  p50 {x['p50_us']} us  p99 {x['p99_us']} us  runs {x['runs']}  telemetry {x['telemetry_bytes_per_s']} B/s under load")
            print(f"telemetry at idle: {r['idle_hz10_telemetry_bytes_per_s']} B/s at 10 Hz, {r['idle_hz60_telemetry_bytes_per_s']} B/s at 60 Hz")
        return 0
    finally:
        if child is not None and child.poll() is None:
            child.kill()
        stop_group(proc)


if __name__ == "__main__":
    sys.exit(main())
