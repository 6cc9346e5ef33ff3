# Ringside top-level build.
#   make run    boot the kernel in QEMU and open the TUI
#   make test   the whole test suite: the kernel heap on the host, host unit tests, the real kernel in real QEMU
#   make bench  start-to-first-echo, echo round trips, telemetry cost (off vs 10 Hz vs 60 Hz), decoder MB/s
SWIFT      ?= swift
SWIFTFLAGS ?=
# `make run` runs an optimized build: a monitor that samples rings 60 times a second should cost
# what a release build costs (the debug build takes about twice the CPU: docs/any-guest.md).
# The tests build and run the debug configuration.
RINGSIDE   := .build/release/ringside

# The tests `test`'s later rounds, `test-packed` and `test-microvm` run again under another
# configuration: SystemTests (everything that starts QEMU or tmux), minus the any-guest tests
# (their subject is Linux's driver, or the memory view, not our kernel's rings).
KERNEL_TESTS      := SystemTests
KERNEL_TESTS_SKIP := Guest
# The hostile-peer tests exercise the network stack, which neither the notification mode nor
# the ring format changes; the packed round keeps the two that fill the rings (SYN flood,
# memory hog) and the dump-from-memory tests of our own kernel (GuestKernelTests).
EVENT_IDX_OFF_SKIP := $(KERNEL_TESTS_SKIP)|AttackTests
# Not on microvm: the tests of PCI, qboot and pc's QMP paths and HMP `info pci`; those that need
# queues larger than the MMIO driver's 256 entries or pc's command line (microvm puts its devices
# there); packed rings on pc's devices. MicrovmTests checks the transport's own paths.
MICROVM_SKIP := PackedRing|FirmwareTests|LauncherTests.testQMPQueueSizes|LauncherTests.testQemuArgs|TmuxRunTests.testInfoOverlay|KernelTests.testLargeQueues|KernelTests.testOverlongCommandLine|TelemetryTests.testStepOf257
PACKED_SKIP        := GuestLinux|GuestCapture|AttackTests.testARP|AttackTests.testSlowloris

.PHONY: test-packed test-microvm all deps kernel build run test bench clean

all: kernel build

deps:
	scripts/ensure-deps.sh

kernel:
	$(MAKE) -C kernel

build:
	$(SWIFT) build $(SWIFTFLAGS)

# `run` boots the kernel and opens the TUI; `make run RUNFLAGS=--headless` streams the serial console instead.
run: deps kernel
	$(SWIFT) build -c release --product ringside $(SWIFTFLAGS)
	$(RINGSIDE) run $(RUNFLAGS)

# The whole suite (swift test fails, and so make fails, when any test fails), in three rounds:
#   1. everything, on pc (PCI, MSI-X), split virtqueues, VIRTIO_F_RING_EVENT_IDX negotiated (the defaults);
#   2. the tests that boot our kernel again on QEMU microvm (virtio-mmio, IOAPIC) with EVENT_IDX
#      off (flags-based suppression): the second transport and the second notification mode;
#   3. the tests that boot our kernel again on packed virtqueues (virtio 1.2 §2.8: both devices
#      offer them, packed=on), EVENT_IDX on: every transport, ring format and notification mode
#      the kernel speaks is exercised end to end. `make test-packed` is round 3 with nothing
#      left out, `make test-microvm` round 2 with EVENT_IDX on.
test: deps kernel
	$(MAKE) -C kernel check
	$(SWIFT) test $(SWIFTFLAGS)
	RINGSIDE_MACHINE=microvm RINGSIDE_KERNEL_APPEND=virtio.event_idx=off $(SWIFT) test $(SWIFTFLAGS) \
	    --filter '$(KERNEL_TESTS)' --skip '$(EVENT_IDX_OFF_SKIP)|$(MICROVM_SKIP)'
	RINGSIDE_PACKED=1 $(SWIFT) test $(SWIFTFLAGS) \
	    --filter '$(KERNEL_TESTS)' --skip '$(PACKED_SKIP)'

# The tests that boot our kernel, with both devices offering packed virtqueues (packed=on).
test-packed: deps kernel
	RINGSIDE_PACKED=1 $(SWIFT) test $(SWIFTFLAGS) \
	    --filter '$(KERNEL_TESTS)' --skip 'GuestLinux|GuestCapture'

# The integration suite on QEMU microvm (virtio-mmio, IOAPIC): RINGSIDE_MACHINE=microvm makes every
# QEMU the tests start boot microvm (QEMUConfiguration.effectiveMachine).
test-microvm: deps kernel
	RINGSIDE_MACHINE=microvm $(SWIFT) test $(SWIFTFLAGS) \
	    --filter '$(KERNEL_TESTS)' --skip '$(KERNEL_TESTS_SKIP)|$(MICROVM_SKIP)'

# Numbers, not pass/fail: the kernel's UDP echo and what watching costs (bench.sh), the HTTP
# server (bench-http.sh, wrk), and the TUI's CPU at 30 frames/s under traffic (bench-tui.sh).
bench: deps kernel
	scripts/bench.sh
	scripts/bench-http.sh
	scripts/bench-tui.sh
	python3 scripts/bench_vs_linux.py

clean:
	-$(MAKE) -C kernel clean
	rm -rf .build
