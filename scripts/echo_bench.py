#!/usr/bin/env python3
"""Ringside's own small UDP echo benchmark (used by scripts/bench.sh when the shared one is absent).

  echo_bench.py --port P [--launch "CMD"] [--duration 5] [--size 64]

With --launch, CMD (split like a shell would, no shell run) is started in its own process group and the
time from starting it to the first UDP echo is reported; the group is stopped at the end.
Then datagrams of --size bytes are echoed with exactly one outstanding for --duration seconds.
Prints one JSON object; exit 1 if nothing was echoed or an echo came back altered."""
import argparse, json, os, shlex, signal, socket, subprocess, sys, time


def first_echo(port, t0, limit, proc):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.005)
    try:
        while time.perf_counter() - t0 < limit:
            if proc is not None and proc.poll() is not None:
                return None
            try:
                s.sendto(b"probe", ("127.0.0.1", port))
                if s.recv(64) == b"probe":
                    return time.perf_counter() - t0
            except (socket.timeout, ConnectionRefusedError):
                pass
        return None
    finally:
        s.close()


def round_trips(port, size, duration):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect(("127.0.0.1", port))
    s.settimeout(0.25)
    payload = os.urandom(size)
    rtts, lost, bad = [], 0, 0
    end = time.perf_counter() + duration
    while time.perf_counter() < end:
        t = time.perf_counter()
        s.send(payload)
        try:
            while True:
                r = s.recv(65536)
                if r == payload:
                    rtts.append(time.perf_counter() - t)
                    break
                bad += 1
        except socket.timeout:
            lost += 1
    s.close()
    rtts.sort()
    q = lambda p: round(rtts[min(len(rtts) - 1, int(p / 100 * len(rtts)))] * 1e6, 1) if rtts else None
    return {"size": size, "round_trips_per_s": round(len(rtts) / duration, 1), "p50_us": q(50),
            "p99_us": q(99), "lost": lost, "altered": bad}


def stop_group(proc):
    """Ends a launched QEMU (started in its own process group) and all it started: SIGTERM,
    then SIGKILL after 3 s."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(3)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--launch")
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--boot-timeout", type=float, default=60.0)
    a = ap.parse_args()
    proc = None
    result = {}
    t0 = time.perf_counter()
    if a.launch:
        proc = subprocess.Popen(shlex.split(a.launch), stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        boot = first_echo(a.port, t0, a.boot_timeout, proc)
        if a.launch:
            result["start_to_first_echo_ms"] = None if boot is None else round(boot * 1000, 1)
        if boot is None:
            print(json.dumps(result))
            print("no echo came back", file=sys.stderr)
            return 1
        result.update(round_trips(a.port, a.size, a.duration))
        print(json.dumps(result))
        return 1 if result["altered"] or not result["round_trips_per_s"] else 0
    finally:
        if proc is not None:
            stop_group(proc)


if __name__ == "__main__":
    sys.exit(main())
