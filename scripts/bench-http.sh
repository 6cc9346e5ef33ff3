#!/bin/sh
# HTTP benchmark of the kernel under QEMU: boots kernel/build/ringside.elf with port 80
# forwarded, runs wrk (Debian's `wrk`) against GET / and GET /metrics, and prints
# requests/s with p50/p99 latency. Falls back to a Python keep-alive client without wrk.
#
#   scripts/bench-http.sh                 # TCG, 8 connections, 5 s per path
#   ACCEL=kvm scripts/bench-http.sh       # KVM (-cpu kvm64) where it boots
#   CONNECTIONS=16 DURATION=10 scripts/bench-http.sh
set -eu
cd "$(dirname "$0")/.."
KERNEL=${KERNEL:-kernel/build/ringside.elf}
ACCEL=${ACCEL:-tcg}
CONNECTIONS=${CONNECTIONS:-8}
DURATION=${DURATION:-5}
PORT=${PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}
LOG=$(mktemp /tmp/bench-http.XXXXXX.log)

case "$ACCEL" in
    kvm) ACCEL_ARGS="-accel kvm -cpu kvm64" ;;
    *) ACCEL_ARGS="-accel tcg" ;;
esac
# shellcheck disable=SC2086
qemu-system-x86_64 -machine pc -m 16 -nodefaults -display none -no-reboot $ACCEL_ARGS \
    -kernel "$KERNEL" -serial "file:$LOG" \
    -netdev "user,id=n0,hostfwd=tcp:127.0.0.1:$PORT-:80" \
    -device virtio-net-pci,netdev=n0,id=net0,disable-legacy=on &
QEMU=$!
trap 'kill $QEMU 2>/dev/null || true' EXIT INT TERM

i=0
until curl -s -m 1 -o /dev/null "http://127.0.0.1:$PORT/"; do
    i=$((i + 1))
    if [ $i -gt 100 ]; then echo "bench-http: kernel did not answer HTTP (log: $LOG)" >&2; exit 1; fi
    sleep 0.2
done

echo "ringside HTTP benchmark: accel $ACCEL, $CONNECTIONS keep-alive connections, ${DURATION}s per path"
for path in / /metrics; do
    if command -v wrk >/dev/null 2>&1; then
        out=$(wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency "http://127.0.0.1:$PORT$path")
        rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
        p50=$(echo "$out" | awk '$1 == "50%" {print $2}')
        p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
        errors=$(echo "$out" | awk '/Non-2xx|Socket errors/ {print}' | tr '\n' ' ')
        printf '%-9s %10s req/s   p50 %8s   p99 %8s   %s\n' "$path" "$rps" "$p50" "$p99" "${errors:-no errors}"
    else
        python3 - "$PORT" "$path" "$CONNECTIONS" "$DURATION" <<'PY'
import http.client, sys, threading, time
port, path, conns, duration = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
lat, stop = [], time.time() + duration
def run():
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    while time.time() < stop:
        t = time.perf_counter(); c.request("GET", path); c.getresponse().read(); lat.append(time.perf_counter() - t)
ts = [threading.Thread(target=run) for _ in range(conns)]
[t.start() for t in ts]; [t.join() for t in ts]
lat.sort()
print(f"{path:9s} {len(lat)/duration:10.0f} req/s   p50 {lat[len(lat)//2]*1e3:7.2f}ms   p99 {lat[int(len(lat)*.99)]*1e3:7.2f}ms   (python client)")
PY
    fi
done
echo "tcp: $(curl -s "http://127.0.0.1:$PORT/metrics" | grep -E '^ringside_tcp_(retransmits_total|timeouts_total|connections_accepted_total|active_connections) ' | tr '\n' ' ')"
