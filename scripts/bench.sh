#!/usr/bin/env bash
# Benchmarks (numbers, not pass/fail):
#   - QEMU start -> first UDP echo (TCG), pc and microvm, beside QEMU's own start on the same lines
#   - 64-byte UDP echo round trips per second, one outstanding (p50/p99)
#   - what watching costs: echo round trips/s with telemetry off vs read at 10 Hz vs 60 Hz (ratios),
#     telemetry bytes/s under load and at idle (scripts/telemetry_bench.py)
#   - kicks and interrupts per echoed datagram with VIRTIO_F_RING_EVENT_IDX on vs off, echo rates
#     in both modes, same run (scripts/notify_bench.py)
#   - Wire decoder throughput, MB/s (scripts/fuzz-wire.sh --bench; SKIP_DECODER_BENCH=1 skips it)
# Uses ../shared/bench/udp-echo-bench.py when present (the same tool that measured the Linux
# reference in TOOLCHAIN.md), else scripts/echo_bench.py.
# Env: KERNEL (default kernel/build/ringside.elf), DURATION (s, default 5), MEM (MiB, default 16),
#      ECHO_BENCH=own to use scripts/echo_bench.py even when the shared tool exists,
#      FIRST_ECHO_RUNS (runs per machine, default 5), FIRST_ECHO_ONLY=1 to run only that section.
set -euo pipefail
cd "$(dirname "$0")/.."

KERNEL=${KERNEL:-kernel/build/ringside.elf}
DURATION=${DURATION:-5}
MEM=${MEM:-16}
[ -r "$KERNEL" ] || { echo "bench: no kernel at $KERNEL (make kernel)" >&2; exit 1; }

free_port() { python3 -c 'import socket,sys; s=socket.socket(socket.AF_INET, getattr(socket, sys.argv[1])); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' "$1"; }
UDP=$(free_port SOCK_DGRAM)
HTTP=$(free_port SOCK_STREAM)
RUN=$(mktemp -d "${TMPDIR:-/tmp}/ringside-bench-XXXXXX")
trap 'rm -rf "$RUN"' EXIT

# The same line `ringside run` uses (Sources/RingsideKit/QEMUConfiguration.swift), started directly
# so the launched pid is QEMU's.
# Firmware as `ringside run` picks it: qboot when installed (FIRMWARE=seabios for QEMU's default).
BIOS_ARGS=""; FIRMWARE_NAME=seabios
if [ "${FIRMWARE:-qboot}" = qboot ] && [ -r /usr/share/qemu/qboot.rom ]; then
    BIOS_ARGS="-bios /usr/share/qemu/qboot.rom"; FIRMWARE_NAME=qboot
fi
# qemu_line UDP HTTP [DIR] [APPEND]: DIR holds the guest's sockets and serial log ($RUN by default).
qemu_line() { local dir=${3:-$RUN}; echo "qemu-system-x86_64 -machine pc -m $MEM -nodefaults -no-user-config -display none -accel tcg $BIOS_ARGS \
 -kernel $KERNEL ${4:+-append $4} \
 -chardev file,id=ser0,path=$dir/serial.log -serial chardev:ser0 \
 -netdev user,id=n0,hostfwd=udp:127.0.0.1:$1-:7,hostfwd=tcp:127.0.0.1:$2-:80 \
 -device virtio-net-pci,netdev=n0,id=net0,disable-legacy=on \
 -device virtio-serial-pci,id=vser,disable-legacy=on \
 -chardev socket,id=con0c,path=$dir/console.sock,server=on,wait=off -device virtconsole,chardev=con0c,id=con0 \
 -qmp unix:$dir/qmp.sock,server=on,wait=off -device isa-debug-exit,iobase=0xf4,iosize=0x04"; }
QEMU=$(qemu_line "$UDP" "$HTTP")
# qemu_line_microvm UDP HTTP DIR: the same guest on QEMU microvm (`ringside run --machine microvm`):
# virtio-mmio devices, no PCI, its own minimal firmware.
qemu_line_microvm() { echo "qemu-system-x86_64 -machine microvm,x-option-roms=off,acpi=off,pic=off,rtc=off -global virtio-mmio.force-legacy=off \
 -m $MEM -nodefaults -no-user-config -display none -accel tcg -kernel $KERNEL \
 -chardev file,id=ser0,path=$3/serial.log -serial chardev:ser0 \
 -netdev user,id=n0,hostfwd=udp:127.0.0.1:$1-:7,hostfwd=tcp:127.0.0.1:$2-:80 \
 -device virtio-net-device,netdev=n0,id=net0 -device virtio-serial-device,id=vser \
 -chardev socket,id=con0c,path=$3/console.sock,server=on,wait=off -device virtconsole,chardev=con0c,id=con0 \
 -qmp unix:$3/qmp.sock,server=on,wait=off"; }

echo "bench: kernel $KERNEL ($(stat -c %s "$KERNEL") bytes), -m $MEM, TCG, firmware $FIRMWARE_NAME, UDP port $UDP"
SHARED=../shared/bench/udp-echo-bench.py
if [ -n "${FIRST_ECHO_ONLY:-}" ]; then
    :
elif [ -f "$SHARED" ] && [ "${ECHO_BENCH:-}" != own ]; then
    python3 "$SHARED" --port "$UDP" --duration "$DURATION" --sizes 64 --launch "$QEMU" --label ringside
else
    python3 scripts/echo_bench.py --port "$UDP" --duration "$DURATION" --size 64 --launch "$QEMU"
fi

# QEMU start -> first UDP echo, pc ($FIRMWARE_NAME) and microvm side by side, alternating
# (FIRST_ECHO_RUNS each, default 5), with the kernel's own ready time from its boot log.
if [ -f "$SHARED" ]; then
    echo "bench: QEMU start -> first UDP echo, pc+$FIRMWARE_NAME vs microvm (seconds; kernel's 'ready' timestamp in brackets)"
    mkdir -p "$RUN/pc" "$RUN/microvm"
    for i in $(seq "${FIRST_ECHO_RUNS:-5}"); do
        for machine in pc microvm; do
            U=$(free_port SOCK_DGRAM); H=$(free_port SOCK_STREAM); rm -f "$RUN/$machine"/*
            if [ $machine = pc ]; then LINE=$(qemu_line "$U" "$H" "$RUN/pc"); else LINE=$(qemu_line_microvm "$U" "$H" "$RUN/microvm"); fi
            FIRST=$(python3 "$SHARED" --port "$U" --duration 0.2 --warmup 0 --sizes 64 --launch "$LINE" --label "$machine" \
                | python3 -c 'import json,sys; print(json.load(sys.stdin)["boot_to_first_echo_s"])')
            READY=$(sed -n 's/^\[ *\([0-9.]*\)\] ringside: ready/\1/p' "$RUN/$machine/serial.log")
            printf '  %-8s run %d: first echo %s s [kernel ready at %s s]\n' "$machine" "$i" "$FIRST" "$READY"
        done
    done
    # The floor under those: QEMU's own start on the same lines, with an empty PVH kernel whose
    # first instruction writes to COM1 (kernel/boot/empty-pvh.S, scripts/qemu_floor.py).
    make -s -C kernel build/empty-pvh.elf
    echo "bench: QEMU's own start on the same lines (empty PVH kernel: QEMU start -> its first COM1 byte)"
    for machine in pc microvm; do
        U=$(free_port SOCK_DGRAM); H=$(free_port SOCK_STREAM); rm -f "$RUN/$machine"/*
        if [ $machine = pc ]; then LINE=$(KERNEL=kernel/build/empty-pvh.elf qemu_line "$U" "$H" "$RUN/pc")
        else LINE=$(KERNEL=kernel/build/empty-pvh.elf qemu_line_microvm "$U" "$H" "$RUN/microvm"); fi
        # shellcheck disable=SC2086
        printf '  %-8s %s\n' "$machine" "$(python3 scripts/qemu_floor.py --serial "$RUN/$machine/serial.log" --runs "${FIRST_ECHO_RUNS:-5}" -- $LINE)"
    done
fi
[ -z "${FIRST_ECHO_ONLY:-}" ] || exit 0

# What watching costs, on a fresh guest with the same line (new ports).
UDP=$(free_port SOCK_DGRAM)
HTTP=$(free_port SOCK_STREAM)
rm -f "$RUN"/*.sock
QEMU_T=$(qemu_line "$UDP" "$HTTP")
echo "bench: telemetry cost (64-byte echo, one outstanding, ${DURATION}s per phase; UDP port $UDP)"
python3 scripts/telemetry_bench.py --port "$UDP" --console "$RUN/console.sock" --duration "$DURATION" --size 64 --launch "$QEMU_T" --summary

# Notifications per echo with VIRTIO_F_RING_EVENT_IDX on and off: two guests side by side,
# phases alternating between them (scripts/notify_bench.py).
mkdir -p "$RUN/on" "$RUN/off"
UDP_ON=$(free_port SOCK_DGRAM); HTTP_ON=$(free_port SOCK_STREAM)
UDP_OFF=$(free_port SOCK_DGRAM); HTTP_OFF=$(free_port SOCK_STREAM)
echo "bench: kicks and interrupts per echo, EVENT_IDX on vs off (${DURATION}s per phase, alternating)"
python3 scripts/notify_bench.py --duration "$DURATION" \
    --launch-on "$(qemu_line "$UDP_ON" "$HTTP_ON" "$RUN/on")" --udp-on "$UDP_ON" --http-on "$HTTP_ON" \
    --launch-off "$(qemu_line "$UDP_OFF" "$HTTP_OFF" "$RUN/off" virtio.event_idx=off)" --udp-off "$UDP_OFF" --http-off "$HTTP_OFF"

if [ -z "${SKIP_DECODER_BENCH:-}" ]; then
    echo "bench: Wire decoder throughput (scripts/fuzz-wire.sh --bench)"
    scripts/fuzz-wire.sh --bench
fi
