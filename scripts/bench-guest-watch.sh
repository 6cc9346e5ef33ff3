#!/usr/bin/env bash
# bench-guest-watch.sh — cost of watching any guest through its memory: the Linux reference guest's
# UDP echo rate unwatched vs with `ringside watch --qmp --memory --rate HZ` running (alternating
# phases in one run), and the watcher's CPU (utime+stime over wall time) while it runs.
# The guest has two virtio-net devices (net0 carries the echo; net1, on its own user netdev, is
# there to be watched): 4 queues of 256 (net0/net1 rx, tx) plus two ctrl queues of 64.
#   scripts/bench-guest-watch.sh [HZ=60] [SECONDS=8] [ROUNDS=2] [MODE=human|json]
# The watcher is .build/debug/ringside by default: what `make run` builds and users run
# (RINGSIDE_BIN=.build/release/ringside measures a release build). The last line gives the
# medians over the rounds (the echo rate moves more between phases than watching moves it: use
# 5 rounds or more and read the median ratio).
set -euo pipefail
HZ=${1:-60}; SECS=${2:-8}; ROUNDS=${3:-2}; MODE=${4:-human}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=${BENCH:-$HERE/../shared/bench}
BIN=${RINGSIDE_BIN:-$HERE/.build/debug/ringside}
D=$(mktemp -d /tmp/rs-gbench-XXXXXX); MEM=/dev/shm/$(basename "$D").ram
UDP=$(python3 -c 'import socket;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
HTTP=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
"$BENCH/linux-peer.sh" run --udp-port "$UDP" --http-port "$HTTP" --serial "$D/serial.log" -- \
  -object memory-backend-file,id=ram0,size=128M,mem-path="$MEM",share=on -machine memory-backend=ram0 \
  -qmp unix:"$D/qmp.sock",server=on,wait=off -qmp unix:"$D/qmp2.sock",server=on,wait=off \
  -netdev user,id=n1,ipv6=off -device virtio-net-pci,netdev=n1,id=net1,disable-legacy=on >"$D/qemu.log" 2>&1 &
QPID=$!
trap 'kill $QPID 2>/dev/null; rm -rf "$D" "$MEM"' EXIT
echo_rate() { python3 "$BENCH/udp-echo-bench.py" --port "$UDP" --duration "$SECS" --sizes 64 --warmup 1 \
  | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)))'; }
for i in $(seq 100); do python3 -c "
import socket,sys; s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.settimeout(0.3); s.sendto(b'x',('127.0.0.1',$UDP))
try: s.recv(10); sys.exit(0)
except Exception: sys.exit(1)" && break; sleep 0.3; done
# The queues watched (name:size), once the guest answers.
echo "queues: $("$BIN" watch --qmp "$D/qmp.sock" --memory "$MEM" --json --count 1 2>/dev/null | python3 -c '
import json,sys; s=json.loads(sys.stdin.readline())
print(" ".join("%s.%s:%s" % (d["name"], q["name"].split(".")[-1], q.get("size")) for d in s["devices"] for q in d["queues"]))')"
jiffies() { awk '{print $14+$15}' /proc/$1/stat; }
HZTICK=$(getconf CLK_TCK)
for r in $(seq "$ROUNDS"); do
  U=$(echo_rate)
  echo "round $r unwatched: $U"
  if [ "$MODE" = json ]; then ARGS=(--json); else ARGS=(); fi
  "$BIN" watch --qmp "$D/qmp.sock" --memory "$MEM" --rate "$HZ" "${ARGS[@]}" >/dev/null 2>"$D/watch.err" &
  W=$!; sleep 1.5; J0=$(jiffies $W); T0=$(date +%s.%N)
  OUT=$(echo_rate)
  J1=$(jiffies $W); T1=$(date +%s.%N); kill $W; wait $W 2>/dev/null || true
  CPU=$(python3 -c "print(round(100*($J1-$J0)/$HZTICK/($T1-$T0),2))")
  echo "round $r watched at $HZ Hz ($MODE): $OUT"
  echo "round $r watcher CPU: $CPU % of one core"
  RATIO=$(python3 -c "
import json,sys
def rate(t):
    d=json.loads(t)
    def find(o):
        if isinstance(o,dict):
            for k,v in o.items():
                if k == 'rate_per_s' and isinstance(v,(int,float)): return v
                r=find(v)
                if r is not None: return r
        if isinstance(o,list):
            for v in o:
                r=find(v)
                if r is not None: return r
    return find(d)
u,w=rate('''$U'''),rate('''$OUT''')
print(round(w/u,3) if u and w else 'n/a')")
  echo "round $r echo-rate ratio watched/unwatched: $RATIO"
  echo "$CPU $RATIO" >>"$D/rounds"
done
python3 - "$D/rounds" "$HZ" "$MODE" "$ROUNDS" "$BIN" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
cpu = [float(c) for c, _ in rows]
ratio = [float(r) for _, r in rows if r != 'n/a']
print("median over %s rounds at %s Hz (%s, %s): watcher CPU %.2f %% of one core (min %.2f, max %.2f); echo-rate ratio %s (min %s, max %s)" % (
    sys.argv[4], sys.argv[2], sys.argv[3], sys.argv[5].split('/.build/')[-1],
    statistics.median(cpu), min(cpu), max(cpu),
    round(statistics.median(ratio), 3) if ratio else 'n/a', min(ratio) if ratio else 'n/a', max(ratio) if ratio else 'n/a'))
PY
