#!/usr/bin/env bash
# CPU cost of the TUI: `ringside attach` at 30 snapshots/s (so 30 frames/s) on 256-entry
# virtio-net queues, in a 200x60 tmux window, while a UDP flood runs through the guest's echo
# service. Measures utime+stime of the TUI process from /proc/<pid>/stat over DURATION seconds
# and prints it as a percentage of one core. Target (BRIEF.md): under 3%.
#
# Usage: scripts/bench-tui.sh [DURATION]      (env: RINGSIDE_BIN, RINGSIDE_KERNEL, FPS)
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10}
FPS=${FPS:-30}
KERNEL=${RINGSIDE_KERNEL:-kernel/build/ringside.elf}
if [ -z "${RINGSIDE_BIN:-}" ]; then
    swift build -c release --scratch-path .build-tui --product ringside >&2
    RINGSIDE_BIN=$(swift build -c release --scratch-path .build-tui --show-bin-path)/ringside
fi
for tool in tmux qemu-system-x86_64 python3; do
    command -v "$tool" >/dev/null || { echo "bench-tui: $tool is required" >&2; exit 2; }
done
[ -r "$KERNEL" ] || { echo "bench-tui: no kernel at $KERNEL (make -C kernel)" >&2; exit 2; }

DIR=$(mktemp -d /tmp/rs-bench-XXXXXX)
UDP_PORT=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
QEMU_PID=
cleanup() {
    tmux -S "$DIR/tmux.sock" kill-server 2>/dev/null || true
    [ -n "$QEMU_PID" ] && kill "$QEMU_PID" 2>/dev/null && wait "$QEMU_PID" 2>/dev/null || true
    rm -rf "$DIR"
}
trap cleanup EXIT

qemu-system-x86_64 -machine pc -m 32 -nodefaults -no-user-config -display none -no-reboot -accel tcg \
    -kernel "$KERNEL" -chardev "file,id=ser0,path=$DIR/serial.log" -serial chardev:ser0 \
    -netdev "user,id=n0,hostfwd=udp:127.0.0.1:$UDP_PORT-:7" \
    -device virtio-net-pci,netdev=n0,id=net0,disable-legacy=on,rx_queue_size=256,tx_queue_size=256 \
    -device virtio-serial-pci,id=vser,disable-legacy=on \
    -chardev "socket,id=con0c,path=$DIR/console.sock,server=on,wait=off" -device virtconsole,chardev=con0c,id=con0 \
    >"$DIR/qemu.log" 2>&1 &
QEMU_PID=$!
for _ in $(seq 200); do grep -q "ringside: ready" "$DIR/serial.log" 2>/dev/null && break; sleep 0.05; done

tmux -S "$DIR/tmux.sock" new-session -d -s bench -x 200 -y 60 \
    "env TERM=xterm-256color LANG=C.UTF-8 $RINGSIDE_BIN attach $DIR/console.sock --rate $FPS --fps $FPS"
TUI_PID=
for _ in $(seq 100); do
    TUI_PID=$(pgrep -f "^$RINGSIDE_BIN attach $DIR/console.sock" | head -1 || true)
    [ -n "$TUI_PID" ] && break
    sleep 0.05
done
[ -n "$TUI_PID" ] || { echo "bench-tui: the TUI did not start" >&2; exit 1; }
sleep 1.5   # connected, first frames drawn

# UDP flood: 64-byte datagrams with up to 8 outstanding, for the whole measurement.
python3 - "$UDP_PORT" "$((DURATION + 2))" >"$DIR/flood.txt" <<'PY' &
import socket, sys, time
port, secs = int(sys.argv[1]), float(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(0.05)
end = time.time() + secs; sent = got = 0; outstanding = 0
while time.time() < end:
    while outstanding < 8:
        s.sendto(b"x" * 64, ("127.0.0.1", port)); sent += 1; outstanding += 1
    try:
        s.recv(2048); got += 1; outstanding -= 1
    except socket.timeout:
        outstanding = 0
print(f"{sent} sent, {got} echoed, {got / secs:.0f} echoes/s")
PY
FLOOD_PID=$!
sleep 1
ticks() { awk '{print $14 + $15}' "/proc/$TUI_PID/stat"; }
echo "TUI pid $TUI_PID: $(tr "\0" " " < /proc/$TUI_PID/cmdline)" >&2
T0=$(ticks); S0=$(date +%s.%N)
sleep "$DURATION"
T1=$(ticks); S1=$(date +%s.%N)
wait "$FLOOD_PID" || true
HZ=$(getconf CLK_TCK)
tmux -S "$DIR/tmux.sock" capture-pane -p -t bench | sed -n '1,8p' >&2
echo "flood: $(cat "$DIR/flood.txt")"
python3 -c "
t=($T1-$T0)/$HZ; w=$S1-$S0
print(f'TUI CPU at {$FPS} fps, 200x60, 256-entry queues under UDP: {t:.2f} s CPU in {w:.1f} s = {100*t/w:.2f}% of one core')"
