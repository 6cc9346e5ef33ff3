#!/usr/bin/env bash
# bench-guest-watch.sh — cost of watching any guest through its memory: the Linux reference guest's
# UDP echo rate unwatched vs with `ringside watch --qmp --memory --rate HZ` running, and the
# watcher's CPU (utime+stime over wall time) while it runs.
# The guest has two virtio-net devices (net0 carries the echo; net1, on its own user netdev, is
# there to be watched): 4 queues of 256 (net0/net1 rx, tx) plus two ctrl queues of 64.
#
#   scripts/bench-guest-watch.sh [HZ=60] [PHASE_SECONDS=1.5] [ROUNDS=24] [MODE=human|json]
#
# Method (the echo rate drifts by ±25 % over tens of seconds on a shared host, far more than the
# effect measured): every watcher is started once and frozen with SIGSTOP; each round is one
# unwatched phase and one phase per watcher (SIGCONT … SIGSTOP), PHASE_SECONDS each, in a random
# order, back to back, so a round's phases see the same drift. A round's ratio is its watched
# echo rate over its unwatched one; the result is the median ratio over the rounds with its
# interquartile range, beside the same statistic for two unwatched phases (the bench's own
# resolution: a watched ratio inside that spread is no measurable effect).
# QEMU runs on CPU $QEMU_CPUS and the watchers and the echo client on $WATCH_CPUS (taskset;
# defaults 0 and 1 when the host has 2 CPUs or more) so that the watcher does not take the guest's
# core away from it.
# The watcher is .build/release/ringside by default: what `make run` builds and users run (built
# here if missing; RINGSIDE_BIN=.build/debug/ringside measures the debug build the tests use).
# RINGSIDE_BIN_BEFORE=path adds a second watcher (e.g. an older build) measured in the same rounds:
# before/after in one run.
# The watcher's CPU is the scheduler's own account of the time it ran (/proc/PID/schedstat, in
# nanoseconds), not utime+stime: those come in clock ticks (10 ms), as coarse as the effect over
# a 1.5 s phase (one tick is 0.67 % of it).
set -euo pipefail
HZ=${1:-60}; PHASE=${2:-1.5}; ROUNDS=${3:-24}; MODE=${4:-human}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=${BENCH:-$HERE/../shared/bench}
BIN=${RINGSIDE_BIN:-$HERE/.build/release/ringside}
if [ -z "${RINGSIDE_BIN:-}" ]; then (cd "$HERE" && swift build -c release --product ringside >&2); fi
BEFORE=${RINGSIDE_BIN_BEFORE:-}
if [ "$(nproc)" -ge 2 ]; then QEMU_CPUS=${QEMU_CPUS:-0}; WATCH_CPUS=${WATCH_CPUS:-1}; else QEMU_CPUS=${QEMU_CPUS:-}; WATCH_CPUS=${WATCH_CPUS:-}; fi
# (exec: started with `&`, the pid $! is the program's own.)
pin() { local cpus=$1; shift; if [ -n "$cpus" ]; then exec taskset -c "$cpus" "$@"; else exec "$@"; fi; }
D=$(mktemp -d /tmp/rs-gbench-XXXXXX); MEM=/dev/shm/$(basename "$D").ram
UDP=$(python3 -c 'import socket;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
HTTP=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
pin "$QEMU_CPUS" "$BENCH/linux-peer.sh" run --udp-port "$UDP" --http-port "$HTTP" --serial "$D/serial.log" -- \
  -object memory-backend-file,id=ram0,size=128M,mem-path="$MEM",share=on -machine memory-backend=ram0 \
  -qmp unix:"$D/qmp.sock",server=on,wait=off -qmp unix:"$D/qmp2.sock",server=on,wait=off \
  -netdev user,id=n1,ipv6=off -device virtio-net-pci,netdev=n1,id=net1,disable-legacy=on >"$D/qemu.log" 2>&1 &
QPID=$!
WPIDS=()
cleanup() { for w in "${WPIDS[@]}"; do kill -CONT "$w" 2>/dev/null; kill "$w" 2>/dev/null; done; kill $QPID 2>/dev/null; rm -rf "$D" "$MEM"; }
trap cleanup EXIT
for i in $(seq 100); do python3 -c "
import socket,sys; s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.settimeout(0.3); s.sendto(b'x',('127.0.0.1',$UDP))
try: s.recv(10); sys.exit(0)
except Exception: sys.exit(1)" && break; sleep 0.3; done
# The queues watched (name:size), once the guest answers.
echo "queues: $("$BIN" watch --qmp "$D/qmp.sock" --memory "$MEM" --json --count 1 2>/dev/null | python3 -c '
import json,sys; s=json.loads(sys.stdin.readline())
print(" ".join("%s.%s:%s" % (d["name"], q["name"].split(".")[-1], q.get("size")) for d in s["devices"] for q in d["queues"]))')"
if [ "$MODE" = json ]; then ARGS=(--json); else ARGS=(); fi
NAMES=(); PIDS=()
# One QMP socket per watcher (QEMU serves one client per socket).
for spec in "after:qmp.sock:$BIN" ${BEFORE:+"before:qmp2.sock:$BEFORE"}; do
  name=${spec%%:*}; rest=${spec#*:}; sock=${rest%%:*}; bin=${rest#*:}
  pin "$WATCH_CPUS" "$bin" watch --qmp "$D/$sock" --memory "$MEM" --rate "$HZ" "${ARGS[@]}" >/dev/null 2>"$D/watch-$name.err" &
  WPIDS+=($!); NAMES+=("$name"); PIDS+=("$!")
done
sleep 1.5
for w in "${WPIDS[@]}"; do kill -STOP "$w"; done
echo "watchers: after=$BIN${BEFORE:+ before=$BEFORE} at $HZ Hz ($MODE); QEMU on CPU ${QEMU_CPUS:-any}, watchers and client on CPU ${WATCH_CPUS:-any}"
(pin "$WATCH_CPUS" python3 - "$UDP" "$PHASE" "$ROUNDS" "$(IFS=,; echo "${NAMES[*]}")" "$(IFS=,; echo "${PIDS[*]}")" <<'PY'
import os, random, signal, socket, statistics, sys, time
port, phase, rounds = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
names, pids = sys.argv[4].split(","), [int(p) for p in sys.argv[5].split(",")]
def cpu(pid):
    """Seconds the scheduler has run `pid` (all its threads): schedstat's first field, in ns."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        total += int(open(f"/proc/{pid}/task/{tid}/schedstat").read().split()[0])
    return total / 1e9
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(0.2)
seq = 0
def echo_rate(seconds):
    """Request/response, one datagram outstanding: echoes per second over `seconds`."""
    global seq
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        seq += 1
        msg = seq.to_bytes(8, "little") * 8
        s.sendto(msg, ("127.0.0.1", port))
        try:
            while s.recv(128) != msg: pass
            n += 1
        except socket.timeout:
            pass
    return n / (time.perf_counter() - t0)
echo_rate(1.0)  # warm-up
rng = random.Random(1)
ratios = {n: [] for n in names}; cpus = {n: [] for n in names}; aa = []
for r in range(rounds):
    order = [None, None] + names  # two unwatched phases (their ratio is the bench's resolution)
    rng.shuffle(order)
    rates = {}; unwatched = []
    for who in order:
        if who is None:
            time.sleep(0.1); unwatched.append(echo_rate(phase)); continue
        pid = pids[names.index(who)]
        os.kill(pid, signal.SIGCONT); time.sleep(0.1)
        c0, t0 = cpu(pid), time.monotonic()
        rates[who] = echo_rate(phase)
        c1, t1 = cpu(pid), time.monotonic()
        os.kill(pid, signal.SIGSTOP)
        cpus[who].append(100 * (c1 - c0) / (t1 - t0))
    base = statistics.mean(unwatched)
    aa.append(unwatched[1] / unwatched[0])
    for n in names: ratios[n].append(rates[n] / base)
    print("round %d: unwatched %.0f/s %.0f/s; %s" % (r + 1, unwatched[0], unwatched[1],
          "; ".join("%s %.0f/s (ratio %.3f, watcher %.2f %% CPU)" % (n, rates[n], ratios[n][-1], cpus[n][-1]) for n in names)), flush=True)
def q(v):
    v = sorted(v); k = statistics.quantiles(v, n=4) if len(v) >= 2 else [v[0]] * 3
    return "median %.3f (IQR %.3f–%.3f, min %.3f, max %.3f)" % (statistics.median(v), k[0], k[2], v[0], v[-1])
print("unwatched/unwatched (resolution): %s over %d rounds" % (q(aa), rounds))
for n in names:
    print("%s: echo ratio watched/unwatched %s; watcher CPU %% of one core %s" % (n, q(ratios[n]), q(cpus[n]).replace("median ", "")))
allcpu = {n: sum(cpus[n]) / len(cpus[n]) for n in names}
print("summary: " + "; ".join("%s CPU %.2f %% of one core over all watched phases, echo ratio median %.3f IQR %.3f–%.3f" % (
    n, allcpu[n], statistics.median(ratios[n]),
    statistics.quantiles(ratios[n], n=4)[0], statistics.quantiles(ratios[n], n=4)[2]) for n in names)
    + "; unwatched/unwatched IQR %.3f–%.3f (%d rounds of %.1f s phases)" % (
    statistics.quantiles(aa, n=4)[0], statistics.quantiles(aa, n=4)[2], rounds, phase))
PY
)
